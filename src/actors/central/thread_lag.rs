//! How late the central's actor thread gets to what is ready. Past its capacity, a monitor's
//! report waits unread in its socket that long: silence is judged that much later, so that
//! a central that falls behind does not take the monitors it has not read yet for silent
//! (and make them link again, which costs it more). A monitor that truly stops is still
//! seen, one lag later. Shown as `evcharge_thread_lag_seconds`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The thread is probed this often ...
const PROBE: Duration = Duration::from_millis(50);
/// ... and judged by the worst lateness of the last few seconds, kept per second.
const SECONDS_KEPT: usize = 5;

/// The worst lateness of each of the last [`SECONDS_KEPT`] seconds, newest last.
static RECENT: Mutex<Recent> = Mutex::new(Recent::new());

struct Recent {
    worst: [Duration; SECONDS_KEPT],
    /// Which second `worst`'s last slot is for (since the probe began).
    second: u64,
}

impl Recent {
    const fn new() -> Recent {
        Recent {
            worst: [Duration::ZERO; SECONDS_KEPT],
            second: 0,
        }
    }

    /// A probe `late` this long, in second `second` of probing.
    fn note(&mut self, second: u64, late: Duration) {
        let passed = second.saturating_sub(self.second).min(SECONDS_KEPT as u64) as usize;
        if passed > 0 {
            self.worst.rotate_left(passed);
            for slot in &mut self.worst[SECONDS_KEPT - passed..] {
                *slot = Duration::ZERO;
            }
            self.second = second;
        }
        let newest = &mut self.worst[SECONDS_KEPT - 1];
        *newest = (*newest).max(late);
    }

    fn worst(&self) -> Duration {
        self.worst.iter().copied().max().unwrap_or_default()
    }
}

/// Probes the current actix system's thread from now on.
pub fn probe() {
    actix::spawn(async {
        let began = Instant::now();
        loop {
            let asked = Instant::now();
            tokio::time::sleep(PROBE).await;
            let late = asked.elapsed().saturating_sub(PROBE);
            let mut recent = RECENT.lock().unwrap_or_else(|p| p.into_inner());
            recent.note(began.elapsed().as_secs(), late);
            crate::metrics::set_thread_lag(recent.worst());
        }
    });
}

/// The worst lateness of the thread over the last few seconds.
pub fn recent() -> Duration {
    RECENT.lock().unwrap_or_else(|p| p.into_inner()).worst()
}

/// How long a monitor link may go unheard: `window`, and as long again as the thread is
/// late (a report waiting unread in its socket is no silence).
pub fn silence_limit(window: Duration) -> Duration {
    window + recent()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_of_the_last_seconds_counts_and_older_ones_fade() {
        let mut recent = Recent::new();
        recent.note(0, Duration::from_millis(2));
        recent.note(1, Duration::from_millis(900));
        recent.note(2, Duration::from_millis(5));
        assert_eq!(recent.worst(), Duration::from_millis(900));
        recent.note(5, Duration::from_millis(1));
        assert_eq!(recent.worst(), Duration::from_millis(900));
        recent.note(6, Duration::from_millis(1));
        assert_eq!(recent.worst(), Duration::from_millis(5));
        recent.note(60, Duration::from_millis(3));
        assert_eq!(recent.worst(), Duration::from_millis(3));
    }
}

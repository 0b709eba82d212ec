//! How much a charge point may make the gateway write: whatever it sends, a bounded number
//! of lines. Each charger has a budget per minute, and the whole gateway one per second.

use crate::actors::line_rate::LineRate;
use std::time::{Duration, Instant};

/// Lines one charge point's doings may write in a minute.
const PER_CHARGER_PER_MINUTE: u32 = 20;
/// Lines every charge point together may write in a second.
const PER_GATEWAY_PER_SECOND: u32 = 50;

#[derive(Debug)]
pub struct LogBudget {
    window: Instant,
    written: u32,
    suppressed: u32,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget {
            window: Instant::now(),
            written: 0,
            suppressed: 0,
        }
    }
}

impl LogBudget {
    /// Whether one more line may be written; `who` hears, once a window is over, how many
    /// were not.
    pub fn allows(&mut self, who: &str) -> bool {
        if self.window.elapsed() >= Duration::from_secs(60) {
            if self.suppressed > 0 {
                log::warn!(
                    "{who}: {} more lines about it were not written",
                    self.suppressed
                );
            }
            *self = LogBudget::default();
        }
        let allowed = self.written < PER_CHARGER_PER_MINUTE && gateway_allows();
        if allowed {
            self.written += 1;
        } else {
            self.suppressed += 1;
        }
        allowed
    }
}

fn gateway_allows() -> bool {
    static LINES: LineRate = LineRate::new(PER_GATEWAY_PER_SECOND);
    LINES.allows()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_point_writes_a_bounded_number_of_lines_a_minute() {
        let mut budget = LogBudget::default();
        let written = (0..1000).filter(|_| budget.allows("CP1")).count() as u32;
        assert!(written <= PER_CHARGER_PER_MINUTE, "{written}");
        assert!(written > 0);
        assert_eq!(budget.suppressed, 1000 - written);
    }
}

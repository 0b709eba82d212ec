//! A cap on log lines a second, for what outsiders can make a process write (bad monitor
//! links, OCPP charge points): a flood writes a bounded number of lines.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// At most `per_second` lines a second; meant for a `static`.
#[derive(Debug)]
pub struct LineRate {
    per_second: u32,
    written: Mutex<Option<(Instant, u32)>>,
}

impl LineRate {
    pub const fn new(per_second: u32) -> LineRate {
        LineRate {
            per_second,
            written: Mutex::new(None),
        }
    }

    /// Whether one more line may be written this second.
    pub fn allows(&self) -> bool {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match written.as_mut() {
            Some((since, n)) if now.duration_since(*since) < Duration::from_secs(1) => {
                *n += 1;
                *n <= self.per_second
            }
            _ => {
                *written = Some((now, 1));
                true
            }
        }
    }
}

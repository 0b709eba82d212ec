//! What a central instance says of itself to the others, and how the others judge it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How often an instance says how it is.
pub const STATUS_EVERY: Duration = Duration::from_secs(2);

/// Unheard of for this many periods, an instance is shown as silent: killed, cut off, or
/// too busy to speak (the consumer group judges it on its own timer).
const SILENT_AFTER_PERIODS: u32 = 3;

/// One instance, as it last said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CentralStatus {
    pub instance: String,
    /// Where its console is served, as it announces it.
    pub console: String,
    /// The partitions of `cp.events` it holds, whose CPs it runs.
    pub partitions: Vec<i32>,
    /// How many CPs it runs.
    pub cps: usize,
    /// When it started, and when it said this.
    pub started_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// An instance as a console shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CentralSeen {
    #[serde(flatten)]
    pub status: CentralStatus,
    /// Heard of within the last few periods.
    pub alive: bool,
    /// The instance answering (its own status is first-hand).
    pub this: bool,
}

impl CentralStatus {
    pub fn seen(self, now: DateTime<Utc>, this: bool) -> CentralSeen {
        let silent = now
            .signed_duration_since(self.at)
            .to_std()
            .unwrap_or_default();
        CentralSeen {
            alive: this || silent < STATUS_EVERY * SILENT_AFTER_PERIODS,
            this,
            status: self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(at: DateTime<Utc>) -> CentralStatus {
        CentralStatus {
            instance: "central-2".into(),
            console: "http://127.0.0.1:8002/".into(),
            partitions: vec![1, 3],
            cps: 4,
            started_at: at,
            at,
        }
    }

    #[test]
    fn an_instance_unheard_of_for_three_periods_is_silent() {
        let now = Utc::now();
        assert!(
            status(now - chrono::Duration::seconds(5))
                .seen(now, false)
                .alive
        );
        assert!(
            !status(now - chrono::Duration::seconds(7))
                .seen(now, false)
                .alive
        );
        // The instance answering is alive, whatever its clock says.
        assert!(
            status(now - chrono::Duration::seconds(60))
                .seen(now, true)
                .alive
        );
    }
}

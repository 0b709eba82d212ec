//! What a monitor remembers for its page: its last health checks and the faults they showed.
//!
//! Both are bounded: the oldest entry goes when a new one would overflow, so a monitor that
//! runs for months holds the same few kilobytes.

use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::VecDeque;

/// How many health checks are kept.
pub const CHECKS_KEPT: usize = 60;
/// How many faults are kept.
pub const FAULTS_KEPT: usize = 20;

/// A fixed-capacity buffer that forgets its oldest entry when full.
#[derive(Debug, Clone)]
pub struct Ring<T> {
    capacity: usize,
    items: VecDeque<T>,
}

impl<T> Ring<T> {
    /// A ring holding at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Ring<T> {
        let capacity = capacity.max(1);
        Ring {
            capacity,
            items: VecDeque::with_capacity(capacity),
        }
    }

    /// Adds `item` as the newest entry; returns the oldest one if it had to go.
    pub fn push(&mut self, item: T) -> Option<T> {
        let dropped = if self.items.len() == self.capacity {
            self.items.pop_front()
        } else {
            None
        };
        self.items.push_back(item);
        dropped
    }

    pub fn newest_mut(&mut self) -> Option<&mut T> {
        self.items.back_mut()
    }

    /// Newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &T> {
        self.items.iter().rev()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// What a health check found at the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckResult {
    Ok,
    Ko,
    Unreachable,
}

/// One health check and the report that followed it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckRecord {
    pub at: DateTime<Utc>,
    pub result: CheckResult,
    /// Why the engine is KO or unreachable; `None` when OK.
    pub detail: Option<String>,
    /// How long the engine took to answer; `None` when it did not.
    pub engine_ms: Option<f64>,
    /// How long the central took to answer the report; `None` when it did not.
    pub central_ms: Option<f64>,
    /// How the report went: `reported`, `refused` or `unreachable`.
    pub link: &'static str,
    /// The CP's state as the central answered it; `None` when it did not.
    pub cp_state: Option<String>,
}

/// A stretch of failed health checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultRecord {
    pub began_at: DateTime<Utc>,
    /// What the first failed check of the stretch said.
    pub detail: String,
    /// When a check was OK again; `None` while the fault lasts.
    pub cleared_at: Option<DateTime<Utc>>,
}

/// The last checks and faults of one monitor.
#[derive(Debug, Clone)]
pub struct HealthHistory {
    checks: Ring<CheckRecord>,
    faults: Ring<FaultRecord>,
}

impl Default for HealthHistory {
    fn default() -> Self {
        HealthHistory {
            checks: Ring::new(CHECKS_KEPT),
            faults: Ring::new(FAULTS_KEPT),
        }
    }
}

impl HealthHistory {
    /// Keeps `check`; opens a fault when the engine starts failing and clears it when the
    /// engine is OK again. A failure whose cause changes (unreachable, then KO) clears the
    /// first fault and opens a second, so that each cause is listed. Returns whether the
    /// list of faults changed.
    pub fn record(&mut self, check: CheckRecord) -> bool {
        let detail = check.detail.clone().unwrap_or_default();
        let ongoing = self.faults.newest_mut().filter(|f| f.cleared_at.is_none());
        let changed = match (check.result, ongoing) {
            (CheckResult::Ok, None) => false,
            (CheckResult::Ok, Some(fault)) => {
                fault.cleared_at = Some(check.at);
                true
            }
            (_, Some(fault)) if fault.detail == detail => false,
            (_, ongoing) => {
                if let Some(fault) = ongoing {
                    fault.cleared_at = Some(check.at);
                }
                self.faults.push(FaultRecord {
                    began_at: check.at,
                    detail,
                    cleared_at: None,
                });
                true
            }
        };
        self.checks.push(check);
        changed
    }

    /// Newest first.
    pub fn checks(&self) -> Vec<CheckRecord> {
        self.checks.newest_first().cloned().collect()
    }

    /// Newest first.
    pub fn faults(&self) -> Vec<FaultRecord> {
        self.faults.newest_first().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(result: CheckResult, detail: Option<&str>) -> CheckRecord {
        CheckRecord {
            at: Utc::now(),
            result,
            detail: detail.map(str::to_owned),
            engine_ms: Some(0.5),
            central_ms: Some(1.0),
            link: "reported",
            cp_state: Some("available".into()),
        }
    }

    #[test]
    fn a_ring_forgets_its_oldest_entry_when_full() {
        let mut ring = Ring::new(3);
        assert!(ring.is_empty());
        for i in 0..3 {
            assert_eq!(ring.push(i), None);
        }
        assert_eq!(ring.push(3), Some(0));
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.newest_first().copied().collect::<Vec<_>>(), [3, 2, 1]);
    }

    #[test]
    fn a_ring_of_no_capacity_still_keeps_the_newest() {
        let mut ring = Ring::new(0);
        ring.push("a");
        ring.push("b");
        assert_eq!(ring.newest_first().copied().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn history_keeps_the_last_sixty_checks_newest_first() {
        let mut history = HealthHistory::default();
        for _ in 0..100 {
            history.record(check(CheckResult::Ok, None));
        }
        let last = check(CheckResult::Ok, None);
        history.record(last.clone());
        let checks = history.checks();
        assert_eq!(checks.len(), CHECKS_KEPT);
        assert_eq!(checks[0], last);
        assert!(history.faults().is_empty());
    }

    #[test]
    fn a_stretch_of_failed_checks_is_one_fault_cleared_by_the_next_ok() {
        let mut history = HealthHistory::default();
        assert!(!history.record(check(CheckResult::Ok, None)));
        assert!(history.record(check(CheckResult::Ko, Some("overheated"))));
        assert!(!history.record(check(CheckResult::Ko, Some("overheated"))));
        let open = history.faults();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].detail, "overheated");
        assert_eq!(open[0].cleared_at, None);

        let ok = check(CheckResult::Ok, None);
        assert!(history.record(ok.clone()));
        assert_eq!(history.faults()[0].cleared_at, Some(ok.at));
        assert!(!history.record(check(CheckResult::Ok, None)));

        assert!(history.record(check(CheckResult::Unreachable, Some("no answer"))));
        let faults = history.faults();
        assert_eq!(faults.len(), 2);
        assert_eq!(faults[0].detail, "no answer");
    }

    #[test]
    fn a_failure_whose_cause_changes_lists_each_cause() {
        let mut history = HealthHistory::default();
        history.record(check(CheckResult::Unreachable, Some("cannot connect")));
        let ko = check(CheckResult::Ko, Some("starting"));
        assert!(history.record(ko.clone()));
        let faults = history.faults();
        assert_eq!(faults.len(), 2);
        assert_eq!(faults[0].detail, "starting");
        assert_eq!(faults[0].cleared_at, None);
        assert_eq!(faults[1].detail, "cannot connect");
        assert_eq!(faults[1].cleared_at, Some(ko.at));
    }

    #[test]
    fn history_keeps_the_last_twenty_faults() {
        let mut history = HealthHistory::default();
        for i in 0..30 {
            history.record(check(CheckResult::Ko, Some(&format!("fault {i}"))));
            history.record(check(CheckResult::Ok, None));
        }
        let faults = history.faults();
        assert_eq!(faults.len(), FAULTS_KEPT);
        assert_eq!(faults[0].detail, "fault 29");
        assert_eq!(faults[FAULTS_KEPT - 1].detail, "fault 10");
    }
}

//! Failed attempts counted per key (an address, an account), with growing delays: a few
//! mistakes are free, then each further one locks the key for twice as long, up to a cap.
//! Callers check *before* doing the expensive or risky work, so guesses sent in parallel
//! cannot slip past the limit. Memory stays bounded whatever the number of keys.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How many failures are free, and how the lock grows after them.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub free_failures: u32,
    pub first_delay: Duration,
    pub longest_delay: Duration,
    /// Keys remembered at most; the stalest are forgotten first.
    pub capacity: usize,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

/// The failures of every key, under one [`Policy`].
#[derive(Debug)]
pub struct Attempts<K> {
    policy: Policy,
    records: HashMap<K, Record>,
}

impl<K: Hash + Eq + Clone> Attempts<K> {
    pub fn new(policy: Policy) -> Attempts<K> {
        Attempts {
            policy,
            records: HashMap::new(),
        }
    }

    /// `Err(wait)` while `key` is locked: how long until it may try again.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        match self.records.get(key).and_then(|r| r.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Counts a failure of `key`; returns how long it is now locked, if it is.
    pub fn failed(&mut self, key: &K, now: Instant) -> Option<Duration> {
        if !self.records.contains_key(key) && self.records.len() >= self.policy.capacity {
            self.forget_stalest();
        }
        let record = self.records.entry(key.clone()).or_insert(Record {
            failures: 0,
            last_failure: now,
            locked_until: None,
        });
        // A key quiet for longer than the longest lock starts afresh.
        if now.duration_since(record.last_failure) > self.policy.longest_delay {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
        let over = record.failures.checked_sub(self.policy.free_failures)?;
        if over == 0 {
            return None;
        }
        let doublings = (over - 1).min(20);
        let delay = self
            .policy
            .first_delay
            .saturating_mul(1 << doublings)
            .min(self.policy.longest_delay);
        record.locked_until = Some(now + delay);
        Some(delay)
    }

    /// A success clears the key's failures.
    pub fn succeeded(&mut self, key: &K) {
        self.records.remove(key);
    }

    /// How many keys are remembered now.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn forget_stalest(&mut self) {
        let stalest = self
            .records
            .iter()
            .min_by_key(|(_, r)| r.last_failure)
            .map(|(k, _)| k.clone());
        if let Some(key) = stalest {
            self.records.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy = Policy {
        free_failures: 3,
        first_delay: Duration::from_secs(1),
        longest_delay: Duration::from_secs(60),
        capacity: 4,
    };

    #[test]
    fn a_few_failures_are_free_then_the_lock_doubles() {
        let mut attempts = Attempts::new(POLICY);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(attempts.failed(&"a", now), None);
        }
        assert!(attempts.check(&"a", now).is_ok());
        assert_eq!(attempts.failed(&"a", now), Some(Duration::from_secs(1)));
        assert_eq!(attempts.failed(&"a", now), Some(Duration::from_secs(2)));
        assert_eq!(attempts.failed(&"a", now), Some(Duration::from_secs(4)));
        assert_eq!(attempts.check(&"a", now), Err(Duration::from_secs(4)));
        assert!(attempts.check(&"a", now + Duration::from_secs(5)).is_ok());
        assert!(attempts.check(&"b", now).is_ok(), "keys are apart");
        for _ in 0..30 {
            attempts.failed(&"a", now);
        }
        assert_eq!(attempts.check(&"a", now), Err(POLICY.longest_delay));
        attempts.succeeded(&"a");
        assert!(attempts.check(&"a", now).is_ok());
    }

    #[test]
    fn memory_stays_bounded_by_forgetting_the_stalest() {
        let mut attempts = Attempts::new(POLICY);
        let start = Instant::now();
        for i in 0..100u32 {
            attempts.failed(&i, start + Duration::from_millis(u64::from(i)));
        }
        assert_eq!(attempts.len(), POLICY.capacity);
        assert!(attempts.records.contains_key(&99));
    }
}

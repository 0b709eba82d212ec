//! Limits on password guessing, per account and per address (SPEC §7): counted *before* the
//! password is checked, so that guesses sent in parallel cannot slip past the limit.
//!
//! Each account and each address may fail [`Policy::free_failures`] times; from then on every
//! failure locks it, for [`Policy::first_lockout`] the first time and twice as long each time
//! after, up to [`Policy::max_lockout`]. An attempt being checked counts as a failure until it
//! is known not to be one: past the free failures, one attempt at a time. A success clears
//! the account's failures (not the address's: a guesser with an account of their own must
//! not wipe the slate). Failures are forgotten [`Policy::forget_after`] after the last one,
//! and at most [`Policy::max_keys`] accounts and addresses are remembered: beyond, the one
//! heard of least recently is forgotten, so a flood of names cannot exhaust memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much guessing is let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub free_failures: u32,
    pub first_lockout: Duration,
    pub max_lockout: Duration,
    pub forget_after: Duration,
    pub max_keys: usize,
}

impl Policy {
    /// The defaults, with the first lockout `first_lockout` (a setting).
    pub fn with_first_lockout(first_lockout: Duration) -> Policy {
        Policy {
            first_lockout,
            ..Policy::default()
        }
    }

    /// How long `failures` failures lock an account or address.
    fn lockout(&self, failures: u32) -> Duration {
        let Some(beyond) = failures.checked_sub(self.free_failures) else {
            return Duration::ZERO;
        };
        let doubled = self
            .first_lockout
            .saturating_mul(2u32.saturating_pow(beyond.min(31)));
        doubled.min(self.max_lockout)
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            free_failures: 5,
            first_lockout: Duration::from_secs(1),
            max_lockout: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(3600),
            max_keys: 10_000,
        }
    }
}

/// An attempt refused unheard: try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyAttempts {
    pub retry_after: Duration,
}

impl TooManyAttempts {
    /// Whole seconds to wait, at least one.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0)
    }
}

impl std::fmt::Display for TooManyAttempts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "too many wrong passwords: try again in {} s",
            self.retry_after_secs()
        )
    }
}

/// What is known of one account or address.
#[derive(Debug)]
struct Tally {
    failures: u32,
    /// Attempts reserved and not yet settled.
    pending: u32,
    locked_until: Option<Instant>,
    last: Instant,
}

/// The guessing limits of one kind of login (operators', drivers').
#[derive(Debug)]
pub struct LoginLimiter {
    policy: Policy,
    tallies: Mutex<HashMap<Key, Tally>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Account(String),
    Address(String),
}

/// Longer names exist nowhere; the limit on the key bounds what a guess may make us keep.
const MAX_KEY_BYTES: usize = 128;

fn bounded(text: &str) -> String {
    let mut end = text.len().min(MAX_KEY_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

impl LoginLimiter {
    pub fn new(policy: Policy) -> Arc<LoginLimiter> {
        Arc::new(LoginLimiter {
            policy,
            tallies: Mutex::default(),
        })
    }

    /// Reserves an attempt at `account` from `address` (when known), or says how long to wait.
    /// Settle it with [`Attempt::failed`] or [`Attempt::succeeded`]; dropped unsettled (the
    /// check could not be made), it counts for nothing.
    pub fn begin(
        self: &Arc<Self>,
        account: &str,
        address: Option<&str>,
    ) -> Result<Attempt, TooManyAttempts> {
        self.begin_at(account, address, Instant::now())
    }

    fn begin_at(
        self: &Arc<Self>,
        account: &str,
        address: Option<&str>,
        now: Instant,
    ) -> Result<Attempt, TooManyAttempts> {
        let mut keys = vec![Key::Account(bounded(account))];
        keys.extend(address.map(|a| Key::Address(bounded(a))));
        let mut tallies = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
        for key in &keys {
            if tallies.get(key).is_some_and(|t| self.is_stale(t, now)) {
                tallies.remove(key);
            }
        }
        let wait = keys
            .iter()
            .filter_map(|key| tallies.get(key))
            .map(|tally| self.wait(tally, now))
            .max()
            .unwrap_or_default();
        if !wait.is_zero() {
            return Err(TooManyAttempts { retry_after: wait });
        }
        for key in &keys {
            if !tallies.contains_key(key) {
                self.make_room(&mut tallies, now);
            }
            let tally = tallies.entry(key.clone()).or_insert(Tally {
                failures: 0,
                pending: 0,
                locked_until: None,
                last: now,
            });
            tally.pending += 1;
            tally.last = now;
        }
        Ok(Attempt {
            limiter: Arc::clone(self),
            keys,
            settled: false,
        })
    }

    /// How long an attempt on this tally must wait; zero when it may go ahead.
    fn wait(&self, tally: &Tally, now: Instant) -> Duration {
        if let Some(until) = tally.locked_until.filter(|until| *until > now) {
            return until - now;
        }
        let counted = tally.failures + tally.pending;
        if counted >= self.policy.free_failures && tally.pending > 0 {
            // Were the attempts being checked all wrong, this one would wait this long.
            return self.policy.lockout(counted);
        }
        Duration::ZERO
    }

    /// Whether a tally is old enough to be forgotten: nothing pending, not locked, and its
    /// last failure long ago.
    fn is_stale(&self, tally: &Tally, now: Instant) -> bool {
        tally.pending == 0
            && tally.locked_until.is_none_or(|until| until <= now)
            && now.saturating_duration_since(tally.last) >= self.policy.forget_after
    }

    /// Forgets what is stale, then, if still full, the tally heard of least recently.
    fn make_room(&self, tallies: &mut HashMap<Key, Tally>, now: Instant) {
        if tallies.len() < self.policy.max_keys {
            return;
        }
        tallies.retain(|_, t| !self.is_stale(t, now));
        if tallies.len() < self.policy.max_keys {
            return;
        }
        let oldest = tallies
            .iter()
            .filter(|(_, t)| t.pending == 0)
            .min_by_key(|(_, t)| t.last)
            .map(|(key, _)| key.clone());
        if let Some(key) = oldest {
            tallies.remove(&key);
        }
    }

    fn settle(&self, keys: &[Key], failed: bool, now: Instant) {
        let mut tallies = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys {
            let Some(tally) = tallies.get_mut(key) else {
                continue;
            };
            tally.pending = tally.pending.saturating_sub(1);
            if failed {
                tally.failures += 1;
                tally.last = now;
                let lockout = self.policy.lockout(tally.failures);
                tally.locked_until = (!lockout.is_zero()).then(|| now + lockout);
            } else if matches!(key, Key::Account(_)) {
                tally.failures = 0;
                tally.locked_until = None;
            }
            if tally.failures == 0 && tally.pending == 0 {
                tallies.remove(key);
            }
        }
    }

    /// How many accounts and addresses are remembered now.
    pub fn remembered(&self) -> usize {
        self.tallies.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A reserved attempt: settle it once the password is checked.
#[derive(Debug)]
pub struct Attempt {
    limiter: Arc<LoginLimiter>,
    keys: Vec<Key>,
    settled: bool,
}

impl Attempt {
    /// The password was wrong.
    pub fn failed(mut self) {
        self.settled = true;
        self.limiter.settle(&self.keys, true, Instant::now());
    }

    /// The password was right: the account's failures are forgotten.
    pub fn succeeded(mut self) {
        self.settled = true;
        self.limiter.settle(&self.keys, false, Instant::now());
    }

    #[cfg(test)]
    fn failed_at(mut self, now: Instant) {
        self.settled = true;
        self.limiter.settle(&self.keys, true, now);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if !self.settled {
            // Neither right nor wrong (the check failed): it counts for nothing.
            let mut tallies = self
                .limiter
                .tallies
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for key in &self.keys {
                if let Some(tally) = tallies.get_mut(key) {
                    tally.pending = tally.pending.saturating_sub(1);
                    if tally.failures == 0 && tally.pending == 0 {
                        tallies.remove(key);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> Arc<LoginLimiter> {
        LoginLimiter::new(Policy::default())
    }

    #[test]
    fn attempts_in_flight_count_so_parallel_guesses_do_not_slip_past() {
        let limiter = limiter();
        let now = Instant::now();
        let reserved: Vec<Attempt> = (0..50)
            .filter_map(|_| limiter.begin_at("admin", Some("10.0.0.9"), now).ok())
            .collect();
        assert_eq!(reserved.len(), 5, "only the free failures are let through");
        let refused = limiter.begin_at("admin", None, now).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        // Another account from the same address is held back too.
        assert!(limiter.begin_at("alice", Some("10.0.0.9"), now).is_err());
        for attempt in reserved {
            attempt.failed_at(now);
        }
        // Locked, even for the right password.
        let refused = limiter.begin_at("admin", None, now).unwrap_err();
        assert_eq!(refused.retry_after, Duration::from_secs(1));
        assert_eq!(refused.retry_after_secs(), 1);
    }

    #[test]
    fn each_failure_past_the_free_ones_doubles_the_lockout_up_to_the_cap() {
        let limiter = limiter();
        let mut now = Instant::now();
        for _ in 0..5 {
            limiter.begin_at("admin", None, now).unwrap().failed_at(now);
        }
        let mut expected = Duration::from_secs(1);
        for _ in 0..15 {
            let wait = limiter
                .begin_at("admin", None, now)
                .unwrap_err()
                .retry_after;
            assert_eq!(wait, expected);
            now += wait;
            // One attempt at a time once locked before.
            let attempt = limiter.begin_at("admin", None, now).unwrap();
            assert!(limiter.begin_at("admin", None, now).is_err());
            attempt.failed_at(now);
            expected = (expected * 2).min(Duration::from_secs(15 * 60));
        }
        assert_eq!(expected, Duration::from_secs(15 * 60));
    }

    #[test]
    fn a_success_clears_the_account_but_not_the_address() {
        let limiter = limiter();
        for _ in 0..4 {
            limiter.begin("admin", Some("10.0.0.9")).unwrap().failed();
        }
        limiter
            .begin("admin", Some("10.0.0.9"))
            .unwrap()
            .succeeded();
        // The account starts again; the address has one free failure left.
        limiter.begin("admin", Some("10.0.0.8")).unwrap().failed();
        limiter.begin("bob", Some("10.0.0.9")).unwrap().failed();
        assert!(limiter.begin("carol", Some("10.0.0.9")).is_err());
        // An attempt dropped unsettled counts for nothing.
        drop(limiter.begin("dave", None).unwrap());
        assert!(limiter.begin("dave", None).is_ok());
    }

    #[test]
    fn memory_is_bounded_and_the_stalest_is_forgotten_first() {
        let limiter = LoginLimiter::new(Policy {
            max_keys: 100,
            ..Policy::default()
        });
        let now = Instant::now();
        for i in 0..1000u32 {
            let at = now + Duration::from_millis(u64::from(i));
            limiter
                .begin_at(&format!("name{i}"), None, at)
                .unwrap()
                .failed_at(at);
        }
        assert_eq!(limiter.remembered(), 100);
        let huge = "x".repeat(10_000);
        limiter.begin(&huge, Some(&huge)).unwrap().failed();
        assert!(limiter.remembered() <= 101);
    }
}

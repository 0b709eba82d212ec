//! Proof of origin on the bus, at both ends: a publisher proves every record it writes to
//! a proven topic with the key of the party the record names; a consumer takes a record of
//! such a topic only with a valid proof, and a record that acts on the present only while
//! fresh and once (see [`crate::proof`] for the scheme).

use super::Topics;
use crate::messages::{Envelope, Keyed};
use crate::proof::{KeyLookup, Keyring, Party, HEADER};
use chrono::{DateTime, Utc};
use rdkafka::message::{Headers, Message};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A topic whose records carry proofs: its name without the prefix (what the proof
/// covers), and who its records speak for.
#[derive(Debug, Clone, Copy)]
pub(super) struct ProvenTopic {
    pub name: &'static str,
    cp_keyed: bool,
}

impl ProvenTopic {
    /// The gateways' ledger of OCPP transactions, proven by the CP each record names.
    pub fn ledger() -> ProvenTopic {
        ProvenTopic {
            name: "ocpp.transactions",
            cp_keyed: true,
        }
    }

    pub fn party<'a>(&self, key: &'a str) -> Party<'a> {
        if self.cp_keyed {
            Party::Cp(key)
        } else {
            Party::Driver(key)
        }
    }
}

impl Topics {
    /// The topics whose records make the central or an engine act: `driver.requests`
    /// (proven by the driver), `cp.events` (by the CP), `cp.commands` (by the central, with
    /// the key of the CP it commands). What the central tells drivers and the dead-letter
    /// topic make no one act, and carry no proof.
    pub(super) fn proven(&self, topic: &str) -> Option<ProvenTopic> {
        let (name, cp_keyed) = if topic == self.driver_requests {
            ("driver.requests", false)
        } else if topic == self.cp_events {
            ("cp.events", true)
        } else if topic == self.cp_commands {
            ("cp.commands", true)
        } else {
            return None;
        };
        Some(ProvenTopic { name, cp_keyed })
    }
}

/// The proof header's value for a record `keys` can prove, or why it cannot be sent.
pub(super) fn prove(
    keys: Option<&Arc<dyn Keyring>>,
    topic: ProvenTopic,
    key: &str,
    value: &[u8],
) -> Result<String, String> {
    let party = topic.party(key);
    let Some(keys) = keys else {
        return Err(format!(
            "this process holds no key to prove a record for {party}"
        ));
    };
    match keys.lookup(party) {
        KeyLookup::Found(bus_key) => Ok(bus_key.prove(topic.name, key, value)),
        KeyLookup::NotOurs => Err(format!("this process holds no key for {party}")),
        KeyLookup::Unknown(why) => Err(why),
    }
}

/// What a consumer makes of a record's proof.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Proven,
    /// Another process's party: skipped, neither handled nor set aside.
    NotOurs,
    /// Set aside with this reason.
    Refused(String),
}

/// Checks the proof of `record`, already read as a message for `key`.
pub(super) fn check(
    keys: Option<&Arc<dyn Keyring>>,
    topic: ProvenTopic,
    key: &str,
    record: &impl Message,
) -> Verdict {
    let party = topic.party(key);
    let Some(keys) = keys else {
        return Verdict::Refused(format!(
            "this process holds no key to check {party}'s records"
        ));
    };
    let bus_key = match keys.lookup(party) {
        KeyLookup::Found(bus_key) => bus_key,
        KeyLookup::NotOurs => return Verdict::NotOurs,
        KeyLookup::Unknown(why) => return Verdict::Refused(why),
    };
    let proof = record.headers().and_then(|headers| {
        headers
            .iter()
            .find(|header| header.key == HEADER)
            .and_then(|header| header.value)
    });
    let Some(proof) = proof else {
        return Verdict::Refused(format!(
            "forged or unproven: no {HEADER} header (records on {} must be proven by {party})",
            topic.name
        ));
    };
    let value = record.payload().unwrap_or_default();
    if bus_key.verify(topic.name, key, value, proof) {
        Verdict::Proven
    } else {
        Verdict::Refused(format!(
            "forged: the {HEADER} header does not prove this record for {party}"
        ))
    }
}

/// What a consumer checks of every record it has read as a message, before any actor sees
/// it: the proof, on a proven topic, then that it is no replay.
#[derive(Debug)]
pub(super) struct Gate {
    proven: Option<ProvenTopic>,
    keys: Option<Arc<dyn Keyring>>,
    replays: std::cell::RefCell<ReplayGuard>,
}

impl Gate {
    pub fn new(
        proven: Option<ProvenTopic>,
        keys: Option<Arc<dyn Keyring>>,
        window: Duration,
    ) -> Gate {
        Gate {
            proven,
            keys,
            replays: std::cell::RefCell::new(ReplayGuard::new(window)),
        }
    }

    /// Whether records keyed `key` are surely another process's party's (an engine reads
    /// every CP's commands on its partitions): skipped unread, not even set aside.
    pub fn not_ours(&self, key: &str) -> bool {
        match (self.proven, &self.keys) {
            (Some(proven), Some(keys)) => {
                matches!(keys.lookup(proven.party(key)), KeyLookup::NotOurs)
            }
            _ => false,
        }
    }

    /// `Ok(true)`: hand the record to its actor; `Ok(false)`: another process's party, skip
    /// it; `Err`: set it aside with the reason.
    pub fn admit<T: Keyed>(
        &self,
        record: &impl Message,
        key: &str,
        envelope: &Envelope<T>,
    ) -> Result<bool, String> {
        let Some(proven) = self.proven else {
            return Ok(true);
        };
        // A centrals' note is proven by its seal, which its receiver opens.
        if !envelope.body.sealed_by_centrals() {
            match check(self.keys.as_ref(), proven, key, record) {
                Verdict::Proven => {}
                Verdict::NotOurs => return Ok(false),
                Verdict::Refused(why) => return Err(why),
            }
        }
        self.replays.borrow_mut().admit(envelope, Utc::now())?;
        Ok(true)
    }
}

/// Most records a consumer remembers to recognise replays; the oldest go first.
const MAX_REMEMBERED: usize = 1 << 20;

/// The records that act on the present a consumer has taken within the replay window.
#[derive(Debug)]
pub(super) struct ReplayGuard {
    window: chrono::Duration,
    seen: HashSet<Uuid>,
    by_age: BTreeSet<(DateTime<Utc>, Uuid)>,
}

impl ReplayGuard {
    pub fn new(window: Duration) -> ReplayGuard {
        ReplayGuard {
            window: chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX),
            seen: HashSet::new(),
            by_age: BTreeSet::new(),
        }
    }

    /// Takes `envelope` if it is not a replay, or says why not. Only records that act on
    /// the present are checked: the others name the session or instance they concern, and
    /// taking one twice changes nothing.
    pub fn admit<T: Keyed>(
        &mut self,
        envelope: &Envelope<T>,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        if !envelope.body.must_be_fresh() {
            return Ok(());
        }
        let oldest = now - self.window;
        while let Some(&(ts, id)) = self.by_age.first() {
            if ts >= oldest && self.by_age.len() < MAX_REMEMBERED {
                break;
            }
            self.by_age.pop_first();
            self.seen.remove(&id);
        }
        let window = humantime::format_duration(self.window.to_std().unwrap_or_default());
        if envelope.ts < oldest {
            return Err(format!(
                "stale: written at {}, more than {window} ago (kafka.replay_window); a record \
                 that acts on the present is taken only while fresh",
                envelope.ts.to_rfc3339()
            ));
        }
        if envelope.ts > now + self.window {
            return Err(format!(
                "written at {}, more than {window} ahead of this clock",
                envelope.ts.to_rfc3339()
            ));
        }
        if !self.seen.insert(envelope.id) {
            return Err(format!(
                "replayed: record {} was taken already",
                envelope.id
            ));
        }
        self.by_age.insert((envelope.ts, envelope.id));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{CpEvent, DriverRequest};

    fn stop(ts: DateTime<Utc>) -> Envelope<DriverRequest> {
        let mut envelope = Envelope::new(DriverRequest::StopSupply {
            driver_id: "D1".into(),
        });
        envelope.ts = ts;
        envelope
    }

    #[test]
    fn a_record_that_acts_on_the_present_is_taken_once_and_only_while_fresh() {
        let mut guard = ReplayGuard::new(Duration::from_secs(300));
        let now = Utc::now();
        let fresh = stop(now);
        assert_eq!(guard.admit(&fresh, now), Ok(()));
        let replayed = guard.admit(&fresh, now).unwrap_err();
        assert!(replayed.starts_with("replayed"), "{replayed}");
        let stale = guard
            .admit(&stop(now - chrono::Duration::minutes(6)), now)
            .unwrap_err();
        assert!(stale.starts_with("stale"), "{stale}");
        let ahead = guard
            .admit(&stop(now + chrono::Duration::minutes(6)), now)
            .unwrap_err();
        assert!(ahead.contains("ahead"), "{ahead}");
        // Once out of the window, it is forgotten: refused as stale, not remembered for ever.
        let later = now + chrono::Duration::minutes(10);
        assert!(guard.admit(&fresh, later).unwrap_err().starts_with("stale"));
        assert!(guard.seen.is_empty());
    }

    #[test]
    fn a_record_that_names_its_session_may_come_again() {
        let mut guard = ReplayGuard::new(Duration::from_secs(300));
        let mut ended = Envelope::new(CpEvent::Authorised {
            cp_id: "CP1".into(),
            session_id: Uuid::nil(),
        });
        ended.ts = Utc::now() - chrono::Duration::hours(2);
        assert_eq!(guard.admit(&ended, Utc::now()), Ok(()));
        assert_eq!(guard.admit(&ended, Utc::now()), Ok(()));
    }
}

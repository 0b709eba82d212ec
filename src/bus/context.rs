//! What the Kafka client says to people: one plain line when the broker is out of reach or
//! refuses this role's credentials; and what its statistics say of consumer lag, for the
//! metrics.

use super::retention::{self, LostRecords};
use crate::configuration::KafkaSettings;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::Statistics;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Repeats the same complaint at most this often.
const COMPLAINT_INTERVAL: Duration = Duration::from_secs(10);

/// Reading a topic this far behind its writers is said in the log ...
const BEHIND_NOTICE: Duration = Duration::from_secs(2);
/// ... at most this often.
const BEHIND_INTERVAL: Duration = Duration::from_secs(30);

/// Shared by every client of one role; clones share the complaint state.
#[derive(Debug, Clone)]
pub struct BusContext {
    bootstrap: Arc<str>,
    role: Arc<str>,
    /// Who this role says it is to the broker, for the line saying it was refused.
    credentials: Arc<str>,
    complaints: Arc<Mutex<Complaints>>,
    /// A group member's partitions, kept as its group assigns and revokes them.
    held: Option<super::HeldPartitions>,
    /// A consumer's reading of its topic: a partition it loses is no longer read by it.
    clock: Option<super::StreamClock>,
    /// Records the broker deleted before this role read them.
    lost: Arc<Mutex<LostRecords>>,
}

/// What was said, and whether the broker is refusing this role rather than out of reach.
#[derive(Debug, Default)]
struct Complaints {
    last: Option<Instant>,
    refused: Option<String>,
    /// The last reason that said why (a TLS handshake that failed, say): librdkafka follows
    /// it with "all brokers are down", which says only that.
    cause: Option<String>,
    /// When it last said it reads a topic behind its writers.
    behind_said: Option<Instant>,
}

impl BusContext {
    pub fn new(settings: &KafkaSettings, role: &str) -> BusContext {
        let credentials = match (settings.sasl_mechanism, &settings.sasl_username) {
            (Some(mechanism), Some(user)) => {
                format!("user {user:?} over SASL {}", mechanism.as_str())
            }
            _ => format!("security protocol {}", settings.security_protocol.as_str()),
        };
        BusContext {
            bootstrap: settings.bootstrap.as_str().into(),
            role: role.into(),
            credentials: credentials.into(),
            complaints: Arc::default(),
            held: None,
            clock: None,
            lost: Arc::default(),
        }
    }

    /// The context of one group member's consumer, which keeps `held` as it is assigned
    /// and loses partitions.
    pub fn holding(&self, held: super::HeldPartitions) -> BusContext {
        BusContext {
            held: Some(held),
            ..self.clone()
        }
    }

    /// The context of a consumer that keeps `clock`, its reading of its topic.
    pub fn reading(&self, clock: super::StreamClock) -> BusContext {
        BusContext {
            clock: Some(clock),
            // Its own: what it lost, and where it must read on from, are its alone.
            lost: Arc::default(),
            ..self.clone()
        }
    }

    /// Says, at most every [`BEHIND_INTERVAL`], that this process reads `topic` later than
    /// it is written: it is past its capacity. It goes on at the pace it can.
    fn say_if_behind(&self, topic: &str, behind: Duration, lag: i64) {
        if behind < BEHIND_NOTICE {
            return;
        }
        let mut complaints = self.complaints();
        if complaints
            .behind_said
            .is_some_and(|at| at.elapsed() < BEHIND_INTERVAL)
        {
            return;
        }
        complaints.behind_said = Some(Instant::now());
        log::warn!(
            "{}: reading {topic} {:.1} s behind its writers ({lag} records waiting): past its \
             capacity, it handles them as fast as it can and judges silence by what it has \
             read; start another instance to share the load",
            self.role,
            behind.as_secs_f64()
        );
    }

    pub fn role(&self) -> &str {
        &self.role
    }

    /// Says once that the broker is out of reach (again at most every few seconds). While
    /// the broker refuses this role's credentials, says that instead: it is why.
    pub fn complain(&self, reason: &str) {
        let mut complaints = self.complaints();
        let says_why = !reason.contains("brokers are down");
        if says_why {
            complaints.cause = Some(reason.to_owned());
        }
        let reason = match (&complaints.cause, says_why) {
            (Some(cause), false) => format!("{reason}; last said: {cause}"),
            _ => reason.to_owned(),
        };
        if complaints
            .last
            .is_some_and(|at| at.elapsed() < COMPLAINT_INTERVAL)
        {
            return;
        }
        complaints.last = Some(Instant::now());
        match &complaints.refused {
            Some(refusal) => self.say_refused(refusal),
            None => log::warn!(
                "cannot reach the Kafka broker at {} ({reason}); retrying",
                self.bootstrap
            ),
        }
    }

    /// Says once that the broker refuses this role's credentials (again at most every few
    /// seconds); the role keeps retrying, as for a broker out of reach.
    pub fn complain_refused(&self, reason: &str) {
        let mut complaints = self.complaints();
        complaints.refused = Some(reason.to_owned());
        if complaints
            .last
            .is_none_or(|at| at.elapsed() >= COMPLAINT_INTERVAL)
        {
            complaints.last = Some(Instant::now());
            self.say_refused(reason);
        }
    }

    fn say_refused(&self, reason: &str) {
        log::error!(
            "the Kafka broker at {} refuses the credentials of this {} ({}): {reason}; \
             check kafka.sasl_username and its password; retrying",
            self.bootstrap,
            self.role,
            self.credentials
        );
    }

    fn complaints(&self) -> std::sync::MutexGuard<'_, Complaints> {
        self.complaints.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The partitions the consumer is to read on from the end of, past records the broker
    /// no longer holds.
    pub fn take_seeks(&self) -> Vec<(String, i32)> {
        self.lost().take_seeks()
    }

    fn lost(&self) -> std::sync::MutexGuard<'_, LostRecords> {
        self.lost.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Says that the broker answers again, if a complaint was made.
    pub fn note_success(&self) {
        let mut complaints = self.complaints();
        complaints.refused = None;
        complaints.cause = None;
        if complaints.last.take().is_some() {
            log::info!("Kafka broker at {} is reachable again", self.bootstrap);
        }
    }
}

impl ClientContext for BusContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // librdkafka's own lines are for debugging; people get `error` below.
        use RDKafkaLogLevel::*;
        // An offset reset logged as a warning is one due to an error: the records from
        // where it was to read on are gone.
        if fac == "OFFSET" && matches!(level, Warning) {
            if let Some(reset) = retention::offset_reset(log_message) {
                let mut lost = self.lost();
                lost.reset(reset);
                lost.say(&self.role);
            }
        }
        if matches!(level, Emerg | Alert | Critical | Error) {
            log::debug!(target: "librdkafka", "{fac}: {log_message}");
        } else {
            log::trace!(target: "librdkafka", "{fac}: {log_message}");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Not an error: a partition read to its end (`enable.partition.eof`).
        if let KafkaError::PartitionEOF(partition) = error {
            if let Some(clock) = &self.clock {
                clock.at_end(partition);
            }
            return;
        }
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        if is_refusal(&error) {
            self.complain_refused(reason);
        } else {
            self.complain(reason);
        }
    }

    /// Consumers only (they alone ask for statistics): the records of each topic not yet
    /// handled. Offsets are stored once a record is handled, so the lag against the stored
    /// offset is exactly that.
    fn stats(&self, statistics: Statistics) {
        let mut lost = self.lost();
        for (name, topic) in &statistics.topics {
            for p in topic.partitions.values() {
                let at = retention::Position {
                    next: p.next_offset,
                    queued: p.fetchq_cnt,
                };
                lost.position(name, p.partition, at);
            }
            let lag = topic
                .partitions
                .values()
                // Partition -1 is librdkafka's internal one; -1 lag means not known yet.
                .filter(|p| p.partition >= 0 && p.consumer_lag_stored >= 0)
                .map(|p| p.consumer_lag_stored)
                .sum();
            crate::metrics::set_consumer_lag(name, lag);
            if let Some(clock) = &self.clock {
                let behind = clock.behind();
                crate::metrics::set_consumer_behind(name, behind);
                self.say_if_behind(name, behind, lag);
            }
        }
        lost.say(&self.role);
    }
}

impl ConsumerContext for BusContext {
    /// Revoked partitions stop being held before the group may give them to another member:
    /// from here on, nothing is done for their keys here.
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            let revoked = || partitions.elements().into_iter().map(|p| p.partition());
            if let Some(held) = &self.held {
                held.release(revoked());
            }
            if let Some(clock) = &self.clock {
                clock.forget(revoked());
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match (&self.held, rebalance) {
            (Some(held), Rebalance::Assign(partitions)) => {
                held.take(partitions.elements().iter().map(|p| p.partition()));
            }
            (Some(_), Rebalance::Error(e)) => {
                log::warn!("the consumer group failed to rebalance: {e}");
            }
            _ => {}
        }
    }
}

/// Whether the broker refused who this client says it is (SASL), as opposed to being away.
pub fn is_refusal(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed)
    )
}

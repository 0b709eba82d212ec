//! What the Kafka client says to people: one plain line when the broker is out of reach;
//! and what its statistics say of consumer lag, for the metrics.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::Statistics;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Repeats the same complaint at most this often.
const COMPLAINT_INTERVAL: Duration = Duration::from_secs(10);

/// Shared by every client of one role; clones share the complaint state.
#[derive(Debug, Clone)]
pub struct BusContext {
    bootstrap: Arc<str>,
    role: Arc<str>,
    last_complaint: Arc<Mutex<Option<Instant>>>,
}

impl BusContext {
    pub fn new(bootstrap: &str, role: &str) -> BusContext {
        BusContext {
            bootstrap: bootstrap.into(),
            role: role.into(),
            last_complaint: Arc::new(Mutex::new(None)),
        }
    }

    pub fn role(&self) -> &str {
        &self.role
    }

    /// Says once that the broker is out of reach (again at most every few seconds).
    pub fn complain(&self, reason: &str) {
        let mut last = self
            .last_complaint
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|at| at.elapsed() >= COMPLAINT_INTERVAL) {
            log::warn!(
                "cannot reach the Kafka broker at {} ({reason}); retrying",
                self.bootstrap
            );
            *last = Some(Instant::now());
        }
    }

    /// Says that the broker answers again, if a complaint was made.
    pub fn note_success(&self) {
        let mut last = self
            .last_complaint
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if last.take().is_some() {
            log::info!("Kafka broker at {} is reachable again", self.bootstrap);
        }
    }
}

impl ClientContext for BusContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        // librdkafka's own lines are for debugging; people get `error` below.
        use RDKafkaLogLevel::*;
        if matches!(level, Emerg | Alert | Critical | Error) {
            log::debug!(target: "librdkafka", "{fac}: {log_message}");
        } else {
            log::trace!(target: "librdkafka", "{fac}: {log_message}");
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let _ = error;
        self.complain(reason);
    }

    /// Consumers only (they alone ask for statistics): the records of each topic not yet
    /// handled. Offsets are stored once a record is handled, so the lag against the stored
    /// offset is exactly that.
    fn stats(&self, statistics: Statistics) {
        for (name, topic) in &statistics.topics {
            let lag = topic
                .partitions
                .values()
                // Partition -1 is librdkafka's internal one; -1 lag means not known yet.
                .filter(|p| p.partition >= 0 && p.consumer_lag_stored >= 0)
                .map(|p| p.consumer_lag_stored)
                .sum();
            crate::metrics::set_consumer_lag(name, lag);
        }
    }
}

impl ConsumerContext for BusContext {}

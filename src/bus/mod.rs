//! The Kafka bus: the only module that knows rdkafka.
//!
//! Delivery guarantee: at least once, end to end. Producers are idempotent with `acks=all`
//! and never time a message out; consumers store a record's offset only after the actor that
//! owns its key has handled it (or it has been set aside on the dead-letter topic), so a
//! crash replays what was not yet handled and handlers tolerate duplicates.

mod ask;
mod consumer;
mod context;
mod embedded;
mod producer;
mod tap;
mod topics;

pub use consumer::{Inbound, Rejection, StartAt};
/// Mailbox capacity of the actors Kafka records are handed to.
pub const MAILBOX_CAPACITY: usize = 1 << 16;

pub use embedded::{client_fetch_wait, BrokerCommand, EmbeddedBroker};
pub use producer::Publisher;
pub use tap::{shown_value, BusRecord, Tapped};
pub use topics::Topics;

use crate::configuration::KafkaSettings;
use context::BusContext;
use rdkafka::ClientConfig;

/// Errors of the bus, in words for the person running the role.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("Kafka client error: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("cannot encode a message: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("the embedded broker could not start: {0}")]
    Embedded(String),
}

/// A connection recipe to one Kafka cluster, shared by a role's producer and consumers.
#[derive(Debug, Clone)]
pub struct Bus {
    settings: KafkaSettings,
    topics: Topics,
    context: BusContext,
}

impl Bus {
    /// `role` names this process in broker logs and in our own messages.
    pub fn new(settings: &KafkaSettings, role: &str) -> Bus {
        Bus {
            topics: Topics::new(&settings.topic_prefix),
            context: BusContext::new(&settings.bootstrap, role),
            settings: settings.clone(),
        }
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    pub fn bootstrap(&self) -> &str {
        &self.settings.bootstrap
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.settings.bootstrap)
            .set("client.id", format!("evcharge-{}", self.context.role()))
            .set(
                "reconnect.backoff.max.ms",
                self.settings.retry_backoff.as_millis().max(100).to_string(),
            )
            // Keyed records land where Java clients would put them, so any client agrees.
            .set("partitioner", "murmur2_random");
        config
    }
}

//! The Kafka bus: the only module that knows rdkafka.
//!
//! Delivery guarantee: at least once, end to end. Producers are idempotent with `acks=all`
//! and never time a message out; consumers store a record's offset only after the actor that
//! owns its key has handled it (or it has been set aside on the dead-letter topic), so a
//! crash replays what was not yet handled and handlers tolerate duplicates.

mod ask;
mod broker_limits;
mod consumer;
mod context;
mod embedded;
mod held;
mod ledger;
mod partitioner;
mod producer;
mod proofs;
mod retention;
mod sealed;
mod stream_clock;
mod tap;
mod topics;

pub use consumer::{Inbound, Member, Rejection, StartAt};
pub use held::HeldPartitions;
pub use ledger::OcppLedger;
pub use partitioner::partition_of;
/// Mailbox capacity of the actors Kafka records are handed to.
pub const MAILBOX_CAPACITY: usize = 1 << 16;

pub use embedded::{client_fetch_wait, BrokerCommand, EmbeddedBroker};
pub use producer::Publisher;
pub use sealed::{Replica, SealedRecord, Sealing, ViewPublisher};
pub use stream_clock::StreamClock;
pub use tap::{shown_value, BusRecord, Tapped};
pub use topics::Topics;

use crate::configuration::{KafkaSettings, SecurityProtocol};
use context::BusContext;
use rdkafka::config::RDKafkaLogLevel;
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
    #[error("cannot prove a record: {0}")]
    Unproven(String),
}

/// A connection recipe to one Kafka cluster, shared by a role's producer and consumers.
#[derive(Debug, Clone)]
pub struct Bus {
    settings: KafkaSettings,
    topics: Topics,
    context: BusContext,
    /// The keys this process proves and checks records with (see [`crate::proof`]).
    keys: Option<std::sync::Arc<dyn crate::proof::Keyring>>,
    /// How far this process has read each topic it consumes (see [`StreamClock`]).
    clocks: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, StreamClock>>>,
}

impl Bus {
    /// `role` names this process in broker logs and in our own messages.
    pub fn new(settings: &KafkaSettings, role: &str) -> Bus {
        if settings.security_protocol == SecurityProtocol::Plaintext {
            log::warn!(
                "Kafka at {} in plain text, without authentication: for a one-machine lab only \
                 (set kafka.security_protocol = \"sasl_ssl\" and its credentials)",
                settings.bootstrap
            );
        }
        Bus {
            topics: Topics::new(&settings.topic_prefix),
            context: BusContext::new(settings, role),
            settings: settings.clone(),
            keys: None,
            clocks: Default::default(),
        }
    }

    /// The keys this process proves its records with and checks others' with: without
    /// them, it can neither write nor take a record of a proven topic.
    pub fn with_keys(mut self, keys: std::sync::Arc<dyn crate::proof::Keyring>) -> Bus {
        self.keys = Some(keys);
        self
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// How far this process has read `topic` (its full name), shared with its consumer.
    pub fn stream_clock(&self, topic: &str) -> StreamClock {
        let mut clocks = self
            .clocks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        clocks.entry(topic.to_owned()).or_default().clone()
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
            .set("partitioner", "murmur2_random")
            .set(
                "security.protocol",
                self.settings.security_protocol.as_str(),
            );
        // librdkafka's warnings reach `BusContext` whatever this process logs: one of them
        // is how it learns records were lost (`retention`). Lower levels follow `log`.
        if (config.log_level as i32) < (RDKafkaLogLevel::Warning as i32) {
            config.set_log_level(RDKafkaLogLevel::Warning);
        }
        let security = &self.settings;
        if let Some(mechanism) = security.sasl_mechanism {
            config.set("sasl.mechanism", mechanism.as_str());
        }
        if let Some(username) = &security.sasl_username {
            config.set("sasl.username", username);
        }
        if let Some(password) = &security.sasl_password {
            config.set("sasl.password", password.expose());
        }
        if let Some(ca) = &security.ssl_ca_location {
            config.set("ssl.ca.location", ca.display().to_string());
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::SaslMechanism;
    use crate::messages::Secret;

    /// librdkafka refuses a client whose security it was built without (OpenSSL for TLS and
    /// SCRAM): creating one needs no broker, so this shows the build has them.
    #[test]
    fn clients_take_tls_and_sasl_scram() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        std::fs::write(&ca, pair.cert.pem()).unwrap();
        for mechanism in [
            SaslMechanism::ScramSha512,
            SaslMechanism::ScramSha256,
            SaslMechanism::Plain,
        ] {
            let settings = KafkaSettings {
                bootstrap: "127.0.0.1:1".into(),
                security_protocol: SecurityProtocol::SaslSsl,
                sasl_mechanism: Some(mechanism),
                sasl_username: Some("evcharge".into()),
                sasl_password: Some(Secret::new("secret")),
                ssl_ca_location: Some(ca.clone()),
                ..KafkaSettings::default()
            };
            let bus = Bus::new(&settings, "test");
            let producer = bus.publisher();
            assert!(producer.is_ok(), "{mechanism:?}: {:?}", producer.err());
        }
    }
}

//! The embedded broker: librdkafka's mock cluster, a real Kafka-protocol broker on loopback,
//! in memory, living as long as its owner. For one machine with no Kafka installed: plain
//! text, no authentication.

use super::{BusError, Topics};
use crate::configuration::KafkaSettings;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

/// What the broker's owner can be asked to do to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerCommand {
    /// Drop every connection and refuse new ones; keep the data.
    Outage,
    /// Accept connections again.
    Recover,
}

/// A running embedded broker with every topic created.
pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("bootstrap", &self.bootstrap())
            .finish()
    }
}

impl EmbeddedBroker {
    /// Starts one broker and creates our topics with the configured partitions.
    pub fn start(settings: &KafkaSettings) -> Result<EmbeddedBroker, BusError> {
        let cluster = MockCluster::new(1).map_err(|e| BusError::Embedded(e.to_string()))?;
        for topic in Topics::new(&settings.topic_prefix).all() {
            cluster
                .create_topic(topic, settings.partitions, 1)
                .map_err(|e| BusError::Embedded(format!("cannot create topic {topic}: {e}")))?;
        }
        log::warn!(
            "the embedded Kafka broker at {} serves plain text without authentication: \
             for a one-machine lab only",
            cluster.bootstrap_servers()
        );
        Ok(EmbeddedBroker { cluster })
    }

    /// Simulates the broker going away (every connection dropped, new ones refused, data
    /// kept) or coming back, and says so.
    pub fn obey(&self, command: BrokerCommand) {
        let all = -1;
        let done = match command {
            BrokerCommand::Recover => self.cluster.broker_up(all),
            BrokerCommand::Outage => self.cluster.broker_down(all),
        };
        match (done, command) {
            (Ok(()), BrokerCommand::Recover) => {
                log::warn!("broker back: accepting connections again");
            }
            (Ok(()), BrokerCommand::Outage) => {
                log::warn!("broker outage: every connection dropped, new ones refused");
            }
            (Err(e), _) => log::error!("cannot change the broker's reachability: {e}"),
        }
    }

    /// The address clients connect to.
    pub fn bootstrap(&self) -> String {
        self.cluster.bootstrap_servers()
    }
}

/// The setting clients of the embedded broker get, as an environment variable, unless the
/// user set it: this broker holds a fetch that finds no record for the whole fetch wait
/// (Kafka answers as soon as records arrive), so a long wait would delay every hop.
pub fn client_fetch_wait() -> Option<(&'static str, &'static str)> {
    const VARIABLE: &str = "EVCHARGE_KAFKA__FETCH_WAIT";
    std::env::var_os(VARIABLE)
        .is_none()
        .then_some((VARIABLE, "5ms"))
}

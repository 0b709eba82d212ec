//! The embedded broker: librdkafka's mock cluster, a real Kafka-protocol broker on loopback,
//! in memory, living as long as its owner. For one machine with no Kafka installed: plain
//! text, no authentication.

use super::{BusError, Topics};
use crate::configuration::KafkaSettings;
use crate::domain::MAX_EMBEDDED_BROKERS;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

/// How long a group's first members wait for others before they are assigned (Kafka's
/// `group.initial.rebalance.delay.ms`, 3 s there and in the mock). The mock times out a
/// member still waiting in its JoinGroup once its session is over, and that member's
/// connection then stays blocked: with the 3 s sessions centrals take here, a central
/// (re)joining an empty group was at times never assigned. Kept well inside any session.
const INITIAL_REBALANCE_DELAY: Duration = Duration::from_secs(1);

/// What the broker's owner can be asked to do to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerCommand {
    /// Drop every connection and refuse new ones; keep the data.
    Outage,
    /// Accept connections again.
    Recover,
    /// Take one broker of the cluster down (its partitions led by the others meanwhile).
    Down(i32),
    /// Bring that broker back (its partitions led by it again).
    Up(i32),
}

/// A running embedded broker (or cluster of brokers) with every topic created.
pub struct EmbeddedBroker {
    /// The client the mock cluster belongs to (made with `test.mock.num.brokers`): the
    /// cluster lives as long as it does. Threaded, so that its own log queue is read.
    owner: ThreadedProducer<DefaultProducerContext>,
    topics: Vec<String>,
    partitions: i32,
    brokers: i32,
    /// The brokers taken down.
    down: Mutex<BTreeSet<i32>>,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("bootstrap", &self.bootstrap())
            .finish()
    }
}

impl EmbeddedBroker {
    /// Starts `brokers` brokers (1 to 5) and creates our topics with the configured
    /// partitions, replicated on up to three brokers, their leaders spread over them.
    pub fn start(settings: &KafkaSettings, brokers: i32) -> Result<EmbeddedBroker, BusError> {
        if !(1..=MAX_EMBEDDED_BROKERS).contains(&brokers) {
            return Err(BusError::Embedded(format!(
                "the embedded cluster runs 1 to {MAX_EMBEDDED_BROKERS} brokers, not {brokers}"
            )));
        }
        let owner: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
            .set("test.mock.num.brokers", brokers.to_string())
            // Not its own notices ("mock cluster enabled"): this module says what it serves.
            .set("log_level", "4")
            .set_log_level(rdkafka::config::RDKafkaLogLevel::Warning)
            .create()
            .map_err(|e| BusError::Embedded(e.to_string()))?;
        set_initial_rebalance_delay(&owner, INITIAL_REBALANCE_DELAY)?;
        let cluster = mock_cluster(&owner)?;
        let topics: Vec<String> = Topics::new(&settings.topic_prefix)
            .all()
            .into_iter()
            .map(str::to_owned)
            .collect();
        for topic in &topics {
            cluster
                .create_topic(topic, settings.partitions, brokers.min(3))
                .map_err(|e| BusError::Embedded(format!("cannot create topic {topic}: {e}")))?;
        }
        log::warn!(
            "the embedded Kafka broker at {} serves plain text without authentication: \
             for a one-machine lab only",
            cluster.bootstrap_servers()
        );
        drop(cluster);
        let broker = EmbeddedBroker {
            owner,
            topics,
            partitions: settings.partitions,
            brokers,
            down: Mutex::new(BTreeSet::new()),
        };
        broker.elect_leaders();
        Ok(broker)
    }

    /// How many brokers the cluster has (numbered from 1).
    pub fn brokers(&self) -> i32 {
        self.brokers
    }

    /// Simulates the broker going away (every connection dropped, new ones refused, data
    /// kept) or coming back, or one broker of the cluster doing so, and says so.
    pub fn obey(&self, command: BrokerCommand) {
        let all = -1;
        let done = match command {
            BrokerCommand::Recover => self.cluster().broker_up(all),
            BrokerCommand::Outage => self.cluster().broker_down(all),
            BrokerCommand::Down(id) | BrokerCommand::Up(id)
                if !(1..=self.brokers).contains(&id) =>
            {
                return log::error!(
                    "no broker {id}: this cluster has brokers 1 to {}",
                    self.brokers
                );
            }
            BrokerCommand::Down(id) => {
                let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
                if down.len() + 1 >= self.brokers as usize && !down.contains(&id) {
                    return log::error!(
                        "broker {id} stays up: it is the last one (an outage takes them all)"
                    );
                }
                down.insert(id);
                drop(down);
                self.cluster().broker_down(id)
            }
            BrokerCommand::Up(id) => {
                self.down
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                self.cluster().broker_up(id)
            }
        };
        if let Err(e) = done {
            return log::error!("cannot change the broker's reachability: {e}");
        }
        match command {
            BrokerCommand::Recover => log::warn!("broker back: accepting connections again"),
            BrokerCommand::Outage => {
                log::warn!("broker outage: every connection dropped, new ones refused");
            }
            BrokerCommand::Down(id) => {
                let away = self.elect_leaders();
                log::warn!(
                    "broker {id} down: {away} partitions of each topic led by another broker meanwhile"
                );
            }
            BrokerCommand::Up(id) => {
                self.elect_leaders();
                log::warn!("broker {id} back: it leads its partitions again");
            }
        }
    }

    /// Gives each partition a leader among the brokers up: the first of its replicas, as
    /// Kafka's controller does (the mock cluster never elects one itself). Partition `p`'s
    /// replicas are brokers `p % n + 1` and the next ones. Returns how many partitions (of
    /// each topic) are led by another broker than their first replica.
    fn elect_leaders(&self) -> usize {
        if self.brokers == 1 {
            return 0;
        }
        let down = self.down.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let replicas = self.brokers.min(3);
        let mut away = 0;
        for p in 0..self.partitions {
            let preferred = p % self.brokers;
            let leader = (0..replicas)
                .map(|r| (preferred + r) % self.brokers + 1)
                .find(|b| !down.contains(b));
            away += usize::from(leader != Some(preferred + 1));
            for topic in &self.topics {
                if let Err(e) = self.cluster().partition_leader(topic, p, leader) {
                    log::error!("cannot set the leader of {topic}/{p}: {e}");
                }
            }
        }
        away
    }

    /// The address clients connect to.
    pub fn bootstrap(&self) -> String {
        self.cluster().bootstrap_servers()
    }

    fn cluster(&self) -> MockCluster<'_, DefaultProducerContext> {
        mock_cluster(&self.owner).expect("the mock cluster lives as long as its owner")
    }
}

fn mock_cluster(
    owner: &ThreadedProducer<DefaultProducerContext>,
) -> Result<MockCluster<'_, DefaultProducerContext>, BusError> {
    owner
        .client()
        .mock_cluster()
        .ok_or_else(|| BusError::Embedded("librdkafka made no mock cluster".into()))
}

/// The one setting of the mock cluster rust-rdkafka does not wrap, hence the crate's only
/// unsafe code: two calls into librdkafka.
#[allow(unsafe_code)]
fn set_initial_rebalance_delay(
    owner: &ThreadedProducer<DefaultProducerContext>,
    delay: Duration,
) -> Result<(), BusError> {
    let client = owner.client().native_ptr();
    // SAFETY: `client` is a live handle, borrowed from `owner` for this call; the cluster it
    // returns is owned by that handle and freed only with it. The setter takes the
    // cluster's lock and stores an integer.
    let cluster = unsafe { rdkafka::bindings::rd_kafka_handle_mock_cluster(client) };
    if cluster.is_null() {
        return Err(BusError::Embedded("librdkafka made no mock cluster".into()));
    }
    let millis = i32::try_from(delay.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: as above; `cluster` is not null.
    unsafe { rdkafka::bindings::rd_kafka_mock_group_initial_rebalance_delay_ms(cluster, millis) };
    Ok(())
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

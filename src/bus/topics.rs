//! Topic names, and their creation at start-up.

use super::context::BusContext;
use super::{Bus, BusError};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use std::sync::Arc;
use std::time::Duration;

/// The names of every topic, with the configured prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// Driver → central, key = driver id.
    pub driver_requests: String,
    /// Central → driver, key = driver id.
    pub driver_updates: String,
    /// Central → engine, key = CP id.
    pub cp_commands: String,
    /// Engine → central, key = CP id.
    pub cp_events: String,
    /// Records set aside, with the reason.
    pub dead_letter: String,
    /// Central → centrals, compacted, key = tree/key: every write to the centrals' records,
    /// sealed with the cluster key.
    pub changelog: String,
    /// Central → centrals, compacted, key = CP id: each CP's latest view from its owner,
    /// sealed with the cluster key.
    pub views: String,
    /// Gateways' ledger of OCPP transactions, key = CP id, written to partition 0 alone:
    /// a record's offset there is its transaction's id, unique across every gateway.
    pub ocpp_transactions: String,
}

impl Topics {
    pub fn new(prefix: &str) -> Topics {
        Topics {
            driver_requests: format!("{prefix}driver.requests"),
            driver_updates: format!("{prefix}driver.updates"),
            cp_commands: format!("{prefix}cp.commands"),
            cp_events: format!("{prefix}cp.events"),
            dead_letter: format!("{prefix}deadletter"),
            changelog: format!("{prefix}central.changelog"),
            views: format!("{prefix}central.views"),
            ocpp_transactions: format!("{prefix}ocpp.transactions"),
        }
    }

    pub fn all(&self) -> [&str; 8] {
        [
            &self.driver_requests,
            &self.driver_updates,
            &self.cp_commands,
            &self.cp_events,
            &self.dead_letter,
            &self.changelog,
            &self.views,
            &self.ocpp_transactions,
        ]
    }

    /// The topics whose records people can read (the others are sealed).
    pub fn readable(&self) -> [&str; 6] {
        [
            &self.driver_requests,
            &self.driver_updates,
            &self.cp_commands,
            &self.cp_events,
            &self.dead_letter,
            &self.ocpp_transactions,
        ]
    }

    /// Topics that keep each key's last record (the centrals' state) rather than all.
    pub fn is_compacted(&self, topic: &str) -> bool {
        topic == self.changelog || topic == self.views
    }
}

impl Bus {
    /// Makes sure every topic exists, creating what is missing with the configured partitions
    /// and replication. Waits, saying so, until the broker answers: start order never matters.
    pub async fn ensure_topics(&self) -> Result<(), BusError> {
        // Our context: a broker refusing this role's credentials is said so, once.
        let admin: Arc<AdminClient<BusContext>> = Arc::new(
            self.client_config()
                .set("log_level", "0")
                .create_with_context(self.context.clone())?,
        );
        loop {
            match self.try_create_topics(&admin).await {
                Ok(()) => {
                    self.context.note_success();
                    return Ok(());
                }
                Err(why) => {
                    self.context.complain(&why);
                    tokio::time::sleep(self.settings.retry_backoff).await;
                }
            }
        }
    }

    async fn try_create_topics(&self, admin: &Arc<AdminClient<BusContext>>) -> Result<(), String> {
        // Usually they exist already; asking first spares a slow CreateTopics (the embedded
        // broker does not implement it and answers only when the request times out).
        if self.check_topics_exist(admin).await.is_ok() {
            return Ok(());
        }
        let new_topics: Vec<NewTopic> = self
            .topics
            .all()
            .into_iter()
            .map(|name| {
                let topic = NewTopic::new(
                    name,
                    self.settings.partitions,
                    TopicReplication::Fixed(self.settings.replication),
                );
                if self.topics.is_compacted(name) {
                    topic.set("cleanup.policy", "compact")
                } else {
                    topic
                }
            })
            .collect();
        let options = AdminOptions::new()
            .request_timeout(Some(Duration::from_secs(5)))
            .operation_timeout(Some(Duration::from_secs(5)));
        let missing = match admin.create_topics(&new_topics, &options).await {
            Ok(results) => results
                .into_iter()
                .filter_map(|r| match r {
                    Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => None,
                    Err((name, code)) => Some((name, code.to_string())),
                })
                .collect::<Vec<_>>(),
            // Brokers without the admin API (the embedded one) make topics on first use.
            Err(KafkaError::AdminOp(code)) => vec![(String::new(), code.to_string())],
            Err(other) => return Err(other.to_string()),
        };
        if missing.is_empty() {
            return Ok(());
        }
        self.check_topics_exist(admin)
            .await
            .map_err(|e| format!("{e}; topic creation said {:?}", missing))
    }

    /// Off the actor thread: a metadata request blocks for up to its timeout when the broker
    /// does not answer (or refuses this role), and the role's actors must go on meanwhile.
    async fn check_topics_exist(&self, admin: &Arc<AdminClient<BusContext>>) -> Result<(), String> {
        let admin = admin.clone();
        let topics: Vec<String> = self.topics.all().iter().map(|t| t.to_string()).collect();
        tokio::task::spawn_blocking(move || topics_exist(&admin, &topics))
            .await
            .map_err(|e| e.to_string())?
    }
}

impl Bus {
    /// How many partitions `topic` has, asking the broker until it answers.
    pub async fn partition_count(&self, topic: &str) -> Result<i32, BusError> {
        let admin: Arc<AdminClient<BusContext>> = Arc::new(
            self.client_config()
                .set("log_level", "0")
                .create_with_context(self.context.clone())?,
        );
        loop {
            let (probe, name) = (admin.clone(), topic.to_owned());
            let found = tokio::task::spawn_blocking(move || {
                probe
                    .inner()
                    .fetch_metadata(Some(&name), Duration::from_secs(5))
                    .map(|m| {
                        m.topics()
                            .iter()
                            .filter(|t| t.name() == name)
                            .map(|t| t.partitions().len() as i32)
                            .sum::<i32>()
                    })
            })
            .await
            .map_err(|e| BusError::Embedded(e.to_string()))?;
            match found {
                Ok(count) if count > 0 => return Ok(count),
                Ok(_) => self
                    .context
                    .complain(&format!("topic {topic} has no partitions")),
                Err(e) => self.context.complain(&e.to_string()),
            }
            tokio::time::sleep(self.settings.retry_backoff).await;
        }
    }
}

fn topics_exist(admin: &AdminClient<BusContext>, topics: &[String]) -> Result<(), String> {
    for name in topics {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(name), Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        let ready = metadata
            .topics()
            .iter()
            .any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty());
        if !ready {
            return Err(format!("topic {name} does not exist"));
        }
    }
    Ok(())
}

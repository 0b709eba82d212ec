//! A read-only view of every topic, for the console: what the seeds needed a separate Kafka
//! UI for. It joins no group and commits nothing, so it never disturbs the real consumers.

use super::context::BusContext;
use super::{Bus, BusError};
use actix::{Message, Recipient};
use chrono::{DateTime, Utc};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use std::time::Duration;

/// Values longer than this are cut, so one odd record cannot flood a console.
const VALUE_SHOWN: usize = 2048;

/// How often the view checks whether anyone is watching.
const WATCH_CHECK: Duration = Duration::from_millis(200);

/// A record seen on one of the network's Kafka topics.
#[derive(Debug, Clone, Serialize)]
pub struct BusRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub at: DateTime<Utc>,
    /// The value as text (JSON when it parses), secrets redacted, long values cut.
    pub value: String,
}

/// Records seen on Kafka by the central's tap.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Tapped(pub BusRecord);

impl Bus {
    /// Follows every topic from its current end while `watched` says someone looks, handing
    /// each record to `to`; nobody watching, it reads nothing (at thousands of records a
    /// second, reading for nobody cost the central and the broker dearly). Runs for as long
    /// as the process does.
    pub async fn tap(
        &self,
        to: Recipient<Tapped>,
        watched: impl Fn() -> bool,
    ) -> Result<(), BusError> {
        loop {
            while !watched() {
                tokio::time::sleep(WATCH_CHECK).await;
            }
            let consumer = self.tap_consumer().await?;
            let mut check = tokio::time::interval(WATCH_CHECK);
            loop {
                tokio::select! {
                    received = consumer.recv() => match received {
                        Ok(record) => {
                            to.do_send(Tapped(seen(&record)));
                        }
                        Err(e) => log::debug!("topic view: {e}"),
                    },
                    _ = check.tick() => if !watched() {
                        break;
                    },
                }
            }
        }
    }

    /// A consumer of every partition of every topic from its end, in no group.
    async fn tap_consumer(&self) -> Result<std::sync::Arc<StreamConsumer<BusContext>>, BusError> {
        let consumer: StreamConsumer<BusContext> = self
            .client_config()
            // Never joined nor committed: partitions are assigned below.
            .set("group.id", format!("evcharge-tap-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "fetch.wait.max.ms",
                self.settings.fetch_wait.as_millis().max(1).to_string(),
            )
            .create_with_context(self.context.clone())?;
        let topics: Vec<String> = self
            .topics
            .readable()
            .iter()
            .map(|t| t.to_string())
            .collect();
        let consumer = std::sync::Arc::new(consumer);
        let assignment = {
            let consumer = consumer.clone();
            tokio::task::spawn_blocking(move || every_partition(&consumer, &topics))
                .await
                .map_err(|e| BusError::Embedded(e.to_string()))??
        };
        consumer.assign(&assignment)?;
        Ok(consumer)
    }
}

/// A record as the topic view shows it.
fn seen(record: &rdkafka::message::BorrowedMessage<'_>) -> BusRecord {
    BusRecord {
        topic: record.topic().to_owned(),
        partition: record.partition(),
        offset: record.offset(),
        key: super::consumer::key_text(record),
        at: record
            .timestamp()
            .to_millis()
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or_else(Utc::now),
        value: record.payload().map(shown_value).unwrap_or_default(),
    }
}

/// Every partition of `topics`, from its end (what is written from now on).
fn every_partition(
    consumer: &StreamConsumer<BusContext>,
    topics: &[String],
) -> Result<TopicPartitionList, BusError> {
    let mut list = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
        for partition in metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions())
        {
            list.add_partition_offset(topic, partition.id(), Offset::End)?;
        }
    }
    Ok(list)
}

/// The value as a person should see it: secrets redacted, long values cut.
pub fn shown_value(payload: &[u8]) -> String {
    let mut text = super::consumer::redacted_payload(payload);
    if text.len() > VALUE_SHOWN {
        let mut cut = VALUE_SHOWN;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_long_values_cut() {
        let shown =
            shown_value(br#"{"type":"sign_in","password":"hunter22","inner":{"password":"x"}}"#);
        assert!(!shown.contains("hunter22"), "{shown}");
        assert!(!shown.contains("\"x\""), "{shown}");
        assert!(shown.contains("sign_in"));
        let long = "é".repeat(5000);
        let shown = shown_value(long.as_bytes());
        assert!(shown.len() <= VALUE_SHOWN + '…'.len_utf8());
        assert_eq!(shown_value(b"not json"), "not json");
    }
}

//! One question, one answer, without joining a consumer group: for checks a process makes
//! before it joins its own group (joining alone would rebalance, and so disturb, a live twin).

use super::context::BusContext;
use super::{Bus, BusError};
use crate::messages::Envelope;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

impl Bus {
    /// Sends a question (the `send` future), then waits up to `timeout` for a message on
    /// `topic` that `is_answer` accepts. Reading starts at each partition's end as it was
    /// before the question left, so the answer cannot be missed. `None` when none came.
    pub async fn ask<T, S, P>(
        &self,
        topic: &str,
        send: S,
        is_answer: P,
        timeout: Duration,
    ) -> Result<Option<T>, BusError>
    where
        T: DeserializeOwned,
        S: Future<Output = Result<(), BusError>>,
        P: Fn(&T) -> bool,
    {
        let consumer: StreamConsumer<BusContext> = self
            .client_config()
            // Never joined nor committed (offsets are assigned below); unique, so that no
            // broker ties two questions together.
            .set("group.id", format!("evcharge-ask-{}", uuid::Uuid::new_v4()))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "fetch.wait.max.ms",
                self.settings.fetch_wait.as_millis().max(1).to_string(),
            )
            .create_with_context(self.context.clone())?;
        let consumer = Arc::new(consumer);
        let ends = {
            let consumer = consumer.clone();
            let topic = topic.to_owned();
            tokio::task::spawn_blocking(move || current_ends(&consumer, &topic, timeout))
                .await
                .map_err(|e| BusError::Embedded(e.to_string()))??
        };
        consumer.assign(&ends)?;
        let proven = self.topics.proven(topic);
        send.await?;
        let answer = async {
            loop {
                let Ok(record) = consumer.recv().await else {
                    continue;
                };
                let Some(payload) = record.payload() else {
                    continue;
                };
                // An answer that makes this process act (an engine told its id is in use)
                // counts only when proven; anything else is not the answer.
                if let Some(proven) = proven {
                    let key = super::consumer::key_text(&record).unwrap_or_default();
                    let verdict = super::proofs::check(self.keys.as_ref(), proven, &key, &record);
                    if verdict != super::proofs::Verdict::Proven {
                        continue;
                    }
                }
                if let Ok(envelope) = serde_json::from_slice::<Envelope<T>>(payload) {
                    if is_answer(&envelope.body) {
                        return envelope.body;
                    }
                }
            }
        };
        Ok(tokio::time::timeout(timeout, answer).await.ok())
    }
}

/// Every partition of `topic` at its current high watermark.
fn current_ends(
    consumer: &StreamConsumer<BusContext>,
    topic: &str,
    timeout: Duration,
) -> Result<TopicPartitionList, BusError> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let mut ends = TopicPartitionList::new();
    for partition in metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions())
    {
        let (_, high) = consumer.fetch_watermarks(topic, partition.id(), timeout)?;
        ends.add_partition_offset(topic, partition.id(), Offset::Offset(high))?;
    }
    Ok(ends)
}

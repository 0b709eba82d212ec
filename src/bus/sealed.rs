//! The centrals' own topics: the changelog of their records and the CPs' views. Only
//! centrals write them, each record sealed with the cluster key (so nobody else can read or
//! forge one) and marked with the process that wrote it. Every central follows every
//! partition of both, in no consumer group: each holds the whole network.

use super::context::BusContext;
use super::{Bus, BusError};
use crate::proof::ClusterKey;
use crate::store::changelog::{Change, Changes};
use futures_util::stream::FuturesOrdered;
use futures_util::StreamExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The header naming the process (a random id per start) that wrote a sealed record.
const ORIGIN: &str = "evcharge-origin";
/// Changes shipped at once, awaiting the broker's acknowledgement.
const SHIPPING: usize = 512;

/// What a central needs to write and read the sealed topics.
#[derive(Clone)]
pub struct Sealing {
    pub key: ClusterKey,
    /// This process: its own records, already applied, are skipped when read back.
    pub origin: uuid::Uuid,
}

/// A sealed record read back: whose, where, and what it holds.
#[derive(Debug, Clone)]
pub struct SealedRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    /// This process wrote it.
    pub own: bool,
    /// `Err` with the reason when it cannot be opened (not sealed with our key).
    pub value: Result<Vec<u8>, String>,
}

impl Bus {
    /// Ships every change of `changes`' outbox to the changelog, in order, for as long as
    /// the process runs; a change leaves the outbox once the broker has it.
    pub fn ship_changes(&self, changes: Changes, sealing: Sealing) -> Result<(), BusError> {
        let producer: FutureProducer<BusContext> = self.sealed_producer()?;
        let topic = self.topics.changelog.clone();
        changes.start_shipping();
        actix::spawn(async move {
            let mut after = 0;
            let mut in_flight = FuturesOrdered::new();
            loop {
                let room = SHIPPING - in_flight.len();
                let pending = if room > 0 {
                    changes.pending(after, room).unwrap_or_else(|e| {
                        log::error!("cannot read the changelog's outbox: {e}");
                        Vec::new()
                    })
                } else {
                    Vec::new()
                };
                for (seq, change) in pending {
                    after = seq;
                    in_flight.push_back(ship(&producer, &topic, &sealing, seq, change));
                }
                if in_flight.is_empty() {
                    changes.written().await;
                    continue;
                }
                tokio::select! {
                    Some(shipped) = in_flight.next() => {
                        if let Err(e) = changes.shipped(shipped) {
                            log::error!("cannot clear a shipped change from the outbox: {e}");
                        }
                    }
                    _ = changes.written(), if in_flight.len() < SHIPPING => {}
                }
            }
        });
        Ok(())
    }

    /// Follows the changelog from where this database left it, applying every change other
    /// processes made; `caught_up` on the result waits until all written so far is applied.
    pub async fn follow_changes(
        &self,
        changes: Changes,
        sealing: Sealing,
    ) -> Result<Replica, BusError> {
        let topic = self.topics.changelog.clone();
        let positions = changes.clone();
        let (consumer, partitions) = self
            .sealed_consumer(&topic, move |p| {
                Offset::Offset(positions.position(p).unwrap_or_default())
            })
            .await?;
        let start: BTreeMap<i32, i64> = partitions
            .iter()
            .map(|p| (*p, changes.position(*p).unwrap_or_default()))
            .collect();
        let (applied, seen) = watch::channel(start);
        let reader = consumer.clone();
        let name = topic.clone();
        actix::spawn(async move {
            let mut refused = Refusals::default();
            loop {
                let record = match reader.recv().await {
                    Ok(record) => open(&record, &name, &sealing),
                    Err(e) => {
                        log::debug!("changelog: {e}");
                        continue;
                    }
                };
                let outcome = match (&record.value, record.own) {
                    (_, true) => changes
                        .set_position(record.partition, record.offset + 1)
                        .map_err(|e| e.to_string()),
                    (Ok(value), false) => match serde_json::from_slice::<Change>(value) {
                        Ok(change) if change.record_key() == record.key => {
                            changes.apply(&change, record.partition, record.offset)
                        }
                        Ok(_) => Err("its key is not the change's".into()),
                        Err(e) => Err(format!("not a change: {e}")),
                    },
                    (Err(why), false) => Err(why.clone()),
                };
                if let Err(why) = outcome {
                    refused.note(&record, &why);
                    let _ = changes.set_position(record.partition, record.offset + 1);
                }
                applied.send_modify(|at| {
                    at.insert(record.partition, record.offset + 1);
                });
            }
        });
        Ok(Replica {
            consumer,
            topic,
            seen,
        })
    }

    /// Follows `views` from its start, handing each record to `sink`.
    pub async fn follow_views(
        &self,
        sealing: Sealing,
        sink: impl Fn(SealedRecord) + 'static,
    ) -> Result<(), BusError> {
        let topic = self.topics.views.clone();
        let (consumer, _) = self.sealed_consumer(&topic, |_| Offset::Beginning).await?;
        actix::spawn(async move {
            loop {
                match consumer.recv().await {
                    Ok(record) => sink(open(&record, &topic, &sealing)),
                    Err(e) => log::debug!("views: {e}"),
                }
            }
        });
        Ok(())
    }

    fn sealed_producer(&self) -> Result<FutureProducer<BusContext>, BusError> {
        Ok(self
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "0")
            .set("linger.ms", self.settings.linger.as_millis().to_string())
            .create_with_context(self.context.clone())?)
    }

    /// A consumer of every partition of `topic`, each from `from(partition)`, in no group.
    async fn sealed_consumer(
        &self,
        topic: &str,
        from: impl Fn(i32) -> Offset + Send + 'static,
    ) -> Result<(Arc<StreamConsumer<BusContext>>, Vec<i32>), BusError> {
        let consumer: StreamConsumer<BusContext> = self
            .client_config()
            .set(
                "group.id",
                format!("evcharge-sealed-{}", uuid::Uuid::new_v4()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "fetch.wait.max.ms",
                self.settings.fetch_wait.as_millis().max(1).to_string(),
            )
            .create_with_context(self.context.clone())?;
        let consumer = Arc::new(consumer);
        let partitions = loop {
            let (probe, name) = (consumer.clone(), topic.to_owned());
            let found = tokio::task::spawn_blocking(move || partitions_of(&probe, &name))
                .await
                .map_err(|e| BusError::Embedded(e.to_string()))?;
            match found {
                Ok(partitions) if !partitions.is_empty() => break partitions,
                Ok(_) => self
                    .context
                    .complain(&format!("topic {topic} has no partitions")),
                Err(e) => self.context.complain(&e.to_string()),
            }
            tokio::time::sleep(self.settings.retry_backoff).await;
        };
        let mut list = TopicPartitionList::new();
        for partition in &partitions {
            list.add_partition_offset(topic, *partition, from(*partition))?;
        }
        consumer.assign(&list)?;
        Ok((consumer, partitions))
    }
}

/// Records set aside on a sealed topic, said without flooding the log: the first one, then
/// at most one line per [`REFUSALS_SAID`] with how many more.
#[derive(Default)]
struct Refusals {
    unsaid: u64,
    last: Option<std::time::Instant>,
}

const REFUSALS_SAID: Duration = Duration::from_secs(10);

impl Refusals {
    fn note(&mut self, record: &SealedRecord, why: &str) {
        self.unsaid += 1;
        if self.last.is_some_and(|at| at.elapsed() < REFUSALS_SAID) {
            return;
        }
        let more = match self.unsaid - 1 {
            0 => String::new(),
            n => format!(" ({n} more since the last such line)"),
        };
        log::warn!(
            "changelog record {}@{} (key {}) set aside: {why}{more}",
            record.partition,
            record.offset,
            crate::messages::shown(&record.key)
        );
        self.unsaid = 0;
        self.last = Some(std::time::Instant::now());
    }
}

/// Sends each CP's view to the views topic, sealed, in the background.
#[derive(Clone)]
pub struct ViewPublisher {
    producer: FutureProducer<BusContext>,
    topic: Arc<str>,
    sealing: Sealing,
}

impl Bus {
    pub fn view_publisher(&self, sealing: Sealing) -> Result<ViewPublisher, BusError> {
        Ok(ViewPublisher {
            producer: self.sealed_producer()?,
            topic: self.topics.views.as_str().into(),
            sealing,
        })
    }
}

impl ViewPublisher {
    /// Publishes `value` as the latest view of `cp_id`; a failure is logged.
    pub fn publish(&self, cp_id: &str, value: &[u8]) {
        let sealed = self.sealing.key.seal(VIEWS, cp_id, value);
        let (producer, topic, key) = (self.producer.clone(), self.topic.clone(), cp_id.to_owned());
        let origin = self.sealing.origin.to_string();
        actix::spawn(async move {
            let record = FutureRecord::to(&topic).key(&key).payload(&sealed).headers(
                OwnedHeaders::new().insert(Header {
                    key: ORIGIN,
                    value: Some(origin.as_bytes()),
                }),
            );
            if let Err((e, _)) = producer.send(record, Timeout::Never).await {
                log::error!("cannot publish the view of {key}: {e}");
            }
        });
    }
}

/// Ships one change, sealed; resolves with its sequence number once the broker has it.
async fn ship(
    producer: &FutureProducer<BusContext>,
    topic: &str,
    sealing: &Sealing,
    seq: u64,
    change: Change,
) -> u64 {
    let key = change.record_key();
    let plain = serde_json::to_vec(&change).expect("changes always serialise");
    let sealed = sealing.key.seal(CHANGELOG, &key, &plain);
    let origin = sealing.origin.to_string();
    loop {
        let record =
            FutureRecord::to(topic)
                .key(&key)
                .payload(&sealed)
                .headers(OwnedHeaders::new().insert(Header {
                    key: ORIGIN,
                    value: Some(origin.as_bytes()),
                }));
        match producer.send(record, Timeout::Never).await {
            Ok(_) => return seq,
            // Never timed out: only a fatal producer error gets here. Said, then again.
            Err((e, _)) => {
                log::error!("cannot write a change to the changelog: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The changelog topic's name in seals (without the configured prefix).
const CHANGELOG: &str = "central.changelog";
/// The views topic's name in seals.
pub const VIEWS: &str = "central.views";

/// Opens a record of a sealed topic.
fn open(record: &impl Message, topic: &str, sealing: &Sealing) -> SealedRecord {
    let key = super::consumer::key_text(record).unwrap_or_default();
    let own = record
        .headers()
        .and_then(|h| h.iter().find(|h| h.key == ORIGIN).and_then(|h| h.value))
        .is_some_and(|origin| origin == sealing.origin.to_string().as_bytes());
    let name = if topic.ends_with(CHANGELOG) {
        CHANGELOG
    } else {
        VIEWS
    };
    let value = match record.payload() {
        None => Err("record has no value".to_string()),
        Some(sealed) => sealing
            .key
            .open(name, &key, sealed)
            .ok_or_else(|| "not sealed with this network's cluster key".to_string()),
    };
    SealedRecord {
        partition: record.partition(),
        offset: record.offset(),
        key,
        own,
        value,
    }
}

fn partitions_of(consumer: &StreamConsumer<BusContext>, topic: &str) -> Result<Vec<i32>, BusError> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}

/// This central's copy of the changelog, as it follows it.
pub struct Replica {
    consumer: Arc<StreamConsumer<BusContext>>,
    topic: String,
    /// The offset after the last record read, per partition.
    seen: watch::Receiver<BTreeMap<i32, i64>>,
}

impl Replica {
    /// Resolves once every change written to the changelog before the call is applied here
    /// (or was this process's own): what an instance waits for before it runs CPs it was
    /// just given, or serves with an empty database.
    pub async fn caught_up(&self) -> Result<(), BusError> {
        let ends = {
            let consumer = self.consumer.clone();
            let topic = self.topic.clone();
            let partitions: Vec<i32> = self.seen.borrow().keys().copied().collect();
            tokio::task::spawn_blocking(move || {
                partitions
                    .into_iter()
                    .map(|p| {
                        consumer
                            .fetch_watermarks(&topic, p, Duration::from_secs(5))
                            .map(|(_, high)| (p, high))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .await
            .map_err(|e| BusError::Embedded(e.to_string()))??
        };
        let mut seen = self.seen.clone();
        seen.wait_for(|at| {
            ends.iter()
                .all(|(p, high)| at.get(p).copied().unwrap_or_default() >= *high)
        })
        .await
        .map_err(|_| BusError::Embedded("the changelog reader stopped".into()))?;
        Ok(())
    }
}

//! The bridge from Kafka partitions to actor mailboxes.
//!
//! One consumer per topic and process hands each record to one recipient (a router actor
//! that forwards to the actor owning the record's key) and waits for the handler's verdict
//! before storing the offset: at-least-once. Records that cannot be parsed, carry an unknown
//! version or are rejected by their handler go to the dead-letter topic with the reason, and
//! consumption goes on.

use super::context::BusContext;
use super::proofs::Gate;
use super::{Bus, BusError, Publisher};
use crate::messages::{DeadLetter, Envelope, Keyed, SCHEMA_VERSION};
use actix::Recipient;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use progress::Progress;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::Offset;
use serde::de::DeserializeOwned;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// A record handed from Kafka to the actor that owns its key.
#[derive(Debug, Clone)]
pub struct Inbound<T> {
    pub key: String,
    pub envelope: Envelope<T>,
}

impl<T: 'static> actix::Message for Inbound<T> {
    type Result = Result<(), Rejection>;
}

/// Why a handler did not take a well-formed record: set aside (it goes to the dead-letter
/// topic with the reason), or not taken *yet* (a write that could not be made durable): the
/// record is handed again after the retry backoff, never answered as done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Rejection {
    pub reason: String,
    pub retry: bool,
}

impl Rejection {
    /// The record is wrong for good: set it aside with `reason`.
    pub fn set_aside(reason: impl Into<String>) -> Rejection {
        Rejection {
            reason: reason.into(),
            retry: false,
        }
    }

    /// The record could not be handled now (e.g. a failed flush): hand it again later.
    pub fn retry_later(reason: impl Into<String>) -> Rejection {
        Rejection {
            reason: reason.into(),
            retry: true,
        }
    }
}

/// One member of a group whose members share the topic's partitions.
#[derive(Debug, Clone)]
pub struct Member<'a> {
    pub group: &'a str,
    /// Static membership: the same instance restarted takes its place back at once.
    pub instance: &'a str,
    /// A member unheard of this long is out, and its partitions go to the others.
    pub session_timeout: Duration,
    pub held: super::HeldPartitions,
}

/// Where a consumer starts when its group has no stored position yet.
#[derive(Debug, Clone, Copy)]
pub enum StartAt {
    Earliest,
    Latest,
}

impl Bus {
    /// Starts consuming `topic` as member of `group` on the current actix system, handing
    /// every valid record to `sink`. `holds_partitions` follows whether the group has given
    /// this consumer its partitions (while it does, no record for it can be missed); it turns
    /// false again when they are lost, e.g. after a network cut longer than the session.
    pub fn spawn_consumer<T>(
        &self,
        group: &str,
        topic: &str,
        start: StartAt,
        sink: Recipient<Inbound<T>>,
        holds_partitions: Option<tokio::sync::watch::Sender<bool>>,
    ) -> Result<(), BusError>
    where
        T: DeserializeOwned + Keyed + Clone + Send + 'static,
    {
        // Each such group has one member by design (one engine per CP id, one driver per
        // driver id): a static member id lets a restarted process take its predecessor's
        // place at once, instead of waiting out its session.
        let consumer: StreamConsumer<BusContext> = self
            .consumer_config(group, group, start, Duration::from_secs(10))
            .create_with_context(self.context.reading(self.stream_clock(topic)))?;
        consumer.subscribe(&[topic])?;
        let consumer = Arc::new(consumer);
        if let Some(holds_partitions) = holds_partitions {
            let consumer = consumer.clone();
            actix::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                while !holds_partitions.is_closed() {
                    tick.tick().await;
                    let holds = consumer.assignment().is_ok_and(|a| a.count() > 0);
                    holds_partitions
                        .send_if_modified(|held| std::mem::replace(held, holds) != holds);
                }
            });
        }
        self.run_consumer(consumer, topic, sink)
    }

    /// Starts consuming `topic` as one of the members of `member.group` that share its
    /// partitions (cooperative-sticky assignment, static membership by `member.instance`),
    /// keeping `member.held` as the group assigns and revokes them.
    pub fn spawn_member<T>(
        &self,
        member: Member<'_>,
        topic: &str,
        start: StartAt,
        sink: Recipient<Inbound<T>>,
    ) -> Result<(), BusError>
    where
        T: DeserializeOwned + Keyed + Clone + Send + 'static,
    {
        let consumer: StreamConsumer<BusContext> = self
            .consumer_config(member.group, member.instance, start, member.session_timeout)
            // Cooperative: partitions move one at a time, the others' keys undisturbed.
            .set(
                "partition.assignment.strategy",
                self.settings.partition_assignment.as_str(),
            )
            .create_with_context(
                self.context
                    .holding(member.held)
                    .reading(self.stream_clock(topic)),
            )?;
        consumer.subscribe(&[topic])?;
        self.run_consumer(Arc::new(consumer), topic, sink)
    }

    fn consumer_config(
        &self,
        group: &str,
        instance: &str,
        start: StartAt,
        session_timeout: Duration,
    ) -> rdkafka::ClientConfig {
        let mut config = self.client_config();
        config
            .set("group.id", group)
            .set("group.instance.id", instance)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.commit.interval.ms", "1000")
            .set(
                "auto.offset.reset",
                match start {
                    StartAt::Earliest => "earliest",
                    StartAt::Latest => "latest",
                },
            )
            // Brokers answer a fetch as soon as data arrives; this bounds the wait otherwise.
            .set(
                "fetch.wait.max.ms",
                self.settings.fetch_wait.as_millis().max(1).to_string(),
            )
            .set(
                "session.timeout.ms",
                session_timeout.as_millis().max(1000).to_string(),
            )
            .set(
                "heartbeat.interval.ms",
                (session_timeout.as_millis() / 6)
                    .clamp(100, 1000)
                    .to_string(),
            )
            // Feeds the consumer lag metric (`BusContext::stats`).
            .set("statistics.interval.ms", "1000")
            // Fetched ahead per partition, beyond the records in flight: librdkafka's
            // 100,000 held a central past its capacity to minutes of old records (and
            // hundreds of MB) while the broker went on deleting newer ones.
            .set("queued.min.messages", PREFETCH.to_string())
            // Says when a partition is read to its end: its stream clock is then the wall
            // clock, however old its last record (`StreamClock::at_end`).
            .set("enable.partition.eof", "true");
        config
    }

    /// Hands every record `consumer` receives to `sink`, as [`Bus::spawn_consumer`] says.
    fn run_consumer<T>(
        &self,
        consumer: Arc<StreamConsumer<BusContext>>,
        topic: &str,
        sink: Recipient<Inbound<T>>,
    ) -> Result<(), BusError>
    where
        T: DeserializeOwned + Keyed + Clone + Send + 'static,
    {
        let dead_letters = self.publisher()?;
        let backoff = self.settings.retry_backoff;
        let gate = std::rc::Rc::new(Gate::new(
            self.topics.proven(topic),
            self.keys.clone(),
            self.settings.replay_window,
        ));
        let context = self.context.clone();
        let clock = self.stream_clock(topic);
        actix::spawn(async move {
            // Records of different keys are handled side by side, up to IN_FLIGHT at a
            // time; a record waits for the one before it with the same key (and only for
            // it), so each entity still sees its records one after another, as with one
            // record at a time. One at a time made a busy actor thread the pace of the whole
            // topic. Records finish in any order: one waiting long (a request whose write is
            // not durable yet) holds back only its partition's stored offset (`Progress`),
            // not the records behind it, which an overloaded process then still handles at
            // its pace.
            let mut in_flight = FuturesUnordered::new();
            // Per key: records in flight, and the signal that the last of them is handled.
            let mut keys: HashMap<String, (usize, oneshot::Receiver<()>)> = HashMap::new();
            let mut progress = Progress::default();
            let mut watchdog = tokio::time::interval(SLOW_RECORD);
            // Soon after the statistics ask for a seek (`retention`).
            let mut unstick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tokio::select! {
                    biased;
                    Some(handled) = in_flight.next(), if !in_flight.is_empty() => {
                        let Handled { topic, partition, offset, key } = handled;
                        if let Some((count, _)) = keys.get_mut(&key) {
                            *count -= 1;
                            if *count == 0 {
                                keys.remove(&key);
                            }
                        }
                        if let Some(safe) = progress.handled(partition, offset) {
                            if let Err(e) = consumer.store_offset(&topic, partition, safe) {
                                log::warn!("cannot store the offset of a handled record: {e}");
                            }
                        }
                        if in_flight.len() < IN_FLIGHT {
                            clock.release();
                        }
                    }
                    _ = unstick.tick() => {
                        for (topic, partition) in consumer.context().take_seeks() {
                            // Zero: it starts the seek and returns; the fetcher does the rest.
                            if let Err(e) = consumer.seek(&topic, partition, Offset::End, Duration::ZERO) {
                                log::warn!("cannot read {topic} [{partition}] on from its end: {e}");
                            }
                        }
                    }
                    _ = watchdog.tick() => {
                        if let Some((since, what)) = progress.slowest() {
                            if since.elapsed() >= SLOW_RECORD {
                                log::warn!(
                                    "{what} not handled after {:?}; its partition's offset \
                                     waits for it",
                                    since.elapsed()
                                );
                            }
                        }
                    }
                    received = consumer.recv(), if in_flight.len() < IN_FLIGHT => match received {
                        Ok(record) => {
                            context.note_success();
                            let record = record.detach();
                            clock.read(record.partition(), written(&record));
                            progress.received(record.partition(), record.offset(), describe(&record));
                            let (done, handled) = oneshot::channel();
                            let previous = match keys.entry(key_of(&record)) {
                                Entry::Occupied(mut entry) => {
                                    let (count, last) = entry.get_mut();
                                    *count += 1;
                                    Some(std::mem::replace(last, handled))
                                }
                                Entry::Vacant(entry) => {
                                    entry.insert((1, handled));
                                    None
                                }
                            };
                            in_flight.push(after(
                                previous,
                                record,
                                &sink,
                                gate.clone(),
                                dead_letters.clone(),
                                backoff,
                                done,
                            ));
                            if in_flight.len() >= IN_FLIGHT {
                                clock.hold();
                            }
                        }
                        Err(KafkaError::PartitionEOF(partition)) => clock.at_end(partition),
                        Err(e) => {
                            context.complain(&e.to_string());
                            tokio::time::sleep(backoff).await;
                        }
                    },
                }
            }
        });
        Ok(())
    }
}

/// Records handed over whose verdicts are still awaited, per consumer.
const IN_FLIGHT: usize = 2048;

/// Records a consumer fetches ahead per partition: a few fetches' worth, enough that the
/// records in flight never wait for the broker.
const PREFETCH: usize = 4 * IN_FLIGHT;

/// Delivers `record` once the record before it with the same key (`previous`) is handled,
/// at once when there is none; says so on `done`.
fn after<T>(
    previous: Option<oneshot::Receiver<()>>,
    record: OwnedMessage,
    sink: &Recipient<Inbound<T>>,
    gate: std::rc::Rc<Gate>,
    dead_letters: Publisher,
    backoff: Duration,
    done: oneshot::Sender<()>,
) -> LocalBoxFuture<'static, Handled>
where
    T: DeserializeOwned + Keyed + Clone + Send + 'static,
{
    match previous {
        None => {
            let delivered = deliver(record, sink, &gate, dead_letters, backoff);
            async move {
                let handled = delivered.await;
                let _ = done.send(());
                handled
            }
            .boxed_local()
        }
        Some(previous) => {
            let sink = sink.clone();
            async move {
                let _ = previous.await;
                let handled = deliver(record, &sink, &gate, dead_letters, backoff).await;
                let _ = done.send(());
                handled
            }
            .boxed_local()
        }
    }
}

/// A record still unhandled this long is reported.
const SLOW_RECORD: Duration = Duration::from_secs(10);

/// When the record was written, by its Kafka timestamp (its producer's clock); now when it
/// has none.
fn written(record: &OwnedMessage) -> chrono::DateTime<chrono::Utc> {
    record
        .timestamp()
        .to_millis()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .unwrap_or_else(chrono::Utc::now)
}

/// The record's place and type, for a person.
fn describe(record: &OwnedMessage) -> String {
    /// Only the type: the rest of the value is skipped, not built.
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<&'a str>,
    }
    let kind = record
        .payload()
        .and_then(|p| serde_json::from_slice::<Kind<'_>>(p).ok())
        .and_then(|k| k.kind)
        .unwrap_or_default();
    format!(
        "record {}/{}@{} ({kind}, key {})",
        record.topic(),
        record.partition(),
        record.offset(),
        key_of(record)
    )
}

/// Where a handled record was, and its key.
struct Handled {
    topic: String,
    partition: i32,
    offset: i64,
    key: String,
}

/// The record's key as text, for keeping each key's records in order ("" when absent).
fn key_of(record: &OwnedMessage) -> String {
    key_text(record).unwrap_or_default()
}

/// The record's key as text, as people read it.
pub(super) fn key_text(record: &impl Message) -> Option<String> {
    record
        .key()
        .map(|k| String::from_utf8_lossy(k).into_owned())
}

/// Hands one record to its actor at once (so that records reach their actors in order),
/// or sets it aside; the returned future resolves with the record's position once it is
/// safe to move past it.
fn deliver<T>(
    record: OwnedMessage,
    sink: &Recipient<Inbound<T>>,
    gate: &Gate,
    dead_letters: Publisher,
    backoff: Duration,
) -> impl std::future::Future<Output = Handled> + 'static
where
    T: DeserializeOwned + Keyed + Clone + Send + 'static,
{
    // Checked here, before any await: records reach the gate in the order they came.
    let others = record
        .key()
        .and_then(|k| std::str::from_utf8(k).ok())
        .is_some_and(|key| gate.not_ours(key));
    let parsed = if others {
        Ok(None)
    } else {
        parse_record::<T>(record.key(), record.payload()).and_then(|(key, envelope)| {
            let ours = gate.admit(&record, &key, &envelope)?;
            // The fields' rules, once the record is known to come from whom it names.
            if ours {
                envelope.body.check_fields()?;
            }
            Ok(ours.then_some((key, envelope)))
        })
    };
    let sent = parsed
        .as_ref()
        .ok()
        .and_then(Option::as_ref)
        .map(|(key, envelope)| {
            sink.send(Inbound {
                key: key.clone(),
                envelope: envelope.clone(),
            })
        });
    let sink = sink.clone();
    async move {
        let position = Handled {
            topic: record.topic().to_owned(),
            partition: record.partition(),
            offset: record.offset(),
            key: key_of(&record),
        };
        let (key, envelope) = match parsed {
            Ok(Some(parsed)) => parsed,
            // Another process's party (an engine reading every CP's commands).
            Ok(None) => return position,
            Err(reason) => {
                set_aside(&record, reason, &dead_letters).await;
                return position;
            }
        };
        let mut verdict = sent.expect("sent when parsed").await;
        loop {
            match verdict {
                Ok(Ok(())) => return position,
                Ok(Err(rejection)) if !rejection.retry => {
                    set_aside(&record, rejection.reason, &dead_letters).await;
                    return position;
                }
                // Not taken yet (a write not durable) or the owning actor is being
                // restarted: the record waits and is handed again, it is not lost.
                not_yet => {
                    let why = match not_yet {
                        Ok(Err(rejection)) => rejection.reason,
                        Err(mailbox) => mailbox.to_string(),
                        Ok(Ok(())) => unreachable!("handled above"),
                    };
                    log::warn!("record for {key} not handled yet ({why}); retrying");
                    tokio::time::sleep(backoff).await;
                    verdict = sink
                        .send(Inbound {
                            key: key.clone(),
                            envelope: envelope.clone(),
                        })
                        .await;
                }
            }
        }
    }
}

/// Reads a record's key and value as a message for the actor owning the key, or says why it
/// must be set aside (the reason written to the dead-letter topic). The checks, in order:
/// a key, a UTF-8 key, a value, a valid message of the topic's type, this build's version,
/// a key that is the entity the message concerns, and an entity id that keeps the id rule. (The fields'
/// own rules are checked once the record's proof holds.)
pub(super) fn parse_record<T>(
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
) -> Result<(String, Envelope<T>), String>
where
    T: DeserializeOwned + Keyed,
{
    let key = match key {
        None => return Err("record has no key".into()),
        Some(bytes) => std::str::from_utf8(bytes)
            .map_err(|_| "record key is not UTF-8".to_string())?
            .to_owned(),
    };
    let raw = payload.ok_or("record has no value")?;
    let envelope: Envelope<T> =
        serde_json::from_slice(raw).map_err(|e| format!("not a valid message: {e}"))?;
    if envelope.v != SCHEMA_VERSION {
        return Err(format!(
            "message version {} is not supported (this build reads version {SCHEMA_VERSION})",
            envelope.v
        ));
    }
    if envelope.body.key() != key {
        return Err(format!(
            "record key {key:?} does not match the entity {:?} the message concerns",
            envelope.body.key()
        ));
    }
    crate::messages::check_key(&key)?;
    Ok((key, envelope))
}

async fn set_aside(record: &OwnedMessage, reason: String, dead_letters: &Publisher) {
    log::warn!(
        "set aside record {}/{}@{}: {reason}",
        record.topic(),
        record.partition(),
        record.offset()
    );
    if let Err(e) = dead_letters.dead_letter(dead_letter(record, reason)).await {
        log::error!("cannot write to the dead-letter topic: {e}");
    }
}

/// What the dead-letter topic receives for `record`, set aside for `reason`.
fn dead_letter(record: &impl Message, reason: String) -> DeadLetter {
    DeadLetter {
        topic: record.topic().to_owned(),
        partition: record.partition(),
        offset: record.offset(),
        key: key_text(record),
        reason,
        payload: redacted_payload(record.payload().unwrap_or_default()),
    }
}

/// The record's value as text for people to read (the dead-letter topic, the console's view
/// of the topics), with any secret (a driver's password) replaced. Without secrets, the
/// text as it came.
pub(super) fn redacted_payload(payload: &[u8]) -> String {
    if let Ok(mut message) = serde_json::from_slice::<serde_json::Value>(payload) {
        if crate::messages::redact_secrets(&mut message) {
            return message.to_string();
        }
    }
    String::from_utf8_lossy(payload).into_owned()
}

mod progress;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod with_broker;

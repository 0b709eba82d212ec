//! The bridge from Kafka partitions to actor mailboxes.
//!
//! One consumer per topic and process hands each record to one recipient (a router actor
//! that forwards to the actor owning the record's key) and waits for the handler's verdict
//! before storing the offset: at-least-once. Records that cannot be parsed, carry an unknown
//! version or are rejected by their handler go to the dead-letter topic with the reason, and
//! consumption goes on.

use super::context::BusContext;
use super::{Bus, BusError, Publisher};
use crate::messages::{DeadLetter, Envelope, Keyed, SCHEMA_VERSION};
use actix::Recipient;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, StreamExt};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use serde::de::DeserializeOwned;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A record handed from Kafka to the actor that owns its key.
#[derive(Debug)]
pub struct Inbound<T> {
    pub key: String,
    pub envelope: Envelope<T>,
}

impl<T: 'static> actix::Message for Inbound<T> {
    type Result = Result<(), Rejection>;
}

/// Why a handler set a well-formed record aside: it goes to the dead-letter topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub String);

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
        let consumer: StreamConsumer<BusContext> = self
            .client_config()
            .set("group.id", group)
            // Each group has one member by design (one central, one engine per CP id, one
            // driver per driver id): a static member id lets a restarted process take its
            // predecessor's place at once, instead of waiting out its session.
            .set("group.instance.id", group)
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
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            // Feeds the consumer lag metric (`BusContext::stats`).
            .set("statistics.interval.ms", "1000")
            .create_with_context(self.context.clone())?;
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
        let dead_letters = self.publisher()?;
        let backoff = self.settings.retry_backoff;
        let context = self.context.clone();
        actix::spawn(async move {
            // Records of different keys are handled side by side, up to IN_FLIGHT at a
            // time; a record waits for the one before it with the same key (and only for
            // it), so each entity still sees its records one after another, as with one
            // record at a time. One at a time made a busy actor thread the pace of the whole
            // topic. Offsets are stored in order, each once every record before it is handled.
            let mut in_flight = FuturesOrdered::new();
            // Per key: records in flight, and the signal that the last of them is handled.
            let mut keys: HashMap<String, (usize, oneshot::Receiver<()>)> = HashMap::new();
            // What is in flight, oldest first, to say so when a record takes too long.
            let mut pending: VecDeque<(Instant, String)> = VecDeque::new();
            let mut watchdog = tokio::time::interval(SLOW_RECORD);
            loop {
                tokio::select! {
                    biased;
                    Some(handled) = in_flight.next(), if !in_flight.is_empty() => {
                        let Handled { topic, partition, offset, key } = handled;
                        pending.pop_front();
                        if let Some((count, _)) = keys.get_mut(&key) {
                            *count -= 1;
                            if *count == 0 {
                                keys.remove(&key);
                            }
                        }
                        if let Err(e) = consumer.store_offset(&topic, partition, offset) {
                            log::warn!("cannot store the offset of a handled record: {e}");
                        }
                    }
                    _ = watchdog.tick() => {
                        if let Some((since, what)) = pending.front() {
                            if since.elapsed() >= SLOW_RECORD {
                                log::warn!(
                                    "{what} not handled after {:?}; the records after it wait",
                                    since.elapsed()
                                );
                            }
                        }
                    }
                    received = consumer.recv(), if in_flight.len() < IN_FLIGHT => match received {
                        Ok(record) => {
                            context.note_success();
                            let record = record.detach();
                            pending.push_back((Instant::now(), describe(&record)));
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
                            in_flight.push_back(after(
                                previous,
                                record,
                                &sink,
                                dead_letters.clone(),
                                backoff,
                                done,
                            ));
                        }
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

/// Delivers `record` once the record before it with the same key (`previous`) is handled,
/// at once when there is none; says so on `done`.
fn after<T>(
    previous: Option<oneshot::Receiver<()>>,
    record: OwnedMessage,
    sink: &Recipient<Inbound<T>>,
    dead_letters: Publisher,
    backoff: Duration,
    done: oneshot::Sender<()>,
) -> LocalBoxFuture<'static, Handled>
where
    T: DeserializeOwned + Keyed + Clone + Send + 'static,
{
    match previous {
        None => {
            let delivered = deliver(record, sink, dead_letters, backoff);
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
                let handled = deliver(record, &sink, dead_letters, backoff).await;
                let _ = done.send(());
                handled
            }
            .boxed_local()
        }
    }
}

/// A record still unhandled this long is reported.
const SLOW_RECORD: Duration = Duration::from_secs(10);

/// The record's place and type, for a person.
fn describe(record: &OwnedMessage) -> String {
    let kind = record
        .payload()
        .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
        .and_then(|v| v["type"].as_str().map(str::to_owned))
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
    dead_letters: Publisher,
    backoff: Duration,
) -> impl std::future::Future<Output = Handled> + 'static
where
    T: DeserializeOwned + Keyed + Clone + Send + 'static,
{
    let parsed = parse_record::<T>(record.key(), record.payload());
    let sent = parsed.as_ref().ok().map(|(key, envelope)| {
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
            Ok(parsed) => parsed,
            Err(reason) => {
                set_aside(&record, reason, &dead_letters).await;
                return position;
            }
        };
        let mut verdict = sent.expect("sent when parsed").await;
        loop {
            match verdict {
                Ok(Ok(())) => return position,
                Ok(Err(rejection)) => {
                    set_aside(&record, rejection.0, &dead_letters).await;
                    return position;
                }
                Err(mailbox) => {
                    // The owning actor is being restarted: the record waits, it is not lost.
                    log::warn!("record for {key} not handled yet ({mailbox}); retrying");
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
/// and a key that is the entity the message concerns.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{CpEvent, DriverRequest, Outcome, Secret};
    use chrono::{DateTime, Utc};
    use proptest::collection::vec;
    use proptest::option;
    use proptest::prelude::*;
    use proptest::sample::Index;
    use rdkafka::message::Timestamp;
    use serde::Serialize;
    use std::fmt::Debug;
    use uuid::Uuid;

    #[test]
    fn a_set_aside_password_is_redacted_and_other_payloads_kept() {
        let text = redacted_payload(br#"{"type":"sign_in","v":9,"password":"hunter2"}"#);
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains(r#""v":9"#), "{text}");
        assert_eq!(redacted_payload(b"hello"), "hello");
        let untouched = r#"{"v":1, "type":"hello"}"#;
        assert_eq!(redacted_payload(untouched.as_bytes()), untouched);
    }

    /// The reason `parse_record` gives for a record of another schema version.
    fn version_reason(v: u32) -> String {
        format!("message version {v} is not supported (this build reads version {SCHEMA_VERSION})")
    }

    /// The reason `parse_record` gives for a record keyed to another entity.
    fn key_reason(key: &str, entity: &str) -> String {
        format!("record key {key:?} does not match the entity {entity:?} the message concerns")
    }

    /// Whether `reason` is one of the reasons a record is set aside for before any handler
    /// sees it, and says something.
    fn is_documented_reason(reason: &str) -> bool {
        reason == "record has no key"
            || reason == "record key is not UTF-8"
            || reason == "record has no value"
            || reason
                .strip_prefix("not a valid message: ")
                .is_some_and(|error| !error.is_empty())
            || (reason.starts_with("message version ")
                && reason.ends_with(&format!(
                    " is not supported (this build reads version {SCHEMA_VERSION})"
                )))
            || (reason.starts_with("record key \"")
                && reason.contains("\" does not match the entity \"")
                && reason.ends_with("\" the message concerns"))
    }

    /// Parses as a consumer of `T` does and checks what any outcome must satisfy: a parsed
    /// record has this build's version and is keyed to its entity; a refused one says why.
    fn parse_checked<T>(
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
    ) -> Result<Result<(String, Envelope<T>), String>, TestCaseError>
    where
        T: DeserializeOwned + Keyed,
    {
        let parsed = parse_record::<T>(key, payload);
        match &parsed {
            Ok((parsed_key, envelope)) => {
                prop_assert_eq!(Some(parsed_key.as_bytes()), key);
                prop_assert_eq!(envelope.v, SCHEMA_VERSION);
                prop_assert_eq!(envelope.body.key(), parsed_key.as_str());
            }
            Err(reason) => prop_assert!(is_documented_reason(reason), "reason {:?}", reason),
        }
        Ok(parsed)
    }

    fn record(key: Option<&[u8]>, payload: Option<&[u8]>) -> OwnedMessage {
        OwnedMessage::new(
            payload.map(<[u8]>::to_vec),
            key.map(<[u8]>::to_vec),
            "evcharge.driver.requests".into(),
            Timestamp::NotAvailable,
            3,
            41,
            None,
        )
    }

    /// An id as the network names CPs and drivers, or any text at all.
    fn id_text() -> impl Strategy<Value = String> {
        prop_oneof!["[A-Z]{1,3}[0-9]{1,4}", any::<String>()]
    }

    fn uuid() -> impl Strategy<Value = Uuid> {
        any::<u128>().prop_map(Uuid::from_u128)
    }

    /// Any instant from 1970 to 2100, to the nanosecond.
    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        (0i64..4_102_444_800, 0u32..1_000_000_000)
            .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).unwrap())
    }

    /// Energy to the watt-hour, as engines send it.
    fn kwh() -> impl Strategy<Value = f64> {
        (0u32..100_000_000).prop_map(|wh| f64::from(wh) / 1000.0)
    }

    /// Money to the cent.
    fn eur() -> impl Strategy<Value = f64> {
        (0u32..100_000_000).prop_map(|cents| f64::from(cents) / 100.0)
    }

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            Just(Outcome::Completed),
            Just(Outcome::StoppedByDriver),
            Just(Outcome::StoppedByOperator),
            Just(Outcome::Expired),
            Just(Outcome::EngineFailure),
            Just(Outcome::MonitorLost),
            Just(Outcome::Refused),
        ]
    }

    /// Any message of `cp.events`.
    fn cp_event() -> impl Strategy<Value = CpEvent> {
        let id = id_text;
        prop_oneof![
            (id(), uuid())
                .prop_map(|(cp_id, session_id)| CpEvent::Authorised { cp_id, session_id }),
            (id(), uuid(), id()).prop_map(|(cp_id, session_id, reason)| CpEvent::Refused {
                cp_id,
                session_id,
                reason
            }),
            (id(), uuid(), id(), instant()).prop_map(
                |(cp_id, session_id, driver_id, started_at)| CpEvent::SupplyStarted {
                    cp_id,
                    session_id,
                    driver_id,
                    started_at
                }
            ),
            (id(), uuid(), id(), kwh(), eur()).prop_map(
                |(cp_id, session_id, driver_id, kwh, eur)| CpEvent::SupplyProgress {
                    cp_id,
                    session_id,
                    driver_id,
                    kwh,
                    eur
                }
            ),
            (
                id(),
                uuid(),
                id(),
                instant(),
                instant(),
                kwh(),
                eur(),
                outcome()
            )
                .prop_map(
                    |(cp_id, session_id, driver_id, started_at, ended_at, kwh, eur, outcome)| {
                        CpEvent::SupplyEnded {
                            cp_id,
                            session_id,
                            driver_id,
                            started_at,
                            ended_at,
                            kwh,
                            eur,
                            outcome,
                        }
                    }
                ),
            (id(), uuid(), any::<bool>()).prop_map(|(cp_id, instance, probe)| {
                CpEvent::EngineHello {
                    cp_id,
                    instance,
                    probe,
                }
            }),
        ]
    }

    /// A sign-in whose password shows nowhere else in the record (ids are letters and
    /// digits, UUIDs hex, the password begins with `pw#`), nor needs escaping in JSON.
    fn sign_in() -> impl Strategy<Value = DriverRequest> {
        (
            uuid(),
            "[A-Z0-9]{1,8}",
            "pw#[a-zA-Z0-9 .,:;!?@$%&*+=_~-]{0,16}",
        )
            .prop_map(|(request_id, driver_id, password)| DriverRequest::SignIn {
                request_id,
                driver_id,
                password: Secret::new(password),
            })
    }

    /// Any message of `driver.requests`.
    fn driver_request() -> impl Strategy<Value = DriverRequest> {
        let id = id_text;
        prop_oneof![
            (uuid(), id(), option::of(id())).prop_map(|(request_id, driver_id, cp_id)| {
                DriverRequest::SupplyRequest {
                    request_id,
                    driver_id,
                    cp_id,
                }
            }),
            id().prop_map(|driver_id| DriverRequest::StopSupply { driver_id }),
            id().prop_map(|driver_id| DriverRequest::ListAvailable { driver_id }),
            (id(), uuid(), any::<bool>()).prop_map(|(driver_id, instance, probe)| {
                DriverRequest::Hello {
                    driver_id,
                    instance,
                    probe,
                }
            }),
            (uuid(), id(), id()).prop_map(|(request_id, driver_id, password)| {
                DriverRequest::SignIn {
                    request_id,
                    driver_id,
                    password: Secret::new(password),
                }
            }),
            (uuid(), id()).prop_map(|(request_id, driver_id)| DriverRequest::History {
                request_id,
                driver_id
            }),
        ]
    }

    /// `body` in an envelope of this build's version.
    fn envelope<T: Debug>(body: impl Strategy<Value = T>) -> impl Strategy<Value = Envelope<T>> {
        (uuid(), instant(), body).prop_map(|(id, ts, body)| Envelope {
            id,
            v: SCHEMA_VERSION,
            ts,
            body,
        })
    }

    /// Bytes of any kind, or text made of what JSON is made of (which gets further into the
    /// parser).
    fn payload_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            vec(any::<u8>(), 0..512),
            r#"[{}\[\]":,. 0-9a-z_-]{0,128}"#.prop_map(String::into_bytes),
        ]
    }

    /// Checks that `envelope`, damaged at one byte and perhaps cut, parses as a message of
    /// the same kind or is refused with a documented reason.
    fn check_damaged<T>(
        envelope: &Envelope<T>,
        at: Index,
        byte: u8,
        cut: Option<Index>,
    ) -> Result<(), TestCaseError>
    where
        T: Serialize + DeserializeOwned + Keyed,
    {
        let mut damaged = serde_json::to_vec(envelope).unwrap();
        let i = at.index(damaged.len());
        damaged[i] = byte;
        if let Some(cut) = cut {
            damaged.truncate(cut.index(damaged.len()));
        }
        let key = envelope.body.key().as_bytes();
        if let Ok((_, parsed)) = parse_checked::<T>(Some(key), Some(&damaged))? {
            prop_assert_eq!(
                std::mem::discriminant(&parsed.body),
                std::mem::discriminant(&envelope.body)
            );
        }
        Ok(())
    }

    proptest! {
        /// No key and value, whatever their bytes, make the parser panic; what it refuses
        /// it refuses with one of its reasons, and what it accepts is keyed to its entity.
        #[test]
        fn any_record_parses_or_is_refused_with_a_documented_reason(
            key in option::of(vec(any::<u8>(), 0..16)),
            payload in option::of(payload_bytes()),
        ) {
            let _ = parse_checked::<CpEvent>(key.as_deref(), payload.as_deref())?;
            let _ = parse_checked::<DriverRequest>(key.as_deref(), payload.as_deref())?;
        }

        /// A valid message damaged at one byte, and perhaps cut short, parses as a message of
        /// the same kind (for the same entity) or is refused with a documented reason.
        #[test]
        fn a_damaged_message_parses_as_the_same_kind_or_is_refused(
            event in envelope(cp_event()),
            request in envelope(driver_request()),
            at in any::<Index>(),
            byte in prop_oneof![any::<u8>(), b' '..=b'~'],
            cut in option::of(any::<Index>()),
        ) {
            check_damaged(&event, at, byte, cut)?;
            check_damaged(&request, at, byte, cut)?;
        }

        /// A valid message keyed to its entity parses back to itself, key included.
        #[test]
        fn a_valid_record_parses_back_to_itself(
            event in envelope(cp_event()),
            request in envelope(driver_request()),
        ) {
            let key = event.body.key().to_owned();
            let json = serde_json::to_vec(&event).unwrap();
            prop_assert_eq!(
                parse_record::<CpEvent>(Some(key.as_bytes()), Some(&json)),
                Ok((key, event))
            );
            let key = request.body.key().to_owned();
            let json = serde_json::to_vec(&request).unwrap();
            prop_assert_eq!(
                parse_record::<DriverRequest>(Some(key.as_bytes()), Some(&json)),
                Ok((key, request))
            );
        }

        /// A valid message under the key of another entity is refused with the key reason.
        #[test]
        fn a_record_keyed_to_another_entity_is_refused_with_the_key_reason(
            event in envelope(cp_event()),
            key in any::<String>(),
        ) {
            prop_assume!(key != event.body.key());
            let json = serde_json::to_vec(&event).unwrap();
            prop_assert_eq!(
                parse_record::<CpEvent>(Some(key.as_bytes()), Some(&json)),
                Err(key_reason(&key, event.body.key()))
            );
        }

        /// A message of another schema version is refused with the version reason, before
        /// its key is looked at.
        #[test]
        fn a_message_of_another_version_is_refused_with_the_version_reason(
            mut event in envelope(cp_event()),
            v in any::<u32>(),
            key in option::of(any::<String>()),
        ) {
            prop_assume!(v != SCHEMA_VERSION);
            event.v = v;
            let key = key.unwrap_or_else(|| event.body.key().to_owned());
            let json = serde_json::to_vec(&event).unwrap();
            prop_assert_eq!(
                parse_record::<CpEvent>(Some(key.as_bytes()), Some(&json)),
                Err(version_reason(v))
            );
        }

        /// A message without its type tag, with a tag its topic does not carry, or of another
        /// topic, is refused as not a valid message.
        #[test]
        fn a_message_without_a_known_type_tag_is_refused_as_not_valid(
            event in envelope(cp_event()),
            request in envelope(driver_request()),
            tag in option::of("[a-z_]{0,16}"),
        ) {
            const CP_EVENT_TAGS: [&str; 6] = [
                "authorised", "refused", "supply_started", "supply_progress", "supply_ended",
                "engine_hello",
            ];
            let key = event.body.key().as_bytes();
            let mut json = serde_json::to_value(&event).unwrap();
            match &tag {
                None => {
                    json.as_object_mut().unwrap().remove("type");
                }
                Some(tag) => {
                    prop_assume!(!CP_EVENT_TAGS.contains(&tag.as_str()));
                    json["type"] = tag.as_str().into();
                }
            }
            let reason = parse_record::<CpEvent>(Some(key), Some(json.to_string().as_bytes()))
                .unwrap_err();
            prop_assert!(reason.starts_with("not a valid message: "), "{}", reason);
            if tag.is_none() {
                prop_assert!(reason.contains("missing field `type`"), "{}", reason);
            }
            // Each topic's consumer refuses the other's messages.
            let reason = parse_record::<CpEvent>(
                Some(request.body.key().as_bytes()),
                Some(&serde_json::to_vec(&request).unwrap()),
            )
            .unwrap_err();
            prop_assert!(reason.starts_with("not a valid message: "), "{}", reason);
            let reason = parse_record::<DriverRequest>(
                Some(key),
                Some(&serde_json::to_vec(&event).unwrap()),
            )
            .unwrap_err();
            prop_assert!(reason.starts_with("not a valid message: "), "{}", reason);
        }

        /// A record without a key is refused for that whatever its value; one with a key
        /// that is not UTF-8 for that; one with a key and no value for that.
        #[test]
        fn a_record_without_a_readable_key_or_a_value_is_refused_for_it(
            payload in option::of(payload_bytes()),
            key in vec(any::<u8>(), 0..16),
            at in any::<Index>(),
        ) {
            prop_assert_eq!(
                parse_record::<CpEvent>(None, payload.as_deref()),
                Err("record has no key".to_string())
            );
            // 0xFF never appears in UTF-8.
            let mut broken = key.clone();
            broken.insert(at.index(key.len() + 1), 0xFF);
            prop_assert_eq!(
                parse_record::<CpEvent>(Some(&broken), payload.as_deref()),
                Err("record key is not UTF-8".to_string())
            );
            if let Ok(key) = std::str::from_utf8(&key) {
                prop_assert_eq!(
                    parse_record::<CpEvent>(Some(key.as_bytes()), None),
                    Err("record has no value".to_string())
                );
            }
        }

        /// A sign-in set aside (another version, or keyed to another driver) reaches the
        /// dead-letter topic with the parser's reason, its key and place, and its value
        /// intact but for the password, which shows nowhere in the letter.
        #[test]
        fn a_set_aside_sign_in_reaches_the_dead_letter_topic_without_its_password(
            mut request in envelope(sign_in()),
            v in any::<u32>(),
            other_driver in option::of("[A-Z0-9]{1,8}"),
        ) {
            request.v = v;
            let driver_id = request.body.key().to_owned();
            let key = other_driver.unwrap_or_else(|| driver_id.clone());
            prop_assume!(v != SCHEMA_VERSION || key != driver_id);
            let DriverRequest::SignIn { password, .. } = &request.body else {
                unreachable!("sign_in() makes sign-ins")
            };
            let password = password.expose().to_owned();
            let json = serde_json::to_vec(&request).unwrap();
            let reason = parse_record::<DriverRequest>(Some(key.as_bytes()), Some(&json))
                .unwrap_err();
            prop_assert!(is_documented_reason(&reason), "{}", reason);

            let letter = dead_letter(&record(Some(key.as_bytes()), Some(&json)), reason.clone());
            prop_assert_eq!(&letter.reason, &reason);
            prop_assert_eq!(letter.key.as_deref(), Some(key.as_str()));
            prop_assert_eq!(
                (letter.topic.as_str(), letter.partition, letter.offset),
                ("evcharge.driver.requests", 3, 41)
            );
            let mut expected: serde_json::Value = serde_json::from_slice(&json).unwrap();
            expected["password"] = "***".into();
            let kept: serde_json::Value = serde_json::from_str(&letter.payload).unwrap();
            prop_assert_eq!(kept, expected);
            let written = serde_json::to_string(&letter).unwrap();
            prop_assert!(!written.contains(&password), "{}", written);
        }
    }
}

//! Raw records on the bus, as any Kafka client writes and reads them: for tests that play a
//! party (an engine's late report, proven with its CP's key) or an attacker (a record with
//! no proof, a forged one, a replay of one seen on the bus).

use evcharge::proof::BusKey;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use serde_json::Value;
use std::time::Duration;

/// The bus key of the CP or driver whose secret is in `secret_file`.
pub fn key_of(secret_file: &str) -> BusKey {
    let secret = std::fs::read_to_string(secret_file).unwrap();
    BusKey::derive(secret.trim())
}

/// How a record is sent: with a proof under a key, with a proof header given as is (a
/// forgery or a replay), or with none.
pub enum Proof<'a> {
    Key(&'a BusKey),
    Header(Vec<u8>),
    None,
}

/// Writes raw records to the broker at `bootstrap`.
pub struct RawProducer(BaseProducer);

impl RawProducer {
    pub fn new(bootstrap: &str) -> RawProducer {
        RawProducer(
            ClientConfig::new()
                .set("bootstrap.servers", bootstrap)
                .create()
                .unwrap(),
        )
    }

    /// Sends `value` with `key` to `topic` (`evcharge.` + its name) and waits until the
    /// broker has it.
    pub fn send(&self, topic: &str, key: Option<&str>, value: &str, proof: Proof<'_>) {
        let full = format!("evcharge.{topic}");
        let mut record = BaseRecord::<str, str>::to(&full).payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        let header = match proof {
            Proof::Key(bus_key) => Some(
                bus_key
                    .prove(topic, key.unwrap_or_default(), value.as_bytes())
                    .into_bytes(),
            ),
            Proof::Header(bytes) => Some(bytes),
            Proof::None => None,
        };
        if let Some(header) = &header {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: evcharge::proof::HEADER,
                value: Some(header.as_slice()),
            }));
        }
        self.0.send(record).map_err(|(e, _)| e).unwrap();
        self.0.flush(Duration::from_secs(10)).unwrap();
    }
}

/// A record as read: its key, its value as JSON and its proof header.
#[derive(Debug, Clone)]
pub struct SeenRecord {
    pub key: String,
    pub value: Value,
    pub raw: String,
    pub proof: Option<Vec<u8>>,
}

/// Reads `topic` from its start, in a group of its own.
pub struct Reader(BaseConsumer);

impl Reader {
    pub fn new(bootstrap: &str, topic: &str) -> Reader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[&format!("evcharge.{topic}")]).unwrap();
        Reader(consumer)
    }

    /// Every record that has come since the last call.
    pub fn poll(&self) -> Vec<SeenRecord> {
        let mut seen = Vec::new();
        while let Some(Ok(m)) = self.0.poll(Duration::from_millis(100)) {
            let raw = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            let proof = m.headers().and_then(|headers| {
                headers
                    .iter()
                    .find(|h| h.key == evcharge::proof::HEADER)
                    .and_then(|h| h.value.map(<[u8]>::to_vec))
            });
            seen.push(SeenRecord {
                key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                value: serde_json::from_str(&raw).unwrap_or(Value::Null),
                raw,
                proof,
            });
        }
        seen
    }
}

/// The dead-letter topic, from its start: waits until `count` letters have come and returns
/// every reason.
pub fn dead_letter_reasons(bootstrap: &str, count: usize) -> Vec<String> {
    let reader = Reader::new(bootstrap, "deadletter");
    let mut reasons: Vec<String> = Vec::new();
    super::wait_for(&format!("{count} dead letters"), super::DEADLINE, || {
        for letter in reader.poll() {
            reasons.push(
                letter.value["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        (reasons.len() >= count).then_some(())
    });
    reasons
}

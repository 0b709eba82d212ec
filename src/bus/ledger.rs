//! The gateways' ledger of OCPP transactions (`ocpp.transactions`), read back: each
//! transaction is the record at offset `id - 1` of partition 0, proven with its CP's key.
//! A charge point that comes back, to this gateway or another, with a transaction the
//! gateway does not know is looked up here rather than taken on trust.

use super::context::BusContext;
use super::{Bus, BusError};
use crate::messages::gateway::TransactionStarted;
use crate::messages::Envelope;
use chrono::{DateTime, Utc};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most records a search by time reads: the latest ones.
const SCAN_TAIL: i64 = 50_000;

/// How long a lookup may wait for the broker.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the ledger. Cheap to clone; each lookup opens a consumer of its own, in no group.
#[derive(Clone)]
pub struct OcppLedger {
    config: ClientConfig,
    context: BusContext,
    topic: String,
    keys: Option<Arc<dyn crate::proof::Keyring>>,
}

impl Bus {
    pub fn ocpp_ledger(&self) -> OcppLedger {
        let mut config = self.client_config();
        config
            .set(
                "group.id",
                format!("evcharge-ledger-{}", uuid::Uuid::new_v4()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "error");
        OcppLedger {
            config,
            context: self.context.clone(),
            topic: self.topics.ocpp_transactions.clone(),
            keys: self.keys.clone(),
        }
    }
}

impl OcppLedger {
    /// Transaction `id` of charge point `cp_id`, if the ledger holds it for that CP.
    pub async fn transaction(
        &self,
        cp_id: &str,
        id: i64,
    ) -> Result<Option<TransactionStarted>, BusError> {
        if id < 1 {
            return Ok(None);
        }
        let found = self
            .scan(From::Offset(id - 1), Some(id - 1), cp_id.to_owned(), |_| {
                true
            })
            .await?;
        Ok(found.map(|(_, started)| started))
    }

    /// The latest transaction of `cp_id` recorded since `since` that `matches`, with its id.
    pub async fn find(
        &self,
        cp_id: &str,
        since: DateTime<Utc>,
        matches: impl Fn(&TransactionStarted) -> bool + Send + 'static,
    ) -> Result<Option<(i64, TransactionStarted)>, BusError> {
        self.scan(From::Time(since), None, cp_id.to_owned(), matches)
            .await
    }

    async fn scan(
        &self,
        from: From,
        only: Option<i64>,
        cp_id: String,
        matches: impl Fn(&TransactionStarted) -> bool + Send + 'static,
    ) -> Result<Option<(i64, TransactionStarted)>, BusError> {
        let consumer: BaseConsumer<BusContext> =
            self.config.create_with_context(self.context.clone())?;
        let (topic, keys) = (self.topic.clone(), self.keys.clone());
        tokio::task::spawn_blocking(move || {
            read(
                &consumer,
                &topic,
                from,
                only,
                &cp_id,
                keys.as_ref(),
                &matches,
            )
        })
        .await
        .map_err(|e| BusError::Embedded(e.to_string()))?
    }
}

#[derive(Debug, Clone, Copy)]
enum From {
    Offset(i64),
    Time(DateTime<Utc>),
}

fn read(
    consumer: &BaseConsumer<BusContext>,
    topic: &str,
    from: From,
    only: Option<i64>,
    cp_id: &str,
    keys: Option<&Arc<dyn crate::proof::Keyring>>,
    matches: &dyn Fn(&TransactionStarted) -> bool,
) -> Result<Option<(i64, TransactionStarted)>, BusError> {
    let (low, high) = consumer.fetch_watermarks(topic, 0, LOOKUP_TIMEOUT)?;
    let start = match from {
        From::Offset(offset) => offset,
        From::Time(at) => {
            let mut wanted = TopicPartitionList::new();
            wanted.add_partition_offset(topic, 0, Offset::Offset(at.timestamp_millis()))?;
            let found = consumer.offsets_for_times(wanted, LOOKUP_TIMEOUT)?;
            let tail = (high - SCAN_TAIL).max(low);
            match found.find_partition(topic, 0).map(|p| p.offset()) {
                Some(Offset::Offset(offset)) => offset.max(tail),
                // Nothing since then, or a broker that cannot say (the embedded one):
                // the tail is read, which finds what there is either way.
                _ => tail,
            }
        }
    };
    let last = only.unwrap_or(high - 1).min(high - 1);
    if start < low || start > last {
        return Ok(None);
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, Offset::Offset(start))?;
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + LOOKUP_TIMEOUT;
    let mut found = None;
    while Instant::now() < deadline {
        let Some(polled) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let record = match polled {
            Ok(record) => record,
            Err(rdkafka::error::KafkaError::PartitionEOF(_)) => break,
            Err(e) => return Err(e.into()),
        };
        let offset = record.offset();
        if record.key() == Some(cp_id.as_bytes()) && proven(topic, cp_id, keys, &record) {
            let started = record
                .payload()
                .and_then(|p| serde_json::from_slice::<Envelope<TransactionStarted>>(p).ok())
                .map(|envelope| envelope.body)
                .filter(|started| started.cp_id == cp_id && matches(started));
            if let Some(started) = started {
                found = Some((offset + 1, started));
            }
        }
        if offset >= last {
            break;
        }
    }
    Ok(found)
}

/// Whether the record's proof holds under its CP's key: the ledger is believed only so.
fn proven(
    topic: &str,
    cp_id: &str,
    keys: Option<&Arc<dyn crate::proof::Keyring>>,
    record: &rdkafka::message::BorrowedMessage<'_>,
) -> bool {
    let proven = super::proofs::ProvenTopic::ledger();
    let verdict = super::proofs::check(keys, proven, cp_id, record);
    if verdict != super::proofs::Verdict::Proven {
        log::warn!("{topic}: a record of {cp_id} set aside: {verdict:?}");
        return false;
    }
    true
}

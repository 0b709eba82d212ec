//! The central's trees as a local copy of a changelog: every write to a [`ReplicatedTree`]
//! is also written, in the same sled transaction, to an outbox, which the bus ships to the
//! compacted changelog topic (keyed by tree and key); writes other centrals made arrive
//! from that topic and are applied here ([`Changes::apply`]). [`Changes::settled`] resolves
//! once every write made so far is in Kafka: what depends on a write waits for it there,
//! as it waits for the disk.
//!
//! One-shot commands (`cp-register` on a stopped central) write to the outbox too; the
//! central ships what it finds there when it starts.

use super::StoreError;
use serde::{Deserialize, Serialize};
use sled::transaction::{
    ConflictableTransactionError, ConflictableTransactionResult, TransactionError,
    TransactionalTree,
};
use sled::{IVec, Transactional};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Notify};

/// One write to a replicated tree: `value` is `None` for a removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub tree: String,
    #[serde(with = "hex_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "hex_option")]
    pub value: Option<Vec<u8>>,
}

impl Change {
    /// The changelog record's key: the same tree and key always land on the same one, so
    /// compaction keeps the last write of each.
    pub fn record_key(&self) -> String {
        format!("{}/{}", self.tree, hex_bytes::encode(&self.key))
    }
}

/// The outbox and the trees changes apply to; shared by every writer of one database.
#[derive(Clone)]
pub struct Changes {
    db: sled::Db,
    /// Sequence number (big-endian u64) → [`Change`] as JSON, until shipped.
    outbox: sled::Tree,
    /// Changelog partition (big-endian i32) → the offset of the next record to apply.
    positions: sled::Tree,
    next: Arc<AtomicU64>,
    /// Every change numbered at most this is in Kafka.
    shipped: Arc<watch::Sender<u64>>,
    /// Whether a shipper runs: without one (a one-shot command), nothing waits for Kafka.
    shipping: Arc<AtomicBool>,
    written: Arc<Notify>,
    /// False while a database opened empty waits for the changelog: it has nothing to
    /// serve yet (no operator, no token), and says so rather than refuse everyone.
    restored: Arc<AtomicBool>,
    /// One flush for every caller that waits meanwhile (started on first use, in the
    /// running central): a reservation's flush no longer queues behind every other's.
    flusher: Arc<std::sync::OnceLock<super::GroupFlush>>,
    /// Told the key of every CP record another central's change wrote here.
    cps_applied: Arc<std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<Vec<u8>>>>>,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes")
            .field("pending", &self.outbox.len())
            .finish_non_exhaustive()
    }
}

impl Changes {
    pub fn open(db: &sled::Db) -> Result<Changes, StoreError> {
        let outbox = db.open_tree("changelog_outbox")?;
        let last = outbox
            .last()?
            .map(|(key, _)| seq_of(&key))
            .unwrap_or_default();
        // What is still in the outbox is the tail of what was written: shipped up to it.
        let first = outbox.first()?.map(|(key, _)| seq_of(&key));
        let positions = db.open_tree("changelog_positions")?;
        let mut fresh = positions.is_empty() && outbox.is_empty();
        for name in REPLICATED {
            fresh = fresh && db.open_tree(name)?.is_empty();
        }
        Ok(Changes {
            db: db.clone(),
            positions,
            restored: Arc::new(AtomicBool::new(!fresh)),
            cps_applied: Arc::default(),
            flusher: Arc::default(),
            next: Arc::new(AtomicU64::new(last + 1)),
            shipped: Arc::new(watch::channel(first.map_or(last, |f| f - 1)).0),
            shipping: Arc::default(),
            written: Arc::default(),
            outbox,
        })
    }

    /// A tree whose writes are replicated, named as the changelog names it.
    pub fn tree(&self, name: &'static str) -> Result<ReplicatedTree, StoreError> {
        Ok(ReplicatedTree {
            name,
            tree: self.db.open_tree(name)?,
            changes: self.clone(),
        })
    }

    /// Writes to several trees at once: all of them and their outbox entries, or nothing.
    pub fn transaction<R>(
        &self,
        trees: &[&ReplicatedTree],
        write: impl Fn(&Txn<'_>) -> ConflictableTransactionResult<R, ()>,
    ) -> Result<Result<R, ()>, StoreError> {
        let mut all: Vec<&sled::Tree> = trees.iter().map(|t| &t.tree).collect();
        all.push(&self.outbox);
        let result = all.as_slice().transaction(|txn| {
            let (outbox, trees_txn) = txn.split_last().expect("the outbox is always there");
            let writing = Txn {
                names: trees.iter().map(|t| t.name).collect(),
                trees: trees_txn,
                outbox,
                next: &self.next,
            };
            write(&writing)
        });
        match result {
            Ok(value) => {
                self.written.notify_one();
                Ok(Ok(value))
            }
            Err(TransactionError::Abort(())) => Ok(Err(())),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// Puts one write, made just now outside a transaction, in the outbox.
    fn record(&self, tree: &str, key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        self.outbox
            .insert(seq.to_be_bytes(), encode(tree, key, value))?;
        self.written.notify_one();
        Ok(())
    }

    /// Resolves once every write made so far is on disk and, when a shipper runs, in Kafka.
    pub async fn settled(&self) -> Result<(), StoreError> {
        let upto = self.next.load(Ordering::SeqCst) - 1;
        self.flusher
            .get_or_init(|| super::GroupFlush::start(self.db.clone()))
            .flush()
            .await?;
        if self.shipping.load(Ordering::SeqCst) {
            let mut shipped = self.shipped.subscribe();
            shipped
                .wait_for(|done| *done >= upto)
                .await
                .map_err(|_| StoreError::Cancelled("the changelog shipper stopped".into()))?;
        }
        Ok(())
    }

    /// Whether this copy has something to serve: it was not empty, or the changelog has
    /// been applied to its end.
    pub fn restored(&self) -> bool {
        self.restored.load(Ordering::SeqCst)
    }

    /// The changelog has been applied to its end.
    pub fn mark_restored(&self) {
        self.restored.store(true, Ordering::SeqCst);
    }

    /// Follows the CP records other centrals' changes write here (a CP registered there).
    pub fn follow_applied_cps(&self) -> tokio::sync::mpsc::UnboundedReceiver<Vec<u8>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        *self.cps_applied.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        rx
    }

    /// For the shipper: says that a shipper runs from now on.
    pub fn start_shipping(&self) {
        self.shipping.store(true, Ordering::SeqCst);
    }

    /// For the shipper: the changes not shipped yet after `after`, oldest first, at most `limit`.
    pub fn pending(&self, after: u64, limit: usize) -> Result<Vec<(u64, Change)>, StoreError> {
        let start = (after + 1).to_be_bytes();
        let mut found = Vec::new();
        for entry in self.outbox.range(start..).take(limit) {
            let (key, value) = entry?;
            let change = serde_json::from_slice(&value).map_err(|source| StoreError::Corrupt {
                tree: "changelog_outbox",
                source,
            })?;
            found.push((seq_of(&key), change));
        }
        Ok(found)
    }

    /// For the shipper: resolves when something may have been written since it last looked.
    pub async fn written(&self) {
        self.written.notified().await;
    }

    /// For the shipper: change `seq` and every one before it are in Kafka.
    pub fn shipped(&self, seq: u64) -> Result<(), StoreError> {
        self.outbox.remove(seq.to_be_bytes())?;
        self.shipped.send_if_modified(|done| {
            let moved = seq > *done;
            *done = (*done).max(seq);
            moved
        });
        Ok(())
    }

    /// For the changelog's reader: applies a change another central made (the record at
    /// `offset` of changelog partition `partition`) with the position after it, at once.
    /// A change to a tree that is not replicated is refused, with the reason.
    pub fn apply(&self, change: &Change, partition: i32, offset: i64) -> Result<(), String> {
        if !REPLICATED.contains(&change.tree.as_str()) {
            self.set_position(partition, offset + 1)
                .map_err(|e| e.to_string())?;
            return Err(format!("{} is not a replicated tree", change.tree));
        }
        let tree = self.db.open_tree(&change.tree).map_err(|e| e.to_string())?;
        let next = (offset + 1).to_be_bytes();
        (&tree, &self.positions)
            .transaction(|(tree, positions)| {
                match &change.value {
                    Some(value) => tree.insert(change.key.as_slice(), value.as_slice())?,
                    None => tree.remove(change.key.as_slice())?,
                };
                positions.insert(&partition.to_be_bytes(), &next)?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e| format!("cannot apply a change to {}: {e:?}", change.tree))?;
        if change.tree == "cps" {
            if let Some(tell) = &*self.cps_applied.lock().unwrap_or_else(|p| p.into_inner()) {
                let _ = tell.send(change.key.clone());
            }
        }
        Ok(())
    }

    /// For the changelog's reader: where it goes on in `partition`, once a record there is
    /// skipped (this process's own change, already applied).
    pub fn set_position(&self, partition: i32, next: i64) -> Result<(), StoreError> {
        self.positions
            .insert(partition.to_be_bytes(), &next.to_be_bytes())?;
        Ok(())
    }

    /// For the changelog's reader: the offset to read `partition` from (0: from the start).
    pub fn position(&self, partition: i32) -> Result<i64, StoreError> {
        Ok(self
            .positions
            .get(partition.to_be_bytes())?
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_ref()).ok())
            .map(i64::from_be_bytes)
            .unwrap_or(0))
    }
}

/// Every tree a changelog record may write: the central's records and accounts.
pub const REPLICATED: &[&str] = &[
    "cps",
    "cp_credentials",
    "driver_credentials",
    "drivers",
    "sessions",
    "open_sessions",
    "requests",
    "operators",
    "web_sessions",
    "api_tokens",
    "audit",
];

fn seq_of(key: &[u8]) -> u64 {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .unwrap_or_default()
}

/// The trees of one [`Changes::transaction`], by name; each write is also put in the outbox.
pub struct Txn<'a> {
    names: Vec<&'static str>,
    trees: &'a [TransactionalTree],
    outbox: &'a TransactionalTree,
    next: &'a AtomicU64,
}

impl Txn<'_> {
    fn tree(&self, name: &str) -> &TransactionalTree {
        let at = self
            .names
            .iter()
            .position(|n| *n == name)
            .expect("a transaction writes only the trees it was given");
        &self.trees[at]
    }

    pub fn get(&self, tree: &str, key: &[u8]) -> ConflictableTransactionResult<Option<IVec>, ()> {
        Ok(self.tree(tree).get(key)?)
    }

    pub fn insert(
        &self,
        tree: &'static str,
        key: &[u8],
        value: &[u8],
    ) -> ConflictableTransactionResult<(), ()> {
        self.tree(tree).insert(key, value)?;
        self.record(tree, key, Some(value))
    }

    /// Removes `key`; whether it was there.
    pub fn remove(
        &self,
        tree: &'static str,
        key: &[u8],
    ) -> ConflictableTransactionResult<bool, ()> {
        let was = self.tree(tree).remove(key)?.is_some();
        if was {
            self.record(tree, key, None)?;
        }
        Ok(was)
    }

    fn record(
        &self,
        tree: &str,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> ConflictableTransactionResult<(), ()> {
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        self.outbox
            .insert(&seq.to_be_bytes(), encode(tree, key, value))?;
        Ok(())
    }
}

/// An outbox entry: the change as JSON.
fn encode(tree: &str, key: &[u8], value: Option<&[u8]>) -> Vec<u8> {
    let change = Change {
        tree: tree.to_owned(),
        key: key.to_vec(),
        value: value.map(<[u8]>::to_vec),
    };
    serde_json::to_vec(&change).expect("changes always serialise")
}

/// A sled tree whose every write is replicated through the changelog. Reads go to the local
/// copy (it dereferences to the sled tree); writes must use the methods here.
#[derive(Clone)]
pub struct ReplicatedTree {
    name: &'static str,
    tree: sled::Tree,
    changes: Changes,
}

impl std::fmt::Debug for ReplicatedTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatedTree")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for ReplicatedTree {
    type Target = sled::Tree;

    fn deref(&self) -> &sled::Tree {
        &self.tree
    }
}

impl ReplicatedTree {
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The changelog this tree's writes go to.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// One write, then its outbox entry: not in one transaction (a sled transaction takes
    /// the database's write lock, and the CPs' records are written at every change of
    /// state). A crash in between loses the change from the changelog, never a write that
    /// was acknowledged: what is acknowledged waits for [`Changes::settled`], which waits for
    /// the entry.
    pub fn insert(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.tree.insert(key, value)?;
        self.changes.record(self.name, key, Some(value))
    }

    /// Stores `value` as JSON under `key`.
    pub fn put<T: Serialize>(&self, key: &[u8], value: &T) -> Result<(), StoreError> {
        self.insert(
            key,
            &serde_json::to_vec(value).expect("records always serialise"),
        )
    }

    /// Removes `key`; whether it was there.
    pub fn remove(&self, key: &[u8]) -> Result<bool, StoreError> {
        let was = self.tree.remove(key)?.is_some();
        if was {
            self.changes.record(self.name, key, None)?;
        }
        Ok(was)
    }

    /// Writes `new` (or removes, `None`) only if the value is still `old`; whether it did.
    pub fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let swapped = self.changes.transaction(&[self], |txn| {
            if txn.get(self.name, key)?.as_deref() != old {
                return Err(ConflictableTransactionError::Abort(()));
            }
            match new {
                Some(value) => txn.insert(self.name, key, value),
                None => txn.remove(self.name, key).map(|_| ()),
            }
        })?;
        Ok(swapped.is_ok())
    }
}

/// Bytes as lowercase hex, in the outbox's JSON.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn encode(bytes: &[u8]) -> String {
        hex::encode(bytes)
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod hex_option {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => s.serialize_some(&hex::encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| hex::decode(text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_is_in_the_outbox_in_order_until_shipped() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let changes = Changes::open(&db).unwrap();
        let cps = changes.tree("cps").unwrap();
        cps.insert(b"CP1", b"one").unwrap();
        assert!(cps.compare_and_swap(b"CP2", None, Some(b"two")).unwrap());
        assert!(!cps.compare_and_swap(b"CP2", None, Some(b"again")).unwrap());
        assert!(cps.remove(b"CP1").unwrap());
        assert!(!cps.remove(b"CP1").unwrap());
        let pending = changes.pending(0, 10).unwrap();
        let shown: Vec<(String, Option<Vec<u8>>)> = pending
            .iter()
            .map(|(_, c)| (c.record_key(), c.value.clone()))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("cps/435031".to_string(), Some(b"one".to_vec())),
                ("cps/435032".to_string(), Some(b"two".to_vec())),
                ("cps/435031".to_string(), None),
            ]
        );
        changes.shipped(pending[1].0).unwrap();
        // Reopened, the outbox still holds what was not shipped, numbered after it.
        drop((cps, changes));
        let changes = Changes::open(&db).unwrap();
        let left = changes.pending(0, 10).unwrap();
        assert_eq!(left.len(), 2);
        changes
            .tree("cps")
            .unwrap()
            .insert(b"CP3", b"three")
            .unwrap();
        let after = changes.pending(0, 10).unwrap();
        assert!(after[2].0 > after[1].0);
    }

    #[test]
    fn changes_from_elsewhere_apply_with_their_position() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let changes = Changes::open(&db).unwrap();
        let change = Change {
            tree: "drivers".into(),
            key: b"D1".to_vec(),
            value: Some(b"{}".to_vec()),
        };
        changes.apply(&change, 3, 41).unwrap();
        assert_eq!(changes.position(3).unwrap(), 42);
        assert_eq!(changes.position(0).unwrap(), 0);
        assert_eq!(
            changes
                .tree("drivers")
                .unwrap()
                .get(b"D1")
                .unwrap()
                .unwrap(),
            b"{}".as_slice()
        );
        // Applied changes are not shipped again.
        assert!(changes.pending(0, 10).unwrap().is_empty());
        let outside = Change {
            tree: "changelog_positions".into(),
            ..change
        };
        assert!(changes.apply(&outside, 3, 42).is_err());
        assert_eq!(changes.position(3).unwrap(), 43);
    }
}

//! The partitions one member of a consumer group holds: what the group's assignment gives
//! it and takes away. The entities keyed to those partitions are this member's to run.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

/// Shared between the consumer that is assigned partitions and whoever runs their keys'
/// entities. Changes are seen at once (`holds`) and can be awaited (`changes`).
#[derive(Debug, Clone)]
pub struct HeldPartitions {
    partitions: Arc<watch::Sender<BTreeSet<i32>>>,
    /// Partitions of the topic: a key's partition is computed against it.
    of: Arc<AtomicI32>,
}

impl HeldPartitions {
    /// None held yet, of a topic of `partitions` partitions.
    pub fn new(partitions: i32) -> HeldPartitions {
        HeldPartitions {
            partitions: Arc::new(watch::channel(BTreeSet::new()).0),
            of: Arc::new(AtomicI32::new(partitions.max(1))),
        }
    }

    /// The topic turned out to have `partitions` partitions (it was made before, with
    /// other settings): keys are placed against that.
    pub fn set_topic_partitions(&self, partitions: i32) {
        self.of.store(partitions.max(1), Ordering::SeqCst);
    }

    /// The partition `key` lands in.
    pub fn partition_of(&self, key: &str) -> i32 {
        super::partitioner::partition_of(key, self.of.load(Ordering::SeqCst))
    }

    /// Whether the partition of `key` is held now.
    pub fn holds_key(&self, key: &str) -> bool {
        self.holds(self.partition_of(key))
    }

    pub fn holds(&self, partition: i32) -> bool {
        self.partitions.borrow().contains(&partition)
    }

    /// The partitions held now, in order.
    pub fn now(&self) -> BTreeSet<i32> {
        self.partitions.borrow().clone()
    }

    /// Follows every change of the partitions held.
    pub fn changes(&self) -> watch::Receiver<BTreeSet<i32>> {
        self.partitions.subscribe()
    }

    pub(super) fn take(&self, partitions: impl Iterator<Item = i32>) {
        let new: Vec<i32> = partitions.collect();
        log::info!("assigned partitions {new:?}");
        self.partitions.send_modify(|held| held.extend(new));
    }

    pub(super) fn release(&self, partitions: impl Iterator<Item = i32>) {
        let lost: Vec<i32> = partitions.collect();
        log::info!("partitions {lost:?} revoked");
        self.partitions.send_modify(|held| {
            for partition in &lost {
                held.remove(partition);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_held_with_their_partition() {
        let held = HeldPartitions::new(6);
        let key = "CP001";
        let partition = held.partition_of(key);
        assert!(!held.holds_key(key));
        held.take([partition].into_iter());
        assert!(held.holds_key(key));
        let changes = held.changes();
        held.release([partition].into_iter());
        assert!(changes.has_changed().unwrap());
        assert!(!held.holds_key(key));
    }
}

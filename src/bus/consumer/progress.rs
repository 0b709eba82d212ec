//! Which records a consumer has handed over and not yet seen handled, and so which offsets
//! it may store. Records finish in any order (a driver's request may wait on a durable
//! write while thousands of hellos behind it are done); an offset is stored only once every
//! record before it in its partition is handled: at least once, as in order. A slow record
//! holds back its partition's stored offset, never the records after it.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

#[derive(Debug, Default)]
pub(super) struct Progress {
    /// Handed over and not handled yet, by partition and offset: since when, and what.
    unfinished: BTreeMap<(i32, i64), (Instant, String)>,
    /// Per partition: the highest offset handed over, and the highest stored (or the one
    /// before the first handed over).
    partitions: HashMap<i32, Partition>,
}

#[derive(Debug, Clone, Copy)]
struct Partition {
    received: i64,
    stored: i64,
}

impl Progress {
    /// The record at `offset` of `partition`, described by `what`, is handed over.
    pub fn received(&mut self, partition: i32, offset: i64, what: String) {
        let seen = self.partitions.entry(partition).or_insert(Partition {
            received: offset,
            stored: offset - 1,
        });
        seen.received = seen.received.max(offset);
        self.unfinished
            .insert((partition, offset), (Instant::now(), what));
    }

    /// The record at `offset` of `partition` is handled. Returns the offset to store for
    /// its partition, when that moved: the last one before the first still unfinished, or
    /// the highest handed over when none is.
    pub fn handled(&mut self, partition: i32, offset: i64) -> Option<i64> {
        self.unfinished.remove(&(partition, offset));
        let seen = self.partitions.get_mut(&partition)?;
        let safe = match self
            .unfinished
            .range((partition, i64::MIN)..=(partition, i64::MAX))
            .next()
        {
            Some((&(_, first_unfinished), _)) => first_unfinished - 1,
            None => seen.received,
        };
        (safe > seen.stored).then(|| {
            seen.stored = safe;
            safe
        })
    }

    /// The record waiting longest, and since when.
    pub fn slowest(&self) -> Option<(Instant, &str)> {
        self.unfinished
            .values()
            .min_by_key(|(since, _)| *since)
            .map(|(since, what)| (*since, what.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_is_stored_once_every_record_before_it_is_handled() {
        let mut progress = Progress::default();
        for offset in 10..15 {
            progress.received(0, offset, format!("record {offset}"));
        }
        // The first is slow: the others finish, nothing may be stored yet.
        for offset in 11..15 {
            assert_eq!(progress.handled(0, offset), None);
        }
        assert_eq!(progress.slowest().map(|(_, what)| what), Some("record 10"));
        // Once it is handled, everything up to the last is.
        assert_eq!(progress.handled(0, 10), Some(14));
        assert_eq!(progress.slowest(), None);
    }

    #[test]
    fn a_slow_record_holds_back_only_its_own_partition() {
        let mut progress = Progress::default();
        progress.received(0, 5, "p0@5".into());
        progress.received(1, 7, "p1@7".into());
        progress.received(0, 6, "p0@6".into());
        progress.received(1, 8, "p1@8".into());
        assert_eq!(progress.handled(1, 7), Some(7));
        assert_eq!(progress.handled(0, 6), None); // 5 is still unfinished
        assert_eq!(progress.handled(1, 8), Some(8));
        assert_eq!(progress.handled(0, 5), Some(6));
    }

    #[test]
    fn a_partition_read_again_from_an_earlier_offset_never_stores_backwards() {
        let mut progress = Progress::default();
        progress.received(0, 20, "first read".into());
        assert_eq!(progress.handled(0, 20), Some(20));
        // Given back after a rebalance, from the last committed offset.
        progress.received(0, 18, "read again".into());
        assert_eq!(progress.handled(0, 18), None);
        progress.received(0, 21, "new".into());
        assert_eq!(progress.handled(0, 21), Some(21));
    }
}

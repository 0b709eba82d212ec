//! Records a consumer never read because the broker no longer held them: it read a topic so
//! far behind its writers that the broker's retention deleted what it had not reached yet.
//!
//! librdkafka says so in one warning (an offset reset "due to error": the position it was
//! to fetch is out of range) and goes on from the log's start. Nothing else says it, so the
//! records would be lost in silence: this counts them (`evcharge_consumer_records_lost_total`)
//! and says it in one plain line.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Says records were lost at most this often (with the count since it last said).
const LOSS_INTERVAL: Duration = Duration::from_secs(30);

/// What librdkafka's warning says: `topic [partition]` was to be read from offset `at`, and
/// is now read from `to` (when it says; a reset to the log's start may have to ask the
/// broker where that is first).
#[derive(Debug, PartialEq, Eq)]
pub struct OffsetReset<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub at: i64,
    pub to: Option<i64>,
}

/// Reads librdkafka's line (facility `OFFSET`), of the form `[thrd:main]: T [P]: offset reset (at offset A (leader epoch E), broker B) to [cached BEGINNING offset
/// ]offset C (leader epoch E): reason: error`.
pub fn offset_reset(line: &str) -> Option<OffsetReset<'_>> {
    // The thread it comes from, first.
    let line = line
        .strip_prefix("[thrd:")
        .and_then(|l| l.split_once("]: "))
        .map_or(line, |(_, rest)| rest);
    let (topic, rest) = line.split_once(" [")?;
    let (partition, rest) = rest.split_once("]: offset reset (at offset ")?;
    let (at, rest) = rest.split_once(' ')?;
    let (_, target) = rest.split_once(") to ")?;
    let (target, _) = target.split_once(" (leader epoch")?;
    let to = target.rsplit(' ').next()?;
    Some(OffsetReset {
        topic,
        partition: partition.parse().ok()?,
        at: at.parse().ok()?,
        to: to.parse().ok(),
    })
}

/// The records lost so far, and what is yet to be said of them.
#[derive(Debug, Default)]
pub struct LostRecords {
    /// Resets whose new position is not known yet: from where each partition's loss runs.
    pending: HashMap<(String, i32), i64>,
    /// Per topic, lost since it last said so.
    unsaid: HashMap<String, u64>,
    said: Option<Instant>,
}

impl LostRecords {
    /// Takes note of a reset, counting what it skipped if the line says where it goes.
    pub fn reset(&mut self, reset: OffsetReset<'_>) {
        match reset.to {
            Some(to) => self.lost(reset.topic, to - reset.at),
            None => {
                self.pending
                    .insert((reset.topic.to_owned(), reset.partition), reset.at);
            }
        }
    }

    /// A partition's position from the statistics: a pending reset's loss is now known.
    pub fn position(&mut self, topic: &str, partition: i32, next_offset: i64) {
        if next_offset < 0 {
            return;
        }
        if let Some(at) = self.pending.remove(&(topic.to_owned(), partition)) {
            self.lost(topic, next_offset - at);
        }
    }

    fn lost(&mut self, topic: &str, count: i64) {
        let Ok(count) = u64::try_from(count) else {
            return;
        };
        if count == 0 {
            return;
        }
        crate::metrics::count_records_lost(topic, count);
        *self.unsaid.entry(topic.to_owned()).or_default() += count;
    }

    /// Says what was lost since it last said, at most every [`LOSS_INTERVAL`].
    pub fn say(&mut self, role: &str) {
        if self.unsaid.is_empty() || self.said.is_some_and(|at| at.elapsed() < LOSS_INTERVAL) {
            return;
        }
        self.said = Some(Instant::now());
        for (topic, count) in self.unsaid.drain() {
            log::error!(
                "{role}: the broker no longer holds {count} records of {topic} that this \
                 {role} had not read yet: its writers got further ahead of it than the \
                 broker keeps, so they are lost to it. It is past its capacity: give \
                 {topic} more partitions, or start another instance to share the load"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reset_line_says_the_partition_and_both_positions() {
        let cached = "[thrd:main]: cp.events [3]: offset reset (at offset 12345 (leader epoch 0), broker 1) \
                      to cached BEGINNING offset offset 20000 (leader epoch -1): fetch failed \
                      due to requested offset not available on the broker: Broker: Offset out \
                      of range";
        assert_eq!(
            offset_reset(cached),
            Some(OffsetReset {
                topic: "cp.events",
                partition: 3,
                at: 12345,
                to: Some(20000)
            })
        );
        let queried = "driver.updates [0]: offset reset (at offset 7 (leader epoch -1), broker \
                       2) to offset BEGINNING (leader epoch -1): fetch failed: Broker: Offset \
                       out of range";
        assert_eq!(offset_reset(queried).and_then(|r| r.to), None);
        assert_eq!(offset_reset(queried).map(|r| r.at), Some(7));
        assert_eq!(offset_reset("Fetch backoff for 500ms"), None);
    }

    #[test]
    fn a_pending_reset_counts_once_its_position_is_known() {
        let mut lost = LostRecords::default();
        lost.reset(OffsetReset {
            topic: "t",
            partition: 0,
            at: 100,
            to: None,
        });
        lost.position("t", 0, -1001);
        assert!(lost.unsaid.is_empty(), "no position yet");
        lost.position("t", 0, 160);
        lost.position("t", 0, 170);
        assert_eq!(lost.unsaid.get("t"), Some(&60));
    }
}

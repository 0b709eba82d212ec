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
    /// Per partition reset and not fetched past where it went yet: how it stands.
    resets: HashMap<(String, i32), AfterReset>,
    /// Partitions the consumer is to read on from the end of (`take_seeks`).
    seeks: Vec<(String, i32)>,
}

/// A partition reset, until a fetch gets past where the reset said it reads on from.
#[derive(Debug, Clone, Copy)]
enum AfterReset {
    /// Reset to `to`.
    To(i64),
    /// Reset to `to`, from a log start an earlier reset went to and the broker had already
    /// moved past: the demo broker trims its log on every write, so under steady writes each
    /// reset to its start is out of range again by the time it is fetched, and nothing more
    /// is read.
    Stale(i64),
}

impl AfterReset {
    fn to(self) -> i64 {
        match self {
            AfterReset::To(to) | AfterReset::Stale(to) => to,
        }
    }
}

/// What the statistics say of one partition.
#[derive(Debug, Clone, Copy)]
pub struct Position {
    /// The offset to fetch next.
    pub next: i64,
    /// Records fetched and not yet handed to the application.
    pub queued: i64,
}

impl LostRecords {
    /// Takes note of a reset, counting what it skipped if the line says where it goes.
    pub fn reset(&mut self, reset: OffsetReset<'_>) {
        let key = (reset.topic.to_owned(), reset.partition);
        // Already counted from where it was, once its position is known.
        if self.pending.contains_key(&key) {
            return;
        }
        match reset.to {
            Some(to) => {
                let stale = self.resets.get(&key).is_some_and(|before| {
                    matches!(before, AfterReset::Stale(_)) || before.to() == reset.at
                });
                let now = if stale {
                    AfterReset::Stale(to)
                } else {
                    AfterReset::To(to)
                };
                self.resets.insert(key, now);
                self.lost(reset.topic, to - reset.at);
            }
            None => {
                self.pending.insert(key, reset.at);
            }
        }
    }

    /// A partition's position from the statistics: a pending reset's loss is now known; a
    /// partition stuck on stale log starts, with nothing left to hand on, is sent to the
    /// log's end, the one place a fetch is sure to find in range however fast the broker
    /// deletes (what it skips is counted once its position is known).
    pub fn position(&mut self, topic: &str, partition: i32, at: Position) {
        if at.next < 0 {
            return;
        }
        let key = (topic.to_owned(), partition);
        if let Some(from) = self.pending.remove(&key) {
            self.lost(topic, at.next - from);
        }
        // A fetch got past the last reset's start: it reads again.
        match self.resets.get(&key) {
            Some(reset) if at.next > reset.to() => {
                self.resets.remove(&key);
            }
            Some(AfterReset::Stale(_)) if at.queued == 0 => {
                self.resets.remove(&key);
                self.pending.insert(key.clone(), at.next);
                self.seeks.push(key);
            }
            _ => {}
        }
    }

    /// The partitions the consumer is to read on from the end of, once each.
    pub fn take_seeks(&mut self) -> Vec<(String, i32)> {
        std::mem::take(&mut self.seeks)
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
        let at = |next| Position { next, queued: 0 };
        lost.position("t", 0, at(-1001));
        assert!(lost.unsaid.is_empty(), "no position yet");
        lost.position("t", 0, at(160));
        lost.position("t", 0, at(170));
        assert_eq!(lost.unsaid.get("t"), Some(&60));
        assert!(
            lost.take_seeks().is_empty(),
            "one reset is no reason to seek"
        );
    }

    #[test]
    fn resets_to_stale_log_starts_send_the_consumer_into_the_log() {
        let mut lost = LostRecords::default();
        let reset = |at, to| OffsetReset {
            topic: "t",
            partition: 2,
            at,
            to: Some(to),
        };
        lost.reset(reset(100, 200));
        lost.reset(reset(200, 300));
        let at = |next, queued| Position { next, queued };
        lost.position("t", 2, at(300, 5));
        assert!(
            lost.take_seeks().is_empty(),
            "records are still to be handed on"
        );
        lost.position("t", 2, at(300, 0));
        assert_eq!(lost.take_seeks(), [("t".to_owned(), 2)]);
        // A reset before the seek is done is counted within the seek.
        lost.reset(reset(300, 400));
        lost.position("t", 2, at(-1, 0));
        assert!(lost.take_seeks().is_empty(), "once");
        // At the end it was sent to: what it skipped is counted.
        lost.position("t", 2, at(1300, 0));
        assert_eq!(lost.unsaid.get("t"), Some(&1200));
    }
}

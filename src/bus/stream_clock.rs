//! How far a consumer has read a topic, in the time its records were written: Kafka
//! Streams' "stream time". A process that falls behind a topic (past its capacity, or
//! frozen for a while) reads records written seconds ago; judged by the wall clock, every
//! party it hears of through them would look silent, and it would take them for gone. Judged
//! by this clock, a party is silent only when records written after its last one have been
//! read without one of its own.

use chrono::{DateTime, TimeDelta, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Shared by the consumer of a topic, which advances it, and whoever judges silence by it.
#[derive(Debug, Clone, Default)]
pub struct StreamClock(Arc<Mutex<Reading>>);

#[derive(Debug, Default)]
struct Reading {
    /// Per partition: the newest write time read, and when it was read; none once read to
    /// its end (until its next record), so that an idle partition whose last record is old
    /// does not hold the clock back.
    partitions: HashMap<i32, Option<(DateTime<Utc>, Instant)>>,
    /// Since when the consumer takes no record (all it may hold are in flight): its clock
    /// does not run meanwhile.
    held_since: Option<Instant>,
}

impl StreamClock {
    /// A record written at `written` (its Kafka timestamp) was read from `partition`. A
    /// time ahead of this machine's clock counts as now: a forged or skewed record cannot
    /// push the clock ahead.
    pub(super) fn read(&self, partition: i32, written: DateTime<Utc>) {
        let at = Instant::now();
        let written = written.min(Utc::now());
        let mut reading = self.lock();
        let entry = reading
            .partitions
            .entry(partition)
            .or_default()
            .get_or_insert((written, at));
        entry.0 = entry.0.max(written);
        entry.1 = at;
    }

    /// The consumer has read `partition` to its end: nothing is waiting there, and it holds
    /// the clock back no more.
    pub(super) fn at_end(&self, partition: i32) {
        self.lock().partitions.insert(partition, None);
    }

    /// The consumer no longer reads `partitions` (the group gave them to another member).
    pub(super) fn forget(&self, partitions: impl IntoIterator<Item = i32>) {
        let mut reading = self.lock();
        for partition in partitions {
            reading.partitions.remove(&partition);
        }
    }

    /// The consumer has as many records in flight as it may: it reads nothing until some
    /// are handled, so its clock stops.
    pub(super) fn hold(&self) {
        let mut reading = self.lock();
        reading.held_since.get_or_insert_with(Instant::now);
    }

    /// The consumer reads again: its clock goes on from where it stopped.
    pub(super) fn release(&self) {
        let mut reading = self.lock();
        if let Some(since) = reading.held_since.take() {
            let held = since.elapsed();
            for (_, at) in reading.partitions.values_mut().flatten() {
                *at += held;
            }
        }
    }

    /// The time up to which the topic has been read: on each partition, the newest write
    /// time read plus the time since (a caught-up consumer waiting for the next record is
    /// not behind), and the earliest of the partitions, so that no party is judged ahead of
    /// what was read of it. The wall clock before anything is read.
    pub fn now(&self) -> DateTime<Utc> {
        let wall = Utc::now();
        let reading = self.lock();
        let stopped = reading.held_since;
        reading
            .partitions
            .values()
            .flatten()
            .map(|&(written, at)| {
                let since = stopped
                    .unwrap_or_else(Instant::now)
                    .saturating_duration_since(at);
                written + TimeDelta::from_std(since).unwrap_or(TimeDelta::MAX)
            })
            .min()
            .map_or(wall, |read_up_to| read_up_to.min(wall))
    }

    /// How far behind the wall clock the reading is.
    pub fn behind(&self) -> Duration {
        Utc::now()
            .signed_duration_since(self.now())
            .to_std()
            .unwrap_or_default()
    }

    /// How long ago, by this clock, something written at `written` was written.
    pub fn age(&self, written: DateTime<Utc>) -> Duration {
        self.now()
            .signed_duration_since(written)
            .to_std()
            .unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Reading> {
        // Nothing panics while holding it; a poisoned lock still holds a valid reading.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: i64) -> TimeDelta {
        TimeDelta::seconds(s)
    }

    #[test]
    fn before_anything_is_read_it_is_the_wall_clock() {
        let clock = StreamClock::default();
        assert!(clock.behind() < Duration::from_millis(50));
    }

    #[test]
    fn a_consumer_reading_old_records_is_behind_by_their_age() {
        let clock = StreamClock::default();
        clock.read(0, Utc::now() - secs(6));
        let behind = clock.behind();
        assert!(
            behind > Duration::from_millis(5900) && behind < Duration::from_millis(6100),
            "{behind:?}"
        );
        assert!(clock.age(Utc::now() - secs(7)) < Duration::from_millis(1100));
    }

    #[test]
    fn the_partition_read_least_far_sets_the_clock() {
        let clock = StreamClock::default();
        clock.read(0, Utc::now());
        clock.read(1, Utc::now() - secs(4));
        clock.read(0, Utc::now() - secs(9)); // older than what partition 0 gave: no effect
        let behind = clock.behind();
        assert!(
            behind > Duration::from_millis(3900) && behind < Duration::from_millis(4100),
            "{behind:?}"
        );
    }

    #[test]
    fn a_partition_read_to_its_end_holds_the_clock_back_no_more() {
        let clock = StreamClock::default();
        clock.read(0, Utc::now());
        clock.read(1, Utc::now() - secs(30)); // an old last record, read at a restart
        assert!(clock.behind() > Duration::from_secs(29));
        clock.at_end(1);
        assert!(
            clock.behind() < Duration::from_millis(100),
            "{:?}",
            clock.behind()
        );
        clock.read(1, Utc::now() - secs(3)); // more behind it again
        assert!(clock.behind() > Duration::from_millis(2900));
    }

    #[test]
    fn a_record_from_the_future_counts_as_now() {
        let clock = StreamClock::default();
        clock.read(0, Utc::now() + secs(3600));
        assert!(clock.now() <= Utc::now());
        assert!(clock.age(Utc::now() - secs(2)) > Duration::from_millis(1900));
    }

    #[test]
    fn the_clock_runs_while_waiting_for_records_and_stops_while_held() {
        let clock = StreamClock::default();
        clock.read(0, Utc::now() - secs(5));
        std::thread::sleep(Duration::from_millis(200));
        let waiting = clock.behind();
        assert!(waiting < Duration::from_millis(5050), "{waiting:?}");
        clock.hold();
        std::thread::sleep(Duration::from_millis(200));
        let held = clock.behind();
        assert!(
            held >= waiting + Duration::from_millis(150),
            "{waiting:?} then {held:?}"
        );
        clock.release();
        let released = clock.behind();
        assert!(
            released >= held - Duration::from_millis(50),
            "{held:?} then {released:?}"
        );
    }
}

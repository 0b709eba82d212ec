//! The consumer against a real broker (the embedded one): a record still being handled
//! holds back no record behind it, only its partition's stored offset.

use super::*;
use crate::bus::EmbeddedBroker;
use crate::configuration::KafkaSettings;
use crate::messages::{DenyReason, DriverUpdate};
use actix::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;
use uuid::Uuid;

/// Records behind the slow one: more than a consumer keeps in flight.
const BEHIND: usize = IN_FLIGHT + 1000;

/// Handles the record keyed `SLOW` once released; every other at once, counted.
struct Sink {
    handled: Arc<AtomicUsize>,
    release: Option<oneshot::Receiver<()>>,
}

impl Actor for Sink {
    type Context = Context<Self>;
}

impl Handler<Inbound<DriverUpdate>> for Sink {
    type Result = ResponseFuture<Result<(), Rejection>>;

    fn handle(&mut self, msg: Inbound<DriverUpdate>, _: &mut Self::Context) -> Self::Result {
        if msg.key == "SLOW" {
            let release = self.release.take();
            return Box::pin(async move {
                if let Some(release) = release {
                    let _ = release.await;
                }
                Ok(())
            });
        }
        self.handled.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }
}

fn denied(driver_id: &str) -> DriverUpdate {
    DriverUpdate::Denied {
        request_id: Uuid::new_v4(),
        driver_id: driver_id.into(),
        cp_id: None,
        reason: DenyReason::CpStarting,
        detail: "a record of the test".into(),
    }
}

/// An embedded broker whose topics have one partition, so every record is behind the one
/// before it, and settings pointing at it.
fn one_partition_broker() -> (EmbeddedBroker, KafkaSettings) {
    let settings = KafkaSettings {
        partitions: 1,
        fetch_wait: Duration::from_millis(5),
        ..KafkaSettings::default()
    };
    let broker = EmbeddedBroker::start(&settings, 1).expect("the embedded broker starts");
    let settings = KafkaSettings {
        bootstrap: broker.bootstrap(),
        ..settings
    };
    (broker, settings)
}

#[test]
fn a_record_still_being_handled_holds_back_no_record_behind_it() {
    let (_broker, settings) = one_partition_broker();
    System::new().block_on(async move {
        let bus = Bus::new(&settings, "test");
        let publisher = bus.publisher().expect("a publisher");
        // One partition: every record is behind the slow one.
        publisher
            .driver_update(denied("SLOW"))
            .await
            .expect("written");
        let writes = (0..BEHIND).map(|i| {
            let publisher = publisher.clone();
            async move {
                publisher
                    .driver_update(denied(&format!("D{}", i % 64)))
                    .await
            }
        });
        for written in futures_util::future::join_all(writes).await {
            written.expect("written");
        }

        let handled = Arc::new(AtomicUsize::new(0));
        let (release, released) = oneshot::channel();
        let sink = Sink {
            handled: handled.clone(),
            release: Some(released),
        }
        .start();
        let topic = bus.topics().driver_updates.clone();
        bus.spawn_consumer("test", &topic, StartAt::Earliest, sink.recipient(), None)
            .expect("a consumer");

        let deadline = Instant::now() + Duration::from_secs(60);
        while handled.load(Ordering::SeqCst) < BEHIND && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            handled.load(Ordering::SeqCst),
            BEHIND,
            "the records behind one still being handled were not all handled"
        );
        let clock = bus.stream_clock(&topic);
        assert!(
            clock.behind() < Duration::from_secs(30),
            "{:?}",
            clock.behind()
        );
        let _ = release.send(());
    });
}

/// Handles a record a millisecond until the test lets them all through at once.
struct SlowSink {
    open: tokio::sync::watch::Receiver<bool>,
    handled: Arc<AtomicUsize>,
    /// The record keyed `LAST` was handled.
    last: Arc<AtomicBool>,
    /// The last batch whose record keyed `MARK` was handled.
    marked: Arc<AtomicUsize>,
}

impl Actor for SlowSink {
    type Context = Context<Self>;
}

impl Handler<Inbound<DriverUpdate>> for SlowSink {
    type Result = ResponseFuture<Result<(), Rejection>>;

    fn handle(&mut self, msg: Inbound<DriverUpdate>, _: &mut Self::Context) -> Self::Result {
        let mut open = self.open.clone();
        let (handled, last) = (self.handled.clone(), self.last.clone());
        let marked = self.marked.clone();
        Box::pin(async move {
            if !*open.borrow_and_update() {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            handled.fetch_add(1, Ordering::SeqCst);
            if msg.key == "LAST" {
                last.store(true, Ordering::SeqCst);
            }
            if let (true, DriverUpdate::Denied { detail, .. }) =
                (msg.key == "MARK", &msg.envelope.body)
            {
                marked.fetch_max(detail.parse().unwrap_or(0), Ordering::SeqCst);
            }
            Ok(())
        })
    }
}

/// What this process counts as lost of `topic`.
fn records_lost(topic: &str) -> f64 {
    let name = format!("evcharge_consumer_records_lost_total{{topic=\"{topic}\"}} ");
    crate::metrics::render([])
        .lines()
        .find_map(|l| l.strip_prefix(&name)?.parse().ok())
        .unwrap_or(0.0)
}

/// The embedded broker keeps a few MB a partition: a consumer that cannot keep up with its
/// writers loses what the broker deletes before it gets there. It says so, and goes on
/// reading at its pace while the writers go on (the demo broker trims its log on every write,
/// so a reset to the log's start alone would find it moved again, fetch after fetch).
#[test]
fn records_the_broker_deleted_before_they_were_read_are_counted_as_lost() {
    let (_broker, settings) = one_partition_broker();
    // The writers run on a thread of their own, as fast as the broker takes them, each
    // batch ending with a record keyed `MARK` that says its number, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let batches = Arc::new(AtomicUsize::new(0));
    let writers = {
        let (settings, stop, batches) = (settings.clone(), stop.clone(), batches.clone());
        std::thread::spawn(move || {
            System::new().block_on(async move {
                let publisher = Bus::new(&settings, "writer")
                    .publisher()
                    .expect("a publisher");
                while !stop.load(Ordering::SeqCst) {
                    let batch = batches.load(Ordering::SeqCst) + 1;
                    let mark = DriverUpdate::Denied {
                        request_id: Uuid::new_v4(),
                        driver_id: "MARK".into(),
                        cp_id: None,
                        reason: DenyReason::CpStarting,
                        detail: batch.to_string(),
                    };
                    let writes = (0..1999).map(|_| denied("D")).chain([mark]);
                    let writes = writes.map(|record| publisher.driver_update(record));
                    for written in futures_util::future::join_all(writes).await {
                        written.expect("written");
                    }
                    batches.store(batch, Ordering::SeqCst);
                }
            });
        })
    };
    System::new().block_on(async move {
        let bus = Bus::new(&settings, "test");
        let publisher = bus.publisher().expect("a publisher");
        let topic = bus.topics().driver_updates.clone();
        let (open, opened) = tokio::sync::watch::channel(false);
        let handled = Arc::new(AtomicUsize::new(0));
        let last = Arc::new(AtomicBool::new(false));
        let marked = Arc::new(AtomicUsize::new(0));
        let sink = SlowSink {
            open: opened,
            handled: handled.clone(),
            last: last.clone(),
            marked: marked.clone(),
        }
        .start();
        bus.spawn_consumer("test", &topic, StartAt::Earliest, sink.recipient(), None)
            .expect("a consumer");

        // One key: its records are handled one after another, far slower than written. The
        // consumer's fetch queue fills, and the broker deletes records it had not fetched.
        let deadline = Instant::now() + Duration::from_secs(120);
        while records_lost(&topic) == 0.0 {
            assert!(
                Instant::now() < deadline,
                "{} records handled and none counted lost",
                handled.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // Let through, it keeps reading while the writers go on: it reads records written
        // after the loss, though the broker keeps deleting what it has not read.
        let after = batches.load(Ordering::SeqCst);
        let _ = open.send(true);
        let goes_on = Instant::now();
        while marked.load(Ordering::SeqCst) <= after {
            assert!(
                goes_on.elapsed() < Duration::from_secs(60),
                "under steady writes it read nothing written after it lost records"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // Once the writers stop, it reads on from what the broker still holds.
        stop.store(true, Ordering::SeqCst);
        publisher
            .driver_update(denied("LAST"))
            .await
            .expect("written");
        let read = Instant::now();
        while !last.load(Ordering::SeqCst) {
            assert!(
                read.elapsed() < Duration::from_secs(60),
                "it read nothing more after losing records"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    writers.join().expect("the writers end");
}

/// The embedded broker makes a group's first member wait before it is assigned; a member
/// whose session ran out meanwhile was dropped there, its connection blocked for good.
#[test]
fn a_member_with_a_session_shorter_than_kafkas_first_rebalance_delay_is_assigned() {
    let (_broker, settings) = one_partition_broker();
    System::new().block_on(async move {
        let bus = Bus::new(&settings, "test");
        let publisher = bus.publisher().expect("a publisher");
        publisher
            .driver_update(denied("D1"))
            .await
            .expect("written");
        let handled = Arc::new(AtomicUsize::new(0));
        let sink = Sink {
            handled: handled.clone(),
            release: None,
        }
        .start();
        // Shorter than Kafka's 3 s wait for a group's first members.
        let member = Member {
            group: "test-short-session",
            instance: "test-short-session-1",
            session_timeout: Duration::from_secs(2),
            held: crate::bus::HeldPartitions::new(1),
        };
        let topic = bus.topics().driver_updates.clone();
        bus.spawn_member(member, &topic, StartAt::Earliest, sink.recipient())
            .expect("a member");
        let deadline = Instant::now() + Duration::from_secs(30);
        while handled.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            handled.load(Ordering::SeqCst),
            1,
            "a member with a 2 s session was never assigned its partition"
        );
    });
}

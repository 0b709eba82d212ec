//! Many simulated drivers in one process (`evcharge fleet drivers`): one
//! [`SimulatedDriver`] actor each, behind one Kafka consumer. Driver `i` is paired with CP
//! `i`. The fleet paces requests at a set rate and keeps the authorisation round trips
//! (request sent → `authorised` received) in a histogram.

use super::key_router::{KeyRouter, Own};
use super::simulated_driver::{Ask, Release, SimulatedDriver};
use crate::bus::Publisher;
use crate::messages::DriverUpdate;
use actix::prelude::*;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often requests leave while a run is paced.
const PACE: Duration = Duration::from_millis(5);
/// A request still unanswered this long after the last one left is counted as lost.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// What the drivers have seen, counted without messages (progress comes thousands a second).
#[derive(Debug, Default)]
pub struct DriverCounters {
    pub started: AtomicU64,
    pub progress: AtomicU64,
    pub tickets: AtomicU64,
}

/// A paced series of requests.
struct Run {
    rate: f64,
    total: usize,
    sent: usize,
    began: Instant,
    last_sent: Option<Instant>,
    /// Keep each supply (else stop it as soon as it is authorised).
    hold: bool,
    latencies_us: Histogram<u64>,
    denied: BTreeMap<String, u64>,
}

pub struct DriverFleet {
    ids: Vec<String>,
    cp_ids: Vec<String>,
    heartbeat: Duration,
    publisher: Publisher,
    router: Addr<KeyRouter<DriverUpdate>>,
    drivers: Vec<Addr<SimulatedDriver>>,
    counters: Arc<DriverCounters>,
    run: Option<Run>,
}

impl DriverFleet {
    pub fn new(
        ids: Vec<String>,
        cp_ids: Vec<String>,
        heartbeat: Duration,
        publisher: Publisher,
        router: Addr<KeyRouter<DriverUpdate>>,
    ) -> DriverFleet {
        DriverFleet {
            ids,
            cp_ids,
            heartbeat,
            publisher,
            router,
            drivers: Vec::new(),
            counters: Arc::default(),
            run: None,
        }
    }

    /// Sends the requests now due.
    fn pace(&mut self) {
        let Some(run) = self.run.as_mut() else { return };
        let due = ((run.began.elapsed().as_secs_f64() * run.rate) as usize + 1).min(run.total);
        while run.sent < due {
            let pair = run.sent % self.drivers.len();
            self.drivers[pair].do_send(Ask {
                cp_id: self.cp_ids[pair].clone(),
                hold: run.hold,
            });
            run.sent += 1;
            run.last_sent = Some(Instant::now());
        }
    }

    fn report(&self) -> RunReport {
        let Some(run) = &self.run else {
            return RunReport::default();
        };
        let answered = run.latencies_us.len() + run.denied.values().sum::<u64>();
        let ms = |q: f64| run.latencies_us.value_at_quantile(q) as f64 / 1000.0;
        let waited_out = run.last_sent.is_some_and(|at| at.elapsed() >= ANSWER_WAIT);
        RunReport {
            sent: run.sent as u64,
            authorised: run.latencies_us.len(),
            denied: run.denied.clone(),
            unanswered: run.sent as u64 - answered,
            done: run.sent == run.total && (answered == run.sent as u64 || waited_out),
            seconds: run
                .last_sent
                .map_or(0.0, |at| (at - run.began).as_secs_f64()),
            p50_ms: ms(0.50),
            p90_ms: ms(0.90),
            p99_ms: ms(0.99),
            max_ms: run.latencies_us.max() as f64 / 1000.0,
        }
    }
}

impl Actor for DriverFleet {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        for id in &self.ids {
            let driver = SimulatedDriver::new(
                id.clone(),
                self.heartbeat,
                self.publisher.clone(),
                ctx.address(),
                self.counters.clone(),
            )
            .start();
            self.router.do_send(Own {
                key: id.clone(),
                owner: Some(driver.clone().recipient()),
            });
            self.drivers.push(driver);
        }
        log::info!("fleet: {} drivers ready", self.drivers.len());
        ctx.run_interval(PACE, |act, _| act.pace());
    }
}

/// A driver's request was answered after `after`: authorised, or denied for a reason.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Answered {
    pub after: Duration,
    pub denied: Option<String>,
}

impl Handler<Answered> for DriverFleet {
    type Result = ();

    fn handle(&mut self, msg: Answered, _ctx: &mut Self::Context) {
        let Some(run) = self.run.as_mut() else { return };
        match msg.denied {
            None => {
                let us = msg.after.as_micros().max(1) as u64;
                let _ = run.latencies_us.record(us);
            }
            Some(reason) => *run.denied.entry(reason).or_default() += 1,
        }
    }
}

/// Start a paced run of `count` requests at `rate` a second, driver `i` asking CP `i`
/// (round robin). With `hold` each supply goes on until [`ReleaseAll`].
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<(), String>")]
pub struct StartRun {
    pub rate: f64,
    pub count: usize,
    #[serde(default)]
    pub hold: bool,
}

impl Handler<StartRun> for DriverFleet {
    type Result = Result<(), String>;

    fn handle(&mut self, msg: StartRun, _ctx: &mut Self::Context) -> Self::Result {
        if self.run.as_ref().is_some_and(|run| run.sent < run.total) {
            return Err("a run is still going".into());
        }
        if msg.rate <= 0.0 || msg.count == 0 || self.drivers.is_empty() {
            return Err("a run needs a positive rate, requests and drivers".into());
        }
        self.run = Some(Run {
            rate: msg.rate,
            total: msg.count,
            sent: 0,
            began: Instant::now(),
            last_sent: None,
            hold: msg.hold,
            latencies_us: Histogram::new(3).expect("3 significant figures is valid"),
            denied: BTreeMap::new(),
        });
        self.pace();
        Ok(())
    }
}

/// The last run's figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunReport {
    pub sent: u64,
    pub authorised: u64,
    pub denied: BTreeMap<String, u64>,
    pub unanswered: u64,
    /// Every request has left and been answered (or waited out).
    pub done: bool,
    /// From the first request to the last.
    pub seconds: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Ask for the last run's [`RunReport`].
#[derive(Message)]
#[rtype(result = "RunReport")]
pub struct GetRunReport;

impl Handler<GetRunReport> for DriverFleet {
    type Result = MessageResult<GetRunReport>;

    fn handle(&mut self, _msg: GetRunReport, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.report())
    }
}

/// End every supply the drivers hold.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseAll;

impl Handler<ReleaseAll> for DriverFleet {
    type Result = ();

    fn handle(&mut self, _msg: ReleaseAll, _ctx: &mut Self::Context) {
        for driver in &self.drivers {
            driver.do_send(Release);
        }
    }
}

/// What the drivers have seen so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DriverFleetStatus {
    pub drivers: usize,
    pub started: u64,
    pub progress: u64,
    pub tickets: u64,
}

/// Ask for the [`DriverFleetStatus`].
#[derive(Message)]
#[rtype(result = "DriverFleetStatus")]
pub struct GetDriverFleetStatus;

impl Handler<GetDriverFleetStatus> for DriverFleet {
    type Result = MessageResult<GetDriverFleetStatus>;

    fn handle(&mut self, _msg: GetDriverFleetStatus, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(DriverFleetStatus {
            drivers: self.drivers.len(),
            started: self.counters.started.load(Ordering::Relaxed),
            progress: self.counters.progress.load(Ordering::Relaxed),
            tickets: self.counters.tickets.load(Ordering::Relaxed),
        })
    }
}

//! Many simulated charging points in one process (`evcharge fleet cps`): for each, a real
//! [`Engine`] and a real [`Monitor`] actor. The engines share one Kafka producer, one
//! consumer (through a [`KeyRouter`]), one health-check socket and one database; every
//! monitor holds its own TCP links to the engine socket and to the central, as a separate
//! process would. Parts can be crashed and restarted one at a time, to measure how fast the
//! central notices.

use super::key_router::{KeyRouter, Own};
use crate::actors::cp::engine::{TakingCommands, Vanish as EngineVanish};
use crate::actors::cp::health_checks::HealthTarget;
use crate::actors::cp::monitor::{CpIdentity, Vanish as MonitorVanish};
use crate::actors::cp::{Engine, Monitor};
use crate::bus::Publisher;
use crate::configuration::{EngineSettings, MonitorSettings};
use crate::messages::{CpCommand, Secret};
use crate::store::supply_log::SupplyLog;
use crate::store::GroupFlush;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

/// The engines of the fleet by CP id, as the shared health-check socket finds them.
pub type EngineDirectory = Rc<RefCell<HashMap<String, Addr<Engine>>>>;

/// Which part of a CP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Engine,
    Monitor,
}

impl std::str::FromStr for Part {
    type Err = String;

    fn from_str(s: &str) -> Result<Part, String> {
        match s {
            "engine" => Ok(Part::Engine),
            "monitor" => Ok(Part::Monitor),
            other => Err(format!("no part {other:?}: engine or monitor")),
        }
    }
}

/// What every CP of the fleet shares.
pub struct FleetParts {
    pub engine: EngineSettings,
    pub monitor: MonitorSettings,
    /// Each CP's secret, by id.
    pub secrets: HashMap<String, Secret>,
    pub publisher: Publisher,
    pub db: sled::Db,
    pub flush: GroupFlush,
    pub router: Addr<KeyRouter<CpCommand>>,
    pub engines: EngineDirectory,
    /// Told why when the central refuses a monitor for good.
    pub refusals: crate::actors::Refusals,
    /// How every monitor reaches the central (TLS or not).
    pub central_link: crate::link::Connector,
}

#[derive(Default)]
struct Running {
    engine: Option<Addr<Engine>>,
    monitor: Option<Addr<Monitor>>,
}

pub struct CpFleet {
    parts: FleetParts,
    ids: Vec<String>,
    running: HashMap<String, Running>,
    /// CPs started so far; the rest start in later batches.
    started: usize,
    taking_commands: bool,
}

/// CPs started per batch: thousands of monitors connecting in the same instant would
/// overflow the central's accept queue.
const BATCH: usize = 250;
const BATCH_PAUSE: Duration = Duration::from_millis(50);

impl CpFleet {
    pub fn new(parts: FleetParts, ids: Vec<String>) -> CpFleet {
        CpFleet {
            parts,
            ids,
            running: HashMap::new(),
            started: 0,
            taking_commands: false,
        }
    }

    fn start_engine(&mut self, id: &str) {
        let log = SupplyLog::shared(self.parts.db.clone(), self.parts.flush.clone(), id);
        let engine = Engine::new(
            id.to_owned(),
            uuid::Uuid::new_v4(),
            self.parts.engine.clone(),
            self.parts.publisher.clone(),
            log,
        )
        .start();
        engine.do_send(TakingCommands(self.taking_commands));
        self.parts.router.do_send(Own {
            key: id.to_owned(),
            owner: Some(engine.clone().recipient()),
        });
        self.parts
            .engines
            .borrow_mut()
            .insert(id.to_owned(), engine.clone());
        self.running.entry(id.to_owned()).or_default().engine = Some(engine);
    }

    fn start_monitor(&mut self, id: &str) {
        let Some(secret) = self.parts.secrets.get(id) else {
            log::error!("fleet: no secret for {id}; its monitor is not started");
            return;
        };
        let cp = CpIdentity {
            id: id.to_owned(),
            secret: secret.clone(),
        };
        let monitor = Monitor::new(cp, self.parts.monitor.clone(), self.parts.refusals.clone())
            .linking_through(self.parts.central_link.clone())
            .start();
        self.running.entry(id.to_owned()).or_default().monitor = Some(monitor);
    }

    fn start_batch(&mut self) {
        let end = (self.started + BATCH).min(self.ids.len());
        let batch = self.ids[self.started..end].to_vec();
        for id in &batch {
            self.start_engine(id);
            self.start_monitor(id);
        }
        self.started = end;
    }
}

impl CpFleet {
    /// Starts the next batch after a pause, until every CP runs.
    fn start_batches(&mut self, ctx: &mut Context<Self>) {
        self.start_batch();
        if self.started < self.ids.len() {
            ctx.run_later(BATCH_PAUSE, |act, ctx| act.start_batches(ctx));
        } else {
            log::info!("fleet: all {} charging points started", self.ids.len());
        }
    }
}

impl Actor for CpFleet {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        log::info!("fleet: starting {} charging points", self.ids.len());
        self.start_batches(ctx);
    }
}

impl Handler<TakingCommands> for CpFleet {
    type Result = ();

    /// Passes on to every engine whether the shared consumer holds its partitions.
    fn handle(&mut self, msg: TakingCommands, _ctx: &mut Self::Context) {
        self.taking_commands = msg.0;
        for engine in self.running.values().filter_map(|r| r.engine.as_ref()) {
            engine.do_send(TakingCommands(msg.0));
        }
    }
}

/// Crash one part of one CP, as a killed process would die; answers the instant it died.
#[derive(Message)]
#[rtype(result = "Result<DateTime<Utc>, String>")]
pub struct CrashPart {
    pub cp_id: String,
    pub part: Part,
}

impl Handler<CrashPart> for CpFleet {
    type Result = Result<DateTime<Utc>, String>;

    fn handle(&mut self, msg: CrashPart, _ctx: &mut Self::Context) -> Self::Result {
        let running = self
            .running
            .get_mut(&msg.cp_id)
            .ok_or_else(|| format!("no charging point {} in this fleet", msg.cp_id))?;
        match msg.part {
            Part::Engine => {
                let engine = running
                    .engine
                    .take()
                    .ok_or_else(|| format!("the engine of {} is already down", msg.cp_id))?;
                // Checks reaching the shared socket now find no engine, and close.
                self.parts.engines.borrow_mut().remove(&msg.cp_id);
                self.parts.router.do_send(Own {
                    key: msg.cp_id.clone(),
                    owner: None,
                });
                engine.do_send(EngineVanish);
            }
            Part::Monitor => {
                let monitor = running
                    .monitor
                    .take()
                    .ok_or_else(|| format!("the monitor of {} is already down", msg.cp_id))?;
                monitor.do_send(MonitorVanish);
            }
        }
        Ok(Utc::now())
    }
}

/// Start a crashed part again.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct RestartPart {
    pub cp_id: String,
    pub part: Part,
}

impl Handler<RestartPart> for CpFleet {
    type Result = Result<(), String>;

    fn handle(&mut self, msg: RestartPart, _ctx: &mut Self::Context) -> Self::Result {
        let running = self
            .running
            .get(&msg.cp_id)
            .ok_or_else(|| format!("no charging point {} in this fleet", msg.cp_id))?;
        match msg.part {
            Part::Engine if running.engine.is_none() => self.start_engine(&msg.cp_id),
            Part::Monitor if running.monitor.is_none() => self.start_monitor(&msg.cp_id),
            _ => return Err(format!("that part of {} is running", msg.cp_id)),
        }
        Ok(())
    }
}

/// How the fleet stands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetStatus {
    pub cps: usize,
    pub engines: usize,
    pub monitors: usize,
    pub taking_commands: bool,
}

/// Ask for the [`FleetStatus`].
#[derive(Message)]
#[rtype(result = "FleetStatus")]
pub struct GetFleetStatus;

impl Handler<GetFleetStatus> for CpFleet {
    type Result = MessageResult<GetFleetStatus>;

    fn handle(&mut self, _msg: GetFleetStatus, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(FleetStatus {
            cps: self.ids.len(),
            engines: self.running.values().filter(|r| r.engine.is_some()).count(),
            monitors: self
                .running
                .values()
                .filter(|r| r.monitor.is_some())
                .count(),
            taking_commands: self.taking_commands,
        })
    }
}

/// Where the shared health-check socket sends a check for `cp_id`.
pub fn health_target(engines: &EngineDirectory, cp_id: &str) -> HealthTarget {
    match engines.borrow().get(cp_id) {
        Some(engine) => HealthTarget::Engine(engine.clone()),
        None => HealthTarget::Gone,
    }
}

//! A CP's engine: accepts authorisations, supplies energy, reports it every period, and
//! answers its monitor's health checks (served by [`super::health_checks`]).
//!
//! The supply in progress is written to the [`SupplyLog`] before each report leaves, so the
//! energy any report announced survives a crash; a restarted engine reports the interrupted
//! supply's final state first thing.

use crate::bus::{Inbound, Publisher, Rejection};
use crate::configuration::EngineSettings;
use crate::domain::money::{cost_eur, round_kwh};
use crate::messages::{CpCommand, CpEvent, Outcome};
use crate::store::supply_log::{SupplyLog, SupplyRecord};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::time::Instant;
use uuid::Uuid;

/// What the engine is doing.
#[derive(Debug, Clone, PartialEq)]
enum Supply {
    Idle,
    Authorised {
        session_id: Uuid,
        driver_id: String,
        price_eur_kwh: f64,
        expires_at: DateTime<Utc>,
    },
    Supplying {
        session_id: Uuid,
        driver_id: String,
        price_eur_kwh: f64,
        started_at: DateTime<Utc>,
        since: Instant,
        kwh_exact: f64,
        last_tick: Instant,
    },
}

pub struct Engine {
    cp_id: String,
    /// This process's instance of the CP id, for the central's liveness check.
    instance: Uuid,
    settings: EngineSettings,
    publisher: Publisher,
    supply: Supply,
    /// A simulated fault, with its reason.
    fault: Option<String>,
    /// Commands from the central reach this engine (its consumer holds its partitions):
    /// otherwise it is not fit to serve.
    ready: bool,
    log: SupplyLog,
    /// Crash injection from the console may kill this process.
    allow_crash: bool,
    started_at: DateTime<Utc>,
}

impl Engine {
    pub fn new(
        cp_id: String,
        instance: Uuid,
        settings: EngineSettings,
        publisher: Publisher,
        log: SupplyLog,
    ) -> Engine {
        Engine {
            cp_id,
            instance,
            settings,
            publisher,
            supply: Supply::Idle,
            fault: None,
            ready: false,
            log,
            allow_crash: false,
            started_at: Utc::now(),
        }
    }

    /// Lets the central's crash injection kill this process.
    pub fn allowing_crash(mut self, allow: bool) -> Engine {
        self.allow_crash = allow;
        self
    }

    fn emit(&self, event: CpEvent) {
        let publisher = self.publisher.clone();
        self.publisher
            .spawn(async move { publisher.cp_event(event).await });
    }

    /// Records the supply on disk, then sends `event`: what was announced is never lost.
    fn record_then_emit(&self, event: CpEvent) {
        let Some(record) = self.supply_record() else {
            return self.emit(event);
        };
        let log = self.log.clone();
        let publisher = self.publisher.clone();
        let cp_id = self.cp_id.clone();
        self.publisher.spawn(async move {
            if let Err(e) = log.record(&record).await {
                log::error!("{cp_id}: cannot record the supply in progress: {e}");
            }
            publisher.cp_event(event).await
        });
    }

    /// Records the final figures, sends them, and forgets the supply once the bus has them.
    /// A crash anywhere in between makes the restarted engine send the very same end.
    fn finish(&self, ended: SupplyRecord) {
        let Some(event) = ended.end_event(&self.cp_id) else {
            return;
        };
        let log = self.log.clone();
        let publisher = self.publisher.clone();
        let cp_id = self.cp_id.clone();
        self.publisher.spawn(async move {
            if let Err(e) = log.record(&ended).await {
                log::error!("cannot record the end of supply {}: {e}", ended.session_id);
            }
            // Said once recorded: what this line says is what the central will be told.
            log::info!(
                "{cp_id}: supply {} for {} ended ({}): {:.3} kWh, {:.2} €",
                ended.session_id,
                ended.driver_id,
                ended.outcome.map_or("", |o| o.as_str()),
                ended.kwh,
                cost_eur(ended.kwh, ended.price_eur_kwh)
            );
            publisher.cp_event(event).await?;
            if let Err(e) = log.clear(ended.session_id).await {
                log::error!("cannot clear the finished supply {}: {e}", ended.session_id);
            }
            Ok(())
        });
    }

    fn supply_record(&self) -> Option<SupplyRecord> {
        match &self.supply {
            Supply::Supplying {
                session_id,
                driver_id,
                price_eur_kwh,
                started_at,
                kwh_exact,
                ..
            } => Some(SupplyRecord {
                session_id: *session_id,
                driver_id: driver_id.clone(),
                price_eur_kwh: *price_eur_kwh,
                started_at: *started_at,
                kwh: *kwh_exact,
                updated_at: Utc::now(),
                outcome: None,
            }),
            _ => None,
        }
    }

    /// Reports the supply a crash interrupted: its end if it had ended, or the figures last
    /// recorded, as an engine failure.
    fn report_interrupted(&self) {
        let record = match self.log.interrupted() {
            Ok(Some(record)) => record,
            Ok(None) => return,
            Err(e) => return log::error!("{}: cannot read the supply log: {e}", self.cp_id),
        };
        log::warn!(
            "{}: reporting supply {} of {}, left unreported by a crash",
            self.cp_id,
            record.session_id,
            record.driver_id
        );
        let ended = match record.outcome {
            Some(_) => record,
            None => record.ended(Outcome::EngineFailure),
        };
        self.finish(ended);
    }

    fn plug_in(&mut self) -> Result<(), String> {
        let Supply::Authorised {
            session_id,
            driver_id,
            price_eur_kwh,
            ..
        } = &self.supply
        else {
            return Err("nothing is authorised: no vehicle can plug in".into());
        };
        if let Some(fault) = &self.fault {
            return Err(format!("the engine is KO: {fault}"));
        }
        let started_at = Utc::now();
        log::info!(
            "{}: vehicle plugged in for {driver_id}, supplying",
            self.cp_id
        );
        let started = CpEvent::SupplyStarted {
            cp_id: self.cp_id.clone(),
            session_id: *session_id,
            driver_id: driver_id.clone(),
            started_at,
        };
        self.supply = Supply::Supplying {
            session_id: *session_id,
            driver_id: driver_id.clone(),
            price_eur_kwh: *price_eur_kwh,
            started_at,
            since: Instant::now(),
            kwh_exact: 0.0,
            last_tick: Instant::now(),
        };
        self.record_then_emit(started);
        Ok(())
    }

    /// Ends the supply in progress with its final figures.
    fn end_supply(&mut self, outcome: Outcome) -> Result<(), String> {
        self.accumulate();
        let record = self
            .supply_record()
            .ok_or_else(|| "no supply in progress".to_string())?;
        self.supply = Supply::Idle;
        self.finish(record.ended(outcome));
        Ok(())
    }

    /// Adds the energy delivered since the last tick.
    fn accumulate(&mut self) {
        if let Supply::Supplying {
            kwh_exact,
            last_tick,
            ..
        } = &mut self.supply
        {
            let hours = last_tick.elapsed().as_secs_f64() / 3600.0;
            *kwh_exact += self.settings.power_kw * hours;
            *last_tick = Instant::now();
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        self.accumulate();
        match &self.supply {
            Supply::Supplying {
                session_id,
                driver_id,
                price_eur_kwh,
                since,
                kwh_exact,
                ..
            } => {
                let kwh = round_kwh(*kwh_exact);
                self.record_then_emit(CpEvent::SupplyProgress {
                    cp_id: self.cp_id.clone(),
                    session_id: *session_id,
                    driver_id: driver_id.clone(),
                    kwh,
                    eur: cost_eur(kwh, *price_eur_kwh),
                });
                let duration = self.settings.supply_duration;
                if !duration.is_zero() && since.elapsed() >= duration {
                    log::info!("{}: vehicle unplugged", self.cp_id);
                    let _ = self.end_supply(Outcome::Completed);
                }
            }
            Supply::Authorised { expires_at, .. } if *expires_at <= Utc::now() => {
                log::info!("{}: authorisation expired unplugged", self.cp_id);
                self.supply = Supply::Idle;
            }
            _ => {}
        }
        let _ = ctx;
    }

    fn status_line(&self) -> String {
        let health = match &self.fault {
            Some(why) => format!("KO ({why})"),
            None => "OK".into(),
        };
        let supply = match &self.supply {
            Supply::Idle => "idle".to_string(),
            Supply::Authorised { driver_id, .. } => format!("authorised for {driver_id}"),
            Supply::Supplying {
                driver_id,
                kwh_exact,
                price_eur_kwh,
                ..
            } => format!(
                "supplying {driver_id}: {:.3} kWh, {:.2} €",
                kwh_exact,
                cost_eur(round_kwh(*kwh_exact), *price_eur_kwh)
            ),
        };
        format!("{}: engine {health}, {supply}", self.cp_id)
    }
}

impl Actor for Engine {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Records from Kafka arrive many at a time (the consumer keeps several in flight);
        // a full mailbox would make a sender wait and could let a later record pass it.
        ctx.set_mailbox_capacity(crate::bus::MAILBOX_CAPACITY);
        log::info!("{}: engine ready", self.cp_id);
        self.report_interrupted();
        ctx.run_interval(self.settings.heartbeat, |act, _| {
            act.emit(CpEvent::EngineHello {
                cp_id: act.cp_id.clone(),
                instance: act.instance,
                probe: false,
                taking_commands: act.ready,
            });
        });
        ctx.run_interval(self.settings.report_period, |act, ctx| act.tick(ctx));
    }
}

impl Handler<Inbound<CpCommand>> for Engine {
    type Result = Result<(), Rejection>;

    /// Follows the central's commands for this CP; other CPs' commands are skipped.
    fn handle(&mut self, msg: Inbound<CpCommand>, ctx: &mut Self::Context) -> Self::Result {
        if msg.key != self.cp_id {
            return Ok(());
        }
        match msg.envelope.body {
            // Settled before the engine joined its group; this engine presents no tags.
            CpCommand::EngineWelcome { .. }
            | CpCommand::EngineIdInUse { .. }
            | CpCommand::TagRefused { .. } => {}
            CpCommand::OcppRequest { request_id, .. } => self.emit(CpEvent::OcppAnswer {
                cp_id: self.cp_id.clone(),
                request_id,
                status: format!("Rejected: {} is not an OCPP charge point", self.cp_id),
                payload: serde_json::json!({}),
            }),
            CpCommand::Crash { asked_by, .. } => {
                if msg.envelope.ts < self.started_at {
                    log::info!("{}: a crash asked before this start is skipped", self.cp_id);
                } else if self.allow_crash {
                    log::error!("{}: crashing on request of {asked_by}", self.cp_id);
                    // No clean shutdown: the way a real failure looks.
                    std::process::abort();
                } else {
                    log::warn!(
                        "{}: {asked_by} asked this engine to crash; refused (start it with --allow-crash)",
                        self.cp_id
                    );
                }
            }
            CpCommand::Authorise {
                session_id,
                driver_id,
                price_eur_kwh,
                expires_at,
                ..
            } => {
                if expires_at <= Utc::now() {
                    log::info!("{}: stale authorisation {session_id} skipped", self.cp_id);
                    return Ok(());
                }
                let refusal = match (&self.supply, &self.fault) {
                    (_, Some(fault)) => Some(format!("engine KO: {fault}")),
                    (Supply::Idle, None) => None,
                    (Supply::Authorised { session_id: s, .. }, None)
                    | (Supply::Supplying { session_id: s, .. }, None)
                        if *s == session_id =>
                    {
                        // A redelivered command: say yes again, change nothing.
                        self.emit(CpEvent::Authorised {
                            cp_id: self.cp_id.clone(),
                            session_id,
                        });
                        return Ok(());
                    }
                    (_, None) => Some("busy with another session".into()),
                };
                if let Some(reason) = refusal {
                    log::warn!("{}: refused session {session_id}: {reason}", self.cp_id);
                    self.emit(CpEvent::Refused {
                        cp_id: self.cp_id.clone(),
                        session_id,
                        reason,
                    });
                    return Ok(());
                }
                log::info!("{}: authorised for {driver_id}", self.cp_id);
                self.supply = Supply::Authorised {
                    session_id,
                    driver_id,
                    price_eur_kwh,
                    expires_at,
                };
                self.emit(CpEvent::Authorised {
                    cp_id: self.cp_id.clone(),
                    session_id,
                });
                let delay = self.settings.plug_in_delay;
                if !delay.is_zero() {
                    ctx.run_later(delay, move |act, _| {
                        let still = matches!(&act.supply,
                            Supply::Authorised { session_id: s, .. } if *s == session_id);
                        if still {
                            if let Err(why) = act.plug_in() {
                                log::warn!("{}: cannot plug in: {why}", act.cp_id);
                            }
                        }
                    });
                }
            }
            CpCommand::CancelReservation { session_id, .. } => {
                if matches!(&self.supply, Supply::Authorised { session_id: s, .. } if *s == session_id)
                {
                    log::info!("{}: reservation {session_id} cancelled", self.cp_id);
                    self.supply = Supply::Idle;
                }
            }
            CpCommand::StopSupply {
                session_id,
                outcome,
                ..
            } => match &self.supply {
                Supply::Supplying { session_id: s, .. } if *s == session_id => {
                    let _ = self.end_supply(outcome);
                }
                Supply::Authorised { session_id: s, .. } if *s == session_id => {
                    self.supply = Supply::Idle;
                }
                _ => {}
            },
        }
        Ok(())
    }
}

/// The engine's health, as a health check reports it.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct HealthQuery;

impl Handler<HealthQuery> for Engine {
    type Result = Result<(), String>;

    /// OK, or KO with the reason of a fault of the engine itself. Whether the central's
    /// commands reach it is said on the bus (its hellos), where the central hears it.
    fn handle(&mut self, _msg: HealthQuery, _ctx: &mut Self::Context) -> Self::Result {
        match &self.fault {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }
}

/// Whether the engine's Kafka consumer holds its partitions, i.e. commands reach it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TakingCommands(pub bool);

impl Handler<TakingCommands> for Engine {
    type Result = ();

    /// Its hellos say whether commands reach the engine: a CP whose engine cannot hear the
    /// central must not look available.
    fn handle(&mut self, msg: TakingCommands, _ctx: &mut Self::Context) {
        match (self.ready, msg.0) {
            (false, true) => log::info!("{}: taking commands from the central", self.cp_id),
            (true, false) => log::warn!(
                "{}: lost its Kafka partitions; commands cannot reach it until they come back",
                self.cp_id
            ),
            _ => {}
        }
        self.ready = msg.0;
    }
}

/// A person's (or a script's) action on the engine.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "Result<String, String>")]
pub enum Action {
    /// The vehicle plugs in.
    PlugIn,
    /// The vehicle unplugs.
    Unplug,
    /// Simulate a fault: health checks answer KO.
    Fault(String),
    /// Clear the simulated fault.
    Clear,
    /// Describe the engine's state.
    Status,
}

impl Handler<Action> for Engine {
    type Result = Result<String, String>;

    /// Applies the action and says what happened.
    fn handle(&mut self, msg: Action, _ctx: &mut Self::Context) -> Self::Result {
        match msg {
            Action::PlugIn => self.plug_in()?,
            Action::Unplug => self.end_supply(Outcome::Completed)?,
            Action::Fault(why) => {
                log::warn!("{}: engine KO: {why}", self.cp_id);
                self.fault = Some(why);
                match &self.supply {
                    Supply::Supplying { .. } => {
                        let _ = self.end_supply(Outcome::EngineFailure);
                    }
                    Supply::Authorised { .. } => self.supply = Supply::Idle,
                    Supply::Idle => {}
                }
            }
            Action::Clear => {
                if self.fault.take().is_some() {
                    log::info!("{}: engine OK again", self.cp_id);
                }
            }
            Action::Status => {}
        }
        Ok(self.status_line())
    }
}

/// The engine stops at once, as if its process had died: no goodbye, nothing flushed
/// beyond what already was. Used by `evcharge fleet` to inject crashes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Vanish;

impl Handler<Vanish> for Engine {
    type Result = ();

    fn handle(&mut self, _msg: Vanish, ctx: &mut Self::Context) {
        log::warn!("{}: engine crashed (injected)", self.cp_id);
        ctx.stop();
    }
}

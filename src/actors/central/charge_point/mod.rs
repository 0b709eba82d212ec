//! The central's actor for one charging point: its state machine and its open session.
//! What its monitor says is handled in `monitor_link`, what its engine reports in
//! `engine_reports`.

mod engine_on_bus;
mod engine_reports;
mod handover;
mod monitor_link;
mod relayed_monitor;
mod terms;

pub use handover::Retire;
use monitor_link::MonitorLink;
pub use monitor_link::{
    AttachMonitor, CrashMonitor, DetachMonitor, ForgetMonitor, MonitorEnd, MonitorReport,
};
pub use relayed_monitor::{RelayedEvent, RelayedMonitor};
pub use terms::{ChangeTerms, GetView};

use super::console_hub::{ConsoleHub, SessionClosed};
use super::cp_supervisor::{CpSupervisor, CpViewChanged};
use crate::accounts::Accounts;
use crate::bus::{Publisher, Rejection, StreamClock};
use crate::configuration::CentralSettings;
use crate::domain::money::{Cents, Energy, Tariff};
use crate::domain::{CpState, CpView, Denial, EngineHealth, Reservation};
use crate::messages::{CpCommand, DenyReason, DriverUpdate, Outcome, Ticket};
use crate::store::{CpRecord, SessionRecord, Store};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

pub struct ChargePoint {
    id: String,
    location: String,
    tariff: Tariff,
    stopped: bool,
    monitor: Option<MonitorLink>,
    /// When what its engine last said on the bus was written, and whether it then took
    /// commands.
    engine_on_bus: Option<(DateTime<Utc>, bool)>,
    /// How far the CPs' events have been read: the engine's silence is judged by it.
    events_read: StreamClock,
    /// The open session: reserved while `started_at` is `None`, charging after.
    session: Option<SessionRecord>,
    /// A stop was asked of the engine for the open session, and its end is awaited.
    stop_requested: Option<Outcome>,
    last_view: Option<CpView>,
    /// When the CP entered the state of `last_view` (or when the actor started).
    since: DateTime<Utc>,
    /// An OCPP charge point's connectors, as its gateway last told.
    connectors: Vec<crate::messages::ConnectorStatus>,
    /// Crash injection: the monitor is told to crash with its next report's answer.
    crash_monitor: bool,
    /// Handed over to another central: nothing more is done here.
    retired: bool,
    settings: CentralSettings,
    store: Store,
    /// For the audit log: billing amendments its engine asks for.
    accounts: Accounts,
    publisher: Publisher,
    supervisor: Addr<CpSupervisor>,
}

impl ChargePoint {
    /// A CP as remembered by the store, shown disconnected until its monitor reports.
    pub fn new(
        record: CpRecord,
        session: Option<SessionRecord>,
        settings: CentralSettings,
        store: Store,
        accounts: Accounts,
        publisher: Publisher,
        supervisor: Addr<CpSupervisor>,
    ) -> ChargePoint {
        ChargePoint {
            id: record.id,
            location: record.location,
            tariff: record.tariff,
            stopped: record.stopped,
            monitor: None,
            engine_on_bus: None,
            events_read: StreamClock::default(),
            session,
            stop_requested: None,
            last_view: None,
            since: Utc::now(),
            connectors: Vec::new(),
            crash_monitor: false,
            retired: false,
            settings,
            store,
            accounts,
            publisher,
            supervisor,
        }
    }

    pub fn state(&self) -> CpState {
        match &self.monitor {
            None => CpState::Disconnected,
            // Linked, its first report still to come.
            Some(MonitorLink { engine: None, .. }) => CpState::Starting,
            Some(MonitorLink {
                engine: Some(EngineHealth::Ko(_)),
                ..
            }) => CpState::Broken,
            Some(_) if self.stopped => CpState::Stopped,
            Some(_) => match &self.session {
                Some(s) if s.started_at.is_some() => CpState::Charging,
                Some(_) => CpState::Reserved,
                None if self.engine_not_ready().is_some() => CpState::Starting,
                None => CpState::Available,
            },
        }
    }

    fn view(&self) -> CpView {
        let state = self.state();
        let fault = match &self.monitor {
            Some(MonitorLink {
                engine: Some(EngineHealth::Ko(why)),
                ..
            }) => Some(why.clone()),
            _ if state == CpState::Starting => Some(
                self.engine_not_ready()
                    .unwrap_or_else(|| "waiting for its monitor's first report".into()),
            ),
            _ => None,
        };
        CpView {
            id: self.id.clone(),
            location: self.location.clone(),
            tariff: self.tariff,
            state,
            driver_id: self.session.as_ref().map(|s| s.driver_id.clone()),
            session_id: self.session.as_ref().map(|s| s.id),
            energy: self.session.as_ref().map(|s| s.energy).unwrap_or_default(),
            cost: self.session.as_ref().map(|s| s.cost).unwrap_or_default(),
            fault,
            since: self.since,
            owner: Some(self.settings.instance.clone()),
            connectors: self.connectors.clone(),
        }
    }

    /// Tells the supervisor of any visible change, and records state changes.
    fn publish_view(&mut self) {
        if self.retired {
            return;
        }
        let mut view = self.view();
        let state_changed = self.last_view.as_ref().map(|v| v.state) != Some(view.state);
        if state_changed {
            // Taken now, as the state changes: crash detection is measured with it.
            self.since = Utc::now();
            view.since = self.since;
        }
        if self.last_view.as_ref() == Some(&view) {
            return;
        }
        if state_changed {
            log::info!("{} is {}", self.id, view.state.as_str());
            self.save_record(view.state);
        }
        self.last_view = Some(view.clone());
        self.supervisor.do_send(CpViewChanged(view));
    }

    fn save_record(&self, state: CpState) {
        let record = CpRecord {
            id: self.id.clone(),
            location: self.location.clone(),
            tariff: self.tariff,
            stopped: self.stopped,
            last_state: state.as_str().to_owned(),
            updated_at: Utc::now(),
        };
        if let Err(e) = self.store.put_cp(&record) {
            log::error!("cannot record {}: {e}", self.id);
        }
    }

    fn send_to_driver(&self, update: DriverUpdate) {
        let publisher = self.publisher.clone();
        self.publisher
            .spawn(async move { publisher.driver_update(update).await });
    }

    fn send_to_engine(&self, command: CpCommand) {
        let publisher = self.publisher.clone();
        self.publisher
            .spawn(async move { publisher.cp_command(command).await });
    }

    /// Closes the open session with its final figures: stored durably, then ticketed.
    /// Returns the future that completes once the ticket is on the bus.
    fn close_session(
        &mut self,
        outcome: Outcome,
        ended: Option<(DateTime<Utc>, DateTime<Utc>, Energy)>,
    ) -> impl std::future::Future<Output = Result<(), Rejection>> + 'static {
        let closing = self.session.take().map(|mut session| {
            if let Some((started_at, ended_at, energy)) = ended {
                session.started_at = Some(started_at);
                session.ended_at = Some(ended_at);
                // The tariff is the central's: the cost follows from the energy.
                session.bill(energy);
            } else {
                session.ended_at = Some(Utc::now());
            }
            session.outcome = Some(outcome);
            session
        });
        self.stop_requested = None;
        self.publish_view();
        let store = self.store.clone();
        let publisher = self.publisher.clone();
        let cp_id = self.id.clone();
        async move {
            let Some(session) = closing else {
                return Ok(());
            };
            let ticket = session.ticket().expect("a closed session has a ticket");
            log::info!(
                "{cp_id}: session {} closed ({}): {} kWh, {} € for {}",
                session.id,
                outcome.as_str(),
                session.energy,
                session.cost,
                ticket.driver_id
            );
            store
                .put_session(&session)
                .map_err(|e| Rejection::set_aside(e.to_string()))?;
            ConsoleHub::from_registry().do_send(SessionClosed(session.into()));
            send_ticket(store, publisher, ticket).await
        }
    }

    /// Ends whatever the open session is doing because of `outcome`: a reservation is
    /// cancelled at once, a supply is asked to stop and closes when the engine reports.
    fn end_session(&mut self, outcome: Outcome, ctx: &mut Context<Self>) {
        let Some(session) = &self.session else {
            return;
        };
        if session.started_at.is_none() {
            self.send_to_engine(CpCommand::CancelReservation {
                cp_id: self.id.clone(),
                session_id: session.id,
            });
            let closing = self.close_session(outcome, None);
            ctx.spawn(
                async move {
                    let _ = closing.await;
                }
                .into_actor(self),
            );
        } else if self.stop_requested.is_none() {
            self.stop_requested = Some(outcome);
            self.send_to_engine(CpCommand::StopSupply {
                cp_id: self.id.clone(),
                session_id: session.id,
                outcome,
            });
            let session_id = session.id;
            ctx.run_later(self.settings.stop_timeout, move |act, ctx| {
                act.close_unanswered_stop(session_id, ctx);
            });
        }
    }

    /// The engine has not ended a supply the central asked it to stop: the session closes
    /// here with the last figures it reported. Should the engine report its end later, that
    /// comes as an amendment (never billing less).
    fn close_unanswered_stop(&mut self, session_id: Uuid, ctx: &mut Context<Self>) {
        let Some(outcome) = self.stop_requested.filter(|_| self.is_current(session_id)) else {
            return;
        };
        log::warn!(
            "{}: the engine did not end session {session_id} within {:?} of the stop; closed {} with the last figures",
            self.id,
            self.settings.stop_timeout,
            outcome.as_str()
        );
        let closing = self.close_session(outcome, None);
        ctx.spawn(
            async move {
                let _ = closing.await;
            }
            .into_actor(self),
        );
    }

    fn schedule_expiry(&self, session: &SessionRecord, ctx: &mut Context<Self>) {
        let left = (session.expires_at - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        let session_id = session.id;
        ctx.run_later(left, move |act, ctx| {
            let unplugged = act
                .session
                .as_ref()
                .is_some_and(|s| s.id == session_id && s.started_at.is_none());
            if unplugged {
                log::info!("{}: reservation {session_id} expired unplugged", act.id);
                act.end_session(Outcome::Expired, ctx);
            }
        });
    }

    fn is_current(&self, session_id: Uuid) -> bool {
        self.session.as_ref().is_some_and(|s| s.id == session_id)
    }
}

/// Makes the closed session durable, then sends its ticket to the driver. A ticket is never
/// sent for a session that is not durable: the record is handed again instead.
async fn send_ticket(store: Store, publisher: Publisher, ticket: Ticket) -> Result<(), Rejection> {
    if let Err(e) = store.flush().await {
        log::error!("cannot make session {} durable: {e}", ticket.session_id);
        return Err(Rejection::retry_later(format!(
            "session {} is not durable yet: {e}",
            ticket.session_id
        )));
    }
    publisher
        .driver_update(DriverUpdate::Ticket {
            driver_id: ticket.driver_id.clone(),
            ticket,
        })
        .await
        .map_err(|e| Rejection::set_aside(e.to_string()))
}

impl Actor for ChargePoint {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Records from Kafka arrive many at a time (the consumer keeps several in flight);
        // a full mailbox would make a sender wait and could let a later record pass it.
        ctx.set_mailbox_capacity(crate::bus::MAILBOX_CAPACITY);
        if self.retired {
            return;
        }
        self.watch_silence(self.settings.silence_window, ctx);
        if let Some(session) = self.session.clone() {
            if session.started_at.is_none() {
                self.schedule_expiry(&session, ctx);
            }
        }
        self.publish_view();
    }
}

impl Supervised for ChargePoint {
    /// After a crash, only what the store holds survives: the open session and the
    /// operator's stop. The monitor re-authenticates on its next report.
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        if self.retired {
            return;
        }
        log::warn!(
            "{}: actor restarting; state restored from the store",
            self.id
        );
        self.monitor = None;
        self.stop_requested = None;
        self.last_view = None;
        match self.store.open_session(&self.id) {
            Ok(session) => self.session = session,
            Err(e) => log::error!("{}: cannot read its open session: {e}", self.id),
        }
        match self.store.cp(&self.id) {
            Ok(Some(record)) => {
                self.stopped = record.stopped;
                self.location = record.location;
                self.tariff = record.tariff;
            }
            Ok(None) => {}
            Err(e) => log::error!("{}: cannot read its record: {e}", self.id),
        }
    }
}

/// Crash this actor, as an injected failure (its supervisor restarts it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Crash;

impl Handler<Crash> for ChargePoint {
    type Result = ();

    /// Stops at once, dropping everything held only in memory.
    fn handle(&mut self, _msg: Crash, ctx: &mut Self::Context) {
        log::warn!("{}: actor crashing on request", self.id);
        ctx.stop();
    }
}

/// Reserve this CP for a driver's request.
#[derive(Message)]
#[rtype(result = "Result<Reservation, Denial>")]
pub struct Reserve {
    pub request_id: Uuid,
    pub driver_id: String,
}

impl Handler<Reserve> for ChargePoint {
    type Result = ResponseActFuture<Self, Result<Reservation, Denial>>;

    /// Reserves an available CP: the session is stored durably, then the engine is asked to
    /// authorise it and the reservation is returned. A reservation that cannot be made
    /// durable is undone and denied as `record_failed`: the driver hears at once that
    /// nothing is held and may ask again — better than a reservation a crash would forget,
    /// or a request handed again while the driver waits on a disk that may stay full.
    fn handle(&mut self, msg: Reserve, ctx: &mut Self::Context) -> Self::Result {
        let reservation = |s: &SessionRecord, cp: &ChargePoint| Reservation {
            session_id: s.id,
            cp_id: cp.id.clone(),
            location: cp.location.clone(),
            tariff: s.tariff,
            expires_at: s.expires_at,
        };
        if self.retired {
            let denial = Denial::new(
                DenyReason::CpStarting,
                format!("{} is moving to another central: ask again", self.id),
            );
            return Box::pin(fut::ready(Err(denial)));
        }
        if let Some(session) = self
            .session
            .as_ref()
            .filter(|s| s.request_id == msg.request_id)
        {
            let again = reservation(session, self);
            return Box::pin(fut::ready(Ok(again)));
        }
        let state = self.state();
        let denial = match state {
            CpState::Available => None,
            CpState::Reserved | CpState::Charging => Some(Denial::new(
                DenyReason::CpBusy,
                format!("{} is busy with another driver", self.id),
            )),
            CpState::Stopped => Some(Denial::new(
                DenyReason::CpStopped,
                format!("{} is out of order (stopped by the operator)", self.id),
            )),
            CpState::Broken | CpState::Starting => Some(Denial::new(
                if state == CpState::Broken {
                    DenyReason::CpBroken
                } else {
                    DenyReason::CpStarting
                },
                format!(
                    "{} is {}: {}",
                    self.id,
                    state.as_str(),
                    self.view().fault.unwrap_or_default()
                ),
            )),
            CpState::Disconnected => Some(Denial::new(
                DenyReason::CpDisconnected,
                format!("{} is not connected to the central", self.id),
            )),
        };
        if let Some(denial) = denial {
            return Box::pin(fut::ready(Err(denial)));
        }
        let now = Utc::now();
        let expires_at = now
            + chrono::Duration::from_std(self.settings.reservation_expiry)
                .unwrap_or(chrono::Duration::seconds(30));
        let session = SessionRecord {
            id: Uuid::now_v7(),
            request_id: msg.request_id,
            cp_id: self.id.clone(),
            driver_id: msg.driver_id.clone(),
            tariff: self.tariff,
            reserved_at: now,
            expires_at,
            started_at: None,
            ended_at: None,
            energy: Energy(0),
            cost: Cents(0),
            outcome: None,
        };
        if let Err(e) = self.store.put_session(&session) {
            let detail = format!("the central cannot record the reservation: {e}");
            return Box::pin(fut::ready(Err(Denial::new(
                DenyReason::RecordFailed,
                detail,
            ))));
        }
        log::info!(
            "{}: reserved for {} (session {}, request {})",
            self.id,
            msg.driver_id,
            session.id,
            msg.request_id
        );
        let made = reservation(&session, self);
        let command = CpCommand::Authorise {
            cp_id: self.id.clone(),
            session_id: session.id,
            driver_id: msg.driver_id,
            price_eur_kwh: session.tariff.eur_per_kwh(),
            expires_at,
        };
        self.schedule_expiry(&session, ctx);
        let session_id = session.id;
        self.session = Some(session);
        self.publish_view();
        let store = self.store.clone();
        let publisher = self.publisher.clone();
        Box::pin(
            async move {
                store.flush().await?;
                if let Err(e) = publisher.cp_command(command).await {
                    log::error!("cannot ask {} to authorise: {e}", made.cp_id);
                }
                Ok(made)
            }
            .into_actor(self)
            .map(move |made, act, _ctx| {
                made.map_err(|e: crate::store::StoreError| {
                    log::error!("{}: cannot make reservation {session_id} durable: {e}", act.id);
                    act.undo_reservation(session_id);
                    Denial::new(
                        DenyReason::RecordFailed,
                        format!("the central cannot record the reservation durably ({e}); nothing is reserved, ask again later"),
                    )
                })
            }),
        )
    }
}

impl ChargePoint {
    /// Forgets a reservation that never became durable: the engine was not asked to
    /// authorise it, and the CP is free again.
    fn undo_reservation(&mut self, session_id: Uuid) {
        let Some(session) = self.session.take_if(|s| s.id == session_id) else {
            return;
        };
        if let Err(e) = self.store.forget_session(&session) {
            log::error!("{}: cannot forget reservation {session_id}: {e}", self.id);
        }
        self.publish_view();
    }
}

/// What the operator or a driver asks of the CP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub enum CpControl {
    /// Out of order: ends any supply, refuses new ones until resumed.
    Stop,
    /// Available again.
    Resume,
    /// End the supply in progress because its driver asked; the CP stays available.
    DriverStop,
}

impl Handler<CpControl> for ChargePoint {
    type Result = ();

    /// Applies an operator or driver command.
    fn handle(&mut self, msg: CpControl, ctx: &mut Self::Context) {
        if self.retired {
            return;
        }
        match msg {
            CpControl::Stop => {
                log::info!("{}: stopped by the operator", self.id);
                self.stopped = true;
                self.end_session(Outcome::StoppedByOperator, ctx);
            }
            CpControl::Resume => {
                log::info!("{}: resumed by the operator", self.id);
                self.stopped = false;
            }
            CpControl::DriverStop => self.end_session(Outcome::StoppedByDriver, ctx),
        }
        self.save_record(self.state());
        self.publish_view();
    }
}

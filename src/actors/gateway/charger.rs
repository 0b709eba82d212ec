//! One connected OCPP charge point, seen by the network as a CP like any other: its engine
//! on the bus (hellos, reports of its supplies, the central's commands) and its monitor on a
//! link to the central (a `STATUS` every period, from what the charge point last said).
//!
//! The OCPP side lives in `calls_in` (the charge point's CALLs) and `calls_out` (the
//! network's CALLs to it, one outstanding at a time).

mod calls_in;
mod calls_out;
mod commands;
mod connectors;
mod tags;
mod transactions;

use super::{ChargerSettings, Gateway};
use crate::actors::cp::engine::TakingCommands;
use crate::actors::cp::monitor::{report_to_central, CentralLink, CpIdentity, EngineCheck};
use crate::bus::{OcppLedger, Publisher};
use crate::link::FrameClient;
use crate::messages::{CpEvent, Outcome};
use actix::prelude::*;
use calls_out::Outgoing;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use uuid::Uuid;

/// What the charge point's socket is told to send, or to do.
#[derive(Message, Debug, Clone, PartialEq)]
#[rtype(result = "()")]
pub enum ToSocket {
    Text(String),
    /// Close the WebSocket, saying why.
    Close(String),
}

/// A text message the charge point sent.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct FromSocket(pub String);

/// The charge point's WebSocket is gone.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SocketClosed;

/// The socket that speaks to the charge point, once it is open.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Attach(pub Recipient<ToSocket>);

/// A supply the central authorised, asked of the charge point by RemoteStartTransaction.
#[derive(Debug, Clone, PartialEq)]
struct Authorisation {
    session_id: Uuid,
    driver_id: String,
    price_eur_kwh: f64,
    expires_at: DateTime<Utc>,
    /// The charge point accepted the remote start.
    accepted: bool,
}

/// A transaction running at the charge point, and the session it is.
#[derive(Debug, Clone, PartialEq)]
struct Transaction {
    id: i64,
    connector_id: u32,
    id_tag: String,
    session_id: Uuid,
    driver_id: String,
    price_eur_kwh: f64,
    meter_start_wh: i64,
    started_at: DateTime<Utc>,
    /// The energy last reported, in Wh since the start.
    reported_wh: i64,
    /// The outcome the central asked for when it asked for the stop.
    stop_outcome: Option<Outcome>,
}

/// How often the connectors are told again, unchanged.
const CONNECTORS_AGAIN: std::time::Duration = std::time::Duration::from_secs(60);

/// Transactions remembered once closed, so that a repeated stop is answered and ignored.
const CLOSED_KEPT: usize = 16;

pub struct Charger {
    cp: CpIdentity,
    /// This connection's instance of the CP id, for the central's liveness check.
    instance: Uuid,
    settings: ChargerSettings,
    publisher: Publisher,
    ledger: OcppLedger,
    gateway: Gateway,
    socket: Option<Recipient<ToSocket>>,
    /// Taken while a report to the central is in flight.
    central: Option<FrameClient>,
    authenticated: bool,
    /// The central's last answer: the state it shows.
    central_state: Option<String>,
    /// The charge point said how it is on this connection (a BootNotification or a
    /// StatusNotification): until then the CP shows `starting`.
    ready: bool,
    /// Each connector's last status (0 is the charge point as a whole).
    connectors: std::collections::BTreeMap<u32, connectors::Connector>,
    /// Why the charge point is not fit to supply, from its last StatusNotification.
    fault: Option<String>,
    /// The charge point was told to be Inoperative, for an operator's stop.
    inoperative: bool,
    taking_commands: bool,
    authorisation: Option<Authorisation>,
    transaction: Option<Transaction>,
    closed: VecDeque<i64>,
    /// The network's CALL awaiting its answer, and those waiting their turn.
    outgoing: Option<Outgoing>,
    queued: VecDeque<Outgoing>,
    next_call_id: u64,
    /// A CALL of the charge point's being handled (its answer is not sent yet).
    answering: Option<String>,
    /// A tag presented here, asked of the central.
    pending_tag: Option<tags::PendingTag>,
    /// What the charge point's doings may write to the log.
    log_budget: super::log_budget::LogBudget,
}

impl Charger {
    /// A charge point whose key the central accepted on `central`, authenticated.
    pub fn new(
        cp: CpIdentity,
        settings: ChargerSettings,
        publisher: Publisher,
        ledger: OcppLedger,
        central: FrameClient,
        taking_commands: bool,
        gateway: Gateway,
    ) -> Charger {
        Charger {
            cp,
            instance: Uuid::new_v4(),
            settings,
            publisher,
            ledger,
            gateway,
            socket: None,
            central: Some(central),
            authenticated: true,
            central_state: None,
            ready: false,
            connectors: Default::default(),
            fault: None,
            inoperative: false,
            taking_commands,
            authorisation: None,
            transaction: None,
            closed: VecDeque::new(),
            outgoing: None,
            queued: VecDeque::new(),
            next_call_id: 0,
            answering: None,
            pending_tag: None,
            log_budget: Default::default(),
        }
    }

    fn id(&self) -> &str {
        &self.cp.id
    }

    /// Whether a line about what the charge point did may be written now.
    fn worth_logging(&mut self) -> bool {
        self.log_budget.allows(&self.cp.id)
    }

    fn send_text(&self, text: String) {
        if let Some(socket) = &self.socket {
            socket.do_send(ToSocket::Text(text));
        }
    }

    fn emit(&self, event: CpEvent) {
        let publisher = self.publisher.clone();
        self.publisher
            .spawn(async move { publisher.cp_event(event).await });
    }

    /// The health the monitor link reports: OK unless the charge point said it cannot supply.
    fn health(&self) -> EngineCheck {
        match &self.fault {
            Some(why) => EngineCheck::Ko(why.clone()),
            None => EngineCheck::Ok,
        }
    }

    /// One period: a `STATUS` to the central, and what its answer asks of the charge point.
    fn report(&mut self, ctx: &mut Context<Self>) {
        let Some(mut central) = self.central.take() else {
            return;
        };
        let (cp, authenticated, health) = (self.cp.clone(), self.authenticated, self.health());
        let report = async move {
            let (link, authenticated, _crash, _terms) =
                report_to_central(&mut central, &cp, authenticated, &health).await;
            (central, link, authenticated)
        };
        ctx.spawn(
            report
                .into_actor(self)
                .map(|(central, link, authenticated), act, _| {
                    act.central = Some(central);
                    act.authenticated = authenticated;
                    act.central_said(link);
                }),
        );
    }

    fn central_said(&mut self, link: CentralLink) {
        match link {
            CentralLink::Reported(state) => {
                if self.central_state.as_deref() != Some(state.as_str()) {
                    log::info!("{}: the central shows it {state}", self.id());
                }
                let stopped = state == "stopped";
                self.central_state = Some(state);
                if self.ready && stopped != self.inoperative {
                    self.inoperative = stopped;
                    self.judge();
                    self.change_availability(!stopped);
                }
            }
            CentralLink::Refused(why) => {
                log::warn!("{}: the central refused its report: {why}", self.id());
                self.central_state = None;
            }
            CentralLink::Unreachable(why) => {
                log::warn!("{}: cannot reach the central: {why}", self.id());
                self.central_state = None;
            }
        }
    }

    /// A hello on the bus once ready: until then the CP shows `starting`.
    fn hello(&self) {
        if !self.ready {
            return;
        }
        self.emit(CpEvent::EngineHello {
            cp_id: self.cp.id.clone(),
            instance: self.instance,
            probe: false,
            taking_commands: self.taking_commands,
        });
    }

    /// An authorisation the charge point never used is dropped when it expires.
    fn expire(&mut self) {
        let expired = self
            .authorisation
            .as_ref()
            .is_some_and(|a| a.expires_at <= Utc::now());
        if expired && self.transaction.is_none() {
            log::info!("{}: authorisation expired unused", self.id());
            self.authorisation = None;
        }
    }

    fn remember_closed(&mut self, transaction_id: i64) {
        self.closed.push_back(transaction_id);
        while self.closed.len() > CLOSED_KEPT {
            self.closed.pop_front();
        }
    }
}

impl Actor for Charger {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(crate::bus::MAILBOX_CAPACITY);
        log::info!("{}: OCPP charge point connected", self.id());
        self.report(ctx);
        // A charge point that reconnects need not boot again: what it says now counts,
        // not what was known before.
        self.trigger_status();
        ctx.run_interval(self.settings.report_period, |act, ctx| {
            act.expire();
            act.report(ctx);
        });
        ctx.run_interval(self.settings.engine_heartbeat, |act, _| act.hello());
        // A central that restarted, or took the CP over, learns the connectors again.
        ctx.run_interval(CONNECTORS_AGAIN, |act, _| act.tell_connectors());
        ctx.run_interval(calls_out::CALL_TIMEOUT / 4, |act, _| act.time_out_call());
    }

    fn stopped(&mut self, ctx: &mut Self::Context) {
        log::info!("{}: OCPP charge point disconnected", self.cp.id);
        self.gateway.gone(&self.cp.id, &ctx.address());
        if let Some(socket) = &self.socket {
            socket.do_send(ToSocket::Close(
                "the gateway let the charge point go".into(),
            ));
        }
    }
}

impl Handler<Attach> for Charger {
    type Result = ();

    fn handle(&mut self, msg: Attach, _ctx: &mut Self::Context) {
        self.socket = Some(msg.0);
        self.send_next();
    }
}

impl Handler<SocketClosed> for Charger {
    type Result = ();

    /// The monitor link closes with it: the central shows the CP disconnected. A
    /// transaction goes on at the charge point, which reports it when it is back.
    fn handle(&mut self, _msg: SocketClosed, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// A newer connection of the same charge point took over.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Replaced;

impl Handler<Replaced> for Charger {
    type Result = ();

    fn handle(&mut self, _msg: Replaced, ctx: &mut Self::Context) {
        if let Some(socket) = self.socket.take() {
            socket.do_send(ToSocket::Close("the charge point connected again".into()));
        }
        ctx.stop();
    }
}

impl Handler<TakingCommands> for Charger {
    type Result = ();

    fn handle(&mut self, msg: TakingCommands, _ctx: &mut Self::Context) {
        self.taking_commands = msg.0;
    }
}

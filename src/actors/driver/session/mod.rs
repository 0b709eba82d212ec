//! A driver: asks for supplies one after the other and follows each to its ticket.
//!
//! Commands come from its plan, from the keyboard ([`Typed`]) or from the dashboard
//! ([`RequestSupply`], [`StopMySupply`], [`SignIn`], …); watchers ([`WatchDriver`]) hear every
//! step the driver prints, with the supply as it stands after it. What the dashboard and
//! watchers ask is in `dashboard`.

mod dashboard;

pub use dashboard::{
    CurrentSupply, DriverCommandError, DriverNews, FetchAvailable, FetchHistory, RequestSupply,
    SignIn, SignInAnswer, StopMySupply, UnwatchDriver, WatchDriver,
};

use crate::bus::{Inbound, Publisher, Rejection};
use crate::configuration::DriverSettings;
use crate::domain::supply_view::SupplyView;
use crate::messages::{CpOffer, DriverRequest, DriverUpdate};
use actix::prelude::*;
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

/// How the driver prints what happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Text,
    /// One JSON object per line, for scripts and tests.
    Json,
}

/// What a driver was started to do, and how it reports.
#[derive(Debug, Clone)]
pub struct Errand {
    /// CPs to request in order; `None` asks for any available CP.
    pub plan: Vec<Option<String>>,
    /// Stay for typed commands once the plan is done.
    pub interactive: bool,
    pub output: Output,
}

/// The request being served.
#[derive(Debug)]
struct Current {
    request_id: Uuid,
    cp_id: Option<String>,
    session_id: Option<Uuid>,
}

pub struct Driver {
    id: String,
    /// This process's instance of the driver id, for the central's liveness check.
    instance: Uuid,
    settings: DriverSettings,
    /// Seals the dashboard's password for the central (the bus proofs are the publisher's).
    bus_key: crate::proof::BusKey,
    publisher: Publisher,
    /// CPs still to request, in order; `None` asks for any available CP.
    plan: VecDeque<Option<String>>,
    /// Stay alive for more commands when the plan is done.
    interactive: bool,
    output: Output,
    current: Option<Current>,
    served: u32,
    failed: u32,
    /// Told when the plan is done (or the person quits).
    done: Option<oneshot::Sender<()>>,
    /// The current (or last) supply as the dashboard shows it.
    supply: SupplyView,
    /// The last list of available CPs heard from the central.
    available: Option<Vec<CpOffer>>,
    /// Who hears every step (the dashboard's WebSocket connections), by subscription id.
    watchers: HashMap<Uuid, Recipient<DriverNews>>,
    /// Questions to the central waiting for their answer, by request id.
    answers: HashMap<Uuid, oneshot::Sender<DriverUpdate>>,
    /// Waiting for the next list of available CPs.
    list_waiters: Vec<oneshot::Sender<Vec<CpOffer>>>,
}

impl Driver {
    pub fn new(
        id: String,
        instance: Uuid,
        settings: DriverSettings,
        bus_key: crate::proof::BusKey,
        publisher: Publisher,
        errand: Errand,
        done: oneshot::Sender<()>,
    ) -> Driver {
        Driver {
            id,
            instance,
            settings,
            bus_key,
            publisher,
            plan: errand.plan.into(),
            interactive: errand.interactive,
            output: errand.output,
            current: None,
            served: 0,
            failed: 0,
            done: Some(done),
            supply: SupplyView::default(),
            available: None,
            watchers: HashMap::new(),
            answers: HashMap::new(),
            list_waiters: Vec::new(),
        }
    }

    /// Prints one step and tells every watcher, with the supply as it stands now.
    fn say(&self, text: String, json: serde_json::Value) {
        if !self.watchers.is_empty() {
            let news = DriverNews::of(json.clone(), &self.supply);
            for watcher in self.watchers.values() {
                watcher.do_send(news.clone());
            }
        }
        match self.output {
            Output::Text => println!("[{}] {text}", self.id),
            Output::Json => println!("{json}"),
        }
    }

    /// What a new watcher is shown first.
    fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({"type": "snapshot", "driver_id": self.id,
            "supply": self.supply, "available": self.available})
    }

    /// Sends a question to the central and waits up to `ask_timeout` for the update that
    /// answers it (the one carrying `request_id`).
    fn ask(
        &mut self,
        request_id: Uuid,
        question: DriverRequest,
    ) -> ResponseActFuture<Self, Result<DriverUpdate, DriverCommandError>> {
        let (answer, answered) = oneshot::channel();
        self.answers.insert(request_id, answer);
        self.send(question);
        let limit = self.settings.ask_timeout;
        Box::pin(
            async move { tokio::time::timeout(limit, answered).await }
                .into_actor(self)
                .map(move |outcome, act, _| {
                    act.answers.remove(&request_id);
                    match outcome {
                        Ok(Ok(update)) => Ok(update),
                        _ => Err(DriverCommandError::NoAnswer(limit)),
                    }
                }),
        )
    }

    /// Hands an answer to the question waiting for it; one nobody waits for (it came too
    /// late, or is a redelivery) is dropped.
    fn answer(&mut self, update: DriverUpdate) {
        let request_id = match &update {
            DriverUpdate::SignedIn { request_id, .. }
            | DriverUpdate::History { request_id, .. } => *request_id,
            _ => return,
        };
        if let Some(waiting) = self.answers.remove(&request_id) {
            let _ = waiting.send(update);
        }
    }

    fn send(&self, request: DriverRequest) {
        let publisher = self.publisher.clone();
        self.publisher
            .spawn(async move { publisher.driver_request(request).await });
    }

    /// Starts the next request of the plan, or finishes.
    fn next(&mut self, ctx: &mut Context<Self>) {
        if self.current.is_some() {
            return;
        }
        match self.plan.pop_front() {
            Some(cp_id) => {
                self.request(cp_id, ctx);
            }
            None if self.interactive => {}
            None => {
                self.say(
                    format!("done: {} served, {} failed", self.served, self.failed),
                    serde_json::json!({"type": "done", "driver_id": self.id,
                        "served": self.served, "failed": self.failed}),
                );
                self.quit();
            }
        }
    }

    fn quit(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }

    fn request(&mut self, cp_id: Option<String>, ctx: &mut Context<Self>) -> Uuid {
        let request_id = Uuid::new_v4();
        let target = cp_id.clone().unwrap_or_else(|| "any available CP".into());
        self.supply.requesting(request_id, cp_id.clone());
        self.say(
            format!("requesting a supply at {target} (request {request_id})"),
            serde_json::json!({"type": "requesting", "driver_id": self.id,
                "request_id": request_id, "cp_id": cp_id}),
        );
        self.send(DriverRequest::SupplyRequest {
            request_id,
            driver_id: self.id.clone(),
            cp_id: cp_id.clone(),
        });
        self.current = Some(Current {
            request_id,
            cp_id,
            session_id: None,
        });
        ctx.run_later(self.settings.answer_timeout, move |act, ctx| {
            let unanswered = act
                .current
                .as_ref()
                .is_some_and(|c| c.request_id == request_id && c.session_id.is_none());
            if unanswered {
                act.supply.gave_up("no answer from the central");
                act.say(
                    format!(
                        "no answer from the central after {:?}; giving up on this request",
                        act.settings.answer_timeout
                    ),
                    serde_json::json!({"type": "gave_up", "driver_id": act.id,
                        "request_id": request_id, "reason": "no answer from the central"}),
                );
                act.finish(false, ctx);
            }
        });
        request_id
    }

    /// Moves on if the session has not closed after `limit` (its ticket still prints if it
    /// arrives later).
    fn give_up_after(&self, limit: Duration, session_id: Uuid, ctx: &mut Context<Self>) {
        ctx.run_later(limit, move |act, ctx| {
            let open = act
                .current
                .as_ref()
                .is_some_and(|c| c.session_id == Some(session_id));
            if open {
                act.supply.gave_up("no ticket in time");
                act.say(
                    format!("no ticket after {limit:?}; moving on"),
                    serde_json::json!({"type": "gave_up", "driver_id": act.id,
                        "session_id": session_id, "reason": "no ticket in time"}),
                );
                act.finish(false, ctx);
            }
        });
    }

    /// Closes the current request and schedules the next after the pause.
    fn finish(&mut self, served: bool, ctx: &mut Context<Self>) {
        self.current = None;
        if served {
            self.served += 1;
        } else {
            self.failed += 1;
        }
        ctx.run_later(self.settings.pause, |act, ctx| act.next(ctx));
    }

    fn concerns_current(&self, update: &DriverUpdate) -> bool {
        let Some(current) = &self.current else {
            return false;
        };
        match update {
            DriverUpdate::Reserved { request_id, .. }
            | DriverUpdate::Denied { request_id, .. }
            | DriverUpdate::Authorised { request_id, .. } => *request_id == current.request_id,
            DriverUpdate::Started { session_id, .. }
            | DriverUpdate::Progress { session_id, .. }
            | DriverUpdate::Interrupted { session_id, .. } => {
                Some(*session_id) == current.session_id
            }
            DriverUpdate::Ticket { ticket, .. } => {
                ticket.request_id == current.request_id
                    || Some(ticket.session_id) == current.session_id
            }
            DriverUpdate::Available { .. } => true,
            // Settled before the driver starts, or answers to a question.
            DriverUpdate::Welcome { .. }
            | DriverUpdate::IdInUse { .. }
            | DriverUpdate::SignedIn { .. }
            | DriverUpdate::History { .. } => false,
        }
    }

    /// A supply of this driver that is still going when nothing else is in hand — one this
    /// driver asked for before a restart — is followed to its ticket.
    fn adopt(&mut self, update: &DriverUpdate) {
        let (DriverUpdate::Started {
            session_id, cp_id, ..
        }
        | DriverUpdate::Progress {
            session_id, cp_id, ..
        }
        | DriverUpdate::Interrupted {
            session_id, cp_id, ..
        }) = update
        else {
            return;
        };
        self.supply = SupplyView {
            ticket: self.supply.ticket.take(),
            ..SupplyView::default()
        };
        self.supply.apply(update);
        self.say(
            format!("following the supply at {cp_id} asked for earlier (session {session_id})"),
            serde_json::json!({"type": "resumed", "driver_id": self.id,
                "session_id": session_id, "cp_id": cp_id}),
        );
        self.current = Some(Current {
            request_id: Uuid::nil(),
            cp_id: Some(cp_id.clone()),
            session_id: Some(*session_id),
        });
    }

    fn show(&self, update: &DriverUpdate) {
        let text = match update {
            DriverUpdate::Reserved {
                cp_id,
                location,
                price_eur_kwh,
                session_id,
                ..
            } => format!(
                "{cp_id} ({location}, {price_eur_kwh} €/kWh) reserved, session {session_id}; waiting for the CP to authorise"
            ),
            DriverUpdate::Denied {
                cp_id,
                reason,
                detail,
                ..
            } => format!(
                "{} denied ({}): {detail}",
                cp_id.as_deref().unwrap_or("request"),
                serde_json::to_value(reason).unwrap_or_default().as_str().unwrap_or("")
            ),
            DriverUpdate::Authorised { cp_id, .. } => {
                format!("{cp_id} authorised the supply: plug the vehicle in")
            }
            DriverUpdate::Started { cp_id, .. } => format!("{cp_id}: supply started"),
            DriverUpdate::Progress {
                cp_id, kwh, eur, ..
            } => format!("{cp_id}: {kwh:.3} kWh, {eur:.2} € so far"),
            DriverUpdate::Interrupted { cp_id, detail, .. } => {
                format!("{cp_id}: supply interrupted: {detail}")
            }
            DriverUpdate::Ticket { ticket, .. } => format!(
                "TICKET {}: {:.3} kWh × {} €/kWh = {:.2} € ({}), {} → {}",
                ticket.cp_id,
                ticket.kwh,
                ticket.price_eur_kwh,
                ticket.eur,
                ticket.outcome.as_str(),
                ticket
                    .started_at
                    .map_or("never plugged in".to_string(), |t| t.format("%H:%M:%S").to_string()),
                ticket.ended_at.format("%H:%M:%S")
            ),
            DriverUpdate::Welcome { .. } => "the central knows this driver".into(),
            DriverUpdate::SignedIn { detail, .. } => format!("sign-in: {detail}"),
            DriverUpdate::History { sessions, .. } => {
                format!("{} past sessions", sessions.len())
            }
            DriverUpdate::IdInUse { detail, .. } => detail.clone(),
            DriverUpdate::Available { cps, .. } if cps.is_empty() => {
                "no charging point is available now".into()
            }
            DriverUpdate::Available { cps, .. } => format!(
                "available now: {}",
                cps.iter()
                    .map(|c| format!("{} ({}, {} €/kWh)", c.cp_id, c.location, c.price_eur_kwh))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        self.say(text, serde_json::to_value(update).unwrap_or_default());
    }
}

impl Actor for Driver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Records from Kafka arrive many at a time (the consumer keeps several in flight);
        // a full mailbox would make a sender wait and could let a later record pass it.
        ctx.set_mailbox_capacity(crate::bus::MAILBOX_CAPACITY);
        ctx.run_interval(self.settings.heartbeat, |act, _| {
            act.send(DriverRequest::Hello {
                driver_id: act.id.clone(),
                instance: act.instance,
                probe: false,
            });
        });
        self.send(DriverRequest::ListAvailable {
            driver_id: self.id.clone(),
        });
        self.next(ctx);
    }
}

impl Handler<Inbound<DriverUpdate>> for Driver {
    type Result = Result<(), Rejection>;

    /// Prints what concerns this driver and moves on when a request is settled.
    fn handle(&mut self, msg: Inbound<DriverUpdate>, ctx: &mut Self::Context) -> Self::Result {
        if msg.key != self.id {
            return Ok(());
        }
        let update = msg.envelope.body;
        match update {
            DriverUpdate::Welcome { .. } | DriverUpdate::IdInUse { .. } => return Ok(()),
            // Answers to the dashboard's questions.
            DriverUpdate::SignedIn { .. } | DriverUpdate::History { .. } => {
                self.answer(update);
                return Ok(());
            }
            DriverUpdate::Available { ref cps, .. } => {
                for waiting in self.list_waiters.drain(..) {
                    let _ = waiting.send(cps.clone());
                }
                self.available = Some(cps.clone());
                self.show(&update);
                return Ok(());
            }
            _ => {}
        }
        if self.current.is_none() {
            self.adopt(&update);
        }
        if !self.concerns_current(&update) {
            // An earlier request's news (after a restart, or a late redelivery).
            if let DriverUpdate::Ticket { .. } = update {
                if self.current.is_none() {
                    self.supply.apply(&update);
                }
                self.show(&update);
            }
            return Ok(());
        }
        self.supply.apply(&update);
        self.show(&update);
        match update {
            DriverUpdate::Reserved {
                session_id, cp_id, ..
            } => {
                if let Some(current) = self.current.as_mut() {
                    current.session_id = Some(session_id);
                    current.cp_id = Some(cp_id);
                }
                self.give_up_after(self.settings.supply_timeout, session_id, ctx);
            }
            DriverUpdate::Denied { .. } => self.finish(false, ctx),
            DriverUpdate::Ticket { ticket, .. } => {
                let served = ticket.kwh > 0.0;
                self.finish(served, ctx);
            }
            _ => {}
        }
        Ok(())
    }
}

/// A command typed by the person at an interactive driver.
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub enum Typed {
    /// Ask for a supply at this CP, or at any.
    Request(Option<String>),
    /// Stop the current supply.
    Stop,
    /// Show the available CPs.
    List,
    /// Leave.
    Quit,
}

impl Handler<Typed> for Driver {
    type Result = ();

    /// Queues a request, stops the supply or asks for the list.
    fn handle(&mut self, msg: Typed, ctx: &mut Self::Context) {
        match msg {
            Typed::Request(cp_id) => {
                if let Some(current) = &self.current {
                    self.say(
                        format!(
                            "a supply at {} is in progress; this request waits its turn",
                            current.cp_id.as_deref().unwrap_or("a CP")
                        ),
                        serde_json::json!({"type": "queued", "driver_id": self.id, "cp_id": cp_id}),
                    );
                }
                self.plan.push_back(cp_id);
                self.next(ctx);
            }
            Typed::Stop => self.send(DriverRequest::StopSupply {
                driver_id: self.id.clone(),
            }),
            Typed::List => self.send(DriverRequest::ListAvailable {
                driver_id: self.id.clone(),
            }),
            Typed::Quit => self.quit(),
        }
    }
}

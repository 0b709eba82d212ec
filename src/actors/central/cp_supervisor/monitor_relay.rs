//! A monitor's link held here for a CP another instance runs. The monitor need not know who
//! runs its CP: this instance checks its secret, then relays the link to the owner as sealed
//! notes on `cp.events` (attach, each report, gone), and answers the monitor's reports with
//! the CP's state as the owner shares it. What the owner has to say to the monitor (it
//! refuses the link, or asks the monitor to crash) comes back on the views topic under
//! `link/<cp>`, and rides on the next answer.

use super::booking::Note;
use super::CpSupervisor;
use crate::actors::central::charge_point::{DetachMonitor, MonitorEnd, MonitorReport};
use crate::bus::SealedRecord;
use crate::domain::{CpState, CpView, EngineHealth};
use actix::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The views topic's keys for answers to relayed links: no CP id has a `/`.
const KEY_PREFIX: &str = "link/";

/// How long a relayed AUTH or STATUS waits for Kafka to take its note: the monitor gives
/// up on an answer after 800 ms, and is better told at once that Kafka is slow or away.
const RELAY_TIMEOUT: Duration = Duration::from_millis(500);

/// What the instance running a CP says to a link another instance relays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorAnswer {
    /// The instance relaying the link, and the link's id there.
    pub via: String,
    pub conn_id: u64,
    pub verdict: LinkVerdict,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkVerdict {
    /// The link does not speak for the CP (another live monitor does, its secret changed…):
    /// the monitor is told why, and authenticates again.
    Refused(String),
    /// Crash injection: the monitor is asked to crash with its next answer.
    Crash,
}

/// The owner of a CP answers a link relayed to it: shared with every instance.
#[derive(Message)]
#[rtype(result = "()")]
pub struct LinkAnswered {
    pub cp_id: String,
    pub answer: MonitorAnswer,
}

impl Handler<LinkAnswered> for CpSupervisor {
    type Result = ();

    fn handle(&mut self, msg: LinkAnswered, _ctx: &mut Self::Context) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let value = serde_json::to_vec(&msg.answer).expect("answers always serialise");
        cluster
            .views
            .publish(&format!("{KEY_PREFIX}{}", msg.cp_id), &value);
    }
}

/// One relayed link: what the monitor's session on this instance reports to.
pub struct MonitorRelay {
    cp_id: String,
    conn_id: u64,
    /// This instance, as the owner's answers name it.
    via: String,
    supervisor: Addr<CpSupervisor>,
    /// The CP's state as its owner last shared it.
    state: CpState,
    crash: bool,
    refused: Option<String>,
    /// When the link last spoke, and the silence window: a relay whose link went quiet
    /// without closing (its session gone mid-AUTH) ends by itself.
    heard: Instant,
    silence_window: Duration,
}

impl Actor for MonitorRelay {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.silence_window, |relay, ctx| {
            if relay.heard.elapsed() > 2 * relay.silence_window {
                relay.gone(ctx);
            }
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.supervisor.do_send(RelayEnded {
            cp_id: self.cp_id.clone(),
            conn_id: self.conn_id,
        });
    }
}

/// A relay's notes to the CP's owner, passed on in the order they are sent.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
struct Relay {
    cp_id: String,
    note: Note,
}

impl Handler<Relay> for CpSupervisor {
    type Result = ResponseFuture<Result<(), String>>;

    fn handle(&mut self, msg: Relay, _ctx: &mut Self::Context) -> Self::Result {
        Box::pin(self.pass_on(&msg.cp_id, &msg.note))
    }
}

impl Handler<MonitorReport> for MonitorRelay {
    type Result = ResponseActFuture<Self, Result<(CpState, bool), String>>;

    /// Passes the report on, then answers it with the CP's state (once the owner refused
    /// the link, with why, and the relay ends).
    fn handle(&mut self, msg: MonitorReport, ctx: &mut Self::Context) -> Self::Result {
        if let Some(why) = self.refused.take() {
            ctx.stop();
            return Box::pin(fut::ready(Err(why)));
        }
        self.heard = Instant::now();
        let note = Note::MonitorReport {
            via: self.via.clone(),
            conn_id: self.conn_id,
            fault: match msg.engine {
                EngineHealth::Ok => None,
                EngineHealth::Ko(why) => Some(why),
            },
        };
        Box::pin(
            self.relay(note)
                .into_actor(self)
                .map(|relayed, act, ctx| match relayed {
                    Ok(()) => Ok((act.state, std::mem::take(&mut act.crash))),
                    Err(why) => {
                        // The link must authenticate again: this relay is done.
                        ctx.stop();
                        Err(format!("cannot relay the report to its central: {why}"))
                    }
                }),
        )
    }
}

impl Handler<DetachMonitor> for MonitorRelay {
    type Result = ();

    fn handle(&mut self, _msg: DetachMonitor, ctx: &mut Self::Context) {
        self.gone(ctx);
    }
}

/// The link proved the CP's secret, as issued at `issued_at`: the owner is told.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
struct Attach {
    peer: String,
    issued_at: chrono::DateTime<chrono::Utc>,
}

impl Handler<Attach> for MonitorRelay {
    type Result = ResponseActFuture<Self, Result<(), String>>;

    fn handle(&mut self, msg: Attach, _ctx: &mut Self::Context) -> Self::Result {
        let note = Note::MonitorAttach {
            via: self.via.clone(),
            conn_id: self.conn_id,
            peer: msg.peer,
            issued_at: msg.issued_at,
        };
        Box::pin(self.relay(note).into_actor(self).map(|attached, _, ctx| {
            if attached.is_err() {
                ctx.stop();
            }
            attached
        }))
    }
}

impl MonitorRelay {
    /// The link closed (or went silent): the owner is told, and the relay ends.
    fn gone(&mut self, ctx: &mut Context<Self>) {
        let note = Note::MonitorGone {
            via: self.via.clone(),
            conn_id: self.conn_id,
        };
        self.supervisor.do_send(Relay {
            cp_id: self.cp_id.clone(),
            note,
        });
        ctx.stop();
    }

    /// Passes `note` on to the CP's owner, within [`RELAY_TIMEOUT`].
    fn relay(&self, note: Note) -> impl std::future::Future<Output = Result<(), String>> {
        let relayed = self.supervisor.send(Relay {
            cp_id: self.cp_id.clone(),
            note,
        });
        async move {
            match tokio::time::timeout(RELAY_TIMEOUT, relayed).await {
                Ok(Ok(done)) => done,
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("Kafka did not take it within {RELAY_TIMEOUT:?}")),
            }
        }
    }
}

/// What the supervisor hears for a relayed link: the CP's state, or its owner's answer.
#[derive(Message)]
#[rtype(result = "()")]
enum RelayHeard {
    State(CpState),
    LinkVerdict(LinkVerdict),
}

impl Handler<RelayHeard> for MonitorRelay {
    type Result = ();

    fn handle(&mut self, msg: RelayHeard, _ctx: &mut Self::Context) {
        match msg {
            RelayHeard::State(state) => self.state = state,
            RelayHeard::LinkVerdict(LinkVerdict::Crash) => self.crash = true,
            RelayHeard::LinkVerdict(LinkVerdict::Refused(why)) => self.refused = Some(why),
        }
    }
}

/// A relay ended: its link closed, or was refused.
#[derive(Message)]
#[rtype(result = "()")]
struct RelayEnded {
    cp_id: String,
    conn_id: u64,
}

impl Handler<RelayEnded> for CpSupervisor {
    type Result = ();

    fn handle(&mut self, msg: RelayEnded, _ctx: &mut Self::Context) {
        self.relays.remove(&(msg.cp_id, msg.conn_id));
    }
}

impl CpSupervisor {
    /// Relays the link `conn_id`, whose monitor proved the secret of `cp_id` (as issued
    /// at `issued_at`), to the instance running the CP: the link is attached there once the
    /// note arrives. `None` when the CP is not known here; the future fails when Kafka does
    /// not take the note in time (the relay is gone then).
    pub(super) fn relay(
        &mut self,
        cp_id: &str,
        conn_id: u64,
        peer: String,
        issued_at: chrono::DateTime<chrono::Utc>,
        ctx: &mut Context<Self>,
    ) -> Option<(
        MonitorEnd,
        impl std::future::Future<Output = Result<(), String>>,
    )> {
        let view = self.views.get(cp_id)?;
        self.cluster.as_ref()?;
        let relay = MonitorRelay {
            cp_id: cp_id.to_owned(),
            conn_id,
            via: self.settings.instance.clone(),
            supervisor: ctx.address(),
            state: view.state,
            crash: false,
            refused: None,
            heard: Instant::now(),
            silence_window: self.settings.silence_window,
        }
        .start();
        self.relays
            .insert((cp_id.to_owned(), conn_id), relay.clone());
        let attached = relay.send(Attach { peer, issued_at });
        let attached = async move { attached.await.map_err(|e| e.to_string())? };
        let end = MonitorEnd {
            report: relay.clone().recipient(),
            detach: relay.recipient(),
        };
        Some((end, attached))
    }

    /// The relays of `view`'s CP answer with its new state.
    pub(super) fn tell_relays(&self, view: &CpView) {
        for relay in self.relays_of(&view.id) {
            relay.do_send(RelayHeard::State(view.state));
        }
    }

    /// The CP `cp_id` runs here now: the links this instance relays for it (to itself, by
    /// now) are asked to authenticate again, and reach the CP's actor directly. A relayed
    /// link crosses Kafka with every report and is dropped when Kafka is slow.
    pub(super) fn relays_to_local(&self, cp_id: &str) {
        for relay in self.relays_of(cp_id) {
            let why = format!("{cp_id} runs on this central now: send AUTH again");
            relay.do_send(RelayHeard::LinkVerdict(LinkVerdict::Refused(why)));
        }
    }

    fn relays_of<'a>(&'a self, cp_id: &'a str) -> impl Iterator<Item = &'a Addr<MonitorRelay>> {
        self.relays
            .range((cp_id.to_owned(), 0)..=(cp_id.to_owned(), u64::MAX))
            .map(|(_, relay)| relay)
    }

    /// Takes a record of the views topic if it answers a relayed link; `Err` gives the
    /// record back otherwise. Answers written by this process count too: the CP may run
    /// here by now.
    pub(super) fn heard_answer(&mut self, record: SealedRecord) -> Result<(), SealedRecord> {
        let Some(cp_id) = record.key.strip_prefix(KEY_PREFIX) else {
            return Err(record);
        };
        let answer = record
            .value
            .and_then(|v| serde_json::from_slice::<MonitorAnswer>(&v).map_err(|e| e.to_string()));
        match answer {
            Ok(answer) if answer.via == self.settings.instance => {
                if let Some(relay) = self.relays.get(&(cp_id.to_owned(), answer.conn_id)) {
                    relay.do_send(RelayHeard::LinkVerdict(answer.verdict));
                }
            }
            Ok(_) => {}
            Err(why) => log::debug!("an answer to a relayed link set aside: {why}"),
        }
        Ok(())
    }
}

//! The central's supervisor: owns one [`ChargePoint`] actor per CP, routes records and
//! requests to them, and keeps the latest view of every CP for the API.

mod booking;
mod instances;
mod monitor_relay;
mod notes;
mod ownership;
mod registration;
mod tags;

pub use booking::{Booked, ReserveFor};
pub use instances::ListCentrals;
pub use monitor_relay::{LinkAnswered, LinkVerdict, MonitorAnswer};
pub use ownership::{JoinCluster, SharedView};
pub use registration::{
    Asker, ChangeCpTerms, HelloRefusal, IssueCpSecret, MonitorHello, RegisterCp, RegistryRefusal,
};

use super::charge_point::{ChargePoint, CpControl, Crash, CrashMonitor};
use super::console_hub::{ConsoleHub, CpChanged};
use crate::accounts::login_limit::{LoginLimiter, Policy};
use crate::accounts::Accounts;
use crate::bus::HeldPartitions;
use crate::bus::{Inbound, Publisher, Rejection, StreamClock};
use crate::configuration::CentralSettings;
use crate::domain::presence::{Presence, Verdict};
use crate::domain::{CpState, CpView};
use crate::messages::{CpCommand, CpEvent};
use crate::store::{CpRecord, Store};
use actix::prelude::*;
use booking::Note;
use chrono::Utc;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use tokio::sync::watch;

pub struct CpSupervisor {
    /// Which engine instance holds each CP id.
    engines: Presence,
    /// How far the CPs' events have been read: engines are judged silent by it.
    events_read: StreamClock,
    settings: CentralSettings,
    store: Store,
    accounts: Accounts,
    /// Failed monitor AUTHs per CP id and per address.
    auth_failures: Arc<LoginLimiter>,
    publisher: Publisher,
    /// The actors of the CPs this instance runs: those of the partitions it holds.
    cps: HashMap<String, Addr<ChargePoint>>,
    /// Every CP of the network as last seen: run here, or shared by the instance running it.
    views: BTreeMap<String, CpView>,
    /// The partitions of the CPs' topic this instance holds, and those of them restored
    /// from the changelog (their CPs run here).
    held: HeldPartitions,
    ready: watch::Sender<BTreeSet<i32>>,
    /// The changelog and the views shared with the other centrals; set once Kafka answers.
    cluster: Option<ownership::Cluster>,
    /// The other instances, as they last said how they are.
    centrals: BTreeMap<String, crate::domain::central_status::CentralStatus>,
    started_at: chrono::DateTime<Utc>,
    /// The links held here for CPs run elsewhere, by CP and connection.
    relays: BTreeMap<(String, u64), Addr<monitor_relay::MonitorRelay>>,
}

impl CpSupervisor {
    pub fn new(
        settings: CentralSettings,
        store: Store,
        accounts: Accounts,
        publisher: Publisher,
        held: HeldPartitions,
        events_read: StreamClock,
    ) -> CpSupervisor {
        CpSupervisor {
            auth_failures: LoginLimiter::new(Policy::with_first_lockout(settings.auth_lockout)),
            engines: Presence::new(settings.liveness),
            events_read,
            settings,
            store,
            accounts,
            publisher,
            cps: HashMap::new(),
            views: BTreeMap::new(),
            held,
            ready: watch::channel(BTreeSet::new()).0,
            cluster: None,
            centrals: BTreeMap::new(),
            started_at: Utc::now(),
            relays: BTreeMap::new(),
        }
    }

    /// Starts the actor of a CP from its record and open session.
    fn spawn_cp(&mut self, record: CpRecord, ctx: &mut Context<Self>) -> Addr<ChargePoint> {
        let session = match self.store.open_session(&record.id) {
            Ok(session) => session,
            Err(e) => {
                log::error!("cannot read the open session of {}: {e}", record.id);
                None
            }
        };
        let id = record.id.clone();
        self.show_unheard(&record);
        let cp = ChargePoint::new(
            record,
            session,
            self.settings.clone(),
            self.store.clone(),
            self.accounts.clone(),
            self.publisher.clone(),
            ctx.address(),
        )
        .hearing_its_engine_by(self.events_read.clone());
        // Restarted on a crash, behind the same address.
        let cp = Supervisor::start(move |_| cp);
        self.cps.insert(id, cp.clone());
        cp
    }

    /// Shows a CP known from its record and not heard of yet: disconnected, run by no one
    /// known. The API never answers with a registered CP missing.
    fn show_unheard(&mut self, record: &CpRecord) {
        let session = self.store.open_session(&record.id).ok().flatten();
        let id = record.id.clone();
        self.views.entry(id.clone()).or_insert_with(|| CpView {
            id,
            location: record.location.clone(),
            tariff: record.tariff,
            state: CpState::Disconnected,
            driver_id: session.as_ref().map(|s| s.driver_id.clone()),
            session_id: session.as_ref().map(|s| s.id),
            energy: session.as_ref().map(|s| s.energy).unwrap_or_default(),
            cost: session.as_ref().map(|s| s.cost).unwrap_or_default(),
            fault: None,
            since: Utc::now(),
            owner: None,
            connectors: Vec::new(),
        });
    }

    fn cp(&self, id: &str) -> Option<Addr<ChargePoint>> {
        self.cps.get(id).cloned()
    }
}

impl Actor for CpSupervisor {
    type Context = Context<Self>;

    /// Shows every CP the store knows, disconnected until heard of; their actors start
    /// once this instance is given their partitions (see `ownership`).
    fn started(&mut self, ctx: &mut Self::Context) {
        // Records from Kafka arrive many at a time (the consumer keeps several in flight);
        // a full mailbox would make a sender wait and could let a later record pass it.
        ctx.set_mailbox_capacity(crate::bus::MAILBOX_CAPACITY);
        match self.store.cps() {
            Ok(records) => {
                if !records.is_empty() {
                    log::info!("{} charging points in the store", records.len());
                }
                for record in &records {
                    self.show_unheard(record);
                }
            }
            Err(e) => log::error!("cannot read charging points from the store: {e}"),
        }
        self.follow_partitions(ctx);
    }
}

/// A CP actor's view changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CpViewChanged(pub CpView);

impl Handler<CpViewChanged> for CpSupervisor {
    type Result = ();

    /// Keeps the latest view for the API, passes it on to the consoles and shares it with
    /// the other centrals.
    fn handle(&mut self, msg: CpViewChanged, _ctx: &mut Self::Context) {
        self.share_view(&msg.0);
        self.tell_relays(&msg.0);
        ConsoleHub::from_registry().do_send(CpChanged(msg.0.clone()));
        self.views.insert(msg.0.id.clone(), msg.0);
    }
}

/// Every CP's current view, in id order.
#[derive(Message)]
#[rtype(result = "Vec<CpView>")]
pub struct ListCps;

impl Handler<ListCps> for CpSupervisor {
    type Result = MessageResult<ListCps>;

    /// Returns the views kept from the CP actors.
    fn handle(&mut self, _msg: ListCps, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.views.values().cloned().collect())
    }
}

/// Every CP's current state, in id order: what the metrics count, without copying views.
#[derive(Message)]
#[rtype(result = "Vec<CpState>")]
pub struct ListStates;

impl Handler<ListStates> for CpSupervisor {
    type Result = MessageResult<ListStates>;

    fn handle(&mut self, _msg: ListStates, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.views.values().map(|view| view.state).collect())
    }
}

/// One CP's current view, if the CP is known.
#[derive(Message)]
#[rtype(result = "Option<CpView>")]
pub struct GetCp(pub String);

impl Handler<GetCp> for CpSupervisor {
    type Result = Option<CpView>;

    /// Returns the view kept from the CP's actor.
    fn handle(&mut self, msg: GetCp, _ctx: &mut Self::Context) -> Self::Result {
        self.views.get(&msg.0).cloned()
    }
}

impl Handler<Inbound<CpEvent>> for CpSupervisor {
    type Result = ResponseFuture<Result<(), Rejection>>;

    /// Routes an engine's report to the actor of its CP; answers an engine's hello itself.
    fn handle(&mut self, msg: Inbound<CpEvent>, ctx: &mut Self::Context) -> Self::Result {
        if let Some(elsewhere) = self.not_ours(&msg, ctx) {
            return elsewhere;
        }
        crate::metrics::count_cp_event();
        if let CpEvent::FromCentral { .. } = &msg.envelope.body {
            return self.take_note(&msg, ctx);
        }
        if let CpEvent::TagPresented {
            cp_id,
            id_tag,
            request_id,
        } = &msg.envelope.body
        {
            return self.tag_presented(cp_id.clone(), id_tag.clone(), *request_id, ctx);
        }
        if let CpEvent::EngineHello {
            cp_id,
            instance,
            probe,
            ..
        } = &msg.envelope.body
        {
            let answer = match self.engines.hello(
                cp_id,
                *instance,
                *probe,
                msg.envelope.ts,
                self.events_read.now(),
            ) {
                Verdict::Welcome => Some(CpCommand::EngineWelcome {
                    cp_id: cp_id.clone(),
                    instance: *instance,
                }),
                Verdict::InUse(detail) => Some(CpCommand::EngineIdInUse {
                    cp_id: cp_id.clone(),
                    instance: *instance,
                    detail: format!("the engine of {detail}"),
                }),
                Verdict::Quiet => None,
            };
            // A heartbeat tells the CP's actor that its engine is heard; a welcomed probe,
            // that a new engine instance is starting there.
            if !*probe || matches!(answer, Some(CpCommand::EngineWelcome { .. })) {
                if let Some(cp) = self.cp(&msg.key) {
                    cp.do_send(msg.clone());
                }
            }
            let publisher = self.publisher.clone();
            return Box::pin(async move {
                match answer {
                    Some(command) => publisher
                        .cp_command(command)
                        .await
                        .map_err(|e| Rejection::set_aside(e.to_string())),
                    None => Ok(()),
                }
            });
        }
        let Some(cp) = self.cp(&msg.key) else {
            let reason = format!("no charging point {} is known", msg.key);
            return Box::pin(async move { Err(Rejection::set_aside(reason)) });
        };
        // Sent now, not when the future first runs, so that records keep their order.
        let sent = cp.send(msg);
        Box::pin(async move {
            sent.await.map_err(|e| {
                Rejection::set_aside(format!("charging point actor unavailable: {e}"))
            })?
        })
    }
}

/// An operator command for one CP (`cp_id`) or for all of them.
#[derive(Message)]
#[rtype(result = "Result<usize, String>")]
pub struct Operate {
    pub cp_id: Option<String>,
    pub command: CpControl,
}

impl Handler<Operate> for CpSupervisor {
    type Result = Result<usize, String>;

    /// Forwards the command; answers how many CPs it reached.
    fn handle(&mut self, msg: Operate, _ctx: &mut Self::Context) -> Self::Result {
        let note = match msg.command {
            CpControl::Stop => Note::Stop,
            CpControl::Resume => Note::Resume,
            CpControl::DriverStop => Note::DriverStop,
        };
        let ids: Vec<String> = match msg.cp_id {
            Some(id) => vec![id],
            None => self.views.keys().cloned().collect(),
        };
        for id in &ids {
            self.to_cp(id, |cp| cp.do_send(msg.command), note.clone())?;
        }
        Ok(ids.len())
    }
}

/// A driver asks to stop its own supply.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct StopDriverSupply {
    pub driver_id: String,
}

impl Handler<StopDriverSupply> for CpSupervisor {
    type Result = bool;

    /// Finds the CP serving the driver and ends its supply; false when there is none.
    fn handle(&mut self, msg: StopDriverSupply, _ctx: &mut Self::Context) -> bool {
        let serving = self
            .views
            .values()
            .find(|v| v.driver_id.as_deref() == Some(msg.driver_id.as_str()))
            .map(|v| v.id.clone());
        serving.is_some_and(|id| {
            let stop = |cp: &Addr<ChargePoint>| cp.do_send(CpControl::DriverStop);
            self.to_cp(&id, stop, Note::DriverStop).is_ok()
        })
    }
}

/// Crash one CP's actor (crash injection); its supervisor restarts it.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct CrashCp {
    pub cp_id: String,
}

impl Handler<CrashCp> for CpSupervisor {
    type Result = Result<(), String>;

    /// Sends the crash to the named CP's actor.
    fn handle(&mut self, msg: CrashCp, _ctx: &mut Self::Context) -> Self::Result {
        self.to_cp(&msg.cp_id, |cp| cp.do_send(Crash), Note::CrashActor)
    }
}

/// Crash a CP's engine (crash injection): the engine dies abruptly if it allows it.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct CrashEngine {
    pub cp_id: String,
    /// Who asked, for the engine's log.
    pub asked_by: String,
}

impl Handler<CrashEngine> for CpSupervisor {
    type Result = ResponseFuture<Result<(), String>>;

    /// Sends the crash command to the engine over Kafka.
    fn handle(&mut self, msg: CrashEngine, _ctx: &mut Self::Context) -> Self::Result {
        if !self.views.contains_key(&msg.cp_id) {
            let refusal = format!("no charging point {} is known", msg.cp_id);
            return Box::pin(async move { Err(refusal) });
        }
        let publisher = self.publisher.clone();
        Box::pin(async move {
            publisher
                .cp_command(CpCommand::Crash {
                    cp_id: msg.cp_id,
                    asked_by: msg.asked_by,
                })
                .await
                .map_err(|e| format!("cannot reach the engine over Kafka: {e}"))
        })
    }
}

/// Crash a CP's monitor (crash injection): it dies abruptly with its next report, if it
/// allows it.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct CrashCpMonitor {
    pub cp_id: String,
}

impl Handler<CrashCpMonitor> for CpSupervisor {
    type Result = ResponseFuture<Result<(), String>>;

    /// Hands the request to the CP's actor, which answers the monitor; passes it on to the
    /// instance running the CP otherwise (which then answers the monitor).
    fn handle(&mut self, msg: CrashCpMonitor, _ctx: &mut Self::Context) -> Self::Result {
        let Some(cp) = self.cp(&msg.cp_id) else {
            let passed = self.to_cp(&msg.cp_id, |_| {}, Note::CrashMonitor);
            return Box::pin(async move { passed });
        };
        Box::pin(async move {
            cp.send(CrashMonitor)
                .await
                .map_err(|e| format!("the CP's actor did not answer: {e}"))?
        })
    }
}

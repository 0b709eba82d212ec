//! A CP's monitor: checks its engine every period and reports to the central at once.
//!
//! It remembers its last checks and faults ([`HealthHistory`]) for the monitor page, which
//! asks for a [`MonitorStatus`] and subscribes to a [`MonitorEvent`] per check.

use crate::configuration::MonitorSettings;
use crate::domain::health_history::{CheckRecord, CheckResult, FaultRecord, HealthHistory};
use crate::domain::registration::CpTerms;
use crate::link::{FrameClient, LinkError};
use crate::messages::Secret;
use actix::prelude::*;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

/// What the last health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineCheck {
    Ok,
    Ko(String),
    Unreachable(String),
}

/// How the last exchange with the central went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CentralLink {
    /// Reported; the central shows this state.
    Reported(String),
    Refused(String),
    Unreachable(String),
}

/// Who a monitor speaks for: its CP's id and the secret registered for it.
#[derive(Debug, Clone)]
pub struct CpIdentity {
    pub id: String,
    pub secret: Secret,
}

pub struct Monitor {
    cp: CpIdentity,
    /// The CP's location and tariff, as the central's WELCOME told them.
    terms: Option<CpTerms>,
    settings: MonitorSettings,
    /// Taken while a check is in flight, so that checks never overlap.
    clients: Option<(FrameClient, FrameClient)>,
    authenticated: bool,
    last_engine: Option<EngineCheck>,
    last_central: Option<CentralLink>,
    /// Since when the central has refused this monitor without a break.
    refused_since: Option<Instant>,
    /// Told why, when the monitor gives up.
    gave_up: Option<crate::actors::Refusals>,
    history: HealthHistory,
    subscribers: HashMap<u64, Recipient<MonitorEvent>>,
    next_subscriber: u64,
    /// Crash injection from the central may kill this process.
    allow_crash: bool,
}

impl Monitor {
    /// `gave_up` hears why, if the central refuses this monitor for good.
    pub fn new(
        cp: CpIdentity,
        settings: MonitorSettings,
        gave_up: crate::actors::Refusals,
    ) -> Monitor {
        let engine = FrameClient::new(settings.engine.clone(), settings.answer_timeout);
        let central = FrameClient::new(settings.central.clone(), settings.answer_timeout)
            .with_patience(settings.central_patience);
        Monitor {
            cp,
            terms: None,
            settings,
            clients: Some((engine, central)),
            authenticated: false,
            last_engine: None,
            last_central: None,
            refused_since: None,
            gave_up: Some(gave_up),
            history: HealthHistory::default(),
            subscribers: HashMap::new(),
            next_subscriber: 1,
            allow_crash: false,
        }
    }

    /// Links to the central through `connector`: over TLS when it says so.
    pub fn linking_through(mut self, connector: crate::link::Connector) -> Monitor {
        if let Some((_, central)) = &mut self.clients {
            central.set_connector(connector);
        }
        self
    }

    /// Lets the central's crash injection kill this process.
    pub fn allowing_crash(mut self, allow: bool) -> Monitor {
        self.allow_crash = allow;
        self
    }

    /// The central asked this monitor to crash (crash injection).
    fn crash_on_request(&self) {
        if self.allow_crash {
            log::error!("{}: crashing on request of the central", self.cp.id);
            // No clean shutdown: the way a real failure looks.
            std::process::abort();
        }
        log::warn!(
            "{}: the central asked this monitor to crash; refused (start it with --allow-crash)",
            self.cp.id
        );
    }

    /// Stops for good once the central has refused this monitor for the whole grace period.
    fn check_refusal(&mut self, link: &CentralLink) {
        let CentralLink::Refused(why) = link else {
            self.refused_since = None;
            return;
        };
        let since = *self.refused_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= self.settings.refusal_grace {
            if let Some(gave_up) = self.gave_up.take() {
                let _ = gave_up.send(format!(
                    "the central refuses {} for {:?}: {why}",
                    self.cp.id, self.settings.refusal_grace
                ));
            }
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let Some((mut engine, mut central)) = self.clients.take() else {
            return;
        };
        let cp = self.cp.clone();
        let authenticated = self.authenticated;
        let check = async move {
            let started = Instant::now();
            let health = check_engine(&mut engine, &cp.id).await;
            let engine_ms = millis(started);
            let started = Instant::now();
            let (link, authenticated, crash, terms) =
                report_to_central(&mut central, &cp, authenticated, &health).await;
            let timings = Timings {
                engine_ms,
                central_ms: millis(started),
            };
            (
                engine,
                central,
                health,
                link,
                authenticated,
                timings,
                (crash, terms),
            )
        };
        ctx.spawn(check.into_actor(self).map(
            |(engine, central, health, link, authenticated, timings, (crash, terms)), act, _| {
                if terms.is_some() {
                    act.terms = terms;
                }
                if crash {
                    act.crash_on_request();
                }
                act.note_engine(&health);
                act.note_central(&link, central.addr());
                act.check_refusal(&link);
                act.remember(&health, &link, timings);
                act.authenticated = authenticated;
                act.clients = Some((engine, central));
            },
        ));
    }

    /// Keeps the check for the page and tells every subscriber about it.
    fn remember(&mut self, health: &EngineCheck, link: &CentralLink, timings: Timings) {
        let (result, detail) = engine_view(health);
        let central = central_view(Some(link));
        let check = CheckRecord {
            at: chrono::Utc::now(),
            result,
            detail: detail.clone(),
            engine_ms: (result != CheckResult::Unreachable).then_some(timings.engine_ms),
            central_ms: (!matches!(link, CentralLink::Unreachable(_)))
                .then_some(timings.central_ms),
            link: central.link,
            cp_state: central.cp_state.clone(),
        };
        let faults_changed = self.history.record(check.clone());
        if self.subscribers.is_empty() {
            // Nobody has the page open: no events to build.
            return;
        }
        self.publish(MonitorEvent::Check {
            check,
            central,
            engine: EngineView {
                result: Some(result),
                detail,
            },
        });
        if faults_changed {
            self.publish(MonitorEvent::Faults {
                faults: self.history.faults(),
            });
        }
    }

    /// Sends `event` to every subscriber, forgetting those that are gone.
    fn publish(&mut self, event: MonitorEvent) {
        self.subscribers
            .retain(|_, to| match to.try_send(event.clone()) {
                Ok(()) => true,
                // A page too slow to keep up misses this event; a reload shows it all.
                Err(SendError::Full(_)) => true,
                Err(SendError::Closed(_)) => false,
            });
    }

    fn status(&self) -> MonitorStatus {
        let (result, detail) = match &self.last_engine {
            Some(health) => {
                let (result, detail) = engine_view(health);
                (Some(result), detail)
            }
            None => (None, None),
        };
        MonitorStatus {
            cp_id: self.cp.id.clone(),
            location: self.terms.as_ref().map(|t| t.location.clone()),
            price_eur_kwh: self.terms.as_ref().map(|t| t.tariff.eur_per_kwh()),
            central: central_view(self.last_central.as_ref()),
            engine: EngineView { result, detail },
            checks: self.history.checks(),
            faults: self.history.faults(),
        }
    }

    /// Logs a change in the engine's health, once.
    fn note_engine(&mut self, health: &EngineCheck) {
        if self.last_engine.as_ref() == Some(health) {
            return;
        }
        match health {
            EngineCheck::Ok => log::info!("{}: engine OK", self.cp.id),
            EngineCheck::Ko(why) => log::warn!("{}: engine KO: {why}", self.cp.id),
            EngineCheck::Unreachable(why) => {
                log::warn!(
                    "{}: engine not answering ({why}); reported as a fault",
                    self.cp.id
                );
            }
        }
        self.last_engine = Some(health.clone());
    }

    /// Logs a change in the link with the central, once.
    fn note_central(&mut self, link: &CentralLink, addr: &str) {
        let same_kind = matches!(
            (&self.last_central, link),
            (Some(CentralLink::Reported(_)), CentralLink::Reported(_))
                | (
                    Some(CentralLink::Unreachable(_)),
                    CentralLink::Unreachable(_)
                )
        );
        if self.last_central.as_ref() == Some(link) || same_kind {
            if let (Some(CentralLink::Reported(old)), CentralLink::Reported(new)) =
                (&self.last_central, link)
            {
                if old != new {
                    log::info!("{}: the central shows {new}", self.cp.id);
                }
            }
            self.last_central = Some(link.clone());
            return;
        }
        match link {
            CentralLink::Reported(state) => log::info!(
                "{}: connected to the central at {addr}, which shows {state}",
                self.cp.id
            ),
            CentralLink::Refused(why) => {
                log::error!(
                    "{}: the central at {addr} refused this CP: {why}",
                    self.cp.id
                );
            }
            CentralLink::Unreachable(why) => log::warn!(
                "{}: cannot reach the central at {addr} ({why}); retrying",
                self.cp.id
            ),
        }
        self.last_central = Some(link.clone());
    }
}

/// How long the two halves of one check took.
#[derive(Debug, Clone, Copy)]
struct Timings {
    engine_ms: f64,
    central_ms: f64,
}

/// Milliseconds since `start`, to the hundredth.
fn millis(start: Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 100_000.0).round() / 100.0
}

fn engine_view(health: &EngineCheck) -> (CheckResult, Option<String>) {
    match health {
        EngineCheck::Ok => (CheckResult::Ok, None),
        EngineCheck::Ko(why) => (CheckResult::Ko, Some(why.clone())),
        EngineCheck::Unreachable(why) => (CheckResult::Unreachable, Some(why.clone())),
    }
}

fn central_view(link: Option<&CentralLink>) -> CentralView {
    let (link, detail, cp_state) = match link {
        None => ("starting", None, None),
        Some(CentralLink::Reported(state)) => ("reported", None, Some(state.clone())),
        Some(CentralLink::Refused(why)) => ("refused", Some(why.clone()), None),
        Some(CentralLink::Unreachable(why)) => ("unreachable", Some(why.clone()), None),
    };
    CentralView {
        link,
        detail,
        cp_state,
    }
}

async fn check_engine(engine: &mut FrameClient, cp_id: &str) -> EngineCheck {
    match engine.request(vec!["HEALTH".into(), cp_id.into()]).await {
        Ok(reply) => match reply.fields.as_slice() {
            [ok, _] if reply.accepted && ok == "OK" => EngineCheck::Ok,
            [ko, _, why @ ..] if reply.accepted && ko == "KO" => EngineCheck::Ko(why.join(" ")),
            other => EngineCheck::Ko(format!("unexpected health answer: {}", other.join("#"))),
        },
        Err(e) => EngineCheck::Unreachable(e.to_string()),
    }
}

/// What one report to the central came to: the link as it stands, whether it is
/// authenticated afterwards, whether the central asked for a crash, and the CP's terms
/// when this report began with a WELCOME.
type Reported = (CentralLink, bool, bool, Option<CpTerms>);

/// Authenticates if needed, then reports the engine's health. A link the central no longer
/// counts as authenticated (silent past its window, or the CP was issued a new secret) is
/// told to `send AUTH`: it authenticates again at once and reports once more.
pub async fn report_to_central(
    central: &mut FrameClient,
    cp: &CpIdentity,
    authenticated: bool,
    health: &EngineCheck,
) -> Reported {
    let unreachable = |e: LinkError| (CentralLink::Unreachable(e.to_string()), false, false, None);
    let refused = |fields: &[String], terms| {
        let why = fields.get(1).cloned().unwrap_or_default();
        (CentralLink::Refused(why), false, false, terms)
    };
    let mut status = vec!["STATUS".to_string(), cp.id.clone()];
    match health {
        EngineCheck::Ok => status.push("OK".into()),
        EngineCheck::Ko(why) | EngineCheck::Unreachable(why) => {
            status.push("KO".into());
            status.push(why.replace('#', " "));
        }
    }
    let mut terms = None;
    let mut authenticated = authenticated && central.is_connected();
    // Centrals that said the CP runs elsewhere, this period: each is asked once.
    let mut elsewhere = 0;
    loop {
        let fresh = !authenticated;
        if fresh {
            let auth = vec!["AUTH".into(), cp.id.clone(), cp.secret.expose().to_owned()];
            match central.request(auth).await {
                Ok(reply) if reply.accepted => terms = welcome_terms(&reply.fields),
                // This central does not run the CP (now): the next one of the list may.
                Ok(reply) if reply.fields.first().is_some_and(|f| f == "ELSEWHERE") => {
                    let why = reply.fields.get(1).cloned().unwrap_or_default();
                    let at = central.addr().to_owned();
                    central.move_on();
                    elsewhere += 1;
                    if elsewhere >= central.peer_count() {
                        let why = format!("{at}: {why}");
                        return (CentralLink::Unreachable(why), false, false, None);
                    }
                    continue;
                }
                Ok(reply) => return refused(&reply.fields, None),
                Err(e) => return unreachable(e),
            }
        }
        match central.request(status.clone()).await {
            Ok(reply) if reply.accepted => {
                return (
                    CentralLink::Reported(reply.fields.get(2).cloned().unwrap_or_default()),
                    true,
                    reply.fields.get(3).is_some_and(|f| f == "CRASH"),
                    terms,
                )
            }
            Ok(reply) if !fresh && asks_for_auth(&reply.fields) => authenticated = false,
            Ok(reply) => return refused(&reply.fields, terms),
            Err(e) => return unreachable(e),
        }
    }
}

/// Whether the central answered `ERR#… send AUTH again` (or `first`): the link must
/// authenticate before it reports.
fn asks_for_auth(fields: &[String]) -> bool {
    matches!(fields, [err, why] if err == "ERR" && why.contains("send AUTH"))
}

/// The terms in `WELCOME#cp#location#price`; `None` from a central that does not send them.
fn welcome_terms(fields: &[String]) -> Option<CpTerms> {
    match fields {
        [_, _, location, price, ..] => CpTerms::new(location, price.parse().ok()?).ok(),
        _ => None,
    }
}

impl Actor for Monitor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        log::info!(
            "{}: monitoring the engine at {} every {:?}, reporting to the central at {}",
            self.cp.id,
            self.settings.engine,
            self.settings.health_period,
            self.settings.central
        );
        self.tick(ctx);
        ctx.run_interval(self.settings.health_period, |act, ctx| act.tick(ctx));
    }
}

/// The link with the central as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CentralView {
    /// `starting` (nothing tried yet), `reported`, `refused` or `unreachable`.
    pub link: &'static str,
    /// Why it was refused or unreachable.
    pub detail: Option<String>,
    /// The CP's state as the central answered the last report; `None` unless reported.
    pub cp_state: Option<String>,
}

/// The engine's health as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EngineView {
    /// `None` before the first check.
    pub result: Option<CheckResult>,
    pub detail: Option<String>,
}

/// Everything the monitor page shows, at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitorStatus {
    pub cp_id: String,
    /// The registration's, once the central has welcomed the monitor.
    pub location: Option<String>,
    pub price_eur_kwh: Option<f64>,
    pub central: CentralView,
    pub engine: EngineView,
    /// Newest first.
    pub checks: Vec<CheckRecord>,
    /// Newest first.
    pub faults: Vec<FaultRecord>,
}

/// Asks for the monitor's status now.
#[derive(Message)]
#[rtype(result = "MonitorStatus")]
pub struct GetStatus;

/// Sends every later [`MonitorEvent`] to `to`; answers with the subscription's id and the
/// status at that moment, so that nothing falls between the two.
#[derive(Message)]
#[rtype(result = "(u64, MonitorStatus)")]
pub struct WatchHealth {
    pub to: Recipient<MonitorEvent>,
}

/// Ends the subscription `id`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnwatchHealth {
    pub id: u64,
}

/// What happened at the monitor, told to its subscribers.
#[derive(Message, Debug, Clone, Serialize)]
#[rtype(result = "()")]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MonitorEvent {
    /// One health check done and reported.
    Check {
        check: CheckRecord,
        central: CentralView,
        engine: EngineView,
    },
    /// A fault began or cleared; the whole list, newest first.
    Faults { faults: Vec<FaultRecord> },
}

/// Answers with the current status.
impl Handler<GetStatus> for Monitor {
    type Result = MessageResult<GetStatus>;

    fn handle(&mut self, _: GetStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.status())
    }
}

/// Adds a subscriber.
impl Handler<WatchHealth> for Monitor {
    type Result = MessageResult<WatchHealth>;

    fn handle(&mut self, msg: WatchHealth, _: &mut Context<Self>) -> Self::Result {
        let id = self.next_subscriber;
        self.next_subscriber += 1;
        self.subscribers.insert(id, msg.to);
        MessageResult((id, self.status()))
    }
}

/// Forgets a subscriber.
impl Handler<UnwatchHealth> for Monitor {
    type Result = ();

    fn handle(&mut self, msg: UnwatchHealth, _: &mut Context<Self>) {
        self.subscribers.remove(&msg.id);
    }
}

/// The monitor stops at once, as if its process had died: its links close unannounced.
/// Used by `evcharge fleet` to inject crashes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Vanish;

impl Handler<Vanish> for Monitor {
    type Result = ();

    fn handle(&mut self, _msg: Vanish, ctx: &mut Self::Context) {
        log::warn!("{}: monitor crashed (injected)", self.cp.id);
        ctx.stop();
    }
}

//! What the admin console shows live, gathered in one place and pushed to every open console.
//!
//! CP views, the feed of application messages, ongoing driver requests, closed sessions and
//! the records flowing on Kafka all come here. Changes are batched and pushed four times a
//! second, so a busy network costs the browsers a few messages a second, not one per report.

use crate::bus::{BusRecord, Tapped};
use crate::domain::{CpState, CpView};
use crate::store::SessionView;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How often batched changes go out.
const PUSH_PERIOD: Duration = Duration::from_millis(250);
/// Feed entries kept for a console that opens later.
const FEED_KEPT: usize = 200;
/// Kafka records kept for a console that opens later, and the most sent in one push.
const RECORDS_KEPT: usize = 200;
/// How long a denied request stays listed.
const DENIED_SHOWN: Duration = Duration::from_secs(30);

/// What kind of application message a feed entry is (its colour on the console).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedKind {
    Fault,
    Recovery,
    Denial,
    Stop,
    Info,
}

/// One application message.
#[derive(Debug, Clone, Serialize)]
pub struct FeedEntry {
    pub at: DateTime<Utc>,
    pub kind: FeedKind,
    pub cp_id: Option<String>,
    pub text: String,
}

impl FeedEntry {
    pub fn new(kind: FeedKind, cp_id: Option<&str>, text: impl Into<String>) -> FeedEntry {
        FeedEntry {
            at: Utc::now(),
            kind,
            cp_id: cp_id.map(str::to_owned),
            text: text.into(),
        }
    }
}

/// A driver request as the console lists it, from arrival through its supply to its end
/// (then a little while longer, as a denied one).
#[derive(Debug, Clone, Serialize)]
pub struct RequestView {
    pub request_id: Uuid,
    pub driver_id: String,
    /// The CP asked for; `None` for any.
    pub wanted: Option<String>,
    /// Where it was reserved.
    pub cp_id: Option<String>,
    /// waiting, reserved, charging, ended (its session closed) or denied
    pub status: &'static str,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// What goes out to one console: a JSON text, shared by every console.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct Push(pub Arc<str>);

/// A console opens: it gets a snapshot at once, then every push.
#[derive(Message)]
#[rtype(result = "(u64, Push)")]
pub struct OpenConsole(pub Recipient<Push>);

/// A console closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseConsole(pub u64);

/// A CP's view changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CpChanged(pub CpView);

/// Something the operator should read in the feed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Happened(pub FeedEntry);

/// A driver request arrived at the central.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RequestSeen {
    pub request_id: Uuid,
    pub driver_id: String,
    pub wanted: Option<String>,
}

/// The central answered a driver request.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RequestAnswered {
    pub request_id: Uuid,
    /// Reserved at this CP, or denied with this reason.
    pub answer: Result<String, String>,
}

/// A session closed (or was amended): its final figures.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionClosed(pub SessionView);

#[derive(Default)]
pub struct ConsoleHub {
    subscribers: HashMap<u64, Recipient<Push>>,
    next_subscriber: u64,
    cps: BTreeMap<String, CpView>,
    /// CPs broken for a real fault since they were last healthy.
    faulty: HashSet<String>,
    feed: VecDeque<FeedEntry>,
    requests: BTreeMap<Uuid, RequestView>,
    records: VecDeque<BusRecord>,
    /// Changes since the last push.
    changed_cps: BTreeMap<String, CpView>,
    new_feed: Vec<FeedEntry>,
    new_records: Vec<BusRecord>,
    new_sessions: Vec<SessionView>,
    requests_changed: bool,
}

impl ConsoleHub {
    fn note(&mut self, entry: FeedEntry) {
        if self.feed.len() == FEED_KEPT {
            self.feed.pop_front();
        }
        self.feed.push_back(entry.clone());
        self.new_feed.push(entry);
    }

    /// The feed entry a change of state deserves, if any.
    /// `after_fault`: the CP was broken for a real fault since it was last healthy (a
    /// restarted engine passes through "starting" on its way back).
    fn describe_change(
        previous: Option<&CpView>,
        view: &CpView,
        after_fault: bool,
    ) -> Option<FeedEntry> {
        use CpState::*;
        let before = previous.map(|p| p.state);
        if before == Some(view.state) {
            return None;
        }
        let id = Some(view.id.as_str());
        let entry = match (before, view.state) {
            // Linking up: said once it is ready.
            (None | Some(Disconnected), Starting) => return None,
            (_, Starting) => FeedEntry::new(
                FeedKind::Info,
                id,
                format!(
                    "{} is starting: {}",
                    view.id,
                    view.fault.as_deref().unwrap_or_default()
                ),
            ),
            (Some(Starting), Available | Reserved | Charging | Stopped) if !after_fault => {
                FeedEntry::new(FeedKind::Recovery, id, format!("{} is ready", view.id))
            }
            (_, Broken) => FeedEntry::new(
                FeedKind::Fault,
                id,
                format!(
                    "{} is broken: {}",
                    view.id,
                    view.fault.as_deref().unwrap_or("engine KO")
                ),
            ),
            (Some(Broken | Starting), Available | Reserved | Charging | Stopped) => FeedEntry::new(
                FeedKind::Recovery,
                id,
                format!("{} recovered: its engine is healthy again", view.id),
            ),
            (Some(Available | Reserved | Charging | Stopped | Broken | Starting), Disconnected) => {
                FeedEntry::new(
                    FeedKind::Fault,
                    id,
                    format!("{} is disconnected: its monitor is not reporting", view.id),
                )
            }
            (None | Some(Disconnected), Available | Reserved | Charging | Stopped) => {
                FeedEntry::new(
                    FeedKind::Recovery,
                    id,
                    format!("{} is connected ({})", view.id, view.state.as_str()),
                )
            }
            (_, Stopped) => FeedEntry::new(
                FeedKind::Stop,
                id,
                format!("{} stopped by the operator: Out of Order", view.id),
            ),
            (Some(Stopped), Available) => {
                FeedEntry::new(FeedKind::Info, id, format!("{} resumed", view.id))
            }
            (_, Charging) => FeedEntry::new(
                FeedKind::Info,
                id,
                format!(
                    "{} is supplying {}",
                    view.id,
                    view.driver_id.as_deref().unwrap_or("a driver")
                ),
            ),
            _ => return None,
        };
        Some(entry)
    }

    fn snapshot(&self) -> Push {
        let requests: Vec<&RequestView> = self.requests.values().collect();
        to_push(&serde_json::json!({
            "type": "snapshot",
            "cps": self.cps.values().collect::<Vec<_>>(),
            "feed": self.feed,
            "requests": requests,
            "kafka": self.records,
        }))
    }

    /// Sends what changed since the last push to every console.
    fn push_changes(&mut self) {
        let mut pushes = Vec::new();
        if !self.changed_cps.is_empty() {
            let cps: Vec<CpView> = std::mem::take(&mut self.changed_cps)
                .into_values()
                .collect();
            pushes.push(to_push(&serde_json::json!({"type": "cps", "cps": cps})));
        }
        if !self.new_feed.is_empty() {
            let entries = std::mem::take(&mut self.new_feed);
            pushes.push(to_push(
                &serde_json::json!({"type": "feed", "entries": entries}),
            ));
        }
        if std::mem::take(&mut self.requests_changed) {
            let requests: Vec<&RequestView> = self.requests.values().collect();
            pushes.push(to_push(
                &serde_json::json!({"type": "requests", "requests": requests}),
            ));
        }
        for session in std::mem::take(&mut self.new_sessions) {
            pushes.push(to_push(
                &serde_json::json!({"type": "session", "session": session}),
            ));
        }
        if !self.new_records.is_empty() {
            let mut records = std::mem::take(&mut self.new_records);
            let skipped = records.len().saturating_sub(RECORDS_KEPT);
            records.drain(..skipped);
            pushes.push(to_push(&serde_json::json!({
                "type": "kafka", "records": records, "skipped": skipped,
            })));
        }
        if pushes.is_empty() {
            return;
        }
        self.subscribers.retain(|_, console| console.connected());
        self.count_consoles();
        for console in self.subscribers.values() {
            for push in &pushes {
                console.do_send(push.clone());
            }
        }
    }

    fn forget_old_denials(&mut self) {
        let before = self.requests.len();
        let oldest = Utc::now() - chrono::Duration::from_std(DENIED_SHOWN).unwrap_or_default();
        self.requests
            .retain(|_, r| !matches!(r.status, "denied" | "ended") || r.at > oldest);
        if self.requests.len() != before {
            self.requests_changed = true;
        }
    }
}

impl ConsoleHub {
    /// A reserved request's row follows its supply: charging, with the energy so far.
    fn follow_request(&mut self, view: &CpView) {
        if view.state != CpState::Charging {
            return;
        }
        let Some(driver) = view.driver_id.as_deref() else {
            return;
        };
        let request = self.requests.values_mut().find(|r| {
            matches!(r.status, "reserved" | "charging")
                && r.cp_id.as_deref() == Some(view.id.as_str())
                && r.driver_id == driver
        });
        if let Some(request) = request {
            request.status = "charging";
            request.detail = Some(format!("{} kWh, {} €", view.energy, view.cost));
            self.requests_changed = true;
        }
    }
}

fn to_push(value: &serde_json::Value) -> Push {
    Push(Arc::from(value.to_string()))
}

impl Actor for ConsoleHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(PUSH_PERIOD, |hub, _| {
            hub.forget_old_denials();
            hub.push_changes();
        });
    }
}

impl Supervised for ConsoleHub {}

/// One hub per central process, reachable from any actor without plumbing.
impl SystemService for ConsoleHub {}

/// Consoles connected now; the topic view reads Kafka only while there is one.
static CONSOLES_OPEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether any console is connected.
pub fn consoles_open() -> bool {
    CONSOLES_OPEN.load(std::sync::atomic::Ordering::Relaxed) > 0
}

impl ConsoleHub {
    fn count_consoles(&self) {
        CONSOLES_OPEN.store(self.subscribers.len(), std::sync::atomic::Ordering::Relaxed);
    }
}

impl Handler<OpenConsole> for ConsoleHub {
    type Result = MessageResult<OpenConsole>;

    /// Adds the console and hands it the snapshot.
    fn handle(&mut self, msg: OpenConsole, _ctx: &mut Self::Context) -> Self::Result {
        self.next_subscriber += 1;
        self.subscribers.insert(self.next_subscriber, msg.0);
        self.count_consoles();
        MessageResult((self.next_subscriber, self.snapshot()))
    }
}

impl Handler<CloseConsole> for ConsoleHub {
    type Result = ();

    /// Forgets the console.
    fn handle(&mut self, msg: CloseConsole, _ctx: &mut Self::Context) {
        self.subscribers.remove(&msg.0);
        self.count_consoles();
    }
}

impl Handler<CpChanged> for ConsoleHub {
    type Result = ();

    /// Keeps the view, and writes a feed entry when the state changed.
    fn handle(&mut self, msg: CpChanged, _ctx: &mut Self::Context) {
        let view = msg.0;
        let after_fault = self.faulty.contains(&view.id);
        if let Some(entry) = Self::describe_change(self.cps.get(&view.id), &view, after_fault) {
            self.note(entry);
        }
        match view.state {
            CpState::Broken => {
                self.faulty.insert(view.id.clone());
            }
            CpState::Disconnected | CpState::Starting => {}
            _ => {
                self.faulty.remove(&view.id);
            }
        }
        self.follow_request(&view);
        self.cps.insert(view.id.clone(), view.clone());
        self.changed_cps.insert(view.id.clone(), view);
    }
}

impl Handler<Happened> for ConsoleHub {
    type Result = ();

    /// Adds the entry to the feed.
    fn handle(&mut self, msg: Happened, _ctx: &mut Self::Context) {
        self.note(msg.0);
    }
}

impl Handler<RequestSeen> for ConsoleHub {
    type Result = ();

    /// Lists the request as waiting.
    fn handle(&mut self, msg: RequestSeen, _ctx: &mut Self::Context) {
        self.requests.entry(msg.request_id).or_insert(RequestView {
            request_id: msg.request_id,
            driver_id: msg.driver_id,
            wanted: msg.wanted,
            cp_id: None,
            status: "waiting",
            detail: None,
            at: Utc::now(),
        });
        self.requests_changed = true;
    }
}

impl Handler<RequestAnswered> for ConsoleHub {
    type Result = ();

    /// Marks the request reserved (listed until its session closes) or denied (listed a
    /// little while, and written to the feed).
    fn handle(&mut self, msg: RequestAnswered, _ctx: &mut Self::Context) {
        let Some(request) = self.requests.get_mut(&msg.request_id) else {
            return;
        };
        request.at = Utc::now();
        match msg.answer {
            Ok(cp_id) => {
                request.status = "reserved";
                request.cp_id = Some(cp_id);
            }
            Err(why) => {
                request.status = "denied";
                request.detail = Some(why.clone());
                let text = format!("request of {} denied: {why}", request.driver_id);
                let cp = request.wanted.clone();
                self.note(FeedEntry::new(FeedKind::Denial, cp.as_deref(), text));
            }
        }
        self.requests_changed = true;
    }
}

impl Handler<SessionClosed> for ConsoleHub {
    type Result = ();

    /// Marks the request ended (listed a little while longer) and sends the session to the
    /// history.
    fn handle(&mut self, msg: SessionClosed, _ctx: &mut Self::Context) {
        let session = msg.0;
        if let Some(request) = self.requests.get_mut(&session.request_id) {
            request.status = "ended";
            request.cp_id = Some(session.cp_id.clone());
            request.detail = Some(format!(
                "{}: {} kWh, {} €",
                session.outcome.unwrap_or("closed").replace('_', " "),
                session.energy,
                session.cost
            ));
            request.at = Utc::now();
            self.requests_changed = true;
        }
        let text = format!(
            "session at {} for {} ended ({}): {} kWh, {} €",
            session.cp_id,
            session.driver_id,
            session.outcome.unwrap_or("open"),
            session.energy,
            session.cost
        );
        let kind = match session.outcome {
            Some("engine_failure" | "monitor_lost") => FeedKind::Fault,
            Some("stopped_by_operator") => FeedKind::Stop,
            _ => FeedKind::Info,
        };
        self.note(FeedEntry::new(kind, Some(&session.cp_id), text));
        self.new_sessions.push(session);
    }
}

impl Handler<Tapped> for ConsoleHub {
    type Result = ();

    /// Keeps the record for the topic view.
    fn handle(&mut self, msg: Tapped, _ctx: &mut Self::Context) {
        if self.records.len() == RECORDS_KEPT {
            self.records.pop_front();
        }
        self.records.push_back(msg.0.clone());
        self.new_records.push(msg.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: CpState) -> CpView {
        CpView {
            id: "CP1".into(),
            location: "here".into(),
            tariff: crate::domain::money::Tariff::from_hundredths_of_cent(3000),
            state,
            driver_id: None,
            session_id: None,
            energy: Default::default(),
            cost: Default::default(),
            fault: Some("engine not answering".into()),
            since: DateTime::UNIX_EPOCH,
            owner: None,
            connectors: Vec::new(),
        }
    }

    #[test]
    fn state_changes_become_feed_entries() {
        use CpState::*;
        let entry = |before: Option<CpState>, after: CpState| {
            let previous = before.map(view);
            ConsoleHub::describe_change(previous.as_ref(), &view(after), false)
                .map(|e| (e.kind, e.text))
        };
        let (kind, text) = entry(Some(Available), Broken).unwrap();
        assert_eq!(kind, FeedKind::Fault);
        assert!(text.contains("engine not answering"), "{text}");
        assert_eq!(
            entry(Some(Broken), Available).unwrap().0,
            FeedKind::Recovery
        );
        assert_eq!(
            entry(Some(Charging), Disconnected).unwrap().0,
            FeedKind::Fault
        );
        assert_eq!(entry(Some(Available), Stopped).unwrap().0, FeedKind::Stop);
        assert_eq!(entry(Some(Stopped), Available).unwrap().0, FeedKind::Info);
        assert_eq!(entry(None, Available).unwrap().0, FeedKind::Recovery);
        assert!(entry(Some(Available), Available).is_none());
        assert!(entry(None, Disconnected).is_none());
        assert!(entry(Some(Charging), Available).is_none());

        // A starting engine is not a fault.
        let mut starting = view(Starting);
        starting.fault = Some("waiting for its engine: not heard on the bus yet".into());
        let entry = ConsoleHub::describe_change(Some(&view(Available)), &starting, false).unwrap();
        assert_eq!(entry.kind, FeedKind::Info);
        assert!(entry.text.contains("is starting"), "{}", entry.text);
        assert!(ConsoleHub::describe_change(Some(&view(Disconnected)), &starting, false).is_none());
        let ready = ConsoleHub::describe_change(Some(&starting), &view(Available), false).unwrap();
        assert_eq!(
            (ready.kind, ready.text.as_str()),
            (FeedKind::Recovery, "CP1 is ready")
        );
        // Back after a crash, through "starting": a recovery.
        let back = ConsoleHub::describe_change(Some(&starting), &view(Available), true).unwrap();
        assert!(back.text.contains("recovered"), "{}", back.text);
    }
}

//! What a CP's monitor tells the central's actor for it: the monitor attaches, reports the
//! engine's health, goes silent or detaches; silence past the window is a lost monitor. The
//! link may be held here or by another instance, which relays it (`relayed_monitor.rs`).

use super::ChargePoint;
use crate::actors::central::cp_supervisor::LinkVerdict;
use crate::actors::central::thread_lag;
use crate::domain::registration::CpTerms;
use crate::domain::{CpState, EngineHealth};
use crate::messages::{DriverUpdate, Outcome};
use actix::prelude::*;
use std::time::{Duration, Instant};

/// The monitor currently speaking for this CP.
#[derive(Debug)]
pub(super) struct MonitorLink {
    /// The link's connection id on the instance holding it: this one (`via` is `None`) or
    /// the one named, which relays it.
    pub(super) conn_id: u64,
    pub(super) via: Option<String>,
    peer: String,
    last_seen: Instant,
    /// `None` until the first status report.
    pub(super) engine: Option<EngineHealth>,
}

impl MonitorLink {
    fn is(&self, conn_id: u64, via: Option<&str>) -> bool {
        self.conn_id == conn_id && self.via.as_deref() == via
    }
}

/// Where a monitor's link on this instance sends what its monitor says: the CP's actor when
/// the CP runs here, a relay to the instance running it otherwise.
pub struct MonitorEnd {
    pub report: Recipient<MonitorReport>,
    pub detach: Recipient<DetachMonitor>,
}

impl From<Addr<ChargePoint>> for MonitorEnd {
    fn from(cp: Addr<ChargePoint>) -> MonitorEnd {
        MonitorEnd {
            report: cp.clone().recipient(),
            detach: cp.recipient(),
        }
    }
}

/// A monitor that proved it holds this CP's secret presents itself; refused while another
/// live monitor holds the CP. Answered with the CP's registered terms, for its page.
#[derive(Message)]
#[rtype(result = "Result<CpTerms, String>")]
pub struct AttachMonitor {
    pub conn_id: u64,
    pub peer: String,
}

impl Handler<AttachMonitor> for ChargePoint {
    type Result = Result<CpTerms, String>;

    fn handle(&mut self, msg: AttachMonitor, _ctx: &mut Self::Context) -> Self::Result {
        self.attach(msg.conn_id, None, msg.peer, Instant::now())?;
        Ok(CpTerms {
            location: self.location.clone(),
            tariff: self.tariff,
        })
    }
}

/// The monitor's periodic report on its engine. Answered with the CP's state, and whether
/// the monitor is asked to crash (crash injection).
#[derive(Message)]
#[rtype(result = "Result<(CpState, bool), String>")]
pub struct MonitorReport {
    pub conn_id: u64,
    pub engine: EngineHealth,
}

impl Handler<MonitorReport> for ChargePoint {
    type Result = Result<(CpState, bool), String>;

    fn handle(&mut self, msg: MonitorReport, ctx: &mut Self::Context) -> Self::Result {
        self.take_report(msg.conn_id, None, msg.engine, Instant::now(), ctx)
    }
}

/// Crash injection: tell this CP's monitor to crash, with the answer to its next report.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct CrashMonitor;

impl Handler<CrashMonitor> for ChargePoint {
    type Result = Result<(), String>;

    /// Marks the crash for the monitor's next report; refused when no monitor is connected.
    fn handle(&mut self, _msg: CrashMonitor, _ctx: &mut Self::Context) -> Self::Result {
        if self.monitor.is_none() {
            return Err(format!("{} has no monitor connected", self.id));
        }
        self.crash_monitor = true;
        Ok(())
    }
}

/// The monitor's connection closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DetachMonitor {
    pub conn_id: u64,
}

impl Handler<DetachMonitor> for ChargePoint {
    type Result = ();

    fn handle(&mut self, msg: DetachMonitor, ctx: &mut Self::Context) {
        self.detach(msg.conn_id, None, ctx);
    }
}

/// The CP was issued a new secret: whatever monitor holds it now must authenticate again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForgetMonitor;

impl Handler<ForgetMonitor> for ChargePoint {
    type Result = ();

    fn handle(&mut self, _msg: ForgetMonitor, ctx: &mut Self::Context) {
        if let Some(MonitorLink {
            via: Some(via),
            conn_id,
            ..
        }) = &self.monitor
        {
            let why = "a new secret was issued for this CP: send AUTH again".to_string();
            self.answer_relay(via.clone(), *conn_id, LinkVerdict::Refused(why));
        }
        if self.monitor.is_some() {
            log::warn!(
                "{}: new secret issued; its monitor must authenticate again",
                self.id
            );
            self.monitor_lost(ctx);
        }
    }
}

impl ChargePoint {
    /// Takes the link `conn_id` (held by `via`, or here) as the CP's monitor, last heard at
    /// `seen`, unless another one spoke within the silence window.
    pub(super) fn attach(
        &mut self,
        conn_id: u64,
        via: Option<String>,
        peer: String,
        seen: Instant,
    ) -> Result<(), String> {
        if self.retired {
            return Err(format!("{} has moved to another central", self.id));
        }
        if let Some(current) = &self.monitor {
            // The same connection, which this instance relayed to itself before the CP ran
            // here, now reaching the CP directly: it takes the relayed link's place.
            let relayed_here = via.is_none()
                && current.conn_id == conn_id
                && current.via.as_deref() == Some(self.settings.instance.as_str());
            if !current.is(conn_id, via.as_deref())
                && !relayed_here
                && current.last_seen.elapsed() <= self.silence_limit()
            {
                // Where the live monitor is connected from is not told to the newcomer.
                log::warn!(
                    "{}: a second monitor from {peer} refused while the one from {} is live",
                    self.id,
                    current.peer
                );
                return Err(format!("{} already has a live monitor", self.id));
            }
        }
        match &via {
            Some(via) => log::info!("{}: monitor authenticated from {peer} via {via}", self.id),
            None => log::info!("{}: monitor authenticated from {peer}", self.id),
        }
        self.monitor = Some(MonitorLink {
            conn_id,
            via,
            peer,
            last_seen: seen,
            engine: None,
        });
        self.publish_view();
        Ok(())
    }

    /// A report of the link `conn_id`, made at `seen`: refreshes the monitor's liveness and
    /// the engine's health; a fault ends the session. Answered with the CP's state and
    /// whether the monitor is to crash.
    pub(super) fn take_report(
        &mut self,
        conn_id: u64,
        via: Option<&str>,
        engine: EngineHealth,
        seen: Instant,
        ctx: &mut Context<Self>,
    ) -> Result<(CpState, bool), String> {
        let Some(link) = self.monitor.as_mut().filter(|m| m.is(conn_id, via)) else {
            return Err("not authenticated: send AUTH first".into());
        };
        link.last_seen = link.last_seen.max(seen);
        let previous = link.engine.replace(engine.clone());
        match (&previous, &engine) {
            (Some(EngineHealth::Ko(_)), EngineHealth::Ok) => {
                log::info!("{}: engine recovered", self.id);
            }
            (_, EngineHealth::Ko(why)) if !matches!(previous, Some(EngineHealth::Ko(_))) => {
                log::warn!("{}: engine fault: {why}", self.id);
                // The supply ends from here, whatever the engine does about its fault.
                if let Some(session) = &self.session {
                    if session.started_at.is_some() {
                        self.send_to_driver(DriverUpdate::Interrupted {
                            driver_id: session.driver_id.clone(),
                            session_id: session.id,
                            cp_id: self.id.clone(),
                            detail: format!("the charging point is broken: {why}"),
                        });
                    }
                    self.end_session(Outcome::EngineFailure, ctx);
                }
            }
            _ => {}
        }
        self.publish_view();
        Ok((self.state(), std::mem::take(&mut self.crash_monitor)))
    }

    /// The link `conn_id` closed: the CP is disconnected if it was its monitor.
    pub(super) fn detach(&mut self, conn_id: u64, via: Option<&str>, ctx: &mut Context<Self>) {
        if self.monitor.as_ref().is_some_and(|m| m.is(conn_id, via)) {
            log::warn!("{}: monitor connection closed", self.id);
            self.monitor_lost(ctx);
        }
    }

    /// Looks again after `after`: at the moment the monitor's silence would reach the
    /// window, as of its last report. One timer a window per CP, however often monitors
    /// report: thousands of CPs polling four times a second kept the central's thread busy.
    pub(super) fn watch_silence(&mut self, after: Duration, ctx: &mut Context<Self>) {
        ctx.run_later(after, |act, ctx| {
            // The engine's silence on the bus shows here too, with no record to show it.
            if act.last_view.as_ref().map(|v| v.state) != Some(act.state()) {
                act.publish_view();
            }
            let limit = act.silence_limit();
            let left = act
                .monitor
                .as_ref()
                .map(|m| limit.saturating_sub(m.last_seen.elapsed()));
            match left {
                Some(left) if !left.is_zero() => act.watch_silence(left, ctx),
                _ => {
                    act.check_silence(ctx);
                    act.watch_silence(act.settings.silence_window, ctx);
                }
            }
        });
    }

    /// How long its monitor may go unheard (see [`thread_lag::silence_limit`]).
    fn silence_limit(&self) -> Duration {
        thread_lag::silence_limit(self.settings.silence_window)
    }

    fn check_silence(&mut self, ctx: &mut Context<Self>) {
        let silent = self
            .monitor
            .as_ref()
            .is_some_and(|m| m.last_seen.elapsed() >= self.silence_limit());
        if silent {
            log::warn!(
                "{}: monitor silent for more than {:?}",
                self.id,
                self.settings.silence_window
            );
            self.monitor_lost(ctx);
        }
    }

    fn monitor_lost(&mut self, ctx: &mut Context<Self>) {
        self.monitor = None;
        // A lost monitor most often means the whole CP went down: its engine counts as heard
        // again only once it speaks after this, not on its old hellos.
        self.engine_on_bus = None;
        if let Some(session) = &self.session {
            if session.started_at.is_some() {
                self.send_to_driver(DriverUpdate::Interrupted {
                    driver_id: session.driver_id.clone(),
                    session_id: session.id,
                    cp_id: self.id.clone(),
                    detail: "the charging point's monitor stopped reporting".into(),
                });
            }
            self.end_session(Outcome::MonitorLost, ctx);
        }
        self.publish_view();
    }
}

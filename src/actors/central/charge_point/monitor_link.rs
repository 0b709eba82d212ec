//! What a CP's monitor tells the central's actor for it: the monitor attaches, reports the
//! engine's health, goes silent or detaches; silence past the window is a lost monitor.

use super::ChargePoint;
use crate::domain::registration::CpTerms;
use crate::domain::{CpState, EngineHealth};
use crate::messages::{DriverUpdate, Outcome};
use actix::prelude::*;
use std::time::{Duration, Instant};

/// The monitor currently speaking for this CP.
#[derive(Debug)]
pub(super) struct MonitorLink {
    conn_id: u64,
    peer: String,
    last_seen: Instant,
    /// `None` until the first status report.
    pub(super) engine: Option<EngineHealth>,
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

    /// Accepts the monitor unless another one spoke within the silence window.
    fn handle(&mut self, msg: AttachMonitor, _ctx: &mut Self::Context) -> Self::Result {
        if self.retired {
            return Err(format!("{} has moved to another central", self.id));
        }
        if let Some(current) = &self.monitor {
            if current.conn_id != msg.conn_id
                && current.last_seen.elapsed() <= self.settings.silence_window
            {
                // Where the live monitor is connected from is not told to the newcomer.
                log::warn!(
                    "{}: a second monitor from {} refused while the one from {} is live",
                    self.id,
                    msg.peer,
                    current.peer
                );
                return Err(format!("{} already has a live monitor", self.id));
            }
        }
        log::info!("{}: monitor authenticated from {}", self.id, msg.peer);
        self.monitor = Some(MonitorLink {
            conn_id: msg.conn_id,
            peer: msg.peer,
            last_seen: Instant::now(),
            engine: None,
        });
        self.publish_view();
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

    /// Refreshes the monitor's liveness and the engine's health; a fault ends the session.
    fn handle(&mut self, msg: MonitorReport, ctx: &mut Self::Context) -> Self::Result {
        let Some(link) = self.monitor.as_mut().filter(|m| m.conn_id == msg.conn_id) else {
            return Err("not authenticated: send AUTH first".into());
        };
        link.last_seen = Instant::now();
        let previous = link.engine.replace(msg.engine.clone());
        match (&previous, &msg.engine) {
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

    /// Marks the CP disconnected if that connection was the current monitor.
    fn handle(&mut self, msg: DetachMonitor, ctx: &mut Self::Context) {
        if self
            .monitor
            .as_ref()
            .is_some_and(|m| m.conn_id == msg.conn_id)
        {
            log::warn!("{}: monitor connection closed", self.id);
            self.monitor_lost(ctx);
        }
    }
}

/// The CP was issued a new secret: whatever monitor holds it now must authenticate again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForgetMonitor;

impl Handler<ForgetMonitor> for ChargePoint {
    type Result = ();

    fn handle(&mut self, _msg: ForgetMonitor, ctx: &mut Self::Context) {
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
    /// Looks again after `after`: at the moment the monitor's silence would reach the
    /// window, as of its last report. One timer a window per CP, however often monitors
    /// report: thousands of CPs polling four times a second kept the central's thread busy.
    pub(super) fn watch_silence(&mut self, after: Duration, ctx: &mut Context<Self>) {
        ctx.run_later(after, |act, ctx| {
            // The engine's silence on the bus shows here too, with no record to show it.
            if act.last_view.as_ref().map(|v| v.state) != Some(act.state()) {
                act.publish_view();
            }
            let window = act.settings.silence_window;
            let left = act
                .monitor
                .as_ref()
                .map(|m| window.saturating_sub(m.last_seen.elapsed()));
            match left {
                Some(left) if !left.is_zero() => act.watch_silence(left, ctx),
                _ => {
                    act.check_silence(ctx);
                    act.watch_silence(window, ctx);
                }
            }
        });
    }

    fn check_silence(&mut self, ctx: &mut Context<Self>) {
        let silent = self
            .monitor
            .as_ref()
            .is_some_and(|m| m.last_seen.elapsed() >= self.settings.silence_window);
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

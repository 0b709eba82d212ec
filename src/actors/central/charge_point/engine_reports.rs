//! What a CP's engine reports on the bus to the central's actor for it: authorisations,
//! refusals, the supply's start, progress and end.

use super::{send_ticket, ChargePoint};
use crate::actors::central::console_hub::{ConsoleHub, SessionClosed};
use crate::bus::{Inbound, Rejection};
use crate::domain::money::Energy;
use crate::messages::{CpCommand, CpEvent, DenyReason, DriverUpdate, Outcome};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use uuid::Uuid;

impl Handler<Inbound<CpEvent>> for ChargePoint {
    type Result = ResponseFuture<Result<(), Rejection>>;

    /// Follows the engine's reports. Duplicates are ignored; a report that breaks a field's
    /// rule, of a session that is not open here, or with energy going backwards, is set
    /// aside with the reason.
    fn handle(&mut self, msg: Inbound<CpEvent>, ctx: &mut Self::Context) -> Self::Result {
        let done = || -> Self::Result { Box::pin(async { Ok(()) }) };
        let set_aside = |why: String| -> Self::Result {
            Box::pin(async move { Err(Rejection::set_aside(why)) })
        };
        if self.retired {
            // The CP's next owner handles it: its offset is not this instance's to store.
            return done();
        }
        self.engine_heard(&msg.envelope);
        if let Err(why) = msg.envelope.body.check_rules() {
            log::warn!("{}: a report set aside: {why}", self.id);
            if let CpEvent::SupplyEnded { session_id, .. } = &msg.envelope.body {
                if !self.is_current(*session_id) {
                    self.audit_amendment(&format!(
                        "refused an amendment of session {session_id}: {why}"
                    ));
                }
            }
            return set_aside(why);
        }
        match msg.envelope.body {
            // Answered by the supervisor, which keeps the engines' presence; heard above.
            CpEvent::EngineHello { .. } => done(),
            // Notes and tags are taken by the supervisor; none reaches a CP's actor.
            CpEvent::FromCentral { .. } | CpEvent::TagPresented { .. } => done(),
            // Read by the operator's request that asked for it (an API call of any central).
            CpEvent::OcppAnswer { .. } => done(),
            CpEvent::Connectors { connectors, .. } => {
                if connectors != self.connectors {
                    self.connectors = connectors;
                    self.publish_view();
                }
                done()
            }
            CpEvent::Authorised { session_id, .. } => {
                let Some(session) = self.session.as_ref().filter(|s| s.id == session_id) else {
                    return set_aside(self.not_open(session_id));
                };
                log::info!("{}: authorised session {session_id}", self.id);
                self.send_to_driver(DriverUpdate::Authorised {
                    request_id: session.request_id,
                    driver_id: session.driver_id.clone(),
                    session_id,
                    cp_id: self.id.clone(),
                });
                done()
            }
            CpEvent::Refused {
                session_id, reason, ..
            } => {
                if !self.is_current(session_id) {
                    return set_aside(self.not_open(session_id));
                }
                let session = self.session.as_ref().expect("checked current");
                log::warn!("{}: engine refused session {session_id}: {reason}", self.id);
                self.send_to_driver(DriverUpdate::Denied {
                    request_id: session.request_id,
                    driver_id: session.driver_id.clone(),
                    cp_id: Some(self.id.clone()),
                    reason: DenyReason::EngineRefused,
                    detail: format!("{} refused: {reason}", self.id),
                });
                Box::pin(self.close_session(Outcome::Refused, None))
            }
            CpEvent::SupplyStarted {
                session_id,
                started_at,
                ..
            } => {
                match self.session.as_mut().filter(|s| s.id == session_id) {
                    Some(session) if session.started_at.is_none() => {
                        session.started_at = Some(started_at);
                        let _ = self.store.put_session(session);
                        let update = DriverUpdate::Started {
                            driver_id: session.driver_id.clone(),
                            session_id,
                            cp_id: self.id.clone(),
                            started_at,
                        };
                        log::info!("{}: supply started for {}", self.id, session.driver_id);
                        self.send_to_driver(update);
                        self.publish_view();
                    }
                    Some(_) => {}
                    None => {
                        self.refuse_unknown_supply(session_id, ctx);
                        return set_aside(format!(
                            "{}; the engine is asked to stop it",
                            self.not_open(session_id)
                        ));
                    }
                }
                done()
            }
            CpEvent::SupplyProgress {
                session_id, kwh, ..
            } => {
                crate::metrics::observe_telemetry(msg.envelope.ts);
                if !self.is_current(session_id) {
                    return set_aside(self.not_open(session_id));
                }
                let session = self.session.as_mut().expect("checked current");
                // Finite and bounded: checked above.
                let energy = Energy::from_kwh(kwh).unwrap_or_default();
                if energy < session.energy {
                    return set_aside(format!(
                        "out of order: {energy} kWh after {} kWh in session {session_id}; \
                         a session's energy never goes down",
                        session.energy
                    ));
                }
                // The central prices the energy at the reserved tariff, whatever the engine
                // says it costs.
                session.bill(energy);
                let (kwh, eur) = (energy.kwh(), session.cost.eur());
                if session.started_at.is_none() {
                    session.started_at = Some(msg.envelope.ts);
                }
                let update = DriverUpdate::Progress {
                    driver_id: session.driver_id.clone(),
                    session_id,
                    cp_id: self.id.clone(),
                    kwh,
                    eur,
                };
                self.send_to_driver(update);
                self.publish_view();
                done()
            }
            CpEvent::SupplyEnded {
                session_id,
                started_at,
                ended_at,
                kwh,
                outcome,
                ..
            } => {
                // Finite, bounded and in order: checked above.
                let energy = Energy::from_kwh(kwh).unwrap_or_default();
                if !self.is_current(session_id) {
                    // Already closed: a redelivery, perhaps after a crash that came between
                    // storing the session and sending its ticket, an engine that supplied
                    // while its reservation was being cancelled, or one that ended after the
                    // central closed its supply. The ticket goes again, with the engine's
                    // figures.
                    return Box::pin(self.amend_closed(
                        session_id,
                        (started_at, ended_at, energy),
                        outcome,
                    ));
                }
                let session = self.session.as_ref().expect("checked current");
                // The driver was shown the energy of every progress: the bill is never less.
                let shown = session.energy;
                if energy < shown {
                    log::warn!(
                        "{}: session {session_id} ends at {energy} kWh after {shown} kWh were reported; billed {shown} kWh",
                        self.id
                    );
                }
                // When the central asked for the stop, its reason is the outcome.
                let outcome = self.stop_requested.unwrap_or(outcome);
                Box::pin(
                    self.close_session(outcome, Some((started_at, ended_at, energy.max(shown)))),
                )
            }
        }
    }
}

impl ChargePoint {
    /// Sends again the ticket of a session closed before (drivers recognise repeats). The
    /// engine is the authority on energy: if it reports other figures than those recorded,
    /// the session takes them and the ticket goes out corrected. Every amendment made or
    /// refused is audited: it changes, or tries to change, what a driver was billed.
    fn amend_closed(
        &self,
        session_id: Uuid,
        (started_at, ended_at, energy): (DateTime<Utc>, DateTime<Utc>, Energy),
        outcome: Outcome,
    ) -> impl std::future::Future<Output = Result<(), Rejection>> + 'static {
        use futures_util::future::{ready, Either};
        let mut session = match self.store.session(session_id) {
            Ok(session) => session,
            Err(e) => {
                // Not a verdict on the record: read it again later.
                let why = format!("cannot read session {session_id}: {e}");
                log::error!("{}: {why}", self.id);
                return Either::Left(ready(Err(Rejection::retry_later(why))));
            }
        };
        // A closed session is amended only by its own CP, and never to less than was billed.
        let refusal = match &session {
            None => Some(format!("no session {session_id} is known")),
            Some(s) if s.cp_id != self.id => Some(format!(
                "session {session_id} is {}'s, not {}'s",
                s.cp_id, self.id
            )),
            // Its close is being written right now (a redelivery overtook it): nothing to do.
            Some(s) if s.is_open() => return Either::Left(ready(Ok(()))),
            Some(s) if energy < s.energy => Some(format!(
                "session {session_id} was billed {} kWh; {energy} kWh would bill less",
                s.energy
            )),
            _ => None,
        };
        if let Some(why) = refusal {
            log::warn!("{}: an amendment set aside: {why}", self.id);
            self.audit_amendment(&format!("refused an amendment: {why}"));
            return Either::Left(ready(Err(Rejection::set_aside(why))));
        }
        if let Some(s) = session.as_mut().filter(|s| s.energy != energy) {
            let before = (s.energy, s.cost);
            s.bill(energy);
            s.started_at = Some(started_at);
            s.ended_at = Some(ended_at);
            // Why it ended is the central's verdict (a stop it asked for, a fault it saw),
            // unless it had thought the vehicle never plugged in.
            if s.outcome == Some(Outcome::Expired) {
                s.outcome = Some(outcome);
            }
            if let Err(e) = self.store.put_session(s) {
                let why = format!("cannot amend session {session_id}: {e}");
                log::error!("{}: {why}", self.id);
                return Either::Left(ready(Err(Rejection::retry_later(why))));
            }
            log::warn!(
                "{}: session {session_id} was closed with {} kWh but the engine supplied {energy} kWh; amended",
                self.id,
                before.0
            );
            self.audit_amendment(&format!(
                "amended session {session_id}: {} kWh, {} € → {} kWh, {} €",
                before.0, before.1, s.energy, s.cost
            ));
            ConsoleHub::from_registry().do_send(SessionClosed(s.clone().into()));
        }
        let ticket = session.and_then(|s| s.ticket());
        let store = self.store.clone();
        let publisher = self.publisher.clone();
        Either::Right(async move {
            match ticket {
                Some(ticket) => send_ticket(store, publisher, ticket).await,
                None => Ok(()),
            }
        })
    }

    /// Why a report about `session_id` is set aside: it is not the session open here (an
    /// old one, redelivered or late, or one never reserved).
    fn not_open(&self, session_id: Uuid) -> String {
        format!(
            "stale or unknown: session {session_id} is not open at {}",
            self.id
        )
    }

    /// One line of the audit log about this CP's billing, as its engine asked on the bus.
    fn audit_amendment(&self, what: &str) {
        self.accounts
            .audit(&format!("{}'s engine", self.id), AMENDMENTS_FROM, what);
    }

    /// The engine supplies a session the central does not hold open: stop it.
    fn refuse_unknown_supply(&mut self, session_id: Uuid, _ctx: &mut Context<Self>) {
        log::warn!(
            "{}: engine started session {session_id}, which is not open here; stopping it",
            self.id
        );
        self.send_to_engine(CpCommand::StopSupply {
            cp_id: self.id.clone(),
            session_id,
            outcome: Outcome::Expired,
        });
    }
}

/// Where an amendment comes from, as the audit log names it.
const AMENDMENTS_FROM: &str = "the bus (cp.events)";

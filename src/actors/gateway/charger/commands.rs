//! The central's commands to this CP, turned into CALLs to the charge point.

use super::{Authorisation, Charger};
use crate::bus::{Inbound, Rejection};
use crate::messages::{CpCommand, CpEvent};
use actix::prelude::*;
use chrono::Utc;
use uuid::Uuid;

/// OCPP's idTag is a CiString20: a longer driver id cannot be one.
const MAX_ID_TAG: usize = 20;

impl Charger {
    fn refuse(&self, session_id: Uuid, reason: String) {
        log::warn!("{}: refused session {session_id}: {reason}", self.id());
        self.emit(CpEvent::Refused {
            cp_id: self.cp.id.clone(),
            session_id,
            reason,
        });
    }

    fn authorise(
        &mut self,
        session_id: Uuid,
        driver_id: String,
        price_eur_kwh: f64,
        expires_at: chrono::DateTime<Utc>,
        ctx: &mut Context<Charger>,
    ) {
        if expires_at <= Utc::now() {
            return log::info!("{}: stale authorisation {session_id} skipped", self.id());
        }
        if self.tag_authorised(session_id, &driver_id, price_eur_kwh, expires_at, ctx) {
            return;
        }
        let same = |s: Uuid| s == session_id;
        if let Some(a) = &self.authorisation {
            if same(a.session_id) {
                // A redelivered command: the answer stands, nothing is asked twice.
                if a.accepted {
                    self.emit(CpEvent::Authorised {
                        cp_id: self.cp.id.clone(),
                        session_id,
                    });
                }
                return;
            }
        }
        if self
            .transaction
            .as_ref()
            .is_some_and(|t| same(t.session_id))
        {
            return;
        }
        let refusal = if !self.ready {
            Some("the charge point has not said how it is yet".to_string())
        } else if let Some(fault) = &self.fault {
            Some(format!("the charge point cannot supply: {fault}"))
        } else if self.transaction.is_some() || self.authorisation.is_some() {
            Some("busy with another session".into())
        } else if driver_id.chars().count() > MAX_ID_TAG {
            Some(format!(
                "driver id {driver_id} is longer than an OCPP idTag ({MAX_ID_TAG} characters)"
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            return self.refuse(session_id, reason);
        }
        log::info!("{}: asking a remote start for {driver_id}", self.id());
        self.authorisation = Some(Authorisation {
            session_id,
            driver_id: driver_id.clone(),
            price_eur_kwh,
            expires_at,
            accepted: false,
        });
        self.remote_start(session_id, driver_id);
    }

    fn stop(&mut self, session_id: Uuid, outcome: crate::messages::Outcome) {
        if let Some(transaction) = self
            .transaction
            .as_mut()
            .filter(|t| t.session_id == session_id)
        {
            if transaction.stop_outcome.is_none() {
                transaction.stop_outcome = Some(outcome);
                let id = transaction.id;
                log::info!(
                    "{}: asking the charge point to stop transaction {id}",
                    self.id()
                );
                self.remote_stop(id);
            }
        } else if self
            .authorisation
            .as_ref()
            .is_some_and(|a| a.session_id == session_id)
        {
            self.authorisation = None;
        }
    }
}

impl Handler<Inbound<CpCommand>> for Charger {
    type Result = Result<(), Rejection>;

    fn handle(&mut self, msg: Inbound<CpCommand>, ctx: &mut Self::Context) -> Self::Result {
        if msg.key != self.cp.id {
            return Ok(());
        }
        match msg.envelope.body {
            CpCommand::EngineWelcome { .. } | CpCommand::EngineIdInUse { .. } => {}
            CpCommand::Authorise {
                session_id,
                driver_id,
                price_eur_kwh,
                expires_at,
                ..
            } => self.authorise(session_id, driver_id, price_eur_kwh, expires_at, ctx),
            CpCommand::CancelReservation { session_id, .. } => {
                let unused = self.transaction.is_none()
                    && self
                        .authorisation
                        .as_ref()
                        .is_some_and(|a| a.session_id == session_id);
                if unused {
                    log::info!("{}: reservation {session_id} cancelled", self.id());
                    self.authorisation = None;
                }
            }
            CpCommand::StopSupply {
                session_id,
                outcome,
                ..
            } => self.stop(session_id, outcome),
            CpCommand::TagRefused {
                request_id,
                reason,
                detail,
                ..
            } => self.tag_refused(request_id, reason, &detail, ctx),
            CpCommand::OcppRequest {
                request_id,
                action,
                payload,
                ..
            } => self.operator_request(request_id, &action, payload),
            CpCommand::Crash { asked_by, .. } => log::warn!(
                "{}: {asked_by} asked for a crash; an OCPP charge point is not crashed from here",
                self.id()
            ),
        }
        Ok(())
    }
}

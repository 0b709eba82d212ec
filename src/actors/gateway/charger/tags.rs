//! A tag presented at the charge point (Authorize): the driver the central authorised
//! here is accepted at once; any other tag is asked of the central as a supply request
//! made at this CP (`tag_presented`), answered by its `authorise` or `tag_refused`.

use super::{Authorisation, Charger};
use crate::messages::{CpEvent, DenyReason};
use crate::ocpp::core::{AuthorizationStatus, AuthorizeResponse, IdTagInfo};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

/// How long the charge point's Authorize waits for the central's answer.
const TAG_PATIENCE: Duration = Duration::from_secs(15);

/// A tag asked of the central, and the Authorize waiting for the answer.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PendingTag {
    request_id: Uuid,
    id_tag: String,
    call_id: String,
}

fn authorize_answer(status: AuthorizationStatus) -> serde_json::Value {
    let answer = AuthorizeResponse {
        id_tag_info: IdTagInfo { status },
    };
    serde_json::to_value(answer).unwrap_or_default()
}

impl Charger {
    /// The driver the central authorised here, or the one whose transaction runs.
    fn knows_tag(&self, id_tag: &str) -> bool {
        self.authorisation
            .as_ref()
            .is_some_and(|a| a.driver_id == id_tag)
            || self
                .transaction
                .as_ref()
                .is_some_and(|t| t.driver_id == id_tag)
    }

    pub(super) fn authorize(&mut self, id: String, id_tag: String, ctx: &mut Context<Self>) {
        if self.knows_tag(&id_tag) {
            return self.reply(id, Ok(authorize_answer(AuthorizationStatus::Accepted)));
        }
        let busy = self.transaction.is_some() || self.authorisation.is_some();
        if busy || crate::messages::check_driver_id(&id_tag).is_err() {
            let status = if busy {
                AuthorizationStatus::ConcurrentTx
            } else {
                AuthorizationStatus::Invalid
            };
            return self.reply(id, Ok(authorize_answer(status)));
        }
        let request_id = Uuid::new_v4();
        log::info!("{}: tag {id_tag} presented: asking the central", self.id());
        self.answering = Some(id.clone());
        self.pending_tag = Some(PendingTag {
            request_id,
            id_tag: id_tag.clone(),
            call_id: id,
        });
        self.emit(CpEvent::TagPresented {
            cp_id: self.cp.id.clone(),
            id_tag,
            request_id,
        });
        ctx.run_later(TAG_PATIENCE, move |act, _| {
            if act
                .pending_tag
                .as_ref()
                .is_some_and(|p| p.request_id == request_id)
            {
                log::warn!("{}: the central did not answer tag {request_id}", act.id());
                act.answer_tag(AuthorizationStatus::Invalid);
            }
        });
    }

    fn answer_tag(&mut self, status: AuthorizationStatus) {
        if let Some(pending) = self.pending_tag.take() {
            self.answering = None;
            self.reply(pending.call_id, Ok(authorize_answer(status)));
        }
    }

    /// The central reserved this CP for the tag's driver: the charge point starts the
    /// transaction itself, no remote start is asked. Whether it was the tag's answer.
    pub(super) fn tag_authorised(
        &mut self,
        session_id: Uuid,
        driver_id: &str,
        price_eur_kwh: f64,
        expires_at: DateTime<Utc>,
    ) -> bool {
        let ours = self
            .pending_tag
            .as_ref()
            .is_some_and(|p| p.id_tag == driver_id);
        if !ours {
            return false;
        }
        self.authorisation = Some(Authorisation {
            session_id,
            driver_id: driver_id.to_owned(),
            price_eur_kwh,
            expires_at,
            accepted: true,
        });
        self.emit(CpEvent::Authorised {
            cp_id: self.cp.id.clone(),
            session_id,
        });
        self.answer_tag(AuthorizationStatus::Accepted);
        true
    }

    pub(super) fn tag_refused(&mut self, request_id: Uuid, reason: DenyReason, detail: &str) {
        if self
            .pending_tag
            .as_ref()
            .is_some_and(|p| p.request_id == request_id)
        {
            log::info!("{}: tag refused: {detail}", self.id());
            let status = match reason {
                DenyReason::DriverBusy => AuthorizationStatus::ConcurrentTx,
                _ => AuthorizationStatus::Invalid,
            };
            self.answer_tag(status);
        }
    }
}

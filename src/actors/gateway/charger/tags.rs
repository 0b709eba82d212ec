//! A tag presented at the charge point: the driver the central authorised here is accepted
//! at once; any other tag is asked of the central as a supply request made at this CP
//! (`tag_presented`), answered by its `authorise` or `tag_refused`. The tag comes with an
//! Authorize, or with a StartTransaction the charge point began on its own (offline, from
//! its cache of tags), which is numbered once the central has answered.

use super::{Authorisation, Charger};
use crate::messages::{CpEvent, DenyReason};
use crate::ocpp::core::{AuthorizationStatus, AuthorizeResponse, IdTagInfo, StartTransaction};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

/// How long the charge point's CALL waits for the central's answer to its tag.
const TAG_PATIENCE: Duration = Duration::from_secs(15);

/// The CALL that presented the tag, answered once the central has.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Presented {
    Authorize,
    Start(StartTransaction),
}

/// A tag asked of the central, and the CALL waiting for the answer.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct PendingTag {
    request_id: Uuid,
    id_tag: String,
    call_id: String,
    by: Presented,
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

    /// Why the tag cannot be asked of the central at all, as OCPP says it.
    fn tag_unaskable(&self, id_tag: &str) -> Option<AuthorizationStatus> {
        if self.transaction.is_some() || self.authorisation.is_some() {
            Some(AuthorizationStatus::ConcurrentTx)
        } else if crate::messages::check_driver_id(id_tag).is_err() {
            Some(AuthorizationStatus::Invalid)
        } else {
            None
        }
    }

    pub(super) fn authorize(&mut self, id: String, id_tag: String, ctx: &mut Context<Self>) {
        if self.knows_tag(&id_tag) {
            return self.reply(id, Ok(authorize_answer(AuthorizationStatus::Accepted)));
        }
        if let Some(status) = self.tag_unaskable(&id_tag) {
            return self.reply(id, Ok(authorize_answer(status)));
        }
        self.present(id, id_tag, Presented::Authorize, ctx);
    }

    /// A transaction the charge point started for a tag nobody authorised here.
    pub(super) fn start_unasked(
        &mut self,
        id: String,
        start: StartTransaction,
        ctx: &mut Context<Self>,
    ) {
        if self.tag_unaskable(&start.id_tag).is_some() {
            return self.number(id, start, None, ctx);
        }
        let id_tag = start.id_tag.clone();
        self.present(id, id_tag, Presented::Start(start), ctx);
    }

    fn present(&mut self, call_id: String, id_tag: String, by: Presented, ctx: &mut Context<Self>) {
        let request_id = Uuid::new_v4();
        log::info!("{}: tag {id_tag} presented: asking the central", self.id());
        self.answering = Some(call_id.clone());
        self.pending_tag = Some(PendingTag {
            request_id,
            id_tag: id_tag.clone(),
            call_id,
            by,
        });
        self.emit(CpEvent::TagPresented {
            cp_id: self.cp.id.clone(),
            id_tag,
            request_id,
        });
        ctx.run_later(TAG_PATIENCE, move |act, ctx| {
            if act
                .pending_tag
                .as_ref()
                .is_some_and(|p| p.request_id == request_id)
            {
                log::warn!("{}: the central did not answer tag {request_id}", act.id());
                act.answer_tag(AuthorizationStatus::Invalid, ctx);
            }
        });
    }

    /// Answers the CALL that presented the tag: an Authorize with `status`; a start is
    /// numbered, as the session the central reserved when it accepted the tag.
    fn answer_tag(&mut self, status: AuthorizationStatus, ctx: &mut Context<Self>) {
        let Some(pending) = self.pending_tag.take() else {
            return;
        };
        match pending.by {
            Presented::Authorize => self.reply(pending.call_id, Ok(authorize_answer(status))),
            Presented::Start(start) => {
                let session = self
                    .authorisation
                    .clone()
                    .filter(|_| status == AuthorizationStatus::Accepted);
                self.number(pending.call_id, start, session, ctx);
            }
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
        ctx: &mut Context<Self>,
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
        self.answer_tag(AuthorizationStatus::Accepted, ctx);
        true
    }

    pub(super) fn tag_refused(
        &mut self,
        request_id: Uuid,
        reason: DenyReason,
        detail: &str,
        ctx: &mut Context<Self>,
    ) {
        let ours = self
            .pending_tag
            .as_ref()
            .is_some_and(|p| p.request_id == request_id);
        if ours {
            log::info!("{}: tag refused: {detail}", self.id());
            let status = match reason {
                DenyReason::DriverBusy => AuthorizationStatus::ConcurrentTx,
                _ => AuthorizationStatus::Invalid,
            };
            self.answer_tag(status, ctx);
        }
    }
}

//! The network's CALLs to the charge point: one outstanding at a time (OCPP-J's rule), the
//! next sent when the last is answered or has waited [`CALL_TIMEOUT`].

use super::Charger;
use crate::messages::CpEvent;
use crate::ocpp::core::{
    AvailabilityType, ChangeAvailability, RemoteStartTransaction, RemoteStopTransaction,
    StatusAnswer, TriggerMessage,
};
use crate::ocpp::rpc::{ErrorCode, Frame};
use serde::Serialize;
use serde_json::Value;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// CALLs waiting their turn at most: a charge point that answers nothing holds no more.
const MAX_QUEUED: usize = 32;

/// How long a CALL waits for its answer before the next one goes.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What a CALL to the charge point was for, to act on its answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Purpose {
    RemoteStart {
        session_id: Uuid,
    },
    RemoteStop {
        transaction_id: i64,
    },
    Availability {
        operative: bool,
    },
    Trigger,
    /// An operator's request, answered on the bus as it comes.
    Operator {
        request_id: Uuid,
    },
}

#[derive(Debug)]
pub struct Outgoing {
    id: String,
    action: String,
    payload: Value,
    purpose: Purpose,
    sent_at: Option<Instant>,
}

impl Charger {
    fn call<P: Serialize>(&mut self, action: &str, payload: P, purpose: Purpose) {
        if self.queued.len() >= MAX_QUEUED {
            let why = format!("{MAX_QUEUED} CALLs already wait for the charge point to answer");
            if let Purpose::Operator { request_id } = purpose {
                return self.operator_answered(request_id, Err((ErrorCode::GenericError, why)));
            }
            if self.worth_logging() {
                log::warn!("{}: {action} not sent: {why}", self.id());
            }
            return;
        }
        self.next_call_id += 1;
        let call = Outgoing {
            id: format!(
                "{}-{}",
                &self.instance.simple().to_string()[..8],
                self.next_call_id
            ),
            action: action.to_owned(),
            payload: serde_json::to_value(payload).unwrap_or_default(),
            purpose,
            sent_at: None,
        };
        self.queued.push_back(call);
        self.send_next();
    }

    /// Sends the next CALL waiting, unless one is outstanding or the socket is not open yet.
    pub(super) fn send_next(&mut self) {
        if self.outgoing.is_some() || self.socket.is_none() {
            return;
        }
        let Some(mut call) = self.queued.pop_front() else {
            return;
        };
        let frame = Frame::Call {
            id: call.id.clone(),
            action: call.action.clone(),
            payload: call.payload.clone(),
        };
        call.sent_at = Some(Instant::now());
        self.send_text(frame.to_text());
        self.outgoing = Some(call);
    }

    /// Asks the charge point to start a transaction for the authorised driver.
    pub(super) fn remote_start(&mut self, session_id: Uuid, id_tag: String) {
        let payload = RemoteStartTransaction {
            connector_id: self.free_connector(),
            id_tag,
        };
        self.call(
            "RemoteStartTransaction",
            payload,
            Purpose::RemoteStart { session_id },
        );
    }

    pub(super) fn remote_stop(&mut self, transaction_id: i64) {
        self.call(
            "RemoteStopTransaction",
            RemoteStopTransaction { transaction_id },
            Purpose::RemoteStop { transaction_id },
        );
    }

    /// The whole charge point (connector 0) out of service, or back, for an operator.
    pub(super) fn change_availability(&mut self, operative: bool) {
        let kind = if operative {
            AvailabilityType::Operative
        } else {
            AvailabilityType::Inoperative
        };
        log::info!(
            "{}: asking the charge point to be {kind:?} (the operator's {})",
            self.id(),
            if operative { "resume" } else { "stop" }
        );
        self.call(
            "ChangeAvailability",
            ChangeAvailability {
                connector_id: 0,
                kind,
            },
            Purpose::Availability { operative },
        );
    }

    /// Asks for a fresh StatusNotification rather than trusting what was known before.
    pub(super) fn trigger_status(&mut self) {
        self.call(
            "TriggerMessage",
            TriggerMessage {
                requested_message: "StatusNotification",
                connector_id: None,
            },
            Purpose::Trigger,
        );
    }

    /// The charge point answered a CALL: a CALLRESULT's payload, or a CALLERROR's code.
    pub(super) fn answered(&mut self, id: &str, answer: Result<Value, (ErrorCode, String)>) {
        let Some(call) = self.outgoing.take_if(|call| call.id == id) else {
            if self.worth_logging() {
                log::warn!(
                    "{}: an answer to no CALL outstanding (id {id:?}) is ignored",
                    self.id()
                );
            }
            return;
        };
        if let Purpose::Operator { request_id } = call.purpose {
            self.operator_answered(request_id, answer);
            return self.send_next();
        }
        let accepted = match &answer {
            Ok(payload) => serde_json::from_value::<StatusAnswer>(payload.clone())
                .map(|a| a.accepted())
                .map_err(|e| format!("an answer without a status: {e}")),
            Err((code, why)) => Err(format!("{}: {why}", code.as_str())),
        };
        self.on_answer(call.purpose, &call.action, accepted);
        self.send_next();
    }

    fn on_answer(&mut self, purpose: Purpose, action: &str, accepted: Result<bool, String>) {
        let refusal = match accepted {
            Ok(true) => None,
            Ok(false) => Some(format!("the charge point rejected {action}")),
            Err(why) => Some(format!("the charge point answered {action} with {why}")),
        };
        match purpose {
            Purpose::RemoteStart { session_id } => {
                let ours = self
                    .authorisation
                    .as_mut()
                    .filter(|a| a.session_id == session_id);
                let Some(authorisation) = ours else { return };
                match refusal {
                    None => {
                        authorisation.accepted = true;
                        log::info!("{}: remote start accepted", self.cp.id);
                        self.emit(CpEvent::Authorised {
                            cp_id: self.cp.id.clone(),
                            session_id,
                        });
                    }
                    Some(reason) => {
                        log::warn!("{}: {reason}", self.cp.id);
                        self.authorisation = None;
                        self.emit(CpEvent::Refused {
                            cp_id: self.cp.id.clone(),
                            session_id,
                            reason,
                        });
                    }
                }
            }
            Purpose::RemoteStop { transaction_id } => {
                if let Some(why) = refusal {
                    log::warn!("{}: transaction {transaction_id}: {why}", self.id());
                }
            }
            Purpose::Availability { operative } => {
                if let Some(why) = refusal {
                    log::warn!("{}: {why}", self.id());
                } else if !operative {
                    log::info!("{}: the charge point is out of service", self.id());
                }
            }
            Purpose::Trigger => {
                if let Some(why) = refusal {
                    log::info!("{}: {why}", self.id());
                }
            }
            Purpose::Operator { .. } => {}
        }
    }

    /// An operator's OCPP request, asked of the charge point as it is.
    pub(super) fn operator_request(&mut self, request_id: Uuid, action: &str, payload: Value) {
        if let Err(why) = crate::ocpp::core::check_operator_request(action, &payload) {
            log::warn!("{}: an operator's {action} is not sent: {why}", self.id());
            let answer = Err((ErrorCode::FormationViolation, why));
            return self.operator_answered(request_id, answer);
        }
        log::info!("{}: an operator asks {action}", self.id());
        self.call(action, payload, Purpose::Operator { request_id });
    }

    fn operator_answered(&mut self, request_id: Uuid, answer: Result<Value, (ErrorCode, String)>) {
        let (status, payload) = match answer {
            Ok(payload) => {
                let status = payload
                    .get("status")
                    .and_then(Value::as_str)
                    .unwrap_or("Accepted")
                    .to_owned();
                (status, payload)
            }
            Err((code, why)) => (
                format!("CALLERROR {}: {why}", code.as_str()),
                serde_json::json!({}),
            ),
        };
        let status: String = status
            .chars()
            .filter(|c| !c.is_control())
            .take(crate::messages::MAX_TEXT_LEN)
            .collect();
        let too_long = payload.to_string().len() > crate::messages::MAX_OCPP_PAYLOAD;
        let payload = if too_long {
            serde_json::json!({})
        } else {
            payload
        };
        self.emit(CpEvent::OcppAnswer {
            cp_id: self.cp.id.clone(),
            request_id,
            status,
            payload,
        });
    }

    /// A CALL unanswered for too long is given up, as a CALLERROR would end it.
    pub(super) fn time_out_call(&mut self) {
        let late = self
            .outgoing
            .as_ref()
            .and_then(|c| c.sent_at)
            .is_some_and(|at| at.elapsed() >= CALL_TIMEOUT);
        if late {
            let id = self
                .outgoing
                .as_ref()
                .map(|c| c.id.clone())
                .unwrap_or_default();
            self.answered(
                &id,
                Err((ErrorCode::GenericError, "no answer within 30 s".into())),
            );
        }
    }
}

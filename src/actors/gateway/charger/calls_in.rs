//! The charge point's messages: its CALLs (Core profile), answered in the order they came,
//! and its answers to the network's CALLs.

use super::{Charger, FromSocket};
use crate::ocpp::core::*;
use crate::ocpp::rpc::{payload_refusal, ErrorCode, Frame, Refusal};
use actix::prelude::*;
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Reads a CALL's payload, refused with the error OCPP names for what is wrong with it.
fn take<P: DeserializeOwned + Bounded>(
    id: &str,
    action: &str,
    payload: Value,
) -> Result<P, Refusal> {
    let taken: P = serde_json::from_value(payload).map_err(|e| payload_refusal(id, action, &e))?;
    taken.check().map_err(|why| {
        Refusal::new(
            id,
            ErrorCode::PropertyConstraintViolation,
            format!("{action}: {why}"),
        )
    })?;
    Ok(taken)
}

fn answer<T: Serialize>(payload: T) -> Result<Value, Refusal> {
    Ok(serde_json::to_value(payload).unwrap_or_default())
}

impl Charger {
    pub(super) fn reply(&mut self, id: String, result: Result<Value, Refusal>) {
        // The answer to the CALL being handled frees the way for the next.
        if self.answering.as_deref() == Some(id.as_str()) {
            self.answering = None;
        }
        let frame = match result {
            Ok(payload) => Frame::CallResult { id, payload },
            Err(refusal) => {
                if self.worth_logging() {
                    log::warn!(
                        "{}: refused a message: {} {}",
                        self.id(),
                        refusal.code.as_str(),
                        refusal.description
                    );
                }
                refusal.into_frame()
            }
        };
        self.send_text(frame.to_text());
    }

    fn on_call(&mut self, id: String, action: String, payload: Value, ctx: &mut Context<Self>) {
        if let Some(busy) = &self.answering {
            let why = format!("one CALL at a time: {busy} is not answered yet");
            return self.reply(
                id.clone(),
                Err(Refusal::new(&id, ErrorCode::ProtocolError, why)),
            );
        }
        let result = match action.as_str() {
            "BootNotification" => take(&id, &action, payload).map(|boot| self.boot(boot)),
            "Heartbeat" => take::<Heartbeat>(&id, &action, payload).map(|_| {
                answer(HeartbeatResponse {
                    current_time: Utc::now(),
                })
                .unwrap_or_default()
            }),
            "StatusNotification" => take(&id, &action, payload).map(|status| {
                self.status_notified(status);
                self.become_ready();
                answer(Empty {}).unwrap_or_default()
            }),
            "Authorize" => match take::<Authorize>(&id, &action, payload) {
                Ok(authorize) => return self.authorize(id, authorize.id_tag, ctx),
                Err(refusal) => Err(refusal),
            },
            "StartTransaction" => match take(&id, &action, payload) {
                Ok(start) => return self.start_transaction(id, start, ctx),
                Err(refusal) => Err(refusal),
            },
            "MeterValues" => match take::<MeterValues>(&id, &action, payload) {
                Ok(m) => {
                    return self.after_lookup(id, m.transaction_id, ctx, |c| c.meter_values(m))
                }
                Err(refusal) => Err(refusal),
            },
            "StopTransaction" => match take::<StopTransaction>(&id, &action, payload) {
                Ok(s) => {
                    let transaction = Some(s.transaction_id);
                    return self.after_lookup(id, transaction, ctx, |c| c.stop_transaction(s));
                }
                Err(refusal) => Err(refusal),
            },
            "DataTransfer" => take::<DataTransfer>(&id, &action, payload).map(|_| {
                answer(DataTransferResponse {
                    status: DataTransferStatus::UnknownVendorId,
                })
                .unwrap_or_default()
            }),
            "DiagnosticsStatusNotification" | "FirmwareStatusNotification" => Err(Refusal::new(
                &id,
                ErrorCode::NotSupported,
                format!("{action} belongs to a profile this gateway does not support"),
            )),
            _ => Err(Refusal::new(
                &id,
                ErrorCode::NotImplemented,
                format!(
                    "no action {} in OCPP 1.6",
                    crate::domain::registration::shown(&action)
                ),
            )),
        };
        let booted = action == "BootNotification" && result.is_ok();
        self.reply(id, result);
        if booted {
            // What it said before it rebooted (or reconnected) may be stale: ask again.
            self.trigger_status();
        }
    }

    fn boot(&mut self, boot: BootNotification) -> Value {
        log::info!(
            "{}: booted ({} {}{})",
            self.id(),
            boot.charge_point_vendor,
            boot.charge_point_model,
            boot.firmware_version
                .map(|f| format!(", firmware {f}"))
                .unwrap_or_default()
        );
        self.become_ready();
        answer(BootNotificationResponse {
            status: RegistrationStatus::Accepted,
            current_time: Utc::now(),
            interval: self.settings.heartbeat_interval.as_secs().max(1) as u32,
        })
        .unwrap_or_default()
    }

    fn become_ready(&mut self) {
        if !self.ready {
            self.ready = true;
            self.hello();
        }
    }
}

impl Handler<FromSocket> for Charger {
    type Result = ();

    /// A message that cannot be read is answered with a CALLERROR; the link stays up.
    fn handle(&mut self, msg: FromSocket, ctx: &mut Self::Context) {
        match Frame::parse(&msg.0) {
            Err(refusal) => self.reply(refusal.id.clone(), Err(refusal)),
            Ok(Frame::Call {
                id,
                action,
                payload,
            }) => self.on_call(id, action, payload, ctx),
            Ok(Frame::CallResult { id, payload }) => self.answered(&id, Ok(payload)),
            Ok(Frame::CallError {
                id,
                code,
                description,
            }) => self.answered(&id, Err((code, description))),
        }
    }
}

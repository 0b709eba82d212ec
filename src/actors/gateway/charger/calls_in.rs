//! The charge point's messages: its CALLs (Core profile), answered in the order they came,
//! and its answers to the network's CALLs.

use super::{Charger, FromSocket, Transaction};
use crate::domain::money::{cost, Energy, Tariff};
use crate::messages::{CpEvent, Outcome};
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

fn accepted() -> IdTagInfo {
    IdTagInfo {
        status: AuthorizationStatus::Accepted,
    }
}

/// How a transaction's end reads on the network, when the central did not ask for it.
fn outcome_of(reason: Option<StopReason>) -> Outcome {
    match reason {
        None
        | Some(StopReason::Local)
        | Some(StopReason::EVDisconnected)
        | Some(StopReason::UnlockCommand) => Outcome::Completed,
        Some(StopReason::Remote) => Outcome::StoppedByDriver,
        Some(StopReason::DeAuthorized) => Outcome::Refused,
        Some(_) => Outcome::EngineFailure,
    }
}

impl Charger {
    fn reply(&mut self, id: String, result: Result<Value, Refusal>) {
        let frame = match result {
            Ok(payload) => Frame::CallResult { id, payload },
            Err(refusal) => {
                log::warn!(
                    "{}: refused a message: {} {}",
                    self.id(),
                    refusal.code.as_str(),
                    refusal.description
                );
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
            "StatusNotification" => {
                take(&id, &action, payload).map(|status| self.status_notified(status))
            }
            "Authorize" => take(&id, &action, payload).map(|a| self.authorize(a)),
            "StartTransaction" => match take(&id, &action, payload) {
                Ok(start) => return self.start_transaction(id, start, ctx),
                Err(refusal) => Err(refusal),
            },
            "MeterValues" => take(&id, &action, payload).map(|m| self.meter_values(m)),
            "StopTransaction" => take(&id, &action, payload).map(|s| self.stop_transaction(s)),
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
        self.booted = true;
        self.hello();
        answer(BootNotificationResponse {
            status: RegistrationStatus::Accepted,
            current_time: Utc::now(),
            interval: self.settings.heartbeat_interval.as_secs().max(1) as u32,
        })
        .unwrap_or_default()
    }

    fn status_notified(&mut self, status: StatusNotification) -> Value {
        if status.connector_id <= 1 {
            let fault = match status.status {
                ChargePointStatus::Faulted => Some(format!(
                    "connector {} faulted ({:?}{})",
                    status.connector_id,
                    status.error_code,
                    status.info.map(|i| format!(": {i}")).unwrap_or_default()
                )),
                ChargePointStatus::Unavailable if !self.inoperative => {
                    Some(format!("connector {} unavailable", status.connector_id))
                }
                _ => None,
            };
            if fault != self.fault {
                match &fault {
                    Some(why) => log::warn!("{}: {why}", self.id()),
                    None => log::info!("{}: {:?} again", self.id(), status.status),
                }
            }
            self.fault = fault;
        }
        self.connectors.insert(status.connector_id, status.status);
        answer(Empty {}).unwrap_or_default()
    }

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

    fn authorize(&mut self, authorize: Authorize) -> Value {
        let status = if self.knows_tag(&authorize.id_tag) {
            AuthorizationStatus::Accepted
        } else {
            AuthorizationStatus::Invalid
        };
        answer(AuthorizeResponse {
            id_tag_info: IdTagInfo { status },
        })
        .unwrap_or_default()
    }

    /// A new transaction gets its id from the transactions' ledger on the bus (unique
    /// across every gateway); the same start again gets the same id.
    fn start_transaction(&mut self, id: String, start: StartTransaction, ctx: &mut Context<Self>) {
        if let Some(t) = &self.transaction {
            let same = t.connector_id == start.connector_id
                && t.id_tag == start.id_tag
                && t.meter_start_wh == start.meter_start
                && t.started_at == start.timestamp;
            if same {
                let again = StartTransactionResponse {
                    id_tag_info: accepted(),
                    transaction_id: t.id,
                };
                return self.reply(id, answer(again));
            }
        }
        let session = self
            .authorisation
            .as_ref()
            .filter(|a| a.driver_id == start.id_tag && self.transaction.is_none())
            .cloned();
        self.answering = Some(id.clone());
        let publisher = self.publisher.clone();
        let record = crate::messages::gateway::TransactionStarted {
            cp_id: self.cp.id.clone(),
            connector_id: start.connector_id,
            id_tag: start.id_tag.clone(),
            meter_start: start.meter_start,
            timestamp: start.timestamp,
            session_id: session.as_ref().map(|s| s.session_id),
        };
        let allocate = async move { publisher.ocpp_transaction(record).await };
        ctx.spawn(allocate.into_actor(self).map(move |allocated, act, _| {
            act.answering = None;
            let transaction_id = match allocated {
                Ok(transaction_id) => transaction_id,
                Err(e) => {
                    let why = format!("cannot record the transaction now: {e}");
                    return act.reply(
                        id.clone(),
                        Err(Refusal::new(&id, ErrorCode::InternalError, why)),
                    );
                }
            };
            let Some(session) = session else {
                log::warn!(
                    "{}: transaction {transaction_id} of {} started at the charge point \
                     without the central's authorisation: refused",
                    act.id(),
                    start.id_tag
                );
                act.remember_closed(transaction_id);
                let refused = StartTransactionResponse {
                    id_tag_info: IdTagInfo {
                        status: AuthorizationStatus::Invalid,
                    },
                    transaction_id,
                };
                return act.reply(id, answer(refused));
            };
            log::info!(
                "{}: transaction {transaction_id} started for {}",
                act.id(),
                session.driver_id
            );
            act.transaction = Some(Transaction {
                id: transaction_id,
                connector_id: start.connector_id,
                id_tag: start.id_tag.clone(),
                session_id: session.session_id,
                driver_id: session.driver_id.clone(),
                price_eur_kwh: session.price_eur_kwh,
                meter_start_wh: start.meter_start,
                started_at: start.timestamp,
                reported_wh: 0,
                stop_outcome: None,
            });
            act.authorisation = None;
            act.emit(CpEvent::SupplyStarted {
                cp_id: act.cp.id.clone(),
                session_id: session.session_id,
                driver_id: session.driver_id,
                started_at: start.timestamp,
            });
            let started = StartTransactionResponse {
                id_tag_info: accepted(),
                transaction_id,
            };
            act.reply(id, answer(started));
        }));
    }

    fn meter_values(&mut self, values: MeterValues) -> Value {
        let register = values
            .meter_value
            .iter()
            .filter_map(MeterValue::energy_register_wh)
            .fold(None, |max: Option<f64>, wh| {
                Some(max.map_or(wh, |m| m.max(wh)))
            });
        let ours = self.transaction.as_mut().filter(|t| {
            values
                .transaction_id
                .map_or(t.connector_id == values.connector_id, |id| id == t.id)
        });
        if let (Some(t), Some(register)) = (ours, register) {
            let wh = register.round() as i64 - t.meter_start_wh;
            if wh > t.reported_wh {
                t.reported_wh = wh;
                let event = CpEvent::SupplyProgress {
                    cp_id: self.cp.id.clone(),
                    session_id: t.session_id,
                    driver_id: t.driver_id.clone(),
                    kwh: Energy(wh).kwh(),
                    eur: cost(Energy(wh), Tariff::nearest(t.price_eur_kwh)).eur(),
                };
                self.emit(event);
            }
        }
        answer(Empty {}).unwrap_or_default()
    }

    fn stop_transaction(&mut self, stop: StopTransaction) -> Value {
        let id_tag_info = stop.id_tag.as_ref().map(|_| accepted());
        let reply = answer(StopTransactionResponse { id_tag_info }).unwrap_or_default();
        let Some(t) = self.transaction.take_if(|t| t.id == stop.transaction_id) else {
            if !self.closed.contains(&stop.transaction_id) {
                log::info!(
                    "{}: a stop for transaction {}, not known here, is answered and ignored",
                    self.id(),
                    stop.transaction_id
                );
            }
            return reply;
        };
        let wh = (stop.meter_stop - t.meter_start_wh)
            .max(t.reported_wh)
            .max(0);
        let outcome = t.stop_outcome.unwrap_or_else(|| outcome_of(stop.reason));
        log::info!(
            "{}: transaction {} ended ({}): {} Wh",
            self.id(),
            t.id,
            outcome.as_str(),
            wh
        );
        self.emit(CpEvent::SupplyEnded {
            cp_id: self.cp.id.clone(),
            session_id: t.session_id,
            driver_id: t.driver_id.clone(),
            started_at: t.started_at,
            ended_at: stop.timestamp.max(t.started_at),
            kwh: Energy(wh).kwh(),
            eur: cost(Energy(wh), Tariff::nearest(t.price_eur_kwh)).eur(),
            outcome,
        });
        self.remember_closed(t.id);
        reply
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

//! One simulated OCPP 1.6J charge point of `evcharge fleet ocpp`: what a real charger does
//! on its WebSocket, no more. It joins with HTTP Basic (its id and key), boots, says it is
//! available, beats its heart, accepts remote starts and stops, and while supplying sends
//! MeterValues every interval. It keeps one CALL of its own outstanding at a time, as OCPP-J
//! asks, and comes back after a lost connection. The WebSocket client is actix's own (awc).

use crate::ocpp::rpc::{ErrorCode, Frame};
use awc::ws;
use chrono::{SecondsFormat, Utc};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The power a simulated supply draws: 7.4 kW, a wallbox's single phase at 32 A.
const SUPPLY_WATTS: f64 = 7_400.0;

/// What the whole fleet counts, read by its control endpoint.
#[derive(Debug, Default)]
pub struct ChargerCounters {
    pub connected: AtomicU64,
    pub booted: AtomicU64,
    pub connection_failures: AtomicU64,
    pub disconnections: AtomicU64,
    pub remote_starts: AtomicU64,
    pub transactions: AtomicU64,
    pub meter_values_sent: AtomicU64,
    pub meter_values_answered: AtomicU64,
    /// CALLERRORs the gateway sent back to the chargers' own CALLs.
    pub call_errors: AtomicU64,
    /// Microseconds from a MeterValues sent to its CALLRESULT, summed (with the count above,
    /// the mean).
    pub meter_answer_micros: AtomicU64,
}

/// What every charger of the fleet shares.
pub struct ChargerParts {
    /// ws(s)://host:port/ocpp — the charger's id is appended.
    pub gateway: String,
    pub meter_interval: Duration,
    /// Whether an accepted remote start goes on to a transaction (a vehicle plugged in), or
    /// stays an authorisation the driver may stop.
    pub plug_in: Arc<AtomicBool>,
    pub counters: Arc<ChargerCounters>,
    pub client: awc::Client,
}

/// A CALL of the charger's own, waiting for its answer.
struct Outstanding {
    id: String,
    action: &'static str,
    sent_at: Instant,
}

/// What the charger is doing.
#[derive(Default)]
struct State {
    next_id: u64,
    queued: VecDeque<(&'static str, Value)>,
    outstanding: Option<Outstanding>,
    heartbeat: Option<Duration>,
    /// Set once the remote start is accepted and a vehicle plugged in; the id once the
    /// gateway gave it.
    supplying: Option<Option<i64>>,
    meter_wh: f64,
    last_meter: Option<Instant>,
}

/// Runs one charger until the process ends, connecting again after every loss.
pub async fn run(id: String, key: String, parts: Rc<ChargerParts>) {
    let url = format!("{}/{id}", parts.gateway.trim_end_matches('/'));
    let mut state = State::default();
    loop {
        let connected = parts
            .client
            .ws(url.as_str())
            .protocols(["ocpp1.6"])
            .basic_auth(&id, Some(key.as_str()))
            .connect()
            .await;
        match connected {
            Ok((_, socket)) => {
                parts.counters.connected.fetch_add(1, Ordering::Relaxed);
                let why = session(&id, &parts, &mut state, socket).await;
                parts.counters.connected.fetch_sub(1, Ordering::Relaxed);
                parts
                    .counters
                    .disconnections
                    .fetch_add(1, Ordering::Relaxed);
                log::debug!("{id}: connection lost ({why}); connecting again");
            }
            Err(e) => {
                let failures = parts
                    .counters
                    .connection_failures
                    .fetch_add(1, Ordering::Relaxed);
                // The first few say why; the count says the rest.
                if failures < 10 {
                    log::warn!("{id}: cannot connect to {url}: {e}; retrying");
                }
            }
        }
        state.outstanding = None;
        state.queued.clear();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One connection: boot, then answer and send until it is lost; says why it ended.
async fn session<Socket>(
    id: &str,
    parts: &ChargerParts,
    state: &mut State,
    mut socket: Socket,
) -> String
where
    Socket: futures_util::Stream<Item = Result<ws::Frame, awc::error::WsProtocolError>>
        + futures_util::Sink<ws::Message, Error = awc::error::WsProtocolError>
        + Unpin,
{
    state.queued.push_back((
        "BootNotification",
        json!({"chargePointVendor": "evcharge", "chargePointModel": "fleet"}),
    ));
    let mut last_heartbeat = Instant::now();
    loop {
        if state.outstanding.is_none() {
            if let Some((action, payload)) = state.queued.pop_front() {
                state.next_id += 1;
                let call_id = state.next_id.to_string();
                let frame = Frame::Call {
                    id: call_id.clone(),
                    action: action.into(),
                    payload,
                };
                if let Err(e) = socket.send(ws::Message::Text(frame.to_text().into())).await {
                    return e.to_string();
                }
                if action == "MeterValues" {
                    parts
                        .counters
                        .meter_values_sent
                        .fetch_add(1, Ordering::Relaxed);
                }
                state.outstanding = Some(Outstanding {
                    id: call_id,
                    action,
                    sent_at: Instant::now(),
                });
            }
        }
        let message = tokio::select! {
            message = socket.next() => message,
            _ = tokio::time::sleep_until(next_due(parts, state, last_heartbeat).into()) => {
                timers(parts, state, &mut last_heartbeat);
                continue;
            }
        };
        let reply = match message {
            None => return "closed".into(),
            Some(Err(e)) => return e.to_string(),
            Some(Ok(ws::Frame::Text(text))) => {
                let Ok(text) = std::str::from_utf8(&text) else {
                    return "a text frame not in UTF-8".into();
                };
                on_text(id, parts, state, text)
            }
            Some(Ok(ws::Frame::Ping(bytes))) => Some(ws::Message::Pong(bytes)),
            Some(Ok(ws::Frame::Close(reason))) => {
                return format!("closed by the gateway: {reason:?}")
            }
            Some(Ok(_)) => None,
        };
        if let Some(reply) = reply {
            if let Err(e) = socket.send(reply).await {
                return e.to_string();
            }
        }
    }
}

/// When the next heartbeat or meter value is due: a timer a charger, no polling.
fn next_due(parts: &ChargerParts, state: &State, last_heartbeat: Instant) -> Instant {
    let heartbeat = state.heartbeat.map(|every| last_heartbeat + every);
    let meter = match state.supplying {
        Some(Some(_)) => state.last_meter.map(|at| at + parts.meter_interval),
        _ => None,
    };
    [heartbeat, meter]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
}

/// Heartbeats and meter values, when they are due.
fn timers(parts: &ChargerParts, state: &mut State, last_heartbeat: &mut Instant) {
    if let Some(every) = state.heartbeat {
        if last_heartbeat.elapsed() >= every {
            *last_heartbeat = Instant::now();
            state.queued.push_back(("Heartbeat", json!({})));
        }
    }
    let Some(Some(transaction_id)) = state.supplying else {
        return;
    };
    let due = state
        .last_meter
        .is_none_or(|at| at.elapsed() >= parts.meter_interval);
    if !due {
        return;
    }
    let elapsed = state
        .last_meter
        .map_or(parts.meter_interval, |at| at.elapsed());
    state.last_meter = Some(Instant::now());
    state.meter_wh += SUPPLY_WATTS * elapsed.as_secs_f64() / 3600.0;
    state.queued.push_back((
        "MeterValues",
        json!({
            "connectorId": 1,
            "transactionId": transaction_id,
            "meterValue": [{
                "timestamp": now(),
                "sampledValue": [{
                    "value": format!("{:.0}", state.meter_wh),
                    "measurand": "Energy.Active.Import.Register",
                    "unit": "Wh"
                }]
            }]
        }),
    ));
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn status(status: &str) -> (&'static str, Value) {
    (
        "StatusNotification",
        json!({"connectorId": 1, "errorCode": "NoError", "status": status}),
    )
}

/// A text message from the gateway; the reply to send, if any.
fn on_text(id: &str, parts: &ChargerParts, state: &mut State, text: &str) -> Option<ws::Message> {
    match Frame::parse(text) {
        Ok(Frame::Call {
            id: call_id,
            action,
            payload,
        }) => {
            let answer = on_call(parts, state, &action, &payload);
            let frame = match answer {
                Ok(payload) => Frame::CallResult {
                    id: call_id,
                    payload,
                },
                Err(code) => Frame::CallError {
                    id: call_id,
                    code,
                    description: format!("{action} is not simulated"),
                },
            };
            Some(ws::Message::Text(frame.to_text().into()))
        }
        Ok(Frame::CallResult {
            id: answer_id,
            payload,
        }) => {
            if let Some(call) = state.outstanding.take_if(|c| c.id == answer_id) {
                answered(parts, state, &call, &payload);
            }
            None
        }
        Ok(Frame::CallError {
            id: answer_id,
            code,
            description,
        }) => {
            if let Some(call) = state.outstanding.take_if(|c| c.id == answer_id) {
                parts.counters.call_errors.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "{id}: the gateway refused {}: {} {description}",
                    call.action,
                    code.as_str()
                );
            }
            None
        }
        Err(refusal) => {
            log::warn!(
                "{id}: the gateway sent what is not OCPP-J: {}",
                refusal.description
            );
            None
        }
    }
}

/// The gateway's CALL, answered as a charger would.
fn on_call(
    parts: &ChargerParts,
    state: &mut State,
    action: &str,
    payload: &Value,
) -> Result<Value, ErrorCode> {
    match action {
        "RemoteStartTransaction" => {
            if state.supplying.is_some() {
                return Ok(json!({"status": "Rejected"}));
            }
            parts.counters.remote_starts.fetch_add(1, Ordering::Relaxed);
            if parts.plug_in.load(Ordering::Relaxed) {
                let id_tag = payload["idTag"].as_str().unwrap_or_default().to_owned();
                state.supplying = Some(None);
                state.queued.push_back(status("Preparing"));
                state.queued.push_back((
                    "StartTransaction",
                    json!({
                        "connectorId": 1,
                        "idTag": id_tag,
                        "meterStart": state.meter_wh.round() as i64,
                        "timestamp": now()
                    }),
                ));
            }
            Ok(json!({"status": "Accepted"}))
        }
        "RemoteStopTransaction" => {
            let asked = payload["transactionId"].as_i64();
            match state.supplying {
                Some(Some(transaction_id)) if asked == Some(transaction_id) => {
                    state.supplying = None;
                    state.last_meter = None;
                    state.queued.push_back((
                        "StopTransaction",
                        json!({
                            "transactionId": transaction_id,
                            "meterStop": state.meter_wh.round() as i64,
                            "timestamp": now(),
                            "reason": "Remote"
                        }),
                    ));
                    state.queued.push_back(status("Available"));
                    Ok(json!({"status": "Accepted"}))
                }
                _ => Ok(json!({"status": "Rejected"})),
            }
        }
        "TriggerMessage" => {
            if payload["requestedMessage"] == "StatusNotification" {
                let now = if state.supplying.is_some() {
                    "Charging"
                } else {
                    "Available"
                };
                state.queued.push_back(status(now));
                Ok(json!({"status": "Accepted"}))
            } else {
                Ok(json!({"status": "NotImplemented"}))
            }
        }
        "ChangeAvailability" => Ok(json!({"status": "Accepted"})),
        _ => Err(ErrorCode::NotSupported),
    }
}

/// The answer to one of the charger's own CALLs.
fn answered(parts: &ChargerParts, state: &mut State, call: &Outstanding, payload: &Value) {
    match call.action {
        "BootNotification" if payload["status"] == "Accepted" => {
            parts.counters.booted.fetch_add(1, Ordering::Relaxed);
            let interval = payload["interval"].as_u64().unwrap_or(60).max(1);
            state.heartbeat = Some(Duration::from_secs(interval));
            state.queued.push_back(status("Available"));
        }
        "StartTransaction" => {
            let transaction_id = payload["transactionId"].as_i64();
            let accepted = payload["idTagInfo"]["status"] == "Accepted";
            if let (Some(transaction_id), true) = (transaction_id, accepted) {
                parts.counters.transactions.fetch_add(1, Ordering::Relaxed);
                state.supplying = Some(Some(transaction_id));
                state.last_meter = Some(Instant::now());
                state.queued.push_back(status("Charging"));
            } else {
                state.supplying = None;
                state.queued.push_back(status("Available"));
            }
        }
        "MeterValues" => {
            let micros = call.sent_at.elapsed().as_micros() as u64;
            let counters = &parts.counters;
            counters
                .meter_answer_micros
                .fetch_add(micros, Ordering::Relaxed);
            counters
                .meter_values_answered
                .fetch_add(1, Ordering::Relaxed);
        }
        _ => {}
    }
}

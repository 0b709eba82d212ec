//! A charge point's transactions: started, metered and stopped. Each is numbered by the
//! gateways' ledger on the bus, which also answers for the transactions this actor never
//! saw start (the charge point was connected elsewhere, or offline, and replays them now).

use super::{Charger, Transaction};
use crate::domain::money::{cost, Energy, Tariff};
use crate::messages::gateway::TransactionStarted;
use crate::messages::{CpEvent, Outcome};
use crate::ocpp::core::*;
use crate::ocpp::rpc::{ErrorCode, Refusal};
use actix::prelude::*;
use chrono::Duration;

/// How far before a start's own time its record is looked for: the charge point's clock may
/// run ahead of the gateway's.
const CLOCK_SKEW: Duration = Duration::minutes(10);

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

fn id_tag_info(status: AuthorizationStatus) -> IdTagInfo {
    IdTagInfo { status }
}

fn started_answer(transaction_id: i64, status: AuthorizationStatus) -> serde_json::Value {
    let answer = StartTransactionResponse {
        id_tag_info: id_tag_info(status),
        transaction_id,
    };
    serde_json::to_value(answer).unwrap_or_default()
}

impl Transaction {
    /// The transaction a ledger record says was started, as the session it is.
    fn from_ledger(id: i64, started: &TransactionStarted) -> Option<Transaction> {
        Some(Transaction {
            id,
            connector_id: started.connector_id,
            id_tag: started.id_tag.clone(),
            session_id: started.session_id?,
            driver_id: started.driver_id.clone()?,
            price_eur_kwh: started.price_eur_kwh?,
            meter_start_wh: started.meter_start,
            started_at: started.timestamp,
            reported_wh: 0,
            stop_outcome: None,
        })
    }
}

impl Charger {
    /// A new transaction gets its id from the ledger (unique across every gateway); the
    /// same start again gets the same id, from memory or, after a reconnect, the ledger. A
    /// start for a tag nobody authorised here is asked of the central first.
    pub(super) fn start_transaction(
        &mut self,
        id: String,
        start: StartTransaction,
        ctx: &mut Context<Self>,
    ) {
        if let Some(t) = &self.transaction {
            let same = t.connector_id == start.connector_id
                && t.id_tag == start.id_tag
                && t.meter_start_wh == start.meter_start
                && t.started_at == start.timestamp;
            if same {
                let again = started_answer(t.id, AuthorizationStatus::Accepted);
                return self.reply(id, Ok(again));
            }
        }
        let session = self
            .authorisation
            .as_ref()
            .filter(|a| a.driver_id == start.id_tag && self.transaction.is_none())
            .cloned();
        if session.is_some() {
            return self.number(id, start, session, ctx);
        }
        // Not asked for here: perhaps a start recorded before, repeated now.
        self.answering = Some(id.clone());
        let (ledger, cp_id) = (self.ledger.clone(), self.cp.id.clone());
        let (connector, tag, meter, at) = (
            start.connector_id,
            start.id_tag.clone(),
            start.meter_start,
            start.timestamp,
        );
        let repeated = move |s: &TransactionStarted| s.is_repeated_by(connector, &tag, meter, at);
        let lookup = async move { ledger.find(&cp_id, at - CLOCK_SKEW, repeated).await };
        ctx.spawn(
            lookup
                .into_actor(self)
                .map(move |found, act, ctx| match found {
                    Ok(Some((transaction_id, before))) => {
                        let status = match Transaction::from_ledger(transaction_id, &before) {
                            Some(t) if act.transaction.is_none() => {
                                log::info!(
                                    "{}: transaction {transaction_id} repeated: carried on",
                                    act.id()
                                );
                                act.transaction = Some(t);
                                AuthorizationStatus::Accepted
                            }
                            Some(_) => AuthorizationStatus::Accepted,
                            None => AuthorizationStatus::Invalid,
                        };
                        act.reply(id, Ok(started_answer(transaction_id, status)));
                    }
                    Ok(None) => act.start_unasked(id, start, ctx),
                    Err(e) => {
                        let why = format!("cannot look the transaction up now: {e}");
                        act.reply(
                            id.clone(),
                            Err(Refusal::new(&id, ErrorCode::InternalError, why)),
                        );
                    }
                }),
        );
    }

    /// Records the start in the ledger, as `session` (refused without one), and answers the
    /// charge point with its id.
    pub(super) fn number(
        &mut self,
        id: String,
        start: StartTransaction,
        session: Option<super::Authorisation>,
        ctx: &mut Context<Self>,
    ) {
        self.answering = Some(id.clone());
        let record = TransactionStarted {
            cp_id: self.cp.id.clone(),
            connector_id: start.connector_id,
            id_tag: start.id_tag.clone(),
            meter_start: start.meter_start,
            timestamp: start.timestamp,
            session_id: session.as_ref().map(|s| s.session_id),
            driver_id: session.as_ref().map(|s| s.driver_id.clone()),
            price_eur_kwh: session.as_ref().map(|s| s.price_eur_kwh),
        };
        let publisher = self.publisher.clone();
        let record = async move { publisher.ocpp_transaction(record).await };
        ctx.spawn(
            record
                .into_actor(self)
                .map(move |numbered, act, _| match numbered {
                    Ok(transaction_id) => act.started(id, transaction_id, start, session),
                    Err(e) => {
                        let why = format!("cannot record the transaction now: {e}");
                        act.reply(
                            id.clone(),
                            Err(Refusal::new(&id, ErrorCode::InternalError, why)),
                        );
                    }
                }),
        );
    }

    fn started(
        &mut self,
        id: String,
        transaction_id: i64,
        start: StartTransaction,
        session: Option<super::Authorisation>,
    ) {
        let Some(session) = session else {
            log::warn!(
                "{}: transaction {transaction_id} of {} started at the charge point \
                 without the central's authorisation: refused",
                self.id(),
                start.id_tag
            );
            self.remember_closed(transaction_id);
            return self.reply(
                id,
                Ok(started_answer(transaction_id, AuthorizationStatus::Invalid)),
            );
        };
        log::info!(
            "{}: transaction {transaction_id} started for {}",
            self.id(),
            session.driver_id
        );
        self.transaction = Some(Transaction {
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
        self.authorisation = None;
        self.emit(CpEvent::SupplyStarted {
            cp_id: self.cp.id.clone(),
            session_id: session.session_id,
            driver_id: session.driver_id,
            started_at: start.timestamp,
        });
        self.reply(
            id,
            Ok(started_answer(
                transaction_id,
                AuthorizationStatus::Accepted,
            )),
        );
    }

    /// Whether transaction `id` must be looked up before it can be taken: it is neither the
    /// one running here nor one closed here.
    fn unknown(&self, transaction_id: Option<i64>) -> Option<i64> {
        let id = transaction_id?;
        let known =
            self.transaction.as_ref().is_some_and(|t| t.id == id) || self.closed.contains(&id);
        (!known && self.transaction.is_none()).then_some(id)
    }

    /// Takes a message about transaction `transaction_id` once the ledger has said what it
    /// is: a transaction started before this connection carries on here.
    pub(super) fn after_lookup<F>(
        &mut self,
        id: String,
        transaction_id: Option<i64>,
        ctx: &mut Context<Self>,
        take: F,
    ) where
        F: FnOnce(&mut Charger) -> serde_json::Value + 'static,
    {
        let Some(unknown) = self.unknown(transaction_id) else {
            let answer = take(self);
            return self.reply(id, Ok(answer));
        };
        self.answering = Some(id.clone());
        let (ledger, cp_id) = (self.ledger.clone(), self.cp.id.clone());
        let lookup = async move { ledger.transaction(&cp_id, unknown).await };
        ctx.spawn(lookup.into_actor(self).map(move |found, act, _| {
            match found {
                Ok(Some(started)) => match Transaction::from_ledger(unknown, &started) {
                    Some(t) => {
                        log::info!(
                            "{}: transaction {unknown}, started before, carried on",
                            act.id()
                        );
                        act.transaction = Some(t);
                    }
                    None => act.remember_closed(unknown),
                },
                Ok(None) => act.remember_closed(unknown),
                Err(e) => log::warn!("{}: cannot look transaction {unknown} up: {e}", act.id()),
            }
            let answer = take(act);
            act.reply(id, Ok(answer));
        }));
    }

    pub(super) fn meter_values(&mut self, values: MeterValues) -> serde_json::Value {
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
        serde_json::to_value(Empty {}).unwrap_or_default()
    }

    pub(super) fn stop_transaction(&mut self, stop: StopTransaction) -> serde_json::Value {
        let id_tag_info = stop
            .id_tag
            .as_ref()
            .map(|_| id_tag_info(AuthorizationStatus::Accepted));
        let reply =
            serde_json::to_value(StopTransactionResponse { id_tag_info }).unwrap_or_default();
        let Some(t) = self.transaction.take_if(|t| t.id == stop.transaction_id) else {
            if !self.closed.contains(&stop.transaction_id) && self.worth_logging() {
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
            "{}: transaction {} ended ({}): {wh} Wh",
            self.id(),
            t.id,
            outcome.as_str()
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

//! Topic `ocpp.transactions`, key = CP id: the gateways' ledger of OCPP transactions. Each
//! record is written to partition 0, so that its offset numbers the transaction across
//! every gateway; no one acts on it (the session it starts goes on `cp.events`).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A charge point started a transaction; its id is this record's offset plus one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "transaction_started")]
pub struct TransactionStarted {
    pub cp_id: String,
    pub connector_id: u32,
    pub id_tag: String,
    /// Wh on the meter at the start, as the charge point said.
    pub meter_start: i64,
    /// When it started, as the charge point said.
    pub timestamp: DateTime<Utc>,
    /// The session it is, when the central authorised it; `null` for one the gateway refused.
    pub session_id: Option<Uuid>,
    /// The session's driver and tariff, with `session_id`.
    pub driver_id: Option<String>,
    pub price_eur_kwh: Option<f64>,
}

impl TransactionStarted {
    /// Whether `other` is this very start again (a charge point repeating it after a
    /// reconnect): the same connector, tag, meter reading and time.
    pub fn is_repeated_by(
        &self,
        connector_id: u32,
        id_tag: &str,
        meter_start: i64,
        at: DateTime<Utc>,
    ) -> bool {
        self.connector_id == connector_id
            && self.id_tag == id_tag
            && self.meter_start == meter_start
            && self.timestamp == at
    }
}

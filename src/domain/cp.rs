//! A charging point as every layer speaks of it: its state (SPEC §4), its view on the
//! console and the API, a reservation made for a driver and why one was refused.

use super::money::{self, Cents, Energy, Tariff};
use crate::messages::DenyReason;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What the console shows of a CP (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CpState {
    Available,
    Reserved,
    Charging,
    Stopped,
    Broken,
    Disconnected,
    /// Its monitor is linked but its engine is not yet (or no longer) heard on the bus
    /// taking the central's commands: not available, not a fault.
    Starting,
}

impl CpState {
    /// Every state.
    pub const ALL: [CpState; 7] = [
        CpState::Available,
        CpState::Reserved,
        CpState::Charging,
        CpState::Stopped,
        CpState::Broken,
        CpState::Disconnected,
        CpState::Starting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CpState::Available => "available",
            CpState::Reserved => "reserved",
            CpState::Charging => "charging",
            CpState::Stopped => "stopped",
            CpState::Broken => "broken",
            CpState::Disconnected => "disconnected",
            CpState::Starting => "starting",
        }
    }
}

/// The engine's health as its monitor last reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineHealth {
    Ok,
    Ko(String),
}

/// A CP as the API and the console show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpView {
    pub id: String,
    pub location: String,
    #[serde(rename = "price_eur_kwh", with = "money::as_eur_per_kwh")]
    pub tariff: Tariff,
    pub state: CpState,
    pub driver_id: Option<String>,
    pub session_id: Option<Uuid>,
    #[serde(rename = "kwh", with = "money::as_kwh")]
    pub energy: Energy,
    #[serde(rename = "eur", with = "money::as_eur")]
    pub cost: Cents,
    /// Why the CP is broken, when it is.
    pub fault: Option<String>,
    /// When the CP entered `state`.
    pub since: DateTime<Utc>,
    /// The central instance running the CP's actor; `null` while none does.
    #[serde(default)]
    pub owner: Option<String>,
    /// Each connector of an OCPP charge point; none for a native CP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connectors: Vec<crate::messages::ConnectorStatus>,
}

/// A reservation made for a driver.
#[derive(Debug, Clone, PartialEq)]
pub struct Reservation {
    pub session_id: Uuid,
    pub cp_id: String,
    pub location: String,
    pub tariff: Tariff,
    pub expires_at: DateTime<Utc>,
}

/// Why a reservation was not made.
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    pub reason: DenyReason,
    pub detail: String,
}

impl Denial {
    pub fn new(reason: DenyReason, detail: impl Into<String>) -> Denial {
        Denial {
            reason,
            detail: detail.into(),
        }
    }
}

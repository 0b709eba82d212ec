//! Topics `cp.commands` and `cp.events`, key = CP id: the central and a CP's engine (or the
//! OCPP gateway speaking for a charge point).

use super::{Keyed, Outcome};
use crate::messages::DenyReason;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The most connectors a charge point reports.
pub const MAX_CONNECTORS: usize = 32;

/// One connector of an OCPP charge point, as it last said (StatusNotification).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ConnectorStatus {
    /// 1 and up.
    pub connector_id: u32,
    /// OCPP's ChargePointStatus: `Available`, `Charging`, `Faulted`…
    pub status: String,
    /// The error code and information it gave, when it gave one.
    #[serde(default)]
    pub detail: Option<String>,
}

/// The OCPP actions an operator may ask of an OCPP charge point (`ocpp_request`).
pub const OCPP_OPERATOR_ACTIONS: [&str; 4] = [
    "Reset",
    "TriggerMessage",
    "GetConfiguration",
    "ChangeConfiguration",
];

/// The longest `ocpp_request` or `ocpp_answer` payload, as JSON.
pub const MAX_OCPP_PAYLOAD: usize = 8192;

/// Topic `cp.commands`, key = CP id: what the central asks of an engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CpCommand {
    /// Authorise a supply for this driver, at this price, if plugged in before `expires_at`.
    Authorise {
        cp_id: String,
        session_id: Uuid,
        driver_id: String,
        price_eur_kwh: f64,
        expires_at: DateTime<Utc>,
    },
    /// Drop an authorisation that was never plugged in.
    CancelReservation { cp_id: String, session_id: Uuid },
    /// End the supply of this session now.
    StopSupply {
        cp_id: String,
        session_id: Uuid,
        outcome: Outcome,
    },
    /// The central accepts this engine instance.
    EngineWelcome { cp_id: String, instance: Uuid },
    /// Another engine instance of this CP id is live: this one must not run.
    EngineIdInUse {
        cp_id: String,
        instance: Uuid,
        detail: String,
    },
    /// The driver whose tag was presented at the CP (see `tag_presented`) may not supply
    /// there: nothing was reserved.
    TagRefused {
        cp_id: String,
        request_id: Uuid,
        reason: DenyReason,
        detail: String,
    },
    /// An operator's OCPP request for an OCPP charge point, passed on by its gateway (see
    /// docs/OCPP.md): `action` is one of [`OCPP_OPERATOR_ACTIONS`], `payload` its OCPP 1.6
    /// payload. Answered with `ocpp_answer`.
    OcppRequest {
        cp_id: String,
        request_id: Uuid,
        action: String,
        payload: serde_json::Value,
    },
    /// Crash injection: die abruptly, if started with crash injection allowed. Ignored when
    /// older than the engine's own start, so that a redelivery cannot crash it again.
    Crash { cp_id: String, asked_by: String },
}

impl Keyed for CpCommand {
    fn key(&self) -> &str {
        match self {
            CpCommand::Authorise { cp_id, .. }
            | CpCommand::CancelReservation { cp_id, .. }
            | CpCommand::StopSupply { cp_id, .. }
            | CpCommand::EngineWelcome { cp_id, .. }
            | CpCommand::EngineIdInUse { cp_id, .. }
            | CpCommand::TagRefused { cp_id, .. }
            | CpCommand::OcppRequest { cp_id, .. }
            | CpCommand::Crash { cp_id, .. } => cp_id,
        }
    }

    fn must_be_fresh(&self) -> bool {
        matches!(self, CpCommand::Crash { .. })
    }

    fn check_fields(&self) -> Result<(), String> {
        self.check_rules()
    }
}

/// Topic `cp.events`, key = CP id: what an engine reports to the central.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CpEvent {
    /// The engine accepted the authorisation and waits for the vehicle.
    Authorised { cp_id: String, session_id: Uuid },
    /// The engine refused the authorisation.
    Refused {
        cp_id: String,
        session_id: Uuid,
        reason: String,
    },
    /// The vehicle plugged in.
    SupplyStarted {
        cp_id: String,
        session_id: Uuid,
        driver_id: String,
        started_at: DateTime<Utc>,
    },
    /// Energy and cost so far, once a second.
    SupplyProgress {
        cp_id: String,
        session_id: Uuid,
        driver_id: String,
        kwh: f64,
        eur: f64,
    },
    /// The supply ended: the final figures.
    SupplyEnded {
        cp_id: String,
        session_id: Uuid,
        driver_id: String,
        started_at: DateTime<Utc>,
        ended_at: DateTime<Utc>,
        kwh: f64,
        eur: f64,
        outcome: Outcome,
    },
    /// An engine instance says it is alive; its first hello (`probe`) asks whether another
    /// instance of the CP id is live, later ones are heartbeats.
    EngineHello {
        cp_id: String,
        instance: Uuid,
        #[serde(default)]
        probe: bool,
        /// Whether the central's commands reach this engine now (its consumer holds its
        /// partitions). Until one says so, its CP shows `starting`, not available. Absent
        /// means true.
        #[serde(default = "yes")]
        taking_commands: bool,
    },
    /// A driver presented its tag at the CP (an RFID card at an OCPP charge point): it asks
    /// for a supply there, as the driver's own `supply_request` would. Answered with
    /// `authorise` for a reservation, or `tag_refused`; the driver is told as for its own
    /// requests. `id_tag` is the driver's id.
    TagPresented {
        cp_id: String,
        id_tag: String,
        request_id: Uuid,
    },
    /// The OCPP charge point's answer to an `ocpp_request`: `status` is the answer's own
    /// (`Accepted`, `Rejected`…), or `CALLERROR <code>: <why>`, or why the gateway could not
    /// ask; `payload` the answer as the charge point sent it (`{}` without one).
    OcppAnswer {
        cp_id: String,
        request_id: Uuid,
        status: String,
        payload: serde_json::Value,
    },
    /// The connectors of an OCPP charge point with their statuses, sent by its gateway when
    /// one changes, so that the console shows each (at most 32).
    Connectors {
        cp_id: String,
        connectors: Vec<ConnectorStatus>,
    },
    /// Written by a central instance, not an engine: what reached that instance for this CP
    /// (a driver's request, an operator's command) passed on to the instance that runs the
    /// CP. `sealed` is opaque to all but the centrals (sealed with their cluster key).
    FromCentral {
        cp_id: String,
        /// The instance that passes it on.
        from: String,
        sealed: String,
    },
}

fn yes() -> bool {
    true
}

impl Keyed for CpEvent {
    fn key(&self) -> &str {
        match self {
            CpEvent::Authorised { cp_id, .. }
            | CpEvent::Refused { cp_id, .. }
            | CpEvent::SupplyStarted { cp_id, .. }
            | CpEvent::SupplyProgress { cp_id, .. }
            | CpEvent::SupplyEnded { cp_id, .. }
            | CpEvent::EngineHello { cp_id, .. }
            | CpEvent::TagPresented { cp_id, .. }
            | CpEvent::OcppAnswer { cp_id, .. }
            | CpEvent::Connectors { cp_id, .. }
            | CpEvent::FromCentral { cp_id, .. } => cp_id,
        }
    }

    /// A replayed hello would keep a dead engine looking alive; a replayed command of an
    /// operator's, passed on by a central, would act again.
    fn must_be_fresh(&self) -> bool {
        matches!(
            self,
            CpEvent::EngineHello { .. }
                | CpEvent::FromCentral { .. }
                | CpEvent::TagPresented { .. }
        )
    }
    fn sealed_by_centrals(&self) -> bool {
        matches!(self, CpEvent::FromCentral { .. })
    }
    // Its rules are checked by the central's actor of the CP, which audits the refused
    // amendments of a bill among them.
}

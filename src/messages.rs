//! Every message that crosses Kafka: one envelope, one enum per topic.
//!
//! The JSON shapes here are the public contract documented in `docs/PROTOCOL.md`; any Kafka
//! client that writes these shapes can take part in the network.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
mod cp;
pub mod gateway;
mod rules;
pub use cp::{
    ConnectorStatus, CpCommand, CpEvent, MAX_CONNECTORS, MAX_OCPP_PAYLOAD, OCPP_OPERATOR_ACTIONS,
};
pub use rules::{
    check_cp_id, check_driver_id, check_key, shown, MAX_ID_LEN, MAX_PRICE_EUR_KWH, MAX_SESSION_KWH,
    MAX_TEXT_LEN,
};

/// The schema version this build writes and accepts.
pub const SCHEMA_VERSION: u32 = 1;

/// The common wrapper of every Kafka record value: type tag, version, unique id, timestamp.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope<T> {
    /// Unique message id (UUID); consumers use it to recognise redeliveries.
    pub id: Uuid,
    /// Schema version; a consumer sets aside versions it does not know.
    pub v: u32,
    /// When the sender created the message.
    pub ts: DateTime<Utc>,
    /// The message itself, flattened so that its `type` tag sits beside `id`, `v` and `ts`.
    #[serde(flatten)]
    pub body: T,
}

impl<T> Envelope<T> {
    pub fn new(body: T) -> Self {
        Envelope {
            id: Uuid::new_v4(),
            v: SCHEMA_VERSION,
            ts: Utc::now(),
            body,
        }
    }
}

/// A message that says which entity (CP or driver) it concerns: that id is its Kafka key.
pub trait Keyed {
    fn key(&self) -> &str;

    /// Whether the message acts on the present rather than on a session or instance it
    /// names: a replay of it would act again, so a receiver takes it only while fresh, and
    /// once (see `kafka.replay_window`).
    fn must_be_fresh(&self) -> bool {
        false
    }

    /// Sealed with the centrals' cluster key, checked by its receiver: no proof by the party
    /// its key names is needed (a note can outrun the CP's new key on the changelog).
    fn sealed_by_centrals(&self) -> bool {
        false
    }

    /// The rules of the message's fields beyond their JSON types (ids, texts, figures):
    /// the first one broken, said for the dead-letter topic.
    fn check_fields(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Topic `driver.requests`, key = driver id: what drivers ask of the central.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DriverRequest {
    /// Ask for a supply at a named CP, or at any available one when `cp_id` is absent.
    SupplyRequest {
        request_id: Uuid,
        driver_id: String,
        #[serde(default)]
        cp_id: Option<String>,
    },
    /// Stop the supply this driver is receiving.
    StopSupply { driver_id: String },
    /// Ask for the list of CPs available now.
    ListAvailable { driver_id: String },
    /// A driver instance says it is alive. The first hello of an instance (`probe`) asks
    /// whether another instance of the same driver id is live; later ones are heartbeats.
    Hello {
        driver_id: String,
        instance: Uuid,
        #[serde(default)]
        probe: bool,
    },
    /// Sign in with a password (the driver dashboard's log-in). The central keeps only a
    /// hash; the first sign-in of a driver id sets its password. Answered with `signed_in`.
    /// The password never crosses the bus readable: it is sealed (ChaCha20-Poly1305) with a
    /// key derived from the driver's bus key, for this request id (see `docs/PROTOCOL.md`).
    SignIn {
        request_id: Uuid,
        driver_id: String,
        sealed_password: String,
        /// The address the driver's dashboard was reached from, when known: the central
        /// limits wrong passwords per address as well as per driver.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// Ask for this driver's past sessions (answered with `history`).
    History { request_id: Uuid, driver_id: String },
}

impl Keyed for DriverRequest {
    fn key(&self) -> &str {
        match self {
            DriverRequest::SupplyRequest { driver_id, .. }
            | DriverRequest::StopSupply { driver_id }
            | DriverRequest::ListAvailable { driver_id }
            | DriverRequest::Hello { driver_id, .. }
            | DriverRequest::SignIn { driver_id, .. }
            | DriverRequest::History { driver_id, .. } => driver_id,
        }
    }

    /// Every driver request acts on the driver's present (its current supply, its id).
    fn must_be_fresh(&self) -> bool {
        true
    }

    fn check_fields(&self) -> Result<(), String> {
        self.check_rules()
    }
}

/// A secret that travels as a plain JSON string but never shows in logs or debug output.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret itself, for the one place that must read it (the hash check).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Fields whose value is a secret wherever they appear in a message.
pub const SECRET_FIELDS: [&str; 1] = ["password"];

/// Replaces every secret field of a message (at any depth) by `"***"`, for views that show
/// raw records to people, such as the console's view of a topic. True when it hid any.
pub fn redact_secrets(message: &mut serde_json::Value) -> bool {
    let mut hid = false;
    match message {
        serde_json::Value::Object(fields) => {
            for (name, value) in fields.iter_mut() {
                if SECRET_FIELDS.contains(&name.as_str()) {
                    *value = serde_json::Value::String("***".into());
                    hid = true;
                } else {
                    hid |= redact_secrets(value);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                hid |= redact_secrets(item);
            }
        }
        _ => {}
    }
    hid
}

/// Why the central denied a supply request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    UnknownCp,
    /// A tag presented at a CP is no registered driver's (see `tag_presented`).
    UnknownDriver,
    CpBusy,
    CpStopped,
    CpBroken,
    CpDisconnected,
    /// The CP's monitor is linked but its engine is not yet heard taking commands.
    CpStarting,
    NoCpAvailable,
    DriverBusy,
    EngineRefused,
    ReservationCancelled,
    /// The central could not record the reservation durably (its disk failed): nothing is
    /// reserved, and the same request may be sent again later.
    RecordFailed,
}

/// How a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The vehicle was unplugged.
    Completed,
    StoppedByDriver,
    StoppedByOperator,
    /// Reserved but never plugged in within the reservation window.
    Expired,
    /// The engine failed during the supply.
    EngineFailure,
    /// The central lost the monitor during the supply.
    MonitorLost,
    /// The engine refused the authorisation.
    Refused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::StoppedByDriver => "stopped_by_driver",
            Outcome::StoppedByOperator => "stopped_by_operator",
            Outcome::Expired => "expired",
            Outcome::EngineFailure => "engine_failure",
            Outcome::MonitorLost => "monitor_lost",
            Outcome::Refused => "refused",
        }
    }
}

/// The final account of a session, sent to the driver and kept by the central.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Ticket {
    pub session_id: Uuid,
    pub request_id: Uuid,
    pub cp_id: String,
    pub driver_id: String,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    pub kwh: f64,
    pub eur: f64,
    pub price_eur_kwh: f64,
    pub outcome: Outcome,
}

/// One CP as a driver sees it in the list of available CPs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CpOffer {
    pub cp_id: String,
    pub location: String,
    pub price_eur_kwh: f64,
}

/// One closed session as its driver sees it in its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PastSession {
    pub session_id: Uuid,
    pub cp_id: String,
    /// `null` when the vehicle never plugged in.
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    pub kwh: f64,
    pub eur: f64,
    pub price_eur_kwh: f64,
    pub outcome: Outcome,
}

/// Topic `driver.updates`, key = driver id: every step the central tells a driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DriverUpdate {
    /// The CP is reserved for the driver; the central has asked it to authorise.
    Reserved {
        request_id: Uuid,
        driver_id: String,
        session_id: Uuid,
        cp_id: String,
        location: String,
        price_eur_kwh: f64,
        expires_at: DateTime<Utc>,
    },
    /// The request was denied; nothing was reserved.
    Denied {
        request_id: Uuid,
        driver_id: String,
        #[serde(default)]
        cp_id: Option<String>,
        reason: DenyReason,
        detail: String,
    },
    /// The CP authorised the supply: the vehicle may plug in.
    Authorised {
        request_id: Uuid,
        driver_id: String,
        session_id: Uuid,
        cp_id: String,
    },
    /// The vehicle is plugged in and energy flows.
    Started {
        driver_id: String,
        session_id: Uuid,
        cp_id: String,
        started_at: DateTime<Utc>,
    },
    /// Energy and cost so far.
    Progress {
        driver_id: String,
        session_id: Uuid,
        cp_id: String,
        kwh: f64,
        eur: f64,
    },
    /// Something went wrong at the CP during the session (the ticket follows when it closes).
    Interrupted {
        driver_id: String,
        session_id: Uuid,
        cp_id: String,
        detail: String,
    },
    /// The session is closed: the final account.
    Ticket { driver_id: String, ticket: Ticket },
    /// The CPs available now.
    Available {
        driver_id: String,
        cps: Vec<CpOffer>,
    },
    /// The central accepts this driver instance.
    Welcome { driver_id: String, instance: Uuid },
    /// Another instance of this driver id is live: this instance must not run.
    IdInUse {
        driver_id: String,
        instance: Uuid,
        detail: String,
    },
    /// The answer to `sign_in`: accepted or not; `first_time` when this sign-in set the
    /// driver's password.
    SignedIn {
        request_id: Uuid,
        driver_id: String,
        accepted: bool,
        #[serde(default)]
        first_time: bool,
        detail: String,
        /// Refused unheard, after too many wrong passwords: seconds to wait before trying
        /// again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    /// The answer to `history`: the driver's latest closed sessions, newest first.
    History {
        request_id: Uuid,
        driver_id: String,
        sessions: Vec<PastSession>,
    },
}

impl Keyed for DriverUpdate {
    fn key(&self) -> &str {
        match self {
            DriverUpdate::Reserved { driver_id, .. }
            | DriverUpdate::Denied { driver_id, .. }
            | DriverUpdate::Authorised { driver_id, .. }
            | DriverUpdate::Started { driver_id, .. }
            | DriverUpdate::Progress { driver_id, .. }
            | DriverUpdate::Interrupted { driver_id, .. }
            | DriverUpdate::Ticket { driver_id, .. }
            | DriverUpdate::Available { driver_id, .. }
            | DriverUpdate::Welcome { driver_id, .. }
            | DriverUpdate::IdInUse { driver_id, .. }
            | DriverUpdate::SignedIn { driver_id, .. }
            | DriverUpdate::History { driver_id, .. } => driver_id,
        }
    }
}

/// Topic `deadletter`, key = the original key: a record that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename = "dead_letter")]
pub struct DeadLetter {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub reason: String,
    /// The original value, as text (invalid UTF-8 replaced).
    pub payload: String,
}

/// The JSON Schema of every topic's record values, generated from the types above:
/// `(topic name without the prefix, schema)`. Published in `docs/schemas/`.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    fn of<T: JsonSchema>() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(T)).expect("a schema is JSON")
    }
    let mut schemas = vec![
        ("driver.requests", of::<Envelope<DriverRequest>>()),
        ("driver.updates", of::<Envelope<DriverUpdate>>()),
        ("cp.commands", of::<Envelope<CpCommand>>()),
        ("cp.events", of::<Envelope<CpEvent>>()),
        ("deadletter", of::<Envelope<DeadLetter>>()),
        (
            "ocpp.transactions",
            of::<Envelope<gateway::TransactionStarted>>(),
        ),
    ];
    // The dead-letter topic quotes what was set aside: its fields keep no rule.
    for (topic, schema) in schemas.iter_mut().filter(|(t, _)| *t != "deadletter") {
        rules::add_limits(topic, schema);
    }
    schemas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_puts_type_tag_beside_header_fields() {
        let env = Envelope::new(DriverRequest::ListAvailable {
            driver_id: "D1".into(),
        });
        let json: serde_json::Value = serde_json::to_value(&env).unwrap();
        assert_eq!(json["type"], "list_available");
        assert_eq!(json["v"], 1);
        assert_eq!(json["driver_id"], "D1");
        let back: Envelope<DriverRequest> = serde_json::from_value(json).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn supply_request_without_cp_means_any() {
        let raw = r#"{"id":"6f1c7a52-3a7e-4c8e-9d5e-1f2a3b4c5d6e","v":1,"ts":"2026-11-23T10:00:00Z",
            "type":"supply_request","request_id":"6f1c7a52-3a7e-4c8e-9d5e-1f2a3b4c5d6f","driver_id":"D7"}"#;
        let env: Envelope<DriverRequest> = serde_json::from_str(raw).unwrap();
        assert!(matches!(
            env.body,
            DriverRequest::SupplyRequest { cp_id: None, .. }
        ));
        assert_eq!(env.body.key(), "D7");
    }

    #[test]
    fn a_secret_is_a_string_that_never_shows_in_debug_output_nor_in_views() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
        let mut json =
            serde_json::json!({"type": "sign_in", "driver_id": "D1", "password": secret});
        assert_eq!(json["password"], "hunter2");
        assert!(redact_secrets(&mut json));
        assert_eq!(json["password"], "***");
        assert!(!redact_secrets(&mut serde_json::json!({"driver_id": "D1"})));
        assert_eq!(json["driver_id"], "D1");
    }
}

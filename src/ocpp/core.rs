//! The payloads of OCPP 1.6's Core profile that the gateway takes and sends, as the official
//! JSON schemas define them (field names in camelCase, enumerations as spelt there).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A payload whose strings must keep their schema's lengths (CiString20, CiString50…).
pub trait Bounded {
    /// The first field too long, with its limit.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

fn within(field: &str, value: &str, max: usize) -> Result<(), String> {
    if value.chars().count() > max {
        return Err(format!("{field} has at most {max} characters"));
    }
    Ok(())
}

fn within_opt(field: &str, value: &Option<String>, max: usize) -> Result<(), String> {
    value.as_deref().map_or(Ok(()), |v| within(field, v, max))
}

// ---- From the charge point -------------------------------------------------------------

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootNotification {
    pub charge_point_vendor: String,
    pub charge_point_model: String,
    pub charge_point_serial_number: Option<String>,
    pub firmware_version: Option<String>,
}

impl Bounded for BootNotification {
    fn check(&self) -> Result<(), String> {
        within("chargePointVendor", &self.charge_point_vendor, 20)?;
        within("chargePointModel", &self.charge_point_model, 20)?;
        within_opt(
            "chargePointSerialNumber",
            &self.charge_point_serial_number,
            25,
        )?;
        within_opt("firmwareVersion", &self.firmware_version, 50)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RegistrationStatus {
    Accepted,
    Pending,
    Rejected,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BootNotificationResponse {
    pub status: RegistrationStatus,
    pub current_time: DateTime<Utc>,
    /// Seconds between heartbeats.
    pub interval: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Heartbeat {}
impl Bounded for Heartbeat {}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatResponse {
    pub current_time: DateTime<Utc>,
}

/// A connector's status (connector 0 is the charge point as a whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChargePointStatus {
    Available,
    Preparing,
    Charging,
    SuspendedEVSE,
    SuspendedEV,
    Finishing,
    Reserved,
    Unavailable,
    Faulted,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusNotification {
    pub connector_id: u32,
    pub error_code: ChargePointErrorCode,
    pub info: Option<String>,
    pub status: ChargePointStatus,
    pub timestamp: Option<DateTime<Utc>>,
    pub vendor_id: Option<String>,
    pub vendor_error_code: Option<String>,
}

impl Bounded for StatusNotification {
    fn check(&self) -> Result<(), String> {
        within_opt("info", &self.info, 50)?;
        within_opt("vendorId", &self.vendor_id, 255)?;
        within_opt("vendorErrorCode", &self.vendor_error_code, 50)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ChargePointErrorCode {
    ConnectorLockFailure,
    EVCommunicationError,
    GroundFailure,
    HighTemperature,
    InternalError,
    LocalListConflict,
    NoError,
    OtherError,
    OverCurrentFailure,
    PowerMeterFailure,
    PowerSwitchFailure,
    ReaderFailure,
    ResetFailure,
    UnderVoltage,
    OverVoltage,
    WeakSignal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorize {
    pub id_tag: String,
}

impl Bounded for Authorize {
    fn check(&self) -> Result<(), String> {
        within("idTag", &self.id_tag, 20)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AuthorizationStatus {
    Accepted,
    Blocked,
    Expired,
    Invalid,
    ConcurrentTx,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdTagInfo {
    pub status: AuthorizationStatus,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizeResponse {
    pub id_tag_info: IdTagInfo,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartTransaction {
    pub connector_id: u32,
    pub id_tag: String,
    /// Wh on the connector's meter at the start.
    pub meter_start: i64,
    pub reservation_id: Option<i64>,
    pub timestamp: DateTime<Utc>,
}

impl Bounded for StartTransaction {
    fn check(&self) -> Result<(), String> {
        within("idTag", &self.id_tag, 20)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartTransactionResponse {
    pub id_tag_info: IdTagInfo,
    pub transaction_id: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeterValues {
    pub connector_id: u32,
    pub transaction_id: Option<i64>,
    pub meter_value: Vec<MeterValue>,
}
impl Bounded for MeterValues {}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeterValue {
    pub timestamp: DateTime<Utc>,
    pub sampled_value: Vec<SampledValue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SampledValue {
    pub value: String,
    pub measurand: Option<String>,
    pub unit: Option<String>,
    pub phase: Option<String>,
}

impl MeterValue {
    /// The energy register, in Wh, when this sample has one: `Energy.Active.Import.Register`
    /// (the measurand when none is named) in Wh or kWh, summed over no phase.
    pub fn energy_register_wh(&self) -> Option<f64> {
        self.sampled_value
            .iter()
            .filter(|s| s.phase.is_none())
            .filter(|s| {
                s.measurand
                    .as_deref()
                    .is_none_or(|m| m == "Energy.Active.Import.Register")
            })
            .find_map(|s| {
                let value: f64 = s.value.trim().parse().ok()?;
                let wh = match s.unit.as_deref() {
                    None | Some("Wh") => value,
                    Some("kWh") => value * 1000.0,
                    Some(_) => return None,
                };
                (wh.is_finite() && wh >= 0.0).then_some(wh)
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum StopReason {
    EmergencyStop,
    EVDisconnected,
    HardReset,
    Local,
    Other,
    PowerLoss,
    Reboot,
    Remote,
    SoftReset,
    UnlockCommand,
    DeAuthorized,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopTransaction {
    pub id_tag: Option<String>,
    /// Wh on the meter at the end.
    pub meter_stop: i64,
    pub timestamp: DateTime<Utc>,
    pub transaction_id: i64,
    pub reason: Option<StopReason>,
    pub transaction_data: Option<Vec<MeterValue>>,
}

impl Bounded for StopTransaction {
    fn check(&self) -> Result<(), String> {
        within_opt("idTag", &self.id_tag, 20)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StopTransactionResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_tag_info: Option<IdTagInfo>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataTransfer {
    pub vendor_id: String,
    pub message_id: Option<String>,
    pub data: Option<String>,
}

impl Bounded for DataTransfer {
    fn check(&self) -> Result<(), String> {
        within("vendorId", &self.vendor_id, 255)?;
        within_opt("messageId", &self.message_id, 50)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataTransferStatus {
    Accepted,
    Rejected,
    UnknownMessageId,
    UnknownVendorId,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataTransferResponse {
    pub status: DataTransferStatus,
}

/// An empty answer (StatusNotification.conf, MeterValues.conf).
#[derive(Debug, Clone, Serialize)]
pub struct Empty {}

// ---- From the network ------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteStartTransaction {
    pub connector_id: u32,
    pub id_tag: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteStopTransaction {
    pub transaction_id: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AvailabilityType {
    Inoperative,
    Operative,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeAvailability {
    pub connector_id: u32,
    #[serde(rename = "type")]
    pub kind: AvailabilityType,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerMessage {
    pub requested_message: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector_id: Option<u32>,
}

/// The `status` of an answer to the network's CALLs (Accepted, Rejected, Scheduled…).
#[derive(Debug, Clone, Deserialize)]
pub struct StatusAnswer {
    pub status: String,
}

impl StatusAnswer {
    pub fn accepted(&self) -> bool {
        self.status == "Accepted"
    }
}

// ---- An operator's requests -------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reset {
    #[serde(rename = "type")]
    _kind: ResetType,
}

#[derive(Debug, Deserialize)]
enum ResetType {
    Hard,
    Soft,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OperatorTrigger {
    #[serde(rename = "requestedMessage")]
    _requested_message: TriggeredMessage,
    connector_id: Option<u32>,
}

#[derive(Debug, Deserialize)]
enum TriggeredMessage {
    BootNotification,
    DiagnosticsStatusNotification,
    FirmwareStatusNotification,
    Heartbeat,
    MeterValues,
    StatusNotification,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetConfiguration {
    key: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeConfiguration {
    key: String,
    value: String,
}

/// Whether `payload` is a valid OCPP 1.6 payload of `action`, one of the actions an
/// operator may ask (Reset, TriggerMessage, GetConfiguration, ChangeConfiguration): the
/// gateway sends nothing its schema refuses.
pub fn check_operator_request(action: &str, payload: &serde_json::Value) -> Result<(), String> {
    let parsed = |e: serde_json::Error| format!("not a valid {action} payload: {e}");
    let payload = payload.clone();
    match action {
        "Reset" => serde_json::from_value::<Reset>(payload)
            .map(drop)
            .map_err(parsed),
        "TriggerMessage" => {
            let trigger = serde_json::from_value::<OperatorTrigger>(payload).map_err(parsed)?;
            match trigger.connector_id {
                Some(0) => Err("connectorId is 1 or more".into()),
                _ => Ok(()),
            }
        }
        "GetConfiguration" => {
            let get = serde_json::from_value::<GetConfiguration>(payload).map_err(parsed)?;
            get.key
                .iter()
                .flatten()
                .try_for_each(|key| within("key", key, 50))
        }
        "ChangeConfiguration" => {
            let change = serde_json::from_value::<ChangeConfiguration>(payload).map_err(parsed)?;
            within("key", &change.key, 50)?;
            within("value", &change.value, 500)
        }
        other => Err(format!(
            "{other} is not an OCPP request an operator may make"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_operators_request_is_checked_against_its_schema() {
        assert!(check_operator_request("Reset", &json!({"type": "Soft"})).is_ok());
        assert!(check_operator_request("Reset", &json!({"type": "Sideways"})).is_err());
        assert!(check_operator_request("Reset", &json!({})).is_err());
        let trigger = json!({"requestedMessage": "Heartbeat", "connectorId": 1});
        assert!(check_operator_request("TriggerMessage", &trigger).is_ok());
        let zero = json!({"requestedMessage": "Heartbeat", "connectorId": 0});
        assert!(check_operator_request("TriggerMessage", &zero).is_err());
        assert!(check_operator_request("GetConfiguration", &json!({})).is_ok());
        let long = json!({"key": ["k".repeat(51)]});
        assert!(check_operator_request("GetConfiguration", &long).is_err());
        let change = json!({"key": "HeartbeatInterval", "value": "30"});
        assert!(check_operator_request("ChangeConfiguration", &change).is_ok());
        let extra = json!({"key": "HeartbeatInterval", "value": "30", "x": 1});
        assert!(check_operator_request("ChangeConfiguration", &extra).is_err());
        assert!(check_operator_request("UnlockConnector", &json!({})).is_err());
    }
}

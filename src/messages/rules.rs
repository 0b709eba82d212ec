//! The rules a message keeps beyond its JSON shape: ids that travel safely, short printable
//! texts, figures a supply can have. Checked where a record enters (the bus consumer), so
//! that a record breaking one is set aside with the rule it broke, before any actor sees it.

use super::{CpCommand, CpEvent, DriverRequest};

/// The longest CP or driver id: short enough for a frame field, a log line and a Kafka key.
pub const MAX_ID_LEN: usize = 32;

/// The highest tariff accepted, in €/kWh: far above any real one, far below anything that
/// could overflow a bill.
pub const MAX_PRICE_EUR_KWH: f64 = 10.0;

/// The longest free text a party may send (a refusal's reason, who asked for a crash…).
pub const MAX_TEXT_LEN: usize = 256;

/// The most energy one session can deliver: far above any real supply (350 kW for a day is
/// 8,400 kWh), far below anything that could overflow a bill.
pub const MAX_SESSION_KWH: f64 = 10_000.0;

/// The longest sealed password: a 12-byte nonce, 256 bytes of password and a 16-byte tag,
/// in hex.
const MAX_SEALED_LEN: usize = 2 * (12 + 256 + 16);

/// A CP id: 1 to [`MAX_ID_LEN`] letters, digits, `-`, `_` or `.` (the *id rule*).
pub fn check_cp_id(id: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.chars().all(allowed) {
        return Err(format!(
            "a CP id has 1 to {MAX_ID_LEN} letters, digits, '-', '_' or '.' (got {})",
            shown(id)
        ));
    }
    Ok(())
}

/// A driver id: the same rule as a CP id.
pub fn check_driver_id(id: &str) -> Result<(), String> {
    check_cp_id(id).map_err(|why| why.replacen("a CP id", "a driver id", 1))
}

/// Untrusted text as it may appear in a refusal: quoted, escaped, cut short.
pub fn shown(text: &str) -> String {
    const LONGEST: usize = 40;
    let mut cut: String = text.chars().take(LONGEST).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    format!("{cut:?}")
}

/// A record key: the id of the CP or driver the record concerns.
pub fn check_key(key: &str) -> Result<(), String> {
    check_cp_id(key).map_err(|why| {
        format!(
            "record key is not a valid id: {}",
            why.replacen("a CP id", "an id", 1)
        )
    })
}

/// Free text from another party: at most [`MAX_TEXT_LEN`] characters, none of them control
/// characters (a log line or a console cell must not be rewritten by what it shows).
pub fn check_text(field: &str, text: &str) -> Result<(), String> {
    if text.chars().count() > MAX_TEXT_LEN || text.chars().any(char::is_control) {
        return Err(format!(
            "{field} is not valid: at most {MAX_TEXT_LEN} printable characters (got {})",
            shown(text)
        ));
    }
    Ok(())
}

/// Energy and money of a report: finite, not negative, within [`MAX_SESSION_KWH`].
pub fn check_figures(kwh: f64, eur: f64) -> Result<(), String> {
    if !(kwh.is_finite() && (0.0..=MAX_SESSION_KWH).contains(&kwh)) {
        return Err(format!(
            "{} kWh is not an amount of energy one supply can deliver (0 to {MAX_SESSION_KWH})",
            short(kwh)
        ));
    }
    if !(eur.is_finite() && eur >= 0.0) {
        return Err(format!("{} € is not an amount of money", short(eur)));
    }
    Ok(())
}

/// The id rule as a JSON Schema pattern.
const ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,32}$";

/// Writes the rules above into a topic's generated schema, property by property, so that
/// the published schema says the limits the central checks. Texts are limited only where
/// other parties write them (the central's own answers quote them, and may be longer).
pub(super) fn add_limits(topic: &str, schema: &mut serde_json::Value) {
    use serde_json::Value;
    let texts_limited = topic != "driver.updates";
    fn walk(value: &mut Value, texts_limited: bool) {
        match value {
            Value::Object(object) => {
                let variant = object
                    .get("properties")
                    .and_then(|p| p.get("type"))
                    .and_then(|t| t.get("const"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if let Some(Value::Object(properties)) = object.get_mut("properties") {
                    for (name, property) in properties.iter_mut() {
                        let extra = limits_of(variant.as_deref(), name, texts_limited);
                        if let (Value::Object(property), Some(Value::Object(extra))) =
                            (property, extra)
                        {
                            property.extend(extra);
                        }
                    }
                }
                for child in object.values_mut() {
                    walk(child, texts_limited);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| walk(item, texts_limited)),
            _ => {}
        }
    }
    walk(schema, texts_limited);
}

/// The schema keywords that say the rule of property `name` (of message `variant`).
fn limits_of(variant: Option<&str>, name: &str, texts_limited: bool) -> Option<serde_json::Value> {
    use serde_json::json;
    Some(match name {
        "cp_id" if variant == Some("supply_request") => {
            json!({"pattern": "^([A-Za-z0-9._-]{1,32})?$"})
        }
        "cp_id" | "driver_id" => json!({ "pattern": ID_PATTERN }),
        "id_tag" if variant == Some("tag_presented") => json!({ "pattern": ID_PATTERN }),
        "v" => json!({ "const": super::SCHEMA_VERSION }),
        "kwh" => json!({"minimum": 0, "maximum": MAX_SESSION_KWH}),
        "eur" => json!({"minimum": 0}),
        "price_eur_kwh" => json!({"exclusiveMinimum": 0, "maximum": MAX_PRICE_EUR_KWH}),
        "sealed_password" => {
            json!({ "pattern": format!("^[0-9a-fA-F]{{0,{MAX_SEALED_LEN}}}$") })
        }
        "sealed" => json!({ "pattern": format!("^[0-9a-fA-F]{{0,{MAX_NOTE_LEN}}}$") }),
        "from" if variant == Some("from_central") => json!({ "pattern": ID_PATTERN }),
        "reason" | "detail" | "asked_by" | "from" | "location" if texts_limited => {
            json!({"maxLength": MAX_TEXT_LEN, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$"})
        }
        _ => return None,
    })
}

/// An OCPP payload: a JSON object of bounded size.
fn check_ocpp_payload(payload: &serde_json::Value) -> Result<(), String> {
    if !payload.is_object() {
        return Err("an OCPP payload is a JSON object".into());
    }
    let len = payload.to_string().len();
    if len > super::MAX_OCPP_PAYLOAD {
        return Err(format!(
            "an OCPP payload has at most {} bytes, not {len}",
            super::MAX_OCPP_PAYLOAD
        ));
    }
    Ok(())
}

/// A number as a refusal shows it: huge ones in scientific notation, not 300 digits.
fn short(x: f64) -> String {
    if x.abs() >= 1e6 {
        format!("{x:e}")
    } else {
        x.to_string()
    }
}

impl DriverRequest {
    /// The fields' rules; the driver id is the record's key, checked before.
    pub fn check_rules(&self) -> Result<(), String> {
        match self {
            // An empty CP id, like an absent one, asks for any available CP.
            DriverRequest::SupplyRequest {
                cp_id: Some(cp_id), ..
            } if !cp_id.is_empty() => check_cp_id(cp_id).map_err(|why| format!("cp_id: {why}")),
            DriverRequest::SignIn {
                sealed_password,
                from,
                ..
            } => {
                let hex = sealed_password.bytes().all(|b| b.is_ascii_hexdigit());
                if !hex || sealed_password.len() > MAX_SEALED_LEN {
                    return Err(format!(
                        "sealed_password is not valid: at most {MAX_SEALED_LEN} hex digits"
                    ));
                }
                from.as_deref()
                    .map_or(Ok(()), |from| check_text("from", from))
            }
            _ => Ok(()),
        }
    }
}

/// The longest note one central passes on to another, in hex digits.
pub const MAX_NOTE_LEN: usize = 8192;

impl CpEvent {
    /// The fields' rules; the CP id is the record's key, checked before.
    pub fn check_rules(&self) -> Result<(), String> {
        match self {
            CpEvent::Refused { reason, .. } => check_text("reason", reason),
            CpEvent::SupplyStarted { driver_id, .. } => check_driver_id(driver_id),
            CpEvent::SupplyProgress {
                driver_id,
                kwh,
                eur,
                ..
            } => {
                check_driver_id(driver_id)?;
                check_figures(*kwh, *eur)
            }
            CpEvent::SupplyEnded {
                session_id,
                driver_id,
                started_at,
                ended_at,
                kwh,
                eur,
                ..
            } => {
                check_driver_id(driver_id)?;
                check_figures(*kwh, *eur)?;
                if ended_at < started_at {
                    return Err(format!("session {session_id} ends before it starts"));
                }
                Ok(())
            }
            CpEvent::FromCentral { from, sealed, .. } => {
                check_cp_id(from).map_err(|why| format!("from: {why}"))?;
                let hex = sealed.bytes().all(|b| b.is_ascii_hexdigit());
                if !hex || sealed.len() > MAX_NOTE_LEN {
                    return Err(format!(
                        "sealed is not valid: at most {MAX_NOTE_LEN} hex digits"
                    ));
                }
                Ok(())
            }
            CpEvent::TagPresented { id_tag, .. } => check_driver_id(id_tag),
            CpEvent::Connectors { connectors, .. } => {
                if connectors.len() > super::MAX_CONNECTORS {
                    return Err(format!(
                        "at most {} connectors, not {}",
                        super::MAX_CONNECTORS,
                        connectors.len()
                    ));
                }
                connectors.iter().try_for_each(|c| {
                    check_text("status", &c.status)?;
                    c.detail
                        .as_deref()
                        .map_or(Ok(()), |d| check_text("detail", d))
                })
            }
            CpEvent::OcppAnswer {
                status, payload, ..
            } => {
                check_text("status", status)?;
                check_ocpp_payload(payload)
            }
            CpEvent::Authorised { .. } | CpEvent::EngineHello { .. } => Ok(()),
        }
    }
}

impl CpCommand {
    /// The fields' rules, as an engine checks the central's commands.
    pub fn check_rules(&self) -> Result<(), String> {
        match self {
            CpCommand::Authorise {
                driver_id,
                price_eur_kwh,
                ..
            } => {
                check_driver_id(driver_id)?;
                if !(price_eur_kwh.is_finite()
                    && *price_eur_kwh > 0.0
                    && *price_eur_kwh <= MAX_PRICE_EUR_KWH)
                {
                    return Err(format!(
                        "{} €/kWh is not a tariff (more than 0, at most {MAX_PRICE_EUR_KWH})",
                        short(*price_eur_kwh)
                    ));
                }
                Ok(())
            }
            CpCommand::EngineIdInUse { detail, .. } => check_text("detail", detail),
            CpCommand::Crash { asked_by, .. } => check_text("asked_by", asked_by),
            CpCommand::TagRefused { detail, .. } => check_text("detail", detail),
            CpCommand::OcppRequest {
                action, payload, ..
            } => {
                if !super::OCPP_OPERATOR_ACTIONS.contains(&action.as_str()) {
                    return Err(format!(
                        "{} is not an OCPP action an operator may ask: one of {}",
                        shown(action),
                        super::OCPP_OPERATOR_ACTIONS.join(", ")
                    ));
                }
                check_ocpp_payload(payload)
            }
            CpCommand::CancelReservation { .. }
            | CpCommand::StopSupply { .. }
            | CpCommand::EngineWelcome { .. } => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn keys_keep_the_id_rule() {
        assert!(check_key("CP-001").is_ok());
        for bad in ["", "PX#D28", "D 1", "D\n1", &"x".repeat(1000)] {
            let why = check_key(bad).unwrap_err();
            assert!(why.contains("not a valid id"), "{why}");
        }
    }

    #[test]
    fn texts_are_short_and_printable() {
        assert!(check_text("reason", "busy with another session").is_ok());
        for bad in ["a\nb", "\u{1b}[31mred", &"x".repeat(MAX_TEXT_LEN + 1)] {
            assert!(check_text("reason", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn reports_with_impossible_figures_break_a_rule() {
        let progress = |kwh, eur| CpEvent::SupplyProgress {
            cp_id: "CP1".into(),
            session_id: Uuid::nil(),
            driver_id: "D1".into(),
            kwh,
            eur,
        };
        assert!(progress(1.5, 0.5).check_rules().is_ok());
        for (kwh, eur) in [
            (f64::NAN, 0.0),
            (-1.0, 0.0),
            (1e300, 0.0),
            (1.0, f64::INFINITY),
        ] {
            assert!(progress(kwh, eur).check_rules().is_err(), "{kwh} {eur}");
        }
    }

    #[test]
    fn an_empty_cp_id_asks_for_any_cp_and_a_bad_one_is_refused() {
        let request = |cp_id: &str| DriverRequest::SupplyRequest {
            request_id: Uuid::nil(),
            driver_id: "D1".into(),
            cp_id: Some(cp_id.into()),
        };
        assert!(request("").check_rules().is_ok());
        assert!(request("CP1").check_rules().is_ok());
        assert!(request("PX#D28").check_rules().is_err());
    }
}

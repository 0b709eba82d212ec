//! OCPP-J's RPC framing (OCPP 1.6 JSON, section 4): every WebSocket text message is one
//! array, a CALL `[2, id, action, payload]`, a CALLRESULT `[3, id, payload]` or a CALLERROR
//! `[4, id, code, description, details]`.

use serde_json::{json, Value};

/// The longest unique id a message may carry (the specification's 36 characters).
pub const MAX_UNIQUE_ID: usize = 36;

/// The id a CALLERROR carries when the message it answers had no readable id.
pub const NO_ID: &str = "-1";

/// One message of the RPC framework.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Call {
        id: String,
        action: String,
        payload: Value,
    },
    CallResult {
        id: String,
        payload: Value,
    },
    CallError {
        id: String,
        code: ErrorCode,
        description: String,
    },
}

/// The error codes of OCPP-J 1.6 (section 4.2.3), spelt as the specification spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotImplemented,
    NotSupported,
    InternalError,
    ProtocolError,
    SecurityError,
    FormationViolation,
    PropertyConstraintViolation,
    OccurenceConstraintViolation,
    TypeConstraintViolation,
    GenericError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotImplemented => "NotImplemented",
            ErrorCode::NotSupported => "NotSupported",
            ErrorCode::InternalError => "InternalError",
            ErrorCode::ProtocolError => "ProtocolError",
            ErrorCode::SecurityError => "SecurityError",
            ErrorCode::FormationViolation => "FormationViolation",
            ErrorCode::PropertyConstraintViolation => "PropertyConstraintViolation",
            ErrorCode::OccurenceConstraintViolation => "OccurenceConstraintViolation",
            ErrorCode::TypeConstraintViolation => "TypeConstraintViolation",
            ErrorCode::GenericError => "GenericError",
        }
    }

    fn parse(text: &str) -> ErrorCode {
        [
            ErrorCode::NotImplemented,
            ErrorCode::NotSupported,
            ErrorCode::InternalError,
            ErrorCode::ProtocolError,
            ErrorCode::SecurityError,
            ErrorCode::FormationViolation,
            ErrorCode::PropertyConstraintViolation,
            ErrorCode::OccurenceConstraintViolation,
            ErrorCode::TypeConstraintViolation,
        ]
        .into_iter()
        .find(|code| code.as_str() == text)
        .unwrap_or(ErrorCode::GenericError)
    }
}

/// A message that could not be taken: the CALLERROR that answers it.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The id of the message refused, or [`NO_ID`] when it had none that could be read.
    pub id: String,
    pub code: ErrorCode,
    pub description: String,
}

impl Refusal {
    pub fn new(id: &str, code: ErrorCode, description: impl Into<String>) -> Refusal {
        Refusal {
            id: id.to_owned(),
            code,
            description: description.into(),
        }
    }

    pub fn into_frame(self) -> Frame {
        Frame::CallError {
            id: self.id,
            code: self.code,
            description: self.description,
        }
    }
}

impl Frame {
    /// Reads one text message. A CALLERROR with the reason answers what cannot be read; a
    /// description is cut to 255 characters, so that a hostile message is never echoed whole.
    pub fn parse(text: &str) -> Result<Frame, Refusal> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Refusal::new(
                NO_ID,
                ErrorCode::FormationViolation,
                format!("not JSON: {e}"),
            )
        })?;
        let Value::Array(items) = value else {
            return Err(Refusal::new(
                NO_ID,
                ErrorCode::FormationViolation,
                "a message is a JSON array: [type, id, …]",
            ));
        };
        let id = match items.get(1) {
            Some(Value::String(id)) if !id.is_empty() && id.chars().count() <= MAX_UNIQUE_ID => {
                id.clone()
            }
            _ => {
                return Err(Refusal::new(
                    NO_ID,
                    ErrorCode::FormationViolation,
                    "the second element is the message id: a string of 1 to 36 characters",
                ))
            }
        };
        let refuse = |why: &str| Refusal::new(&id, ErrorCode::FormationViolation, why);
        match items.first().and_then(Value::as_u64) {
            Some(2) => match items.as_slice() {
                [_, _, Value::String(action), payload @ Value::Object(_)] => Ok(Frame::Call {
                    id,
                    action: action.clone(),
                    payload: payload.clone(),
                }),
                _ => Err(refuse(
                    "a CALL is [2, id, action, payload]: an action name and a JSON object",
                )),
            },
            Some(3) => match items.as_slice() {
                [_, _, payload @ Value::Object(_)] => Ok(Frame::CallResult {
                    id,
                    payload: payload.clone(),
                }),
                _ => Err(refuse("a CALLRESULT is [3, id, payload]: a JSON object")),
            },
            Some(4) => match items.as_slice() {
                [_, _, Value::String(code), Value::String(description), Value::Object(_)] => {
                    Ok(Frame::CallError {
                        id,
                        code: ErrorCode::parse(code),
                        description: cut(description),
                    })
                }
                _ => Err(refuse(
                    "a CALLERROR is [4, id, code, description, details]: two strings and an object",
                )),
            },
            _ => Err(refuse(
                "the first element is the message type: 2 (CALL), 3 (CALLRESULT) or 4 (CALLERROR)",
            )),
        }
    }

    /// The message as it goes on the wire.
    pub fn to_text(&self) -> String {
        let value = match self {
            Frame::Call {
                id,
                action,
                payload,
            } => json!([2, id, action, payload]),
            Frame::CallResult { id, payload } => json!([3, id, payload]),
            Frame::CallError {
                id,
                code,
                description,
            } => json!([4, id, code.as_str(), cut(description), {}]),
        };
        value.to_string()
    }
}

/// The OCPP error a payload that does not deserialise deserves, from serde's own words.
pub fn payload_refusal(id: &str, action: &str, error: &serde_json::Error) -> Refusal {
    let text = error.to_string();
    let code = if text.starts_with("missing field") {
        ErrorCode::OccurenceConstraintViolation
    } else if text.starts_with("invalid type") {
        ErrorCode::TypeConstraintViolation
    } else if text.starts_with("unknown variant")
        || text.starts_with("invalid value")
        || text.starts_with("premature end")
        || text.contains("input contains invalid characters")
    {
        ErrorCode::PropertyConstraintViolation
    } else {
        ErrorCode::FormationViolation
    };
    Refusal::new(id, code, format!("{action}: {text}"))
}

/// A description kept within the 255 characters OCPP gives it.
fn cut(text: &str) -> String {
    match text.char_indices().nth(255) {
        Some((at, _)) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> Refusal {
        Frame::parse(text).expect_err("refused")
    }

    #[test]
    fn the_three_messages_read_and_write_back() {
        let call = r#"[2,"19223201","BootNotification",{"chargePointVendor":"VendorX","chargePointModel":"SingleSocketCharger"}]"#;
        let frame = Frame::parse(call).unwrap();
        assert!(
            matches!(&frame, Frame::Call { id, action, .. } if id == "19223201" && action == "BootNotification")
        );
        assert_eq!(Frame::parse(&frame.to_text()).unwrap(), frame);
        let result = Frame::parse(r#"[3,"19223201",{"status":"Accepted"}]"#).unwrap();
        assert_eq!(
            result,
            Frame::CallResult {
                id: "19223201".into(),
                payload: json!({"status": "Accepted"})
            }
        );
        let error = Frame::parse(r#"[4,"7","NotSupported","no",{}]"#).unwrap();
        assert_eq!(
            error,
            Frame::CallError {
                id: "7".into(),
                code: ErrorCode::NotSupported,
                description: "no".into()
            }
        );
        assert_eq!(error.to_text(), r#"[4,"7","NotSupported","no",{}]"#);
    }

    #[test]
    fn what_cannot_be_read_is_a_formation_violation_with_the_id_when_there_is_one() {
        for text in ["hello", "{}", "[]", "[2]", "[2, 5, \"Heartbeat\", {}]"] {
            let refusal = refused(text);
            assert_eq!(refusal.code, ErrorCode::FormationViolation, "{text}");
            assert_eq!(refusal.id, NO_ID, "{text}");
        }
        let long = format!("[2,\"{}\",\"Heartbeat\",{{}}]", "x".repeat(37));
        assert_eq!(refused(&long).id, NO_ID);
        for text in [
            r#"[2,"a","Heartbeat"]"#,
            r#"[2,"a","Heartbeat",[]]"#,
            r#"[9,"a","Heartbeat",{}]"#,
            r#"[3,"a"]"#,
            r#"[4,"a","GenericError"]"#,
        ] {
            let refusal = refused(text);
            assert_eq!(refusal.code, ErrorCode::FormationViolation, "{text}");
            assert_eq!(refusal.id, "a", "{text}");
        }
    }

    #[test]
    fn a_payload_is_refused_with_the_code_its_fault_deserves() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        #[allow(dead_code)]
        struct Start {
            connector_id: u32,
            status: Kind,
        }
        #[derive(Debug, serde::Deserialize)]
        enum Kind {
            Available,
        }
        let code = |payload: Value| {
            let error = serde_json::from_value::<Start>(payload).unwrap_err();
            payload_refusal("1", "StatusNotification", &error).code
        };
        assert_eq!(
            code(json!({"status": "Available"})),
            ErrorCode::OccurenceConstraintViolation
        );
        assert_eq!(
            code(json!({"connectorId": "one", "status": "Available"})),
            ErrorCode::TypeConstraintViolation
        );
        assert_eq!(
            code(json!({"connectorId": 1, "status": "Sleeping"})),
            ErrorCode::PropertyConstraintViolation
        );
    }

    #[test]
    fn a_description_is_cut_to_255_characters() {
        let text = format!(r#"[4,"a","GenericError","{}",{{}}]"#, "é".repeat(400));
        let Frame::CallError { description, .. } = Frame::parse(&text).unwrap() else {
            panic!("a CALLERROR")
        };
        assert_eq!(description.chars().count(), 255);
    }
}

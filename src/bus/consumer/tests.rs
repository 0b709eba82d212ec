//! The record parser against any bytes, damaged messages and forged keys.

use super::*;
use crate::messages::{CpEvent, DriverRequest, Outcome};
use chrono::{DateTime, Utc};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;
use rdkafka::message::Timestamp;
use serde::Serialize;
use std::fmt::Debug;
use uuid::Uuid;

#[test]
fn a_set_aside_password_is_redacted_and_other_payloads_kept() {
    let text = redacted_payload(br#"{"type":"sign_in","v":9,"password":"hunter2"}"#);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains(r#""v":9"#), "{text}");
    assert_eq!(redacted_payload(b"hello"), "hello");
    let untouched = r#"{"v":1, "type":"hello"}"#;
    assert_eq!(redacted_payload(untouched.as_bytes()), untouched);
}

/// The reason `parse_record` gives for a record of another schema version.
fn version_reason(v: u32) -> String {
    format!("message version {v} is not supported (this build reads version {SCHEMA_VERSION})")
}

/// The reason `parse_record` gives for a record keyed to another entity.
fn key_reason(key: &str, entity: &str) -> String {
    format!("record key {key:?} does not match the entity {entity:?} the message concerns")
}

/// Whether `reason` is one of the reasons a record is set aside for before any handler
/// sees it, and says something.
fn is_documented_reason(reason: &str) -> bool {
    reason == "record has no key"
        || reason == "record key is not UTF-8"
        || reason == "record has no value"
        || reason
            .strip_prefix("not a valid message: ")
            .is_some_and(|error| !error.is_empty())
        || (reason.starts_with("message version ")
            && reason.ends_with(&format!(
                " is not supported (this build reads version {SCHEMA_VERSION})"
            )))
        || (reason.starts_with("record key \"")
            && reason.contains("\" does not match the entity \"")
            && reason.ends_with("\" the message concerns"))
        || reason.starts_with("record key is not a valid id: an id has 1 to 32 letters")
        // A field's own rule, named with the field or the id it concerns.
        || reason.contains(" is not valid: ")
        || reason.starts_with("cp_id: a CP id has ")
        || reason.starts_with("a driver id has ")
        || reason.ends_with(" is not a tariff (more than 0, at most 10)")
}

/// Parses as a consumer of `T` does and checks what any outcome must satisfy: a parsed
/// record has this build's version and is keyed to its entity; a refused one says why.
fn parse_checked<T>(
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
) -> Result<Result<(String, Envelope<T>), String>, TestCaseError>
where
    T: DeserializeOwned + Keyed,
{
    let parsed = parse_record::<T>(key, payload);
    match &parsed {
        Ok((parsed_key, envelope)) => {
            prop_assert_eq!(Some(parsed_key.as_bytes()), key);
            prop_assert_eq!(envelope.v, SCHEMA_VERSION);
            prop_assert_eq!(envelope.body.key(), parsed_key.as_str());
        }
        Err(reason) => prop_assert!(is_documented_reason(reason), "reason {:?}", reason),
    }
    Ok(parsed)
}

fn record(key: Option<&[u8]>, payload: Option<&[u8]>) -> OwnedMessage {
    OwnedMessage::new(
        payload.map(<[u8]>::to_vec),
        key.map(<[u8]>::to_vec),
        "evcharge.driver.requests".into(),
        Timestamp::NotAvailable,
        3,
        41,
        None,
    )
}

/// An id as the network names CPs and drivers: any that keeps the id rule.
fn id_text() -> impl Strategy<Value = String> {
    prop_oneof!["[A-Z]{1,3}[0-9]{1,4}", "[A-Za-z0-9._-]{1,32}"]
}

fn uuid() -> impl Strategy<Value = Uuid> {
    any::<u128>().prop_map(Uuid::from_u128)
}

/// Any instant from 1970 to 2100, to the nanosecond.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_102_444_800, 0u32..1_000_000_000)
        .prop_map(|(secs, nanos)| DateTime::from_timestamp(secs, nanos).unwrap())
}

/// Energy to the watt-hour, as engines send it.
fn kwh() -> impl Strategy<Value = f64> {
    (0u32..100_000_000).prop_map(|wh| f64::from(wh) / 1000.0)
}

/// Money to the cent.
fn eur() -> impl Strategy<Value = f64> {
    (0u32..100_000_000).prop_map(|cents| f64::from(cents) / 100.0)
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Completed),
        Just(Outcome::StoppedByDriver),
        Just(Outcome::StoppedByOperator),
        Just(Outcome::Expired),
        Just(Outcome::EngineFailure),
        Just(Outcome::MonitorLost),
        Just(Outcome::Refused),
    ]
}

/// Any message of `cp.events`.
fn cp_event() -> impl Strategy<Value = CpEvent> {
    let id = id_text;
    prop_oneof![
        (id(), uuid()).prop_map(|(cp_id, session_id)| CpEvent::Authorised { cp_id, session_id }),
        (id(), uuid(), id()).prop_map(|(cp_id, session_id, reason)| CpEvent::Refused {
            cp_id,
            session_id,
            reason
        }),
        (id(), uuid(), id(), instant()).prop_map(|(cp_id, session_id, driver_id, started_at)| {
            CpEvent::SupplyStarted {
                cp_id,
                session_id,
                driver_id,
                started_at,
            }
        }),
        (id(), uuid(), id(), kwh(), eur()).prop_map(|(cp_id, session_id, driver_id, kwh, eur)| {
            CpEvent::SupplyProgress {
                cp_id,
                session_id,
                driver_id,
                kwh,
                eur,
            }
        }),
        (
            id(),
            uuid(),
            id(),
            instant(),
            instant(),
            kwh(),
            eur(),
            outcome()
        )
            .prop_map(
                |(cp_id, session_id, driver_id, started_at, ended_at, kwh, eur, outcome)| {
                    CpEvent::SupplyEnded {
                        cp_id,
                        session_id,
                        driver_id,
                        started_at,
                        ended_at,
                        kwh,
                        eur,
                        outcome,
                    }
                }
            ),
        (id(), uuid(), any::<bool>(), any::<bool>()).prop_map(
            |(cp_id, instance, probe, taking_commands)| CpEvent::EngineHello {
                cp_id,
                instance,
                probe,
                taking_commands,
            }
        ),
    ]
}

/// A sign-in, with its password (which begins with `pw#`, so that it could show nowhere
/// else in the record), sealed as a driver seals it.
fn sign_in() -> impl Strategy<Value = (DriverRequest, String)> {
    (
        uuid(),
        "[A-Z0-9]{1,8}",
        "pw#[a-zA-Z0-9 .,:;!?@$%&*+=_~-]{0,16}",
    )
        .prop_map(|(request_id, driver_id, password)| {
            let key = crate::proof::BusKey::derive("evcdrv_test");
            let request = DriverRequest::SignIn {
                request_id,
                sealed_password: key.seal(&request_id.to_string(), &password),
                driver_id,
                from: None,
            };
            (request, password)
        })
}

/// Any message of `driver.requests`.
fn driver_request() -> impl Strategy<Value = DriverRequest> {
    let id = id_text;
    prop_oneof![
        (uuid(), id(), option::of(id())).prop_map(|(request_id, driver_id, cp_id)| {
            DriverRequest::SupplyRequest {
                request_id,
                driver_id,
                cp_id,
            }
        }),
        id().prop_map(|driver_id| DriverRequest::StopSupply { driver_id }),
        id().prop_map(|driver_id| DriverRequest::ListAvailable { driver_id }),
        (id(), uuid(), any::<bool>()).prop_map(|(driver_id, instance, probe)| {
            DriverRequest::Hello {
                driver_id,
                instance,
                probe,
            }
        }),
        (uuid(), id(), id(), option::of("[0-9.]{7,15}")).prop_map(
            |(request_id, driver_id, sealed_password, from)| DriverRequest::SignIn {
                request_id,
                driver_id,
                sealed_password,
                from,
            }
        ),
        (uuid(), id()).prop_map(|(request_id, driver_id)| DriverRequest::History {
            request_id,
            driver_id
        }),
    ]
}

/// `body` in an envelope of this build's version.
fn envelope<T: Debug>(body: impl Strategy<Value = T>) -> impl Strategy<Value = Envelope<T>> {
    (uuid(), instant(), body).prop_map(|(id, ts, body)| Envelope {
        id,
        v: SCHEMA_VERSION,
        ts,
        body,
    })
}

/// Bytes of any kind, or text made of what JSON is made of (which gets further into the
/// parser).
fn payload_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..512),
        r#"[{}\[\]":,. 0-9a-z_-]{0,128}"#.prop_map(String::into_bytes),
    ]
}

/// Checks that `envelope`, damaged at one byte and perhaps cut, parses as a message of
/// the same kind or is refused with a documented reason.
fn check_damaged<T>(
    envelope: &Envelope<T>,
    at: Index,
    byte: u8,
    cut: Option<Index>,
) -> Result<(), TestCaseError>
where
    T: Serialize + DeserializeOwned + Keyed,
{
    let mut damaged = serde_json::to_vec(envelope).unwrap();
    let i = at.index(damaged.len());
    damaged[i] = byte;
    if let Some(cut) = cut {
        damaged.truncate(cut.index(damaged.len()));
    }
    let key = envelope.body.key().as_bytes();
    if let Ok((_, parsed)) = parse_checked::<T>(Some(key), Some(&damaged))? {
        prop_assert_eq!(
            std::mem::discriminant(&parsed.body),
            std::mem::discriminant(&envelope.body)
        );
    }
    Ok(())
}

proptest! {
    /// No key and value, whatever their bytes, make the parser panic; what it refuses
    /// it refuses with one of its reasons, and what it accepts is keyed to its entity.
    #[test]
    fn any_record_parses_or_is_refused_with_a_documented_reason(
        key in option::of(vec(any::<u8>(), 0..16)),
        payload in option::of(payload_bytes()),
    ) {
        let _ = parse_checked::<CpEvent>(key.as_deref(), payload.as_deref())?;
        let _ = parse_checked::<DriverRequest>(key.as_deref(), payload.as_deref())?;
    }

    /// A valid message damaged at one byte, and perhaps cut short, parses as a message of
    /// the same kind (for the same entity) or is refused with a documented reason.
    #[test]
    fn a_damaged_message_parses_as_the_same_kind_or_is_refused(
        event in envelope(cp_event()),
        request in envelope(driver_request()),
        at in any::<Index>(),
        byte in prop_oneof![any::<u8>(), b' '..=b'~'],
        cut in option::of(any::<Index>()),
    ) {
        check_damaged(&event, at, byte, cut)?;
        check_damaged(&request, at, byte, cut)?;
    }

    /// A valid message keyed to its entity parses back to itself, key included.
    #[test]
    fn a_valid_record_parses_back_to_itself(
        event in envelope(cp_event()),
        request in envelope(driver_request()),
    ) {
        let key = event.body.key().to_owned();
        let json = serde_json::to_vec(&event).unwrap();
        prop_assert_eq!(
            parse_record::<CpEvent>(Some(key.as_bytes()), Some(&json)),
            Ok((key, event))
        );
        let key = request.body.key().to_owned();
        let json = serde_json::to_vec(&request).unwrap();
        prop_assert_eq!(
            parse_record::<DriverRequest>(Some(key.as_bytes()), Some(&json)),
            Ok((key, request))
        );
    }

    /// A valid message under the key of another entity is refused with the key reason.
    #[test]
    fn a_record_keyed_to_another_entity_is_refused_with_the_key_reason(
        event in envelope(cp_event()),
        key in any::<String>(),
    ) {
        prop_assume!(key != event.body.key());
        let json = serde_json::to_vec(&event).unwrap();
        prop_assert_eq!(
            parse_record::<CpEvent>(Some(key.as_bytes()), Some(&json)),
            Err(key_reason(&key, event.body.key()))
        );
    }

    /// A message about an entity whose id breaks the id rule is refused for it, even keyed
    /// to that entity.
    #[test]
    fn a_record_about_an_id_breaking_the_rule_is_refused_for_it(
        request in envelope(driver_request()),
        bad in prop_oneof!["", ".{33,40}", ".*[^A-Za-z0-9._-].*"],
    ) {
        prop_assume!(crate::domain::registration::check_driver_id(&bad).is_err());
        let mut json = serde_json::to_value(&request).unwrap();
        json["driver_id"] = bad.as_str().into();
        let reason = parse_record::<DriverRequest>(Some(bad.as_bytes()), Some(json.to_string().as_bytes()))
            .unwrap_err();
        prop_assert!(reason.starts_with("record key is not a valid id: "), "{}", reason);
    }

    /// A message of another schema version is refused with the version reason, before
    /// its key is looked at.
    #[test]
    fn a_message_of_another_version_is_refused_with_the_version_reason(
        mut event in envelope(cp_event()),
        v in any::<u32>(),
        key in option::of(any::<String>()),
    ) {
        prop_assume!(v != SCHEMA_VERSION);
        event.v = v;
        let key = key.unwrap_or_else(|| event.body.key().to_owned());
        let json = serde_json::to_vec(&event).unwrap();
        prop_assert_eq!(
            parse_record::<CpEvent>(Some(key.as_bytes()), Some(&json)),
            Err(version_reason(v))
        );
    }

    /// A message without its type tag, with a tag its topic does not carry, or of another
    /// topic, is refused as not a valid message.
    #[test]
    fn a_message_without_a_known_type_tag_is_refused_as_not_valid(
        event in envelope(cp_event()),
        request in envelope(driver_request()),
        tag in option::of("[a-z_]{0,16}"),
    ) {
        const CP_EVENT_TAGS: [&str; 6] = [
            "authorised", "refused", "supply_started", "supply_progress", "supply_ended",
            "engine_hello",
        ];
        let key = event.body.key().as_bytes();
        let mut json = serde_json::to_value(&event).unwrap();
        match &tag {
            None => {
                json.as_object_mut().unwrap().remove("type");
            }
            Some(tag) => {
                prop_assume!(!CP_EVENT_TAGS.contains(&tag.as_str()));
                json["type"] = tag.as_str().into();
            }
        }
        let reason = parse_record::<CpEvent>(Some(key), Some(json.to_string().as_bytes()))
            .unwrap_err();
        prop_assert!(reason.starts_with("not a valid message: "), "{}", reason);
        if tag.is_none() {
            prop_assert!(reason.contains("missing field `type`"), "{}", reason);
        }
        // Each topic's consumer refuses the other's messages.
        let reason = parse_record::<CpEvent>(
            Some(request.body.key().as_bytes()),
            Some(&serde_json::to_vec(&request).unwrap()),
        )
        .unwrap_err();
        prop_assert!(reason.starts_with("not a valid message: "), "{}", reason);
        let reason = parse_record::<DriverRequest>(
            Some(key),
            Some(&serde_json::to_vec(&event).unwrap()),
        )
        .unwrap_err();
        prop_assert!(reason.starts_with("not a valid message: "), "{}", reason);
    }

    /// A record without a key is refused for that whatever its value; one with a key
    /// that is not UTF-8 for that; one with a key and no value for that.
    #[test]
    fn a_record_without_a_readable_key_or_a_value_is_refused_for_it(
        payload in option::of(payload_bytes()),
        key in vec(any::<u8>(), 0..16),
        at in any::<Index>(),
    ) {
        prop_assert_eq!(
            parse_record::<CpEvent>(None, payload.as_deref()),
            Err("record has no key".to_string())
        );
        // 0xFF never appears in UTF-8.
        let mut broken = key.clone();
        broken.insert(at.index(key.len() + 1), 0xFF);
        prop_assert_eq!(
            parse_record::<CpEvent>(Some(&broken), payload.as_deref()),
            Err("record key is not UTF-8".to_string())
        );
        if let Ok(key) = std::str::from_utf8(&key) {
            prop_assert_eq!(
                parse_record::<CpEvent>(Some(key.as_bytes()), None),
                Err("record has no value".to_string())
            );
        }
    }

    /// A sign-in set aside (another version, or keyed to another driver) reaches the
    /// dead-letter topic with the parser's reason, its key and place, and its value
    /// intact: its password is sealed, and shows nowhere in the letter.
    #[test]
    fn a_set_aside_sign_in_reaches_the_dead_letter_topic_without_its_password(
        (body, password) in sign_in(),
        id in uuid(),
        ts in instant(),
        v in any::<u32>(),
        other_driver in option::of("[A-Z0-9]{1,8}"),
    ) {
        let request = Envelope { id, v, ts, body };
        let driver_id = request.body.key().to_owned();
        let key = other_driver.unwrap_or_else(|| driver_id.clone());
        prop_assume!(v != SCHEMA_VERSION || key != driver_id);
        let json = serde_json::to_vec(&request).unwrap();
        let reason = parse_record::<DriverRequest>(Some(key.as_bytes()), Some(&json))
            .unwrap_err();
        prop_assert!(is_documented_reason(&reason), "{}", reason);

        let letter = dead_letter(&record(Some(key.as_bytes()), Some(&json)), reason.clone());
        prop_assert_eq!(&letter.reason, &reason);
        prop_assert_eq!(letter.key.as_deref(), Some(key.as_str()));
        prop_assert_eq!(
            (letter.topic.as_str(), letter.partition, letter.offset),
            ("evcharge.driver.requests", 3, 41)
        );
        let expected: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let kept: serde_json::Value = serde_json::from_str(&letter.payload).unwrap();
        prop_assert_eq!(kept, expected);
        let written = serde_json::to_string(&letter).unwrap();
        prop_assert!(!written.contains(&password), "{}", written);
    }
}

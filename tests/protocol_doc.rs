//! docs/PROTOCOL.md stays true: every example in it is a message this build reads, every
//! message type is shown, and the frame example is byte-exact.

use evcharge::link::frame::{FrameCodec, Packet};
use evcharge::messages::gateway::TransactionStarted;
use evcharge::messages::{CpCommand, CpEvent, DeadLetter, DriverRequest, DriverUpdate, Envelope};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::Encoder;

fn protocol_doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PROTOCOL.md")).unwrap()
}

fn json_examples(doc: &str) -> Vec<serde_json::Value> {
    doc.split("```json")
        .skip(1)
        .map(|block| {
            let text = &block[..block.find("```").expect("closed block")];
            serde_json::from_str(text).unwrap_or_else(|e| panic!("bad JSON example {text}: {e}"))
        })
        .collect()
}

/// Which topics' schema the example fits.
fn fits(example: &serde_json::Value) -> Vec<&'static str> {
    let mut topics = Vec::new();
    let v = example.clone();
    if serde_json::from_value::<Envelope<DriverRequest>>(v.clone()).is_ok() {
        topics.push("driver.requests");
    }
    if serde_json::from_value::<Envelope<DriverUpdate>>(v.clone()).is_ok() {
        topics.push("driver.updates");
    }
    if serde_json::from_value::<Envelope<CpCommand>>(v.clone()).is_ok() {
        topics.push("cp.commands");
    }
    if serde_json::from_value::<Envelope<CpEvent>>(v.clone()).is_ok() {
        topics.push("cp.events");
    }
    if serde_json::from_value::<Envelope<DeadLetter>>(v.clone()).is_ok() {
        topics.push("deadletter");
    }
    if serde_json::from_value::<Envelope<TransactionStarted>>(v).is_ok() {
        topics.push("ocpp.transactions");
    }
    topics
}

#[test]
fn every_example_is_a_valid_message() {
    let examples = json_examples(&protocol_doc());
    assert!(examples.len() >= 20);
    for example in &examples {
        assert!(
            !fits(example).is_empty(),
            "no topic reads this example: {example}"
        );
        assert_eq!(example["v"], 1);
    }
}

#[test]
fn every_message_type_is_shown() {
    let examples = json_examples(&protocol_doc());
    let shown: Vec<(String, Vec<&str>)> = examples
        .iter()
        .map(|e| (e["type"].as_str().unwrap().to_owned(), fits(e)))
        .collect();
    let expected = [
        (
            "driver.requests",
            &[
                "supply_request",
                "stop_supply",
                "list_available",
                "hello",
                "sign_in",
                "history",
            ][..],
        ),
        (
            "driver.updates",
            &[
                "reserved",
                "denied",
                "authorised",
                "started",
                "progress",
                "interrupted",
                "ticket",
                "available",
                "welcome",
                "id_in_use",
                "signed_in",
                "history",
            ],
        ),
        (
            "cp.commands",
            &[
                "authorise",
                "cancel_reservation",
                "stop_supply",
                "engine_welcome",
                "engine_id_in_use",
                "tag_refused",
                "ocpp_request",
                "crash",
            ],
        ),
        (
            "cp.events",
            &[
                "authorised",
                "refused",
                "supply_started",
                "supply_progress",
                "supply_ended",
                "engine_hello",
                "tag_presented",
                "ocpp_answer",
                "connectors",
            ],
        ),
        ("deadletter", &["dead_letter"]),
        ("ocpp.transactions", &["transaction_started"]),
    ];
    for (topic, types) in expected {
        for kind in types {
            assert!(
                shown
                    .iter()
                    .any(|(t, topics)| t == kind && topics.contains(&topic)),
                "no example of {kind} on {topic}"
            );
        }
    }
}

#[test]
fn the_frame_example_is_byte_exact() {
    let mut bytes = BytesMut::new();
    FrameCodec::default()
        .encode(Packet::frame(["AUTH", "CP001", "evccp_1f2e"]), &mut bytes)
        .unwrap();
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert!(protocol_doc().contains(&hex.join(" ")), "{}", hex.join(" "));
}

/// The proof's worked example is what this build computes, so that an implementation
/// checked against the document agrees with the central.
#[test]
fn the_proof_of_origin_example_is_what_the_central_computes() {
    let doc = protocol_doc();
    let key = evcharge::proof::BusKey::derive("evccp_example");
    let proof = key.prove("cp.events", "CP001", br#"{"a":1}"#);
    assert!(
        doc.contains(&format!(
            "the secret `evccp_example` has the bus\nkey `{}`",
            key.to_hex()
        )),
        "the bus key of the example is not {}",
        key.to_hex()
    );
    assert!(
        doc.contains(&format!("proof `{proof}`")),
        "the example's proof is not {proof}"
    );
    assert!(doc.contains("`evcharge-proof`"));
}

/// The folder of the published schemas, one file per topic.
fn schema_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schemas")
}

/// `docs/schemas/<topic>.json` is the schema this build generates from its types, so that
/// the published contract cannot drift from the code. `UPDATE_SCHEMAS=1` writes them anew.
#[test]
fn the_published_schemas_are_the_codes() {
    let dir = schema_dir();
    for (topic, schema) in evcharge::messages::schemas() {
        let path = dir.join(format!("{topic}.json"));
        let generated = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        if std::env::var_os("UPDATE_SCHEMAS").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &generated).unwrap();
        }
        let published = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SCHEMAS=1 writes it)", path.display()));
        assert!(
            published == generated,
            "{} differs from the code's schema (UPDATE_SCHEMAS=1 cargo test --test protocol_doc rewrites it)",
            path.display()
        );
    }
}

/// Every example of the document validates against the published schema of the topic it
/// belongs to, and a record of another type or missing a required field does not.
#[test]
fn every_example_validates_against_its_topics_schema() {
    let validators: Vec<(&str, jsonschema::Validator)> = evcharge::messages::schemas()
        .into_iter()
        .map(|(topic, schema)| (topic, jsonschema::validator_for(&schema).unwrap()))
        .collect();
    let valid_for = |example: &serde_json::Value| -> Vec<&str> {
        validators
            .iter()
            .filter(|(_, v)| v.is_valid(example))
            .map(|(topic, _)| *topic)
            .collect()
    };
    for example in json_examples(&protocol_doc()) {
        let by_schema = valid_for(&example);
        let by_code = fits(&example);
        assert!(!by_schema.is_empty(), "no schema validates {example}");
        for topic in &by_code {
            assert!(
                by_schema.contains(topic),
                "{topic} reads {example}, but its schema refuses it"
            );
        }
    }
    let request = serde_json::json!({
        "type": "stop_supply", "v": 1, "id": "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
        "ts": "2026-11-23T20:44:03.000Z", "driver_id": "D1",
    });
    assert!(valid_for(&request).contains(&"driver.requests"));
    let mut missing = request.clone();
    missing.as_object_mut().unwrap().remove("driver_id");
    assert!(!valid_for(&missing).contains(&"driver.requests"));
    let mut unknown = request;
    unknown["type"] = "warp_drive".into();
    assert!(valid_for(&unknown).is_empty(), "{unknown}");
}

/// Every field a published schema names is in the document's table of fields (§ Fields),
/// with its type and limits: a field added to the code and not described fails here.
#[test]
fn every_field_of_every_schema_is_described() {
    fn names(value: &serde_json::Value, into: &mut std::collections::BTreeSet<String>) {
        match value {
            serde_json::Value::Object(object) => {
                if let Some(serde_json::Value::Object(properties)) = object.get("properties") {
                    into.extend(properties.keys().cloned());
                }
                object.values().for_each(|v| names(v, into));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| names(v, into)),
            _ => {}
        }
    }
    let doc = protocol_doc();
    let table = doc
        .split("### Fields")
        .nth(1)
        .and_then(|rest| rest.split("\n### ").next())
        .expect("a Fields section");
    let envelope = ["type", "v", "id", "ts"];
    let mut fields = std::collections::BTreeSet::new();
    for (_, schema) in evcharge::messages::schemas() {
        names(&schema, &mut fields);
    }
    let missing: Vec<&String> = fields
        .iter()
        .filter(|f| !envelope.contains(&f.as_str()))
        .filter(|f| !table.contains(&format!("`{f}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "fields not described under § Fields: {missing:?}"
    );
}

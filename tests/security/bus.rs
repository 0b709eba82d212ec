//! Records written to the bus by someone who is not the CP: a billing amendment of a closed
//! session with figures no supply can have, or for a session of another CP, is set aside on
//! the dead-letter topic with its reason, written to the audit log, and changes nothing that
//! was billed.
//!
//! (Proof of origin on every record — signatures — is not built yet: see docs/SECURITY.md.)

use super::support::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use std::time::Duration;

fn supply_ended(cp: &str, session: &Value, kwh: f64, eur: f64) -> String {
    json!({
        "type": "supply_ended", "v": 1, "id": uuid::Uuid::new_v4(), "ts": chrono::Utc::now(),
        "cp_id": cp, "session_id": session["id"], "driver_id": session["driver_id"],
        "started_at": session["started_at"], "ended_at": session["ended_at"],
        "kwh": kwh, "eur": eur, "outcome": "completed",
    })
    .to_string()
}

#[test]
fn forged_billing_amendments_are_set_aside_and_change_nothing() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.start_cp("CP001", 0.30, &[]);
    net.start_cp("CP002", 0.30, &[]);
    net.wait_state("CP001", "available");
    net.wait_state("CP002", "available");
    let mut driver = net.start_driver("D1", &["--cp", "CP001"]);
    assert_eq!(driver.wait_exit(DEADLINE), 0);
    let billed = net.sessions()[0].clone();
    assert_eq!(billed["outcome"], "completed");

    let forged = [
        ("CP001", supply_ended("CP001", &billed, 99_999.5, 29_999.85)),
        ("CP001", supply_ended("CP001", &billed, -5.0, -1.5)),
        ("CP001", supply_ended("CP001", &billed, 1e308, 3e307)),
        ("CP001", supply_ended("CP001", &billed, 0.0, 0.0)),
        ("CP002", supply_ended("CP002", &billed, 1.0, 0.3)),
    ];
    net.publish_raw("cp.events", &forged);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &net.broker.bootstrap)
        .set("group.id", "test-forged-amendments")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["evcharge.deadletter"]).unwrap();
    let mut reasons: Vec<String> = Vec::new();
    wait_for("five dead letters", DEADLINE, || {
        while let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let letter: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            reasons.push(letter["reason"].as_str().unwrap_or_default().to_owned());
        }
        (reasons.len() >= 5).then_some(())
    });
    for expected in [
        "99999.5 kWh is not an amount of energy",
        "1e308 kWh is not an amount of energy",
        "-5 kWh is not an amount of energy",
        "would bill less",
        "not CP002's",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "no reason says {expected:?}: {reasons:#?}"
        );
    }
    // Every refusal is in the audit log, named for the CP whose engine it claims to be.
    let audited = wait_for("five refused amendments audited", DEADLINE, || {
        let refused: Vec<Value> = net
            .audit()
            .into_iter()
            .filter(|e| {
                e["what"]
                    .as_str()
                    .unwrap_or("")
                    .contains("refused an amendment")
            })
            .collect();
        (refused.len() >= 5).then_some(refused)
    });
    for (who, expected) in [
        ("CP001's engine", "99999.5 kWh is not an amount of energy"),
        ("CP001's engine", "1e308 kWh is not an amount of energy"),
        ("CP001's engine", "would bill less"),
        ("CP002's engine", "not CP002's"),
    ] {
        assert!(
            audited.iter().any(|e| e["who"] == who
                && e["from"] == "the bus (cp.events)"
                && e["what"].as_str().unwrap().contains(expected)),
            "no audit line of {who} says {expected:?}: {audited:#?}"
        );
    }
    // What was billed stands, and the history still answers.
    let after = net.sessions();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["kwh"], billed["kwh"]);
    assert_eq!(after[0]["eur"], billed["eur"]);
    // The network goes on serving.
    let mut driver = net.start_driver("D2", &["--cp", "CP002"]);
    assert_eq!(driver.wait_exit(DEADLINE), 0);
    assert_eq!(net.sessions().len(), 2);

    // History comes a page at a time, however long it grows.
    let page = |query: &str| {
        let answer = ureq::get(&net.url(&format!("/api/sessions?{query}")))
            .set("Authorization", &net.bearer())
            .call();
        match answer {
            Ok(r) | Err(ureq::Error::Status(_, r)) => (
                r.status(),
                r.header("x-next-page").map(str::to_owned),
                r.into_json::<Value>().unwrap(),
            ),
            Err(e) => panic!("{e}"),
        }
    };
    let (status, next, first) = page("limit=1");
    assert_eq!(status, 200);
    assert_eq!(first.as_array().unwrap().len(), 1);
    assert_eq!(first[0]["id"], billed["id"]);
    let (_, _, second) = page(&next.expect("a next page"));
    assert_eq!(second.as_array().unwrap().len(), 1);
    assert_ne!(second[0]["id"], billed["id"]);
    let (status, _, refused) = page("after=not-an-id");
    assert_eq!(status, 400);
    assert!(refused["error"].as_str().unwrap().contains("invalid query"));
}

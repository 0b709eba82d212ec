//! A CP's own engine breaking the protocol's rules, with records proven by its own key:
//! energy going back, reports of a session that is not open, texts and ids no party may
//! send. Each is set aside with the rule it broke, and the supply goes on untouched.

use super::support::records::{dead_letter_reasons, key_of, Proof, RawProducer};
use super::support::*;
use serde_json::{json, Value};

fn event(body: Value) -> String {
    let mut record = json!({
        "v": 1, "id": uuid::Uuid::new_v4(), "ts": chrono::Utc::now(), "cp_id": "CP001",
    });
    record
        .as_object_mut()
        .unwrap()
        .extend(body.as_object().unwrap().clone());
    record.to_string()
}

#[test]
fn reports_breaking_the_rules_are_set_aside_and_the_supply_goes_on() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.start_cp("CP001", 0.30, &["--supply-duration", "0s"]);
    net.wait_state("CP001", "available");
    let mut driver = net.start_driver("D1", &["--interactive"]);
    driver.type_line("request CP001");
    let charging = wait_for("energy at CP001", DEADLINE, || {
        net.cp("CP001")
            .filter(|c| c["state"] == "charging" && c["kwh"].as_f64().unwrap_or(0.0) > 0.0)
    });
    let session = charging["session_id"].clone();
    let kwh = charging["kwh"].as_f64().unwrap();

    let cp1 = key_of(&net.cp_secret("CP001"));
    let bus = RawProducer::new(&net.broker.bootstrap);
    let broken = [
        // Energy never goes down within a session.
        json!({"type": "supply_progress", "session_id": session, "driver_id": "D1",
               "kwh": 0.0, "eur": 0.0}),
        // A session that is not open at CP001.
        json!({"type": "supply_progress", "session_id": uuid::Uuid::new_v4(),
               "driver_id": "D1", "kwh": kwh + 1.0, "eur": 0.0}),
        // Texts that would rewrite a log line or a console cell.
        json!({"type": "refused", "session_id": session,
               "reason": "\u{1b}[31mred\nsecond line"}),
        // An id breaking the id rule.
        json!({"type": "supply_started", "session_id": session, "driver_id": "PX#D28",
               "started_at": chrono::Utc::now()}),
    ];
    let count = broken.len();
    for body in broken {
        bus.send("cp.events", Some("CP001"), &event(body), Proof::Key(&cp1));
    }
    // And a record keyed by no valid id at all: refused for its key, before its proof.
    bus.send(
        "cp.events",
        Some("CP 1\n"),
        &event(json!({"type": "authorised", "session_id": session, "cp_id": "CP 1\n"})),
        Proof::None,
    );
    let reasons = dead_letter_reasons(&net.broker.bootstrap, count + 1);
    for expected in [
        "out of order",
        "is not open at CP001",
        "reason is not valid",
        "a driver id has 1 to 32 letters",
        "record key is not a valid id",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "no reason says {expected:?}: {reasons:#?}"
        );
    }
    // The supply went on, its energy only rising.
    wait_for("more energy at CP001", DEADLINE, || {
        net.cp("CP001").filter(|c| {
            c["state"] == "charging"
                && c["session_id"] == session
                && c["kwh"].as_f64().unwrap_or(0.0) > kwh
        })
    });
    driver.type_line("stop");
    let ticket = wait_line(&driver, "the ticket", |l| l["type"] == "ticket");
    assert_eq!(ticket["ticket"]["outcome"], "stopped_by_driver");
}

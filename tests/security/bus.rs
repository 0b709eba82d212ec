//! Records written to the bus by someone who is not the party they name: a stop for a
//! driver's supply, a command to an engine, a billing amendment, with no proof or a forged
//! one, or a real record replayed, is set aside on the dead-letter topic with its reason and
//! changes nothing. A CP's own amendment with figures no supply can have, or for a session
//! of another CP, is set aside too, written to the audit log, and what was billed stands.

use super::support::records::{dead_letter_reasons, key_of, Proof, RawProducer, Reader};
use super::support::*;
use serde_json::{json, Value};

fn supply_ended(cp: &str, session: &Value, kwh: f64, eur: f64) -> String {
    json!({
        "type": "supply_ended", "v": 1, "id": uuid::Uuid::new_v4(), "ts": chrono::Utc::now(),
        "cp_id": cp, "session_id": session["id"], "driver_id": session["driver_id"],
        "started_at": session["started_at"], "ended_at": session["ended_at"],
        "kwh": kwh, "eur": eur, "outcome": "completed",
    })
    .to_string()
}

fn assert_reasons(reasons: &[String], expected: &[&str]) {
    for expected in expected {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "no reason says {expected:?}: {reasons:#?}"
        );
    }
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

    let cp1 = key_of(&net.cp_secret("CP001"));
    let cp2 = key_of(&net.cp_secret("CP002"));
    let bus = RawProducer::new(&net.broker.bootstrap);
    let higher = supply_ended("CP001", &billed, 99.0, 29.7);
    let forged = [
        // Anyone on the bus: no proof, or a proof under another CP's key.
        ("CP001", higher.clone(), Proof::None),
        ("CP001", higher, Proof::Key(&cp2)),
        // The CP itself, misbehaving: figures no supply can have, or a lower bill.
        (
            "CP001",
            supply_ended("CP001", &billed, 99_999.5, 29_999.85),
            Proof::Key(&cp1),
        ),
        (
            "CP001",
            supply_ended("CP001", &billed, -5.0, -1.5),
            Proof::Key(&cp1),
        ),
        (
            "CP001",
            supply_ended("CP001", &billed, 1e308, 3e307),
            Proof::Key(&cp1),
        ),
        (
            "CP001",
            supply_ended("CP001", &billed, 0.0, 0.0),
            Proof::Key(&cp1),
        ),
        // Another CP, proving its own record about a session that is not its.
        (
            "CP002",
            supply_ended("CP002", &billed, 1.0, 0.3),
            Proof::Key(&cp2),
        ),
    ];
    let count = forged.len();
    for (key, payload, proof) in forged {
        bus.send("cp.events", Some(key), &payload, proof);
    }
    let reasons = dead_letter_reasons(&net.broker.bootstrap, count);
    assert_reasons(
        &reasons,
        &[
            "forged or unproven: no evcharge-proof header",
            "forged: the evcharge-proof header does not prove this record for CP CP001",
            "99999.5 kWh is not an amount of energy",
            "1e308 kWh is not an amount of energy",
            "-5 kWh is not an amount of energy",
            "would bill less",
            "not CP002's",
        ],
    );
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

/// A supply runs at CP001 for D1 while an attacker writes to the bus: a stop for D1 and a
/// stop command to CP001's engine, unproven or with a made-up proof, and then a real stop
/// of D1's seen on the bus, replayed once D1 charges again. Each is set aside with its
/// reason and the supply goes on; a stale record proven with D1's own key is refused too.
#[test]
fn forged_stops_forged_commands_and_replays_change_nothing() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.start_cp("CP001", 0.30, &["--supply-duration", "0s"]);
    net.wait_state("CP001", "available");
    let mut driver = net.start_driver("D1", &["--interactive"]);
    driver.type_line("request CP001");
    let charging = net.wait_state("CP001", "charging");
    let session = charging["session_id"].clone();
    let requests = Reader::new(&net.broker.bootstrap, "driver.requests");

    let bus = RawProducer::new(&net.broker.bootstrap);
    let stop = |ts: chrono::DateTime<chrono::Utc>| {
        json!({
            "type": "stop_supply", "v": 1, "id": uuid::Uuid::new_v4(), "ts": ts,
            "driver_id": "D1",
        })
        .to_string()
    };
    let now = chrono::Utc::now;
    bus.send("driver.requests", Some("D1"), &stop(now()), Proof::None);
    bus.send(
        "driver.requests",
        Some("D1"),
        &stop(now()),
        Proof::Header(b"00".repeat(32)),
    );
    let command = json!({
        "type": "stop_supply", "v": 1, "id": uuid::Uuid::new_v4(), "ts": now(),
        "cp_id": "CP001", "session_id": session, "outcome": "stopped_by_operator",
    });
    bus.send(
        "cp.commands",
        Some("CP001"),
        &command.to_string(),
        Proof::None,
    );
    // D1's own key, but written ten minutes ago: a stop that acts on the present is taken
    // only while fresh.
    let d1 = key_of(&net.register_driver("D1"));
    let stale = stop(now() - chrono::Duration::minutes(10));
    bus.send("driver.requests", Some("D1"), &stale, Proof::Key(&d1));
    let reasons = dead_letter_reasons(&net.broker.bootstrap, 4);
    assert_reasons(
        &reasons,
        &[
            "forged or unproven: no evcharge-proof header (records on driver.requests must be proven by driver D1)",
            "forged: the evcharge-proof header does not prove this record for driver D1",
            "records on cp.commands must be proven by CP CP001",
            "stale: written at",
        ],
    );
    // Every forgery is behind us: the supply goes on.
    let still = net.cp("CP001").unwrap();
    assert_eq!(still["state"], "charging", "{still}");
    assert_eq!(still["session_id"], session);

    // D1 stops for real; its stop, proven, is on the bus for anyone to copy.
    driver.type_line("stop");
    wait_line(&driver, "D1's ticket", |l| {
        l["type"] == "ticket" && l["ticket"]["outcome"] == "stopped_by_driver"
    });
    let real_stop = wait_for("D1's proven stop on the bus", DEADLINE, || {
        requests.poll().into_iter().find(|r| {
            let proven = r
                .proof
                .as_ref()
                .is_some_and(|proof| d1.verify("driver.requests", &r.key, r.raw.as_bytes(), proof));
            r.value["type"] == "stop_supply" && proven && r.raw != stale
        })
    });
    net.wait_state("CP001", "available");
    driver.type_line("request CP001");
    let again = wait_for("D1 to charge again", DEADLINE, || {
        net.cp("CP001")
            .filter(|c| c["state"] == "charging" && c["session_id"] != session)
    });
    bus.send(
        "driver.requests",
        Some(&real_stop.key),
        &real_stop.raw,
        Proof::Header(real_stop.proof.clone().unwrap()),
    );
    let reasons = dead_letter_reasons(&net.broker.bootstrap, 5);
    assert_reasons(&reasons, &["replayed: record"]);
    let still = net.cp("CP001").unwrap();
    assert_eq!(still["state"], "charging", "{still}");
    assert_eq!(still["session_id"], again["session_id"]);
    driver.type_line("stop");
    wait_line(&driver, "D1's second ticket", |l| {
        l["type"] == "ticket" && l["ticket"]["session_id"] == again["session_id"]
    });
}

/// A driver whose secret is not the registered one cannot act: its records are set aside
/// as forged, and the central serves the registered drivers as before.
#[test]
fn a_driver_with_a_wrong_secret_is_refused() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.start_cp("CP001", 0.30, &[]);
    net.wait_state("CP001", "available");
    let file = net.register_driver("D1");
    std::fs::write(
        &file,
        "evcdrv_0000000000000000000000000000000000000000000000000000000000000000",
    )
    .unwrap();
    let impostor = net.start_driver("D1", &["--cp", "CP001"]);
    let reasons = dead_letter_reasons(&net.broker.bootstrap, 2);
    assert_reasons(&reasons, &["does not prove this record for driver D1"]);
    drop(impostor);
    let mut driver = net.start_driver("D2", &["--cp", "CP001"]);
    assert_eq!(driver.wait_exit(DEADLINE), 0);
    assert_eq!(net.sessions().len(), 1);
}

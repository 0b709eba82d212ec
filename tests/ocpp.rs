//! OCPP 1.6J charge points join the network through `evcharge gateway` (issue 15), driven
//! by `tests/ocpp/charge_point.py`: a charge point built on the `ocpp` package from PyPI,
//! which validates every CALL the gateway sends against the official OCPP 1.6 schemas. The
//! Python comes from the venv that `scripts/test.sh` prepares.

mod support;

use serde_json::Value;
use support::*;

/// Starts scenario `scenario` of charge_point.py as charge point `cp`.
fn charge_point(net: &mut Network, gateway: &str, scenario: &str, cp: &str) -> Proc {
    charge_point_with(net, gateway, scenario, cp, &[])
}

fn charge_point_with(
    net: &mut Network,
    gateway: &str,
    scenario: &str,
    cp: &str,
    extra: &[&str],
) -> Proc {
    let key_file = net.cp_secret(cp);
    let mut args = strings(&[
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ocpp/charge_point.py"),
        scenario,
        "--gateway",
        gateway,
        "--cp",
        cp,
        "--key-file",
        &key_file,
    ]);
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::spawn_typed(
        net.dir.path(),
        &format!("ocpp-{scenario}-{cp}"),
        &venv_python(),
        &args,
        &[("PYTHONUNBUFFERED", "1")],
    )
}

fn seen<'a>(lines: &'a [Value], what: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["seen"] == what).collect()
}

fn wait_seen(proc: &Proc, what: &str) -> Value {
    wait_line(proc, &format!("the charge point to see {what}"), |l| {
        l["seen"] == what
    })
}

/// The id of the first transaction the charge point saw started.
fn seen_transaction(charger: &Proc) -> Option<i64> {
    seen(&charger.json_lines(), "started")
        .first()
        .and_then(|l| l["transaction_id"].as_i64())
}

/// Nothing the gateway sent failed the official schemas.
fn assert_all_valid(lines: &[Value]) {
    let invalid = seen(lines, "invalid");
    assert!(
        invalid.is_empty(),
        "messages that break the OCPP 1.6 schemas: {invalid:#?}"
    );
}

#[test]
fn an_ocpp_charge_point_supplies_a_driver_billed_at_its_tariff() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.register("OCPP1", 0.35);
    let (_gateway, address) = net.start_gateway("gw1", &[]);
    let mut charger = charge_point(&mut net, &address, "supply", "OCPP1");
    net.wait_state("OCPP1", "available");

    let mut driver = net.start_driver("D1", &["--interactive"]);
    driver.type_line("request OCPP1");
    wait_seen(&charger, "metered");
    // 1,000 Wh on the meter at the start, 2,500 at the last reading: 1.5 kWh.
    wait_for("the central to show 1.5 kWh at OCPP1", DEADLINE, || {
        net.cp("OCPP1")
            .filter(|c| c["state"] == "charging" && c["kwh"].as_f64() == Some(1.5))
    });
    driver.type_line("stop");
    let ticket = wait_line(&driver, "the driver's ticket", |l| l["type"] == "ticket");
    let t = &ticket["ticket"];
    assert_eq!(t["outcome"], "stopped_by_driver", "{ticket}");
    assert_eq!(t["kwh"].as_f64(), Some(1.5), "kWh = Wh / 1000: {ticket}");
    // 1.5 kWh at 0.35 €/kWh is 0.525 €: half a cent, up.
    assert_eq!(t["eur"].as_f64(), Some(0.53), "{ticket}");
    assert_eq!(t["price_eur_kwh"].as_f64(), Some(0.35));

    assert_eq!(charger.wait_exit(DEADLINE), 0, "{}", charger.stderr_text());
    let lines = charger.json_lines();
    assert_all_valid(&lines);
    let boot = seen(&lines, "boot")[0];
    assert_eq!(boot["status"], "Accepted");
    assert_eq!(boot["interval"], 60);
    assert_eq!(seen(&lines, "trigger")[0]["message"], "StatusNotification");
    assert_eq!(seen(&lines, "remote_start")[0]["id_tag"], "D1");
    assert_eq!(seen(&lines, "authorized")[0]["status"], "Accepted");
    let started = seen(&lines, "started")[0];
    assert_eq!(started["status"], "Accepted");
    let transaction = started["transaction_id"].as_i64().unwrap();
    assert!(transaction > 0);
    assert_eq!(
        seen(&lines, "started_again")[0]["transaction_id"].as_i64(),
        Some(transaction),
        "the same start again gets the same transaction id"
    );
    assert_eq!(
        seen(&lines, "remote_stop")[0]["transaction_id"].as_i64(),
        Some(transaction)
    );
    for stop in ["stopped", "stopped_again", "stopped_unknown"] {
        assert_eq!(seen(&lines, stop).len(), 1, "{stop} answered: {lines:#?}");
    }
    // Each bad frame got the error OCPP names for it, and the link carried on.
    let code_of = |id: &str| {
        seen(&lines, "callerror")
            .into_iter()
            .find(|l| l["id"] == id)
            .map(|l| l["code"].as_str().unwrap().to_owned())
            .unwrap_or_else(|| panic!("no CALLERROR for {id}: {lines:#?}"))
    };
    assert_eq!(code_of("-1"), "FormationViolation");
    assert_eq!(code_of("bad-1"), "OccurenceConstraintViolation");
    assert_eq!(code_of("bad-2"), "TypeConstraintViolation");
    assert_eq!(code_of("bad-3"), "PropertyConstraintViolation");
    assert_eq!(code_of("bad-4"), "NotImplemented");
    assert_eq!(seen(&lines, "heartbeat").len(), 1, "the link stayed up");

    // One session, recorded like a native CP's.
    let sessions = net.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:#?}");
    assert_eq!(sessions[0]["cp_id"], "OCPP1");
    assert_eq!(sessions[0]["eur"].as_f64(), Some(0.53));
    net.wait_state("OCPP1", "disconnected");
}

#[test]
fn a_fault_breaks_the_cp_and_the_operators_stop_makes_it_inoperative() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.register("OCPP2", 0.30);
    let (_gateway, address) = net.start_gateway("gw2", &[]);
    let mut charger = charge_point(&mut net, &address, "fault_and_stop", "OCPP2");
    net.wait_state("OCPP2", "available");

    charger.type_line("fault");
    let broken = net.wait_state("OCPP2", "broken");
    assert!(
        broken["fault"]
            .as_str()
            .unwrap_or("")
            .contains("GroundFailure"),
        "{broken}"
    );
    charger.type_line("clear");
    net.wait_state("OCPP2", "available");

    assert_eq!(net.post("/api/cps/OCPP2/stop").0, 202);
    net.wait_state("OCPP2", "stopped");
    charger.type_line("availability");
    assert_eq!(wait_seen(&charger, "availability")["type"], "Inoperative");
    net.post("/api/cps/OCPP2/resume");
    charger.type_line("availability");
    assert_eq!(
        wait_line(&charger, "the charge point told to be operative", |l| {
            l["seen"] == "availability" && l["type"] == "Operative"
        })["type"],
        "Operative"
    );
    net.wait_state("OCPP2", "available");

    // The operator's OCPP requests, through the gateway, answered by the charge point.
    let ocpp = |action: &str, body: Value| {
        net.send("POST", &format!("/api/cps/OCPP2/ocpp/{action}"), Some(body))
    };
    let (status, got) = ocpp(
        "get-configuration",
        serde_json::json!({"key": ["HeartbeatInterval"]}),
    );
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["answer"]["configurationKey"][0]["value"], "60", "{got}");
    let change = serde_json::json!({"key": "MeterValueSampleInterval", "value": "5"});
    let (status, got) = ocpp("change-configuration", change);
    assert_eq!(
        (status, got["status"].as_str()),
        (200, Some("Accepted")),
        "{got}"
    );
    wait_line(&charger, "the interval changed", |l| {
        l["seen"] == "configured" && l["value"] == "5"
    });
    let (status, got) = ocpp("reset", serde_json::json!({"type": "Soft"}));
    assert_eq!(
        (status, got["status"].as_str()),
        (200, Some("Accepted")),
        "{got}"
    );
    assert_eq!(wait_seen(&charger, "reset")["type"], "Soft");
    let (status, got) = ocpp(
        "trigger-message",
        serde_json::json!({"requestedMessage": "Heartbeat"}),
    );
    assert_eq!(
        (status, got["status"].as_str()),
        (200, Some("Accepted")),
        "{got}"
    );
    // A payload OCPP's schema refuses is refused before it is sent.
    let (status, got) = ocpp("reset", serde_json::json!({"type": "Sideways"}));
    assert_eq!(status, 400, "{got}");
    assert!(got["error"].as_str().unwrap().contains("Sideways"), "{got}");
    assert_eq!(ocpp("unplug", serde_json::json!({})).0, 404);
    assert_eq!(net.send("POST", "/api/cps/NOPE/ocpp/reset", None).0, 404);

    // Two connectors: each shown; one faulted leaves the other to supply, both make it broken.
    charger.type_line("second");
    wait_for("both connectors shown", DEADLINE, || {
        net.cp("OCPP2")
            .filter(|c| c["connectors"].as_array().is_some_and(|a| a.len() == 2))
    });
    charger.type_line("fault");
    let one_down = wait_for("connector 1 shown faulted", DEADLINE, || {
        net.cp("OCPP2")
            .filter(|c| c["connectors"][0]["status"] == "Faulted")
    });
    assert_eq!(one_down["state"], "available", "{one_down}");
    assert_eq!(
        one_down["connectors"][1]["status"], "Available",
        "{one_down}"
    );
    assert!(
        one_down["connectors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("GroundFailure"),
        "{one_down}"
    );
    charger.type_line("fault2");
    let broken = net.wait_state("OCPP2", "broken");
    assert!(
        broken["fault"]
            .as_str()
            .unwrap()
            .contains("connector 2 faulted"),
        "{broken}"
    );
    charger.type_line("clear");
    net.wait_state("OCPP2", "available");

    // A lost WebSocket (the process killed) is a disconnected CP.
    charger.kill();
    net.wait_state("OCPP2", "disconnected");
    assert_all_valid(&charger.json_lines());
}

#[test]
fn a_transaction_outlives_its_websocket_and_is_billed_whole_through_another_gateway() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.register("OCPP4", 0.40);
    let (_first, address) = net.start_gateway("gw4a", &[]);
    let (_second, other) = net.start_gateway("gw4b", &[]);
    let mut charger = charge_point_with(
        &mut net,
        &address,
        "offline",
        "OCPP4",
        &["--gateway2", &other],
    );
    net.wait_state("OCPP4", "available");
    let mut driver = net.start_driver("D4", &["--interactive"]);
    driver.type_line("request OCPP4");
    let transaction = wait_seen(&charger, "started")["transaction_id"]
        .as_i64()
        .unwrap();
    wait_seen(&charger, "metered");
    wait_for("the central to show 0.5 kWh at OCPP4", DEADLINE, || {
        net.cp("OCPP4").filter(|c| c["kwh"].as_f64() == Some(0.5))
    });

    // Offline: the central loses its monitor and closes the session with what it heard.
    charger.type_line("drop");
    wait_seen(&charger, "offline");
    net.wait_state("OCPP4", "disconnected");
    let first = wait_line(&driver, "the first ticket", |l| l["type"] == "ticket");
    assert_eq!(first["ticket"]["kwh"].as_f64(), Some(0.5), "{first}");

    // Back through the other gateway: the repeated start keeps its id, the queued stop
    // bills the whole supply, 2 kWh (1,000 to 3,000 Wh) at 0.40 €/kWh.
    charger.type_line("reconnect");
    let again = wait_seen(&charger, "started_again");
    assert_eq!(
        again["transaction_id"].as_i64(),
        Some(transaction),
        "{again}"
    );
    assert_eq!(again["status"], "Accepted");
    wait_seen(&charger, "replayed");
    let amended = wait_line(&driver, "the amended ticket", |l| {
        l["type"] == "ticket" && l["ticket"]["kwh"].as_f64() == Some(2.0)
    });
    assert_eq!(amended["ticket"]["eur"].as_f64(), Some(0.8), "{amended}");
    assert_eq!(
        amended["ticket"]["session_id"], first["ticket"]["session_id"],
        "the same session, not a second one"
    );
    let sessions = net.sessions();
    assert_eq!(sessions.len(), 1, "no ghost, no double bill: {sessions:#?}");
    assert_eq!(sessions[0]["kwh"].as_f64(), Some(2.0));
    net.wait_state("OCPP4", "available");
    charger.type_line("done");
    assert_eq!(charger.wait_exit(DEADLINE), 0, "{}", charger.stderr_text());
    assert_all_valid(&charger.json_lines());
}

#[test]
fn a_tag_presented_at_the_charge_point_is_a_drivers_supply_and_an_unknown_one_is_refused() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.register("OCPP5", 0.25);
    net.register_driver("D5");
    let (_gateway, address) = net.start_gateway("gw5", &[]);
    net.wait_state("OCPP5", "disconnected");
    let mut charger = charge_point_with(&mut net, &address, "local", "OCPP5", &["--tag", "D5"]);
    net.wait_state("OCPP5", "available");
    charger.type_line("go");
    wait_seen(&charger, "stopped");
    // Recorded like a driver's own: 800 Wh at 0.25 €/kWh, the session D5's.
    let session = wait_for("D5's session to close", DEADLINE, || {
        net.sessions()
            .into_iter()
            .find(|s| s["driver_id"] == "D5" && s["outcome"] == "completed")
    });
    assert_eq!(session["cp_id"], "OCPP5");
    assert_eq!(session["kwh"].as_f64(), Some(0.8), "{session}");
    assert_eq!(session["eur"].as_f64(), Some(0.2), "{session}");
    // A transaction the charge point started without asking: asked of the central, billed.
    charger.type_line("again");
    let unasked = wait_seen(&charger, "started_unasked");
    assert_eq!(unasked["status"], "Accepted", "{unasked}");
    assert!(unasked["transaction_id"].as_i64() > seen_transaction(&charger));
    wait_seen(&charger, "stopped_unasked");
    let second = wait_for("D5's second session to close", DEADLINE, || {
        net.sessions()
            .into_iter()
            .find(|s| s["driver_id"] == "D5" && s["kwh"].as_f64() == Some(0.6))
    });
    assert_eq!(second["outcome"], "completed", "{second}");
    assert_eq!(second["eur"].as_f64(), Some(0.15), "{second}");
    charger.type_line("quit");
    assert_eq!(charger.wait_exit(DEADLINE), 0, "{}", charger.stderr_text());
    let lines = charger.json_lines();
    assert_all_valid(&lines);
    assert_eq!(
        seen(&lines, "unknown_tag")[0]["status"],
        "Invalid",
        "{lines:#?}"
    );
    assert_eq!(
        seen(&lines, "authorized")[0]["status"],
        "Accepted",
        "{lines:#?}"
    );
    assert_eq!(
        seen(&lines, "started")[0]["status"],
        "Accepted",
        "{lines:#?}"
    );
}

#[test]
fn a_charge_point_joins_over_wss_with_security_profile_2_and_not_with_another() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.register_ocpp("OCPP6", 0.30, 2);
    let tls = net.dir.path().join("tls");
    let mut made = Proc::spawn(
        net.dir.path(),
        "tls-self-signed",
        evcharge(),
        &strings(&["tls", "self-signed", "--out", &tls.display().to_string()]),
        &[],
    );
    assert_eq!(made.wait_exit(DEADLINE), 0, "{}", made.stderr_text());
    let (cert, key) = (tls.join("cert.pem"), tls.join("key.pem"));
    let (gateway, address) = net.start_gateway(
        "gw6",
        &[
            "--tls-cert",
            &cert.display().to_string(),
            "--tls-key",
            &key.display().to_string(),
        ],
    );
    assert!(
        gateway.stderr_text().contains("wss://"),
        "{}",
        gateway.stderr_text()
    );
    let ca = cert.display().to_string();
    let mut charger = charge_point_with(&mut net, &address, "tls_boot", "OCPP6", &["--ca", &ca]);
    assert_eq!(charger.wait_exit(DEADLINE), 0, "{}", charger.stderr_text());
    let lines = charger.json_lines();
    assert_all_valid(&lines);
    assert_eq!(seen(&lines, "boot")[0]["status"], "Accepted", "{lines:#?}");
    assert_eq!(seen(&lines, "plain")[0]["refused"], true, "{lines:#?}");

    // Registered for profile 2, it is refused by a gateway that serves profile 1 (plain
    // ws://), though its key is right; one registered for profile 1 is let in there.
    let (_plain, plain) = net.start_gateway("gw6b", &[]);
    let mut wrong = charge_point(&mut net, &plain, "refused_once", "OCPP6");
    assert_eq!(wrong.wait_exit(DEADLINE), 0, "{}", wrong.stderr_text());
    let refused = seen(&wrong.json_lines(), "connect")[0].clone();
    assert_eq!(refused["status"], 401, "{refused}");
    net.register_ocpp("OCPP7", 0.30, 1);
    let mut right = charge_point(&mut net, &plain, "refused_once", "OCPP7");
    assert_eq!(right.wait_exit(DEADLINE), 0, "{}", right.stderr_text());
    assert_eq!(seen(&right.json_lines(), "connect")[0]["status"], 101);
}

#[test]
fn a_flood_of_malformed_frames_is_answered_and_writes_a_bounded_log() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.register("OCPP8", 0.30);
    let (gateway, address) = net.start_gateway("gw8", &[]);
    let mut charger = charge_point(&mut net, &address, "flood", "OCPP8");
    assert_eq!(charger.wait_exit(DEADLINE), 0, "{}", charger.stderr_text());
    let lines = charger.json_lines();
    let errors = seen(&lines, "callerror");
    assert_eq!(errors.len(), 500, "every malformed frame answered");
    assert!(errors
        .iter()
        .all(|e| e["code"] == "TypeConstraintViolation"));
    assert_eq!(seen(&lines, "heartbeat").len(), 1, "the link stayed up");
    let log = gateway.stderr_text() + &gateway.stdout_text();
    let refused = log.matches("refused a message").count();
    assert!(
        (1..=20).contains(&refused),
        "{refused} lines about 500 bad frames"
    );
}

#[test]
fn a_wrong_key_or_no_ocpp_subprotocol_is_turned_away() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.register("OCPP3", 0.30);
    let (_gateway, address) = net.start_gateway("gw3", &[]);
    let mut charger = charge_point(&mut net, &address, "refused", "OCPP3");
    assert_eq!(charger.wait_exit(DEADLINE), 0, "{}", charger.stderr_text());
    let lines = charger.json_lines();
    let wrong = seen(&lines, "wrong_key")[0];
    assert_eq!(wrong["refused"], true, "{lines:#?}");
    assert_eq!(wrong["status"], 401);
    let bare = seen(&lines, "no_subprotocol")[0];
    assert_eq!(bare["closed"], true, "{lines:#?}");
    assert_eq!(net.cp("OCPP3").unwrap()["state"], "disconnected");
}

//! An outside client against the real central (issue 13): `tests/outside/evclient.py`, a
//! small Python client written from docs/PROTOCOL.md alone with confluent-kafka, plays a
//! driver and a whole CP (engine and monitor). Each scenario prints what it saw as JSON
//! lines; each broken rule is a test here. The Python comes from the venv that
//! `scripts/test.sh` prepares.

mod support;

use serde_json::Value;
use support::*;

/// The tariff the scenarios' figures are worked out at (`PRICE_EUR_KWH` in scenarios.py).
const PRICE: f64 = 0.35;

fn scenarios_py() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/outside/scenarios.py").into()
}

/// What one run of a scenario printed, and whether it ran to its end.
struct Observed {
    lines: Vec<Value>,
    ran_to_end: bool,
}

impl Observed {
    /// The records of `topic` the client read, of type `kind`.
    fn records(&self, topic: &str, kind: &str) -> Vec<&Value> {
        self.lines
            .iter()
            .filter(|l| l["seen"] == topic && l["record"]["type"] == kind)
            .map(|l| &l["record"])
            .collect()
    }

    fn first(&self, topic: &str, kind: &str) -> &Value {
        self.records(topic, kind)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no {kind} on {topic} in {:#?}", self.lines))
    }

    fn seen(&self, what: &str) -> Vec<&Value> {
        self.lines.iter().filter(|l| l["seen"] == what).collect()
    }

    /// Why the scenario stopped short, when it did: its `failed` line.
    fn failure(&self) -> Option<&Value> {
        self.lines.iter().find(|l| l.get("failed").is_some())
    }

    fn assert_ran_to_end(&self) {
        assert!(
            self.ran_to_end,
            "the scenario stopped short: {:?}",
            self.failure()
        );
    }
}

/// A network with a central on the embedded broker, CP `CP1` registered at [`PRICE`] and
/// driver `D1`.
fn network() -> Network {
    let mut net = Network::start(BrokerKind::Embedded);
    net.register("CP1", PRICE);
    net.register_driver("D1");
    net
}

/// Runs `scenario` of scenarios.py for `CP1` and `D1` until it exits by itself.
fn run(net: &mut Network, scenario: &str) -> Observed {
    let python = venv_python();
    let cp_secret = net.cp_secret("CP1");
    let driver_secret = net.register_driver("D1");
    let central = format!("127.0.0.1:{}", net.central_tcp);
    let http = net.url("");
    let script = scenarios_py();
    let args = strings(&[
        &script,
        scenario,
        "--kafka",
        &net.broker.bootstrap,
        "--central",
        &central,
        "--http",
        &http,
        "--token",
        &net.token,
        "--cp",
        "CP1",
        "--cp-secret-file",
        &cp_secret,
        "--driver",
        "D1",
        "--driver-secret-file",
        &driver_secret,
        // The hellos as often as FAST_ENV has the central's own engines and drivers say them.
        "--heartbeat",
        "0.5",
    ]);
    let mut client = Proc::spawn(
        net.dir.path(),
        &format!("outside-{scenario}"),
        &python,
        &args,
        &[("PYTHONUNBUFFERED", "1")],
    );
    let code = client.wait_exit(DEADLINE);
    let observed = Observed {
        lines: client.json_lines(),
        ran_to_end: code == 0,
    };
    if !observed.ran_to_end {
        eprintln!("{}", client.stderr_text());
    }
    observed
}

#[test]
fn the_outside_client_checks_the_documents_worked_examples() {
    let dir = tempfile::tempdir().unwrap();
    let mut client = Proc::spawn(
        dir.path(),
        "outside-self-test",
        &venv_python(),
        &strings(&[
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/outside/evclient.py"),
            "self-test",
        ]),
        &[],
    );
    assert_eq!(client.wait_exit(DEADLINE), 0, "{}", client.stderr_text());
    assert_eq!(
        client.json_lines(),
        [serde_json::json!({"self_test": "ok"})]
    );
}

#[test]
fn a_whole_supply_by_the_outside_client() {
    let mut net = network();
    let seen = run(&mut net, "whole-supply");
    seen.assert_ran_to_end();

    let reserved = seen.first("driver.updates", "reserved");
    let session = &reserved["session_id"];
    assert_eq!(reserved["cp_id"], "CP1");
    assert_eq!(reserved["price_eur_kwh"], PRICE);
    let authorise = seen.first("cp.commands", "authorise");
    assert_eq!(&authorise["session_id"], session);
    for kind in ["authorised", "started", "progress"] {
        assert_eq!(&seen.first("driver.updates", kind)["session_id"], session);
    }
    let ticket = &seen.first("driver.updates", "ticket")["ticket"];
    assert_eq!(&ticket["session_id"], session);
    assert_eq!(ticket["outcome"], "completed");
    // The engine's energy, priced by the central: 1,500 Wh × 3,500 = 52.5 cents, so 0.53 €,
    // where the engine's own floating-point figure said 0.52 €.
    assert_eq!(ticket["kwh"], 1.5);
    assert_eq!(ticket["eur"], 0.53);
    assert_priced(1.5, ticket["eur"].as_f64().unwrap(), PRICE);
}

#[test]
fn a_misbehaving_engines_supply_ends_with_engine_failure() {
    let mut net = network();
    let seen = run(&mut net, "misbehaving-engine");
    seen.assert_ran_to_end();

    let session = &seen.first("driver.updates", "reserved")["session_id"];
    let stops = seen.records("cp.commands", "stop_supply");
    assert!(
        stops
            .iter()
            .any(|s| &s["session_id"] == session && s["outcome"] == "engine_failure"),
        "no stop_supply with outcome engine_failure for {session}: {stops:?}"
    );
    assert_eq!(
        &seen.first("driver.updates", "interrupted")["session_id"],
        session
    );
    // The ticket carries the last figures the central had: at least the last progress it
    // passed on, and one of the engine's own reports (whether the central closes at once or
    // takes the engine's final figures is its choice).
    let passed_on: Vec<f64> = seen
        .records("driver.updates", "progress")
        .into_iter()
        .filter(|p| &p["session_id"] == session)
        .filter_map(|p| p["kwh"].as_f64())
        .collect();
    let reported: Vec<f64> = seen
        .lines
        .iter()
        .filter(|l| l["sent"] == "supply_progress" || l["sent"] == "supply_ended")
        .filter_map(|l| l["kwh"].as_f64())
        .collect();
    let ticket = &seen.first("driver.updates", "ticket")["ticket"];
    assert_eq!(&ticket["session_id"], session);
    assert_eq!(ticket["outcome"], "engine_failure", "{ticket}");
    let kwh = ticket["kwh"].as_f64().unwrap();
    let last_passed_on = passed_on
        .last()
        .copied()
        .expect("progress before the fault");
    assert!(
        kwh >= last_passed_on && reported.contains(&kwh),
        "{kwh} kWh is not the last figure the central had (passed on {passed_on:?}, reported \
         {reported:?})"
    );
    assert_priced(
        ticket["kwh"].as_f64().unwrap(),
        ticket["eur"].as_f64().unwrap(),
        PRICE,
    );
    let stored = wait_for("the session in /api/sessions", DEADLINE, || {
        net.sessions()
            .into_iter()
            .find(|s| &s["id"] == session && !s["outcome"].is_null())
    });
    assert_eq!(stored["outcome"], "engine_failure", "{stored}");
}

#[test]
fn a_monitor_without_an_engine_is_not_available() {
    let mut net = network();
    let seen = run(&mut net, "monitor-without-engine");

    let shown = seen.seen("api.cps");
    let before_engine = &shown.first().expect("the CP as the API showed it")["cp"];
    assert_eq!(before_engine["state"], "starting", "{before_engine}");
    let denied = seen.first("driver.updates", "denied");
    assert_eq!(denied["reason"], "cp_starting", "{denied}");
    assert!(
        seen.records("driver.updates", "reserved").is_empty(),
        "reserved at a CP with no engine: {:?}",
        seen.lines
    );
    assert_eq!(seen.records("cp.commands", "engine_welcome").len(), 1);
    seen.assert_ran_to_end();
    assert_eq!(shown.last().unwrap()["cp"]["state"], "available");
}

#[test]
fn bad_ids_are_refused_on_the_bus_and_on_the_link() {
    let mut net = network();
    let seen = run(&mut net, "bad-ids");
    seen.assert_ran_to_end();

    let sent: Vec<&Value> = seen
        .lines
        .iter()
        .filter(|l| l["sent"] == "supply_request")
        .collect();
    assert_eq!(sent.len(), 3);
    let letters = seen.seen("deadletter");
    for request in sent {
        let id = request["record"]["id"].as_str().unwrap();
        let letter = letters
            .iter()
            .map(|l| &l["record"])
            .find(|l| l["payload"].as_str().is_some_and(|p| p.contains(id)))
            .unwrap_or_else(|| panic!("no dead letter for {request}"));
        assert_eq!(letter["key"], request["key"]);
        let reason = letter["reason"].as_str().unwrap();
        assert!(
            says_the_id_is_not_valid(reason),
            "the reason does not say that the id is not valid: {reason}"
        );
    }
    let auths = seen.seen("link");
    assert_eq!(auths.len(), 3, "{auths:?}");
    for auth in auths {
        let reply = auth["reply"].as_str().unwrap();
        assert_eq!(auth["verdict"], "NACK", "{auth}");
        assert!(
            // PROTOCOL.md: an AUTH with a bad id is a bad request (`ERR#`), not a refusal.
            reply.starts_with("ERR#") && says_the_id_is_not_valid(reply),
            "the refusal does not say that the CP id is not valid: {auth}"
        );
    }
}

/// Whether a refusal says that an id breaks the rule: in so many words, or by naming the
/// rule (ids are 1 to 32 letters, digits, `-`, `_` or `.`).
fn says_the_id_is_not_valid(reason: &str) -> bool {
    reason.contains("id") && (reason.contains("not a valid") || reason.contains("1 to 32"))
}

#[test]
fn a_copy_of_a_request_is_set_aside_and_a_repeated_request_id_is_answered_again() {
    let mut net = network();
    let seen = run(&mut net, "duplicates");
    seen.assert_ran_to_end();

    let first = seen.first("driver.updates", "reserved");
    let request_id = &first["request_id"];
    let copy_id = &seen
        .lines
        .iter()
        .find(|l| l["sent"] == "copy")
        .expect("the copy")["record"]["id"];
    let letter = seen
        .seen("deadletter")
        .into_iter()
        .map(|l| &l["record"])
        .find(|l| {
            l["payload"]
                .as_str()
                .is_some_and(|p| p.contains(copy_id.as_str().unwrap()))
        })
        .expect("the copy's dead letter");
    let reason = letter["reason"].as_str().unwrap();
    assert!(reason.starts_with("replayed"), "{reason}");
    // Two answers: the first request's and the new record's, the same one; none for the copy.
    let answers: Vec<&Value> = seen
        .lines
        .iter()
        .filter(|l| l["seen"] == "driver.updates" && &l["record"]["request_id"] == request_id)
        .map(|l| &l["record"])
        .filter(|u| u["type"] == "reserved" || u["type"] == "denied")
        .collect();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert!(
        answers.iter().all(|a| a["type"] == "reserved"),
        "{answers:?}"
    );
    assert_eq!(answers[0]["session_id"], answers[1]["session_id"]);
    let sessions = &seen.seen("api.sessions")[0]["sessions"];
    assert_eq!(
        sessions.as_array().map(Vec::len),
        Some(1),
        "nothing new is reserved: {sessions}"
    );
}

#[test]
fn an_empty_cp_id_asks_for_any_cp() {
    let mut net = network();
    let seen = run(&mut net, "any-cp");
    seen.assert_ran_to_end();

    let answer = seen
        .lines
        .iter()
        .find(|l| l["seen"] == "driver.updates" && l["record"].get("request_id").is_some())
        .map(|l| &l["record"])
        .expect("an answer to the request");
    assert_eq!(answer["type"], "reserved", "{answer}");
    assert_eq!(answer["cp_id"], "CP1", "{answer}");
}

//! End to end: a broker, a central, CPs and drivers as separate processes of the real binary,
//! talking real Kafka, TCP and HTTP. Every scenario runs against the embedded broker and
//! against tansu.

mod support;

use std::path::Path;
use support::*;

/// Runs each scenario once per broker kind.
macro_rules! on_both_brokers {
    ($($scenario:ident),* $(,)?) => {
        mod embedded {
            $( #[test] fn $scenario() { super::$scenario(super::BrokerKind::Embedded) } )*
        }
        mod tansu {
            $( #[test] fn $scenario() { super::$scenario(super::BrokerKind::Tansu) } )*
        }
    };
}

on_both_brokers!(
    a_driver_serves_a_file_and_gets_priced_tickets,
    denials_carry_their_reason,
    the_operator_stops_and_resumes_cps,
    a_restarted_central_keeps_its_records,
    a_reservation_never_plugged_in_expires,
);

fn a_driver_serves_a_file_and_gets_priced_tickets(kind: BrokerKind) {
    // Arrange
    let mut net = Network::start(kind);
    net.start_cp("CP001", 0.40, &[]);
    net.start_cp("CP002", 0.27, &[]);
    net.wait_state("CP001", "available");
    net.wait_state("CP002", "available");
    let plan = net.write_file("plan.txt", "CP001\nCP009\n\n# any CP:\n*\nCP002\n");

    // Act
    let mut driver = net.start_driver("D1", &["--file", &plan]);
    let code = driver.wait_exit(DEADLINE * 2);

    // Assert
    assert_eq!(code, 0);
    let lines = driver.json_lines();
    let tickets = of_type(&lines, "ticket");
    assert_eq!(tickets.len(), 3, "{lines:#?}");
    for t in &tickets {
        let t = &t["ticket"];
        let kwh = t["kwh"].as_f64().unwrap();
        assert!(kwh > 0.0, "{t}");
        assert_eq!(t["outcome"], "completed");
        assert_eq!(t["driver_id"], "D1");
        let price = if t["cp_id"] == "CP001" { 0.40 } else { 0.27 };
        assert_eq!(t["price_eur_kwh"].as_f64().unwrap(), price);
        assert_priced(kwh, t["eur"].as_f64().unwrap(), price);
        assert!(t["started_at"].is_string() && t["ended_at"].is_string());
    }
    assert_eq!(tickets[0]["ticket"]["cp_id"], "CP001");
    assert_eq!(tickets[2]["ticket"]["cp_id"], "CP002");
    let denied = of_type(&lines, "denied");
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["reason"], "unknown_cp");
    assert!(denied[0]["detail"].as_str().unwrap().contains("CP009"));
    for step in ["reserved", "authorised", "started", "progress"] {
        assert!(of_type(&lines, step).len() >= 3, "missing {step} steps");
    }
    let done = of_type(&lines, "done");
    assert_eq!(done[0]["served"], 3);
    assert_eq!(done[0]["failed"], 1);

    // The central kept the same figures.
    let sessions = net.sessions();
    assert_eq!(sessions.len(), 3);
    for t in &tickets {
        let t = &t["ticket"];
        let s = sessions
            .iter()
            .find(|s| s["id"] == t["session_id"])
            .expect("session stored");
        assert_eq!(s["kwh"], t["kwh"]);
        assert_eq!(s["eur"], t["eur"]);
        assert_eq!(s["outcome"], "completed");
        assert_eq!(s["cp_id"], t["cp_id"]);
    }
    net.wait_state("CP001", "available");
    net.wait_state("CP002", "available");
}

/// The reason a one-shot driver was denied.
fn denial_of(net: &mut Network, driver: &str, cp: &str) -> serde_json::Value {
    let mut d = net.start_driver(driver, &["--cp", cp]);
    assert_eq!(d.wait_exit(DEADLINE), 0);
    let lines = d.json_lines();
    let denied = of_type(&lines, "denied");
    assert_eq!(denied.len(), 1, "{lines:#?}");
    assert!(!denied[0]["detail"].as_str().unwrap().is_empty());
    denied[0].clone()
}

fn denials_carry_their_reason(kind: BrokerKind) {
    let mut net = Network::start(kind);
    net.start_cp("CP001", 0.30, &["--supply-duration", "120s"]);
    net.start_cp("CP002", 0.30, &[]);
    let cp3 = net.start_cp("CP003", 0.30, &[]);
    let cp4 = net.start_cp("CP004", 0.30, &["--interactive"]);
    for id in ["CP001", "CP002", "CP003", "CP004"] {
        net.wait_state(id, "available");
    }

    // Busy: another driver is charging there.
    let mut charging = net.start_driver("DA", &["--interactive"]);
    charging.type_line("request CP001");
    let busy = net.wait_state("CP001", "charging");
    assert_eq!(busy["driver_id"], "DA");
    assert_eq!(denial_of(&mut net, "DB", "CP001")["reason"], "cp_busy");

    // A driver serves one supply at a time: a second request waits its turn.
    charging.type_line("request CP002");
    wait_line(&charging, "DA's second request to be queued", |l| {
        l["type"] == "queued" && l["cp_id"] == "CP002"
    });

    // Stopped by the operator.
    assert_eq!(net.post("/api/cps/CP002/stop").0, 202);
    net.wait_state("CP002", "stopped");
    assert_eq!(denial_of(&mut net, "DC", "CP002")["reason"], "cp_stopped");

    // Disconnected: its process died.
    net.cps[cp3].kill();
    net.wait_state("CP003", "disconnected");
    assert_eq!(
        denial_of(&mut net, "DD", "CP003")["reason"],
        "cp_disconnected"
    );

    // Broken: the engine reports KO; clearing it makes the CP available again.
    net.cps[cp4].type_line("k");
    let broken = net.wait_state("CP004", "broken");
    assert!(broken["fault"].as_str().unwrap().contains("simulated"));
    assert_eq!(denial_of(&mut net, "DE", "CP004")["reason"], "cp_broken");
    net.cps[cp4].type_line("o");
    net.wait_state("CP004", "available");

    // Unknown CP, and no CP available at all.
    assert_eq!(denial_of(&mut net, "DF", "CP777")["reason"], "unknown_cp");
    net.post("/api/cps/CP004/stop");
    net.wait_state("CP004", "stopped");
    let mut any = net.start_driver("DG", &["--any"]);
    assert_eq!(any.wait_exit(DEADLINE), 0);
    assert_eq!(
        of_type(&any.json_lines(), "denied")[0]["reason"],
        "no_cp_available"
    );
}

fn the_operator_stops_and_resumes_cps(kind: BrokerKind) {
    let mut net = Network::start(kind);
    net.start_cp("CP001", 0.50, &["--supply-duration", "120s"]);
    net.start_cp("CP002", 0.50, &[]);
    net.wait_state("CP001", "available");
    net.wait_state("CP002", "available");
    let mut driver = net.start_driver("D1", &["--cp", "CP001"]);
    wait_for("energy to flow at CP001", DEADLINE, || {
        net.cp("CP001")
            .filter(|c| c["state"] == "charging" && c["kwh"].as_f64().unwrap_or(0.0) > 0.0)
    });

    // Stopping a CP ends its supply: the driver gets its ticket, the CP shows stopped.
    let (status, body) = net.post("/api/cps/CP001/stop");
    assert_eq!(status, 202, "{body}");
    net.wait_state("CP001", "stopped");
    assert_eq!(driver.wait_exit(DEADLINE), 0);
    let tickets = of_type(&driver.json_lines(), "ticket");
    assert_eq!(tickets.len(), 1);
    let t = &tickets[0]["ticket"];
    assert_eq!(t["outcome"], "stopped_by_operator");
    let kwh = t["kwh"].as_f64().unwrap();
    assert!(kwh > 0.0);
    assert_priced(kwh, t["eur"].as_f64().unwrap(), 0.50);
    let sessions = net.sessions();
    assert_eq!(sessions[0]["outcome"], "stopped_by_operator");

    net.post("/api/cps/CP001/resume");
    net.wait_state("CP001", "available");

    // All at once.
    let (status, body) = net.post("/api/cps/stop");
    assert_eq!(status, 202);
    assert_eq!(body["cps"], 2);
    net.wait_state("CP001", "stopped");
    net.wait_state("CP002", "stopped");
    net.post("/api/cps/resume");
    net.wait_state("CP001", "available");
    net.wait_state("CP002", "available");

    // Bad requests get a 4xx with a message.
    let (status, body) = net.post("/api/cps/NOPE/stop");
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("NOPE"));
    let (status, body) = net.post("/api/nothing");
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
}

fn a_restarted_central_keeps_its_records(kind: BrokerKind) {
    let mut net = Network::start(kind);
    net.start_cp("CP001", 0.40, &[]);
    net.start_cp("CP002", 0.30, &[]);
    net.wait_state("CP001", "available");
    net.wait_state("CP002", "available");
    let plan = net.write_file("plan.txt", "CP001\nCP002\n");
    let mut driver = net.start_driver("D1", &["--file", &plan]);
    assert_eq!(driver.wait_exit(DEADLINE * 2), 0);
    let before = net.sessions();
    assert_eq!(before.len(), 2);

    // Everything goes down hard; only the central comes back.
    for cp in &mut net.cps {
        cp.kill();
    }
    net.kill_central();
    net.start_central();

    // Every known CP is shown, disconnected, and every session is kept.
    let cps = net.get("/api/cps");
    let cps = cps.as_array().unwrap();
    assert_eq!(cps.len(), 2);
    assert!(cps.iter().all(|c| c["state"] == "disconnected"), "{cps:?}");
    assert_eq!(
        cps.iter().find(|c| c["id"] == "CP001").unwrap()["price_eur_kwh"],
        0.40
    );
    assert_eq!(net.sessions(), before);

    // The CPs report again and serve as before.
    net.start_cp("CP001", 0.40, &[]);
    net.start_cp("CP002", 0.30, &[]);
    net.wait_state("CP001", "available");
    net.wait_state("CP002", "available");
    let mut driver = net.start_driver("D2", &["--cp", "CP002"]);
    assert_eq!(driver.wait_exit(DEADLINE), 0);
    assert_eq!(of_type(&driver.json_lines(), "ticket").len(), 1);
    let after = net.sessions();
    assert_eq!(after.len(), 3);
    assert_eq!(&after[..2], &before[..]);
}

fn a_reservation_never_plugged_in_expires(kind: BrokerKind) {
    let mut net = Network::start_with(kind, &["--reservation-expiry", "2s"]);
    // Nobody ever plugs in at this CP.
    net.start_cp("CP001", 0.40, &["--plug-in-delay", "0s"]);
    net.wait_state("CP001", "available");
    let mut driver = net.start_driver("D1", &["--cp", "CP001"]);
    let reserved = net.wait_state("CP001", "reserved");
    assert_eq!(reserved["driver_id"], "D1");
    assert_eq!(driver.wait_exit(DEADLINE), 0);
    let lines = driver.json_lines();
    assert_eq!(of_type(&lines, "authorised").len(), 1);
    let ticket = &of_type(&lines, "ticket")[0]["ticket"];
    assert_eq!(ticket["outcome"], "expired");
    assert_eq!(ticket["kwh"], 0.0);
    net.wait_state("CP001", "available");
    assert_eq!(net.sessions()[0]["outcome"], "expired");
}

/// Every role starts before the broker; once it appears, the supply goes through.
#[test]
fn tansu_started_last_the_network_still_works() {
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.txt");
    std::fs::write(&plan, "CP001\n".repeat(8)).unwrap();
    let plan = plan.display().to_string();
    // tansu's port must be known before it starts: the roles are told it, and tansu
    // advertises it. It is chosen free beforehand; should another process take it before
    // tansu listens there, the roles are stopped and everything starts again on another.
    let mut attempt = 0;
    let (central, cp, mut driver, _broker) =
        wait_for("tansu where the roles look", DEADLINE * 2, || {
            attempt += 1;
            let work = dir.path().join(format!("attempt-{attempt}"));
            std::fs::create_dir_all(&work).unwrap();
            let port = free_port();
            let bootstrap = format!("127.0.0.1:{port}");
            let kafka = |role: &[&str]| -> Vec<String> {
                ["--kafka", &bootstrap]
                    .iter()
                    .chain(role)
                    .map(|s| s.to_string())
                    .collect()
            };
            let data = work.join("central").display().to_string();
            let secret_file = work.join("CP001.secret");
            evcharge::harness::register_cps(
                Path::new(evcharge()),
                &work.join("central"),
                "CP001",
                None,
                ("Calle Mayor 3", 0.25),
                &secret_file,
            )
            .unwrap();
            let secret_file = secret_file.display().to_string();
            let driver_secret = register_driver_offline(&work.join("central"), "D1");
            // tansu 0.6, started after a central that waits for it with a 6 s group
            // session, takes the member for gone every 6 s and rebalances for ever (seen
            // here); with 10 s it does not.
            let env: Vec<(&str, &str)> = FAST_ENV
                .iter()
                .copied()
                .chain([("EVCHARGE_CENTRAL__SESSION_TIMEOUT", "10s")])
                .collect();
            let central = Proc::spawn(
                &work,
                "central",
                evcharge(),
                &central_args(&bootstrap, &data, &[]),
                &env,
            );
            let tcp = announced(&central, announces::MONITORS);
            let cp = Proc::spawn(
                &work,
                "cp",
                evcharge(),
                &kafka(&[
                    "cp",
                    "--id",
                    "CP001",
                    "--central",
                    &tcp,
                    "--secret-file",
                    &secret_file,
                ]),
                &FAST_ENV,
            );
            let driver = Proc::spawn(
                &work,
                "driver",
                evcharge(),
                // The CP may still be starting when Kafka appears (it is then denied as broken):
                // the driver tries a few times, as a person would.
                &kafka(&[
                    "driver",
                    "--id",
                    "D1",
                    "--file",
                    &plan,
                    "--pause",
                    "2s",
                    "--json",
                    "--secret-file",
                    &driver_secret,
                ]),
                &FAST_ENV,
            );
            for role in [&central, &cp, &driver] {
                wait_for(
                    &format!("{} to say it waits for the broker", role.name),
                    DEADLINE,
                    || {
                        role.stderr_text()
                            .contains("cannot reach the Kafka broker")
                            .then_some(())
                    },
                );
            }
            let broker = Broker::try_start_tansu_on(port, &work)?;
            Some((central, cp, driver, broker))
        });

    assert_eq!(driver.wait_exit(DEADLINE * 2), 0);
    let tickets = of_type(&driver.json_lines(), "ticket");
    assert!(!tickets.is_empty(), "{}", driver.stdout_text());
    let t = &tickets[0]["ticket"];
    assert!(t["kwh"].as_f64().unwrap() > 0.0);
    assert_priced(t["kwh"].as_f64().unwrap(), t["eur"].as_f64().unwrap(), 0.25);
    drop((central, cp));
}

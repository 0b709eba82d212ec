//! What survives a crash (SPEC §6): real processes killed with SIGKILL at the worst moment.
//! Detection times are printed, not asserted to the millisecond; the bounds here are
//! generous, the benchmark measures them.

mod support;

use std::time::{Duration, Instant};
use support::*;

/// Waits for the driver's ticket line and returns the ticket.
fn ticket_of(driver: &Proc) -> serde_json::Value {
    wait_line(driver, "the driver's ticket", |l| l["type"] == "ticket")["ticket"].clone()
}

/// Waits for a state and says how long it took.
fn detect(net: &Network, id: &str, state: &str) -> Duration {
    let start = Instant::now();
    net.wait_state(id, state);
    let took = start.elapsed();
    eprintln!("{id} shown {state} after {took:?}");
    took
}

#[test]
fn an_engine_killed_mid_supply_loses_no_energy() {
    let mut net = Network::start(BrokerKind::Embedded);
    let engine = net.start_engine("CP001", 0, &["--supply-duration", "120s"]);
    let port = net.engine_port(engine);
    net.start_monitor("CP001", port, 0.40, &[]);
    net.wait_state("CP001", "available");
    let driver = net.start_driver("D1", &["--interactive"]);
    let mut driver = driver;
    driver.type_line("request CP001");
    let seen = wait_for("a few reports from CP001", DEADLINE, || {
        net.cp("CP001")
            .filter(|c| c["kwh"].as_f64().unwrap_or(0.0) >= 0.03)
    });
    let kwh_seen = seen["kwh"].as_f64().unwrap();
    let session_id = seen["session_id"].clone();

    net.cps[engine].kill();
    assert!(detect(&net, "CP001", "broken") < Duration::from_secs(10));
    wait_line(&driver, "the driver to hear of the fault", |l| {
        l["type"] == "interrupted"
    });

    // Back up, the engine reports what it had supplied. The central may have closed the
    // session first, with the last figures it had (`central.stop_timeout`): the engine's
    // report then amends it, and the driver's last ticket says the engine's figures.
    let restarted = net.start_engine("CP001", port, &["--supply-duration", "120s"]);
    wait_for(
        "the restarted engine to report the interrupted supply",
        DEADLINE,
        || {
            net.cps[restarted]
                .stderr_text()
                .contains("ended (engine_failure)")
                .then_some(())
        },
    );
    let ticket = wait_for(
        "the driver's last ticket to say the recorded figures",
        DEADLINE,
        || {
            let tickets = of_type(&driver.json_lines(), "ticket");
            let last = tickets.last()?["ticket"].clone();
            let sessions = net.sessions();
            (sessions.len() == 1 && sessions[0]["kwh"] == last["kwh"]).then_some(last)
        },
    );
    assert_eq!(ticket["session_id"], session_id);
    assert_eq!(ticket["outcome"], "engine_failure");
    let kwh = ticket["kwh"].as_f64().unwrap();
    assert!(
        kwh >= kwh_seen,
        "the ticket's {kwh} kWh lost some of the {kwh_seen} kWh reported"
    );
    assert_priced(kwh, ticket["eur"].as_f64().unwrap(), 0.40);
    net.wait_state("CP001", "available");
    let sessions = net.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["kwh"], ticket["kwh"]);
    assert_eq!(sessions[0]["outcome"], "engine_failure");
}

#[test]
fn a_monitor_killed_mid_supply_ends_the_supply_until_it_returns() {
    let mut net = Network::start(BrokerKind::Embedded);
    let engine = net.start_engine("CP001", 0, &["--supply-duration", "120s"]);
    let port = net.engine_port(engine);
    let monitor = net.start_monitor("CP001", port, 0.30, &[]);
    net.wait_state("CP001", "available");
    let mut driver = net.start_driver("D1", &["--cp", "CP001"]);
    wait_for("energy at CP001", DEADLINE, || {
        net.cp("CP001")
            .filter(|c| c["kwh"].as_f64().unwrap_or(0.0) > 0.0)
    });

    net.cps[monitor].kill();
    assert!(detect(&net, "CP001", "disconnected") < Duration::from_secs(10));
    assert_eq!(driver.wait_exit(DEADLINE), 0);
    let ticket = ticket_of(&driver);
    assert_eq!(ticket["outcome"], "monitor_lost");
    assert!(ticket["kwh"].as_f64().unwrap() > 0.0);

    // No new supply there until the monitor is back.
    let mut refused = net.start_driver("D2", &["--cp", "CP001"]);
    assert_eq!(refused.wait_exit(DEADLINE), 0);
    assert_eq!(
        of_type(&refused.json_lines(), "denied")[0]["reason"],
        "cp_disconnected"
    );
    net.start_monitor("CP001", port, 0.30, &[]);
    net.wait_state("CP001", "available");
    let _served = net.start_driver("D3", &["--cp", "CP001"]);
    let charging = net.wait_state("CP001", "charging");
    assert_eq!(charging["driver_id"], "D3");
}

#[test]
fn a_driver_killed_mid_supply_sees_its_ticket_when_back() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.start_cp("CP001", 0.35, &["--supply-duration", "6s"]);
    net.wait_state("CP001", "available");
    let mut driver = net.start_driver("D1", &["--cp", "CP001"]);
    let charging = net.wait_state("CP001", "charging");
    let session_id = charging["session_id"].clone();

    driver.kill();
    // The supply goes on without the driver.
    let closed = wait_for("the session to close", DEADLINE, || {
        net.sessions()
            .into_iter()
            .find(|s| s["id"] == session_id && s["outcome"] == "completed")
    });
    assert!(closed["kwh"].as_f64().unwrap() > 0.0);

    let back = net.start_driver("D1", &["--interactive"]);
    let ticket = ticket_of(&back);
    assert_eq!(ticket["session_id"], session_id);
    assert_eq!(ticket["kwh"], closed["kwh"]);
    assert_eq!(ticket["eur"], closed["eur"]);
}

#[test]
fn a_central_killed_mid_supply_loses_and_doubles_nothing() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.start_cp("CP001", 0.45, &["--supply-duration", "5s"]);
    net.start_cp("CP002", 0.45, &[]);
    net.wait_state("CP001", "available");
    net.wait_state("CP002", "available");
    let mut driver = net.start_driver("D1", &["--cp", "CP001"]);
    let charging = net.wait_state("CP001", "charging");
    let session_id = charging["session_id"].clone();

    net.kill_central();
    // The CP finishes its supply while the central is away.
    wait_for("CP001 to finish its supply", DEADLINE, || {
        net.cps[0]
            .stderr_text()
            .contains("for D1 ended (completed)")
            .then_some(())
    });
    net.start_central();

    // The restarted central closes the session from what the engine reported, once.
    assert_eq!(driver.wait_exit(DEADLINE), 0);
    let ticket = ticket_of(&driver);
    assert_eq!(ticket["session_id"], session_id);
    assert_eq!(ticket["outcome"], "completed");
    let kwh = ticket["kwh"].as_f64().unwrap();
    assert!(kwh > 0.0);
    assert_priced(kwh, ticket["eur"].as_f64().unwrap(), 0.45);
    let sessions = net.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:#?}");
    assert_eq!(sessions[0]["kwh"], ticket["kwh"]);
    assert_eq!(of_type(&driver.json_lines(), "ticket").len(), 1);
    net.wait_state("CP001", "available");
    net.wait_state("CP002", "available");
}

#[test]
fn a_crashed_cp_actor_is_restarted_with_its_state_and_others_undisturbed() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.start_cp("CP001", 0.30, &["--supply-duration", "8s"]);
    net.start_cp("CP002", 0.30, &[]);
    net.wait_state("CP001", "available");
    net.wait_state("CP002", "available");
    let mut driver = net.start_driver("D1", &["--cp", "CP001"]);
    let charging = net.wait_state("CP001", "charging");

    let (status, _) = net.post("/api/crash/cps/CP001");
    assert_eq!(status, 202);
    // Its supply carries on to the ticket; the other CP never noticed.
    let again = net.wait_state("CP001", "charging");
    assert_eq!(again["session_id"], charging["session_id"]);
    while driver.is_running() {
        assert_eq!(net.cp("CP002").unwrap()["state"], "available");
        std::thread::sleep(Duration::from_millis(100));
    }
    let ticket = ticket_of(&driver);
    assert_eq!(ticket["outcome"], "completed");
    assert_eq!(ticket["session_id"], charging["session_id"]);
    assert_eq!(net.post("/api/crash/cps/NOPE").0, 404);
}

#[test]
fn control_endpoints_simulate_faults_and_crash_only_when_allowed() {
    let mut net = Network::start(BrokerKind::Embedded);
    let cp1 = net.start_cp("CP001", 0.30, &["--control", "127.0.0.1:0"]);
    let cp2 = net.start_cp(
        "CP002",
        0.30,
        &["--control", "127.0.0.1:0", "--allow-crash"],
    );
    let safe = net.announced_port(cp1, announces::CONTROL);
    let crashable = net.announced_port(cp2, announces::CONTROL);
    net.wait_state("CP001", "available");
    net.wait_state("CP002", "available");
    let post = |port: u16, path: &str| -> u16 {
        control(port)
            .post_for_status(&format!("/control/{path}"), None)
            .unwrap_or_else(|e| panic!("{path}: {e:#}"))
            .0
    };

    // A simulated fault over HTTP, and its clearing.
    assert_eq!(post(safe, "fault"), 200);
    let broken = net.wait_state("CP001", "broken");
    assert!(broken["fault"].as_str().unwrap().contains("simulated"));
    assert_eq!(post(safe, "clear"), 200);
    net.wait_state("CP001", "available");

    // Crash injection is refused unless allowed; allowed, the process dies abruptly.
    assert_eq!(post(safe, "crash"), 403);
    assert_eq!(post(crashable, "crash"), 202);
    let died = net.cps[cp2].wait_exit(DEADLINE);
    assert_ne!(died, 0);
    detect(&net, "CP002", "disconnected");
    net.wait_state("CP001", "available");
}

#[test]
fn a_broker_outage_mid_supply_is_survived_by_every_role() {
    let mut net = Network::start(BrokerKind::Embedded);
    let cp = net.start_cp("CP001", 0.30, &["--supply-duration", "10s"]);
    net.wait_state("CP001", "available");
    let mut driver = net.start_driver("D1", &["--cp", "CP001"]);
    wait_for("energy at CP001", DEADLINE, || {
        net.cp("CP001")
            .filter(|c| c["kwh"].as_f64().unwrap_or(0.0) > 0.0)
    });

    net.broker.outage();
    let complaint = "cannot reach the Kafka broker";
    let central = net.central.as_ref().unwrap();
    for role in [central, &net.cps[cp], &driver] {
        wait_for(
            &format!("{} to say the broker is gone", role.name),
            DEADLINE,
            || role.stderr_text().contains(complaint).then_some(()),
        );
    }
    // The engine supplies on through the outage.
    wait_for("the supply to end at the engine", DEADLINE, || {
        net.cps[cp]
            .stderr_text()
            .contains("for D1 ended (completed)")
            .then_some(())
    });
    net.broker.recover();

    assert_eq!(driver.wait_exit(DEADLINE), 0);
    let ticket = ticket_of(&driver);
    assert_eq!(ticket["outcome"], "completed");
    // The figures the engine reported during the outage reached the central and the driver.
    let engine_log = net.cps[cp].stderr_text();
    let reported = engine_log
        .lines()
        .find_map(|l| l.split("ended (completed): ").nth(1))
        .and_then(|rest| rest.split(" kWh").next())
        .and_then(|kwh| kwh.parse::<f64>().ok())
        .expect("the engine logs its final figures");
    assert_eq!(ticket["kwh"].as_f64().unwrap(), reported);
    let sessions = net.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["kwh"], ticket["kwh"]);
    let central = net.central.as_ref().unwrap();
    wait_for("the central to say the broker is back", DEADLINE, || {
        central
            .stderr_text()
            .contains("reachable again")
            .then_some(())
    });
    net.wait_state("CP001", "available");
}

#[test]
fn an_idle_engine_cut_off_from_kafka_is_not_shown_available() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.start_cp("CP001", 0.30, &[]);
    net.wait_state("CP001", "available");

    // Longer than the consumer's session: the engine loses its partitions, so commands
    // (a reservation) could not reach it. Its CP must not look available meanwhile.
    net.broker.outage();
    // Not broken either: nothing is wrong with the CP itself; it is starting again.
    let cp = wait_for("CP001 starting while cut off", DEADLINE, || {
        net.cp("CP001").filter(|c| c["state"] == "starting")
    });
    let why = cp["fault"].as_str().unwrap_or_default();
    assert!(why.contains("not heard on the bus"), "{why}");
    net.broker.recover();
    net.wait_state("CP001", "available");
    let mut driver = net.start_driver("D1", &["--cp", "CP001"]);
    assert_eq!(driver.wait_exit(DEADLINE), 0);
    assert_eq!(ticket_of(&driver)["outcome"], "completed");
}

#[test]
fn a_second_instance_of_a_live_id_is_refused_and_the_first_undisturbed() {
    let mut net = Network::start(BrokerKind::Embedded);
    let engine = net.start_engine("CP001", 0, &[]);
    let port = net.engine_port(engine);
    let first = net.start_monitor("CP001", port, 0.30, &[]);
    net.wait_state("CP001", "available");

    // A second monitor for CP001 is refused with a clear message and stops.
    let second = net.start_monitor("CP001", port, 0.30, &[]);
    let code = net.cps[second].wait_exit(DEADLINE);
    assert_ne!(code, 0);
    let said = net.cps[second].stderr_text();
    assert!(said.contains("CP001 already has a live monitor"), "{said}");

    // A second engine for CP001 sharing the first one's data is refused at once…
    let engine2 = net.start_engine("CP001", 0, &[]);
    assert_ne!(net.cps[engine2].wait_exit(DEADLINE), 0);
    assert!(net.cps[engine2]
        .stderr_text()
        .contains("another engine for CP001"));
    // …and one with data of its own (as on another machine) is refused by the central.
    let elsewhere = net.dir.path().join("elsewhere").display().to_string();
    let engine3 = net.start_engine_in("CP001", 0, &elsewhere, &[]);
    assert_ne!(net.cps[engine3].wait_exit(DEADLINE), 0);
    let said = net.cps[engine3].stderr_text();
    assert!(
        said.contains("the engine of CP001 is already running elsewhere"),
        "{said}"
    );

    // A second driver D1 while the first is live: refused, and it stops.
    let mut driver = net.start_driver("D1", &["--interactive"]);
    wait_for("the first D1 to be welcomed", DEADLINE, || {
        driver
            .stderr_text()
            .contains("the central welcomes this instance")
            .then_some(())
    });
    let mut twin = net.start_driver("D1", &["--cp", "CP001"]);
    assert_ne!(twin.wait_exit(DEADLINE), 0);
    let said = twin.stderr_text();
    assert!(said.contains("driver D1 is already running"), "{said}");

    // The first ones never noticed.
    assert!(net.cps[first].is_running());
    assert!(driver.is_running());
    assert_eq!(net.cp("CP001").unwrap()["state"], "available");
    driver.type_line("request CP001");
    assert_eq!(ticket_of(&driver)["outcome"], "completed");
}

/// An engine can supply a session the central has just closed (the cancel and the plug-in
/// cross on the bus): the energy it reports is billed, the amendment is audited, and the
/// driver gets the corrected ticket.
#[test]
fn energy_reported_for_a_closed_session_amends_it() {
    let mut net = Network::start_with(BrokerKind::Embedded, &["--reservation-expiry", "1s"]);
    net.start_cp("CP001", 0.50, &["--plug-in-delay", "0s"]);
    net.wait_state("CP001", "available");
    let mut driver = net.start_driver("D1", &["--cp", "CP001"]);
    assert_eq!(driver.wait_exit(DEADLINE), 0);
    let expired = ticket_of(&driver);
    assert_eq!(expired["outcome"], "expired");
    let session_id = expired["session_id"].as_str().unwrap().to_owned();

    // The engine's late report, as it would send it.
    let end = format!(
        r#"{{"type":"supply_ended","v":1,"id":"{}","ts":"2026-11-23T10:00:05Z","cp_id":"CP001","session_id":"{session_id}","driver_id":"D1","started_at":"2026-11-23T10:00:00Z","ended_at":"2026-11-23T10:00:05Z","kwh":0.25,"eur":0.13,"outcome":"expired"}}"#,
        uuid::Uuid::new_v4()
    );
    // Proven with CP001's key, as its engine proves every report.
    let cp1 = records::key_of(&net.cp_secret("CP001"));
    records::RawProducer::new(&net.broker.bootstrap).send(
        "cp.events",
        Some("CP001"),
        &end,
        records::Proof::Key(&cp1),
    );

    let amended = wait_for("the session to take the engine's figures", DEADLINE, || {
        net.sessions()
            .into_iter()
            .find(|s| s["id"] == session_id.as_str() && s["kwh"] == 0.25)
    });
    // 0.25 kWh × 0.50 €/kWh = 0.125 €: half a cent, billed up.
    assert_eq!(amended["eur"], 0.13);
    let audited = net
        .audit()
        .into_iter()
        .find(|e| e["what"].as_str().unwrap_or("").contains(&session_id))
        .expect("the amendment is in the audit log");
    assert_eq!(audited["who"], "CP001's engine");
    assert_eq!(audited["from"], "the bus (cp.events)");
    assert_eq!(
        audited["what"],
        format!("amended session {session_id}: 0.000 kWh, 0.00 € → 0.250 kWh, 0.13 €")
    );
    let follower = net.start_driver("D1", &["--interactive"]);
    let corrected = wait_line(&follower, "the corrected ticket", |l| {
        l["type"] == "ticket" && l["ticket"]["kwh"] == 0.25
    });
    assert_eq!(corrected["ticket"]["session_id"], session_id.as_str());
}

/// A small tmpfs mounted on a directory, unmounted on drop (panics included). Needs root,
/// as the README's test command runs.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// A new tmpfs of `size` (e.g. `"64m"`) mounted on the empty directory `dir`.
    fn on(dir: &std::path::Path, size: &str) -> SmallDisk {
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cannot mount a tmpfs on {}: this test needs root (run the README's test command \
             as root, as CI does)",
            dir.display()
        );
        SmallDisk(dir.to_owned())
    }

    /// Writes a file on the disk until no byte more fits; returns it.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        for block in [vec![0u8; 1 << 20], vec![0u8; 4096]] {
            loop {
                match file.write_all(&block) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(e) => panic!("cannot fill the disk: {e}"),
                }
            }
        }
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: the central may still hold its files open.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A central whose disk is full cannot record a reservation: the driver is denied with
/// `record_failed` at once, never told it is reserved, and the CP is not held.
///
/// sled writes into a segment it already holds on disk, so a full disk fails a write only
/// once that segment is used up: after the disk is filled, operators register CPs through
/// the API (each a CP, its credential and an audit line, flushed) until the central answers
/// that it cannot make one durable. From then on sled refuses every write, the
/// reservation's too. (A reservation written but not flushed takes the same way out; that
/// moment — the very write that finds the disk full being the reservation's flush — is not
/// reproduced here.)
#[test]
fn a_reservation_the_central_cannot_record_is_denied_not_answered() {
    // The central's database on a disk of its own, from its first byte.
    let (mut net, disk) = Network::start_on(BrokerKind::Embedded, &[], &[], |data| {
        SmallDisk::on(data, "64m")
    });
    net.start_cp("CP001", 0.35, &[]);
    net.wait_state("CP001", "available");
    let driver_secret = net.register_driver("D1");
    let updates = records::Reader::new(&net.broker.bootstrap, "driver.updates");

    disk.fill();
    let location = "x".repeat(80);
    let mut registered = 0;
    let refused = loop {
        let (status, body) = net.send(
            "POST",
            "/api/cps",
            Some(serde_json::json!({
                "id": format!("PAD{registered:05}"), "location": location, "price_eur_kwh": 0.3,
            })),
        );
        if status != 201 {
            break (status, body);
        }
        registered += 1;
        assert!(registered < 20_000, "the disk never filled up");
    };
    assert_eq!(refused.0, 500, "{}", refused.1);
    eprintln!(
        "the central stopped recording after {registered} CPs: {}",
        refused.1
    );

    let request_id = uuid::Uuid::new_v4();
    let request = serde_json::json!({
        "type": "supply_request", "v": 1, "id": uuid::Uuid::new_v4(), "ts": chrono::Utc::now(),
        "request_id": request_id, "driver_id": "D1", "cp_id": "CP001",
    });
    records::RawProducer::new(&net.broker.bootstrap).send(
        "driver.requests",
        Some("D1"),
        &request.to_string(),
        records::Proof::Key(&records::key_of(&driver_secret)),
    );
    let answer = wait_for("the central's answer", DEADLINE, || {
        updates
            .poll()
            .into_iter()
            .find(|u| u.value["request_id"] == request_id.to_string())
    });
    assert_eq!(answer.value["type"], "denied", "{}", answer.raw);
    assert_eq!(answer.value["reason"], "record_failed", "{}", answer.raw);
    assert_eq!(net.cp("CP001").unwrap()["state"], "available");
}

//! Many instances, any time (SPEC §6, §10): CPs and drivers join a running network and serve
//! at once, leave it (crashed or stopped cleanly) without disturbing any other, and a second
//! instance of a live id is refused while the first keeps serving. Times are printed.
//!
//! Refusals of a second engine, monitor or driver started apart are in
//! `resilience.rs` (`a_second_instance_of_a_live_id_is_refused_and_the_first_undisturbed`);
//! here the second instance is a whole `evcharge cp`, as on another machine.

mod support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::*;

/// Waits for the driver's ticket line and returns the ticket.
fn ticket_of(driver: &Proc) -> Value {
    wait_line(driver, "the driver's ticket", |l| l["type"] == "ticket")["ticket"].clone()
}

/// Each CP shows the state expected of it.
fn assert_states(net: &Network, expected: &[(&str, &str)]) {
    for (id, state) in expected {
        let cp = net.cp(id).unwrap_or_else(|| panic!("{id} is listed"));
        assert_eq!(cp["state"], *state, "{id} was disturbed: {cp}");
    }
}

/// Polls `check` until `driver` has ended: whatever happens elsewhere meanwhile, it holds.
fn while_running(driver: &mut Proc, mut check: impl FnMut()) {
    while driver.is_running() {
        check();
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cps_and_drivers_join_a_running_network_and_serve_at_once() {
    // A network at work: CP001 supplying D1, CP002 idle.
    let mut net = Network::start(BrokerKind::Embedded);
    net.start_cp("CP001", 0.30, &["--supply-duration", "15s"]);
    net.start_cp("CP002", 0.30, &[]);
    net.wait_state("CP001", "available");
    net.wait_state("CP002", "available");
    let mut d1 = net.start_driver("D1", &["--cp", "CP001"]);
    let supplying = net.wait_state("CP001", "charging");

    // New CPs join: listed at once (disconnected until their monitor reports), then available.
    let joined = Instant::now();
    net.start_cp("CP003", 0.45, &[]);
    net.start_cp("CP004", 0.25, &[]);
    wait_for("CP003 and CP004 to be listed", DEADLINE, || {
        net.cp("CP003").and(net.cp("CP004"))
    });
    eprintln!("new CPs listed after {:?}", joined.elapsed());
    net.wait_state("CP003", "available");
    net.wait_state("CP004", "available");
    eprintln!("new CPs available after {:?}", joined.elapsed());
    let cp3 = net.cp("CP003").unwrap();
    assert_eq!(cp3["price_eur_kwh"], 0.45);
    assert_eq!(cp3["location"], "Street of CP003");

    // A new driver serves a supply at a new CP at once.
    let asked = Instant::now();
    let mut d2 = net.start_driver("D2", &["--cp", "CP003"]);
    assert_eq!(d2.wait_exit(DEADLINE), 0);
    let ticket = ticket_of(&d2);
    eprintln!(
        "a new driver's supply at a new CP done after {:?}",
        asked.elapsed()
    );
    assert_eq!(ticket["outcome"], "completed");
    assert_eq!(ticket["cp_id"], "CP003");
    assert_priced(
        ticket["kwh"].as_f64().unwrap(),
        ticket["eur"].as_f64().unwrap(),
        0.45,
    );

    // A second `cp` for live CP004, from another machine: refused, and it stops.
    let twin = net.start_cp_elsewhere("CP004", 0.25, &[]);
    assert_ne!(net.cps[twin].wait_exit(DEADLINE), 0);
    let said = net.cps[twin].stderr_text();
    assert!(
        said.contains("CP004 is already connected from")
            || said.contains("the engine of CP004 is already running elsewhere"),
        "{said}"
    );
    assert!(said.contains("stopping"), "{said}");

    // None of this disturbed what was there: D1's supply carried on, in the same session,
    // to its ticket; CP002 stayed available; the live CP004 still serves.
    let now = net.cp("CP001").unwrap();
    assert_eq!(now["state"], "charging", "{now}");
    assert_eq!(now["session_id"], supplying["session_id"]);
    assert_eq!(now["driver_id"], "D1");
    while_running(&mut d1, || assert_states(&net, &[("CP002", "available")]));
    let ticket = ticket_of(&d1);
    assert_eq!(ticket["outcome"], "completed");
    assert_eq!(ticket["session_id"], supplying["session_id"]);
    let mut d3 = net.start_driver("D3", &["--cp", "CP004"]);
    assert_eq!(d3.wait_exit(DEADLINE), 0);
    assert_eq!(ticket_of(&d3)["outcome"], "completed");
    let running = net.cps.iter_mut().map(|p| p.is_running());
    assert_eq!(
        running.filter(|r| *r).count(),
        4,
        "all but the refused twin"
    );
}

#[test]
fn a_cp_leaving_crashed_or_stopped_disturbs_no_other() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.start_cp("CP001", 0.30, &["--supply-duration", "15s"]);
    let crashed = net.start_cp("CP002", 0.30, &[]);
    let stopped = net.start_cp("CP003", 0.30, &[]);
    net.start_cp("CP004", 0.30, &[]);
    for id in ["CP001", "CP002", "CP003", "CP004"] {
        net.wait_state(id, "available");
    }
    let mut d1 = net.start_driver("D1", &["--cp", "CP001"]);
    let supplying = net.wait_state("CP001", "charging");

    // One CP crashes (SIGKILL): only it shows disconnected.
    let killed = Instant::now();
    net.cps[crashed].kill();
    net.wait_state("CP002", "disconnected");
    eprintln!("crashed CP shown disconnected after {:?}", killed.elapsed());
    assert_states(&net, &[("CP001", "charging"), ("CP004", "available")]);

    // Another is stopped cleanly (SIGTERM): it exits 0 and only it shows disconnected.
    let asked = Instant::now();
    net.cps[stopped].terminate();
    assert_eq!(net.cps[stopped].wait_exit(DEADLINE), 0);
    net.wait_state("CP003", "disconnected");
    eprintln!("stopped CP shown disconnected after {:?}", asked.elapsed());

    // The supply elsewhere went on in the same session to a completed ticket; the CP left
    // standing stayed available and serves; the departed ones are refused with the reason.
    let now = net.cp("CP001").unwrap();
    assert_eq!(now["state"], "charging", "{now}");
    assert_eq!(now["session_id"], supplying["session_id"]);
    let mut d2 = net.start_driver("D2", &["--cp", "CP003"]);
    assert_eq!(d2.wait_exit(DEADLINE), 0);
    let denied = of_type(&d2.json_lines(), "denied");
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["reason"], "cp_disconnected");
    let mut d3 = net.start_driver("D3", &["--cp", "CP004"]);
    assert_eq!(d3.wait_exit(DEADLINE), 0);
    assert_eq!(ticket_of(&d3)["outcome"], "completed");
    while_running(&mut d1, || {
        assert_states(
            &net,
            &[("CP002", "disconnected"), ("CP003", "disconnected")],
        );
    });
    let ticket = ticket_of(&d1);
    assert_eq!(ticket["outcome"], "completed");
    assert_eq!(ticket["session_id"], supplying["session_id"]);
    assert!(ticket["kwh"].as_f64().unwrap() > 0.0);

    // Both come back as new instances and serve again.
    net.start_cp("CP002", 0.30, &[]);
    net.start_cp("CP003", 0.30, &[]);
    net.wait_state("CP002", "available");
    net.wait_state("CP003", "available");
    let plan = net.write_file("plan.txt", "CP002\nCP003\n");
    let mut d4 = net.start_driver("D4", &["--file", &plan]);
    assert_eq!(d4.wait_exit(DEADLINE * 2), 0);
    let tickets = of_type(&d4.json_lines(), "ticket");
    assert_eq!(tickets.len(), 2);
    assert!(tickets
        .iter()
        .all(|t| t["ticket"]["outcome"] == "completed"));
    let sessions = net.sessions();
    assert_eq!(sessions.len(), 4, "{sessions:#?}");
}

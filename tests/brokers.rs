//! Brokers fail too (issue 14): one broker of an embedded cluster of three goes down mid-supply
//! and comes back, and a tansu broker over sqlite is SIGKILLed mid-supply and started again
//! over the same storage. Either way every role carries on, and nothing acknowledged is lost:
//! the supply ends with its ticket, its kWh the engine's, and the network serves the next.

mod support;

use serde_json::Value;
use support::*;

/// The kWh the engine logged as the supply's final figure.
fn reported_kwh(engine: &Proc) -> f64 {
    engine
        .stderr_text()
        .lines()
        .find_map(|l| l.split("ended (completed): ").nth(1))
        .and_then(|rest| rest.split(" kWh").next())
        .and_then(|kwh| kwh.parse::<f64>().ok())
        .expect("the engine logs its final figures")
}

fn ticket_of(driver: &Proc) -> Value {
    wait_line(driver, "the driver's ticket", |l| l["type"] == "ticket")["ticket"].clone()
}

/// The kWh the central shows for `id` once it is above `above`.
fn energy_past(net: &Network, id: &str, above: f64) -> f64 {
    wait_for(&format!("{id} past {above} kWh"), DEADLINE, || {
        net.cp(id)
            .and_then(|cp| cp["kwh"].as_f64())
            .filter(|kwh| *kwh > above)
    })
}

/// A supply runs at `id` while `trouble` strikes the broker: it ends with its ticket, as the
/// engine measured it; the next driver is served; the central holds both sessions, once.
fn a_supply_survives(net: &mut Network, id: &str, trouble: impl FnOnce(&mut Network)) {
    let engine = net.start_cp(id, 0.30, &["--supply-duration", "10s"]);
    net.wait_state(id, "available");
    let mut driver = net.start_driver("D1", &["--cp", id]);
    let before = energy_past(net, id, 0.0);
    trouble(net);
    // Reports go on flowing to the central through the trouble.
    energy_past(net, id, before);
    assert_eq!(driver.wait_exit(DEADLINE), 0, "{}", driver.stderr_text());
    let ticket = ticket_of(&driver);
    assert_eq!(ticket["outcome"], "completed", "{ticket}");
    assert_eq!(
        ticket["kwh"].as_f64().unwrap(),
        reported_kwh(&net.cps[engine])
    );

    net.wait_state(id, "available");
    let mut next = net.start_driver("D2", &["--cp", id]);
    assert_eq!(next.wait_exit(DEADLINE), 0, "{}", next.stderr_text());
    assert_eq!(ticket_of(&next)["outcome"], "completed");
    let sessions = wait_for("both sessions closed", DEADLINE, || {
        let sessions = net.sessions();
        sessions
            .iter()
            .all(|s| !s["ended_at"].is_null())
            .then_some(sessions)
    });
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert!(
        sessions.iter().any(|s| s["kwh"] == ticket["kwh"]),
        "{sessions:?}"
    );
}

#[test]
fn one_broker_of_three_goes_down_mid_supply_and_nothing_acknowledged_is_lost() {
    let mut net = Network::start(BrokerKind::EmbeddedCluster);
    // Partition 1 of every topic is led by broker 2 (partition p by broker p % 3 + 1): the
    // CP's records are on it.
    let id = (1..)
        .map(|n| format!("CP{n:03}"))
        .find(|id| evcharge::bus::partition_of(id, 6) == 1)
        .unwrap();
    a_supply_survives(&mut net, &id, |net| {
        net.broker.broker_down(2);
        // Led by broker 3 meanwhile, the partition takes the CP's reports.
        let now = net.cp(&id).and_then(|cp| cp["kwh"].as_f64()).unwrap_or(0.0);
        energy_past(net, &id, now);
        net.broker.broker_up(2);
    });
}

#[test]
fn tansu_killed_mid_supply_and_started_again_over_its_storage_loses_nothing() {
    let mut net = Network::start(BrokerKind::TansuDurable);
    a_supply_survives(&mut net, "CP001", |net| net.broker.kill_and_restart());
}

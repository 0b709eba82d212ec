//! Several centrals, one network (issue 14): the centrals share the CPs through Kafka's
//! consumer group, hold the whole network's records through the changelog, pass requests on
//! to the one running a CP, and take over the CPs of one that is killed. On the embedded
//! broker, whose groups take several members (tansu 0.6's do not: see MACHINE.md).

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use support::*;

/// Waits for the driver's ticket line and returns the ticket.
fn ticket_of(driver: &Proc) -> Value {
    wait_line(driver, "the driver's ticket", |l| l["type"] == "ticket")["ticket"].clone()
}

/// CP ids, one on every partition of `cp.events` (6, the default): however the group
/// shares the partitions, each central runs some of them.
fn one_cp_per_partition() -> Vec<String> {
    let mut ids = Vec::new();
    let mut partitions = BTreeSet::new();
    for n in 1.. {
        let id = format!("CP{n:03}");
        if partitions.insert(evcharge::bus::partition_of(&id, 6)) {
            ids.push(id);
        }
        if ids.len() == 6 {
            return ids;
        }
    }
    unreachable!()
}

/// Each CP's object, as a list of CPs shows them.
fn by_id(cps: Vec<Value>) -> BTreeMap<String, Value> {
    cps.into_iter()
        .map(|cp| (cp["id"].as_str().unwrap_or_default().to_owned(), cp))
        .collect()
}

/// Waits until every list of CPs in `shown` (one per central) has every CP of `ids` in
/// `state`, run by instances `owners` accepts; returns which instance runs each.
fn wait_shown(
    shown: &[&dyn Fn() -> Vec<Value>],
    ids: &[String],
    state: &str,
    owners: impl Fn(&BTreeSet<String>) -> bool,
) -> BTreeMap<String, String> {
    wait_for(
        &format!("every CP {state} on every central"),
        DEADLINE,
        || {
            let lists: Vec<BTreeMap<String, Value>> =
                shown.iter().map(|list| by_id(list())).collect();
            let mut run_by = BTreeMap::new();
            for id in ids {
                for list in &lists {
                    let cp = list.get(id)?;
                    if cp["state"] != state {
                        return None;
                    }
                    run_by.insert(id.clone(), cp["owner"].as_str()?.to_owned());
                }
            }
            let instances: BTreeSet<String> = run_by.values().cloned().collect();
            owners(&instances).then_some(run_by)
        },
    )
}

/// Waits until the network's first central and `other` both show every CP of `ids` in
/// `state`; returns which instance runs each.
fn shown_on_both(
    net: &Network,
    other: &OtherCentral,
    ids: &[String],
    state: &str,
) -> BTreeMap<String, String> {
    wait_shown(&[&|| first(net), &|| other.cps(net)], ids, state, |_| true)
}

/// The CPs the network's first central shows.
fn first(net: &Network) -> Vec<Value> {
    net.get("/api/cps").as_array().cloned().unwrap_or_default()
}

#[test]
fn two_centrals_share_the_cps_and_serve_drivers_across_them() {
    let mut net = Network::start(BrokerKind::Embedded);
    let other = net.start_another_central("central-2");
    let ids = one_cp_per_partition();
    for id in &ids {
        // Long enough for the racers below to find every CP busy.
        net.start_cp(id, 0.30, &["--supply-duration", "8s"]);
    }
    let run_by = wait_shown(
        &[&|| first(&net), &|| other.cps(&net)],
        &ids,
        "available",
        |owners| owners.len() == 2,
    );
    eprintln!("CPs run by: {run_by:?}");

    // Each console shows both instances answering, the partitions shared between them.
    let centrals_on: [&dyn Fn() -> Value; 2] = [&|| net.get("/api/centrals"), &|| {
        other.get(&net, "/api/centrals").unwrap_or_default()
    }];
    for centrals in centrals_on {
        let shown = wait_for(
            "both centrals answering, every partition held",
            DEADLINE,
            || {
                let shown = centrals();
                let list = shown.as_array()?;
                let mut partitions: Vec<i64> = list
                    .iter()
                    .flat_map(|c| c["partitions"].as_array().cloned().unwrap_or_default())
                    .filter_map(|p| p.as_i64())
                    .collect();
                partitions.sort();
                let alive = list.iter().filter(|c| c["alive"] == true).count();
                (alive == 2 && partitions == (0..6).collect::<Vec<_>>()).then_some(shown)
            },
        );
        let list = shown.as_array().unwrap();
        assert_eq!(
            list.iter().filter(|c| c["this"] == true).count(),
            1,
            "{shown}"
        );
        let cps: u64 = list.iter().filter_map(|c| c["cps"].as_u64()).sum();
        assert_eq!(cps, ids.len() as u64, "{shown}");
    }

    // An operator on the first console changes the terms of a CP the other runs: its
    // actor there takes them, and both consoles show them.
    let theirs = run_by
        .iter()
        .find(|(_, owner)| *owner == "central-2")
        .map(|(id, _)| id.clone())
        .expect("central-2 runs a CP");
    let path = format!("/api/cps/{theirs}");
    let (status, body) = net.send(
        "PATCH",
        &path,
        Some(serde_json::json!({"price_eur_kwh": 0.35})),
    );
    assert_eq!(status, 200, "{body}");
    let lists: [&dyn Fn() -> Vec<Value>; 2] = [&|| first(&net), &|| other.cps(&net)];
    for list in lists {
        wait_for("the new tariff on both consoles", DEADLINE, || {
            by_id(list())
                .get(&theirs)
                .filter(|cp| cp["price_eur_kwh"] == 0.35)
                .map(|_| ())
        });
    }

    // A driver at every CP: each request reaches the central holding the driver's
    // partition of driver.requests, which reserves the CP or passes the request on to the
    // central running it.
    let drivers: Vec<Proc> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| net.start_driver(&format!("D{n}"), &["--cp", id]))
        .collect();
    for mut driver in drivers {
        assert_eq!(driver.wait_exit(DEADLINE), 0, "{}", driver.stderr_text());
        assert_eq!(ticket_of(&driver)["outcome"], "completed");
    }
    // Both centrals hold every session, once.
    for sessions in [
        net.sessions(),
        wait_for("the sessions on the other central", DEADLINE, || {
            other
                .get(&net, "/api/sessions")
                .and_then(|s| s.as_array().cloned())
                .filter(|s| s.len() == ids.len())
        }),
    ] {
        let cps: BTreeSet<&str> = sessions
            .iter()
            .filter_map(|s| s["cp_id"].as_str())
            .collect();
        assert_eq!(sessions.len(), ids.len(), "{sessions:?}");
        assert_eq!(cps.len(), ids.len(), "one session at each CP: {sessions:?}");
    }

    wait_shown(
        &[&|| first(&net), &|| other.cps(&net)],
        &ids,
        "available",
        |_| true,
    );
    // Requests for any CP, from more drivers than CPs at once: no CP is booked twice. A
    // reservation may end early (a monitor's link dropped on a busy machine cancels it) and
    // its CP go to another racer after: never two at once.
    let racers: Vec<Proc> = (0..ids.len() + 2)
        .map(|n| net.start_driver(&format!("R{n}"), &["--any"]))
        .collect();
    for mut racer in racers {
        let _ = racer.wait_exit(DEADLINE);
    }
    let sessions = wait_for("the racers' sessions closed", DEADLINE, || {
        let racing: Vec<Value> = net
            .sessions()
            .into_iter()
            .filter(|s| s["driver_id"].as_str().is_some_and(|d| d.starts_with('R')))
            .collect();
        racing
            .iter()
            .all(|s| !s["ended_at"].is_null())
            .then_some(racing)
    });
    type At = chrono::DateTime<chrono::FixedOffset>;
    let mut at_cp: BTreeMap<String, Vec<(At, At)>> = BTreeMap::new();
    for s in &sessions {
        let at = |field: &str| At::parse_from_rfc3339(s[field].as_str().unwrap()).unwrap();
        let cp = s["cp_id"].as_str().unwrap_or_default().to_owned();
        at_cp
            .entry(cp)
            .or_default()
            .push((at("reserved_at"), at("ended_at")));
    }
    for (cp, mut spans) in at_cp {
        spans.sort();
        for pair in spans.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "{cp} booked twice at once: {pair:?}"
            );
        }
    }
    assert!(
        sessions.len() >= ids.len() / 2,
        "few racers got a CP: {sessions:?}"
    );

    // A new secret issued on the first console drops the monitor linked to the other:
    // it holds the old secret, and is refused from then on.
    let (status, body) = net.send("POST", &format!("{path}/secret"), None);
    assert_eq!(status, 201, "{body}");
    shown_on_both(&net, &other, std::slice::from_ref(&theirs), "disconnected");

    // A monitor that knows only the first central, for a CP the other runs: the first
    // relays its link over Kafka, and the owner judges it as one of its own.
    let held: BTreeSet<i32> = wait_for("central-2's partitions", DEADLINE, || {
        let centrals = other.get(&net, "/api/centrals")?;
        let this = centrals.as_array()?.iter().find(|c| c["this"] == true)?;
        let held = this["partitions"]
            .as_array()?
            .iter()
            .filter_map(|p| p.as_i64());
        Some(held.map(|p| p as i32).collect::<BTreeSet<_>>())
    });
    let relayed = (1..)
        .map(|n| format!("RL{n:02}"))
        .find(|id| held.contains(&evcharge::bus::partition_of(id, 6)))
        .unwrap();
    let part = net.start_cp_linked_to(&relayed, net.central_tcp, &["--supply-duration", "2s"]);
    let relayed_ids = [relayed.clone()];
    let owners = shown_on_both(&net, &other, &relayed_ids, "available");
    assert_eq!(owners[&relayed], "central-2");
    let via = format!("{relayed}: monitor authenticated from ");
    assert!(
        other
            .proc
            .stderr_text()
            .lines()
            .any(|l| l.contains(&via) && l.ends_with("via central-1")),
        "central-2 took {relayed}'s monitor directly"
    );
    let mut driver = net.start_driver("DR", &["--cp", &relayed]);
    assert_eq!(driver.wait_exit(DEADLINE), 0, "{}", driver.stderr_text());
    let ticket = ticket_of(&driver);
    assert_eq!(ticket["outcome"], "completed", "{ticket}");
    assert!(ticket["kwh"].as_f64().unwrap() > 0.0, "{ticket}");
    // Frozen, its monitor falls silent with its link open: both consoles show the CP
    // disconnected; thawed, it authenticates again by itself.
    net.cps[part].freeze();
    shown_on_both(&net, &other, &relayed_ids, "disconnected");
    net.cps[part].thaw();
    shown_on_both(&net, &other, &relayed_ids, "available");
}

#[test]
fn the_cps_of_a_killed_central_are_taken_over_and_their_supplies_end_with_tickets() {
    // Three centrals, two of them left after the kill.
    let mut net = Network::start(BrokerKind::Embedded);
    let other = net.start_another_central("central-2");
    let third = net.start_another_central("central-3");
    let ids = one_cp_per_partition();
    let mut engines = BTreeMap::new();
    for id in &ids {
        engines.insert(
            id.clone(),
            net.start_cp(id, 0.30, &["--supply-duration", "12s"]),
        );
    }
    let run_by = wait_shown(
        &[&|| first(&net), &|| other.cps(&net), &|| third.cps(&net)],
        &ids,
        "available",
        |owners| owners.len() == 3,
    );
    let doomed = run_by
        .iter()
        .find(|(_, owner)| *owner == "central-1")
        .map(|(id, _)| id.clone())
        .expect("central-1 runs a CP");
    let mut driver = net.start_driver("D1", &["--cp", &doomed]);
    wait_for("energy at the doomed central's CP", DEADLINE, || {
        other
            .cps(&net)
            .into_iter()
            .find(|cp| cp["id"] == doomed.as_str() && cp["kwh"].as_f64().unwrap_or(0.0) > 0.0)
    });

    // With the default session, on a broker that states no minimum: the shortest we take.
    let said = other.proc.stderr_text();
    assert!(
        said.contains("consumer group session 3s: the broker states no minimum"),
        "{said}"
    );
    net.kill_central();
    // The survivor's console shows the killed instance silent.
    wait_for(
        "central-1 silent on the survivor's console",
        DEADLINE,
        || {
            let centrals = other.get(&net, "/api/centrals")?;
            centrals
                .as_array()?
                .iter()
                .find(|c| c["instance"] == "central-1" && c["alive"] == false)
                .map(|_| ())
        },
    );
    // The survivors run every CP now, the monitors moved to them by themselves.
    wait_shown(
        &[&|| other.cps(&net), &|| third.cps(&net)],
        &ids,
        "available",
        |owners| !owners.contains("central-1"),
    );
    assert_eq!(driver.wait_exit(DEADLINE), 0, "{}", driver.stderr_text());
    let ticket = ticket_of(&driver);
    assert_eq!(ticket["outcome"], "completed");
    let engine_log = net.cps[engines[&doomed]].stderr_text();
    let reported = engine_log
        .lines()
        .find_map(|l| l.split("ended (completed): ").nth(1))
        .and_then(|rest| rest.split(" kWh").next())
        .and_then(|kwh| kwh.parse::<f64>().ok())
        .expect("the engine logs its final figures");
    assert_eq!(ticket["kwh"].as_f64().unwrap(), reported);
    let sessions = other.get(&net, "/api/sessions").unwrap();
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["kwh"], ticket["kwh"]);
}

#[test]
fn a_central_started_with_an_empty_database_recovers_the_network_from_kafka() {
    // The cluster key is given, as to every central of a network: it is not in the
    // database that goes.
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("cluster-key").display().to_string();
    let mut net = Network::start_with(BrokerKind::Embedded, &["--cluster-key-file", &key]);
    net.start_cp("CP001", 0.30, &[]);
    net.wait_state("CP001", "available");
    let mut driver = net.start_driver("D1", &["--cp", "CP001"]);
    assert_eq!(driver.wait_exit(DEADLINE), 0);
    let before = net.sessions();
    assert_eq!(before.len(), 1);
    let audit = net.audit();

    net.kill_central();
    let data = net.dir.path().join("central-data");
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    net.start_central();
    // Until its records are back it says so, for a moment, rather than refuse the token.
    // Then the operator's token, the CP and its secret, the session, the audit log: all back.
    wait_for("the session back", DEADLINE, || {
        let (status, sessions) = net.send("GET", "/api/sessions", None);
        if status == 503 {
            let why = sessions["error"].as_str().unwrap_or_default();
            assert!(why.contains("restoring its records from Kafka"), "{why}");
        }
        (status == 200 && sessions.as_array() == Some(&before)).then_some(())
    });
    net.wait_state("CP001", "available");
    assert!(net.audit().len() >= audit.len());
    // The driver's secret too: it is served again.
    let mut again = net.start_driver("D1", &["--cp", "CP001"]);
    assert_eq!(again.wait_exit(DEADLINE), 0);
    assert_eq!(ticket_of(&again)["outcome"], "completed");
    assert_eq!(net.sessions().len(), 2);
}

//! The network over three hosts (SPEC §10): Linux network namespaces on this machine, each
//! with its own address. Host A runs the broker (tansu) and the central, host B three CPs,
//! host C the drivers; every link between them crosses the hosts' bridge. The full supply
//! flow runs across them; then host B's processes stop dead (as in a power cut) and are
//! killed, and started again: the central's detection and the network's recovery are
//! measured (printed, bounded generously).
//!
//! Needs root and iproute2's `ip`; fails with a clear message without them, never skips.

#[path = "support/netns.rs"]
mod netns;
mod support;

use netns::Hosts;
use serde_json::Value;
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

const BROKER_HOST: usize = 0;
const CP_HOST: usize = 1;
const DRIVER_HOST: usize = 2;

/// The CPs of host B and their prices.
const CPS: [(&str, f64); 3] = [("CP001", 0.40), ("CP002", 0.31), ("CP003", 0.27)];

/// Generous bound on detecting a dead host, or on a restarted one reporting again.
const WITHIN: Duration = Duration::from_secs(30);

/// The central's API, reached from the test's own address on the hosts' bridge.
struct Api {
    base: String,
    token: String,
}

impl Api {
    fn get(&self, path: &str) -> Option<Value> {
        ureq::get(&format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.token))
            .call()
            .ok()?
            .into_json()
            .ok()
    }

    fn cp(&self, id: &str) -> Option<Value> {
        let cps = self.get("/api/cps")?;
        cps.as_array()?.iter().find(|c| c["id"] == id).cloned()
    }

    /// Waits until the CP shows `state`.
    fn wait_state(&self, id: &str, state: &str) -> Value {
        wait_for(&format!("{id} to be {state}"), DEADLINE, || {
            self.cp(id).filter(|c| c["state"] == state)
        })
    }

    fn sessions(&self) -> Vec<Value> {
        self.get("/api/sessions")
            .and_then(|s| s.as_array().cloned())
            .unwrap_or_default()
    }
}

/// Starts processes on the hosts, their output in `dir`.
struct Launcher<'a> {
    hosts: &'a Hosts,
    dir: &'a Path,
}

impl Launcher<'_> {
    fn start(&self, host: usize, name: &str, program: &str, args: &[String]) -> Proc {
        let (ip, args) = self.hosts.command_on(host, program, args);
        // The broker is tansu: its group takes a central with a short session for gone on
        // a loaded machine (see `tansu_session` in tests/support/network.rs).
        let mut env = FAST_ENV.to_vec();
        env.push(("EVCHARGE_CENTRAL__SESSION_TIMEOUT", "30s"));
        Proc::spawn(self.dir, name, &ip, &args, &env)
    }
}

/// Everything a role on host B or C needs to know of host A.
struct HostA {
    kafka: String,
    central: String,
}

/// Starts `evcharge cp` for every CP on host B; `round` tells the runs apart in the logs.
fn start_cps(on: &Launcher, a: &HostA, round: &str) -> Vec<Proc> {
    CPS.iter()
        .map(|(id, _)| {
            let data = on.dir.join(format!("engine-{id}")).display().to_string();
            let args = strings(&[
                "--kafka",
                &a.kafka,
                "cp",
                "--id",
                id,
                "--central",
                &a.central,
                "--secret-file",
                &on.dir.join(format!("{id}.secret")).display().to_string(),
                "--data",
                &data,
            ]);
            on.start(CP_HOST, &format!("{id}-{round}"), evcharge(), &args)
        })
        .collect()
}

/// Every driver of host C.
const DRIVERS: [&str; 8] = ["D1", "D2", "D3", "D4", "D5", "D6", "D7", "D8"];

/// A driver on host C, printing JSON lines.
fn drive(on: &Launcher, a: &HostA, driver: &str, plan: &[&str]) -> Proc {
    // Where register_driver_offline wrote it, beside the central's data.
    let secret = on.dir.join(format!("driver-{driver}.secret"));
    let mut args = strings(&[
        "--kafka",
        &a.kafka,
        "driver",
        "--id",
        driver,
        "--json",
        "--secret-file",
        &secret.display().to_string(),
    ]);
    args.extend(plan.iter().map(|s| s.to_string()));
    on.start(DRIVER_HOST, driver, evcharge(), &args)
}

/// One driver per CP, all at once; every one gets a priced, completed ticket.
fn supply_at_every_cp(on: &Launcher, a: &HostA, drivers: &[&str]) {
    let mut running: Vec<Proc> = CPS
        .iter()
        .zip(drivers)
        .map(|((cp, _), d)| drive(on, a, d, &["--cp", cp]))
        .collect();
    for ((cp, price), driver) in CPS.iter().zip(&mut running) {
        assert_eq!(driver.wait_exit(DEADLINE), 0, "{} failed", driver.name);
        let lines = driver.json_lines();
        let tickets = of_type(&lines, "ticket");
        assert_eq!(tickets.len(), 1, "{lines:#?}");
        let t = &tickets[0]["ticket"];
        assert_eq!(t["outcome"], "completed");
        assert_eq!(t["cp_id"], *cp);
        assert_eq!(t["driver_id"], driver.name.as_str());
        let kwh = t["kwh"].as_f64().unwrap();
        assert!(kwh > 0.0, "{t}");
        assert_priced(kwh, t["eur"].as_f64().unwrap(), *price);
    }
}

/// The one denial a one-shot driver got.
fn denial(mut driver: Proc) -> Value {
    assert_eq!(driver.wait_exit(DEADLINE), 0, "{} failed", driver.name);
    let lines = driver.json_lines();
    let denied = of_type(&lines, "denied");
    assert_eq!(denied.len(), 1, "{lines:#?}");
    assert!(
        !denied[0]["detail"].as_str().unwrap_or("").is_empty(),
        "{denied:?}"
    );
    denied[0].clone()
}

#[test]
fn a_network_over_three_hosts_supplies_detects_a_dead_host_and_recovers() {
    // Dropped last: every process is killed before its host goes away.
    let hosts = Hosts::create(3);
    let mut dir = tempfile::tempdir().unwrap();
    // EVCHARGE_TEST_KEEP=1 keeps every log of the run, as for the other end-to-end tests.
    if std::env::var_os("EVCHARGE_TEST_KEEP").is_some() {
        dir.disable_cleanup(true);
        eprintln!("keeping {}", dir.path().display());
    }
    let on = Launcher {
        hosts: &hosts,
        dir: dir.path(),
    };
    let host_a = hosts.addr(BROKER_HOST);
    let a = HostA {
        kafka: format!("{host_a}:9092"),
        central: format!("{host_a}:5000"),
    };

    // Host A: tansu, listening on and advertising host A's address, and the central.
    let listener = format!("tcp://{}", a.kafka);
    let tansu_args = strings(&[
        "broker",
        "--listener-url",
        &listener,
        "--advertised-listener-url",
        &listener,
        "--storage-engine",
        "memory://tansu/",
    ]);
    let _tansu = on.start(BROKER_HOST, "tansu", &tansu_binary(), &tansu_args);
    wait_for("tansu on host A", DEADLINE, || {
        TcpStream::connect(&a.kafka).ok()
    });
    let data = dir.path().join("central-data");
    let api = Api {
        base: format!("http://{host_a}:8002"),
        token: prepare_operator(&data),
    };
    // The CPs of host B are registered as an operator would, before the central starts.
    for (id, price) in CPS {
        evcharge::harness::register_cps(
            Path::new(evcharge()),
            &data,
            id,
            None,
            (&format!("host B, bay {id}"), price),
            &dir.path().join(format!("{id}.secret")),
        )
        .unwrap();
    }
    // And the drivers of host C.
    for driver in DRIVERS {
        register_driver_offline(&data, driver);
    }
    let central_args = strings(&[
        "--kafka",
        &a.kafka,
        "central",
        "--listen",
        &a.central,
        "--http",
        &format!("{host_a}:8002"),
        "--data",
        &data.display().to_string(),
    ]);
    let central = on.start(BROKER_HOST, "central", evcharge(), &central_args);
    wait_for(
        &format!("the central's API from {}", hosts.own_addr()),
        DEADLINE,
        || api.get("/api/health"),
    );

    // Host B: three CPs. The central sees their monitors come from host B's address.
    let mut cps = start_cps(&on, &a, "first");
    for (id, _) in CPS {
        api.wait_state(id, "available");
    }
    let host_b = hosts.addr(CP_HOST);
    let said = central.stderr_text();
    for (id, _) in CPS {
        let seen = format!("{id}: monitor authenticated from {host_b}:");
        assert!(said.contains(&seen), "no \"{seen}\" in:\n{said}");
    }

    // Host C: a driver at each CP at once; the central keeps the same priced sessions.
    supply_at_every_cp(&on, &a, &["D1", "D2", "D3"]);
    let sessions = api.sessions();
    assert_eq!(sessions.len(), 3, "{sessions:#?}");
    for s in &sessions {
        assert_eq!(s["outcome"], "completed", "{s}");
        let price = CPS.iter().find(|(id, _)| s["cp_id"] == *id).unwrap().1;
        assert_priced(
            s["kwh"].as_f64().unwrap(),
            s["eur"].as_f64().unwrap(),
            price,
        );
    }

    // Host B loses power: its processes stop dead, without closing a connection. The
    // central, on host A, only hears silence, and shows every CP disconnected once its
    // silence window has passed. Then they are gone for good.
    for cp in &mut cps {
        cp.freeze();
    }
    let silent = Instant::now();
    for (id, _) in CPS {
        api.wait_state(id, "disconnected");
    }
    let detection = silent.elapsed();
    eprintln!("host B lost power: every CP shown disconnected after {detection:?}");
    assert!(detection < WITHIN, "detection took {detection:?}");
    for cp in &mut cps {
        cp.kill();
    }

    // Drivers asking meanwhile are told why not.
    let at_cp = denial(drive(&on, &a, "D4", &["--cp", "CP001"]));
    assert_eq!(at_cp["reason"], "cp_disconnected", "{at_cp}");
    let anywhere = denial(drive(&on, &a, "D5", &["--any"]));
    assert_eq!(anywhere["reason"], "no_cp_available", "{anywhere}");

    // Host B comes back: every CP reports again and serves a new supply.
    let restarted = Instant::now();
    let _cps = start_cps(&on, &a, "again");
    for (id, _) in CPS {
        api.wait_state(id, "available");
    }
    let recovery = restarted.elapsed();
    eprintln!("host B's processes started again: every CP available again after {recovery:?}");
    assert!(recovery < WITHIN, "recovery took {recovery:?}");
    supply_at_every_cp(&on, &a, &["D6", "D7", "D8"]);
    let sessions = api.sessions();
    assert_eq!(sessions.len(), 6, "{sessions:#?}");
    assert!(sessions.iter().all(|s| s["outcome"] == "completed"));
}

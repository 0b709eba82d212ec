//! `deploy/scripts/`: `evcharge-local.sh` and `demo.sh`, run end to end against real
//! processes, and read statically (bash, shellcheck, the flags they use).

use crate::support::*;
use crate::{
    check_addresses, check_variables, deploy, flags_in, flags_of, read, text, SUBCOMMANDS,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Output};

mod registration;
use registration::assert_started_with_their_secrets;

// ---------------------------------------------------------------------------------------------
// The scripts, end to end.

/// A run directory of `deploy/scripts/evcharge-local.sh`; every process recorded there is
/// killed when this is dropped, whatever happened.
struct LocalRun {
    run: PathBuf,
    env: Vec<(String, String)>,
    /// Last, so that it is deleted after every process has been killed.
    _dir: tempfile::TempDir,
}

impl LocalRun {
    fn new(env: &[(&str, &str)]) -> LocalRun {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let mut all: Vec<(String, String)> = FAST_ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        all.push(("EVCHARGE_BIN".into(), evcharge().into()));
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        LocalRun {
            run,
            env: all,
            _dir: dir,
        }
    }

    /// Runs the script with `args`; its exit status and output.
    fn script(&self, args: &[&str]) -> Output {
        let mut command = Command::new(deploy("scripts/evcharge-local.sh"));
        command.arg("--run-dir").arg(&self.run).args(args);
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command.output().expect("the script runs")
    }

    /// Runs the script and expects it to succeed; its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.script(args);
        assert!(
            out.status.success(),
            "evcharge-local.sh {args:?} failed: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `list`, as id → (pid, state).
    fn list(&self) -> BTreeMap<String, (String, String)> {
        let out = self.ok(&["list"]);
        let mut lines = out.lines();
        let header = lines.next().unwrap_or_default();
        assert!(header.starts_with("ID"), "list has a header: {out}");
        lines
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                assert!(
                    f.len() >= 5,
                    "a list row has id, kind, pid, state, log: {l}"
                );
                (f[0].to_string(), (f[2].to_string(), f[3].to_string()))
            })
            .collect()
    }

    fn pid_of(&self, id: &str) -> u32 {
        let list = self.list();
        let (pid, state) = list
            .get(id)
            .unwrap_or_else(|| panic!("{id} listed: {list:?}"));
        assert_eq!(state, "running", "{id}: {list:?}");
        pid.parse().unwrap()
    }

    fn state_of(&self, id: &str) -> String {
        self.list().get(id).map(|r| r.1.clone()).unwrap_or_default()
    }

    fn recorded(&self) -> Vec<(u32, String)> {
        let Ok(entries) = std::fs::read_dir(&self.run) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| {
                let path = e.ok()?.path();
                if path.extension()? != "pid" {
                    return None;
                }
                let content = std::fs::read_to_string(&path).ok()?;
                let mut f = content.split_whitespace();
                Some((f.next()?.parse().ok()?, f.next()?.to_string()))
            })
            .collect()
    }
}

impl Drop for LocalRun {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(entries) = std::fs::read_dir(&self.run) {
                for e in entries.flatten() {
                    let path = e.path();
                    if path.extension().is_some_and(|x| x == "log") {
                        let all = std::fs::read_to_string(&path).unwrap_or_default();
                        let lines: Vec<&str> = all.lines().collect();
                        let tail = &lines[lines.len().saturating_sub(20)..];
                        eprintln!("----- {} -----\n{}", path.display(), tail.join("\n"));
                    }
                }
            }
        }
        for (pid, started) in self.recorded() {
            if alive(pid).as_deref() == Some(started.as_str()) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// The start time of a live (not zombie) process, the way the script records it.
fn alive(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields[0] == "Z" || fields[0] == "X" {
        return None;
    }
    Some(fields[19].to_string())
}

fn wait_gone(pid: u32) {
    wait_for(&format!("process {pid} to be gone"), DEADLINE, || {
        alive(pid).is_none().then_some(())
    });
}

#[test]
fn the_local_script_starts_lists_stops_and_crashes_cps_and_drivers() {
    let net = Network::start(BrokerKind::Embedded);
    let central = format!("127.0.0.1:{}", net.central_tcp);
    let console = format!("127.0.0.1:{}", net.http);
    // A central of another machine: the script registers through its API, as an operator.
    let run = LocalRun::new(&[
        ("EVCHARGE_KAFKA__BOOTSTRAP", &net.broker.bootstrap),
        ("EVCHARGE_MONITOR__CENTRAL", &central),
        ("EVCHARGE_CENTRAL__HTTP", &console),
        ("EVCHARGE_API_TOKEN", &net.token),
    ]);

    // Three CPs, each registered, with its secret, data, log and pid file, all available at
    // the central; the third at the location and tariff given.
    let out = run.ok(&["start-cps", "2"]);
    let third = run.ok(&[
        "start-cps",
        "1",
        "--first",
        "3",
        "--location",
        "Dock three",
        "--price",
        "0.42",
    ]);
    let out = format!("{out}{third}");
    for id in ["CP001", "CP002", "CP003"] {
        assert!(out.contains(&format!("registered {id} through ")), "{out}");
        assert!(out.contains(&format!("started {id} (pid ")), "{out}");
        net.wait_state(id, "available");
        assert!(run.run.join(format!("{id}.log")).exists());
    }
    assert_started_with_their_secrets(&run, &["CP001", "CP002", "CP003"], Some(&net.token));
    let cp3 = net.cp("CP003").unwrap();
    assert_eq!(
        (cp3["location"].as_str(), cp3["price_eur_kwh"].as_f64()),
        (Some("Dock three"), Some(0.42))
    );
    let cp1 = net.cp("CP001").unwrap();
    assert!(
        cp1["location"].as_str().unwrap().starts_with("CP001 on "),
        "the default location: {cp1}"
    );
    assert_eq!(cp1["price_eur_kwh"], 0.35, "the default tariff");
    let listed = run.list();
    for id in ["CP001", "CP002", "CP003"] {
        assert_eq!(listed[id].1, "running", "{listed:?}");
    }
    // Starting one again does not make a second instance, nor a second registration.
    let again = run.ok(&["start", "CP001"]);
    assert!(again.contains("CP001 already runs"), "{again}");
    let again = run.ok(&["start-cps", "1"]);
    assert!(
        again.contains("CP001 already runs") && !again.contains("registered"),
        "{again}"
    );

    // `stop CP002` stops exactly that one.
    let (cp1, cp2, cp3) = (
        run.pid_of("CP001"),
        run.pid_of("CP002"),
        run.pid_of("CP003"),
    );
    let out = run.ok(&["stop", "CP002"]);
    assert!(out.contains("stopped CP002"), "{out}");
    wait_gone(cp2);
    net.wait_state("CP002", "disconnected");
    assert_eq!(net.cp("CP001").unwrap()["state"], "available");
    assert_eq!(net.cp("CP003").unwrap()["state"], "available");
    assert!(alive(cp1).is_some() && alive(cp3).is_some());
    let listed = run.list();
    assert_eq!(listed["CP002"].1, "stopped", "{listed:?}");
    assert_eq!(listed["CP001"].1, "running", "{listed:?}");

    // `crash-random` kills one of those still running, and says which.
    let out = run.ok(&["crash-random", "cp"]);
    let crashed = out
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("crash-random names what it crashed: {out}"))
        .to_string();
    assert!(out.starts_with("crashed "), "{out}");
    let (victim, survivor, victim_pid) = match crashed.as_str() {
        "CP001" => ("CP001", "CP003", cp1),
        "CP003" => ("CP003", "CP001", cp3),
        other => panic!("crash-random chose {other}, which was not running: {out}"),
    };
    assert!(out.contains(&format!("(pid {victim_pid}")), "{out}");
    assert!(alive(victim_pid).is_none(), "{victim} was killed");
    net.wait_state(victim, "disconnected");
    assert_eq!(run.state_of(victim), "down");
    assert_eq!(run.state_of(survivor), "running");
    assert_eq!(net.cp(survivor).unwrap()["state"], "available");

    // Started again the same way, it comes back; or with start-cps, with the secret it has.
    run.ok(&["start", victim]);
    let out = run.ok(&["start-cps", "1", "--first", "2"]);
    assert!(
        out.contains("started CP002") && !out.contains("registered"),
        "{out}"
    );
    for id in ["CP001", "CP002", "CP003"] {
        net.wait_state(id, "available");
    }

    // Two drivers, each registered and started with its secret, two supplies each at any
    // CP: their sessions close.
    let out = run.ok(&["start-drivers", "2", "--requests", "2"]);
    for id in ["D001", "D002"] {
        assert!(out.contains(&format!("registered {id} through ")), "{out}");
        assert!(out.contains(&format!("started {id} (pid ")), "{out}");
    }
    assert_started_with_their_secrets(&run, &["D001", "D002"], Some(&net.token));
    for driver in ["D001", "D002"] {
        wait_for(
            &format!("a completed session of {driver}"),
            DEADLINE * 2,
            || {
                net.sessions()
                    .into_iter()
                    .find(|s| s["driver_id"] == driver && s["outcome"] == "completed")
            },
        );
    }
    // A driver whose plan is done leaves, and the list says so.
    wait_for("both drivers to finish their plan", DEADLINE * 2, || {
        let listed = run.list();
        (listed["D001"].1 == "down" && listed["D002"].1 == "down").then_some(())
    });
    // Started again, a driver keeps its registration and its secret, which still works.
    let out = run.ok(&["start-drivers", "1", "--requests", "1"]);
    assert!(
        out.contains("started D001") && !out.contains("registered"),
        "{out}"
    );
    let completed = |driver: &str| {
        net.sessions()
            .into_iter()
            .filter(|s| s["driver_id"] == driver && s["outcome"] == "completed")
            .count()
    };
    wait_for("a third completed session of D001", DEADLINE * 2, || {
        (completed("D001") >= 3).then_some(())
    });

    // Everything stops; nothing recorded is left running.
    let pids: Vec<u32> = run.recorded().iter().map(|r| r.0).collect();
    run.ok(&["stop-all"]);
    for pid in pids {
        assert!(alive(pid).is_none(), "process {pid} outlived stop-all");
    }
    assert!(run.list().values().all(|(_, state)| state == "stopped"));
}

#[test]
fn the_local_script_says_what_is_wrong() {
    let run = LocalRun::new(&[]);
    let help = run.ok(&["--help"]);
    assert!(help.starts_with("Usage: evcharge-local.sh"), "{help}");
    for (args, says) in [
        (vec!["frobnicate"], "unknown command 'frobnicate'"),
        (vec!["stop", "CP999"], "no CP999 in"),
        (vec!["start-cps", "many"], "must be a number"),
        (vec!["start-cps"], "needs a number of CPs"),
        (vec!["crash-random"], "nothing of kind cp driver is running"),
        (vec!["crash-random", "broker"], "unknown kind broker"),
        (
            vec!["start-drivers", "1", "--file", "/nonexistent"],
            "cannot read",
        ),
        // No central here and no operator's token: no way to register the CP or driver.
        (
            vec!["start-cps", "1"],
            "needs an operator's API token in EVCHARGE_API_TOKEN",
        ),
        (
            vec!["start-drivers", "1"],
            "needs an operator's API token in EVCHARGE_API_TOKEN",
        ),
    ] {
        let out = run.script(&args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(err.starts_with("evcharge-local: "), "{args:?}: {err}");
    }
    let out = Command::new(deploy("scripts/evcharge-local.sh"))
        .args(["--run-dir", &run.run.display().to_string(), "list"])
        .env("EVCHARGE_BIN", "/nonexistent/evcharge")
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    assert!(out.status.success(), "list needs no binary");
    let out = Command::new(deploy("scripts/evcharge-local.sh"))
        .args([
            "--run-dir",
            &run.run.display().to_string(),
            "start-cps",
            "1",
        ])
        .env("EVCHARGE_BIN", "/nonexistent/evcharge")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("EVCHARGE_BIN=/nonexistent/evcharge is not an executable"));
}

#[test]
fn the_demo_script_crashes_a_random_part_and_brings_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let run = LocalRun::new(&[]);
    // Chosen beforehand: the script starts the central again on the same addresses when it
    // crashes it, and the CPs must find it there; nothing reads a restarted port back.
    let (tcp, http) = (free_port(), free_port());
    let listen = format!("127.0.0.1:{tcp}");
    let console = format!("127.0.0.1:{http}");
    let mut env: Vec<(&str, &str)> = FAST_ENV.to_vec();
    env.extend([
        ("EVCHARGE_BIN", evcharge()),
        ("EVCHARGE_CENTRAL__LISTEN", listen.as_str()),
        ("EVCHARGE_CENTRAL__HTTP", console.as_str()),
    ]);
    let run_dir = run.run.display().to_string();
    let script = deploy("scripts/demo.sh").display().to_string();
    let args = strings(&[
        "--cps",
        "2",
        "--drivers",
        "1",
        "--crash-after",
        "2",
        "--down",
        "1",
        "--rounds",
        "1",
        "--run-dir",
        &run_dir,
    ]);
    let mut demo = Proc::spawn(dir.path(), "demo.sh", &script, &args, &env);

    // Each step is said; one part is crashed and brought back.
    let back = wait_for("the crashed part to be back", DEADLINE * 2, || {
        let out = demo.stdout_text();
        out.lines()
            .find_map(|l| l.strip_prefix("== ")?.strip_suffix(" is back"))
            .map(str::to_owned)
    });
    let out = demo.stdout_text();
    assert!(out.contains(&format!("crashed {back} (pid ")), "{out}");
    assert!(
        ["CP001", "CP002", "D001", "central"].contains(&back.as_str()),
        "{out}"
    );

    // The network works after it: every CP available, the driver's supplies complete.
    let token = read(&run.run.join("api-token")).trim().to_owned();
    let api = |path: &str| -> Option<Value> {
        ureq::get(&format!("http://{console}{path}"))
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .ok()?
            .into_json()
            .ok()
    };
    wait_for("both CPs available after the crash", DEADLINE * 2, || {
        let cps = api("/api/cps")?;
        let cps = cps.as_array()?;
        (cps.len() == 2 && cps.iter().all(|c| c["state"] == "available")).then_some(())
    });
    wait_for("a completed supply of D001", DEADLINE * 2, || {
        api("/api/sessions")?
            .as_array()?
            .iter()
            .find(|s| s["driver_id"] == "D001" && s["outcome"] == "completed")
            .cloned()
    });

    // SIGTERM stops every part it started.
    let pids: Vec<u32> = run.recorded().iter().map(|r| r.0).collect();
    assert!(
        pids.len() >= 5,
        "broker, central, 2 CPs, 1 driver: {pids:?}"
    );
    let pid = demo.pid().expect("the demo runs").to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    demo.wait_exit(DEADLINE);
    assert!(demo.stdout_text().contains("== stopping every part"));
    for pid in pids {
        assert!(alive(pid).is_none(), "process {pid} outlived the demo");
    }
}

// ---------------------------------------------------------------------------------------------
// Scripts, statically.

#[test]
fn the_scripts_are_sound_bash_and_use_only_flags_that_exist() {
    let all_binary_flags: BTreeSet<String> = SUBCOMMANDS
        .iter()
        .filter(|s| !["operator", "fleet"].contains(*s))
        .flat_map(|s| flags_of(&[s]))
        .chain(flags_of(&["operator", "add"]))
        .chain(flags_of(&["operator", "token"]))
        .chain(flags_of(&["fleet", "cps"]))
        .chain(flags_of(&["fleet", "drivers"]))
        .collect();
    // demo.sh drives evcharge-local.sh: the options of both are theirs.
    let mut own = BTreeSet::new();
    for script in ["evcharge-local.sh", "demo.sh"] {
        let help = Command::new(deploy(&format!("scripts/{script}")))
            .arg("--help")
            .output()
            .unwrap();
        assert!(help.status.success(), "{script} --help");
        let help = text(&help.stdout);
        assert!(help.starts_with("Usage: "), "{script}: {help}");
        own.extend(flags_in(&help));
    }
    for script in ["evcharge-local.sh", "demo.sh"] {
        let path = deploy(&format!("scripts/{script}"));
        let raw = read(&path);
        assert!(raw.starts_with("#!/usr/bin/env bash\n"), "{script}");
        assert!(raw.contains("set -euo pipefail"), "{script}");
        check_addresses(&raw, script, false);
        check_variables(&raw, script);
        let syntax = Command::new("bash").arg("-n").arg(&path).output().unwrap();
        assert!(
            syntax.status.success(),
            "{script}: {}",
            text(&syntax.stderr)
        );
        // Every flag in the script is the scripts' own (in their help) or the binary's.
        // Flags of other tools the scripts mention (`cargo build --release`).
        let others = ["--release"];
        for flag in flags_in(&raw) {
            assert!(
                own.contains(&flag)
                    || all_binary_flags.contains(&flag)
                    || others.contains(&flag.as_str()),
                "{script}: {flag} is neither its own option nor a flag of evcharge"
            );
        }
        // shellcheck (Debian's, installed by scripts/test.sh).
        let out = Command::new("shellcheck").arg(&path).output().expect(
            "shellcheck is missing: run the README's test command (scripts/test.sh), which installs it",
        );
        assert!(
            out.status.success(),
            "shellcheck {script}:\n{}",
            text(&out.stdout)
        );
    }
}

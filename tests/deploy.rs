//! `deploy/` and `docs/DEPLOY.md`: the scripts run real processes against a real central and
//! broker on this machine; the compose files, systemd units, Dockerfile and the documentation
//! are checked against the real binary's subcommands and flags and the real settings.

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy(path: &str) -> PathBuf {
    repo().join("deploy").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

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
    let run = LocalRun::new(&[
        ("EVCHARGE_KAFKA__BOOTSTRAP", &net.broker.bootstrap),
        ("EVCHARGE_MONITOR__CENTRAL", &central),
    ]);

    // Three CPs, each with its data, log and pid file, all available at the central.
    let out = run.ok(&["start-cps", "3"]);
    for id in ["CP001", "CP002", "CP003"] {
        assert!(out.contains(&format!("started {id} (pid ")), "{out}");
        net.wait_state(id, "available");
        assert!(run.run.join(format!("{id}.log")).exists());
    }
    let listed = run.list();
    for id in ["CP001", "CP002", "CP003"] {
        assert_eq!(listed[id].1, "running", "{listed:?}");
    }
    // Starting one again does not make a second instance.
    let again = run.ok(&["start", "CP001"]);
    assert!(again.contains("CP001 already runs"), "{again}");

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

    // Started again the same way, it comes back.
    run.ok(&["start", victim, "CP002"]);
    for id in ["CP001", "CP002", "CP003"] {
        net.wait_state(id, "available");
    }

    // Two drivers, two supplies each at any CP: their sessions close.
    let out = run.ok(&["start-drivers", "2", "--requests", "2"]);
    assert!(
        out.contains("started D001") && out.contains("started D002"),
        "{out}"
    );
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
// What the binary accepts, and what the settings are.

/// Every flag `evcharge <words…> --help` lists.
fn flags_of(words: &[&str]) -> BTreeSet<String> {
    let out = Command::new(evcharge())
        .args(words)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "`evcharge {} --help` fails: there is no such subcommand",
        words.join(" ")
    );
    flags_in(&text(&out.stdout))
}

fn flags_in(text: &str) -> BTreeSet<String> {
    let mut flags = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("--") {
        let start = i + at;
        let preceded_ok = start == 0 || !(bytes[start - 1] as char).is_ascii_alphanumeric();
        let mut end = start + 2;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'-') {
            end += 1;
        }
        let flag = &text[start..end];
        if preceded_ok && flag.len() > 2 && bytes[start + 2].is_ascii_lowercase() {
            flags.insert(flag.trim_end_matches('-').to_string());
        }
        i = end.max(start + 2);
    }
    flags
}

const SUBCOMMANDS: [&str; 8] = [
    "central", "engine", "monitor", "cp", "driver", "broker", "demo", "operator",
];

/// Checks one command line given to the binary (without the binary itself): its subcommand
/// exists and it knows every flag.
fn check_invocation(argv: &[String], where_: &str) {
    let mut i = 0;
    while i < argv.len() && matches!(argv[i].as_str(), "--kafka" | "--config") {
        i += 2;
    }
    let sub = argv
        .get(i)
        .unwrap_or_else(|| panic!("{where_}: no subcommand in {argv:?}"));
    assert!(
        SUBCOMMANDS.contains(&sub.as_str()),
        "{where_}: `{sub}` is not a subcommand of evcharge"
    );
    let mut words = vec![sub.as_str()];
    if sub == "operator" {
        words.push(argv.get(i + 1).map(String::as_str).unwrap_or("list"));
    }
    let known = flags_of(&words);
    for arg in argv {
        if let Some(flag) = arg.strip_prefix("--") {
            let flag = format!("--{}", flag.split('=').next().unwrap());
            assert!(
                known.contains(&flag),
                "{where_}: `evcharge {}` has no flag {flag} (it has {known:?})",
                words.join(" ")
            );
        }
    }
}

/// Every settings key, dotted (`central.listen`), with its default as JSON.
fn settings_keys() -> BTreeMap<String, Value> {
    let json = serde_json::to_value(evcharge::configuration::Settings::default()).unwrap();
    let mut keys = BTreeMap::new();
    for (section, values) in json.as_object().unwrap() {
        for (key, value) in values.as_object().unwrap() {
            keys.insert(format!("{section}.{key}"), value.clone());
        }
    }
    keys
}

fn variable_of(key: &str) -> String {
    format!("EVCHARGE_{}", key.to_uppercase().replace('.', "__"))
}

/// Every `EVCHARGE_…` variable named in `text` is a real setting (or one of the scripts' own).
fn check_variables(text: &str, where_: &str) {
    let keys = settings_keys();
    let variables: BTreeSet<String> = keys.keys().map(|k| variable_of(k)).collect();
    let mut rest = text;
    while let Some(at) = rest.find("EVCHARGE_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let own = [
            "EVCHARGE_BIN",
            "EVCHARGE_RUN_DIR",
            "EVCHARGE_IMAGE",
            "EVCHARGE_TEST_KEEP",
        ];
        // `EVCHARGE_SECTION__KEY` and `EVCHARGE_…` are how the docs name them all.
        let generic = name == "EVCHARGE_" || name == "EVCHARGE_SECTION__KEY";
        assert!(
            generic || own.contains(&name) || variables.contains(name),
            "{where_}: {name} is not a setting of evcharge"
        );
        rest = &tail[end.max(1)..];
    }
}

/// Every IPv4 literal in `text` is the wildcard or loopback: machines' addresses come from
/// the environment. Examples may use the documentation ranges (RFC 5737) when `examples`.
fn check_addresses(text: &str, where_: &str, examples: bool) {
    let words = text.split(|c: char| !(c.is_ascii_digit() || c == '.'));
    for word in words {
        let parts: Vec<&str> = word.trim_matches('.').split('.').collect();
        if parts.len() != 4 || !parts.iter().all(|p| p.parse::<u8>().is_ok()) {
            continue;
        }
        let address = parts.join(".");
        let documentation = ["192.0.2.", "198.51.100.", "203.0.113."]
            .iter()
            .any(|p| address.starts_with(p));
        assert!(
            address == "0.0.0.0" || address == "127.0.0.1" || (examples && documentation),
            "{where_}: hard-coded address {address}; addresses come from the environment"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Compose files.

fn compose_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy("compose"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    files
}

/// A YAML file as JSON, through Debian's Python and its yaml module (python3-yaml, which
/// scripts/test.sh installs; not whatever `python3` comes first on the PATH).
fn yaml(path: &Path) -> Value {
    let out = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(path)
        .output()
        .expect("/usr/bin/python3 runs: run scripts/test.sh, which installs python3-yaml");
    assert!(
        out.status.success(),
        "{} is not valid YAML (or python3-yaml is missing): {}",
        path.display(),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn env_map(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        Value::Array(list) => list
            .iter()
            .filter_map(|e| {
                let (k, v) = e.as_str()?.split_once('=')?;
                Some((k.to_string(), v.to_string()))
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn strings_of(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Variables a compose file takes from the environment: (name, required).
fn compose_variables(text: &str) -> BTreeMap<String, bool> {
    let mut found = BTreeMap::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        let tail = &rest[at + 2..];
        // `$${…}` is the shell's, not compose's.
        let escaped = at > 0 && rest.as_bytes()[at - 1] == b'$';
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !escaped {
            let required = tail[end..].starts_with(":?");
            let entry = found.entry(tail[..end].to_string()).or_insert(false);
            *entry |= required;
        }
        rest = &tail[end..];
    }
    found
}

#[test]
fn every_compose_file_is_coherent_with_the_binary_and_takes_addresses_from_the_environment() {
    let files = compose_files();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in ["central.yml", "cps.yml", "drivers.yml", "kafka-3.yml"] {
        assert!(
            names.iter().any(|n| n == expected),
            "deploy/compose/{expected}"
        );
    }
    let example = read(&deploy("compose/.env.example"));
    check_addresses(&example, ".env.example", true);
    let deploy_doc = read(&repo().join("docs/DEPLOY.md"));
    let mut roles: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in &files {
        let where_ = file.file_name().unwrap().to_string_lossy().into_owned();
        let raw = read(file);
        check_addresses(&raw, &where_, false);
        check_variables(&raw, &where_);
        assert!(
            !raw.to_lowercase().contains("zookeeper"),
            "{where_}: KRaft only"
        );
        // Each variable without a default is set in .env.example; every one is documented.
        for (variable, required) in compose_variables(&raw) {
            if required {
                assert!(
                    example
                        .lines()
                        .any(|l| l.starts_with(&format!("{variable}="))),
                    "{where_}: the required {variable} is not set in .env.example"
                );
            }
            assert!(
                example.contains(&variable) || deploy_doc.contains(&variable),
                "{where_}: {variable} is explained neither in .env.example nor in docs/DEPLOY.md"
            );
        }

        let compose = yaml(file);
        let services = compose["services"]
            .as_object()
            .unwrap_or_else(|| panic!("{where_} has services"));
        assert!(!services.is_empty());
        for (name, service) in services {
            let where_ = format!("{where_}: {name}");
            let image = service["image"].as_str().unwrap_or_default();
            let env = env_map(service);
            if image.starts_with("${EVCHARGE_IMAGE") {
                // Built from this repository with deploy/Dockerfile.
                let build = &service["build"];
                assert_eq!(build["dockerfile"], "deploy/Dockerfile", "{where_}");
                let context = file
                    .parent()
                    .unwrap()
                    .join(build["context"].as_str().unwrap());
                assert_eq!(
                    context.canonicalize().unwrap(),
                    repo().canonicalize().unwrap(),
                    "{where_}: the build context is the repository root"
                );
                let command = strings_of(&service["command"]);
                check_invocation(&command, &where_);
                for key in env.keys() {
                    check_variables(key, &where_);
                }
                let role = command[0].clone();
                let id = command
                    .iter()
                    .position(|a| a == "--id")
                    .map(|i| command[i + 1].clone());
                roles.entry(role.clone()).or_default().extend(id);
                assert!(
                    env.get("EVCHARGE_KAFKA__BOOTSTRAP")
                        .is_some_and(|v| v.contains("${KAFKA_BOOTSTRAP")),
                    "{where_}: Kafka's address from KAFKA_BOOTSTRAP"
                );
                assert_eq!(
                    env.get("EVCHARGE_KAFKA__REPLICATION").map(String::as_str),
                    Some("${KAFKA_REPLICATION:-1}"),
                    "{where_}: the replication factor follows the cluster"
                );
                if role == "cp" {
                    assert!(
                        env["EVCHARGE_MONITOR__CENTRAL"].starts_with("${CENTRAL_HOST:?"),
                        "{where_}: the central's address from CENTRAL_HOST"
                    );
                }
            } else if image.starts_with("${KAFKA_IMAGE:-apache/kafka:") {
                if env.contains_key("KAFKA_NODE_ID") {
                    assert!(
                        env["KAFKA_PROCESS_ROLES"].contains("controller"),
                        "{where_}: KRaft"
                    );
                    let data = &env["KAFKA_LOG_DIRS"];
                    assert!(
                        strings_of(&service["volumes"])
                            .iter()
                            .any(|v| v.ends_with(&format!(":{data}"))),
                        "{where_}: Kafka's data {data} is a volume"
                    );
                }
            } else {
                panic!("{where_}: image {image} is neither evcharge's nor apache/kafka");
            }
        }
    }
    // One central; three CPs and two drivers, each id once.
    assert_eq!(roles.get("central").map(Vec::len), Some(0), "{roles:?}");
    let cps = &roles["cp"];
    assert_eq!(
        cps.iter().collect::<BTreeSet<_>>().len(),
        cps.len(),
        "{cps:?}"
    );
    assert!(cps.len() >= 3 && roles["driver"].len() >= 2, "{roles:?}");

    // No Docker engine nor compose plugin here: the files are checked as YAML and by running
    // their services' commands (see the tests below), not by `docker compose config`.
}

#[test]
fn the_three_broker_cluster_replicates_every_topic_three_times_with_two_in_sync() {
    let compose = yaml(&deploy("compose/kafka-3.yml"));
    let services = compose["services"].as_object().unwrap();
    let mut ids = BTreeSet::new();
    for (name, service) in services.iter().filter(|(n, _)| n.starts_with("kafka")) {
        let env = env_map(service);
        ids.insert(env["KAFKA_NODE_ID"].clone());
        for (key, value) in [
            ("KAFKA_DEFAULT_REPLICATION_FACTOR", "3"),
            ("KAFKA_MIN_INSYNC_REPLICAS", "2"),
            ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "3"),
            ("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "3"),
            ("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "2"),
        ] {
            assert_eq!(
                env.get(key).map(String::as_str),
                Some(value),
                "{name}: {key}"
            );
        }
        let voters = &env["KAFKA_CONTROLLER_QUORUM_VOTERS"];
        assert_eq!(
            voters.split(',').count(),
            3,
            "{name}: three voters in {voters}"
        );
    }
    assert_eq!(
        ids.len(),
        3,
        "three brokers with distinct node ids: {ids:?}"
    );

    // The init service creates exactly evcharge's topics, RF 3, min.insync.replicas 2.
    let topics = &services["topics"];
    let env = env_map(topics);
    let prefix = env["PREFIX"]
        .strip_prefix("${TOPIC_PREFIX:-")
        .and_then(|p| p.strip_suffix('}'))
        .expect("PREFIX from TOPIC_PREFIX with a default");
    let created: BTreeSet<String> = env["TOPICS"]
        .split_whitespace()
        .map(|t| format!("{prefix}{t}"))
        .collect();
    let defaults = evcharge::configuration::Settings::default().kafka;
    assert_eq!(prefix, defaults.topic_prefix);
    let expected: BTreeSet<String> = evcharge::bus::Topics::new(&defaults.topic_prefix)
        .all()
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(created, expected);
    assert_eq!(
        env["PARTITIONS"],
        format!("${{KAFKA_PARTITIONS:-{}}}", defaults.partitions)
    );
    let script = strings_of(&topics["command"]).join("\n");
    assert!(script.contains("--replication-factor 3"), "{script}");
    assert!(
        script.contains("--config min.insync.replicas=2"),
        "{script}"
    );
    assert!(script.contains("--if-not-exists"), "{script}");
}

// ---------------------------------------------------------------------------------------------
// systemd units.

const UNITS: [&str; 3] = [
    "evcharge-central.service",
    "evcharge-cp@.service",
    "evcharge-driver@.service",
];

/// A unit file's `Key=value` lines, by section.
fn unit_entries(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']']).to_string();
        } else if let Some((k, v)) = line.split_once('=') {
            entries.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
        }
    }
    entries
}

#[test]
fn every_systemd_unit_is_valid_and_runs_the_binary_with_flags_it_knows() {
    let binary = "/usr/local/bin/evcharge";
    for unit in UNITS {
        let raw = read(&deploy(&format!("systemd/{unit}")));
        check_addresses(&raw, unit, false);
        check_variables(&raw, unit);
        let entries = unit_entries(&raw);
        let get = |section: &str, key: &str| -> Vec<String> {
            entries
                .iter()
                .filter(|(s, k, _)| s == section && k == key)
                .map(|(_, _, v)| v.clone())
                .collect()
        };
        for (section, key) in [
            ("Unit", "Description"),
            ("Service", "ExecStart"),
            ("Service", "User"),
            ("Service", "StateDirectory"),
            ("Install", "WantedBy"),
        ] {
            assert_eq!(
                get(section, key).len(),
                1,
                "{unit}: one {key}= in [{section}]"
            );
        }
        assert_eq!(get("Service", "Restart"), ["on-failure"], "{unit}");
        assert!(
            get("Service", "EnvironmentFile").contains(&"-/etc/evcharge/evcharge.env".into()),
            "{unit}: the shared environment file"
        );
        let exec = get("Service", "ExecStart").remove(0);
        let argv: Vec<String> = exec.split_whitespace().map(str::to_owned).collect();
        assert_eq!(argv[0], binary, "{unit}");
        check_invocation(&argv[1..], unit);
        if unit.contains('@') {
            // The instance name is the id, and each instance has its own state.
            assert!(exec.contains("--id %i"), "{unit}: {exec}");
            assert!(get("Service", "StateDirectory")[0].contains("%i"), "{unit}");
        }
        if let Some(data) = argv.iter().position(|a| a == "--data") {
            let state = get("Service", "StateDirectory").remove(0);
            assert_eq!(
                argv[data + 1],
                format!("%S/{state}"),
                "{unit}: data in the state directory"
            );
        }
    }

    // systemd's own verdict, where systemd-analyze exists, with the unit pointing at the binary
    // built here (verify checks that ExecStart's program exists).
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        analyze.is_ok(),
        "systemd-analyze is missing: run the README's test command (scripts/test.sh), which installs systemd"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut instances = Vec::new();
    for unit in UNITS {
        let raw = read(&deploy(&format!("systemd/{unit}"))).replace(binary, evcharge());
        let name = unit.replace("@.", "@X001.");
        std::fs::write(dir.path().join(&name), raw).unwrap();
        instances.push(dir.path().join(name));
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&instances)
        .output()
        .unwrap();
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

#[test]
fn the_environment_file_sets_only_real_settings() {
    let raw = read(&deploy("systemd/evcharge.env"));
    check_addresses(&raw, "evcharge.env", true);
    check_variables(&raw, "evcharge.env");
    for line in raw.lines().map(|l| l.trim_start_matches('#')) {
        if let Some((name, _)) = line.split_once('=') {
            if name.starts_with("EVCHARGE_") {
                assert!(!name.contains(' '), "evcharge.env: {line}");
            }
        }
    }
    let sysusers = read(&deploy("systemd/evcharge.sysusers"));
    assert!(sysusers.lines().any(|l| l.starts_with("u evcharge ")));
}

// ---------------------------------------------------------------------------------------------
// Scripts, statically.

#[test]
fn the_scripts_are_sound_bash_and_use_only_flags_that_exist() {
    let all_binary_flags: BTreeSet<String> = SUBCOMMANDS
        .iter()
        .filter(|s| **s != "operator")
        .flat_map(|s| flags_of(&[s]))
        .chain(flags_of(&["operator", "add"]))
        .chain(flags_of(&["operator", "token"]))
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

// ---------------------------------------------------------------------------------------------
// The image.

#[test]
fn the_dockerfile_builds_the_one_binary_in_stages_and_runs_it_unprivileged() {
    let raw = read(&deploy("Dockerfile"));
    let lines: Vec<&str> = raw
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let stages: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].starts_with("FROM "))
        .collect();
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    assert!(
        lines[stages[0]].ends_with(" AS builder"),
        "{}",
        lines[stages[0]]
    );
    let builder = lines[stages[0]..stages[stages.len() - 1]].join("\n");
    let runtime = lines[stages[stages.len() - 1]..].join("\n");
    assert!(
        lines[stages[stages.len() - 1]].contains("-slim"),
        "a small runtime image"
    );
    for tool in ["cmake", "build-essential"] {
        assert!(
            builder.contains(tool),
            "the builder installs {tool} for librdkafka"
        );
    }
    assert!(builder.contains("cargo build --release --locked"));
    assert!(runtime.contains("COPY --from=builder"));
    assert!(
        !runtime.contains("cargo"),
        "no toolchain in the runtime image"
    );
    let user = runtime
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .expect("the runtime stage names its user");
    assert!(user != "root" && user != "0", "runs as {user}");
    assert!(runtime.contains("ENTRYPOINT [\"/usr/local/bin/evcharge\"]"));
    assert!(runtime.contains("VOLUME"));

    // What the build copies covers what the crate reads at compile time.
    let copied: Vec<String> = builder
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len() - 1]
                .iter()
                .map(|w| w.trim_end_matches('/').to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let ignore = read(&deploy("Dockerfile.dockerignore"));
    let mut needed = vec!["Cargo.toml".to_string(), "Cargo.lock".into(), "src".into()];
    if repo().join("build.rs").exists() {
        needed.push("build.rs".into());
    }
    for file in walk(&repo().join("src")) {
        let source = read(&file);
        for marker in ["include_str!(\"", "include_bytes!(\""] {
            for piece in source.split(marker).skip(1) {
                let relative = piece.split('"').next().unwrap();
                let target = file
                    .parent()
                    .unwrap()
                    .join(relative)
                    .canonicalize()
                    .unwrap();
                let top = target
                    .strip_prefix(repo().canonicalize().unwrap())
                    .unwrap()
                    .components()
                    .next()
                    .unwrap()
                    .as_os_str()
                    .to_string_lossy()
                    .into_owned();
                needed.push(top);
            }
        }
    }
    for path in needed {
        assert!(
            copied.contains(&path),
            "the Dockerfile does not copy {path}: {copied:?}"
        );
        assert!(
            ignore
                .lines()
                .any(|l| l.trim_end_matches('/') == format!("!{path}")),
            "Dockerfile.dockerignore keeps {path} out of the context"
        );
    }

    // The runtime stage has every shared library the binary links.
    let ldd = Command::new("ldd").arg(evcharge()).output();
    if let Ok(ldd) = ldd {
        let slim = [
            "linux-vdso",
            "libc.so",
            "libm.so",
            "libgcc_s.so",
            "libz.so",
            "ld-linux",
            "libpthread.so",
            "libdl.so",
            "librt.so",
        ];
        for line in text(&ldd.stdout).lines() {
            let lib = line.split_whitespace().next().unwrap_or_default();
            assert!(
                slim.iter().any(|s| lib.contains(s)),
                "the binary links {lib}: add its Debian package to the runtime stage and here"
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|x| x == "rs") {
            files.push(path);
        }
    }
    files
}

// ---------------------------------------------------------------------------------------------
// docs/DEPLOY.md and deploy/README.md.

/// The rows of the configuration table: key → (variable, default cell).
fn configuration_table(doc: &str) -> BTreeMap<String, (String, String)> {
    let mut rows = BTreeMap::new();
    let mut in_table = false;
    for line in doc.lines() {
        if line.starts_with("| key | variable | default |") {
            in_table = true;
            continue;
        }
        if in_table {
            if !line.starts_with('|') {
                break;
            }
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if cells[0].starts_with("---") {
                continue;
            }
            let key = cells[0].trim_matches('`').to_string();
            let variable = cells[1].trim_matches('`').to_string();
            assert!(
                rows.insert(key.clone(), (variable, cells[2].to_string()))
                    .is_none(),
                "{key} twice in the table"
            );
        }
    }
    rows
}

fn shown_default(value: &Value) -> String {
    match value {
        Value::Null => "none".into(),
        Value::String(s) if s.is_empty() => "—".into(),
        Value::String(s) => format!("`{s}`"),
        Value::Number(n) => {
            let f = n.as_f64().unwrap();
            if f.fract() == 0.0 {
                format!("`{}`", f as i64)
            } else {
                format!("`{f}`")
            }
        }
        Value::Bool(b) => format!("`{b}`"),
        other => panic!("no table form for {other}"),
    }
}

#[test]
fn the_deploy_guide_lists_every_setting_with_its_variable_and_default() {
    let doc = read(&repo().join("docs/DEPLOY.md"));
    let table = configuration_table(&doc);
    let keys = settings_keys();
    let listed: BTreeSet<&String> = table.keys().collect();
    let real: BTreeSet<&String> = keys.keys().collect();
    assert_eq!(
        listed, real,
        "docs/DEPLOY.md's configuration table and the settings differ"
    );
    for (key, (variable, default)) in &table {
        assert_eq!(variable, &variable_of(key), "{key}");
        assert_eq!(default, &shown_default(&keys[key]), "{key}'s default");
    }
}

#[test]
fn the_deploy_guide_covers_each_way_and_its_commands_exist() {
    let doc = read(&repo().join("docs/DEPLOY.md"));
    for heading in [
        "## Three machines with Kafka",
        "## One machine, embedded broker",
        "## With systemd",
        "## Configuration",
        "## Firewall",
    ] {
        assert!(
            doc.contains(heading),
            "docs/DEPLOY.md has a section {heading}"
        );
    }
    // The firewall section names every port a deployment opens.
    let firewall = doc.split("## Firewall").nth(1).unwrap();
    for port in [
        "5000/tcp", "8002/tcp", "9092/tcp", "9093/tcp", "8001", "8003",
    ] {
        assert!(firewall.contains(port), "the firewall section names {port}");
    }
    check_variables(&doc, "docs/DEPLOY.md");
    check_addresses(&doc, "docs/DEPLOY.md", true);
    // Every `evcharge …` command in a code block exists, with flags it knows.
    let mut in_code = false;
    let mut checked = 0;
    for line in doc.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        let line = line.split(" #").next().unwrap();
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        for (i, word) in words.iter().enumerate() {
            if (word == "evcharge" || word.ends_with("/evcharge"))
                && words.get(i + 1).is_some_and(|w| {
                    w.len() > 2 && w.starts_with("--") || SUBCOMMANDS.contains(&w.as_str())
                })
            {
                let argv: Vec<String> = words[i + 1..]
                    .iter()
                    .take_while(|w| !matches!(w.as_str(), "|" | "&&" | ";" | ">" | "2>&1" | "&"))
                    .cloned()
                    .collect();
                check_invocation(&argv, &format!("docs/DEPLOY.md: {line}"));
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 5,
        "only {checked} evcharge commands in docs/DEPLOY.md"
    );
    // Every file of deploy/ is described in deploy/README.md, and the README links the guide.
    let readme = read(&deploy("README.md"));
    for file in [
        "Dockerfile",
        "compose/central.yml",
        "compose/cps.yml",
        "compose/drivers.yml",
        "compose/kafka-3.yml",
        "compose/.env.example",
        "systemd/evcharge-central.service",
        "systemd/evcharge-cp@.service",
        "systemd/evcharge-driver@.service",
        "systemd/evcharge.env",
        "scripts/evcharge-local.sh",
        "scripts/demo.sh",
    ] {
        assert!(deploy(file).exists(), "deploy/{file}");
        assert!(readme.contains(file), "deploy/README.md describes {file}");
    }
    assert!(read(&repo().join("README.md")).contains("docs/DEPLOY.md"));
}

/// The command line and environment a unit's `ExecStart=` runs with, for `instance`, with
/// `%S` at `state` and `extra` as the environment files would add (they win over
/// `Environment=`).
fn unit_command(
    unit: &str,
    instance: &str,
    state: &Path,
    extra: &[(String, String)],
) -> (Vec<String>, Vec<(String, String)>) {
    let raw = read(&deploy(&format!("systemd/{unit}")));
    let expand = |s: &str| {
        s.replace("%i", instance)
            .replace("%S", &state.display().to_string())
    };
    let entries = unit_entries(&raw);
    let mut env: Vec<(String, String)> = entries
        .iter()
        .filter(|(s, k, _)| s == "Service" && k == "Environment")
        .filter_map(|(_, _, v)| {
            let (k, v) = v.split_once('=')?;
            Some((k.to_string(), expand(v)))
        })
        .collect();
    env.extend(extra.iter().cloned());
    let exec = entries
        .iter()
        .find(|(s, k, _)| s == "Service" && k == "ExecStart")
        .map(|(_, _, v)| expand(v))
        .unwrap();
    let argv: Vec<String> = exec.split_whitespace().skip(1).map(str::to_owned).collect();
    for state_dir in entries
        .iter()
        .filter(|(s, k, _)| s == "Service" && k == "StateDirectory")
    {
        std::fs::create_dir_all(state.join(expand(&state_dir.2))).unwrap();
    }
    (argv, env)
}

#[test]
fn the_systemd_units_command_lines_run_a_network() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let broker = Broker::start(BrokerKind::Embedded, dir.path());
    let (tcp, http, page) = (free_port(), free_port(), free_port());
    // What /etc/evcharge/evcharge.env and the per-instance files would say on each machine.
    let mut shared: Vec<(String, String)> = FAST_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    shared.extend([
        (
            "EVCHARGE_KAFKA__BOOTSTRAP".to_string(),
            broker.bootstrap.clone(),
        ),
        (
            "EVCHARGE_CENTRAL__LISTEN".into(),
            format!("127.0.0.1:{tcp}"),
        ),
        ("EVCHARGE_CENTRAL__HTTP".into(), format!("127.0.0.1:{http}")),
        (
            "EVCHARGE_MONITOR__CENTRAL".into(),
            format!("127.0.0.1:{tcp}"),
        ),
    ]);
    let start = |unit: &str, instance: &str, extra: &[(String, String)]| -> Proc {
        let mut files = shared.clone();
        files.extend(extra.iter().cloned());
        let (argv, env) = unit_command(unit, instance, &state, &files);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let name = format!("{}-{instance}", unit.split('.').next().unwrap());
        Proc::spawn(dir.path(), &name, evcharge(), &argv, &env)
    };

    // The central's database is where the unit keeps it: a token made there works.
    let token = prepare_operator(&state.join("evcharge/central"));
    let _central = start("evcharge-central.service", "", &[]);
    let cps = |id: &str| -> Option<Value> {
        let all: Value = ureq::get(&format!("http://127.0.0.1:{http}/api/cps"))
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .ok()?
            .into_json()
            .ok()?;
        all.as_array()?.iter().find(|c| c["id"] == id).cloned()
    };
    let location = [("EVCHARGE_CP__LOCATION".to_string(), "Dock 1".to_string())];
    let _cp = start("evcharge-cp@.service", "CP001", &location);
    let cp = wait_for("CP001 from its unit to be available", DEADLINE, || {
        cps("CP001").filter(|c| c["state"] == "available")
    });
    assert_eq!(
        cp["location"], "Dock 1",
        "the per-CP environment file is read"
    );
    assert!(state.join("evcharge/cp-CP001").is_dir());

    // The driver serves its dashboard where its own environment file says.
    let address = [(
        "EVCHARGE_DRIVER__HTTP".to_string(),
        format!("127.0.0.1:{page}"),
    )];
    let _driver = start("evcharge-driver@.service", "D001", &address);
    wait_for("D001's dashboard from its unit", DEADLINE, || {
        ureq::get(&format!("http://127.0.0.1:{page}/")).call().ok()
    });
}

/// Compose's interpolation of `${VAR}`, `${VAR:-default}` and `${VAR:?message}` (and `$$`).
fn interpolate(text: &str, vars: &BTreeMap<&str, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(body) = tail.strip_prefix("${") {
            let end = body.find('}').expect("a closing brace");
            let expr = &body[..end];
            let name_end = expr
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len());
            let (name, op) = expr.split_at(name_end);
            let value = match (vars.get(name), op) {
                (Some(v), _) if !v.is_empty() => v.clone(),
                (_, op) if op.starts_with(":-") => op[2..].to_string(),
                (_, op) if op.starts_with(":?") => panic!("{name} must be set: {}", &op[2..]),
                _ => String::new(),
            };
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn the_compose_cp_and_driver_services_join_a_central_with_their_own_settings() {
    let net = Network::start(BrokerKind::Embedded);
    // What .env says on the CP and driver machines.
    let vars: BTreeMap<&str, String> = [
        ("KAFKA_BOOTSTRAP", net.broker.bootstrap.clone()),
        ("CENTRAL_HOST", "127.0.0.1".to_string()),
        ("CENTRAL_TCP_PORT", net.central_tcp.to_string()),
        ("CP002_LOCATION", "Dock two".to_string()),
    ]
    .into_iter()
    .collect();
    let mut procs = Vec::new();
    let mut pages = BTreeMap::new();
    for (file, service) in [
        ("cps.yml", "cp001"),
        ("cps.yml", "cp002"),
        ("drivers.yml", "d001"),
    ] {
        let compose = yaml(&deploy(&format!("compose/{file}")));
        let spec = &compose["services"][service];
        let argv: Vec<String> = strings_of(&spec["command"])
            .iter()
            .map(|a| interpolate(a, &vars))
            .collect();
        let mut env: Vec<(String, String)> = env_map(spec)
            .into_iter()
            .map(|(k, v)| (k, interpolate(&v, &vars)))
            .collect();
        // The container's own ports, published elsewhere by docker, become free loopback
        // ports here; its working directory (the data volume) becomes a temporary one.
        let page = free_port();
        for (_, value) in env.iter_mut() {
            for inside in ["0.0.0.0:8003", "0.0.0.0:8001"] {
                if value == inside {
                    *value = format!("127.0.0.1:{page}");
                }
            }
        }
        let argv: Vec<String> = argv
            .into_iter()
            .map(|a| {
                if a == "0.0.0.0:8001" || a == "0.0.0.0:8003" {
                    format!("127.0.0.1:{page}")
                } else {
                    a
                }
            })
            .collect();
        let data = net.dir.path().join(format!("volume-{service}"));
        env.push(("EVCHARGE_ENGINE__DATA".into(), data.display().to_string()));
        env.extend(FAST_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        procs.push(Proc::spawn(
            net.dir.path(),
            &format!("compose-{service}"),
            evcharge(),
            &argv,
            &env,
        ));
        pages.insert(service, page);
    }
    let cp1 = net.wait_state("CP001", "available");
    let cp2 = net.wait_state("CP002", "available");
    assert_eq!(cp1["location"], "Dock 1", "the default location");
    assert_eq!(cp2["location"], "Dock two", "CP002_LOCATION from .env");
    // The monitor page and the dashboard answer on the ports the services publish.
    for service in ["cp001", "d001"] {
        let port = pages[service];
        wait_for(&format!("{service}'s page"), DEADLINE, || {
            ureq::get(&format!("http://127.0.0.1:{port}/")).call().ok()
        });
    }
}

//! `deploy/compose/`: the compose files read as YAML against the binary and the settings,
//! and the CP and driver services run, interpolated as compose would.

use crate::support::*;
use crate::{
    check_addresses, check_compose_runs, check_invocation, check_variables, compose_runs, deploy,
    read, repo, text, ComposeRun,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the CPs' secrets are on machine 2 (beside the compose files) and in the containers.
const SECRETS_FROM: &str = "./secrets";
const SECRETS_IN: &str = "/run/secrets";

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
    let mut shown = 0;
    for file in &files {
        let where_ = file.file_name().unwrap().to_string_lossy().into_owned();
        let raw = read(file);
        check_addresses(&raw, &where_, false);
        check_variables(&raw, &where_);
        // What the comments tell to run (`docker compose -f … run SERVICE ARGS…`) exists.
        shown += check_compose_runs(&raw, &where_);
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
                roles.entry(role.clone()).or_default().extend(id.clone());
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
                    // Its secret from the read-only secrets/ beside the file, named by its id.
                    let id = id.clone().unwrap_or_default();
                    assert_eq!(
                        env.get("EVCHARGE_CP__SECRET_FILE"),
                        Some(&format!("{SECRETS_IN}/{id}")),
                        "{where_}: the CP's secret file"
                    );
                    assert!(
                        strings_of(&service["volumes"])
                            .contains(&format!("{SECRETS_FROM}:{SECRETS_IN}:ro")),
                        "{where_}: {SECRETS_FROM} mounted read-only at {SECRETS_IN}"
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
    // The registrations of central.yml, a CP and a driver more in cps.yml and drivers.yml.
    assert!(
        shown >= 6,
        "only {shown} commands shown in the compose files"
    );
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
// Run as compose would.

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

/// The value after `flag` in `argv`.
fn flag_value<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    let at = argv.iter().position(|a| a == flag)?;
    argv.get(at + 1).map(String::as_str)
}

/// A service of a compose file run here as compose would run it: its command (or `argv`, as
/// `docker compose run SERVICE ARGS…` gives), its environment interpolated with `.env`'s
/// `vars`; the container's own ports become ports the process binds itself (port 0, read
/// back from its log), its bind mounts (`./secrets:/run/secrets:ro`) the folder of that
/// name in `dir`, its data volume a temporary folder.
fn run_service(
    dir: &Path,
    file: &str,
    service: &str,
    argv: Option<&[String]>,
    vars: &BTreeMap<&str, String>,
    name: &str,
) -> Proc {
    let compose = yaml(&deploy(&format!("compose/{file}")));
    let spec = &compose["services"][service];
    assert!(spec.is_object(), "{file} has a service {service}");
    let mounts: Vec<(String, String)> = strings_of(&spec["volumes"])
        .iter()
        .filter_map(|v| {
            let mut parts = v.split(':');
            let from = parts.next()?.strip_prefix("./")?;
            let inside = parts.next()?;
            Some((inside.to_owned(), dir.join(from).display().to_string()))
        })
        .collect();
    let local = |value: String| -> String {
        if value == "0.0.0.0:8001" || value == "0.0.0.0:8003" {
            return "127.0.0.1:0".into();
        }
        for (inside, here) in &mounts {
            if let Some(rest) = value.strip_prefix(inside.as_str()) {
                return format!("{here}{rest}");
            }
        }
        value
    };
    let argv: Vec<String> = match argv {
        Some(argv) => argv.to_vec(),
        None => strings_of(&spec["command"]),
    }
    .iter()
    .map(|a| local(interpolate(a, vars)))
    .collect();
    let mut env: Vec<(String, String)> = env_map(spec)
        .into_iter()
        .map(|(k, v)| (k, local(interpolate(&v, vars))))
        .collect();
    let data = dir.join(format!("volume-{name}"));
    env.push(("EVCHARGE_ENGINE__DATA".into(), data.display().to_string()));
    env.extend(FAST_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Proc::spawn(dir, &format!("compose-{name}"), evcharge(), &argv, &env)
}

/// Runs a `docker compose -f central.yml run … central cp-register …` line of central.yml
/// here: the central's database volume is `data`, its API inside the compose network the
/// test central's at `api`; the secret goes where the line sends it, under `dir`. Returns
/// the CP's id and location.
fn register_as_shown(
    run: &ComposeRun,
    dir: &Path,
    (data_inside, data): (&str, &Path),
    (api_inside, api): (&str, &str),
    token: &str,
) -> (String, String) {
    assert_eq!(
        (run.file.as_str(), run.service.as_str()),
        ("central.yml", "central"),
        "{}",
        run.line
    );
    let compose = yaml(&deploy("compose/central.yml"));
    let mut env: Vec<(String, String)> = env_map(&compose["services"]["central"])
        .into_iter()
        .map(|(k, v)| (k, interpolate(&v, &BTreeMap::new())))
        .collect();
    for given in &run.env {
        match given.split_once('=') {
            Some((k, v)) => env.push((k.into(), v.into())),
            None if given == evcharge::roles::cp_register::API_TOKEN_VARIABLE => {
                env.push((given.clone(), token.into()))
            }
            None => panic!("{}: -e {given} is not for cp-register", run.line),
        }
    }
    match (
        flag_value(&run.argv, "--data"),
        flag_value(&run.argv, "--api"),
    ) {
        (Some(d), None) => assert_eq!(d, data_inside, "{}: the central's database", run.line),
        (None, Some(a)) => {
            assert_eq!(a, api_inside, "{}: the central's API", run.line);
            assert!(
                run.env
                    .iter()
                    .any(|e| e == evcharge::roles::cp_register::API_TOKEN_VARIABLE),
                "{}: the token goes into the container",
                run.line
            );
        }
        _ => panic!("{}: on the database or through the API", run.line),
    }
    let argv: Vec<String> = run
        .argv
        .iter()
        .map(|a| match a.as_str() {
            a if a == data_inside => data.display().to_string(),
            a if a == api_inside => api.to_owned(),
            a => a.to_owned(),
        })
        .collect();
    let out = Command::new(evcharge())
        .args(&argv)
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}{}",
        run.line,
        text(&out.stdout),
        text(&out.stderr)
    );
    let id = flag_value(&argv, "--id").unwrap().to_owned();
    let output = run.output.as_deref().unwrap_or_default();
    assert_eq!(
        output,
        format!("secrets/{id}"),
        "{}: the secret to secrets/{id}",
        run.line
    );
    std::fs::write(dir.join(output), out.stdout).unwrap();
    let location = flag_value(&argv, "--location").unwrap().to_owned();
    (id, location)
}

#[test]
fn the_compose_registration_and_cp_and_driver_services_join_a_central() {
    let mut net = Network::start(BrokerKind::Embedded);
    // The central's database and API as the other services and `run` see them.
    let central_yml = yaml(&deploy("compose/central.yml"));
    let central = &central_yml["services"]["central"];
    let command = strings_of(&central["command"]);
    let data_inside = flag_value(&command, "--data")
        .expect("the central's --data")
        .to_owned();
    let http = env_map(central)["EVCHARGE_CENTRAL__HTTP"].clone();
    let api_inside = format!("http://central:{}", port_of(&http));
    let api = format!("http://127.0.0.1:{}", net.http);
    let data = net.dir.path().join("central-data");

    // Machine 1: every registration central.yml shows, on the database with the central
    // stopped, then through the API of the running central. Their secrets/ is machine 2's.
    std::fs::create_dir(net.dir.path().join("secrets")).unwrap();
    let runs: Vec<ComposeRun> = compose_runs(&read(&deploy("compose/central.yml")))
        .into_iter()
        .filter(|r| r.argv.first().is_some_and(|a| a == "cp-register"))
        .collect();
    let (on_data, on_api): (Vec<&ComposeRun>, Vec<&ComposeRun>) = runs
        .iter()
        .partition(|r| r.argv.iter().any(|a| a == "--data"));
    assert!(
        !on_data.is_empty() && !on_api.is_empty(),
        "central.yml shows both ways to register: {runs:?}"
    );
    let mut locations = BTreeMap::new();
    net.kill_central();
    for run in on_data {
        let (id, location) = register_as_shown(
            run,
            net.dir.path(),
            (&data_inside, &data),
            (&api_inside, &api),
            &net.token,
        );
        locations.insert(id, location);
    }
    net.start_central();
    for run in on_api {
        let (id, location) = register_as_shown(
            run,
            net.dir.path(),
            (&data_inside, &data),
            (&api_inside, &api),
            &net.token,
        );
        locations.insert(id, location);
    }
    // Every CP cps.yml starts is registered there.
    let cps_yml = yaml(&deploy("compose/cps.yml"));
    for (name, service) in cps_yml["services"].as_object().unwrap() {
        let command = strings_of(&service["command"]);
        let id = flag_value(&command, "--id").unwrap();
        assert!(
            locations.contains_key(id),
            "cps.yml: {name} runs {id}, which central.yml does not register: {locations:?}"
        );
    }

    // Machines 2 and 3: what .env says there.
    let vars: BTreeMap<&str, String> = [
        ("KAFKA_BOOTSTRAP", net.broker.bootstrap.clone()),
        ("CENTRAL_HOST", "127.0.0.1".to_string()),
        ("CENTRAL_TCP_PORT", net.central_tcp.to_string()),
    ]
    .into_iter()
    .collect();
    let dir = net.dir.path();
    let cp001 = run_service(dir, "cps.yml", "cp001", None, &vars, "cp001");
    let _cp002 = run_service(dir, "cps.yml", "cp002", None, &vars, "cp002");
    // One more, as cps.yml's comment shows: another id on cp001's settings.
    let grow = compose_runs(&read(&deploy("compose/cps.yml")))
        .into_iter()
        .find(|r| r.argv.first().is_some_and(|a| a == "cp"))
        .expect("cps.yml shows how to run one more CP");
    let grown = flag_value(&grow.argv, "--id").unwrap().to_owned();
    assert!(
        locations.contains_key(&grown),
        "{}: {grown} is not registered in central.yml",
        grow.line
    );
    let _more = run_service(
        dir,
        &grow.file,
        &grow.service,
        Some(&grow.argv),
        &vars,
        "grown",
    );
    let d001 = run_service(dir, "drivers.yml", "d001", None, &vars, "d001");

    // Each with the location it was registered at.
    for id in ["CP001", "CP002", grown.as_str()] {
        let cp = net.wait_state(id, "available");
        assert_eq!(cp["location"], locations[id], "{id}: its registration's");
    }
    // The monitor page and the dashboard answer on the ports the services publish.
    for (proc, page) in [
        (&cp001, announces::MONITOR_PAGE),
        (&d001, announces::DASHBOARD),
    ] {
        let port = announced_port(proc, page);
        wait_for(&format!("{}'s page", proc.name), DEADLINE, || {
            ureq::get(&format!("http://127.0.0.1:{port}/")).call().ok()
        });
    }
}

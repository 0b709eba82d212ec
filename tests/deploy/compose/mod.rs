//! `deploy/compose/`: the compose files read as YAML against the binary and the settings;
//! in `run`, the registrations and services run as compose would.

use crate::{
    check_addresses, check_compose_runs, check_invocation, check_variables, deploy, read, repo,
    secret_setting_of, text, variable_of, COMPOSE_SECRETS,
};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the secrets of the CPs (machine 2) and of the drivers (machine 3) are: beside the
/// compose files, and in the containers.
const SECRETS_FROM: &str = "./secrets";
const SECRETS_IN: &str = COMPOSE_SECRETS;

mod run;

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
                }
                if let Some(setting) = secret_setting_of(&command) {
                    // A CP's or a driver's secret from the read-only secrets/ beside the
                    // file, named by its id, and nowhere else.
                    let id = id.clone().unwrap_or_default();
                    let variable = variable_of(setting);
                    assert_eq!(
                        env.get(&variable),
                        Some(&format!("{SECRETS_IN}/{id}")),
                        "{where_}: {id}'s secret file in {variable}"
                    );
                    assert!(
                        !command.iter().any(|a| a == "--secret-file")
                            && !env.contains_key(variable.trim_end_matches("_FILE")),
                        "{where_}: {id}'s secret comes from its file only"
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
    // The registrations of central.yml (CPs and drivers), a CP and a driver more in cps.yml
    // and drivers.yml.
    assert!(
        shown >= 9,
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

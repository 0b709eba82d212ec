//! The `deploy` test binary: `deploy/` and `docs/DEPLOY.md`. The scripts run real processes
//! against a real central and broker on this machine; the compose files, systemd units,
//! Dockerfile and the documentation are checked against the real binary's subcommands and
//! flags and the real settings. One module per subject; here, what several of them share.

#[path = "../support/mod.rs"]
mod support;

mod compose;
mod docs;
mod image;
mod scripts;
mod systemd;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
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

const SUBCOMMANDS: [&str; 11] = [
    "central",
    "engine",
    "monitor",
    "cp",
    "driver",
    "broker",
    "demo",
    "operator",
    "cp-register",
    "driver-register",
    "fleet",
];

/// The roles that prove who they are with the secret issued when they were registered, and
/// the setting of the file that holds it: a CP's parts share the CP's, a driver has its own.
const SECRET_HOLDERS: [(&str, &str); 4] = [
    ("cp", "cp.secret_file"),
    ("engine", "cp.secret_file"),
    ("monitor", "cp.secret_file"),
    ("driver", "driver.secret_file"),
];

/// Where the subcommand is in a command line given to the binary: past the global flags.
fn subcommand_at(argv: &[String]) -> usize {
    let mut i = 0;
    while i < argv.len() && matches!(argv[i].as_str(), "--kafka" | "--config") {
        i += 2;
    }
    i
}

/// The setting of the secret file the role of `argv` needs, if it needs one.
fn secret_setting_of(argv: &[String]) -> Option<&'static str> {
    let sub = argv.get(subcommand_at(argv))?;
    SECRET_HOLDERS
        .iter()
        .find(|(role, _)| role == sub)
        .map(|(_, setting)| *setting)
}

/// The value after `flag` in `argv`.
fn flag_value<'a>(argv: &'a [String], flag: &str) -> Option<&'a str> {
    let at = argv.iter().position(|a| a == flag)?;
    argv.get(at + 1).map(String::as_str)
}

/// Subcommands whose next word is a subcommand of theirs (`operator token`, `fleet cps`).
const GROUPS: [(&str, &str); 2] = [("operator", "list"), ("fleet", "cps")];

/// Checks one command line given to the binary (without the binary itself): its subcommand
/// exists and it knows every flag.
fn check_invocation(argv: &[String], where_: &str) {
    let i = subcommand_at(argv);
    let sub = argv
        .get(i)
        .unwrap_or_else(|| panic!("{where_}: no subcommand in {argv:?}"));
    assert!(
        SUBCOMMANDS.contains(&sub.as_str()),
        "{where_}: `{sub}` is not a subcommand of evcharge"
    );
    let mut words = vec![sub.as_str()];
    if let Some((_, default)) = GROUPS.iter().find(|(group, _)| group == sub) {
        words.push(argv.get(i + 1).map(String::as_str).unwrap_or(default));
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
            // Not a setting: the operator's token `evcharge cp-register --api` reads.
            evcharge::configuration::API_TOKEN_VARIABLE,
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
// Command lines the files and the guide show.

/// The words of a shell command line, as the shell splits them (double and single quotes,
/// backslashes); enough for the lines the guide and the comments show.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => words.extend(word.take()),
            '"' => {
                let w = word.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    w.push(c);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    w.push(c);
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    words
}

/// A `docker compose -f FILE run [OPTIONS] SERVICE [ARGS…] [> OUTPUT]` line.
#[derive(Debug)]
struct ComposeRun {
    line: String,
    file: String,
    service: String,
    /// The `-e` options: `NAME` (from the caller's environment) or `NAME=value`.
    env: Vec<String>,
    /// What the service runs instead of its command: the binary's arguments.
    argv: Vec<String>,
    /// Where the shell writes its output.
    output: Option<String>,
}

/// Every `docker compose … run …` line of `text` (comment signs and trailing comments off).
fn compose_runs(text: &str) -> Vec<ComposeRun> {
    let mut runs = Vec::new();
    for line in text.lines() {
        let line = line
            .trim_start_matches([' ', '#'])
            .split("  #")
            .next()
            .unwrap();
        let line = line.split(" # ").next().unwrap().trim();
        let words = shell_words(line);
        let Some(at) = words.windows(2).position(|w| w == ["docker", "compose"]) else {
            continue;
        };
        let mut rest = words[at + 2..].iter();
        let mut file = String::new();
        let mut is_run = false;
        while let Some(word) = rest.next() {
            match word.as_str() {
                "-f" | "--file" => file = rest.next().cloned().unwrap_or_default(),
                "run" => {
                    is_run = true;
                    break;
                }
                _ => break,
            }
        }
        if !is_run {
            continue;
        }
        let (mut env, mut service) = (Vec::new(), None);
        while let Some(word) = rest.next() {
            match word.as_str() {
                "-e" | "--env" => env.extend(rest.next().cloned()),
                "--name" | "-u" | "--user" | "-w" | "--workdir" | "-v" | "--volume" | "-p"
                | "--publish" | "--entrypoint" | "-l" | "--label" => {
                    rest.next();
                }
                option if option.starts_with('-') => {}
                name => {
                    service = Some(name.to_owned());
                    break;
                }
            }
        }
        let Some(service) = service else { continue };
        let mut argv = Vec::new();
        let mut output = None;
        while let Some(word) = rest.next() {
            match word.as_str() {
                ">" => output = rest.next().cloned(),
                "|" | "&&" | ";" | "&" => break,
                _ => argv.push(word.clone()),
            }
        }
        runs.push(ComposeRun {
            line: line.to_owned(),
            file,
            service,
            env,
            argv,
            output,
        });
    }
    runs
}

/// Where the compose files mount the secrets of `secrets/` beside them, read-only.
const COMPOSE_SECRETS: &str = "/run/secrets";

/// Every `docker compose … run SERVICE ARGS…` line of `text` runs one of the binary's
/// subcommands with flags it knows, in a service of the compose file it names; one that
/// starts a CP's part or a driver gives it its own secret, `/run/secrets/<id>` (the service's
/// own is another id's).
fn check_compose_runs(text: &str, where_: &str) -> usize {
    let mut checked = 0;
    for run in compose_runs(text) {
        let compose = deploy(&format!("compose/{}", run.file));
        assert!(compose.exists(), "{where_}: no compose file {}", run.line);
        let raw = read(&compose);
        assert!(
            raw.contains(&format!("\n  {}:\n", run.service)),
            "{where_}: {} has no service {}: {}",
            run.file,
            run.service,
            run.line
        );
        if !run.argv.is_empty() {
            check_invocation(&run.argv, &format!("{where_}: {}", run.line));
            checked += 1;
        }
        if secret_setting_of(&run.argv).is_some() {
            let id = flag_value(&run.argv, "--id").unwrap_or_default();
            assert_eq!(
                flag_value(&run.argv, "--secret-file"),
                Some(format!("{COMPOSE_SECRETS}/{id}").as_str()),
                "{where_}: {} starts {id} without its secret",
                run.line
            );
        }
    }
    checked
}

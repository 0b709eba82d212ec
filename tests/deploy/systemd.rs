//! `deploy/systemd/`: the units and the environment file, checked against the binary and by
//! systemd-analyze, and the units' command lines run as a network.

use crate::support::*;
use crate::{
    check_addresses, check_invocation, check_variables, deploy, read, secret_setting_of, text,
    variable_of,
};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

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
        if let Some(setting) = secret_setting_of(&argv[1..]) {
            // The CP's or driver's secret, root's in /etc/evcharge (cp-%i.secret,
            // driver-%i.secret), handed to the service as a credential, and only that.
            let kind = setting.split('.').next().unwrap();
            let credentials = get("Service", "LoadCredential");
            let file = format!(":/etc/evcharge/{kind}-%i.secret");
            let name = credentials
                .iter()
                .find_map(|c| c.strip_suffix(&file))
                .unwrap_or_else(|| panic!("{unit}: the secret's credential: {credentials:?}"));
            let variable = variable_of(setting);
            assert!(
                get("Service", "Environment").contains(&format!("{variable}=%d/{name}")),
                "{unit}: the secret file ({variable}) is the credential"
            );
            assert!(
                !argv.iter().any(|a| a == "--secret-file"),
                "{unit}: the secret file is the credential: {exec}"
            );
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
// Run as systemd would.

/// The command line and environment a unit's `ExecStart=` runs with, for `instance`, with
/// `%S` at `state` and `extra` as the environment files would add (they win over
/// `Environment=`). Its credentials (`LoadCredential=NAME:PATH`) are copied as systemd would,
/// from `PATH` in `/etc/evcharge` (here `etc`) to `NAME` in their own directory (`%d`).
fn unit_command(
    unit: &str,
    instance: &str,
    (state, etc): (&Path, &Path),
    extra: &[(String, String)],
) -> (Vec<String>, Vec<(String, String)>) {
    use std::os::unix::fs::PermissionsExt;
    let raw = read(&deploy(&format!("systemd/{unit}")));
    let credentials = state.join(format!("credentials/{unit}-{instance}"));
    let expand = |s: &str| {
        s.replace("%i", instance)
            .replace("%S", &state.display().to_string())
            .replace("%d", &credentials.display().to_string())
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
    for (_, _, credential) in entries
        .iter()
        .filter(|(s, k, _)| s == "Service" && k == "LoadCredential")
    {
        let (name, path) = credential.split_once(':').unwrap();
        let path = expand(path);
        let file = path
            .strip_prefix("/etc/evcharge/")
            .unwrap_or_else(|| panic!("{unit}: a credential from /etc/evcharge: {path}"));
        std::fs::create_dir_all(&credentials).unwrap();
        let to = credentials.join(name);
        std::fs::copy(etc.join(file), &to)
            .unwrap_or_else(|e| panic!("{unit}: the credential {path} cannot be loaded: {e}"));
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o400)).unwrap();
    }
    (argv, env)
}

#[test]
fn the_systemd_units_command_lines_run_a_network() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    let broker = Broker::start(BrokerKind::Embedded, dir.path());
    // Every listener binds port 0; the test reads back where each process announces it is.
    let any = "127.0.0.1:0".to_string();
    // What /etc/evcharge/evcharge.env and the per-instance files would say on each machine.
    let mut shared: Vec<(String, String)> = FAST_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    shared.extend([
        ("EVCHARGE_KAFKA__BOOTSTRAP".to_string(), broker.bootstrap),
        ("EVCHARGE_CENTRAL__LISTEN".into(), any.clone()),
        ("EVCHARGE_CENTRAL__HTTP".into(), any.clone()),
    ]);
    let start = |unit: &str, instance: &str, extra: &[(String, String)]| -> Proc {
        let mut files = shared.clone();
        files.extend(extra.iter().cloned());
        let (argv, env) = unit_command(unit, instance, (&state, &etc), &files);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let name = format!("{}-{instance}", unit.split('.').next().unwrap());
        Proc::spawn(dir.path(), &name, evcharge(), &argv, &env)
    };

    // The central's database is where the unit keeps it: a token made there works.
    let token = prepare_operator(&state.join("evcharge/central"));
    let central = start("evcharge-central.service", "", &[]);
    let tcp = announced(&central, announces::MONITORS);
    let http = announced_port(&central, announces::CONSOLE);
    let cps = |id: &str| -> Option<Value> {
        let all: Value = ureq::get(&format!("http://127.0.0.1:{http}/api/cps"))
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .ok()?
            .into_json()
            .ok()?;
        all.as_array()?.iter().find(|c| c["id"] == id).cloned()
    };
    // CP001 registered as DEPLOY.md shows, through the API: the secret in
    // /etc/evcharge/cp-CP001.secret, which its unit loads.
    let secret = etc.join("cp-CP001.secret");
    let out = Command::new(evcharge())
        .args(["cp-register", "--id", "CP001", "--location", "Dock 1"])
        .args([
            "--price",
            "0.35",
            "--api",
            &format!("http://127.0.0.1:{http}"),
        ])
        .arg("--secret-file")
        .arg(&secret)
        .env(evcharge::configuration::API_TOKEN_VARIABLE, &token)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let central_address = [("EVCHARGE_MONITOR__CENTRAL".to_string(), tcp)];
    let _cp = start("evcharge-cp@.service", "CP001", &central_address);
    let cp = wait_for("CP001 from its unit to be available", DEADLINE, || {
        cps("CP001").filter(|c| c["state"] == "available")
    });
    assert_eq!(cp["location"], "Dock 1", "its registration's");
    assert!(state.join("evcharge/cp-CP001").is_dir());

    // D001 registered as DEPLOY.md shows, through the API: the secret in
    // /etc/evcharge/driver-D001.secret, which its unit loads.
    let secret = etc.join("driver-D001.secret");
    let out = Command::new(evcharge())
        .args(["driver-register", "--id", "D001"])
        .args(["--api", &format!("http://127.0.0.1:{http}")])
        .arg("--secret-file")
        .arg(&secret)
        .env(evcharge::configuration::API_TOKEN_VARIABLE, &token)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The driver, with its secret, serves its dashboard where its own environment file says.
    let address = [("EVCHARGE_DRIVER__HTTP".to_string(), any)];
    let driver = start("evcharge-driver@.service", "D001", &address);
    let page = announced_port(&driver, announces::DASHBOARD);
    let ready = wait_for("D001's dashboard from its unit", DEADLINE, || {
        ureq::get(&format!("http://127.0.0.1:{page}/api/ready"))
            .call()
            .ok()?
            .into_json::<Value>()
            .ok()
    });
    assert_eq!(ready["driver_id"], "D001", "{ready}");
}

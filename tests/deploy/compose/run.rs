//! `deploy/compose/`, run as compose would: the registrations central.yml shows, then the CP
//! and driver services with the secrets they were given.

use super::{env_map, strings_of, yaml};
use crate::support::*;
use crate::{compose_runs, deploy, flag_value, read, text, ComposeRun};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

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

/// Runs a `docker compose -f central.yml run … central cp-register …` (or `driver-register`)
/// line of central.yml here: the central's database volume is `data`, its API inside the
/// compose network the test central's at `api`; the secret goes where the line sends it,
/// under `dir`. Returns the CP's or driver's id, and a CP's location.
fn register_as_shown(
    run: &ComposeRun,
    dir: &Path,
    (data_inside, data): (&str, &Path),
    (api_inside, api): (&str, &str),
    token: &str,
) -> (String, Option<String>) {
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
            None if given == evcharge::configuration::API_TOKEN_VARIABLE => {
                env.push((given.clone(), token.into()));
            }
            None => panic!("{}: -e {given} is not for {}", run.line, run.argv[0]),
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
                    .any(|e| e == evcharge::configuration::API_TOKEN_VARIABLE),
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
    let location = flag_value(&argv, "--location").map(str::to_owned);
    (id, location)
}

/// Runs the `docker compose -f FILE run … ROLE …` line FILE's comments show (one more CP or
/// driver on another service's settings); it must be registered in central.yml (`registered`).
fn run_shown(
    dir: &Path,
    file: &str,
    role: &str,
    vars: &BTreeMap<&str, String>,
    registered: &BTreeMap<String, Option<String>>,
) -> (String, Proc) {
    let shown = compose_runs(&read(&deploy(&format!("compose/{file}"))))
        .into_iter()
        .find(|r| r.argv.first().is_some_and(|a| a == role))
        .unwrap_or_else(|| panic!("{file} shows how to run one more {role}"));
    let id = flag_value(&shown.argv, "--id").unwrap().to_owned();
    assert!(
        registered.contains_key(&id),
        "{}: {id} is not registered in central.yml",
        shown.line
    );
    let name = format!("more-{role}");
    let proc = run_service(
        dir,
        &shown.file,
        &shown.service,
        Some(&shown.argv),
        vars,
        &name,
    );
    (id, proc)
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
    // stopped, then through the API of the running central. Their secrets/ is machine 2's
    // (the CPs') and machine 3's (the drivers'), here one folder.
    std::fs::create_dir(net.dir.path().join("secrets")).unwrap();
    let runs: Vec<ComposeRun> = compose_runs(&read(&deploy("compose/central.yml")))
        .into_iter()
        .filter(|r| {
            r.argv
                .first()
                .is_some_and(|a| a == "cp-register" || a == "driver-register")
        })
        .collect();
    let (on_data, on_api): (Vec<&ComposeRun>, Vec<&ComposeRun>) = runs
        .iter()
        .partition(|r| r.argv.iter().any(|a| a == "--data"));
    for command in ["cp-register", "driver-register"] {
        let shown = |runs: &[&ComposeRun]| runs.iter().any(|r| r.argv[0] == command);
        assert!(
            shown(&on_data) && shown(&on_api),
            "central.yml shows both ways to {command}: {runs:?}"
        );
    }
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
    // Every CP cps.yml starts and every driver drivers.yml starts is registered there.
    for file in ["cps.yml", "drivers.yml"] {
        let compose = yaml(&deploy(&format!("compose/{file}")));
        for (name, service) in compose["services"].as_object().unwrap() {
            let command = strings_of(&service["command"]);
            let id = flag_value(&command, "--id").unwrap();
            assert!(
                locations.contains_key(id),
                "{file}: {name} runs {id}, which central.yml does not register: {locations:?}"
            );
        }
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
    let (grown, _more) = run_shown(dir, "cps.yml", "cp", &vars, &locations);
    let d001 = run_service(dir, "drivers.yml", "d001", None, &vars, "d001");

    // Each with the location it was registered at.
    for id in ["CP001", "CP002", grown.as_str()] {
        let cp = net.wait_state(id, "available");
        assert_eq!(
            cp["location"].as_str(),
            locations[id].as_deref(),
            "{id}: its registration's"
        );
    }
    // One more driver, as drivers.yml's comment shows: its request, proven with the secret
    // it was given, is served.
    let (driver, _one_supply) = run_shown(dir, "drivers.yml", "driver", &vars, &locations);
    wait_for(
        &format!("a completed supply of {driver}"),
        DEADLINE * 2,
        || {
            net.sessions()
                .into_iter()
                .find(|s| s["driver_id"] == driver.as_str() && s["outcome"] == "completed")
        },
    );
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

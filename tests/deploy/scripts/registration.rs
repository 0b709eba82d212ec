//! `evcharge-local.sh start-cps` and `start-drivers` register the CPs and drivers they start
//! and hand each its secret: with the central the script started (through its API, or on its
//! database while it is stopped).

use super::LocalRun;
use crate::read;
use crate::support::*;
use crate::text;
use serde_json::Value;
use std::path::Path;

/// The mode bits of a file.
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Each of `ids` is started with the secret file of its run directory, readable by its
/// owner only, and nothing the script recorded for it holds the operator's token.
pub(super) fn assert_started_with_their_secrets(run: &LocalRun, ids: &[&str], token: Option<&str>) {
    for id in ids {
        let secret = run.run.join(format!("{id}.secret"));
        assert_eq!(mode_of(&secret), 0o600, "{id}'s secret file");
        let cmd = read(&run.run.join(format!("{id}.cmd")));
        let argv: Vec<&str> = cmd.split('\0').collect();
        let at = argv.iter().position(|a| *a == "--secret-file");
        assert_eq!(
            at.map(|i| argv[i + 1]),
            Some(secret.to_str().unwrap()),
            "{id} started with its secret file: {argv:?}"
        );
        assert!(
            !argv.iter().any(|a| ["--location", "--price"].contains(a)),
            "{argv:?}"
        );
        let env = read(&run.run.join(format!("{id}.env")));
        assert!(!env.contains("EVCHARGE_API_TOKEN"), "{id}.env: {env}");
        if let Some(token) = token {
            assert!(
                !env.contains(token) && !cmd.contains(token),
                "{id}: the token"
            );
        }
    }
}

#[test]
fn the_local_script_registers_its_cps_and_drivers_with_the_central_it_started() {
    // Everything from the script: broker, central, CPs; the central's addresses are known
    // beforehand, as the CPs and the script must find it there.
    let listen = format!("127.0.0.1:{}", free_port());
    let console = format!("127.0.0.1:{}", free_port());
    let run = LocalRun::new(&[
        ("EVCHARGE_CENTRAL__LISTEN", &listen),
        ("EVCHARGE_CENTRAL__HTTP", &console),
        ("EVCHARGE_MONITOR__CENTRAL", &listen),
    ]);
    run.ok(&["start-broker"]);
    run.ok(&["start-central"]);
    // Before its first start, the first operator (as the central would make it) and a token.
    let token_file = run.run.join("api-token");
    assert_eq!(mode_of(&token_file), 0o600, "the token is its owner's only");
    let token = read(&token_file).trim().to_owned();
    // The admin's one-time password in a file of the owner's, never in the log.
    let first_admin = run.run.join("first-admin-password");
    assert_eq!(mode_of(&first_admin), 0o600);
    assert!(read(&first_admin).contains("operator admin added with the one-time password"));
    let log = read(&run.run.join("central.log"));
    assert!(!log.contains("one-time password "), "{log}");
    let cps = || -> Option<Vec<Value>> {
        ureq::get(&format!("http://{console}/api/cps"))
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .ok()?
            .into_json()
            .ok()
    };
    let wait_available = |ids: &[&str]| {
        wait_for(&format!("{ids:?} available"), DEADLINE, || {
            let all = cps()?;
            let shown: Vec<&Value> = all
                .iter()
                .filter(|c| ids.contains(&c["id"].as_str().unwrap_or_default()))
                .collect();
            (shown.len() == ids.len() && shown.iter().all(|c| c["state"] == "available"))
                .then_some(all)
        })
    };

    // The central runs: through its API, with the token the script made, at once (the
    // script waits for the API the central opens).
    let out = run.ok(&["start-cps", "1", "--location", "Dock 1", "--price", "0.3"]);
    assert!(out.contains("registered CP001 through http://"), "{out}");
    wait_available(&["CP001"]);
    let out = run.ok(&["start-drivers", "1", "--requests", "1"]);
    assert!(out.contains("registered D001 through http://"), "{out}");

    // The central stopped: on its database; the CPs and drivers join once it is back.
    run.ok(&["stop", "central"]);
    let out = run.ok(&["start-cps", "1", "--first", "2", "--location", "Dock 2"]);
    assert!(out.contains("registered CP002 on "), "{out}");
    let out = run.ok(&["start-drivers", "1", "--first", "2", "--requests", "1"]);
    assert!(out.contains("registered D002 on "), "{out}");
    run.ok(&["start", "central"]);
    let all = wait_available(&["CP001", "CP002"]);
    let terms: Vec<(String, f64)> = all
        .iter()
        .map(|c| {
            (
                c["location"].as_str().unwrap().to_owned(),
                c["price_eur_kwh"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        terms,
        [("Dock 1".to_owned(), 0.3), ("Dock 2".to_owned(), 0.35)]
    );
    assert_started_with_their_secrets(&run, &["CP001", "CP002", "D001", "D002"], Some(&token));
    // Each driver's request, proven with its secret, is served.
    for driver in ["D001", "D002"] {
        wait_for(
            &format!("a completed supply of {driver}"),
            DEADLINE * 2,
            || {
                let sessions: Value = ureq::get(&format!("http://{console}/api/sessions"))
                    .set("Authorization", &format!("Bearer {token}"))
                    .call()
                    .ok()?
                    .into_json()
                    .ok()?;
                sessions
                    .as_array()?
                    .iter()
                    .find(|s| s["driver_id"] == driver && s["outcome"] == "completed")
                    .cloned()
            },
        );
    }

    // A CP whose secret is lost cannot be registered again under its id: the script says so.
    std::fs::remove_file(run.run.join("CP002.secret")).unwrap();
    run.ok(&["stop", "CP002"]);
    let out = run.script(&["start-cps", "1", "--first", "2"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.starts_with("evcharge-local: cannot register CP002 through ")
            && err.contains("409")
            && err.contains("CP002.secret"),
        "{err}"
    );
    run.ok(&["stop-all"]);
}

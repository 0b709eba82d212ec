//! `evcharge demo`: one command brings up a whole network that serves its drivers.

mod support;

use support::*;

/// A demo started by [`start_demo`].
struct Demo {
    proc: Proc,
    /// The directory of the attempt that started: the demo works in its `work`.
    dir: std::path::PathBuf,
    /// The central's API.
    http: u16,
    /// The first monitor page's port, when `args` asked for pages.
    pages: u16,
}

/// Starts `evcharge demo` with the arguments `args(http, listen, pages)` gives for the
/// central's API and monitor ports and the first monitor page's (the others 10 apart).
/// The demo hands these to processes of its own and reaches them there itself, so they
/// cannot be port 0: they are chosen free beforehand. Should one of them, or a port the demo
/// picks for an engine, be taken by another process before it is bound, the demo is killed
/// (its children go with it) and started again on other ports. `ready` tells from the
/// output when every listener of the demo is bound. `env` is the demo's environment.
fn start_demo(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    args: impl Fn(u16, u16, u16) -> Vec<String>,
    ready: impl Fn(&str) -> bool,
) -> Demo {
    let mut attempt = 0;
    wait_for("a demo whose ports are free", DEADLINE * 2, || {
        attempt += 1;
        let work = dir.join(format!("attempt-{attempt}"));
        std::fs::create_dir_all(&work).unwrap();
        let (http, pages) = (free_port(), free_port());
        let mut args = args(http, free_port(), pages);
        args.extend(["--dir".into(), work.join("work").display().to_string()]);
        let proc = Proc::spawn(&work, "demo", evcharge(), &args, env);
        let bound = wait_for("the demo's listeners to be bound", DEADLINE, || {
            let out = proc.stderr_text() + &proc.stdout_text();
            if out.contains(ADDRESS_IN_USE) {
                Some(false)
            } else {
                ready(&out).then_some(true)
            }
        });
        if !bound {
            eprintln!("the demo found a port taken; starting it again on others");
            return None;
        }
        Some(Demo {
            proc,
            dir: work,
            http,
            pages,
        })
    })
}

/// How many lines of `out` contain `marker`.
fn count(out: &str, marker: &str) -> usize {
    out.lines().filter(|l| l.contains(marker)).count()
}

/// Whether the demo's central and its `cps` engines have bound their listeners.
fn network_bound(out: &str, cps: usize) -> bool {
    out.contains(announces::CONSOLE)
        && out.contains(announces::MONITORS)
        && count(out, announces::ENGINE) >= cps
}

/// The API token the demo leaves in its working directory, which only its owner may read.
fn demo_token(dir: &std::path::Path) -> String {
    let file = dir.join("work").join("api-token");
    let token = wait_for("the demo's API token", DEADLINE, || {
        std::fs::read_to_string(&file)
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
    });
    assert_eq!(mode_of(&file), 0o600, "{}", file.display());
    token
}

/// The permission bits of a file.
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_demo_runs_a_network_that_serves_its_drivers() {
    let dir = tempfile::tempdir().unwrap();
    let started = start_demo(
        dir.path(),
        &FAST_ENV,
        |http, listen, pages| {
            strings(&[
                "demo",
                "--cps",
                "3",
                "--drivers",
                "2",
                "--monitor-pages",
                &pages.to_string(),
                "--driver-pages",
                "0",
                "--http",
                &format!("127.0.0.1:{http}"),
                "--listen",
                &format!("127.0.0.1:{listen}"),
                // Not used here; port 0 keeps it off the default port.
                "--control",
                "127.0.0.1:0",
                "--gateway",
                "127.0.0.1:0",
            ])
        },
        |out| network_bound(out, 3) && count(out, announces::MONITOR_PAGE) >= 3,
    );
    let (http, monitor_pages) = (started.http, started.pages);
    let (mut demo, work) = (started.proc, started.dir);

    // Every CP reports, and the drivers' requests turn into closed, priced sessions.
    let token = demo_token(&work);
    let api = |path: &str| -> Option<serde_json::Value> {
        ureq::get(&format!("http://127.0.0.1:{http}{path}"))
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .ok()?
            .into_json()
            .ok()
    };
    // The 3 native CPs, and OCPP01 for a real charge point to join through the gateway.
    let cps = wait_for("4 CPs in the API", DEADLINE, || {
        api("/api/cps").filter(|c| c.as_array().is_some_and(|a| a.len() == 4))
    });
    assert!(
        cps.as_array().unwrap().iter().any(|c| c["id"] == "OCPP01"),
        "{cps}"
    );
    announced(&demo, announces::GATEWAY);
    assert!(
        work.join("work/OCPP01.key").exists(),
        "OCPP01's key, for the charge point"
    );
    // The console's first login is shown as a file only its owner may read, never in the
    // log; the first CP's monitor page answers.
    let file = work.join("work/central/first-admin-password");
    wait_for("the admin's one-time password file", DEADLINE, || {
        let out = demo.stderr_text() + &demo.stdout_text();
        out.contains(&format!(
            "log in as \"admin\" with the one-time password in {}",
            file.display()
        ))
        .then_some(())
    });
    assert_eq!(mode_of(&file), 0o600);
    let password = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert_eq!(password.len(), 16);
    let out = demo.stderr_text() + &demo.stdout_text();
    assert!(!out.contains(&password), "the password is in the log");
    let status: serde_json::Value = wait_for("CP001's monitor page", DEADLINE, || {
        ureq::get(&format!("http://127.0.0.1:{monitor_pages}/api/status"))
            .call()
            .ok()?
            .into_json()
            .ok()
    });
    assert_eq!(status["cp_id"], "CP001");
    let sessions = wait_for("4 completed sessions", DEADLINE * 2, || {
        api("/api/sessions").and_then(|s| {
            let done: Vec<_> = s
                .as_array()?
                .iter()
                .filter(|s| s["outcome"] == "completed")
                .cloned()
                .collect();
            (done.len() >= 4).then_some(done)
        })
    });
    for s in &sessions {
        let kwh = s["kwh"].as_f64().unwrap();
        assert!(kwh > 0.0);
        assert_priced(
            kwh,
            s["eur"].as_f64().unwrap(),
            s["price_eur_kwh"].as_f64().unwrap(),
        );
    }
    // Readable logs, each line named after its process.
    let out = demo.stdout_text();
    assert!(out.contains("central |"), "{out}");
    assert!(out.contains("CP001-engine |"));
    assert!(out.contains("CP001-monitor |"));
    assert!(out
        .lines()
        .any(|l| l.contains("D001 |") && l.contains("TICKET")));
    let file = std::fs::read_to_string(work.join("work/requests-D001.txt")).unwrap();
    assert!(file.lines().filter(|l| !l.starts_with('#')).count() >= 10);

    // Killed outright, the demo takes its whole network with it.
    let bootstrap = demo
        .stderr_text()
        .lines()
        .find_map(|l| {
            l.split("embedded Kafka broker on ")
                .nth(1)
                .map(str::to_owned)
        })
        .expect("the demo names its broker");
    assert!(
        processes_with_arg(&bootstrap) >= 6,
        "central, 3 CPs and 2 drivers run with the broker's address"
    );
    demo.kill();
    wait_for("every child of the demo to leave", DEADLINE, || {
        (processes_with_arg(&bootstrap) == 0).then_some(())
    });
}

/// How many live processes have `arg` among their arguments.
fn processes_with_arg(arg: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .filter(|cmdline| cmdline.split(|b| *b == 0).any(|a| a == arg.as_bytes()))
        .count()
}

#[test]
fn the_presenter_crashes_parts_and_chooses_whether_they_come_back() {
    let dir = tempfile::tempdir().unwrap();
    // As a presenter runs it: no control token given, the demo makes one.
    let env: Vec<(&str, &str)> = FAST_ENV
        .iter()
        .copied()
        .filter(|(name, _)| *name != "EVCHARGE_CONTROL__TOKEN")
        .collect();
    let started = start_demo(
        dir.path(),
        &env,
        |http, listen, _| {
            strings(&[
                "demo",
                "--cps",
                "2",
                "--drivers",
                "0",
                "--http",
                &format!("127.0.0.1:{http}"),
                "--listen",
                &format!("127.0.0.1:{listen}"),
                // The demo binds it itself: port 0, read back from what it announces.
                "--control",
                "127.0.0.1:0",
                "--gateway",
                "127.0.0.1:0",
                "--driver-pages",
                "0",
                "--monitor-pages",
                "0",
                "--restart-failed",
                "1s",
            ])
        },
        |out| network_bound(out, 2) && out.contains(announces::DEMO_CONTROL),
    );
    let (http, demo, work) = (started.http, started.proc, started.dir);
    let control = announced_port(&demo, announces::DEMO_CONTROL);
    let token = demo_token(&work);
    // The control token the demo made, in a file only its owner may read.
    let control_token_file = work.join("work/control-token");
    let control_token = std::fs::read_to_string(&control_token_file)
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(mode_of(&control_token_file), 0o600);
    assert_eq!(control_token.len(), 64);
    let out = demo.stderr_text() + &demo.stdout_text();
    assert!(
        !out.contains(&control_token),
        "the control token is in the log"
    );
    let demo_control =
        evcharge::harness::Endpoint::new(format!("127.0.0.1:{control}")).with_token(&control_token);
    let state = |id: &str| -> Option<String> {
        let cps: serde_json::Value = ureq::get(&format!("http://127.0.0.1:{http}/api/cps"))
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .ok()?
            .into_json()
            .ok()?;
        let cp = cps.as_array()?.iter().find(|c| c["id"] == id)?;
        Some(cp["state"].as_str()?.to_owned())
    };
    let wait_state = |id: &str, want: &str| {
        wait_for(&format!("{id} {want}"), DEADLINE, || {
            (state(id).as_deref() == Some(want)).then_some(())
        });
    };
    let post = |path: &str| -> u16 {
        demo_control
            .post_for_status(&format!("/demo/{path}"), None)
            .unwrap_or_else(|e| panic!("{path}: {e:#}"))
            .0
    };
    let part = |name: &str| -> serde_json::Value {
        let parts: serde_json::Value = demo_control.get_json("/demo/parts").unwrap();
        parts
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    wait_for("the demo's control endpoint", DEADLINE, || {
        demo_control
            .get_json::<serde_json::Value>("/demo/parts")
            .ok()
    });
    // Without the token, the demo's control refuses.
    let anonymous = evcharge::harness::Endpoint::new(format!("127.0.0.1:{control}"));
    assert_eq!(
        anonymous
            .post_for_status("/demo/broker/outage", None)
            .unwrap()
            .0,
        401
    );
    wait_state("CP001", "available");
    wait_state("CP002", "available");

    // A monitor crashed with a delay: disconnected, then back by itself.
    assert_eq!(post("parts/CP001-monitor/crash?restart_after=1s"), 202);
    wait_state("CP001", "disconnected");
    wait_state("CP001", "available");
    assert_eq!(part("CP001-monitor")["restarts"], 1);

    // An engine crashed without a delay: broken, and it stays down until started.
    assert_eq!(post("parts/CP002-engine/crash"), 202);
    wait_state("CP002", "broken");
    wait_for("CP002's engine to be gone", DEADLINE, || {
        (part("CP002-engine")["running"] == false).then_some(())
    });
    assert_eq!(part("CP002-engine")["restart_pending"], false);
    assert_eq!(state("CP002").as_deref(), Some("broken"));
    assert_eq!(post("parts/CP002-engine/start"), 202);
    wait_state("CP002", "available");

    // An engine crashed from the console's API: the demo brings it back, as a supervisor.
    let crash = ureq::post(&format!(
        "http://127.0.0.1:{http}/api/crash/cps/CP002/engine"
    ))
    .set("Authorization", &format!("Bearer {token}"))
    .call()
    .unwrap();
    assert_eq!(crash.status(), 202);
    wait_state("CP002", "broken");
    wait_state("CP002", "available");
    wait_for("the restart to be counted", DEADLINE, || {
        (part("CP002-engine")["restarts"] == 2).then_some(())
    });

    // The broker can be taken away and brought back; the roles say so, and carry on.
    assert_eq!(post("broker/outage"), 202);
    wait_for("the central to notice", DEADLINE, || {
        demo.stdout_text()
            .lines()
            .any(|l| l.contains("central |") && l.contains("cannot reach the Kafka broker"))
            .then_some(())
    });
    assert_eq!(post("broker/recover"), 202);
    // Until the central is back on the bus it hears no engine, so it shows no CP available.
    wait_for("the central back on the bus", DEADLINE, || {
        demo.stdout_text()
            .lines()
            .any(|l| l.contains("central |") && l.contains("is reachable again"))
            .then_some(())
    });
    // The CPs serve again first: had the central's group session run out meanwhile, its
    // CPs show starting until it has rejoined, and a crash then would show nothing.
    wait_state("CP001", "available");
    assert_eq!(post("parts/CP001-monitor/crash?restart_after=1s"), 202);
    wait_state("CP001", "disconnected");
    wait_state("CP001", "available");

    // Mistakes get a clear 4xx.
    assert_eq!(post("parts/NOPE/crash"), 409);
    assert_eq!(post("parts/CP001-engine/crash?restart_after=soon"), 400);
    assert_eq!(post("parts/CP001-engine/start"), 409);
}

#[test]
fn with_two_centrals_the_presenter_crashes_one_and_its_cps_move_to_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let started = start_demo(
        dir.path(),
        &FAST_ENV,
        |http, listen, _| {
            strings(&[
                "demo",
                "--centrals",
                "2",
                "--brokers",
                "3",
                "--cps",
                "3",
                "--drivers",
                "0",
                "--http",
                &format!("127.0.0.1:{http}"),
                "--listen",
                &format!("127.0.0.1:{listen}"),
                "--control",
                "127.0.0.1:0",
                "--gateway",
                "127.0.0.1:0",
                "--driver-pages",
                "0",
                "--monitor-pages",
                "0",
                "--restart-failed",
                "0s",
            ])
        },
        |out| {
            network_bound(out, 3)
                && count(out, announces::CONSOLE) >= 2
                && out.contains(announces::DEMO_CONTROL)
        },
    );
    let (demo, work) = (started.proc, started.dir);
    let token = demo_token(&work);
    let control = announced_port(&demo, announces::DEMO_CONTROL);
    // The control token FAST_ENV gives.
    let demo_control =
        evcharge::harness::Endpoint::new(format!("127.0.0.1:{control}")).with_token(CONTROL_TOKEN);
    // The second central's console, as the demo tells the presenter.
    let second = wait_for(
        "the demo to name the second central's console",
        DEADLINE,
        || {
            demo.stderr_text()
                .lines()
                .find_map(|l| l.split("central-2: admin console at http://").nth(1))
                .and_then(|rest| rest.split('/').next())
                .map(str::to_owned)
        },
    );
    let cps_at = |http: &str| -> Vec<serde_json::Value> {
        ureq::get(&format!("http://{http}/api/cps"))
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .ok()
            .and_then(|r| r.into_json::<serde_json::Value>().ok())
            .and_then(|cps| cps.as_array().cloned())
            .unwrap_or_default()
    };
    // The native CPs; OCPP01 waits for a real charge point to join through the gateway.
    let all_run_by = |http: &str, owner: Option<&str>| {
        let cps: Vec<_> = cps_at(http)
            .into_iter()
            .filter(|cp| cp["id"] != "OCPP01")
            .collect();
        cps.len() == 3
            && cps.iter().all(|cp| {
                cp["state"] == "available"
                    && owner.is_none_or(|o| cp["owner"] == o)
                    && !cp["owner"].is_null()
            })
    };
    wait_for("every CP available on the second central", DEADLINE, || {
        all_run_by(&second, None).then_some(())
    });

    // On three brokers, the presenter takes one down and brings it back.
    let post = |path: &str| demo_control.post_for_status(path, None).unwrap().0;
    assert_eq!(post("/demo/broker/2/down"), 202);
    assert_eq!(post("/demo/broker/7/down"), 404);
    let said = |what: &str| demo.stderr_text().contains(what).then_some(());
    wait_for("the demo to take broker 2 down", DEADLINE, || {
        said("broker 2 down: 2 partitions of each topic led by another broker")
    });
    assert_eq!(post("/demo/broker/2/up"), 202);
    wait_for("broker 2 back", DEADLINE, || {
        said("broker 2 back: it leads its partitions again")
    });

    // The presenter crashes the first central: the second runs every CP.
    assert_eq!(
        demo_control
            .post_for_status("/demo/parts/central/crash", None)
            .unwrap()
            .0,
        202
    );
    wait_for("every CP run by central-2", DEADLINE, || {
        all_run_by(&second, Some("central-2")).then_some(())
    });
}

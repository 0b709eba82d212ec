//! `evcharge demo`: one command brings up a whole network that serves its drivers.

mod support;

use support::*;

#[test]
fn the_demo_runs_a_network_that_serves_its_drivers() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let args: Vec<String> = [
        "demo",
        "--cps",
        "3",
        "--drivers",
        "2",
        "--http",
        &format!("127.0.0.1:{http}"),
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--dir",
        &dir.path().join("work").display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut demo = Proc::spawn(dir.path(), "demo", evcharge(), &args, &FAST_ENV);

    // Every CP reports, and the drivers' requests turn into closed, priced sessions.
    let api = |path: &str| -> Option<serde_json::Value> {
        ureq::get(&format!("http://127.0.0.1:{http}{path}"))
            .call()
            .ok()?
            .into_json()
            .ok()
    };
    wait_for("3 CPs in the API", DEADLINE, || {
        api("/api/cps").filter(|c| c.as_array().is_some_and(|a| a.len() == 3))
    });
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
    assert!(out.contains("CP001 |"));
    assert!(out
        .lines()
        .any(|l| l.contains("D001 |") && l.contains("TICKET")));
    let file = std::fs::read_to_string(dir.path().join("work/requests-D001.txt")).unwrap();
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

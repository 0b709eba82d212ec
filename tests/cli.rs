//! The binary as a person meets it: help, bad settings, the broker's address, and a plain
//! complaint while the broker cannot be reached.

mod support;

use std::process::Command;
use support::*;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(evcharge()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_role_explains_its_flags() {
    let expected: [(&str, &[&str]); 9] = [
        (
            "central",
            &[
                "--listen",
                "--http",
                "--data",
                "--silence-window",
                "--kafka",
                "--config",
            ],
        ),
        (
            "engine",
            &[
                "--id",
                "--listen",
                "--plug-in-delay",
                "--interactive",
                "--secret-file",
            ],
        ),
        (
            "monitor",
            &["--id", "--engine", "--central", "--secret-file"],
        ),
        ("cp", &["--id", "--central", "--secret-file"]),
        (
            "cp-register",
            &[
                "--id",
                "--location",
                "--price",
                "--count",
                "--secret-file",
                "--api",
                "--data",
            ],
        ),
        (
            "driver",
            &[
                "--id",
                "--cp",
                "--file",
                "--interactive",
                "--any",
                "--secret-file",
            ],
        ),
        (
            "driver-register",
            &["--id", "--count", "--secret-file", "--api", "--data"],
        ),
        ("broker", &["--bootstrap-file"]),
        ("demo", &["--cps", "--drivers"]),
    ];
    for (role, flags) in expected {
        let (code, help, _) = run(&[role, "--help"]);
        assert_eq!(code, 0);
        for flag in flags {
            assert!(
                help.contains(flag),
                "`{role} --help` does not mention {flag}:\n{help}"
            );
        }
    }
}

#[test]
fn a_bad_setting_is_refused_with_its_key() {
    let (code, _, err) = run(&["central", "--silence-window", "soon"]);
    assert_eq!(code, 2);
    assert!(err.contains("silence_window"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[engine]\npower_kw = -3\n").unwrap();
    let (code, _, err) = run(&["--config", file.to_str().unwrap(), "monitor", "--id", "CP1"]);
    assert_eq!(code, 2);
    assert!(err.contains("engine.power_kw"), "{err}");

    // A monitor, an engine or a driver without its secret says how to give it.
    for role in [
        &["monitor", "--id", "CP1"][..],
        &["engine", "--id", "CP1"],
        &["driver", "--id", "D1", "--any"],
    ] {
        let (code, _, err) = run(role);
        assert_ne!(code, 0);
        assert!(
            err.contains("--secret-file") && err.contains("secret is required"),
            "{err}"
        );
    }

    let (code, _, err) = run(&["engine"]);
    assert_ne!(code, 0);
    assert!(err.contains("--id"), "{err}");
}

#[test]
fn the_broker_prints_its_address_first() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerKind::Embedded, dir.path());
    let first_line = wait_for("the broker's first line", DEADLINE, || {
        std::fs::read_to_string(dir.path().join("broker.out"))
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned))
    });
    assert_eq!(first_line, broker.bootstrap);
    assert!(std::net::TcpStream::connect(&broker.bootstrap).is_ok());
}

#[test]
fn a_role_without_a_broker_says_so_and_keeps_trying() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = nowhere();
    let mut driver = Proc::spawn(
        dir.path(),
        "driver",
        evcharge(),
        &[
            "--kafka".into(),
            nowhere.clone(),
            "driver".into(),
            "--id".into(),
            "D1".into(),
            "--any".into(),
        ],
        &[
            ("EVCHARGE_KAFKA__RETRY_BACKOFF", "200ms"),
            // Never checked: no central is reached.
            ("EVCHARGE_DRIVER__SECRET", "evcdrv_unchecked"),
        ],
    );
    let complaint = format!("cannot reach the Kafka broker at {nowhere}");
    wait_for("the complaint", DEADLINE, || {
        driver.stderr_text().contains(&complaint).then_some(())
    });
    assert!(
        driver.is_running(),
        "the driver gave up: {}",
        driver.stderr_text()
    );
    assert!(!driver.stderr_text().contains("panicked"));
}

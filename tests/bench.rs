//! `evcharge bench` end to end, small: a real broker, central and both fleets, every phase.
//! It checks that the benchmark measures what it says (every request answered, every CP
//! reporting, every crash seen), never how fast: speed is for the printed figures.

use std::process::Command;

#[test]
fn the_benchmark_measures_every_phase_of_a_small_network() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("figures.json");
    let output = Command::new(env!("CARGO_BIN_EXE_evcharge"))
        .args(["bench", "--cps", "12", "--duration", "4s"])
        .args([
            "--auth-rate",
            "40",
            "--auth-requests",
            "24",
            "--crashes",
            "4",
            "--failovers",
            "1",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--dir")
        .arg(dir.path().join("work"))
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    println!("{printed}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the benchmark failed");
    assert!(printed.contains("| CPs |"), "no table printed");

    let figures: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("the JSON is written")).unwrap();
    assert!(figures["machine"]["cores"].as_u64().unwrap() >= 1);
    let run = &figures["runs"][0];
    assert_eq!(run["cps"], 12);

    let auth = &run["auth"];
    assert_eq!(auth["sent"], 24);
    assert_eq!(auth["unanswered"], 0, "every request is answered: {auth}");
    assert!(auth["authorised"].as_u64().unwrap() >= 12, "{auth}");
    assert!(auth["p99_ms"].as_f64().unwrap() > 0.0, "{auth}");

    let telemetry = &run["telemetry"];
    assert_eq!(
        telemetry["charging_min"], 12,
        "every CP supplies: {telemetry}"
    );
    let reports = telemetry["reports_per_s"].as_f64().unwrap();
    assert!(
        reports >= 6.0,
        "each CP reports about once a second: {telemetry}"
    );
    assert!(telemetry["p99_ms"].as_f64().unwrap() > 0.0, "{telemetry}");
    assert!(telemetry["monitor_reports_per_s"].as_f64().unwrap() > 0.0);

    let crashes = &run["crashes"];
    assert_eq!(crashes["injected"], 4, "{crashes}");
    assert_eq!(crashes["detected"], 4, "every crash is noticed: {crashes}");
    assert!(
        crashes["engine_max_ms"].as_f64().unwrap() > 0.0,
        "{crashes}"
    );
    assert!(
        crashes["monitor_max_ms"].as_f64().unwrap() > 0.0,
        "{crashes}"
    );

    // Two centrals by default: the second joins and takes a share of the reports...
    let scale_out = &run["scale_out"];
    assert_eq!(scale_out["centrals"], 2, "{scale_out}");
    assert!(scale_out["joined_s"].as_f64().is_some(), "{scale_out}");
    let by_central = scale_out["together"]["reports_per_s_by_central"]
        .as_array()
        .unwrap();
    assert_eq!(by_central.len(), 2, "{scale_out}");
    assert!(
        by_central.iter().all(|r| r.as_f64().unwrap() > 0.0),
        "both centrals apply reports: {scale_out}"
    );
    assert_eq!(
        scale_out["alone"]["reports_per_s_by_central"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // ...then one is killed, the other serves its CPs again.
    let failover = &run["failover"];
    assert_eq!(failover["centrals"], 2, "{failover}");
    assert_eq!(failover["kills"], 1, "{failover}");
    let adopted = failover["adopted"].as_u64().unwrap();
    assert!(adopted >= 1, "the killed central ran CPs: {failover}");
    assert_eq!(
        failover["unserved"], 0,
        "every adopted CP is served: {failover}"
    );
    assert!(
        failover["served_p99_ms"].as_f64().unwrap() > 0.0,
        "{failover}"
    );
    assert!(
        failover["rejoin_max_ms"].as_f64().unwrap() > 0.0,
        "{failover}"
    );
    let split = &failover["split"][0];
    let shared: u64 = split
        .as_object()
        .unwrap()
        .values()
        .filter_map(|n| n.as_u64())
        .sum();
    assert_eq!(shared, 12, "every CP is run by one central: {split}");

    let resources = &run["resources"];
    assert!(
        resources["central_rss_mb"].as_f64().unwrap() > 1.0,
        "{resources}"
    );
    assert!(
        resources["central_cpu_pct"].as_f64().unwrap() > 0.0,
        "{resources}"
    );
}

/// `--ocpp-chargers` alone: one gateway, charge points of `evcharge fleet ocpp` on their own
/// WebSockets, every figure of the gateway phase.
#[test]
fn the_benchmark_measures_one_ocpp_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("figures.json");
    let output = Command::new(env!("CARGO_BIN_EXE_evcharge"))
        .args(["bench", "--ocpp-chargers", "16", "--duration", "4s"])
        .args([
            "--meter-interval",
            "1s",
            "--auth-rate",
            "40",
            "--auth-requests",
            "32",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--dir")
        .arg(dir.path().join("work"))
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    println!("{printed}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the benchmark failed");

    let figures: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("the JSON is written")).unwrap();
    assert_eq!(
        figures["runs"].as_array().map(Vec::len),
        Some(0),
        "{figures}"
    );
    let gateway = &figures["gateway"];
    assert_eq!(gateway["chargers"], 16, "{gateway}");
    assert_eq!(
        gateway["connected"], 16,
        "every charger connects: {gateway}"
    );
    assert!(
        gateway["kb_per_connection_idle"].as_f64().unwrap() > 0.0,
        "{gateway}"
    );
    let starts = &gateway["remote_start"];
    assert_eq!(starts["sent"], 32, "{starts}");
    assert_eq!(
        starts["unanswered"], 0,
        "every request is answered: {starts}"
    );
    assert!(starts["authorised"].as_u64().unwrap() >= 16, "{starts}");
    assert!(starts["p99_ms"].as_f64().unwrap() > 0.0, "{starts}");
    assert_eq!(
        gateway["supplying"], 16,
        "every charger supplies: {gateway}"
    );
    // Sixteen chargers, one MeterValues a second each.
    assert!(
        gateway["meter_values_per_s"].as_f64().unwrap() >= 8.0,
        "{gateway}"
    );
    assert_eq!(gateway["call_errors"], 0, "{gateway}");
}

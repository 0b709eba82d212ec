//! The pages in a real headless Chromium against the real binary: the admin console, the
//! driver dashboard and the monitor page, live over their WebSockets.

#[path = "support/browser.rs"]
mod browser;
mod support;

use browser::Browser;
use std::time::{Duration, Instant};
use support::*;

/// Reads a tile's figure such as "0.123 kWh" as a number.
fn figure(text: &str) -> f64 {
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(-1.0)
}

#[test]
fn the_console_logs_in_follows_supplies_stops_and_crashes_in_a_real_browser() {
    let mut net = Network::start(BrokerKind::Embedded);
    let engine_port = free_port();
    // The supply lasts until someone ends it, so that the console can be watched at work.
    let engine = net.start_engine(
        "CP001",
        engine_port,
        &["--supply-duration", "0", "--allow-crash"],
    );
    net.start_monitor("CP001", engine_port, 0.40, &[]);
    net.start_cp("CP002", 0.30, &[]);
    net.wait_state("CP001", "available");
    net.wait_state("CP002", "available");

    let console = Browser::start("console");
    console.goto(&net.url("/"));

    // A wrong password is refused, on the page.
    console.fill("#login-name", OPERATOR);
    console.fill("#login-password", "not the password");
    console.click("#login-form button[type=submit]");
    console.wait_text("#login-error", "the refusal", |t| {
        t.contains("wrong name or password")
    });
    console.screenshot("01-wrong-password");

    // The right one opens the console, every CP green.
    console.fill("#login-password", OPERATOR_PASSWORD);
    console.click("#login-form button[type=submit]");
    console.wait_visible("#console-view");
    console.wait_text("#conn", "the live link", |t| t == "live");
    for id in ["CP001", "CP002"] {
        console.wait_text(
            &format!(".tile[data-cp={id}] .state"),
            "a green tile",
            |t| t.eq_ignore_ascii_case("available"),
        );
    }
    assert_eq!(
        console.attr(".tile[data-cp=CP001]", "class").as_deref(),
        Some("tile state-available")
    );
    console.screenshot("02-all-available");

    // A driver's supply: the tile turns charging, its kWh rise without a reload.
    let _driver = net.start_driver("D001", &["--cp", "CP001"]);
    console.wait_text(".tile[data-cp=CP001] .state", "charging", |t| {
        t.eq_ignore_ascii_case("charging")
    });
    let first = figure(
        &console.wait_text(".tile[data-cp=CP001] .kwh", "some energy", |t| {
            figure(t) > 0.0
        }),
    );
    console.wait_text(".tile[data-cp=CP001] .kwh", "rising energy", |t| {
        figure(t) > first
    });
    assert_eq!(
        console.text(".tile[data-cp=CP001] .driver").as_deref(),
        Some("D001")
    );
    console.wait_text("#requests", "the request listed", |t| t.contains("D001"));
    console.wait_text("#kafka", "records on the topic view", |t| {
        t.contains("supply_progress")
    });
    console.screenshot("03-charging");

    // Stopped from the console: orange, "Out of Order", the session in the history.
    console.click(".tile[data-cp=CP001] button.stop");
    console.wait_text(".tile[data-cp=CP001] .state", "Out of Order", |t| {
        t.eq_ignore_ascii_case("Out of Order")
    });
    assert_eq!(
        console.attr(".tile[data-cp=CP001]", "class").as_deref(),
        Some("tile state-stopped")
    );
    console.wait_text("#sessions", "the closed session", |t| {
        t.contains("CP001") && t.contains("stopped by operator")
    });
    console.wait_text("#feed", "the stop in the feed", |t| {
        t.contains("CP001 stopped")
    });
    console.screenshot("04-stopped");
    console.click(".tile[data-cp=CP001] button.resume");
    console.wait_text(".tile[data-cp=CP001] .state", "available again", |t| {
        t.eq_ignore_ascii_case("available")
    });

    // An engine crashed from the console: red in seconds, back once the engine restarts.
    let crashed_at = Instant::now();
    console.click(".tile[data-cp=CP001] button.crash-engine");
    console.wait_text_for(
        ".tile[data-cp=CP001] .state",
        "red after the crash",
        Duration::from_secs(10),
        |t| t.eq_ignore_ascii_case("broken"),
    );
    eprintln!("engine crash → red tile: {:?}", crashed_at.elapsed());
    assert_ne!(
        net.cps[engine].wait_exit(DEADLINE),
        0,
        "the engine died abruptly"
    );
    console.wait_text("#feed", "the fault in the feed", |t| {
        t.contains("CP001 is broken")
    });
    console.screenshot("05-engine-crashed");
    net.start_engine(
        "CP001",
        engine_port,
        &["--supply-duration", "0", "--allow-crash"],
    );
    console.wait_text(".tile[data-cp=CP001] .state", "green again", |t| {
        t.eq_ignore_ascii_case("available")
    });
    console.wait_text("#feed", "the recovery in the feed", |t| {
        t.contains("CP001 recovered")
    });
    console.screenshot("06-recovered");

    // The other CP was never disturbed.
    assert_eq!(
        console
            .attr(".tile[data-cp=CP002]", "data-state")
            .as_deref(),
        Some("available")
    );
}

#[test]
fn the_console_reconnects_by_itself_after_the_central_restarts() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.start_cp("CP001", 0.30, &[]);
    net.wait_state("CP001", "available");
    let console = Browser::start("console-reconnect");
    console.goto(&net.url("/"));
    console.fill("#login-name", OPERATOR);
    console.fill("#login-password", OPERATOR_PASSWORD);
    console.click("#login-form button[type=submit]");
    console.wait_text(".tile[data-cp=CP001] .state", "a green tile", |t| {
        t.eq_ignore_ascii_case("available")
    });

    net.kill_central();
    console.wait_text("#conn", "the link lost", |t| t != "live");
    console.wait_text("#banner", "a plain explanation", |t| {
        t.contains("cannot reach the central")
    });
    console.screenshot("01-central-down");
    net.start_central();
    // No reload: the page reconnects, its session cookie still valid.
    console.wait_text("#conn", "the link back", |t| t == "live");
    console.wait_text(".tile[data-cp=CP001] .state", "green again", |t| {
        t.eq_ignore_ascii_case("available")
    });
    assert!(console.text("#banner").unwrap_or_default().is_empty());
    console.screenshot("02-reconnected");
}

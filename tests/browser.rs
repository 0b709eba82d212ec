//! The pages in a real headless Chromium against the real binary: the admin console, the
//! driver dashboard and the monitor page, live over their WebSockets.

#[path = "support/browser.rs"]
mod browser;
mod support;

use browser::Browser;
use std::time::{Duration, Instant};
use support::*;

/// Waits until a page answers (a driver serves its dashboard once it has joined the bus).
fn wait_page(url: &str) {
    wait_for(&format!("{url} to answer"), DEADLINE, || {
        ureq::get(url).call().ok()
    });
}

/// Reads a tile's figure such as "0.123 kWh" as a number.
fn figure(text: &str) -> f64 {
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(-1.0)
}

#[test]
fn the_three_pages_follow_a_supply_a_stop_and_an_engine_crash_in_a_real_browser() {
    let mut net = Network::start(BrokerKind::Embedded);
    // The supply lasts until someone ends it, so that the pages can be watched at work.
    let engine_flags = ["--supply-duration", "0", "--allow-crash"];
    let engine = net.start_engine("CP001", 0, &engine_flags);
    let engine_port = net.engine_port(engine);
    let monitor_part = net.start_monitor("CP001", engine_port, 0.40, &["--http", "127.0.0.1:0"]);
    let monitor_http = format!(
        "127.0.0.1:{}",
        net.announced_port(monitor_part, announces::MONITOR_PAGE)
    );
    let cp2 = net.start_cp("CP002", 0.30, &["--allow-crash"]);
    let d001 = net.start_driver("D001", &["--http", "127.0.0.1:0"]);
    let dashboard_http = announced(&d001, announces::DASHBOARD);
    net.wait_state("CP001", "available");
    net.wait_state("CP002", "available");

    // The operator: a wrong password is refused on the page, the right one opens the console.
    let console = Browser::start("console");
    console.goto(&net.url("/"));
    console.fill("#login-name", OPERATOR);
    console.fill("#login-password", "not the password");
    console.click("#login-form button[type=submit]");
    console.wait_text("#login-error", "the refusal", |t| {
        t.contains("wrong name or password")
    });
    console.screenshot("01-wrong-password");
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
    // Which central runs each CP, and the centrals' health: one here, answering.
    console.wait_text(".tile[data-cp=CP001] .owner", "the CP's central", |t| {
        t == "run by central-1"
    });
    console.wait_text(
        "#centrals tr[data-central=central-1] .health",
        "the central answering",
        |t| t == "answering",
    );
    console.wait_text(
        "#centrals tr[data-central=central-1] .cps",
        "its CPs",
        |t| t == "2",
    );
    console.screenshot("02-all-available");

    // The operator registers a CP: its secret is shown once, its tile appears, disconnected
    // until its monitor authenticates with that secret.
    console.fill("#register-id", "CP003");
    console.fill("#register-location", "Browser street");
    console.fill("#register-price", "0.45");
    console.click("#register-submit");
    console.wait_text("#cp-secret", "the secret, shown once", |t| {
        t.contains("CP003 registered") && t.contains("evccp_")
    });
    console.wait_text(".tile[data-cp=CP003] .state", "the new CP's tile", |t| {
        t.eq_ignore_ascii_case("disconnected")
    });
    console.screenshot("02b-registered");

    // A CP whose engine cannot reach the bus yet is starting: its own colour, a note, no
    // fault; the monitor page lists no fault either.
    let cut_off = net.start_engine_cut_off("CP004");
    let cut_off_port = net.engine_port(cut_off);
    let cp4_monitor = net.start_monitor("CP004", cut_off_port, 0.30, &["--http", "127.0.0.1:0"]);
    console.wait_text(
        ".tile[data-cp=CP004] .state",
        "the starting CP's tile",
        |t| t.eq_ignore_ascii_case("starting"),
    );
    assert_eq!(
        console.attr(".tile[data-cp=CP004]", "class").as_deref(),
        Some("tile state-starting")
    );
    console.wait_text(".tile[data-cp=CP004] .note", "why it is starting", |t| {
        t.contains("waiting for its engine")
    });
    assert_eq!(
        console.text(".tile[data-cp=CP004] .fault").as_deref(),
        Some("")
    );
    assert!(console
        .text(".legend")
        .is_some_and(|t| t.contains("starting")));
    let cp4_page = Browser::start("monitor-starting");
    cp4_page.goto(&format!(
        "http://127.0.0.1:{}/",
        net.announced_port(cp4_monitor, announces::MONITOR_PAGE)
    ));
    cp4_page.wait_text("#cp-state", "starting on its monitor page", |t| {
        t == "starting"
    });
    assert_eq!(cp4_page.count("#faults li"), 0);
    cp4_page.screenshot("04-starting");
    drop(cp4_page);
    console.screenshot("02c-starting");

    // The driver: signs in (the first time sets the password), sees the CPs available now.
    let driver = Browser::start("driver");
    wait_page(&format!("http://{dashboard_http}/api/ready"));
    driver.goto(&format!("http://{dashboard_http}/"));
    driver.fill("#password", "d001 secret");
    driver.click("#login-form button[type=submit]");
    driver.wait_visible("#dashboard");
    driver.wait_visible("#available [data-cp=CP001] button.request");
    driver.wait_visible("#available [data-cp=CP002] button.request");
    driver.screenshot("01-available");

    // The driver asks for CP001: both pages follow the supply live, kWh rising.
    driver.click("#available [data-cp=CP001] button.request");
    driver.wait_text("#supply-state", "the supply on the dashboard", |t| {
        t == "charging"
    });
    let first = figure(
        &driver.wait_text("#supply-kwh", "energy on the dashboard", |t| {
            figure(t) > 0.0
        }),
    );
    driver.wait_text("#supply-kwh", "rising energy on the dashboard", |t| {
        figure(t) > first
    });
    driver.screenshot("02-charging");
    console.wait_text(".tile[data-cp=CP001] .state", "charging", |t| {
        t.eq_ignore_ascii_case("charging")
    });
    let first =
        figure(&console.wait_text(".tile[data-cp=CP001] .kwh", "energy", |t| figure(t) > 0.0));
    console.wait_text(".tile[data-cp=CP001] .kwh", "rising energy", |t| {
        figure(t) > first
    });
    assert_eq!(
        console.text(".tile[data-cp=CP001] .driver").as_deref(),
        Some("D001")
    );
    console.wait_text("#requests", "the request listed", |t| t.contains("D001"));
    // Its row follows the supply, not left at "reserved".
    console.wait_text("#requests", "the request's row charging", |t| {
        t.contains("charging at CP001")
    });
    console.wait_text("#kafka", "records on the topic view", |t| {
        t.contains("supply_progress")
    });
    console.screenshot("03-charging");
    // The topic view filtered by key shows that key's records only.
    console.fill("#key-filter", "D001");
    wait_for("only D001's records", DEADLINE, || {
        let shown = console.count("#kafka tr");
        (shown > 0 && shown == console.count("#kafka tr[data-key=D001]")).then_some(())
    });
    console.screenshot("03b-topic-filter");
    console.fill("#key-filter", "");

    // Stopped from the console: orange "Out of Order"; the driver gets the ticket.
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
    console.wait_text("#requests", "the request's row ended", |t| {
        t.contains("ended at CP001") && t.contains("stopped by operator")
    });
    console.wait_text("#feed", "the stop in the feed", |t| {
        t.contains("CP001 stopped")
    });
    console.screenshot("04-stopped");
    // A request for the stopped CP is denied, and the console says so.
    let _denied = net.start_driver("D009", &["--cp", "CP001"]);
    console.wait_text("#feed", "the denial in the feed", |t| {
        t.contains("request of D009 denied")
    });
    driver.wait_text("#ticket", "the ticket", |t| {
        t.contains("kWh") && t.contains("€")
    });
    driver.wait_text("#history", "the session in the history", |t| {
        t.contains("CP001")
    });
    driver.screenshot("03-ticket");
    console.click(".tile[data-cp=CP001] button.resume");
    console.wait_text(".tile[data-cp=CP001] .state", "available again", |t| {
        t.eq_ignore_ascii_case("available")
    });

    // The monitor page of CP001: its state, its health checks.
    let monitor = Browser::start("monitor");
    wait_page(&format!("http://{monitor_http}/"));
    monitor.goto(&format!("http://{monitor_http}/"));
    monitor.wait_text("#cp-state", "the CP's state", |t| t == "available");
    monitor.wait_text("#engine-health", "a healthy engine", |t| t == "ok");
    monitor.wait_visible("#checks tr");
    monitor.screenshot("01-healthy");

    // An engine crashed from the console: red in seconds, on the console and on the monitor
    // page; back once the engine is started again.
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
    monitor.wait_text("#cp-state", "broken on the monitor page", |t| t == "broken");
    monitor.wait_text("#engine-health", "the engine unreachable", |t| {
        t == "unreachable"
    });
    monitor.wait_visible("#faults li");
    monitor.screenshot("02-engine-crashed");

    net.start_engine("CP001", engine_port, &engine_flags);
    console.wait_text(".tile[data-cp=CP001] .state", "green again", |t| {
        t.eq_ignore_ascii_case("available")
    });
    console.wait_text("#feed", "the recovery in the feed", |t| {
        t.contains("CP001 recovered")
    });
    console.screenshot("06-recovered");
    monitor.wait_text("#cp-state", "available on the monitor page", |t| {
        t == "available"
    });
    monitor.screenshot("03-recovered");

    // The other CP was never disturbed.
    assert_eq!(
        console
            .attr(".tile[data-cp=CP002]", "data-state")
            .as_deref(),
        Some("available")
    );

    // A monitor crashed from the console: grey, back once it is started again.
    console.click(".tile[data-cp=CP002] button.crash-monitor");
    console.wait_text(".tile[data-cp=CP002] .state", "grey after the crash", |t| {
        t.eq_ignore_ascii_case("disconnected")
    });
    assert_ne!(net.cps[cp2].wait_exit(DEADLINE), 0, "the CP died abruptly");
    console.screenshot("07-monitor-crashed");
    net.start_cp("CP002", 0.30, &["--allow-crash"]);
    console.wait_text(".tile[data-cp=CP002] .state", "green again", |t| {
        t.eq_ignore_ascii_case("available")
    });
}

#[test]
fn the_driver_dashboard_refuses_a_wrong_password_in_a_real_browser() {
    let mut net = Network::start(BrokerKind::Embedded);
    let d002 = net.start_driver("D002", &["--http", "127.0.0.1:0"]);
    let dashboard_http = announced(&d002, announces::DASHBOARD);
    let driver = Browser::start("driver-password");
    wait_page(&format!("http://{dashboard_http}/api/ready"));
    driver.goto(&format!("http://{dashboard_http}/"));
    driver.fill("#password", "the real one");
    driver.click("#login-form button[type=submit]");
    driver.wait_visible("#dashboard");
    driver.click("#logout");
    driver.wait_visible("#login-form");
    driver.fill("#password", "a wrong one");
    driver.click("#login-form button[type=submit]");
    driver.wait_text("#login-error", "the refusal", |t| {
        t.contains("wrong password")
    });
    driver.screenshot("01-wrong-password");
    driver.fill("#password", "the real one");
    driver.click("#login-form button[type=submit]");
    driver.wait_visible("#dashboard");
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

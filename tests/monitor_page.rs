//! The monitor page (SPEC §8): its JSON status, its WebSocket and its HTML, served by real
//! `evcharge monitor` and `evcharge cp` processes.

mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::*;

/// GET on the page's server: the status code and the body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    match ureq::get(&format!("http://127.0.0.1:{port}{path}")).call() {
        Ok(r) => Some((r.status(), r.into_string().unwrap_or_default())),
        Err(ureq::Error::Status(code, r)) => Some((code, r.into_string().unwrap_or_default())),
        Err(_) => None,
    }
}

fn status(port: u16) -> Option<Value> {
    let (code, body) = get(port, "/api/status")?;
    (code == 200).then(|| serde_json::from_str(&body).unwrap())
}

/// Waits until the page's status satisfies `matches`.
fn wait_status(port: u16, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, DEADLINE, || status(port).filter(|s| matches(s)))
}

fn post_control(port: u16, what: &str) {
    let (status, body) = control(port)
        .post_for_status(&format!("/control/{what}"), None)
        .unwrap_or_else(|e| panic!("POST /control/{what}: {e:#}"));
    assert_eq!(status, 200, "{body}");
}

/// A bare WebSocket client: enough to read the server's text messages.
struct Socket(BufReader<TcpStream>);

impl Socket {
    fn open(port: u16, path: &str) -> Socket {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 101 "), "no WebSocket upgrade: {status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
        }
        Socket(reader)
    }

    /// The next text message, as JSON; pings and other frames are skipped.
    fn next(&mut self) -> Value {
        loop {
            let mut head = [0u8; 2];
            self.0.read_exact(&mut head).unwrap();
            let len = match head[1] & 0x7f {
                126 => {
                    let mut n = [0u8; 2];
                    self.0.read_exact(&mut n).unwrap();
                    u16::from_be_bytes(n) as usize
                }
                127 => {
                    let mut n = [0u8; 8];
                    self.0.read_exact(&mut n).unwrap();
                    u64::from_be_bytes(n) as usize
                }
                n => n as usize,
            };
            let mut payload = vec![0u8; len];
            self.0.read_exact(&mut payload).unwrap();
            assert_eq!(head[0] & 0x80, 0x80, "fragmented messages are not expected");
            if head[0] & 0x0f == 1 {
                return serde_json::from_slice(&payload).unwrap();
            }
        }
    }
}

#[test]
fn the_page_follows_checks_a_fault_and_its_clearing() {
    let mut net = Network::start(BrokerKind::Embedded);
    let engine = net.start_engine("CP001", 0, &["--control", "127.0.0.1:0"]);
    let control = net.announced_port(engine, announces::CONTROL);
    let engine = net.engine_port(engine);
    let monitor = net.start_monitor("CP001", engine, 0.30, &["--http", "127.0.0.1:0"]);
    let page = net.announced_port(monitor, announces::MONITOR_PAGE);

    // Healthy: OK checks with timings, and the central shows the CP available.
    let healthy = wait_status(page, "an OK check reported as available", |s| {
        s["central"]["cp_state"] == "available" && s["checks"][0]["result"] == "ok"
    });
    assert_eq!(healthy["cp_id"], "CP001");
    assert_eq!(healthy["location"], "Street of CP001");
    assert_eq!(healthy["price_eur_kwh"], 0.30);
    assert_eq!(healthy["central"]["link"], "reported");
    assert_eq!(healthy["engine"]["result"], "ok");
    let check = &healthy["checks"][0];
    assert!(check["engine_ms"].as_f64().unwrap() >= 0.0);
    assert!(check["central_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(check["link"], "reported");
    assert_eq!(check["cp_state"], "available");
    assert!(check["at"].as_str().is_some());
    // Faults seen while the engine was starting, if any, are over.
    let faults_before = healthy["faults"].as_array().unwrap().len();
    assert!(healthy["faults"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["cleared_at"].is_string()));

    // The WebSocket: a snapshot first, then one message per check.
    let mut socket = Socket::open(page, "/ws");
    let snapshot = socket.next();
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["cp_id"], "CP001");
    assert!(!snapshot["checks"].as_array().unwrap().is_empty());
    let next = socket.next();
    assert_eq!(next["type"], "check");
    assert_eq!(next["check"]["result"], "ok");
    assert_eq!(next["engine"]["result"], "ok");
    assert_eq!(next["central"]["link"], "reported");

    // A simulated fault: listed, the engine KO, the CP broken at the central.
    post_control(control, "fault");
    let broken = wait_status(page, "the fault to show", |s| {
        s["engine"]["result"] == "ko" && s["central"]["cp_state"] == "broken"
    });
    let fault = &broken["faults"][0];
    assert!(fault["detail"].as_str().unwrap().contains("simulated"));
    assert!(fault["began_at"].as_str().is_some());
    assert_eq!(fault["cleared_at"], Value::Null);
    assert_eq!(
        broken["faults"].as_array().unwrap().len(),
        faults_before + 1
    );
    assert!(broken["engine"]["detail"]
        .as_str()
        .unwrap()
        .contains("simulated"));
    let faults_message = wait_for("the WebSocket to tell of the fault", DEADLINE, || {
        Some(socket.next()).filter(|m| m["type"] == "faults")
    });
    assert_eq!(faults_message["faults"][0]["cleared_at"], Value::Null);

    // Cleared: the fault has its end, the CP is available again.
    post_control(control, "clear");
    let recovered = wait_status(page, "the fault to clear", |s| {
        s["engine"]["result"] == "ok" && s["central"]["cp_state"] == "available"
    });
    assert_eq!(
        recovered["faults"].as_array().unwrap().len(),
        faults_before + 1
    );
    assert!(recovered["faults"][0]["cleared_at"].as_str().is_some());
    assert_eq!(recovered["checks"][0]["result"], "ok");
    assert!(recovered["checks"].as_array().unwrap().len() <= 60);
}

#[test]
fn a_whole_cp_serves_the_page_its_files_and_json_errors() {
    let mut net = Network::start(BrokerKind::Embedded);
    let cp = net.start_cp("CP002", 0.40, &["--http", "127.0.0.1:0"]);
    let page = net.announced_port(cp, announces::MONITOR_PAGE);
    wait_status(page, "the CP's page", |s| s["cp_id"] == "CP002");
    assert!(net.cps[cp]
        .stderr_text()
        .contains(&format!("monitor page on http://127.0.0.1:{page}/")));

    let (code, html) = get(page, "/").unwrap();
    assert_eq!(code, 200);
    for id in [
        "cp-id",
        "cp-state",
        "engine-health",
        "checks",
        "faults",
        "banner",
        "conn",
    ] {
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "no #{id} in the page"
        );
    }
    for asset in ["/assets/monitor.js", "/assets/live.js", "/assets/style.css"] {
        assert_eq!(get(page, asset).unwrap().0, 200, "{asset}");
    }

    let (code, body) = get(page, "/no/such/page").unwrap();
    assert_eq!(code, 404);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(body["error"].as_str().is_some());

    let (code, body) = get(page, "/ws").unwrap();
    assert_eq!(code, 400, "a plain GET on the WebSocket: {body}");
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"].is_string());

    match ureq::post(&format!("http://127.0.0.1:{page}/api/status")).call() {
        Err(ureq::Error::Status(405, r)) => {
            assert!(r.into_json::<Value>().unwrap()["error"].is_string());
        }
        other => panic!("POST /api/status: {other:?}"),
    }
    net.wait_state("CP002", "available");
}

/// The fast timings, and a secret for a monitor that never reaches a central.
fn with_secret() -> Vec<(&'static str, &'static str)> {
    let mut env = FAST_ENV.to_vec();
    env.push(("EVCHARGE_CP__SECRET", "evccp_never-presented"));
    env
}

#[test]
fn a_monitor_alone_shows_the_central_and_engine_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens where the engine and the central should be.
    let args = strings(&[
        "monitor",
        "--id",
        "CP003",
        "--engine",
        &nowhere(),
        "--central",
        &nowhere(),
        "--http",
        "127.0.0.1:0",
    ]);
    let monitor = Proc::spawn(
        dir.path(),
        "monitor-CP003",
        evcharge(),
        &args,
        &with_secret(),
    );
    let page = announced_port(&monitor, announces::MONITOR_PAGE);
    let alone = wait_status(page, "checks with nothing to reach", |s| {
        s["central"]["link"] == "unreachable" && s["engine"]["result"] == "unreachable"
    });
    assert!(alone["central"]["detail"]
        .as_str()
        .unwrap()
        .contains("connect"));
    assert_eq!(alone["central"]["cp_state"], Value::Null);
    let check = &alone["checks"][0];
    assert_eq!(check["result"], "unreachable");
    assert_eq!(check["engine_ms"], Value::Null);
    assert_eq!(check["central_ms"], Value::Null);
    assert_eq!(check["cp_state"], Value::Null);
    assert_eq!(alone["faults"][0]["cleared_at"], Value::Null);
}

#[test]
fn a_bad_page_address_stops_the_process_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for role in ["monitor", "cp"] {
        let args = strings(&[role, "--id", "CP004", "--http", "nonsense"]);
        let mut proc = Proc::spawn(dir.path(), role, evcharge(), &args, &with_secret());
        assert_eq!(proc.wait_exit(DEADLINE), 1, "{role}");
        let said = proc.stderr_text();
        assert!(
            said.contains("cannot listen for the monitor page on nonsense"),
            "{role}: {said}"
        );
        assert!(!said.contains("panicked"), "{role}: {said}");
    }
}

//! Operators log in: the first admin's one-time password, session cookies, API tokens,
//! refusal of anonymous and cross-site requests, and the `evcharge operator` commands.

mod support;

use serde_json::Value;
use std::io::{Read, Write};
use support::*;

/// A central on a fresh database, with no operator made beforehand.
struct FreshCentral {
    _broker: Broker,
    central: Proc,
    http: u16,
    data: std::path::PathBuf,
    /// Last, so that it is deleted after the processes are gone.
    _dir: tempfile::TempDir,
}

/// Starts a central on `broker` keeping its database in `data`, on ports of its choosing;
/// returns it and the port of its API.
fn spawn_central(dir: &std::path::Path, broker: &Broker, data: &str) -> (Proc, u16) {
    let args = central_args(&broker.bootstrap, data, &[]);
    let central = Proc::spawn(dir, "central", evcharge(), &args, &FAST_ENV);
    let http = announced_port(&central, announces::CONSOLE);
    (central, http)
}

impl FreshCentral {
    fn start() -> FreshCentral {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start(BrokerKind::Embedded, dir.path());
        let data = dir.path().join("central-data");
        let (central, http) = spawn_central(dir.path(), &broker, &data.display().to_string());
        FreshCentral {
            _broker: broker,
            central,
            http,
            data,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// The one-time password the central wrote on its first start, in the file its log names.
    fn one_time_password(&self) -> String {
        let file = self.data.join("first-admin-password");
        wait_for("the one-time password's file in the log", DEADLINE, || {
            let log = self.central.stderr_text();
            log.contains(&file.display().to_string()).then_some(())
        });
        std::fs::read_to_string(&file).unwrap().trim().to_owned()
    }
}

/// Status and JSON body of a request, whatever the status.
fn call(request: ureq::Request, body: Option<Value>) -> (u16, Value, Option<String>) {
    let response = match body {
        Some(body) => request.send_json(body),
        None => request.call(),
    };
    let response = match response {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = response.status();
    let cookie = response.header("set-cookie").map(str::to_owned);
    (status, response.into_json().unwrap_or(Value::Null), cookie)
}

/// `name=value` of a Set-Cookie header.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_owned()
}

/// A WebSocket handshake on `/ws` over a raw socket: the status code and what came after.
fn websocket_handshake(port: u16, cookie: Option<&str>, origin: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Origin: {origin}\r\n{cookie}\r\n"
    )
    .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    // Enough to hold the headers and the first frame (the snapshot).
    while !String::from_utf8_lossy(&received).contains("snapshot") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
        let text = String::from_utf8_lossy(&received);
        if text.contains("\r\n\r\n") && !text.starts_with("HTTP/1.1 101") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&received).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[test]
fn the_first_admin_logs_in_with_a_one_time_password_then_operates() {
    let central = FreshCentral::start();
    let password = central.one_time_password();
    let url = |path: &str| central.url(path);

    // Anonymous: refused, with a reason.
    let (status, body, _) = call(ureq::get(&url("/api/cps")), None);
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("log in"));
    assert_eq!(call(ureq::post(&url("/api/cps/stop")), None).0, 401);
    // The health check and the page itself stay open.
    assert_eq!(call(ureq::get(&url("/api/health")), None).0, 200);
    let page = ureq::get(&url("/")).call().unwrap().into_string().unwrap();
    assert!(page.contains("id=\"login-form\""));

    // A wrong password is refused.
    let wrong = serde_json::json!({"name": "admin", "password": "guess"});
    let (status, body, cookie) = call(ureq::post(&url("/api/login")), Some(wrong));
    assert_eq!(status, 401);
    assert_eq!(body["error"], "wrong name or password");
    assert!(cookie.is_none());

    // The one-time password logs in, but only to choose a new one.
    let right = serde_json::json!({"name": "admin", "password": password});
    let (status, body, set_cookie) = call(ureq::post(&url("/api/login")), Some(right));
    assert_eq!(status, 200);
    assert_eq!(body["must_change_password"], true);
    let set_cookie = set_cookie.expect("a session cookie");
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    let cookie = cookie_pair(&set_cookie);
    let (status, body, _) = call(ureq::get(&url("/api/cps")).set("Cookie", &cookie), None);
    assert_eq!(status, 403);
    assert!(body["error"].as_str().unwrap().contains("new password"));
    let short = serde_json::json!({"current": password, "new": "short"});
    let (status, _, _) = call(
        ureq::post(&url("/api/password")).set("Cookie", &cookie),
        Some(short),
    );
    assert_eq!(status, 400);
    let chosen = serde_json::json!({"current": password, "new": "a good long password"});
    let (status, _, _) = call(
        ureq::post(&url("/api/password")).set("Cookie", &cookie),
        Some(chosen),
    );
    assert_eq!(status, 204);
    let (status, body, _) = call(ureq::get(&url("/api/cps")).set("Cookie", &cookie), None);
    assert_eq!(status, 200);
    assert!(body.is_array());

    // Cross-site requests carrying the cookie are refused; same-origin ones pass.
    let own_origin = format!("http://127.0.0.1:{}", central.http);
    let stop_all = || ureq::post(&url("/api/cps/stop")).set("Cookie", &cookie);
    let (status, body, _) = call(stop_all().set("Origin", "http://evil.example"), None);
    assert_eq!(status, 403);
    assert_eq!(body["error"], "cross-site requests are refused");
    assert_eq!(
        call(stop_all().set("Sec-Fetch-Site", "cross-site"), None).0,
        403
    );
    assert_eq!(
        call(
            stop_all()
                .set("Origin", &own_origin)
                .set("Sec-Fetch-Site", "same-origin"),
            None
        )
        .0,
        202
    );

    // Scripts use a token issued by a logged-in operator.
    let (status, body, _) = call(
        ureq::post(&url("/api/tokens")).set("Cookie", &cookie),
        Some(serde_json::json!({"label": "nightly report"})),
    );
    assert_eq!(status, 201);
    let token = body["token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    assert_eq!(
        call(
            ureq::get(&url("/api/sessions")).set("Authorization", &bearer),
            None
        )
        .0,
        200
    );
    assert_eq!(
        call(
            ureq::post(&url("/api/cps/resume")).set("Authorization", &bearer),
            None
        )
        .0,
        202
    );
    let forged = "Bearer evc_0000000000000000000000000000000000000000000000000000000000000000";
    assert_eq!(
        call(
            ureq::get(&url("/api/cps")).set("Authorization", forged),
            None
        )
        .0,
        401
    );

    // The live updates need the cookie, from this origin.
    assert_eq!(websocket_handshake(central.http, None, &own_origin).0, 401);
    assert_eq!(
        websocket_handshake(central.http, Some(&cookie), "http://evil.example").0,
        403
    );
    let (status, text) = websocket_handshake(central.http, Some(&cookie), &own_origin);
    assert_eq!(status, 101);
    assert!(text.contains("\"type\":\"snapshot\""), "{text}");

    // Who did what, from where.
    let (_, audit, _) = call(ureq::get(&url("/api/audit")).set("Cookie", &cookie), None);
    let said: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["what"].as_str().unwrap())
        .collect();
    for what in [
        "failed login",
        "logged in",
        "changed their password",
        "stop every CP",
        "resume every CP",
    ] {
        assert!(said.contains(&what), "{what} missing from {said:?}");
    }

    // After logging out the cookie is worth nothing.
    let (status, _, _) = call(ureq::post(&url("/api/logout")).set("Cookie", &cookie), None);
    assert_eq!(status, 204);
    assert_eq!(
        call(ureq::get(&url("/api/cps")).set("Cookie", &cookie), None).0,
        401
    );
}

#[test]
fn operators_and_tokens_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("central-data").display().to_string();
    let run = |args: &[&str], input: &str| {
        let mut child = std::process::Command::new(evcharge())
            .args(args)
            .args(["--data", &data])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = run(&["operator", "add", "alice"], "");
    assert_eq!(code, 0);
    assert!(out.contains("one-time password"), "{out}");
    let (code, _, _) = run(
        &["operator", "add", "bob", "--password-stdin"],
        "bobs password\n",
    );
    assert_eq!(code, 0);
    let (code, _, err) = run(
        &["operator", "add", "bob", "--password-stdin"],
        "whatever1\n",
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("an operator named bob already exists"),
        "{err}"
    );
    let (code, _, err) = run(&["operator", "add", "carol", "--password-stdin"], "short\n");
    assert_eq!(code, 1);
    assert!(err.contains("at least 8 characters"), "{err}");
    let (_, out, _) = run(&["operator", "list"], "");
    assert!(
        out.contains("alice (one-time password not yet changed)"),
        "{out}"
    );
    assert!(out.lines().any(|l| l == "bob"), "{out}");
    let (code, token, _) = run(&["operator", "token", "bob", "--label", "ci"], "");
    assert_eq!(code, 0);
    assert!(token.trim().starts_with("evc_"), "{token}");
    let (code, _, err) = run(&["operator", "token", "nobody"], "");
    assert_eq!(code, 1);
    assert!(err.contains("no operator named nobody"), "{err}");

    // The token works against a central on that database, which makes no admin of its own.
    let broker = Broker::start(BrokerKind::Embedded, dir.path());
    let (central, http) = spawn_central(dir.path(), &broker, &data);
    let cps = wait_for("the API with the token", DEADLINE, || {
        ureq::get(&format!("http://127.0.0.1:{http}/api/cps"))
            .set("Authorization", &format!("Bearer {}", token.trim()))
            .call()
            .ok()
    });
    assert_eq!(cps.status(), 200);
    assert!(!central.stderr_text().contains("one-time password"));

    // While the central runs, the commands say plainly why they cannot work.
    let (code, _, err) = run(&["operator", "list"], "");
    assert_eq!(code, 1);
    assert!(err.contains("a running central holds it"), "{err}");
}

/// The value of the first sample line of `text` starting with `name` (labels included).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_benchmark_reads_the_metrics_and_one_cp_with_a_token() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.start_cp("CP001", 0.40, &[]);
    net.wait_state("CP001", "available");
    let mut driver = net.start_driver("D1", &["--cp", "CP001"]);
    assert_eq!(driver.wait_exit(DEADLINE), 0);
    let tickets = of_type(&driver.json_lines(), "ticket");
    let ended_at = tickets[0]["ticket"]["ended_at"]
        .as_str()
        .unwrap()
        .to_owned();

    // The metrics, once the consumer's statistics have come in (every second).
    let metrics = || {
        ureq::get(&net.url("/api/metrics"))
            .set("Authorization", &net.bearer())
            .call()
            .unwrap()
    };
    assert_eq!(
        metrics().header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let lag = "evcharge_consumer_lag_messages{topic=\"evcharge.cp.events\"}";
    let text = wait_for("the consumer lag in the metrics", DEADLINE, || {
        let text = metrics().into_string().unwrap();
        sample(&text, lag).is_some().then_some(text)
    });
    assert!(sample(&text, lag).unwrap() >= 0.0, "{text}");
    let progress = sample(&text, "evcharge_telemetry_latency_seconds_count").unwrap();
    assert!(progress > 0.0, "{text}");
    assert!(sample(&text, "evcharge_cp_events_total").unwrap() > progress);
    assert!(sample(&text, "evcharge_monitor_reports_total").unwrap() > 0.0);
    assert_eq!(
        sample(&text, "evcharge_cps{state=\"available\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "evcharge_cps{state=\"broken\"}"), Some(0.0));
    assert_eq!(
        call(ureq::get(&net.url("/api/metrics")), None).0,
        401,
        "the metrics need an operator"
    );

    // One CP, as in the list, available since its supply ended.
    let cp = net.get("/api/cps/CP001");
    assert_eq!(Some(&cp), net.cp("CP001").as_ref());
    assert_eq!(cp["state"], "available");
    let since = chrono::DateTime::parse_from_rfc3339(cp["since"].as_str().unwrap()).unwrap();
    let ended_at = chrono::DateTime::parse_from_rfc3339(&ended_at).unwrap();
    assert!(
        since >= ended_at,
        "available since {since}, ended at {ended_at}"
    );
    let (status, body, _) = call(
        ureq::get(&net.url("/api/cps/NOPE")).set("Authorization", &net.bearer()),
        None,
    );
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("NOPE"), "{body}");
}

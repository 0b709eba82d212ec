//! End to end: the driver dashboard of a real driver process (`evcharge driver --http`),
//! against a real broker, central and CP. Sign-in is checked by the central; the page's
//! actions go through the driver; the ticket and the history come back.

mod support;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::*;

/// A browser (or script) talking to one dashboard, carrying its session cookie.
struct Browser {
    base: String,
    host: String,
    cookie: Option<String>,
}

/// Status, JSON body (or `Null`) and the `Set-Cookie` header of an answer.
type Answer = (u16, Value, Option<String>);

impl Browser {
    fn new(port: u16) -> Browser {
        Browser {
            base: format!("http://127.0.0.1:{port}"),
            host: format!("127.0.0.1:{port}"),
            cookie: None,
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request =
            ureq::request(method, &format!("{}{path}", self.base)).timeout(Duration::from_secs(60));
        if let Some(cookie) = &self.cookie {
            request = request.set("Cookie", cookie);
        }
        for (name, value) in headers {
            request = request.set(name, value);
        }
        let result = match body {
            Some(text) => request
                .set("Content-Type", "application/json")
                .send_string(text),
            None => request.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = response.status();
        let set_cookie = response.header("set-cookie").map(str::to_owned);
        let text = response.into_string().unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        (status, json, set_cookie)
    }

    fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None, &[])
    }

    fn post(&self, path: &str, body: Value) -> Answer {
        self.call("POST", path, Some(&body.to_string()), &[])
    }

    /// Signs in; keeps the cookie when accepted.
    fn sign_in(&mut self, password: &str) -> Answer {
        let answer = self.post("/api/login", json!({ "password": password }));
        if answer.0 == 200 {
            let set_cookie = answer.2.as_deref().expect("a session cookie");
            self.cookie = Some(set_cookie.split(';').next().unwrap().to_owned());
        }
        answer
    }

    /// Opens `/ws` by hand; the status line and, on 101, the open socket.
    fn open_socket(&self, origin: Option<&str>) -> (String, Option<TcpStream>) {
        let mut stream = TcpStream::connect(&self.host).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut request = format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
            self.host
        );
        if let Some(cookie) = &self.cookie {
            request.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        if let Some(origin) = origin {
            request.push_str(&format!("Origin: {origin}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let head = read_head(&mut stream);
        let status = head.lines().next().unwrap_or_default().to_owned();
        if !status.contains(" 101 ") {
            return (status, None);
        }
        (status, Some(stream))
    }
}

/// Reads an HTTP response head, up to the blank line.
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads the next text message (unmasked server frames; pings skipped) as JSON.
fn read_text_frame(stream: &mut TcpStream) -> Value {
    loop {
        let (opcode, payload) = read_frame(stream);
        if opcode == 1 {
            return serde_json::from_slice(&payload).unwrap();
        }
        assert!(
            opcode >= 8,
            "only text and control frames are sent, not {opcode}"
        );
    }
}

/// One whole (unfragmented) frame: its opcode and payload.
fn read_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut start = [0u8; 2];
    stream.read_exact(&mut start).unwrap();
    assert_ne!(start[0] & 0x80, 0, "unfragmented frames");
    let len = match start[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext).unwrap();
            u16::from_be_bytes(ext) as usize
        }
        127 => {
            let mut ext = [0u8; 8];
            stream.read_exact(&mut ext).unwrap();
            u64::from_be_bytes(ext) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).unwrap();
    (start[0] & 0x0f, payload)
}

#[test]
fn a_driver_signs_in_charges_and_sees_its_ticket_and_history() {
    // Arrange: a network with one CP and a driver serving its dashboard.
    let mut net = Network::start(BrokerKind::Embedded);
    net.start_cp("CP01", 0.35, &[]);
    net.wait_state("CP01", "available");
    let driver = net.start_driver("D1", &["--http", "127.0.0.1:0"]);
    let port = announced_port(&driver, announces::DASHBOARD);
    let mut browser = Browser::new(port);

    // The page is served, and says who signs in.
    let page = wait_for("the dashboard page", DEADLINE, || {
        ureq::get(&format!("{}/", browser.base))
            .call()
            .ok()
            .and_then(|r| r.into_string().ok())
    });
    assert!(page.contains(r#"id="login-form""#));
    assert!(page.contains("D1"));
    assert_eq!(browser.get("/assets/driver.js").0, 200);
    assert_eq!(browser.get("/assets/style.css").0, 200);

    // Nothing but the sign-in works anonymously.
    let (status, body, _) = browser.post("/api/request", json!({}));
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].is_string());
    assert_eq!(browser.get("/api/state").0, 401);
    assert_eq!(browser.get("/api/me").0, 401);
    assert!(browser.open_socket(None).0.contains(" 401 "));

    // The first sign-in sets the password (the central may still be joining its group).
    let (status, body, set_cookie) = wait_for("the first sign-in", DEADLINE, || {
        let answer = browser.sign_in("s3cret pass");
        (answer.0 != 503).then_some(answer)
    });
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["first_time"], true);
    assert_eq!(body["driver_id"], "D1");
    let set_cookie = set_cookie.unwrap();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(set_cookie.contains("Path=/"), "{set_cookie}");
    assert_eq!(browser.get("/api/me").1["driver_id"], "D1");

    // From then on the password must match.
    let mut stranger = Browser::new(port);
    let (status, body, _) = stranger.sign_in("guess");
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("wrong password"));
    let (status, body, _) = stranger.sign_in("s3cret pass");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["first_time"], false);

    // The password never crossed the bus readable: every sign-in on it is sealed.
    let requests = records::Reader::new(&net.broker.bootstrap, "driver.requests");
    let mut sign_ins = Vec::new();
    wait_for("the three sign-ins on the bus", DEADLINE, || {
        for record in requests.poll() {
            assert!(
                !record.raw.contains("s3cret") && !record.raw.contains("guess"),
                "a password on the bus: {}",
                record.raw
            );
            if record.value["type"] == "sign_in" {
                sign_ins.push(record);
            }
        }
        (sign_ins.len() >= 3).then_some(())
    });
    for sign_in in &sign_ins {
        assert!(sign_in.value["sealed_password"]
            .as_str()
            .is_some_and(|s| s.len() > 32));
        assert!(sign_in.value.get("password").is_none(), "{}", sign_in.raw);
    }

    // Bad input and foreign sites are refused.
    let (status, body, _) = browser.call("POST", "/api/request", Some("{nope"), &[]);
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = browser.call(
        "POST",
        "/api/request",
        Some("{}"),
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(status, 403);
    let (status, _, _) = browser.call(
        "POST",
        "/api/stop",
        None,
        &[("Sec-Fetch-Site", "cross-site")],
    );
    assert_eq!(status, 403);
    assert!(browser
        .open_socket(Some("http://evil.example"))
        .0
        .contains(" 403 "));
    let (status, body, _) = browser.get("/api/nothing");
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
    assert_eq!(
        browser.post("/api/stop", json!({})).0,
        409,
        "nothing to stop"
    );

    // The live link starts with a snapshot.
    let (status, socket) = browser.open_socket(Some(&browser.base));
    assert!(status.contains(" 101 "), "{status}");
    let mut socket = socket.unwrap();
    let snapshot = read_text_frame(&mut socket);
    assert_eq!(snapshot["type"], "snapshot");
    assert_eq!(snapshot["driver_id"], "D1");
    assert_eq!(snapshot["supply"]["state"], "idle");

    // The CP is offered.
    let cps = wait_for("CP01 to be offered", DEADLINE, || {
        let (status, body, _) = browser.get("/api/available");
        let cps = body["cps"].as_array().cloned()?;
        (status == 200 && cps.iter().any(|c| c["cp_id"] == "CP01")).then_some(cps)
    });
    let cp = cps.iter().find(|c| c["cp_id"] == "CP01").unwrap();
    assert_eq!(cp["price_eur_kwh"], 0.35);
    assert_eq!(cp["location"], "Street of CP01");

    // Act: request a supply there.
    let (status, body, _) = browser.post("/api/request", json!({ "cp_id": "CP01" }));
    assert_eq!(status, 202, "{body}");
    let request_id = body["request_id"].as_str().unwrap().to_owned();
    let (status, body, _) = browser.post("/api/request", json!({}));
    assert_eq!(status, 409, "{body}");

    // Assert: the live link tells every step, each with the supply as it stands.
    let mut steps = Vec::new();
    let last = wait_for("the ticket on the live link", DEADLINE, || {
        let news = read_text_frame(&mut socket);
        steps.push(news["type"].as_str().unwrap_or_default().to_owned());
        (news["type"] == "ticket").then_some(news)
    });
    for step in [
        "requesting",
        "reserved",
        "authorised",
        "started",
        "progress",
    ] {
        assert!(steps.iter().any(|s| s == step), "no {step} in {steps:?}");
    }
    assert_eq!(last["supply"]["state"], "done");
    assert_eq!(last["supply"]["cp_id"], "CP01");

    // The ticket shows in the state, priced.
    let state = wait_for("the ticket", DEADLINE, || {
        let (_, state, _) = browser.get("/api/state");
        (state["state"] == "done").then_some(state)
    });
    let ticket = &state["ticket"];
    assert_eq!(ticket["cp_id"], "CP01");
    assert_eq!(ticket["request_id"], request_id.as_str());
    assert_eq!(ticket["outcome"], "completed");
    let kwh = ticket["kwh"].as_f64().unwrap();
    assert!(kwh > 0.0, "{ticket}");
    assert_priced(kwh, ticket["eur"].as_f64().unwrap(), 0.35);
    assert_eq!(state["kwh"], ticket["kwh"]);
    assert_eq!(state["driver_id"], "D1");

    // The history lists that session.
    let (status, history, _) = browser.get("/api/history");
    assert_eq!(status, 200, "{history}");
    let sessions = history["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{history}");
    assert_eq!(sessions[0]["session_id"], ticket["session_id"]);
    assert_eq!(sessions[0]["cp_id"], "CP01");
    assert_eq!(sessions[0]["kwh"], ticket["kwh"]);
    assert_eq!(sessions[0]["eur"], ticket["eur"]);
    assert_eq!(sessions[0]["outcome"], "completed");
    assert_eq!(history["total_kwh"], ticket["kwh"]);

    // Signing out ends the session.
    assert_eq!(browser.post("/api/logout", json!({})).0, 200);
    assert_eq!(browser.get("/api/state").0, 401);
    assert_eq!(stranger.get("/api/me").0, 200);
}

#[test]
fn the_dashboard_says_why_nothing_works_while_the_broker_is_out_of_reach() {
    let dir = tempfile::tempdir().unwrap();
    // No broker listens there.
    let nowhere = nowhere();
    let secret = dir.path().join("D7.secret");
    std::fs::write(&secret, "evcdrv_never-checked-without-a-central").unwrap();
    let args = strings(&[
        "--kafka",
        &nowhere,
        "driver",
        "--id",
        "D7",
        "--http",
        "127.0.0.1:0",
        "--secret-file",
        &secret.display().to_string(),
    ]);
    let driver = Proc::spawn(dir.path(), "D7", evcharge(), &args, &FAST_ENV);
    let port = announced_port(&driver, announces::DASHBOARD);
    let browser = Browser::new(port);
    let page = wait_for("the dashboard to answer", DEADLINE, || {
        ureq::get(&format!("http://127.0.0.1:{port}/"))
            .call()
            .ok()?
            .into_string()
            .ok()
    });
    assert!(page.contains("id=\"login-form\""));
    let (status, body, _) = browser.call("GET", "/api/ready", None, &[]);
    assert_eq!(status, 503);
    assert!(body["error"].as_str().unwrap().contains("still joining"));
    let (status, body, _) = browser.call(
        "POST",
        "/api/login",
        Some(r#"{"password":"whatever"}"#),
        &[],
    );
    assert_eq!(status, 503);
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("still joining the network"), "{error}");
}

//! Every door has a lock: the control endpoints answer only to their token, from their own
//! site and address; operator and driver logins are limited, parallel guesses included; API
//! tokens are listed, expire and are revoked; a new password shuts out whoever knew the old
//! one; a token waits for the one-time password to change; the first admin's password is in
//! a file only its user may read, never in the log.

use crate::support::*;
use crate::{call, cookie_pair, mode_of};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// `evcharge <args>` run to its end; what it printed.
fn run(args: &[&str]) -> String {
    evcharge::harness::Program::new(evcharge())
        .args(args)
        .run_to_end(None)
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// A request that waits long enough for an answer on a busy machine.
fn post(url: &str) -> ureq::Request {
    ureq::post(url).timeout(Duration::from_secs(60))
}

/// `count` calls of `attempt` at once, from as many threads; their statuses.
fn at_once(count: usize, attempt: impl Fn(usize) -> u16 + Sync) -> Vec<u16> {
    std::thread::scope(|scope| {
        let attempt = &attempt;
        let threads: Vec<_> = (0..count)
            .map(|i| scope.spawn(move || attempt(i)))
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

fn how_many(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// The environment of a process given no control token.
fn env_without_token() -> Vec<(&'static str, &'static str)> {
    FAST_ENV
        .iter()
        .copied()
        .filter(|(name, _)| *name != "EVCHARGE_CONTROL__TOKEN")
        .collect()
}

#[test]
fn a_control_endpoint_opens_only_to_its_token_from_its_own_site_and_address() {
    let mut net = Network::start(BrokerKind::Embedded);
    let cp = net.start_cp(
        "CP001",
        0.30,
        &["--control", "127.0.0.1:0", "--allow-crash"],
    );
    let port = net.announced_port(cp, announces::CONTROL);
    net.wait_state("CP001", "available");
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let bearer = format!("Bearer {CONTROL_TOKEN}");
    let crash = || post(&url("/control/crash"));

    // The attack seen: a page of another site posts a crash, with no credentials.
    let refused = call(
        crash()
            .set("Origin", "http://evil.example")
            .set("Sec-Fetch-Site", "cross-site"),
        None,
    );
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert_eq!(refused.body["error"], "cross-site requests are refused");
    // Nor with the token, should a page have it.
    let refused = call(
        crash()
            .set("Authorization", &bearer)
            .set("Origin", "http://evil.example"),
        None,
    );
    assert_eq!(refused.status, 403, "{:?}", refused.body);

    // A script without the token, or with a wrong one.
    let refused = call(crash(), None);
    assert_eq!(refused.status, 401, "{:?}", refused.body);
    assert!(refused.body["error"]
        .as_str()
        .unwrap()
        .contains("needs its token"));
    let refused = call(
        crash().set("Authorization", "Bearer not-the-token-at-all"),
        None,
    );
    assert_eq!(refused.status, 401, "{:?}", refused.body);
    assert_eq!(refused.body["error"], "this control token is not valid");

    // A page whose name was rebound to this address sends its own name as Host.
    let refused = call(
        crash()
            .set("Authorization", &bearer)
            .set("Host", &format!("evil.example:{port}")),
        None,
    );
    assert_eq!(refused.status, 421, "{:?}", refused.body);
    assert!(refused.body["error"].as_str().unwrap().contains("Host"));
    // Paths that do not exist are behind the lock too.
    assert_eq!(call(ureq::get(&url("/anything")), None).status, 401);

    // The embedded broker's outage control is locked the same way.
    let broker = net
        .broker
        .control_port()
        .expect("the embedded broker's control");
    let outage = format!("http://127.0.0.1:{broker}/control/outage");
    assert_eq!(call(post(&outage), None).status, 401);
    assert_eq!(
        call(post(&outage).set("Origin", "http://evil.example"), None).status,
        403
    );

    // The CP is still serving, the network with it; its endpoint answers its token.
    assert!(net.cps[cp].is_running());
    let status = call(
        ureq::get(&url("/control/status")).set("Authorization", &bearer),
        None,
    );
    assert_eq!(status.status, 200, "{:?}", status.body);
    assert_eq!(status.body["id"], "CP001");
    assert_eq!(net.cp("CP001").unwrap()["state"], "available");
    let mut driver = net.start_driver("D1", &["--cp", "CP001"]);
    assert_eq!(driver.wait_exit(DEADLINE), 0, "a supply goes through");

    // With the token, from the machine itself, the door opens: the crash happens.
    let crashed = call(crash().set("Authorization", &bearer), None);
    assert_eq!(crashed.status, 202, "{:?}", crashed.body);
    assert_ne!(net.cps[cp].wait_exit(DEADLINE), 0);
}

#[test]
fn a_control_endpoint_given_no_token_makes_one_in_a_file_only_its_user_may_read() {
    let mut net = Network::start(BrokerKind::Embedded);
    let data = net.dir.path().join("engine-CP009").display().to_string();
    let secret = net.cp_secret("CP009");
    let args = strings(&[
        "--kafka",
        &net.broker.bootstrap,
        "engine",
        "--id",
        "CP009",
        "--secret-file",
        &secret,
        "--listen",
        "127.0.0.1:0",
        "--data",
        &data,
        "--control",
        "127.0.0.1:0",
    ]);
    let engine = Proc::spawn(
        net.dir.path(),
        "engine-own-token",
        evcharge(),
        &args,
        &env_without_token(),
    );
    let port = announced_port(&engine, announces::CONTROL);
    let log = engine.stderr_text() + &engine.stdout_text();
    let file: PathBuf = log
        .split("control token written to ")
        .nth(1)
        .and_then(|rest| rest.split(" (").next())
        .map(PathBuf::from)
        .expect("the log names the token's file");
    let token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    let mode = mode_of(&file);
    let _ = std::fs::remove_file(&file);
    assert_eq!(mode, 0o600, "{}", file.display());
    assert_eq!(token.len(), 64, "256 bits in hex");
    assert!(!log.contains(&token), "the token is in the log");

    let status = |token: &str| {
        call(
            ureq::get(&format!("http://127.0.0.1:{port}/control/status"))
                .set("Authorization", &format!("Bearer {token}")),
            None,
        )
        .status
    };
    assert_eq!(status(&token), 200);
    assert_eq!(status(CONTROL_TOKEN), 401, "another process's token");
}

#[test]
fn the_file_of_a_made_control_token_is_private() {
    // The same rule as the demo's and the first admin's files, checked on a broker: the file
    // exists while its process runs.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("control-token");
    let args = strings(&["broker", "--control", "127.0.0.1:0"]);
    let env = [("EVCHARGE_CONTROL__TOKEN_FILE", file.to_str().unwrap())];
    let broker = Proc::spawn(dir.path(), "broker", evcharge(), &args, &env);
    let port = announced_port(&broker, announces::BROKER_CONTROL);
    assert_eq!(mode_of(&file), 0o600);
    let token = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    let recover = |token: &str| {
        call(
            post(&format!("http://127.0.0.1:{port}/control/recover"))
                .set("Authorization", &format!("Bearer {token}")),
            None,
        )
        .status
    };
    assert_eq!(recover(&token), 202);
    assert_eq!(recover("x-wrong-token-but-long-enough"), 401);
}

/// Peak memory of a process, in bytes.
fn peak_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn operator_logins_are_limited_even_for_guesses_sent_at_once_and_the_right_password() {
    let net = Network::start_with(BrokerKind::Embedded, &["--login-lockout", "5s"]);
    let login = |name: &str, password: &str| {
        call(
            post(&net.url("/api/login")),
            Some(json!({ "name": name, "password": password })),
        )
    };

    // 64 wrong passwords at once: only the free ones are checked, the others turned away.
    let statuses = at_once(64, |i| login(OPERATOR, &format!("guess number {i}")).status);
    let (wrong, limited) = (how_many(&statuses, 401), how_many(&statuses, 429));
    assert!(
        (1..=5).contains(&wrong),
        "{wrong} guesses checked: {statuses:?}"
    );
    assert_eq!(wrong + limited, 64, "{statuses:?}");

    // Locked: even the right password is refused, saying when to come back.
    let refused = login(OPERATOR, OPERATOR_PASSWORD);
    assert_eq!(refused.status, 429, "{:?}", refused.body);
    let retry_after = refused.body["retry_after"].as_u64().unwrap();
    assert!((1..=5).contains(&retry_after), "{:?}", refused.body);
    assert_eq!(refused.retry_after, Some(retry_after.to_string()));
    assert!(refused.body["error"]
        .as_str()
        .unwrap()
        .contains("too many wrong passwords"));
    // The address is held back too, whatever the name.
    assert_eq!(login("admin", "another guess").status, 429);

    // Only the guesses let through were checked, and memory stayed low.
    let audit = net.get("/api/audit");
    let failed = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["what"] == "failed login")
        .count();
    assert_eq!(failed, wrong);
    let central = net.central.as_ref().unwrap().pid().unwrap();
    let peak = peak_memory(central);
    assert!(peak < 400 << 20, "the central peaked at {} MiB", peak >> 20);

    // The lockout over, the right password logs in.
    let admitted = wait_for("the lockout to end", DEADLINE, || {
        let answer = login(OPERATOR, OPERATOR_PASSWORD);
        (answer.status != 429).then_some(answer)
    });
    assert_eq!(admitted.status, 200, "{:?}", admitted.body);
}

#[test]
fn driver_sign_ins_are_limited_by_the_dashboard_and_by_the_central() {
    let mut net = Network::start_with(BrokerKind::Embedded, &["--login-lockout", "60s"]);
    let start = |net: &mut Network| {
        let driver = net.start_driver("D1", &["--http", "127.0.0.1:0"]);
        let port = announced_port(&driver, announces::DASHBOARD);
        (driver, format!("http://127.0.0.1:{port}/api/login"))
    };
    let sign_in =
        |url: &str, password: &str| call(post(url), Some(json!({ "password": password })));
    let (mut driver, url) = start(&mut net);
    let first = wait_for("the first sign-in", DEADLINE, || {
        let answer = sign_in(&url, "the driver's own");
        (answer.status != 503).then_some(answer)
    });
    assert_eq!(first.status, 200, "{:?}", first.body);

    // Wrong passwords at once: no more are checked than the limit lets through.
    let statuses = at_once(24, |i| sign_in(&url, &format!("guess {i}")).status);
    let wrong = how_many(&statuses, 401);
    assert!((1..=5).contains(&wrong), "{statuses:?}");
    assert_eq!(wrong + how_many(&statuses, 429), 24, "{statuses:?}");
    let refused = sign_in(&url, "the driver's own");
    assert_eq!(refused.status, 429, "{:?}", refused.body);
    assert!(refused.body["retry_after"].as_u64().unwrap() >= 1);

    // A new dashboard knows nothing of it, but the central does: still refused.
    driver.kill();
    let (_driver, url) = start(&mut net);
    let refused = wait_for("the new dashboard to ask the central", DEADLINE, || {
        let answer = sign_in(&url, "the driver's own");
        (answer.status != 503).then_some(answer)
    });
    assert_eq!(refused.status, 429, "{:?}", refused.body);
    let retry_after = refused.body["retry_after"].as_u64().unwrap();
    assert!(retry_after > 5 && retry_after <= 60, "{:?}", refused.body);
}

#[test]
fn api_tokens_are_listed_without_secrets_expire_and_are_revoked() {
    let mut net = Network::start(BrokerKind::Embedded);
    let issue = |body: Value| {
        call(
            post(&net.url("/api/tokens")).set("Authorization", &net.bearer()),
            Some(body),
        )
    };
    let cps_with = |net: &Network, token: &str| {
        call(
            ureq::get(&net.url("/api/cps")).set("Authorization", &format!("Bearer {token}")),
            None,
        )
        .status
    };

    // A token that lives a few seconds, one of the default lifetime, and bad lifetimes.
    let brief = issue(json!({ "label": "brief", "expires_in": "3s" }));
    assert_eq!(brief.status, 201, "{:?}", brief.body);
    let brief_token = brief.body["token"].as_str().unwrap().to_owned();
    let kept = issue(json!({ "label": "nightly report" }));
    assert_eq!(kept.status, 201, "{:?}", kept.body);
    let kept_token = kept.body["token"].as_str().unwrap().to_owned();
    let kept_id = kept.body["id"].as_str().unwrap().to_owned();
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(kept.body["expires_at"].as_str().unwrap()).unwrap();
    let lives = expires_at.signed_duration_since(chrono::Utc::now());
    assert!((89..=90).contains(&lives.num_days()), "{lives}");
    assert_eq!(issue(json!({ "expires_in": "400days" })).status, 400);
    assert_eq!(issue(json!({ "expires_in": "soon" })).status, 400);
    assert_eq!(cps_with(&net, &kept_token), 200);

    // Listed by id, never with a secret.
    let listed = net.get("/api/tokens");
    let text = listed.to_string();
    assert!(
        !text.contains(&kept_token[4..]) && !text.contains("evc_"),
        "{text}"
    );
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&kept_id.as_str()), "{text}");
    assert!(ids.len() >= 3, "the network's own, brief, kept: {text}");

    // The brief one expires.
    wait_for("the brief token to expire", DEADLINE, || {
        (cps_with(&net, &brief_token) == 401).then_some(())
    });
    let listed = net.get("/api/tokens").to_string();
    assert!(
        !listed.contains(brief.body["id"].as_str().unwrap()),
        "{listed}"
    );

    // Revoked by id, a token works no more; there is nothing left to revoke.
    let revoke = |id: &str| {
        call(
            ureq::delete(&net.url(&format!("/api/tokens/{id}")))
                .set("Authorization", &net.bearer()),
            None,
        )
        .status
    };
    assert_eq!(revoke(&kept_id), 204);
    assert_eq!(cps_with(&net, &kept_token), 401);
    assert_eq!(revoke(&kept_id), 404);

    // From the command line too, with the central stopped.
    net.kill_central();
    let data = net.dir.path().join("central-data").display().to_string();
    let listed = run(&["operator", "tokens", "--data", &data]);
    let own = listed
        .lines()
        .find(|l| l.contains(OPERATOR) && l.ends_with("tests"))
        .unwrap_or_else(|| panic!("the network's token is not listed: {listed}"));
    let own_id = own.split_whitespace().next().unwrap();
    assert!(run(&["operator", "revoke", own_id, "--data", &data]).contains("revoked"));
    net.start_central();
    assert_eq!(cps_with(&net, &net.token), 401);
}

#[test]
fn a_token_waits_for_the_one_time_password_and_a_new_password_shuts_others_out() {
    let mut net = Network::start(BrokerKind::Embedded);
    net.kill_central();
    let data = net.dir.path().join("central-data").display().to_string();
    let added = run(&["operator", "add", "alice", "--data", &data]);
    let password = added
        .split("one-time password ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no one-time password in {added}"))
        .to_owned();
    let early = run(&["operator", "token", "alice", "--data", &data])
        .trim()
        .to_owned();
    net.start_central();
    let cps = |credential: (&str, &str)| {
        call(
            ureq::get(&net.url("/api/cps")).set(credential.0, credential.1),
            None,
        )
    };
    let early_bearer = format!("Bearer {early}");

    // The token is refused, with the reason, while alice has a one-time password.
    let refused = cps(("Authorization", &early_bearer));
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert!(refused.body["error"]
        .as_str()
        .unwrap()
        .contains("choose a new password first"));

    // Alice logs in from two browsers and chooses her password in one of them.
    let login = || {
        let answer = call(
            post(&net.url("/api/login")),
            Some(json!({ "name": "alice", "password": password })),
        );
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        assert_eq!(answer.body["must_change_password"], true);
        cookie_pair(&answer.set_cookie.expect("a session cookie"))
    };
    let (here, there) = (login(), login());
    let changed = call(
        post(&net.url("/api/password")).set("Cookie", &here),
        Some(json!({ "current": password, "new": "alice's own password" })),
    );
    assert_eq!(changed.status, 204, "{:?}", changed.body);

    // The other browser is logged out, the token made before is revoked; this one goes on.
    assert_eq!(cps(("Cookie", &there)).status, 401);
    assert_eq!(cps(("Authorization", &early_bearer)).status, 401);
    assert_eq!(cps(("Cookie", &here)).status, 200);
    let issued = call(
        post(&net.url("/api/tokens")).set("Cookie", &here),
        Some(json!({ "label": "after the change" })),
    );
    assert_eq!(issued.status, 201, "{:?}", issued.body);
    let token = issued.body["token"].as_str().unwrap();
    assert_eq!(
        cps(("Authorization", &format!("Bearer {token}"))).status,
        200
    );
}

#[test]
fn the_first_admins_password_is_in_a_file_only_its_user_may_read_never_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(BrokerKind::Embedded, dir.path());
    let data = dir.path().join("central-data");
    let args = central_args(&broker.bootstrap, data.to_str().unwrap(), &[]);
    let central = Proc::spawn(dir.path(), "central", evcharge(), &args, &FAST_ENV);
    let http = announced_port(&central, announces::CONSOLE);
    let file = data.join("first-admin-password");
    wait_for("the log to name the password's file", DEADLINE, || {
        central
            .stderr_text()
            .contains(&format!("written to {}", file.display()))
            .then_some(())
    });
    assert_eq!(mode_of(&file), 0o600);
    let password = std::fs::read_to_string(&file).unwrap().trim().to_owned();
    assert_eq!(password.len(), 16);
    let log = central.stderr_text() + &central.stdout_text();
    assert!(!log.contains(&password), "the password is in the log");

    // It is the admin's.
    let answer = call(
        post(&format!("http://127.0.0.1:{http}/api/login")),
        Some(json!({ "name": "admin", "password": password })),
    );
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["must_change_password"], true);
}

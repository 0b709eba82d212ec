//! TLS everywhere a secret travels: the console over HTTPS with a pair made by
//! `evcharge tls self-signed`, the monitor's link to the central over TLS, Kafka over SASL
//! SCRAM-SHA-512 on a broker that enforces it (tansu; over TLS too, in `kafka_tls`); and a
//! setting that does not exist stops a role, naming it.

use crate::support::*;
use bytes::BytesMut;
use evcharge::link::{FrameCodec, Packet};
use serde_json::Value;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::codec::{Decoder, Encoder};

/// A self-signed pair made by the real command, for `hosts` (and loopback).
pub(crate) struct LabPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub(crate) fn self_signed(dir: &Path, hosts: &[&str]) -> LabPair {
    let out = dir.join("tls");
    let mut args = strings(&["tls", "self-signed", "--out", &out.display().to_string()]);
    for host in hosts {
        args.extend(strings(&["--host", host]));
    }
    let mut made = Proc::spawn(dir, "tls-self-signed", evcharge(), &args, &[]);
    assert_eq!(made.wait_exit(DEADLINE), 0, "{}", made.stderr_text());
    let pair = LabPair {
        cert: out.join("cert.pem"),
        key: out.join("key.pem"),
    };
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&pair.key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key is readable by its owner only");
    assert!(std::fs::read_to_string(&pair.cert)
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    // A second run never overwrites the pair.
    let mut again = Proc::spawn(dir, "tls-self-signed-again", evcharge(), &args, &[]);
    assert_ne!(again.wait_exit(DEADLINE), 0);
    assert!(again.stderr_text().contains("exists already"));
    pair
}

/// An HTTPS client trusting `ca` alone.
fn https_client(ca: &Path) -> ureq::Agent {
    let config = evcharge::tls::client_config(ca).unwrap();
    ureq::AgentBuilder::new()
        .tls_config(config)
        .timeout(Duration::from_secs(30))
        .build()
}

/// The state the central's API at `api` shows for CP `id`, once it lists it.
pub(crate) fn cp_state(api: &evcharge::harness::Endpoint, id: &str) -> Option<String> {
    let cps: Value = api.get_json("/api/cps").ok()?;
    let cp = cps.as_array()?.iter().find(|c| c["id"] == id)?;
    cp["state"].as_str().map(str::to_owned)
}

/// A central with the pair's certificate on ports of its choosing, its data in `data`;
/// returns it with the ports for monitors and of its HTTPS console.
fn tls_central(dir: &Path, kafka: &str, pair: &LabPair, data: &Path) -> (Proc, u16, u16) {
    let args = central_args(
        kafka,
        &data.display().to_string(),
        &[
            "--tls-cert",
            &pair.cert.display().to_string(),
            "--tls-key",
            &pair.key.display().to_string(),
        ],
    );
    let central = Proc::spawn(dir, "central", evcharge(), &args, &FAST_ENV);
    let tcp = announced_port(&central, announces::MONITORS);
    let https = announced_port(&central, announces::CONSOLE);
    (central, tcp, https)
}

#[test]
fn the_console_is_served_over_https_only_and_its_cookie_is_secure() {
    let dir = tempfile::tempdir().unwrap();
    let pair = self_signed(dir.path(), &["central.lab"]);
    let data = dir.path().join("central-data");
    prepare_operator(&data);
    let (central, _, port) = tls_central(dir.path(), &nowhere(), &pair, &data);
    let log = central.stderr_text();
    assert!(log.contains(&format!(
        "admin console and API on https://127.0.0.1:{port}/"
    )));
    assert!(!log.contains("in plain text on"), "{log}");

    let client = https_client(&pair.cert);
    let base = format!("https://127.0.0.1:{port}");
    let health = client.get(&format!("{base}/api/health")).call().unwrap();
    assert_eq!(health.status(), 200);
    let login = client
        .post(&format!("{base}/api/login"))
        .send_json(serde_json::json!({ "name": OPERATOR, "password": OPERATOR_PASSWORD }))
        .unwrap();
    let set_cookie = login.header("set-cookie").unwrap().to_owned();
    let attributes: Vec<&str> = set_cookie.split(';').map(str::trim).collect();
    assert!(attributes.contains(&"Secure"), "{set_cookie}");
    assert!(attributes.contains(&"HttpOnly"), "{set_cookie}");
    let me: Value = client
        .get(&format!("{base}/api/me"))
        .set("Cookie", attributes[0])
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(me["name"], OPERATOR);

    // Plain HTTP on the same port gets no answer at all.
    match ureq::get(&format!("http://127.0.0.1:{port}/api/health"))
        .timeout(Duration::from_secs(30))
        .call()
    {
        Err(ureq::Error::Transport(_)) => {}
        other => panic!("plain HTTP was answered: {other:?}"),
    }
    // Nor is a client that does not trust the certificate.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let stranger = self_signed(&elsewhere, &[]);
    let refused = https_client(&stranger.cert)
        .get(&format!("{base}/api/health"))
        .call();
    assert!(refused.is_err(), "a certificate nobody trusts was accepted");
}

/// Sends one AUTH frame in plain text to `port` and reads what comes back until the
/// connection closes: the packets decoded.
fn plain_frame_exchange(port: u16) -> Vec<Packet> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut out = BytesMut::new();
    FrameCodec::default()
        .encode(
            Packet::frame(["AUTH", "CP009", "Plain street", "0.30"]),
            &mut out,
        )
        .unwrap();
    stream.write_all(&out).unwrap();
    let mut received = Vec::new();
    let read = stream.read_to_end(&mut received);
    assert!(
        read.is_ok() || !received.is_empty(),
        "the central neither answered nor closed: {read:?}"
    );
    let mut buf = BytesMut::from(&received[..]);
    let mut packets = Vec::new();
    let mut codec = FrameCodec::default();
    while let Ok(Some(packet)) = codec.decode(&mut buf) {
        packets.push(packet);
    }
    packets
}

#[test]
fn a_monitor_links_to_a_tls_central_and_a_plain_text_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pair = self_signed(dir.path(), &[]);
    let broker = Broker::start(BrokerKind::Embedded, dir.path());
    let data = dir.path().join("central-data");
    let token = prepare_operator(&data);
    let secret_file = register_offline(&data, "CP001", 0.30);
    let (central, tcp, https) = tls_central(dir.path(), &broker.bootstrap, &pair, &data);

    // The monitor's frames, unchanged, inside TLS: the CP authenticates and reports.
    let args = strings(&[
        "--kafka",
        &broker.bootstrap,
        "cp",
        "--id",
        "CP001",
        "--central",
        &format!("127.0.0.1:{tcp}"),
        "--secret-file",
        &secret_file,
        "--data",
        &dir.path().join("engine-CP001").display().to_string(),
        "--tls-ca",
        &pair.cert.display().to_string(),
        // Its monitor page, with the same pair, over HTTPS.
        "--http",
        "127.0.0.1:0",
        "--tls-cert",
        &pair.cert.display().to_string(),
        "--tls-key",
        &pair.key.display().to_string(),
    ]);
    let cp = Proc::spawn(dir.path(), "cp-CP001", evcharge(), &args, &FAST_ENV);
    let client = https_client(&pair.cert);
    let shown = wait_for("CP001 available over TLS", DEADLINE, || {
        let cps: Value = client
            .get(&format!("https://127.0.0.1:{https}/api/cps"))
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .ok()?
            .into_json()
            .ok()?;
        cps.as_array()?
            .iter()
            .find(|c| c["id"] == "CP001" && c["state"] == "available")
            .cloned()
    });
    assert_eq!(shown["location"], "Street of CP001");
    assert!(cp.stderr_text().contains("over TLS"));
    let page = announced_port(&cp, announces::MONITOR_PAGE);
    assert!(cp
        .stderr_text()
        .contains(&format!("monitor page on https://127.0.0.1:{page}/")));
    let status: Value = client
        .get(&format!("https://127.0.0.1:{page}/api/status"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(status["cp_id"], "CP001");

    // A monitor speaking plain text gets no answer to its frame, and is told why in the
    // central's log.
    let packets = plain_frame_exchange(tcp);
    assert!(
        !packets
            .iter()
            .any(|p| matches!(p, Packet::Ack | Packet::Frame(_))),
        "the TLS port answered a plain frame: {packets:?}"
    );
    wait_for("the central to say it refused", DEADLINE, || {
        central
            .stderr_text()
            .contains("refused: no TLS handshake")
            .then_some(())
    });
}

/// Kafka security settings for a role, as environment variables.
pub(crate) fn sasl_env<'a>(protocol: &'a str, password: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut env = FAST_ENV.to_vec();
    env.extend([
        ("EVCHARGE_KAFKA__SECURITY_PROTOCOL", protocol),
        ("EVCHARGE_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512"),
        ("EVCHARGE_KAFKA__SASL_USERNAME", "evcharge"),
        ("EVCHARGE_KAFKA__SASL_PASSWORD", password),
    ]);
    env
}

pub(crate) const KAFKA_PASSWORD: &str = "kafka-password-of-the-lab";

/// tansu over the sqlite database `dir/tansu.db`, with `extra` flags, on a free port.
fn tansu(dir: &Path, extra: &[&str]) -> Broker {
    wait_for("tansu on a free port", DEADLINE, || {
        Broker::try_start_tansu_with(free_port(), dir, "sqlite://tansu.db", extra)
    })
}

/// Makes the SCRAM user `evcharge` in tansu's sqlite database in `dir` through a broker that
/// enforces nothing, then stops it: a broker started over that database with
/// `--authentication` knows the user.
pub(crate) fn make_scram_user(dir: &Path) {
    let mut open = tansu(dir, &[]);
    let made = std::process::Command::new(tansu_binary())
        .args(["user", "create", "--broker"])
        .arg(format!("tcp://{}", open.bootstrap))
        .args(["--mechanism", "scram512", "evcharge", KAFKA_PASSWORD])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    open.kill();
}

/// The arguments of `evcharge cp` for `id`, registered in `dir` beside the central's data,
/// linking to the central's port for monitors `central_tcp`.
pub(crate) fn cp_args(bootstrap: &str, central_tcp: u16, dir: &Path, id: &str) -> Vec<String> {
    strings(&[
        "--kafka",
        bootstrap,
        "cp",
        "--id",
        id,
        "--central",
        &format!("127.0.0.1:{central_tcp}"),
        "--secret-file",
        &dir.join(format!("{id}.secret")).display().to_string(),
        "--data",
        &dir.join(format!("engine-{id}")).display().to_string(),
    ])
}

#[test]
fn kafka_over_scram_works_with_the_right_password_and_refuses_a_wrong_one() {
    let dir = tempfile::tempdir().unwrap();
    make_scram_user(dir.path());
    let broker = tansu(dir.path(), &["--authentication"]);

    let data = dir.path().join("central-data");
    let token = prepare_operator(&data);
    for id in ["CP001", "CP002"] {
        register_offline(&data, id, 0.30);
    }
    let args = central_args(&broker.bootstrap, &data.display().to_string(), &[]);
    let right = sasl_env("sasl_plaintext", KAFKA_PASSWORD);
    let central = Proc::spawn(dir.path(), "central", evcharge(), &args, &right);
    let tcp = announced_port(&central, announces::MONITORS);
    let http = announced_port(&central, announces::CONSOLE);
    let cp_args = |id: &str| cp_args(&broker.bootstrap, tcp, dir.path(), id);
    // The wrong password first: by the time the right one has gone all the way round, the
    // wrong one had longer to.
    let wrong = sasl_env("sasl_plaintext", "not-the-password");
    let mut refused = Proc::spawn(
        dir.path(),
        "cp-CP002",
        evcharge(),
        &cp_args("CP002"),
        &wrong,
    );
    let refusal = "the Kafka broker at";
    let says_refused = |p: &Proc| {
        p.stderr_text()
            .lines()
            .filter(|l| l.contains(refusal) && l.contains("refuses the credentials"))
            .count()
    };
    wait_for("CP002 to say its credentials are refused", DEADLINE, || {
        (says_refused(&refused) > 0).then_some(())
    });
    let _cp = Proc::spawn(
        dir.path(),
        "cp-CP001",
        evcharge(),
        &cp_args("CP001"),
        &right,
    );
    let api = evcharge::harness::Endpoint::new(format!("127.0.0.1:{http}")).with_token(token);
    let state_of = |id: &str| cp_state(&api, id);
    wait_for("CP001 available through SCRAM", DEADLINE, || {
        (state_of("CP001").as_deref() == Some("available")).then_some(())
    });
    let log = central.stderr_text();
    assert!(log.contains("following Kafka at"), "{log}");
    assert!(!log.contains("refuses the credentials"), "{log}");

    // The network did not take CP002: its engine never joined, so it is not available.
    assert_ne!(state_of("CP002").as_deref(), Some("available"));
    let text = refused.stderr_text();
    assert!(
        refused.is_running(),
        "a refused role keeps retrying: {text}"
    );
    assert!(!text.contains("welcomes this instance"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    // One line, repeated at most every ten seconds, not one per attempt.
    assert!(
        says_refused(&refused) <= 1 + DEADLINE.as_secs() as usize / 10,
        "{text}"
    );
}

#[test]
fn a_setting_that_does_not_exist_stops_the_role_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("evcharge.toml");
    std::fs::write(
        &file,
        "[kafka]\nbootstrap = \"127.0.0.1:1\"\nsecurity_protocl = \"sasl_ssl\"\n",
    )
    .unwrap();
    let args = strings(&["--config", &file.display().to_string(), "central"]);
    let mut central = Proc::spawn(dir.path(), "central", evcharge(), &args, &[]);
    assert_eq!(central.wait_exit(DEADLINE), 2);
    let text = central.stderr_text();
    assert!(
        text.contains("unknown setting kafka.security_protocl"),
        "{text}"
    );
    assert!(text.contains("evcharge.toml"), "{text}");
    assert!(
        !text.contains("listening"),
        "it stopped before anything started: {text}"
    );

    let args = strings(&["monitor", "--id", "CP001"]);
    let env = [("EVCHARGE_TLS__CERTIFICATE", "/etc/evcharge/cert.pem")];
    let mut monitor = Proc::spawn(dir.path(), "monitor", evcharge(), &args, &env);
    assert_eq!(monitor.wait_exit(DEADLINE), 2);
    let text = monitor.stderr_text();
    assert!(text.contains("unknown setting tls.certificate"), "{text}");
    assert!(text.contains("EVCHARGE_TLS__CERTIFICATE"), "{text}");
}

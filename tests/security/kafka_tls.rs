//! Kafka over TLS and SASL SCRAM-SHA-512 on a real broker. tansu 0.6.0 takes `--cert` and
//! `--key` but never uses them, so TLS is terminated in front of it by stunnel (Debian's
//! `stunnel4`), as a TLS proxy in front of a broker would; tansu advertises stunnel's port,
//! so every connection a client makes after the bootstrap goes through TLS as well. Against
//! a real Kafka cluster its own SSL listener plays stunnel's part.

use super::tls::{
    cp_args, cp_state, make_scram_user, sasl_env, self_signed, LabPair, KAFKA_PASSWORD,
};
use crate::support::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// stunnel from the PATH; the test command installs Debian's `stunnel4`.
fn stunnel_binary() -> PathBuf {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join("stunnel"))
        .find(|p| p.exists())
        .expect(
            "stunnel is not installed: run the README's test command (scripts/test.sh), \
             which installs Debian's stunnel4",
        )
}

/// tansu on a plain port that only stunnel connects to, behind stunnel's TLS port, which
/// tansu advertises: a client that bootstraps there is told to come back there.
struct TlsBroker {
    /// stunnel's address: the bootstrap of every role.
    bootstrap: String,
    tls_port: u16,
    /// tansu's own port, in plain text.
    plain_port: u16,
    stunnel: Proc,
    _tansu: Broker,
}

impl TlsBroker {
    /// tansu over the sqlite database in `dir`, enforcing SCRAM, behind stunnel showing
    /// `pair`'s certificate; on ports chosen again while one is taken.
    fn start(dir: &Path, pair: &LabPair) -> TlsBroker {
        wait_for("tansu behind stunnel on free ports", DEADLINE, || {
            let (tls_port, plain_port) = (free_port(), free_port());
            if tls_port == plain_port {
                return None;
            }
            let bootstrap = format!("127.0.0.1:{tls_port}");
            let tansu = Broker::try_start_tansu_advertising(
                plain_port,
                &bootstrap,
                dir,
                "sqlite://tansu.db",
                &["--authentication"],
            )?;
            let stunnel = try_start_stunnel(dir, pair, tls_port, plain_port)?;
            Some(TlsBroker {
                bootstrap,
                tls_port,
                plain_port,
                stunnel,
                _tansu: tansu,
            })
        })
    }

    /// What stunnel logged: each connection, and why one was refused.
    fn log(&self) -> String {
        self.stunnel.stderr_text() + &self.stunnel.stdout_text()
    }

    fn wait_log(&self, what: &str, line: &str) {
        wait_for(what, DEADLINE, || self.log().contains(line).then_some(()));
    }
}

/// stunnel accepting TLS on `tls_port` with `pair`, passing the bytes on in plain text to
/// `plain_port`; `None` when it could not listen (another process had taken the port).
fn try_start_stunnel(dir: &Path, pair: &LabPair, tls_port: u16, plain_port: u16) -> Option<Proc> {
    let config = dir.join(format!("stunnel-{tls_port}.conf"));
    // In the foreground, logging to its standard error, with no pid file.
    let text = format!(
        "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{tls_port}\n\
         connect = 127.0.0.1:{plain_port}\ncert = {}\nkey = {}\n",
        pair.cert.display(),
        pair.key.display()
    );
    std::fs::write(&config, text).unwrap();
    let mut stunnel = Proc::spawn(
        dir,
        &format!("stunnel-{tls_port}"),
        &stunnel_binary().display().to_string(),
        &[config.display().to_string()],
        &[],
    );
    let pid = stunnel.pid().expect("stunnel was started");
    let listening = wait_for("stunnel to listen or to give up", DEADLINE, || {
        if listens_on(pid, tls_port) {
            Some(true)
        } else if !stunnel.is_running() {
            Some(false)
        } else {
            None
        }
    });
    if !listening {
        eprintln!("stunnel could not listen on port {tls_port}; trying another");
    }
    listening.then_some(stunnel)
}

/// The Kafka settings of a role over SASL SCRAM and TLS, trusting the CA in `ca`.
fn over_tls(ca: &Path) -> Vec<(&str, &str)> {
    let mut env = sasl_env("sasl_ssl", KAFKA_PASSWORD);
    env.push(("EVCHARGE_KAFKA__SSL_CA_LOCATION", ca.to_str().unwrap()));
    env
}

/// The lines in which a role says it cannot reach the broker.
fn unreachable_lines(role: &Proc) -> Vec<String> {
    role.stderr_text()
        .lines()
        .filter(|l| l.contains("cannot reach the Kafka broker at"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn kafka_over_tls_serves_a_supply_and_refuses_a_stranger_ca_and_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let pair = self_signed(dir.path(), &[]);
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let stranger = self_signed(&elsewhere, &[]);
    make_scram_user(dir.path());
    let broker = TlsBroker::start(dir.path(), &pair);

    let data = dir.path().join("central-data");
    let token = prepare_operator(&data);
    for id in ["CP001", "CP002", "CP003"] {
        register_offline(&data, id, 0.30);
    }
    let driver_secret = register_driver_offline(&data, "D1");
    let right = over_tls(&pair.cert);
    let args = central_args(&broker.bootstrap, &data.display().to_string(), &[]);
    let central = Proc::spawn(dir.path(), "central", evcharge(), &args, &right);
    let tcp = announced_port(&central, announces::MONITORS);
    let http = announced_port(&central, announces::CONSOLE);
    wait_for("the central to follow Kafka over TLS", DEADLINE, || {
        central
            .stderr_text()
            .contains(&format!("following Kafka at {}", broker.bootstrap))
            .then_some(())
    });
    let cp_args = |id: &str| cp_args(&broker.bootstrap, tcp, dir.path(), id);

    // The refused ones first, as in the SCRAM test: by the time the right one has gone all
    // the way round, they had longer to. A CP trusting another CA fails the handshake and
    // says so while it retries; stunnel hears it refuse the certificate.
    let since = Instant::now();
    let wrong_ca = over_tls(&stranger.cert);
    let mut untrusting = Proc::spawn(
        dir.path(),
        "cp-CP002",
        evcharge(),
        &cp_args("CP002"),
        &wrong_ca,
    );
    wait_for("CP002 to say the TLS handshake failed", DEADLINE, || {
        unreachable_lines(&untrusting)
            .iter()
            .any(|l| l.contains("SSL handshake failed") && l.contains("certificate verify failed"))
            .then_some(())
    });
    broker.wait_log("stunnel to see the CA refused", "unknown ca");
    // A CP speaking plain text to the TLS port: stunnel finds no TLS in what it sends.
    let plain = sasl_env("sasl_plaintext", KAFKA_PASSWORD);
    let mut plain_cp = Proc::spawn(
        dir.path(),
        "cp-CP003",
        evcharge(),
        &cp_args("CP003"),
        &plain,
    );
    broker.wait_log("stunnel to refuse plain text", "wrong version number");

    // The right CA and password: a CP joins and a driver's supply is billed.
    let cp = Proc::spawn(
        dir.path(),
        "cp-CP001",
        evcharge(),
        &cp_args("CP001"),
        &right,
    );
    let api = evcharge::harness::Endpoint::new(format!("127.0.0.1:{http}")).with_token(token);
    let state_of = |id: &str| cp_state(&api, id);
    wait_for("CP001 available over TLS", DEADLINE, || {
        (state_of("CP001").as_deref() == Some("available")).then_some(())
    });
    let driver_args = strings(&[
        "--kafka",
        &broker.bootstrap,
        "driver",
        "--id",
        "D1",
        "--json",
        "--secret-file",
        &driver_secret,
        "--cp",
        "CP001",
    ]);
    let mut driver = Proc::spawn(dir.path(), "driver-D1", evcharge(), &driver_args, &right);
    assert_eq!(driver.wait_exit(DEADLINE), 0, "{}", driver.stderr_text());
    let tickets = of_type(&driver.json_lines(), "ticket");
    let ticket = &tickets.first().expect("a ticket")["ticket"];
    let kwh = ticket["kwh"].as_f64().unwrap();
    assert!(kwh > 0.0, "{ticket}");
    assert_priced(kwh, ticket["eur"].as_f64().unwrap(), 0.30);
    let sessions: Value = api.get_json("/api/sessions").unwrap();
    assert_eq!(sessions[0]["outcome"], "completed", "{sessions}");

    // Every connection of the roles goes through stunnel, none to tansu's own port: the
    // metadata sent them back to the TLS port. Only stunnel talks to tansu.
    let stunnel = broker.stunnel.pid().unwrap();
    assert!(connections_to(stunnel, broker.plain_port) > 0);
    for role in [&central, &cp] {
        let pid = role.pid().unwrap();
        assert!(connections_to(pid, broker.tls_port) > 0, "{}", role.name);
        assert_eq!(connections_to(pid, broker.plain_port), 0, "{}", role.name);
        let log = role.stderr_text();
        assert!(!log.contains("cannot reach the Kafka broker"), "{log}");
    }

    // Neither refused CP joined; both keep retrying, saying why in one line at most every
    // ten seconds, not one per attempt.
    let seconds = since.elapsed().as_secs() as usize;
    for (id, refused) in [("CP002", &mut untrusting), ("CP003", &mut plain_cp)] {
        assert_ne!(state_of(id).as_deref(), Some("available"));
        let text = refused.stderr_text();
        assert!(
            refused.is_running(),
            "a refused role keeps retrying: {text}"
        );
        assert!(!text.contains("welcomes this instance"), "{text}");
        assert!(!text.contains("panicked"), "{text}");
        assert!(
            unreachable_lines(refused).len() <= 1 + seconds / 10,
            "{text}"
        );
    }
}

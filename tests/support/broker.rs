//! The broker a test network runs on: `evcharge broker` (the embedded one) or tansu.

use super::*;
use std::path::{Path, PathBuf};

/// Which broker a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// `evcharge broker`: librdkafka's mock cluster in a process of its own.
    Embedded,
    /// `evcharge broker --brokers 3`: three brokers, each topic on all three.
    EmbeddedCluster,
    /// tansu, a separate Kafka-compatible broker, in memory.
    Tansu,
    /// tansu over a sqlite database that outlives it: it can be killed and started again.
    TansuDurable,
}

/// Where a durable tansu keeps its records, relative to its working directory.
const DURABLE_STORAGE: &str = "sqlite://tansu.db";

/// A broker process and its bootstrap address.
pub struct Broker {
    pub kind: BrokerKind,
    pub bootstrap: String,
    /// Port of the embedded broker's outage control.
    control: Option<u16>,
    proc: Proc,
    /// Where tansu runs (and a durable one keeps its database).
    dir: PathBuf,
}

impl Broker {
    pub fn start(kind: BrokerKind, dir: &Path) -> Broker {
        match kind {
            BrokerKind::Embedded | BrokerKind::EmbeddedCluster => {
                let file = dir.join("bootstrap.txt");
                let brokers = if kind == BrokerKind::Embedded {
                    "1"
                } else {
                    "3"
                };
                let args = [
                    "broker".to_string(),
                    "--bootstrap-file".into(),
                    file.display().to_string(),
                    "--control".into(),
                    "127.0.0.1:0".into(),
                    "--brokers".into(),
                    brokers.into(),
                ];
                let token = [("EVCHARGE_CONTROL__TOKEN", CONTROL_TOKEN)];
                let proc = Proc::spawn(dir, "broker", evcharge(), &args, &token);
                let bootstrap = wait_for("the embedded broker's address", DEADLINE, || {
                    std::fs::read_to_string(&file)
                        .ok()
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                });
                let control = announced_port(&proc, announces::BROKER_CONTROL);
                Broker {
                    kind,
                    bootstrap,
                    control: Some(control),
                    proc,
                    dir: dir.to_owned(),
                }
            }
            // tansu's advertised listener must name its port, so the port is chosen before
            // it starts (port 0 would be advertised as is): chosen again while it is taken.
            BrokerKind::Tansu => wait_for("tansu on a free port", DEADLINE, || {
                Broker::try_start_tansu_on(free_port(), dir)
            }),
            BrokerKind::TansuDurable => wait_for("tansu on a free port", DEADLINE, || {
                let mut broker =
                    Broker::try_start_tansu_with(free_port(), dir, DURABLE_STORAGE, &[])?;
                broker.kind = BrokerKind::TansuDurable;
                Some(broker)
            }),
        }
    }

    /// A durable tansu, SIGKILLed, started again on its port over the same database.
    pub fn kill_and_restart(&mut self) {
        assert_eq!(
            self.kind,
            BrokerKind::TansuDurable,
            "only a durable tansu restarts"
        );
        self.proc.kill();
        let port: u16 = self.bootstrap.rsplit(':').next().unwrap().parse().unwrap();
        // The port was its own: free again once it is dead (unless another process took it
        // meanwhile, which then fails here, plainly).
        let again = wait_for("tansu again on its port", DEADLINE, || {
            Some(Broker::try_start_tansu_with(
                port,
                &self.dir,
                DURABLE_STORAGE,
                &[],
            ))
        })
        .unwrap_or_else(|| panic!("tansu cannot listen on its port {port} again"));
        self.proc = again.proc;
    }

    /// tansu on a port chosen beforehand; `None` when tansu could not listen there (another
    /// process had taken the port).
    pub fn try_start_tansu_on(port: u16, dir: &Path) -> Option<Broker> {
        Broker::try_start_tansu_with(port, dir, "memory://tansu/", &[])
    }

    /// tansu on `port` over `storage`, with `extra` flags (such as `--authentication`). It
    /// runs in `dir`, where tansu puts a sqlite database (`sqlite://tansu.db`: tansu takes
    /// the path as relative to its working directory).
    pub fn try_start_tansu_with(
        port: u16,
        dir: &Path,
        storage: &str,
        extra: &[&str],
    ) -> Option<Broker> {
        let own = format!("127.0.0.1:{port}");
        Broker::try_start_tansu_advertising(port, &own, dir, storage, extra)
    }

    /// Like [`Broker::try_start_tansu_with`], telling clients in its metadata to connect to
    /// `advertised` (`HOST:PORT`) rather than to `port`: a TLS proxy in front of it, say.
    /// `bootstrap` stays tansu's own address.
    pub fn try_start_tansu_advertising(
        port: u16,
        advertised: &str,
        dir: &Path,
        storage: &str,
        extra: &[&str],
    ) -> Option<Broker> {
        let url = format!("tcp://127.0.0.1:{port}");
        let advertised = format!("tcp://{advertised}");
        let args = [
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &advertised,
            "--storage-engine",
            storage,
        ];
        let tansu = tansu_binary();
        // `env -C` runs tansu itself (the same process) in `dir`.
        let args: Vec<String> = ["-C", &dir.display().to_string(), &tansu]
            .into_iter()
            .chain(args)
            .chain(extra.iter().copied())
            .map(str::to_string)
            .collect();
        let name = format!("tansu-{port}");
        let mut proc = Proc::spawn(dir, &name, "env", &args, &[]);
        let pid = proc.pid().expect("tansu was started");
        // Whose listener the port has, not only whether it answers: if the port was taken,
        // the connection would reach the process that took it.
        let listening = wait_for("tansu to listen or to give up", DEADLINE, || {
            if listens_on(pid, port) {
                Some(true)
            } else if !proc.is_running() {
                Some(false)
            } else {
                None
            }
        });
        if !listening {
            eprintln!("tansu could not listen on port {port}; trying another");
            return None;
        }
        Some(Broker {
            kind: BrokerKind::Tansu,
            bootstrap: format!("127.0.0.1:{port}"),
            control: None,
            proc,
            dir: dir.to_owned(),
        })
    }

    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// The port of the embedded broker's outage control.
    pub fn control_port(&self) -> Option<u16> {
        self.control
    }

    /// The embedded broker drops every connection and refuses new ones, keeping its data.
    pub fn outage(&self) {
        self.control_post("outage");
    }

    pub fn recover(&self) {
        self.control_post("recover");
    }

    /// One broker of the embedded cluster goes down (or comes back, with `up`).
    pub fn broker_down(&self, id: i32) {
        self.control_post(&format!("brokers/{id}/down"));
    }

    pub fn broker_up(&self, id: i32) {
        self.control_post(&format!("brokers/{id}/up"));
    }

    fn control_post(&self, what: &str) {
        let port = self
            .control
            .expect("only the embedded broker has outage control");
        let (status, body) = control(port)
            .post_for_status(&format!("/control/{what}"), None)
            .unwrap();
        assert_eq!(status, 202, "{body}");
    }
}

/// tansu from `TANSU_BIN`, the PATH, or cargo's bin directory; the test command installs it.
pub fn tansu_binary() -> String {
    if let Ok(bin) = std::env::var("TANSU_BIN") {
        return bin;
    }
    let candidates = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| PathBuf::from(d).join("tansu"))
        .chain(
            std::env::var("HOME")
                .ok()
                .map(|h| PathBuf::from(h).join(".cargo/bin/tansu")),
        )
        .collect::<Vec<_>>();
    candidates
        .into_iter()
        .find(|p| p.exists())
        .map(|p| p.display().to_string())
        .expect("tansu is not installed: run the README's test command (scripts/test.sh), which installs it")
}

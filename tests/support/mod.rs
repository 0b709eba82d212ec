//! Helpers for end-to-end tests: real `evcharge` processes, a real broker process, real
//! sockets and HTTP. Every wait is on a condition, with a generous deadline.

#![allow(dead_code)]

use serde_json::Value;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(90);

/// Which broker a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// `evcharge broker`: librdkafka's mock cluster in a process of its own.
    Embedded,
    /// tansu, a separate Kafka-compatible broker.
    Tansu,
}

pub fn evcharge() -> &'static str {
    env!("CARGO_BIN_EXE_evcharge")
}

/// A port free right now on loopback, released at once: another process may take it before
/// the one it is meant for binds it. Only for an address that must be known before its
/// process starts; such a start is retried while the port is taken ([`start_announcing`]).
/// Everywhere else a process binds port 0 and the test reads back what it announces.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// An address where nothing listens: port 1 (tcpmux) is below the range the system hands
/// out for port 0 and for outgoing connections, and no test binds it, so it stays refused
/// however many tests run side by side.
pub fn nowhere() -> String {
    "127.0.0.1:1".into()
}

/// What each role logs when a listener is bound, followed by the address as bound (with
/// port 0, the port the system chose): `… on 127.0.0.1:PORT` or `… on http://127.0.0.1:PORT/…`.
pub mod announces {
    /// The central's TCP listener for monitors.
    pub const MONITORS: &str = "listening for monitors on ";
    /// The central's admin console and API.
    pub const CONSOLE: &str = "admin console and API on ";
    /// An engine's health-check socket (`evcharge engine` and `evcharge cp`).
    pub const ENGINE: &str = "answering health checks on ";
    /// A monitor's page (`evcharge monitor --http` and `evcharge cp --http`).
    pub const MONITOR_PAGE: &str = "monitor page on ";
    /// A driver's dashboard (`evcharge driver --http`).
    pub const DASHBOARD: &str = "driver dashboard on ";
    /// The control endpoint of an engine, monitor, CP or driver (`--control`).
    pub const CONTROL: &str = "control endpoint on ";
    /// The embedded broker's control (`evcharge broker --control`).
    pub const BROKER_CONTROL: &str = "outage injection on ";
    /// The demo's control (`evcharge demo --control`).
    pub const DEMO_CONTROL: &str = "demo control on ";
}

/// What a process says when an address it was told to bind is taken.
pub const ADDRESS_IN_USE: &str = "Address already in use";

/// The address announced after `marker` in `text` (the first such line), as `host:port`.
pub fn address_after(text: &str, marker: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let rest = line.split_once(marker)?.1;
        let rest = rest.strip_prefix("http://").unwrap_or(rest);
        let end = rest
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(rest.len());
        let address: std::net::SocketAddr = rest[..end].parse().ok()?;
        Some(address.to_string())
    })
}

/// Everything the process has written so far, standard error then standard output.
fn all_output(proc: &Proc) -> String {
    proc.stderr_text() + &proc.stdout_text()
}

/// Waits until `proc` announces the address it bound after `marker`; that address.
pub fn announced(proc: &Proc, marker: &str) -> String {
    wait_for(
        &format!("{} to announce \"{}\"", proc.name, marker.trim()),
        DEADLINE,
        || address_after(&all_output(proc), marker),
    )
}

/// The port of [`announced`].
pub fn announced_port(proc: &Proc, marker: &str) -> u16 {
    port_of(&announced(proc, marker))
}

/// The port of a `host:port` address.
pub fn port_of(address: &str) -> u16 {
    address
        .parse::<std::net::SocketAddr>()
        .unwrap_or_else(|e| panic!("{address} is not an address: {e}"))
        .port()
}

/// Starts a process with `start` (given the attempt's number, from 1) until it announces an
/// address after each of `markers`, starting it again while an address it was given is
/// taken ([`ADDRESS_IN_USE`]). For processes whose address must be known before they start;
/// `start` may keep the address (a restart that others will reconnect to) or choose new
/// ones. Returns the process and the announced addresses, in the order of `markers`.
pub fn start_announcing(
    mut start: impl FnMut(usize) -> Proc,
    markers: &[&str],
) -> (Proc, Vec<String>) {
    let mut attempt = 0;
    wait_for("a start whose addresses are free", DEADLINE, || {
        attempt += 1;
        let proc = start(attempt);
        let bound = wait_for(
            &format!("{} to announce its addresses", proc.name),
            DEADLINE,
            || {
                let text = all_output(&proc);
                if text.contains(ADDRESS_IN_USE) {
                    return Some(None);
                }
                markers
                    .iter()
                    .map(|m| address_after(&text, m))
                    .collect::<Option<Vec<_>>>()
                    .map(Some)
            },
        );
        match bound {
            Some(addresses) => Some((proc, addresses)),
            None => {
                eprintln!("{}: an address was taken; starting again", proc.name);
                None
            }
        }
    })
}

/// Polls `check` until it gives a value or the deadline passes.
pub fn wait_for<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A child process whose output goes to files, killed with SIGKILL when dropped.
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    stdin: Option<std::process::ChildStdin>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Proc {
    pub fn spawn(
        dir: &Path,
        name: &str,
        program: &str,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Proc {
        Proc::start(dir, name, program, args, env, false)
    }

    /// Like `spawn`, with a standard input the test can type into.
    pub fn spawn_typed(
        dir: &Path,
        name: &str,
        program: &str,
        args: &[String],
        env: &[(&str, &str)],
    ) -> Proc {
        Proc::start(dir, name, program, args, env, true)
    }

    fn start(
        dir: &Path,
        name: &str,
        program: &str,
        args: &[String],
        env: &[(&str, &str)],
        typed: bool,
    ) -> Proc {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(if typed { Stdio::piped() } else { Stdio::null() })
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .env("RUST_LOG", "info");
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        Proc {
            name: name.into(),
            stdin: child.stdin.take(),
            child: Some(child),
            stdout,
            stderr,
        }
    }

    /// Types one line into the process's standard input.
    pub fn type_line(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("started with spawn_typed");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// SIGKILL: the process dies at once, the way a crash does.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().map(|s| s.is_none()).unwrap_or(false),
            None => false,
        }
    }

    /// Waits for the process to end by itself; its exit code.
    pub fn wait_exit(&mut self, deadline: Duration) -> i32 {
        let child = self.child.as_mut().expect("process was started");
        let status = wait_for(&format!("{} to exit", self.name), deadline, || {
            child.try_wait().ok().flatten()
        });
        self.child = None;
        status.code().unwrap_or(-1)
    }

    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Every stdout line that is a JSON object.
    pub fn json_lines(&self) -> Vec<Value> {
        let Ok(file) = File::open(&self.stdout) else {
            return Vec::new();
        };
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .collect()
    }

    fn tail(&self, lines: usize) -> String {
        let mut text = String::new();
        for path in [&self.stdout, &self.stderr] {
            let all = std::fs::read_to_string(path).unwrap_or_default();
            let v: Vec<&str> = all.lines().collect();
            let start = v.len().saturating_sub(lines);
            text.push_str(&v[start..].join("\n"));
            text.push('\n');
        }
        text
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "----- last output of {} -----\n{}",
                self.name,
                self.tail(40)
            );
        }
        self.kill();
    }
}

/// A broker process and its bootstrap address.
pub struct Broker {
    pub kind: BrokerKind,
    pub bootstrap: String,
    /// Port of the embedded broker's outage control.
    control: Option<u16>,
    proc: Proc,
}

impl Broker {
    pub fn start(kind: BrokerKind, dir: &Path) -> Broker {
        match kind {
            BrokerKind::Embedded => {
                let file = dir.join("bootstrap.txt");
                let args = [
                    "broker".to_string(),
                    "--bootstrap-file".into(),
                    file.display().to_string(),
                    "--control".into(),
                    "127.0.0.1:0".into(),
                ];
                let proc = Proc::spawn(dir, "broker", evcharge(), &args, &[]);
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
                }
            }
            // tansu's advertised listener must name its port, so the port is chosen before
            // it starts (port 0 would be advertised as is): chosen again while it is taken.
            BrokerKind::Tansu => wait_for("tansu on a free port", DEADLINE, || {
                Broker::try_start_tansu_on(free_port(), dir)
            }),
        }
    }

    /// tansu on a port chosen beforehand; `None` when tansu could not listen there (another
    /// process had taken the port).
    pub fn try_start_tansu_on(port: u16, dir: &Path) -> Option<Broker> {
        let url = format!("tcp://127.0.0.1:{port}");
        let args = [
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ];
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let name = format!("tansu-{port}");
        let mut proc = Proc::spawn(dir, &name, &tansu_binary(), &args, &[]);
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
        })
    }

    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// The embedded broker drops every connection and refuses new ones, keeping its data.
    pub fn outage(&self) {
        self.control_post("outage");
    }

    pub fn recover(&self) {
        self.control_post("recover");
    }

    fn control_post(&self, what: &str) {
        let port = self
            .control
            .expect("only the embedded broker has outage control");
        let r = ureq::post(&format!("http://127.0.0.1:{port}/control/{what}"))
            .call()
            .unwrap();
        assert_eq!(r.status(), 202);
    }
}

/// Whether process `pid` has a listening TCP socket on `port` (any address), from
/// `/proc/net/tcp{,6}` and the process's open files.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [_, local, _, state, _, _, _, _, _, inode, ..] = fields[..] else {
                continue;
            };
            let local_port = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            // 0A: LISTEN.
            if state == "0A" && local_port == Some(port) {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .any(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
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

/// Fast timings for tests; every one is a setting a user could give too.
pub const FAST_ENV: [(&str, &str); 11] = [
    ("EVCHARGE_DRIVER__HEARTBEAT", "500ms"),
    ("EVCHARGE_ENGINE__HEARTBEAT", "500ms"),
    ("EVCHARGE_CENTRAL__LIVENESS", "2s"),
    ("EVCHARGE_DRIVER__REFUSAL_GRACE", "3s"),
    ("EVCHARGE_ENGINE__REFUSAL_GRACE", "3s"),
    ("EVCHARGE_ENGINE__PLUG_IN_DELAY", "500ms"),
    ("EVCHARGE_ENGINE__SUPPLY_DURATION", "2s"),
    ("EVCHARGE_ENGINE__POWER_KW", "50"),
    ("EVCHARGE_DRIVER__PAUSE", "300ms"),
    ("EVCHARGE_DRIVER__ANSWER_TIMEOUT", "60s"),
    ("EVCHARGE_KAFKA__RETRY_BACKOFF", "500ms"),
];

/// The operator every test network has, and the password it logs in with.
pub const OPERATOR: &str = "tests";
pub const OPERATOR_PASSWORD: &str = "tests-password";

/// Adds [`OPERATOR`] to the central's database in `data` and returns an API token for it,
/// with the real `evcharge operator` commands (the central must not be running).
pub fn prepare_operator(data: &Path) -> String {
    use std::io::Write;
    let data = data.display().to_string();
    let mut add = Command::new(evcharge())
        .args([
            "operator",
            "add",
            OPERATOR,
            "--password-stdin",
            "--data",
            &data,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(add.stdin.take().unwrap(), "{OPERATOR_PASSWORD}").unwrap();
    let added = add.wait_with_output().unwrap();
    assert!(added.status.success(), "operator add failed: {added:?}");
    let token = Command::new(evcharge())
        .args([
            "operator", "token", OPERATOR, "--label", "tests", "--data", &data,
        ])
        .output()
        .unwrap();
    assert!(token.status.success(), "operator token failed: {token:?}");
    String::from_utf8(token.stdout).unwrap().trim().to_owned()
}

/// A network under test: a broker, a central, CPs and drivers, each a real process.
pub struct Network {
    pub broker: Broker,
    /// The API token of [`OPERATOR`].
    pub token: String,
    pub central: Option<Proc>,
    pub central_tcp: u16,
    pub http: u16,
    pub cps: Vec<Proc>,
    started: usize,
    central_flags: Vec<String>,
    /// Last, so that it is deleted after every process has been killed and its logs shown.
    pub dir: tempfile::TempDir,
}

impl Network {
    pub fn start(kind: BrokerKind) -> Network {
        Network::start_with(kind, &[])
    }

    /// With extra flags for the central.
    pub fn start_with(kind: BrokerKind, central_flags: &[&str]) -> Network {
        let mut dir = tempfile::tempdir().unwrap();
        // EVCHARGE_TEST_KEEP=1 keeps every log and database of the run, to look at after.
        if std::env::var_os("EVCHARGE_TEST_KEEP").is_some() {
            dir.disable_cleanup(true);
            eprintln!("keeping {}", dir.path().display());
        }
        let broker = Broker::start(kind, dir.path());
        let token = prepare_operator(&dir.path().join("central-data"));
        let mut net = Network {
            broker,
            token,
            central: None,
            // Chosen by the first central, which binds port 0 ([`Network::start_central`]).
            central_tcp: 0,
            http: 0,
            cps: Vec::new(),
            started: 0,
            central_flags: central_flags.iter().map(|s| s.to_string()).collect(),
            dir,
        };
        net.start_central();
        net
    }

    fn next_name(&mut self, base: &str) -> String {
        self.started += 1;
        format!("{base}-{}", self.started)
    }

    /// Starts a central over this network's data directory. The first one binds port 0 and
    /// the network keeps the addresses it announces. A central started again keeps them, as
    /// a restarted central on its configured ports does: the CPs, monitors and browsers of
    /// the test reconnect there. The central it replaces has released them just now; should
    /// another process have taken one in between, the start is retried until it is free.
    pub fn start_central(&mut self) {
        let (tcp, http) = (self.central_tcp, self.http);
        let dir = self.dir.path().to_owned();
        let mut args: Vec<String> = vec![
            "--kafka".into(),
            self.broker.bootstrap.clone(),
            "central".into(),
            "--listen".into(),
            format!("127.0.0.1:{tcp}"),
            "--http".into(),
            format!("127.0.0.1:{http}"),
            "--data".into(),
            dir.join("central-data").display().to_string(),
        ];
        args.extend(self.central_flags.iter().cloned());
        let (central, addresses) = start_announcing(
            |_| {
                let name = self.next_name("central");
                Proc::spawn(&dir, &name, evcharge(), &args, &FAST_ENV)
            },
            &[announces::MONITORS, announces::CONSOLE],
        );
        self.central_tcp = port_of(&addresses[0]);
        self.http = port_of(&addresses[1]);
        self.central = Some(central);
        let http = self.http;
        wait_for("the central's API", DEADLINE, || {
            ureq::get(&format!("http://127.0.0.1:{http}/api/health"))
                .call()
                .ok()
        });
    }

    pub fn kill_central(&mut self) {
        if let Some(mut c) = self.central.take() {
            c.kill();
        }
    }

    /// Starts a part of a CP (`cp`, `engine` or `monitor`) with `args`; returns its index
    /// in `cps`. Typed input reaches an engine's keyboard when `--interactive` is given.
    fn start_part(&mut self, name: &str, args: Vec<String>, extra: &[&str]) -> usize {
        let name = self.next_name(name);
        let mut args = args;
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = Proc::spawn_typed(self.dir.path(), &name, evcharge(), &args, &FAST_ENV);
        self.cps.push(proc);
        self.cps.len() - 1
    }

    fn engine_data(&self, id: &str) -> String {
        let dir = self.dir.path().join(format!("engine-{id}"));
        dir.display().to_string()
    }

    /// The arguments of `evcharge cp` for `id`, its engine's data in `data`.
    fn cp_args(&self, id: &str, price: f64, data: &str) -> Vec<String> {
        strings(&[
            "--kafka",
            &self.broker.bootstrap,
            "cp",
            "--id",
            id,
            "--central",
            &format!("127.0.0.1:{}", self.central_tcp),
            "--location",
            &format!("Street of {id}"),
            "--price",
            &price.to_string(),
            "--data",
            data,
        ])
    }

    /// Starts `evcharge cp` for `id`; returns its index in `cps`.
    pub fn start_cp(&mut self, id: &str, price: f64, extra: &[&str]) -> usize {
        let args = self.cp_args(id, price, &self.engine_data(id));
        self.start_part(id, args, extra)
    }

    /// Starts `evcharge engine` for `id` on `port` (0: any free port, read back with
    /// [`Network::engine_port`]); returns its index in `cps`.
    pub fn start_engine(&mut self, id: &str, port: u16, extra: &[&str]) -> usize {
        let data = self.engine_data(id);
        self.start_engine_in(id, port, &data, extra)
    }

    /// Starts `evcharge engine` for `id` on `port` keeping its data in `data`.
    ///
    /// A port other than 0 is one an engine had before, started again where its monitor
    /// looks for it. Its predecessor has released it just now; should another process have
    /// taken it in between, the start is retried until it is free.
    pub fn start_engine_in(&mut self, id: &str, port: u16, data: &str, extra: &[&str]) -> usize {
        let args = strings(&[
            "--kafka",
            &self.broker.bootstrap,
            "engine",
            "--id",
            id,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data",
            data,
        ]);
        if port == 0 {
            return self.start_part(&format!("engine-{id}"), args, extra);
        }
        let mut args = args;
        args.extend(extra.iter().map(|s| s.to_string()));
        let dir = self.dir.path().to_owned();
        let (engine, _) = start_announcing(
            |_| {
                let name = self.next_name(&format!("engine-{id}"));
                Proc::spawn_typed(&dir, &name, evcharge(), &args, &FAST_ENV)
            },
            &[announces::ENGINE],
        );
        self.cps.push(engine);
        self.cps.len() - 1
    }

    /// The port the engine of `cps[index]` answers health checks on, as it announced it.
    pub fn engine_port(&self, index: usize) -> u16 {
        self.announced_port(index, announces::ENGINE)
    }

    /// The port `cps[index]` announced after `marker` (see [`announces`]).
    pub fn announced_port(&self, index: usize, marker: &str) -> u16 {
        announced_port(&self.cps[index], marker)
    }

    /// Starts `evcharge monitor` for `id`, watching the engine on `engine_port`.
    pub fn start_monitor(
        &mut self,
        id: &str,
        engine_port: u16,
        price: f64,
        extra: &[&str],
    ) -> usize {
        let args = strings(&[
            "monitor",
            "--id",
            id,
            "--engine",
            &format!("127.0.0.1:{engine_port}"),
            "--central",
            &format!("127.0.0.1:{}", self.central_tcp),
            "--location",
            &format!("Street of {id}"),
            "--price",
            &price.to_string(),
        ]);
        self.start_part(&format!("monitor-{id}"), args, extra)
    }

    /// Starts a driver printing JSON lines.
    pub fn start_driver(&mut self, id: &str, plan: &[&str]) -> Proc {
        let name = self.next_name(id);
        let mut args: Vec<String> = vec![
            "--kafka".into(),
            self.broker.bootstrap.clone(),
            "driver".into(),
            "--id".into(),
            id.into(),
            "--json".into(),
        ];
        args.extend(plan.iter().map(|s| s.to_string()));
        // Typed input reaches the driver when `--interactive` is in the plan.
        Proc::spawn_typed(self.dir.path(), &name, evcharge(), &args, &FAST_ENV)
    }

    pub fn write_file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http)
    }

    /// The bearer header of this network's operator token.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }

    pub fn get(&self, path: &str) -> Value {
        ureq::get(&self.url(path))
            .set("Authorization", &self.bearer())
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .into_json()
            .unwrap()
    }

    /// POST; the status code and the JSON body.
    pub fn post(&self, path: &str) -> (u16, Value) {
        match ureq::post(&self.url(path))
            .set("Authorization", &self.bearer())
            .call()
        {
            Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("POST {path}: {e}"),
        }
    }

    /// The CP's object from `GET /api/cps`.
    pub fn cp(&self, id: &str) -> Option<Value> {
        let cps = ureq::get(&self.url("/api/cps"))
            .set("Authorization", &self.bearer())
            .call()
            .ok()?
            .into_json::<Value>()
            .ok()?;
        cps.as_array()?.iter().find(|c| c["id"] == id).cloned()
    }

    /// Waits until the CP shows `state`; returns its object.
    pub fn wait_state(&self, id: &str, state: &str) -> Value {
        wait_for(&format!("{id} to be {state}"), DEADLINE, || {
            self.cp(id).filter(|c| c["state"] == state)
        })
    }

    pub fn sessions(&self) -> Vec<Value> {
        self.get("/api/sessions")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Waits until the process has printed a JSON line that `matches`.
pub fn wait_line(proc: &Proc, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, DEADLINE, || {
        proc.json_lines().into_iter().find(|l| matches(l))
    })
}

pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

/// The driver's JSON lines of one type.
pub fn of_type(lines: &[Value], kind: &str) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| l["type"] == kind)
        .cloned()
        .collect()
}

/// € = kWh × price, to the cent.
pub fn assert_priced(kwh: f64, eur: f64, price: f64) {
    let expected = (kwh * price * 100.0).round() / 100.0;
    assert!(
        (eur - expected).abs() < 1e-9,
        "{eur} € is not {kwh} kWh × {price} €/kWh = {expected} €"
    );
}

impl Proc {
    /// The process id while it runs (to send it a signal other than SIGKILL).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGTERM: asks the process to stop cleanly, the way an operator or systemd does.
    pub fn terminate(&mut self) {
        self.signal("TERM");
    }

    /// SIGSTOP: the process stops dead with its sockets open, sending nothing more, not even
    /// a close (as when its machine loses power). `kill` still ends it.
    pub fn freeze(&mut self) {
        self.signal("STOP");
    }

    fn signal(&self, name: &str) {
        if let Some(child) = &self.child {
            let status = Command::new("kill")
                .args([&format!("-{name}"), &child.id().to_string()])
                .status()
                .expect("kill(1) runs");
            assert!(status.success(), "cannot send SIG{name} to {}", self.name);
        }
    }
}

impl Network {
    /// Starts `evcharge cp` for `id` with its engine's data in a directory of its own, as a
    /// CP on another machine would have; returns its index in `cps`.
    pub fn start_cp_elsewhere(&mut self, id: &str, price: f64, extra: &[&str]) -> usize {
        let name = self.next_name(&format!("elsewhere-{id}"));
        let data = self.dir.path().join(&name).display().to_string();
        let args = self.cp_args(id, price, &data);
        self.start_part(&name, args, extra)
    }
}

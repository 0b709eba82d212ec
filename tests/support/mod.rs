//! Helpers for end-to-end tests: real `evcharge` processes, a real broker process, real
//! sockets and HTTP. Every wait is on a condition, with a generous deadline.

#![allow(dead_code)]

use serde_json::Value;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
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

/// A port free right now on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
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
                let control = free_port();
                let args = [
                    "broker".to_string(),
                    "--bootstrap-file".into(),
                    file.display().to_string(),
                    "--control".into(),
                    format!("127.0.0.1:{control}"),
                ];
                let proc = Proc::spawn(dir, "broker", evcharge(), &args, &[]);
                let bootstrap = wait_for("the embedded broker's address", DEADLINE, || {
                    std::fs::read_to_string(&file)
                        .ok()
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                });
                Broker {
                    kind,
                    bootstrap,
                    control: Some(control),
                    proc,
                }
            }
            BrokerKind::Tansu => Broker::start_tansu_on(free_port(), dir),
        }
    }

    /// tansu on a port chosen beforehand.
    pub fn start_tansu_on(port: u16, dir: &Path) -> Broker {
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
        let proc = Proc::spawn(dir, "tansu", &tansu_binary(), &args, &[]);
        let bootstrap = format!("127.0.0.1:{port}");
        wait_for("tansu to accept connections", DEADLINE, || {
            TcpStream::connect(&bootstrap).ok()
        });
        Broker {
            kind: BrokerKind::Tansu,
            bootstrap,
            control: None,
            proc,
        }
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
            central_tcp: free_port(),
            http: free_port(),
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

    /// Starts a central over this network's data directory.
    pub fn start_central(&mut self) {
        let name = self.next_name("central");
        let mut args: Vec<String> = vec![
            "--kafka".into(),
            self.broker.bootstrap.clone(),
            "central".into(),
            "--listen".into(),
            format!("127.0.0.1:{}", self.central_tcp),
            "--http".into(),
            format!("127.0.0.1:{}", self.http),
            "--data".into(),
            self.dir.path().join("central-data").display().to_string(),
        ];
        args.extend(self.central_flags.iter().cloned());
        self.central = Some(Proc::spawn(
            self.dir.path(),
            &name,
            evcharge(),
            &args,
            &FAST_ENV,
        ));
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

    /// Starts `evcharge engine` for `id` on `port`; returns its index in `cps`.
    pub fn start_engine(&mut self, id: &str, port: u16, extra: &[&str]) -> usize {
        let data = self.engine_data(id);
        self.start_engine_in(id, port, &data, extra)
    }

    /// Starts `evcharge engine` for `id` on `port` keeping its data in `data`.
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
        self.start_part(&format!("engine-{id}"), args, extra)
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

//! A whole network under test — a broker, a central, CPs and drivers, each a real process —
//! and the operator its API is called as.

use super::*;
use serde_json::Value;
use std::path::Path;

/// The token that opens the control endpoints of every process a test starts (given to each
/// in [`FAST_ENV`]).
pub const CONTROL_TOKEN: &str = "tests-control-token-0123456789";

/// Fast timings for tests, and the control token; every one is a setting a user could give
/// too.
pub const FAST_ENV: [(&str, &str); 12] = [
    ("EVCHARGE_CONTROL__TOKEN", CONTROL_TOKEN),
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

/// What a central logs once it runs the CPs of the partitions it was given.
pub const RUNS_CPS: &str = "more charging points (partitions";

/// The operator every test network has, and the password it logs in with.
pub const OPERATOR: &str = "tests";

pub const OPERATOR_PASSWORD: &str = "tests-password";

/// Adds [`OPERATOR`] to the central's database in `data` and returns an API token for it,
/// with the real `evcharge operator` commands (the central must not be running).
pub fn prepare_operator(data: &Path) -> String {
    evcharge::harness::add_operator(
        Path::new(evcharge()),
        data,
        OPERATOR,
        OPERATOR_PASSWORD,
        "tests",
    )
    .unwrap_or_else(|e| panic!("cannot prepare the operator: {e:#}"))
}

/// Registers `id` at `price` in the central's database in `data` (the central must not be
/// running) with the real `evcharge cp-register`; returns the file holding its secret,
/// beside the database.
pub fn register_offline(data: &Path, id: &str, price: f64) -> String {
    let file = data.with_file_name(format!("{id}.secret"));
    evcharge::harness::register_cps(
        Path::new(evcharge()),
        data,
        id,
        None,
        (&format!("Street of {id}"), price),
        &file,
    )
    .unwrap_or_else(|e| panic!("cannot register {id}: {e:#}"));
    file.display().to_string()
}

/// Registers driver `id` in the central's database in `data` (the central must not be
/// running) with the real `evcharge driver-register`; returns the file holding its secret.
pub fn register_driver_offline(data: &Path, id: &str) -> String {
    let file = data.with_file_name(format!("driver-{id}.secret"));
    evcharge::harness::register_drivers(Path::new(evcharge()), data, id, None, &file)
        .unwrap_or_else(|e| panic!("cannot register driver {id}: {e:#}"));
    file.display().to_string()
}

/// The tariff of a CP whose engine starts before anything says what it charges.
const DEFAULT_PRICE: f64 = 0.30;

/// A network under test: a broker, a central, CPs and drivers, each a real process.
pub struct Network {
    pub broker: Broker,
    /// The API token of [`OPERATOR`].
    pub token: String,
    pub central: Option<Proc>,
    pub central_tcp: u16,
    pub http: u16,
    /// The ports for monitors of the other centrals of the network (`centrals.rs`): CPs
    /// started after one is added are given them all.
    pub other_centrals: Vec<u16>,
    pub cps: Vec<Proc>,
    /// The secret file of every CP registered so far, and the price it was registered at.
    pub(super) registered: std::collections::HashMap<String, (String, f64)>,
    /// The secret file of every driver registered so far.
    drivers: std::collections::HashMap<String, String>,
    started: usize,
    central_flags: Vec<String>,
    /// Settings of the central's given in its environment, beside [`FAST_ENV`].
    pub(super) central_env: Vec<(String, String)>,
    /// Last, so that it is deleted after every process has been killed and its logs shown.
    pub dir: tempfile::TempDir,
}

impl Network {
    pub fn start(kind: BrokerKind) -> Network {
        Network::start_with(kind, &[])
    }

    /// With extra flags for the central.
    pub fn start_with(kind: BrokerKind, central_flags: &[&str]) -> Network {
        Network::start_with_env(kind, central_flags, &[])
    }

    /// With extra flags and environment variables for the central.
    pub fn start_with_env(
        kind: BrokerKind,
        central_flags: &[&str],
        central_env: &[(&str, &str)],
    ) -> Network {
        Network::start_on(kind, central_flags, central_env, |_| ()).0
    }

    /// With `prepare` run on the central's data directory before anything is written there
    /// (to mount a disk of its own on it, say); returns what `prepare` returned too.
    pub fn start_on<T>(
        kind: BrokerKind,
        central_flags: &[&str],
        central_env: &[(&str, &str)],
        prepare: impl FnOnce(&Path) -> T,
    ) -> (Network, T) {
        let mut dir = tempfile::tempdir().unwrap();
        // EVCHARGE_TEST_KEEP=1 keeps every log and database of the run, to look at after.
        if std::env::var_os("EVCHARGE_TEST_KEEP").is_some() {
            dir.disable_cleanup(true);
            eprintln!("keeping {}", dir.path().display());
        }
        let broker = Broker::start(kind, dir.path());
        let data = dir.path().join("central-data");
        std::fs::create_dir_all(&data).unwrap();
        let prepared = prepare(&data);
        let token = prepare_operator(&data);
        let mut net = Network {
            broker,
            token,
            central: None,
            // Chosen by the first central, which binds port 0 ([`Network::start_central`]).
            central_tcp: 0,
            http: 0,
            other_centrals: Vec::new(),
            cps: Vec::new(),
            registered: Default::default(),
            drivers: Default::default(),
            started: 0,
            central_flags: central_flags.iter().map(|s| s.to_string()).collect(),
            central_env: tansu_session(kind)
                .iter()
                .chain(central_env)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dir,
        };
        net.start_central();
        (net, prepared)
    }

    pub(super) fn next_name(&mut self, base: &str) -> String {
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
        let mut env = FAST_ENV.to_vec();
        let central_env = self.central_env.clone();
        env.extend(central_env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let (central, addresses) = start_announcing(
            |_| {
                let name = self.next_name("central");
                Proc::spawn(&dir, &name, evcharge(), &args, &env)
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
        // Alone in its group, it is given every partition and runs every CP: until then a
        // monitor is told ELSEWHERE (and tries again), which tests of single links need not.
        if self.other_centrals.is_empty() {
            let central = self.central.as_ref().unwrap();
            wait_for("the central to run the CPs", DEADLINE, || {
                central.stderr_text().contains(RUNS_CPS).then_some(())
            });
        }
    }

    pub fn kill_central(&mut self) {
        if let Some(mut c) = self.central.take() {
            c.kill();
        }
    }

    /// What a monitor is given as `--central`: every central's port for monitors.
    pub(super) fn monitor_centrals(&self) -> String {
        std::iter::once(self.central_tcp)
            .chain(self.other_centrals.iter().copied())
            .map(|port| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
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

    /// Registers `id` at `price` as an operator would — through the API when a central
    /// runs, with `evcharge cp-register` on its database when none does — unless it is
    /// registered already (at another price: the tariff is changed). Returns the file that
    /// holds its secret.
    pub fn register(&mut self, id: &str, price: f64) -> String {
        if let Some((file, registered_at)) = self.registered.get(id).cloned() {
            if registered_at != price {
                let (status, body) = self.send(
                    "PATCH",
                    &format!("/api/cps/{id}"),
                    Some(serde_json::json!({ "price_eur_kwh": price })),
                );
                assert_eq!(status, 200, "cannot change the tariff of {id}: {body}");
                self.registered.insert(id.into(), (file.clone(), price));
            }
            return file;
        }
        let file = self.dir.path().join(format!("{id}.secret"));
        let location = format!("Street of {id}");
        if self.central.is_some() {
            let (status, body) = self.send(
                "POST",
                "/api/cps",
                Some(serde_json::json!({
                    "id": id, "location": location, "price_eur_kwh": price
                })),
            );
            assert_eq!(status, 201, "cannot register {id}: {body}");
            std::fs::write(&file, body["secret"].as_str().unwrap()).unwrap();
        } else {
            let registered = register_offline(&self.dir.path().join("central-data"), id, price);
            assert_eq!(Path::new(&registered), file);
        }
        let file = file.display().to_string();
        self.registered.insert(id.into(), (file.clone(), price));
        file
    }

    /// The file holding the secret of CP `id`, registered now (at the default tariff) if
    /// it was not yet.
    pub fn cp_secret(&mut self, id: &str) -> String {
        match self.registered.get(id) {
            Some((file, _)) => file.clone(),
            None => self.register(id, DEFAULT_PRICE),
        }
    }

    /// Registers driver `id` as an operator would — through the API when a central runs,
    /// with `evcharge driver-register` on its database when none does — unless it is
    /// registered already. Returns the file that holds its secret.
    pub fn register_driver(&mut self, id: &str) -> String {
        if let Some(file) = self.drivers.get(id) {
            return file.clone();
        }
        let file = if self.central.is_some() {
            let file = self.dir.path().join(format!("driver-{id}.secret"));
            let (status, body) = self.send(
                "POST",
                "/api/drivers",
                Some(serde_json::json!({ "id": id })),
            );
            assert_eq!(status, 201, "cannot register driver {id}: {body}");
            std::fs::write(&file, body["secret"].as_str().unwrap()).unwrap();
            file.display().to_string()
        } else {
            register_driver_offline(&self.dir.path().join("central-data"), id)
        };
        self.drivers.insert(id.into(), file.clone());
        file
    }

    /// The arguments of `evcharge cp` for `id`, its engine's data in `data`.
    fn cp_args(&mut self, id: &str, price: f64, data: &str) -> Vec<String> {
        let secret_file = self.register(id, price);
        strings(&[
            "--kafka",
            &self.broker.bootstrap,
            "cp",
            "--id",
            id,
            "--central",
            &self.monitor_centrals(),
            "--secret-file",
            &secret_file,
            "--data",
            data,
        ])
    }

    /// Starts `evcharge cp` for `id` whose monitor knows only the central whose port for
    /// monitors is `port`; returns its index in `cps`.
    pub fn start_cp_linked_to(&mut self, id: &str, port: u16, extra: &[&str]) -> usize {
        let data = self.engine_data(id);
        let mut args = self.cp_args(id, 0.30, &data);
        let at = args.iter().position(|a| a == "--central").unwrap() + 1;
        args[at] = format!("127.0.0.1:{port}");
        self.start_part(id, args, extra)
    }

    /// Starts `evcharge cp` for `id`; returns its index in `cps`.
    pub fn start_cp(&mut self, id: &str, price: f64, extra: &[&str]) -> usize {
        let data = self.engine_data(id);
        let args = self.cp_args(id, price, &data);
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
        let secret_file = self.cp_secret(id);
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
            "--secret-file",
            &secret_file,
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

    /// Starts an engine for `id` that cannot reach the bus (nothing listens at its broker
    /// address): it answers its monitor's health checks, but the central never hears it.
    pub fn start_engine_cut_off(&mut self, id: &str) -> usize {
        let secret_file = self.cp_secret(id);
        let data = self.engine_data(id);
        let nowhere = format!("127.0.0.1:{}", free_port());
        let args = strings(&[
            "--kafka",
            &nowhere,
            "engine",
            "--id",
            id,
            "--listen",
            "127.0.0.1:0",
            "--data",
            &data,
            "--secret-file",
            &secret_file,
        ]);
        self.start_part(&format!("engine-{id}"), args, &[])
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
        let secret_file = self.register(id, price);
        let args = strings(&[
            "monitor",
            "--id",
            id,
            "--engine",
            &format!("127.0.0.1:{engine_port}"),
            "--central",
            &self.monitor_centrals(),
            "--secret-file",
            &secret_file,
        ]);
        self.start_part(&format!("monitor-{id}"), args, extra)
    }

    /// Starts a driver printing JSON lines.
    pub fn start_driver(&mut self, id: &str, plan: &[&str]) -> Proc {
        let name = self.next_name(id);
        let secret_file = self.register_driver(id);
        let mut args: Vec<String> = vec![
            "--kafka".into(),
            self.broker.bootstrap.clone(),
            "driver".into(),
            "--id".into(),
            id.into(),
            "--json".into(),
            "--secret-file".into(),
            secret_file,
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
        self.send("POST", path, None)
    }

    /// Any request as the operator, with `body` as JSON when given; the status code and
    /// the JSON body.
    pub fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let request = ureq::request(method, &self.url(path)).set("Authorization", &self.bearer());
        let answer = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        match answer {
            Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
            Err(e) => panic!("{method} {path}: {e}"),
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

    /// The audit log's `what` lines, newest first (`GET /api/audit`).
    pub fn audit(&self) -> Vec<Value> {
        self.get("/api/audit")
            .as_array()
            .cloned()
            .unwrap_or_default()
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

/// Waits until the process has printed a JSON line that `matches`.
pub fn wait_line(proc: &Proc, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
    wait_for(what, DEADLINE, || {
        proc.json_lines().into_iter().find(|l| matches(l))
    })
}

/// tansu 0.6 under a loaded machine (four end-to-end tests on two cores) takes a central
/// with the default 6 s group session for gone, revokes its partitions and then assigns it
/// none, every session, for good (seen in full runs); with 30 s it keeps its member.
/// DEPLOY.md says so for tansu users.
fn tansu_session(kind: BrokerKind) -> &'static [(&'static str, &'static str)] {
    match kind {
        BrokerKind::Tansu | BrokerKind::TansuDurable => {
            &[("EVCHARGE_CENTRAL__SESSION_TIMEOUT", "30s")]
        }
        _ => &[],
    }
}

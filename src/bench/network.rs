//! The processes of one network size — a central, one or more `fleet cps` and one
//! `fleet drivers`, each a child of this binary — and what the central says about them.

use super::cpu_quota::CpuQuota;
use super::prometheus::Metrics;
use crate::harness::{add_operator, free_ports, wait_until, Child, Endpoint, Program, StopOnDrop};
use std::path::Path;
use std::time::Duration;

const OPERATOR: &str = "bench";
const OPERATOR_PASSWORD: &str = "bench-password";

/// How long a child has to leave after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The broker every process of a run uses, and what every process needs to be told.
#[derive(Clone)]
pub struct Kafka {
    pub bootstrap: String,
    /// An environment variable for every process started.
    pub env: Option<(&'static str, &'static str)>,
    /// The token that opens the control endpoint of every process of the run (the
    /// fleets'), made for the run and given to each in its environment.
    pub control_token: String,
}

impl Kafka {
    /// Starts `evcharge <role_args>` on this broker, its output in `log`. It leaves with
    /// this process, and is asked with SIGTERM when dropped, to leave as in production.
    pub(super) fn spawn(&self, role_args: &[&str], log: &Path) -> anyhow::Result<Child> {
        self.spawn_with(role_args, log, &[])
    }

    /// [`Kafka::spawn`], with more environment variables for this process.
    pub(super) fn spawn_with(
        &self,
        role_args: &[&str],
        log: &Path,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Child> {
        Program::this_binary()?
            .named(role_args[..2.min(role_args.len())].join(" "))
            .envs(self.env)
            .envs(env.iter().copied())
            .env("EVCHARGE_CONTROL__TOKEN", &self.control_token)
            .arg("--kafka")
            .arg(&self.bootstrap)
            .args(role_args)
            .exit_with_parent()
            .stop_on_drop(StopOnDrop::Terminate { grace: STOP_GRACE })
            .spawn_to_log(log)
    }
}

/// The processes of one run; each is stopped when dropped, the central first.
pub struct Network {
    pub central: Child,
    /// The first central's CPU limit (`--central-cpu`), if any.
    _central_quota: Option<CpuQuota>,
    /// The other centrals (`--centrals`), which the failover phase kills and starts again.
    pub others: Vec<OtherCentral>,
    /// One or more `fleet cps` processes, as many as the open-files limit needs.
    pub fleets: Vec<FleetShard>,
    pub drivers: Option<Child>,
    /// The central's API, with the operator's token.
    pub api: Endpoint,
    pub drivers_control: Endpoint,
}

/// A central beside the first, and how to start it again.
pub struct OtherCentral {
    pub instance: String,
    pub process: Option<Child>,
    /// Its API, with the operator's token (accounts are the network's, not an instance's).
    pub api: Endpoint,
    quota: Option<CpuQuota>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: std::path::PathBuf,
    kafka: Kafka,
}

impl OtherCentral {
    /// Starts it (again), over the same database.
    pub fn start(&mut self) -> anyhow::Result<()> {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let process = self.kafka.spawn_with(&args, &self.log, &env)?;
        if let Some(quota) = &self.quota {
            quota.hold(&process)?;
        }
        self.process = Some(process);
        Ok(())
    }

    /// SIGKILL: no clean shutdown.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }
}

/// One `fleet cps` process: CPs `first` to `first + count - 1`.
pub struct FleetShard {
    pub process: Child,
    pub control: Endpoint,
    pub first: u32,
    pub count: u32,
}

/// CPs one fleet process can hold: each takes three sockets (the monitor's two links and
/// the engine's end of one), and a process may open only so many.
fn cps_per_process() -> u32 {
    let limit = rlimit::Resource::NOFILE
        .get()
        .map_or(1024, |(_, hard)| hard);
    (limit.saturating_sub(1024) / 3).clamp(1, u64::from(u32::MAX)) as u32
}

/// What a run's network is made of.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// CPs, and as many drivers.
    pub cps: u32,
    pub centrals: u32,
    /// The percent of one core each central may use, if limited.
    pub central_cpu: Option<u32>,
}

impl Network {
    /// Starts a network of `shape`, its data and logs in `dir`, and waits until every CP is
    /// available and the drivers have joined.
    pub fn start(kafka: &Kafka, shape: Shape, dir: &Path) -> anyhow::Result<Network> {
        let cps = shape.cps;
        let mut net = Network::start_central_and_fleets(kafka, shape, dir)?;
        wait_until(
            "every CP to be available at the central",
            Duration::from_secs(60) + Duration::from_millis(20 * u64::from(cps)),
            || Ok(net.cps_in("available")? == u64::from(cps)),
        )?;
        // Chosen now, not with the others: by the time every CP is up, their links hold
        // tens of thousands of ephemeral ports, and one chosen earlier may be taken.
        let [control_port] = free_ports()?;
        net.drivers_control = Endpoint::new(format!("http://127.0.0.1:{control_port}"))
            .with_token(&kafka.control_token);
        let control = net.drivers_control.url("");
        let drivers = kafka.spawn(
            &[
                "fleet",
                "drivers",
                "--count",
                &cps.to_string(),
                "--secrets",
                &dir.join("driver-secrets").display().to_string(),
                "--control",
                control.trim_start_matches("http://"),
            ],
            &dir.join("drivers.log"),
        )?;
        net.drivers = Some(drivers);
        wait_until("the drivers to join", Duration::from_secs(60), || {
            let status: serde_json::Value = net.drivers_control.get_json("/fleet/status")?;
            Ok(status["consuming"].as_bool() == Some(true))
        })?;
        Ok(net)
    }

    fn start_central_and_fleets(
        kafka: &Kafka,
        shape: Shape,
        dir: &Path,
    ) -> anyhow::Result<Network> {
        let Shape {
            cps,
            centrals,
            central_cpu,
        } = shape;
        let quota = |instance: &str| {
            central_cpu
                .map(|percent| {
                    let name = format!("evcharge-bench-{}-{instance}", std::process::id());
                    CpuQuota::new(&name, percent)
                })
                .transpose()
        };
        let [central_tcp, central_http, drivers_control] = free_ports()?;
        let data = dir.join("central");
        let data_arg = data.display().to_string();
        let token = add_operator(
            &crate::harness::this_binary()?,
            &data,
            OPERATOR,
            OPERATOR_PASSWORD,
            "bench",
        )?;
        // For a person looking at the central during the run (GET /api/metrics).
        crate::accounts::secret_file::write(&dir.join("api-token"), &token)?;
        // Registered like any CP, with the real command, before the central starts.
        let secrets = dir.join("cp-secrets");
        crate::harness::register_cps(
            &crate::harness::this_binary()?,
            &data,
            "CP",
            Some(cps),
            ("Bench", 0.30),
            &secrets,
        )?;
        crate::harness::register_drivers(
            &crate::harness::this_binary()?,
            &data,
            "D",
            Some(cps),
            &dir.join("driver-secrets"),
        )?;
        let central_tcp = format!("127.0.0.1:{central_tcp}");
        let links = (cps + 1024).to_string();
        let cluster_key = data.join("cluster-key");
        crate::accounts::cluster_key::load_or_create(&cluster_key)?;
        let cluster_key = cluster_key.display().to_string();
        let central = kafka.spawn_with(
            &[
                "central",
                "--cluster-key-file",
                &cluster_key,
                "--listen",
                &central_tcp,
                "--http",
                &format!("127.0.0.1:{central_http}"),
                "--data",
                &data_arg,
            ],
            &dir.join("central.log"),
            // Every fleet's monitors come from this one address.
            &[
                ("EVCHARGE_CENTRAL__MAX_LINKS", &links),
                ("EVCHARGE_CENTRAL__MAX_LINKS_PER_ADDRESS", &links),
            ],
        )?;
        let central_quota = quota("central")?;
        if let Some(quota) = &central_quota {
            quota.hold(&central)?;
        }
        let api = Endpoint::new(format!("http://127.0.0.1:{central_http}")).with_token(&token);
        wait_until("the central's API", Duration::from_secs(60), || {
            Ok(api.request("GET", "/api/health").call().is_ok())
        })?;
        // The others, each its own instance, database and ports; the fleets' monitors are
        // given every central from the start (one not started yet is skipped).
        let mut others = Vec::new();
        let mut monitor_centrals = vec![central_tcp];
        for k in 2..=centrals {
            let [tcp, http] = free_ports()?;
            let instance = format!("central-{k}");
            let args: Vec<String> = [
                "central",
                "--instance",
                &instance,
                "--cluster-key-file",
                &cluster_key,
                "--listen",
                &format!("127.0.0.1:{tcp}"),
                "--http",
                &format!("127.0.0.1:{http}"),
                "--data",
                &dir.join(&instance).display().to_string(),
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let other = OtherCentral {
                log: dir.join(format!("{instance}.log")),
                api: Endpoint::new(format!("http://127.0.0.1:{http}")).with_token(&token),
                quota: quota(&instance)?,
                instance,
                process: None,
                args,
                env: vec![
                    ("EVCHARGE_CENTRAL__MAX_LINKS".into(), links.clone()),
                    (
                        "EVCHARGE_CENTRAL__MAX_LINKS_PER_ADDRESS".into(),
                        links.clone(),
                    ),
                ],
                kafka: kafka.clone(),
            };
            // Started by the failover phase: until then the first central runs every CP, as
            // in a network of one, and the other phases measure it alone.
            others.push(other);
            monitor_centrals.push(format!("127.0.0.1:{tcp}"));
        }
        let monitor_centrals = monitor_centrals.join(",");
        let per_process = cps_per_process();
        let mut fleets = Vec::new();
        let mut first = 1;
        while first <= cps {
            let count = per_process.min(cps - first + 1);
            let [control] = free_ports()?;
            let control = format!("127.0.0.1:{control}");
            let shard = fleets.len();
            let process = kafka.spawn(
                &[
                    "fleet",
                    "cps",
                    "--first",
                    &first.to_string(),
                    "--count",
                    &count.to_string(),
                    "--central",
                    &monitor_centrals,
                    "--secrets",
                    &secrets.display().to_string(),
                    "--plug-in-delay",
                    "100ms",
                    "--supply-duration",
                    "0s",
                    "--data",
                    &dir.join(format!("fleet-{shard}")).display().to_string(),
                    "--control",
                    &control,
                ],
                &dir.join(format!("fleet-{shard}.log")),
            )?;
            fleets.push(FleetShard {
                process,
                control: Endpoint::new(format!("http://{control}"))
                    .with_token(&kafka.control_token),
                first,
                count,
            });
            first += count;
        }
        if fleets.len() > 1 {
            println!(
                "{} fleet processes of at most {per_process} CPs each (the open-files limit)",
                fleets.len()
            );
        }
        Ok(Network {
            central,
            _central_quota: central_quota,
            others,
            fleets,
            drivers: None,
            api,
            drivers_control: Endpoint::new(format!("http://127.0.0.1:{drivers_control}"))
                .with_token(&kafka.control_token),
        })
    }

    pub fn metrics(&self) -> anyhow::Result<Metrics> {
        Ok(Metrics::parse(&self.api.get_text("/api/metrics")?))
    }

    pub fn cps_in(&self, state: &str) -> anyhow::Result<u64> {
        Ok(self
            .metrics()?
            .value(&format!("evcharge_cps{{state=\"{state}\"}}"))
            .unwrap_or(0.0) as u64)
    }

    /// The fleet process that runs CP number `index`.
    pub fn shard_of(&self, index: u32) -> Option<&FleetShard> {
        self.fleets
            .iter()
            .find(|f| (f.first..f.first + f.count).contains(&index))
    }

    /// Waits until all `cps` CPs are in `state`; when they are not within `limit`, says how
    /// many are, and the run goes on measuring those: an overloaded network is a result too.
    pub fn settle(&self, state: &str, cps: u32, limit: Duration) {
        let all = u64::from(cps);
        if wait_until(&format!("every CP to be {state}"), limit, || {
            Ok(self.cps_in(state)? == all)
        })
        .is_err()
        {
            let now = self.cps_in(state).unwrap_or(0);
            println!("only {now} of {all} CPs are {state} after {limit:?}; measuring anyway");
        }
    }

    /// Lets the drivers stop their supplies before the network is stopped.
    pub fn release_drivers(&self) {
        let _ = self.drivers_control.post("/fleet/release", None);
    }
}

//! `evcharge bench`: measures a whole network at scale and prints the figures.
//!
//! For each network size it starts a broker (the embedded one unless a bootstrap is
//! configured), a real central, `evcharge fleet cps` and `evcharge fleet drivers` as
//! separate processes of this binary, then:
//! 1. authorisation: paced requests, each stopped as soon as it is authorised;
//! 2. telemetry: every CP supplying at once, one report a second each, for `--duration`;
//! 3. crash detection: engine and monitor crashes injected under that load, timed until
//!    the central shows the CP broken or disconnected (by the `since` of its state);
//!
//! and reads the central's CPU and memory from /proc throughout. Figures come from the
//! central's own metrics (`GET /api/metrics`), the driver fleet's histogram and /proc.

use crate::actors::fleet::driver_fleet::RunReport;
use crate::bus::EmbeddedBroker;
use crate::cli::BenchArgs;
use crate::configuration::{KafkaSettings, Settings};
use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Linux reports CPU time in ticks of 1/100 s (USER_HZ) on every common architecture.
const TICKS_PER_SECOND: f64 = 100.0;
const OPERATOR: &str = "bench";
const OPERATOR_PASSWORD: &str = "bench-password";

pub fn run(settings: Settings, args: BenchArgs) -> anyhow::Result<()> {
    if args.cps.is_empty() || args.cps.contains(&0) {
        bail!("--cps needs one or more network sizes above 0");
    }
    let base = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("evcharge-bench-{}", std::process::id())),
    };
    let machine = Machine::read();
    println!(
        "evcharge bench on {} ({} cores, {:.1} GiB); working directory {}",
        machine.cpu,
        machine.cores,
        machine.memory_gib,
        base.display()
    );
    let mut rows = Vec::new();
    for &cps in &args.cps {
        println!("\n== {cps} charging points ==");
        let row = measure(&settings, &args, cps, &base.join(format!("cps-{cps}")))
            .with_context(|| format!("the run with {cps} CPs failed"))?;
        print_row(&row);
        rows.push(row);
        write_json(&args.json, &machine, &args, &rows)?;
    }
    print_table(&rows);
    println!("\nfigures written to {}", args.json.display());
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&base);
    }
    Ok(())
}

/// Where the figures were taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub os: String,
}

impl Machine {
    fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown CPU".into(), |(_, name)| name.trim().to_owned());
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| kib_field(&m, "MemTotal:"))
            .map_or(0.0, |kib| kib as f64 / 1024.0 / 1024.0);
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|o| {
                o.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|n| n.trim_matches('"').to_owned())
            })
            .unwrap_or_else(|| std::env::consts::OS.into());
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib,
            os,
        }
    }
}

/// Every figure of one network size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub cps: u32,
    pub broker: String,
    pub startup_seconds: f64,
    pub auth: AuthFigures,
    pub telemetry: TelemetryFigures,
    pub crashes: CrashFigures,
    pub resources: Resources,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthFigures {
    pub rate_per_s: f64,
    #[serde(flatten)]
    pub report: RunReport,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TelemetryFigures {
    pub seconds: f64,
    /// CPs charging at the central, fewest seen during the window.
    pub charging_min: u64,
    pub reports_per_s: f64,
    /// Every record the central consumed from `cp.events` (reports, hellos, …).
    pub cp_events_per_s: f64,
    pub monitor_reports_per_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Upper bound of the slowest report's histogram bucket.
    pub max_ms_at_most: f64,
    /// Reports older than 1 s when the central applied them.
    pub later_than_1s: u64,
    /// Most records of `cp.events` not yet handled by the central, sampled every second.
    pub lag_max_messages: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CrashFigures {
    pub injected: usize,
    pub detected: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub engine_max_ms: f64,
    pub monitor_max_ms: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Resources {
    /// Central CPU, percent of one core, with every CP connected and idle.
    pub central_cpu_idle_pct: f64,
    /// Central CPU during the telemetry window.
    pub central_cpu_pct: f64,
    pub central_rss_idle_mb: f64,
    /// Most resident memory of the central seen during the telemetry window.
    pub central_rss_mb: f64,
    /// Peak resident memory of the central over the whole run (VmHWM).
    pub central_rss_peak_mb: f64,
    pub central_kb_per_cp: f64,
    /// Every `fleet cps` process together.
    pub fleet_cpu_pct: f64,
    pub drivers_cpu_pct: f64,
    /// This process: the embedded broker lives here.
    pub bench_cpu_pct: f64,
}

/// The processes of one run; each is stopped when dropped.
struct Network {
    central: Spawned,
    /// One or more `fleet cps` processes, as many as the open-files limit needs.
    fleets: Vec<FleetShard>,
    drivers: Option<Spawned>,
    api: String,
    token: String,
    drivers_control: String,
}

/// One `fleet cps` process: CPs `first` to `first + count - 1`.
struct FleetShard {
    process: Spawned,
    control: String,
    first: u32,
    count: u32,
}

/// CPs one fleet process can hold: each takes three sockets (the monitor's two links and
/// the engine's end of one), and a process may open only so many.
fn cps_per_process() -> u32 {
    let limit = rlimit::Resource::NOFILE
        .get()
        .map_or(1024, |(_, hard)| hard);
    (limit.saturating_sub(1024) / 3).clamp(1, u64::from(u32::MAX)) as u32
}

fn measure(settings: &Settings, args: &BenchArgs, cps: u32, dir: &Path) -> anyhow::Result<Row> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let embedded = settings.kafka.bootstrap == KafkaSettings::default().bootstrap;
    let broker = embedded
        .then(|| EmbeddedBroker::start(&settings.kafka))
        .transpose()?;
    let bootstrap = match &broker {
        Some(broker) => broker.bootstrap(),
        None => settings.kafka.bootstrap.clone(),
    };
    let broker_name = if embedded {
        "embedded (librdkafka mock cluster, in the bench process)".to_string()
    } else {
        bootstrap.clone()
    };
    let began = Instant::now();
    let kafka = Kafka {
        // Clients of the embedded broker need a short fetch wait (see `client_fetch_wait`).
        env: if embedded {
            crate::bus::client_fetch_wait()
        } else {
            None
        },
        bootstrap,
    };
    let mut net = start_network(&kafka, cps, dir)?;
    wait_for(
        "every CP to be available at the central",
        Duration::from_secs(60) + Duration::from_millis(20 * u64::from(cps)),
        || Ok(net.cps_in("available")? == u64::from(cps)),
    )?;
    let drivers = spawn(
        &kafka,
        &[
            "fleet",
            "drivers",
            "--count",
            &cps.to_string(),
            "--control",
            net.drivers_control.trim_start_matches("http://"),
        ],
        &dir.join("drivers.log"),
    )?;
    net.drivers = Some(drivers);
    wait_for("the drivers to join", Duration::from_secs(60), || {
        let status: serde_json::Value = get_json(&format!("{}/fleet/status", net.drivers_control))?;
        Ok(status["consuming"].as_bool() == Some(true))
    })?;
    let startup_seconds = began.elapsed().as_secs_f64();
    println!("network of {cps} CPs up in {startup_seconds:.1} s");

    let idle = Sample::take(&net)?;
    std::thread::sleep(Duration::from_secs(5));
    let idle_end = Sample::take(&net)?;
    let mut resources = Resources {
        central_cpu_idle_pct: idle.cpu_pct(&idle_end, |s| s.central),
        central_rss_idle_mb: rss_mb(net.central.pid()),
        ..Resources::default()
    };

    let auth = measure_auth(&net, args)?;
    println!(
        "authorisation: {} sent at {}/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, denied {:?}",
        auth.report.sent,
        args.auth_rate,
        auth.report.p50_ms,
        auth.report.p99_ms,
        auth.report.max_ms,
        auth.report.denied
    );
    settle(&net, "available", cps, Duration::from_secs(60));

    let telemetry = measure_telemetry(&net, args, cps, &mut resources)?;
    println!(
        "telemetry: {:.0} reports/s, p50 {:.1} ms, p99 {:.1} ms, lag at most {} records",
        telemetry.reports_per_s, telemetry.p50_ms, telemetry.p99_ms, telemetry.lag_max_messages
    );
    let crashes = measure_crashes(&net, args, cps)?;
    println!(
        "crash detection: {}/{} detected, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        crashes.detected, crashes.injected, crashes.p50_ms, crashes.p99_ms, crashes.max_ms
    );
    resources.central_rss_peak_mb = kib_of(net.central.pid(), "VmHWM:") as f64 / 1024.0;
    resources.central_kb_per_cp = resources.central_rss_mb * 1024.0 / f64::from(cps);
    let _ = post(&format!("{}/fleet/release", net.drivers_control), None);
    drop(net);
    drop(broker);
    Ok(Row {
        cps,
        broker: broker_name,
        startup_seconds,
        auth,
        telemetry,
        crashes,
        resources,
    })
}

fn start_network(kafka: &Kafka, cps: u32, dir: &Path) -> anyhow::Result<Network> {
    let [central_tcp, central_http, drivers_control] = free_ports()?;
    let data = dir.join("central");
    let data_arg = data.display().to_string();
    run_to_end(
        &[
            "operator",
            "add",
            OPERATOR,
            "--password-stdin",
            "--data",
            &data_arg,
        ],
        Some(OPERATOR_PASSWORD),
    )?;
    let token = run_to_end(
        &[
            "operator", "token", OPERATOR, "--label", "bench", "--data", &data_arg,
        ],
        None,
    )?
    .trim()
    .to_owned();
    // For a person looking at the central during the run (GET /api/metrics).
    std::fs::write(dir.join("api-token"), &token)?;
    let central_tcp = format!("127.0.0.1:{central_tcp}");
    let central = spawn(
        kafka,
        &[
            "central",
            "--listen",
            &central_tcp,
            "--http",
            &format!("127.0.0.1:{central_http}"),
            "--data",
            &data_arg,
        ],
        &dir.join("central.log"),
    )?;
    let api = format!("http://127.0.0.1:{central_http}");
    wait_for("the central's API", Duration::from_secs(60), || {
        Ok(ureq::get(&format!("{api}/api/health")).call().is_ok())
    })?;
    let per_process = cps_per_process();
    let mut fleets = Vec::new();
    let mut first = 1;
    while first <= cps {
        let count = per_process.min(cps - first + 1);
        let [control] = free_ports()?;
        let control = format!("127.0.0.1:{control}");
        let shard = fleets.len();
        let process = spawn(
            kafka,
            &[
                "fleet",
                "cps",
                "--first",
                &first.to_string(),
                "--count",
                &count.to_string(),
                "--central",
                &central_tcp,
                "--location",
                "Bench",
                "--price",
                "0.30",
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
            control: format!("http://{control}"),
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
        fleets,
        drivers: None,
        api,
        token,
        drivers_control: format!("http://127.0.0.1:{drivers_control}"),
    })
}

impl Network {
    fn metrics(&self) -> anyhow::Result<Metrics> {
        let text = ureq::get(&format!("{}/api/metrics", self.api))
            .set("Authorization", &format!("Bearer {}", self.token))
            .call()?
            .into_string()?;
        Ok(Metrics::parse(&text))
    }

    fn cps_in(&self, state: &str) -> anyhow::Result<u64> {
        Ok(self
            .metrics()?
            .value(&format!("evcharge_cps{{state=\"{state}\"}}"))
            .unwrap_or(0.0) as u64)
    }
}

fn measure_auth(net: &Network, args: &BenchArgs) -> anyhow::Result<AuthFigures> {
    let run =
        serde_json::json!({"rate": args.auth_rate, "count": args.auth_requests, "hold": false});
    post(&format!("{}/fleet/run", net.drivers_control), Some(run))?;
    let limit = Duration::from_secs_f64(args.auth_requests as f64 / args.auth_rate + 60.0);
    let mut report = RunReport::default();
    wait_for("the authorisation run to end", limit, || {
        report = get_json(&format!("{}/fleet/run", net.drivers_control))?;
        Ok(report.done)
    })?;
    Ok(AuthFigures {
        rate_per_s: args.auth_rate,
        report,
    })
}

fn measure_telemetry(
    net: &Network,
    args: &BenchArgs,
    cps: u32,
    resources: &mut Resources,
) -> anyhow::Result<TelemetryFigures> {
    // Every driver asks its CP, 1,000 a second, and keeps the supply.
    let run = serde_json::json!({"rate": 1000.0, "count": cps, "hold": true});
    post(&format!("{}/fleet/run", net.drivers_control), Some(run))?;
    settle(
        net,
        "charging",
        cps,
        Duration::from_secs(60) + Duration::from_millis(5 * u64::from(cps)),
    );
    // Let the first reports of every supply pass before measuring.
    std::thread::sleep(Duration::from_secs(3));
    let first = net.metrics()?;
    let start = Sample::take(net)?;
    let mut lag_max = 0i64;
    let mut charging_min = u64::MAX;
    let mut rss_max = 0f64;
    let window = Duration::from(args.duration);
    while start.at.elapsed() < window {
        std::thread::sleep(Duration::from_secs(1).min(window.saturating_sub(start.at.elapsed())));
        let now = net.metrics()?;
        lag_max = lag_max.max(now.sum_of("evcharge_consumer_lag_messages") as i64);
        charging_min =
            charging_min.min(now.value("evcharge_cps{state=\"charging\"}").unwrap_or(0.0) as u64);
        rss_max = rss_max.max(rss_mb(net.central.pid()));
    }
    let end = Sample::take(net)?;
    let last = net.metrics()?;
    let seconds = (end.at - start.at).as_secs_f64();
    resources.central_cpu_pct = start.cpu_pct(&end, |s| s.central);
    resources.fleet_cpu_pct = start.cpu_pct(&end, |s| s.fleet);
    resources.drivers_cpu_pct = start.cpu_pct(&end, |s| s.drivers);
    resources.bench_cpu_pct = start.cpu_pct(&end, |s| s.bench);
    resources.central_rss_mb = rss_max;
    let latency = last
        .histogram("evcharge_telemetry_latency_seconds")
        .minus(&first.histogram("evcharge_telemetry_latency_seconds"));
    let rate = |name: &str| (last.sum_of(name) - first.sum_of(name)) / seconds;
    Ok(TelemetryFigures {
        seconds,
        charging_min: if charging_min == u64::MAX {
            0
        } else {
            charging_min
        },
        reports_per_s: latency.count() / seconds,
        cp_events_per_s: rate("evcharge_cp_events_total"),
        monitor_reports_per_s: rate("evcharge_monitor_reports_total"),
        p50_ms: latency.quantile(0.50) * 1000.0,
        p99_ms: latency.quantile(0.99) * 1000.0,
        max_ms_at_most: latency.max_bound() * 1000.0,
        later_than_1s: latency.above(1.0) as u64,
        lag_max_messages: lag_max,
    })
}

/// Injects crashes a little apart, alternately engine and monitor, each on a CP of its own
/// when there are enough; each is timed by the `since` of the state the central shows, and
/// the part is started again once seen.
fn measure_crashes(net: &Network, args: &BenchArgs, cps: u32) -> anyhow::Result<CrashFigures> {
    let count = args.crashes;
    let spacing = Duration::from_millis(150);
    let mut watchers = Vec::new();
    for k in 0..count {
        let index = (k as u64 * u64::from(cps) / count.max(1) as u64) as u32 + 1;
        let cp_id = format!("CP{index:05}");
        let part = if k % 2 == 0 { "engine" } else { "monitor" };
        let Some(shard) = net
            .fleets
            .iter()
            .find(|f| (f.first..f.first + f.count).contains(&index))
        else {
            continue;
        };
        let fleet = shard.control.clone();
        let crash = post(&format!("{fleet}/fleet/crash/{cp_id}/{part}"), None);
        let at: DateTime<Utc> = match crash.and_then(|body| {
            body["at"]
                .as_str()
                .context("no crash time")?
                .parse()
                .context("a bad crash time")
        }) {
            Ok(at) => at,
            Err(e) => {
                log::warn!("cannot crash the {part} of {cp_id}: {e:#}");
                continue;
            }
        };
        let api = net.api.clone();
        let token = net.token.clone();
        watchers.push(std::thread::spawn(move || {
            let shown = if part == "engine" {
                "broken"
            } else {
                "disconnected"
            };
            let until = Instant::now() + Duration::from_secs(30);
            let net = Probe { api, token };
            let mut detected = None;
            while Instant::now() < until {
                if let Ok(view) = net.cp(&cp_id) {
                    let since = view["since"]
                        .as_str()
                        .and_then(|s| s.parse::<DateTime<Utc>>().ok());
                    if view["state"] == shown {
                        detected = since.map(|since| {
                            (since - at).num_microseconds().unwrap_or(0).max(0) as f64 / 1000.0
                        });
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = post(&format!("{fleet}/fleet/restart/{cp_id}/{part}"), None);
            (part, detected)
        }));
        std::thread::sleep(spacing);
    }
    let mut all = Vec::new();
    let mut by_part: BTreeMap<&str, f64> = BTreeMap::new();
    let injected = watchers.len();
    for watcher in watchers {
        if let Ok((part, Some(ms))) = watcher.join() {
            all.push(ms);
            let max = by_part.entry(part).or_default();
            *max = max.max(ms);
        }
    }
    all.sort_by(f64::total_cmp);
    Ok(CrashFigures {
        injected,
        detected: all.len(),
        p50_ms: nearest_rank(&all, 0.50),
        p99_ms: nearest_rank(&all, 0.99),
        max_ms: all.last().copied().unwrap_or(0.0),
        engine_max_ms: by_part.get("engine").copied().unwrap_or(0.0),
        monitor_max_ms: by_part.get("monitor").copied().unwrap_or(0.0),
    })
}

/// The central's API, for a watcher thread.
struct Probe {
    api: String,
    token: String,
}

impl Probe {
    fn cp(&self, id: &str) -> anyhow::Result<serde_json::Value> {
        Ok(ureq::get(&format!("{}/api/cps/{id}", self.api))
            .set("Authorization", &format!("Bearer {}", self.token))
            .call()?
            .into_json()?)
    }
}

fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// CPU time of every process of the network at one instant.
struct Sample {
    at: Instant,
    central: f64,
    fleet: f64,
    drivers: f64,
    bench: f64,
}

impl Sample {
    fn take(net: &Network) -> anyhow::Result<Sample> {
        Ok(Sample {
            at: Instant::now(),
            central: cpu_seconds(net.central.pid())?,
            fleet: net
                .fleets
                .iter()
                .map(|f| cpu_seconds(f.process.pid()))
                .sum::<anyhow::Result<f64>>()?,
            drivers: net
                .drivers
                .as_ref()
                .map_or(Ok(0.0), |d| cpu_seconds(d.pid()))?,
            bench: cpu_seconds(std::process::id())?,
        })
    }

    /// Percent of one core used by the process `of` picks, from this sample to `end`.
    fn cpu_pct(&self, end: &Sample, of: impl Fn(&Sample) -> f64) -> f64 {
        let wall = (end.at - self.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        (of(end) - of(self)) / wall * 100.0
    }
}

fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is gone"))?;
    // Fields after the command name, which may hold spaces: state is the first (3rd overall),
    // utime the 12th (14th), stime the 13th (15th).
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((ticks(11) + ticks(12)) / TICKS_PER_SECOND)
}

fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn kib_of(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| kib_field(&s, field))
        .unwrap_or(0)
}

fn rss_mb(pid: u32) -> f64 {
    kib_of(pid, "VmRSS:") as f64 / 1024.0
}

/// A child process of this binary, its output in a log file; stopped when dropped.
struct Spawned {
    child: Child,
    what: String,
    /// Closed when this process ends, however it ends: the child then leaves too.
    _lifeline: Option<std::process::ChildStdin>,
}

impl Spawned {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // SIGTERM first, so that each process leaves as it would in production.
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        log::warn!("{} did not stop within 10 s; killing it", self.what);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The broker every process of a run uses, and what its clients need to be told.
struct Kafka {
    bootstrap: String,
    /// An environment variable for every process started.
    env: Option<(&'static str, &'static str)>,
}

fn spawn(kafka: &Kafka, role_args: &[&str], log: &Path) -> anyhow::Result<Spawned> {
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let out = std::fs::File::create(log)
        .with_context(|| format!("cannot create the log {}", log.display()))?;
    let mut command = Command::new(exe);
    if let Some((variable, value)) = kafka.env {
        command.env(variable, value);
    }
    let mut child = command
        .arg("--kafka")
        .arg(&kafka.bootstrap)
        .args(role_args)
        .env(crate::EXIT_WITH_PARENT, "1")
        .stdin(Stdio::piped())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("cannot start {}", role_args.join(" ")))?;
    Ok(Spawned {
        _lifeline: child.stdin.take(),
        child,
        what: role_args[..2.min(role_args.len())].join(" "),
    })
}

/// Runs this binary with `args` to the end; returns what it printed.
fn run_to_end(args: &[&str], input: Option<&str>) -> anyhow::Result<String> {
    use std::io::Write;
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(mut stdin), Some(text)) = (child.stdin.take(), input) {
        writeln!(stdin, "{text}")?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "`evcharge {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    // Held together, so that the four differ; released just before the processes bind them.
    let listeners = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ports = [0u16; N];
    for (port, listener) in ports.iter_mut().zip(&listeners) {
        *port = listener.local_addr()?.port();
    }
    Ok(ports)
}

fn get_json<T: serde::de::DeserializeOwned>(url: &str) -> anyhow::Result<T> {
    Ok(ureq::get(url).call()?.into_json()?)
}

fn post(url: &str, body: Option<serde_json::Value>) -> anyhow::Result<serde_json::Value> {
    let request = ureq::post(url);
    let response = match body {
        Some(body) => request.send_json(body)?,
        None => request.call()?,
    };
    let text = response.into_string()?;
    Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
}

/// Waits until all `cps` CPs are in `state`; when they are not within `limit`, says how
/// many are, and the run goes on measuring those: an overloaded network is a result too.
fn settle(net: &Network, state: &str, cps: u32, limit: Duration) {
    let all = u64::from(cps);
    if wait_for(&format!("every CP to be {state}"), limit, || {
        Ok(net.cps_in(state)? == all)
    })
    .is_err()
    {
        let now = net.cps_in(state).unwrap_or(0);
        println!("only {now} of {all} CPs are {state} after {limit:?}; measuring anyway");
    }
}

/// Polls `ready` every 200 ms until it holds; an error from it counts as "not yet".
fn wait_for(
    what: &str,
    limit: Duration,
    mut ready: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let until = Instant::now() + limit;
    let mut last_error = None;
    loop {
        match ready() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= until {
            match last_error {
                Some(e) => bail!("gave up waiting for {what} after {limit:?}: {e:#}"),
                None => bail!("gave up waiting for {what} after {limit:?}"),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The central's metrics, as Prometheus text.
struct Metrics {
    samples: Vec<(String, f64)>,
}

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect();
        Metrics { samples }
    }

    fn value(&self, series: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|(name, _)| name == series)
            .map(|(_, v)| *v)
    }

    /// The sum over every series of the metric `name`, whatever its labels.
    fn sum_of(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(series, _)| series == name || series.starts_with(&format!("{name}{{")))
            .map(|(_, v)| v)
            .sum()
    }

    fn histogram(&self, name: &str) -> Buckets {
        let prefix = format!("{name}_bucket{{le=\"");
        let bounds = self
            .samples
            .iter()
            .filter_map(|(series, count)| {
                let le = series.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((bound, *count))
            })
            .collect();
        Buckets { cumulative: bounds }
    }
}

/// A Prometheus histogram: cumulative counts by upper bound.
#[derive(Debug, Clone, PartialEq)]
struct Buckets {
    cumulative: Vec<(f64, f64)>,
}

impl Buckets {
    /// The counts of `self` that came after `earlier`.
    fn minus(&self, earlier: &Buckets) -> Buckets {
        let cumulative = self
            .cumulative
            .iter()
            .map(|(bound, count)| {
                let before = earlier
                    .cumulative
                    .iter()
                    .find(|(b, _)| b == bound)
                    .map_or(0.0, |(_, c)| *c);
                (*bound, count - before)
            })
            .collect();
        Buckets { cumulative }
    }

    fn count(&self) -> f64 {
        self.cumulative.last().map_or(0.0, |(_, c)| *c)
    }

    /// The `q` quantile, interpolated within its bucket as Prometheus does.
    fn quantile(&self, q: f64) -> f64 {
        let total = self.count();
        if total <= 0.0 {
            return 0.0;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(bound, count) in &self.cumulative {
            if count >= rank {
                if bound.is_infinite() {
                    return lower.0;
                }
                let share = (rank - lower.1) / (count - lower.1).max(f64::MIN_POSITIVE);
                return lower.0 + (bound - lower.0) * share;
            }
            lower = (bound, count);
        }
        lower.0
    }

    /// The upper bound of the highest bucket anything fell in.
    fn max_bound(&self) -> f64 {
        let total = self.count();
        self.cumulative
            .iter()
            .find(|(_, count)| *count >= total)
            .map_or(0.0, |(bound, _)| *bound)
    }

    /// How many fell above `bound` (a bucket bound).
    fn above(&self, bound: f64) -> f64 {
        let within = self
            .cumulative
            .iter()
            .find(|(b, _)| *b >= bound)
            .map_or(0.0, |(_, c)| *c);
        self.count() - within
    }
}

fn print_row(row: &Row) {
    let r = &row.resources;
    println!(
        "resources: central {:.0}% CPU idle, {:.0}% under telemetry; {:.0} MB resident ({:.1} KB per CP, peak {:.0} MB); fleet {:.0}%, drivers {:.0}%, bench+broker {:.0}%",
        r.central_cpu_idle_pct,
        r.central_cpu_pct,
        r.central_rss_mb,
        r.central_kb_per_cp,
        r.central_rss_peak_mb,
        r.fleet_cpu_pct,
        r.drivers_cpu_pct,
        r.bench_cpu_pct
    );
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| CPs | reports/s | telemetry p50 / p99 ms | slowest report ≤ ms | reports > 1 s | lag max (records) | auth p50 / p99 / max ms | crash detection p50 / p99 / max ms | central CPU | central RSS MB | KB/CP |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let (t, a, c, r) = (
            &row.telemetry,
            &row.auth.report,
            &row.crashes,
            &row.resources,
        );
        println!(
            "| {} | {:.0} | {:.1} / {:.1} | {:.0} | {} | {} | {:.1} / {:.1} / {:.1} | {:.0} / {:.0} / {:.0} | {:.0}% | {:.0} | {:.1} |",
            row.cps,
            t.reports_per_s,
            t.p50_ms,
            t.p99_ms,
            t.max_ms_at_most,
            t.later_than_1s,
            t.lag_max_messages,
            a.p50_ms,
            a.p99_ms,
            a.max_ms,
            c.p50_ms,
            c.p99_ms,
            c.max_ms,
            r.central_cpu_pct,
            r.central_rss_mb,
            r.central_kb_per_cp
        );
    }
}

fn write_json(
    path: &PathBuf,
    machine: &Machine,
    args: &BenchArgs,
    rows: &[Row],
) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "machine": machine,
        "settings": {
            "duration_s": Duration::from(args.duration).as_secs_f64(),
            "auth_rate_per_s": args.auth_rate,
            "auth_requests": args.auth_requests,
            "crashes": args.crashes,
        },
        "runs": rows,
    });
    std::fs::write(path, serde_json::to_vec_pretty(&body)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\n\
        h_bucket{le=\"0.01\"} 50\nh_bucket{le=\"0.1\"} 90\nh_bucket{le=\"1\"} 100\nh_bucket{le=\"+Inf\"} 100\n\
        h_count 100\nlag{topic=\"a\"} 3\nlag{topic=\"b\"} 4\n";

    #[test]
    fn quantiles_come_from_the_buckets() {
        let metrics = Metrics::parse(TEXT);
        let h = metrics.histogram("h");
        assert_eq!(h.count(), 100.0);
        assert!((h.quantile(0.5) - 0.01).abs() < 1e-9);
        assert!((h.quantile(0.7) - 0.055).abs() < 1e-9);
        assert_eq!(h.max_bound(), 1.0);
        assert_eq!(h.above(0.1), 10.0);
        assert_eq!(metrics.sum_of("lag"), 7.0);
        let earlier = Metrics::parse("h_bucket{le=\"0.01\"} 50\nh_bucket{le=\"0.1\"} 50\nh_bucket{le=\"1\"} 50\nh_bucket{le=\"+Inf\"} 50\n");
        let window = h.minus(&earlier.histogram("h"));
        assert_eq!(window.count(), 50.0);
        assert_eq!(window.max_bound(), 1.0);
        assert!((window.quantile(0.8) - 0.1).abs() < 1e-9);
    }

    #[test]
    fn nearest_rank_picks_a_measured_value() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&sorted, 0.99), 99.0);
        assert_eq!(nearest_rank(&sorted, 0.5), 50.0);
        assert_eq!(nearest_rank(&[], 0.5), 0.0);
    }
}

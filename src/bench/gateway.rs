//! The gateway phase of `evcharge bench --ocpp-chargers N`: one `evcharge gateway` holding
//! N OCPP 1.6J charge points (`evcharge fleet ocpp`, each on its own WebSocket), a real
//! central behind it and `evcharge fleet drivers` asking for supplies. It measures:
//! - connections: how many the gateway holds, and how long they took to join;
//! - memory per connection: the gateway's resident memory with every charger connected and
//!   idle, less what it had before the first, over N;
//! - remote starts: paced drivers' requests, each timed until the driver is authorised —
//!   central, `cp.commands`, gateway, RemoteStartTransaction, the charger's Accepted and
//!   back, the whole round trip a driver waits for;
//! - meter values: every charger supplying, MeterValues every `--meter-interval`, counted
//!   where the chargers get their CALLRESULTs, with the gateway's CPU over the window.

use super::network::Kafka;
use super::sampling::{peak_rss_mb, rss_mb};
use crate::actors::fleet::driver_fleet::RunReport;
use crate::actors::fleet::ocpp_fleet::OcppFleetStatus;
use crate::cli::BenchArgs;
use crate::harness::{add_operator, free_ports, wait_until, Child, Endpoint};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// Sockets the gateway holds per charger: its WebSocket and its monitor link to the central.
pub const SOCKETS_PER_CHARGER: u64 = 2;

/// What one gateway run measured.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayFigures {
    pub chargers: u32,
    pub connected: u64,
    pub connect_seconds: f64,
    pub gateway_rss_before_mb: f64,
    pub gateway_rss_idle_mb: f64,
    pub kb_per_connection_idle: f64,
    pub remote_start: RunReport,
    pub meter_interval_s: f64,
    pub supplying: u64,
    pub meter_values_per_s: f64,
    pub meter_answer_mean_ms: f64,
    pub call_errors: u64,
    pub gateway_cpu_pct: f64,
    pub gateway_rss_peak_mb: f64,
    pub central_rss_mb: f64,
}

/// The processes of a gateway run.
/// Stopped as dropped: the fleets first, then the gateway, then the central.
struct GatewayNetwork {
    chargers: Option<Child>,
    drivers: Option<Child>,
    gateway: Child,
    central: Child,
    /// Where the chargers connect: ws://host:port/ocpp.
    gateway_url: String,
    api: Endpoint,
    chargers_control: Endpoint,
    drivers_control: Endpoint,
}

impl GatewayNetwork {
    fn cps_in(&self, state: &str) -> anyhow::Result<u64> {
        let metrics = super::prometheus::Metrics::parse(&self.api.get_text("/api/metrics")?);
        Ok(metrics
            .value(&format!("evcharge_cps{{state=\"{state}\"}}"))
            .unwrap_or(0.0) as u64)
    }

    fn fleet(&self) -> anyhow::Result<OcppFleetStatus> {
        self.chargers_control.get_json("/fleet/status")
    }

    /// Waits until `count` CPs are `state`; says how many are if not, and goes on.
    fn settle(&self, state: &str, count: u32, limit: Duration) {
        let wanted = u64::from(count);
        if wait_until(&format!("every charger to be {state}"), limit, || {
            Ok(self.cps_in(state)? == wanted)
        })
        .is_err()
        {
            let now = self.cps_in(state).unwrap_or(0);
            println!(
                "only {now} of {wanted} chargers are {state} after {limit:?}; measuring anyway"
            );
        }
    }
}

/// The most chargers one gateway can hold under this process's open-files limit.
pub fn chargers_per_gateway() -> u32 {
    let limit = rlimit::Resource::NOFILE
        .get()
        .map_or(1024, |(_, hard)| hard);
    (limit.saturating_sub(1024) / SOCKETS_PER_CHARGER).clamp(1, u64::from(u32::MAX)) as u32
}

/// Measures one gateway with `chargers` OCPP charge points.
pub fn measure_gateway(
    kafka: &Kafka,
    args: &BenchArgs,
    chargers: u32,
    dir: &Path,
) -> anyhow::Result<GatewayFigures> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let net = start(kafka, chargers, dir)?;
    let gateway_rss_before_mb = rss_mb(&net.gateway);
    let began = Instant::now();
    let mut net = net;
    net.chargers = Some(start_chargers(kafka, &net, args, chargers, dir)?);
    wait_until("the chargers' fleet", Duration::from_secs(60), || {
        Ok(net.fleet().is_ok())
    })?;
    // Remote starts first, each stopped as soon as authorised: no vehicle plugs in.
    net.chargers_control.post("/fleet/plug-in/off", None)?;
    let joining = Duration::from_secs(60) + Duration::from_millis(20 * u64::from(chargers));
    net.settle("available", chargers, joining);
    let connect_seconds = began.elapsed().as_secs_f64();
    let connected = net.fleet()?.connected;
    println!(
        "{connected} of {chargers} chargers connected and available in {connect_seconds:.1} s"
    );
    // Idle: heartbeats and the monitor links' reports only.
    std::thread::sleep(Duration::from_secs(10));
    let gateway_rss_idle_mb = rss_mb(&net.gateway);
    let kb_per_connection_idle =
        (gateway_rss_idle_mb - gateway_rss_before_mb) * 1024.0 / connected.max(1) as f64;
    println!(
        "gateway memory: {gateway_rss_before_mb:.1} MB before, {gateway_rss_idle_mb:.1} MB with {connected} idle: {kb_per_connection_idle:.1} KB a connection"
    );

    start_drivers(kafka, &mut net, chargers, dir)?;
    let remote_start = super::phases::paced_requests(&net.drivers_control, args)?;
    println!(
        "remote start (driver's request to authorised, through the charger): {} at {}/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        remote_start.sent, args.auth_rate, remote_start.p50_ms, remote_start.p99_ms, remote_start.max_ms
    );
    net.settle("available", chargers, Duration::from_secs(60));

    // Every charger supplying, sending MeterValues.
    net.chargers_control.post("/fleet/plug-in/on", None)?;
    let run = serde_json::json!({"rate": 500.0, "count": chargers, "hold": true});
    net.drivers_control.post("/fleet/run", Some(run))?;
    net.settle(
        "charging",
        chargers,
        Duration::from_secs(60) + Duration::from_millis(5 * u64::from(chargers)),
    );
    let interval = Duration::from(args.meter_interval);
    // A whole interval first, so that every supply has sent meter values before measuring.
    std::thread::sleep(interval + Duration::from_secs(1));
    let window = Duration::from(args.duration).max(3 * interval);
    let first = net.fleet()?;
    let cpu_first = super::sampling::cpu_seconds_of(&net.gateway)?;
    let at = Instant::now();
    std::thread::sleep(window);
    let last = net.fleet()?;
    let seconds = at.elapsed().as_secs_f64();
    let gateway_cpu_pct =
        (super::sampling::cpu_seconds_of(&net.gateway)? - cpu_first) / seconds * 100.0;
    let supplying = net.cps_in("charging")?;
    let answered = last.meter_values_answered - first.meter_values_answered;
    let figures = GatewayFigures {
        chargers,
        connected,
        connect_seconds,
        gateway_rss_before_mb,
        gateway_rss_idle_mb,
        kb_per_connection_idle,
        remote_start,
        meter_interval_s: interval.as_secs_f64(),
        supplying,
        meter_values_per_s: answered as f64 / seconds,
        meter_answer_mean_ms: last.meter_answer_mean_ms,
        call_errors: last.call_errors,
        gateway_cpu_pct,
        gateway_rss_peak_mb: peak_rss_mb(&net.gateway),
        central_rss_mb: rss_mb(&net.central),
    };
    println!(
        "meter values: {supplying} supplying, {:.0} MeterValues/s answered (every {:.0} s each), mean answer {:.1} ms, {} CALLERRORs; gateway {:.0}% CPU, peak {:.0} MB",
        figures.meter_values_per_s,
        figures.meter_interval_s,
        figures.meter_answer_mean_ms,
        figures.call_errors,
        figures.gateway_cpu_pct,
        figures.gateway_rss_peak_mb
    );
    let _ = net.drivers_control.post("/fleet/release", None);
    Ok(figures)
}

/// The central (with every charger and driver registered) and the gateway.
fn start(kafka: &Kafka, chargers: u32, dir: &Path) -> anyhow::Result<GatewayNetwork> {
    let evcharge = crate::harness::this_binary()?;
    let data = dir.join("central");
    let token = add_operator(&evcharge, &data, "bench", "bench-password", "bench")?;
    crate::harness::register_cps(
        &evcharge,
        &data,
        "CP",
        Some(chargers),
        ("Bench OCPP", 0.30),
        &dir.join("cp-secrets"),
    )?;
    crate::harness::register_drivers(
        &evcharge,
        &data,
        "D",
        Some(chargers),
        &dir.join("driver-secrets"),
    )?;
    let [tcp, http, gateway, chargers_control, drivers_control] = free_ports()?;
    let links = (chargers + 1024).to_string();
    let central = kafka.spawn_with(
        &[
            "central",
            "--listen",
            &format!("127.0.0.1:{tcp}"),
            "--http",
            &format!("127.0.0.1:{http}"),
            "--data",
            &data.display().to_string(),
        ],
        &dir.join("central.log"),
        // Every charger's monitor link comes from the gateway's one address.
        &[
            ("EVCHARGE_CENTRAL__MAX_LINKS", &links),
            ("EVCHARGE_CENTRAL__MAX_LINKS_PER_ADDRESS", &links),
        ],
    )?;
    let api = Endpoint::new(format!("http://127.0.0.1:{http}")).with_token(&token);
    wait_until("the central's API", Duration::from_secs(60), || {
        Ok(api.request("GET", "/api/health").call().is_ok())
    })?;
    let gateway_address = format!("127.0.0.1:{gateway}");
    let gateway = kafka.spawn_with(
        &[
            "gateway",
            "--listen",
            &gateway_address,
            "--central",
            &format!("127.0.0.1:{tcp}"),
        ],
        &dir.join("gateway.log"),
        &[(
            "EVCHARGE_GATEWAY__MAX_CONNECTIONS",
            &(chargers + 100).to_string(),
        )],
    )?;
    wait_until("the gateway to listen", Duration::from_secs(60), || {
        Ok(std::net::TcpStream::connect(&gateway_address).is_ok())
    })?;
    let endpoint = |port: u16| {
        Endpoint::new(format!("http://127.0.0.1:{port}")).with_token(&kafka.control_token)
    };
    Ok(GatewayNetwork {
        gateway_url: format!("ws://{gateway_address}/ocpp"),
        central,
        gateway,
        chargers: None,
        drivers: None,
        api,
        chargers_control: endpoint(chargers_control),
        drivers_control: endpoint(drivers_control),
    })
}

fn start_chargers(
    kafka: &Kafka,
    net: &GatewayNetwork,
    args: &BenchArgs,
    chargers: u32,
    dir: &Path,
) -> anyhow::Result<Child> {
    let control = net.chargers_control.url("");
    kafka.spawn(
        &[
            "fleet",
            "ocpp",
            "--count",
            &chargers.to_string(),
            "--gateway",
            &net.gateway_url,
            "--secrets",
            &dir.join("cp-secrets").display().to_string(),
            "--meter-interval",
            &args.meter_interval.to_string(),
            "--control",
            control.trim_start_matches("http://").trim_end_matches('/'),
        ],
        &dir.join("chargers.log"),
    )
}

fn start_drivers(
    kafka: &Kafka,
    net: &mut GatewayNetwork,
    chargers: u32,
    dir: &Path,
) -> anyhow::Result<()> {
    let control = net.drivers_control.url("");
    net.drivers = Some(kafka.spawn(
        &[
            "fleet",
            "drivers",
            "--count",
            &chargers.to_string(),
            "--secrets",
            &dir.join("driver-secrets").display().to_string(),
            "--control",
            control.trim_start_matches("http://").trim_end_matches('/'),
        ],
        &dir.join("drivers.log"),
    )?);
    wait_until("the drivers to join", Duration::from_secs(60), || {
        let status: serde_json::Value = net.drivers_control.get_json("/fleet/status")?;
        Ok(status["consuming"].as_bool() == Some(true))
    })
}

//! Runs in `evcharge bench`: measures a whole network at scale and prints the figures.
//!
//! For each network size it starts a broker (the embedded one unless a bootstrap is
//! configured), a real central, `evcharge fleet cps` and `evcharge fleet drivers` as
//! separate processes of this binary ([`network`]), then measures ([`phases`]):
//! 1. authorisation: paced requests, each stopped as soon as it is authorised;
//! 2. telemetry: every CP supplying at once, one report a second each, for `--duration`;
//! 3. crash detection: engine and monitor crashes injected under that load, timed until
//!    the central shows the CP broken or disconnected (by the `since` of its state);
//! 4. scale-out, with `--centrals` above 1: that load on the first central alone, then on
//!    every central once the others have joined, and the time to catch up ([`scale_out`]);
//!    with `--central-cpu`, each central has only so much of a core ([`cpu_quota`]);
//! 5. failover, with `--centrals` above 1: a central SIGKILLed under that load, timed until
//!    every CP it ran is served by another ([`failover`]);
//!
//! With `--ocpp-chargers N`, one OCPP gateway holding N charge points is measured after
//! them ([`gateway`]): connections, memory a connection, remote starts, meter values.
//!
//! and reads the central's CPU and memory from /proc throughout ([`sampling`]). Figures
//! come from the central's own metrics (`GET /api/metrics`, [`prometheus`]), the driver
//! fleet's histogram and /proc, and are printed and written as JSON ([`report`]).

pub mod cpu_quota;
pub mod failover;
pub mod figures;
pub mod gateway;
pub mod network;
pub mod phases;
pub mod prometheus;
pub mod report;
pub mod sampling;
pub mod scale_out;

use crate::bus::EmbeddedBroker;
use crate::cli::BenchArgs;
use crate::configuration::{KafkaSettings, Settings};
use anyhow::{bail, Context};
use figures::{Resources, Row};
use network::{Kafka, Network};
use sampling::{Machine, Sample};
use std::path::Path;
use std::time::{Duration, Instant};

/// Measures every size of `--cps` in turn, printing as it goes.
pub fn run(settings: &Settings, args: &BenchArgs) -> anyhow::Result<()> {
    if args.cps.contains(&0) || args.ocpp_chargers == Some(0) {
        bail!("--cps and --ocpp-chargers need sizes above 0");
    }
    let sizes = if args.cps.is_empty() && args.ocpp_chargers.is_none() {
        vec![1000]
    } else {
        args.cps.clone()
    };
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
    for &cps in &sizes {
        println!("\n== {cps} charging points ==");
        let row = measure(settings, args, cps, &base.join(format!("cps-{cps}")))
            .with_context(|| format!("the run with {cps} CPs failed"))?;
        report::print_row(&row);
        rows.push(row);
        report::write_json(&args.json, &machine, args, &rows, None)?;
    }
    if !rows.is_empty() {
        report::print_table(&rows);
    }
    if let Some(chargers) = args.ocpp_chargers {
        let most = gateway::chargers_per_gateway();
        if chargers > most {
            bail!(
                "one gateway can hold at most {most} chargers here: each takes {} sockets, and a \
                 process may open only so many (raise the limit with `ulimit -n`)",
                gateway::SOCKETS_PER_CHARGER
            );
        }
        println!("\n== one OCPP gateway, {chargers} charge points ==");
        let (broker, kafka, _) = start_broker(settings)?;
        let figures = gateway::measure_gateway(
            &kafka,
            args,
            chargers,
            &base.join(format!("ocpp-{chargers}")),
        )
        .with_context(|| format!("the gateway run with {chargers} chargers failed"))?;
        drop(broker);
        report::write_json(&args.json, &machine, args, &rows, Some(&figures))?;
    }
    println!("\nfigures written to {}", args.json.display());
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&base);
    }
    Ok(())
}

/// The embedded broker, unless one is configured; what every process is told of it; its
/// name in the figures.
fn start_broker(settings: &Settings) -> anyhow::Result<(Option<EmbeddedBroker>, Kafka, String)> {
    let embedded = settings.kafka.bootstrap == KafkaSettings::default().bootstrap;
    let broker = embedded
        .then(|| EmbeddedBroker::start(&settings.kafka, 1))
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
    let kafka = Kafka {
        // Clients of the embedded broker need a short fetch wait (see `client_fetch_wait`).
        env: if embedded {
            crate::bus::client_fetch_wait()
        } else {
            None
        },
        bootstrap,
        control_token: crate::accounts::credentials::new_secret(),
    };
    Ok((broker, kafka, broker_name))
}

/// One network size, from a fresh broker and central to every figure.
fn measure(settings: &Settings, args: &BenchArgs, cps: u32, dir: &Path) -> anyhow::Result<Row> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (broker, kafka, broker_name) = start_broker(settings)?;
    let began = Instant::now();
    let shape = network::Shape {
        cps,
        centrals: args.centrals,
        central_cpu: args.central_cpu,
    };
    let mut net = Network::start(&kafka, shape, dir)?;
    let startup_seconds = began.elapsed().as_secs_f64();
    println!("network of {cps} CPs up in {startup_seconds:.1} s");

    let idle = Sample::take(&net)?;
    std::thread::sleep(Duration::from_secs(5));
    let idle_end = Sample::take(&net)?;
    let mut resources = Resources {
        central_cpu_idle_pct: idle.cpu_pct(&idle_end, |s| s.central),
        central_rss_idle_mb: sampling::rss_mb(&net.central),
        ..Resources::default()
    };

    let auth = phases::measure_auth(&net, args)?;
    println!(
        "authorisation: {} sent at {}/s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, denied {:?}",
        auth.report.sent,
        args.auth_rate,
        auth.report.p50_ms,
        auth.report.p99_ms,
        auth.report.max_ms,
        auth.report.denied
    );
    net.settle("available", cps, Duration::from_secs(60));

    let telemetry = phases::measure_telemetry(&net, args, cps, &mut resources)?;
    println!(
        "telemetry: {:.0} reports/s, p50 {:.1} ms, p99 {:.1} ms, lag at most {} records",
        telemetry.reports_per_s, telemetry.p50_ms, telemetry.p99_ms, telemetry.lag_max_messages
    );
    let crashes = phases::measure_crashes(&net, args, cps)?;
    println!(
        "crash detection: {}/{} detected, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        crashes.detected, crashes.injected, crashes.p50_ms, crashes.p99_ms, crashes.max_ms
    );
    let scale_out = if net.others.is_empty() {
        None
    } else {
        Some(scale_out::measure_scale_out(
            &mut net,
            cps,
            args.duration.into(),
        )?)
    };
    let failover = if net.others.is_empty() || args.failovers == 0 {
        None
    } else {
        let f = failover::measure_failover(&mut net, args.failovers)?;
        println!(
            "failover: {} kills of a central among {}, {} CPs adopted ({} not served within 60 s); served again p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; rejoined within {:.0} ms",
            f.kills, f.centrals, f.adopted, f.unserved, f.served_p50_ms, f.served_p99_ms, f.served_max_ms, f.rejoin_max_ms
        );
        Some(f)
    };
    resources.central_rss_peak_mb = sampling::peak_rss_mb(&net.central);
    resources.central_kb_per_cp = resources.central_rss_mb * 1024.0 / f64::from(cps);
    net.release_drivers();
    // The processes first, then the broker they use.
    drop(net);
    drop(broker);
    Ok(Row {
        cps,
        broker: broker_name,
        startup_seconds,
        auth,
        telemetry,
        crashes,
        scale_out,
        failover,
        resources,
    })
}

//! The three measurements of one network: authorisation, telemetry under load, and crash
//! detection.

use super::figures::{AuthFigures, CrashFigures, Resources, TelemetryFigures};
use super::network::Network;
use super::sampling::{rss_mb, Sample};
use crate::actors::fleet::driver_fleet::RunReport;
use crate::cli::BenchArgs;
use crate::harness::{wait_for, Endpoint};
use anyhow::Context;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Paced requests, each stopped as soon as it is authorised; the driver fleet times them.
pub fn measure_auth(net: &Network, args: &BenchArgs) -> anyhow::Result<AuthFigures> {
    Ok(AuthFigures {
        rate_per_s: args.auth_rate,
        report: paced_requests(&net.drivers_control, args)?,
    })
}

/// `--auth-requests` drivers' requests at `--auth-rate`, each stopped as soon as it is
/// authorised, timed by the driver fleet behind `drivers`.
pub fn paced_requests(drivers: &Endpoint, args: &BenchArgs) -> anyhow::Result<RunReport> {
    let run =
        serde_json::json!({"rate": args.auth_rate, "count": args.auth_requests, "hold": false});
    drivers.post("/fleet/run", Some(run))?;
    let limit = Duration::from_secs_f64(args.auth_requests as f64 / args.auth_rate + 60.0);
    wait_for("the paced requests to end", limit, || {
        let report: RunReport = drivers.get_json("/fleet/run")?;
        Ok(report.done.then_some(report))
    })
}

/// Every CP supplying at once, one report a second each, for `--duration`; latencies from
/// the central's histogram, CPU and memory from /proc over the same window.
pub fn measure_telemetry(
    net: &Network,
    args: &BenchArgs,
    cps: u32,
    resources: &mut Resources,
) -> anyhow::Result<TelemetryFigures> {
    // Every driver asks its CP, 1,000 a second, and keeps the supply.
    let run = serde_json::json!({"rate": 1000.0, "count": cps, "hold": true});
    net.drivers_control.post("/fleet/run", Some(run))?;
    net.settle(
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
        rss_max = rss_max.max(rss_mb(&net.central));
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
pub fn measure_crashes(net: &Network, args: &BenchArgs, cps: u32) -> anyhow::Result<CrashFigures> {
    let count = args.crashes;
    let spacing = Duration::from_millis(150);
    let mut watchers = Vec::new();
    for k in 0..count {
        let index = (k as u64 * u64::from(cps) / count.max(1) as u64) as u32 + 1;
        let cp_id = format!("CP{index:05}");
        let part = if k % 2 == 0 { "engine" } else { "monitor" };
        let Some(shard) = net.shard_of(index) else {
            continue;
        };
        let fleet = shard.control.clone();
        let crash = fleet.post(&format!("/fleet/crash/{cp_id}/{part}"), None);
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
        watchers.push(std::thread::spawn(move || {
            let shown = if part == "engine" {
                "broken"
            } else {
                "disconnected"
            };
            // Polled more often than `wait_for` does: the delay is what is measured.
            let until = Instant::now() + Duration::from_secs(30);
            let mut detected = None;
            while Instant::now() < until {
                if let Ok(view) = api.get_json::<serde_json::Value>(&format!("/api/cps/{cp_id}")) {
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
            let _ = fleet.post(&format!("/fleet/restart/{cp_id}/{part}"), None);
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

/// The `q` quantile of `sorted` by nearest rank: always a value that was measured.
pub(super) fn nearest_rank(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_picks_a_measured_value() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&sorted, 0.99), 99.0);
        assert_eq!(nearest_rank(&sorted, 0.5), 50.0);
        assert_eq!(nearest_rank(&[], 0.5), 0.0);
    }
}

//! The figures as people read them (a line per phase, a Markdown table) and as a JSON
//! file for scripts.

use super::figures::Row;
use super::gateway::GatewayFigures;
use super::sampling::Machine;
use crate::cli::BenchArgs;
use anyhow::Context;
use std::path::Path;
use std::time::Duration;

pub fn print_row(row: &Row) {
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

pub fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| CPs | reports/s | telemetry p50 / p99 ms | slowest report ≤ ms | reports > 1 s | lag max (records) | auth p50 / p99 / max ms | crash detection p50 / p99 / max ms | failover served p50 / p99 / max ms | central CPU | central RSS MB | KB/CP |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let (t, a, c, r) = (
            &row.telemetry,
            &row.auth.report,
            &row.crashes,
            &row.resources,
        );
        println!(
            "| {} | {:.0} | {:.1} / {:.1} | {:.0} | {} | {} | {:.1} / {:.1} / {:.1} | {:.0} / {:.0} / {:.0} | {} | {:.0}% | {:.0} | {:.1} |",
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
            row.failover.as_ref().map_or("—".into(), |f| format!(
                "{:.0} / {:.0} / {:.0}",
                f.served_p50_ms, f.served_p99_ms, f.served_max_ms
            )),
            r.central_cpu_pct,
            r.central_rss_mb,
            r.central_kb_per_cp
        );
    }
}

/// Written again after every size, so that a long run that fails late keeps what it measured.
pub fn write_json(
    path: &Path,
    machine: &Machine,
    args: &BenchArgs,
    rows: &[Row],
    gateway: Option<&GatewayFigures>,
) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "machine": machine,
        "settings": {
            "duration_s": Duration::from(args.duration).as_secs_f64(),
            "auth_rate_per_s": args.auth_rate,
            "auth_requests": args.auth_requests,
            "crashes": args.crashes,
            "centrals": args.centrals,
            "central_cpu_pct": args.central_cpu,
            "failovers": args.failovers,
            "ocpp_chargers": args.ocpp_chargers,
            "meter_interval_s": Duration::from(args.meter_interval).as_secs_f64(),
        },
        "runs": rows,
        "gateway": gateway,
    });
    std::fs::write(path, serde_json::to_vec_pretty(&body)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

//! The scale-out phase, with `--centrals` above 1: with every CP supplying, the first
//! central carries them all for `--duration`; then the others are started, join the group,
//! take their share of the partitions (supplies in progress go on), and the same window is
//! measured across all of them. It says how long the network took to catch up.
//!
//! With `--central-cpu`, each central may use only so much of a core, as on a machine of its
//! own: the first one can be loaded past its capacity while this machine, shared with the
//! fleets, still has a core for the second. Then this phase shows whether adding a central
//! is the remedy.

use super::figures::{ScaleOutFigures, WindowFigures};
use super::network::Network;
use super::prometheus::Metrics;
use crate::harness::Endpoint;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How long the others have to be given CPs, and the network to catch up.
const LIMIT: Duration = Duration::from_secs(120);

/// Whether a CP in `state` is served: what the failover phase waits for too.
pub fn serving(state: &str) -> bool {
    matches!(state, "available" | "reserved" | "charging")
}

/// Each CP as the first central shows it: who runs it, and its state.
pub fn owners(net: &Network) -> std::collections::BTreeMap<String, (Option<String>, String)> {
    let Ok(cps) = net.api.get_json::<serde_json::Value>("/api/cps") else {
        return Default::default();
    };
    cps.as_array()
        .into_iter()
        .flatten()
        .filter_map(|cp| {
            let id = cp["id"].as_str()?.to_owned();
            let owner = cp["owner"].as_str().map(str::to_owned);
            Some((id, (owner, cp["state"].as_str()?.to_owned())))
        })
        .collect()
}

pub fn measure_scale_out(
    net: &mut Network,
    cps: u32,
    window: Duration,
) -> anyhow::Result<ScaleOutFigures> {
    let centrals = net.others.len() as u32 + 1;
    let alone = measure_window(&[&net.api], window);
    println!("scale-out, one central: {}", alone.describe());
    let started = Instant::now();
    for other in &mut net.others {
        other.start()?;
    }
    let joined = wait_for_every_central_to_run_cps(net, centrals, started);
    let apis = all_apis(net);
    let caught_up = loop {
        let (lag, behind) = backlog(&read(&apis));
        // Caught up: less than a second's reports waiting, and none read a second late.
        if lag < i64::from(cps) && behind < 1.0 {
            break Some(started.elapsed().as_secs_f64());
        }
        if started.elapsed() >= LIMIT {
            break None;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let together = measure_window(&apis, window);
    let took = |s: Option<f64>| s.map_or(format!("more than {LIMIT:?}"), |s| format!("{s:.1} s"));
    println!(
        "scale-out, {centrals} centrals (joined in {}, caught up in {}): {}",
        took(joined),
        took(caught_up),
        together.describe()
    );
    Ok(ScaleOutFigures {
        centrals,
        alone,
        joined_s: joined,
        caught_up_s: caught_up,
        together,
    })
}

/// Every central's API, the first one's first.
fn all_apis(net: &Network) -> Vec<&Endpoint> {
    std::iter::once(&net.api)
        .chain(net.others.iter().map(|o| &o.api))
        .collect()
}

/// Seconds from `started` until every CP is run by a central and serving, with each of
/// the `centrals` running some; `None` past the limit.
fn wait_for_every_central_to_run_cps(
    net: &Network,
    centrals: u32,
    started: Instant,
) -> Option<f64> {
    loop {
        let shown = owners(net);
        let running: BTreeSet<&String> = shown.values().filter_map(|(o, _)| o.as_ref()).collect();
        let settled = shown
            .values()
            .all(|(owner, state)| owner.is_some() && serving(state));
        if settled && running.len() as u32 == centrals {
            return Some(started.elapsed().as_secs_f64());
        }
        if started.elapsed() >= LIMIT {
            println!(
                "after {LIMIT:?}, {} of {centrals} centrals run CPs; measuring anyway",
                running.len()
            );
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every central's metrics; `None` for one that does not answer.
fn read(apis: &[&Endpoint]) -> Vec<Option<Metrics>> {
    apis.iter()
        .map(|api| {
            api.get_text("/api/metrics")
                .ok()
                .map(|t| Metrics::parse(&t))
        })
        .collect()
}

/// The records of `cp.events` waiting, summed over the centrals, and how late the latest
/// of them reads it, in seconds. A central that does not answer counts as none waiting.
fn backlog(metrics: &[Option<Metrics>]) -> (i64, f64) {
    metrics.iter().flatten().fold((0, 0.0), |(lag, behind), m| {
        (
            lag + m.sum_of_topic("evcharge_consumer_lag_messages", "cp.events") as i64,
            f64::max(
                behind,
                m.sum_of_topic("evcharge_consumer_behind_seconds", "cp.events"),
            ),
        )
    })
}

/// Reports applied by each central over `window`, and what was left waiting.
fn measure_window(apis: &[&Endpoint], window: Duration) -> WindowFigures {
    let first = read(apis);
    let began = Instant::now();
    let mut lag_max = 0;
    let mut behind_max = 0f64;
    while began.elapsed() < window {
        std::thread::sleep(Duration::from_secs(1).min(window.saturating_sub(began.elapsed())));
        let (lag, behind) = backlog(&read(apis));
        lag_max = lag_max.max(lag);
        behind_max = behind_max.max(behind);
    }
    let last = read(apis);
    let seconds = began.elapsed().as_secs_f64();
    let (lag_end, behind_end) = backlog(&last);
    let delta = |name: &str, of: &dyn Fn(&Metrics) -> f64| -> Vec<f64> {
        first
            .iter()
            .zip(&last)
            .map(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => (of(b) - of(a)).max(0.0),
                _ => {
                    log::warn!("a central did not answer for {name}");
                    0.0
                }
            })
            .collect()
    };
    let latency = "evcharge_telemetry_latency_seconds";
    let applied = delta(latency, &|m| m.histogram(latency).count());
    let late = delta(latency, &|m| m.histogram(latency).above(1.0));
    let lost = delta("records lost", &|m| {
        m.sum_of_topic("evcharge_consumer_records_lost_total", "cp.events")
    });
    WindowFigures {
        seconds,
        reports_per_s: applied.iter().sum::<f64>() / seconds,
        reports_per_s_by_central: applied.iter().map(|n| n / seconds).collect(),
        later_than_1s: late.iter().sum::<f64>() as u64,
        lag_max_messages: lag_max,
        lag_end_messages: lag_end,
        behind_max_s: behind_max.max(behind_end),
        behind_end_s: behind_end,
        records_lost: lost.iter().sum::<f64>() as u64,
    }
}

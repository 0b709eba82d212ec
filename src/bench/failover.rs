//! The failover phase, after the scale-out phase has the other centrals run their share:
//! with every CP supplying, a central other than the first is SIGKILLed; the first
//! central's API is watched until every CP the killed one ran shows run by a live
//! central and serving again. Then the killed central is started again over its database,
//! and timed until it runs CPs again (its share back), before the next kill.

use super::figures::FailoverFigures;
use super::network::Network;
use super::phases::nearest_rank;
use super::scale_out::{owners, serving};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// A CP not served again within this long counts as unserved.
const LIMIT: Duration = Duration::from_secs(60);

pub fn measure_failover(net: &mut Network, kills: usize) -> anyhow::Result<FailoverFigures> {
    let centrals = net.others.len() as u32 + 1;
    let mut figures = FailoverFigures {
        centrals,
        ..FailoverFigures::default()
    };
    let mut served = Vec::new();
    let mut rejoins = Vec::new();
    // The others are started by the scale-out phase; any not running (yet) is started.
    for other in net.others.iter_mut().filter(|o| o.process.is_none()) {
        other.start()?;
    }
    for k in 0..kills {
        let at = k % net.others.len();
        let victim = net.others[at].instance.clone();
        // It runs a share first (a central started again takes a while to be given one).
        let until = Instant::now() + LIMIT;
        let shown = loop {
            let shown = owners(net);
            let runs = shown
                .values()
                .any(|(owner, _)| owner.as_deref() == Some(victim.as_str()));
            if runs || Instant::now() >= until {
                break shown;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let mut split: BTreeMap<String, u64> = BTreeMap::new();
        for (owner, _) in shown.values() {
            *split
                .entry(owner.clone().unwrap_or_else(|| "none".into()))
                .or_default() += 1;
        }
        println!(
            "failover {}: CPs per central {split:?}; killing {victim}",
            k + 1
        );
        figures.split.push(split);
        let mut waiting: BTreeSet<String> = shown
            .iter()
            .filter(|(_, (owner, _))| owner.as_deref() == Some(victim.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        figures.adopted += waiting.len();
        let killed = Instant::now();
        net.others[at].kill();
        while !waiting.is_empty() && killed.elapsed() < LIMIT {
            std::thread::sleep(Duration::from_millis(100));
            let shown = owners(net);
            waiting.retain(|id| {
                let adopted = shown.get(id).is_some_and(|(owner, state)| {
                    owner.as_deref().is_some_and(|o| o != victim) && serving(state)
                });
                if adopted {
                    served.push(killed.elapsed().as_secs_f64() * 1000.0);
                }
                !adopted
            });
        }
        figures.unserved += waiting.len();
        figures.kills += 1;
        // Back, over its database: timed until it runs CPs again.
        net.others[at].start()?;
        let started = Instant::now();
        while started.elapsed() < LIMIT {
            let runs = owners(net)
                .values()
                .any(|(owner, _)| owner.as_deref() == Some(victim.as_str()));
            if runs {
                rejoins.push(started.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    served.sort_by(f64::total_cmp);
    figures.served_p50_ms = nearest_rank(&served, 0.50);
    figures.served_p99_ms = nearest_rank(&served, 0.99);
    figures.served_max_ms = served.last().copied().unwrap_or(0.0);
    figures.rejoin_max_ms = rejoins.iter().copied().fold(0.0, f64::max);
    Ok(figures)
}

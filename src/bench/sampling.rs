//! What /proc says: the machine the figures were taken on, and the CPU time and memory of
//! the network's processes.

use super::network::Network;
use crate::harness::Child;
use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Linux reports CPU time in ticks of 1/100 s (USER_HZ) on every common architecture.
const TICKS_PER_SECOND: f64 = 100.0;

/// Where the figures were taken.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub os: String,
}

impl Machine {
    pub fn read() -> Machine {
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

/// CPU time of every process of the network at one instant.
pub struct Sample {
    pub at: Instant,
    pub central: f64,
    pub fleet: f64,
    pub drivers: f64,
    pub bench: f64,
}

impl Sample {
    pub fn take(net: &Network) -> anyhow::Result<Sample> {
        Ok(Sample {
            at: Instant::now(),
            central: cpu_seconds_of(&net.central)?,
            fleet: net
                .fleets
                .iter()
                .map(|f| cpu_seconds_of(&f.process))
                .sum::<anyhow::Result<f64>>()?,
            drivers: net.drivers.as_ref().map_or(Ok(0.0), cpu_seconds_of)?,
            bench: cpu_seconds(std::process::id())?,
        })
    }

    /// Percent of one core used by the process `of` picks, from this sample to `end`.
    pub fn cpu_pct(&self, end: &Sample, of: impl Fn(&Sample) -> f64) -> f64 {
        let wall = (end.at - self.at).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        (of(end) - of(self)) / wall * 100.0
    }
}

pub fn cpu_seconds_of(child: &Child) -> anyhow::Result<f64> {
    cpu_seconds(
        child
            .pid()
            .with_context(|| format!("{} is gone", child.name()))?,
    )
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

/// A `kB` field of the child's /proc status, in MB; 0 once it is gone.
fn status_mb(child: &Child, field: &str) -> f64 {
    child
        .pid()
        .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .and_then(|s| kib_field(&s, field))
        .unwrap_or(0) as f64
        / 1024.0
}

/// The child's resident memory now.
pub fn rss_mb(child: &Child) -> f64 {
    status_mb(child, "VmRSS:")
}

/// The most resident memory the child has had (VmHWM).
pub fn peak_rss_mb(child: &Child) -> f64 {
    status_mb(child, "VmHWM:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kib_fields_are_read_from_proc_text() {
        let status = "Name:\tevcharge\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(kib_field(status, "VmRSS:"), Some(10240));
        assert_eq!(kib_field(status, "VmHWM:"), Some(20480));
        assert_eq!(kib_field(status, "VmSwap:"), None);
        assert!(cpu_seconds(std::process::id()).unwrap() >= 0.0);
    }
}

//! A CPU limit for a central (`evcharge bench --central-cpu`), the way a container's
//! `--cpus` is one: a cgroup of the kernel's CPU controller, given a quota of CPU time per
//! period. Each central gets its own, as if it ran on a machine of its own that size; the
//! bench can then load one central past its capacity while the machine, shared with the
//! fleets, still has cores to spare, and show what a second one changes.
//!
//! cgroup v2 (`cpu.max`) and v1 (`cpu.cfs_quota_us`) are both understood. Making a cgroup
//! needs root or a delegated subtree; without either the bench says so and stops.

use crate::harness::Child;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};

/// The kernel's default scheduling period for a quota, in microseconds.
const PERIOD_US: u64 = 100_000;

/// One cgroup with a CPU quota; removed when dropped (once its processes are gone).
pub struct CpuQuota {
    dir: PathBuf,
    /// Where a process is moved back to before the cgroup is removed.
    parent: PathBuf,
}

impl CpuQuota {
    /// A cgroup `name` whose processes together may use `percent` of one core.
    pub fn new(name: &str, percent: u32) -> anyhow::Result<CpuQuota> {
        if percent == 0 {
            bail!("--central-cpu must be above 0 (percent of one core)");
        }
        let quota_us = PERIOD_US * u64::from(percent) / 100;
        let v2 = Path::new("/sys/fs/cgroup");
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        let controllers = std::fs::read_to_string(v2.join("cgroup.controllers")).ok();
        let (parent, file, value) = if controllers.is_some_and(|c| c.contains("cpu")) {
            // The controller must be enabled for the root's children; harmless if it is.
            let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+cpu");
            (v2, "cpu.max", format!("{quota_us} {PERIOD_US}"))
        } else if v1.join("cpu.cfs_quota_us").exists() {
            (v1, "cpu.cfs_quota_us", quota_us.to_string())
        } else {
            bail!("--central-cpu needs the kernel's CPU cgroup controller, and this machine has none mounted at /sys/fs/cgroup");
        };
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir).with_context(|| {
            format!(
                "--central-cpu cannot make the cgroup {} (it needs root or a delegated cgroup)",
                dir.display()
            )
        })?;
        if file == "cpu.cfs_quota_us" {
            std::fs::write(dir.join("cpu.cfs_period_us"), PERIOD_US.to_string())
                .with_context(|| format!("cannot set the period of {}", dir.display()))?;
        }
        std::fs::write(dir.join(file), value)
            .with_context(|| format!("cannot set the CPU quota of {}", dir.display()))?;
        Ok(CpuQuota {
            dir,
            parent: parent.to_path_buf(),
        })
    }

    /// Puts the process of `child`, every thread of it, under this quota.
    pub fn hold(&self, child: &Child) -> anyhow::Result<()> {
        let Some(pid) = child.pid() else {
            bail!("{} is gone before its CPU quota was set", child.name());
        };
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).with_context(|| {
            format!(
                "cannot put process {pid} in the cgroup {}",
                self.dir.display()
            )
        })
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        // A cgroup with processes cannot be removed: any left are moved out first.
        let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.split_whitespace() {
            let _ = std::fs::write(self.parent.join("cgroup.procs"), pid);
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            log::warn!("cannot remove the cgroup {}: {e}", self.dir.display());
        }
    }
}

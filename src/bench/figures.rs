//! What one network size measured: the rows of the printed table and of the JSON file.

use crate::actors::fleet::driver_fleet::RunReport;
use serde::{Deserialize, Serialize};

/// Every figure of one network size.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub cps: u32,
    pub broker: String,
    pub startup_seconds: f64,
    pub auth: AuthFigures,
    pub telemetry: TelemetryFigures,
    pub crashes: CrashFigures,
    /// Absent with one central.
    #[serde(default)]
    pub scale_out: Option<ScaleOutFigures>,
    /// Absent with one central.
    #[serde(default)]
    pub failover: Option<FailoverFigures>,
    pub resources: Resources,
}

/// The scale-out phase: every CP supplying, on one central, then on all of them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ScaleOutFigures {
    pub centrals: u32,
    /// The first central alone.
    pub alone: WindowFigures,
    /// From starting the others until each runs CPs and every CP is served; `None` past
    /// the phase's limit.
    pub joined_s: Option<f64>,
    /// From starting the others until less than a second's reports wait and none is read a
    /// second late.
    pub caught_up_s: Option<f64>,
    /// Every central, once caught up (or past the limit).
    pub together: WindowFigures,
}

/// One window of the scale-out phase: what the centrals applied, and what they left waiting.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WindowFigures {
    pub seconds: f64,
    /// Supply progress reports applied, all centrals together.
    pub reports_per_s: f64,
    /// The same, by central, the first central first.
    pub reports_per_s_by_central: Vec<f64>,
    /// Reports older than 1 s when applied.
    pub later_than_1s: u64,
    /// Records of `cp.events` waiting, over the centrals: most seen, and at the end.
    pub lag_max_messages: i64,
    pub lag_end_messages: i64,
    /// How old the records `cp.events` was read at were, at worst and at the end.
    pub behind_max_s: f64,
    pub behind_end_s: f64,
    /// Records of `cp.events` the broker deleted before a central read them.
    pub records_lost: u64,
}

impl WindowFigures {
    pub fn describe(&self) -> String {
        let by: Vec<String> = self
            .reports_per_s_by_central
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect();
        format!(
            "{:.0} reports/s applied ({}), {} later than 1 s; cp.events {} records waiting at the end (at most {}), read {:.1} s behind (at most {:.1} s); {} records lost",
            self.reports_per_s,
            by.join(" + "),
            self.later_than_1s,
            self.lag_end_messages,
            self.lag_max_messages,
            self.behind_end_s,
            self.behind_max_s,
            self.records_lost
        )
    }
}

/// The failover phase: a central SIGKILLed under load, its CPs adopted by the others.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FailoverFigures {
    pub centrals: u32,
    pub kills: usize,
    /// CPs the killed centrals ran, over every kill.
    pub adopted: usize,
    /// Of them, those not served by another central within the phase's limit.
    pub unserved: usize,
    /// From the SIGKILL until another central shows the CP run by it and serving (its
    /// state available, reserved or charging): the time a CP is out of service.
    pub served_p50_ms: f64,
    pub served_p99_ms: f64,
    pub served_max_ms: f64,
    /// From the restart of a killed central until it runs CPs again, slowest.
    pub rejoin_max_ms: f64,
    /// CPs per central before each kill.
    pub split: Vec<std::collections::BTreeMap<String, u64>>,
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

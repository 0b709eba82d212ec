//! The central's metrics, served as Prometheus text by `GET /api/metrics`.
//!
//! One registry of its own for the process (not the crate's global one, so that nothing a
//! dependency registers shows up). Counters and histograms are updated where things
//! happen; the CPs per state are counted from the supervisor's views at each scrape.

use crate::domain::CpState;
use chrono::{DateTime, Utc};
use prometheus::{
    GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::LazyLock;

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Buckets of the telemetry latency, in seconds: fine below 100 ms, where a healthy
/// network is, coarse above, where a backlog is.
const LATENCY_BUCKETS: [f64; 33] = [
    0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.008, 0.010, 0.012, 0.015, 0.020, 0.025, 0.030,
    0.040, 0.050, 0.060, 0.080, 0.100, 0.125, 0.150, 0.200, 0.250, 0.300, 0.400, 0.500, 0.750, 1.0,
    1.5, 2.0, 3.0, 5.0, 10.0, 30.0,
];

struct Metrics {
    registry: Registry,
    telemetry_latency: Histogram,
    cp_events: IntCounter,
    monitor_reports: IntCounter,
    refusals: IntCounterVec,
    consumer_lag: IntGaugeVec,
    consumer_behind: GaugeVec,
    records_lost: IntCounterVec,
    thread_lag: prometheus::Gauge,
    cps: IntGaugeVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let telemetry_latency = Histogram::with_opts(
        HistogramOpts::new(
            "evcharge_telemetry_latency_seconds",
            "From an engine's supply progress report to the central applying it",
        )
        .buckets(LATENCY_BUCKETS.to_vec()),
    )
    .expect("valid histogram");
    let cp_events = IntCounter::new(
        "evcharge_cp_events_total",
        "Engine records (cp.events) handled by the central",
    )
    .expect("valid counter");
    let monitor_reports = IntCounter::new(
        "evcharge_monitor_reports_total",
        "STATUS reports from monitors handled by the central",
    )
    .expect("valid counter");
    let refusals = IntCounterVec::new(
        Opts::new(
            "evcharge_refusals_total",
            "Attempts refused at a door (monitor AUTH, login, …), by door and reason",
        ),
        &["door", "reason"],
    )
    .expect("valid counter");
    let consumer_lag = IntGaugeVec::new(
        Opts::new(
            "evcharge_consumer_lag_messages",
            "Records of a topic not yet handled by this process's consumer",
        ),
        &["topic"],
    )
    .expect("valid gauge");
    let consumer_behind = GaugeVec::new(
        Opts::new(
            "evcharge_consumer_behind_seconds",
            "How long ago the records this process's consumer of a topic reads now were \
             written (0 when it keeps up): above a second or so, it is past its capacity",
        ),
        &["topic"],
    )
    .expect("valid gauge");
    let records_lost = IntCounterVec::new(
        Opts::new(
            "evcharge_consumer_records_lost_total",
            "Records of a topic the broker deleted before this process's consumer read \
             them: it was further behind its writers than the broker keeps",
        ),
        &["topic"],
    )
    .expect("valid counter");
    let thread_lag = prometheus::Gauge::new(
        "evcharge_thread_lag_seconds",
        "How late the central's actor thread got to work that was ready, at worst over the \
         last 5 s: above a few hundred ms, it is past its capacity",
    )
    .expect("valid gauge");
    let cps = IntGaugeVec::new(
        Opts::new("evcharge_cps", "Charging points in each state"),
        &["state"],
    )
    .expect("valid gauge");
    for collector in [
        Box::new(telemetry_latency.clone()) as Box<dyn prometheus::core::Collector>,
        Box::new(cp_events.clone()),
        Box::new(monitor_reports.clone()),
        Box::new(refusals.clone()),
        Box::new(consumer_lag.clone()),
        Box::new(consumer_behind.clone()),
        Box::new(records_lost.clone()),
        Box::new(thread_lag.clone()),
        Box::new(cps.clone()),
    ] {
        registry.register(collector).expect("unique metric names");
    }
    Metrics {
        registry,
        telemetry_latency,
        cp_events,
        monitor_reports,
        refusals,
        consumer_lag,
        consumer_behind,
        records_lost,
        thread_lag,
        cps,
    }
});

/// A supply progress report created at `sent` (by the engine's clock) is applied now.
pub fn observe_telemetry(sent: DateTime<Utc>) {
    // Clocks of different machines may disagree: a report from the future took no time.
    let seconds = (Utc::now() - sent).num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
    METRICS.telemetry_latency.observe(seconds);
}

/// The central handled one record of `cp.events`.
pub fn count_cp_event() {
    METRICS.cp_events.inc();
}

/// The central handled one monitor's STATUS report.
pub fn count_monitor_report() {
    METRICS.monitor_reports.inc();
}

/// An attempt was refused at `door` (`monitor_auth`, `login`, …) for `reason`, a short
/// fixed word (never the attacker's text, which would make the label set unbounded).
pub fn count_refusal(door: &'static str, reason: &'static str) {
    METRICS.refusals.with_label_values(&[door, reason]).inc();
}

/// This process's consumer of `topic` has `lag` records not yet handled.
pub fn set_consumer_lag(topic: &str, lag: i64) {
    METRICS.consumer_lag.with_label_values(&[topic]).set(lag);
}

/// This process's consumer of `topic` reads records written `behind` ago.
pub fn set_consumer_behind(topic: &str, behind: std::time::Duration) {
    METRICS
        .consumer_behind
        .with_label_values(&[topic])
        .set(behind.as_secs_f64());
}

/// The broker deleted `count` records of `topic` this process's consumer had not read.
pub fn count_records_lost(topic: &str, count: u64) {
    METRICS
        .records_lost
        .with_label_values(&[topic])
        .inc_by(count);
}

/// The central's actor thread got to ready work `lag` late, at worst, lately.
pub fn set_thread_lag(lag: std::time::Duration) {
    METRICS.thread_lag.set(lag.as_secs_f64());
}

/// Every metric in the Prometheus text format, with the CPs counted from `states` (every
/// state appears, at zero when no CP is in it).
pub fn render(states: impl IntoIterator<Item = CpState>) -> String {
    let mut counts = [0i64; CpState::ALL.len()];
    for state in states {
        counts[CpState::ALL
            .iter()
            .position(|s| *s == state)
            .expect("listed")] += 1;
    }
    for (state, count) in CpState::ALL.iter().zip(counts) {
        METRICS.cps.with_label_values(&[state.as_str()]).set(count);
    }
    TextEncoder::new()
        .encode_to_string(&METRICS.registry.gather())
        .unwrap_or_else(|e| format!("# cannot encode the metrics: {e}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line starting with `name` (labels included).
    fn sample(text: &str, name: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn the_text_counts_what_happened_and_every_cp_state() {
        let before = render([]);
        let latency_count = sample(&before, "evcharge_telemetry_latency_seconds_count");
        let events = sample(&before, "evcharge_cp_events_total");

        observe_telemetry(Utc::now() - chrono::Duration::milliseconds(5));
        // From the future (a clock ahead of ours): counted as no time at all.
        observe_telemetry(Utc::now() + chrono::Duration::seconds(5));
        count_cp_event();
        count_monitor_report();
        count_refusal("monitor_auth", "wrong_secret");
        set_consumer_lag("cp.events", 3);
        let text = render([CpState::Available, CpState::Charging, CpState::Available]);

        assert_eq!(
            sample(&text, "evcharge_telemetry_latency_seconds_count"),
            latency_count + 2.0
        );
        // The one from the future is in the lowest bucket, both are within 10 ms.
        let le = |b: &str| {
            sample(
                &text,
                &format!("evcharge_telemetry_latency_seconds_bucket{{le=\"{b}\"}}"),
            )
        };
        assert!(le("0.001") >= 1.0 && le("0.01") >= 2.0, "{text}");
        assert!(sample(&text, "evcharge_cp_events_total") > events);
        assert!(sample(&text, "evcharge_monitor_reports_total") >= 1.0);
        assert!(
            sample(
                &text,
                "evcharge_refusals_total{door=\"monitor_auth\",reason=\"wrong_secret\"}"
            ) >= 1.0
        );
        assert_eq!(
            sample(&text, "evcharge_consumer_lag_messages{topic=\"cp.events\"}"),
            3.0
        );
        assert_eq!(sample(&text, "evcharge_cps{state=\"available\"}"), 2.0);
        assert_eq!(sample(&text, "evcharge_cps{state=\"charging\"}"), 1.0);
        assert_eq!(sample(&text, "evcharge_cps{state=\"disconnected\"}"), 0.0);
        assert!(text.contains("# TYPE evcharge_telemetry_latency_seconds histogram"));
    }
}

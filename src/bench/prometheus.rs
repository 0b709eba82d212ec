//! The central's metrics as Prometheus text: series by name, and histograms by bucket.

/// One reading of `GET /api/metrics`.
pub struct Metrics {
    samples: Vec<(String, f64)>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                Some((name.to_owned(), value.parse().ok()?))
            })
            .collect();
        Metrics { samples }
    }

    /// The value of one series, named with its labels: `evcharge_cps{state="charging"}`.
    pub fn value(&self, series: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|(name, _)| name == series)
            .map(|(_, v)| *v)
    }

    /// The sum over every series of the metric `name`, whatever its labels.
    pub fn sum_of(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(series, _)| series == name || series.starts_with(&format!("{name}{{")))
            .map(|(_, v)| v)
            .sum()
    }

    /// The sum over every series of the metric `name` whose `topic` label ends with
    /// `topic` (topics may carry a network's prefix).
    pub fn sum_of_topic(&self, name: &str, topic: &str) -> f64 {
        let prefix = format!("{name}{{");
        let label = format!("{topic}\"");
        self.samples
            .iter()
            .filter(|(series, _)| {
                series.strip_prefix(&prefix).is_some_and(|labels| {
                    labels
                        .split(',')
                        .filter_map(|l| l.strip_prefix("topic=\""))
                        .any(|t| t.strip_suffix('}').unwrap_or(t).ends_with(&label))
                })
            })
            .map(|(_, v)| v)
            .sum()
    }

    pub fn histogram(&self, name: &str) -> Buckets {
        let prefix = format!("{name}_bucket{{le=\"");
        let bounds = self
            .samples
            .iter()
            .filter_map(|(series, count)| {
                let le = series.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                let bound = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().ok()?
                };
                Some((bound, *count))
            })
            .collect();
        Buckets { cumulative: bounds }
    }
}

/// A Prometheus histogram: cumulative counts by upper bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    cumulative: Vec<(f64, f64)>,
}

impl Buckets {
    /// The counts of `self` that came after `earlier`.
    pub fn minus(&self, earlier: &Buckets) -> Buckets {
        let cumulative = self
            .cumulative
            .iter()
            .map(|(bound, count)| {
                let before = earlier
                    .cumulative
                    .iter()
                    .find(|(b, _)| b == bound)
                    .map_or(0.0, |(_, c)| *c);
                (*bound, count - before)
            })
            .collect();
        Buckets { cumulative }
    }

    pub fn count(&self) -> f64 {
        self.cumulative.last().map_or(0.0, |(_, c)| *c)
    }

    /// The `q` quantile, interpolated within its bucket as Prometheus does.
    pub fn quantile(&self, q: f64) -> f64 {
        let total = self.count();
        if total <= 0.0 {
            return 0.0;
        }
        let rank = q * total;
        let mut lower = (0.0, 0.0);
        for &(bound, count) in &self.cumulative {
            if count >= rank {
                if bound.is_infinite() {
                    return lower.0;
                }
                let share = (rank - lower.1) / (count - lower.1).max(f64::MIN_POSITIVE);
                return lower.0 + (bound - lower.0) * share;
            }
            lower = (bound, count);
        }
        lower.0
    }

    /// The upper bound of the highest bucket anything fell in.
    pub fn max_bound(&self) -> f64 {
        let total = self.count();
        self.cumulative
            .iter()
            .find(|(_, count)| *count >= total)
            .map_or(0.0, |(bound, _)| *bound)
    }

    /// How many fell above `bound` (a bucket bound).
    pub fn above(&self, bound: f64) -> f64 {
        let within = self
            .cumulative
            .iter()
            .find(|(b, _)| *b >= bound)
            .map_or(0.0, |(_, c)| *c);
        self.count() - within
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\n\
        h_bucket{le=\"0.01\"} 50\nh_bucket{le=\"0.1\"} 90\nh_bucket{le=\"1\"} 100\nh_bucket{le=\"+Inf\"} 100\n\
        h_count 100\nlag{topic=\"a\"} 3\nlag{topic=\"b\"} 4\n";

    #[test]
    fn quantiles_come_from_the_buckets() {
        let metrics = Metrics::parse(TEXT);
        let h = metrics.histogram("h");
        assert_eq!(h.count(), 100.0);
        assert!((h.quantile(0.5) - 0.01).abs() < 1e-9);
        assert!((h.quantile(0.7) - 0.055).abs() < 1e-9);
        assert_eq!(h.max_bound(), 1.0);
        assert_eq!(h.above(0.1), 10.0);
        assert_eq!(metrics.sum_of("lag"), 7.0);
        let earlier = Metrics::parse("h_bucket{le=\"0.01\"} 50\nh_bucket{le=\"0.1\"} 50\nh_bucket{le=\"1\"} 50\nh_bucket{le=\"+Inf\"} 50\n");
        let window = h.minus(&earlier.histogram("h"));
        assert_eq!(window.count(), 50.0);
        assert_eq!(window.max_bound(), 1.0);
        assert!((window.quantile(0.8) - 0.1).abs() < 1e-9);
    }

    #[test]
    fn series_are_picked_by_topic_whatever_its_prefix() {
        let metrics = Metrics::parse(
            "lag{topic=\"cp.events\"} 3\nlag{topic=\"n1.cp.events\"} 4\nlag{topic=\"driver.requests\"} 5\nlag_other{topic=\"cp.events\"} 6\n",
        );
        assert_eq!(metrics.sum_of_topic("lag", "cp.events"), 7.0);
        assert_eq!(metrics.sum_of_topic("lag", "requests"), 5.0);
        assert_eq!(metrics.sum_of_topic("lag", "events.x"), 0.0);
    }
}

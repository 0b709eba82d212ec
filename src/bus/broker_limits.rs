//! What the broker says of its own limits, for settings that must keep within them.

use super::context::BusContext;
use super::Bus;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use std::sync::Arc;
use std::time::Duration;

/// Kafka's broker setting bounding a consumer group member's session from below.
const MIN_SESSION: &str = "group.min.session.timeout.ms";

impl Bus {
    /// The shortest group session the broker takes (its `group.min.session.timeout.ms`), or
    /// `None` if it does not say: brokers without DescribeConfigs (the embedded one) or
    /// without that setting (tansu 0.6), or none answering within a few seconds.
    pub async fn min_group_session(&self) -> Option<Duration> {
        let admin: Arc<AdminClient<BusContext>> = Arc::new(
            self.client_config()
                .set("log_level", "0")
                .create_with_context(self.context.clone())
                .ok()?,
        );
        // Any broker will do: every broker of a cluster has the same group settings.
        let probe = admin.clone();
        let broker = tokio::task::spawn_blocking(move || {
            probe
                .inner()
                .fetch_metadata(None, Duration::from_secs(5))
                .ok()
                .and_then(|m| m.brokers().first().map(|b| b.id()))
        })
        .await
        .ok()??;
        let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(3)));
        let described = admin
            .describe_configs(&[ResourceSpecifier::Broker(broker)], &options)
            .await
            .ok()?;
        let config = described.into_iter().next()?.ok()?;
        let millis = config
            .get(MIN_SESSION)?
            .value
            .as_deref()?
            .parse::<u64>()
            .ok()?;
        Some(Duration::from_millis(millis))
    }
}

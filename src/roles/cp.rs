//! `evcharge cp`: a whole charging point, engine and monitor, in one process.

use crate::actors::Monitor;
use crate::configuration::Settings;
use actix::Actor;

pub async fn run(mut settings: Settings) -> anyhow::Result<()> {
    let (refusals, refused) = tokio::sync::mpsc::unbounded_channel();
    let (engine, address) = super::engine::start_with_address(&settings, refusals.clone()).await?;
    // The monitor checks this process's own engine over the real health-check socket.
    settings.monitor.engine = address.to_string();
    let monitor = Monitor::new(settings.cp.clone(), settings.monitor.clone(), refusals).start();
    super::serve_monitor_page(&settings, monitor)?;
    super::serve_control(&settings, "cp", Some(engine.clone()))?;
    if settings.engine.interactive {
        super::engine::read_keyboard(engine);
    }
    super::until_stopped_or_refused(refused).await
}

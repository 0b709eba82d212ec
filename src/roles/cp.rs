//! `evcharge cp`: a whole charging point, engine and monitor, in one process.

use crate::actors::Monitor;
use crate::configuration::Settings;
use actix::Actor;

pub async fn run(mut settings: Settings) -> anyhow::Result<()> {
    let (engine, address) = super::engine::start_with_address(&settings).await?;
    // The monitor checks this process's own engine over the real health-check socket.
    settings.monitor.engine = address.to_string();
    let (gave_up, refused) = tokio::sync::oneshot::channel();
    Monitor::new(settings.cp.clone(), settings.monitor.clone(), gave_up).start();
    super::serve_control(&settings, "cp", Some(engine.clone()))?;
    if settings.engine.interactive {
        super::engine::read_keyboard(engine);
    }
    super::until_stopped_or_refused(refused).await
}

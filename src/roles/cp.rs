//! `evcharge cp`: a whole charging point, engine and monitor, in one process.

use crate::actors::Monitor;
use crate::configuration::Settings;
use actix::Actor;

pub async fn run(mut settings: Settings) -> anyhow::Result<()> {
    let (engine, address) = super::engine::start_with_address(&settings).await?;
    // The monitor checks this process's own engine over the real health-check socket.
    settings.monitor.engine = address.to_string();
    Monitor::new(settings.cp.clone(), settings.monitor.clone()).start();
    super::serve_control(&settings, "cp", Some(engine.clone()))?;
    if settings.engine.interactive {
        super::engine::read_keyboard(engine);
    }
    super::shutdown_signal().await;
    Ok(())
}

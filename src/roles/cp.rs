//! `evcharge cp`: a whole charging point, engine and monitor, in one process.

use crate::actors::Monitor;
use crate::configuration::Settings;
use actix::Actor;

pub async fn run(mut settings: Settings) -> anyhow::Result<()> {
    let identity = super::cp_identity(&settings)?;
    // Bound before anything starts, so that a bad address stops the process cleanly.
    let page = super::bind_monitor_page(&settings)?;
    let central = super::tls::central_link(&settings)?;
    let (refusals, refused) = tokio::sync::mpsc::unbounded_channel();
    let (engine, address) = super::engine::start_with_address(&settings, refusals.clone()).await?;
    // The monitor checks this process's own engine over the real health-check socket.
    settings.monitor.engine = address.to_string();
    let monitor = Monitor::new(identity, settings.monitor.clone(), refusals)
        .allowing_crash(settings.control.allow_crash)
        .linking_through(central)
        .start();
    if let Some(page) = page {
        crate::web::monitor::serve(page, monitor)?;
    }
    super::serve_control(&settings, "cp", Some(engine.clone()))?;
    if settings.engine.interactive {
        super::engine::read_keyboard(engine);
    }
    super::until_stopped_or_refused(refused).await
}

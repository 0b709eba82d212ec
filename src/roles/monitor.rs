//! `evcharge monitor`.

use crate::actors::Monitor;
use crate::configuration::Settings;
use actix::Actor;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let identity = super::cp_identity(&settings)?;
    // Everything that can fail on a bad address comes before the monitor starts.
    let page = super::bind_monitor_page(&settings)?;
    let central = super::tls::central_link(&settings)?;
    super::serve_control(&settings, "monitor", None)?;
    let (gave_up, refused) = tokio::sync::mpsc::unbounded_channel();
    let monitor = Monitor::new(identity, settings.monitor.clone(), gave_up)
        .allowing_crash(settings.control.allow_crash)
        .linking_through(central)
        .start();
    if let Some(page) = page {
        crate::web::monitor::serve(page, monitor)?;
    }
    super::until_stopped_or_refused(refused).await
}

//! `evcharge monitor`.

use crate::actors::Monitor;
use crate::configuration::Settings;
use actix::Actor;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    settings.require_cp_id()?;
    let (gave_up, refused) = tokio::sync::mpsc::unbounded_channel();
    let monitor = Monitor::new(settings.cp.clone(), settings.monitor.clone(), gave_up).start();
    super::serve_monitor_page(&settings, monitor)?;
    super::serve_control(&settings, "monitor", None)?;
    super::until_stopped_or_refused(refused).await
}

//! `evcharge monitor`.

use crate::actors::Monitor;
use crate::configuration::Settings;
use actix::Actor;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    settings.require_cp_id()?;
    Monitor::new(settings.cp.clone(), settings.monitor.clone()).start();
    super::serve_control(&settings, "monitor", None)?;
    super::shutdown_signal().await;
    Ok(())
}

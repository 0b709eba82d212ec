//! `evcharge monitor`.

use crate::actors::Monitor;
use crate::configuration::Settings;
use actix::Actor;

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    settings.require_cp_id()?;
    Monitor::new(settings.cp.clone(), settings.monitor.clone()).start();
    super::shutdown_signal().await;
    Ok(())
}

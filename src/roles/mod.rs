//! One runner per subcommand: each reads its settings, starts its actors and runs until
//! stopped.

pub mod broker;
pub mod central;
pub mod cp;
pub mod demo;
pub mod driver;
pub mod engine;
pub mod monitor;

/// Starts the process's control endpoint when `control.listen` is set.
pub fn serve_control(
    settings: &crate::configuration::Settings,
    role: &'static str,
    engine: Option<actix::Addr<crate::actors::Engine>>,
) -> anyhow::Result<()> {
    let Some(listen) = &settings.control.listen else {
        return Ok(());
    };
    let id = match role {
        "driver" => settings.driver.id.clone(),
        _ => settings.cp.id.clone(),
    };
    let target = crate::web::control::ControlTarget {
        role,
        id,
        allow_crash: settings.control.allow_crash,
        engine,
    };
    crate::web::control::serve(listen, target)?;
    Ok(())
}

/// Runs until the process is asked to stop (Ok) or its monitor is refused for good (Err).
pub async fn until_stopped_or_refused(
    refused: tokio::sync::oneshot::Receiver<String>,
) -> anyhow::Result<()> {
    tokio::select! {
        _ = shutdown_signal() => Ok(()),
        Ok(why) = refused => Err(anyhow::anyhow!("{why}; stopping")),
    }
}

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

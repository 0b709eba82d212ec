//! One runner per subcommand: each reads its settings, starts its actors and runs until
//! stopped.

pub mod broker;
pub mod central;
pub mod cp;
pub mod demo;
pub mod driver;
pub mod engine;
pub mod monitor;

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM).
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler can be installed");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

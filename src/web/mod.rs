//! Every HTTP side (the central's console and API, the driver dashboard, the control
//! endpoints): the only module that knows actix-web.

mod api;
pub mod assets;
pub mod broker_control;
pub mod control;
pub mod demo_control;
pub mod driver_dashboard;
mod driver_socket;
pub mod startup;

pub use startup::{AppState, Application};

/// Binds `address` and serves the routes `configure` sets up, in the background of the
/// current actix system, for the small control endpoints. Returns the bound port.
pub(crate) fn serve_in_background<F>(address: &str, what: &str, configure: F) -> anyhow::Result<u16>
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
{
    use anyhow::Context;
    let listener = std::net::TcpListener::bind(address)
        .with_context(|| format!("cannot listen for {what} on {address}"))?;
    let port = listener.local_addr()?.port();
    serve_listener_in_background(listener, what, configure)?;
    Ok(port)
}

/// Serves the routes `configure` sets up on an already bound `listener`, in the background
/// of the current actix system.
pub(crate) fn serve_listener_in_background<F>(
    listener: std::net::TcpListener,
    what: &str,
    configure: F,
) -> anyhow::Result<()>
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
{
    let server =
        actix_web::HttpServer::new(move || actix_web::App::new().configure(configure.clone()))
            .workers(1)
            .disable_signals()
            .listen(listener)?
            .run();
    let what = what.to_owned();
    actix::spawn(async move {
        if let Err(e) = server.await {
            log::error!("the {what} endpoint failed: {e}");
        }
    });
    Ok(())
}

//! The central's HTTP side: the only module that knows actix-web.

mod api;
pub mod assets;
mod auth;
pub mod broker_control;
mod console;
mod console_socket;
pub mod control;
pub mod demo_control;
pub mod monitor_page;
mod monitor_socket;
pub mod startup;

pub use startup::{AppState, Application};

/// Binds `address` and serves the routes `configure` sets up, in the background of the
/// current actix system, for the small control endpoints. Returns the bound port.
pub(crate) fn serve_in_background<F>(address: &str, what: &str, configure: F) -> anyhow::Result<u16>
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
{
    serve_listener_in_background(bind(address, what)?, what, configure)
}

/// Binds `address`, saying what for if it cannot.
pub(crate) fn bind(address: &str, what: &str) -> anyhow::Result<std::net::TcpListener> {
    use anyhow::Context;
    std::net::TcpListener::bind(address)
        .with_context(|| format!("cannot listen for {what} on {address}"))
}

/// Like [`serve_in_background`], on a listener bound beforehand.
pub(crate) fn serve_listener_in_background<F>(
    listener: std::net::TcpListener,
    what: &str,
    configure: F,
) -> anyhow::Result<u16>
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
{
    let port = listener.local_addr()?.port();
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
    Ok(port)
}

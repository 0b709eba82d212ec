//! Every HTTP side: the only module that knows actix-web. One folder per page and the
//! process that serves it:
//!
//! - [`console`]: the central's admin console and JSON API;
//! - [`driver`]: a driver's dashboard, served by the driver process;
//! - [`monitor`]: a CP's monitor page, served by the monitor;
//! - [`control`]: the small control endpoints of every process (crash injection, the
//!   demo's, the broker's and the fleets'), each behind the process's control token.

pub mod api_error;
pub mod assets;
pub mod console;
pub mod control;
pub mod cross_site;
pub mod driver;
pub mod monitor;

pub use console::{AppState, Application};

/// Binds `address`, saying what for if it cannot.
pub(crate) fn bind(address: &str, what: &str) -> anyhow::Result<std::net::TcpListener> {
    use anyhow::Context;
    std::net::TcpListener::bind(address)
        .with_context(|| format!("cannot listen for {what} on {address}"))
}

/// Serves the routes `configure` sets up on an already bound `listener`, in the background
/// of the current actix system, for the small servers (a control endpoint, behind its lock,
/// or a driver's dashboard). Returns the bound port.
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

/// The host part of a listening address as a person can open it in a browser: a wildcard
/// address is shown as loopback.
pub fn shown_host(addr: &str) -> &str {
    match addr.rsplit_once(':') {
        Some(("0.0.0.0", _)) | Some(("", _)) | Some(("[::]", _)) => "127.0.0.1",
        Some((host, _)) => host,
        None => addr,
    }
}

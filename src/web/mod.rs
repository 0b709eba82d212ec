//! Every HTTP side: the only module that knows actix-web. One folder per page and the
//! process that serves it:
//!
//! - [`console`]: the central's admin console and JSON API;
//! - [`driver`]: a driver's dashboard, served by the driver process;
//! - [`monitor`]: a CP's monitor page, served by the monitor;
//! - [`control`]: the small control endpoints of every process (crash injection, the
//!   demo's, the broker's and the fleets'), each behind the process's control token.
//!
//! The console, the dashboard and the monitor page serve HTTPS only when their process has a
//! certificate ([`ServerTls`]), plain HTTP otherwise, with a warning at start. The control
//! endpoints listen on loopback and stay plain HTTP.

pub mod api_error;
pub mod assets;
pub mod console;
pub mod control;
pub mod cross_site;
pub mod driver;
pub mod gateway;
pub mod monitor;

pub use console::{AppState, Application};

/// The TLS a listener serves with: HTTPS only with a configuration, plain HTTP without.
pub type ServerTls = Option<std::sync::Arc<rustls::ServerConfig>>;

/// `https` or `http`, as the listener serves.
pub fn scheme(tls: &ServerTls) -> &'static str {
    if tls.is_some() {
        "https"
    } else {
        "http"
    }
}

/// Logs where `what` is served, `what` on `url`; with a warning first when in plain text.
pub(crate) fn announce(what: &str, tls: &ServerTls, host: &str, port: u16, path: &str) -> String {
    let url = format!("{}://{host}:{port}{path}", scheme(tls));
    if tls.is_none() {
        crate::tls::warn_plain_text(what, &format!("{host}:{port}"));
    }
    log::info!("{what} on {url}");
    url
}
/// Binds `address`, saying what for if it cannot.
pub(crate) fn bind(address: &str, what: &str) -> anyhow::Result<std::net::TcpListener> {
    use anyhow::Context;
    std::net::TcpListener::bind(address)
        .with_context(|| format!("cannot listen for {what} on {address}"))
}

/// Serves the routes `configure` sets up on an already bound `listener`, over `tls` if
/// given, in the background of the current actix system, for the small servers (a control
/// endpoint, behind its lock, or a driver's dashboard). Returns the bound port.
pub(crate) fn serve_listener_in_background<F>(
    listener: std::net::TcpListener,
    what: &str,
    tls: &ServerTls,
    configure: F,
) -> anyhow::Result<u16>
where
    F: Fn(&mut actix_web::web::ServiceConfig) + Clone + Send + 'static,
{
    let port = listener.local_addr()?.port();
    let server =
        actix_web::HttpServer::new(move || actix_web::App::new().configure(configure.clone()))
            .workers(1)
            .disable_signals();
    let server = listen!(server, listener, tls)?.run();
    let what = what.to_owned();
    actix::spawn(async move {
        if let Err(e) = server.await {
            log::error!("the {what} endpoint failed: {e}");
        }
    });
    Ok(port)
}

/// `$server` listening on `$listener`, over TLS only when `$tls` (a [`ServerTls`]) holds a
/// configuration. (A macro: `HttpServer`'s bounds name types actix-web does not export.)
macro_rules! listen {
    ($server:expr, $listener:expr, $tls:expr) => {
        match $tls {
            // actix adds its ALPN protocols to a copy of its own.
            Some(config) => $server.listen_rustls_0_23($listener, config.as_ref().clone()),
            None => $server.listen($listener),
        }
    };
}
pub(crate) use listen;

/// The host part of a listening address as a person can open it in a browser: a wildcard
/// address is shown as loopback.
pub fn shown_host(addr: &str) -> &str {
    match addr.rsplit_once(':') {
        Some(("0.0.0.0", _)) | Some(("", _)) | Some(("[::]", _)) => "127.0.0.1",
        Some((host, _)) => host,
        None => addr,
    }
}

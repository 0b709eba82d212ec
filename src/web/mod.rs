//! Every HTTP side (the central's console and API, the driver dashboard, the control
//! endpoints): the only module that knows actix-web.

mod api;
pub mod assets;
mod auth;
pub mod broker_control;
mod console;
mod console_socket;
pub mod control;
pub mod demo_control;
pub mod driver_dashboard;
mod driver_socket;
pub mod fleet_control;
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

/// Serves the routes `configure` sets up on an already bound `listener`, in the background
/// of the current actix system. Returns the bound port.
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

/// Whether a request comes from another site: the browser says so (`Sec-Fetch-Site:
/// cross-site`, `same-site`), or its `Origin` is not the host it was sent to.
pub fn is_cross_site(origin: Option<&str>, host: Option<&str>, fetch_site: Option<&str>) -> bool {
    // Only the page itself (`same-origin`) or the person (`none`: typed, bookmarked) may act.
    if fetch_site.is_some_and(|site| {
        let site = site.trim();
        !site.eq_ignore_ascii_case("same-origin") && !site.eq_ignore_ascii_case("none")
    }) {
        return true;
    }
    let Some(origin) = origin else {
        // Not from a browser page (a script, curl): nothing to forge.
        return false;
    };
    // `null` (a sandboxed or file page) has no authority and matches no host.
    let authority = origin
        .trim()
        .split_once("://")
        .map_or("", |(_, rest)| rest.trim_end_matches('/'));
    match host {
        Some(host) => authority.is_empty() || !authority.eq_ignore_ascii_case(host.trim()),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_site_requests_pass_and_foreign_ones_do_not() {
        let host = Some("127.0.0.1:8001");
        // A script without Origin, and the page itself.
        assert!(!is_cross_site(None, host, None));
        assert!(!is_cross_site(
            Some("http://127.0.0.1:8001"),
            host,
            Some("same-origin")
        ));
        assert!(!is_cross_site(
            Some("HTTP://LOCALHOST:8001"),
            Some("localhost:8001"),
            None
        ));
        // Another site, another port, a sandboxed page, no Host at all.
        assert!(is_cross_site(Some("http://evil.example"), host, None));
        assert!(is_cross_site(Some("http://127.0.0.1:8002"), host, None));
        assert!(is_cross_site(Some("null"), host, None));
        assert!(is_cross_site(Some("http://127.0.0.1:8001"), None, None));
        // The browser's own word.
        assert!(is_cross_site(None, host, Some("cross-site")));
        assert!(is_cross_site(None, host, Some("same-site")));
        assert!(!is_cross_site(None, host, Some("none")));
    }
}

//! The lock on every control endpoint (an engine's, a monitor's, a driver's, the broker's,
//! the demo's, a fleet's): a request must name this server in its `Host` (a page of another
//! site that rebinds its name to this address does not), must not come from a browser page
//! of another site, and must carry the process's control token. Checked in that order,
//! before any route; refusals are JSON with the reason.

use crate::accounts::credentials::same_secret;
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpRequest, HttpResponse};
use std::net::IpAddr;
use std::sync::Arc;

/// What opens a control endpoint bound to one address.
#[derive(Clone)]
pub struct ControlLock(Arc<Inner>);

struct Inner {
    token: String,
    /// The address the endpoint is bound to (unspecified: every address of the machine).
    bound: IpAddr,
}

impl ControlLock {
    /// The lock of an endpoint listening on `listener`, opened by `token`.
    pub fn new(token: &str, listener: &std::net::TcpListener) -> std::io::Result<ControlLock> {
        Ok(ControlLock(Arc::new(Inner {
            token: token.to_owned(),
            bound: listener.local_addr()?.ip(),
        })))
    }

    /// Why `req` may not pass, as its status and words; `None` when it may.
    fn refusal(&self, req: &HttpRequest) -> Option<(StatusCode, String)> {
        let host = req
            .headers()
            .get(header::HOST)
            .map(|h| h.to_str().unwrap_or(""));
        if let Some(host) = host.filter(|h| !self.answers_to(h)) {
            return Some((
                StatusCode::MISDIRECTED_REQUEST,
                format!(
                    "this control endpoint answers to its own address only, not to Host {host:?}"
                ),
            ));
        }
        if crate::web::cross_site::is_cross_site_request(req) {
            return Some((
                StatusCode::FORBIDDEN,
                "cross-site requests are refused".into(),
            ));
        }
        let offered = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")));
        match offered {
            None => Some((
                StatusCode::UNAUTHORIZED,
                "this control endpoint needs its token: send Authorization: Bearer <token>".into(),
            )),
            Some(Some(token)) if same_secret(token.trim(), &self.0.token) => None,
            Some(_) => Some((
                StatusCode::UNAUTHORIZED,
                "this control token is not valid".into(),
            )),
        }
    }

    /// Whether `host` (a `Host` header) names this endpoint: `localhost`, a loopback address,
    /// the address it is bound to, or — bound to every address — any address. A name other
    /// than `localhost` never does: that is what a rebinding page would send.
    fn answers_to(&self, host: &str) -> bool {
        let name = match host.strip_prefix('[') {
            Some(rest) => rest.split_once(']').map_or("", |(inside, _)| inside),
            None => host.rsplit_once(':').map_or(host, |(name, _)| name),
        };
        if name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        let Ok(ip) = name.parse::<IpAddr>() else {
            return false;
        };
        ip.is_loopback() || self.0.bound.is_unspecified() || ip == self.0.bound
    }
}

/// The routes `configure` sets up, behind `lock`; any other path is a JSON 404, behind the
/// lock too.
pub(super) fn locked<F>(
    lock: ControlLock,
    configure: F,
) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    move |cfg| {
        // The lock goes with the middleware itself: a scope's app data is not yet there when
        // its middleware runs.
        let lock = lock.clone();
        cfg.service(
            web::scope("")
                .wrap(from_fn(move |req: ServiceRequest, next: Next<BoxBody>| {
                    let lock = lock.clone();
                    async move { guard(&lock, req, next).await }
                }))
                .configure(configure.clone())
                .default_service(web::to(not_found)),
        );
    }
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({ "error": "no such control endpoint" }))
}

async fn guard(
    lock: &ControlLock,
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if let Some((status, why)) = lock.refusal(req.request()) {
        log::warn!(
            "control endpoint: refused {} {} from {}: {why}",
            req.method(),
            req.path(),
            req.peer_addr()
                .map_or_else(|| "unknown".into(), |a| a.ip().to_string())
        );
        let mut response = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        let response = response.json(serde_json::json!({ "error": why }));
        return Ok(req.into_response(response));
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn lock(bound: &str) -> ControlLock {
        ControlLock(Arc::new(Inner {
            token: "the-right-token-0123".into(),
            bound: bound.parse().unwrap(),
        }))
    }

    fn status(lock: &ControlLock, req: TestRequest) -> Option<u16> {
        lock.refusal(&req.to_http_request())
            .map(|(status, _)| status.as_u16())
    }

    #[test]
    fn only_the_token_from_this_site_at_this_address_opens() {
        let lock = lock("127.0.0.1");
        let good = || {
            TestRequest::post()
                .insert_header(("Host", "127.0.0.1:8010"))
                .insert_header(("Authorization", "Bearer the-right-token-0123"))
        };
        assert_eq!(status(&lock, good()), None);
        assert_eq!(
            status(&lock, good().insert_header(("Host", "localhost:8010"))),
            None
        );
        assert_eq!(
            status(&lock, good().insert_header(("Host", "[::1]:8010"))),
            None
        );
        // A rebound name, another address.
        assert_eq!(
            status(&lock, good().insert_header(("Host", "evil.example:8010"))),
            Some(421)
        );
        assert_eq!(
            status(&lock, good().insert_header(("Host", "10.1.2.3:8010"))),
            Some(421)
        );
        // Another site's page, even with the token.
        assert_eq!(
            status(
                &lock,
                good().insert_header(("Origin", "http://evil.example"))
            ),
            Some(403)
        );
        assert_eq!(
            status(
                &lock,
                good().insert_header(("Sec-Fetch-Site", "cross-site"))
            ),
            Some(403)
        );
        // No token, a wrong one, a malformed header.
        let bare = TestRequest::post().insert_header(("Host", "127.0.0.1:8010"));
        assert_eq!(status(&lock, bare), Some(401));
        for wrong in [
            "Bearer the-right-token-012",
            "Bearer ",
            "Basic dGhlLXJpZ2h0LXRva2Vu",
        ] {
            let req = TestRequest::post()
                .insert_header(("Host", "127.0.0.1:8010"))
                .insert_header(("Authorization", wrong));
            assert_eq!(status(&lock, req), Some(401), "{wrong}");
        }
    }

    #[test]
    fn bound_to_every_address_any_address_but_no_name_is_its_own() {
        let lock = lock("0.0.0.0");
        let host = |host: &str| {
            TestRequest::get()
                .insert_header(("Host", host.to_owned()))
                .insert_header(("Authorization", "Bearer the-right-token-0123"))
        };
        assert_eq!(status(&lock, host("192.0.2.10:8010")), None);
        assert_eq!(status(&lock, host("192.0.2.10")), None);
        assert_eq!(status(&lock, host("control.example:8010")), Some(421));
    }
}

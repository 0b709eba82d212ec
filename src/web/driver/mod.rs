//! The driver dashboard (SPEC §8, default port 8001), served by the driver process: the page,
//! its JSON API and its WebSocket. Every action goes through the [`Driver`] actor, so the
//! page and the keyboard behave alike; the password is checked by the central.
//!
//! Security: every `/api` endpoint but `login` needs the session cookie (a random 256-bit
//! token, kept in memory, `HttpOnly; SameSite=Strict`); every POST and the WebSocket refuse
//! cross-site requests. Sign-ins are limited per browser address here, before they reach
//! the central, which limits them again per driver and per address.

mod socket;

use crate::accounts::credentials::{digest, new_secret};
use crate::accounts::login_limit::{LoginLimiter, Policy, TooManyAttempts};
use crate::actors::driver::session::{
    CurrentSupply, DriverCommandError, FetchAvailable, FetchHistory, RequestSupply, SignIn,
    StopMySupply,
};
use crate::actors::Driver;
use crate::messages::Secret;
use crate::web::assets;
use actix::{Addr, MailboxError};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::{header, StatusCode};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse, ResponseError};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use socket::DriverSocket;
use std::collections::HashMap;
use std::future::{ready, Ready};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A browser stays signed in this long.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// At most this many browsers signed in at once; the oldest is signed out beyond.
const MAX_SESSIONS: usize = 256;

/// Binds `address` and serves the dashboard of `driver` in the background, over `tls` if
/// given (its cookie `Secure` then); says where and returns the port.
pub fn serve(
    address: &str,
    driver_id: &str,
    tls: &crate::web::ServerTls,
) -> anyhow::Result<(u16, DriverSlot)> {
    use anyhow::Context;
    let listener = std::net::TcpListener::bind(address)
        .with_context(|| format!("cannot listen for the driver dashboard on {address}"))?;
    let port = listener.local_addr()?.port();
    let slot = DriverSlot::default();
    let dashboard = web::Data::new(Dashboard {
        driver: slot.clone(),
        driver_id: driver_id.to_owned(),
        page: assets::DRIVER_HTML.replace("{{driver_id}}", &html_escape(driver_id)),
        // Cookies are shared by every port of a host: the port keeps two dashboards apart.
        cookie_name: format!("evcharge_driver_{port}"),
        sessions: SignedInBrowsers::default(),
        sign_ins: LoginLimiter::new(Policy::default()),
        secure: tls.is_some(),
    });
    crate::web::serve_listener_in_background(listener, "driver dashboard", tls, move |cfg| {
        cfg.app_data(dashboard.clone())
            .app_data(web::PayloadConfig::new(64 * 1024))
            .configure(routes);
    })?;
    let host = crate::web::shown_host(address);
    crate::web::announce("driver dashboard", tls, host, port, "/");
    Ok((port, slot))
}

/// Where the dashboard finds its driver once the driver has joined the network. The page is
/// served from the start, so that a person sees why nothing works yet (no broker, say).
#[derive(Clone, Default)]
pub struct DriverSlot(std::sync::Arc<std::sync::OnceLock<Addr<Driver>>>);

impl DriverSlot {
    /// The driver has joined the network: the dashboard works from now on.
    pub fn fill(&self, driver: Addr<Driver>) {
        let _ = self.0.set(driver);
    }

    fn get(&self) -> Result<&Addr<Driver>, DashboardError> {
        self.0.get().ok_or_else(|| {
            DashboardError::Unavailable(
                "this driver is still joining the network: it cannot reach the Kafka broker or \
                 the central yet"
                    .into(),
            )
        })
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(page))
        .route("/assets/driver.js", web::get().to(script))
        .configure(assets::routes)
        .service(
            web::scope("/api")
                .route("/ready", web::get().to(readiness))
                .route("/login", web::post().to(login))
                .route("/logout", web::post().to(logout))
                .route("/me", web::get().to(me))
                .route("/available", web::get().to(available))
                .route("/request", web::post().to(request))
                .route("/stop", web::post().to(stop))
                .route("/state", web::get().to(state))
                .route("/history", web::get().to(history)),
        )
        .route("/ws", web::get().to(live))
        .default_service(web::to(not_found));
}

/// What every handler of the dashboard reaches.
pub struct Dashboard {
    driver: DriverSlot,
    driver_id: String,
    /// The page with the driver id filled in.
    page: String,
    cookie_name: String,
    /// Served over TLS: the cookie never travels in clear.
    secure: bool,
    sessions: SignedInBrowsers,
    /// Wrong passwords per browser address.
    sign_ins: std::sync::Arc<LoginLimiter>,
}

/// Errors of the dashboard, each with its status and a JSON body `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("sign in first")]
    NotSignedIn,
    #[error("{0}")]
    Refused(String),
    #[error("cross-site requests are refused")]
    CrossSite,
    #[error("{0}")]
    TooManyAttempts(TooManyAttempts),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("the driver is not running: {0}")]
    DriverGone(#[from] MailboxError),
    #[error("no such endpoint")]
    NotFound,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<DriverCommandError> for DashboardError {
    fn from(e: DriverCommandError) -> Self {
        match e {
            DriverCommandError::Busy(_) | DriverCommandError::NothingToStop => {
                DashboardError::Conflict(e.to_string())
            }
            DriverCommandError::NoAnswer(_) => DashboardError::Unavailable(e.to_string()),
        }
    }
}

impl ResponseError for DashboardError {
    fn status_code(&self) -> StatusCode {
        match self {
            DashboardError::NotSignedIn | DashboardError::Refused(_) => StatusCode::UNAUTHORIZED,
            DashboardError::CrossSite => StatusCode::FORBIDDEN,
            DashboardError::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            DashboardError::BadRequest(_) => StatusCode::BAD_REQUEST,
            DashboardError::Conflict(_) => StatusCode::CONFLICT,
            DashboardError::Unavailable(_) | DashboardError::DriverGone(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            DashboardError::NotFound => StatusCode::NOT_FOUND,
            DashboardError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]));
        let mut body = serde_json::json!({ "error": self.to_string() });
        if let DashboardError::TooManyAttempts(refused) = self {
            let seconds = refused.retry_after_secs();
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
            body["retry_after"] = seconds.into();
        }
        response.json(body)
    }
}

/// Browsers signed in to this dashboard: the SHA-256 of each session token (the token
/// itself is never kept) and when it was issued.
#[derive(Default)]
struct SignedInBrowsers(Mutex<HashMap<[u8; 32], Instant>>);

impl SignedInBrowsers {
    /// A new random token, now signed in.
    fn open(&self) -> Result<String, DashboardError> {
        let token = new_secret();
        let mut sessions = self.0.lock().unwrap_or_else(|p| p.into_inner());
        sessions.retain(|_, issued| issued.elapsed() < SESSION_LIFETIME);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions.iter().min_by_key(|(_, t)| **t).map(|(k, _)| *k) {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(digest(&token), Instant::now());
        Ok(token)
    }

    fn is_open(&self, token: &str) -> bool {
        let sessions = self.0.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .get(&digest(token))
            .is_some_and(|issued| issued.elapsed() < SESSION_LIFETIME)
    }

    fn close(&self, token: &str) {
        let mut sessions = self.0.lock().unwrap_or_else(|p| p.into_inner());
        sessions.remove(&digest(token));
    }
}

/// Escapes text for HTML content and attribute values.
pub fn html_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Extracting this refuses a cross-site request with 403.
pub struct SameSiteOnly;

impl FromRequest for SameSiteOnly {
    type Error = DashboardError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(if crate::web::cross_site::is_cross_site_request(req) {
            log::warn!(
                "driver dashboard: refused a cross-site {} {}",
                req.method(),
                req.path()
            );
            Err(DashboardError::CrossSite)
        } else {
            Ok(SameSiteOnly)
        })
    }
}

/// Extracting this refuses a request without a valid session cookie with 401; it holds the
/// session token.
pub struct SignedInBrowser(String);

impl FromRequest for SignedInBrowser {
    type Error = DashboardError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let signed_in = req
            .app_data::<web::Data<Dashboard>>()
            .and_then(|dashboard| {
                let token = req.cookie(&dashboard.cookie_name)?.value().to_owned();
                dashboard.sessions.is_open(&token).then_some(token)
            });
        ready(
            signed_in
                .map(SignedInBrowser)
                .ok_or(DashboardError::NotSignedIn),
        )
    }
}

/// Reads a JSON body; an empty body counts as `{}` where `T` allows it.
fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, DashboardError> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| DashboardError::BadRequest(format!("invalid JSON body: {e}")))
}

async fn page(dashboard: web::Data<Dashboard>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(header::ContentType::html())
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoCache]))
        .body(dashboard.page.clone())
}

async fn script() -> HttpResponse {
    assets::asset("text/javascript; charset=utf-8", assets::DRIVER_JS)
}

async fn not_found() -> Result<HttpResponse, DashboardError> {
    Err(DashboardError::NotFound)
}

#[derive(Deserialize)]
struct LoginBody {
    password: String,
}

/// Signs in through the central; on success a session cookie.
async fn login(
    _same_site: SameSiteOnly,
    req: HttpRequest,
    dashboard: web::Data<Dashboard>,
    body: web::Bytes,
) -> Result<HttpResponse, DashboardError> {
    let LoginBody { password } = parse_body(&body)?;
    let from = req.peer_addr().map(|a| a.ip().to_string());
    // Reserved before the central is asked: guesses sent at once cannot slip past.
    let attempt = dashboard
        .sign_ins
        .begin(&dashboard.driver_id, from.as_deref())
        .map_err(DashboardError::TooManyAttempts)?;
    let answer = dashboard
        .driver
        .get()?
        .send(SignIn {
            password: Secret::new(password),
            from,
        })
        .await??;
    if let Some(retry_after) = answer.retry_after {
        // The central's own limit: nothing was checked, nothing to count here.
        return Err(DashboardError::TooManyAttempts(TooManyAttempts {
            retry_after,
        }));
    }
    if !answer.accepted {
        attempt.failed();
        return Err(DashboardError::Refused(answer.detail));
    }
    attempt.succeeded();
    let token = dashboard.sessions.open()?;
    let cookie = Cookie::build(dashboard.cookie_name.clone(), token)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(dashboard.secure)
        .path("/")
        .finish();
    Ok(HttpResponse::Ok().cookie(cookie).json(serde_json::json!({
        "driver_id": dashboard.driver_id,
        "first_time": answer.first_time,
        "detail": answer.detail,
    })))
}

async fn logout(
    _same_site: SameSiteOnly,
    browser: SignedInBrowser,
    dashboard: web::Data<Dashboard>,
) -> HttpResponse {
    dashboard.sessions.close(&browser.0);
    let mut response =
        HttpResponse::Ok().json(serde_json::json!({ "driver_id": dashboard.driver_id }));
    let cookie = Cookie::build(dashboard.cookie_name.clone(), "")
        .path("/")
        .finish();
    let _ = response.add_removal_cookie(&cookie);
    response
}

/// `GET /api/ready`: whether the driver has joined the network (no sign-in needed).
async fn readiness(dashboard: web::Data<Dashboard>) -> Result<HttpResponse, DashboardError> {
    dashboard.driver.get()?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "ready": true,
        "driver_id": dashboard.driver_id,
    })))
}

async fn me(_browser: SignedInBrowser, dashboard: web::Data<Dashboard>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "driver_id": dashboard.driver_id }))
}

async fn available(
    _browser: SignedInBrowser,
    dashboard: web::Data<Dashboard>,
) -> Result<HttpResponse, DashboardError> {
    let cps = dashboard.driver.get()?.send(FetchAvailable).await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "driver_id": dashboard.driver_id,
        "cps": cps,
    })))
}

#[derive(Deserialize)]
struct RequestBody {
    #[serde(default)]
    cp_id: Option<String>,
}

/// A CP id as a request may name it: `None` for any CP.
fn requested_cp(cp_id: Option<String>) -> Result<Option<String>, DashboardError> {
    let Some(cp_id) = cp_id.map(|id| id.trim().to_owned()) else {
        return Ok(None);
    };
    if cp_id.is_empty() {
        return Ok(None);
    }
    crate::domain::registration::check_cp_id(&cp_id).map_err(DashboardError::BadRequest)?;
    Ok(Some(cp_id))
}

async fn request(
    _same_site: SameSiteOnly,
    _browser: SignedInBrowser,
    dashboard: web::Data<Dashboard>,
    body: web::Bytes,
) -> Result<HttpResponse, DashboardError> {
    let RequestBody { cp_id } = parse_body(&body)?;
    let cp_id = requested_cp(cp_id)?;
    let request_id = dashboard
        .driver
        .get()?
        .send(RequestSupply {
            cp_id: cp_id.clone(),
        })
        .await??;
    Ok(HttpResponse::Accepted().json(serde_json::json!({
        "request_id": request_id,
        "cp_id": cp_id,
    })))
}

async fn stop(
    _same_site: SameSiteOnly,
    _browser: SignedInBrowser,
    dashboard: web::Data<Dashboard>,
) -> Result<HttpResponse, DashboardError> {
    let cp_id = dashboard.driver.get()?.send(StopMySupply).await??;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "stopping": true, "cp_id": cp_id })))
}

async fn state(
    _browser: SignedInBrowser,
    dashboard: web::Data<Dashboard>,
) -> Result<HttpResponse, DashboardError> {
    let supply = dashboard.driver.get()?.send(CurrentSupply).await?;
    let mut view = serde_json::to_value(&supply).unwrap_or_default();
    if let serde_json::Value::Object(fields) = &mut view {
        fields.insert("driver_id".into(), dashboard.driver_id.clone().into());
    }
    Ok(HttpResponse::Ok().json(view))
}

async fn history(
    _browser: SignedInBrowser,
    dashboard: web::Data<Dashboard>,
) -> Result<HttpResponse, DashboardError> {
    let sessions = dashboard.driver.get()?.send(FetchHistory).await??;
    // Summed as integers: a sum of floats would show 12.340000000000002 €.
    use crate::domain::money::{Cents, Energy};
    let total_wh: i64 = sessions
        .iter()
        .filter_map(|s| Energy::from_kwh(s.kwh))
        .map(|e| e.0)
        .sum();
    let total_eur: Cents = sessions.iter().filter_map(|s| Cents::from_eur(s.eur)).sum();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "driver_id": dashboard.driver_id,
        "sessions": sessions,
        "total_kwh": Energy(total_wh).kwh(),
        "total_eur": total_eur.eur(),
    })))
}

/// The live link: one [`DriverSocket`] per connection.
async fn live(
    _same_site: SameSiteOnly,
    _browser: SignedInBrowser,
    dashboard: web::Data<Dashboard>,
    req: HttpRequest,
    stream: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let driver = dashboard.driver.get()?.clone();
    actix_web_actors::ws::start(DriverSocket::new(driver), &req, stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            html_escape(r#"<D1 "x" & 'y'>"#),
            "&lt;D1 &quot;x&quot; &amp; &#39;y&#39;&gt;"
        );
        assert_eq!(html_escape("D1"), "D1");
    }

    #[test]
    fn a_requested_cp_id_is_checked() {
        assert_eq!(requested_cp(None).unwrap(), None);
        assert_eq!(requested_cp(Some("  ".into())).unwrap(), None);
        assert_eq!(
            requested_cp(Some(" CP01 ".into())).unwrap().as_deref(),
            Some("CP01")
        );
        assert!(requested_cp(Some("CP#1".into())).is_err());
        assert!(requested_cp(Some("x".repeat(33))).is_err());
        assert!(requested_cp(Some("CP 1".into())).is_err());
    }

    #[test]
    fn bodies_parse_or_fail_with_400() {
        let empty: RequestBody = parse_body(b"").unwrap();
        assert_eq!(empty.cp_id, None);
        let named: RequestBody = parse_body(br#"{"cp_id":"CP01"}"#).unwrap();
        assert_eq!(named.cp_id.as_deref(), Some("CP01"));
        let bad = parse_body::<RequestBody>(b"{nope").err().unwrap();
        assert_eq!(bad.status_code(), StatusCode::BAD_REQUEST);
        let missing = parse_body::<LoginBody>(b"{}").err().unwrap();
        assert_eq!(missing.status_code(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_session_token_is_random_and_can_be_closed() {
        let browsers = SignedInBrowsers::default();
        let a = browsers.open().unwrap();
        let b = browsers.open().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(browsers.is_open(&a) && browsers.is_open(&b));
        browsers.close(&a);
        assert!(!browsers.is_open(&a));
        assert!(browsers.is_open(&b));
        assert!(!browsers.is_open("made-up"));
    }
}

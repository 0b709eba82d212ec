//! Operators log in: a session cookie for browsers, a bearer token for scripts. Every
//! state-changing request made with the cookie must come from the console's own origin.
//! Wrong passwords are limited per name and per address, counted before the password is
//! checked; a new password shuts out whoever knew the old one.

use super::AppState;
use crate::accounts::credentials::off_thread;
use crate::accounts::{AccountError, Accounts, WebSession};
use crate::web::api_error::ApiError;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::{header, Method};
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;
use std::future::{ready, Ready};

/// The browser session's cookie.
pub const SESSION_COOKIE: &str = "evcharge_session";
/// How long a browser stays logged in.
const SESSION_HOURS: i64 = 12;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/me", web::get().to(me))
        .route("/password", web::post().to(change_password))
        .route("/audit", web::get().to(audit_log));
}

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Cookie,
    Token,
}

/// Someone logged in, even with a one-time password still to change.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub name: String,
    pub via: Via,
    pub must_change_password: bool,
    /// The caller's address, for the audit log.
    pub from: String,
    /// The session cookie's secret, when logged in with one.
    cookie: Option<String>,
}

/// An operator free to operate: logged in, one-time password already changed.
#[derive(Debug, Clone)]
pub struct Operator(pub Authenticated);

impl Operator {
    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn from(&self) -> &str {
        &self.0.from
    }
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

impl FromRequest for Operator {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            authenticate(req).and_then(|who| match (who.must_change_password, who.via) {
                (false, _) => Ok(Operator(who)),
                (true, Via::Cookie) => Err(ApiError::Forbidden(
                    "choose a new password first: the one-time password only allows that".into(),
                )),
                (true, Via::Token) => Err(ApiError::Forbidden(format!(
                    "choose a new password first: {} still has a one-time password, and their \
                 tokens work only once it is changed",
                    who.name
                ))),
            }),
        )
    }
}

fn accounts(req: &HttpRequest) -> Result<&Accounts, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .map(|state| &state.accounts)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no accounts in this server")))
}

fn caller(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Refuses for the moment while the accounts are being restored (a central started with an
/// empty database): the caller is not wrong, the central is not ready.
pub(super) fn check_restored(accounts: &Accounts) -> Result<(), ApiError> {
    if accounts.restored() {
        return Ok(());
    }
    Err(ApiError::Unavailable(
        "it started with an empty database and is restoring its records from Kafka; try again \
         in a moment"
            .into(),
    ))
}

fn authenticate(req: &HttpRequest) -> Result<Authenticated, ApiError> {
    let accounts = accounts(req)?;
    check_restored(accounts)?;
    let from = caller(req);
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::Unauthorized("use `Authorization: Bearer <token>`".into()))?;
        let record = accounts
            .token(token.trim())
            .map_err(|e| ApiError::Internal(e.into()))?
            .ok_or_else(|| ApiError::Unauthorized("this API token is not valid".into()))?;
        let operator = accounts
            .operator(&record.operator)
            .map_err(|e| ApiError::Internal(e.into()))?
            .ok_or_else(|| {
                ApiError::Unauthorized(format!("no operator named {} any more", record.operator))
            })?;
        // A token made for an operator who has not yet chosen a password (`evcharge
        // operator token` right after `add`) waits for that choice.
        return Ok(Authenticated {
            name: record.operator,
            via: Via::Token,
            must_change_password: operator.must_change_password,
            from,
            cookie: None,
        });
    }
    let cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
    let session = cookie
        .as_deref()
        .map(|secret| accounts.session(secret))
        .transpose()
        .map_err(|e| ApiError::Internal(e.into()))?
        .flatten();
    let Some(WebSession { operator, .. }) = session else {
        return Err(ApiError::Unauthorized(
            "log in first (or send an API token)".into(),
        ));
    };
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state || is_websocket(req) {
        check_same_origin(req)?;
    }
    let record = accounts
        .operator(&operator)
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or_else(|| ApiError::Unauthorized(format!("no operator named {operator} any more")))?;
    Ok(Authenticated {
        name: operator,
        via: Via::Cookie,
        must_change_password: record.must_change_password,
        from,
        cookie,
    })
}

fn is_websocket(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Refuses a request a browser made on behalf of another site: its `Sec-Fetch-Site` says
/// so, or its `Origin` is not this server. (The cookie is also `SameSite=Strict`.)
pub fn check_same_origin(req: &HttpRequest) -> Result<(), ApiError> {
    if crate::web::cross_site::is_cross_site_request(req) {
        return Err(ApiError::Forbidden(
            "cross-site requests are refused".into(),
        ));
    }
    Ok(())
}

fn session_cookie(
    req: &HttpRequest,
    value: String,
    lasts: actix_web::cookie::time::Duration,
) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        // Behind TLS (directly or through a proxy that says so) the cookie never travels
        // in clear.
        .secure(req.connection_info().scheme() == "https")
        .max_age(lasts)
        .finish()
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
}

async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Json<LoginForm>,
) -> Result<HttpResponse, ApiError> {
    check_same_origin(&req)?;
    check_restored(&state.accounts)?;
    let LoginForm { name, password } = form.into_inner();
    let from = caller(&req);
    let attempt = state
        .logins
        .begin(&name, Some(&from))
        .map_err(ApiError::TooManyAttempts)?;
    let accounts = state.accounts.clone();
    let checked_name = name.clone();
    let operator = off_thread(move || accounts.verify(&checked_name, &password))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.into()))?;
    let Some(operator) = operator else {
        attempt.failed();
        state.accounts.audit(&name, &from, "failed login");
        return Err(ApiError::Unauthorized("wrong name or password".into()));
    };
    attempt.succeeded();
    let secret = state
        .accounts
        .start_session(&operator.name, chrono::Duration::hours(SESSION_HOURS))
        .map_err(|e| ApiError::Internal(e.into()))?;
    state.accounts.audit(&operator.name, &from, "logged in");
    // The session outlives a restart of the central: on disk before the cookie leaves.
    state
        .store
        .flush()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(
            &req,
            secret,
            actix_web::cookie::time::Duration::hours(SESSION_HOURS),
        ))
        .json(serde_json::json!({
            "name": operator.name,
            "must_change_password": operator.must_change_password,
        })))
}

async fn logout(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    check_same_origin(&req)?;
    if let Some(cookie) = req.cookie(SESSION_COOKIE) {
        if let Ok(Some(session)) = state.accounts.session(cookie.value()) {
            state
                .accounts
                .audit(&session.operator, &caller(&req), "logged out");
        }
        state
            .accounts
            .end_session(cookie.value())
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    Ok(HttpResponse::NoContent()
        .cookie(session_cookie(
            &req,
            String::new(),
            actix_web::cookie::time::Duration::ZERO,
        ))
        .finish())
}

async fn me(who: Authenticated) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "name": who.name,
        "must_change_password": who.must_change_password,
        "via": match who.via { Via::Cookie => "cookie", Via::Token => "token" },
    }))
}

#[derive(Deserialize)]
struct PasswordForm {
    current: String,
    new: String,
}

/// Checks the current password (limited as logins are), sets the new one, and ends every
/// other session and API token of the operator.
async fn change_password(
    who: Authenticated,
    state: web::Data<AppState>,
    form: web::Json<PasswordForm>,
) -> Result<HttpResponse, ApiError> {
    let PasswordForm { current, new } = form.into_inner();
    let attempt = state
        .logins
        .begin(&who.name, Some(&who.from))
        .map_err(ApiError::TooManyAttempts)?;
    let accounts = state.accounts.clone();
    let (name, keep) = (who.name.clone(), who.cookie.clone());
    let changed = off_thread(move || {
        if accounts.verify(&name, &current)?.is_none() {
            return Ok(None);
        }
        accounts
            .set_password(&name, &new, keep.as_deref())
            .map(Some)
    })
    .await
    .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let ended = match changed {
        Ok(Some(ended)) => ended,
        Ok(None) => {
            attempt.failed();
            return Err(ApiError::Unauthorized(
                "the current password is wrong".into(),
            ));
        }
        Err(AccountError::Invalid(why)) => {
            // The current password was right; the new one will not do.
            attempt.succeeded();
            return Err(ApiError::BadRequest(why));
        }
        Err(other) => return Err(ApiError::Internal(other.into())),
    };
    attempt.succeeded();
    state
        .accounts
        .audit(&who.name, &who.from, "changed their password");
    if ended.sessions + ended.tokens > 0 {
        state.accounts.audit(
            &who.name,
            &who.from,
            &format!(
                "password changed: {} other sessions ended, {} API tokens revoked",
                ended.sessions, ended.tokens
            ),
        );
    }
    state
        .store
        .flush()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::NoContent().finish())
}

async fn audit_log(_who: Operator, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let entries = state
        .accounts
        .audit_log(200)
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok().json(entries))
}

//! The JSON API behind the console, usable by scripts.

use super::startup::AppState;
use crate::actors::charge_point::Command;
use crate::actors::cp_supervisor::{CrashCp, ListCps, Operate};
use crate::store::SessionRecord;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};
use serde::Serialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api")
            .route("/cps", web::get().to(list_cps))
            .route("/cps/stop", web::post().to(stop_all))
            .route("/cps/resume", web::post().to(resume_all))
            .route("/cps/{id}/stop", web::post().to(stop_one))
            .route("/cps/{id}/resume", web::post().to(resume_one))
            .route("/sessions", web::get().to(list_sessions))
            .route("/crash/cps/{id}", web::post().to(crash_cp))
            .route("/health", web::get().to(health)),
    )
    .default_service(web::to(not_found));
}

/// Errors of the API, each with its status and a JSON body `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("the central cannot answer now: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .json(serde_json::json!({ "error": self.to_string() }))
    }
}

/// Bad JSON bodies get a 400 with the parser's words.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(64 * 1024)
        .error_handler(|err, _| ApiError::BadRequest(format!("invalid JSON body: {err}")).into())
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _| ApiError::BadRequest(format!("invalid path: {err}")).into())
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such endpoint".into()))
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn list_cps(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let cps = state
        .supervisor
        .send(ListCps)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(HttpResponse::Ok().json(cps))
}

/// A session as the API shows it.
#[derive(Serialize)]
struct SessionView {
    id: uuid::Uuid,
    request_id: uuid::Uuid,
    cp_id: String,
    driver_id: String,
    price_eur_kwh: f64,
    reserved_at: chrono::DateTime<chrono::Utc>,
    started_at: Option<chrono::DateTime<chrono::Utc>>,
    ended_at: Option<chrono::DateTime<chrono::Utc>>,
    kwh: f64,
    eur: f64,
    /// How it ended; `null` while open.
    outcome: Option<&'static str>,
}

impl From<SessionRecord> for SessionView {
    fn from(s: SessionRecord) -> Self {
        SessionView {
            id: s.id,
            request_id: s.request_id,
            cp_id: s.cp_id,
            driver_id: s.driver_id,
            price_eur_kwh: s.price_eur_kwh,
            reserved_at: s.reserved_at,
            started_at: s.started_at,
            ended_at: s.ended_at,
            kwh: s.kwh,
            eur: s.eur,
            outcome: s.outcome.map(|o| o.as_str()),
        }
    }
}

async fn list_sessions(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let sessions = web::block(move || store.sessions())
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.into()))?;
    let views: Vec<SessionView> = sessions.into_iter().map(SessionView::from).collect();
    Ok(HttpResponse::Ok().json(views))
}

async fn operate(
    state: &AppState,
    cp_id: Option<String>,
    command: Command,
) -> Result<HttpResponse, ApiError> {
    if let Some(id) = &cp_id {
        if id.is_empty() || id.len() > 64 {
            return Err(ApiError::BadRequest("invalid charging point id".into()));
        }
    }
    let reached = state
        .supervisor
        .send(Operate {
            cp_id: cp_id.clone(),
            command,
        })
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(ApiError::NotFound)?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({
        "command": match command { Command::Stop => "stop", Command::Resume => "resume", Command::DriverStop => "driver_stop" },
        "cp_id": cp_id,
        "cps": reached,
    })))
}

async fn stop_one(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    operate(&state, Some(id.into_inner()), Command::Stop).await
}

async fn resume_one(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    operate(&state, Some(id.into_inner()), Command::Resume).await
}

async fn stop_all(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    operate(&state, None, Command::Stop).await
}

async fn resume_all(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    operate(&state, None, Command::Resume).await
}

/// Crash injection: the CP's actor inside the central dies and is restarted.
async fn crash_cp(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let cp_id = id.into_inner();
    state
        .supervisor
        .send(CrashCp {
            cp_id: cp_id.clone(),
        })
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(ApiError::NotFound)?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "crashed": cp_id })))
}

//! How every JSON endpoint says no: one error type with its status and a body
//! `{"error": "..."}`, and the extractors' configuration that answers bad input with it.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse, ResponseError};

/// Errors of the API, each with its status and a JSON body `{"error": "..."}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooManyAttempts(crate::accounts::login_limit::TooManyAttempts),
    #[error("the central cannot answer now: {0}")]
    Unavailable(String),
    /// Something the central asked on the operator's behalf did not answer in time.
    #[error("{0}")]
    NoAnswer(String),
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooManyAttempts(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NoAnswer(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ApiError::TooManyAttempts(refused) => too_many_attempts(refused),
            _ => HttpResponse::build(self.status_code())
                .json(serde_json::json!({ "error": self.to_string() })),
        }
    }
}

/// `429` with `Retry-After` and `{"error": "...", "retry_after": seconds}`.
pub fn too_many_attempts(refused: &crate::accounts::login_limit::TooManyAttempts) -> HttpResponse {
    let seconds = refused.retry_after_secs();
    HttpResponse::TooManyRequests()
        .insert_header((actix_web::http::header::RETRY_AFTER, seconds.to_string()))
        .json(serde_json::json!({ "error": refused.to_string(), "retry_after": seconds }))
}

/// Bad JSON bodies get a 400 with the parser's words.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(64 * 1024)
        .error_handler(|err, _| ApiError::BadRequest(format!("invalid JSON body: {err}")).into())
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _| ApiError::BadRequest(format!("invalid query: {err}")).into())
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _| ApiError::BadRequest(format!("invalid path: {err}")).into())
}

//! `/api/tokens`: API tokens for scripts, issued by a logged-in operator with a lifetime,
//! listed without their secrets, revoked by id.

use super::auth::Operator;
use super::AppState;
use crate::accounts::{AccountError, DEFAULT_TOKEN_LIFETIME};
use crate::web::api_error::ApiError;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tokens", web::post().to(issue))
        .route("/tokens", web::get().to(list))
        .route("/tokens/{id}", web::delete().to(revoke));
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    label: String,
    /// How long the token lives, e.g. `30d`, `12h`; 90 days when absent.
    #[serde(default)]
    expires_in: Option<String>,
}

fn refused(e: AccountError) -> ApiError {
    match e {
        AccountError::Invalid(why) => ApiError::BadRequest(why),
        other => ApiError::Internal(other.into()),
    }
}

/// `POST /api/tokens`: a new token, its secret shown this once.
async fn issue(
    who: Operator,
    state: web::Data<AppState>,
    form: web::Json<TokenForm>,
) -> Result<HttpResponse, ApiError> {
    let TokenForm { label, expires_in } = form.into_inner();
    if label.len() > 100 {
        return Err(ApiError::BadRequest(
            "a label has at most 100 characters".into(),
        ));
    }
    let lifetime = match expires_in.as_deref() {
        None => DEFAULT_TOKEN_LIFETIME,
        Some(text) => humantime::parse_duration(text)
            .ok()
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "expires_in: {text:?} is not a duration such as \"30d\" or \"12h\""
                ))
            })?,
    };
    let issued = state
        .accounts
        .issue_token(who.name(), &label, lifetime)
        .map_err(refused)?;
    state.accounts.audit(
        who.name(),
        who.from(),
        &format!(
            "issued an API token ({label}), id {}, expiring {}",
            issued.view.id, issued.view.expires_at
        ),
    );
    Ok(HttpResponse::Created().json(serde_json::json!({
        "token": issued.token,
        "id": issued.view.id,
        "label": label,
        "expires_at": issued.view.expires_at,
    })))
}

/// `GET /api/tokens`: every valid token of every operator, without the secrets.
async fn list(_who: Operator, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let tokens = state.accounts.tokens().map_err(refused)?;
    Ok(HttpResponse::Ok().json(tokens))
}

/// `DELETE /api/tokens/{id}`: the token works no more.
async fn revoke(
    who: Operator,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let revoked = state
        .accounts
        .revoke_token(&id)
        .map_err(refused)?
        .ok_or_else(|| ApiError::NotFound(format!("no API token has the id {id:?}")))?;
    state.accounts.audit(
        who.name(),
        who.from(),
        &format!(
            "revoked the API token {} of {} ({})",
            revoked.id, revoked.operator, revoked.label
        ),
    );
    Ok(HttpResponse::NoContent().finish())
}

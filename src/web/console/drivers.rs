//! `POST /api/drivers` and `POST /api/drivers/{id}/secret`: an operator registers a driver
//! (receiving its secret once, which proves the driver's requests on the bus) or issues it
//! a new one (the old stops working at once). Both are audited.

use super::auth::Operator;
use super::AppState;
use crate::accounts::party_secrets;
use crate::domain::registration::check_driver_id;
use crate::store::RegisterError;
use crate::web::api_error::ApiError;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/drivers", web::post().to(register))
        .route("/drivers/{id}/secret", web::post().to(new_secret));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Registration {
    id: String,
}

/// Registers a driver; the answer carries its secret, shown this once and never again.
async fn register(
    who: Operator,
    state: web::Data<AppState>,
    body: web::Json<Registration>,
) -> Result<HttpResponse, ApiError> {
    let id = body.into_inner().id;
    check_driver_id(&id).map_err(ApiError::BadRequest)?;
    let (secret, credential) = party_secrets::issue_driver();
    match state.store.register_driver_credential(&id, &credential) {
        Ok(()) => {}
        Err(RegisterError::Exists(what)) => {
            return Err(ApiError::Conflict(format!(
                "{what} is registered already (POST /api/drivers/{id}/secret issues a new secret)"
            )))
        }
        Err(RegisterError::Store(e)) => return Err(ApiError::Internal(e.into())),
    }
    state
        .store
        .flush()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    state
        .accounts
        .audit(who.name(), who.from(), &format!("registered driver {id}"));
    Ok(HttpResponse::Created().json(serde_json::json!({ "id": id, "secret": secret })))
}

/// Issues a registered driver a new secret.
async fn new_secret(
    who: Operator,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let known = state
        .store
        .driver_credential(&id)
        .map_err(|e| ApiError::Internal(e.into()))?;
    if known.is_none() {
        return Err(ApiError::NotFound(format!("driver {id} is not registered")));
    }
    let (secret, credential) = party_secrets::issue_driver();
    state
        .store
        .set_driver_credential(&id, &credential)
        .map_err(|e| ApiError::Internal(e.into()))?;
    state
        .store
        .flush()
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    state.accounts.audit(
        who.name(),
        who.from(),
        &format!("issued driver {id} a new secret"),
    );
    Ok(HttpResponse::Created().json(serde_json::json!({ "id": id, "secret": secret })))
}

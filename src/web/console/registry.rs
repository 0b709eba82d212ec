//! `POST /api/cps`, `PATCH /api/cps/{id}` and `POST /api/cps/{id}/secret`: an operator
//! registers a CP (receiving its secret once), changes its location or tariff, or issues it
//! a new secret. Every change is audited by the supervisor that makes it.

use super::auth::Operator;
use super::AppState;
use crate::accounts::party_secrets;
use crate::actors::central::cp_supervisor::{
    Asker, ChangeCpTerms, IssueCpSecret, RegisterCp, RegistryRefusal,
};
use crate::domain::registration::CpTerms;
use crate::web::api_error::ApiError;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/cps", web::post().to(register))
        .route("/cps/{id}", web::patch().to(change))
        .route("/cps/{id}/secret", web::post().to(new_secret));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Registration {
    id: String,
    location: String,
    price_eur_kwh: f64,
    /// For an OCPP charge point: the security profile it must use, 1 or 2.
    #[serde(default)]
    ocpp_security_profile: Option<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    location: Option<String>,
    price_eur_kwh: Option<f64>,
}

fn asker(who: &Operator) -> Asker {
    Asker {
        who: who.name().to_owned(),
        from: who.from().to_owned(),
    }
}

impl From<RegistryRefusal> for ApiError {
    fn from(refusal: RegistryRefusal) -> ApiError {
        match refusal {
            RegistryRefusal::Invalid(why) => ApiError::BadRequest(why),
            RegistryRefusal::Exists(why) => ApiError::Conflict(why),
            RegistryRefusal::Unknown(why) => ApiError::NotFound(why),
            RegistryRefusal::Failed(why) => ApiError::Internal(anyhow::anyhow!(why)),
        }
    }
}

/// Registers a CP; the answer carries its secret, shown this once and never again.
async fn register(
    who: Operator,
    state: web::Data<AppState>,
    body: web::Json<Registration>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let terms = CpTerms::new(&body.location, body.price_eur_kwh).map_err(ApiError::BadRequest)?;
    if let Some(profile) = body.ocpp_security_profile.filter(|p| !(1..=2).contains(p)) {
        return Err(ApiError::BadRequest(format!(
            "ocpp_security_profile is 1 (HTTP Basic) or 2 (Basic over TLS), not {profile}"
        )));
    }
    let (secret, mut credential) = party_secrets::issue_cp();
    credential.ocpp_security_profile = body.ocpp_security_profile;
    state
        .ask(RegisterCp {
            id: body.id.clone(),
            terms: terms.clone(),
            credential,
            asker: asker(&who),
        })
        .await??;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "id": body.id,
        "location": terms.location,
        "price_eur_kwh": terms.tariff.eur_per_kwh(),
        "ocpp_security_profile": body.ocpp_security_profile,
        "secret": secret,
    })))
}

/// Changes a CP's location and/or tariff.
async fn change(
    who: Operator,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: web::Json<Change>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let body = body.into_inner();
    if body.location.is_none() && body.price_eur_kwh.is_none() {
        return Err(ApiError::BadRequest(
            "give a new location, a new price_eur_kwh or both".into(),
        ));
    }
    let terms = state
        .ask(ChangeCpTerms {
            id: id.clone(),
            location: body.location,
            price_eur_kwh: body.price_eur_kwh,
            asker: asker(&who),
        })
        .await??;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "id": id,
        "location": terms.location,
        "price_eur_kwh": terms.tariff.eur_per_kwh(),
    })))
}

/// Issues a new secret; the old one stops working and the CP's monitor must AUTH again.
async fn new_secret(
    who: Operator,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let secret = state
        .ask(IssueCpSecret {
            id: id.clone(),
            asker: asker(&who),
        })
        .await??;
    Ok(HttpResponse::Created().json(serde_json::json!({
        "id": id,
        "secret": secret.expose(),
    })))
}

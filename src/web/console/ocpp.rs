//! `POST /api/cps/{id}/ocpp/{action}`: an operator's OCPP request for an OCPP charge point,
//! through its gateway: `reset` (`{"type":"Soft"|"Hard"}`), `trigger-message`
//! (`{"requestedMessage":"StatusNotification"|…}`), `get-configuration` (`{"key":[…]}` or
//! nothing) and `change-configuration` (`{"key":"HeartbeatInterval","value":"30"}`). The
//! body is the OCPP 1.6 payload; the answer is the charge point's.

use super::auth::Operator;
use super::AppState;
use crate::actors::central::console_hub::{ConsoleHub, FeedEntry, FeedKind, Happened};
use crate::web::api_error::ApiError;
use actix::SystemService;
use actix_web::{web, HttpResponse};
use serde_json::Value;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/cps/{id}/ocpp/{action}", web::post().to(ask));
}

/// The OCPP action a path names.
fn action_of(path: &str) -> Option<&'static str> {
    Some(match path {
        "reset" => "Reset",
        "trigger-message" => "TriggerMessage",
        "get-configuration" => "GetConfiguration",
        "change-configuration" => "ChangeConfiguration",
        _ => return None,
    })
}

async fn ask(
    who: Operator,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (cp_id, action) = path.into_inner();
    let action = action_of(&action).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no OCPP request {action:?}: reset, trigger-message, get-configuration or \
             change-configuration"
        ))
    })?;
    match state.store.cp(&cp_id) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(ApiError::NotFound(format!(
                "no charging point {cp_id} is known"
            )))
        }
        Err(e) => return Err(ApiError::Unavailable(e.to_string())),
    }
    let payload: Value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
    };
    crate::ocpp::core::check_operator_request(action, &payload).map_err(ApiError::BadRequest)?;
    let answer = state
        .ocpp
        .ask(&cp_id, action, payload)
        .await
        .map_err(|e| ApiError::Unavailable(format!("cannot reach Kafka: {e}")))?;
    let Some(answer) = answer else {
        return Err(ApiError::NoAnswer(format!(
            "{cp_id} did not answer {action} within {}s: is it an OCPP charge point, connected \
             to a gateway?",
            crate::actors::central::ocpp_requests::ANSWER_TIMEOUT.as_secs()
        )));
    };
    let said = format!("asked {action} of {cp_id}: {}", answer.status);
    state.accounts.audit(who.name(), who.from(), &said);
    ConsoleHub::from_registry().do_send(Happened(FeedEntry::new(
        FeedKind::Info,
        Some(&cp_id),
        format!("{} {said}", who.name()),
    )));
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "cp_id": cp_id,
        "action": action,
        "status": answer.status,
        "answer": answer.payload,
    })))
}

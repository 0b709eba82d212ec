//! The JSON API behind the console, usable by scripts.

use super::auth::Operator;
use super::AppState;
use crate::actors::central::charge_point::CpControl;
use crate::actors::central::console_hub::{ConsoleHub, FeedEntry, FeedKind, Happened};
use crate::actors::central::cp_supervisor::{
    CrashCp, CrashCpMonitor, CrashEngine, GetCp, ListCentrals, ListCps, ListStates, Operate,
};
use crate::store::SessionView;
use crate::web::api_error::ApiError;
use actix::SystemService;
use actix_web::{web, HttpResponse};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api")
            .route("/cps", web::get().to(list_cps))
            .route("/cps/{id}", web::get().to(get_cp))
            .route("/cps/stop", web::post().to(stop_all))
            .route("/cps/resume", web::post().to(resume_all))
            .route("/cps/{id}/stop", web::post().to(stop_one))
            .route("/cps/{id}/resume", web::post().to(resume_one))
            .route("/sessions", web::get().to(list_sessions))
            .route("/centrals", web::get().to(list_centrals))
            .route("/crash/cps/{id}", web::post().to(crash_actor))
            .route("/crash/cps/{id}/{part}", web::post().to(crash_process))
            .route("/health", web::get().to(health))
            .route("/metrics", web::get().to(metrics))
            .configure(super::registry::routes)
            .configure(super::drivers::routes)
            .configure(super::auth::routes)
            .configure(super::tokens::routes)
            .configure(super::ocpp::routes),
    )
    .default_service(web::to(not_found));
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound("no such endpoint".into()))
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn list_cps(_who: Operator, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let cps = state.ask(ListCps).await?;
    Ok(HttpResponse::Ok().json(cps))
}

/// `GET /api/centrals`: every central instance of the network, as it last said how it is.
async fn list_centrals(
    _who: Operator,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let centrals = state.ask(ListCentrals).await?;
    Ok(HttpResponse::Ok().json(centrals))
}

/// `GET /api/cps/{id}`: one CP as `GET /api/cps` shows it.
async fn get_cp(
    _who: Operator,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let cp = state
        .ask(GetCp(id.clone()))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no charging point {id} is known")))?;
    Ok(HttpResponse::Ok().json(cp))
}

/// `GET /api/metrics`: the central's metrics in the Prometheus text format.
async fn metrics(_who: Operator, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let states = state.ask(ListStates).await?;
    let text = crate::metrics::render(states);
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(text))
}

/// The most sessions one page of `GET /api/sessions` holds.
const SESSIONS_PER_PAGE: usize = 1_000;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionsPage {
    /// The id of the last session of the previous page.
    after: Option<uuid::Uuid>,
    limit: Option<usize>,
}

/// `GET /api/sessions[?after=<id>&limit=<n>]`: sessions oldest first, a page at a time; the
/// header `X-Next-Page` carries the query of the next page while there is one.
async fn list_sessions(
    _who: Operator,
    state: web::Data<AppState>,
    page: web::Query<SessionsPage>,
) -> Result<HttpResponse, ApiError> {
    let limit = page
        .limit
        .unwrap_or(SESSIONS_PER_PAGE)
        .clamp(1, SESSIONS_PER_PAGE);
    let after = page.after;
    let store = state.store.clone();
    let sessions = web::block(move || store.sessions_page(after, limit))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.into()))?;
    let next = (sessions.len() == limit)
        .then(|| {
            sessions
                .last()
                .map(|s| format!("after={}&limit={limit}", s.id))
        })
        .flatten();
    let views: Vec<SessionView> = sessions.into_iter().map(SessionView::from).collect();
    let mut answer = HttpResponse::Ok();
    if let Some(next) = next {
        answer.insert_header(("X-Next-Page", next));
    }
    Ok(answer.json(views))
}

async fn operate(
    who: Operator,
    state: &AppState,
    cp_id: Option<String>,
    command: CpControl,
) -> Result<HttpResponse, ApiError> {
    if let Some(id) = &cp_id {
        crate::domain::registration::check_cp_id(id).map_err(ApiError::BadRequest)?;
    }
    let reached = state
        .ask(Operate {
            cp_id: cp_id.clone(),
            command,
        })
        .await?
        .map_err(ApiError::NotFound)?;
    let verb = match command {
        CpControl::Stop => "stop",
        CpControl::Resume => "resume",
        CpControl::DriverStop => "driver_stop",
    };
    let what = cp_id.as_deref().unwrap_or("every CP");
    state
        .accounts
        .audit(who.name(), who.from(), &format!("{verb} {what}"));
    Ok(HttpResponse::Accepted().json(serde_json::json!({
        "command": verb,
        "cp_id": cp_id,
        "cps": reached,
    })))
}

async fn stop_one(
    who: Operator,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    operate(who, &state, Some(id.into_inner()), CpControl::Stop).await
}

async fn resume_one(
    who: Operator,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    operate(who, &state, Some(id.into_inner()), CpControl::Resume).await
}

async fn stop_all(who: Operator, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    operate(who, &state, None, CpControl::Stop).await
}

async fn resume_all(who: Operator, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    operate(who, &state, None, CpControl::Resume).await
}

/// What crash injection hits.
#[derive(Debug, Clone, Copy)]
enum CrashedPart {
    /// The CP's actor inside the central; its supervisor restarts it from the store.
    Actor,
    /// The CP's engine process (if started with --allow-crash).
    Engine,
    /// The CP's monitor process, with its next report (if started with --allow-crash).
    Monitor,
}

impl CrashedPart {
    fn name(self) -> &'static str {
        match self {
            CrashedPart::Actor => "actor",
            CrashedPart::Engine => "engine",
            CrashedPart::Monitor => "monitor",
        }
    }
}

/// `POST /api/crash/cps/{id}`: the CP's actor inside the central.
async fn crash_actor(
    who: Operator,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    crash(who, &state, id.into_inner(), CrashedPart::Actor).await
}

/// `POST /api/crash/cps/{id}/{engine|monitor}`.
async fn crash_process(
    who: Operator,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (cp_id, part) = path.into_inner();
    let part = match part.as_str() {
        "engine" => CrashedPart::Engine,
        "monitor" => CrashedPart::Monitor,
        other => {
            return Err(ApiError::NotFound(format!(
                "no part {other:?} to crash: engine or monitor"
            )))
        }
    };
    crash(who, &state, cp_id, part).await
}

/// Crash injection: asks for the crash, then writes it to the audit log and the feed.
async fn crash(
    who: Operator,
    state: &AppState,
    cp_id: String,
    part: CrashedPart,
) -> Result<HttpResponse, ApiError> {
    let asked = match part {
        CrashedPart::Actor => {
            state
                .ask(CrashCp {
                    cp_id: cp_id.clone(),
                })
                .await?
        }
        CrashedPart::Engine => {
            state
                .ask(CrashEngine {
                    cp_id: cp_id.clone(),
                    asked_by: format!("operator {}", who.name()),
                })
                .await?
        }
        CrashedPart::Monitor => {
            state
                .ask(CrashCpMonitor {
                    cp_id: cp_id.clone(),
                })
                .await?
        }
    };
    asked.map_err(ApiError::NotFound)?;
    let name = part.name();
    state.accounts.audit(
        who.name(),
        who.from(),
        &format!("crashed the {name} of {cp_id}"),
    );
    let text = match part {
        CrashedPart::Actor => {
            format!("{cp_id}: its actor in the central was crashed on request and restarted")
        }
        _ => format!("{cp_id}: {name} crash injected by {}", who.name()),
    };
    ConsoleHub::from_registry().do_send(Happened(FeedEntry::new(
        FeedKind::Fault,
        Some(&cp_id),
        text,
    )));
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "crashed": cp_id, "part": name })))
}

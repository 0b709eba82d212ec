//! The control endpoints: an engine's, monitor's, CP's or driver's (here: its status, the
//! engine's simulated faults and plug, and — only when allowed — crash injection), the
//! broker's, the demo's and the fleets'. Every one is behind a [`ControlLock`]: the
//! process's control token, from this site, at this address.

pub mod broker;
pub mod demo;
pub mod fleet;
mod lock;

pub use lock::ControlLock;

use crate::actors::cp::engine::Action;
use crate::actors::Engine;
use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

/// What the control endpoint acts on.
#[derive(Clone)]
pub struct ControlTarget {
    /// `engine`, `monitor`, `cp` or `driver`.
    pub role: &'static str,
    pub id: String,
    pub allow_crash: bool,
    pub engine: Option<Addr<Engine>>,
}

/// Serves the routes `configure` sets up on `listener`, in the background, behind the lock
/// that `token` opens; returns the bound port.
pub(crate) fn serve_locked<F>(
    listener: std::net::TcpListener,
    what: &str,
    token: &str,
    configure: F,
) -> anyhow::Result<u16>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let lock = ControlLock::new(token, &listener)?;
    crate::web::serve_listener_in_background(listener, what, &None, lock::locked(lock, configure))
}

/// Binds `address` and starts serving, opened by `token`; returns the bound port.
pub fn serve(address: &str, token: &str, target: ControlTarget) -> anyhow::Result<u16> {
    let data = web::Data::new(target);
    let listener = crate::web::bind(address, "control")?;
    let port = serve_locked(listener, "control", token, move |cfg| {
        cfg.app_data(data.clone())
            .app_data(crate::web::api_error::json_config())
            .service(
                web::scope("/control")
                    .route("/status", web::get().to(status))
                    .route("/crash", web::post().to(crash))
                    .route("/fault", web::post().to(fault))
                    .route("/clear", web::post().to(clear))
                    .route("/plug", web::post().to(plug))
                    .route("/unplug", web::post().to(unplug)),
            );
    })?;
    // The address as bound: with port 0, the one the system chose.
    log::info!(
        "control endpoint on http://{}:{port}/control/status",
        crate::web::shown_host(address)
    );
    Ok(port)
}

fn answer(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

async fn status(target: web::Data<ControlTarget>) -> HttpResponse {
    let engine = match &target.engine {
        Some(engine) => engine.send(Action::Status).await.ok().and_then(Result::ok),
        None => None,
    };
    answer(
        StatusCode::OK,
        serde_json::json!({"role": target.role, "id": target.id, "engine": engine,
            "allow_crash": target.allow_crash}),
    )
}

/// Dies the way a real failure does: no clean shutdown, nothing flushed.
async fn crash(target: web::Data<ControlTarget>) -> HttpResponse {
    if !target.allow_crash {
        return answer(
            StatusCode::FORBIDDEN,
            serde_json::json!({"error": "crash injection is off: start this process with --allow-crash"}),
        );
    }
    log::warn!("{} {}: crashing on request", target.role, target.id);
    std::thread::spawn(|| {
        // Long enough for the answer to leave.
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::process::abort();
    });
    answer(
        StatusCode::ACCEPTED,
        serde_json::json!({"crashing": target.id}),
    )
}

#[derive(Debug, Default, Deserialize)]
struct FaultBody {
    reason: Option<String>,
}

async fn fault(
    target: web::Data<ControlTarget>,
    body: Option<web::Json<FaultBody>>,
) -> HttpResponse {
    let reason = body
        .and_then(|b| b.into_inner().reason)
        .unwrap_or_else(|| "simulated fault (control endpoint)".into());
    act(&target, Action::Fault(reason)).await
}

async fn clear(target: web::Data<ControlTarget>) -> HttpResponse {
    act(&target, Action::Clear).await
}

async fn plug(target: web::Data<ControlTarget>) -> HttpResponse {
    act(&target, Action::PlugIn).await
}

async fn unplug(target: web::Data<ControlTarget>) -> HttpResponse {
    act(&target, Action::Unplug).await
}

async fn act(target: &ControlTarget, action: Action) -> HttpResponse {
    let Some(engine) = &target.engine else {
        return answer(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": format!("a {} has no engine", target.role)}),
        );
    };
    match engine.send(action).await {
        Ok(Ok(status)) => answer(StatusCode::OK, serde_json::json!({"engine": status})),
        Ok(Err(why)) => answer(StatusCode::CONFLICT, serde_json::json!({"error": why})),
        Err(e) => answer(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": format!("the engine is not answering: {e}")}),
        ),
    }
}

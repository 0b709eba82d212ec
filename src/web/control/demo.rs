//! The demo's control endpoint: list its parts, crash one (back after a delay, or left
//! down), start one again, and take the embedded broker (or one broker of its cluster) away
//! and back.

use super::broker::{self, BrokerRemote};
use crate::actors::demo::parts::{CrashPart, DemoParts, ListParts, StartPart};
use actix::Addr;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use std::time::Duration;

#[derive(Clone)]
struct DemoControl {
    parts: Addr<DemoParts>,
}

/// Binds `address` and serves until the system stops, opened by `token`.
pub fn serve(
    address: &str,
    token: &str,
    parts: Addr<DemoParts>,
    broker: BrokerRemote,
) -> anyhow::Result<u16> {
    let control = web::Data::new(DemoControl { parts });
    let broker = web::Data::new(broker);
    let listener = crate::web::bind(address, "demo control")?;
    let port = super::serve_locked(listener, "demo control", token, move |cfg| {
        cfg.app_data(control.clone())
            .app_data(broker.clone())
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                actix_web::error::InternalError::from_response(
                    err.to_string(),
                    HttpResponse::BadRequest()
                        .json(serde_json::json!({ "error": format!("invalid query: {err}") })),
                )
                .into()
            }))
            .service(
                web::scope("/demo")
                    .route("/parts", web::get().to(list))
                    .route("/parts/{name}/crash", web::post().to(crash))
                    .route("/parts/{name}/start", web::post().to(start))
                    .route("/broker/outage", web::post().to(broker::outage))
                    .route("/broker/recover", web::post().to(broker::recover))
                    .route("/broker/{id}/down", web::post().to(broker::down))
                    .route("/broker/{id}/up", web::post().to(broker::up)),
            );
    })?;
    // The address as bound: with port 0, the one the system chose.
    log::info!(
        "demo control on http://{}:{port}/demo/parts",
        crate::web::shown_host(address)
    );
    Ok(port)
}

fn result(
    done: Result<Result<(), String>, actix::MailboxError>,
    ok: serde_json::Value,
) -> HttpResponse {
    match done {
        Ok(Ok(())) => HttpResponse::Accepted().json(ok),
        Ok(Err(why)) => HttpResponse::Conflict().json(serde_json::json!({ "error": why })),
        Err(e) => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({ "error": e.to_string() }))
        }
    }
}

async fn list(control: web::Data<DemoControl>) -> HttpResponse {
    match control.parts.send(ListParts).await {
        Ok(parts) => HttpResponse::Ok().json(parts),
        Err(e) => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({ "error": e.to_string() }))
        }
    }
}

#[derive(Debug, Deserialize)]
struct CrashQuery {
    /// Bring the part back after this long (e.g. `5s`); absent, it stays down.
    restart_after: Option<String>,
}

async fn crash(
    control: web::Data<DemoControl>,
    name: web::Path<String>,
    query: web::Query<CrashQuery>,
) -> HttpResponse {
    let restart_after: Option<Duration> = match query
        .restart_after
        .as_deref()
        .map(humantime::parse_duration)
    {
        None => None,
        Some(Ok(delay)) => Some(delay),
        Some(Err(e)) => {
            return HttpResponse::BadRequest()
                .json(serde_json::json!({ "error": format!("restart_after: {e}") }))
        }
    };
    let name = name.into_inner();
    let done = control
        .parts
        .send(CrashPart {
            name: name.clone(),
            restart_after,
        })
        .await;
    result(
        done,
        serde_json::json!({ "crashed": name, "restart_after": query.restart_after }),
    )
}

async fn start(control: web::Data<DemoControl>, name: web::Path<String>) -> HttpResponse {
    let name = name.into_inner();
    let done = control.parts.send(StartPart { name: name.clone() }).await;
    result(done, serde_json::json!({ "started": name }))
}

//! The control endpoint of `evcharge fleet`: status, crash and restart of one part of one
//! CP, paced driver requests, OCPP chargers plugging in or not. The benchmark drives the fleets through it.

use crate::actors::fleet::cp_fleet::{CpFleet, CrashPart, GetFleetStatus, Part, RestartPart};
use crate::actors::fleet::driver_fleet::{
    DriverFleet, GetDriverFleetStatus, GetRunReport, ReleaseAll, StartRun,
};
use crate::actors::fleet::ocpp_fleet::OcppFleet;
use actix::Addr;
use actix_web::{web, HttpResponse};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Binds the control endpoint's address before the fleet starts, so that a bad address
/// stops the process at once.
pub fn bind(address: &str) -> anyhow::Result<std::net::TcpListener> {
    crate::web::bind(address, "the fleet's control")
}

/// Serves the CP fleet's control endpoint on `listener`, opened by `token`; returns the
/// bound port.
pub fn serve_cps(
    listener: std::net::TcpListener,
    token: &str,
    fleet: Addr<CpFleet>,
) -> anyhow::Result<u16> {
    let fleet = web::Data::new(fleet);
    super::serve_locked(listener, "the fleet's control", token, move |cfg| {
        cfg.app_data(fleet.clone()).service(
            web::scope("/fleet")
                .route("/status", web::get().to(cps_status))
                .route("/crash/{cp}/{part}", web::post().to(crash))
                .route("/restart/{cp}/{part}", web::post().to(restart)),
        );
    })
}

/// Serves the driver fleet's control endpoint on `listener`, opened by `token`; returns the
/// bound port. `consuming` says whether the drivers' consumer holds its partitions.
pub fn serve_drivers(
    listener: std::net::TcpListener,
    token: &str,
    fleet: Addr<DriverFleet>,
    consuming: Arc<AtomicBool>,
) -> anyhow::Result<u16> {
    let fleet = web::Data::new(fleet);
    let consuming = web::Data::from(consuming);
    super::serve_locked(listener, "the fleet's control", token, move |cfg| {
        cfg.app_data(fleet.clone())
            .app_data(consuming.clone())
            .app_data(crate::web::api_error::json_config())
            .service(
                web::scope("/fleet")
                    .route("/status", web::get().to(drivers_status))
                    .route("/run", web::post().to(start_run))
                    .route("/run", web::get().to(run_report))
                    .route("/release", web::post().to(release)),
            );
    })
}

/// Serves the OCPP fleet's control endpoint on `listener`, opened by `token`: its status,
/// and `POST /fleet/plug-in/{on|off}` (whether an accepted remote start goes on to a
/// transaction); returns the bound port.
pub fn serve_ocpp(
    listener: std::net::TcpListener,
    token: &str,
    fleet: OcppFleet,
) -> anyhow::Result<u16> {
    let fleet = web::Data::new(fleet);
    super::serve_locked(listener, "the fleet's control", token, move |cfg| {
        cfg.app_data(fleet.clone()).service(
            web::scope("/fleet")
                .route("/status", web::get().to(ocpp_status))
                .route("/plug-in/{on}", web::post().to(plug_in)),
        );
    })
}

async fn ocpp_status(fleet: web::Data<OcppFleet>) -> HttpResponse {
    HttpResponse::Ok().json(fleet.status())
}

async fn plug_in(fleet: web::Data<OcppFleet>, on: web::Path<String>) -> HttpResponse {
    match on.as_str() {
        "on" | "off" => {
            fleet.set_plug_in(on.as_str() == "on");
            HttpResponse::Ok().json(fleet.status())
        }
        other => no_such_part(format!("plug-in {other:?}: on or off")),
    }
}

fn unavailable(e: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(serde_json::json!({ "error": e.to_string() }))
}

fn refused(e: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::Conflict().json(serde_json::json!({ "error": e.to_string() }))
}

async fn cps_status(fleet: web::Data<Addr<CpFleet>>) -> HttpResponse {
    match fleet.send(GetFleetStatus).await {
        Ok(status) => HttpResponse::Ok().json(status),
        Err(e) => unavailable(e),
    }
}

fn part_of(path: &(String, String)) -> Result<(String, Part), String> {
    Ok((path.0.clone(), path.1.parse::<Part>()?))
}

fn no_such_part(why: String) -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({ "error": why }))
}

/// Answers `{"cp_id", "part", "at"}`: the instant the part died.
async fn crash(fleet: web::Data<Addr<CpFleet>>, path: web::Path<(String, String)>) -> HttpResponse {
    let (cp_id, part) = match part_of(&path) {
        Ok(found) => found,
        Err(why) => return no_such_part(why),
    };
    match fleet
        .send(CrashPart {
            cp_id: cp_id.clone(),
            part,
        })
        .await
    {
        Ok(Ok(at)) => {
            HttpResponse::Ok().json(serde_json::json!({ "cp_id": cp_id, "part": part, "at": at }))
        }
        Ok(Err(why)) => refused(why),
        Err(e) => unavailable(e),
    }
}

async fn restart(
    fleet: web::Data<Addr<CpFleet>>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (cp_id, part) = match part_of(&path) {
        Ok(found) => found,
        Err(why) => return no_such_part(why),
    };
    match fleet.send(RestartPart { cp_id, part }).await {
        Ok(Ok(())) => HttpResponse::NoContent().finish(),
        Ok(Err(why)) => refused(why),
        Err(e) => unavailable(e),
    }
}

async fn drivers_status(
    fleet: web::Data<Addr<DriverFleet>>,
    consuming: web::Data<AtomicBool>,
) -> HttpResponse {
    match fleet.send(GetDriverFleetStatus).await {
        Ok(status) => {
            let mut body = serde_json::to_value(status).expect("a status serialises");
            body["consuming"] = consuming.load(Ordering::Relaxed).into();
            HttpResponse::Ok().json(body)
        }
        Err(e) => unavailable(e),
    }
}

async fn start_run(fleet: web::Data<Addr<DriverFleet>>, run: web::Json<StartRun>) -> HttpResponse {
    match fleet.send(run.into_inner()).await {
        Ok(Ok(())) => HttpResponse::Accepted().finish(),
        Ok(Err(why)) => refused(why),
        Err(e) => unavailable(e),
    }
}

async fn run_report(fleet: web::Data<Addr<DriverFleet>>) -> HttpResponse {
    match fleet.send(GetRunReport).await {
        Ok(report) => HttpResponse::Ok().json(report),
        Err(e) => unavailable(e),
    }
}

async fn release(fleet: web::Data<Addr<DriverFleet>>) -> HttpResponse {
    match fleet.send(ReleaseAll).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => unavailable(e),
    }
}

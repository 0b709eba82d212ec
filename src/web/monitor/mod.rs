//! The monitor page (SPEC §8): one CP's health checks, faults and link with the central,
//! live. Read-only and without login: it is meant for the CP's own machine and listens on
//! 127.0.0.1 unless told otherwise; HTTPS only when the process has a certificate.
//!
//! `GET /` the page, `GET /api/status` its data as JSON, `GET /ws` its live updates.

mod socket;

use crate::actors::cp::monitor::GetStatus;
use crate::actors::Monitor;
use crate::web::assets::{self, asset};
use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use socket::MonitorSocket;

/// The page's listener, bound before anything starts so that a bad address stops the
/// process cleanly.
pub struct PageListener {
    listener: std::net::TcpListener,
    host: String,
    tls: crate::web::ServerTls,
}

/// Binds `address` for the page, to be served over `tls` if given.
pub fn bind(address: &str, tls: crate::web::ServerTls) -> anyhow::Result<PageListener> {
    let listener = crate::web::bind(address, "the monitor page")?;
    let host = match listener.local_addr()?.ip() {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    Ok(PageListener {
        listener,
        host,
        tls,
    })
}

/// Serves the page of `monitor` on `page` until the system stops; returns the bound port.
pub fn serve(page: PageListener, monitor: Addr<Monitor>) -> anyhow::Result<u16> {
    let monitor = web::Data::new(monitor);
    let port = crate::web::serve_listener_in_background(
        page.listener,
        "monitor page",
        &page.tls,
        move |cfg| {
            cfg.app_data(monitor.clone());
            routes(cfg);
        },
    )?;
    crate::web::announce("monitor page", &page.tls, &page.host, port, "/");
    Ok(port)
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.configure(assets::routes)
        .service(get("/", || async { assets::page(assets::MONITOR_HTML) }))
        .service(get("/assets/monitor.js", || async {
            asset("text/javascript; charset=utf-8", assets::MONITOR_JS)
        }))
        .service(get("/api/status", status))
        .service(get("/ws", socket))
        .default_service(web::to(|| async {
            error(HttpResponse::NotFound(), "no such page or endpoint")
        }));
}

/// A read-only resource: other methods get a 405 with a JSON body.
fn get<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler))
        .default_service(web::to(|| async {
            error(
                HttpResponse::MethodNotAllowed(),
                "this page is read-only: only GET is served",
            )
        }))
}

fn error(mut status: actix_web::HttpResponseBuilder, why: &str) -> HttpResponse {
    status.json(serde_json::json!({ "error": why }))
}

async fn status(monitor: web::Data<Addr<Monitor>>) -> HttpResponse {
    match monitor.send(GetStatus).await {
        Ok(status) => HttpResponse::Ok().json(status),
        Err(e) => error(
            HttpResponse::ServiceUnavailable(),
            &format!("the monitor is not answering: {e}"),
        ),
    }
}

/// Upgrades to a WebSocket served by one [`MonitorSocket`].
async fn socket(
    request: HttpRequest,
    stream: web::Payload,
    monitor: web::Data<Addr<Monitor>>,
) -> HttpResponse {
    let socket = MonitorSocket::new(monitor.get_ref().clone());
    actix_web_actors::ws::start(socket, &request, stream).unwrap_or_else(|e| {
        error(
            HttpResponse::BadRequest(),
            &format!("a WebSocket upgrade is expected here: {e}"),
        )
    })
}

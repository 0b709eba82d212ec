//! The admin console: one page, its script, and the WebSocket that keeps it live.

use super::auth::Operator;
use super::socket::ConsoleSocket;
use crate::web::api_error::ApiError;
use crate::web::assets::{asset, page, CONSOLE_HTML, CONSOLE_JS};
use actix_web::{web, HttpRequest, HttpResponse};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(|| async { page(CONSOLE_HTML) }))
        .route(
            "/assets/console.js",
            web::get().to(|| async { asset("text/javascript; charset=utf-8", CONSOLE_JS) }),
        )
        .route("/ws", web::get().to(live));
}

/// `GET /ws`: live updates for a logged-in operator (the handshake carries the cookie).
async fn live(
    _who: Operator,
    req: HttpRequest,
    stream: web::Payload,
) -> Result<HttpResponse, ApiError> {
    actix_web_actors::ws::start(ConsoleSocket::default(), &req, stream)
        .map_err(|e| ApiError::BadRequest(format!("not a WebSocket handshake: {e}")))
}

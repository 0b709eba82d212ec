//! The OCPP gateway's WebSocket endpoint: charge points connect to `/ocpp/{chargePointId}`
//! with the `ocpp1.6` subprotocol and HTTP Basic authentication (OCPP security profile 1;
//! profile 2 over TLS, `wss://`, when the process has a certificate). The user is the
//! charge point's id, the password its registered key; the central checks it before the
//! WebSocket opens.

mod socket;

use crate::actors::gateway::{Gateway, Refusal};
use crate::domain::registration::{check_cp_id, shown};
use crate::messages::Secret;
use crate::ocpp::SUBPROTOCOL;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use socket::ChargerSocket;
use std::time::Duration;

/// The gateway's listener, bound before anything starts so that a bad address stops the
/// process cleanly.
pub struct GatewayListener {
    listener: std::net::TcpListener,
    tls: crate::web::ServerTls,
}

pub fn bind(address: &str, tls: crate::web::ServerTls) -> anyhow::Result<GatewayListener> {
    let listener = crate::web::bind(address, "OCPP charge points")?;
    Ok(GatewayListener { listener, tls })
}

/// What the endpoint needs besides the gateway itself.
#[derive(Clone)]
struct Endpoint {
    gateway: Gateway,
    ping_interval: Duration,
}

/// Serves charge points until the system stops; returns the bound port.
pub fn serve(
    bound: GatewayListener,
    gateway: Gateway,
    ping_interval: Duration,
) -> anyhow::Result<u16> {
    let endpoint = web::Data::new(Endpoint {
        gateway,
        ping_interval,
    });
    let scheme = if bound.tls.is_some() { "wss" } else { "ws" };
    let address = bound.listener.local_addr()?;
    let port = crate::web::serve_listener_in_background(
        bound.listener,
        "OCPP gateway",
        &bound.tls,
        move |cfg| {
            cfg.app_data(endpoint.clone())
                .route("/ocpp/{id}", web::get().to(connect))
                .default_service(web::to(|| async {
                    HttpResponse::NotFound()
                        .body("charge points connect to /ocpp/<chargePointId>\n")
                }));
        },
    )?;
    if bound.tls.is_none() {
        crate::tls::warn_plain_text("the OCPP gateway", &address.to_string());
    }
    log::info!("OCPP gateway for charge points on {address} ({scheme}://{address}/ocpp/<id>)");
    Ok(port)
}

/// The id and key of HTTP Basic authentication, if the request carries them.
fn basic_credentials(request: &HttpRequest) -> Option<(String, String)> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Whether the client offered OCPP 1.6J among its subprotocols.
fn offers_ocpp16(request: &HttpRequest) -> bool {
    request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}

fn unauthorized(why: &str) -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, r#"Basic realm="evcharge OCPP""#))
        .body(format!("{why}\n"))
}

async fn connect(
    request: HttpRequest,
    stream: web::Payload,
    id: web::Path<String>,
    endpoint: web::Data<Endpoint>,
) -> HttpResponse {
    let id = id.into_inner();
    if let Err(why) = check_cp_id(&id) {
        return HttpResponse::BadRequest().body(format!("{why}\n"));
    }
    let Some((user, key)) = basic_credentials(&request) else {
        log::warn!("{id}: a charge point without HTTP Basic authentication is refused");
        return unauthorized(
            "HTTP Basic authentication is required: the charge point's id and its registered key",
        );
    };
    if user != id {
        log::warn!("{id}: refused: authenticated as {}", shown(&user));
        return unauthorized("the user of Basic authentication is the charge point's id");
    }
    // Without the subprotocol the handshake completes without one and closes at once
    // (OCPP-J 1.6, 3.1.2): nothing is asked of the central for it.
    let charger = if offers_ocpp16(&request) {
        match endpoint.gateway.admit(&id, Secret::new(key)).await {
            Ok(charger) => Some(charger),
            Err(refusal) => return refused(&id, refusal),
        }
    } else {
        log::warn!("{id}: a connection without the {SUBPROTOCOL} subprotocol is closed");
        None
    };
    let socket = ChargerSocket::new(id, charger, endpoint.ping_interval);
    actix_web_actors::ws::WsResponseBuilder::new(socket, &request, stream)
        .protocols(&[SUBPROTOCOL])
        .start()
        .unwrap_or_else(|e| {
            HttpResponse::BadRequest().body(format!("a WebSocket upgrade is expected here: {e}\n"))
        })
}

fn refused(id: &str, refusal: Refusal) -> HttpResponse {
    match refusal {
        Refusal::Credentials(why) => {
            log::warn!("{id}: refused: {why}");
            unauthorized(&why)
        }
        Refusal::InUse(why) => {
            log::warn!("{id}: refused: {why}");
            HttpResponse::Conflict().body(format!("{why}\n"))
        }
        Refusal::Unavailable(why) => {
            log::warn!("{id}: cannot be let in now: {why}");
            HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, "5"))
                .body(format!("{why}\n"))
        }
    }
}

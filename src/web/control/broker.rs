//! The embedded broker's control endpoint: make the broker unreachable and bring it back,
//! for demos and tests of what every role does while Kafka is away.

use crate::bus::BrokerCommand;
use actix_web::{web, HttpResponse};
use tokio::sync::mpsc::UnboundedSender;

/// Binds `address` and serves until the system stops, opened by `token`; commands go to
/// `owner`.
pub fn serve(
    address: &str,
    token: &str,
    owner: UnboundedSender<BrokerCommand>,
) -> anyhow::Result<u16> {
    let owner = web::Data::new(owner);
    let listener = crate::web::bind(address, "broker control")?;
    super::serve_locked(listener, "broker control", token, move |cfg| {
        cfg.app_data(owner.clone()).service(
            web::scope("/control")
                .route("/outage", web::post().to(outage))
                .route("/recover", web::post().to(recover)),
        );
    })
}

async fn outage(owner: web::Data<UnboundedSender<BrokerCommand>>) -> HttpResponse {
    send(&owner, BrokerCommand::Outage)
}

async fn recover(owner: web::Data<UnboundedSender<BrokerCommand>>) -> HttpResponse {
    send(&owner, BrokerCommand::Recover)
}

fn send(owner: &UnboundedSender<BrokerCommand>, command: BrokerCommand) -> HttpResponse {
    match owner.send(command) {
        Ok(()) => HttpResponse::Accepted()
            .json(serde_json::json!({ "broker": format!("{command:?}").to_lowercase() })),
        Err(_) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "error": "the broker is stopping" })),
    }
}

//! The embedded broker's control endpoint: make the broker unreachable and bring it back,
//! for demos and tests of what every role does while Kafka is away.

use actix_web::{web, App, HttpResponse, HttpServer};
use std::net::TcpListener;
use tokio::sync::mpsc::UnboundedSender;

/// What the broker's owner is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerCommand {
    /// Drop every connection and refuse new ones; keep the data.
    Outage,
    /// Accept connections again.
    Recover,
}

/// Binds `address` and serves until the system stops; commands go to `owner`.
pub fn serve(address: &str, owner: UnboundedSender<BrokerCommand>) -> anyhow::Result<u16> {
    use anyhow::Context;
    let listener = TcpListener::bind(address)
        .with_context(|| format!("cannot listen for control requests on {address}"))?;
    let port = listener.local_addr()?.port();
    let owner = web::Data::new(owner);
    let server = HttpServer::new(move || {
        App::new().app_data(owner.clone()).service(
            web::scope("/control")
                .route("/outage", web::post().to(outage))
                .route("/recover", web::post().to(recover)),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    actix::spawn(async move {
        if let Err(e) = server.await {
            log::error!("the broker's control endpoint failed: {e}");
        }
    });
    Ok(port)
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

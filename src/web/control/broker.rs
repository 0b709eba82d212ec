//! The embedded broker's control endpoint: make the broker unreachable and bring it back, or
//! one broker of a cluster, for demos and tests of what every role does while Kafka (or a
//! part of it) is away.

use crate::bus::BrokerCommand;
use actix_web::{web, HttpResponse};
use tokio::sync::mpsc::UnboundedSender;

/// Where commands for the embedded broker go (its owner carries them out), and how many
/// brokers it has.
#[derive(Clone)]
pub struct BrokerRemote {
    pub owner: UnboundedSender<BrokerCommand>,
    pub brokers: i32,
}

impl BrokerRemote {
    /// Passes `command` on to the broker's owner: 202, or why not.
    pub fn send(&self, command: BrokerCommand) -> HttpResponse {
        if let BrokerCommand::Down(id) | BrokerCommand::Up(id) = command {
            if !(1..=self.brokers).contains(&id) {
                let why = format!("no broker {id}: brokers are numbered 1 to {}", self.brokers);
                return HttpResponse::NotFound().json(serde_json::json!({ "error": why }));
            }
            if self.brokers == 1 {
                let why = "a single broker cannot go down alone: use the outage instead";
                return HttpResponse::Conflict().json(serde_json::json!({ "error": why }));
            }
        }
        let shown = match command {
            BrokerCommand::Outage => serde_json::json!({ "broker": "outage" }),
            BrokerCommand::Recover => serde_json::json!({ "broker": "recover" }),
            BrokerCommand::Down(id) => serde_json::json!({ "broker": id, "now": "down" }),
            BrokerCommand::Up(id) => serde_json::json!({ "broker": id, "now": "up" }),
        };
        match self.owner.send(command) {
            Ok(()) => HttpResponse::Accepted().json(shown),
            Err(_) => HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({ "error": "the broker is stopping" })),
        }
    }
}

/// Binds `address` and serves until the system stops, opened by `token`; commands go to
/// `remote`.
pub fn serve(address: &str, token: &str, remote: BrokerRemote) -> anyhow::Result<u16> {
    let remote = web::Data::new(remote);
    let listener = crate::web::bind(address, "broker control")?;
    super::serve_locked(listener, "broker control", token, move |cfg| {
        cfg.app_data(remote.clone()).service(
            web::scope("/control")
                .route("/outage", web::post().to(outage))
                .route("/recover", web::post().to(recover))
                .route("/brokers/{id}/down", web::post().to(down))
                .route("/brokers/{id}/up", web::post().to(up)),
        );
    })
}

pub async fn outage(remote: web::Data<BrokerRemote>) -> HttpResponse {
    remote.send(BrokerCommand::Outage)
}

pub async fn recover(remote: web::Data<BrokerRemote>) -> HttpResponse {
    remote.send(BrokerCommand::Recover)
}

pub async fn down(remote: web::Data<BrokerRemote>, id: web::Path<i32>) -> HttpResponse {
    remote.send(BrokerCommand::Down(id.into_inner()))
}

pub async fn up(remote: web::Data<BrokerRemote>, id: web::Path<i32>) -> HttpResponse {
    remote.send(BrokerCommand::Up(id.into_inner()))
}

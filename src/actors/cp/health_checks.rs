//! The engine's health-check socket: its monitor asks `HEALTH#cp` once a period and gets an
//! ACK and `OK#cp`, or `KO#cp#reason` when the engine is failing.
//!
//! The link has no state: each frame, good or bad, is answered once, in order; bytes outside
//! frames are dropped unanswered. It has no login and no bounds either, so it listens on the
//! CP's own machine only (`127.0.0.1` by default).

use super::engine::{Engine, HealthQuery};
use crate::domain::registration::shown;
use crate::link::frame::{FrameCodec, Packet};
use actix::prelude::*;
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;

/// Whom a health check for a CP id reaches.
pub enum HealthTarget {
    /// The engine of that CP.
    Engine(Addr<Engine>),
    /// No such engine here: answered NACK with this reason.
    Elsewhere(String),
    /// The engine is gone: the connection closes, as a dead process's would.
    Gone,
}

/// Serves health checks on `listener` until the returned handle is aborted; `target` says
/// which engine answers a check for a CP id (one engine, or each of a fleet's).
pub fn serve_health_checks<F>(listener: TcpListener, target: F) -> tokio::task::JoinHandle<()>
where
    F: Fn(&str) -> HealthTarget + Clone + 'static,
{
    actix::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    actix::spawn(answer_health_checks(stream, target.clone()));
                }
                Err(e) => {
                    log::warn!("cannot accept a health-check connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
}

/// Health checks on `listener` for one engine, the only one this process runs.
pub fn serve_one_engine(listener: TcpListener, cp_id: String, engine: Addr<Engine>) {
    serve_health_checks(listener, move |id: &str| {
        if id == cp_id {
            HealthTarget::Engine(engine.clone())
        } else {
            HealthTarget::Elsewhere(format!("this engine is {cp_id}, not {id}"))
        }
    });
}

async fn answer_health_checks<F>(stream: TcpStream, target: F)
where
    F: Fn(&str) -> HealthTarget,
{
    let _ = stream.set_nodelay(true);
    let mut link = Framed::new(stream, FrameCodec::default());
    while let Some(Ok(packet)) = link.next().await {
        let (verdict, reply) = match packet {
            Packet::Frame(fields) => match fields.as_slice() {
                [cmd, id] if cmd == "HEALTH" => match target(id) {
                    HealthTarget::Engine(engine) => match engine.send(HealthQuery).await {
                        Ok(Ok(())) => (Packet::Ack, Packet::frame(["OK", id.as_str()])),
                        Ok(Err(why)) => (
                            Packet::Ack,
                            Packet::frame(["KO", id.as_str(), &why.replace('#', " ")]),
                        ),
                        // The engine actor is gone: say nothing, as a dead engine would.
                        Err(_) => return,
                    },
                    HealthTarget::Elsewhere(why) => (Packet::Nack, error(why)),
                    HealthTarget::Gone => return,
                },
                [cmd, ..] if cmd == "HEALTH" => (
                    Packet::Nack,
                    error(format!(
                        "HEALTH takes the CP id: 1 field, got {}",
                        fields.len() - 1
                    )),
                ),
                _ => (
                    Packet::Nack,
                    error(format!(
                        "unknown command {}: the engine takes HEALTH",
                        shown(fields.first().map_or("", String::as_str))
                    )),
                ),
            },
            Packet::Corrupt(why) => (Packet::Nack, error(why)),
            // No answer: it would be taken for the answer to the peer's next request.
            Packet::Stray(_) | Packet::Ack | Packet::Nack => continue,
        };
        if link.send(verdict).await.is_err() || link.send(reply).await.is_err() {
            return;
        }
    }
}

/// The reply frame to a bad request.
fn error(why: String) -> Packet {
    Packet::frame(["ERR".to_string(), why])
}

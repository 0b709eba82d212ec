//! The central's end of one monitor's TCP link: authentication, then status reports.
//!
//! Frames in: `AUTH#cp#location#price`, `STATUS#cp#OK` or `STATUS#cp#KO#reason`.
//! Replies: ACK + `WELCOME#cp` / `STATE#cp#state` (`STATE#cp#state#CRASH` asks the monitor
//! to crash, for crash injection), or NACK + `REFUSED#reason` / `ERR#reason`.

use super::charge_point::{ChargePoint, DetachMonitor, MonitorReport};
use super::cp_supervisor::{CpSupervisor, MonitorHello};
use crate::domain::EngineHealth;
use crate::link::frame::{is_valid_field, FrameCodec, Packet};
use crate::link::{Acceptor, LinkStream};
use actix::io::{FramedWrite, WriteHandler};
use actix::prelude::*;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::WriteHalf;
use tokio::net::TcpListener;
use tokio_util::codec::FramedRead;

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

pub struct MonitorSession {
    conn_id: u64,
    peer: String,
    supervisor: Addr<CpSupervisor>,
    cp: Option<(String, Addr<ChargePoint>)>,
    writer: FramedWrite<Packet, WriteHalf<LinkStream>, FrameCodec>,
}

impl MonitorSession {
    /// Serves one accepted connection (plain or TLS) from `peer`.
    pub fn serve(
        stream: LinkStream,
        peer: String,
        supervisor: Addr<CpSupervisor>,
    ) -> Addr<MonitorSession> {
        let (read, write) = tokio::io::split(stream);
        MonitorSession::create(|ctx| {
            ctx.add_stream(FramedRead::new(read, FrameCodec));
            MonitorSession {
                conn_id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
                peer,
                supervisor,
                cp: None,
                writer: FramedWrite::new(write, FrameCodec, ctx),
            }
        })
    }

    /// Accepts monitors on `listener` for as long as the system runs, each connection
    /// through `acceptor` (a TLS handshake, when the central has a certificate).
    pub fn accept_all(listener: TcpListener, acceptor: Acceptor, supervisor: Addr<CpSupervisor>) {
        actix::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((tcp, peer)) => {
                        let (acceptor, supervisor) = (acceptor.clone(), supervisor.clone());
                        // The handshake must not hold up the next monitor's accept.
                        actix::spawn(async move {
                            match acceptor.accept(tcp).await {
                                Ok(stream) => {
                                    MonitorSession::serve(stream, peer.to_string(), supervisor);
                                }
                                Err(e) => log::warn!(
                                    "monitor connection from {peer} refused: no TLS handshake ({e})"
                                ),
                            }
                        });
                    }
                    Err(e) => {
                        log::warn!("cannot accept a monitor connection: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }

    fn reply(&mut self, accepted: bool, fields: Vec<String>) {
        self.writer
            .write(if accepted { Packet::Ack } else { Packet::Nack });
        self.writer.write(Packet::Frame(fields));
    }

    fn refuse(&mut self, what: &str, reason: &str) {
        self.reply(false, vec![what.into(), as_field(reason)]);
    }

    fn authenticate(&mut self, fields: &[String], ctx: &mut Context<Self>) {
        let [_, cp_id, location, price] = fields else {
            return self.refuse("ERR", "AUTH takes cp id, location and price");
        };
        let Ok(price) = price.parse::<f64>() else {
            return self.refuse("ERR", &format!("price {price:?} is not a number"));
        };
        if cp_id.is_empty() || !price.is_finite() || price < 0.0 {
            return self.refuse("ERR", "AUTH needs a CP id and a price of zero or more");
        }
        let hello = MonitorHello {
            cp_id: cp_id.clone(),
            location: location.clone(),
            price_eur_kwh: price,
            conn_id: self.conn_id,
            peer: self.peer.clone(),
        };
        let cp_id = cp_id.clone();
        // Nothing else is read until the central has answered.
        ctx.wait(
            self.supervisor.send(hello).into_actor(self).map(
                move |answer, act, _ctx| match answer {
                    Ok(Ok(cp)) => {
                        act.cp = Some((cp_id.clone(), cp));
                        act.reply(true, vec!["WELCOME".into(), cp_id]);
                    }
                    Ok(Err(refusal)) => {
                        log::warn!("monitor at {} refused: {refusal}", act.peer);
                        act.refuse("REFUSED", &refusal);
                    }
                    Err(e) => act.refuse("REFUSED", &format!("the central is busy: {e}")),
                },
            ),
        );
    }

    fn report(&mut self, fields: &[String], ctx: &mut Context<Self>) {
        let (cp_id, engine) = match fields {
            [_, id, ok] if ok == "OK" => (id, EngineHealth::Ok),
            [_, id, ko, reason @ ..] if ko == "KO" => (
                id,
                EngineHealth::Ko(if reason.is_empty() {
                    "engine reports KO".into()
                } else {
                    reason.join(" ")
                }),
            ),
            _ => return self.refuse("ERR", "STATUS takes cp id and OK or KO"),
        };
        let Some((_, cp)) = self.cp.as_ref().filter(|(id, _)| id == cp_id) else {
            return self.refuse("ERR", "not authenticated: send AUTH first");
        };
        crate::metrics::count_monitor_report();
        let report = MonitorReport {
            conn_id: self.conn_id,
            engine,
        };
        let cp_id = cp_id.clone();
        ctx.wait(
            cp.send(report)
                .into_actor(self)
                .map(move |answer, act, _ctx| match answer {
                    Ok(Ok((state, crash))) => {
                        let mut fields = vec!["STATE".into(), cp_id, state.as_str().into()];
                        if crash {
                            fields.push("CRASH".into());
                        }
                        act.reply(true, fields);
                    }
                    Ok(Err(why)) => {
                        act.cp = None;
                        act.refuse("ERR", &why);
                    }
                    Err(e) => act.refuse("ERR", &format!("the central is busy: {e}")),
                }),
        );
    }
}

/// Makes any text safe to travel as one frame field.
fn as_field(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if matches!(c, '#' | '\u{2}' | '\u{3}') {
                ' '
            } else {
                c
            }
        })
        .take(200)
        .collect();
    debug_assert!(is_valid_field(&cleaned));
    cleaned
}

impl Actor for MonitorSession {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        log::debug!("monitor connection from {}", self.peer);
    }

    fn stopping(&mut self, _ctx: &mut Self::Context) -> Running {
        if let Some((_, cp)) = &self.cp {
            cp.do_send(DetachMonitor {
                conn_id: self.conn_id,
            });
        }
        Running::Stop
    }
}

impl StreamHandler<Result<Packet, io::Error>> for MonitorSession {
    /// Answers each frame; a corrupt one gets a NACK and the link stays up.
    fn handle(&mut self, item: Result<Packet, io::Error>, ctx: &mut Self::Context) {
        match item {
            Ok(Packet::Frame(fields)) => match fields.first().map(String::as_str) {
                Some("AUTH") => self.authenticate(&fields, ctx),
                Some("STATUS") => self.report(&fields, ctx),
                _ => self.refuse("ERR", "unknown command"),
            },
            Ok(Packet::Corrupt(why)) => {
                log::warn!("corrupt frame from {}: {why}", self.peer);
                self.refuse("ERR", &why);
            }
            Ok(Packet::Ack | Packet::Nack) => {}
            Err(e) => {
                log::warn!("monitor link {} failed: {e}", self.peer);
                ctx.stop();
            }
        }
    }
}

impl WriteHandler<io::Error> for MonitorSession {}

//! The central's end of one monitor's TCP link (plain, or TLS with the frames unchanged
//! inside): authentication, then status reports.
//!
//! Frames in: `AUTH#cp#secret`, `STATUS#cp#OK` or `STATUS#cp#KO#reason`.
//! Replies: ACK + `WELCOME#cp#location#price` / `STATE#cp#state` (`STATE#cp#state#CRASH`
//! asks the monitor to crash, for crash injection), or NACK + `REFUSED#reason` /
//! `ERR#reason`.
//!
//! The port is open to anyone, so every link is bounded ([`LinkLimits`]): links overall and
//! per address, a deadline to authenticate, a budget of bad frames, and a reply queue that a
//! peer must keep reading.

mod limits;

pub use limits::LinkLimits;

use super::charge_point::{ChargePoint, DetachMonitor, MonitorReport};
use super::cp_supervisor::{CpSupervisor, MonitorHello};
use crate::domain::EngineHealth;
use crate::link::frame::{is_valid_field, FrameCodec, Packet};
use crate::link::Acceptor;
use crate::messages::Secret;
use actix::prelude::*;
use futures_util::SinkExt;
use limits::{ErrorBudget, LinkSlot};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// Replies queued for a peer that is not reading them; past this the link is closed.
const REPLY_QUEUE: usize = 64;
/// How long one reply may wait for a peer to take it.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub struct MonitorSession {
    conn_id: u64,
    peer: String,
    supervisor: Addr<CpSupervisor>,
    cp: Option<(String, Addr<ChargePoint>)>,
    /// Whether an AUTH came at all: a link refused for a reason (another live monitor holds
    /// the CP) keeps trying on its own link, bounded by its budget of bad requests.
    tried_auth: bool,
    replies: mpsc::Sender<Packet>,
    errors: ErrorBudget,
    /// Held for as long as the link is open: it counts against the limits.
    _slot: LinkSlot,
}

impl MonitorSession {
    /// Serves one accepted connection, split into its two halves.
    pub fn serve<R, W>(
        read: R,
        write: W,
        peer: String,
        slot: LinkSlot,
        supervisor: Addr<CpSupervisor>,
    ) -> Addr<MonitorSession>
    where
        R: AsyncRead + Unpin + 'static,
        W: AsyncWrite + Unpin + 'static,
    {
        let (replies, queued) = mpsc::channel(REPLY_QUEUE);
        actix::spawn(write_replies(write, queued));
        let auth_timeout = slot.auth_timeout();
        MonitorSession::create(|ctx| {
            ctx.add_stream(FramedRead::new(read, FrameCodec));
            ctx.run_later(auth_timeout, move |act, ctx| {
                if act.cp.is_none() && !act.tried_auth {
                    log::debug!("monitor link {} did not authenticate in time", act.peer);
                    act.refuse("ERR", &format!("no AUTH within {auth_timeout:?}: closing"));
                    ctx.stop();
                }
            });
            MonitorSession {
                conn_id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
                peer,
                supervisor,
                cp: None,
                tried_auth: false,
                replies,
                errors: ErrorBudget::default(),
                _slot: slot,
            }
        })
    }

    /// Accepts monitors on `listener` for as long as the system runs, within `limits`, each
    /// connection through `acceptor` (a TLS handshake, when the central has a certificate).
    pub fn accept_all(
        listener: TcpListener,
        acceptor: Acceptor,
        limits: Arc<LinkLimits>,
        supervisor: Addr<CpSupervisor>,
    ) {
        actix::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((tcp, peer)) => {
                        // The slot is taken before the handshake: handshakes count too.
                        let slot = match limits.admit(peer.ip()) {
                            Ok(slot) => slot,
                            Err(refusal) => {
                                refusal.tell(tcp, acceptor.is_tls());
                                continue;
                            }
                        };
                        let (acceptor, supervisor) = (acceptor.clone(), supervisor.clone());
                        // The handshake must not hold up the next monitor's accept.
                        actix::spawn(async move {
                            match acceptor.accept(tcp).await {
                                Ok(stream) => {
                                    let (read, write) = tokio::io::split(stream);
                                    let peer = peer.to_string();
                                    MonitorSession::serve(read, write, peer, slot, supervisor);
                                }
                                Err(e) if limits::logs_allowed() => log::warn!(
                                    "monitor connection from {peer} refused: no TLS handshake ({e})"
                                ),
                                Err(_) => {}
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

    fn reply(&mut self, accepted: bool, fields: Vec<String>, ctx: &mut Context<Self>) {
        let answer = if accepted { Packet::Ack } else { Packet::Nack };
        for packet in [answer, Packet::Frame(fields)] {
            if self.replies.try_send(packet).is_err() {
                // Full: the peer sends but does not read. Closed: the writer failed.
                log::warn!(
                    "monitor link {} is not reading its replies: closing",
                    self.peer
                );
                ctx.stop();
                return;
            }
        }
    }

    /// Answers a bad request; past the budget of bad requests the link is closed.
    fn refuse_with(&mut self, what: &str, reason: &str, ctx: &mut Context<Self>) {
        self.reply(false, vec![what.into(), as_field(reason)], ctx);
        if self.errors.spend() {
            log::warn!(
                "monitor link {} sent too many bad requests: closing",
                self.peer
            );
            self.reply(
                false,
                vec!["ERR".into(), "too many bad requests: closing".into()],
                ctx,
            );
            ctx.stop();
        }
    }

    fn refuse(&mut self, what: &str, reason: &str) {
        let fields = vec![what.into(), as_field(reason)];
        let _ = self.replies.try_send(Packet::Nack);
        let _ = self.replies.try_send(Packet::Frame(fields));
    }

    fn authenticate(&mut self, fields: &[String], ctx: &mut Context<Self>) {
        self.tried_auth = true;
        let [_, cp_id, secret] = fields else {
            return self.refuse_with("ERR", "AUTH takes the CP id and its secret", ctx);
        };
        let hello = MonitorHello {
            cp_id: cp_id.clone(),
            secret: Secret::new(secret.clone()),
            conn_id: self.conn_id,
            peer: self.peer.clone(),
        };
        let cp_id = cp_id.clone();
        // Nothing else is read until the central has answered.
        ctx.wait(
            self.supervisor.send(hello).into_actor(self).map(
                move |answer, act, ctx| match answer {
                    Ok(Ok((cp, terms))) => {
                        act.cp = Some((cp_id.clone(), cp));
                        let welcome = vec![
                            "WELCOME".into(),
                            cp_id,
                            terms.location,
                            terms.tariff.to_string(),
                        ];
                        act.reply(true, welcome, ctx);
                    }
                    Ok(Err(refusal)) => {
                        if act.errors.worth_logging() {
                            log::warn!("monitor at {} refused: {refusal}", act.peer);
                        }
                        // Not a bad request: wrong secrets are limited per CP and address
                        // by the supervisor, a CP held by a live monitor is worth retrying.
                        act.reply(false, vec!["REFUSED".into(), as_field(&refusal)], ctx);
                    }
                    Err(e) => act.refuse_with("REFUSED", &format!("the central is busy: {e}"), ctx),
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
            _ => return self.refuse_with("ERR", "STATUS takes cp id and OK or KO", ctx),
        };
        let Some((_, cp)) = self.cp.as_ref().filter(|(id, _)| id == cp_id) else {
            return self.refuse_with("ERR", "not authenticated: send AUTH first", ctx);
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
                .map(move |answer, act, ctx| match answer {
                    Ok(Ok((state, crash))) => {
                        let mut fields = vec!["STATE".into(), cp_id, state.as_str().into()];
                        if crash {
                            fields.push("CRASH".into());
                        }
                        act.reply(true, fields, ctx);
                    }
                    Ok(Err(why)) => {
                        act.cp = None;
                        act.refuse_with("ERR", &why, ctx);
                    }
                    Err(e) => act.refuse_with("ERR", &format!("the central is busy: {e}"), ctx),
                }),
        );
    }
}

/// Sends the session's replies, in order, then those still queued when it ends. A reply
/// the peer does not take within [`SEND_TIMEOUT`] ends the writer, and with it the socket:
/// a peer that never reads cannot hold a connection open.
async fn write_replies<W: AsyncWrite + Unpin>(write: W, mut queued: mpsc::Receiver<Packet>) {
    let mut frames = FramedWrite::new(write, FrameCodec);
    while let Some(packet) = queued.recv().await {
        match tokio::time::timeout(SEND_TIMEOUT, frames.send(packet)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
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
                _ => self.refuse_with("ERR", "unknown command", ctx),
            },
            Ok(Packet::Corrupt(why)) => {
                if self.errors.worth_logging() {
                    log::warn!("corrupt frame from {}: {why}", self.peer);
                }
                self.refuse_with("ERR", &why, ctx);
            }
            Ok(Packet::Ack | Packet::Nack) => {}
            Err(e) => {
                log::warn!("monitor link {} failed: {e}", self.peer);
                ctx.stop();
            }
        }
    }
}

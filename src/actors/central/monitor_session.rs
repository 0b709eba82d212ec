//! The central's end of one monitor's TCP link (plain, or TLS with the frames unchanged
//! inside): authentication, then status reports. docs/PROTOCOL.md § "TCP links" is the
//! contract this file keeps.
//!
//! Frames in: `AUTH#cp#secret`, `STATUS#cp#OK` or `STATUS#cp#KO#reason`.
//! Replies: ACK + `WELCOME#cp#location#price` / `STATE#cp#state` (`STATE#cp#state#CRASH`
//! asks the monitor to crash, for crash injection), or NACK + `REFUSED#reason` /
//! `ERR#reason`. Each frame, good or bad, is answered once; bytes outside frames never are.
//!
//! A link speaks for at most one CP in its life, the one its first accepted AUTH named. It
//! is authenticated from that AUTH until it goes a silence window without a report the CP
//! took (or the CP forgets it, given a new secret); then it must AUTH again.
//!
//! The port is open to anyone, so every link is bounded ([`LinkLimits`]): links overall and
//! per address, a deadline to authenticate, a budget of bad frames, and a reply queue that a
//! peer must keep reading.

mod limits;

pub use limits::LinkLimits;

use super::charge_point::{DetachMonitor, MonitorEnd, MonitorReport};
use super::cp_supervisor::{CpSupervisor, HelloRefusal, MonitorHello};
use crate::domain::registration::{check_cp_id, shown};
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
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

/// Links are named by instance and this id, across the network: counted from the start's
/// microsecond, no id of a restarted instance names a link of its earlier life.
static NEXT_CONN_ID: std::sync::LazyLock<AtomicU64> = std::sync::LazyLock::new(|| {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    AtomicU64::new(now.map_or(1, |d| d.as_micros() as u64))
});

/// Replies queued for a peer that is not reading them; past this the link is closed.
const REPLY_QUEUE: usize = 64;
/// How long one reply may wait for a peer to take it.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

pub struct MonitorSession {
    conn_id: u64,
    peer: String,
    supervisor: Addr<CpSupervisor>,
    /// The CP this link speaks for: the one its first accepted AUTH named, for its life.
    bound: Option<String>,
    /// While authenticated: where its reports go (the CP's actor, or a relay to the
    /// instance running it), and when the last AUTH or STATUS it took was sent there (no
    /// later than the CP saw it, so the link never counts as live longer than the CP does).
    authenticated: Option<(MonitorEnd, Instant)>,
    /// Whether a well-formed AUTH came at all: a link refused for a reason (another live
    /// monitor holds the CP) keeps trying on its own link.
    tried_auth: bool,
    silence_window: Duration,
    /// Bytes outside any frame, dropped unanswered; told when the link is closed for want
    /// of an AUTH, as a likely reason.
    stray_bytes: u64,
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
            ctx.add_stream(FramedRead::new(read, FrameCodec::default()));
            ctx.run_later(auth_timeout, move |act, ctx| {
                if !act.tried_auth {
                    log::debug!("monitor link {} did not authenticate in time", act.peer);
                    let mut why = format!("no AUTH within {auth_timeout:?}: closing");
                    if act.stray_bytes > 0 {
                        why += &format!(" ({} bytes outside any frame ignored)", act.stray_bytes);
                    }
                    act.tell_and_close(&why, ctx);
                }
            });
            MonitorSession {
                conn_id: NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed),
                peer,
                supervisor,
                bound: None,
                authenticated: None,
                tried_auth: false,
                silence_window: slot.silence_window(),
                stray_bytes: 0,
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
                        tokio::time::sleep(Duration::from_millis(100)).await;
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

    /// Answers a request that did not go through, without counting it as bad.
    fn nack(&mut self, what: &str, reason: &str, ctx: &mut Context<Self>) {
        self.reply(false, vec![what.into(), as_field(reason)], ctx);
    }

    /// Answers a bad request, once: with why, or past the budget of bad requests with
    /// `too many bad requests` as the link closes.
    fn refuse_with(&mut self, reason: &str, ctx: &mut Context<Self>) {
        if self.errors.spend() {
            log::warn!(
                "monitor link {} sent too many bad requests: closing",
                self.peer
            );
            return self.tell_and_close("too many bad requests: closing", ctx);
        }
        self.nack("ERR", reason, ctx);
    }

    /// Says why the link closes, unasked, and closes it.
    fn tell_and_close(&mut self, reason: &str, ctx: &mut Context<Self>) {
        let _ = self.replies.try_send(Packet::Nack);
        let _ = self
            .replies
            .try_send(Packet::frame(["ERR".into(), as_field(reason)]));
        ctx.stop();
    }

    fn authenticate(&mut self, fields: &[String], ctx: &mut Context<Self>) {
        let [_, cp_id, secret] = fields else {
            let got = fields.len() - 1;
            let why = format!("AUTH takes the CP id and its secret: 2 fields, got {got}");
            return self.refuse_with(&why, ctx);
        };
        // Checked here, before the supervisor: a malformed id is a bad request, not a
        // failed AUTH that would lock out an id nobody can register.
        if let Err(rule) = check_cp_id(cp_id) {
            return self.refuse_with(&rule, ctx);
        }
        if let Some(bound) = self.bound.as_ref().filter(|bound| *bound != cp_id) {
            let why = format!(
                "this link speaks for {bound}: one CP per link, open another link for {cp_id}"
            );
            return self.refuse_with(&why, ctx);
        }
        self.tried_auth = true;
        let hello = MonitorHello {
            cp_id: cp_id.clone(),
            secret: Secret::new(secret.clone()),
            conn_id: self.conn_id,
            peer: self.peer.clone(),
        };
        let cp_id = cp_id.clone();
        let asked = Instant::now();
        // Nothing else is read until the central has answered.
        ctx.wait(
            self.supervisor.send(hello).into_actor(self).map(
                move |answer, act, ctx| match answer {
                    Ok(Ok(welcomed)) => {
                        act.bound = Some(cp_id.clone());
                        act.authenticated = Some((welcomed.end, asked));
                        let terms = welcomed.terms;
                        let mut welcome = vec![
                            "WELCOME".into(),
                            cp_id,
                            terms.location,
                            terms.tariff.to_string(),
                        ];
                        if let Some(profile) = welcomed.ocpp_security_profile {
                            welcome.push(format!("ocpp-profile={profile}"));
                        }
                        act.reply(true, welcome, ctx);
                    }
                    // The CP runs on another central (or is between two): the monitor moves.
                    Ok(Err(HelloRefusal::Elsewhere(why))) => act.nack("ELSEWHERE", &why, ctx),
                    Ok(Err(HelloRefusal::Refused(refusal))) => {
                        if act.errors.worth_logging() {
                            log::warn!("monitor at {} refused: {refusal}", act.peer);
                        }
                        // Not a bad request: wrong secrets are limited per CP and address
                        // by the supervisor, a CP held by a live monitor is worth retrying.
                        // The link stays as it was.
                        act.nack("REFUSED", &refusal, ctx);
                    }
                    Err(e) => act.nack("REFUSED", &format!("the central is busy: {e}"), ctx),
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
            _ => {
                let why = "STATUS takes the CP id and OK, or KO and a reason";
                return self.refuse_with(why, ctx);
            }
        };
        let Some(bound) = &self.bound else {
            return self.refuse_with("not authenticated: send AUTH first", ctx);
        };
        if bound != cp_id {
            let why = format!("this link speaks for {bound}, not {}", shown(cp_id));
            return self.refuse_with(&why, ctx);
        }
        let Some((cp, heard)) = &self.authenticated else {
            return self.refuse_with("not authenticated: send AUTH first", ctx);
        };
        // Judged as the CP judges it: a central behind its work has not read what waits.
        if heard.elapsed() >= super::thread_lag::silence_limit(self.silence_window) {
            // The CP counts this link lost by now, or is about to: make sure it does, so
            // that the link and the CP agree.
            cp.detach.do_send(DetachMonitor {
                conn_id: self.conn_id,
            });
            self.authenticated = None;
            let why = format!(
                "silent for more than {:?}: send AUTH again",
                self.silence_window
            );
            return self.nack("ERR", &why, ctx);
        }
        crate::metrics::count_monitor_report();
        let report = MonitorReport {
            conn_id: self.conn_id,
            engine,
        };
        let cp_id = cp_id.clone();
        let asked = Instant::now();
        ctx.wait(cp.report.send(report).into_actor(self).map(
            move |answer, act, ctx| match answer {
                Ok(Ok((state, crash))) => {
                    if let Some((_, heard)) = &mut act.authenticated {
                        *heard = asked;
                    }
                    let mut fields = vec!["STATE".into(), cp_id, state.as_str().into()];
                    if crash {
                        fields.push("CRASH".into());
                    }
                    act.reply(true, fields, ctx);
                }
                // The CP forgot this link (it was issued a new secret).
                Ok(Err(why)) => {
                    act.authenticated = None;
                    act.nack("ERR", &why, ctx);
                }
                // The CP's actor (or relay) is gone: the CP moved to another instance.
                Err(_) => {
                    act.authenticated = None;
                    let why = "the CP moved to another central: send AUTH again";
                    act.nack("ERR", why, ctx);
                }
            },
        ));
    }
}

/// Sends the session's replies, in order, then those still queued when it ends. A reply
/// the peer does not take within [`SEND_TIMEOUT`] ends the writer, and with it the socket:
/// a peer that never reads cannot hold a connection open.
async fn write_replies<W: AsyncWrite + Unpin>(write: W, mut queued: mpsc::Receiver<Packet>) {
    let mut frames = FramedWrite::new(write, FrameCodec::default());
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
        if let Some((cp, _)) = &self.authenticated {
            cp.detach.do_send(DetachMonitor {
                conn_id: self.conn_id,
            });
        }
        Running::Stop
    }
}

impl StreamHandler<Result<Packet, io::Error>> for MonitorSession {
    /// Answers each frame once; a corrupt one gets a NACK and the link stays up. Bytes
    /// outside frames (ACK and NACK included: a monitor never sends them) get no answer.
    fn handle(&mut self, item: Result<Packet, io::Error>, ctx: &mut Self::Context) {
        match item {
            Ok(Packet::Frame(fields)) => match fields.first().map(String::as_str) {
                Some("AUTH") => self.authenticate(&fields, ctx),
                Some("STATUS") => self.report(&fields, ctx),
                command => {
                    let why = format!(
                        "unknown command {}: the central takes AUTH and STATUS",
                        shown(command.unwrap_or_default())
                    );
                    self.refuse_with(&why, ctx);
                }
            },
            Ok(Packet::Corrupt(why)) => {
                if self.errors.worth_logging() {
                    log::warn!("corrupt frame from {}: {why}", self.peer);
                }
                self.refuse_with(&why, ctx);
            }
            Ok(packet @ (Packet::Stray(_) | Packet::Ack | Packet::Nack)) => {
                let bytes = match packet {
                    Packet::Stray(n) => n,
                    _ => 1,
                };
                self.stray_bytes += bytes as u64;
                if self.errors.worth_logging() {
                    log::warn!(
                        "{bytes} byte(s) outside any frame from {}: ignored",
                        self.peer
                    );
                }
            }
            Err(e) => {
                log::warn!("monitor link {} failed: {e}", self.peer);
                ctx.stop();
            }
        }
    }
}

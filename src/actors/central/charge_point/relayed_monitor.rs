//! A monitor linked to another central instance, which relays its link here (see
//! `cp_supervisor/monitor_relay.rs`). It is judged like a link held here: its reports are
//! dated from when the relaying instance wrote them, so silence is the same wherever the
//! link is; what the CP has to tell it goes back as an answer on the views topic.

use super::ChargePoint;
use crate::actors::central::cp_supervisor::{LinkAnswered, LinkVerdict, MonitorAnswer};
use crate::domain::EngineHealth;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::time::Instant;

/// What a relayed link's monitor did, as the instance holding the link wrote it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RelayedMonitor {
    pub via: String,
    pub conn_id: u64,
    pub written: DateTime<Utc>,
    pub event: RelayedEvent,
}

pub enum RelayedEvent {
    /// The monitor proved the secret issued at `issued_at`.
    Attach {
        peer: String,
        issued_at: DateTime<Utc>,
    },
    Report(EngineHealth),
    Gone,
}

impl Handler<RelayedMonitor> for ChargePoint {
    type Result = ();

    fn handle(&mut self, msg: RelayedMonitor, ctx: &mut Self::Context) {
        let RelayedMonitor {
            via,
            conn_id,
            written,
            event,
        } = msg;
        // When the monitor spoke, on this process's clock: a note read late is no fresher.
        let age = (Utc::now() - written).to_std().unwrap_or_default();
        let seen = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        let stale = age >= self.settings.silence_window;
        match event {
            RelayedEvent::Gone => self.detach(conn_id, Some(&via), ctx),
            // Read past the silence window (a backlog): the link counts as silent already.
            _ if stale => {}
            RelayedEvent::Attach { peer, issued_at } => {
                // The relaying instance may not have applied a new secret yet: the one it
                // checked must be the one this instance knows.
                let current = self.store.cp_credential(&self.id).ok().flatten();
                let verdict = match current {
                    Some(credential) if credential.issued_at == issued_at => {
                        self.attach(conn_id, Some(via.clone()), peer, seen)
                    }
                    _ => Err("the secret it proved is no longer this CP's: send AUTH again".into()),
                };
                if let Err(why) = verdict {
                    self.answer_relay(via, conn_id, LinkVerdict::Refused(why));
                }
            }
            RelayedEvent::Report(engine) => {
                match self.take_report(conn_id, Some(&via), engine, seen, ctx) {
                    Ok((_, true)) => self.answer_relay(via, conn_id, LinkVerdict::Crash),
                    Ok((_, false)) => {}
                    Err(why) => self.answer_relay(via, conn_id, LinkVerdict::Refused(why)),
                }
            }
        }
    }
}

impl ChargePoint {
    /// Tells the instance relaying the link `conn_id` what this CP says to its monitor.
    pub(super) fn answer_relay(&self, via: String, conn_id: u64, verdict: LinkVerdict) {
        self.supervisor.do_send(LinkAnswered {
            cp_id: self.id.clone(),
            answer: MonitorAnswer {
                via,
                conn_id,
                verdict,
            },
        });
    }
}

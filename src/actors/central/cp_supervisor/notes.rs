//! What one central instance passes on to the one that runs a CP: a driver's request for
//! it, an operator's command. The note travels on `cp.events` under the CP's key (so the
//! consumer group brings it to the CP's owner, in order with the CP's own records), sealed
//! with the cluster key: engines, which write that topic too, can neither read nor forge
//! one.

use super::booking::{Booked, Booking};
use super::CpSupervisor;
use crate::actors::central::charge_point::{ChargePoint, CpControl, Crash};
use crate::actors::central::console_hub::{ConsoleHub, RequestAnswered};
use crate::bus::{Inbound, Rejection};
use crate::messages::CpEvent;
use crate::proof::ClusterKey;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A note is taken this long after it was written, not later: a replayed one does nothing.
const NOTE_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// The seal's topic name: a note sealed for `cp.events` and one CP opens for no other.
const SEALED_FOR: &str = "cp.events";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "note", rename_all = "snake_case")]
pub(super) enum Note {
    /// Reserve the CP for a driver's request; for a request for any CP, try others after
    /// it (not those in `tried`) if it cannot be reserved.
    Reserve {
        request_id: Uuid,
        driver_id: String,
        any: bool,
        tried: Vec<String>,
    },
    /// The operator stops the CP.
    Stop,
    /// The operator resumes the CP.
    Resume,
    /// The driver of its supply asks to end it.
    DriverStop,
    /// Crash the CP's actor (crash injection).
    CrashActor,
}

/// What is sealed: the note and when it was written.
#[derive(Debug, Serialize, Deserialize)]
struct Sealed {
    at: DateTime<Utc>,
    note: Note,
}

impl Note {
    fn seal(&self, key: &ClusterKey, cp_id: &str) -> String {
        let plain = serde_json::to_vec(&Sealed {
            at: Utc::now(),
            note: self.clone(),
        })
        .expect("notes always serialise");
        hex::encode(key.seal(SEALED_FOR, cp_id, &plain))
    }

    fn open(key: &ClusterKey, cp_id: &str, sealed: &str) -> Result<Note, String> {
        let bytes = (0..sealed.len())
            .step_by(2)
            .map(|i| {
                sealed
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .ok_or("the note is not hex")?;
        let plain = key
            .open(SEALED_FOR, cp_id, &bytes)
            .ok_or("the note is not sealed with this network's cluster key for this CP")?;
        let sealed: Sealed =
            serde_json::from_slice(&plain).map_err(|e| format!("not a note: {e}"))?;
        let age = Utc::now() - sealed.at;
        if age > NOTE_LIFETIME || age < -NOTE_LIFETIME {
            return Err(format!("a note written at {} is stale", sealed.at));
        }
        Ok(sealed.note)
    }
}

impl CpSupervisor {
    /// Does `here` to the actor of `cp_id` when it runs here; passes `note` on to the
    /// instance that runs it otherwise (in the background: it is done when that instance
    /// takes it). Refused for a CP nobody registered.
    pub(super) fn to_cp(
        &self,
        cp_id: &str,
        here: impl FnOnce(&Addr<ChargePoint>),
        note: Note,
    ) -> Result<(), String> {
        if let Some(cp) = self.cp(cp_id) {
            here(&cp);
            return Ok(());
        }
        if !self.views.contains_key(cp_id) {
            return Err(format!("no charging point {cp_id} is known"));
        }
        let passed = self.pass_on(cp_id, &note);
        let cp_id = cp_id.to_owned();
        actix::spawn(async move {
            if let Err(why) = passed.await {
                log::error!("{cp_id}: {note:?} not passed on: {why}");
            }
        });
        Ok(())
    }

    /// Passes `note` on to the instance that runs `cp_id`, through Kafka.
    pub(super) fn pass_on(
        &self,
        cp_id: &str,
        note: &Note,
    ) -> impl std::future::Future<Output = Result<(), String>> + 'static {
        let sealed = self
            .cluster
            .as_ref()
            .map(|cluster| note.seal(cluster.key(), cp_id));
        let event = sealed.map(|sealed| CpEvent::FromCentral {
            cp_id: cp_id.to_owned(),
            from: self.settings.instance.clone(),
            sealed,
        });
        let publisher = self.publisher.clone();
        async move {
            let event = event.ok_or("this central has not reached Kafka yet")?;
            publisher
                .cp_event(event)
                .await
                .map_err(|e| format!("cannot pass it on over Kafka: {e}"))
        }
    }

    /// Carries out a note another instance passed on for a CP that runs here.
    pub(super) fn take_note(
        &mut self,
        msg: &Inbound<CpEvent>,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<(), Rejection>> {
        let CpEvent::FromCentral {
            cp_id,
            from,
            sealed,
        } = &msg.envelope.body
        else {
            unreachable!("only notes are taken here");
        };
        let opened = match &self.cluster {
            Some(cluster) => msg
                .envelope
                .body
                .check_rules()
                .and_then(|()| Note::open(cluster.key(), cp_id, sealed)),
            None => Err("this central has not reached Kafka yet".into()),
        };
        let note = match opened {
            Ok(note) => note,
            Err(why) => return Box::pin(async move { Err(Rejection::set_aside(why)) }),
        };
        log::debug!("{cp_id}: {note:?} passed on by {from}");
        let Some(cp) = self.cp(cp_id) else {
            let why = format!("no charging point {cp_id} is known");
            return Box::pin(async move { Err(Rejection::set_aside(why)) });
        };
        match note {
            Note::Stop => cp.do_send(CpControl::Stop),
            Note::Resume => cp.do_send(CpControl::Resume),
            Note::DriverStop => cp.do_send(CpControl::DriverStop),
            Note::CrashActor => cp.do_send(Crash),
            Note::Reserve {
                request_id,
                driver_id,
                any,
                tried,
            } => {
                let booking = Booking {
                    request_id,
                    driver_id: driver_id.clone(),
                    named: (!any).then(|| cp_id.clone()),
                    first: Some(cp_id.clone()),
                    tried,
                };
                let booked = self.book(booking, ctx);
                let publisher = self.publisher.clone();
                let cp_id = cp_id.clone();
                return Box::pin(async move {
                    let update = match booked.await {
                        Ok(Booked::PassedOn) => return Ok(()),
                        answer => {
                            let answer = answer.map(|booked| match booked {
                                Booked::Here(reservation) => reservation,
                                Booked::PassedOn => unreachable!("returned above"),
                            });
                            ConsoleHub::from_registry().do_send(RequestAnswered {
                                request_id,
                                answer: match &answer {
                                    Ok(r) => Ok(r.cp_id.clone()),
                                    Err(denial) => Err(denial.detail.clone()),
                                },
                            });
                            let cp_id = (!any).then_some(cp_id);
                            super::super::driver_request::update_for(
                                request_id, driver_id, cp_id, answer,
                            )
                        }
                    };
                    publisher
                        .driver_update(update)
                        .await
                        .map_err(|e| Rejection::retry_later(e.to_string()))
                });
            }
        }
        Box::pin(async { Ok(()) })
    }
}

//! Reserving a CP for a driver's request, wherever the CP runs: here, by its actor; on
//! another central instance, by passing the request on to it (a [`Note::Reserve`]), which
//! answers the driver itself. A request for any CP tries the CPs available here, then
//! passes itself on to an instance with one available, which does the same: each CP is
//! reserved by its one actor only, and each request goes one way at a time, so no CP is
//! booked twice and no driver gets two.

use super::CpSupervisor;
use crate::actors::central::charge_point::{ChargePoint, Reserve};
use crate::domain::{CpState, Denial, Reservation};
use crate::messages::DenyReason;
use crate::proof::ClusterKey;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What became of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Booked {
    /// Reserved here.
    Here(Reservation),
    /// Passed on to the instance running the CP: it answers the driver.
    PassedOn,
}

/// Reserve a CP (or any available one) for a driver's request.
#[derive(Message)]
#[rtype(result = "Result<Booked, Denial>")]
pub struct ReserveFor {
    pub request_id: Uuid,
    pub driver_id: String,
    pub cp_id: Option<String>,
}

impl Handler<ReserveFor> for CpSupervisor {
    type Result = ResponseFuture<Result<Booked, Denial>>;

    fn handle(&mut self, msg: ReserveFor, ctx: &mut Self::Context) -> Self::Result {
        let booking = Booking {
            request_id: msg.request_id,
            driver_id: msg.driver_id,
            named: msg.cp_id.clone(),
            first: msg.cp_id,
            tried: Vec::new(),
        };
        self.book(booking, ctx)
    }
}

/// One request on its way.
#[derive(Debug, Clone)]
pub(super) struct Booking {
    pub request_id: Uuid,
    pub driver_id: String,
    /// The CP the driver asked for; `None` for any.
    pub named: Option<String>,
    /// The CP to try first (a note's CP).
    pub first: Option<String>,
    /// CPs tried already, on other instances.
    pub tried: Vec<String>,
}

impl CpSupervisor {
    /// Checks the driver, then reserves the named CP, or each available CP in turn.
    pub(super) fn book(
        &mut self,
        booking: Booking,
        _ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<Booked, Denial>> {
        let denied = |denial: Denial| -> ResponseFuture<Result<Booked, Denial>> {
            Box::pin(async move { Err(denial) })
        };
        let elsewhere = self.views.values().find(|v| {
            v.driver_id.as_deref() == Some(booking.driver_id.as_str())
                && booking.named.as_deref() != Some(v.id.as_str())
        });
        if let Some(busy) = elsewhere {
            return denied(Denial::new(
                DenyReason::DriverBusy,
                format!("{} already has a supply at {}", booking.driver_id, busy.id),
            ));
        }
        if let Some(id) = &booking.named {
            if let Some(cp) = self.cp(id) {
                return Box::pin(reserve_at(vec![cp], booking, true, None::<NoFurther>));
            }
            if !matches!(self.store.cp(id), Ok(Some(_))) {
                return denied(Denial::new(
                    DenyReason::UnknownCp,
                    format!("no charging point {id} is known"),
                ));
            }
            let note = Note::Reserve {
                request_id: booking.request_id,
                driver_id: booking.driver_id,
                any: false,
                tried: Vec::new(),
            };
            let passed = self.pass_on(id, &note);
            return Box::pin(async move {
                passed.await.map(|()| Booked::PassedOn).map_err(|why| {
                    Denial::new(DenyReason::NoCpAvailable, format!("cannot reach it: {why}"))
                })
            });
        }
        let untried = |id: &String| !booking.tried.contains(id);
        let mut here: Vec<(String, Addr<ChargePoint>)> = Vec::new();
        if let Some(first) = booking.first.as_ref().filter(|id| untried(id)) {
            if let Some(cp) = self.cp(first) {
                here.push((first.clone(), cp));
            }
        }
        let available = self
            .views
            .values()
            .filter(|v| v.state == CpState::Available && untried(&v.id));
        let mut further = None;
        for view in available {
            match self.cp(&view.id) {
                Some(cp) if !here.iter().any(|(id, _)| *id == view.id) => {
                    here.push((view.id.clone(), cp));
                }
                Some(_) => {}
                None if further.is_none() && view.owner.is_some() => {
                    further = Some(view.id.clone());
                }
                None => {}
            }
        }
        let mut tried = booking.tried.clone();
        tried.extend(here.iter().map(|(id, _)| id.clone()));
        let further = further.map(|id| {
            let note = Note::Reserve {
                request_id: booking.request_id,
                driver_id: booking.driver_id.clone(),
                any: true,
                tried,
            };
            self.pass_on(&id, &note)
        });
        let cps = here.into_iter().map(|(_, cp)| cp).collect();
        Box::pin(reserve_at(cps, booking, false, further))
    }
}

/// No instance to pass a request on to.
type NoFurther = std::future::Ready<Result<(), String>>;

/// Tries `cps` in turn; once all deny, passes the request on (`further`) if it can.
async fn reserve_at(
    cps: Vec<Addr<ChargePoint>>,
    booking: Booking,
    named: bool,
    further: Option<impl std::future::Future<Output = Result<(), String>>>,
) -> Result<Booked, Denial> {
    let mut last = Denial::new(
        DenyReason::NoCpAvailable,
        "no charging point is available now",
    );
    for cp in cps {
        let reserve = Reserve {
            request_id: booking.request_id,
            driver_id: booking.driver_id.clone(),
        };
        match cp.send(reserve).await {
            Ok(Ok(reservation)) => return Ok(Booked::Here(reservation)),
            // The store fails: another CP would fail the same way.
            Ok(Err(denial)) if denial.reason == DenyReason::RecordFailed => return Err(denial),
            Ok(Err(denial)) if named => last = denial,
            Ok(Err(_)) => {}
            Err(e) => log::warn!("a charging point actor did not answer: {e}"),
        }
    }
    match further {
        Some(passed) => match passed.await {
            Ok(()) => Ok(Booked::PassedOn),
            Err(why) => {
                log::warn!("request {} not passed on: {why}", booking.request_id);
                Err(last)
            }
        },
        None => Err(last),
    }
}

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
    /// Crash the CP's monitor with its next report (crash injection).
    CrashMonitor,
    /// The operator changed the CP's location or tariff.
    ChangeTerms(crate::domain::registration::CpTerms),
    /// The CP was issued a new secret: the monitor that proved the old one is dropped.
    ForgetMonitor,
    /// A link held by instance `via` proved the CP's secret (the one issued at
    /// `issued_at`): the owner takes it as the CP's monitor.
    MonitorAttach {
        via: String,
        conn_id: u64,
        peer: String,
        issued_at: DateTime<Utc>,
    },
    /// That link's monitor reports its engine: `fault` when the engine is KO.
    MonitorReport {
        via: String,
        conn_id: u64,
        fault: Option<String>,
    },
    /// That link closed, or went silent.
    MonitorGone { via: String, conn_id: u64 },
}

/// What is sealed: the note and when it was written.
#[derive(Debug, Serialize, Deserialize)]
struct Sealed {
    at: DateTime<Utc>,
    note: Note,
}

impl Note {
    pub(super) fn seal(&self, key: &ClusterKey, cp_id: &str) -> String {
        let plain = serde_json::to_vec(&Sealed {
            at: Utc::now(),
            note: self.clone(),
        })
        .expect("notes always serialise");
        hex::encode(key.seal(SEALED_FOR, cp_id, &plain))
    }

    pub(super) fn open(key: &ClusterKey, cp_id: &str, sealed: &str) -> Result<Note, String> {
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

//! What one central instance passes on to the one that runs a CP: a driver's request for
//! it, an operator's command. The note travels on `cp.events` under the CP's key (so the
//! consumer group brings it to the CP's owner, in order with the CP's own records), sealed
//! with the cluster key: engines, which write that topic too, can neither read nor forge
//! one.

use super::booking::{Booked, Booking, Note};
use super::CpSupervisor;
use crate::actors::central::charge_point::{
    ChangeTerms, ChargePoint, CpControl, Crash, CrashMonitor, ForgetMonitor, RelayedEvent,
    RelayedMonitor,
};
use crate::actors::central::console_hub::{ConsoleHub, RequestAnswered};
use crate::bus::{Inbound, Rejection};
use crate::domain::registration::CpTerms;
use crate::domain::EngineHealth;
use crate::messages::CpEvent;
use actix::prelude::*;

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
        let store = self.store.clone();
        actix::spawn(async move {
            // A note never outruns the writes made before it (a new secret's credential):
            // the changelog has them first, and the owner applies them before the note.
            if let Err(e) = store.flush().await {
                log::error!("{cp_id}: {note:?} passed on before its writes were shipped: {e}");
            }
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
        let written = msg.envelope.ts;
        let relayed = |via, conn_id, event| RelayedMonitor {
            via,
            conn_id,
            written,
            event,
        };
        match note {
            Note::MonitorAttach {
                via,
                conn_id,
                peer,
                issued_at,
            } => cp.do_send(relayed(
                via,
                conn_id,
                RelayedEvent::Attach { peer, issued_at },
            )),
            Note::MonitorReport {
                via,
                conn_id,
                fault,
            } => {
                let engine = fault.map_or(EngineHealth::Ok, EngineHealth::Ko);
                cp.do_send(relayed(via, conn_id, RelayedEvent::Report(engine)));
            }
            Note::MonitorGone { via, conn_id } => {
                cp.do_send(relayed(via, conn_id, RelayedEvent::Gone));
            }
            Note::Stop => cp.do_send(CpControl::Stop),
            Note::Resume => cp.do_send(CpControl::Resume),
            Note::DriverStop => cp.do_send(CpControl::DriverStop),
            Note::CrashActor => cp.do_send(Crash),
            Note::CrashMonitor => cp.do_send(CrashMonitor),
            Note::ForgetMonitor => {
                // The new credential comes on the changelog, which this note may outrun:
                // dropped before it is applied here, the monitor would AUTH again with the
                // old secret, and be taken.
                let replica = self.cluster.as_ref().map(|c| c.replica.clone());
                return Box::pin(async move {
                    if let Some(replica) = replica {
                        replica
                            .caught_up()
                            .await
                            .map_err(|e| Rejection::retry_later(e.to_string()))?;
                    }
                    cp.do_send(ForgetMonitor);
                    Ok(())
                });
            }
            // Sealed by another instance, and still checked against the rules.
            Note::ChangeTerms(terms) => {
                match CpTerms::new(&terms.location, terms.tariff.eur_per_kwh()) {
                    Ok(terms) => cp.do_send(ChangeTerms(terms)),
                    Err(why) => return Box::pin(async move { Err(Rejection::set_aside(why)) }),
                }
            }
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

//! The central's desk for driver requests: the sink of the `driver.requests` consumer.

use super::charge_point::CpState;
use super::cp_supervisor::{CpSupervisor, ListCps, StopDriverSupply};
use super::driver_request::{DriverRequest, Handle};
use crate::bus::{Inbound, Publisher, Rejection};
use crate::messages::{self, CpOffer, DriverUpdate};
use crate::presence::{Presence, Verdict};
use crate::store::Store;
use actix::prelude::*;
use std::time::Duration;

pub struct DriverDesk {
    supervisor: Addr<CpSupervisor>,
    store: Store,
    publisher: Publisher,
    /// Which instance holds each driver id.
    presence: Presence,
}

impl DriverDesk {
    pub fn new(
        supervisor: Addr<CpSupervisor>,
        store: Store,
        publisher: Publisher,
        liveness: Duration,
    ) -> DriverDesk {
        DriverDesk {
            supervisor,
            store,
            publisher,
            presence: Presence::new(liveness),
        }
    }
}

impl Actor for DriverDesk {
    type Context = Context<Self>;
}

impl Handler<Inbound<messages::DriverRequest>> for DriverDesk {
    type Result = ResponseFuture<Result<(), Rejection>>;

    /// Starts one [`DriverRequest`] actor per new supply request and waits for its verdict;
    /// answers list and stop requests directly.
    fn handle(
        &mut self,
        msg: Inbound<messages::DriverRequest>,
        _ctx: &mut Self::Context,
    ) -> Self::Result {
        let supervisor = self.supervisor.clone();
        let publisher = self.publisher.clone();
        match msg.envelope.body {
            messages::DriverRequest::SupplyRequest {
                request_id,
                driver_id,
                cp_id,
            } => {
                match self.store.session_for_request(request_id) {
                    Ok(Some(session)) => {
                        log::info!(
                            "request {request_id} of {driver_id} seen before; answering again"
                        );
                        return Box::pin(answer_again(session, self.store.clone(), publisher));
                    }
                    Ok(None) => {}
                    Err(e) => log::error!("cannot look up request {request_id}: {e}"),
                }
                match self.store.register_driver(&driver_id) {
                    Ok(true) => log::info!("new driver {driver_id}"),
                    Ok(false) => {}
                    Err(e) => log::error!("cannot record driver {driver_id}: {e}"),
                }
                let request =
                    DriverRequest::new(request_id, driver_id, cp_id, supervisor, publisher).start();
                Box::pin(async move {
                    request
                        .send(Handle)
                        .await
                        .map_err(|e| Rejection(format!("request not handled: {e}")))
                })
            }
            messages::DriverRequest::Hello {
                driver_id,
                instance,
                probe,
            } => {
                let answer = match self.presence.hello(&driver_id, instance, probe) {
                    Verdict::Welcome => Some(DriverUpdate::Welcome {
                        driver_id,
                        instance,
                    }),
                    Verdict::InUse(detail) => Some(DriverUpdate::IdInUse {
                        driver_id,
                        instance,
                        detail: format!("driver {detail}"),
                    }),
                    Verdict::Quiet => None,
                };
                Box::pin(async move {
                    match answer {
                        Some(update) => publisher
                            .driver_update(update)
                            .await
                            .map_err(|e| Rejection(e.to_string())),
                        None => Ok(()),
                    }
                })
            }
            messages::DriverRequest::StopSupply { driver_id } => Box::pin(async move {
                let stopped = supervisor
                    .send(StopDriverSupply {
                        driver_id: driver_id.clone(),
                    })
                    .await
                    .unwrap_or(false);
                log::info!("{driver_id} asks to stop its supply (found: {stopped})");
                Ok(())
            }),
            messages::DriverRequest::ListAvailable { driver_id } => Box::pin(async move {
                let cps = supervisor.send(ListCps).await.unwrap_or_default();
                let offers = cps
                    .into_iter()
                    .filter(|cp| cp.state == CpState::Available)
                    .map(|cp| CpOffer {
                        cp_id: cp.id,
                        location: cp.location,
                        price_eur_kwh: cp.price_eur_kwh,
                    })
                    .collect();
                publisher
                    .driver_update(DriverUpdate::Available {
                        driver_id,
                        cps: offers,
                    })
                    .await
                    .map_err(|e| Rejection(e.to_string()))
            }),
        }
    }
}

/// The answer a request already had: its reservation while open, its ticket once closed.
/// A crash between storing a reservation and sending it must not leave the driver waiting.
async fn answer_again(
    session: crate::store::SessionRecord,
    store: Store,
    publisher: Publisher,
) -> Result<(), Rejection> {
    let update = match session.ticket() {
        Some(ticket) => DriverUpdate::Ticket {
            driver_id: ticket.driver_id.clone(),
            ticket,
        },
        None => DriverUpdate::Reserved {
            request_id: session.request_id,
            driver_id: session.driver_id.clone(),
            session_id: session.id,
            location: store
                .cp(&session.cp_id)
                .ok()
                .flatten()
                .map(|cp| cp.location)
                .unwrap_or_default(),
            cp_id: session.cp_id,
            price_eur_kwh: session.price_eur_kwh,
            expires_at: session.expires_at,
        },
    };
    publisher
        .driver_update(update)
        .await
        .map_err(|e| Rejection(e.to_string()))
}

//! One driver's supply request, from arrival to reservation or denial.

use super::console_hub::{ConsoleHub, RequestAnswered, RequestSeen};
use super::cp_supervisor::{Booked, CpSupervisor, ReserveFor};
use crate::bus::Publisher;
use crate::domain::{Denial, Reservation};
use crate::messages::{DenyReason, DriverUpdate};
use actix::prelude::*;
use uuid::Uuid;

pub struct DriverRequest {
    request_id: Uuid,
    driver_id: String,
    cp_id: Option<String>,
    supervisor: Addr<CpSupervisor>,
    publisher: Publisher,
}

impl DriverRequest {
    pub fn new(
        request_id: Uuid,
        driver_id: String,
        cp_id: Option<String>,
        supervisor: Addr<CpSupervisor>,
        publisher: Publisher,
    ) -> DriverRequest {
        DriverRequest {
            request_id,
            driver_id,
            cp_id,
            supervisor,
            publisher,
        }
    }
}

impl Actor for DriverRequest {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        log::info!(
            "request {} from {} for {}",
            self.request_id,
            self.driver_id,
            self.cp_id.as_deref().unwrap_or("any available CP")
        );
        ConsoleHub::from_registry().do_send(RequestSeen {
            request_id: self.request_id,
            driver_id: self.driver_id.clone(),
            wanted: self.cp_id.clone(),
        });
    }
}

/// Handle the request: reserve a CP and tell the driver, then stop.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Handle;

impl Handler<Handle> for DriverRequest {
    type Result = ResponseActFuture<Self, ()>;

    /// Asks the supervisor for a reservation and tells the driver the answer; the CP actor
    /// tells the driver every later step.
    fn handle(&mut self, _msg: Handle, _ctx: &mut Self::Context) -> Self::Result {
        let reserve = ReserveFor {
            request_id: self.request_id,
            driver_id: self.driver_id.clone(),
            cp_id: self.cp_id.clone(),
        };
        let supervisor = self.supervisor.clone();
        let publisher = self.publisher.clone();
        let request_id = self.request_id;
        let driver_id = self.driver_id.clone();
        let cp_id = self.cp_id.clone();
        Box::pin(
            async move {
                let answer = match supervisor.send(reserve).await {
                    // Passed on to the central running the CP, which answers the driver.
                    Ok(Ok(Booked::PassedOn)) => return,
                    Ok(Ok(Booked::Here(reservation))) => Ok(reservation),
                    Ok(Err(denial)) => Err(denial),
                    Err(e) => Err(Denial::new(
                        DenyReason::NoCpAvailable,
                        format!("the central could not handle the request: {e}"),
                    )),
                };
                ConsoleHub::from_registry().do_send(RequestAnswered {
                    request_id,
                    answer: match &answer {
                        Ok(r) => Ok(r.cp_id.clone()),
                        Err(denial) => Err(denial.detail.clone()),
                    },
                });
                let update = update_for(request_id, driver_id, cp_id, answer);
                if let Err(e) = publisher.driver_update(update).await {
                    log::error!("cannot answer request {request_id}: {e}");
                }
            }
            .into_actor(self)
            .map(|_, _act, ctx| ctx.stop()),
        )
    }
}

/// What the driver is told of its request's reservation or denial.
pub(super) fn update_for(
    request_id: Uuid,
    driver_id: String,
    cp_id: Option<String>,
    answer: Result<Reservation, Denial>,
) -> DriverUpdate {
    match answer {
        Ok(r) => DriverUpdate::Reserved {
            request_id,
            driver_id,
            session_id: r.session_id,
            cp_id: r.cp_id,
            location: r.location,
            price_eur_kwh: r.tariff.eur_per_kwh(),
            expires_at: r.expires_at,
        },
        Err(denial) => {
            log::info!("request {request_id} denied: {}", denial.detail);
            DriverUpdate::Denied {
                request_id,
                driver_id,
                cp_id,
                reason: denial.reason,
                detail: denial.detail,
            }
        }
    }
}

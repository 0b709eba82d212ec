//! A driver's tag presented at a CP (an RFID card at an OCPP charge point): a supply
//! request made at the CP itself, booked as the driver's own request would be. The driver
//! is told as for its own requests; the CP hears `authorise` or `tag_refused`.

use super::booking::{Booked, Booking};
use super::CpSupervisor;
use crate::actors::central::console_hub::{ConsoleHub, RequestAnswered, RequestSeen};
use crate::bus::Rejection;
use crate::domain::Denial;
use crate::messages::{CpCommand, DenyReason};
use actix::prelude::*;
use uuid::Uuid;

impl CpSupervisor {
    pub(super) fn tag_presented(
        &mut self,
        cp_id: String,
        id_tag: String,
        request_id: Uuid,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<(), Rejection>> {
        let publisher = self.publisher.clone();
        let refuse = move |publisher: crate::bus::Publisher, cp_id: String, denial: Denial| async move {
            log::info!("tag {request_id} at {cp_id} refused: {}", denial.detail);
            let refused = CpCommand::TagRefused {
                cp_id,
                request_id,
                reason: denial.reason,
                detail: denial.detail,
            };
            publisher
                .cp_command(refused)
                .await
                .map_err(|e| Rejection::retry_later(e.to_string()))
        };
        // A tag is a registered driver's id: any other is refused, and no driver is told.
        if !matches!(self.store.driver_credential(&id_tag), Ok(Some(_))) {
            let denial = Denial::new(
                DenyReason::UnknownDriver,
                format!("no driver {id_tag} is registered"),
            );
            return Box::pin(refuse(publisher, cp_id, denial));
        }
        log::info!("{id_tag} presented a tag at {cp_id}: request {request_id}");
        ConsoleHub::from_registry().do_send(RequestSeen {
            request_id,
            driver_id: id_tag.clone(),
            wanted: Some(cp_id.clone()),
        });
        let booking = Booking {
            request_id,
            driver_id: id_tag.clone(),
            named: Some(cp_id.clone()),
            first: Some(cp_id.clone()),
            tried: Vec::new(),
        };
        let booked = self.book(booking, ctx);
        Box::pin(async move {
            let answer = match booked.await {
                // Passed on to the instance that runs the CP now: it answers.
                Ok(Booked::PassedOn) => return Ok(()),
                Ok(Booked::Here(reservation)) => Ok(reservation),
                Err(denial) => Err(denial),
            };
            ConsoleHub::from_registry().do_send(RequestAnswered {
                request_id,
                answer: match &answer {
                    Ok(r) => Ok(r.cp_id.clone()),
                    Err(denial) => Err(denial.detail.clone()),
                },
            });
            if let Err(denial) = &answer {
                refuse(publisher.clone(), cp_id.clone(), denial.clone()).await?;
            }
            let update = crate::actors::central::driver_request::update_for(
                request_id,
                id_tag,
                Some(cp_id),
                answer,
            );
            publisher
                .driver_update(update)
                .await
                .map_err(|e| Rejection::retry_later(e.to_string()))
        })
    }
}

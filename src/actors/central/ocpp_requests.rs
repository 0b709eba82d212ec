//! An operator's OCPP request for one charge point (Reset, TriggerMessage, GetConfiguration,
//! ChangeConfiguration): asked on the bus (`ocpp_request`) and answered by the gateway the
//! charge point is connected to (`ocpp_answer`). Any central may ask, whichever runs the CP.

use crate::bus::{Bus, BusError, Publisher};
use crate::messages::{CpCommand, CpEvent};
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// How long an operator's request waits for the charge point's answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);

/// Asks OCPP charge points for an operator. Cheap to clone.
#[derive(Clone)]
pub struct OcppRequests {
    bus: Bus,
    publisher: Publisher,
}

/// What the charge point answered: its status, and the answer's payload.
#[derive(Debug, Clone, PartialEq)]
pub struct OcppAnswer {
    pub status: String,
    pub payload: Value,
}

impl OcppRequests {
    pub fn new(bus: Bus, publisher: Publisher) -> OcppRequests {
        OcppRequests { bus, publisher }
    }

    /// Asks `action` of charge point `cp_id`; `None` when no answer came in time (it is not
    /// connected to any gateway, or no gateway runs).
    pub async fn ask(
        &self,
        cp_id: &str,
        action: &str,
        payload: Value,
    ) -> Result<Option<OcppAnswer>, BusError> {
        let request_id = Uuid::new_v4();
        let command = CpCommand::OcppRequest {
            cp_id: cp_id.to_owned(),
            request_id,
            action: action.to_owned(),
            payload,
        };
        let publisher = self.publisher.clone();
        let topic = self.bus.topics().cp_events.clone();
        let answer = self
            .bus
            .ask(
                &topic,
                async move { publisher.cp_command(command).await },
                |event: &CpEvent| {
                    matches!(event, CpEvent::OcppAnswer { request_id: r, .. } if *r == request_id)
                },
                ANSWER_TIMEOUT,
            )
            .await?;
        Ok(answer.and_then(|event| match event {
            CpEvent::OcppAnswer {
                status, payload, ..
            } => Some(OcppAnswer { status, payload }),
            _ => None,
        }))
    }
}

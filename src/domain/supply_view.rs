//! What a driver knows of its current supply, kept up to date from the central's updates:
//! the state the dashboard and `GET /api/state` show.

use crate::messages::{DriverUpdate, Ticket};
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// Where the driver's current (or last) request stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SupplyState {
    /// Nothing asked yet.
    #[default]
    Idle,
    /// Sent to the central, no answer yet.
    Requesting,
    /// A CP is held for the driver and asked to authorise.
    Reserved,
    /// The CP authorised: the vehicle may plug in.
    Authorised,
    /// Energy flows.
    Charging,
    /// Something went wrong at the CP; the ticket follows.
    Interrupted,
    /// The ticket arrived.
    Done,
    /// The central denied the request.
    Denied,
    /// The driver stopped waiting (no answer or no ticket in time).
    GaveUp,
}

impl SupplyState {
    /// The word the dashboard shows, the same as the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SupplyState::Idle => "idle",
            SupplyState::Requesting => "requesting",
            SupplyState::Reserved => "reserved",
            SupplyState::Authorised => "authorised",
            SupplyState::Charging => "charging",
            SupplyState::Interrupted => "interrupted",
            SupplyState::Done => "done",
            SupplyState::Denied => "denied",
            SupplyState::GaveUp => "gave_up",
        }
    }
}

/// The current request or supply, and the last ticket.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SupplyView {
    pub state: SupplyState,
    pub request_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    /// The CP asked for or reserved; `None` while "any CP" is being looked for.
    pub cp_id: Option<String>,
    pub location: Option<String>,
    pub price_eur_kwh: Option<f64>,
    pub started_at: Option<DateTime<Utc>>,
    pub kwh: f64,
    pub eur: f64,
    /// Why it was denied, interrupted or given up.
    pub detail: Option<String>,
    /// The last ticket received, kept after a new request starts.
    pub ticket: Option<Ticket>,
}

impl SupplyView {
    /// A new request has left: everything but the last ticket starts afresh.
    pub fn requesting(&mut self, request_id: Uuid, cp_id: Option<String>) {
        *self = SupplyView {
            state: SupplyState::Requesting,
            request_id: Some(request_id),
            cp_id,
            ticket: self.ticket.take(),
            ..SupplyView::default()
        };
    }

    /// The driver stopped waiting.
    pub fn gave_up(&mut self, reason: &str) {
        self.state = SupplyState::GaveUp;
        self.detail = Some(reason.to_owned());
    }

    /// Whether a request or supply is under way (no final word yet).
    pub fn in_progress(&self) -> bool {
        matches!(
            self.state,
            SupplyState::Requesting
                | SupplyState::Reserved
                | SupplyState::Authorised
                | SupplyState::Charging
                | SupplyState::Interrupted
        )
    }

    /// Takes one step of the central's news about this supply.
    pub fn apply(&mut self, update: &DriverUpdate) {
        match update {
            DriverUpdate::Reserved {
                request_id,
                session_id,
                cp_id,
                location,
                price_eur_kwh,
                ..
            } => {
                self.state = SupplyState::Reserved;
                self.request_id = Some(*request_id);
                self.session_id = Some(*session_id);
                self.cp_id = Some(cp_id.clone());
                self.location = Some(location.clone());
                self.price_eur_kwh = Some(*price_eur_kwh);
            }
            DriverUpdate::Denied { cp_id, detail, .. } => {
                self.state = SupplyState::Denied;
                if cp_id.is_some() {
                    self.cp_id = cp_id.clone();
                }
                self.detail = Some(detail.clone());
            }
            DriverUpdate::Authorised {
                session_id, cp_id, ..
            } => {
                self.state = SupplyState::Authorised;
                self.follow(*session_id, cp_id);
            }
            DriverUpdate::Started {
                session_id,
                cp_id,
                started_at,
                ..
            } => {
                self.state = SupplyState::Charging;
                self.follow(*session_id, cp_id);
                self.started_at = Some(*started_at);
            }
            DriverUpdate::Progress {
                session_id,
                cp_id,
                kwh,
                eur,
                ..
            } => {
                self.state = SupplyState::Charging;
                self.follow(*session_id, cp_id);
                self.kwh = *kwh;
                self.eur = *eur;
            }
            DriverUpdate::Interrupted {
                session_id,
                cp_id,
                detail,
                ..
            } => {
                self.state = SupplyState::Interrupted;
                self.follow(*session_id, cp_id);
                self.detail = Some(detail.clone());
            }
            DriverUpdate::Ticket { ticket, .. } => {
                self.state = SupplyState::Done;
                self.follow(ticket.session_id, &ticket.cp_id);
                self.request_id = Some(ticket.request_id);
                self.price_eur_kwh = Some(ticket.price_eur_kwh);
                self.started_at = ticket.started_at;
                self.kwh = ticket.kwh;
                self.eur = ticket.eur;
                self.ticket = Some(ticket.clone());
            }
            DriverUpdate::Available { .. }
            | DriverUpdate::Welcome { .. }
            | DriverUpdate::IdInUse { .. }
            | DriverUpdate::SignedIn { .. }
            | DriverUpdate::History { .. } => {}
        }
    }

    fn follow(&mut self, session_id: Uuid, cp_id: &str) {
        self.session_id = Some(session_id);
        self.cp_id = Some(cp_id.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::Outcome;

    fn progress(session_id: Uuid, kwh: f64) -> DriverUpdate {
        DriverUpdate::Progress {
            driver_id: "D1".into(),
            session_id,
            cp_id: "CP1".into(),
            kwh,
            eur: kwh * 0.5,
        }
    }

    #[test]
    fn a_supply_goes_from_requesting_to_done_and_keeps_its_ticket() {
        let mut view = SupplyView::default();
        assert_eq!(view.state, SupplyState::Idle);
        let request_id = Uuid::new_v4();
        let session_id = Uuid::now_v7();
        view.requesting(request_id, None);
        assert!(view.in_progress());
        view.apply(&DriverUpdate::Reserved {
            request_id,
            driver_id: "D1".into(),
            session_id,
            cp_id: "CP1".into(),
            location: "Alicante".into(),
            price_eur_kwh: 0.5,
            expires_at: Utc::now(),
        });
        assert_eq!(view.state, SupplyState::Reserved);
        assert_eq!(view.cp_id.as_deref(), Some("CP1"));
        view.apply(&progress(session_id, 0.012));
        assert_eq!(view.state.as_str(), "charging");
        assert_eq!(view.kwh, 0.012);
        let ticket = Ticket {
            session_id,
            request_id,
            cp_id: "CP1".into(),
            driver_id: "D1".into(),
            started_at: Some(Utc::now()),
            ended_at: Utc::now(),
            kwh: 0.02,
            eur: 0.01,
            price_eur_kwh: 0.5,
            outcome: Outcome::Completed,
        };
        view.apply(&DriverUpdate::Ticket {
            driver_id: "D1".into(),
            ticket: ticket.clone(),
        });
        assert_eq!(view.state, SupplyState::Done);
        assert!(!view.in_progress());
        assert_eq!((view.kwh, view.eur), (0.02, 0.01));

        // The next request starts afresh but the last ticket stays.
        view.requesting(Uuid::new_v4(), Some("CP2".into()));
        assert_eq!(view.kwh, 0.0);
        assert_eq!(view.session_id, None);
        assert_eq!(view.ticket, Some(ticket));
    }

    #[test]
    fn a_denial_and_a_give_up_say_why() {
        let mut view = SupplyView::default();
        let request_id = Uuid::new_v4();
        view.requesting(request_id, Some("CP9".into()));
        view.apply(&DriverUpdate::Denied {
            request_id,
            driver_id: "D1".into(),
            cp_id: Some("CP9".into()),
            reason: crate::messages::DenyReason::UnknownCp,
            detail: "no charging point CP9 is known".into(),
        });
        assert_eq!(view.state.as_str(), "denied");
        assert!(view.detail.as_deref().unwrap().contains("CP9"));
        view.requesting(Uuid::new_v4(), None);
        view.gave_up("no answer from the central");
        assert_eq!(
            serde_json::to_value(&view).unwrap()["state"],
            serde_json::json!("gave_up")
        );
    }
}

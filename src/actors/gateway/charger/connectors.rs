//! The charge point's connectors, each with its last StatusNotification. The CP is fit to
//! supply while the charge point as a whole (connector 0) is not faulted and at least one
//! connector can be used; the console shows each connector.

use super::Charger;
use crate::messages::{ConnectorStatus, CpEvent, MAX_CONNECTORS};
use crate::ocpp::core::{ChargePointStatus, StatusNotification};

/// One connector as it last said.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Connector {
    status: ChargePointStatus,
    detail: Option<String>,
}

impl Charger {
    pub(super) fn status_notified(&mut self, status: StatusNotification) {
        let known = self.connectors.contains_key(&status.connector_id);
        if !known && self.connectors.len() > MAX_CONNECTORS {
            if !self.worth_logging() {
                return;
            }
            log::warn!(
                "{}: connector {} ignored: at most {MAX_CONNECTORS} are followed",
                self.id(),
                status.connector_id
            );
            return;
        }
        let detail = match status.error_code {
            crate::ocpp::core::ChargePointErrorCode::NoError => status.info.clone(),
            code => Some(match &status.info {
                Some(info) => format!("{code:?}: {info}"),
                None => format!("{code:?}"),
            }),
        };
        let connector = Connector {
            status: status.status,
            detail,
        };
        let changed = self.connectors.get(&status.connector_id) != Some(&connector);
        self.connectors.insert(status.connector_id, connector);
        self.judge();
        if changed && status.connector_id > 0 {
            self.tell_connectors();
        }
    }

    /// Why a connector cannot be used, if it cannot.
    fn unusable(&self, id: u32, connector: &Connector) -> Option<String> {
        let what = if id == 0 {
            "the charge point".to_string()
        } else {
            format!("connector {id}")
        };
        let detail = connector
            .detail
            .as_ref()
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        match connector.status {
            ChargePointStatus::Faulted => Some(format!("{what} faulted{detail}")),
            // Unavailable because the operator stopped it is no fault of its own.
            ChargePointStatus::Unavailable if !self.inoperative => {
                Some(format!("{what} unavailable{detail}"))
            }
            _ => None,
        }
    }

    /// The charge point's fault: its own, or every connector's.
    pub(super) fn judge(&mut self) {
        let whole = self.connectors.get(&0).and_then(|c| self.unusable(0, c));
        let each: Vec<Option<String>> = self
            .connectors
            .iter()
            .filter(|(id, _)| **id > 0)
            .map(|(id, c)| self.unusable(*id, c))
            .collect();
        let fault = whole.or_else(|| {
            let all_unusable = !each.is_empty() && each.iter().all(Option::is_some);
            all_unusable.then(|| each.into_iter().flatten().collect::<Vec<_>>().join("; "))
        });
        if fault != self.fault && self.worth_logging() {
            match &fault {
                Some(why) => log::warn!("{}: {why}", self.id()),
                None => log::info!("{}: fit to supply again", self.id()),
            }
        }
        self.fault = fault;
    }

    /// The connector a remote start asks for: the first free one (1 when none said).
    pub(super) fn free_connector(&self) -> u32 {
        self.connectors
            .iter()
            .filter(|(id, _)| **id > 0)
            .find(|(_, c)| {
                matches!(
                    c.status,
                    ChargePointStatus::Available | ChargePointStatus::Preparing
                )
            })
            .map_or(1, |(id, _)| *id)
    }

    /// Tells the central every connector's status, for the console.
    pub(super) fn tell_connectors(&self) {
        let connectors: Vec<ConnectorStatus> = self
            .connectors
            .iter()
            .filter(|(id, _)| **id > 0)
            .take(MAX_CONNECTORS)
            .map(|(id, c)| ConnectorStatus {
                connector_id: *id,
                status: format!("{:?}", c.status),
                detail: c.detail.clone(),
            })
            .collect();
        if connectors.is_empty() {
            return;
        }
        self.emit(CpEvent::Connectors {
            cp_id: self.cp.id.clone(),
            connectors,
        });
    }
}

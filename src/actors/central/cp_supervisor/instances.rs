//! The central instances of the network, as each says how it is: every
//! [`STATUS_EVERY`] an instance shares, on the views topic, which partitions it holds and
//! how many CPs it runs; every instance keeps the others' last word, and its console shows
//! them all, an instance silent for a few periods as such.

use super::CpSupervisor;
use crate::bus::SealedRecord;
use crate::domain::central_status::{CentralSeen, CentralStatus, STATUS_EVERY};
use actix::prelude::*;
use chrono::Utc;

/// The views topic's keys for instances: no CP id has a `/`.
const KEY_PREFIX: &str = "central/";

/// Every instance of the network as last heard of, this one first.
#[derive(Message)]
#[rtype(result = "Vec<CentralSeen>")]
pub struct ListCentrals;

impl Handler<ListCentrals> for CpSupervisor {
    type Result = Vec<CentralSeen>;

    fn handle(&mut self, _msg: ListCentrals, _ctx: &mut Self::Context) -> Self::Result {
        let now = Utc::now();
        let others = self
            .centrals
            .values()
            .filter(|status| status.instance != self.settings.instance)
            .map(|status| status.clone().seen(now, false));
        std::iter::once(self.status().seen(now, true))
            .chain(others)
            .collect()
    }
}

impl CpSupervisor {
    /// Shares this instance's status now and every period after.
    pub(super) fn share_status(&mut self, ctx: &mut Context<Self>) {
        self.publish_status();
        ctx.run_interval(STATUS_EVERY, |me, _| me.publish_status());
    }

    pub(super) fn publish_status(&self) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let status = self.status();
        let value = serde_json::to_vec(&status).expect("statuses always serialise");
        cluster
            .views
            .publish(&format!("{KEY_PREFIX}{}", status.instance), &value);
    }

    fn status(&self) -> CentralStatus {
        CentralStatus {
            instance: self.settings.instance.clone(),
            console: self
                .cluster
                .as_ref()
                .map(|c| c.console.clone())
                .unwrap_or_default(),
            partitions: self.held.now().into_iter().collect(),
            cps: self.cps.len(),
            started_at: self.started_at,
            at: Utc::now(),
        }
    }

    /// Takes a record of the views topic if it is an instance's status; `Err` gives the
    /// record back otherwise.
    pub(super) fn heard_instance(&mut self, record: SealedRecord) -> Result<(), SealedRecord> {
        let Some(instance) = record.key.strip_prefix(KEY_PREFIX) else {
            return Err(record);
        };
        // Its own status, from this process or an earlier one, is known first-hand.
        if instance == self.settings.instance {
            return Ok(());
        }
        let status = record
            .value
            .and_then(|v| serde_json::from_slice::<CentralStatus>(&v).map_err(|e| e.to_string()));
        match status {
            Ok(status) if status.instance == instance => {
                self.centrals.insert(status.instance.clone(), status);
            }
            Ok(_) => log::warn!("an instance's status set aside: its key is not its instance"),
            Err(why) => log::debug!("an instance's status set aside: {why}"),
        }
        Ok(())
    }
}

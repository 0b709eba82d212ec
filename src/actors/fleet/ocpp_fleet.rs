//! Many simulated OCPP 1.6J charge points in one process (`evcharge fleet ocpp`), each on a
//! WebSocket of its own to a gateway ([`super::ocpp_charger`]): the load of a real estate
//! of chargers on one gateway, for `evcharge bench`.

use super::ocpp_charger::{self, ChargerCounters, ChargerParts};
use crate::messages::Secret;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The fleet's handles: what it counts and whether vehicles plug in.
#[derive(Clone)]
pub struct OcppFleet {
    counters: Arc<ChargerCounters>,
    plug_in: Arc<AtomicBool>,
    chargers: u64,
}

/// What the control endpoint says of the fleet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OcppFleetStatus {
    pub chargers: u64,
    pub connected: u64,
    pub booted: u64,
    pub connection_failures: u64,
    pub disconnections: u64,
    pub remote_starts: u64,
    pub transactions: u64,
    pub meter_values_sent: u64,
    pub meter_values_answered: u64,
    pub meter_answer_mean_ms: f64,
    pub call_errors: u64,
    pub plug_in: bool,
}

/// How the fleet's chargers reach their gateway and behave.
pub struct FleetPlan {
    pub gateway: String,
    pub meter_interval: Duration,
    /// New connections a second, so that the fleet does not arrive as one SYN flood.
    pub connect_rate: u32,
}

impl OcppFleet {
    /// Starts one charger per id, `plan.connect_rate` a second, on the current actix
    /// runtime; each runs until the process ends.
    pub fn start(ids: Vec<String>, mut secrets: HashMap<String, Secret>, plan: FleetPlan) -> Self {
        let counters = Arc::new(ChargerCounters::default());
        let plug_in = Arc::new(AtomicBool::new(true));
        let client = awc::Client::builder()
            // No cap on open connections: each charger holds one for good.
            .connector(awc::Connector::new().limit(0))
            .timeout(Duration::from_secs(30))
            .finish();
        let parts = Rc::new(ChargerParts {
            gateway: plan.gateway,
            meter_interval: plan.meter_interval,
            plug_in: plug_in.clone(),
            counters: counters.clone(),
            client,
        });
        let fleet = OcppFleet {
            counters,
            plug_in,
            chargers: ids.len() as u64,
        };
        let pause = Duration::from_secs(1) / plan.connect_rate.max(1);
        actix::spawn(async move {
            let mut pace = tokio::time::interval(pause);
            for id in ids {
                pace.tick().await;
                let key = secrets
                    .remove(&id)
                    .map(|s| s.expose().to_owned())
                    .unwrap_or_default();
                actix::spawn(ocpp_charger::run(id, key, parts.clone()));
            }
        });
        fleet
    }

    /// Whether an accepted remote start goes on to a transaction.
    pub fn set_plug_in(&self, plug_in: bool) {
        self.plug_in.store(plug_in, Ordering::Relaxed);
    }

    pub fn status(&self) -> OcppFleetStatus {
        let c = &self.counters;
        let read = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
        let answered = read(&c.meter_values_answered);
        OcppFleetStatus {
            chargers: self.chargers,
            connected: read(&c.connected),
            booted: read(&c.booted),
            connection_failures: read(&c.connection_failures),
            disconnections: read(&c.disconnections),
            remote_starts: read(&c.remote_starts),
            transactions: read(&c.transactions),
            meter_values_sent: read(&c.meter_values_sent),
            meter_values_answered: answered,
            meter_answer_mean_ms: if answered == 0 {
                0.0
            } else {
                read(&c.meter_answer_micros) as f64 / answered as f64 / 1000.0
            },
            call_errors: read(&c.call_errors),
            plug_in: self.plug_in.load(Ordering::Relaxed),
        }
    }
}

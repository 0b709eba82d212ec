//! One simulated driver of `evcharge fleet drivers`: asks for supplies when told, and tells
//! its [`DriverFleet`] how long each took to be authorised.

use super::driver_fleet::{Answered, DriverCounters, DriverFleet};
use crate::bus::{Inbound, Publisher, Rejection};
use crate::messages::{DriverRequest, DriverUpdate};
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// An answer this late is logged, so that it can be traced through the other logs.
const SLOW: Duration = Duration::from_millis(500);

/// A request on its way.
struct Pending {
    sent: Instant,
    /// Keep the supply going once authorised (else stop it at once).
    hold: bool,
}

pub struct SimulatedDriver {
    id: String,
    instance: Uuid,
    heartbeat: Duration,
    publisher: Publisher,
    fleet: Addr<DriverFleet>,
    counters: Arc<DriverCounters>,
    /// Requests not answered yet, by request id.
    pending: HashMap<Uuid, Pending>,
    in_session: bool,
}

impl SimulatedDriver {
    pub fn new(
        id: String,
        heartbeat: Duration,
        publisher: Publisher,
        fleet: Addr<DriverFleet>,
        counters: Arc<DriverCounters>,
    ) -> SimulatedDriver {
        SimulatedDriver {
            id,
            instance: Uuid::new_v4(),
            heartbeat,
            publisher,
            fleet,
            counters,
            pending: HashMap::new(),
            in_session: false,
        }
    }

    fn send(&self, request: DriverRequest) {
        let publisher = self.publisher.clone();
        self.publisher
            .spawn(async move { publisher.driver_request(request).await });
    }

    fn stop_supply(&self) {
        self.send(DriverRequest::StopSupply {
            driver_id: self.id.clone(),
        });
    }
}

impl Actor for SimulatedDriver {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Records from Kafka arrive many at a time (the consumer keeps several in flight);
        // a full mailbox would make a sender wait and could let a later record pass it.
        ctx.set_mailbox_capacity(crate::bus::MAILBOX_CAPACITY);
        // Alive, as every driver says it is; spread so that thousands do not say it at once.
        let offset = Duration::from_millis(u64::from(self.instance.as_fields().1) % 2000);
        ctx.run_later(offset, |act, ctx| {
            ctx.run_interval(act.heartbeat, |act, _| {
                act.send(DriverRequest::Hello {
                    driver_id: act.id.clone(),
                    instance: act.instance,
                    probe: false,
                });
            });
        });
    }
}

/// Ask for a supply at `cp_id`; `hold` keeps it going until [`Release`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ask {
    pub cp_id: String,
    pub hold: bool,
}

impl Handler<Ask> for SimulatedDriver {
    type Result = ();

    fn handle(&mut self, msg: Ask, _ctx: &mut Self::Context) {
        let request_id = Uuid::now_v7();
        self.pending.insert(
            request_id,
            Pending {
                sent: Instant::now(),
                hold: msg.hold,
            },
        );
        self.send(DriverRequest::SupplyRequest {
            request_id,
            driver_id: self.id.clone(),
            cp_id: Some(msg.cp_id),
        });
    }
}

/// End the supply this driver holds, if any.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Release;

impl Handler<Release> for SimulatedDriver {
    type Result = ();

    fn handle(&mut self, _msg: Release, _ctx: &mut Self::Context) {
        if self.in_session {
            self.stop_supply();
        }
    }
}

impl Handler<Inbound<DriverUpdate>> for SimulatedDriver {
    type Result = Result<(), Rejection>;

    /// Times the answer to the pending request; counts what follows.
    fn handle(&mut self, msg: Inbound<DriverUpdate>, _ctx: &mut Self::Context) -> Self::Result {
        match msg.envelope.body {
            DriverUpdate::Authorised { request_id, .. }
                if self.pending.contains_key(&request_id) =>
            {
                let pending = self.pending.remove(&request_id).expect("checked");
                let after = pending.sent.elapsed();
                if after >= SLOW {
                    log::warn!(
                        "{}: request {request_id} authorised after {after:?}",
                        self.id
                    );
                }
                self.fleet.do_send(Answered {
                    after,
                    denied: None,
                });
                self.in_session = true;
                if !pending.hold {
                    self.stop_supply();
                }
            }
            DriverUpdate::Denied {
                request_id, reason, ..
            } if self.pending.contains_key(&request_id) => {
                let pending = self.pending.remove(&request_id).expect("checked");
                let reason = serde_json::to_value(reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "denied".into());
                self.fleet.do_send(Answered {
                    after: pending.sent.elapsed(),
                    denied: Some(reason),
                });
            }
            DriverUpdate::Started { .. } => {
                self.counters.started.fetch_add(1, Ordering::Relaxed);
            }
            DriverUpdate::Progress { .. } => {
                self.counters.progress.fetch_add(1, Ordering::Relaxed);
            }
            DriverUpdate::Ticket { .. } => {
                self.in_session = false;
                self.counters.tickets.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        Ok(())
    }
}

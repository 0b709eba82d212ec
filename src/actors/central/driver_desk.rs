//! The central's desk for driver requests: the sink of the `driver.requests` consumer.

use super::cp_supervisor::{CpSupervisor, ListCps, StopDriverSupply};
use super::driver_request::{DriverRequest, Handle};
use crate::accounts::credentials::{self, SignInVerdict};
use crate::accounts::login_limit::{Attempt, LoginLimiter, TooManyAttempts};
use crate::bus::{Inbound, Publisher, Rejection, StreamClock};
use crate::domain::presence::{Presence, Verdict};
use crate::domain::CpState;
use crate::messages::{self, CpOffer, DriverUpdate, PastSession};
use crate::store::Store;
use actix::prelude::*;
use std::time::Duration;

pub struct DriverDesk {
    supervisor: Addr<CpSupervisor>,
    store: Store,
    publisher: Publisher,
    /// Which instance holds each driver id.
    presence: Presence,
    /// How far the drivers' requests have been read: their hellos are judged by it.
    requests_read: StreamClock,
    /// Wrong passwords per driver and per address.
    sign_ins: std::sync::Arc<LoginLimiter>,
}

impl DriverDesk {
    pub fn new(
        supervisor: Addr<CpSupervisor>,
        store: Store,
        publisher: Publisher,
        liveness: Duration,
        requests_read: StreamClock,
        sign_ins: std::sync::Arc<LoginLimiter>,
    ) -> DriverDesk {
        DriverDesk {
            supervisor,
            store,
            publisher,
            presence: Presence::new(liveness),
            requests_read,
            sign_ins,
        }
    }
}

impl Actor for DriverDesk {
    type Context = Context<Self>;
}

impl Handler<Inbound<messages::DriverRequest>> for DriverDesk {
    type Result = ResponseFuture<Result<(), Rejection>>;

    /// Starts one [`DriverRequest`] actor per new supply request and waits for its verdict;
    /// answers list, stop, sign-in and history requests directly.
    fn handle(
        &mut self,
        msg: Inbound<messages::DriverRequest>,
        _ctx: &mut Self::Context,
    ) -> Self::Result {
        let supervisor = self.supervisor.clone();
        let publisher = self.publisher.clone();
        let written = msg.envelope.ts;
        match msg.envelope.body {
            messages::DriverRequest::SupplyRequest {
                request_id,
                driver_id,
                cp_id,
            } => {
                match self.store.session_for_request(request_id) {
                    Ok(Some(session)) if session.driver_id != driver_id => {
                        let why = format!("request id {request_id} is another driver's");
                        return Box::pin(async move { Err(Rejection::set_aside(why)) });
                    }
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
                // An empty CP id, like an absent one, asks for any available CP.
                let cp_id = cp_id.filter(|id| !id.is_empty());
                let request =
                    DriverRequest::new(request_id, driver_id, cp_id, supervisor, publisher).start();
                Box::pin(async move {
                    request
                        .send(Handle)
                        .await
                        .map_err(|e| Rejection::set_aside(format!("request not handled: {e}")))
                })
            }
            messages::DriverRequest::Hello {
                driver_id,
                instance,
                probe,
            } => {
                let answer = match self.presence.hello(
                    &driver_id,
                    instance,
                    probe,
                    written,
                    self.requests_read.now(),
                ) {
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
                            .map_err(|e| Rejection::set_aside(e.to_string())),
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
                        price_eur_kwh: cp.tariff.eur_per_kwh(),
                    })
                    .collect();
                publisher
                    .driver_update(DriverUpdate::Available {
                        driver_id,
                        cps: offers,
                    })
                    .await
                    .map_err(|e| Rejection::set_aside(e.to_string()))
            }),
            messages::DriverRequest::SignIn {
                request_id,
                driver_id,
                sealed_password,
                from,
            } => {
                // Counted here, one record at a time, before the hash is checked: sign-ins
                // sent at once cannot slip past the limit.
                let attempt = match self.sign_ins.begin(&driver_id, from.as_deref()) {
                    Ok(attempt) => attempt,
                    Err(refused) => {
                        log::warn!("driver {driver_id}: sign-in refused unheard ({refused})");
                        actix::spawn(async move {
                            let update = limited(request_id, driver_id, refused);
                            if let Err(e) = publisher.driver_update(update).await {
                                log::error!("cannot answer sign-in {request_id}: {e}");
                            }
                        });
                        return Box::pin(async { Ok(()) });
                    }
                };
                // Hashing is slow on purpose: it runs beside the consumer, not in its way, so
                // other drivers' requests never wait behind a sign-in. A sign-in lost in a
                // crash is not retried; the dashboard says the central did not answer.
                actix::spawn(answer_sign_in(
                    request_id,
                    driver_id,
                    sealed_password,
                    attempt,
                    self.store.clone(),
                    publisher,
                ));
                Box::pin(async { Ok(()) })
            }
            messages::DriverRequest::History {
                request_id,
                driver_id,
            } => Box::pin(answer_history(
                request_id,
                driver_id,
                self.store.clone(),
                publisher,
            )),
        }
    }
}

/// How many past sessions a driver's history shows.
pub const HISTORY_LENGTH: usize = 50;

/// The answer to a sign-in refused unheard.
fn limited(request_id: uuid::Uuid, driver_id: String, refused: TooManyAttempts) -> DriverUpdate {
    DriverUpdate::SignedIn {
        request_id,
        driver_id,
        accepted: false,
        first_time: false,
        detail: refused.to_string(),
        retry_after: Some(refused.retry_after_secs()),
    }
}

/// Checks the password on a blocking thread (a few at a time), settles the attempt, makes a
/// newly set password durable, answers.
async fn answer_sign_in(
    request_id: uuid::Uuid,
    driver_id: String,
    sealed_password: String,
    attempt: Attempt,
    store: Store,
    publisher: Publisher,
) {
    // The record's proof held, so the driver's key is there: only a seal made for another
    // request (or none) fails to open, and it is not a guess at the password.
    let Some(password) = open_password(&store, &driver_id, request_id, &sealed_password) else {
        drop(attempt);
        let why = "the password is not sealed for this request with this driver's key".into();
        return refuse_sign_in(request_id, driver_id, why, &publisher).await;
    };
    let checked = {
        let store = store.clone();
        let driver_id = driver_id.clone();
        credentials::off_thread(move || credentials::sign_in(&store, &driver_id, password.expose()))
            .await
    };
    let verdict = match checked.and_then(|checked| checked) {
        Ok(verdict) => verdict,
        Err(e) => {
            log::error!("cannot check the sign-in of {driver_id}: {e}");
            return refuse_sign_in(request_id, driver_id, e.to_string(), &publisher).await;
        }
    };
    match verdict {
        SignInVerdict::WrongPassword => attempt.failed(),
        SignInVerdict::Accepted | SignInVerdict::FirstTime => attempt.succeeded(),
        // Not a guess at the password: it counts for nothing.
        SignInVerdict::Unacceptable => drop(attempt),
    }
    if verdict == SignInVerdict::FirstTime {
        if let Err(e) = store.flush().await {
            log::error!("cannot store the password of {driver_id}: {e}");
            return refuse_sign_in(request_id, driver_id, e.to_string(), &publisher).await;
        }
        log::info!("driver {driver_id} set its password");
    } else if !verdict.accepted() {
        log::warn!("driver {driver_id}: sign-in refused ({})", verdict.detail());
    }
    let update = DriverUpdate::SignedIn {
        request_id,
        driver_id,
        accepted: verdict.accepted(),
        first_time: verdict == SignInVerdict::FirstTime,
        detail: verdict.detail(),
        retry_after: None,
    };
    if let Err(e) = publisher.driver_update(update).await {
        log::error!("cannot answer sign-in {request_id}: {e}");
    }
}

/// The password of a sign-in, opened with the driver's key.
fn open_password(
    store: &Store,
    driver_id: &str,
    request_id: uuid::Uuid,
    sealed: &str,
) -> Option<messages::Secret> {
    let credential = store.driver_credential(driver_id).ok()??;
    let key = crate::proof::BusKey::from_hex(credential.bus_key.as_deref()?)?;
    key.open(&request_id.to_string(), sealed)
        .map(messages::Secret::new)
}

async fn refuse_sign_in(
    request_id: uuid::Uuid,
    driver_id: String,
    why: String,
    publisher: &Publisher,
) {
    let update = DriverUpdate::SignedIn {
        request_id,
        driver_id,
        accepted: false,
        first_time: false,
        detail: format!("the central cannot check this password: {why}"),
        retry_after: None,
    };
    if let Err(e) = publisher.driver_update(update).await {
        log::error!("cannot answer sign-in {request_id}: {e}");
    }
}

/// Reads the driver's latest closed sessions on a blocking thread and sends them.
async fn answer_history(
    request_id: uuid::Uuid,
    driver_id: String,
    store: Store,
    publisher: Publisher,
) -> Result<(), Rejection> {
    let read = {
        let driver_id = driver_id.clone();
        tokio::task::spawn_blocking(move || store.past_sessions_of(&driver_id, HISTORY_LENGTH))
            .await
    };
    let sessions = match read {
        Ok(Ok(sessions)) => sessions,
        Ok(Err(e)) => {
            return Err(Rejection::set_aside(format!(
                "cannot read the sessions: {e}"
            )))
        }
        Err(e) => {
            return Err(Rejection::set_aside(format!(
                "cannot read the sessions: {e}"
            )))
        }
    };
    let sessions = sessions
        .into_iter()
        .filter_map(|s| s.ticket())
        .map(|t| PastSession {
            session_id: t.session_id,
            cp_id: t.cp_id,
            started_at: t.started_at,
            ended_at: t.ended_at,
            kwh: t.kwh,
            eur: t.eur,
            price_eur_kwh: t.price_eur_kwh,
            outcome: t.outcome,
        })
        .collect();
    publisher
        .driver_update(DriverUpdate::History {
            request_id,
            driver_id,
            sessions,
        })
        .await
        .map_err(|e| Rejection::set_aside(e.to_string()))
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
            price_eur_kwh: session.tariff.eur_per_kwh(),
            expires_at: session.expires_at,
        },
    };
    publisher
        .driver_update(update)
        .await
        .map_err(|e| Rejection::set_aside(e.to_string()))
}

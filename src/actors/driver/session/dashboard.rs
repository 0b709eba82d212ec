//! What the driver's dashboard and its watchers ask of the [`Driver`]: watch its steps,
//! request or stop a supply, sign in, list CPs and past sessions.

use super::{Driver, Typed};
use crate::domain::supply_view::SupplyView;
use crate::messages::{CpOffer, DriverRequest, DriverUpdate, PastSession, Secret};
use actix::prelude::*;
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

/// Why the driver could not do what the dashboard asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverCommandError {
    #[error("a request is already in progress ({0}); wait for its ticket")]
    Busy(String),
    #[error("no supply in progress")]
    NothingToStop,
    #[error("cannot reach the central: no answer within {0:?}")]
    NoAnswer(Duration),
}

/// One step of the driver, as a watcher hears it: the JSON line the driver prints (its
/// `type` says what happened) with the supply as it stands after it under `supply`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct DriverNews(pub serde_json::Value);

impl DriverNews {
    pub(super) fn of(mut step: serde_json::Value, supply: &SupplyView) -> DriverNews {
        if let serde_json::Value::Object(fields) = &mut step {
            fields.insert(
                "supply".into(),
                serde_json::to_value(supply).unwrap_or_default(),
            );
        }
        DriverNews(step)
    }
}

/// Start telling `watcher` every step; answered with the snapshot to show first.
#[derive(Message)]
#[rtype(result = "DriverNews")]
pub struct WatchDriver {
    pub id: Uuid,
    pub watcher: Recipient<DriverNews>,
}

impl Handler<WatchDriver> for Driver {
    type Result = MessageResult<WatchDriver>;

    /// Adds the watcher (dropping any that went away) and returns the snapshot.
    fn handle(&mut self, msg: WatchDriver, _ctx: &mut Self::Context) -> Self::Result {
        self.watchers.retain(|_, watcher| watcher.connected());
        self.watchers.insert(msg.id, msg.watcher);
        MessageResult(DriverNews(self.snapshot()))
    }
}

/// Stop telling this watcher.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UnwatchDriver {
    pub id: Uuid,
}

impl Handler<UnwatchDriver> for Driver {
    type Result = ();

    /// Forgets the watcher.
    fn handle(&mut self, msg: UnwatchDriver, _ctx: &mut Self::Context) {
        self.watchers.remove(&msg.id);
    }
}

/// The dashboard asks for a supply at this CP (or any); refused while one is under way.
#[derive(Message)]
#[rtype(result = "Result<Uuid, DriverCommandError>")]
pub struct RequestSupply {
    pub cp_id: Option<String>,
}

impl Handler<RequestSupply> for Driver {
    type Result = Result<Uuid, DriverCommandError>;

    /// Sends the request at once, the way a typed `request` does when nothing is queued.
    fn handle(&mut self, msg: RequestSupply, ctx: &mut Self::Context) -> Self::Result {
        if let Some(current) = &self.current {
            let at = current.cp_id.as_deref().unwrap_or("any available CP");
            return Err(DriverCommandError::Busy(format!("at {at}")));
        }
        if !self.plan.is_empty() {
            return Err(DriverCommandError::Busy(format!(
                "{} more in the driver's plan",
                self.plan.len()
            )));
        }
        Ok(self.request(msg.cp_id, ctx))
    }
}

/// The dashboard stops the supply in progress.
#[derive(Message)]
#[rtype(result = "Result<Option<String>, DriverCommandError>")]
pub struct StopMySupply;

impl Handler<StopMySupply> for Driver {
    type Result = Result<Option<String>, DriverCommandError>;

    /// Asks the central to stop it, the way a typed `stop` does; returns the CP.
    fn handle(&mut self, _msg: StopMySupply, ctx: &mut Self::Context) -> Self::Result {
        let Some(current) = &self.current else {
            return Err(DriverCommandError::NothingToStop);
        };
        let cp_id = current.cp_id.clone();
        self.handle(Typed::Stop, ctx);
        Ok(cp_id)
    }
}

/// The current supply as the dashboard shows it.
#[derive(Message)]
#[rtype(result = "SupplyView")]
pub struct CurrentSupply;

impl Handler<CurrentSupply> for Driver {
    type Result = MessageResult<CurrentSupply>;

    /// A copy of the view.
    fn handle(&mut self, _msg: CurrentSupply, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.supply.clone())
    }
}

/// Ask the central for the CPs available now and wait for the list.
#[derive(Message)]
#[rtype(result = "Result<Vec<CpOffer>, DriverCommandError>")]
pub struct FetchAvailable;

impl Handler<FetchAvailable> for Driver {
    type Result = ResponseFuture<Result<Vec<CpOffer>, DriverCommandError>>;

    /// Sends `list_available`, the way a typed `list` does, and waits for the next list.
    fn handle(&mut self, _msg: FetchAvailable, ctx: &mut Self::Context) -> Self::Result {
        let (answer, answered) = oneshot::channel();
        self.list_waiters.retain(|waiting| !waiting.is_closed());
        self.list_waiters.push(answer);
        self.handle(Typed::List, ctx);
        let limit = self.settings.ask_timeout;
        Box::pin(async move {
            match tokio::time::timeout(limit, answered).await {
                Ok(Ok(cps)) => Ok(cps),
                _ => Err(DriverCommandError::NoAnswer(limit)),
            }
        })
    }
}

/// What the central said to a sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInAnswer {
    pub accepted: bool,
    pub first_time: bool,
    pub detail: String,
    /// Refused unheard (too many wrong passwords): try again after this long.
    pub retry_after: Option<Duration>,
}

/// Sign this driver in at the central with a password.
#[derive(Message)]
#[rtype(result = "Result<SignInAnswer, DriverCommandError>")]
pub struct SignIn {
    pub password: Secret,
    /// The address the dashboard was reached from, if known.
    pub from: Option<String>,
}

impl Handler<SignIn> for Driver {
    type Result = ResponseActFuture<Self, Result<SignInAnswer, DriverCommandError>>;

    /// Sends `sign_in` and waits for `signed_in`.
    fn handle(&mut self, msg: SignIn, _ctx: &mut Self::Context) -> Self::Result {
        let request_id = Uuid::new_v4();
        // Sealed for the central alone: whoever reads the bus cannot read the password.
        let sealed_password = self
            .bus_key
            .seal(&request_id.to_string(), msg.password.expose());
        let question = DriverRequest::SignIn {
            request_id,
            driver_id: self.id.clone(),
            sealed_password,
            from: msg.from,
        };
        Box::pin(
            self.ask(request_id, question)
                .map(|answer, _, _| match answer? {
                    DriverUpdate::SignedIn {
                        accepted,
                        first_time,
                        detail,
                        retry_after,
                        ..
                    } => Ok(SignInAnswer {
                        accepted,
                        first_time,
                        detail,
                        retry_after: retry_after.map(Duration::from_secs),
                    }),
                    _ => Ok(SignInAnswer {
                        accepted: false,
                        first_time: false,
                        detail: "the central gave an answer of the wrong kind".into(),
                        retry_after: None,
                    }),
                }),
        )
    }
}

/// Ask the central for this driver's past sessions.
#[derive(Message)]
#[rtype(result = "Result<Vec<PastSession>, DriverCommandError>")]
pub struct FetchHistory;

impl Handler<FetchHistory> for Driver {
    type Result = ResponseActFuture<Self, Result<Vec<PastSession>, DriverCommandError>>;

    /// Sends `history` and waits for the answer.
    fn handle(&mut self, _msg: FetchHistory, _ctx: &mut Self::Context) -> Self::Result {
        let request_id = Uuid::new_v4();
        let question = DriverRequest::History {
            request_id,
            driver_id: self.id.clone(),
        };
        Box::pin(
            self.ask(request_id, question)
                .map(|answer, _, _| match answer? {
                    DriverUpdate::History { sessions, .. } => Ok(sessions),
                    _ => Ok(Vec::new()),
                }),
        )
    }
}

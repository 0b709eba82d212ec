//! Runs in `evcharge gateway`: OCPP 1.6J charge points join the network through it. Each
//! connected charge point is one [`Charger`] actor, bridged to the bus by its CP id (the
//! shared consumer's [`KeyRouter`] hands it its commands) and linked to the central as its
//! monitor. The [`Gateway`] admits them: it checks each one's key with the central before
//! its WebSocket opens.

pub mod charger;
mod log_budget;

pub use charger::Charger;

use crate::actors::cp::engine::TakingCommands;
use crate::actors::cp::monitor::CpIdentity;
use crate::actors::fleet::key_router::{KeyRouter, Own};
use crate::bus::{OcppLedger, Publisher};
use crate::link::{Connector, FrameClient};
use crate::messages::{CpCommand, Secret};
use crate::proof::SharedKeys;
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// What every charger of a gateway runs by.
#[derive(Debug, Clone, PartialEq)]
pub struct ChargerSettings {
    /// A `STATUS` to the central this often (a monitor's period).
    pub report_period: Duration,
    /// A hello on the bus this often (an engine's heartbeat).
    pub engine_heartbeat: Duration,
    /// The heartbeat interval told to charge points at boot.
    pub heartbeat_interval: Duration,
}

/// How the gateway reaches the central, as a monitor does.
#[derive(Clone)]
pub struct CentralAccess {
    /// One address, or several separated by commas.
    pub addresses: String,
    pub answer_timeout: Duration,
    pub patience: Duration,
    pub connector: Connector,
}

/// Why a charge point was not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its id or key is not the registration's (or it is locked out): HTTP 401.
    Credentials(String),
    /// Another link holds the CP now: HTTP 409.
    InUse(String),
    /// The central cannot say now, or the gateway is full: HTTP 503.
    Unavailable(String),
}

/// What a gateway is made of.
pub struct GatewayParts {
    pub settings: ChargerSettings,
    pub central: CentralAccess,
    pub publisher: Publisher,
    pub ledger: OcppLedger,
    pub keys: SharedKeys,
    pub router: Addr<KeyRouter<CpCommand>>,
    pub max_connections: usize,
    /// The OCPP security profile this gateway serves: 2 with TLS, 1 without.
    pub profile: u8,
}

struct Shared {
    parts: GatewayParts,
    chargers: Mutex<HashMap<String, (Addr<Charger>, Secret)>>,
    taking_commands: AtomicBool,
}

/// The gateway's shared state: cheap to clone, shared by every HTTP worker.
#[derive(Clone)]
pub struct Gateway(Arc<Shared>);

impl Gateway {
    pub fn new(parts: GatewayParts) -> Gateway {
        Gateway(Arc::new(Shared {
            parts,
            chargers: Mutex::new(HashMap::new()),
            taking_commands: AtomicBool::new(false),
        }))
    }

    fn chargers(&self) -> MutexGuard<'_, HashMap<String, (Addr<Charger>, Secret)>> {
        self.0
            .chargers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How many charge points are connected.
    pub fn connected(&self) -> usize {
        self.chargers().len()
    }

    /// Lets charge point `cp_id` in if the central accepts its key: starts its actor (on
    /// the caller's arbiter) and routes its commands to it. A connection of the same charge
    /// point held here before, with the same key, is replaced.
    pub async fn admit(&self, cp_id: &str, secret: Secret) -> Result<Addr<Charger>, Refusal> {
        let replaced = self.replace_own(cp_id, &secret);
        if !replaced && self.connected() >= self.0.parts.max_connections {
            return Err(Refusal::Unavailable(format!(
                "this gateway holds its maximum of {} charge points",
                self.0.parts.max_connections
            )));
        }
        let cp = CpIdentity {
            id: cp_id.to_owned(),
            secret,
        };
        // The central forgets a replaced link as soon as it sees it close: a moment.
        let mut tries = if replaced { 20 } else { 1 };
        let central = loop {
            tries -= 1;
            match self.authenticate(&cp).await {
                Err(Refusal::InUse(_)) if tries > 0 => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => break other?,
            }
        };
        self.0.parts.keys.add_cp(cp_id, cp.secret.expose());
        let taking = self.0.taking_commands.load(Ordering::Relaxed);
        let secret = cp.secret.clone();
        let charger = Charger::new(
            cp,
            self.0.parts.settings.clone(),
            self.0.parts.publisher.clone(),
            self.0.parts.ledger.clone(),
            central,
            taking,
            self.clone(),
        )
        .start();
        self.0.parts.router.do_send(Own {
            key: cp_id.to_owned(),
            owner: Some(charger.clone().recipient()),
        });
        let old = self
            .chargers()
            .insert(cp_id.to_owned(), (charger.clone(), secret));
        if let Some((old, _)) = old {
            old.do_send(charger::Replaced);
        }
        Ok(charger)
    }

    /// Closes this gateway's own connection of `cp_id` when the newcomer holds the same key
    /// (a charge point reconnecting before its old connection timed out): whether it did.
    fn replace_own(&self, cp_id: &str, secret: &Secret) -> bool {
        let chargers = self.chargers();
        let Some((old, known)) = chargers.get(cp_id) else {
            return false;
        };
        use subtle::ConstantTimeEq;
        let same: bool = known
            .expose()
            .as_bytes()
            .ct_eq(secret.expose().as_bytes())
            .into();
        if same {
            log::info!("{cp_id}: connected again; its older connection is closed");
            old.do_send(charger::Replaced);
        }
        same
    }

    /// `AUTH` as the charge point's monitor: the central checks the key. The link stays
    /// open, authenticated, for the charger's reports.
    async fn authenticate(&self, cp: &CpIdentity) -> Result<FrameClient, Refusal> {
        let access = &self.0.parts.central;
        let mut central = FrameClient::new(access.addresses.clone(), access.answer_timeout)
            .with_patience(access.patience);
        central.set_connector(access.connector.clone());
        let mut elsewhere = 0;
        loop {
            let auth = vec!["AUTH".into(), cp.id.clone(), cp.secret.expose().to_owned()];
            let reply = central
                .request(auth)
                .await
                .map_err(|e| Refusal::Unavailable(format!("the central cannot be reached: {e}")))?;
            let kind = reply.fields.first().map(String::as_str);
            let why = reply.fields.get(1).cloned().unwrap_or_default();
            match kind {
                _ if reply.accepted => {
                    return self.same_profile(cp, &reply.fields).map(|()| central)
                }
                Some("ELSEWHERE") => {
                    elsewhere += 1;
                    if elsewhere >= central.peer_count() {
                        return Err(Refusal::Unavailable(why));
                    }
                    central.move_on();
                }
                _ if why.contains("already has a live monitor") => return Err(Refusal::InUse(why)),
                _ if why.contains("the central is busy") => return Err(Refusal::Unavailable(why)),
                _ => return Err(Refusal::Credentials(why)),
            }
        }
    }

    /// Whether the charge point connects with the security profile its registration says
    /// (`ocpp-profile=N` in the central's WELCOME; none said, either will do).
    fn same_profile(&self, cp: &CpIdentity, welcome: &[String]) -> Result<(), Refusal> {
        let registered = welcome
            .iter()
            .skip(4)
            .find_map(|field| field.strip_prefix("ocpp-profile="))
            .and_then(|n| n.parse::<u8>().ok());
        match registered {
            Some(profile) if profile != self.0.parts.profile => {
                Err(Refusal::Credentials(format!(
                "{} is registered for OCPP security profile {profile} ({}); this gateway serves \
                 profile {}",
                cp.id,
                if profile == 2 { "Basic over TLS, wss://" } else { "HTTP Basic, ws://" },
                self.0.parts.profile
            )))
            }
            _ => Ok(()),
        }
    }

    /// A charger stopped: its CP is no longer served here, unless a newer connection is.
    fn gone(&self, cp_id: &str, charger: &Addr<Charger>) {
        let mut chargers = self.chargers();
        if chargers.get(cp_id).is_some_and(|(c, _)| c == charger) {
            chargers.remove(cp_id);
            self.0.parts.keys.remove_cp(cp_id);
            self.0.parts.router.do_send(Own {
                key: cp_id.to_owned(),
                owner: None,
            });
        }
    }

    /// Whether the shared consumer holds its partitions: told to every charger.
    pub fn set_taking_commands(&self, taking: bool) {
        self.0.taking_commands.store(taking, Ordering::Relaxed);
        for (charger, _) in self.chargers().values() {
            charger.do_send(TakingCommands(taking));
        }
    }
}

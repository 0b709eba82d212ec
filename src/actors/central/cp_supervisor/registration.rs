//! Which CPs belong to the network and how they prove it: an operator registers a CP (its
//! id, location and tariff) and hands it the secret issued once; its monitor presents the
//! secret on every AUTH. Unknown ids and wrong secrets create nothing: they are refused
//! with the reason, counted, audited and, for a CP id or an address that keeps failing,
//! locked out for longer and longer (the limiter the logins use).

use super::booking::Note;
use super::CpSupervisor;
use crate::accounts::party_secrets;
use crate::actors::central::charge_point::{
    AttachMonitor, ChangeTerms, ChargePoint, ForgetMonitor, MonitorEnd,
};
use crate::domain::registration::{check_cp_id, shown, CpTerms};
use crate::messages::Secret;
use crate::store::{CpRecord, RegisterError};
use actix::prelude::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Why an operator's registration request was not carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryRefusal {
    /// The request breaks a rule (bad id, location or tariff).
    Invalid(String),
    /// A CP with that id is already registered.
    Exists(String),
    /// No CP with that id is registered.
    Unknown(String),
    /// The records could not be written.
    Failed(String),
}

/// Who asked for a change, for the audit log.
#[derive(Debug, Clone)]
pub struct Asker {
    pub who: String,
    pub from: String,
}

/// Register a new CP with the credential of a secret issued for it.
#[derive(Message)]
#[rtype(result = "Result<(), RegistryRefusal>")]
pub struct RegisterCp {
    pub id: String,
    pub terms: CpTerms,
    pub credential: crate::store::Credential,
    pub asker: Asker,
}

impl Handler<RegisterCp> for CpSupervisor {
    type Result = Result<(), RegistryRefusal>;

    /// Writes the CP and its credential together, then starts its actor (disconnected) if
    /// it runs here.
    fn handle(&mut self, msg: RegisterCp, ctx: &mut Self::Context) -> Self::Result {
        check_cp_id(&msg.id).map_err(RegistryRefusal::Invalid)?;
        let record = CpRecord::registered(&msg.id, &msg.terms);
        match self.store.register_cp(&record, &msg.credential) {
            Ok(()) => {}
            Err(RegisterError::Exists(id)) => {
                return Err(RegistryRefusal::Exists(format!(
                    "{id} is already registered"
                )))
            }
            Err(RegisterError::Store(e)) => return Err(RegistryRefusal::Failed(e.to_string())),
        }
        self.accounts.audit(
            &msg.asker.who,
            &msg.asker.from,
            &format!(
                "registered {} at {} for {} €/kWh",
                msg.id, record.location, record.tariff
            ),
        );
        log::info!("{} registered by {}", msg.id, msg.asker.who);
        // Its actor runs on the instance holding its partition, which may be another.
        let ours = self
            .ready
            .borrow()
            .contains(&self.held.partition_of(&record.id));
        if ours {
            self.spawn_cp(record, ctx);
        } else {
            self.show_unheard(&record);
        }
        Ok(())
    }
}

/// Change a registered CP's location and/or tariff.
#[derive(Message)]
#[rtype(result = "Result<CpTerms, RegistryRefusal>")]
pub struct ChangeCpTerms {
    pub id: String,
    pub location: Option<String>,
    pub price_eur_kwh: Option<f64>,
    pub asker: Asker,
}

impl Handler<ChangeCpTerms> for CpSupervisor {
    type Result = Result<CpTerms, RegistryRefusal>;

    /// Checks the new terms against the rules, hands them to the CP's actor (here, or on
    /// the instance running it), audits them.
    fn handle(&mut self, msg: ChangeCpTerms, _ctx: &mut Self::Context) -> Self::Result {
        let Some(view) = self.views.get(&msg.id) else {
            return Err(RegistryRefusal::Unknown(format!(
                "no charging point {} is registered",
                shown(&msg.id)
            )));
        };
        let terms = CpTerms::new(
            msg.location.as_deref().unwrap_or(&view.location),
            msg.price_eur_kwh.unwrap_or(view.tariff.eur_per_kwh()),
        )
        .map_err(RegistryRefusal::Invalid)?;
        let change = format!(
            "changed {}: location {} → {}, tariff {} → {} €/kWh",
            msg.id, view.location, terms.location, view.tariff, terms.tariff
        );
        let here = |cp: &Addr<ChargePoint>| cp.do_send(ChangeTerms(terms.clone()));
        self.to_cp(&msg.id, here, Note::ChangeTerms(terms.clone()))
            .map_err(RegistryRefusal::Unknown)?;
        self.accounts
            .audit(&msg.asker.who, &msg.asker.from, &change);
        Ok(terms)
    }
}

/// Issue a registered CP a new secret; the old one stops working and its monitor must
/// authenticate again.
#[derive(Message)]
#[rtype(result = "Result<Secret, RegistryRefusal>")]
pub struct IssueCpSecret {
    pub id: String,
    pub asker: Asker,
}

impl Handler<IssueCpSecret> for CpSupervisor {
    type Result = Result<Secret, RegistryRefusal>;

    /// Writes the new credential (every instance has it from the changelog), then has the
    /// CP's actor, wherever it runs, drop the monitor that proved the old one.
    fn handle(&mut self, msg: IssueCpSecret, _ctx: &mut Self::Context) -> Self::Result {
        if !self.views.contains_key(&msg.id) {
            return Err(RegistryRefusal::Unknown(format!(
                "no charging point {} is registered",
                shown(&msg.id)
            )));
        }
        let (secret, mut credential) = party_secrets::issue_cp();
        // A new secret, the same registration: its security profile stays.
        credential.ocpp_security_profile = self
            .store
            .cp_credential(&msg.id)
            .ok()
            .flatten()
            .and_then(|old| old.ocpp_security_profile);
        self.store
            .set_cp_credential(&msg.id, &credential)
            .map_err(|e| RegistryRefusal::Failed(e.to_string()))?;
        self.accounts.audit(
            &msg.asker.who,
            &msg.asker.from,
            &format!("issued a new secret for {}", msg.id),
        );
        let here = |cp: &Addr<ChargePoint>| cp.do_send(ForgetMonitor);
        self.to_cp(&msg.id, here, Note::ForgetMonitor)
            .map_err(RegistryRefusal::Unknown)?;
        Ok(Secret::new(secret))
    }
}

/// Why a monitor's AUTH was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloRefusal {
    /// For good, as far as this link goes: a wrong secret, a CP with a live monitor…
    Refused(String),
    /// The secret holds, but the CP runs on another central instance (or, between owners,
    /// on none yet): the monitor should try another central.
    Elsewhere(String),
}

/// An accepted AUTH: where the link's reports go, the CP's terms, and the OCPP security
/// profile its registration asks for (said in the WELCOME, for an OCPP gateway to check).
pub struct Welcome {
    pub end: MonitorEnd,
    pub terms: CpTerms,
    pub ocpp_security_profile: Option<u8>,
}

/// A monitor's AUTH: the CP it speaks for and the secret it holds.
#[derive(Message)]
#[rtype(result = "Result<Welcome, HelloRefusal>")]
pub struct MonitorHello {
    pub cp_id: String,
    pub secret: Secret,
    pub conn_id: u64,
    pub peer: String,
}

impl Handler<MonitorHello> for CpSupervisor {
    type Result = ResponseFuture<Result<Welcome, HelloRefusal>>;

    /// Checks the secret, then hands the monitor to its CP's actor, which may still refuse
    /// it (another live monitor holds the CP); for a CP run elsewhere, relays the link to
    /// the instance running it.
    fn handle(&mut self, msg: MonitorHello, ctx: &mut Self::Context) -> Self::Result {
        let ip = address_of(&msg.peer).to_string();
        let verdict = match self.auth_failures.begin(&msg.cp_id, Some(&ip)) {
            Err(locked) => Err((
                "locked_out",
                format!(
                    "too many failed AUTHs for {} or from {ip}: try again in {} s",
                    shown(&msg.cp_id),
                    locked.retry_after_secs()
                ),
                None,
            )),
            Ok(attempt) => match self.check_secret(&msg.cp_id, &msg.secret) {
                Ok(credential) => Ok((attempt, credential)),
                Err((reason, refusal)) => Err((reason, refusal, Some(attempt))),
            },
        };
        let (issued_at, profile) = match verdict {
            Ok((attempt, credential)) => {
                attempt.succeeded();
                (credential.issued_at, credential.ocpp_security_profile)
            }
            Err((reason, refusal, attempt)) => {
                crate::metrics::count_refusal("monitor_auth", reason);
                // A locked-out try is not audited: the log stays bounded however fast an
                // address knocks.
                if let Some(attempt) = attempt {
                    attempt.failed();
                    self.accounts.audit(
                        "monitor",
                        &msg.peer,
                        &format!("refused AUTH as {}: {refusal}", shown(&msg.cp_id)),
                    );
                }
                return Box::pin(async move { Err(HelloRefusal::Refused(refusal)) });
            }
        };
        let cp_id = msg.cp_id;
        let Some(cp) = self.cp(&cp_id) else {
            let terms = self.views.get(&cp_id).map(|view| CpTerms {
                location: view.location.clone(),
                tariff: view.tariff,
            });
            let relayed = terms.and_then(|terms| {
                let (end, attached) = self.relay(&cp_id, msg.conn_id, msg.peer, issued_at, ctx)?;
                Some((end, attached, terms))
            });
            let elsewhere = format!(
                "{cp_id} does not run on this central ({}) now, and no other is known to run it: try another",
                self.settings.instance
            );
            return Box::pin(async move {
                let (end, attached, terms) = relayed.ok_or(HelloRefusal::Elsewhere(elsewhere))?;
                match attached.await {
                    Ok(()) => Ok(Welcome {
                        end,
                        terms,
                        ocpp_security_profile: profile,
                    }),
                    Err(why) => Err(HelloRefusal::Elsewhere(format!(
                        "cannot relay {cp_id} to the central running it: {why}"
                    ))),
                }
            });
        };
        Box::pin(async move {
            let attach = AttachMonitor {
                conn_id: msg.conn_id,
                peer: msg.peer,
            };
            match cp.send(attach).await {
                Ok(Ok(terms)) => Ok(Welcome {
                    end: cp.into(),
                    terms,
                    ocpp_security_profile: profile,
                }),
                Ok(Err(refusal)) => Err(HelloRefusal::Refused(refusal)),
                Err(e) => Err(HelloRefusal::Elsewhere(format!(
                    "the central cannot take {cp_id} now: {e}"
                ))),
            }
        })
    }
}

impl CpSupervisor {
    /// Whether `secret` is the secret of the registered CP `cp_id` (wherever it runs): when
    /// it was issued; otherwise a short reason (for the metrics) and the refusal in words.
    fn check_secret(
        &self,
        cp_id: &str,
        secret: &Secret,
    ) -> Result<crate::store::Credential, (&'static str, String)> {
        check_cp_id(cp_id).map_err(|why| ("bad_id", why))?;
        if !matches!(self.store.cp(cp_id), Ok(Some(_))) {
            return Err((
                "unknown_cp",
                format!("{cp_id} is not registered: an operator registers it first"),
            ));
        }
        match self.store.cp_credential(cp_id) {
            Ok(Some(credential)) if party_secrets::matches(&credential, secret.expose()) => {
                Ok(credential)
            }
            Ok(Some(_)) => Err(("wrong_secret", format!("wrong secret for {cp_id}"))),
            Ok(None) => Err((
                "no_secret",
                format!("{cp_id} has no secret yet: an operator issues one"),
            )),
            Err(e) => Err((
                "store",
                format!("cannot read the credential of {cp_id}: {e}"),
            )),
        }
    }
}

/// The address a peer connects from (its port changes with every connection).
fn address_of(peer: &str) -> IpAddr {
    peer.parse::<SocketAddr>()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

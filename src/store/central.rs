//! The central's records: CPs and their credentials, drivers, sessions.
//!
//! Writes go to sled's page cache at once; [`Store::flush`] makes them durable and is
//! awaited before anything that depends on them is acknowledged (a reservation's reply, a
//! ticket). Telemetry is not written here.

mod registry;

pub use registry::{Credential, RegisterError};

use super::changelog::{Changes, ReplicatedTree, Txn};
use super::{all, get, StoreError};
use crate::domain::money::{self, Cents, Energy, Tariff};
use crate::domain::registration::CpTerms;
use crate::domain::CpState;
use crate::messages::{Outcome, Ticket};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionResult;
use std::path::Path;
use uuid::Uuid;

/// What the central remembers of a CP across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpRecord {
    pub id: String,
    pub location: String,
    /// Whole hundredths of a cent per kWh (a record from before: €/kWh as a float).
    #[serde(alias = "price_eur_kwh", deserialize_with = "money::stored_tariff")]
    pub tariff: Tariff,
    /// Stopped by the operator ("Out of Order") until resumed.
    pub stopped: bool,
    /// The last state shown, for the record; on restart every CP starts disconnected.
    pub last_state: String,
    pub updated_at: DateTime<Utc>,
}

impl CpRecord {
    /// A CP just registered with `terms`: disconnected until its monitor authenticates.
    pub fn registered(id: &str, terms: &CpTerms) -> CpRecord {
        CpRecord {
            id: id.to_owned(),
            location: terms.location.clone(),
            tariff: terms.tariff,
            stopped: false,
            last_state: CpState::Disconnected.as_str().into(),
            updated_at: Utc::now(),
        }
    }
}

/// A driver known to the central.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverRecord {
    pub id: String,
    pub first_seen: DateTime<Utc>,
    /// Argon2 PHC string of the dashboard password; `None` until the first sign-in sets it.
    /// Never shown by any view.
    #[serde(default)]
    pub password_hash: Option<String>,
}

/// One supply, from reservation to ticket. Open while `outcome` is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: Uuid,
    pub request_id: Uuid,
    pub cp_id: String,
    pub driver_id: String,
    /// The tariff it was reserved at. Records from before exact money hold `price_eur_kwh`,
    /// `kwh` and `eur` as floats; they load into the same integers.
    #[serde(alias = "price_eur_kwh", deserialize_with = "money::stored_tariff")]
    pub tariff: Tariff,
    pub reserved_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(
        rename = "wh",
        alias = "kwh",
        deserialize_with = "money::stored_energy"
    )]
    pub energy: Energy,
    /// Always `money::cost(energy, tariff)`.
    #[serde(
        rename = "cents",
        alias = "eur",
        deserialize_with = "money::stored_cents"
    )]
    pub cost: Cents,
    pub outcome: Option<Outcome>,
}

impl SessionRecord {
    pub fn is_open(&self) -> bool {
        self.outcome.is_none()
    }

    /// Sets the energy supplied so far, and its cost at the session's tariff.
    pub fn bill(&mut self, energy: Energy) {
        self.energy = energy;
        self.cost = money::cost(energy, self.tariff);
    }

    /// The ticket of a closed session.
    pub fn ticket(&self) -> Option<Ticket> {
        Some(Ticket {
            session_id: self.id,
            request_id: self.request_id,
            cp_id: self.cp_id.clone(),
            driver_id: self.driver_id.clone(),
            started_at: self.started_at,
            ended_at: self.ended_at?,
            kwh: self.energy.kwh(),
            eur: self.cost.eur(),
            price_eur_kwh: self.tariff.eur_per_kwh(),
            outcome: self.outcome?,
        })
    }
}

/// A session as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    pub id: Uuid,
    pub request_id: Uuid,
    pub cp_id: String,
    pub driver_id: String,
    #[serde(rename = "price_eur_kwh", with = "money::as_eur_per_kwh")]
    pub tariff: Tariff,
    pub reserved_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    #[serde(rename = "kwh", with = "money::as_kwh")]
    pub energy: Energy,
    #[serde(rename = "eur", with = "money::as_eur")]
    pub cost: Cents,
    /// How it ended; `null` while open.
    pub outcome: Option<&'static str>,
}

impl From<SessionRecord> for SessionView {
    fn from(s: SessionRecord) -> Self {
        SessionView {
            id: s.id,
            request_id: s.request_id,
            cp_id: s.cp_id,
            driver_id: s.driver_id,
            tariff: s.tariff,
            reserved_at: s.reserved_at,
            started_at: s.started_at,
            ended_at: s.ended_at,
            energy: s.energy,
            cost: s.cost,
            outcome: s.outcome.map(|o| o.as_str()),
        }
    }
}

/// One session's writes, inside a transaction over sessions, requests and open sessions.
fn write_session(
    txn: &Txn<'_>,
    session: &SessionRecord,
    value: &[u8],
) -> ConflictableTransactionResult<(), ()> {
    let id = session.id.as_bytes().as_slice();
    let cp = session.cp_id.as_bytes();
    txn.insert("sessions", id, value)?;
    txn.insert("requests", session.request_id.as_bytes().as_slice(), id)?;
    if session.is_open() {
        txn.insert("open_sessions", cp, id)?;
    } else if txn.get("open_sessions", cp)?.as_deref() == Some(id) {
        // Only drop the index if it still points at this session.
        txn.remove("open_sessions", cp)?;
    }
    Ok(())
}

fn never_aborts(aborted: Result<(), ()>) -> Result<(), StoreError> {
    aborted.map_err(|()| StoreError::Cancelled("a write that never aborts aborted".into()))
}

/// Handle on the database; cheap to clone, safe to share between threads.
#[derive(Debug, Clone)]
pub struct Store {
    db: sled::Db,
    /// Every write below is also a change for the changelog.
    changes: Changes,
    cps: ReplicatedTree,
    /// CP id → what is kept of its secret.
    cp_credentials: ReplicatedTree,
    /// Driver id → what is kept of its secret.
    driver_credentials: ReplicatedTree,
    drivers: ReplicatedTree,
    /// Session id (UUIDv7, so in time order) → session.
    sessions: ReplicatedTree,
    /// CP id → id of its open session.
    open_sessions: ReplicatedTree,
    /// Request id → session id, to recognise a redelivered request.
    requests: ReplicatedTree,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = super::open(dir)?;
        let changes = Changes::open(&db)?;
        Ok(Store {
            cps: changes.tree("cps")?,
            cp_credentials: changes.tree("cp_credentials")?,
            driver_credentials: changes.tree("driver_credentials")?,
            drivers: changes.tree("drivers")?,
            sessions: changes.tree("sessions")?,
            open_sessions: changes.tree("open_sessions")?,
            requests: changes.tree("requests")?,
            changes,
            db,
        })
    }

    /// The changelog of this database's replicated trees, for the records other modules
    /// keep beside these (the accounts) and for the bus that ships and applies changes.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// Makes every write so far durable, blocking the caller (for one-shot commands).
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Makes every write so far durable: on disk and, in a running central, in the
    /// changelog.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.changes.settled().await
    }

    pub fn put_cp(&self, cp: &CpRecord) -> Result<(), StoreError> {
        self.cps.put(cp.id.as_bytes(), cp)
    }

    pub fn cp(&self, id: &str) -> Result<Option<CpRecord>, StoreError> {
        get(&self.cps, id.as_bytes(), "cps")
    }

    pub fn cps(&self) -> Result<Vec<CpRecord>, StoreError> {
        all(&self.cps, "cps")
    }

    /// Records the driver if new; true when it was not known before.
    pub fn register_driver(&self, id: &str) -> Result<bool, StoreError> {
        let record = DriverRecord {
            id: id.to_owned(),
            first_seen: Utc::now(),
            password_hash: None,
        };
        let value = serde_json::to_vec(&record).expect("records always serialise");
        self.drivers
            .compare_and_swap(id.as_bytes(), None, Some(&value))
    }

    pub fn drivers(&self) -> Result<Vec<DriverRecord>, StoreError> {
        all(&self.drivers, "drivers")
    }

    pub fn driver(&self, id: &str) -> Result<Option<DriverRecord>, StoreError> {
        get(&self.drivers, id.as_bytes(), "drivers")
    }

    /// Sets the driver's password hash if it has none yet (registering the driver if new);
    /// true when this call set it. Two first sign-ins at once cannot both set it.
    pub fn set_first_password(&self, id: &str, hash: &str) -> Result<bool, StoreError> {
        loop {
            let old = self.drivers.get(id.as_bytes())?;
            let record = match &old {
                Some(bytes) => serde_json::from_slice::<DriverRecord>(bytes).map_err(|source| {
                    StoreError::Corrupt {
                        tree: "drivers",
                        source,
                    }
                })?,
                None => DriverRecord {
                    id: id.to_owned(),
                    first_seen: Utc::now(),
                    password_hash: None,
                },
            };
            if record.password_hash.is_some() {
                return Ok(false);
            }
            let new = DriverRecord {
                password_hash: Some(hash.to_owned()),
                ..record
            };
            let value = serde_json::to_vec(&new).expect("records always serialise");
            if self
                .drivers
                .compare_and_swap(id.as_bytes(), old.as_deref(), Some(&value))?
            {
                return Ok(true);
            }
            // Someone else wrote the record in between: look again.
        }
    }

    /// The driver's latest closed sessions, newest first, at most `limit`.
    pub fn past_sessions_of(
        &self,
        driver_id: &str,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let mut found = Vec::new();
        // Session ids are UUIDv7: walking the tree backwards goes from newest to oldest.
        for entry in self.sessions.iter().rev() {
            let (_, bytes) = entry?;
            let session: SessionRecord =
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                    tree: "sessions",
                    source,
                })?;
            if session.driver_id == driver_id && !session.is_open() {
                found.push(session);
                if found.len() == limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Stores a session with the open-session and request indexes, in one transaction: a
    /// crash leaves all three as they were or all three changed, never a session whose CP
    /// still points at it once closed, nor a request that leads nowhere.
    pub fn put_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let value = serde_json::to_vec(session).expect("records always serialise");
        let trees = [&self.sessions, &self.requests, &self.open_sessions];
        never_aborts(
            self.changes
                .transaction(&trees, |txn| write_session(txn, session, &value))?,
        )
    }

    /// Removes a session that never was (a reservation that could not be made durable),
    /// with its indexes, in one transaction.
    pub fn forget_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        let id = session.id.as_bytes().as_slice();
        let cp = session.cp_id.as_bytes();
        let trees = [&self.sessions, &self.requests, &self.open_sessions];
        never_aborts(self.changes.transaction(&trees, |txn| {
            txn.remove("sessions", id)?;
            txn.remove("requests", session.request_id.as_bytes().as_slice())?;
            if txn.get("open_sessions", cp)?.as_deref() == Some(id) {
                txn.remove("open_sessions", cp)?;
            }
            Ok(())
        })?)
    }

    pub fn session(&self, id: Uuid) -> Result<Option<SessionRecord>, StoreError> {
        get(&self.sessions, id.as_bytes(), "sessions")
    }

    /// The open session of a CP, if any.
    pub fn open_session(&self, cp_id: &str) -> Result<Option<SessionRecord>, StoreError> {
        match self.open_sessions.get(cp_id.as_bytes())? {
            Some(id) => match Uuid::from_slice(&id) {
                Ok(id) => self.session(id),
                Err(_) => Ok(None),
            },
            None => Ok(None),
        }
    }

    pub fn session_for_request(
        &self,
        request_id: Uuid,
    ) -> Result<Option<SessionRecord>, StoreError> {
        match self.requests.get(request_id.as_bytes())? {
            Some(id) => match Uuid::from_slice(&id) {
                Ok(id) => self.session(id),
                Err(_) => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// Every session, oldest first.
    pub fn sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        all(&self.sessions, "sessions")
    }

    /// At most `limit` sessions, oldest first, from the first one after `after` (session
    /// ids are UUIDv7: their order is the sessions').
    pub fn sessions_page(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let entries = match after {
            Some(id) => self.sessions.range((
                std::ops::Bound::Excluded(id.as_bytes().to_vec()),
                std::ops::Bound::Unbounded,
            )),
            None => self.sessions.iter(),
        };
        let mut page = Vec::with_capacity(limit.min(1024));
        for entry in entries.take(limit) {
            let (_, bytes) = entry?;
            page.push(
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                    tree: "sessions",
                    source,
                })?,
            );
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests;

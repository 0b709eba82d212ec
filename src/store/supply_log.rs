//! The engine's record of its supply in progress, on disk, so that a crash never loses the
//! energy already delivered: written (and flushed) before each progress report leaves, read
//! back at start-up to report the interrupted supply's final state.

use super::{flush_durably, get, put, GroupFlush, StoreError};
use crate::domain::money::{cost_eur, round_kwh};
use crate::messages::{CpEvent, Outcome};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;
use uuid::Uuid;

const CURRENT: &str = "current";

/// The supply in progress, as of `updated_at`; once `outcome` is set, its final figures
/// waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SupplyRecord {
    pub session_id: Uuid,
    pub driver_id: String,
    pub price_eur_kwh: f64,
    pub started_at: DateTime<Utc>,
    pub kwh: f64,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub outcome: Option<Outcome>,
}

impl SupplyRecord {
    /// The same record, closed with `outcome` as of `updated_at`.
    pub fn ended(mut self, outcome: Outcome) -> SupplyRecord {
        self.kwh = round_kwh(self.kwh);
        self.outcome = Some(outcome);
        self
    }

    /// The report of the end of this supply; `None` while it is still going.
    pub fn end_event(&self, cp_id: &str) -> Option<CpEvent> {
        Some(CpEvent::SupplyEnded {
            cp_id: cp_id.to_owned(),
            session_id: self.session_id,
            driver_id: self.driver_id.clone(),
            started_at: self.started_at,
            ended_at: self.updated_at,
            kwh: self.kwh,
            eur: cost_eur(self.kwh, self.price_eur_kwh),
            outcome: self.outcome?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct SupplyLog {
    db: sled::Db,
    /// Where this engine's supply lives in `db`.
    key: Vec<u8>,
    /// Set when many engines share `db`: their flushes are grouped.
    group: Option<GroupFlush>,
}

impl SupplyLog {
    /// Opens the log of one engine; fails if another engine holds the same directory.
    pub fn open(dir: &Path) -> Result<SupplyLog, StoreError> {
        let db = super::open(dir)?;
        Ok(SupplyLog {
            db,
            key: CURRENT.as_bytes().to_vec(),
            group: None,
        })
    }

    /// The log of engine `cp_id` in a database many engines of one process share.
    pub fn shared(db: sled::Db, group: GroupFlush, cp_id: &str) -> SupplyLog {
        SupplyLog {
            db,
            key: format!("{CURRENT}/{cp_id}").into_bytes(),
            group: Some(group),
        }
    }

    async fn flush(&self) -> Result<(), StoreError> {
        match &self.group {
            Some(group) => group.flush().await,
            None => flush_durably(&self.db).await,
        }
    }

    /// The supply that was in progress when the engine last stopped, if any.
    pub fn interrupted(&self) -> Result<Option<SupplyRecord>, StoreError> {
        get(&self.db, &self.key, "supply")
    }

    /// Records the supply's progress; durable once the returned future completes.
    pub async fn record(&self, supply: &SupplyRecord) -> Result<(), StoreError> {
        put(&self.db, &self.key, supply)?;
        self.flush().await
    }

    /// Forgets the supply once its end has been delivered, unless a newer one replaced it.
    pub async fn clear(&self, session_id: Uuid) -> Result<(), StoreError> {
        if let Some(current) = self.interrupted()? {
            if current.session_id == session_id {
                self.db.remove(&self.key)?;
                self.flush().await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix::test]
    async fn a_recorded_supply_survives_reopening_until_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let record = SupplyRecord {
            session_id: Uuid::now_v7(),
            driver_id: "D1".into(),
            price_eur_kwh: 0.3,
            started_at: Utc::now(),
            kwh: 1.234,
            updated_at: Utc::now(),
            outcome: None,
        };
        {
            let log = SupplyLog::open(dir.path()).unwrap();
            log.record(&record).await.unwrap();
            assert!(
                SupplyLog::open(dir.path()).is_err(),
                "a second engine cannot share it"
            );
        }
        let log = SupplyLog::open(dir.path()).unwrap();
        assert_eq!(log.interrupted().unwrap(), Some(record.clone()));
        log.clear(Uuid::now_v7()).await.unwrap();
        assert!(
            log.interrupted().unwrap().is_some(),
            "another session's clear changes nothing"
        );
        log.clear(record.session_id).await.unwrap();
        assert_eq!(log.interrupted().unwrap(), None);
    }

    #[actix::test]
    async fn engines_sharing_a_database_keep_their_own_supply() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let group = GroupFlush::start(db.clone());
        let one = SupplyLog::shared(db.clone(), group.clone(), "CP1");
        let two = SupplyLog::shared(db.clone(), group, "CP2");
        let record = SupplyRecord {
            session_id: Uuid::now_v7(),
            driver_id: "D1".into(),
            price_eur_kwh: 0.3,
            started_at: Utc::now(),
            kwh: 2.5,
            updated_at: Utc::now(),
            outcome: None,
        };
        let (a, b) = tokio::join!(one.record(&record), two.clear(record.session_id));
        a.unwrap();
        b.unwrap();
        assert_eq!(one.interrupted().unwrap(), Some(record));
        assert_eq!(two.interrupted().unwrap(), None);
    }
}

//! Which charging points are registered, and what is kept of each one's secret.
//!
//! A CP and its credential are written together in one transaction: there is never a
//! registered CP without a way to prove it, nor a credential for a CP that does not exist.

use super::{CpRecord, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

/// What the central keeps of a CP's secret: its SHA-256, never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpCredential {
    /// Hex SHA-256 of the secret handed to the CP once.
    pub secret_digest: String,
    pub issued_at: DateTime<Utc>,
}

/// Why a registration was not made.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{0} is already registered")]
    Exists(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Registers a new CP with its credential, both or neither.
    pub fn register_cp(
        &self,
        cp: &CpRecord,
        credential: &CpCredential,
    ) -> Result<(), RegisterError> {
        let record = serde_json::to_vec(cp).expect("records always serialise");
        let secret = serde_json::to_vec(credential).expect("records always serialise");
        let key = cp.id.as_bytes();
        (&self.cps, &self.cp_credentials)
            .transaction(|(cps, credentials)| {
                if cps.get(key)?.is_some() {
                    return Err(ConflictableTransactionError::Abort(()));
                }
                cps.insert(key, record.as_slice())?;
                credentials.insert(key, secret.as_slice())?;
                Ok(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(()) => RegisterError::Exists(cp.id.clone()),
                TransactionError::Storage(e) => RegisterError::Store(e.into()),
            })
    }

    /// The credential of a registered CP; `None` for a CP registered before credentials
    /// existed, which must be issued a secret before its monitor is accepted.
    pub fn cp_credential(&self, id: &str) -> Result<Option<CpCredential>, StoreError> {
        super::get(&self.cp_credentials, id.as_bytes(), "cp_credentials")
    }

    /// Replaces a CP's credential (a new secret issued); the old secret stops working.
    pub fn set_cp_credential(&self, id: &str, credential: &CpCredential) -> Result<(), StoreError> {
        super::put(&self.cp_credentials, id.as_bytes(), credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(id: &str) -> CpRecord {
        CpRecord {
            id: id.into(),
            location: "Alicante".into(),
            tariff: crate::domain::money::Tariff::from_hundredths_of_cent(3000),
            stopped: false,
            last_state: "disconnected".into(),
            updated_at: Utc::now(),
        }
    }

    fn credential(digest: &str) -> CpCredential {
        CpCredential {
            secret_digest: digest.into(),
            issued_at: Utc::now(),
        }
    }

    #[test]
    fn a_cp_is_registered_once_with_its_credential() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.register_cp(&cp("CP1"), &credential("aa")).unwrap();
        assert!(matches!(
            store.register_cp(&cp("CP1"), &credential("bb")),
            Err(RegisterError::Exists(_))
        ));
        assert_eq!(
            store.cp_credential("CP1").unwrap().unwrap().secret_digest,
            "aa"
        );
        assert_eq!(store.cps().unwrap().len(), 1);
        assert!(store.cp_credential("CP2").unwrap().is_none());
    }
}

//! Which charging points and drivers are registered, and what is kept of each one's secret.
//!
//! A CP and its credential are written together in one transaction: there is never a
//! registered CP without a way to prove it, nor a credential for a CP that does not exist.

use super::{CpRecord, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;

/// What the central keeps of a CP's or driver's secret: its SHA-256 and the bus key
/// derived from it, never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    /// Hex SHA-256 of the secret handed to the CP or driver once.
    pub secret_digest: String,
    /// Hex of the key its bus records are proven with (see `crate::proof`); absent in a
    /// credential issued before records were proven, which needs a new secret.
    #[serde(default)]
    pub bus_key: Option<String>,
    pub issued_at: DateTime<Utc>,
    /// The OCPP security profile an OCPP charge point registered with must use: 1 (HTTP
    /// Basic) or 2 (Basic over TLS); none for a native CP, or one that may use either.
    #[serde(default)]
    pub ocpp_security_profile: Option<u8>,
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
    pub fn register_cp(&self, cp: &CpRecord, credential: &Credential) -> Result<(), RegisterError> {
        let record = serde_json::to_vec(cp).expect("records always serialise");
        let secret = serde_json::to_vec(credential).expect("records always serialise");
        let key = cp.id.as_bytes();
        self.changes
            .transaction(&[&self.cps, &self.cp_credentials], |txn| {
                if txn.get("cps", key)?.is_some() {
                    return Err(ConflictableTransactionError::Abort(()));
                }
                txn.insert("cps", key, &record)?;
                txn.insert("cp_credentials", key, &secret)?;
                Ok(())
            })?
            .map_err(|()| RegisterError::Exists(cp.id.clone()))
    }

    /// The credential of a registered CP; `None` for a CP registered before credentials
    /// existed, which must be issued a secret before its monitor is accepted.
    pub fn cp_credential(&self, id: &str) -> Result<Option<Credential>, StoreError> {
        super::get(&self.cp_credentials, id.as_bytes(), "cp_credentials")
    }

    /// Replaces a CP's credential (a new secret issued); the old secret stops working.
    pub fn set_cp_credential(&self, id: &str, credential: &Credential) -> Result<(), StoreError> {
        self.cp_credentials.put(id.as_bytes(), credential)
    }

    /// Registers a new driver with its credential; a driver registered already keeps its own.
    pub fn register_driver_credential(
        &self,
        id: &str,
        credential: &Credential,
    ) -> Result<(), RegisterError> {
        let value = serde_json::to_vec(credential).expect("records always serialise");
        let swapped =
            self.driver_credentials
                .compare_and_swap(id.as_bytes(), None, Some(&value))?;
        if !swapped {
            return Err(RegisterError::Exists(format!("driver {id}")));
        }
        Ok(())
    }

    /// The credential of a registered driver.
    pub fn driver_credential(&self, id: &str) -> Result<Option<Credential>, StoreError> {
        super::get(
            &self.driver_credentials,
            id.as_bytes(),
            "driver_credentials",
        )
    }

    /// Replaces a driver's credential (a new secret issued); the old secret stops working.
    pub fn set_driver_credential(
        &self,
        id: &str,
        credential: &Credential,
    ) -> Result<(), StoreError> {
        self.driver_credentials.put(id.as_bytes(), credential)
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

    fn credential(digest: &str) -> Credential {
        Credential {
            secret_digest: digest.into(),
            bus_key: None,
            issued_at: Utc::now(),
            ocpp_security_profile: None,
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

    #[test]
    fn a_driver_is_registered_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .register_driver_credential("D1", &credential("aa"))
            .unwrap();
        assert!(matches!(
            store.register_driver_credential("D1", &credential("bb")),
            Err(RegisterError::Exists(_))
        ));
        assert_eq!(
            store
                .driver_credential("D1")
                .unwrap()
                .unwrap()
                .secret_digest,
            "aa"
        );
        assert!(store.driver_credential("D2").unwrap().is_none());
    }
}

//! The central's keyring: the bus key of every registered CP and driver, read from the
//! store at each use, so that a secret issued anew takes effect at once.

use crate::proof::{BusKey, KeyLookup, Keyring, Party};
use crate::store::{Credential, Store, StoreError};

#[derive(Debug, Clone)]
pub struct RegisteredKeys {
    store: Store,
}

impl RegisteredKeys {
    pub fn new(store: Store) -> RegisteredKeys {
        RegisteredKeys { store }
    }
}

impl Keyring for RegisteredKeys {
    fn lookup(&self, party: Party<'_>) -> KeyLookup {
        let found: Result<Option<Credential>, StoreError> = match party {
            Party::Cp(id) => self.store.cp_credential(id),
            Party::Driver(id) => self.store.driver_credential(id),
        };
        let credential = match found {
            Ok(Some(credential)) => credential,
            Ok(None) => return KeyLookup::Unknown(format!("{party} is not registered")),
            Err(e) => return KeyLookup::Unknown(format!("cannot read {party}'s key: {e}")),
        };
        match credential.bus_key.as_deref().and_then(BusKey::from_hex) {
            Some(key) => KeyLookup::Found(key),
            None => KeyLookup::Unknown(format!(
                "{party} has a secret from before bus records were proven: issue it a new one"
            )),
        }
    }
}

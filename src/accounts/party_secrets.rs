//! The secrets of charging points and drivers: 256 random bits handed to a CP or driver once
//! when an operator registers it (or issues it a new one). A CP's monitor presents it on
//! every AUTH; its engine, and a driver, prove their bus records with the key derived from
//! it. Only the SHA-256 and that key are kept; a secret this long needs no slow hash, so ten
//! thousand CPs reconnecting at once cost the central microseconds each.

use super::credentials::{digest, new_secret};
use crate::proof::BusKey;
use crate::store::Credential;
use chrono::Utc;
use subtle::ConstantTimeEq;

/// CP secrets start with this, so that a leaked one is easy to recognise and scan for.
pub const CP_SECRET_PREFIX: &str = "evccp_";
/// Drivers' secrets start with this.
pub const DRIVER_SECRET_PREFIX: &str = "evcdrv_";

/// A fresh CP secret and the credential the central keeps of it.
pub fn issue_cp() -> (String, Credential) {
    issue(CP_SECRET_PREFIX)
}

/// A fresh driver secret and the credential the central keeps of it.
pub fn issue_driver() -> (String, Credential) {
    issue(DRIVER_SECRET_PREFIX)
}

fn issue(prefix: &str) -> (String, Credential) {
    let secret = format!("{prefix}{}", new_secret());
    let credential = Credential {
        secret_digest: hex(&digest(&secret)),
        bus_key: Some(BusKey::derive(&secret).to_hex()),
        issued_at: Utc::now(),
        ocpp_security_profile: None,
    };
    (secret, credential)
}

/// Whether `presented` is the secret `credential` was issued for (in constant time).
pub fn matches(credential: &Credential, presented: &str) -> bool {
    let presented = hex(&digest(presented));
    presented
        .as_bytes()
        .ct_eq(credential.secret_digest.as_bytes())
        .into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_issued_secret_matches() {
        let (secret, credential) = issue_cp();
        assert!(secret.starts_with(CP_SECRET_PREFIX));
        assert_eq!(
            credential.bus_key,
            Some(BusKey::derive(&secret).to_hex()),
            "the central can check what the CP proves"
        );
        assert!(!credential.secret_digest.contains(&secret));
        assert!(matches(&credential, &secret));
        assert!(!matches(&credential, "evccp_guess"));
        let (other, _) = issue_driver();
        assert!(other.starts_with(DRIVER_SECRET_PREFIX));
        assert!(!matches(&credential, &other));
    }
}

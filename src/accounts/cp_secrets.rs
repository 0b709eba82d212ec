//! Charging points' secrets: 256 random bits handed to a CP once when an operator registers
//! it (or issues it a new one), presented by its monitor on every AUTH. Only the SHA-256 is
//! kept; a secret this long needs no slow hash, so ten thousand CPs reconnecting at once
//! cost the central microseconds each.

use super::credentials::{digest, new_secret};
use crate::store::CpCredential;
use chrono::Utc;
use subtle::ConstantTimeEq;

/// CP secrets start with this, so that a leaked one is easy to recognise and scan for.
pub const CP_SECRET_PREFIX: &str = "evccp_";

/// A fresh secret and the credential the central keeps of it.
pub fn issue() -> (String, CpCredential) {
    let secret = format!("{CP_SECRET_PREFIX}{}", new_secret());
    let credential = CpCredential {
        secret_digest: hex(&digest(&secret)),
        issued_at: Utc::now(),
    };
    (secret, credential)
}

/// Whether `presented` is the secret `credential` was issued for (in constant time).
pub fn matches(credential: &CpCredential, presented: &str) -> bool {
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
        let (secret, credential) = issue();
        assert!(secret.starts_with(CP_SECRET_PREFIX));
        assert!(!credential.secret_digest.contains(&secret));
        assert!(matches(&credential, &secret));
        assert!(!matches(&credential, "evccp_guess"));
        let (other, _) = issue();
        assert!(!matches(&credential, &other));
    }
}

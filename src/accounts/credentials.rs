//! Driver passwords: Argon2id hashes in PHC strings, kept by the central (SPEC §7).
//!
//! Hashing is deliberately slow (tens of milliseconds or more): call these functions on a
//! blocking thread, never inside an actor handler.

use crate::store::{Store, StoreError};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

/// The longest password accepted, in bytes: enough for any passphrase, short enough that
/// nobody can make the central hash megabytes.
pub const MAX_PASSWORD_BYTES: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot hash the password: {0}")]
    Hash(argon2::password_hash::Error),
    #[error("the stored password hash of {0} is not valid")]
    StoredHash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the password check could not run: {0}")]
    Worker(String),
}

/// Password hashes computed at once, at most: each takes argon2's memory (19 MiB with the
/// default parameters), so that a flood of logins cannot exhaust the central's.
pub const HASHING_AT_ONCE: usize = 2;

static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(HASHING_AT_ONCE);

/// Runs `work` (hashing or checking passwords) on a blocking thread once one of the
/// [`HASHING_AT_ONCE`] places is free: callers beyond wait their turn, holding no memory of
/// argon2's. The place is held until `work` ends, even if the caller stops waiting.
pub async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, CredentialError> {
    let place = HASHING
        .acquire()
        .await
        .map_err(|e| CredentialError::Worker(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let _place = place;
        work()
    })
    .await
    .map_err(|e| CredentialError::Worker(e.to_string()))
}

/// What the central answers to a sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInVerdict {
    /// The password matches the driver's.
    Accepted,
    /// The driver had no password yet: this one is now its password.
    FirstTime,
    /// Wrong password.
    WrongPassword,
    /// Empty or longer than [`MAX_PASSWORD_BYTES`].
    Unacceptable,
}

impl SignInVerdict {
    pub fn accepted(self) -> bool {
        matches!(self, SignInVerdict::Accepted | SignInVerdict::FirstTime)
    }

    /// The verdict in words for the driver.
    pub fn detail(self) -> String {
        match self {
            SignInVerdict::Accepted => "signed in".into(),
            SignInVerdict::FirstTime => "password set: use it to sign in from now on".into(),
            SignInVerdict::WrongPassword => "wrong password".into(),
            SignInVerdict::Unacceptable => {
                format!("a password must have between 1 and {MAX_PASSWORD_BYTES} bytes")
            }
        }
    }
}

/// 256 random bits from the operating system, as hex: session cookies, API and control
/// tokens.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What is kept of a secret handed out: its SHA-256, so a copy of the records lets nobody in.
pub fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether `offered` is `secret`, in a time that does not depend on where they differ (both
/// are compared by their digests, which have the same length).
pub fn same_secret(offered: &str, secret: &str) -> bool {
    use subtle::ConstantTimeEq;
    digest(offered).ct_eq(&digest(secret)).into()
}

/// Hashes a password with Argon2id (default parameters) and a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, CredentialError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(CredentialError::Hash)
}

/// Whether `password` is the one `phc` was made from.
pub fn verify_password(phc: &str, password: &str) -> Result<bool, CredentialError> {
    let hash = PasswordHash::new(phc).map_err(|_| CredentialError::StoredHash(String::new()))?;
    match Argon2::default().verify_password(password.as_bytes(), &hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::Password) => Ok(false),
        Err(e) => Err(CredentialError::Hash(e)),
    }
}

/// Checks a driver's sign-in against the store; the first sign-in of a driver sets its
/// password. Blocking (hashing and sled).
pub fn sign_in(
    store: &Store,
    driver_id: &str,
    password: &str,
) -> Result<SignInVerdict, CredentialError> {
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        return Ok(SignInVerdict::Unacceptable);
    }
    let known = store
        .driver(driver_id)?
        .and_then(|record| record.password_hash);
    if let Some(phc) = known {
        return check(&phc, driver_id, password);
    }
    let phc = hash_password(password)?;
    if store.set_first_password(driver_id, &phc)? {
        return Ok(SignInVerdict::FirstTime);
    }
    // Another first sign-in set it meanwhile: this one must match that password.
    match store
        .driver(driver_id)?
        .and_then(|record| record.password_hash)
    {
        Some(phc) => check(&phc, driver_id, password),
        None => Err(CredentialError::StoredHash(driver_id.to_owned())),
    }
}

fn check(phc: &str, driver_id: &str, password: &str) -> Result<SignInVerdict, CredentialError> {
    match verify_password(phc, password) {
        Ok(true) => Ok(SignInVerdict::Accepted),
        Ok(false) => Ok(SignInVerdict::WrongPassword),
        Err(CredentialError::StoredHash(_)) => {
            Err(CredentialError::StoredHash(driver_id.to_owned()))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(verify_password(&phc, "correct horse").unwrap());
        assert!(!verify_password(&phc, "correct hors").unwrap());
        // Salted: the same password never gives the same string.
        assert_ne!(phc, hash_password("correct horse").unwrap());
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        let secret = new_secret();
        assert_eq!(secret.len(), 64);
        assert!(same_secret(&secret.clone(), &secret));
        assert!(!same_secret(&secret[..63], &secret));
        assert!(!same_secret("", &secret));
    }

    #[test]
    fn a_damaged_stored_hash_is_an_error_not_a_crash() {
        assert!(matches!(
            verify_password("not a phc string", "x"),
            Err(CredentialError::StoredHash(_))
        ));
    }

    #[test]
    fn the_first_sign_in_sets_the_password_and_later_ones_must_match() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            sign_in(&store, "D1", "s3cret").unwrap(),
            SignInVerdict::FirstTime
        );
        assert_eq!(
            sign_in(&store, "D1", "wrong").unwrap(),
            SignInVerdict::WrongPassword
        );
        assert_eq!(
            sign_in(&store, "D1", "s3cret").unwrap(),
            SignInVerdict::Accepted
        );
        // Each driver has its own password.
        assert_eq!(
            sign_in(&store, "D2", "other").unwrap(),
            SignInVerdict::FirstTime
        );
        assert_eq!(
            sign_in(&store, "D1", "other").unwrap(),
            SignInVerdict::WrongPassword
        );
    }

    #[test]
    fn empty_and_huge_passwords_are_refused_without_hashing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let huge = "x".repeat(MAX_PASSWORD_BYTES + 1);
        for password in ["", huge.as_str()] {
            let verdict = sign_in(&store, "D1", password).unwrap();
            assert_eq!(verdict, SignInVerdict::Unacceptable);
            assert!(!verdict.accepted());
        }
        assert!(store.driver("D1").unwrap().is_none());
    }
}

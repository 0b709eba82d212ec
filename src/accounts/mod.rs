//! Who may operate the network: operators with argon2-hashed passwords, their browser
//! sessions, API tokens for scripts, limits on password guessing, and the audit log (SPEC §7).
//!
//! Secrets handed out (session cookies, API tokens, CP secrets) are 256 random bits; only their SHA-256
//! digest is stored, so a copy of the database lets nobody in. Password checks are slow on
//! purpose (argon2): run them with [`credentials::off_thread`]. Secrets written to files
//! (the first admin's one-time password, control tokens) are their owner's alone
//! ([`secret_file`]).

pub mod bus_keys;
pub mod cluster_key;
pub mod credentials;
pub mod login_limit;
pub mod party_secrets;
pub mod secret_file;
mod tokens;

pub use tokens::{ApiToken, IssuedToken, TokenView, DEFAULT_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME};

use crate::store::changelog::{Changes, ReplicatedTree};
use crate::store::{all, get, StoreError};
use chrono::{DateTime, Duration, Utc};
use credentials::{digest, new_secret};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The name of the operator created on first start.
pub const FIRST_ADMIN: &str = "admin";
/// The file, in the central's data directory, that holds the first admin's one-time password.
pub const FIRST_ADMIN_PASSWORD_FILE: &str = "first-admin-password";
/// The shortest password an operator may choose.
pub const MIN_PASSWORD_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Sled(#[from] sled::Error),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("{0}")]
    Invalid(String),
}

/// A person who may use the admin console.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operator {
    pub name: String,
    /// PHC string (argon2id, with its salt).
    pub password_hash: String,
    /// The password was handed out once (first start, `operator add` without a password):
    /// nothing but choosing a new one is allowed until it is changed.
    pub must_change_password: bool,
    pub created_at: DateTime<Utc>,
}

/// A logged-in browser, known by the digest of its cookie.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebSession {
    pub operator: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What a password change ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ended {
    /// The operator's other browser sessions.
    pub sessions: usize,
    /// The operator's API tokens.
    pub tokens: usize,
}

/// One line of the audit log: when, who, from where, what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub who: String,
    pub from: String,
    pub what: String,
}

/// The accounts' trees in the central's database.
#[derive(Debug, Clone)]
pub struct Accounts {
    operators: ReplicatedTree,
    /// Digest of the cookie → session.
    web_sessions: ReplicatedTree,
    /// Digest of the token → token.
    api_tokens: ReplicatedTree,
    /// UUIDv7 (time order) → entry.
    audit: ReplicatedTree,
}

impl Accounts {
    /// The accounts kept beside the central's records, replicated with them.
    pub fn open(changes: &Changes) -> Result<Accounts, StoreError> {
        Ok(Accounts {
            operators: changes.tree("operators")?,
            web_sessions: changes.tree("web_sessions")?,
            api_tokens: changes.tree("api_tokens")?,
            audit: changes.tree("audit")?,
        })
    }

    /// Whether the accounts can be checked: false while a central that started with an
    /// empty database restores them from Kafka.
    pub fn restored(&self) -> bool {
        self.operators.changes().restored()
    }

    pub fn operators(&self) -> Result<Vec<Operator>, AccountError> {
        Ok(all(&self.operators, "operators")?)
    }

    pub fn operator(&self, name: &str) -> Result<Option<Operator>, AccountError> {
        Ok(get(&self.operators, name.as_bytes(), "operators")?)
    }

    /// Adds an operator; refuses a name already taken.
    pub fn add_operator(
        &self,
        name: &str,
        password: &str,
        must_change_password: bool,
    ) -> Result<Operator, AccountError> {
        check_name(name)?;
        if !must_change_password {
            check_password(password)?;
        }
        let operator = Operator {
            name: name.to_owned(),
            password_hash: hash_password(password)?,
            must_change_password,
            created_at: Utc::now(),
        };
        let bytes = serde_json::to_vec(&operator).expect("records always serialise");
        let taken = !self
            .operators
            .compare_and_swap(name.as_bytes(), None, Some(&bytes))?;
        if taken {
            return Err(AccountError::Invalid(format!(
                "an operator named {name} already exists"
            )));
        }
        Ok(operator)
    }

    /// On first start, when no operator exists, creates [`FIRST_ADMIN`] with a one-time
    /// password and writes it to [`FIRST_ADMIN_PASSWORD_FILE`] in `dir`, readable by this
    /// user only; returns that file's path. The password itself is never logged.
    pub fn ensure_first_admin(&self, dir: &Path) -> Result<Option<PathBuf>, AccountError> {
        if !self.operators.is_empty() {
            return Ok(None);
        }
        let password = one_time_password();
        let file = dir.join(FIRST_ADMIN_PASSWORD_FILE);
        // The file first: an admin whose password nobody can read would lock everyone out.
        secret_file::write(&file, &password)
            .map_err(|e| AccountError::Invalid(format!("cannot write {}: {e}", file.display())))?;
        self.add_operator(FIRST_ADMIN, &password, true)?;
        self.operators.flush()?;
        Ok(Some(file))
    }

    /// The operator, if the password is theirs. Slow on purpose: call off the actor threads.
    pub fn verify(&self, name: &str, password: &str) -> Result<Option<Operator>, AccountError> {
        let operator = self.operator(name)?;
        // Hash even for an unknown name, so that timing does not tell which names exist.
        let hash = operator
            .as_ref()
            .map(|o| o.password_hash.clone())
            .unwrap_or_else(|| DUMMY_HASH.with(|h| h.clone()));
        let matches = verify_password(&hash, password);
        Ok(operator.filter(|_| matches))
    }

    /// Sets a new password chosen by the operator, which ends the one-time password. Whoever
    /// knew the old one is shut out: every other browser session of the operator ends (all
    /// but the one whose cookie is `keep`) and every API token of theirs is revoked.
    pub fn set_password(
        &self,
        name: &str,
        password: &str,
        keep: Option<&str>,
    ) -> Result<Ended, AccountError> {
        check_password(password)?;
        let mut operator = self
            .operator(name)?
            .ok_or_else(|| AccountError::Invalid(format!("no operator named {name}")))?;
        operator.password_hash = hash_password(password)?;
        operator.must_change_password = false;
        self.operators.put(name.as_bytes(), &operator)?;
        Ok(Ended {
            sessions: self.end_sessions_of(name, keep)?,
            tokens: self.revoke_tokens_of(name)?,
        })
    }

    /// Opens a browser session for `operator`; returns the cookie's secret.
    pub fn start_session(&self, operator: &str, lasts: Duration) -> Result<String, AccountError> {
        self.forget_expired_sessions()?;
        let secret = new_secret();
        let now = Utc::now();
        let session = WebSession {
            operator: operator.to_owned(),
            created_at: now,
            expires_at: now + lasts,
        };
        self.web_sessions.put(&digest(&secret), &session)?;
        Ok(secret)
    }

    /// The live session behind a cookie's secret.
    pub fn session(&self, secret: &str) -> Result<Option<WebSession>, AccountError> {
        let session: Option<WebSession> = get(&self.web_sessions, &digest(secret), "web_sessions")?;
        Ok(session.filter(|s| s.expires_at > Utc::now()))
    }

    pub fn end_session(&self, secret: &str) -> Result<(), AccountError> {
        self.web_sessions.remove(&digest(secret))?;
        Ok(())
    }

    /// Ends every session of `operator` but the one whose cookie is `keep`; how many.
    fn end_sessions_of(&self, operator: &str, keep: Option<&str>) -> Result<usize, AccountError> {
        let kept = keep.map(digest);
        let mut ended = 0;
        for entry in self.web_sessions.iter() {
            let (key, value) = entry?;
            if kept.is_some_and(|k| key.as_ref() == k.as_slice()) {
                continue;
            }
            let theirs = serde_json::from_slice::<WebSession>(&value)
                .map(|s| s.operator == operator)
                .unwrap_or(false);
            if theirs {
                self.web_sessions.remove(&key)?;
                ended += 1;
            }
        }
        Ok(ended)
    }

    fn forget_expired_sessions(&self) -> Result<(), AccountError> {
        let now = Utc::now();
        for entry in self.web_sessions.iter() {
            let (key, value) = entry?;
            let expired = serde_json::from_slice::<WebSession>(&value)
                .map(|s| s.expires_at <= now)
                .unwrap_or(true);
            if expired {
                self.web_sessions.remove(&key)?;
            }
        }
        Ok(())
    }

    /// Writes one line of the audit log.
    pub fn audit(&self, who: &str, from: &str, what: &str) {
        let entry = AuditEntry {
            at: Utc::now(),
            who: who.to_owned(),
            from: from.to_owned(),
            what: what.to_owned(),
        };
        log::info!("audit: {who} from {from}: {what}");
        if let Err(e) = self.audit.put(uuid::Uuid::now_v7().as_bytes(), &entry) {
            log::error!("cannot write the audit log: {e}");
        }
    }

    /// The latest `limit` audit entries, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, AccountError> {
        self.audit
            .iter()
            .rev()
            .take(limit)
            .map(|entry| {
                let (_, bytes) = entry?;
                serde_json::from_slice(&bytes).map_err(|source| {
                    AccountError::Store(StoreError::Corrupt {
                        tree: "audit",
                        source,
                    })
                })
            })
            .collect()
    }
}

thread_local! {
    /// A hash to verify against when the name is unknown (see [`Accounts::verify`]).
    static DUMMY_HASH: String = hash_password("not a real password").unwrap_or_default();
}

fn check_name(name: &str) -> Result<(), AccountError> {
    let fine = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if fine {
        Ok(())
    } else {
        Err(AccountError::Invalid(
            "an operator name has 1 to 64 letters, digits, or - _ . @".into(),
        ))
    }
}

fn check_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(AccountError::Invalid(format!(
            "a password has at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

fn hash_password(password: &str) -> Result<String, AccountError> {
    credentials::hash_password(password).map_err(|e| AccountError::Hash(e.to_string()))
}

/// A malformed stored hash matches nothing.
fn verify_password(hash: &str, password: &str) -> bool {
    credentials::verify_password(hash, password).unwrap_or(false)
}

/// A password to hand out once: 16 characters nobody confuses (no 0/O, 1/l/I).
pub fn one_time_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        (dir, Accounts::open(&Changes::open(&db).unwrap()).unwrap())
    }

    #[test]
    fn first_admin_is_created_once_with_a_one_time_password_in_a_private_file() {
        let (dir, accounts) = accounts();
        let file = accounts
            .ensure_first_admin(dir.path())
            .unwrap()
            .expect("created");
        assert_eq!(file, dir.path().join(FIRST_ADMIN_PASSWORD_FILE));
        assert!(secret_file::is_private(&file));
        let password = secret_file::read(&file).unwrap().unwrap();
        assert_eq!(password.len(), 16);
        assert_eq!(accounts.ensure_first_admin(dir.path()).unwrap(), None);
        let admin = accounts.verify(FIRST_ADMIN, &password).unwrap().unwrap();
        assert!(admin.must_change_password);
        assert!(accounts.verify(FIRST_ADMIN, "nope").unwrap().is_none());
        assert!(accounts.verify("nobody", &password).unwrap().is_none());
        assert!(accounts.set_password(FIRST_ADMIN, "short", None).is_err());
        accounts
            .set_password(FIRST_ADMIN, "a longer one", None)
            .unwrap();
        let admin = accounts
            .verify(FIRST_ADMIN, "a longer one")
            .unwrap()
            .unwrap();
        assert!(!admin.must_change_password);
    }

    #[test]
    fn sessions_and_tokens_are_found_by_their_secret_only() {
        let (_dir, accounts) = accounts();
        accounts.add_operator("ops", "password1", false).unwrap();
        assert!(accounts.add_operator("ops", "password2", false).is_err());
        assert!(accounts
            .add_operator("bad name", "password2", false)
            .is_err());

        let cookie = accounts.start_session("ops", Duration::hours(1)).unwrap();
        assert_eq!(accounts.session(&cookie).unwrap().unwrap().operator, "ops");
        assert!(accounts.session("forged").unwrap().is_none());
        accounts.end_session(&cookie).unwrap();
        assert!(accounts.session(&cookie).unwrap().is_none());
        let stale = accounts
            .start_session("ops", Duration::seconds(-1))
            .unwrap();
        assert!(accounts.session(&stale).unwrap().is_none());

        let token = accounts
            .issue_token("ops", "script", DEFAULT_TOKEN_LIFETIME)
            .unwrap()
            .token;
        assert!(token.starts_with("evc_"));
        assert_eq!(accounts.token(&token).unwrap().unwrap().operator, "ops");
        assert!(accounts.token("evc_forged").unwrap().is_none());
    }

    #[test]
    fn a_new_password_ends_the_other_sessions_and_revokes_the_tokens() {
        let (_dir, accounts) = accounts();
        accounts.add_operator("ops", "password1", false).unwrap();
        accounts.add_operator("dev", "password2", false).unwrap();
        let here = accounts.start_session("ops", Duration::hours(1)).unwrap();
        let elsewhere = accounts.start_session("ops", Duration::hours(1)).unwrap();
        let colleague = accounts.start_session("dev", Duration::hours(1)).unwrap();
        let token = accounts
            .issue_token("ops", "", DEFAULT_TOKEN_LIFETIME)
            .unwrap()
            .token;
        let ended = accounts
            .set_password("ops", "password3", Some(&here))
            .unwrap();
        assert_eq!(
            ended,
            Ended {
                sessions: 1,
                tokens: 1
            }
        );
        assert!(accounts.session(&here).unwrap().is_some());
        assert!(accounts.session(&elsewhere).unwrap().is_none());
        assert!(accounts.session(&colleague).unwrap().is_some());
        assert!(accounts.token(&token).unwrap().is_none());
    }

    #[test]
    fn the_audit_log_reads_newest_first() {
        let (_dir, accounts) = accounts();
        accounts.audit("ops", "127.0.0.1", "first");
        accounts.audit("ops", "127.0.0.1", "second");
        let log = accounts.audit_log(10).unwrap();
        assert_eq!(log[0].what, "second");
        assert_eq!(log[1].what, "first");
    }
}

//! API tokens: issued for an operator, each with a lifetime; listed without their secrets,
//! revoked one by one, or all of an operator's at once (when the password changes).
//!
//! A token is known by the SHA-256 of its secret; its id, shown in lists and used to revoke
//! it, is the first 8 bytes of that digest in hex: it tells nothing about the secret.

use super::credentials::{digest, new_secret};
use super::{AccountError, Accounts};
use crate::store::get;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// API tokens start with this, so that they are easy to spot (and to scan for in leaks).
const TOKEN_PREFIX: &str = "evc_";
/// A token lives this long unless told otherwise.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::days(90);
/// The longest a token may live.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::days(366);
/// Bytes of the digest that make a token's id.
const ID_BYTES: usize = 8;

/// A script's credential, known by the digest of the token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    pub operator: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    /// Absent from tokens issued before tokens had a lifetime: those live
    /// [`DEFAULT_TOKEN_LIFETIME`] from their creation.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
            .unwrap_or(self.created_at + DEFAULT_TOKEN_LIFETIME)
    }

    fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at() <= now
    }
}

/// A token as lists show it: everything but the secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenView {
    pub id: String,
    pub operator: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A token just issued: its secret, shown once, and how it will be listed.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub view: TokenView,
}

fn id_of(key: &[u8]) -> String {
    key.iter()
        .take(ID_BYTES)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The bytes of an id, if it is one.
fn parse_id(id: &str) -> Option<Vec<u8>> {
    if id.len() != 2 * ID_BYTES || !id.is_ascii() {
        return None;
    }
    (0..ID_BYTES)
        .map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).ok())
        .collect()
}

fn view(key: &[u8], token: ApiToken) -> TokenView {
    TokenView {
        id: id_of(key),
        expires_at: token.expires_at(),
        operator: token.operator,
        label: token.label,
        created_at: token.created_at,
    }
}

impl Accounts {
    /// Issues an API token for scripts acting as `operator`, valid for `lifetime`.
    pub fn issue_token(
        &self,
        operator: &str,
        label: &str,
        lifetime: Duration,
    ) -> Result<IssuedToken, AccountError> {
        if self.operator(operator)?.is_none() {
            return Err(AccountError::Invalid(format!(
                "no operator named {operator}"
            )));
        }
        if lifetime <= Duration::zero() || lifetime > MAX_TOKEN_LIFETIME {
            return Err(AccountError::Invalid(format!(
                "a token lives more than 0 s and at most {} days",
                MAX_TOKEN_LIFETIME.num_days()
            )));
        }
        self.forget_expired_tokens()?;
        let token = format!("{TOKEN_PREFIX}{}", new_secret());
        let now = Utc::now();
        let record = ApiToken {
            operator: operator.to_owned(),
            label: label.to_owned(),
            created_at: now,
            expires_at: Some(now + lifetime),
        };
        let key = digest(&token);
        self.api_tokens.put(&key, &record)?;
        self.api_tokens.flush()?;
        Ok(IssuedToken {
            token,
            view: view(&key, record),
        })
    }

    /// The token's record, if it is one of ours and has not expired.
    pub fn token(&self, token: &str) -> Result<Option<ApiToken>, AccountError> {
        if !token.starts_with(TOKEN_PREFIX) {
            return Ok(None);
        }
        let record: Option<ApiToken> = get(&self.api_tokens, &digest(token), "api_tokens")?;
        Ok(record.filter(|t| !t.is_expired(Utc::now())))
    }

    /// Every token still valid, oldest first.
    pub fn tokens(&self) -> Result<Vec<TokenView>, AccountError> {
        let now = Utc::now();
        let mut views = Vec::new();
        for entry in self.api_tokens.iter() {
            let (key, value) = entry?;
            let Ok(token) = serde_json::from_slice::<ApiToken>(&value) else {
                continue;
            };
            if !token.is_expired(now) {
                views.push(view(&key, token));
            }
        }
        views.sort_by_key(|v| v.created_at);
        Ok(views)
    }

    /// Revokes the token with this id; the token revoked, `None` when there is none.
    pub fn revoke_token(&self, id: &str) -> Result<Option<TokenView>, AccountError> {
        let Some(prefix) = parse_id(id) else {
            return Ok(None);
        };
        let found = self.api_tokens.scan_prefix(&prefix).next().transpose()?;
        let Some((key, value)) = found else {
            return Ok(None);
        };
        self.api_tokens.remove(&key)?;
        self.api_tokens.flush()?;
        let token: Option<ApiToken> = serde_json::from_slice(&value).ok();
        Ok(token.map(|t| view(&key, t)))
    }

    /// Revokes every token of `operator`; how many there were.
    pub fn revoke_tokens_of(&self, operator: &str) -> Result<usize, AccountError> {
        let mut revoked = 0;
        for entry in self.api_tokens.iter() {
            let (key, value) = entry?;
            let theirs = serde_json::from_slice::<ApiToken>(&value)
                .map(|t| t.operator == operator)
                .unwrap_or(false);
            if theirs {
                self.api_tokens.remove(&key)?;
                revoked += 1;
            }
        }
        self.api_tokens.flush()?;
        Ok(revoked)
    }

    fn forget_expired_tokens(&self) -> Result<(), AccountError> {
        let now = Utc::now();
        for entry in self.api_tokens.iter() {
            let (key, value) = entry?;
            let expired = serde_json::from_slice::<ApiToken>(&value)
                .map(|t| t.is_expired(now))
                .unwrap_or(true);
            if expired {
                self.api_tokens.remove(&key)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts() -> (tempfile::TempDir, Accounts) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let accounts =
            Accounts::open(&crate::store::changelog::Changes::open(&db).unwrap()).unwrap();
        accounts.add_operator("ops", "password1", false).unwrap();
        accounts.add_operator("dev", "password2", false).unwrap();
        (dir, accounts)
    }

    #[test]
    fn tokens_are_listed_without_secrets_and_revoked_by_id() {
        let (_dir, accounts) = accounts();
        let first = accounts
            .issue_token("ops", "script", DEFAULT_TOKEN_LIFETIME)
            .unwrap();
        let second = accounts
            .issue_token("dev", "ci", Duration::days(1))
            .unwrap();
        assert!(first.token.starts_with("evc_"));
        let listed = accounts.tokens().unwrap();
        assert_eq!(listed, vec![first.view.clone(), second.view.clone()]);
        assert_eq!(listed[0].id.len(), 16);
        assert!(!format!("{listed:?}").contains(&first.token[4..]));
        let in_a_day = listed[1].expires_at - listed[1].created_at;
        assert_eq!(in_a_day, Duration::days(1));

        assert_eq!(
            accounts.revoke_token(&first.view.id).unwrap(),
            Some(first.view)
        );
        assert!(accounts.token(&first.token).unwrap().is_none());
        assert_eq!(accounts.revoke_token("0123456789abcdef").unwrap(), None);
        assert_eq!(accounts.revoke_token("not an id").unwrap(), None);
        assert!(accounts.token(&second.token).unwrap().is_some());
        assert_eq!(accounts.revoke_tokens_of("dev").unwrap(), 1);
        assert!(accounts.tokens().unwrap().is_empty());
    }

    #[test]
    fn an_expired_token_is_worth_nothing_and_lifetimes_are_bounded() {
        let (_dir, accounts) = accounts();
        assert!(accounts.issue_token("ops", "x", Duration::zero()).is_err());
        assert!(accounts
            .issue_token("ops", "x", MAX_TOKEN_LIFETIME + Duration::days(1))
            .is_err());
        assert!(accounts
            .issue_token("nobody", "x", DEFAULT_TOKEN_LIFETIME)
            .is_err());
        let stale = "evc_stale";
        let now = Utc::now();
        let record = ApiToken {
            operator: "ops".into(),
            label: String::new(),
            created_at: now - Duration::days(2),
            expires_at: Some(now - Duration::days(1)),
        };
        accounts.api_tokens.put(&digest(stale), &record).unwrap();
        assert!(accounts.token(stale).unwrap().is_none());
        assert!(accounts.tokens().unwrap().is_empty());
        // A record from before lifetimes lives the default.
        let old = ApiToken {
            operator: "ops".into(),
            label: String::new(),
            created_at: Utc::now() - Duration::days(91),
            expires_at: None,
        };
        assert!(old.is_expired(Utc::now()));
    }
}

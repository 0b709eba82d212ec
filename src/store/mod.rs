//! Everything kept in sled, and the one home of the plumbing under it: opening a database,
//! typed JSON records in and out, durable flushes, one at a time or grouped.
//!
//! On it: the central's records ([`central`]) and the engine's supply in progress
//! ([`supply_log`]).

pub mod central;
pub mod changelog;
pub mod supply_log;

pub use central::{
    CpRecord, Credential, DriverRecord, RegisterError, SessionRecord, SessionView, Store,
};

use serde::{de::DeserializeOwned, Serialize};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sled(#[from] sled::Error),
    #[error("the flush was cancelled: {0}")]
    Cancelled(String),
    #[error("corrupt record in {tree}: {source}")]
    Corrupt {
        tree: &'static str,
        source: serde_json::Error,
    },
}

/// Opens (or creates) the database in `dir`.
pub fn open(dir: &Path) -> Result<sled::Db, StoreError> {
    Ok(sled::Config::new().path(dir).open()?)
}

/// Makes every write to `db` so far durable, without blocking the caller's thread.
///
/// sled 0.34's own `flush_async` never completes when two run at once (sled issue #1308,
/// fixed only in unreleased sled), which froze a whole actor thread; so flushes run one at a
/// time on the blocking pool. A flush covers every earlier write, so waiting is harmless.
pub(crate) async fn flush_durably(db: &sled::Db) -> Result<(), StoreError> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let db = db.clone();
    tokio::task::spawn_blocking(move || {
        let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        db.flush()
    })
    .await
    .map_err(|e| StoreError::Cancelled(e.to_string()))??;
    Ok(())
}

/// Flushes one database for many writers at once (group commit): a caller waits for the
/// first flush that starts after its call, and one flush serves every caller that arrived
/// while the previous one ran. Thousands of engines sharing one database (`evcharge fleet`)
/// then cost a few flushes a second, not one each.
#[derive(Debug, Clone)]
pub struct GroupFlush {
    requests: tokio::sync::mpsc::UnboundedSender<tokio::sync::oneshot::Sender<Result<(), String>>>,
}

impl GroupFlush {
    /// Starts the flusher of `db` on the current actix system.
    pub fn start(db: sled::Db) -> GroupFlush {
        let (requests, mut waiting) = tokio::sync::mpsc::unbounded_channel::<
            tokio::sync::oneshot::Sender<Result<(), String>>,
        >();
        actix::spawn(async move {
            while let Some(first) = waiting.recv().await {
                let mut callers = vec![first];
                while let Ok(next) = waiting.try_recv() {
                    callers.push(next);
                }
                let flushed = flush_durably(&db).await.map_err(|e| e.to_string());
                for caller in callers {
                    let _ = caller.send(flushed.clone());
                }
            }
        });
        GroupFlush { requests }
    }

    /// Resolves once every write made before the call is durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (done, flushed) = tokio::sync::oneshot::channel();
        self.requests
            .send(done)
            .map_err(|_| StoreError::Cancelled("the flusher has stopped".into()))?;
        flushed
            .await
            .map_err(|_| StoreError::Cancelled("the flusher has stopped".into()))?
            .map_err(StoreError::Cancelled)
    }
}

pub(crate) fn put<T: Serialize>(
    tree: &sled::Tree,
    key: &[u8],
    value: &T,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(value).expect("records always serialise");
    tree.insert(key, bytes)?;
    Ok(())
}

pub(crate) fn get<T: DeserializeOwned>(
    tree: &sled::Tree,
    key: &[u8],
    name: &'static str,
) -> Result<Option<T>, StoreError> {
    tree.get(key)?
        .map(|bytes| {
            serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Corrupt { tree: name, source })
        })
        .transpose()
}

pub(crate) fn all<T: DeserializeOwned>(
    tree: &sled::Tree,
    name: &'static str,
) -> Result<Vec<T>, StoreError> {
    tree.iter()
        .values()
        .map(|bytes| {
            let bytes = bytes?;
            serde_json::from_slice(&bytes)
                .map_err(|source| StoreError::Corrupt { tree: name, source })
        })
        .collect()
}

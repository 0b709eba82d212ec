//! The central's records: indexes, transactions, older formats, flushes.

use super::*;

fn session(cp: &str, outcome: Option<Outcome>) -> SessionRecord {
    SessionRecord {
        id: Uuid::now_v7(),
        request_id: Uuid::new_v4(),
        cp_id: cp.into(),
        driver_id: "D1".into(),
        tariff: Tariff::from_hundredths_of_cent(3000),
        reserved_at: Utc::now(),
        expires_at: Utc::now(),
        started_at: None,
        ended_at: outcome.map(|_| Utc::now()),
        energy: Energy(0),
        cost: Cents(0),
        outcome,
    }
}

#[test]
fn open_session_index_follows_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut s = session("CP1", None);
    store.put_session(&s).unwrap();
    assert_eq!(store.open_session("CP1").unwrap().unwrap().id, s.id);
    assert_eq!(
        store.session_for_request(s.request_id).unwrap().unwrap().id,
        s.id
    );
    s.outcome = Some(Outcome::Completed);
    s.ended_at = Some(Utc::now());
    store.put_session(&s).unwrap();
    assert!(store.open_session("CP1").unwrap().is_none());
    assert!(store.session(s.id).unwrap().unwrap().ticket().is_some());
}

/// The session and its two indexes change together, or not at all.
#[test]
fn a_session_and_its_indexes_are_written_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut s = session("CP1", None);
    store.put_session(&s).unwrap();
    let trees = [&store.sessions, &store.requests, &store.open_sessions];
    let snapshot = |store: &Store| {
        let dump = |t: &sled::Tree| t.iter().collect::<Result<Vec<_>, _>>().unwrap();
        (
            dump(&store.sessions),
            dump(&store.requests),
            dump(&store.open_sessions),
        )
    };
    let before = snapshot(&store);

    // The close written, then the transaction fails: nothing of it is left.
    s.outcome = Some(Outcome::Completed);
    s.ended_at = Some(Utc::now());
    s.bill(Energy(1500));
    let value = serde_json::to_vec(&s).unwrap();
    let pending = store.changes.pending(0, 100).unwrap().len();
    let failed = store.changes.transaction(&trees, |t| {
        write_session(t, &s, &value)?;
        Err::<(), _>(sled::transaction::ConflictableTransactionError::Abort(()))
    });
    assert!(matches!(failed, Ok(Err(()))));
    assert_eq!(snapshot(&store), before);
    // Nor of its changes for the changelog.
    assert_eq!(store.changes.pending(0, 100).unwrap().len(), pending);
    assert!(store.session(s.id).unwrap().unwrap().is_open());
    assert_eq!(store.open_session("CP1").unwrap().unwrap().id, s.id);

    // The same close committed: the session and its index changed together.
    store.put_session(&s).unwrap();
    assert!(store.open_session("CP1").unwrap().is_none());
    let closed = store.session(s.id).unwrap().unwrap();
    assert_eq!((closed.energy, closed.cost), (Energy(1500), Cents(45)));
    assert_eq!(
        store.session_for_request(s.request_id).unwrap().unwrap(),
        closed
    );
}

/// A record written by a build that kept euros as floats loads, exact.
#[test]
fn sessions_stored_in_euros_load_in_cents() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let old = serde_json::json!({
        "id": Uuid::now_v7(), "request_id": Uuid::new_v4(), "cp_id": "CP1",
        "driver_id": "D1", "price_eur_kwh": 0.35, "reserved_at": Utc::now(),
        "expires_at": Utc::now(), "started_at": Utc::now(), "ended_at": Utc::now(),
        "kwh": 1.234, "eur": 0.43, "outcome": "completed",
    });
    let id: Uuid = serde_json::from_value(old["id"].clone()).unwrap();
    store
        .sessions
        .insert(id.as_bytes(), &serde_json::to_vec(&old).unwrap())
        .unwrap();
    store
        .cps
        .insert(
            b"CP1",
            br#"{"id":"CP1","location":"here","price_eur_kwh":0.355,"stopped":false,"last_state":"available","updated_at":"2026-11-23T10:00:00Z"}"#.as_slice(),
        )
        .unwrap();
    let session = store.session(id).unwrap().unwrap();
    assert_eq!(session.tariff, Tariff::from_hundredths_of_cent(3500));
    assert_eq!((session.energy, session.cost), (Energy(1234), Cents(43)));
    let cp = store.cp("CP1").unwrap().unwrap();
    assert_eq!(cp.tariff, Tariff::from_hundredths_of_cent(3550));
    // Written again, it is kept in integers and reads the same.
    store.put_session(&session).unwrap();
    let raw: serde_json::Value =
        serde_json::from_slice(&store.sessions.get(id.as_bytes()).unwrap().unwrap()).unwrap();
    assert_eq!(
        (raw["wh"].clone(), raw["cents"].clone()),
        (1234.into(), 43.into())
    );
    assert_eq!(store.session(id).unwrap().unwrap(), session);
}

/// Many flushes at once all complete (sled's own `flush_async` would hang here).
#[actix::test]
async fn concurrent_flushes_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let flushes = (0..64u32).map(|i| {
        let store = store.clone();
        async move {
            store
                .put_session(&session(&format!("CP{i}"), None))
                .unwrap();
            store.flush().await
        }
    });
    let all = futures_util::future::join_all(flushes);
    let done = tokio::time::timeout(std::time::Duration::from_secs(120), all)
        .await
        .expect("every flush completes");
    assert!(done.iter().all(Result::is_ok));
}

#[test]
fn a_first_password_is_set_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(store.register_driver("D1").unwrap());
    let seen = store.driver("D1").unwrap().unwrap().first_seen;
    assert!(store.set_first_password("D1", "hash-1").unwrap());
    assert!(!store.set_first_password("D1", "hash-2").unwrap());
    let record = store.driver("D1").unwrap().unwrap();
    assert_eq!(record.password_hash.as_deref(), Some("hash-1"));
    assert_eq!(record.first_seen, seen);
    // A driver never seen before is registered by its first password.
    assert!(store.set_first_password("D2", "hash-3").unwrap());
    assert!(!store.register_driver("D2").unwrap());
}

#[test]
fn past_sessions_are_the_drivers_closed_ones_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut s = session(&format!("CP{i}"), Some(Outcome::Completed));
        if i == 2 {
            s.driver_id = "D2".into();
        }
        store.put_session(&s).unwrap();
        ids.push(s.id);
    }
    store.put_session(&session("CP9", None)).unwrap();
    let past = store.past_sessions_of("D1", 3).unwrap();
    let got: Vec<Uuid> = past.iter().map(|s| s.id).collect();
    assert_eq!(got, vec![ids[4], ids[3], ids[1]]);
    assert!(store.past_sessions_of("D3", 50).unwrap().is_empty());
}

/// The store in `dir` once more. sled's flusher thread lets go of the folder's lock a moment
/// after the last handle is dropped: until it has, opening is refused.
fn reopen(dir: &Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Store::open(dir) {
            Ok(store) => return store,
            Err(e) if std::time::Instant::now() < deadline => {
                assert!(e.to_string().contains("lock"), "{e}");
                std::thread::yield_now();
            }
            Err(e) => panic!("the store never reopened: {e}"),
        }
    }
}

#[test]
fn records_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let first = session("CP1", Some(Outcome::Completed));
    {
        let store = Store::open(dir.path()).unwrap();
        store.put_session(&first).unwrap();
        assert!(store.register_driver("D1").unwrap());
        assert!(!store.register_driver("D1").unwrap());
        store.db.flush().unwrap();
    }
    let store = reopen(dir.path());
    assert_eq!(store.sessions().unwrap(), vec![first]);
    assert_eq!(store.drivers().unwrap().len(), 1);
}

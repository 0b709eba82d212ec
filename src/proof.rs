//! Proof of origin for bus records: only the party a record names (a CP, a driver) — or
//! the central, speaking to that CP — can write a record the receiver acts on.
//!
//! Each CP and driver holds a secret issued when it was registered. Both ends derive the
//! same *bus key* from it (HKDF-SHA256); the central keeps that key beside the secret's
//! digest, never the secret. A record's proof is HMAC-SHA256 under the key over the topic,
//! the record key and the value, sent in the Kafka header [`HEADER`]. The exact recipe is in
//! `docs/PROTOCOL.md`, so that any Kafka client can prove its records.
//!
//! ring does the cryptography; nothing here is written by hand but the framing.

use ring::{aead, hkdf, hmac};
use std::fmt;

/// The Kafka header that carries a record's proof: lowercase hex of its HMAC-SHA256.
pub const HEADER: &str = "evcharge-proof";

/// HKDF `info` of the bus key.
const BUS_KEY_INFO: &[u8] = b"evcharge bus key v1";
/// HKDF `info` of the key that seals a driver's password, derived from its bus key.
const SEAL_KEY_INFO: &[u8] = b"evcharge password seal v1";
/// What every proven text starts with: a proof of this scheme is never valid for another.
const PROOF_LABEL: &[u8] = b"evcharge-proof-v1";

/// A party's bus key: 32 bytes, never shown in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct BusKey([u8; 32]);

impl fmt::Debug for BusKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BusKey(***)")
    }
}

/// The length ring's HKDF is asked for: our keys are 32 bytes.
struct KeyLength;

impl hkdf::KeyType for KeyLength {
    fn len(&self) -> usize {
        32
    }
}

fn expand(secret: &[u8], info: &[u8]) -> [u8; 32] {
    // RFC 5869 with an empty salt (the secrets are 256 random bits already).
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(secret);
    let mut out = [0u8; 32];
    prk.expand(&[info], KeyLength)
        .and_then(|okm| okm.fill(&mut out))
        .expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

impl BusKey {
    /// The bus key of the party that holds `secret` (a CP's `evccp_…`, a driver's `evcdrv_…`).
    pub fn derive(secret: &str) -> BusKey {
        BusKey(expand(secret.as_bytes(), BUS_KEY_INFO))
    }

    /// As the central stores it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<BusKey> {
        let bytes = decode_hex(text)?;
        Some(BusKey(bytes.try_into().ok()?))
    }

    /// The proof of a record written to `topic` (its name without the configured prefix,
    /// e.g. `cp.events`) with `key` and `value`, as the header carries it.
    pub fn prove(&self, topic: &str, key: &str, value: &[u8]) -> String {
        let tag = hmac::sign(&self.hmac_key(), &proven_text(topic, key, value));
        tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `proof` (the header's value) proves this record, in constant time.
    pub fn verify(&self, topic: &str, key: &str, value: &[u8], proof: &[u8]) -> bool {
        let Some(tag) = std::str::from_utf8(proof).ok().and_then(decode_hex) else {
            return false;
        };
        hmac::verify(&self.hmac_key(), &proven_text(topic, key, value), &tag).is_ok()
    }

    fn hmac_key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &self.0)
    }

    /// Seals a driver's password for the bus: only the central, which holds this key, can
    /// open it. `context` (the request id) binds the seal to one request.
    pub fn seal(&self, context: &str, password: &str) -> String {
        let key = self.seal_key();
        let mut nonce = [0u8; aead::NONCE_LEN];
        getrandom(&mut nonce);
        let mut sealed = password.as_bytes().to_vec();
        key.seal_in_place_append_tag(
            aead::Nonce::assume_unique_for_key(nonce),
            aead::Aad::from(context.as_bytes()),
            &mut sealed,
        )
        .expect("a password fits ChaCha20-Poly1305");
        let mut out: Vec<u8> = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Opens what [`seal`](Self::seal) made for `context`; `None` when it was not sealed
    /// with this key for this context, or was changed.
    pub fn open(&self, context: &str, sealed: &str) -> Option<String> {
        let bytes = decode_hex(sealed)?;
        if bytes.len() < aead::NONCE_LEN + aead::CHACHA20_POLY1305.tag_len() {
            return None;
        }
        let (nonce, rest) = bytes.split_at(aead::NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut rest = rest.to_vec();
        let plain = self
            .seal_key()
            .open_in_place(nonce, aead::Aad::from(context.as_bytes()), &mut rest)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }

    fn seal_key(&self) -> aead::LessSafeKey {
        let bytes = expand(&self.0, SEAL_KEY_INFO);
        aead::LessSafeKey::new(
            aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &bytes).expect("a 32-byte key"),
        )
    }
}

/// The key the centrals of one network share: it seals what they write on their own topics
/// (the changelog of their records, the CPs' views), so that only they can read those
/// records (bus keys and password hashes are among them) or write one a central would take.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey([u8; 32]);

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(***)")
    }
}

/// What every sealed record's associated data starts with.
const CLUSTER_LABEL: &[u8] = b"evcharge-cluster-v1";

impl ClusterKey {
    /// A new random key.
    pub fn generate() -> ClusterKey {
        let mut key = [0u8; 32];
        getrandom(&mut key);
        ClusterKey(key)
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<ClusterKey> {
        Some(ClusterKey(decode_hex(text)?.try_into().ok()?))
    }

    /// Seals `value` for the record `key` of `topic` (its name without the prefix): nonce,
    /// then ChaCha20-Poly1305 ciphertext and tag.
    pub fn seal(&self, topic: &str, key: &str, value: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; aead::NONCE_LEN];
        getrandom(&mut nonce);
        let mut sealed = value.to_vec();
        self.aead_key()
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(sealed_context(topic, key)),
                &mut sealed,
            )
            .expect("a record fits ChaCha20-Poly1305");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    /// What [`seal`](Self::seal) sealed for this topic and key; `None` when it was sealed
    /// with another key, for another record, or changed since.
    pub fn open(&self, topic: &str, key: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < aead::NONCE_LEN + aead::CHACHA20_POLY1305.tag_len() {
            return None;
        }
        let (nonce, rest) = sealed.split_at(aead::NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut rest = rest.to_vec();
        let plain = self
            .aead_key()
            .open_in_place(
                nonce,
                aead::Aad::from(sealed_context(topic, key)),
                &mut rest,
            )
            .ok()?;
        Some(plain.to_vec())
    }

    fn aead_key(&self) -> aead::LessSafeKey {
        aead::LessSafeKey::new(
            aead::UnboundKey::new(&aead::CHACHA20_POLY1305, &self.0).expect("a 32-byte key"),
        )
    }
}

fn sealed_context(topic: &str, key: &str) -> Vec<u8> {
    let mut text = CLUSTER_LABEL.to_vec();
    for part in [topic.as_bytes(), key.as_bytes()] {
        text.push(0);
        text.extend_from_slice(part);
    }
    text
}

/// `evcharge-proof-v1 NUL topic NUL key NUL value`: the NULs keep the parts apart (a topic or
/// key holding a NUL is refused before any proof is checked).
fn proven_text(topic: &str, key: &str, value: &[u8]) -> Vec<u8> {
    let mut text =
        Vec::with_capacity(PROOF_LABEL.len() + topic.len() + key.len() + value.len() + 3);
    for part in [PROOF_LABEL, topic.as_bytes(), key.as_bytes()] {
        text.extend_from_slice(part);
        text.push(0);
    }
    text.extend_from_slice(value);
    text
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 1024 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn getrandom(buffer: &mut [u8]) {
    use ring::rand::SecureRandom;
    ring::rand::SystemRandom::new()
        .fill(buffer)
        .expect("the system's random source works");
}

/// Who a record on a proven topic speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party<'a> {
    /// A charging point (its engine writes `cp.events`; the central's `cp.commands` to it
    /// are proven with the same key).
    Cp(&'a str),
    Driver(&'a str),
}

/// The longest part of an id a reason quotes: a forged record may name any key at all.
const SHOWN_ID: usize = 40;

impl fmt::Display for Party<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, id) = match self {
            Party::Cp(id) => ("CP", id),
            Party::Driver(id) => ("driver", id),
        };
        match id.char_indices().nth(SHOWN_ID) {
            Some((cut, _)) => write!(f, "{what} {:?}…", &id[..cut]),
            None => write!(f, "{what} {id}"),
        }
    }
}

/// What a process knows of a party's key.
#[derive(Debug, Clone)]
pub enum KeyLookup {
    Found(BusKey),
    /// Another process's party (an engine reading the commands of every CP): its records
    /// are none of this process's business.
    NotOurs,
    /// A party this process should know and does not: the reason, for the dead-letter topic.
    Unknown(String),
}

/// Where a process finds the keys of the parties it writes for and reads from.
pub trait Keyring: Send + Sync + fmt::Debug {
    fn lookup(&self, party: Party<'_>) -> KeyLookup;
}

/// The keys of the parties one process *is*: an engine, a driver, a fleet of them.
#[derive(Debug, Default, Clone)]
pub struct OwnKeys {
    cps: std::collections::HashMap<String, BusKey>,
    drivers: std::collections::HashMap<String, BusKey>,
}

impl OwnKeys {
    pub fn cp(mut self, id: &str, secret: &str) -> OwnKeys {
        self.cps.insert(id.to_owned(), BusKey::derive(secret));
        self
    }

    pub fn driver(mut self, id: &str, secret: &str) -> OwnKeys {
        self.drivers.insert(id.to_owned(), BusKey::derive(secret));
        self
    }
}

impl Keyring for OwnKeys {
    fn lookup(&self, party: Party<'_>) -> KeyLookup {
        let found = match party {
            Party::Cp(id) => self.cps.get(id),
            Party::Driver(id) => self.drivers.get(id),
        };
        found.map_or(KeyLookup::NotOurs, |key| KeyLookup::Found(key.clone()))
    }
}

/// The keys of CPs that join while the process runs (an OCPP gateway learns each charge
/// point's key as it connects), shared by its producer and consumer.
#[derive(Debug, Default, Clone)]
pub struct SharedKeys {
    cps: std::sync::Arc<std::sync::RwLock<std::collections::HashMap<String, BusKey>>>,
}

impl SharedKeys {
    pub fn add_cp(&self, id: &str, secret: &str) {
        let key = BusKey::derive(secret);
        self.cps
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned(), key);
    }

    pub fn remove_cp(&self, id: &str) {
        self.cps
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
    }
}

impl Keyring for SharedKeys {
    fn lookup(&self, party: Party<'_>) -> KeyLookup {
        let Party::Cp(id) = party else {
            return KeyLookup::NotOurs;
        };
        let cps = self
            .cps
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        cps.get(id)
            .map_or(KeyLookup::NotOurs, |key| KeyLookup::Found(key.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_holds_for_its_record_only() {
        let key = BusKey::derive("evccp_0123");
        let proof = key.prove("cp.events", "CP1", b"{\"a\":1}");
        assert_eq!(proof.len(), 64);
        assert!(key.verify("cp.events", "CP1", b"{\"a\":1}", proof.as_bytes()));
        assert!(!key.verify("cp.events", "CP1", b"{\"a\":2}", proof.as_bytes()));
        assert!(!key.verify("cp.events", "CP2", b"{\"a\":1}", proof.as_bytes()));
        assert!(!key.verify("cp.commands", "CP1", b"{\"a\":1}", proof.as_bytes()));
        assert!(!key.verify("cp.events", "CP1", b"{\"a\":1}", b"zz"));
        let other = BusKey::derive("evccp_0124");
        assert!(!other.verify("cp.events", "CP1", b"{\"a\":1}", proof.as_bytes()));
    }

    #[test]
    fn the_key_and_proof_are_docs_worked_example() {
        // docs/PROTOCOL.md's worked example, as OpenSSL 3 computes it there.
        let key = BusKey::derive("evccp_example");
        assert_eq!(
            key.to_hex(),
            "eb079a4af5107248853ded2132e096319551c7b405f7efc40e1ce3b4f336bbae"
        );
        assert_eq!(
            key.prove("cp.events", "CP001", br#"{"a":1}"#),
            "720bb64b32f1ea363a2252a493cb206f9e345edc9cbff9595bcacf106612fbf0"
        );
        assert_eq!(BusKey::from_hex(&key.to_hex()), Some(key.clone()));
        assert_eq!(BusKey::from_hex("abc"), None);
        assert!(!format!("{key:?}").contains(&key.to_hex()));
    }

    #[test]
    fn a_reason_quotes_a_long_id_cut_short() {
        assert_eq!(Party::Cp("CP1").to_string(), "CP CP1");
        let long = "x".repeat(10_000);
        let shown = Party::Driver(&long).to_string();
        assert!(shown.len() < 60, "{shown}");
        assert!(
            shown.starts_with("driver \"xxx") && shown.ends_with('…'),
            "{shown}"
        );
    }

    #[test]
    fn a_sealed_password_opens_only_with_its_key_and_context() {
        let key = BusKey::derive("evcdrv_1");
        let sealed = key.seal("request-1", "hunter2");
        assert!(!sealed.contains("hunter2"));
        assert_eq!(key.open("request-1", &sealed).as_deref(), Some("hunter2"));
        assert_eq!(key.open("request-2", &sealed), None);
        assert_eq!(BusKey::derive("evcdrv_2").open("request-1", &sealed), None);
        assert_eq!(key.open("request-1", "00"), None);
    }

    #[test]
    fn a_sealed_record_opens_only_with_its_key_for_its_topic_and_key() {
        let key = ClusterKey::generate();
        let sealed = key.seal("central.changelog", "cps/4350", b"record");
        assert_eq!(
            key.open("central.changelog", "cps/4350", &sealed)
                .as_deref(),
            Some(b"record".as_slice())
        );
        assert!(key.open("central.changelog", "cps/4351", &sealed).is_none());
        assert!(key.open("central.views", "cps/4350", &sealed).is_none());
        assert!(ClusterKey::generate()
            .open("central.changelog", "cps/4350", &sealed)
            .is_none());
        let mut changed = sealed;
        *changed.last_mut().unwrap() ^= 1;
        assert!(key
            .open("central.changelog", "cps/4350", &changed)
            .is_none());
        assert_eq!(ClusterKey::from_hex(&key.to_hex()), Some(key));
    }
}

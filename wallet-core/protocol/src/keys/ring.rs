//! The [`KeyRing`]: every secret key of one wallet or agent, indexed by its public key.
//! Secrets are generated from the OS RNG, zeroized on drop, and used only through methods
//! that sign or agree; they are persisted (sealed) only through the encrypted store.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use ed25519_dalek::{Signer as _, SigningKey};
use rand_core::OsRng;
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use super::agreement::dh;
use super::{KeyError, KeyType, PublicKey};
use crate::store::Sealer;

/// Bound on the static-static agreement cache (ECDH-1PU's Zs): one entry per pair of our key
/// and a peer key. When full it is emptied, zeroizing every entry.
const STATIC_CACHE_LIMIT: usize = 4096;

/// ECDH-1PU static-static secrets by (our key, peer key).
type StaticCache = HashMap<(PublicKey, PublicKey), Zeroizing<[u8; 32]>>;

enum Secret {
    Ed25519(SigningKey),
    X25519(StaticSecret),
}

/// A secret key in its storage form: one type byte then the 32 secret bytes. Opaque outside
/// this module; zeroized on drop. Only the encrypted store ever holds it.
pub struct StoredKey(Zeroizing<Vec<u8>>);

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoredKey([redacted])")
    }
}

impl StoredKey {
    /// The sealed-store value. Hand it only to [`crate::store::Store`].
    pub(crate) fn as_store_value(&self) -> &[u8] {
        &self.0
    }

    /// Takes a value read back from the store.
    pub(crate) fn from_store_value(bytes: Zeroizing<Vec<u8>>) -> StoredKey {
        StoredKey(bytes)
    }
}

const TAG_ED25519: u8 = 1;
const TAG_X25519: u8 = 2;
/// The sealing's tree name for keys sealed by [`KeyRing::export_sealed`].
const SEALED_KEY_TREE: &str = "sealed key";

/// Holds secret keys and performs the operations that need them.
#[derive(Default)]
pub struct KeyRing {
    keys: RwLock<HashMap<PublicKey, Secret>>,
    static_cache: Mutex<StaticCache>,
    /// Static-static agreements served from `static_cache` (what its tests observe).
    static_cache_hits: AtomicU64,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<PublicKey> = self.public_keys();
        f.debug_struct("KeyRing")
            .field("public_keys", &keys)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// An empty ring.
    pub fn new() -> KeyRing {
        KeyRing::default()
    }

    /// Generates a new key of `kind` from the OS RNG and returns its public key.
    pub fn generate(&self, kind: KeyType) -> PublicKey {
        let (public, secret) = match kind {
            KeyType::Ed25519 => {
                let key = SigningKey::generate(&mut OsRng);
                (
                    PublicKey::ed25519(key.verifying_key().to_bytes()),
                    Secret::Ed25519(key),
                )
            }
            KeyType::X25519 => {
                let key = StaticSecret::random_from_rng(OsRng);
                (
                    PublicKey::x25519(x25519_dalek::PublicKey::from(&key).to_bytes()),
                    Secret::X25519(key),
                )
            }
        };
        self.write().insert(public, secret);
        public
    }

    /// Imports an Ed25519 key from its 32-byte seed (RFC 8032 private key), e.g. a published
    /// test vector. The seed is zeroized by the caller's `Zeroizing`.
    pub fn import_ed25519(&self, seed: &Zeroizing<[u8; 32]>) -> PublicKey {
        let key = SigningKey::from_bytes(seed);
        let public = PublicKey::ed25519(key.verifying_key().to_bytes());
        self.write().insert(public, Secret::Ed25519(key));
        public
    }

    /// Imports an X25519 secret scalar.
    pub fn import_x25519(&self, secret: &Zeroizing<[u8; 32]>) -> PublicKey {
        let key = StaticSecret::from(**secret);
        let public = PublicKey::x25519(x25519_dalek::PublicKey::from(&key).to_bytes());
        self.write().insert(public, Secret::X25519(key));
        public
    }

    /// Adds the X25519 key-agreement secret that corresponds to the held Ed25519 key `ed`
    /// (clamped SHA-512 of the seed, as did:key derives an Ed25519 DID's agreement key) and
    /// returns its public key, which equals `ed.ed25519_to_x25519()`.
    pub fn derive_x25519(&self, ed: &PublicKey) -> Result<PublicKey, KeyError> {
        let mut scalar = Zeroizing::new([0u8; 32]);
        match self.read().get(ed) {
            Some(Secret::Ed25519(signing)) => {
                let mut hash: [u8; 64] =
                    <sha2::Sha512 as sha2::Digest>::digest(signing.as_bytes()).into();
                scalar.copy_from_slice(&hash[..32]);
                zeroize::Zeroize::zeroize(&mut hash);
            }
            Some(Secret::X25519(_)) => return Err(KeyError::WrongKeyType(*ed, KeyType::X25519)),
            None => return Err(KeyError::UnknownKey(*ed)),
        }
        scalar[0] &= 248;
        scalar[31] &= 127;
        scalar[31] |= 64;
        Ok(self.import_x25519(&scalar))
    }

    /// Whether a secret is held for `key`.
    pub fn contains(&self, key: &PublicKey) -> bool {
        self.read().contains_key(key)
    }

    /// The public keys of every secret held, sorted.
    pub fn public_keys(&self) -> Vec<PublicKey> {
        let mut keys: Vec<PublicKey> = self.read().keys().copied().collect();
        keys.sort();
        keys
    }

    /// Forgets a key (and every cached agreement made with it).
    pub fn remove(&self, key: &PublicKey) -> bool {
        self.cache()
            .retain(|(ours, theirs), _| ours != key && theirs != key);
        self.write().remove(key).is_some()
    }

    /// Signs `message` with the Ed25519 key `key` (RFC 8032, pure EdDSA).
    pub fn sign(&self, key: &PublicKey, message: &[u8]) -> Result<[u8; 64], KeyError> {
        match self.read().get(key) {
            Some(Secret::Ed25519(signing)) => Ok(signing.sign(message).to_bytes()),
            Some(Secret::X25519(_)) => Err(KeyError::WrongKeyType(*key, KeyType::X25519)),
            None => Err(KeyError::UnknownKey(*key)),
        }
    }

    /// X25519 agreement of our key `ours` with `peer`.
    pub(super) fn agree(
        &self,
        ours: &PublicKey,
        peer: &PublicKey,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        match self.read().get(ours) {
            Some(Secret::X25519(secret)) => dh(secret, peer),
            Some(Secret::Ed25519(_)) => Err(KeyError::WrongKeyType(*ours, KeyType::Ed25519)),
            None => Err(KeyError::UnknownKey(*ours)),
        }
    }

    /// The static-static agreement between our key and a peer key, as ECDH-1PU's Zs. It is
    /// the same for every message between the two keys, so it is kept in memory (zeroized when
    /// evicted or dropped; never persisted).
    pub(super) fn static_agreement(
        &self,
        ours: &PublicKey,
        peer: &PublicKey,
    ) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        if let Some(z) = self.cache().get(&(*ours, *peer)) {
            self.static_cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(z.clone());
        }
        let z = self.agree(ours, peer)?;
        let mut cache = self.cache();
        if cache.len() >= STATIC_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert((*ours, *peer), z.clone());
        Ok(z)
    }

    /// The storage form of a held key, for the encrypted store.
    pub fn export_for_store(&self, key: &PublicKey) -> Result<StoredKey, KeyError> {
        let keys = self.read();
        let mut bytes = Zeroizing::new(Vec::with_capacity(33));
        match keys.get(key) {
            Some(Secret::Ed25519(signing)) => {
                bytes.push(TAG_ED25519);
                bytes.extend_from_slice(signing.as_bytes());
            }
            Some(Secret::X25519(secret)) => {
                bytes.push(TAG_X25519);
                bytes.extend_from_slice(secret.as_bytes());
            }
            None => return Err(KeyError::UnknownKey(*key)),
        }
        Ok(StoredKey(bytes))
    }

    /// Loads a key from its storage form and returns its public key.
    pub fn import_from_store(&self, stored: &StoredKey) -> Result<PublicKey, KeyError> {
        let bytes = &stored.0;
        if bytes.len() != 33 {
            return Err(KeyError::BadRecord(format!(
                "expected 33 bytes, found {}",
                bytes.len()
            )));
        }
        let mut secret = Zeroizing::new([0u8; 32]);
        secret.copy_from_slice(&bytes[1..]);
        match bytes[0] {
            TAG_ED25519 => Ok(self.import_ed25519(&secret)),
            TAG_X25519 => Ok(self.import_x25519(&secret)),
            other => Err(KeyError::BadRecord(format!("unknown key type tag {other}"))),
        }
    }

    /// The secret of `key` sealed with `sealer` as the record kept at `place` (e.g. the
    /// key's Multikey): ciphertext only, for a store that is not [`crate::store::Store`] (the
    /// agent's shared issuer store). The plaintext exists only in a zeroizing buffer.
    pub fn export_sealed(
        &self,
        key: &PublicKey,
        sealer: &Sealer,
        place: &[u8],
    ) -> Result<Vec<u8>, KeyError> {
        let stored = self.export_for_store(key)?;
        sealer
            .seal(SEALED_KEY_TREE, place, &stored.0)
            .map_err(|e| KeyError::BadRecord(e.to_string()))
    }

    /// Opens what [`KeyRing::export_sealed`] made for `place` and loads the key; returns its
    /// public key. A record sealed under another key or for another place is refused
    /// ([`KeyError::BadRecord`], saying so) and loads nothing.
    pub fn import_sealed(
        &self,
        sealed: &[u8],
        sealer: &Sealer,
        place: &[u8],
    ) -> Result<PublicKey, KeyError> {
        let opened = sealer
            .open(SEALED_KEY_TREE, place, sealed)
            .map_err(|e| KeyError::BadRecord(e.to_string()))?;
        self.import_from_store(&StoredKey(opened))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<PublicKey, Secret>> {
        self.keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<PublicKey, Secret>> {
        self.keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many static-static agreements were served from the cache, and how many pairs it
    /// holds.
    #[cfg(test)]
    fn static_cache_stats(&self) -> (u64, usize) {
        (
            self.static_cache_hits.load(Ordering::Relaxed),
            self.cache().len(),
        )
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, StaticCache> {
        self.static_cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Verifies an Ed25519 signature (RFC 8032, strict: no malleable or small-order encodings).
pub fn verify_ed25519(key: &PublicKey, message: &[u8], signature: &[u8]) -> Result<(), KeyError> {
    verify_with(&prepare(key)?, message, signature)
}

fn prepare(key: &PublicKey) -> Result<ed25519_dalek::VerifyingKey, KeyError> {
    if key.kind != KeyType::Ed25519 {
        return Err(KeyError::WrongKeyType(*key, key.kind));
    }
    let verifying =
        ed25519_dalek::VerifyingKey::from_bytes(&key.bytes).map_err(|_| KeyError::BadSignature)?;
    if verifying.is_weak() {
        return Err(KeyError::BadSignature);
    }
    Ok(verifying)
}

fn verify_with(
    verifying: &ed25519_dalek::VerifyingKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), KeyError> {
    let signature =
        ed25519_dalek::Signature::from_slice(signature).map_err(|_| KeyError::BadSignature)?;
    verifying
        .verify_strict(message, &signature)
        .map_err(|_| KeyError::BadSignature)
}

/// Bound on [`Ed25519Verifier`]'s cache.
const VERIFIER_CACHE_LIMIT: usize = 4096;

/// Verifies Ed25519 signatures, keeping each public key decompressed after first use (the
/// point decompression costs about a fifth of a verification).
#[derive(Default)]
pub struct Ed25519Verifier {
    keys: Mutex<HashMap<[u8; 32], ed25519_dalek::VerifyingKey>>,
}

impl fmt::Debug for Ed25519Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ed25519Verifier")
    }
}

impl Ed25519Verifier {
    /// Same as [`verify_ed25519`].
    pub fn verify(
        &self,
        key: &PublicKey,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), KeyError> {
        let cached = self
            .keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key.bytes)
            .copied();
        let verifying = match cached {
            Some(verifying) if key.kind == KeyType::Ed25519 => verifying,
            _ => {
                let verifying = prepare(key)?;
                let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
                if keys.len() >= VERIFIER_CACHE_LIMIT {
                    keys.clear();
                }
                keys.insert(key.bytes, verifying);
                verifying
            }
        };
        verify_with(&verifying, message, signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_key_opens_only_under_its_sealer_and_place() {
        let ring = KeyRing::new();
        let signing = ring.generate(KeyType::Ed25519);
        let agreement = ring.generate(KeyType::X25519);
        let sealer = Sealer::new(&[3u8; 32]);
        let sealed = ring.export_sealed(&signing, &sealer, b"place").unwrap();
        let secret = ring.export_for_store(&signing).unwrap();
        // Ciphertext only: the secret bytes appear nowhere in what is stored.
        assert!(!sealed.windows(32).any(|w| w == &secret.0[1..]));

        let other = KeyRing::new();
        let wrong_key = other.import_sealed(&sealed, &Sealer::new(&[4u8; 32]), b"place");
        assert!(
            matches!(&wrong_key, Err(KeyError::BadRecord(m)) if m.contains("does not authenticate"))
        );
        let wrong_place = other.import_sealed(&sealed, &sealer, b"elsewhere");
        assert!(
            matches!(&wrong_place, Err(KeyError::BadRecord(m)) if m.contains("does not authenticate"))
        );
        assert!(!other.contains(&signing));

        assert_eq!(
            other.import_sealed(&sealed, &sealer, b"place").unwrap(),
            signing
        );
        let sealed = ring.export_sealed(&agreement, &sealer, b"x").unwrap();
        assert_eq!(
            other.import_sealed(&sealed, &sealer, b"x").unwrap(),
            agreement
        );
        let message = b"signed by the imported key";
        let signature = other.sign(&signing, message).unwrap();
        verify_ed25519(&signing, message, &signature).unwrap();
        assert!(matches!(
            KeyRing::new().export_sealed(&signing, &sealer, b"place"),
            Err(KeyError::UnknownKey(_))
        ));
    }

    #[test]
    fn sign_and_verify_by_reference() {
        let ring = KeyRing::new();
        let key = ring.generate(KeyType::Ed25519);
        let sig = ring.sign(&key, b"message").expect("a held key signs");
        verify_ed25519(&key, b"message", &sig).expect("its own signature verifies");
        assert_eq!(
            verify_ed25519(&key, b"messagE", &sig),
            Err(KeyError::BadSignature)
        );
        let x = ring.generate(KeyType::X25519);
        assert_eq!(
            ring.sign(&x, b"m"),
            Err(KeyError::WrongKeyType(x, KeyType::X25519))
        );
    }

    #[test]
    fn debug_output_holds_no_secret() {
        let ring = KeyRing::new();
        let key = ring.generate(KeyType::Ed25519);
        let stored = ring.export_for_store(&key).unwrap();
        let secret_hex: String = stored.as_store_value()[1..]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let shown = format!("{ring:?} {stored:?}");
        assert!(!shown.contains(&secret_hex));
        assert!(!shown.contains(&format!("{:?}", &stored.as_store_value()[1..])));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn storage_form_round_trips() {
        let ring = KeyRing::new();
        let ed = ring.generate(KeyType::Ed25519);
        let x = ring.generate(KeyType::X25519);
        let other = KeyRing::new();
        for key in [ed, x] {
            let stored = ring.export_for_store(&key).unwrap();
            assert_eq!(other.import_from_store(&stored).unwrap(), key);
        }
        let sig = other.sign(&ed, b"m").unwrap();
        verify_ed25519(&ed, b"m", &sig).unwrap();
    }

    #[test]
    fn static_agreement_is_symmetric_and_cached() {
        let alice = KeyRing::new();
        let bob = KeyRing::new();
        let a = alice.generate(KeyType::X25519);
        let b = bob.generate(KeyType::X25519);
        let z1 = alice.static_agreement(&a, &b).unwrap();
        assert_eq!(alice.static_cache_stats(), (0, 1), "computed, then cached");
        let z2 = bob.static_agreement(&b, &a).unwrap();
        assert_eq!(*z1, *z2);
        assert_eq!(*alice.static_agreement(&a, &b).unwrap(), *z1);
        assert_eq!(
            alice.static_cache_stats(),
            (1, 1),
            "the second agreement is served from the cache"
        );
        assert!(alice.remove(&a));
        assert_eq!(
            alice.static_cache_stats().1,
            0,
            "removing the key evicts its pairs"
        );
        assert!(alice.static_agreement(&a, &b).is_err());
    }

    /// did-key vector seed 00…00: its X25519 key is `W_Vcc7gu…` and the stored private key is
    /// the clamped SHA-512 of the seed.
    #[test]
    fn derived_x25519_matches_the_did_key_vector() {
        let ring = KeyRing::new();
        let ed = ring.import_ed25519(&Zeroizing::new([0u8; 32]));
        let x = ring.derive_x25519(&ed).unwrap();
        assert_eq!(
            crate::encoding::b64u_encode(x.bytes),
            "W_Vcc7guviK-gPNDBmevVw-uJVamQV5rMNQGUwCqlH0"
        );
        assert_eq!(Some(x), ed.ed25519_to_x25519());
    }

    #[test]
    fn low_order_points_are_refused() {
        let ring = KeyRing::new();
        let ours = ring.generate(KeyType::X25519);
        let zero = PublicKey::x25519([0u8; 32]);
        assert_eq!(
            ring.agree(&ours, &zero),
            Err(KeyError::NonContributory(zero))
        );
    }
}

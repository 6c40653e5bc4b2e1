//! The encrypted record store: named trees of records on `sled`, every value sealed with
//! XChaCha20-Poly1305 under a random 256-bit data key that a platform [`KeyProtector`] or a
//! passphrase (Argon2id, RFC 9106) wraps. No record id, value or key is in plaintext on disk.
//!
//! A store folder holds `header.json` (how the data key is wrapped, its Argon2id
//! [`Argon2Params`] when a passphrase wraps it, and a key check value) and `db/` (sled). The header is a file of its own, not a sled tree, so that opening an existing
//! store reads it, and checks the key, before sled is opened: a wrong passphrase or protector
//! changes nothing on disk.
//!
//! Record format, version 1:
//! * sled key: the *blinded id* HMAC-SHA256(index key, tree ‖ 0x00 ‖ id), where the index key
//!   is HMAC-SHA256(data key, "lanyard store index key v1"). Ids can be DIDs; they never
//!   reach the disk in plaintext.
//! * sled value: 0x01 (version) ‖ 24-byte random nonce ‖ XChaCha20-Poly1305(data key,
//!   plaintext, AAD), where the plaintext is len(id) as u32 big-endian ‖ id ‖ value and the
//!   AAD is "lanyard record v1" ‖ 0x00 ‖ tree ‖ 0x00 ‖ blinded id. A record copied to another
//!   tree or id does not authenticate; after decrypting, the id inside must blind to the key
//!   it was found under.
//!
//! Durability: [`Store::put`], [`Store::delete`] and [`Store::batch`] call sled's `flush`
//! (write the log, `fsync`) before returning, so a write acknowledged with `Ok` survives a
//! crash or a `kill -9`. [`Store::put_unflushed`] leaves that to a later [`Store::flush`].
//!
//! The key ring's secrets persist here ([`Store::save_key`], [`Store::load_keys`]), sealed
//! like any record. [`Sealer`] is the record sealing alone, for a store of another shape to
//! reuse (the agent's issuer store), and [`open_sled`] opens a sled database the way this
//! store does.

mod error;
mod header;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;
use zeroize::Zeroizing;

pub use error::{ProtectorError, StoreError};
pub use header::Argon2Params;
use header::Header;

use crate::keys::{KeyRing, PublicKey, StoredKey};

/// Version byte at the start of every sealed record; "v1" in the AAD label binds it.
const RECORD_VERSION: u8 = 1;
const RECORD_AAD_LABEL: &[u8] = b"lanyard record v1\0";
const INDEX_KEY_LABEL: &[u8] = b"lanyard store index key v1";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Tree names starting with this are the store's own (sled's default tree is one).
const RESERVED_PREFIX: &str = "__";
const MAX_TREE_LEN: usize = 64;
const MAX_ID_LEN: usize = 1024;
/// The tree that holds the key ring's secrets.
const KEYS_TREE: &str = "keys";
/// How long [`open_sled`] waits for a lock that a just-dropped `Db` still holds.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Wraps and unwraps the store's data key with a key the platform keeps (the iOS Keychain or
/// Secure Enclave, the Android Keystore). Implemented in Swift/Kotlin behind the FFI.
pub trait KeyProtector: Send + Sync {
    /// Wraps the store's data key; the result is kept in the store's header.
    fn wrap(&self, data_key: &[u8]) -> Result<Vec<u8>, ProtectorError>;
    /// Returns the data key from what [`KeyProtector::wrap`] produced.
    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, ProtectorError>;
}

/// How to unlock an existing store, or protect a new one.
pub enum Unlock {
    /// A key-encryption key from the passphrase through Argon2id. `params` are used when the
    /// store is created; an existing store uses the parameters in its header.
    Passphrase {
        /// The passphrase (zeroized on drop).
        passphrase: Zeroizing<String>,
        /// The Argon2id cost for a new store.
        params: Argon2Params,
    },
    /// The platform keystore wraps the data key.
    Protector(Arc<dyn KeyProtector>),
}

impl Unlock {
    /// A passphrase with the default (OWASP) Argon2id parameters.
    pub fn passphrase(passphrase: impl Into<String>) -> Unlock {
        Unlock::Passphrase {
            passphrase: Zeroizing::new(passphrase.into()),
            params: Argon2Params::default(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Unlock::Passphrase { .. } => "a passphrase",
            Unlock::Protector(_) => "a platform key protector",
        }
    }
}

impl fmt::Debug for Unlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Unlock({}, [redacted])", self.kind())
    }
}

/// A record read back: its id and its value.
pub type Record = (String, Zeroizing<Vec<u8>>);

/// The record sealing of the store, for other stores to reuse (the agent's issuer store seals
/// its values with it): XChaCha20-Poly1305 under a 256-bit data key, a sealed record being
/// 0x01 (version) ‖ 24-byte random nonce ‖ ciphertext and tag, with the AAD
/// "lanyard record v1" ‖ 0x00 ‖ tree ‖ 0x00 ‖ place, where `place` is the key the record is
/// stored under. A record copied to another tree or place does not open. The cipher zeroizes
/// the key when dropped; `Debug` shows nothing of it.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

impl Sealer {
    /// A sealer under `data_key` (XChaCha20-Poly1305).
    pub fn new(data_key: &[u8; KEY_LEN]) -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(data_key.into()),
        }
    }

    fn aad(tree: &str, place: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(RECORD_AAD_LABEL.len() + tree.len() + 1 + place.len());
        aad.extend_from_slice(RECORD_AAD_LABEL);
        aad.extend_from_slice(tree.as_bytes());
        aad.push(0);
        aad.extend_from_slice(place);
        aad
    }

    /// Seals `plaintext` as the record stored under `place` in `tree`.
    pub fn seal(&self, tree: &str, place: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &Self::aad(tree, place),
                },
            )
            .map_err(|_| StoreError::TooLarge {
                tree: tree.to_string(),
                len: plaintext.len(),
            })?;
        let mut record = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        record.push(RECORD_VERSION);
        record.extend_from_slice(&nonce);
        record.extend_from_slice(&sealed);
        Ok(record)
    }

    /// Opens the record found under `place` in `tree`; [`StoreError::Corrupted`] naming the
    /// tree when it is not one, or was sealed for another tree, place or key.
    pub fn open(
        &self,
        tree: &str,
        place: &[u8],
        record: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let corrupted = |reason| StoreError::Corrupted {
            tree: tree.to_string(),
            reason,
        };
        let (version, rest) = record
            .split_first()
            .ok_or_else(|| corrupted("it is empty"))?;
        if *version != RECORD_VERSION {
            return Err(corrupted("unknown record version"));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(corrupted("it is too short"));
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &Self::aad(tree, place),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| corrupted("it does not authenticate under its tree and place"))
    }
}

/// An open encrypted store. It holds the data key only inside its cipher, which zeroizes the
/// key when the store is dropped; `Debug` shows the folder and nothing else.
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    sealer: Sealer,
    index_key: Zeroizing<[u8; KEY_LEN]>,
    trees: Mutex<HashMap<String, sled::Tree>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// HMAC-SHA256 under a 32-byte key. The key is zero-padded to SHA-256's 64-byte block, which
/// is exactly what HMAC does with a short key (RFC 2104 section 2), so the fixed-size
/// constructor applies and nothing can fail.
fn hmac_sha256(key: &[u8; KEY_LEN], parts: &[&[u8]]) -> [u8; 32] {
    let mut block = Zeroizing::new([0u8; 64]);
    block[..KEY_LEN].copy_from_slice(key);
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new(hmac::digest::Key::<Hmac<Sha256>>::from_slice(&block[..]));
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn check_tree(tree: &str) -> Result<(), StoreError> {
    let invalid = |reason| StoreError::InvalidName {
        what: "tree",
        value: tree.chars().take(80).collect(),
        reason,
    };
    if tree.is_empty() {
        return Err(invalid("it is empty"));
    }
    if tree.len() > MAX_TREE_LEN {
        return Err(invalid("it is longer than 64 bytes"));
    }
    if tree.starts_with(RESERVED_PREFIX) {
        return Err(invalid("names starting with __ are the store's own"));
    }
    if !tree
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(invalid("only a-z, 0-9, _ and - are allowed"));
    }
    Ok(())
}

fn check_id(id: &str) -> Result<(), StoreError> {
    let invalid = |reason| StoreError::InvalidName {
        what: "record id",
        value: id.chars().take(80).collect(),
        reason,
    };
    if id.is_empty() {
        return Err(invalid("it is empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(invalid("it is longer than 1024 bytes"));
    }
    Ok(())
}

/// The folder's sled database, with the settings every opener uses.
fn open_db(folder: &Path) -> Result<sled::Db, StoreError> {
    Ok(open_sled(
        sled::Config::new()
            .path(folder.join("db"))
            .mode(sled::Mode::HighThroughput),
    )?)
}

fn header_exists(header_path: &Path) -> Result<bool, StoreError> {
    header_path.try_exists().map_err(|e| StoreError::BadHeader {
        path: header_path.display().to_string(),
        reason: format!("cannot be looked up: {e}"),
    })
}

/// Whether any tree of `db` holds a record.
fn holds_records(db: &sled::Db) -> Result<bool, StoreError> {
    for name in db.tree_names() {
        if !db.open_tree(name)?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A `Write` sink whose buffer is zeroized on drop, including every buffer it outgrows.
struct ZeroizingWriter(Zeroizing<Vec<u8>>);

impl std::io::Write for ZeroizingWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let needed = self.0.len().saturating_add(bytes.len());
        if needed > self.0.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(2 * self.0.capacity())));
            bigger.extend_from_slice(&self.0);
            self.0 = bigger;
        }
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Store {
    /// Opens the store in the folder `path`, creating it, with a new random data key, when
    /// the folder holds none.
    ///
    /// Opening an existing store reads the header and checks the key before anything else:
    /// a wrong passphrase ([`StoreError::WrongPassphrase`]), a failing or wrong protector, or
    /// an [`Unlock`] of the other kind changes nothing on disk. Creating takes sled's lock
    /// first, so two openers of a new folder cannot both write a header.
    pub fn open(path: &Path, unlock: Unlock) -> Result<Store, StoreError> {
        let header_path = path.join(header::FILE);
        if header_exists(&header_path)? {
            let data_key = Header::read(&header_path)?.unwrap_data_key(&unlock)?;
            let db = open_db(path)?;
            return Ok(Store::with_key(path, db, &data_key));
        }
        std::fs::create_dir_all(path)
            .map_err(|e| StoreError::Io(format!("creating {}: {e}", path.display())))?;
        let db = open_db(path)?;
        // Another opener may have created the store before this one took the lock.
        if header_exists(&header_path)? {
            let data_key = Header::read(&header_path)?.unwrap_data_key(&unlock)?;
            return Ok(Store::with_key(path, db, &data_key));
        }
        // A database without records is a creation interrupted before its header was
        // written; with records, the header that could read them is gone.
        if holds_records(&db)? {
            return Err(StoreError::BadHeader {
                path: header_path.display().to_string(),
                reason: "missing, but the folder's database holds records".into(),
            });
        }
        let mut data_key = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(&mut data_key[..]);
        header::write(&header_path, &header::create(&data_key, &unlock)?)?;
        Ok(Store::with_key(path, db, &data_key))
    }

    fn with_key(path: &Path, db: sled::Db, data_key: &[u8; KEY_LEN]) -> Store {
        Store {
            path: path.to_path_buf(),
            db,
            sealer: Sealer::new(data_key),
            index_key: Zeroizing::new(hmac_sha256(data_key, &[INDEX_KEY_LABEL])),
            trees: Mutex::new(HashMap::new()),
        }
    }

    /// The sled tree for `tree`, created if it does not exist yet.
    fn tree(&self, tree: &str) -> Result<sled::Tree, StoreError> {
        check_tree(tree)?;
        let mut trees = self.trees.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(handle) = trees.get(tree) {
            return Ok(handle.clone());
        }
        let handle = self.db.open_tree(tree)?;
        trees.insert(tree.to_string(), handle.clone());
        Ok(handle)
    }

    /// The sled tree for `tree` if it exists: reading never creates a tree.
    fn existing_tree(&self, tree: &str) -> Result<Option<sled::Tree>, StoreError> {
        check_tree(tree)?;
        let cached = self
            .trees
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tree)
            .cloned();
        if cached.is_some() {
            return Ok(cached);
        }
        if self
            .db
            .tree_names()
            .iter()
            .any(|name| name == tree.as_bytes())
        {
            return self.tree(tree).map(Some);
        }
        Ok(None)
    }

    /// The sled key of a record: HMAC-SHA256(index key, tree ‖ 0x00 ‖ id).
    fn blind(&self, tree: &str, id: &str) -> [u8; 32] {
        hmac_sha256(&self.index_key, &[tree.as_bytes(), &[0], id.as_bytes()])
    }

    /// Seals `id` and `value` as the record stored under `blinded` in `tree`.
    fn seal(
        &self,
        tree: &str,
        blinded: &[u8],
        id: &str,
        value: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let too_large = || StoreError::TooLarge {
            tree: tree.to_string(),
            len: value.len(),
        };
        // `check_id` keeps ids to 1024 bytes, so the length fits a u32.
        let id_len = u32::try_from(id.len()).map_err(|_| too_large())?;
        let len = 4usize
            .checked_add(id.len())
            .and_then(|n| n.checked_add(value.len()))
            .ok_or_else(too_large)?;
        let mut plaintext = Zeroizing::new(Vec::with_capacity(len));
        plaintext.extend_from_slice(&id_len.to_be_bytes());
        plaintext.extend_from_slice(id.as_bytes());
        plaintext.extend_from_slice(value);
        self.sealer.seal(tree, blinded, &plaintext)
    }

    /// Opens the raw record found under `blinded` in `tree`; returns its id and value.
    fn open_record(&self, tree: &str, blinded: &[u8], record: &[u8]) -> Result<Record, StoreError> {
        let corrupted = |reason| StoreError::Corrupted {
            tree: tree.to_string(),
            reason,
        };
        let plaintext = self.sealer.open(tree, blinded, record)?;
        let (id_len, rest) = plaintext
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupted("it holds no id"))?;
        let id_len = usize::try_from(u32::from_be_bytes(*id_len))
            .map_err(|_| corrupted("its id length is out of range"))?;
        if id_len > rest.len() {
            return Err(corrupted("its id length is out of range"));
        }
        let (id, value) = rest.split_at(id_len);
        let id = std::str::from_utf8(id)
            .map_err(|_| corrupted("its id is not UTF-8"))?
            .to_string();
        if self.blind(tree, &id)[..] != *blinded {
            return Err(corrupted("its id does not match its place"));
        }
        Ok((id, Zeroizing::new(value.to_vec())))
    }

    /// Writes a record, replacing any with the same id, and flushes it to disk (`fsync`)
    /// before returning: `Ok` means durable.
    pub fn put(&self, tree: &str, id: &str, value: &[u8]) -> Result<(), StoreError> {
        self.put_unflushed(tree, id, value)?;
        self.flush()
    }

    /// Writes a record without waiting for the disk, for bulk loads; call [`Store::flush`]
    /// before telling anyone the records are saved.
    pub fn put_unflushed(&self, tree: &str, id: &str, value: &[u8]) -> Result<(), StoreError> {
        check_id(id)?;
        let handle = self.tree(tree)?;
        let blinded = self.blind(tree, id);
        handle.insert(blinded, self.seal(tree, &blinded, id, value)?)?;
        Ok(())
    }

    /// Writes every pending change to disk (sled's log, then `fsync`).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Reads a record: `Ok(None)` when there is none, [`StoreError::Corrupted`] naming the
    /// tree when it does not authenticate or belongs elsewhere.
    pub fn get(&self, tree: &str, id: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        check_id(id)?;
        let Some(handle) = self.existing_tree(tree)? else {
            return Ok(None);
        };
        let blinded = self.blind(tree, id);
        match handle.get(blinded)? {
            None => Ok(None),
            Some(record) => Ok(Some(self.open_record(tree, &blinded, &record)?.1)),
        }
    }

    /// Whether a record with this id exists (without opening it).
    pub fn contains(&self, tree: &str, id: &str) -> Result<bool, StoreError> {
        check_id(id)?;
        match self.existing_tree(tree)? {
            None => Ok(false),
            Some(handle) => Ok(handle.contains_key(self.blind(tree, id))?),
        }
    }

    /// Deletes a record and flushes before returning; says whether it existed.
    pub fn delete(&self, tree: &str, id: &str) -> Result<bool, StoreError> {
        check_id(id)?;
        let Some(handle) = self.existing_tree(tree)? else {
            return Ok(false);
        };
        let existed = handle.remove(self.blind(tree, id))?.is_some();
        self.flush()?;
        Ok(existed)
    }

    /// Every record of a tree, each opened on its own: a corrupted record is an `Err` in its
    /// place and the others still read. The outer error is the database failing.
    pub fn scan(&self, tree: &str) -> Result<Vec<Result<Record, StoreError>>, StoreError> {
        let Some(handle) = self.existing_tree(tree)? else {
            return Ok(Vec::new());
        };
        let mut records = Vec::new();
        for entry in handle.iter() {
            let (key, record) = entry?;
            records.push(self.open_record(tree, &key, &record));
        }
        Ok(records)
    }

    /// Every readable record of a tree, in no meaningful order; corrupted records are
    /// skipped ([`Store::scan`] reports them).
    pub fn list(&self, tree: &str) -> Result<Vec<Record>, StoreError> {
        Ok(self
            .scan(tree)?
            .into_iter()
            .filter_map(Result::ok)
            .collect())
    }

    /// Applies writes (`Some(value)`) and deletes (`None`) to one tree atomically, then
    /// flushes: after `Ok` all of them are durable, after a crash either all or none are.
    /// An invalid id refuses the whole batch.
    pub fn batch(&self, tree: &str, writes: &[(&str, Option<&[u8]>)]) -> Result<(), StoreError> {
        let handle = self.tree(tree)?;
        let mut batch = sled::Batch::default();
        for (id, value) in writes {
            check_id(id)?;
            let blinded = self.blind(tree, id);
            match value {
                Some(value) => batch.insert(&blinded, self.seal(tree, &blinded, id, value)?),
                None => batch.remove(&blinded),
            }
        }
        handle.apply_batch(batch)?;
        self.flush()
    }

    /// Writes a value as JSON, durably (as [`Store::put`]). The JSON is zeroized after
    /// sealing.
    pub fn put_json<T: serde::Serialize>(
        &self,
        tree: &str,
        id: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let mut json = ZeroizingWriter(Zeroizing::new(Vec::new()));
        serde_json::to_writer(&mut json, value).map_err(|e| StoreError::Encode {
            tree: tree.to_string(),
            reason: e.to_string(),
        })?;
        self.put(tree, id, &json.0)
    }

    /// Reads a JSON value; [`StoreError::Decode`] when the record is not a `T`.
    pub fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        tree: &str,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        match self.get(tree, id)? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| StoreError::Decode {
                        tree: tree.to_string(),
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// Persists a secret key of `ring` (sealed like every record), durably.
    pub fn save_key(&self, ring: &KeyRing, key: &PublicKey) -> Result<(), StoreError> {
        let stored = ring.export_for_store(key).map_err(|e| StoreError::Decode {
            tree: KEYS_TREE.to_string(),
            reason: e.to_string(),
        })?;
        self.put(KEYS_TREE, &key_id(key), stored.as_store_value())
    }

    /// Loads every persisted key into `ring`; returns how many were loaded.
    pub fn load_keys(&self, ring: &KeyRing) -> Result<usize, StoreError> {
        let mut loaded = 0;
        for record in self.scan(KEYS_TREE)? {
            let (id, bytes) = record?;
            let public = ring
                .import_from_store(&StoredKey::from_store_value(bytes))
                .map_err(|e| StoreError::Decode {
                    tree: KEYS_TREE.to_string(),
                    reason: e.to_string(),
                })?;
            if key_id(&public) != id {
                return Err(StoreError::Corrupted {
                    tree: KEYS_TREE.to_string(),
                    reason: "a key is stored under another key's id",
                });
            }
            loaded += 1;
        }
        Ok(loaded)
    }

    /// Forgets a persisted key, durably.
    pub fn delete_key(&self, key: &PublicKey) -> Result<bool, StoreError> {
        self.delete(KEYS_TREE, &key_id(key))
    }
}

/// Opens a sled database, waiting up to two seconds for its file lock: a `Db` dropped a moment
/// ago in this process releases the lock from a background thread, so an immediate reopen (an
/// app coming back to the foreground, a test) can find it still held.
pub fn open_sled(config: sled::Config) -> Result<sled::Db, sled::Error> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            // sled reports the held lock as WouldBlock or as Other with this message.
            Err(sled::Error::Io(e))
                if (e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock"))
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// The record id of a key: its type and public key.
fn key_id(key: &PublicKey) -> String {
    format!("{:?}:{}", key.kind, crate::encoding::b64u_encode(key.bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn hmac_with_a_padded_key_is_hmac_with_the_key() {
        let key = [7u8; KEY_LEN];
        let mut reference = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("any key length");
        reference.update(b"tree\0id");
        let expected: [u8; 32] = reference.finalize().into_bytes().into();
        assert_eq!(
            hmac_sha256(&key, &[b"tree", &[0], b"id"]),
            expected,
            "the zero-padded key must give the RFC 2104 HMAC"
        );
    }

    #[test]
    fn names_are_checked() {
        for tree in ["credentials", "a", "x-1_y", &"a".repeat(64)] {
            assert!(check_tree(tree).is_ok(), "tree {tree:?} should be accepted");
        }
        for tree in ["", "__header", "Upper", "a/b", "é", &"a".repeat(65)] {
            assert!(check_tree(tree).is_err(), "tree {tree:?} should be refused");
        }
        assert!(
            check_id("did:peer:2.Ez6LS\0x").is_ok(),
            "any non-empty id is accepted"
        );
        assert!(
            check_id(&"i".repeat(1024)).is_ok(),
            "1024 bytes is the limit"
        );
        assert!(check_id("").is_err(), "an empty id is refused");
        assert!(
            check_id(&"i".repeat(1025)).is_err(),
            "1025 bytes is too long"
        );
    }

    #[test]
    fn the_zeroizing_writer_keeps_every_byte() {
        let mut writer = ZeroizingWriter(Zeroizing::new(Vec::new()));
        for chunk in 0..100u8 {
            writer.write_all(&[chunk; 37]).expect("writing to memory");
        }
        assert_eq!(writer.0.len(), 3700, "every chunk is kept");
        assert!(
            writer
                .0
                .chunks(37)
                .enumerate()
                .all(|(i, c)| c.iter().all(|&b| b as usize == i)),
            "chunks are kept in order"
        );
    }
}

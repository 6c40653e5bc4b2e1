//! The encrypted record store: named trees of records on `sled`, every value sealed with
//! XChaCha20-Poly1305 under a random 256-bit data key, with the tree and the record's blinded
//! id as associated data so that records cannot be swapped. The data key is wrapped by a
//! platform [`KeyProtector`] or by a passphrase key from Argon2id (RFC 9106).
//!
//! On disk, a store folder holds `header.json` (how the data key is wrapped; nothing secret)
//! and `db/` (sled). Record ids never appear in plaintext: a record's sled key is
//! HMAC-SHA256(index key, tree ‖ 0 ‖ id), and the id travels inside the sealed value.
//! Every write that returns `Ok` has been flushed to disk (`fsync`).

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

pub use header::Argon2Params;
use header::Header;

use crate::keys::{KeyRing, PublicKey, StoredKey};

/// Version byte at the start of every sealed record.
const RECORD_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Tree names starting with this are the store's own.
const RESERVED_PREFIX: &str = "__";
const MAX_TREE_LEN: usize = 64;
const MAX_ID_LEN: usize = 1024;
/// The tree that holds the key ring's secrets.
const KEYS_TREE: &str = "keys";

/// Wraps and unwraps the store's data key with a key the platform keeps (the iOS Keychain or
/// Secure Enclave, the Android Keystore). Implemented in Swift/Kotlin behind the FFI.
pub trait KeyProtector: Send + Sync {
    /// Wraps the data key; the result is kept in the store's header.
    fn wrap(&self, data_key: &[u8]) -> Result<Vec<u8>, ProtectorError>;
    /// Returns the data key from what [`KeyProtector::wrap`] produced.
    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, ProtectorError>;
}

/// A platform keystore failure, with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtectorError(pub String);

/// How to unlock (or, for a new store, protect) the data key.
pub enum Unlock {
    Passphrase {
        passphrase: Zeroizing<String>,
        params: Argon2Params,
    },
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

/// What can go wrong with the store. A message names the tree, the field or the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the passphrase does not unlock this store")]
    WrongPassphrase,
    #[error("the platform key protector failed: {0}")]
    ProtectorFailed(String),
    #[error("the platform key protector returned a key that does not unlock this store")]
    ProtectorWrongKey,
    #[error("this store is protected by {store}, but it was opened with {given}")]
    UnlockMismatch {
        store: &'static str,
        given: &'static str,
    },
    #[error("store header {path}: {reason}")]
    BadHeader { path: String, reason: String },
    #[error("record in tree {tree:?} is corrupted or was swapped from another place: {reason}")]
    Corrupted { tree: String, reason: &'static str },
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("Argon2id parameters too weak: {0}")]
    WeakParams(String),
    #[error("record in tree {tree:?} does not hold the expected data: {reason}")]
    Decode { tree: String, reason: String },
    #[error("storage I/O failed: {0}")]
    Io(String),
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        StoreError::Io(error.to_string())
    }
}

/// A record read back: its id and its value.
pub type Record = (String, Zeroizing<Vec<u8>>);

/// An open encrypted store.
pub struct Store {
    path: PathBuf,
    db: sled::Db,
    cipher: XChaCha20Poly1305,
    index_key: Zeroizing<[u8; 32]>,
    trees: Mutex<HashMap<String, sled::Tree>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
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
        return Err(invalid("empty"));
    }
    if tree.len() > MAX_TREE_LEN {
        return Err(invalid("longer than 64 bytes"));
    }
    if tree.starts_with(RESERVED_PREFIX) {
        return Err(invalid("names starting with __ are reserved"));
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
        return Err(invalid("empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(invalid("longer than 1024 bytes"));
    }
    Ok(())
}

impl Store {
    /// Opens the store in `path`, creating it (with a new random data key) when the folder
    /// holds none. Opening an existing store writes nothing until the data key is unwrapped
    /// and checked: a wrong passphrase or protector changes nothing on disk.
    pub fn open(path: &Path, unlock: Unlock) -> Result<Store, StoreError> {
        let header_path = path.join(header::FILE);
        let data_key = if header_path.exists() {
            let header = Header::read(&header_path)?;
            header.unwrap_data_key(&unlock)?
        } else {
            if path.join("db").exists() {
                return Err(StoreError::BadHeader {
                    path: header_path.display().to_string(),
                    reason: "missing, but the folder holds a database".into(),
                });
            }
            std::fs::create_dir_all(path).map_err(|e| StoreError::Io(e.to_string()))?;
            let mut data_key = Zeroizing::new([0u8; 32]);
            OsRng.fill_bytes(&mut data_key[..]);
            Header::create(&data_key, &unlock)?.write(&header_path)?;
            data_key
        };
        let db = open_sled(
            sled::Config::new()
                .path(path.join("db"))
                .mode(sled::Mode::HighThroughput),
        )?;
        let index_key =
            Zeroizing::new(hmac_sha256(&data_key[..], &[b"lanyard store index key v1"]));
        Ok(Store {
            path: path.to_path_buf(),
            db,
            cipher: XChaCha20Poly1305::new(data_key[..].into()),
            index_key,
            trees: Mutex::new(HashMap::new()),
        })
    }

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

    /// The sled key of a record: HMAC-SHA256(index key, tree ‖ 0 ‖ id).
    fn blind(&self, tree: &str, id: &str) -> [u8; 32] {
        hmac_sha256(&self.index_key[..], &[tree.as_bytes(), &[0], id.as_bytes()])
    }

    fn aad(tree: &str, blinded: &[u8]) -> Vec<u8> {
        let mut aad = Vec::with_capacity(24 + tree.len() + blinded.len());
        aad.extend_from_slice(b"lanyard record v1\0");
        aad.extend_from_slice(tree.as_bytes());
        aad.push(0);
        aad.extend_from_slice(blinded);
        aad
    }

    fn seal(&self, tree: &str, blinded: &[u8], id: &str, value: &[u8]) -> Vec<u8> {
        let mut plaintext = Zeroizing::new(Vec::with_capacity(4 + id.len() + value.len()));
        plaintext.extend_from_slice(&(id.len() as u32).to_be_bytes());
        plaintext.extend_from_slice(id.as_bytes());
        plaintext.extend_from_slice(value);
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &Self::aad(tree, blinded),
                },
            )
            .expect("XChaCha20-Poly1305 seals any record under 256 GiB");
        let mut record = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        record.push(RECORD_VERSION);
        record.extend_from_slice(&nonce);
        record.extend_from_slice(&sealed);
        record
    }

    /// Opens a raw record found under `blinded`; returns its id and value.
    fn open_record(&self, tree: &str, blinded: &[u8], record: &[u8]) -> Result<Record, StoreError> {
        let corrupted = |reason| StoreError::Corrupted {
            tree: tree.to_string(),
            reason,
        };
        if record.len() < 1 + NONCE_LEN + TAG_LEN {
            return Err(corrupted("too short"));
        }
        if record[0] != RECORD_VERSION {
            return Err(corrupted("unknown record version"));
        }
        let plaintext = Zeroizing::new(
            self.cipher
                .decrypt(
                    XNonce::from_slice(&record[1..1 + NONCE_LEN]),
                    Payload {
                        msg: &record[1 + NONCE_LEN..],
                        aad: &Self::aad(tree, blinded),
                    },
                )
                .map_err(|_| corrupted("it does not authenticate"))?,
        );
        let id_len = plaintext
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| corrupted("no id"))?;
        let id = plaintext
            .get(4..4 + id_len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or_else(|| corrupted("bad id"))?
            .to_string();
        if self.blind(tree, &id)[..] != *blinded {
            return Err(corrupted("its id does not match its place"));
        }
        let value = Zeroizing::new(plaintext[4 + id_len..].to_vec());
        Ok((id, value))
    }

    /// Writes a record and flushes it to disk before returning.
    pub fn put(&self, tree: &str, id: &str, value: &[u8]) -> Result<(), StoreError> {
        self.put_unflushed(tree, id, value)?;
        self.flush()
    }

    /// Writes a record without waiting for the disk; call [`Store::flush`] after a bulk load.
    pub fn put_unflushed(&self, tree: &str, id: &str, value: &[u8]) -> Result<(), StoreError> {
        check_id(id)?;
        let handle = self.tree(tree)?;
        let blinded = self.blind(tree, id);
        handle.insert(blinded, self.seal(tree, &blinded, id, value))?;
        Ok(())
    }

    /// Writes every pending change to disk (`fsync`).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Reads a record; `Ok(None)` when there is none, an error naming the tree when it does
    /// not authenticate.
    pub fn get(&self, tree: &str, id: &str) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
        check_id(id)?;
        let handle = self.tree(tree)?;
        let blinded = self.blind(tree, id);
        match handle.get(blinded)? {
            None => Ok(None),
            Some(record) => Ok(Some(self.open_record(tree, &blinded, &record)?.1)),
        }
    }

    pub fn contains(&self, tree: &str, id: &str) -> Result<bool, StoreError> {
        check_id(id)?;
        Ok(self.tree(tree)?.contains_key(self.blind(tree, id))?)
    }

    /// Deletes a record, durably; returns whether it existed.
    pub fn delete(&self, tree: &str, id: &str) -> Result<bool, StoreError> {
        check_id(id)?;
        let existed = self.tree(tree)?.remove(self.blind(tree, id))?.is_some();
        self.flush()?;
        Ok(existed)
    }

    /// Every record of a tree, each opened on its own: a corrupted record is an `Err` in its
    /// place and the others still read.
    pub fn scan(&self, tree: &str) -> Result<Vec<Result<Record, StoreError>>, StoreError> {
        let handle = self.tree(tree)?;
        let mut records = Vec::new();
        for entry in handle.iter() {
            let (key, record) = entry?;
            records.push(self.open_record(tree, &key, &record));
        }
        Ok(records)
    }

    /// Every readable record of a tree (corrupted ones skipped; [`Store::scan`] reports them).
    pub fn list(&self, tree: &str) -> Result<Vec<Record>, StoreError> {
        Ok(self
            .scan(tree)?
            .into_iter()
            .filter_map(Result::ok)
            .collect())
    }

    /// Applies several writes (`Some` value) and deletes (`None`) to one tree atomically, and
    /// flushes.
    pub fn batch(&self, tree: &str, writes: &[(&str, Option<&[u8]>)]) -> Result<(), StoreError> {
        let handle = self.tree(tree)?;
        let mut batch = sled::Batch::default();
        for (id, value) in writes {
            check_id(id)?;
            let blinded = self.blind(tree, id);
            match value {
                Some(value) => batch.insert(&blinded, self.seal(tree, &blinded, id, value)),
                None => batch.remove(&blinded),
            }
        }
        handle.apply_batch(batch)?;
        self.flush()
    }

    /// Writes a value as JSON.
    pub fn put_json<T: serde::Serialize>(
        &self,
        tree: &str,
        id: &str,
        value: &T,
    ) -> Result<(), StoreError> {
        let bytes = Zeroizing::new(serde_json::to_vec(value).map_err(|e| StoreError::Decode {
            tree: tree.to_string(),
            reason: e.to_string(),
        })?);
        self.put(tree, id, &bytes)
    }

    /// Reads a JSON value.
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
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
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

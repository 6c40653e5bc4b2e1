//! The mediator's identity: a `did:peer:2` whose keys live in `wallet-core`'s encrypted store
//! under the data folder. The store's data key is wrapped by a key file (`agent.key`, mode
//! 0600) beside it, the server equivalent of a phone's platform keystore: point
//! `LANYARD_DATA_DIR` at an encrypted volume or replace the protector with a KMS in
//! production.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use lanyard_protocol::did::{
    did_peer_2, multikey_decode, multikey_encode, PeerDidSpec, PeerService,
};
use lanyard_protocol::keys::{KeyRing, KeyType, PublicKey};
use lanyard_protocol::store::{KeyProtector, ProtectorError, Store, StoreError, Unlock};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::admin::{AdminToken, AdminTokenError};

/// Why the agent's identity (or the admin token kept beside it) cannot be loaded or created.
/// Each message names the file or record at fault.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file of the data folder cannot be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file (or folder).
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The key file does not hold a 32-byte key.
    #[error("{} is not a 32-byte key", .0.display())]
    KeyFile(PathBuf),
    /// The encrypted identity store failed at `what`.
    #[error("{what}: {source}")]
    Store {
        /// What was being done ("identity store", "identity keys", ...).
        what: &'static str,
        /// The store's error.
        source: StoreError,
    },
    /// The store records a mediator key it does not hold.
    #[error("the mediator's key {0} is not in the store")]
    MissingKey(String),
    /// The store holds several keys of a kind and no record of which is the mediator's.
    #[error("the identity store has several {0:?} keys and no record of the mediator's")]
    AmbiguousKeys(KeyType),
    /// The issuer store's data key, as kept, is not 32 bytes.
    #[error("the issuer store's key in the identity store is not 32 bytes")]
    IssuerStoreKey,
    /// The admin token file holds no usable token.
    #[error("{0} (delete the file for a new random one, or set LANYARD_ADMIN_TOKEN)")]
    AdminTokenFile(AdminTokenError),
    /// A new admin token was refused (it never is: it is random and long).
    #[error(transparent)]
    AdminToken(AdminTokenError),
}

/// An I/O failure on `path`.
fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// A failure of the identity store at `what`.
fn store_error(what: &'static str) -> impl FnOnce(StoreError) -> IdentityError {
    move |source| IdentityError::Store { what, source }
}

/// Wraps the identity store's data key with a 256-bit key kept in a file.
struct FileKeyProtector {
    key: Zeroizing<[u8; 32]>,
}

impl FileKeyProtector {
    fn open(path: &Path) -> Result<FileKeyProtector, IdentityError> {
        let mut key = Zeroizing::new([0u8; 32]);
        if path.exists() {
            let bytes = Zeroizing::new(std::fs::read(path).map_err(file_error(path))?);
            if bytes.len() != 32 {
                return Err(IdentityError::KeyFile(path.to_path_buf()));
            }
            key.copy_from_slice(&bytes);
        } else {
            OsRng.fill_bytes(&mut key[..]);
            write_private(path, &key[..])?;
        }
        Ok(FileKeyProtector { key })
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key[..].into())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(file_error(path))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(file_error(path))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), IdentityError> {
    std::fs::write(path, bytes).map_err(file_error(path))
}

impl KeyProtector for FileKeyProtector {
    fn wrap(&self, data_key: &[u8]) -> Result<Vec<u8>, ProtectorError> {
        let mut nonce = [0u8; 24];
        OsRng.fill_bytes(&mut nonce);
        let mut out = nonce.to_vec();
        out.extend(
            self.cipher()
                .encrypt(XNonce::from_slice(&nonce), data_key)
                .map_err(|_| ProtectorError("wrapping the data key failed".into()))?,
        );
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, ProtectorError> {
        if wrapped.len() < 24 {
            return Err(ProtectorError("wrapped data key is too short".into()));
        }
        self.cipher()
            .decrypt(XNonce::from_slice(&wrapped[..24]), &wrapped[24..])
            .map_err(|_| ProtectorError("agent.key does not unwrap this store's data key".into()))
    }
}

/// The mediator's DID, the key ring holding every secret key of the agent (the mediator's and
/// the organisations'), and the encrypted store they are kept in.
pub struct Identity {
    /// The mediator's did:peer:2.
    pub did: String,
    /// Every secret key of the agent.
    pub keys: Arc<KeyRing>,
    /// The encrypted store the keys are kept in.
    pub store: Arc<Store>,
}

/// Where the identity store keeps the issuer store's data key.
const ISSUER_STORE_KEY: (&str, &str) = ("identity", "issuer-store-key");

impl Identity {
    /// The data key that seals the issuer store's values, kept (sealed) in this identity
    /// store; made on first use.
    pub fn issuer_store_key(&self) -> Result<Zeroizing<[u8; 32]>, IdentityError> {
        let (tree, id) = ISSUER_STORE_KEY;
        let mut key = Zeroizing::new([0u8; 32]);
        match self
            .store
            .get(tree, id)
            .map_err(store_error("the issuer store's key"))?
        {
            Some(stored) if stored.len() == 32 => key.copy_from_slice(&stored),
            Some(_) => return Err(IdentityError::IssuerStoreKey),
            None => {
                OsRng.fill_bytes(&mut key[..]);
                self.store
                    .put(tree, id, &key[..])
                    .map_err(store_error("saving the issuer store's key"))?;
            }
        }
        Ok(key)
    }
}

/// Which keys of the store are the mediator's (the organisations' keys live beside them).
#[derive(serde::Serialize, serde::Deserialize)]
struct MediatorKeys {
    signing: String,
    agreement: String,
}

/// Loads the mediator's keys from `data_dir` (creating them on first start) and derives its
/// did:peer:2 with a DIDComm service at `endpoint`.
pub fn load_or_create(data_dir: &Path, endpoint: &str) -> Result<Identity, IdentityError> {
    std::fs::create_dir_all(data_dir).map_err(file_error(data_dir))?;
    let protector = FileKeyProtector::open(&data_dir.join("agent.key"))?;
    let store = Store::open(
        &data_dir.join("identity"),
        Unlock::Protector(Arc::new(protector)),
    )
    .map_err(store_error("identity store"))?;
    let keys = Arc::new(KeyRing::new());
    store
        .load_keys(&keys)
        .map_err(store_error("identity keys"))?;
    let recorded: Option<MediatorKeys> = store
        .get_json("identity", "mediator")
        .map_err(store_error("identity record"))?;
    let (signing, agreement) = match recorded {
        Some(record) => {
            let read = |multikey: &str| {
                multikey_decode(multikey)
                    .ok()
                    .filter(|key| keys.contains(key))
                    .ok_or_else(|| IdentityError::MissingKey(multikey.to_string()))
            };
            (read(&record.signing)?, read(&record.agreement)?)
        }
        None => {
            // First start, or a store from before organisations had keys: then the store
            // holds exactly the mediator's two keys.
            let only = |kind: KeyType| -> Result<Option<PublicKey>, IdentityError> {
                let mut found = keys.public_keys().into_iter().filter(|k| k.kind == kind);
                match (found.next(), found.next()) {
                    (first, None) => Ok(first),
                    _ => Err(IdentityError::AmbiguousKeys(kind)),
                }
            };
            let ensure = |kind: KeyType| -> Result<PublicKey, IdentityError> {
                if let Some(key) = only(kind)? {
                    return Ok(key);
                }
                let key = keys.generate(kind);
                store
                    .save_key(&keys, &key)
                    .map_err(store_error("saving the mediator's key"))?;
                Ok(key)
            };
            let (signing, agreement) = (ensure(KeyType::Ed25519)?, ensure(KeyType::X25519)?);
            store
                .put_json(
                    "identity",
                    "mediator",
                    &MediatorKeys {
                        signing: multikey_encode(&signing),
                        agreement: multikey_encode(&agreement),
                    },
                )
                .map_err(store_error("identity record"))?;
            (signing, agreement)
        }
    };
    let did = did_peer_2(&PeerDidSpec {
        authentication: vec![signing],
        key_agreement: vec![agreement],
        services: vec![PeerService {
            uri: endpoint.to_string(),
            routing_keys: vec![],
            accept: vec!["didcomm/v2".to_string()],
        }],
    });
    Ok(Identity {
        did,
        keys,
        store: Arc::new(store),
    })
}

/// The admin bearer token kept in `<data_dir>/admin.token`, created (random, mode 0600) on
/// first use. A file holding an empty or short token is refused, naming the file.
pub fn admin_token(data_dir: &Path) -> Result<AdminToken, IdentityError> {
    let path = data_dir.join("admin.token");
    let source = format!("the admin token file {}", path.display());
    if path.exists() {
        let token = Zeroizing::new(std::fs::read_to_string(&path).map_err(file_error(&path))?);
        return AdminToken::new(&token, &source).map_err(IdentityError::AdminTokenFile);
    }
    std::fs::create_dir_all(data_dir).map_err(file_error(data_dir))?;
    let mut bytes = Zeroizing::new([0u8; 24]);
    OsRng.fill_bytes(&mut bytes[..]);
    let token = Zeroizing::new(lanyard_protocol::encoding::b64u_encode(&bytes[..]));
    write_private(&path, token.as_bytes())?;
    AdminToken::new(&token, &source).map_err(IdentityError::AdminToken)
}

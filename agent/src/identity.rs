//! The mediator's identity: a `did:peer:2` whose keys live in `wallet-core`'s encrypted store
//! under the data folder. The store's data key is wrapped by a key file (`agent.key`, mode
//! 0600) beside it, the server equivalent of a phone's platform keystore: point
//! `LANYARD_DATA_DIR` at an encrypted volume or replace the protector with a KMS in
//! production.
//!
//! Several agents on one PostgreSQL share one identity instead ([`load_or_create_shared`]):
//! the mediator's keys and the issuer store's data key are kept in the database, sealed under
//! the key file every agent of the deployment is given.

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
    /// The shared identity cannot be read or written in the database at `at`.
    #[error("the shared identity in the database at {at}: {source}")]
    Database {
        /// Where the database is (host:port/db, no credentials).
        at: String,
        /// What failed.
        source: crate::storage::StorageError,
    },
    /// The shared identity in the database does not open with this key file.
    #[error(
        "the shared identity in the database at {at} is sealed under another key file than {}: \
         give every agent the key file the first one was started with",
        key_file.display()
    )]
    SealedElsewhere {
        /// Where the database is.
        at: String,
        /// The key file given.
        key_file: PathBuf,
    },
    /// The shared identity's DID serves another endpoint than this agent is configured with.
    #[error(
        "the shared identity in the database at {at} serves {stored}, but this agent is \
         configured for {given}: every agent of a deployment publishes one URL \
         (LANYARD_PUBLIC_URL)"
    )]
    EndpointChanged {
        /// Where the database is.
        at: String,
        /// The endpoint the stored DID was made with.
        stored: String,
        /// The endpoint this agent was given.
        given: String,
    },
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
/// the organisations' it has used), and where the keys are kept: the data folder's encrypted
/// store ([`load_or_create`]) or the shared database ([`load_or_create_shared`]).
pub struct Identity {
    /// The mediator's did:peer:2.
    pub did: String,
    /// Every secret key of the agent.
    pub keys: Arc<KeyRing>,
    /// The data folder's encrypted store the keys are kept in; `None` for a shared identity.
    pub store: Option<Arc<Store>>,
    /// The issuer store's data key, when the identity was loaded with it (a shared one).
    issuer_key: Option<Zeroizing<[u8; 32]>>,
}

/// Where the identity store keeps the issuer store's data key.
const ISSUER_STORE_KEY: (&str, &str) = ("identity", "issuer-store-key");

impl Identity {
    /// The data key that seals the issuer store's values, kept (sealed) in this identity
    /// store; made on first use.
    pub fn issuer_store_key(&self) -> Result<Zeroizing<[u8; 32]>, IdentityError> {
        let (tree, id) = ISSUER_STORE_KEY;
        let mut key = Zeroizing::new([0u8; 32]);
        let store = match (&self.issuer_key, &self.store) {
            (Some(shared), _) => {
                key.copy_from_slice(&shared[..]);
                return Ok(key);
            }
            (None, Some(store)) => store,
            (None, None) => return Err(IdentityError::IssuerStoreKey),
        };
        match store
            .get(tree, id)
            .map_err(store_error("the issuer store's key"))?
        {
            Some(stored) if stored.len() == 32 => key.copy_from_slice(&stored),
            Some(_) => return Err(IdentityError::IssuerStoreKey),
            None => {
                OsRng.fill_bytes(&mut key[..]);
                store
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
    let did = mediator_did(signing, agreement, endpoint);
    Ok(Identity {
        did,
        keys,
        store: Some(Arc::new(store)),
        issuer_key: None,
    })
}

/// The mediator's did:peer:2 with its keys and a DIDComm service at `endpoint`.
fn mediator_did(signing: PublicKey, agreement: PublicKey, endpoint: &str) -> String {
    did_peer_2(&PeerDidSpec {
        authentication: vec![signing],
        key_agreement: vec![agreement],
        services: vec![PeerService {
            uri: endpoint.to_string(),
            routing_keys: vec![],
            accept: vec!["didcomm/v2".to_string()],
        }],
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

/// The sealing's tree of the shared identity's secrets (the place is the key's Multikey, or
/// [`SHARED_ISSUER_KEY_PLACE`]).
const SHARED_SEAL_TREE: &str = "shared identity";
/// The place the issuer store's data key is sealed for.
const SHARED_ISSUER_KEY_PLACE: &[u8] = b"issuer-store-key";

/// The shared identity's row, as read.
struct SharedRow {
    endpoint: String,
    signing_key: String,
    agreement_key: String,
    signing_sealed: Vec<u8>,
    agreement_sealed: Vec<u8>,
    issuer_key_sealed: Vec<u8>,
}

/// Loads the identity every agent on the database `db` shares (creating it, when no agent did
/// yet): the mediator's keys and the issuer store's data key, kept in `lanyard_identity`
/// (migration 0004) sealed under the 32-byte key in `key_file` (created, mode 0600, when
/// missing: then copy it to every other agent of the deployment, as a KMS would hand it out).
/// Agents starting together end with one identity: each offers one, the first is kept
/// (`INSERT ... ON CONFLICT DO NOTHING`) and every agent reads back the one stored.
///
/// This is the PostgreSQL counterpart of [`load_or_create`], for `start` to call when
/// `LANYARD_DATABASE_URL` is set, after `db.migrate()`:
/// `load_or_create_shared(&db, &config.key_file(), &format!("{public_url}/didcomm"))`, the
/// key file coming from `LANYARD_KEY_FILE` ([`crate::config::Config::key_file`]). The
/// [`Identity`] it gives has no local store (`store` is `None`); its
/// [`Identity::issuer_store_key`] is the shared one.
///
/// Refused, naming the fault: a key file that does not open the stored identity
/// ([`IdentityError::SealedElsewhere`]), an endpoint other than the stored DID's
/// ([`IdentityError::EndpointChanged`], naming both URLs).
pub async fn load_or_create_shared(
    db: &crate::postgres::Database,
    key_file: &Path,
    endpoint: &str,
) -> Result<Identity, IdentityError> {
    let protector = FileKeyProtector::open(key_file)?;
    let sealer = lanyard_protocol::store::Sealer::new(&protector.key);
    let at = db.location().to_string();
    let database = |source: crate::storage::StorageError| IdentityError::Database {
        at: at.clone(),
        source,
    };
    let client = db.client().await.map_err(database)?;
    let read = |row: tokio_postgres::Row| SharedRow {
        endpoint: row.get(0),
        signing_key: row.get(1),
        agreement_key: row.get(2),
        signing_sealed: row.get(3),
        agreement_sealed: row.get(4),
        issuer_key_sealed: row.get(5),
    };
    const SELECT: &str = "SELECT endpoint, signing_key, agreement_key, signing_sealed, \
                          agreement_sealed, issuer_key_sealed FROM lanyard_identity WHERE id = 1";
    let stored = client
        .query_opt(SELECT, &[])
        .await
        .map_err(|e| database(e.into()))?
        .map(read);
    let stored = match stored {
        Some(stored) => stored,
        None => {
            // Offer one; whichever agent inserts first wins, and all read that one back.
            let offered = KeyRing::new();
            let signing = offered.generate(KeyType::Ed25519);
            let agreement = offered.generate(KeyType::X25519);
            let seal_key = |key: &PublicKey| {
                let place = multikey_encode(key);
                offered
                    .export_sealed(key, &sealer, place.as_bytes())
                    .map(|sealed| (place, sealed))
                    .map_err(|e| database(crate::storage::StorageError::Corrupt(e.to_string())))
            };
            let (signing_key, signing_sealed) = seal_key(&signing)?;
            let (agreement_key, agreement_sealed) = seal_key(&agreement)?;
            let mut issuer_key = Zeroizing::new([0u8; 32]);
            OsRng.fill_bytes(&mut issuer_key[..]);
            let issuer_key_sealed = sealer
                .seal(SHARED_SEAL_TREE, SHARED_ISSUER_KEY_PLACE, &issuer_key[..])
                .map_err(|e| database(crate::storage::StorageError::Corrupt(e.to_string())))?;
            client
                .execute(
                    "INSERT INTO lanyard_identity (id, endpoint, signing_key, agreement_key, \
                     signing_sealed, agreement_sealed, issuer_key_sealed) \
                     VALUES (1, $1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
                    &[
                        &endpoint,
                        &signing_key,
                        &agreement_key,
                        &signing_sealed,
                        &agreement_sealed,
                        &issuer_key_sealed,
                    ],
                )
                .await
                .map_err(|e| database(e.into()))?;
            let row = client
                .query_one(SELECT, &[])
                .await
                .map_err(|e| database(e.into()))?;
            read(row)
        }
    };
    if stored.endpoint != endpoint {
        return Err(IdentityError::EndpointChanged {
            at,
            stored: stored.endpoint,
            given: endpoint.to_string(),
        });
    }
    let sealed_elsewhere = || IdentityError::SealedElsewhere {
        at: at.clone(),
        key_file: key_file.to_path_buf(),
    };
    let keys = Arc::new(KeyRing::new());
    let load = |multikey: &str, sealed: &[u8]| -> Result<PublicKey, IdentityError> {
        let expected = multikey_decode(multikey)
            .map_err(|_| IdentityError::MissingKey(multikey.to_string()))?;
        let loaded = keys
            .import_sealed(sealed, &sealer, multikey.as_bytes())
            .map_err(|_| sealed_elsewhere())?;
        if loaded != expected {
            keys.remove(&loaded);
            return Err(IdentityError::MissingKey(multikey.to_string()));
        }
        Ok(loaded)
    };
    let signing = load(&stored.signing_key, &stored.signing_sealed)?;
    let agreement = load(&stored.agreement_key, &stored.agreement_sealed)?;
    let opened = sealer
        .open(
            SHARED_SEAL_TREE,
            SHARED_ISSUER_KEY_PLACE,
            &stored.issuer_key_sealed,
        )
        .map_err(|_| sealed_elsewhere())?;
    if opened.len() != 32 {
        return Err(IdentityError::IssuerStoreKey);
    }
    let mut issuer_key = Zeroizing::new([0u8; 32]);
    issuer_key.copy_from_slice(&opened);
    Ok(Identity {
        did: mediator_did(signing, agreement, endpoint),
        keys,
        store: None,
        issuer_key: Some(issuer_key),
    })
}

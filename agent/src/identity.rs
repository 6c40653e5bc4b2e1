//! The mediator's identity: a `did:peer:2` whose keys live in `wallet-core`'s encrypted store
//! under the data folder. The store's data key is wrapped by a key file (`agent.key`, mode
//! 0600) beside it, the server equivalent of a phone's platform keystore: point
//! `LANYARD_DATA_DIR` at an encrypted volume or replace the protector with a KMS in
//! production.

use std::path::Path;
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use lanyard_protocol::did::{
    did_peer_2, multikey_decode, multikey_encode, PeerDidSpec, PeerService,
};
use lanyard_protocol::keys::{KeyRing, KeyType, PublicKey};
use lanyard_protocol::store::{KeyProtector, ProtectorError, Store, Unlock};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::admin::AdminToken;

/// Wraps the identity store's data key with a 256-bit key kept in a file.
struct FileKeyProtector {
    key: Zeroizing<[u8; 32]>,
}

impl FileKeyProtector {
    fn open(path: &Path) -> Result<FileKeyProtector, String> {
        let mut key = Zeroizing::new([0u8; 32]);
        if path.exists() {
            let bytes = Zeroizing::new(
                std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?,
            );
            if bytes.len() != 32 {
                return Err(format!("{} is not a 32-byte key", path.display()));
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
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
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
    pub did: String,
    pub keys: Arc<KeyRing>,
    pub store: Arc<Store>,
}

/// Where the identity store keeps the issuer store's data key.
const ISSUER_STORE_KEY: (&str, &str) = ("identity", "issuer-store-key");

impl Identity {
    /// The data key that seals the issuer store's values, kept (sealed) in this identity
    /// store; made on first use.
    pub fn issuer_store_key(&self) -> Result<Zeroizing<[u8; 32]>, String> {
        let (tree, id) = ISSUER_STORE_KEY;
        let mut key = Zeroizing::new([0u8; 32]);
        match self
            .store
            .get(tree, id)
            .map_err(|e| format!("the issuer store's key: {e}"))?
        {
            Some(stored) if stored.len() == 32 => key.copy_from_slice(&stored),
            Some(_) => {
                return Err("the issuer store's key in the identity store is not 32 bytes".into())
            }
            None => {
                OsRng.fill_bytes(&mut key[..]);
                self.store
                    .put(tree, id, &key[..])
                    .map_err(|e| format!("saving the issuer store's key: {e}"))?;
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
pub fn load_or_create(data_dir: &Path, endpoint: &str) -> Result<Identity, String> {
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let protector = FileKeyProtector::open(&data_dir.join("agent.key"))?;
    let store = Store::open(
        &data_dir.join("identity"),
        Unlock::Protector(Arc::new(protector)),
    )
    .map_err(|e| format!("identity store: {e}"))?;
    let keys = Arc::new(KeyRing::new());
    store
        .load_keys(&keys)
        .map_err(|e| format!("identity keys: {e}"))?;
    let recorded: Option<MediatorKeys> = store
        .get_json("identity", "mediator")
        .map_err(|e| format!("identity record: {e}"))?;
    let (signing, agreement) = match recorded {
        Some(record) => {
            let read = |multikey: &str| {
                multikey_decode(multikey)
                    .ok()
                    .filter(|key| keys.contains(key))
                    .ok_or_else(|| format!("the mediator's key {multikey} is not in the store"))
            };
            (read(&record.signing)?, read(&record.agreement)?)
        }
        None => {
            // First start, or a store from before organisations had keys: then the store
            // holds exactly the mediator's two keys.
            let only = |kind: KeyType| -> Result<Option<PublicKey>, String> {
                let mut found = keys.public_keys().into_iter().filter(|k| k.kind == kind);
                match (found.next(), found.next()) {
                    (first, None) => Ok(first),
                    _ => Err(format!(
                        "the identity store has several {kind:?} keys and no record of the mediator's"
                    )),
                }
            };
            let ensure = |kind: KeyType| -> Result<PublicKey, String> {
                if let Some(key) = only(kind)? {
                    return Ok(key);
                }
                let key = keys.generate(kind);
                store
                    .save_key(&keys, &key)
                    .map_err(|e| format!("saving the mediator's key: {e}"))?;
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
                .map_err(|e| format!("identity record: {e}"))?;
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
pub fn admin_token(data_dir: &Path) -> Result<AdminToken, String> {
    let path = data_dir.join("admin.token");
    let source = format!("the admin token file {}", path.display());
    if path.exists() {
        let token = Zeroizing::new(
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?,
        );
        return AdminToken::new(&token, &source).map_err(|e| {
            format!("{e} (delete the file for a new random one, or set LANYARD_ADMIN_TOKEN)")
        });
    }
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let mut bytes = Zeroizing::new([0u8; 24]);
    OsRng.fill_bytes(&mut bytes[..]);
    let token = Zeroizing::new(lanyard_protocol::encoding::b64u_encode(&bytes[..]));
    write_private(&path, token.as_bytes())?;
    AdminToken::new(&token, &source).map_err(|e| e.to_string())
}

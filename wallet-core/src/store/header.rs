//! The store header (`header.json`): how the data key is wrapped, and a check value that
//! tells a wrong key from a damaged store. Nothing in it is secret; it is written once, when
//! the store is created, by write-to-temporary, fsync and rename.

use std::io::Write as _;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{hmac_sha256, StoreError, Unlock};
use crate::encoding::{b64u_decode, b64u_encode};

pub(super) const FILE: &str = "header.json";
const FORMAT: &str = "lanyard-store";
const VERSION: u32 = 1;
const WRAP_AAD: &[u8] = b"lanyard store data key v1";
const CHECK_LABEL: &[u8] = b"lanyard store key check v1";

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for Argon2Params {
    /// OWASP's recommendation for Argon2id: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        Argon2Params {
            m_kib: 19 * 1024,
            t: 2,
            p: 1,
        }
    }
}

impl Argon2Params {
    /// The cheapest parameters accepted: for tests only.
    pub fn insecure_for_tests() -> Self {
        Argon2Params {
            m_kib: 8,
            t: 1,
            p: 1,
        }
    }

    fn derive(&self, passphrase: &str, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, StoreError> {
        if self.m_kib < 8 || self.t < 1 || self.p < 1 || self.m_kib < 8 * self.p {
            return Err(StoreError::WeakParams(format!(
                "m={} KiB, t={}, p={} (at least m=8 KiB per lane, t=1, p=1)",
                self.m_kib, self.t, self.p
            )));
        }
        let params = argon2::Params::new(self.m_kib, self.t, self.p, Some(32))
            .map_err(|e| StoreError::WeakParams(e.to_string()))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.as_bytes(), salt, &mut key[..])
            .map_err(|e| StoreError::WeakParams(e.to_string()))?;
        Ok(key)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(super) enum KekSource {
    Passphrase {
        salt: String,
        #[serde(flatten)]
        params: Argon2Params,
    },
    Protector,
}

#[derive(Serialize, Deserialize)]
pub(super) struct Header {
    format: String,
    version: u32,
    kek: KekSource,
    wrapped_key: String,
    key_check: String,
}

fn key_check(data_key: &[u8; 32]) -> [u8; 32] {
    hmac_sha256(data_key, &[CHECK_LABEL])
}

impl Header {
    /// A header for a new data key, wrapped as `unlock` says.
    pub(super) fn create(data_key: &[u8; 32], unlock: &Unlock) -> Result<Header, StoreError> {
        let (kek, wrapped) = match unlock {
            Unlock::Passphrase { passphrase, params } => {
                let mut salt = [0u8; 16];
                OsRng.fill_bytes(&mut salt);
                let kek = params.derive(passphrase, &salt)?;
                let mut nonce = [0u8; 24];
                OsRng.fill_bytes(&mut nonce);
                let sealed = XChaCha20Poly1305::new(kek[..].into())
                    .encrypt(
                        XNonce::from_slice(&nonce),
                        Payload {
                            msg: data_key,
                            aad: WRAP_AAD,
                        },
                    )
                    .expect("sealing 32 bytes cannot fail");
                let mut wrapped = nonce.to_vec();
                wrapped.extend_from_slice(&sealed);
                (
                    KekSource::Passphrase {
                        salt: b64u_encode(salt),
                        params: *params,
                    },
                    wrapped,
                )
            }
            Unlock::Protector(protector) => (
                KekSource::Protector,
                protector
                    .wrap(data_key)
                    .map_err(|e| StoreError::ProtectorFailed(e.0))?,
            ),
        };
        Ok(Header {
            format: FORMAT.to_string(),
            version: VERSION,
            kek,
            wrapped_key: b64u_encode(wrapped),
            key_check: b64u_encode(key_check(data_key)),
        })
    }

    pub(super) fn read(path: &Path) -> Result<Header, StoreError> {
        let bad = |reason: String| StoreError::BadHeader {
            path: path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        if bytes.len() > 64 * 1024 {
            return Err(bad("larger than 64 KiB".into()));
        }
        let header: Header = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if header.format != FORMAT || header.version != VERSION {
            return Err(bad(format!(
                "format {} version {} is not {FORMAT} version {VERSION}",
                header.format, header.version
            )));
        }
        Ok(header)
    }

    /// Writes the header durably: temporary file, fsync, rename, fsync of the folder.
    pub(super) fn write(&self, path: &Path) -> Result<(), StoreError> {
        let io = |e: std::io::Error| StoreError::Io(format!("{}: {e}", path.display()));
        let temporary = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&temporary).map_err(io)?;
        file.write_all(&serde_json::to_vec_pretty(self).expect("a header serialises"))
            .map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&temporary, path).map_err(io)?;
        if let Some(folder) = path.parent() {
            std::fs::File::open(folder)
                .and_then(|dir| dir.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }

    fn bad(&self, reason: &str) -> StoreError {
        StoreError::BadHeader {
            path: FILE.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Recovers the data key with `unlock`, checking it against the header's check value.
    pub(super) fn unwrap_data_key(
        &self,
        unlock: &Unlock,
    ) -> Result<Zeroizing<[u8; 32]>, StoreError> {
        let wrapped =
            b64u_decode(&self.wrapped_key).map_err(|_| self.bad("wrapped_key is not base64url"))?;
        let check =
            b64u_decode(&self.key_check).map_err(|_| self.bad("key_check is not base64url"))?;
        let (key, wrong) = match (&self.kek, unlock) {
            (KekSource::Passphrase { salt, params }, Unlock::Passphrase { passphrase, .. }) => {
                let salt = b64u_decode(salt).map_err(|_| self.bad("salt is not base64url"))?;
                let kek = params.derive(passphrase, &salt)?;
                if wrapped.len() != 24 + 32 + 16 {
                    return Err(self.bad("wrapped_key has the wrong length"));
                }
                let key = XChaCha20Poly1305::new(kek[..].into())
                    .decrypt(
                        XNonce::from_slice(&wrapped[..24]),
                        Payload {
                            msg: &wrapped[24..],
                            aad: WRAP_AAD,
                        },
                    )
                    .map_err(|_| StoreError::WrongPassphrase)?;
                (Zeroizing::new(key), StoreError::WrongPassphrase)
            }
            (KekSource::Protector, Unlock::Protector(protector)) => (
                Zeroizing::new(
                    protector
                        .unwrap(&wrapped)
                        .map_err(|e| StoreError::ProtectorFailed(e.0))?,
                ),
                StoreError::ProtectorWrongKey,
            ),
            (KekSource::Passphrase { .. }, given) => {
                return Err(StoreError::UnlockMismatch {
                    store: "a passphrase",
                    given: given.kind(),
                })
            }
            (KekSource::Protector, given) => {
                return Err(StoreError::UnlockMismatch {
                    store: "a platform key protector",
                    given: given.kind(),
                })
            }
        };
        let key: [u8; 32] = key.as_slice().try_into().map_err(|_| wrong.clone())?;
        let key = Zeroizing::new(key);
        if !bool::from(key_check(&key).ct_eq(check.as_slice())) {
            return Err(wrong);
        }
        Ok(key)
    }
}

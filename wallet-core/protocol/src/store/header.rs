//! The store header, `header.json`: how the data key is wrapped (by a platform
//! [`KeyProtector`](super::KeyProtector), or by a key from the passphrase through Argon2id,
//! RFC 9106) and a check value that tells a wrong key from a damaged store. Nothing in it is
//! secret. It is written once, when the store is created (temporary file, fsync, rename,
//! fsync of the folder), and only ever read afterwards.

use std::io::{Read as _, Write as _};
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{hmac_sha256, StoreError, Unlock, KEY_LEN, NONCE_LEN, TAG_LEN};
use crate::encoding::{b64u_decode, b64u_encode};

/// The header's file name inside the store folder.
pub(super) const FILE: &str = "header.json";
const FORMAT: &str = "lanyard-store";
const VERSION: u32 = 1;
/// Associated data of the data key sealed under a passphrase's key.
const WRAP_AAD: &[u8] = b"lanyard store data key v1";
/// Label of the check value, HMAC-SHA256(data key, label).
const CHECK_LABEL: &[u8] = b"lanyard store key check v1";
const SALT_LEN: usize = 16;
/// A header is a few hundred bytes; anything larger is not one.
const MAX_HEADER_LEN: u64 = 64 * 1024;

/// Argon2id cost parameters (RFC 9106 section 3.1). The store accepts m from 8 KiB per lane
/// to 1 GiB, t from 1 to 64 and p from 1 to 16: below that the key costs nothing to guess,
/// above it a damaged header could make opening the store exhaust a phone's memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes over the memory.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

const MIN_M_KIB_PER_LANE: u32 = 8;
const MAX_M_KIB: u32 = 1024 * 1024;
const MAX_T: u32 = 64;
const MAX_P: u32 = 16;

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

/// Argon2id parameters outside the store's floor and ceiling, and which bound they cross.
#[derive(Debug, thiserror::Error)]
#[error("m={} KiB, t={}, p={}: {problem}", params.m_kib, params.t, params.p)]
struct ParamsRefused {
    params: Argon2Params,
    problem: String,
}

impl From<ParamsRefused> for StoreError {
    fn from(refused: ParamsRefused) -> StoreError {
        StoreError::InvalidArgon2Params(refused.to_string())
    }
}

impl Argon2Params {
    /// Parameters checked against the store's floor and ceiling.
    pub fn new(m_kib: u32, t: u32, p: u32) -> Result<Argon2Params, StoreError> {
        let params = Argon2Params { m_kib, t, p };
        params.check()?;
        Ok(params)
    }

    /// The cheapest parameters accepted (m=8 KiB, t=1, p=1): for tests only, a passphrase
    /// behind them is as weak as the passphrase itself.
    pub fn insecure_for_tests() -> Argon2Params {
        Argon2Params {
            m_kib: MIN_M_KIB_PER_LANE,
            t: 1,
            p: 1,
        }
    }

    /// Why these parameters are refused, if they are.
    fn check(&self) -> Result<(), ParamsRefused> {
        let Argon2Params { m_kib, t, p } = *self;
        let problem = if t < 1 {
            "t must be at least 1".to_string()
        } else if t > MAX_T {
            format!("t must be at most {MAX_T}")
        } else if p < 1 {
            "p must be at least 1".to_string()
        } else if p > MAX_P {
            format!("p must be at most {MAX_P}")
        } else if u64::from(m_kib) < u64::from(MIN_M_KIB_PER_LANE) * u64::from(p) {
            format!("m must be at least {MIN_M_KIB_PER_LANE} KiB per lane")
        } else if m_kib > MAX_M_KIB {
            format!("m must be at most {MAX_M_KIB} KiB")
        } else {
            return Ok(());
        };
        Err(ParamsRefused {
            params: *self,
            problem,
        })
    }

    /// The key-encryption key for `passphrase` and `salt`. The parameters are checked first.
    fn derive(
        &self,
        passphrase: &str,
        salt: &[u8; SALT_LEN],
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, StoreError> {
        self.check()?;
        let refused = |e: argon2::Error| StoreError::InvalidArgon2Params(e.to_string());
        let params =
            argon2::Params::new(self.m_kib, self.t, self.p, Some(KEY_LEN)).map_err(refused)?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut kek = Zeroizing::new([0u8; KEY_LEN]);
        argon
            .hash_password_into(passphrase.as_bytes(), salt, &mut kek[..])
            .map_err(refused)?;
        Ok(kek)
    }
}

/// What wraps the data key, as written in the header file.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum KekFile {
    Passphrase {
        salt: String,
        #[serde(flatten)]
        params: Argon2Params,
    },
    Protector,
}

/// The header file's JSON.
#[derive(Serialize, Deserialize)]
struct HeaderFile {
    format: String,
    version: u32,
    kek: KekFile,
    /// Passphrase: nonce ‖ XChaCha20-Poly1305(KEK, data key, AAD = WRAP_AAD). Protector:
    /// whatever [`KeyProtector::wrap`](super::KeyProtector::wrap) returned.
    wrapped_key: String,
    /// HMAC-SHA256(data key, CHECK_LABEL).
    key_check: String,
}

enum Kek {
    Passphrase {
        salt: [u8; SALT_LEN],
        params: Argon2Params,
    },
    Protector,
}

/// A header read and checked for shape; its key is not unwrapped yet.
pub(super) struct Header {
    /// The file it was read from, for error messages.
    path: String,
    kek: Kek,
    wrapped_key: Vec<u8>,
    key_check: [u8; 32],
}

fn key_check(data_key: &[u8; KEY_LEN]) -> [u8; 32] {
    hmac_sha256(data_key, &[CHECK_LABEL])
}

/// The JSON of a new store's header: `data_key` wrapped as `unlock` says.
pub(super) fn create(data_key: &[u8; KEY_LEN], unlock: &Unlock) -> Result<Vec<u8>, StoreError> {
    let (kek, wrapped) = match unlock {
        Unlock::Passphrase { passphrase, params } => {
            let mut salt = [0u8; SALT_LEN];
            OsRng.fill_bytes(&mut salt);
            let kek = params.derive(passphrase, &salt)?;
            let mut nonce = [0u8; NONCE_LEN];
            OsRng.fill_bytes(&mut nonce);
            let sealed = XChaCha20Poly1305::new(kek[..].into())
                .encrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: data_key,
                        aad: WRAP_AAD,
                    },
                )
                .map_err(|_| StoreError::Io("sealing the data key failed".into()))?;
            let mut wrapped = nonce.to_vec();
            wrapped.extend_from_slice(&sealed);
            (
                KekFile::Passphrase {
                    salt: b64u_encode(salt),
                    params: *params,
                },
                wrapped,
            )
        }
        Unlock::Protector(protector) => (
            KekFile::Protector,
            protector
                .wrap(data_key)
                .map_err(|e| StoreError::ProtectorFailed(e.0))?,
        ),
    };
    let file = HeaderFile {
        format: FORMAT.to_string(),
        version: VERSION,
        kek,
        wrapped_key: b64u_encode(wrapped),
        key_check: b64u_encode(key_check(data_key)),
    };
    serde_json::to_vec_pretty(&file).map_err(|e| StoreError::Io(format!("header: {e}")))
}

/// Writes `json` as the header at `path`, durably: temporary file, fsync, rename, fsync of
/// the folder.
pub(super) fn write(path: &Path, json: &[u8]) -> Result<(), StoreError> {
    let io = |e: std::io::Error| StoreError::Io(format!("{}: {e}", path.display()));
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::File::create(&temporary).map_err(io)?;
    file.write_all(json).map_err(io)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&temporary, path).map_err(io)?;
    // The rename is durable once the folder's entry is: fsync the folder (POSIX only; other
    // systems do not open folders as files).
    #[cfg(unix)]
    if let Some(folder) = path.parent() {
        std::fs::File::open(folder)
            .and_then(|folder| folder.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

impl Header {
    /// Reads and checks the header at `path`. Writes nothing.
    pub(super) fn read(path: &Path) -> Result<Header, StoreError> {
        let shown = path.display().to_string();
        let bad = |reason: String| StoreError::BadHeader {
            path: shown.clone(),
            reason,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|file| file.take(MAX_HEADER_LEN + 1).read_to_end(&mut bytes))
            .map_err(|e| bad(format!("cannot be read: {e}")))?;
        if bytes.len() as u64 > MAX_HEADER_LEN {
            return Err(bad(format!("larger than {MAX_HEADER_LEN} bytes")));
        }
        let file: HeaderFile =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a store header: {e}")))?;
        if file.format != FORMAT || file.version != VERSION {
            return Err(bad(format!(
                "format {:?} version {} is not {FORMAT:?} version {VERSION}",
                file.format, file.version
            )));
        }
        let wrapped_key = b64u_decode(&file.wrapped_key)
            .map_err(|_| bad("wrapped_key is not base64url".into()))?;
        let key_check: [u8; 32] = b64u_decode(&file.key_check)
            .ok()
            .and_then(|check| check.try_into().ok())
            .ok_or_else(|| bad("key_check is not 32 bytes of base64url".into()))?;
        let kek = match file.kek {
            KekFile::Passphrase { salt, params } => {
                let salt: [u8; SALT_LEN] = b64u_decode(&salt)
                    .ok()
                    .and_then(|salt| salt.try_into().ok())
                    .ok_or_else(|| bad(format!("salt is not {SALT_LEN} bytes of base64url")))?;
                params.check().map_err(|refused| bad(refused.to_string()))?;
                if wrapped_key.len() != NONCE_LEN + KEY_LEN + TAG_LEN {
                    return Err(bad(format!(
                        "wrapped_key is {} bytes, not {}",
                        wrapped_key.len(),
                        NONCE_LEN + KEY_LEN + TAG_LEN
                    )));
                }
                Kek::Passphrase { salt, params }
            }
            KekFile::Protector => Kek::Protector,
        };
        Ok(Header {
            path: shown,
            kek,
            wrapped_key,
            key_check,
        })
    }

    /// Recovers the data key with `unlock` and checks it against the header's check value.
    /// With a passphrase, the header's Argon2id parameters are used, not `unlock`'s.
    pub(super) fn unwrap_data_key(
        &self,
        unlock: &Unlock,
    ) -> Result<Zeroizing<[u8; KEY_LEN]>, StoreError> {
        let (unwrapped, wrong) = match (&self.kek, unlock) {
            (Kek::Passphrase { salt, params }, Unlock::Passphrase { passphrase, .. }) => {
                let kek = params.derive(passphrase, salt)?;
                let (nonce, sealed) = self.wrapped_key.split_at(NONCE_LEN);
                let unwrapped = XChaCha20Poly1305::new(kek[..].into())
                    .decrypt(
                        XNonce::from_slice(nonce),
                        Payload {
                            msg: sealed,
                            aad: WRAP_AAD,
                        },
                    )
                    .map(Zeroizing::new)
                    .map_err(|_| StoreError::WrongPassphrase)?;
                // The key authenticated: a check value that disagrees is a damaged header.
                let damaged = StoreError::BadHeader {
                    path: self.path.clone(),
                    reason: "key_check does not match the data key".into(),
                };
                (unwrapped, damaged)
            }
            (Kek::Protector, Unlock::Protector(protector)) => {
                let unwrapped = protector
                    .unwrap(&self.wrapped_key)
                    .map(Zeroizing::new)
                    .map_err(|e| StoreError::ProtectorFailed(e.0))?;
                (unwrapped, StoreError::ProtectorWrongKey)
            }
            (Kek::Passphrase { .. }, given) => {
                return Err(StoreError::UnlockMismatch {
                    store: "a passphrase",
                    given: given.kind(),
                })
            }
            (Kek::Protector, given) => {
                return Err(StoreError::UnlockMismatch {
                    store: "a platform key protector",
                    given: given.kind(),
                })
            }
        };
        if unwrapped.len() != KEY_LEN {
            return Err(wrong);
        }
        let mut data_key = Zeroizing::new([0u8; KEY_LEN]);
        data_key.copy_from_slice(&unwrapped);
        if !bool::from(key_check(&data_key).ct_eq(&self.key_check)) {
            return Err(wrong);
        }
        Ok(data_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_params_floor_and_ceiling() {
        assert!(Argon2Params::new(8, 1, 1).is_ok(), "the floor is accepted");
        assert!(
            Argon2Params::default().check().is_ok(),
            "the default is accepted"
        );
        for (m, t, p) in [
            (7, 1, 1),
            (8, 0, 1),
            (8, 1, 0),
            (15, 1, 2),
            (MAX_M_KIB + 1, 1, 1),
            (64, MAX_T + 1, 1),
            (1024, 1, MAX_P + 1),
        ] {
            let error = Argon2Params::new(m, t, p).expect_err("out of range is refused");
            assert!(
                error
                    .to_string()
                    .contains(&format!("m={m} KiB, t={t}, p={p}")),
                "the message names the parameters: {error}"
            );
        }
    }
}

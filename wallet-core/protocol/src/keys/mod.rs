//! The key store: Ed25519 signing keys and X25519 agreement keys, held by reference.
//!
//! Callers name a key by its [`PublicKey`] and ask the [`KeyRing`] to sign or to run a key
//! agreement; secret bytes never leave this module. Every secret type zeroizes on drop and
//! prints as `[redacted]`. The JOSE key-management and content-encryption steps that touch
//! derived secrets (Concat KDF, AES key wrap, the content ciphers) live here too, so that the
//! envelope code only ever holds opaque [`Kek`]s and [`Cek`]s.

mod agreement;
mod content;
mod ring;

pub use agreement::{Ephemeral, Kek, KeyAgreementAlg};
pub use content::{Cek, ContentEnc, Sealed};
pub use ring::{verify_ed25519, Ed25519Verifier, KeyRing, StoredKey};

use std::fmt;

/// The two key types Lanyard uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyType {
    /// Ed25519 signing key (RFC 8032), multicodec `0xed`.
    Ed25519,
    /// X25519 key-agreement key (RFC 7748), multicodec `0xec`.
    X25519,
}

impl KeyType {
    /// The JWK `crv` name (RFC 8037).
    pub fn jwk_crv(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "Ed25519",
            KeyType::X25519 => "X25519",
        }
    }
}

/// A public key: its type and its 32 raw bytes. This is also how a secret is referred to.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey {
    pub kind: KeyType,
    pub bytes: [u8; 32],
}

impl PublicKey {
    pub fn ed25519(bytes: [u8; 32]) -> Self {
        PublicKey {
            kind: KeyType::Ed25519,
            bytes,
        }
    }

    pub fn x25519(bytes: [u8; 32]) -> Self {
        PublicKey {
            kind: KeyType::X25519,
            bytes,
        }
    }

    /// The X25519 key that corresponds to an Ed25519 public key (the birational map
    /// u = (1+y)/(1−y)), as did:key derives its key-agreement key. `None` for an X25519 key
    /// or for bytes that are not a point on the curve.
    pub fn ed25519_to_x25519(&self) -> Option<PublicKey> {
        if self.kind != KeyType::Ed25519 {
            return None;
        }
        let point = curve25519_dalek::edwards::CompressedEdwardsY(self.bytes).decompress()?;
        Some(PublicKey::x25519(point.to_montgomery().to_bytes()))
    }

    /// Public JWK (RFC 8037 OKP) as a JSON value.
    pub fn to_jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": self.kind.jwk_crv(),
            "x": crate::encoding::b64u_encode(self.bytes),
        })
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}({})",
            self.kind,
            crate::encoding::b64u_encode(self.bytes)
        )
    }
}

/// What can go wrong inside the key store. None of these carry a backtrace: they sit on the
/// hot path of every unpack.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KeyError {
    #[error("no secret key is held for {0:?}")]
    UnknownKey(PublicKey),
    #[error("key {0:?} is a {1:?} key, which cannot be used for this operation")]
    WrongKeyType(PublicKey, KeyType),
    #[error("key agreement with {0:?} produced an all-zero secret (a low-order point)")]
    NonContributory(PublicKey),
    #[error("the key wrap failed to authenticate: the wrapped key was not made for this key")]
    UnwrapFailed,
    #[error("wrapped content key has the wrong length ({0} bytes)")]
    BadWrappedKeyLength(usize),
    #[error("content decryption failed: ciphertext, tag, iv or header were altered")]
    DecryptFailed,
    #[error("{field} has the wrong length for {alg}: {len} bytes")]
    BadLength {
        field: &'static str,
        alg: &'static str,
        len: usize,
    },
    #[error("signature does not verify")]
    BadSignature,
    #[error("stored key record is malformed: {0}")]
    BadRecord(String),
}

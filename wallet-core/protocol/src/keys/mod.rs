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
    /// Ed25519 or X25519.
    pub kind: KeyType,
    /// The raw public key.
    pub bytes: [u8; 32],
}

impl PublicKey {
    /// An Ed25519 public key from its 32 bytes.
    pub fn ed25519(bytes: [u8; 32]) -> Self {
        PublicKey {
            kind: KeyType::Ed25519,
            bytes,
        }
    }

    /// An X25519 public key from its 32 bytes.
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
    /// The ring holds no secret for this public key.
    #[error("no secret key is held for {0:?}")]
    UnknownKey(PublicKey),
    /// The key is of the other type (signing with X25519, agreeing with Ed25519).
    #[error("key {0:?} is a {1:?} key, which cannot be used for this operation")]
    WrongKeyType(PublicKey, KeyType),
    /// The peer key is a low-order point: agreement with it yields zero, which is refused.
    #[error("key agreement with {0:?} produced an all-zero secret (a low-order point)")]
    NonContributory(PublicKey),
    /// AES key unwrap failed its integrity check.
    #[error("the key wrap failed to authenticate: the wrapped key was not made for this key")]
    UnwrapFailed,
    /// A wrapped content key of a length no content cipher uses.
    #[error("wrapped content key has the wrong length ({0} bytes)")]
    BadWrappedKeyLength(usize),
    /// Content decryption failed to authenticate.
    #[error("content decryption failed: ciphertext, tag, iv or header were altered")]
    DecryptFailed,
    /// A field of the wrong length for its algorithm.
    #[error("{field} has the wrong length for {alg}: {len} bytes")]
    BadLength {
        /// Which field (`iv`, `tag`, the key).
        field: &'static str,
        /// The algorithm it is for.
        alg: &'static str,
        /// Its length in bytes.
        len: usize,
    },
    /// An Ed25519 signature that does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// A stored key that does not decode (what is wrong is said).
    #[error("stored key record is malformed: {0}")]
    BadRecord(String),
}

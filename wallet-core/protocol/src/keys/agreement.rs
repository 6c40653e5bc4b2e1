//! X25519 key agreement for JWE key management: `ECDH-ES+A256KW` (RFC 7518 §4.6) and
//! `ECDH-1PU+A256KW` (draft-madden-jose-ecdh-1pu-04 §2), each followed by the Concat KDF
//! (NIST SP 800-56A §5.8.1, one SHA-256 round) and AES-256 key wrap (RFC 3394).

use std::fmt;

use rand_core::OsRng;
use sha2::{Digest, Sha256};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use super::{Cek, ContentEnc, KeyError, KeyRing, KeyType, PublicKey};

/// The JWE `alg` values for key agreement with key wrapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAgreementAlg {
    /// Anonymous sender: ephemeral-static agreement.
    EcdhEsA256kw,
    /// Authenticated sender: ephemeral-static and static-static agreement.
    Ecdh1puA256kw,
}

impl KeyAgreementAlg {
    /// The JOSE `alg` name.
    pub fn name(self) -> &'static str {
        match self {
            KeyAgreementAlg::EcdhEsA256kw => "ECDH-ES+A256KW",
            KeyAgreementAlg::Ecdh1puA256kw => "ECDH-1PU+A256KW",
        }
    }

    /// The algorithm of a JOSE `alg` name, if it is one of these.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "ECDH-ES+A256KW" => Some(KeyAgreementAlg::EcdhEsA256kw),
            "ECDH-1PU+A256KW" => Some(KeyAgreementAlg::Ecdh1puA256kw),
            _ => None,
        }
    }
}

/// An ephemeral X25519 key for one JWE: shared by all its recipients, zeroized on drop.
pub struct Ephemeral {
    secret: StaticSecret,
    public: PublicKey,
}

impl fmt::Debug for Ephemeral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ephemeral({:?}, [redacted])", self.public)
    }
}

impl Default for Ephemeral {
    fn default() -> Self {
        Self::generate()
    }
}

impl Ephemeral {
    /// A fresh ephemeral key from the OS RNG.
    pub fn generate() -> Ephemeral {
        let secret = StaticSecret::random_from_rng(OsRng);
        let public = PublicKey::x25519(x25519_dalek::PublicKey::from(&secret).to_bytes());
        Ephemeral { secret, public }
    }

    /// The `epk` to put in the JWE header.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// Sender side of ECDH-ES+A256KW for one recipient.
    pub fn kek_es(&self, recipient: &PublicKey, apu: &[u8], apv: &[u8]) -> Result<Kek, KeyError> {
        let ze = dh(&self.secret, recipient)?;
        Ok(Kek::derive(
            KeyAgreementAlg::EcdhEsA256kw,
            &[&ze[..]],
            apu,
            apv,
            None,
        ))
    }

    /// Sender side of ECDH-1PU+A256KW for one recipient: Z = Ze ‖ Zs, where Zs comes from the
    /// sender's static key in `ring` (cached per key pair). `tag` is the JWE's content tag,
    /// which ECDH-1PU binds into the KDF (draft-04 §2.3), so content is encrypted first.
    pub fn kek_1pu(
        &self,
        ring: &KeyRing,
        sender: &PublicKey,
        recipient: &PublicKey,
        apu: &[u8],
        apv: &[u8],
        tag: &[u8],
    ) -> Result<Kek, KeyError> {
        let ze = dh(&self.secret, recipient)?;
        let zs = ring.static_agreement(sender, recipient)?;
        Ok(Kek::derive(
            KeyAgreementAlg::Ecdh1puA256kw,
            &[&ze[..], &zs[..]],
            apu,
            apv,
            Some(tag),
        ))
    }
}

impl KeyRing {
    /// Recipient side of ECDH-ES+A256KW: agreement of our key `ours` with the sender's `epk`.
    pub fn kek_es(
        &self,
        ours: &PublicKey,
        epk: &PublicKey,
        apu: &[u8],
        apv: &[u8],
    ) -> Result<Kek, KeyError> {
        let ze = self.agree(ours, epk)?;
        Ok(Kek::derive(
            KeyAgreementAlg::EcdhEsA256kw,
            &[&ze[..]],
            apu,
            apv,
            None,
        ))
    }

    /// Recipient side of ECDH-1PU+A256KW: Ze from our key and `epk`, Zs from our key and the
    /// sender's static key (cached per key pair).
    #[allow(clippy::too_many_arguments)]
    pub fn kek_1pu(
        &self,
        ours: &PublicKey,
        epk: &PublicKey,
        sender: &PublicKey,
        apu: &[u8],
        apv: &[u8],
        tag: &[u8],
    ) -> Result<Kek, KeyError> {
        let ze = self.agree(ours, epk)?;
        let zs = self.static_agreement(ours, sender)?;
        Ok(Kek::derive(
            KeyAgreementAlg::Ecdh1puA256kw,
            &[&ze[..], &zs[..]],
            apu,
            apv,
            Some(tag),
        ))
    }
}

/// X25519 with a peer public key; refuses non-contributory (low-order) results.
pub(super) fn dh(secret: &StaticSecret, peer: &PublicKey) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    if peer.kind != KeyType::X25519 {
        return Err(KeyError::WrongKeyType(*peer, peer.kind));
    }
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(peer.bytes));
    if !shared.was_contributory() {
        return Err(KeyError::NonContributory(*peer));
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// A 256-bit key-encryption key derived for one recipient of one message.
pub struct Kek(Zeroizing<[u8; 32]>);

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek([redacted])")
    }
}

impl Kek {
    /// Concat KDF with SHA-256: one round gives the 256 bits A256KW needs.
    /// OtherInfo = AlgorithmID ‖ PartyUInfo ‖ PartyVInfo ‖ SuppPubInfo, each a 32-bit
    /// big-endian length and the bytes, except keydatalen (a bare 32-bit 256); for ECDH-1PU the
    /// content tag follows keydatalen, length-prefixed.
    fn derive(
        alg: KeyAgreementAlg,
        z: &[&[u8]],
        apu: &[u8],
        apv: &[u8],
        tag: Option<&[u8]>,
    ) -> Kek {
        let mut hash = Sha256::new();
        hash.update(1u32.to_be_bytes());
        for part in z {
            hash.update(part);
        }
        for field in [alg.name().as_bytes(), apu, apv] {
            hash.update((field.len() as u32).to_be_bytes());
            hash.update(field);
        }
        hash.update(256u32.to_be_bytes());
        if let Some(tag) = tag {
            hash.update((tag.len() as u32).to_be_bytes());
            hash.update(tag);
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&hash.finalize());
        Kek(key)
    }

    /// Wraps a content key (RFC 3394).
    pub fn wrap(&self, cek: &Cek) -> Vec<u8> {
        aes_kw::KekAes256::new(self.0[..].into())
            .wrap_vec(cek.bytes())
            .expect("a 32 or 64 byte content key is a whole number of 64-bit blocks")
    }

    /// Unwraps a content key for `enc`, checking the RFC 3394 integrity value and the length.
    pub fn unwrap(&self, wrapped: &[u8], enc: ContentEnc) -> Result<Cek, KeyError> {
        if wrapped.len() != enc.key_len() + 8 {
            return Err(KeyError::BadWrappedKeyLength(wrapped.len()));
        }
        let key = aes_kw::KekAes256::new(self.0[..].into())
            .unwrap_vec(wrapped)
            .map_err(|_| KeyError::UnwrapFailed)?;
        Cek::from_bytes(enc, Zeroizing::new(key))
    }
}

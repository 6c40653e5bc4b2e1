//! Decentralized identifiers: the DID document model, `did:key` (W3C CCG did:key, Ed25519 and
//! X25519), `did:peer:2` (Peer DID Method, numalgo 2, clarified 2023 rules) and resolution
//! through the [`DidResolver`] trait, which `did:web` will implement over HTTPS.

mod document;
mod key;
mod peer;
mod resolver;

pub use document::{
    DidCommService, DidDocument, Service, VerificationMethod, VerificationRelationship,
};
pub use key::{did_key, resolve_did_key};
pub use peer::{did_peer_2, did_peer_3_of, resolve_did_peer_2, PeerDidSpec, PeerService};
pub use resolver::{resolve_local, DidResolver, Resolver, StaticResolver};

use crate::keys::{KeyType, PublicKey};

/// Longest DID this crate will parse.
pub const MAX_DID_LEN: usize = 8 * 1024;

/// Why a DID could not be created, parsed or resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DidError {
    #[error("{0:?} is not a DID")]
    NotADid(String),
    #[error("DID method {0:?} is not supported")]
    UnsupportedMethod(String),
    #[error("DID is {0} bytes, over the limit of {MAX_DID_LEN}")]
    TooLong(usize),
    #[error("invalid did:key: {0}")]
    BadDidKey(String),
    #[error("invalid did:peer:2: {0}")]
    BadPeerDid(String),
    #[error("invalid multikey {value:?}: {reason}")]
    BadMultikey { value: String, reason: &'static str },
    #[error("invalid key: {0}")]
    BadKey(String),
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    #[error("DID {0} could not be resolved: {1}")]
    NotFound(String, String),
}

const ED25519_CODEC: [u8; 2] = [0xed, 0x01];
const X25519_CODEC: [u8; 2] = [0xec, 0x01];

/// `z` + base58btc(multicodec varint ‖ key): the Multikey encoding of a public key.
pub fn multikey_encode(key: &PublicKey) -> String {
    let codec = match key.kind {
        KeyType::Ed25519 => ED25519_CODEC,
        KeyType::X25519 => X25519_CODEC,
    };
    let mut bytes = Vec::with_capacity(34);
    bytes.extend_from_slice(&codec);
    bytes.extend_from_slice(&key.bytes);
    format!("z{}", bs58::encode(bytes).into_string())
}

/// Parses a Multikey value (base58btc multibase of a multicodec-prefixed key).
pub fn multikey_decode(value: &str) -> Result<PublicKey, DidError> {
    let bad = |reason| DidError::BadMultikey {
        value: value.chars().take(80).collect(),
        reason,
    };
    let encoded = value
        .strip_prefix('z')
        .ok_or_else(|| bad("not base58btc multibase (no 'z' prefix)"))?;
    if encoded.len() > 64 {
        return Err(bad("too long"));
    }
    let bytes = bs58::decode(encoded)
        .into_vec()
        .map_err(|_| bad("not base58btc"))?;
    let (kind, key) = match bytes.split_at_checked(2) {
        Some((codec, key)) if codec == ED25519_CODEC => (KeyType::Ed25519, key),
        Some((codec, key)) if codec == X25519_CODEC => (KeyType::X25519, key),
        _ => return Err(bad("multicodec is neither ed25519-pub nor x25519-pub")),
    };
    let bytes: [u8; 32] = key.try_into().map_err(|_| bad("key is not 32 bytes"))?;
    Ok(PublicKey { kind, bytes })
}

/// The DID part of a DID URL (everything before `#`, `?` or `/` after the method).
pub fn did_of(kid: &str) -> &str {
    let end = kid.find(['#', '?']).unwrap_or(kid.len());
    &kid[..end]
}

/// Splits `did:method:rest`, checking the DID syntax loosely and the length limit.
fn method_of(did: &str) -> Result<&str, DidError> {
    if did.len() > MAX_DID_LEN {
        return Err(DidError::TooLong(did.len()));
    }
    let mut parts = did.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("did"), Some(method), Some(rest))
            if !method.is_empty()
                && !rest.is_empty()
                && method
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) =>
        {
            Ok(method)
        }
        _ => Err(DidError::NotADid(did.chars().take(80).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multikey_round_trips_and_refuses_junk() {
        for key in [PublicKey::ed25519([3; 32]), PublicKey::x25519([4; 32])] {
            assert_eq!(multikey_decode(&multikey_encode(&key)), Ok(key));
        }
        assert!(multikey_encode(&PublicKey::ed25519([3; 32])).starts_with("z6Mk"));
        assert!(multikey_encode(&PublicKey::x25519([3; 32])).starts_with("z6LS"));
        for junk in [
            "",
            "z",
            "u6Mk",
            "z0OIl",
            "z6Mkj3PUd1WjvaDhNZhhhXQdz5UnZXmS7ehtx8bsPpD47k",
        ] {
            assert!(multikey_decode(junk).is_err(), "{junk:?} was accepted");
        }
    }

    #[test]
    fn did_of_strips_fragments_and_queries() {
        assert_eq!(did_of("did:key:z6Mk#z6LS"), "did:key:z6Mk");
        assert_eq!(did_of("did:peer:2.Ez6LS?x=1"), "did:peer:2.Ez6LS");
        assert_eq!(did_of("did:web:example.com"), "did:web:example.com");
    }
}

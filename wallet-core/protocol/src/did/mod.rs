//! Decentralized identifiers: the DID document model, `did:key` (W3C CCG did:key, Ed25519 and
//! X25519), `did:peer:2` (Peer DID Method, numalgo 2, clarified 2023 rules) and resolution
//! through the [`DidResolver`] trait; [`HttpResolver`] resolves `did:web` through the
//! hardened [`crate::net::HttpClient`].

mod document;
mod key;
mod peer;
mod resolver;
mod web;

pub use document::{
    DidCommEndpoint, DidCommService, DidDocument, Service, ServiceEndpoint, VerificationMethod,
    VerificationRelationship,
};
pub use key::{did_key, resolve_did_key};
pub use peer::{
    canonical_key_id, did_peer_2, did_peer_3_of, resolve_did_peer_2, PeerDidSpec, PeerService,
};
pub use resolver::{resolve_local, DidResolver, Resolver, StaticResolver};
pub use web::{did_web_document_url, did_web_from_url, HttpResolver};

use crate::keys::{KeyType, PublicKey};

/// Longest DID this crate will parse.
pub const MAX_DID_LEN: usize = 8 * 1024;

/// Why a DID could not be parsed or resolved, or a key could not be read from a document.
/// Every message names the input that was wrong (shortened to 80 characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DidError {
    /// Not of the form `did:<method>:<method-specific-id>`.
    #[error("{0:?} is not a DID (did:<method>:<id>)")]
    NotADid(String),
    /// A method (or did:peer numalgo, as `peer:N`) this crate cannot resolve.
    #[error("DID method {0:?} is not supported")]
    UnsupportedMethod(String),
    /// Longer than [`MAX_DID_LEN`].
    #[error("DID is {0} bytes, over the limit of {MAX_DID_LEN}")]
    TooLong(usize),
    /// A did:key whose multikey is not an Ed25519 or X25519 key.
    #[error("invalid did:key: {0}")]
    BadDidKey(String),
    /// A did:peer:2 that does not decode (what is wrong is said).
    #[error("did:peer:2 {0}")]
    BadPeerDid(String),
    /// A multibase multikey that does not decode to a key of a known codec.
    #[error("invalid multikey {value:?}: {reason}")]
    BadMultikey {
        /// The multikey, shortened.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A verification method whose key material is missing or malformed.
    #[error("invalid key: {0}")]
    BadKey(String),
    /// A verification method of a type or curve this crate does not use.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// The DID (first) could not be resolved, for the reason second.
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
    let bad = |reason: String| DidError::BadMultikey {
        value: shorten(value),
        reason,
    };
    let encoded = value
        .strip_prefix('z')
        .ok_or_else(|| bad("not base58btc multibase (no 'z' prefix)".to_string()))?;
    // 34 bytes take at most 47 base58 characters; refuse long input before decoding it.
    if encoded.len() > 64 {
        return Err(bad(format!(
            "{} characters, too long for a key",
            value.len()
        )));
    }
    let bytes = bs58::decode(encoded)
        .into_vec()
        .map_err(|e| bad(format!("not base58btc: {e}")))?;
    let (kind, key) = match bytes.split_at_checked(2) {
        Some((codec, key)) if codec == ED25519_CODEC => (KeyType::Ed25519, key),
        Some((codec, key)) if codec == X25519_CODEC => (KeyType::X25519, key),
        Some((codec, _)) => {
            return Err(bad(format!(
            "multicodec prefix {:02x}{:02x} is neither ed25519-pub (ed01) nor x25519-pub (ec01)",
            codec[0], codec[1]
        )))
        }
        None => return Err(bad(format!("{} bytes, too short for a key", bytes.len()))),
    };
    let bytes: [u8; 32] = key
        .try_into()
        .map_err(|_| bad(format!("{kind:?} key is {} bytes, not 32", key.len())))?;
    Ok(PublicKey { kind, bytes })
}

/// The DID a DID URL (a kid such as `did:peer:2…#key-1`) belongs to: everything before the
/// first `#`, `?` or `/`.
pub fn did_of(kid: &str) -> &str {
    let end = kid.find(['#', '?', '/']).unwrap_or(kid.len());
    &kid[..end]
}

/// At most 80 characters of `text`, for error messages about untrusted input.
pub(crate) fn shorten(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// The method of `did:method:rest`, checking the DID syntax loosely and the length limit.
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
        _ => Err(DidError::NotADid(shorten(did))),
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
        let with_codec = |codec: &[u8], len: usize| {
            let mut bytes = codec.to_vec();
            bytes.resize(codec.len() + len, 7);
            format!("z{}", bs58::encode(bytes).into_string())
        };
        let cases = [
            ("".to_string(), "no 'z' prefix"),
            ("u7QEDAw".to_string(), "no 'z' prefix"),
            ("z".to_string(), "0 bytes, too short"),
            ("z0OIl".to_string(), "not base58btc"),
            (format!("z{}", "1".repeat(70)), "too long"),
            (with_codec(&[0x12, 0x20], 32), "multicodec prefix 1220"),
            (with_codec(&[0xe7, 0x01], 33), "multicodec prefix e701"),
            (
                with_codec(&ED25519_CODEC, 31),
                "Ed25519 key is 31 bytes, not 32",
            ),
            (
                with_codec(&X25519_CODEC, 33),
                "X25519 key is 33 bytes, not 32",
            ),
        ];
        for (junk, expected) in cases {
            match multikey_decode(&junk) {
                Ok(key) => panic!("{junk:?} was accepted as {key:?}"),
                Err(error) => assert!(
                    error.to_string().contains(expected),
                    "{junk:?}: error {:?} does not say {expected:?}",
                    error.to_string()
                ),
            }
        }
    }

    #[test]
    fn did_of_strips_fragments_and_queries() {
        assert_eq!(did_of("did:key:z6Mk#z6LS"), "did:key:z6Mk");
        assert_eq!(did_of("did:peer:2.Ez6LS?x=1"), "did:peer:2.Ez6LS");
        assert_eq!(did_of("did:web:example.com"), "did:web:example.com");
        assert_eq!(did_of("did:example:alice/path#x"), "did:example:alice");
        assert_eq!(did_of(""), "");
    }

    #[test]
    fn dids_are_checked_for_shape_and_length() {
        for bad in [
            "",
            "did",
            "did:",
            "did:key",
            "did:key:",
            "DID:key:z",
            "did:Key:z",
            "x:key:z",
        ] {
            assert!(
                matches!(method_of(bad), Err(DidError::NotADid(_))),
                "{bad:?} was taken for a DID"
            );
        }
        assert_eq!(method_of("did:peer:2.Ez"), Ok("peer"));
        let long = format!("did:peer:2.{}", "E".repeat(MAX_DID_LEN));
        assert_eq!(method_of(&long), Err(DidError::TooLong(long.len())));
        let message = DidError::NotADid(shorten(&"x".repeat(500))).to_string();
        assert!(
            message.len() < 200,
            "error message not shortened: {message}"
        );
    }
}

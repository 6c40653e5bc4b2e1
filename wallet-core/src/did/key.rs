//! `did:key` (W3C CCG did:key Method v0.7): the DID is the Multikey of one public key, and
//! its document is derived from it; an Ed25519 key also lists its X25519 counterpart for key
//! agreement.

use super::document::{DidDocument, VerificationMethod, VerificationRelationship};
use super::{method_of, multikey_decode, multikey_encode, DidError};
use crate::keys::{KeyType, PublicKey};

/// The did:key of a public key.
pub fn did_key(key: &PublicKey) -> String {
    format!("did:key:{}", multikey_encode(key))
}

fn multikey_method(did: &str, key: &PublicKey) -> VerificationMethod {
    let multibase = multikey_encode(key);
    VerificationMethod {
        id: format!("{did}#{multibase}"),
        type_: "Multikey".to_string(),
        controller: did.to_string(),
        public_key_multibase: Some(multibase),
        public_key_jwk: None,
        public_key_base58: None,
    }
}

/// Resolves a did:key to its document (Multikey verification methods, absolute ids).
pub fn resolve_did_key(did: &str) -> Result<DidDocument, DidError> {
    if method_of(did)? != "key" {
        return Err(DidError::BadDidKey(format!("{did} is not a did:key")));
    }
    let multibase = &did["did:key:".len()..];
    if multibase.contains(['#', '?', '/']) {
        return Err(DidError::BadDidKey(format!(
            "{did} is a DID URL, not a DID"
        )));
    }
    let key = multikey_decode(multibase)?;
    let own = multikey_method(did, &key);
    let reference = || VerificationRelationship::Reference(own.id.clone());
    let mut doc = DidDocument::new(did);
    match key.kind {
        KeyType::Ed25519 => {
            let agreement = key.ed25519_to_x25519().ok_or_else(|| {
                DidError::BadDidKey(format!("{did}: the Ed25519 key is not a curve point"))
            })?;
            let agreement = multikey_method(did, &agreement);
            doc.authentication = vec![reference()];
            doc.assertion_method = vec![reference()];
            doc.capability_invocation = vec![reference()];
            doc.capability_delegation = vec![reference()];
            doc.key_agreement = vec![VerificationRelationship::Reference(agreement.id.clone())];
            doc.verification_method = vec![own, agreement];
        }
        KeyType::X25519 => {
            doc.key_agreement = vec![reference()];
            doc.verification_method = vec![own];
        }
    }
    Ok(doc)
}

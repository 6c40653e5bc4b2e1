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
        return Err(DidError::BadDidKey(format!(
            "{:?} is not a did:key",
            super::shorten(did)
        )));
    }
    let multibase = &did["did:key:".len()..];
    if multibase.contains(['#', '?', '/']) {
        return Err(DidError::BadDidKey(format!(
            "{:?} is a DID URL, not a DID",
            super::shorten(did)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_did_keys_list_both_keys_under_absolute_ids() {
        let key = PublicKey::ed25519(
            ed25519_dalek::SigningKey::from_bytes(&[1; 32])
                .verifying_key()
                .to_bytes(),
        );
        let did = did_key(&key);
        let doc = resolve_did_key(&did).expect("resolves");
        let agreement = key.ed25519_to_x25519().expect("a curve point");
        let ed_id = format!("{did}#{}", multikey_encode(&key));
        let x_id = format!("{did}#{}", multikey_encode(&agreement));
        assert_eq!(doc.authentication_keys(), [(ed_id.clone(), key)]);
        assert_eq!(doc.key_agreement_keys(), [(x_id.clone(), agreement)]);
        for (name, relationship) in [
            ("assertionMethod", &doc.assertion_method),
            ("capabilityInvocation", &doc.capability_invocation),
            ("capabilityDelegation", &doc.capability_delegation),
        ] {
            assert_eq!(
                relationship,
                &vec![VerificationRelationship::Reference(ed_id.clone())],
                "{name} differs"
            );
        }
        assert_eq!(doc.find_key(&x_id), Some(agreement));
    }

    #[test]
    fn bad_did_keys_are_refused_by_name() {
        // An Ed25519 "key" that is not a point on the curve has no X25519 counterpart.
        let off_curve = (0..=255u8)
            .map(|b| PublicKey::ed25519([b; 32]))
            .find(|k| k.ed25519_to_x25519().is_none())
            .expect("some byte pattern is off the curve");
        let cases = [
            (did_key(&off_curve), "not a curve point"),
            (
                format!("{}#frag", did_key(&PublicKey::x25519([1; 32]))),
                "DID URL",
            ),
            ("did:peer:2.Ez6LS".to_string(), "is not a did:key"),
            ("did:key:z6Mk".to_string(), "invalid multikey"),
            ("did:key:".to_string(), "is not a DID"),
        ];
        for (did, expected) in cases {
            match resolve_did_key(&did) {
                Ok(doc) => panic!("{did} was accepted as {doc:?}"),
                Err(error) => assert!(
                    error.to_string().contains(expected),
                    "{did}: error {:?} does not say {expected:?}",
                    error.to_string()
                ),
            }
        }
    }
}

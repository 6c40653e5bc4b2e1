//! `did:peer:2` (Peer DID Method spec, numalgo 2, with the 2023 clarifications: `#key-N` ids,
//! Multikey methods, abbreviated services, `#service` ids) and its `did:peer:3` short form.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::document::{DidDocument, Service, VerificationMethod, VerificationRelationship};
use super::{method_of, multikey_decode, multikey_encode, DidError};
use crate::encoding::{b64u_decode, b64u_encode};
use crate::keys::PublicKey;

const PREFIX: &str = "did:peer:2";

/// A DIDComm service to encode in a did:peer:2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerService {
    /// Transport URI, or the DID of a mediator.
    pub uri: String,
    pub routing_keys: Vec<String>,
    pub accept: Vec<String>,
}

/// The keys and services of a did:peer:2 to create.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerDidSpec {
    /// Purpose `V`: authentication keys (Ed25519).
    pub authentication: Vec<PublicKey>,
    /// Purpose `E`: key-agreement keys (X25519).
    pub key_agreement: Vec<PublicKey>,
    pub services: Vec<PeerService>,
}

/// The abbreviated compact JSON of a service, members in the spec's order.
fn abbreviate(service: &PeerService) -> String {
    let mut endpoint = format!("{{\"uri\":{}", Value::String(service.uri.clone()));
    if !service.accept.is_empty() {
        endpoint.push_str(&format!(",\"a\":{}", Value::from(service.accept.clone())));
    }
    if !service.routing_keys.is_empty() {
        endpoint.push_str(&format!(
            ",\"r\":{}",
            Value::from(service.routing_keys.clone())
        ));
    }
    format!("{{\"t\":\"dm\",\"s\":{endpoint}}}}}")
}

/// Encodes a did:peer:2: authentication keys (`V`), then key-agreement keys (`E`), then
/// services (`S`), the order the spec's examples use.
pub fn did_peer_2(spec: &PeerDidSpec) -> String {
    let mut did = PREFIX.to_string();
    for key in &spec.authentication {
        did.push_str(".V");
        did.push_str(&multikey_encode(key));
    }
    for key in &spec.key_agreement {
        did.push_str(".E");
        did.push_str(&multikey_encode(key));
    }
    for service in &spec.services {
        did.push_str(".S");
        did.push_str(&b64u_encode(abbreviate(service)));
    }
    did
}

/// The did:peer:3 of a did:peer:2: `did:peer:3z` + base58btc(sha2-256 multihash of the
/// did:peer:2 after its `did:peer:2` prefix).
pub fn did_peer_3_of(did: &str) -> String {
    let suffix = did.strip_prefix(PREFIX).unwrap_or(did);
    let mut multihash = vec![0x12, 0x20];
    multihash.extend_from_slice(&Sha256::digest(suffix.as_bytes()));
    format!("did:peer:3z{}", bs58::encode(multihash).into_string())
}

/// Expands the service abbreviations key by key, recursively, keeping the structure.
fn expand(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, value) in map {
                let key = match key.as_str() {
                    "t" => "type".to_string(),
                    "s" => "serviceEndpoint".to_string(),
                    "r" => "routingKeys".to_string(),
                    "a" => "accept".to_string(),
                    _ => key,
                };
                let value = if key == "type" && value == "dm" {
                    Value::String("DIDCommMessaging".to_string())
                } else {
                    expand(value)
                };
                out.insert(key, value);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(expand).collect()),
        other => other,
    }
}

/// Resolves a did:peer:2 to its document.
pub fn resolve_did_peer_2(did: &str) -> Result<DidDocument, DidError> {
    if method_of(did)? != "peer" {
        return Err(DidError::BadPeerDid(format!("{did} is not a did:peer")));
    }
    let elements = did
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.strip_prefix('.'))
        .ok_or_else(|| DidError::BadPeerDid("does not start with did:peer:2.".into()))?;
    let mut doc = DidDocument {
        also_known_as: vec![did_peer_3_of(did)],
        ..DidDocument::new(did)
    };
    for (index, element) in elements.split('.').enumerate() {
        let number = index + 1;
        let mut chars = element.chars();
        let purpose = chars
            .next()
            .ok_or_else(|| DidError::BadPeerDid(format!("element {number} is empty")))?;
        let value = chars.as_str();
        if purpose == 'S' {
            let bytes = b64u_decode(value).map_err(|_| {
                DidError::BadPeerDid(format!("service element {number} is not base64url"))
            })?;
            let json: Value = serde_json::from_slice(&bytes).map_err(|e| {
                DidError::BadPeerDid(format!("service element {number} is not JSON: {e}"))
            })?;
            if !json.is_object() {
                return Err(DidError::BadPeerDid(format!(
                    "service element {number} is not a JSON object"
                )));
            }
            let mut expanded = expand(json);
            let object = expanded.as_object_mut().expect("expand keeps objects");
            if !object.contains_key("id") {
                let id = match doc.service.len() {
                    0 => "#service".to_string(),
                    n => format!("#service-{n}"),
                };
                object.insert("id".to_string(), Value::String(id));
            }
            let service: Service = serde_json::from_value(expanded)
                .map_err(|e| DidError::BadPeerDid(format!("service element {number}: {e}")))?;
            doc.service.push(service);
            continue;
        }
        let relationship = match purpose {
            'A' => &mut doc.assertion_method,
            'E' => &mut doc.key_agreement,
            'V' => &mut doc.authentication,
            'I' => &mut doc.capability_invocation,
            'D' => &mut doc.capability_delegation,
            other => {
                return Err(DidError::BadPeerDid(format!(
                    "element {number} has unknown purpose letter {other:?}"
                )))
            }
        };
        let key = multikey_decode(value)?;
        let id = format!("#key-{}", doc.verification_method.len() + 1);
        relationship.push(VerificationRelationship::Reference(id.clone()));
        doc.verification_method.push(VerificationMethod {
            id,
            type_: "Multikey".to_string(),
            controller: did.to_string(),
            public_key_multibase: Some(multikey_encode(&key)),
            public_key_jwk: None,
            public_key_base58: None,
        });
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyType;

    #[test]
    fn key_ids_count_keys_not_services() {
        let spec = PeerDidSpec {
            authentication: vec![PublicKey::ed25519([9; 32])],
            key_agreement: vec![PublicKey::x25519([8; 32]), PublicKey::x25519([7; 32])],
            services: vec![PeerService {
                uri: "https://mediator.example/didcomm".into(),
                routing_keys: vec![],
                accept: vec!["didcomm/v2".into()],
            }],
        };
        let did = did_peer_2(&spec);
        let doc = resolve_did_peer_2(&did).unwrap();
        let agreement: Vec<String> = doc
            .key_agreement_keys()
            .iter()
            .map(|(id, _)| id.clone())
            .collect();
        assert_eq!(
            agreement,
            vec![format!("{did}#key-2"), format!("{did}#key-3")]
        );
        assert_eq!(doc.authentication_keys()[0].1.kind, KeyType::Ed25519);
        let services = doc.didcomm_services();
        assert_eq!(services[0].uri, "https://mediator.example/didcomm");
        assert_eq!(services[0].id, format!("{did}#service"));
    }

    #[test]
    fn malformed_peer_dids_are_refused_by_name() {
        let cases = [
            ("did:peer:2", "does not start"),
            ("did:peer:2.", "element 1 is empty"),
            ("did:peer:2.Xz6Mk", "unknown purpose letter 'X'"),
            ("did:peer:2.Vnotmultibase", "invalid multikey"),
            ("did:peer:2.S!!!", "not base64url"),
            ("did:peer:2.SWzFd", "not a JSON object"),
        ];
        for (did, expected) in cases {
            let error = resolve_did_peer_2(did).unwrap_err().to_string();
            assert!(error.contains(expected), "{did}: {error}");
        }
    }
}

//! The DID document model (DID Core 1.0 §5) as DIDComm peers exchange it: verification
//! methods referenced or embedded in relationships, keys as Multikey, the 2020/2018 suites or
//! JsonWebKey2020, and DIDCommMessaging services in both the v2.0 and v2.1 shapes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{multikey_decode, DidError};
use crate::encoding::b64u_decode;
use crate::keys::{KeyType, PublicKey};

/// A DID document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DidDocument {
    #[serde(rename = "@context", default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<String>,
    pub id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_known_as: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verification_method: Vec<VerificationMethod>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authentication: Vec<VerificationRelationship>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assertion_method: Vec<VerificationRelationship>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_agreement: Vec<VerificationRelationship>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capability_invocation: Vec<VerificationRelationship>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capability_delegation: Vec<VerificationRelationship>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service: Vec<Service>,
    /// Keys decoded once per document (envelopes look them up on every message).
    #[serde(skip)]
    pub(crate) keys: KeyCache,
}

/// The decoded keys of a document's relationships, computed on first use. It never takes
/// part in equality, and a clone starts empty (the clone may be edited).
#[derive(Default)]
pub(crate) struct KeyCache(std::sync::OnceLock<KeyIndex>);

impl Clone for KeyCache {
    fn clone(&self) -> Self {
        KeyCache::default()
    }
}

impl PartialEq for KeyCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyCache")
    }
}

struct KeyIndex {
    authentication: Vec<(String, PublicKey)>,
    assertion: Vec<(String, PublicKey)>,
    key_agreement: Vec<(String, PublicKey)>,
    /// Every method, listed or embedded, by absolute id.
    all: Vec<(String, PublicKey)>,
}

/// A verification method.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMethod {
    pub id: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub controller: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_multibase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_jwk: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_base58: Option<String>,
}

impl VerificationMethod {
    /// The key this method carries, in whichever encoding its type uses.
    pub fn public_key(&self) -> Result<PublicKey, DidError> {
        if let Some(multibase) = &self.public_key_multibase {
            return multikey_decode(multibase);
        }
        if let Some(jwk) = &self.public_key_jwk {
            let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or_default();
            let crv = jwk.get("crv").and_then(Value::as_str).unwrap_or_default();
            let kind = match (kty, crv) {
                ("OKP", "Ed25519") => KeyType::Ed25519,
                ("OKP", "X25519") => KeyType::X25519,
                _ => {
                    return Err(DidError::UnsupportedKey(format!(
                        "{}: JWK {kty}/{crv}",
                        self.id
                    )))
                }
            };
            let x = jwk
                .get("x")
                .and_then(Value::as_str)
                .ok_or_else(|| DidError::BadKey(format!("{}: JWK has no x", self.id)))?;
            let bytes = b64u_decode(x)
                .map_err(|_| DidError::BadKey(format!("{}: JWK x is not base64url", self.id)))?;
            return key_from(kind, &bytes, &self.id);
        }
        if let Some(base58) = &self.public_key_base58 {
            let kind = match self.type_.as_str() {
                "Ed25519VerificationKey2018" | "Ed25519VerificationKey2020" => KeyType::Ed25519,
                "X25519KeyAgreementKey2019" | "X25519KeyAgreementKey2020" => KeyType::X25519,
                other => {
                    return Err(DidError::UnsupportedKey(format!(
                        "{}: publicKeyBase58 of type {other}",
                        self.id
                    )))
                }
            };
            let bytes = bs58::decode(base58)
                .into_vec()
                .map_err(|_| DidError::BadKey(format!("{}: bad publicKeyBase58", self.id)))?;
            return key_from(kind, &bytes, &self.id);
        }
        Err(DidError::BadKey(format!(
            "{}: no public key material",
            self.id
        )))
    }
}

fn key_from(kind: KeyType, bytes: &[u8], id: &str) -> Result<PublicKey, DidError> {
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| DidError::BadKey(format!("{id}: key is {} bytes, not 32", bytes.len())))?;
    Ok(PublicKey { kind, bytes })
}

/// A verification relationship entry: a reference to a method, or the method itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum VerificationRelationship {
    Reference(String),
    Embedded(VerificationMethod),
}

impl VerificationRelationship {
    /// The id of the method this entry names or embeds, as written.
    pub fn id(&self) -> &str {
        match self {
            VerificationRelationship::Reference(id) => id,
            VerificationRelationship::Embedded(method) => &method.id,
        }
    }
}

/// A service entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type")]
    pub type_: Value,
    pub service_endpoint: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_keys: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<Vec<String>>,
}

/// A DIDComm messaging service, normalised from either shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DidCommService {
    pub id: String,
    pub uri: String,
    pub routing_keys: Vec<String>,
    pub accept: Vec<String>,
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl DidDocument {
    /// An empty document for `id` with the DID and Multikey contexts.
    pub fn new(id: &str) -> DidDocument {
        DidDocument {
            context: vec![
                "https://www.w3.org/ns/did/v1".to_string(),
                "https://w3id.org/security/multikey/v1".to_string(),
            ],
            id: id.to_string(),
            also_known_as: Vec::new(),
            verification_method: Vec::new(),
            authentication: Vec::new(),
            assertion_method: Vec::new(),
            key_agreement: Vec::new(),
            capability_invocation: Vec::new(),
            capability_delegation: Vec::new(),
            service: Vec::new(),
            keys: KeyCache::default(),
        }
    }

    /// `#key-1` → `<did>#key-1`; absolute ids are returned unchanged.
    pub fn absolute_id(&self, id: &str) -> String {
        if id.starts_with('#') {
            format!("{}{}", self.id, id)
        } else {
            id.to_string()
        }
    }

    fn index(&self) -> &KeyIndex {
        self.keys.0.get_or_init(|| KeyIndex {
            authentication: self.relationship_keys(&self.authentication, KeyType::Ed25519),
            assertion: self.relationship_keys(&self.assertion_method, KeyType::Ed25519),
            key_agreement: self.relationship_keys(&self.key_agreement, KeyType::X25519),
            all: self.all_methods(),
        })
    }

    /// Every verification method: listed ones, then those embedded in relationships.
    fn methods(&self) -> impl Iterator<Item = &VerificationMethod> {
        let embedded = self.relationships().filter_map(|r| match r {
            VerificationRelationship::Embedded(m) => Some(m),
            VerificationRelationship::Reference(_) => None,
        });
        self.verification_method.iter().chain(embedded)
    }

    fn all_methods(&self) -> Vec<(String, PublicKey)> {
        self.methods()
            .filter_map(|m| Some((self.absolute_id(&m.id), m.public_key().ok()?)))
            .collect()
    }

    fn relationships(&self) -> impl Iterator<Item = &VerificationRelationship> {
        [
            &self.authentication,
            &self.assertion_method,
            &self.key_agreement,
            &self.capability_invocation,
            &self.capability_delegation,
        ]
        .into_iter()
        .flatten()
    }

    fn method_by_id(&self, id: &str) -> Option<&VerificationMethod> {
        let wanted = self.absolute_id(id);
        self.methods().find(|m| self.absolute_id(&m.id) == wanted)
    }

    fn relationship_keys(
        &self,
        relationship: &[VerificationRelationship],
        kind: KeyType,
    ) -> Vec<(String, PublicKey)> {
        relationship
            .iter()
            .filter_map(|entry| {
                let method = match entry {
                    VerificationRelationship::Reference(id) => self.method_by_id(id)?,
                    VerificationRelationship::Embedded(method) => method,
                };
                let key = method.public_key().ok()?;
                (key.kind == kind).then(|| (self.absolute_id(&method.id), key))
            })
            .collect()
    }

    /// X25519 keys for key agreement, with absolute ids, in document order.
    pub fn key_agreement_keys(&self) -> &[(String, PublicKey)] {
        &self.index().key_agreement
    }

    /// Ed25519 keys for authentication, with absolute ids.
    pub fn authentication_keys(&self) -> &[(String, PublicKey)] {
        &self.index().authentication
    }

    /// Ed25519 keys for assertions (credential proofs), with absolute ids.
    pub fn assertion_keys(&self) -> &[(String, PublicKey)] {
        &self.index().assertion
    }

    /// The key a kid (absolute or relative) names, wherever the method is listed.
    pub fn find_key(&self, kid: &str) -> Option<PublicKey> {
        let index = self.index();
        let found = if kid.starts_with('#') {
            let fragment = kid;
            index
                .all
                .iter()
                .find(|(id, _)| id.strip_prefix(self.id.as_str()) == Some(fragment))
        } else {
            index.all.iter().find(|(id, _)| id == kid)
        };
        found.map(|(_, key)| *key)
    }

    /// The DIDCommMessaging services, in either the v2.1 (`serviceEndpoint` object) or v2.0
    /// (URI string with `routingKeys`/`accept` beside it) shape.
    pub fn didcomm_services(&self) -> Vec<DidCommService> {
        self.service
            .iter()
            .filter(|s| {
                s.type_ == "DIDCommMessaging"
                    || s.type_
                        .as_array()
                        .is_some_and(|t| t.iter().any(|t| t == "DIDCommMessaging"))
            })
            .filter_map(|s| {
                let (uri, routing_keys, accept) = match &s.service_endpoint {
                    Value::String(uri) => (
                        uri.clone(),
                        s.routing_keys.clone().unwrap_or_default(),
                        s.accept.clone().unwrap_or_default(),
                    ),
                    Value::Object(endpoint) => (
                        endpoint.get("uri")?.as_str()?.to_string(),
                        strings(endpoint.get("routingKeys")),
                        strings(endpoint.get("accept")),
                    ),
                    _ => return None,
                };
                Some(DidCommService {
                    id: self.absolute_id(&s.id),
                    uri,
                    routing_keys,
                    accept,
                })
            })
            .collect()
    }

    /// A copy with every verification method as `JsonWebKey2020` (`publicKeyJwk`) under an
    /// absolute id, and every relationship referencing absolute ids, as independent DIDComm
    /// libraries want their documents.
    pub fn to_jsonwebkey2020(&self) -> DidDocument {
        let convert = |method: &VerificationMethod| -> Option<VerificationMethod> {
            let key = method.public_key().ok()?;
            Some(VerificationMethod {
                id: self.absolute_id(&method.id),
                type_: "JsonWebKey2020".to_string(),
                controller: method.controller.clone(),
                public_key_multibase: None,
                public_key_jwk: Some(key.to_jwk()),
                public_key_base58: None,
            })
        };
        let mut methods: Vec<VerificationMethod> = self
            .verification_method
            .iter()
            .filter_map(convert)
            .collect();
        let mut relationship = |entries: &[VerificationRelationship]| {
            entries
                .iter()
                .filter_map(|entry| match entry {
                    VerificationRelationship::Reference(id) => {
                        Some(VerificationRelationship::Reference(self.absolute_id(id)))
                    }
                    VerificationRelationship::Embedded(method) => {
                        let method = convert(method)?;
                        let id = method.id.clone();
                        if !methods.iter().any(|m| m.id == id) {
                            methods.push(method);
                        }
                        Some(VerificationRelationship::Reference(id))
                    }
                })
                .collect::<Vec<_>>()
        };
        let authentication = relationship(&self.authentication);
        let assertion_method = relationship(&self.assertion_method);
        let key_agreement = relationship(&self.key_agreement);
        let capability_invocation = relationship(&self.capability_invocation);
        let capability_delegation = relationship(&self.capability_delegation);
        let service = self
            .service
            .iter()
            .map(|s| Service {
                id: self.absolute_id(&s.id),
                ..s.clone()
            })
            .collect();
        DidDocument {
            context: vec![
                "https://www.w3.org/ns/did/v1".to_string(),
                "https://w3id.org/security/suites/jws-2020/v1".to_string(),
            ],
            id: self.id.clone(),
            also_known_as: self.also_known_as.clone(),
            verification_method: methods,
            authentication,
            assertion_method,
            key_agreement,
            capability_invocation,
            capability_delegation,
            service,
            keys: KeyCache::default(),
        }
    }
}

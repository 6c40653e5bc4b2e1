//! The DID document model (DID Core 1.0 §5) as DIDComm peers exchange it: verification
//! methods referenced or embedded in relationships, keys as Multikey, the 2020/2018 suites or
//! JsonWebKey2020, and `DIDCommMessaging` services in both the v2.0 and v2.1 shapes.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{multikey_decode, DidError};
use crate::encoding::b64u_decode;
use crate::keys::{KeyType, PublicKey};

/// The DID Core context every document we produce starts with.
pub(crate) const DID_CONTEXT: &str = "https://www.w3.org/ns/did/v1";
/// The context of `Multikey` verification methods (did:key, did:peer:2).
pub(crate) const MULTIKEY_CONTEXT: &str = "https://w3id.org/security/multikey/v1";
/// The context of `JsonWebKey2020` verification methods.
const JWS_2020_CONTEXT: &str = "https://w3id.org/security/suites/jws-2020/v1";

/// A DID document.
///
/// The key lookups ([`DidDocument::key_agreement_keys`] and friends) decode the keys once, on
/// first use, and remember them. Edit a document *before* looking keys up in it, or edit a
/// clone (a clone starts without the remembered keys): a document changed in place after a
/// lookup keeps answering with the keys it had.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DidDocument {
    /// `@context`: read from a string or a list; inline (object) contexts are not kept.
    #[serde(
        rename = "@context",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "context_urls"
    )]
    pub context: Vec<String>,
    /// The DID the document describes.
    pub id: String,
    /// Other identifiers of the same subject.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also_known_as: Vec<String>,
    /// The keys, each with its id (a DID URL).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verification_method: Vec<VerificationMethod>,
    /// Keys that authenticate the subject (sign presentations and JWS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authentication: Vec<VerificationRelationship>,
    /// Keys that sign credentials the subject issues.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assertion_method: Vec<VerificationRelationship>,
    /// Keys to encrypt to (X25519).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_agreement: Vec<VerificationRelationship>,
    /// Keys that invoke capabilities (not used by Lanyard).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capability_invocation: Vec<VerificationRelationship>,
    /// Keys that delegate capabilities (not used by Lanyard).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capability_delegation: Vec<VerificationRelationship>,
    /// Services, DIDComm endpoints among them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service: Vec<Service>,
    /// Keys decoded once per document (envelopes look them up on every message).
    #[serde(skip)]
    pub(crate) keys: KeyCache,
}

/// `@context` as DID Core allows it: one URL, or a list of URLs and inline contexts.
fn context_urls<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(url) => vec![url],
        Value::Array(items) => items
            .into_iter()
            .filter_map(|item| match item {
                Value::String(url) => Some(url),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
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
    /// Every readable method, listed or embedded, by absolute id.
    all: Vec<(String, PublicKey)>,
}

/// A verification method (DID Core §5.2).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMethod {
    /// The method id, a DID URL (`did:...#key-1`).
    pub id: String,
    /// The method type (`Multikey`, `JsonWebKey2020`, `Ed25519VerificationKey2018`...).
    #[serde(rename = "type")]
    pub type_: String,
    /// The DID that controls the key.
    pub controller: String,
    /// The key as a multibase multikey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_multibase: Option<String>,
    /// The key as a JWK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_jwk: Option<Value>,
    /// The key as base58 (the 2018 suites).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_base58: Option<String>,
}

impl VerificationMethod {
    /// The key this method carries, read as its `type` says:
    ///
    /// | type | material |
    /// |---|---|
    /// | `Multikey` | `publicKeyMultibase`, Ed25519 or X25519 multicodec |
    /// | `Ed25519VerificationKey2020`, `X25519KeyAgreementKey2020` | `publicKeyMultibase` of that curve |
    /// | `Ed25519VerificationKey2018`, `X25519KeyAgreementKey2019` | `publicKeyBase58`, raw key of that curve |
    /// | `JsonWebKey2020`, `JsonWebKey` | `publicKeyJwk`, OKP `Ed25519` or `X25519` |
    ///
    /// Other types, other curves (P-256, secp256k1, …) and missing or malformed material are
    /// errors that name the method.
    pub fn public_key(&self) -> Result<PublicKey, DidError> {
        match self.type_.as_str() {
            "Multikey" => self.multibase(None),
            "Ed25519VerificationKey2020" => self.multibase(Some(KeyType::Ed25519)),
            "X25519KeyAgreementKey2020" => self.multibase(Some(KeyType::X25519)),
            "Ed25519VerificationKey2018" => self.base58(KeyType::Ed25519),
            "X25519KeyAgreementKey2019" => self.base58(KeyType::X25519),
            "JsonWebKey2020" | "JsonWebKey" => self.jwk(),
            other => Err(DidError::UnsupportedKey(format!(
                "{}: verification method type {other:?}",
                self.id
            ))),
        }
    }

    fn missing(&self, field: &str) -> DidError {
        DidError::BadKey(format!("{} ({}) has no {field}", self.id, self.type_))
    }

    fn multibase(&self, curve: Option<KeyType>) -> Result<PublicKey, DidError> {
        let value = self
            .public_key_multibase
            .as_deref()
            .ok_or_else(|| self.missing("publicKeyMultibase"))?;
        let key = multikey_decode(value)?;
        match curve {
            Some(curve) if curve != key.kind => Err(DidError::BadKey(format!(
                "{} ({}) carries an {:?} key",
                self.id, self.type_, key.kind
            ))),
            _ => Ok(key),
        }
    }

    fn base58(&self, curve: KeyType) -> Result<PublicKey, DidError> {
        let value = self
            .public_key_base58
            .as_deref()
            .ok_or_else(|| self.missing("publicKeyBase58"))?;
        if value.len() > 64 {
            return Err(DidError::BadKey(format!(
                "{}: publicKeyBase58 is {} characters, too long for a 32-byte key",
                self.id,
                value.len()
            )));
        }
        let bytes = bs58::decode(value).into_vec().map_err(|e| {
            DidError::BadKey(format!(
                "{}: publicKeyBase58 is not base58btc: {e}",
                self.id
            ))
        })?;
        key_from(curve, &bytes, &self.id)
    }

    fn jwk(&self) -> Result<PublicKey, DidError> {
        let jwk = self
            .public_key_jwk
            .as_ref()
            .ok_or_else(|| self.missing("publicKeyJwk"))?;
        let member = |name| jwk.get(name).and_then(Value::as_str);
        let kind = match (member("kty"), member("crv")) {
            (Some("OKP"), Some("Ed25519")) => KeyType::Ed25519,
            (Some("OKP"), Some("X25519")) => KeyType::X25519,
            (kty, crv) => {
                return Err(DidError::UnsupportedKey(format!(
                    "{}: JWK kty {:?} crv {:?} (only OKP Ed25519/X25519)",
                    self.id,
                    kty.unwrap_or("(none)"),
                    crv.unwrap_or("(none)")
                )))
            }
        };
        let x = member("x")
            .ok_or_else(|| DidError::BadKey(format!("{}: JWK has no \"x\"", self.id)))?;
        let bytes = b64u_decode(x).map_err(|e| {
            DidError::BadKey(format!(
                "{}: JWK \"x\" is not unpadded base64url: {e}",
                self.id
            ))
        })?;
        key_from(kind, &bytes, &self.id)
    }
}

fn key_from(kind: KeyType, bytes: &[u8], id: &str) -> Result<PublicKey, DidError> {
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
        DidError::BadKey(format!(
            "{id}: {kind:?} key is {} bytes, not 32",
            bytes.len()
        ))
    })?;
    Ok(PublicKey { kind, bytes })
}

/// A verification relationship entry (DID Core §5.3): a reference to a method, or the method
/// itself (the DIDComm spec's example documents embed them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum VerificationRelationship {
    /// The id (a DID URL) of a method listed in `verificationMethod`.
    Reference(String),
    /// The method itself.
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

/// A service entry (DID Core §5.4). Members other than `id`, `type` and `serviceEndpoint`
/// (the DIDComm v2.0 `routingKeys` and `accept`, or anything another service defines) are
/// kept in `properties`, so a document round-trips whatever services it lists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// The service id (may be relative, `#didcomm-0`).
    #[serde(default)]
    pub id: String,
    /// A string, or a set of strings (DID Core allows both).
    #[serde(rename = "type")]
    pub type_: Value,
    /// Where the service is reached.
    pub service_endpoint: ServiceEndpoint,
    /// Its other members (`routingKeys`, `accept`...), as written.
    #[serde(flatten)]
    pub properties: Map<String, Value>,
}

/// A `serviceEndpoint`: a URI (DIDComm v2.0, with `routingKeys`/`accept` on the service), a
/// DIDComm v2.1 endpoint object, or anything else, kept as it was written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServiceEndpoint {
    /// A URI (DIDComm v2.0: a URL, or a mediator's DID).
    Uri(String),
    /// The DIDComm v2.1 endpoint object.
    DidComm(DidCommEndpoint),
    /// Anything else, kept as written.
    Other(Value),
}

/// The DIDComm Messaging v2.1 endpoint object (`{"uri", "accept", "routingKeys"}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DidCommEndpoint {
    /// The transport URI, or the DID of a mediator.
    pub uri: String,
    /// The DIDComm profiles accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<Vec<String>>,
    /// Mediator keys to wrap forwards for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_keys: Option<Vec<String>>,
    /// Any other member, kept for round trips.
    #[serde(flatten)]
    pub properties: Map<String, Value>,
}

/// A DIDComm messaging service, normalised from either shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DidCommService {
    /// Absolute service id (`<did>#service`).
    pub id: String,
    /// Transport URI, or the DID of a mediator.
    pub uri: String,
    /// Mediator keys (DID URLs) to wrap forwards for, outermost last.
    pub routing_keys: Vec<String>,
    /// The DIDComm profiles accepted.
    pub accept: Vec<String>,
}

impl Service {
    /// Whether `type` is, or lists, `DIDCommMessaging`.
    pub fn is_didcomm(&self) -> bool {
        match &self.type_ {
            Value::String(t) => t == "DIDCommMessaging",
            Value::Array(types) => types.iter().any(|t| t == "DIDCommMessaging"),
            _ => false,
        }
    }

    /// The string list `name` of the service's own members (v2.0 shape), or empty.
    fn strings(&self, name: &str) -> Vec<String> {
        self.properties
            .get(name)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl DidDocument {
    /// An empty document for `id` with the DID and Multikey contexts.
    pub fn new(id: &str) -> DidDocument {
        DidDocument {
            context: vec![DID_CONTEXT.to_string(), MULTIKEY_CONTEXT.to_string()],
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

    /// Whether `id` (relative or absolute) names the same thing as `absolute`.
    fn same_id(&self, id: &str, absolute: &str) -> bool {
        match id.strip_prefix('#') {
            Some(fragment) => {
                absolute
                    .strip_prefix(self.id.as_str())
                    .and_then(|rest| rest.strip_prefix('#'))
                    == Some(fragment)
            }
            None => id == absolute,
        }
    }

    fn index(&self) -> &KeyIndex {
        self.keys.0.get_or_init(|| KeyIndex {
            authentication: self.relationship_keys(&self.authentication, KeyType::Ed25519),
            assertion: self.relationship_keys(&self.assertion_method, KeyType::Ed25519),
            key_agreement: self.relationship_keys(&self.key_agreement, KeyType::X25519),
            all: self
                .methods()
                .filter_map(|m| Some((self.absolute_id(&m.id), m.public_key().ok()?)))
                .collect(),
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
        self.methods().find(|m| self.same_id(&m.id, &wanted))
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

    /// The X25519 keys referenced or embedded in `keyAgreement`, with absolute ids, in
    /// document order. Other curves (P-256, …) and unreadable methods are skipped.
    pub fn key_agreement_keys(&self) -> &[(String, PublicKey)] {
        &self.index().key_agreement
    }

    /// The Ed25519 keys of `authentication`, with absolute ids, in document order.
    pub fn authentication_keys(&self) -> &[(String, PublicKey)] {
        &self.index().authentication
    }

    /// The Ed25519 keys of `assertionMethod` (credential proofs), with absolute ids.
    pub fn assertion_keys(&self) -> &[(String, PublicKey)] {
        &self.index().assertion
    }

    /// The key a kid (absolute, or relative `#…`) names, among the listed methods and those
    /// embedded in any relationship.
    pub fn find_key(&self, kid: &str) -> Option<PublicKey> {
        self.index()
            .all
            .iter()
            .find(|(id, _)| self.same_id(kid, id))
            .map(|(_, key)| *key)
    }

    /// The `DIDCommMessaging` services, in either the v2.1 (`serviceEndpoint` object) or v2.0
    /// (URI string with `routingKeys`/`accept` beside it) shape, with absolute ids. Services
    /// of other types, and endpoints of other shapes, are left out.
    pub fn didcomm_services(&self) -> Vec<DidCommService> {
        self.service
            .iter()
            .filter(|s| s.is_didcomm())
            .filter_map(|s| {
                let (uri, routing_keys, accept) = match &s.service_endpoint {
                    ServiceEndpoint::Uri(uri) => {
                        (uri.clone(), s.strings("routingKeys"), s.strings("accept"))
                    }
                    ServiceEndpoint::DidComm(endpoint) => (
                        endpoint.uri.clone(),
                        endpoint.routing_keys.clone().unwrap_or_default(),
                        endpoint.accept.clone().unwrap_or_default(),
                    ),
                    ServiceEndpoint::Other(_) => return None,
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

    /// A copy with every verification method (listed or embedded) as a listed
    /// `JsonWebKey2020` method with `publicKeyJwk` under an absolute id, and every
    /// relationship referencing absolute ids, as independent DIDComm libraries want their
    /// documents. Methods already in JWK form keep their JWK (any curve); methods whose key
    /// cannot be read are dropped together with the references to them.
    pub fn to_jsonwebkey2020(&self) -> DidDocument {
        let convert = |method: &VerificationMethod| -> Option<VerificationMethod> {
            let jwk = match method.public_key() {
                Ok(key) => key.to_jwk(),
                Err(_) if method.type_.starts_with("JsonWebKey") => {
                    method.public_key_jwk.clone()?
                }
                Err(_) => return None,
            };
            Some(VerificationMethod {
                id: self.absolute_id(&method.id),
                type_: "JsonWebKey2020".to_string(),
                controller: self.absolute_id(&method.controller),
                public_key_multibase: None,
                public_key_jwk: Some(jwk),
                public_key_base58: None,
            })
        };
        let mut methods: Vec<VerificationMethod> = Vec::new();
        let mut dropped: HashSet<String> = HashSet::new();
        for method in self.methods() {
            match convert(method) {
                Some(converted) if !methods.iter().any(|m| m.id == converted.id) => {
                    methods.push(converted)
                }
                Some(_) => {}
                None => {
                    dropped.insert(self.absolute_id(&method.id));
                }
            }
        }
        let relationship = |entries: &[VerificationRelationship]| {
            entries
                .iter()
                .map(|entry| self.absolute_id(entry.id()))
                .filter(|id| !dropped.contains(id) || methods.iter().any(|m| &m.id == id))
                .map(VerificationRelationship::Reference)
                .collect::<Vec<_>>()
        };
        let service = self
            .service
            .iter()
            .map(|s| Service {
                id: self.absolute_id(&s.id),
                ..s.clone()
            })
            .collect();
        DidDocument {
            context: vec![DID_CONTEXT.to_string(), JWS_2020_CONTEXT.to_string()],
            id: self.id.clone(),
            also_known_as: self.also_known_as.clone(),
            authentication: relationship(&self.authentication),
            assertion_method: relationship(&self.assertion_method),
            key_agreement: relationship(&self.key_agreement),
            capability_invocation: relationship(&self.capability_invocation),
            capability_delegation: relationship(&self.capability_delegation),
            verification_method: methods,
            service,
            keys: KeyCache::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::did::multikey_encode;
    use crate::encoding::b64u_encode;
    use serde_json::json;

    const ED: [u8; 32] = [0x11; 32];
    const X: [u8; 32] = [0x22; 32];

    fn method(id: &str, type_: &str, material: Value) -> VerificationMethod {
        let mut value = json!({ "id": id, "type": type_, "controller": "did:example:alice" });
        if let (Some(object), Some(material)) = (value.as_object_mut(), material.as_object()) {
            object.extend(material.clone());
        }
        serde_json::from_value(value).expect("test method parses")
    }

    #[test]
    fn every_supported_suite_reads_its_key() {
        let ed = PublicKey::ed25519(ED);
        let x = PublicKey::x25519(X);
        let cases = [
            (
                "Multikey",
                json!({ "publicKeyMultibase": multikey_encode(&x) }),
                x,
            ),
            (
                "Ed25519VerificationKey2020",
                json!({ "publicKeyMultibase": multikey_encode(&ed) }),
                ed,
            ),
            (
                "X25519KeyAgreementKey2020",
                json!({ "publicKeyMultibase": multikey_encode(&x) }),
                x,
            ),
            (
                "Ed25519VerificationKey2018",
                json!({ "publicKeyBase58": bs58::encode(ED).into_string() }),
                ed,
            ),
            (
                "X25519KeyAgreementKey2019",
                json!({ "publicKeyBase58": bs58::encode(X).into_string() }),
                x,
            ),
            (
                "JsonWebKey2020",
                json!({ "publicKeyJwk": { "kty": "OKP", "crv": "X25519", "x": b64u_encode(X) } }),
                x,
            ),
            ("JsonWebKey2020", json!({ "publicKeyJwk": ed.to_jwk() }), ed),
        ];
        for (type_, material, expected) in cases {
            let m = method("#k", type_, material.clone());
            assert_eq!(
                m.public_key(),
                Ok(expected),
                "{type_} with {material} read wrongly"
            );
        }
    }

    #[test]
    fn wrong_or_missing_material_is_refused_by_name() {
        let ed = PublicKey::ed25519(ED);
        let cases = [
            (
                "X25519KeyAgreementKey2020",
                json!({ "publicKeyMultibase": multikey_encode(&ed) }),
                "carries an Ed25519 key",
            ),
            (
                "Multikey",
                json!({ "publicKeyBase58": "abc" }),
                "has no publicKeyMultibase",
            ),
            (
                "Ed25519VerificationKey2018",
                json!({}),
                "has no publicKeyBase58",
            ),
            (
                "Ed25519VerificationKey2018",
                json!({ "publicKeyBase58": "0OIl" }),
                "not base58btc",
            ),
            (
                "Ed25519VerificationKey2018",
                json!({ "publicKeyBase58": "abc" }),
                "not 32",
            ),
            (
                "JsonWebKey2020",
                json!({ "publicKeyJwk": { "kty": "EC", "crv": "P-256", "x": "AA" } }),
                "kty \"EC\" crv \"P-256\"",
            ),
            (
                "JsonWebKey2020",
                json!({ "publicKeyJwk": { "kty": "OKP", "crv": "X25519" } }),
                "no \"x\"",
            ),
            (
                "JsonWebKey2020",
                json!({ "publicKeyJwk": { "kty": "OKP", "crv": "X25519", "x": "A=" } }),
                "not unpadded base64url",
            ),
            (
                "EcdsaSecp256k1VerificationKey2019",
                json!({}),
                "type \"EcdsaSecp256k1VerificationKey2019\"",
            ),
        ];
        for (type_, material, expected) in cases {
            let error = method("did:example:alice#k", type_, material.clone())
                .public_key()
                .expect_err("bad material was accepted")
                .to_string();
            assert!(
                error.contains(expected) && error.contains("did:example:alice#k"),
                "{type_} {material}: error {error:?} should mention {expected:?} and the id"
            );
        }
    }

    /// A document that lists one method, embeds another, references a P-256 one.
    fn mixed_document() -> DidDocument {
        serde_json::from_value(json!({
            "id": "did:example:alice",
            "verificationMethod": [
                { "id": "#ed", "type": "Multikey", "controller": "did:example:alice",
                  "publicKeyMultibase": multikey_encode(&PublicKey::ed25519(ED)) },
                { "id": "did:example:alice#p256", "type": "JsonWebKey2020", "controller": "did:example:alice",
                  "publicKeyJwk": { "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA" } },
            ],
            "authentication": ["did:example:alice#ed"],
            "keyAgreement": [
                "#p256",
                { "id": "did:example:alice#x", "type": "X25519KeyAgreementKey2019",
                  "controller": "did:example:alice", "publicKeyBase58": bs58::encode(X).into_string() },
                "#missing",
            ],
            "service": [
                { "id": "#v21", "type": "DIDCommMessaging",
                  "serviceEndpoint": { "uri": "https://a.example", "accept": ["didcomm/v2"], "routingKeys": ["did:example:m#k"] } },
                { "id": "#v20", "type": ["DIDCommMessaging"], "serviceEndpoint": "https://b.example",
                  "routingKeys": ["did:example:n#k"], "accept": ["didcomm/v2"] },
                { "id": "#web", "type": "LinkedDomains", "serviceEndpoint": { "origins": ["https://c.example"] }, "priority": 3 },
                { "id": "#odd", "type": "DIDCommMessaging", "serviceEndpoint": ["https://d.example"] },
            ],
        }))
        .expect("mixed document parses")
    }

    #[test]
    fn key_lookups_follow_references_and_embedded_methods() {
        let doc = mixed_document();
        assert_eq!(
            doc.key_agreement_keys(),
            [("did:example:alice#x".to_string(), PublicKey::x25519(X))],
            "keyAgreement should keep the embedded X25519 key only"
        );
        assert_eq!(
            doc.authentication_keys(),
            [("did:example:alice#ed".to_string(), PublicKey::ed25519(ED))],
            "an absolute reference should find a relative id"
        );
        assert!(doc.assertion_keys().is_empty(), "no assertionMethod listed");
        for kid in ["#ed", "did:example:alice#ed"] {
            assert_eq!(doc.find_key(kid), Some(PublicKey::ed25519(ED)), "{kid}");
        }
        for kid in ["#x", "did:example:alice#x"] {
            assert_eq!(doc.find_key(kid), Some(PublicKey::x25519(X)), "{kid}");
        }
        for kid in ["#p256", "#missing", "did:example:bob#ed", "ed", "#e"] {
            assert_eq!(doc.find_key(kid), None, "{kid} should not be found");
        }
        assert_eq!(doc.absolute_id("#a"), "did:example:alice#a");
        assert_eq!(doc.absolute_id("did:example:bob#a"), "did:example:bob#a");
    }

    #[test]
    fn didcomm_services_normalise_both_shapes_and_skip_the_rest() {
        let services = mixed_document().didcomm_services();
        assert_eq!(
            services,
            vec![
                DidCommService {
                    id: "did:example:alice#v21".into(),
                    uri: "https://a.example".into(),
                    routing_keys: vec!["did:example:m#k".into()],
                    accept: vec!["didcomm/v2".into()],
                },
                DidCommService {
                    id: "did:example:alice#v20".into(),
                    uri: "https://b.example".into(),
                    routing_keys: vec!["did:example:n#k".into()],
                    accept: vec!["didcomm/v2".into()],
                },
            ],
            "normalised services differ"
        );
    }

    #[test]
    fn documents_round_trip_unknown_services_unchanged() {
        let doc = mixed_document();
        let value = serde_json::to_value(&doc).expect("serialises");
        assert_eq!(
            value["service"][2],
            json!({ "id": "#web", "type": "LinkedDomains", "serviceEndpoint": { "origins": ["https://c.example"] }, "priority": 3 }),
            "unknown service changed"
        );
        assert_eq!(
            value["service"][1]["routingKeys"],
            json!(["did:example:n#k"]),
            "v2.0 routingKeys lost"
        );
        let again: DidDocument = serde_json::from_value(value).expect("parses again");
        assert_eq!(again, doc, "round trip changed the document");
    }

    #[test]
    fn jsonwebkey2020_copy_lists_every_method_under_absolute_ids() {
        let doc = mixed_document().to_jsonwebkey2020();
        let ids: Vec<&str> = doc
            .verification_method
            .iter()
            .map(|m| m.id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "did:example:alice#ed",
                "did:example:alice#p256",
                "did:example:alice#x"
            ],
            "converted methods differ"
        );
        assert!(
            doc.verification_method
                .iter()
                .all(|m| m.type_ == "JsonWebKey2020" && m.public_key_jwk.is_some()),
            "a method was not converted to JsonWebKey2020: {:?}",
            doc.verification_method
        );
        let key_agreement: Vec<&str> = doc.key_agreement.iter().map(|r| r.id()).collect();
        assert_eq!(
            key_agreement,
            [
                "did:example:alice#p256",
                "did:example:alice#x",
                "did:example:alice#missing"
            ],
            "keyAgreement references differ"
        );
        assert!(
            doc.key_agreement
                .iter()
                .all(|r| matches!(r, VerificationRelationship::Reference(_))),
            "embedded methods should become references"
        );
        assert_eq!(
            doc.key_agreement_keys(),
            mixed_document().key_agreement_keys()
        );
        assert_eq!(doc.service[0].id, "did:example:alice#v21");
    }

    #[test]
    fn jsonwebkey2020_copy_drops_unreadable_methods_and_their_references() {
        let mut doc = mixed_document();
        doc.verification_method[0].public_key_multibase = Some("zbad".into());
        let converted = doc.to_jsonwebkey2020();
        assert!(
            converted.authentication.is_empty(),
            "reference to an unreadable method kept: {:?}",
            converted.authentication
        );
        assert!(converted
            .verification_method
            .iter()
            .all(|m| m.id != "did:example:alice#ed"));
    }

    #[test]
    fn context_may_be_one_url_or_a_list_with_inline_contexts() {
        for (context, expected) in [
            (
                json!("https://w3id.org/did/v1"),
                vec!["https://w3id.org/did/v1"],
            ),
            (
                json!([DID_CONTEXT, { "@vocab": "https://example.com/#" }]),
                vec![DID_CONTEXT],
            ),
            (json!(null), vec![]),
        ] {
            let doc: DidDocument = serde_json::from_value(
                json!({ "@context": context.clone(), "id": "did:example:a" }),
            )
            .expect("document parses");
            assert_eq!(doc.context, expected, "@context {context} read wrongly");
        }
    }

    #[test]
    fn a_clone_forgets_the_remembered_keys() {
        let doc = mixed_document();
        assert_eq!(doc.authentication_keys().len(), 1);
        let mut edited = doc.clone();
        edited.authentication.clear();
        assert!(
            edited.authentication_keys().is_empty(),
            "the clone answered with the original's keys"
        );
    }
}

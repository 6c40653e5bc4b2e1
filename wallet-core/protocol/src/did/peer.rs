//! `did:peer:2` (Peer DID Method spec, numalgo 2, with the 2023 clarifications: `#key-N` ids,
//! Multikey methods, abbreviated services, `#service` ids) and its `did:peer:3` short form.
//! Key ids in the form older stacks derive (peerdid 0.5 and before: the key's multibase value
//! without its `z`, `#6LS…`) are read as the `#key-N` they name ([`canonical_key_id`]).

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
    /// Mediator keys (DID URLs) to wrap forwards for, outermost last.
    pub routing_keys: Vec<String>,
    /// The DIDComm profiles accepted (`didcomm/v2`).
    pub accept: Vec<String>,
}

/// The keys and services of a did:peer:2 to create.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerDidSpec {
    /// Purpose `V`: authentication keys (Ed25519).
    pub authentication: Vec<PublicKey>,
    /// Purpose `E`: key-agreement keys (X25519).
    pub key_agreement: Vec<PublicKey>,
    /// Purpose `S`: the DIDComm services.
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
/// services (`S`, base64url of `{"t":"dm","s":{"uri":…,"a":[…],"r":[…]}}`, empty lists left
/// out), the order and member order of the spec's examples.
///
/// A spec with no keys and no services gives plain `did:peer:2`, which does not resolve; so
/// does a DID over [`super::MAX_DID_LEN`] (about a hundred keys or services).
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

/// Resolves a did:peer:2 to its document, by the clarified rules: `Multikey` methods with
/// ids `#key-N` (N counts keys from 1 in DID-string order), relationships referencing them,
/// services expanded key by key with ids `#service`, `#service-1`, …, and the did:peer:3 in
/// `alsoKnownAs`.
pub fn resolve_did_peer_2(did: &str) -> Result<DidDocument, DidError> {
    if method_of(did)? != "peer" || !did.starts_with(PREFIX) {
        return Err(DidError::BadPeerDid(format!(
            "expected, got {:?}",
            super::shorten(did)
        )));
    }
    let elements = match &did[PREFIX.len()..] {
        "" => return Err(DidError::BadPeerDid("has no elements".to_string())),
        rest => rest.strip_prefix('.').ok_or_else(|| {
            DidError::BadPeerDid(format!(
                "must be followed by '.', got {:?}",
                super::shorten(did)
            ))
        })?,
    };
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
            let service = decode_service(value, number, doc.service.len())?;
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
        multikey_decode(value).map_err(|e| {
            DidError::BadPeerDid(format!("element {number} (purpose {purpose}): {e}"))
        })?;
        let id = format!("#key-{}", doc.verification_method.len() + 1);
        relationship.push(VerificationRelationship::Reference(id.clone()));
        doc.verification_method.push(VerificationMethod {
            id,
            type_: "Multikey".to_string(),
            controller: did.to_string(),
            public_key_multibase: Some(value.to_string()),
            public_key_jwk: None,
            public_key_base58: None,
        });
    }
    Ok(doc)
}

/// The clarified `#key-N` DID URL of a did:peer:2 key id written in the legacy form (the
/// fragment is the key's multibase value without its leading `z`, as peerdid 0.5 and older
/// stacks derive it), or `None` when `kid` is not such an id: another method, no fragment, a
/// fragment already `key-N`, or one that names none of the DID's keys. Linear in the DID's
/// length; decodes nothing.
pub fn canonical_key_id(kid: &str) -> Option<String> {
    let (did, fragment) = kid.split_once('#')?;
    let elements = did.strip_prefix(PREFIX)?.strip_prefix('.')?;
    if fragment.is_empty() || fragment.starts_with("key-") {
        return None;
    }
    let mut keys = 0;
    for element in elements.split('.') {
        let (purpose, value) = element.split_at_checked(1)?;
        if purpose == "S" {
            continue;
        }
        keys += 1;
        if value.strip_prefix('z') == Some(fragment) {
            return Some(format!("{did}#key-{keys}"));
        }
    }
    None
}

/// Decodes the `S` element `number` (base64url of abbreviated JSON), the `earlier`-th service.
fn decode_service(value: &str, number: usize, earlier: usize) -> Result<Service, DidError> {
    let bad = |what: String| DidError::BadPeerDid(format!("service element {number} {what}"));
    let bytes = b64u_decode(value).map_err(|e| bad(format!("is not unpadded base64url: {e}")))?;
    let json: Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("is not JSON: {e}")))?;
    let Value::Object(mut service) = expand(json) else {
        return Err(bad("is not a JSON object".to_string()));
    };
    if !service.contains_key("id") {
        let id = match earlier {
            0 => "#service".to_string(),
            n => format!("#service-{n}"),
        };
        service.insert("id".to_string(), Value::String(id));
    }
    serde_json::from_value(Value::Object(service))
        .map_err(|e| bad(format!("is not a service: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyType;

    #[test]
    fn legacy_key_ids_name_the_key_n_they_stand_for() {
        let agreement = PublicKey::x25519([8; 32]);
        let spec = PeerDidSpec {
            authentication: vec![PublicKey::ed25519([9; 32])],
            key_agreement: vec![agreement],
            services: vec![PeerService {
                uri: "https://mediator.example/didcomm".into(),
                routing_keys: vec![],
                accept: vec![],
            }],
        };
        let did = did_peer_2(&spec);
        let multibase = multikey_encode(&agreement);
        let legacy = format!("{did}#{}", &multibase[1..]);
        assert_eq!(canonical_key_id(&legacy), Some(format!("{did}#key-2")));
        let doc = resolve_did_peer_2(&did).unwrap();
        assert_eq!(
            doc.find_key(&canonical_key_id(&legacy).unwrap()),
            Some(agreement)
        );
        let signing = format!("{did}#{}", &multikey_encode(&spec.authentication[0])[1..]);
        assert_eq!(canonical_key_id(&signing), Some(format!("{did}#key-1")));
        // Services do not count, wherever they sit.
        let service_first = format!(
            "did:peer:2.S{}.E{multibase}",
            b64u_encode(r#"{"t":"dm","s":{"uri":"http://a"}}"#)
        );
        assert_eq!(
            canonical_key_id(&format!("{service_first}#{}", &multibase[1..])),
            Some(format!("{service_first}#key-1"))
        );
        for not_legacy in [
            format!("{did}#key-2"),
            format!("{did}#"),
            did.clone(),
            format!("{did}#{multibase}"),
            format!("{did}#6LSnotakeyofthisdid"),
            format!("did:key:{multibase}#{}", &multibase[1..]),
            format!("did:peer:2x#{}", &multibase[1..]),
        ] {
            assert_eq!(canonical_key_id(&not_legacy), None, "{not_legacy}");
        }
    }

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
        let v = multikey_encode(&PublicKey::ed25519([9; 32]));
        let e = multikey_encode(&PublicKey::x25519([8; 32]));
        let cases = [
            ("did:peer:2".to_string(), "did:peer:2 has no elements"),
            (format!("did:peer:2x.V{v}"), "must be followed by '.'"),
            ("did:peer:4zQm".to_string(), "did:peer:2 expected"),
            (format!("did:key:{v}"), "did:peer:2 expected"),
            ("did:peer:2.".to_string(), "element 1 is empty"),
            (format!("did:peer:2.V{v}."), "element 2 is empty"),
            (
                format!("did:peer:2.V{v}.E{e}.X{e}"),
                "did:peer:2 element 3 has unknown purpose letter 'X'",
            ),
            (
                "did:peer:2.Vnotmultibase".to_string(),
                "element 1 (purpose V): invalid multikey",
            ),
            (
                format!("did:peer:2.V{v}.E{}", &e[..20]),
                "element 2 (purpose E): invalid multikey",
            ),
            (
                format!("did:peer:2.E{e}.S!!!"),
                "service element 2 is not unpadded base64url",
            ),
            (
                "did:peer:2.SeyJ0Ijo".to_string(),
                "service element 1 is not JSON",
            ),
            (
                "did:peer:2.SWzFd".to_string(),
                "service element 1 is not a JSON object",
            ),
            (
                format!("did:peer:2.S{}", b64u_encode(r#"{"s":"http://a"}"#)),
                "service element 1 is not a service: missing field `type`",
            ),
        ];
        for (did, expected) in cases {
            match resolve_did_peer_2(&did) {
                Ok(doc) => panic!("{did} was accepted as {doc:?}"),
                Err(error) => assert!(
                    error.to_string().contains(expected),
                    "{did}: error {:?} does not say {expected:?}",
                    error.to_string()
                ),
            }
        }
    }

    #[test]
    fn services_keep_their_encoded_ids_and_count_from_service() {
        let services = [
            r#"{"t":"dm","s":{"uri":"http://a"}}"#,
            r##"{"t":"dm","s":{"uri":"http://b"},"id":"#mine"}"##,
            r#"{"t":"dm","s":{"uri":"http://c"}}"#,
        ];
        let did = services.iter().fold(
            format!(
                "did:peer:2.E{}",
                multikey_encode(&PublicKey::x25519([8; 32]))
            ),
            |did, s| format!("{did}.S{}", b64u_encode(s)),
        );
        let doc = resolve_did_peer_2(&did).expect("resolves");
        let ids: Vec<&str> = doc.service.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            ["#service", "#mine", "#service-2"],
            "service ids differ"
        );
    }

    #[test]
    fn abbreviations_expand_recursively_but_only_dm_as_a_type() {
        let value = expand(serde_json::json!({
            "t": "dm", "s": { "uri": "x", "r": ["k"], "a": ["didcomm/v2"], "t": "dm" },
            "x": [{ "a": ["dm"] }], "id": "dm"
        }));
        assert_eq!(
            value,
            serde_json::json!({
                "type": "DIDCommMessaging",
                "serviceEndpoint": { "uri": "x", "routingKeys": ["k"], "accept": ["didcomm/v2"], "type": "DIDCommMessaging" },
                "x": [{ "accept": ["dm"] }], "id": "dm"
            }),
            "expansion differs"
        );
    }

    #[test]
    fn the_legacy_flat_service_decodes_to_the_v2_0_shape() {
        let service = r#"{"t":"dm","s":"https://example.com/endpoint","r":["did:example:m#k"],"a":["didcomm/v2"]}"#;
        let did = format!(
            "did:peer:2.E{}.S{}",
            multikey_encode(&PublicKey::x25519([8; 32])),
            b64u_encode(service)
        );
        let doc = resolve_did_peer_2(&did).expect("resolves");
        assert_eq!(
            serde_json::to_value(&doc.service[0]).expect("serialises"),
            serde_json::json!({
                "id": "#service", "type": "DIDCommMessaging",
                "serviceEndpoint": "https://example.com/endpoint",
                "routingKeys": ["did:example:m#k"], "accept": ["didcomm/v2"]
            }),
            "flat service expanded wrongly"
        );
        let normalised = &doc.didcomm_services()[0];
        assert_eq!(normalised.routing_keys, ["did:example:m#k"]);
        assert_eq!(normalised.accept, ["didcomm/v2"]);
    }
}

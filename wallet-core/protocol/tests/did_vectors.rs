//! did:key and did:peer:2 against their published vectors (`shared/vectors/did-key`, W3C CCG
//! did:key; `shared/vectors/did-peer`, Peer DID Method numalgo 2/3): DIDs from seeds and keys
//! byte for byte, resolved documents equal as JSON, and property tests of the parsers.

use ed25519_dalek::SigningKey;
use lanyard_protocol::did::{
    did_key, did_peer_2, did_peer_3_of, multikey_decode, multikey_encode, resolve_did_key,
    resolve_did_peer_2, resolve_local, DidCommService, DidDocument, PeerDidSpec, PeerService,
    VerificationRelationship,
};
use lanyard_protocol::encoding::{b64u_decode, b64u_encode};
use lanyard_protocol::keys::{KeyType, PublicKey};
use proptest::prelude::*;
use serde_json::{json, Value};

fn vector(path: &str) -> String {
    let full = format!(
        "{}/../../../shared/vectors/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {full}: {e}"))
}

fn json(path: &str) -> Value {
    serde_json::from_str(&vector(path)).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"))
}

fn hex32(text: &str) -> [u8; 32] {
    assert_eq!(text.len(), 64, "seed {text:?} is not 32 hex bytes");
    let mut bytes = [0; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
            .unwrap_or_else(|e| panic!("seed {text:?}: {e}"));
    }
    bytes
}

fn bytes32(bytes: Vec<u8>, what: &str) -> [u8; 32] {
    bytes
        .try_into()
        .unwrap_or_else(|b: Vec<u8>| panic!("{what} is {} bytes, not 32", b.len()))
}

/// The 32 bytes of a published key pair member: `publicKeyBase58`/`privateKeyBase58` or the
/// JWK `x`/`d`.
fn key_bytes(pair: &Value, base58: &str, jwk: &str, member: &str) -> [u8; 32] {
    let what = format!("{} {base58}/{jwk}.{member}", pair["id"]);
    let bytes = match pair.get(base58) {
        Some(b58) => bs58::decode(text(b58, &what))
            .into_vec()
            .map_err(|e| e.to_string()),
        None => b64u_decode(text(&pair[jwk][member], &what)).map_err(|e| e.to_string()),
    };
    bytes32(bytes.unwrap_or_else(|e| panic!("{what}: {e}")), &what)
}

fn parse_doc(value: &Value, what: &str) -> DidDocument {
    serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{what} does not parse as a DID document: {e}"))
}

fn to_json(doc: &DidDocument) -> Value {
    serde_json::to_value(doc).unwrap_or_else(|e| panic!("{} does not serialise: {e}", doc.id))
}

/// Every method of a document, listed or embedded, as (absolute id, key), sorted.
fn all_keys(doc: &DidDocument) -> Vec<(String, PublicKey)> {
    let embedded = [
        &doc.authentication,
        &doc.assertion_method,
        &doc.key_agreement,
        &doc.capability_invocation,
        &doc.capability_delegation,
    ]
    .into_iter()
    .flatten()
    .filter_map(|entry| match entry {
        VerificationRelationship::Embedded(m) => Some(m),
        VerificationRelationship::Reference(_) => None,
    });
    let mut all: Vec<(String, PublicKey)> = doc
        .verification_method
        .iter()
        .chain(embedded)
        .map(|m| {
            let key = m
                .public_key()
                .unwrap_or_else(|e| panic!("{}: key of {} unreadable: {e}", doc.id, m.id));
            (doc.absolute_id(&m.id), key)
        })
        .collect();
    all.sort();
    all.dedup();
    all
}

/// The absolute ids each relationship lists (references or embedded methods).
fn relationships(doc: &DidDocument) -> Vec<(&'static str, Vec<String>)> {
    [
        ("authentication", &doc.authentication),
        ("assertionMethod", &doc.assertion_method),
        ("keyAgreement", &doc.key_agreement),
        ("capabilityInvocation", &doc.capability_invocation),
        ("capabilityDelegation", &doc.capability_delegation),
    ]
    .into_iter()
    .map(|(name, entries)| {
        let ids = entries.iter().map(|e| doc.absolute_id(e.id())).collect();
        (name, ids)
    })
    .collect()
}

/// Same DID, same method ids with the same keys, same relationships.
fn assert_same_keys(ours: &DidDocument, theirs: &DidDocument) {
    assert_eq!(ours.id, theirs.id, "document ids differ");
    assert_eq!(
        all_keys(ours),
        all_keys(theirs),
        "{}: verification methods (id, key) differ",
        ours.id
    );
    assert_eq!(
        relationships(ours),
        relationships(theirs),
        "{}: relationships differ",
        ours.id
    );
}

/// The verification-method suite a published document uses.
#[derive(Clone, Copy)]
enum Suite {
    /// `Ed25519VerificationKey2018` / `X25519KeyAgreementKey2019` with `publicKeyBase58`.
    Legacy2018,
    /// `Ed25519VerificationKey2020` / `X25519KeyAgreementKey2020` with `publicKeyMultibase`.
    Multibase2020,
}

/// Our (Multikey) document relabelled in an older suite, the only difference the did:key
/// vectors allow: method `type`, key encoding and the suite's `@context` entries.
fn in_suite(ours: &DidDocument, suite: Suite) -> Value {
    let mut value = to_json(ours);
    let mut contexts = vec![json!("https://www.w3.org/ns/did/v1")];
    for (kind, context_2018, context_2020) in [
        (
            KeyType::Ed25519,
            "https://w3id.org/security/suites/ed25519-2018/v1",
            "https://w3id.org/security/suites/ed25519-2020/v1",
        ),
        (
            KeyType::X25519,
            "https://w3id.org/security/suites/x25519-2019/v1",
            "https://w3id.org/security/suites/x25519-2020/v1",
        ),
    ] {
        if ours.verification_method.iter().any(|m| {
            m.public_key()
                .unwrap_or_else(|e| panic!("{}: {e}", m.id))
                .kind
                == kind
        }) {
            contexts.push(json!(match suite {
                Suite::Legacy2018 => context_2018,
                Suite::Multibase2020 => context_2020,
            }));
        }
    }
    value["@context"] = Value::Array(contexts);
    let methods = value["verificationMethod"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("{}: no verificationMethod", ours.id));
    for (method, ours) in methods.iter_mut().zip(&ours.verification_method) {
        let key = ours
            .public_key()
            .unwrap_or_else(|e| panic!("{}: {e}", ours.id));
        let type_ = match (suite, key.kind) {
            (Suite::Legacy2018, KeyType::Ed25519) => "Ed25519VerificationKey2018",
            (Suite::Legacy2018, KeyType::X25519) => "X25519KeyAgreementKey2019",
            (Suite::Multibase2020, KeyType::Ed25519) => "Ed25519VerificationKey2020",
            (Suite::Multibase2020, KeyType::X25519) => "X25519KeyAgreementKey2020",
        };
        method["type"] = json!(type_);
        if let Suite::Legacy2018 = suite {
            let object = method
                .as_object_mut()
                .unwrap_or_else(|| panic!("{}: method is not an object", ours.id));
            object.remove("publicKeyMultibase");
            object.insert(
                "publicKeyBase58".into(),
                json!(bs58::encode(key.bytes).into_string()),
            );
        }
    }
    value
}

/// Our document in the suite `published` uses: `JsonWebKey2020` through
/// [`DidDocument::to_jsonwebkey2020`], else the 2018/2019 base58 suite.
fn as_published(ours: &DidDocument, published: &Value) -> Value {
    if published["verificationMethod"][0]["type"] == "JsonWebKey2020" {
        to_json(&ours.to_jsonwebkey2020())
    } else {
        in_suite(ours, Suite::Legacy2018)
    }
}

/// The JSON array in a spec fragment such as `...\n"verificationMethod": [ … ],\n...`.
fn fragment_array(path: &str) -> Value {
    let fragment = vector(path);
    let (start, end) = fragment
        .find('[')
        .zip(fragment.rfind(']'))
        .unwrap_or_else(|| panic!("{path} has no JSON array"));
    serde_json::from_str(&fragment[start..=end])
        .unwrap_or_else(|e| panic!("{path}: the array is not JSON: {e}"))
}

#[test]
fn ed25519_did_keys_from_their_seeds() {
    let vectors = json("did-key/ed25519-x25519.json");
    let vectors = vectors
        .as_object()
        .unwrap_or_else(|| panic!("ed25519-x25519.json is not an object"));
    assert_eq!(
        vectors.len(),
        5,
        "expected the five seeds 00, 01, 02, 03, 05"
    );
    for (did, entry) in vectors {
        let seed = hex32(text(&entry["seed"], "seed"));
        let ed = PublicKey::ed25519(SigningKey::from_bytes(&seed).verifying_key().to_bytes());
        assert_eq!(&did_key(&ed), did, "DID from seed {}", entry["seed"]);
        let pair = &entry["verificationKeyPair"];
        assert_eq!(
            ed.bytes,
            key_bytes(pair, "publicKeyBase58", "publicKeyJwk", "x"),
            "{did}: published Ed25519 public key"
        );

        // The X25519 key did:key derives, as multibase in its id and as bytes.
        let x = ed
            .ed25519_to_x25519()
            .unwrap_or_else(|| panic!("{did}: Ed25519 key is not a curve point"));
        let agreement = &entry["keyAgreementKeyPair"];
        let agreement_id = text(&agreement["id"], "keyAgreementKeyPair.id");
        let fragment = agreement_id.rsplit('#').next().unwrap_or_default();
        assert_eq!(
            multikey_encode(&x),
            fragment,
            "{did}: derived X25519 multibase"
        );
        assert_eq!(
            x.bytes,
            key_bytes(agreement, "publicKeyBase58", "publicKeyJwk", "x"),
            "{did}: derived X25519 public key"
        );
        // The published X25519 private key (checked with x25519-dalek, not our key ring)
        // belongs to the key we derived.
        let private = key_bytes(agreement, "privateKeyBase58", "privateKeyJwk", "d");
        let from_private =
            x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(private));
        assert_eq!(
            from_private.to_bytes(),
            x.bytes,
            "{did}: published X25519 private key does not match the derived public key"
        );

        let theirs = parse_doc(&entry["didDocument"], did);
        let ours = resolve_did_key(did).unwrap_or_else(|e| panic!("{did}: {e}"));
        assert_same_keys(&ours, &theirs);
        assert_eq!(
            ours.key_agreement_keys(),
            [(format!("{did}#{}", multikey_encode(&x)), x)],
            "{did}: keyAgreement keys"
        );
        assert_eq!(
            ours.authentication_keys(),
            [(format!("{did}#{}", multikey_encode(&ed)), ed)],
            "{did}: authentication keys"
        );
        assert_eq!(
            ours.assertion_keys(),
            ours.authentication_keys(),
            "{did}: assertion keys"
        );
        assert!(
            ours.verification_method
                .iter()
                .all(|m| m.type_ == "Multikey" && m.controller == *did),
            "{did}: methods should be Multikey controlled by the DID: {:?}",
            ours.verification_method
        );
        // The whole published document, in the suite it was published in.
        let expected = &entry["didDocument"];
        assert_eq!(
            &as_published(&ours, expected),
            expected,
            "{did}: document differs"
        );
    }
}

#[test]
fn x25519_did_keys_resolve_to_their_documents() {
    let vectors = json("did-key/x25519.json");
    let docs = vectors["didDocument"]
        .as_object()
        .unwrap_or_else(|| panic!("x25519.json has no didDocument map"));
    assert_eq!(docs.len(), 4, "expected four X25519 did:keys");
    for (did, expected) in docs {
        let ours = resolve_local(did).unwrap_or_else(|e| panic!("{did}: {e}"));
        assert_same_keys(&ours, &parse_doc(expected, did));
        assert_eq!(
            &as_published(&ours, expected),
            expected,
            "{did}: document differs"
        );
        let [(kid, key)] = ours.key_agreement_keys() else {
            panic!("{did}: expected one key-agreement key");
        };
        assert_eq!(key.kind, KeyType::X25519, "{did}: key type");
        assert_eq!(&did_key(key), did, "{did}: DID from its key");
        assert_eq!(kid, &format!("{did}#{}", &did["did:key:".len()..]));
        assert!(
            ours.authentication_keys().is_empty() && ours.capability_invocation.is_empty(),
            "{did}: an X25519 did:key only agrees keys"
        );
    }
}

#[test]
fn spec_example_did_key_document() {
    let theirs: DidDocument = serde_json::from_str(&vector(
        "did-key/spec-example-did-document-ed25519-z6MkhaXg.json",
    ))
    .unwrap_or_else(|e| panic!("spec example does not parse: {e}"));
    let ours = resolve_did_key(&theirs.id).unwrap_or_else(|e| panic!("{}: {e}", theirs.id));
    assert_same_keys(&ours, &theirs);
    assert_eq!(
        ours.key_agreement_keys(),
        theirs.key_agreement_keys(),
        "key-agreement keys differ"
    );
    assert_eq!(
        ours.key_agreement_keys()[0].0,
        format!(
            "{}#z6LSj72tK8brWgZja8NLRwPigth2T9QRiG1uH9oKZuKjdh9p",
            theirs.id
        )
    );
}

#[test]
fn spec_verification_method_examples_of_seed_zero() {
    let seed_zero = did_key(&PublicKey::ed25519(
        SigningKey::from_bytes(&[0; 32]).verifying_key().to_bytes(),
    ));
    assert_eq!(
        seed_zero,
        "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp"
    );
    let ours = resolve_did_key(&seed_zero).unwrap_or_else(|e| panic!("{seed_zero}: {e}"));
    assert_eq!(
        to_json(&ours.to_jsonwebkey2020())["verificationMethod"],
        fragment_array("did-key/spec-example-verificationMethod-z6MkiTBz-jsonwebkey2020.txt"),
        "JsonWebKey2020 methods differ from the spec's JWK example"
    );
    assert_eq!(
        in_suite(&ours, Suite::Multibase2020)["verificationMethod"],
        fragment_array("did-key/spec-example-verificationMethod-z6MkiTBz-multicodec-2020.txt"),
        "2020-suite methods differ from the spec's multicodec example"
    );
}

/// The two keys the did:peer:2 spec examples encode.
fn spec_keys() -> (PublicKey, PublicKey) {
    let walkthrough = json("did-peer/spec-example-peer2-encoding-walkthrough.json");
    let key = |i: usize| {
        let value = text(
            &walkthrough["input_keys (lines 90-99)"][i]["publicKeyMultibase"],
            "input key",
        );
        multikey_decode(value).unwrap_or_else(|e| panic!("input key {i}: {e}"))
    };
    (key(0), key(1))
}

fn spec_service(path: &str, key: &str) -> PeerService {
    PeerService {
        uri: format!("http://example.com/{path}"),
        routing_keys: vec![format!("did:example:123456789abcdefghi#{key}")],
        accept: vec!["didcomm/v2".into()],
    }
}

#[test]
fn spec_did_peer_2_is_encoded_byte_for_byte_and_resolves_to_its_document() {
    let (verification, encryption) = spec_keys();
    assert_eq!(verification.kind, KeyType::Ed25519, "the V key");
    assert_eq!(encryption.kind, KeyType::X25519, "the E key");
    for (did_file, doc_file, services) in [
        (
            "did-peer/spec-example-peer2-two-services.did.txt",
            "did-peer/spec-example-peer2-two-services.didDocument.json",
            vec![
                spec_service("didcomm", "key-1"),
                spec_service("another", "key-2"),
            ],
        ),
        (
            "did-peer/refimpl-example-peer2-one-service.did.txt",
            "did-peer/refimpl-example-peer2-one-service.didDocument.json",
            vec![spec_service("didcomm", "key-1")],
        ),
    ] {
        let did = did_peer_2(&PeerDidSpec {
            authentication: vec![verification],
            key_agreement: vec![encryption],
            services,
        });
        assert_eq!(did, vector(did_file), "{did_file}: encoding differs");
        let ours = resolve_did_peer_2(&did).unwrap_or_else(|e| panic!("{did_file}: {e}"));
        let expected = json(doc_file);
        assert_eq!(to_json(&ours), expected, "{doc_file}: resolution differs");
        assert_eq!(
            parse_doc(&expected, doc_file),
            ours,
            "{doc_file}: the published document parses to something else"
        );
        assert_eq!(
            ours.key_agreement_keys(),
            [(format!("{did}#key-2"), encryption)],
            "{doc_file}: key-agreement keys"
        );
        assert_eq!(
            ours.authentication_keys(),
            [(format!("{did}#key-1"), verification)],
            "{doc_file}: authentication keys"
        );
        assert_eq!(
            ours.didcomm_services()[0],
            DidCommService {
                id: format!("{did}#service"),
                uri: "http://example.com/didcomm".into(),
                routing_keys: vec!["did:example:123456789abcdefghi#key-1".into()],
                accept: vec!["didcomm/v2".into()],
            },
            "{doc_file}: first DIDComm service"
        );
    }
}

#[test]
fn spec_walkthrough_strings() {
    let walkthrough = json("did-peer/spec-example-peer2-encoding-walkthrough.json");
    let field = |name: &str| text(&walkthrough[name], name).to_string();
    let abbreviated = field("service_1_abbreviated_compact (line 170)");
    let encoded = field("service_1_base64url (line 174)");
    let (verification, encryption) = spec_keys();
    let did = did_peer_2(&PeerDidSpec {
        authentication: vec![verification],
        key_agreement: vec![encryption],
        services: vec![
            spec_service("didcomm", "key-1"),
            spec_service("another", "key-2"),
        ],
    });
    assert_eq!(did, field("did (line 196)"), "the walkthrough's DID");
    assert_eq!(
        format!(
            ".V{}.E{}",
            multikey_encode(&verification),
            multikey_encode(&encryption)
        ),
        field("encoded_keys (line 108)"),
        "encoded key elements"
    );
    let first_service = did
        .split(".S")
        .nth(1)
        .unwrap_or_else(|| panic!("{did} has no service element"));
    assert_eq!(first_service, encoded, "first service element");
    let decoded = b64u_decode(first_service).unwrap_or_else(|e| panic!("{first_service}: {e}"));
    assert_eq!(
        String::from_utf8_lossy(&decoded),
        abbreviated,
        "abbreviated compact service JSON"
    );
    assert_eq!(b64u_encode(&abbreviated), encoded);
    assert_eq!(
        did_peer_3_of(&did),
        field("did_peer_3 (alsoKnownAs in the example document, line 337)"),
        "did:peer:3 of the spec DID"
    );
    // The spec's erratum (line 178) spells accept/routingKeys out inside `s`. We never
    // produce it, but it decodes to the same DIDComm service.
    let erratum = field("service_1_prefixed_AS_PRINTED_erratum (line 178)");
    assert!(
        !did.contains(&erratum),
        "the DID contains the erratum element"
    );
    let with_erratum = format!("did:peer:2.E{}{erratum}", multikey_encode(&encryption));
    let services = resolve_did_peer_2(&with_erratum)
        .unwrap_or_else(|e| panic!("erratum element: {e}"))
        .didcomm_services();
    assert_eq!(
        services
            .iter()
            .map(|s| (&s.uri, &s.routing_keys, &s.accept))
            .collect::<Vec<_>>(),
        [(
            &"http://example.com/didcomm".to_string(),
            &vec!["did:example:123456789abcdefghi#key-1".to_string()],
            &vec!["didcomm/v2".to_string()]
        )],
        "the erratum element decodes to another service"
    );
}

#[test]
fn method_3_example() {
    let example = json("did-peer/spec-example-peer2-to-peer3.json");
    let field = |name: &str| text(&example[name], name).to_string();
    let did = field("did_peer_2 (line 363)");
    assert_eq!(
        did.strip_prefix("did:peer:2"),
        Some(field("did_peer_2_without_prefix (line 369)").as_str()),
        "the hashed string"
    );
    let peer_3 = did_peer_3_of(&did);
    assert_eq!(peer_3, field("did_peer_3 (line 381)"), "did:peer:3");
    assert_eq!(
        peer_3.strip_prefix("did:peer:3"),
        Some(field("sha256_multihash_base58btc (line 375)").as_str()),
        "multihash"
    );
    let doc = resolve_did_peer_2(&did).unwrap_or_else(|e| panic!("{did}: {e}"));
    assert_eq!(doc.also_known_as, [peer_3], "alsoKnownAs");
}

#[test]
fn the_legacy_flat_service_did_decodes_to_the_same_keys_and_service() {
    let did = vector("did-peer/legacy-2023-09-spec-example-peer2.did.txt");
    let legacy = parse_doc(
        &json("did-peer/legacy-2023-09-spec-example-peer2.didDocument.json"),
        "legacy document",
    );
    assert_eq!(legacy.id, did, "the legacy document is about this DID");
    let ours = resolve_did_peer_2(&did).unwrap_or_else(|e| panic!("{did}: {e}"));
    // Ids follow the clarified rules (#key-N, #service); keys and endpoints are the same.
    let keys = |list: &[(String, PublicKey)]| list.iter().map(|(_, k)| *k).collect::<Vec<_>>();
    assert_eq!(
        keys(ours.key_agreement_keys()),
        keys(legacy.key_agreement_keys()),
        "key-agreement keys"
    );
    assert_eq!(
        keys(ours.authentication_keys()),
        keys(legacy.authentication_keys()),
        "authentication keys"
    );
    let ids: Vec<&str> = ours
        .verification_method
        .iter()
        .map(|m| m.id.as_str())
        .collect();
    assert_eq!(ids, ["#key-1", "#key-2", "#key-3"], "key ids in DID order");
    let ours_services = ours.didcomm_services();
    let legacy_services = legacy.didcomm_services();
    assert_eq!(ours_services.len(), 1, "one service");
    assert_eq!(ours_services[0].id, format!("{did}#service"));
    assert_eq!(
        (
            &ours_services[0].uri,
            &ours_services[0].routing_keys,
            &ours_services[0].accept
        ),
        (
            &legacy_services[0].uri,
            &legacy_services[0].routing_keys,
            &legacy_services[0].accept
        ),
        "the flat service decodes to another endpoint"
    );
    assert_eq!(
        to_json(&ours)["service"][0],
        json!({
            "type": "DIDCommMessaging",
            "serviceEndpoint": "https://example.com/endpoint",
            "routingKeys": ["did:example:somemediator#somekey"],
            "accept": ["didcomm/v2", "didcomm/aip2;env=rfc587"],
            "id": "#service"
        }),
        "the flat service keeps its DIDComm v2.0 shape"
    );
}

fn peer_service() -> impl Strategy<Value = PeerService> {
    (
        "[a-z]{1,8}://[a-z0-9.]{1,20}(/[a-zA-Z0-9\"\\\\ é/]{0,12})?",
        prop::collection::vec("did:key:z[1-9A-HJ-NP-Za-km-z]{10,20}#[a-z0-9-]{1,8}", 0..3),
        prop::collection::vec("didcomm/v2|didcomm/aip2;env=rfc19|[a-z/;=]{1,12}", 0..3),
    )
        .prop_map(|(uri, routing_keys, accept)| PeerService {
            uri,
            routing_keys,
            accept,
        })
}

/// JSON pointers to every node under `value` (the root included).
fn pointers(value: &Value, here: String) -> Vec<String> {
    let children: Vec<String> = match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| {
                pointers(
                    v,
                    format!("{here}/{}", k.replace('~', "~0").replace('/', "~1")),
                )
            })
            .collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .flat_map(|(i, v)| pointers(v, format!("{here}/{i}")))
            .collect(),
        _ => Vec::new(),
    };
    std::iter::once(here).chain(children).collect()
}

proptest! {
    #[test]
    fn peer_dids_round_trip(
        auth in prop::collection::vec(any::<[u8; 32]>(), 0..3),
        agree in prop::collection::vec(any::<[u8; 32]>(), 0..3),
        services in prop::collection::vec(peer_service(), 0..3),
    ) {
        prop_assume!(!(auth.is_empty() && agree.is_empty() && services.is_empty()));
        let spec = PeerDidSpec {
            authentication: auth.into_iter().map(PublicKey::ed25519).collect(),
            key_agreement: agree.into_iter().map(PublicKey::x25519).collect(),
            services,
        };
        let did = did_peer_2(&spec);
        let doc = resolve_did_peer_2(&did)
            .map_err(|e| TestCaseError::fail(format!("{did}: {e}")))?;
        let numbered = |keys: &[PublicKey], first: usize| -> Vec<(String, PublicKey)> {
            keys.iter()
                .enumerate()
                .map(|(i, k)| (format!("{did}#key-{}", first + i), *k))
                .collect()
        };
        prop_assert_eq!(
            doc.authentication_keys().to_vec(),
            numbered(&spec.authentication, 1),
            "authentication keys"
        );
        prop_assert_eq!(
            doc.key_agreement_keys().to_vec(),
            numbered(&spec.key_agreement, spec.authentication.len() + 1),
            "key-agreement keys"
        );
        let services: Vec<(String, Vec<String>, Vec<String>)> = doc
            .didcomm_services()
            .into_iter()
            .map(|s| (s.uri, s.routing_keys, s.accept))
            .collect();
        let expected: Vec<(String, Vec<String>, Vec<String>)> = spec
            .services
            .iter()
            .map(|s| (s.uri.clone(), s.routing_keys.clone(), s.accept.clone()))
            .collect();
        prop_assert_eq!(services, expected, "services");
        prop_assert_eq!(&doc.also_known_as, &vec![did_peer_3_of(&did)], "alsoKnownAs");
        let reparsed: DidDocument = serde_json::from_value(to_json(&doc))
            .map_err(|e| TestCaseError::fail(format!("{did}: document does not parse back: {e}")))?;
        prop_assert_eq!(reparsed, doc, "JSON round trip");
    }

    #[test]
    fn resolving_arbitrary_text_never_panics(tail in ".{0,200}") {
        let _ = resolve_local(&format!("did:peer:2{tail}"));
        let _ = resolve_local(&format!("did:key:{tail}"));
        let _ = resolve_local(&tail);
        let _ = multikey_decode(&tail);
    }

    #[test]
    fn resolving_peer_dids_of_plausible_elements_never_panics(
        elements in prop::collection::vec(
            prop_oneof![
                "[AEVIDSX]z6(Mk|LS)[1-9A-HJ-NP-Za-km-z]{0,50}",
                "S[A-Za-z0-9_-]{0,120}",
                ".{0,3}",
            ],
            0..6,
        ),
        json_text in "\\{(\"[tsrai]{1,2}\":(\"[a-z:/]{0,12}\"|\\[\\]|\\{\\}|\\d|null),?){0,4}\\}?",
    ) {
        let mut did = format!("did:peer:2.{}", elements.join("."));
        did.push_str(".S");
        did.push_str(&b64u_encode(&json_text));
        let _ = resolve_local(&did);
        if let Ok(doc) = resolve_local(&did) {
            let _ = doc.didcomm_services();
            let _ = doc.key_agreement_keys();
            let _ = doc.to_jsonwebkey2020();
        }
    }

    #[test]
    fn multikeys_round_trip(bytes in any::<[u8; 32]>(), ed in any::<bool>()) {
        let key = if ed { PublicKey::ed25519(bytes) } else { PublicKey::x25519(bytes) };
        prop_assert_eq!(multikey_decode(&multikey_encode(&key)), Ok(key));
    }

    #[test]
    fn mutated_documents_never_panic(
        choices in prop::collection::vec((any::<prop::sample::Index>(), 0..8usize), 1..4),
    ) {
        let mut doc = json("did-peer/spec-example-peer2-two-services.didDocument.json");
        for (at, replacement) in choices {
            let paths = pointers(&doc, String::new());
            let path = &paths[at.index(paths.len())];
            let replacement = [
                json!(null), json!(0), json!("x"), json!([]), json!({}), json!("#key-1"),
                json!("zabc"), json!({ "id": "#key-9", "type": "Multikey", "controller": "d" }),
            ][replacement].clone();
            if let Some(slot) = doc.pointer_mut(path) {
                *slot = replacement;
            }
        }
        if let Ok(doc) = serde_json::from_value::<DidDocument>(doc) {
            let _ = doc.key_agreement_keys();
            let _ = doc.authentication_keys();
            let _ = doc.find_key("#key-1");
            let _ = doc.didcomm_services();
            let _ = doc.to_jsonwebkey2020();
        }
    }
}

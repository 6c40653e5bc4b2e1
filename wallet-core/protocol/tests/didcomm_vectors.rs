//! The DIDComm Messaging v2 spec's Appendix A–C vectors (`shared/vectors/didcomm-spec`):
//! every X25519/Ed25519 message unpacks to exactly the published plaintext with the published
//! keys, and every message on curves Lanyard does not speak is refused with a clear error.

use std::sync::Arc;

use lanyard_protocol::did::{DidDocument, StaticResolver};
use lanyard_protocol::didcomm::{DidComm, DidCommError, Layer, Message, UnpackOptions};
use lanyard_protocol::encoding::b64u_decode;
use lanyard_protocol::keys::{ContentEnc, KeyRing};
use serde_json::Value;
use zeroize::Zeroizing;

fn vector(name: &str) -> String {
    let path = format!(
        "{}/../../../shared/vectors/didcomm-spec/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read vector {path}: {e}"))
}

fn doc(name: &str) -> DidDocument {
    serde_json::from_str(&vector(name)).unwrap_or_else(|e| panic!("{name} does not parse: {e}"))
}

/// Imports every OKP secret of a JWK list into a ring (the P-curve keys are not ours to hold).
fn ring_with(secrets_file: &str) -> KeyRing {
    let ring = KeyRing::new();
    let secrets: Vec<Value> = serde_json::from_str(&vector(secrets_file)).unwrap();
    for jwk in secrets {
        if jwk["kty"] != "OKP" {
            continue;
        }
        let d = b64u_decode(jwk["d"].as_str().unwrap()).unwrap();
        let secret = Zeroizing::new(<[u8; 32]>::try_from(d.as_slice()).unwrap());
        let public = match jwk["crv"].as_str().unwrap() {
            "X25519" => ring.import_x25519(&secret),
            "Ed25519" => ring.import_ed25519(&secret),
            other => panic!("unexpected OKP curve {other}"),
        };
        let x = b64u_decode(jwk["x"].as_str().unwrap()).unwrap();
        assert_eq!(
            public.bytes.as_slice(),
            x.as_slice(),
            "{}: the secret does not produce the published public key",
            jwk["kid"]
        );
    }
    ring
}

fn bob() -> DidComm<StaticResolver> {
    let resolver = StaticResolver::new(vec![
        doc("B1-did-doc-alice.json"),
        doc("B2-did-doc-bob.json"),
    ]);
    DidComm::new(
        Arc::new(ring_with("A2-recipient-secrets-bob.kid-fixed.json")),
        resolver,
    )
    .with_options(UnpackOptions {
        // The spec's messages expired in 2018.
        check_expiry: false,
        ..UnpackOptions::default()
    })
}

fn expected_plaintext() -> Value {
    serde_json::from_str(&vector("C1-plaintext-actual-payload.json")).unwrap()
}

async fn unpack_ok(name: &str) -> lanyard_protocol::didcomm::Unpacked {
    let unpacked = bob()
        .unpack(&vector(name))
        .await
        .unwrap_or_else(|e| panic!("{name} did not unpack: {e}"));
    assert_eq!(
        serde_json::to_value(&unpacked.message).unwrap(),
        expected_plaintext(),
        "{name} unpacked to a different plaintext"
    );
    unpacked
}

#[tokio::test]
async fn signed_eddsa_verifies_against_alice_key_1() {
    let unpacked = unpack_ok("C2-signed-eddsa-ed25519-alice-key-1.json").await;
    assert_eq!(
        unpacked.metadata.layers,
        vec![Layer::Signed {
            signer_kid: "did:example:alice#key-1".into()
        }]
    );
    assert!(unpacked.metadata.non_repudiation());
    assert!(!unpacked.metadata.encrypted());
    assert_eq!(unpacked.metadata.sender_did(), Some("did:example:alice"));
}

#[tokio::test]
async fn anoncrypt_x25519_xc20p_opens_for_bob() {
    let unpacked = unpack_ok("C3-anoncrypt-ecdh-es-a256kw-x25519-xc20p.json").await;
    assert_eq!(
        unpacked.metadata.layers,
        vec![Layer::Anoncrypt {
            recipient_kid: "did:example:bob#key-x25519-1".into(),
            enc: ContentEnc::Xc20p,
        }]
    );
    assert!(unpacked.metadata.anonymous_sender());
}

#[tokio::test]
async fn anoncrypt_opens_with_any_of_bobs_keys() {
    // Bob holding only his third key still opens the three-recipient message.
    let full = ring_with("A2-recipient-secrets-bob.kid-fixed.json");
    let only_third = KeyRing::new();
    let secrets: Vec<Value> =
        serde_json::from_str(&vector("A2-recipient-secrets-bob.kid-fixed.json")).unwrap();
    let third = secrets
        .iter()
        .find(|jwk| jwk["kid"] == "did:example:bob#key-x25519-3")
        .unwrap();
    let d = b64u_decode(third["d"].as_str().unwrap()).unwrap();
    only_third.import_x25519(&Zeroizing::new(d.try_into().unwrap()));
    assert!(full.public_keys().len() > only_third.public_keys().len());
    let resolver = StaticResolver::new(vec![
        doc("B1-did-doc-alice.json"),
        doc("B2-did-doc-bob.json"),
    ]);
    let bob3 = DidComm::new(Arc::new(only_third), resolver).with_options(UnpackOptions {
        check_expiry: false,
        ..UnpackOptions::default()
    });
    for name in [
        "C3-anoncrypt-ecdh-es-a256kw-x25519-xc20p.json",
        "C3-authcrypt-ecdh-1pu-a256kw-x25519-a256cbc-hs512.json",
    ] {
        let unpacked = bob3
            .unpack(&vector(name))
            .await
            .unwrap_or_else(|e| panic!("{name} did not open with bob's third key: {e}"));
        assert_eq!(
            unpacked.metadata.recipient_kid(),
            Some("did:example:bob#key-x25519-3")
        );
    }
}

#[tokio::test]
async fn authcrypt_x25519_names_alice_as_sender() {
    let unpacked = unpack_ok("C3-authcrypt-ecdh-1pu-a256kw-x25519-a256cbc-hs512.json").await;
    assert_eq!(
        unpacked.metadata.layers,
        vec![Layer::Authcrypt {
            sender_kid: "did:example:alice#key-x25519-1".into(),
            recipient_kid: "did:example:bob#key-x25519-1".into(),
        }]
    );
    assert!(unpacked.metadata.authenticated());
    assert_eq!(unpacked.metadata.sender_did(), Some("did:example:alice"));
}

#[tokio::test]
async fn other_curves_are_refused_by_name() {
    let cases = [
        ("C2-signed-es256-p256-alice-key-2.json", "ES256"),
        ("C2-signed-es256k-secp256k1-alice-key-3.json", "ES256K"),
        (
            "C3-anoncrypt-ecdh-es-a256kw-p384-a256cbc-hs512.json",
            "P-384",
        ),
        ("C3-anoncrypt-ecdh-es-a256kw-p521-a256gcm.json", "P-521"),
        (
            "C3-signed-then-authcrypt-ecdh-1pu-a256kw-p256-a256cbc-hs512.json",
            "P-256",
        ),
        (
            "C3-signed-then-authcrypt-p521-then-anoncrypt-p521-xc20p.json",
            "P-521",
        ),
    ];
    for (name, what) in cases {
        let error = bob()
            .unpack(&vector(name))
            .await
            .expect_err(&format!("{name} uses {what} and must be refused"));
        assert!(
            matches!(
                error,
                DidCommError::UnsupportedAlg(_) | DidCommError::UnsupportedCurve(_)
            ),
            "{name}: expected an unsupported-algorithm error, got {error:?}"
        );
        assert!(
            error.to_string().contains(what),
            "{name}: the error {error} does not name {what}"
        );
    }
}

#[tokio::test]
async fn the_published_bob_secrets_with_the_kid_erratum_are_still_usable_keys() {
    // The verbatim A.2 file has `"kid "` (trailing space); only the key material matters here.
    let verbatim: Vec<Value> =
        serde_json::from_str(&vector("A2-recipient-secrets-bob.json")).unwrap();
    assert!(verbatim.iter().all(|jwk| jwk.get("kid").is_none()));
    assert_eq!(
        ring_with("A2-recipient-secrets-bob.json")
            .public_keys()
            .len(),
        3
    );
}

/// The Out-of-Band spec's encoding example: base64url (no padding) of the compact invitation,
/// appended to the URL as `_oob`, byte for byte, and back.
#[test]
fn oob_invitation_encoding_matches_the_spec_example() {
    let compact = vector("oob-invitation-compact.json");
    let encoded = vector("oob-invitation-b64url.txt");
    let url = vector("oob-invitation-url.txt");
    assert_eq!(lanyard_protocol::encoding::b64u_encode(&compact), encoded);
    assert_eq!(url, format!("https://example.com/path?_oob={encoded}"));
    let decoded = b64u_decode(url.split("_oob=").nth(1).unwrap()).unwrap();
    assert_eq!(decoded, compact.as_bytes());
    let pretty: Value = serde_json::from_str(&vector("oob-invitation.json")).unwrap();
    let parsed: Message = serde_json::from_slice(&decoded).expect("the invitation is a message");
    assert_eq!(serde_json::to_value(&parsed).unwrap(), pretty);
}

//! Verifiable credentials against the published `eddsa-jcs-2022` vectors
//! (`shared/vectors/vc-di-eddsa`, W3C vc-di-eddsa), byte for byte, and Lanyard's issue →
//! present → verify round trips with every refusal they promise.

use std::sync::Arc;

use lanyard_protocol::credentials::data_integrity::{self, ProofOptions, ASSERTION_METHOD};
use lanyard_protocol::credentials::jcs::canonicalize;
use lanyard_protocol::credentials::status_list::{is_set, status_list_credential, StatusList};
use lanyard_protocol::credentials::vc::{self, StatusEntry};
use lanyard_protocol::credentials::CredentialError;
use lanyard_protocol::did::{did_key, multikey_encode, Resolver};
use lanyard_protocol::keys::{KeyRing, KeyType, PublicKey};
use proptest::prelude::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

fn vector(name: &str) -> String {
    let path = format!(
        "{}/../../../shared/vectors/vc-di-eddsa/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json_vector(name: &str) -> Value {
    serde_json::from_str(&vector(name)).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The vectors' key pair, imported from its private multibase (0x8026 + seed).
fn vector_key(ring: &KeyRing) -> PublicKey {
    let pair = json_vector("keyPair.json");
    let private = bs58::decode(&pair["privateKeyMultibase"].as_str().unwrap()[1..])
        .into_vec()
        .unwrap();
    assert_eq!(&private[..2], &[0x80, 0x26], "ed25519-priv multicodec");
    let mut seed = Zeroizing::new([0u8; 32]);
    seed.copy_from_slice(&private[2..]);
    let public = ring.import_ed25519(&seed);
    assert_eq!(
        multikey_encode(&public),
        pair["publicKeyMultibase"].as_str().unwrap()
    );
    public
}

fn vector_options() -> ProofOptions {
    let config = json_vector("proofConfigJCS.json");
    ProofOptions {
        verification_method: config["verificationMethod"].as_str().unwrap().into(),
        proof_purpose: ASSERTION_METHOD.into(),
        created: config["created"].as_str().unwrap().into(),
        challenge: None,
        domain: None,
    }
}

#[test]
fn jcs_and_hashes_match_the_vectors() {
    let unsigned = json_vector("unsigned.json");
    assert_eq!(canonicalize(&unsigned).unwrap(), vector("canonDocJCS.txt"));
    let config = json_vector("proofConfigJCS.json");
    assert_eq!(canonicalize(&config).unwrap(), vector("proofCanonJCS.txt"));
    assert_eq!(
        hex(&Sha256::digest(vector("canonDocJCS.txt"))),
        vector("docHashJCS.txt")
    );
    assert_eq!(
        hex(&Sha256::digest(vector("proofCanonJCS.txt"))),
        vector("proofHashJCS.txt")
    );
}

#[test]
fn signing_the_vector_reproduces_its_proof_byte_for_byte() {
    let ring = KeyRing::new();
    let key = vector_key(&ring);
    let signed = data_integrity::sign(
        &json_vector("unsigned.json"),
        &ring,
        &key,
        &vector_options(),
    )
    .unwrap();
    assert_eq!(
        signed["proof"]["proofValue"],
        vector("sigBTC58JCS.txt").as_str()
    );
    let sig = bs58::decode(&vector("sigBTC58JCS.txt")[1..])
        .into_vec()
        .unwrap();
    assert_eq!(hex(&sig), vector("sigHexJCS.txt"));
    assert_eq!(
        signed,
        json_vector("signedJCS.json"),
        "the whole secured document"
    );
}

#[tokio::test]
async fn the_vector_verifies_and_tampering_does_not() {
    let resolver = Resolver::default();
    let signed = json_vector("signedJCS.json");
    let proof = data_integrity::verify(&signed, &resolver, ASSERTION_METHOD)
        .await
        .unwrap();
    assert_eq!(
        proof.controller,
        "did:key:z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
    );

    let mut tampered = signed.clone();
    tampered["credentialSubject"]["alumniOf"] = json!("Another School");
    let error = data_integrity::verify(&tampered, &resolver, ASSERTION_METHOD)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("does not match"), "{error}");

    let mut moved = signed.clone();
    moved["proof"]["created"] = json!("2023-02-24T23:36:39Z");
    assert!(data_integrity::verify(&moved, &resolver, ASSERTION_METHOD)
        .await
        .is_err());

    let error = data_integrity::verify(&signed, &resolver, "authentication")
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("purpose is assertionMethod"),
        "{error}"
    );

    // The pre-2024 algorithm (no @context in the proof) gives another value, which fails here.
    let mut older = signed.clone();
    older["proof"]["proofValue"] = json!(
        "zboydVv31kj6jP37GMBZwYyjbvrqr9MWeY9NCEfYUwLcKwkdqAcB44dqEcqaMi8mfdvT2Vbnvdrv6XRaYzgpuPWn"
    );
    assert!(data_integrity::verify(&older, &resolver, ASSERTION_METHOD)
        .await
        .is_err());

    let mut other_context = signed.clone();
    other_context["proof"]["@context"] = json!(["https://example.com/other"]);
    let error = data_integrity::verify(&other_context, &resolver, ASSERTION_METHOD)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("@context"), "{error}");

    let mut suite = signed.clone();
    suite["proof"]["cryptosuite"] = json!("eddsa-rdfc-2022");
    let error = data_integrity::verify(&suite, &resolver, ASSERTION_METHOD)
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("eddsa-rdfc-2022 is not supported"),
        "{error}"
    );
}

/// An issuer and a holder with did:key DIDs.
struct Party {
    ring: Arc<KeyRing>,
    key: PublicKey,
    did: String,
}

impl Party {
    fn new() -> Party {
        let ring = Arc::new(KeyRing::new());
        let key = ring.generate(KeyType::Ed25519);
        let did = did_key(&key);
        Party { ring, key, did }
    }

    fn method(&self) -> String {
        format!("{}#{}", self.did, &self.did["did:key:".len()..])
    }
}

const NOW: u64 = 1_800_000_000;

fn unsigned(issuer: &Party, holder: &str) -> Value {
    json!({
        "@context": ["https://www.w3.org/ns/credentials/v2"],
        "id": "urn:uuid:5f0c9a52-0000-4000-8000-000000000001",
        "type": ["VerifiableCredential", "LanyardCredential"],
        "issuer": { "id": issuer.did, "name": "Acme" },
        "name": "Member",
        "validFrom": "2026-01-01T00:00:00Z",
        "validUntil": "2027-06-01T00:00:00Z",
        "credentialSubject": { "id": holder, "holderFullName": "Jane Doe", "skill": "Rust" },
        "credentialSchema": { "id": "urn:template:lanyard:member", "type": "LanyardCredentialTemplate" },
        "credentialStatus": {
            "id": "https://agent.example/orgs/a/status/1#7",
            "type": "BitstringStatusListEntry",
            "statusPurpose": "revocation",
            "statusListIndex": "7",
            "statusListCredential": "https://agent.example/orgs/a/status/1"
        }
    })
}

#[tokio::test]
async fn a_credential_verifies_and_says_what_it_holds() {
    let (issuer, holder) = (Party::new(), Party::new());
    let resolver = Resolver::default();
    let vc = vc::issue(
        &unsigned(&issuer, &holder.did),
        &issuer.ring,
        &issuer.key,
        &issuer.method(),
        NOW,
    )
    .unwrap();
    let read = vc::verify_credential(&vc, &resolver, NOW).await.unwrap();
    assert_eq!(read.issuer, issuer.did);
    assert_eq!(read.issuer_name.as_deref(), Some("Acme"));
    assert_eq!(read.subject_id, holder.did);
    assert_eq!(
        read.template_id.as_deref(),
        Some("urn:template:lanyard:member")
    );
    assert_eq!(read.claims["skill"], "Rust");
    assert_eq!(
        read.status,
        Some(StatusEntry {
            list: "https://agent.example/orgs/a/status/1".into(),
            index: 7,
            purpose: "revocation".into()
        })
    );

    // Expired, not yet valid, tampered, signed by someone else in the issuer's name.
    let expired = vc::verify_credential(&vc, &resolver, 1_900_000_000)
        .await
        .unwrap_err();
    assert_eq!(
        expired,
        CredentialError::Expired("2027-06-01T00:00:00Z".into())
    );
    let early = vc::verify_credential(&vc, &resolver, 1_700_000_000)
        .await
        .unwrap_err();
    assert_eq!(
        early,
        CredentialError::NotYetValid("2026-01-01T00:00:00Z".into())
    );
    let mut forged = vc.clone();
    forged["credentialSubject"]["skill"] = json!("COBOL");
    assert!(matches!(
        vc::verify_credential(&forged, &resolver, NOW).await,
        Err(CredentialError::Proof(_))
    ));
    let mallory = Party::new();
    let impostor = vc::issue(
        &unsigned(&issuer, &holder.did),
        &mallory.ring,
        &mallory.key,
        &mallory.method(),
        NOW,
    )
    .unwrap();
    let error = vc::verify_credential(&impostor, &resolver, NOW)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not the issuer"), "{error}");
    let mut no_subject = unsigned(&issuer, &holder.did);
    no_subject["credentialSubject"]
        .as_object_mut()
        .unwrap()
        .remove("id");
    let signed = vc::issue(
        &no_subject,
        &issuer.ring,
        &issuer.key,
        &issuer.method(),
        NOW,
    )
    .unwrap();
    let error = vc::verify_credential(&signed, &resolver, NOW)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("credentialSubject.id"),
        "{error}"
    );
}

#[tokio::test]
async fn presentations_bind_holder_challenge_and_domain() {
    let (issuer, holder) = (Party::new(), Party::new());
    let resolver = Resolver::default();
    let vc = vc::issue(
        &unsigned(&issuer, &holder.did),
        &issuer.ring,
        &issuer.key,
        &issuer.method(),
        NOW,
    )
    .unwrap();
    let vp = vc::present(
        std::slice::from_ref(&vc),
        &holder.did,
        &holder.ring,
        &holder.key,
        &holder.method(),
        "c-1",
        "verifier.example",
        NOW,
    )
    .unwrap();
    let verified = vc::verify_presentation(&vp, &resolver, "c-1", "verifier.example", NOW)
        .await
        .unwrap();
    assert_eq!(verified.holder, holder.did);
    assert_eq!(verified.credentials.len(), 1);

    let error = vc::verify_presentation(&vp, &resolver, "c-2", "verifier.example", NOW)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("challenge does not match"),
        "{error}"
    );
    let error = vc::verify_presentation(&vp, &resolver, "c-1", "evil.example", NOW)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("domain does not match"),
        "{error}"
    );

    // Someone else's credential in my presentation.
    let other = Party::new();
    let theirs = vc::issue(
        &unsigned(&issuer, &other.did),
        &issuer.ring,
        &issuer.key,
        &issuer.method(),
        NOW,
    )
    .unwrap();
    let vp = vc::present(
        &[theirs],
        &holder.did,
        &holder.ring,
        &holder.key,
        &holder.method(),
        "c-1",
        "verifier.example",
        NOW,
    )
    .unwrap();
    let error = vc::verify_presentation(&vp, &resolver, "c-1", "verifier.example", NOW)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("not the presentation's holder"),
        "{error}"
    );

    // Signed by a key that is not the holder's.
    let vp = vc::present(
        &[vc],
        &holder.did,
        &other.ring,
        &other.key,
        &other.method(),
        "c-1",
        "verifier.example",
        NOW,
    )
    .unwrap();
    let error = vc::verify_presentation(&vp, &resolver, "c-1", "verifier.example", NOW)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("not its holder"), "{error}");
}

#[tokio::test]
async fn status_lists_say_which_credentials_are_revoked() {
    let issuer = Party::new();
    let url = "https://agent.example/orgs/a/status/1";
    let mut list = StatusList::new(0);
    list.set(7, true);
    let credential = status_list_credential(url, &issuer.did, "2026-01-01T00:00:00Z", &list);
    let signed = vc::issue(
        &credential,
        &issuer.ring,
        &issuer.key,
        &issuer.method(),
        NOW,
    )
    .unwrap();
    vc::verify_credential(&signed, &Resolver::default(), NOW)
        .await
        .unwrap();
    let entry = |index| StatusEntry {
        list: url.into(),
        index,
        purpose: "revocation".into(),
    };
    assert!(is_set(&entry(7), &signed).unwrap());
    assert!(!is_set(&entry(8), &signed).unwrap());
    assert!(is_set(&entry(1 << 20), &signed)
        .unwrap_err()
        .to_string()
        .contains("beyond"));
    let elsewhere = StatusEntry {
        list: "https://other.example/1".into(),
        index: 7,
        purpose: "revocation".into(),
    };
    assert!(is_set(&elsewhere, &signed).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn reading_arbitrary_json_never_panics(text in ".{0,300}", key in "[a-zA-Z@]{1,12}") {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let resolver = Resolver::default();
        for candidate in [
            serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
            json!({ key.clone(): text.clone(), "proof": { "type": "DataIntegrityProof", "proofValue": text.clone() } }),
            json!({ "@context": ["https://www.w3.org/ns/credentials/v2"], "type": "VerifiableCredential", "issuer": text.clone(), "credentialSubject": { "id": text.clone() }, "proof": { "type": "DataIntegrityProof", "cryptosuite": "eddsa-jcs-2022", "proofPurpose": "assertionMethod", "created": text.clone(), "verificationMethod": text.clone(), "proofValue": format!("z{text}") } }),
        ] {
            let _ = runtime.block_on(vc::verify_credential(&candidate, &resolver, NOW));
            let _ = runtime.block_on(vc::verify_presentation(&candidate, &resolver, "c", "d", NOW));
        }
        let _ = StatusList::decode(&text);
        let _ = StatusList::decode(&format!("u{text}"));
    }
}

//! Our envelopes against themselves: every mode round-trips between did:key and did:peer:2
//! parties, forwards route through mediators, and anything tampered, wrongly addressed,
//! oversized, expired or spoofed is refused with the error that says so.

use std::sync::Arc;

use lanyard_protocol::did::{did_key, did_peer_2, PeerDidSpec, PeerService, Resolver};
use lanyard_protocol::didcomm::{
    encrypt_authcrypt, DidComm, DidCommError, Layer, Message, Recipient, UnpackOptions,
    MAX_RECIPIENTS,
};
use lanyard_protocol::keys::{ContentEnc, KeyRing, KeyType};
use proptest::prelude::*;
use serde_json::json;

struct Party {
    didcomm: DidComm<Resolver>,
    did: String,
}

/// A party with an Ed25519 did:key (and its derived X25519 agreement key).
fn key_party() -> Party {
    let ring = Arc::new(KeyRing::new());
    let ed = ring.generate(KeyType::Ed25519);
    ring.derive_x25519(&ed).unwrap();
    Party {
        did: did_key(&ed),
        didcomm: DidComm::new(ring, Resolver::default()),
    }
}

/// A party with a did:peer:2 (one authentication and one agreement key) and an optional
/// DIDComm service.
fn peer_party(service: Option<PeerService>) -> Party {
    let ring = Arc::new(KeyRing::new());
    let spec = PeerDidSpec {
        authentication: vec![ring.generate(KeyType::Ed25519)],
        key_agreement: vec![ring.generate(KeyType::X25519)],
        services: service.into_iter().collect(),
    };
    Party {
        did: did_peer_2(&spec),
        didcomm: DidComm::new(ring, Resolver::default()),
    }
}

fn hello(from: &Party, to: &Party) -> Message {
    Message::new(
        lanyard_protocol::protocols::basic_message::MESSAGE,
        json!({"content": "hello"}),
    )
    .from(from.did.clone())
    .to([to.did.clone()])
}

#[tokio::test]
async fn every_mode_round_trips_between_did_key_and_did_peer_parties() {
    for (alice, bob) in [
        (key_party(), key_party()),
        (peer_party(None), peer_party(None)),
        (key_party(), peer_party(None)),
    ] {
        let message = hello(&alice, &bob);
        let anon = alice
            .didcomm
            .pack_anoncrypt(&message, &[&bob.did])
            .await
            .unwrap();
        let auth = alice
            .didcomm
            .pack_authcrypt(&message, &alice.did, &[&bob.did], false)
            .await
            .unwrap();
        let auth_signed = alice
            .didcomm
            .pack_authcrypt(&message, &alice.did, &[&bob.did], true)
            .await
            .unwrap();
        let signed = alice
            .didcomm
            .pack_signed(&message, &alice.did)
            .await
            .unwrap();
        for (mode, packed) in [
            ("anoncrypt", anon),
            ("authcrypt", auth),
            ("signed authcrypt", auth_signed),
            ("signed", signed),
        ] {
            let unpacked = bob
                .didcomm
                .unpack(&packed)
                .await
                .unwrap_or_else(|e| panic!("{mode} from {} to {}: {e}", alice.did, bob.did));
            assert_eq!(unpacked.message, message, "{mode} changed the message");
            let layers = &unpacked.metadata.layers;
            match mode {
                "anoncrypt" => {
                    assert!(matches!(
                        layers.as_slice(),
                        [Layer::Anoncrypt {
                            enc: ContentEnc::A256CbcHs512,
                            ..
                        }]
                    ));
                    assert_eq!(unpacked.metadata.sender_did(), None);
                }
                "authcrypt" => {
                    assert!(matches!(layers.as_slice(), [Layer::Authcrypt { .. }]));
                    assert_eq!(unpacked.metadata.sender_did(), Some(alice.did.as_str()));
                }
                "signed authcrypt" => {
                    assert!(matches!(
                        layers.as_slice(),
                        [Layer::Authcrypt { .. }, Layer::Signed { .. }]
                    ));
                    assert!(unpacked.metadata.non_repudiation());
                }
                _ => {
                    assert!(matches!(layers.as_slice(), [Layer::Signed { .. }]));
                    assert!(!unpacked.metadata.encrypted());
                }
            }
        }
    }
}

#[tokio::test]
async fn one_message_reaches_several_recipients() {
    let alice = key_party();
    let bob = peer_party(None);
    let carol = key_party();
    let message = hello(&alice, &bob).to([bob.did.clone(), carol.did.clone()]);
    let packed = alice
        .didcomm
        .pack_authcrypt(&message, &alice.did, &[&bob.did, &carol.did], false)
        .await
        .unwrap();
    for reader in [&bob, &carol] {
        let unpacked = reader.didcomm.unpack(&packed).await.unwrap();
        assert_eq!(unpacked.message, message);
    }
    let eve = key_party();
    assert!(matches!(
        eve.didcomm.unpack(&packed).await,
        Err(DidCommError::NotForUs(_))
    ));
}

#[tokio::test]
async fn gcm_and_xchacha_content_is_received() {
    let alice = key_party();
    let bob = peer_party(None);
    let message = hello(&alice, &bob);
    for enc in [
        ContentEnc::A256Gcm,
        ContentEnc::Xc20p,
        ContentEnc::A256CbcHs512,
    ] {
        let packed = alice
            .didcomm
            .pack_anoncrypt_bytes(message.to_json().as_bytes(), &[&bob.did], enc)
            .await
            .unwrap();
        let unpacked = bob.didcomm.unpack(&packed).await.unwrap();
        assert_eq!(unpacked.message, message);
        assert!(matches!(
            unpacked.metadata.layers.as_slice(),
            [Layer::Anoncrypt { enc: got, .. }] if *got == enc
        ));
    }
}

#[tokio::test]
async fn forwards_route_through_the_mediators_routing_keys() {
    let mediator = key_party();
    let relay = key_party();
    let mediator_kid = mediator
        .didcomm
        .recipients_of(&mediator.did)
        .await
        .unwrap()
        .remove(0)
        .kid;
    let relay_kid = relay
        .didcomm
        .recipients_of(&relay.did)
        .await
        .unwrap()
        .remove(0)
        .kid;
    let bob = peer_party(Some(PeerService {
        uri: "http://127.0.0.1:9/didcomm".into(),
        routing_keys: vec![mediator_kid.clone(), relay_kid.clone()],
        accept: vec!["didcomm/v2".into()],
    }));
    let alice = peer_party(None);
    let message = hello(&alice, &bob);
    let packed = alice
        .didcomm
        .pack_for_delivery(&message, Some(&alice.did), &bob.did, false)
        .await
        .unwrap();
    assert_eq!(
        packed.endpoint.as_deref(),
        Some("http://127.0.0.1:9/didcomm")
    );

    // The first mediator opens the outer forward; it names the relay's key as next.
    let outer = mediator.didcomm.unpack(&packed.message).await.unwrap();
    let hop = lanyard_protocol::protocols::routing::parse_forward(&outer.message).unwrap();
    assert_eq!(hop.next, relay_kid);
    // Bob cannot read it before the mediators have unwrapped it.
    assert!(bob.didcomm.unpack(&packed.message).await.is_err());
    let inner = relay
        .didcomm
        .unpack(&hop.payload.to_string())
        .await
        .unwrap();
    let last = lanyard_protocol::protocols::routing::parse_forward(&inner.message).unwrap();
    assert_eq!(last.next, bob.did);
    let delivered = bob.didcomm.unpack(&last.payload.to_string()).await.unwrap();
    assert_eq!(delivered.message, message);
    assert_eq!(delivered.metadata.sender_did(), Some(alice.did.as_str()));
}

#[tokio::test]
async fn a_service_naming_the_mediators_did_routes_through_the_mediator() {
    let mediator = peer_party(Some(PeerService {
        uri: "http://127.0.0.1:9/mediator".into(),
        routing_keys: vec![],
        accept: vec!["didcomm/v2".into()],
    }));
    let bob = peer_party(Some(PeerService {
        uri: mediator.did.clone(),
        routing_keys: vec![],
        accept: vec!["didcomm/v2".into()],
    }));
    let alice = key_party();
    let message = hello(&alice, &bob);
    let packed = alice
        .didcomm
        .pack_for_delivery(&message, None, &bob.did, false)
        .await
        .unwrap();
    assert_eq!(
        packed.endpoint.as_deref(),
        Some("http://127.0.0.1:9/mediator")
    );
    let forward = mediator.didcomm.unpack(&packed.message).await.unwrap();
    let forward = lanyard_protocol::protocols::routing::parse_forward(&forward.message).unwrap();
    assert_eq!(forward.next, bob.did);
    let delivered = bob
        .didcomm
        .unpack(&forward.payload.to_string())
        .await
        .unwrap();
    assert_eq!(delivered.message, message);
}

#[tokio::test]
async fn refusals_name_what_was_wrong() {
    let alice = key_party();
    let bob = peer_party(None);
    let carol = key_party();
    let message = hello(&alice, &bob);

    // Oversized.
    let small =
        DidComm::new(bob.didcomm.keys().clone(), Resolver::default()).with_options(UnpackOptions {
            max_message_bytes: 100,
            ..UnpackOptions::default()
        });
    let packed = alice
        .didcomm
        .pack_anoncrypt(&message, &[&bob.did])
        .await
        .unwrap();
    assert!(matches!(
        small.unpack(&packed).await,
        Err(DidCommError::TooLarge { limit: 100, .. })
    ));
    // Not JSON, not an object, not a message.
    for junk in ["", "not json", "[1,2]", "{}", r#"{"ciphertext":"x"}"#] {
        let error = bob.didcomm.unpack(junk).await.unwrap_err();
        assert!(
            matches!(error, DidCommError::Malformed(_)),
            "{junk:?} gave {error:?}"
        );
    }
    // Wrongly addressed: encrypted for bob but the plaintext says carol.
    let to_carol = hello(&alice, &carol);
    let packed = alice
        .didcomm
        .pack_anoncrypt(&to_carol, &[&bob.did])
        .await
        .unwrap();
    assert!(matches!(
        bob.didcomm.unpack(&packed).await,
        Err(DidCommError::WrongRecipient { .. })
    ));
    // Not for us at all.
    let packed = alice
        .didcomm
        .pack_anoncrypt(&message, &[&bob.did])
        .await
        .unwrap();
    assert!(matches!(
        carol.didcomm.unpack(&packed).await,
        Err(DidCommError::NotForUs(_))
    ));
    // Expired.
    let expired = hello(&alice, &bob).expires_time(1_000);
    let packed = alice
        .didcomm
        .pack_anoncrypt(&expired, &[&bob.did])
        .await
        .unwrap();
    assert!(matches!(
        bob.didcomm.unpack(&packed).await,
        Err(DidCommError::Expired {
            expires_time: 1_000,
            ..
        })
    ));
    // Packing refuses a `from` that is not the sender.
    let spoofed = hello(&carol, &bob);
    assert!(matches!(
        alice
            .didcomm
            .pack_authcrypt(&spoofed, &alice.did, &[&bob.did], false)
            .await,
        Err(DidCommError::SenderMismatch { .. })
    ));
    // A hand-made authcrypt from alice's key claiming to be from carol is refused on unpack.
    let sender = alice
        .didcomm
        .recipients_of(&alice.did)
        .await
        .unwrap()
        .remove(0);
    let recipients = bob.didcomm.recipients_of(&bob.did).await.unwrap();
    let forged = encrypt_authcrypt(
        alice.didcomm.keys(),
        spoofed.to_json().as_bytes(),
        &sender,
        &recipients,
    )
    .unwrap();
    assert!(matches!(
        bob.didcomm.unpack(&forged).await,
        Err(DidCommError::SenderMismatch { .. })
    ));
    // An authcrypt whose skid claims a key the sender's DID does not list for keyAgreement.
    let bogus_sender = Recipient {
        kid: format!("{}#not-a-key", alice.did),
        key: sender.key,
    };
    let forged = encrypt_authcrypt(
        alice.didcomm.keys(),
        message.to_json().as_bytes(),
        &bogus_sender,
        &recipients,
    )
    .unwrap();
    assert!(matches!(
        bob.didcomm.unpack(&forged).await,
        Err(DidCommError::KeyNotAuthorized { .. })
    ));
}

/// An anoncrypted hello from alice to bob, as JSON to edit.
async fn anoncrypted_hello(alice: &Party, bob: &Party) -> serde_json::Value {
    let packed = alice
        .didcomm
        .pack_anoncrypt(&hello(alice, bob), &[&bob.did])
        .await
        .unwrap();
    serde_json::from_str(&packed).unwrap()
}

#[tokio::test]
async fn an_envelope_listing_too_many_recipients_is_refused_before_any_work() {
    let (alice, bob) = (key_party(), peer_party(None));
    let mut value = anoncrypted_hello(&alice, &bob).await;
    let first = value["recipients"][0].clone();
    let many: Vec<serde_json::Value> = (0..=MAX_RECIPIENTS).map(|_| first.clone()).collect();
    value["recipients"] = json!(many);
    let error = bob.didcomm.unpack(&value.to_string()).await.unwrap_err();
    assert!(
        error.to_string().contains("more than 64"),
        "unexpected error {error}"
    );
}

#[tokio::test]
async fn a_recipient_list_edited_in_transit_is_refused() {
    let (alice, bob) = (key_party(), peer_party(None));
    let mut value = anoncrypted_hello(&alice, &bob).await;
    let mut extra = value["recipients"][0].clone();
    extra["header"]["kid"] = json!(format!("{}#extra", alice.did));
    value["recipients"].as_array_mut().unwrap().push(extra);
    assert!(matches!(
        bob.didcomm.unpack(&value.to_string()).await,
        Err(DidCommError::ApvMismatch)
    ));
}

/// Packs `body` in `mode` (0 anoncrypt, 1 authcrypt, 2 signed, 3 signed authcrypt).
async fn pack(alice: &Party, bob: &Party, mode: u8, body: &str) -> (Message, String) {
    let message = Message::new("https://example.org/test/1.0/m", json!({ "text": body }))
        .from(alice.did.clone())
        .to([bob.did.clone()]);
    let packed = match mode {
        0 => alice.didcomm.pack_anoncrypt(&message, &[&bob.did]).await,
        1 => {
            alice
                .didcomm
                .pack_authcrypt(&message, &alice.did, &[&bob.did], false)
                .await
        }
        2 => alice.didcomm.pack_signed(&message, &alice.did).await,
        _ => {
            alice
                .didcomm
                .pack_authcrypt(&message, &alice.did, &[&bob.did], true)
                .await
        }
    }
    .unwrap();
    (message, packed)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_message_round_trips(mode in 0u8..4, body in any::<String>()) {
        let rt = runtime();
        let (alice, bob) = (key_party(), peer_party(None));
        let (message, packed) = rt.block_on(pack(&alice, &bob, mode, &body));
        let unpacked = rt.block_on(bob.didcomm.unpack(&packed)).unwrap();
        prop_assert_eq!(unpacked.message, message);
    }

    /// Flipping any one bit anywhere in a packed message makes it unreadable.
    #[test]
    fn any_bit_flip_is_refused(mode in 0u8..4, position in any::<prop::sample::Index>(), bit in 0u8..8) {
        let rt = runtime();
        let (alice, bob) = (key_party(), peer_party(None));
        let (_, packed) = rt.block_on(pack(&alice, &bob, mode, "flip me"));
        let mut bytes = packed.into_bytes();
        let at = position.index(bytes.len());
        bytes[at] ^= 1 << bit;
        // A flip that leaves no UTF-8 text cannot reach unpack (it takes text; the HTTP layer
        // refuses such bodies): such a case is discarded and another drawn, not passed.
        let text = String::from_utf8(bytes);
        prop_assume!(text.is_ok(), "the flip made the envelope non-UTF-8");
        let text = text.unwrap();
        let result = rt.block_on(bob.didcomm.unpack(&text));
        prop_assert!(result.is_err(), "mode {} accepted a flip of bit {} at byte {}: {:?}", mode, bit, at, result);
    }

    /// Cutting a packed message short anywhere makes it unreadable.
    #[test]
    fn any_truncation_is_refused(mode in 0u8..4, position in any::<prop::sample::Index>()) {
        let rt = runtime();
        let (alice, bob) = (key_party(), peer_party(None));
        let (_, packed) = rt.block_on(pack(&alice, &bob, mode, "cut me"));
        let at = position.index(packed.len());
        let result = rt.block_on(bob.didcomm.unpack(&packed[..at]));
        prop_assert!(result.is_err());
    }
}

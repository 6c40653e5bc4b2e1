//! did:peer:2 key ids in the legacy form (the key's multibase value without its `z`, as
//! peerdid 0.5 and older stacks derive them) beside the clarified `#key-N`: an envelope whose
//! recipient kid or `skid` is written that way opens, and is reported under `#key-N`.

use std::sync::Arc;

use lanyard_protocol::did::{did_peer_2, multikey_encode, resolve_local, PeerDidSpec, Resolver};
use lanyard_protocol::didcomm::{
    encrypt_authcrypt, DidComm, DidCommError, Layer, Message, Recipient,
};
use lanyard_protocol::keys::{KeyRing, KeyType, PublicKey};
use serde_json::json;

struct Party {
    didcomm: DidComm<Resolver>,
    ring: Arc<KeyRing>,
    did: String,
    agreement: PublicKey,
}

fn party() -> Party {
    let ring = Arc::new(KeyRing::new());
    let agreement = ring.generate(KeyType::X25519);
    let did = did_peer_2(&PeerDidSpec {
        authentication: vec![ring.generate(KeyType::Ed25519)],
        key_agreement: vec![agreement],
        services: vec![],
    });
    Party {
        didcomm: DidComm::new(ring.clone(), Resolver::default()),
        ring,
        did,
        agreement,
    }
}

fn legacy(party: &Party) -> String {
    format!("{}#{}", party.did, &multikey_encode(&party.agreement)[1..])
}

fn hello(from: &Party, to: &Party) -> Message {
    Message::new(
        lanyard_protocol::protocols::basic_message::MESSAGE,
        json!({"content": "hello"}),
    )
    .from(from.did.clone())
    .to([to.did.clone()])
}

/// `hello` authcrypted from `alice`'s key named in the legacy form to `bob`'s agreement key
/// named `recipient_kid`.
fn authcrypt(alice: &Party, bob: &Party, recipient_kid: String) -> String {
    encrypt_authcrypt(
        &alice.ring,
        hello(alice, bob).to_json().as_bytes(),
        &Recipient {
            kid: legacy(alice),
            key: alice.agreement,
        },
        &[Recipient {
            kid: recipient_kid,
            key: bob.agreement,
        }],
    )
    .unwrap()
}

#[tokio::test]
async fn legacy_recipient_and_sender_kids_open_and_are_reported_as_key_n() {
    let (alice, bob) = (party(), party());
    let envelope = authcrypt(&alice, &bob, legacy(&bob));
    let unpacked = bob.didcomm.unpack(&envelope).await.unwrap();
    assert_eq!(unpacked.message.body["content"], "hello");
    assert_eq!(
        unpacked.metadata.layers,
        vec![Layer::Authcrypt {
            sender_kid: format!("{}#key-2", alice.did),
            recipient_kid: format!("{}#key-2", bob.did),
        }]
    );
}

#[tokio::test]
async fn a_legacy_target_is_packed_for_the_key_it_names() {
    let (alice, bob) = (party(), party());
    let packed = alice
        .didcomm
        .pack_authcrypt(
            &hello(&alice, &bob),
            &legacy(&alice),
            &[&legacy(&bob)],
            false,
        )
        .await
        .unwrap();
    let unpacked = bob.didcomm.unpack(&packed).await.unwrap();
    assert_eq!(
        unpacked.metadata.recipient_kid(),
        Some(
            resolve_local(&bob.did).unwrap().key_agreement_keys()[0]
                .0
                .as_str()
        )
    );
}

#[tokio::test]
async fn a_legacy_fragment_of_another_key_is_not_for_us() {
    let (alice, bob) = (party(), party());
    let stranger = PublicKey::x25519([5; 32]);
    let kid = format!("{}#{}", bob.did, &multikey_encode(&stranger)[1..]);
    let envelope = authcrypt(&alice, &bob, kid.clone());
    match bob.didcomm.unpack(&envelope).await {
        Err(DidCommError::NotForUs(kids)) => assert_eq!(kids, vec![kid]),
        other => panic!("opened or refused otherwise: {other:?}"),
    }
}

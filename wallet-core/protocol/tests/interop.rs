//! Interoperability with two independent DIDComm v2 implementations, `didcomm` 0.4.1 and
//! `affinidi-messaging-didcomm` 0.15.11: our pack → their unpack and their pack → our unpack
//! for anoncrypt, authcrypt (with and without a signature inside) and signed messages, between
//! did:key and did:peer:2 parties, with one and with several recipients.

mod interop {
    pub mod affinidi;
    pub mod didcomm_rs;
    pub mod parties;
}

use didcomm::algorithms::AnonCryptAlg;
use interop::parties::{Foreign, Method, Ours};
use interop::{affinidi, didcomm_rs};
use lanyard_protocol::didcomm::{Layer, Message};
use lanyard_protocol::keys::ContentEnc;
use serde_json::{json, Value};

const METHODS: [(Method, Method); 4] = [
    (Method::Key, Method::Key),
    (Method::Peer, Method::Peer),
    (Method::Key, Method::Peer),
    (Method::Peer, Method::Key),
];

fn message(from: &str, to: &[&str]) -> Message {
    Message::new(
        lanyard_protocol::protocols::basic_message::MESSAGE,
        json!({"content": "hello from Lanyard", "n": 42}),
    )
    .from(from)
    .to(to.iter().map(|s| s.to_string()))
    .thid("thread-1")
}

/// The fields both sides must agree on (each library adds its own defaults around them).
fn essence(message: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in ["id", "type", "from", "to", "thid", "body", "created_time"] {
        if let Some(value) = message.get(key) {
            out.insert(key.to_string(), value.clone());
        }
    }
    Value::Object(out)
}

fn ours_json(message: &Message) -> Value {
    serde_json::to_value(message).unwrap()
}

#[tokio::test]
async fn our_envelopes_open_in_didcomm_rs() {
    for (our_method, their_method) in METHODS {
        let us = Ours::new(our_method);
        let them = Foreign::new(their_method);
        let docs = [us.doc(), them.doc()];
        let sent = message(&us.did, &[&them.did]);
        let context = format!("{our_method:?} -> {their_method:?}");

        let anon = us
            .didcomm
            .pack_anoncrypt(&sent, &[&them.did])
            .await
            .unwrap();
        let (got, meta) = didcomm_rs::unpack(&anon, &them, &docs)
            .await
            .unwrap_or_else(|e| panic!("{context}: didcomm refused our anoncrypt: {e}"));
        assert_eq!(
            essence(&got),
            essence(&ours_json(&sent)),
            "{context} anoncrypt"
        );
        assert!(
            meta.encrypted && meta.anonymous_sender && !meta.authenticated,
            "{context}: {meta:?}"
        );

        let auth = us
            .didcomm
            .pack_authcrypt(&sent, &us.did, &[&them.did], false)
            .await
            .unwrap();
        let (got, meta) = didcomm_rs::unpack(&auth, &them, &docs)
            .await
            .unwrap_or_else(|e| panic!("{context}: didcomm refused our authcrypt: {e}"));
        assert_eq!(
            essence(&got),
            essence(&ours_json(&sent)),
            "{context} authcrypt"
        );
        assert!(
            meta.authenticated && !meta.non_repudiation,
            "{context}: {meta:?}"
        );
        assert_eq!(
            meta.encrypted_from_kid,
            Some(us.agreement_kid()),
            "{context}"
        );

        let auth_signed = us
            .didcomm
            .pack_authcrypt(&sent, &us.did, &[&them.did], true)
            .await
            .unwrap();
        let (got, meta) = didcomm_rs::unpack(&auth_signed, &them, &docs)
            .await
            .unwrap_or_else(|e| panic!("{context}: didcomm refused our signed authcrypt: {e}"));
        assert_eq!(essence(&got), essence(&ours_json(&sent)));
        assert!(
            meta.authenticated && meta.non_repudiation,
            "{context}: {meta:?}"
        );
        assert_eq!(meta.sign_from, Some(us.signing_kid()), "{context}");

        let signed = us.didcomm.pack_signed(&sent, &us.did).await.unwrap();
        let (got, meta) = didcomm_rs::unpack(&signed, &them, &docs)
            .await
            .unwrap_or_else(|e| panic!("{context}: didcomm refused our JWS: {e}"));
        assert_eq!(essence(&got), essence(&ours_json(&sent)));
        assert!(
            meta.non_repudiation && !meta.encrypted,
            "{context}: {meta:?}"
        );
        assert_eq!(meta.sign_from, Some(us.signing_kid()), "{context}");
    }
}

#[tokio::test]
async fn didcomm_rs_envelopes_open_here() {
    for (our_method, their_method) in METHODS {
        let us = Ours::new(our_method);
        let them = Foreign::new(their_method);
        let docs = [us.doc(), them.doc()];
        let sent = ours_json(&message(&them.did, &[&us.did]));
        let context = format!("{their_method:?} -> {our_method:?}");

        for (alg, enc) in [
            (
                AnonCryptAlg::A256cbcHs512EcdhEsA256kw,
                ContentEnc::A256CbcHs512,
            ),
            (AnonCryptAlg::A256gcmEcdhEsA256kw, ContentEnc::A256Gcm),
            (AnonCryptAlg::Xc20pEcdhEsA256kw, ContentEnc::Xc20p),
        ] {
            let packed = didcomm_rs::pack(
                &sent,
                &them,
                &us.did,
                didcomm_rs::Mode::Anoncrypt(alg),
                &docs,
            )
            .await;
            let got = us
                .didcomm
                .unpack(&packed)
                .await
                .unwrap_or_else(|e| panic!("{context}: we refused didcomm's {enc:?}: {e}"));
            assert_eq!(essence(&ours_json(&got.message)), essence(&sent));
            assert_eq!(
                got.metadata.layers,
                vec![Layer::Anoncrypt {
                    recipient_kid: us.agreement_kid(),
                    enc
                }],
                "{context}"
            );
        }

        for signed in [false, true] {
            let packed = didcomm_rs::pack(
                &sent,
                &them,
                &us.did,
                didcomm_rs::Mode::Authcrypt { signed },
                &docs,
            )
            .await;
            let got = us.didcomm.unpack(&packed).await.unwrap_or_else(|e| {
                panic!("{context}: we refused didcomm's authcrypt (signed {signed}): {e}")
            });
            assert_eq!(essence(&ours_json(&got.message)), essence(&sent));
            assert_eq!(got.metadata.authcrypt_sender(), Some(them.x_kid.as_str()));
            assert_eq!(
                got.metadata.signer(),
                signed.then_some(them.ed_kid.as_str()),
                "{context}"
            );
        }

        let packed = didcomm_rs::pack(&sent, &them, &us.did, didcomm_rs::Mode::Signed, &docs).await;
        let got = us
            .didcomm
            .unpack(&packed)
            .await
            .unwrap_or_else(|e| panic!("{context}: we refused didcomm's JWS: {e}"));
        assert_eq!(essence(&ours_json(&got.message)), essence(&sent));
        assert_eq!(
            got.metadata.layers,
            vec![Layer::Signed {
                signer_kid: them.ed_kid.clone()
            }]
        );
    }
}

#[tokio::test]
async fn our_envelopes_open_in_affinidi() {
    for (our_method, their_method) in METHODS {
        let us = Ours::new(our_method);
        let them = Foreign::new(their_method);
        let sent = message(&us.did, &[&them.did]);
        let context = format!("{our_method:?} -> {their_method:?}");
        let our_x = us.doc().key_agreement_keys()[0].1.bytes;
        let our_ed = us.doc().authentication_keys()[0].1.bytes;
        let our_x_kid = us.agreement_kid();
        let our_ed_kid = us.signing_kid();

        let anon = us
            .didcomm
            .pack_anoncrypt(&sent, &[&them.did])
            .await
            .unwrap();
        let got = affinidi::unpack(&anon, &them, None, None)
            .unwrap_or_else(|e| panic!("{context}: affinidi refused our anoncrypt: {e}"));
        assert_eq!(essence(&got.plaintext), essence(&ours_json(&sent)));
        assert!(got.encrypted && !got.authenticated, "{context}: {got:?}");

        let auth = us
            .didcomm
            .pack_authcrypt(&sent, &us.did, &[&them.did], false)
            .await
            .unwrap();
        let got = affinidi::unpack(&auth, &them, Some((&our_x_kid, our_x)), None)
            .unwrap_or_else(|e| panic!("{context}: affinidi refused our authcrypt: {e}"));
        assert_eq!(essence(&got.plaintext), essence(&ours_json(&sent)));
        assert!(got.authenticated, "{context}: {got:?}");
        assert_eq!(got.sender_kid, Some(our_x_kid.clone()));

        let auth_signed = us
            .didcomm
            .pack_authcrypt(&sent, &us.did, &[&them.did], true)
            .await
            .unwrap();
        let got = affinidi::unpack(
            &auth_signed,
            &them,
            Some((&our_x_kid, our_x)),
            Some((&our_ed_kid, our_ed)),
        )
        .unwrap_or_else(|e| panic!("{context}: affinidi refused our signed authcrypt: {e}"));
        assert_eq!(essence(&got.plaintext), essence(&ours_json(&sent)));
        assert_eq!(got.signer_kid, Some(our_ed_kid.clone()), "{context}");

        let signed = us.didcomm.pack_signed(&sent, &us.did).await.unwrap();
        let got = affinidi::unpack(&signed, &them, None, Some((&our_ed_kid, our_ed)))
            .unwrap_or_else(|e| panic!("{context}: affinidi refused our JWS: {e}"));
        assert_eq!(essence(&got.plaintext), essence(&ours_json(&sent)));
        assert_eq!(got.signer_kid, Some(our_ed_kid));
        assert!(!got.encrypted);
    }
}

#[tokio::test]
async fn affinidi_envelopes_open_here() {
    for (our_method, their_method) in METHODS {
        let us = Ours::new(our_method);
        let them = Foreign::new(their_method);
        let sent = ours_json(&message(&them.did, &[&us.did]));
        let context = format!("{their_method:?} -> {our_method:?}");
        let to = vec![(us.agreement_kid(), us.doc().key_agreement_keys()[0].1.bytes)];

        let got = us
            .didcomm
            .unpack(&affinidi::pack_anoncrypt(&sent, &to))
            .await
            .unwrap_or_else(|e| panic!("{context}: we refused affinidi's anoncrypt: {e}"));
        assert_eq!(essence(&ours_json(&got.message)), essence(&sent));
        assert!(got.metadata.anonymous_sender());

        for signed in [false, true] {
            let packed = affinidi::pack_authcrypt(&sent, &them, &to, signed);
            let got = us.didcomm.unpack(&packed).await.unwrap_or_else(|e| {
                panic!("{context}: we refused affinidi's authcrypt (signed {signed}): {e}")
            });
            assert_eq!(essence(&ours_json(&got.message)), essence(&sent));
            assert_eq!(got.metadata.authcrypt_sender(), Some(them.x_kid.as_str()));
            assert_eq!(
                got.metadata.signer(),
                signed.then_some(them.ed_kid.as_str())
            );
        }

        let got = us
            .didcomm
            .unpack(&affinidi::pack_signed(&sent, &them))
            .await
            .unwrap_or_else(|e| panic!("{context}: we refused affinidi's JWS: {e}"));
        assert_eq!(essence(&ours_json(&got.message)), essence(&sent));
        assert_eq!(got.metadata.signer(), Some(them.ed_kid.as_str()));
    }
}

#[tokio::test]
async fn several_recipients_both_ways() {
    let us = Ours::new(Method::Peer);
    let alice = Foreign::new(Method::Key);
    let bob = Foreign::new(Method::Peer);
    let sent = message(&us.did, &[&alice.did, &bob.did]);

    // One of our envelopes to two DIDs; affinidi reads it as either. (`didcomm` 0.4.1 only
    // accepts JWEs whose recipients all belong to one DID: "Recipient keys are outside of one
    // did", so it is given the several-keys-of-one-DID case below instead.)
    let packed = us
        .didcomm
        .pack_authcrypt(&sent, &us.did, &[&alice.did, &bob.did], false)
        .await
        .unwrap();
    let our_x = (us.agreement_kid(), us.doc().key_agreement_keys()[0].1.bytes);
    for reader in [&alice, &bob] {
        let got = affinidi::unpack(&packed, reader, Some((&our_x.0, our_x.1)), None)
            .unwrap_or_else(|e| panic!("affinidi ({}) refused: {e}", reader.did));
        assert_eq!(essence(&got.plaintext), essence(&ours_json(&sent)));
    }

    // didcomm encrypts to every key-agreement key of our two-key did:peer:2; each of our two
    // keys alone opens it.
    let (first, second) = Ours::with_two_agreement_keys();
    let docs = [first.doc(), alice.doc()];
    let to_both = ours_json(&message(&alice.did, &[&first.did]));
    let packed = didcomm_rs::pack(
        &to_both,
        &alice,
        &first.did,
        didcomm_rs::Mode::Authcrypt { signed: false },
        &docs,
    )
    .await;
    let recipients = serde_json::from_str::<Value>(&packed).unwrap()["recipients"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(recipients, 2, "didcomm encrypted to both keys");
    let mut opened_with = Vec::new();
    for holder in [&first, &second] {
        let got = holder.didcomm.unpack(&packed).await.unwrap();
        assert_eq!(essence(&ours_json(&got.message)), essence(&to_both));
        opened_with.push(got.metadata.recipient_kid().unwrap().to_string());
    }
    assert_ne!(
        opened_with[0], opened_with[1],
        "each holder used its own key"
    );

    // One foreign envelope to two of our parties.
    let carol = Ours::new(Method::Key);
    let received = ours_json(&message(&alice.did, &[&us.did, &carol.did]));
    let to = vec![
        (us.agreement_kid(), us.doc().key_agreement_keys()[0].1.bytes),
        (
            carol.agreement_kid(),
            carol.doc().key_agreement_keys()[0].1.bytes,
        ),
    ];
    let packed = affinidi::pack_authcrypt(&received, &alice, &to, false);
    for reader in [&us, &carol] {
        let got = reader.didcomm.unpack(&packed).await.unwrap();
        assert_eq!(essence(&ours_json(&got.message)), essence(&received));
        assert_eq!(
            got.metadata.recipient_kid(),
            Some(reader.agreement_kid().as_str())
        );
    }
}

/// The adapters themselves are right: each library reads its own output, and didcomm reads the
/// DIDComm spec's authcrypt vector with the spec's keys through the same conversion code.
#[tokio::test]
async fn adapters_round_trip_within_each_library() {
    let alice = Foreign::new(Method::Peer);
    let bob = Foreign::new(Method::Key);
    let docs = [alice.doc(), bob.doc()];
    let sent = ours_json(&message(&alice.did, &[&bob.did]));
    let packed = didcomm_rs::pack(
        &sent,
        &alice,
        &bob.did,
        didcomm_rs::Mode::Authcrypt { signed: true },
        &docs,
    )
    .await;
    let (got, meta) = didcomm_rs::unpack(&packed, &bob, &docs).await.unwrap();
    assert_eq!(essence(&got), essence(&sent));
    assert!(meta.non_repudiation);
    let to = vec![(bob.x_kid.clone(), bob.x_public)];
    let packed = affinidi::pack_authcrypt(&sent, &alice, &to, true);
    let got = affinidi::unpack(
        &packed,
        &bob,
        Some((&alice.x_kid, alice.x_public)),
        Some((&alice.ed_kid, alice.ed_public)),
    )
    .unwrap();
    assert_eq!(essence(&got.plaintext), essence(&sent));
    assert_eq!(got.signer_kid, Some(alice.ed_kid.clone()));
}

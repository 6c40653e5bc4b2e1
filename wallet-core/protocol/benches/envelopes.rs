//! Envelope benchmark: pack and unpack of a 200-byte DIDComm message for anoncrypt, authcrypt
//! and signed, ours beside the `didcomm` 0.4.1 crate and beside the bare primitive floor (the
//! X25519, AES key-wrap, AEAD and Ed25519 operations alone). Run with RUST_BACKTRACE unset:
//! `cargo bench -p wallet-core --bench envelopes`.

use std::sync::Arc;

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ed25519_dalek::{Signer, Verifier};
use hmac::Mac;
use lanyard_protocol::did::{did_key, Resolver};
use lanyard_protocol::didcomm::{DidComm, Message};
use lanyard_protocol::keys::{KeyRing, KeyType};
use rand_core::OsRng;
use serde_json::json;

#[path = "../tests/interop"]
#[allow(dead_code)]
mod interop {
    pub mod didcomm_rs;
    pub mod parties;
}

/// A message with a 200-byte body.
fn message(from: &str, to: &str) -> Message {
    let mut message = Message::new(
        lanyard_protocol::protocols::basic_message::MESSAGE,
        json!({ "content": "x".repeat(186) }),
    )
    .from(from)
    .to([to]);
    message.created_time = Some(1_767_225_600);
    message
}

fn floor(c: &mut Criterion) {
    let mut group = c.benchmark_group("floor");
    let recipient = x25519_dalek::StaticSecret::random_from_rng(OsRng);
    let recipient_public = x25519_dalek::PublicKey::from(&recipient);
    group.bench_function("x25519_ephemeral_keygen", |b| {
        b.iter(|| {
            let secret = x25519_dalek::StaticSecret::random_from_rng(OsRng);
            x25519_dalek::PublicKey::from(&secret)
        })
    });
    group.bench_function("x25519_agreement", |b| {
        b.iter(|| recipient.diffie_hellman(std::hint::black_box(&recipient_public)))
    });
    let kek = aes_kw::KekAes256::from([7u8; 32]);
    let cek = [9u8; 64];
    let wrapped = kek.wrap_vec(&cek).unwrap();
    group.bench_function("a256kw_wrap_64", |b| b.iter(|| kek.wrap_vec(&cek).unwrap()));
    group.bench_function("a256kw_unwrap_64", |b| {
        b.iter(|| kek.unwrap_vec(&wrapped).unwrap())
    });
    let plaintext = [b'x'; 200];
    let aad = [b'h'; 250];
    let iv = [1u8; 16];
    let seal = || {
        let ct = cbc::Encryptor::<aes::Aes256>::new((&cek[32..]).into(), (&iv).into())
            .encrypt_padded_vec_mut::<Pkcs7>(&plaintext);
        let mut mac = <hmac::Hmac<sha2::Sha512> as Mac>::new_from_slice(&cek[..32]).unwrap();
        mac.update(&aad);
        mac.update(&iv);
        mac.update(&ct);
        mac.update(&(aad.len() as u64 * 8).to_be_bytes());
        (ct, mac.finalize().into_bytes())
    };
    let (ct, _) = seal();
    group.bench_function("a256cbc_hs512_encrypt_200", |b| b.iter(seal));
    group.bench_function("a256cbc_hs512_decrypt_200", |b| {
        b.iter(|| {
            let mut mac = <hmac::Hmac<sha2::Sha512> as Mac>::new_from_slice(&cek[..32]).unwrap();
            mac.update(&aad);
            mac.update(&iv);
            mac.update(&ct);
            mac.update(&(aad.len() as u64 * 8).to_be_bytes());
            let _ = mac.finalize();
            cbc::Decryptor::<aes::Aes256>::new((&cek[32..]).into(), (&iv).into())
                .decrypt_padded_vec_mut::<Pkcs7>(&ct)
                .unwrap()
        })
    });
    let signing = ed25519_dalek::SigningKey::generate(&mut OsRng);
    let verifying = signing.verifying_key();
    let signed_input = [b's'; 420];
    let signature = signing.sign(&signed_input);
    group.bench_function("ed25519_sign", |b| b.iter(|| signing.sign(&signed_input)));
    group.bench_function("ed25519_verify", |b| {
        b.iter(|| verifying.verify(&signed_input, &signature).unwrap())
    });
    // What DIDComm needs (and we run): no small-order or non-canonical encodings accepted.
    group.bench_function("ed25519_verify_strict", |b| {
        b.iter(|| verifying.verify_strict(&signed_input, &signature).unwrap())
    });
    group.finish();
}

struct Party {
    didcomm: DidComm<Resolver>,
    did: String,
}

fn party() -> Party {
    let ring = Arc::new(KeyRing::new());
    let ed = ring.generate(KeyType::Ed25519);
    let did = did_key(&ed);
    // The did:key's X25519 key is derived from its Ed25519 key: hold its secret too.
    ring.derive_x25519(&ed)
        .expect("the ring holds the Ed25519 key");
    Party {
        didcomm: DidComm::new(ring, Resolver::default()),
        did,
    }
}

fn ours(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let alice = party();
    let bob = party();
    let message = message(&alice.did, &bob.did);
    assert_eq!(
        message.body.to_string().len(),
        200,
        "the body is not 200 bytes"
    );
    let mut group = c.benchmark_group("ours");
    let anon = rt
        .block_on(alice.didcomm.pack_anoncrypt(&message, &[&bob.did]))
        .unwrap();
    let auth = rt
        .block_on(
            alice
                .didcomm
                .pack_authcrypt(&message, &alice.did, &[&bob.did], false),
        )
        .unwrap();
    let signed = rt
        .block_on(alice.didcomm.pack_signed(&message, &alice.did))
        .unwrap();
    group.bench_function(BenchmarkId::new("pack", "anoncrypt"), |b| {
        b.iter(|| {
            rt.block_on(alice.didcomm.pack_anoncrypt(&message, &[&bob.did]))
                .unwrap()
        })
    });
    group.bench_function(BenchmarkId::new("unpack", "anoncrypt"), |b| {
        b.iter(|| rt.block_on(bob.didcomm.unpack(&anon)).unwrap())
    });
    group.bench_function(BenchmarkId::new("pack", "authcrypt"), |b| {
        b.iter(|| {
            rt.block_on(
                alice
                    .didcomm
                    .pack_authcrypt(&message, &alice.did, &[&bob.did], false),
            )
            .unwrap()
        })
    });
    group.bench_function(BenchmarkId::new("unpack", "authcrypt"), |b| {
        b.iter(|| rt.block_on(bob.didcomm.unpack(&auth)).unwrap())
    });
    group.bench_function(BenchmarkId::new("pack", "signed"), |b| {
        b.iter(|| {
            rt.block_on(alice.didcomm.pack_signed(&message, &alice.did))
                .unwrap()
        })
    });
    group.bench_function(BenchmarkId::new("unpack", "signed"), |b| {
        b.iter(|| rt.block_on(bob.didcomm.unpack(&signed)).unwrap())
    });
    group.finish();
}

/// The same exchanges with the `didcomm` 0.4.1 crate, resolvers and secrets built once.
fn didcomm_crate(c: &mut Criterion) {
    use didcomm::algorithms::AnonCryptAlg;
    use didcomm::{PackEncryptedOptions, UnpackOptions};
    use interop::didcomm_rs::{resolver, secrets};
    use interop::parties::{Foreign, Method};

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let alice = Foreign::new(Method::Key);
    let bob = Foreign::new(Method::Key);
    let resolver = resolver(&[alice.doc(), bob.doc()]);
    let alice_secrets = secrets(&alice);
    let bob_secrets = secrets(&bob);
    let message: didcomm::Message =
        serde_json::from_value(serde_json::to_value(message(&alice.did, &bob.did)).unwrap())
            .unwrap();
    let options = PackEncryptedOptions {
        forward: false,
        enc_alg_anon: AnonCryptAlg::A256cbcHs512EcdhEsA256kw,
        ..PackEncryptedOptions::default()
    };
    let unpack_options = UnpackOptions::default();
    let pack = |from: Option<&str>| {
        rt.block_on(message.pack_encrypted(
            &bob.did,
            from,
            None,
            &resolver,
            &alice_secrets,
            &options,
        ))
        .unwrap()
        .0
    };
    let sign = || {
        rt.block_on(message.pack_signed(&alice.did, &resolver, &alice_secrets))
            .unwrap()
            .0
    };
    let unpack = |packed: &str| {
        rt.block_on(didcomm::Message::unpack(
            packed,
            &resolver,
            &bob_secrets,
            &unpack_options,
        ))
        .unwrap()
    };
    let anon = pack(None);
    let auth = pack(Some(&alice.did));
    let signed = sign();
    let mut group = c.benchmark_group("didcomm-0.4.1");
    group.bench_function(BenchmarkId::new("pack", "anoncrypt"), |b| {
        b.iter(|| pack(None))
    });
    group.bench_function(BenchmarkId::new("unpack", "anoncrypt"), |b| {
        b.iter(|| unpack(&anon))
    });
    group.bench_function(BenchmarkId::new("pack", "authcrypt"), |b| {
        b.iter(|| pack(Some(&alice.did)))
    });
    group.bench_function(BenchmarkId::new("unpack", "authcrypt"), |b| {
        b.iter(|| unpack(&auth))
    });
    group.bench_function(BenchmarkId::new("pack", "signed"), |b| b.iter(sign));
    group.bench_function(BenchmarkId::new("unpack", "signed"), |b| {
        b.iter(|| unpack(&signed))
    });
    group.finish();
}

criterion_group!(benches, floor, ours, didcomm_crate);
criterion_main!(benches);

//! DIDComm envelopes as Bob unpacks them (`DidComm::unpack`, local resolver, Bob's real key
//! ring), and the plaintext `Message` parser. The first byte picks how the rest is used:
//!
//! 0. the text itself, unpacked as it came (JWE, JWS or plaintext, nested);
//! 1. the bytes as the payload of a real anoncrypt to Bob (A256CBC-HS512, A256GCM or XC20P);
//! 2. the payload of a real authcrypt from Alice to Bob;
//! 3. the payload of a JWS signed by Alice, anoncrypted to Bob;
//! 4. the plaintext `Message` parser and serialiser.
//!
//! Modes 1 to 3 reach what lies behind decryption and signature checks, which a fuzzer cannot
//! forge. Checks: what unpacks has at most three layers, each layer Bob's side reports is the
//! one that was made, and the message's `from` is the DID each layer proved.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lanyard_protocol::did::did_of;
use lanyard_protocol::didcomm::{encrypt_anoncrypt, encrypt_authcrypt, sign, Layer, Message, Unpacked};
use lanyard_protocol::keys::ContentEnc;

use lanyard_fuzz::{fixtures, mode, run};

fn check(unpacked: &Unpacked) {
    let Unpacked { message, metadata } = unpacked;
    assert!(metadata.layers.len() <= 3, "{:?}", metadata.layers);
    assert!(!message.id.is_empty() && !message.type_.is_empty());
    if let Some(sender) = metadata.authcrypt_sender() {
        assert_eq!(message.from.as_deref(), Some(did_of(sender)));
    }
    if let Some(signer) = metadata.signer() {
        assert_eq!(message.from.as_deref(), Some(did_of(signer)));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = mode(data, 5) else {
        return;
    };
    let f = fixtures();
    let bob = std::slice::from_ref(&f.bob.agreement);
    let (envelope, expected) = match mode {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            (text.to_string(), None)
        }
        1 => {
            let Some((choice, payload)) = rest.split_first() else {
                return;
            };
            let enc = [
                ContentEnc::A256CbcHs512,
                ContentEnc::A256Gcm,
                ContentEnc::Xc20p,
            ][usize::from(*choice) % 3];
            let layer = Layer::Anoncrypt {
                recipient_kid: f.bob.agreement.kid.clone(),
                enc,
            };
            (
                encrypt_anoncrypt(payload, bob, enc).unwrap(),
                Some(vec![layer]),
            )
        }
        2 => {
            let layer = Layer::Authcrypt {
                sender_kid: f.alice.agreement.kid.clone(),
                recipient_kid: f.bob.agreement.kid.clone(),
            };
            let packed = encrypt_authcrypt(&f.alice.ring, rest, &f.alice.agreement, bob).unwrap();
            (packed, Some(vec![layer]))
        }
        3 => {
            let signing = &f.alice.signing;
            let signed = sign(&f.alice.ring, rest, &signing.kid, &signing.key).unwrap();
            let enc = ContentEnc::A256CbcHs512;
            let layers = vec![
                Layer::Anoncrypt {
                    recipient_kid: f.bob.agreement.kid.clone(),
                    enc,
                },
                Layer::Signed {
                    signer_kid: signing.kid.clone(),
                },
            ];
            let packed = encrypt_anoncrypt(signed.as_bytes(), bob, enc).unwrap();
            (packed, Some(layers))
        }
        _ => {
            if let Ok(message) = serde_json::from_slice::<Message>(rest) {
                let json = message.to_json();
                let again: Message = serde_json::from_str(&json)
                    .unwrap_or_else(|e| panic!("{json} does not parse again: {e}"));
                assert_eq!(again.id, message.id);
                assert_eq!(again.type_, message.type_);
                assert_eq!(again.from, message.from);
                assert_eq!(again.to, message.to);
                assert_eq!(again.thread_id(), message.thread_id());
                assert_eq!(again.attachments.len(), message.attachments.len());
            }
            return;
        }
    };
    match run(f.bob_comm.unpack(&envelope)) {
        Ok(unpacked) => {
            check(&unpacked);
            if let Some(expected) = expected {
                assert_eq!(
                    unpacked.metadata.layers[..expected.len()],
                    expected[..],
                    "the outer layers are not the ones that were made"
                );
                if mode == 2 {
                    assert_eq!(unpacked.message.from.as_deref(), Some(f.alice.did.as_str()));
                }
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});

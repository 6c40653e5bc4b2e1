//! Adapter to `affinidi-messaging-didcomm` 0.15.11, a second, stricter implementation: it
//! takes keys rather than documents, binds an authcrypt sender key to the JWE's `skid` (and
//! checks `apu` = base64url(skid)), and requires a signer key bound to the JWS `kid`.

use affinidi_crypto::jose::key_agreement::{Curve, PrivateKeyAgreement, PublicKeyAgreement};
use affinidi_messaging_didcomm::jws::verify::VerifyKey;
use affinidi_messaging_didcomm::message::{pack, unpack};
use affinidi_messaging_didcomm::{jwe, jws, Message, SenderKey, SignerKey, UnpackResult};
use serde_json::Value;

use super::parties::Foreign;

fn private(party: &Foreign) -> PrivateKeyAgreement {
    PrivateKeyAgreement::from_raw_bytes(Curve::X25519, &party.x_secret).expect("X25519 secret")
}

fn public(bytes: &[u8; 32]) -> PublicKeyAgreement {
    PublicKeyAgreement::from_raw_bytes(Curve::X25519, bytes).expect("X25519 public key")
}

fn message(plaintext: &Value) -> Message {
    Message::from_json(plaintext.to_string().as_bytes()).expect("affinidi parses our message")
}

/// The recipients' keys in affinidi's type, to be paired with their kids by [`pairs`].
fn keys(recipients: &[(String, [u8; 32])]) -> Vec<PublicKeyAgreement> {
    recipients.iter().map(|(_, k)| public(k)).collect()
}

fn pairs<'a>(
    recipients: &'a [(String, [u8; 32])],
    keys: &'a [PublicKeyAgreement],
) -> Vec<(&'a str, &'a PublicKeyAgreement)> {
    recipients
        .iter()
        .zip(keys)
        .map(|((kid, _), key)| (kid.as_str(), key))
        .collect()
}

/// Anoncrypt to `(kid, key)` recipients.
pub fn pack_anoncrypt(plaintext: &Value, recipients: &[(String, [u8; 32])]) -> String {
    let keys = keys(recipients);
    pack::pack_encrypted_anoncrypt(&message(plaintext), &pairs(recipients, &keys))
        .expect("affinidi anoncrypts")
}

/// Authcrypt from `from`, optionally signed first by its Ed25519 key.
pub fn pack_authcrypt(
    plaintext: &Value,
    from: &Foreign,
    recipients: &[(String, [u8; 32])],
    signed: bool,
) -> String {
    let keys = keys(recipients);
    let list = pairs(recipients, &keys);
    let message = message(plaintext);
    if signed {
        let payload = message.to_json().unwrap();
        let jws = jws::sign::sign_ed25519(&payload, &from.ed_kid, &from.ed_seed).unwrap();
        jwe::encrypt::authcrypt(jws.as_bytes(), &from.x_kid, &private(from), &list)
            .expect("affinidi authcrypts a JWS")
    } else {
        pack::pack_encrypted_authcrypt(&message, &from.x_kid, &private(from), &list)
            .expect("affinidi authcrypts")
    }
}

pub fn pack_signed(plaintext: &Value, from: &Foreign) -> String {
    pack::pack_signed(&message(plaintext), &from.ed_kid, &from.ed_seed).expect("affinidi signs")
}

/// What the library reported.
#[derive(Debug)]
pub struct Unpacked {
    pub plaintext: Value,
    pub encrypted: bool,
    pub authenticated: bool,
    pub sender_kid: Option<String>,
    pub signer_kid: Option<String>,
}

/// Unpacks as `me`, with the sender's keys bound to their kids (as a resolver would give them).
pub fn unpack(
    packed: &str,
    me: &Foreign,
    sender_x: Option<(&str, [u8; 32])>,
    signer: Option<(&str, [u8; 32])>,
) -> Result<Unpacked, String> {
    let sender_key = sender_x.map(|(_, key)| public(&key));
    let sender = sender_x
        .zip(sender_key.as_ref())
        .map(|((kid, _), key)| SenderKey::new(kid, key));
    let verify_key = signer.map(|(_, key)| VerifyKey::Ed25519(key));
    let signer = signer
        .zip(verify_key.as_ref())
        .map(|((kid, _), key)| SignerKey::new(kid, key));
    let result = unpack::unpack_bound(packed, Some(&me.x_kid), Some(&private(me)), sender, signer)
        .map_err(|e| e.to_string())?;
    #[allow(deprecated)]
    let unpacked = match result {
        UnpackResult::Encrypted {
            message,
            authenticated,
            sender_kid,
            signer_kid,
            ..
        } => Unpacked {
            plaintext: serde_json::to_value(message).unwrap(),
            encrypted: true,
            authenticated,
            sender_kid,
            signer_kid,
        },
        UnpackResult::Signed {
            message,
            signer_kid,
        } => Unpacked {
            plaintext: serde_json::to_value(message).unwrap(),
            encrypted: false,
            authenticated: true,
            sender_kid: None,
            signer_kid,
        },
        UnpackResult::Plaintext(message) => Unpacked {
            plaintext: serde_json::to_value(message).unwrap(),
            encrypted: false,
            authenticated: false,
            sender_kid: None,
            signer_kid: None,
        },
        _ => return Err("an envelope shape this adapter does not know".into()),
    };
    Ok(unpacked)
}

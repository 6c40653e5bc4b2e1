//! Adapter to the `didcomm` 0.4.1 crate (the DIF/SICPA reference implementation). It resolves
//! nothing itself: it is given DID documents with `JsonWebKey2020` methods under absolute ids,
//! and the foreign party's secrets as private JWKs.
//!
//! What it demands, found while writing these tests: every DID document field present
//! (`keyAgreement`, `authentication`, `verificationMethod`, `service`, even when empty);
//! verification methods referenced by absolute id; secrets typed like their public methods.

use didcomm::algorithms::AnonCryptAlg;
use didcomm::did::resolvers::ExampleDIDResolver;
use didcomm::did::{DIDDoc, VerificationMaterial, VerificationMethod, VerificationMethodType};
use didcomm::secrets::resolvers::ExampleSecretsResolver;
use didcomm::secrets::{Secret, SecretMaterial, SecretType};
use didcomm::{Message, PackEncryptedOptions, UnpackMetadata, UnpackOptions};
use lanyard_protocol::did::{DidDocument, VerificationRelationship};
use lanyard_protocol::encoding::b64u_encode;
use serde_json::{json, Value};

use super::parties::Foreign;

/// Our document in the shape the crate wants.
pub fn did_doc(doc: &DidDocument) -> DIDDoc {
    let jwk = doc.to_jsonwebkey2020();
    let ids = |entries: &[VerificationRelationship]| -> Vec<String> {
        entries.iter().map(|entry| entry.id().to_string()).collect()
    };
    DIDDoc {
        id: jwk.id.clone(),
        key_agreement: ids(&jwk.key_agreement),
        authentication: ids(&jwk.authentication),
        verification_method: jwk
            .verification_method
            .iter()
            .map(|method| VerificationMethod {
                id: method.id.clone(),
                type_: VerificationMethodType::JsonWebKey2020,
                controller: method.controller.clone(),
                verification_material: VerificationMaterial::JWK {
                    public_key_jwk: method.public_key_jwk.clone().expect("converted to JWK"),
                },
            })
            .collect(),
        service: vec![],
    }
}

fn secret(kid: &str, crv: &str, x: &[u8; 32], d: &[u8; 32]) -> Secret {
    Secret {
        id: kid.to_string(),
        type_: SecretType::JsonWebKey2020,
        secret_material: SecretMaterial::JWK {
            private_key_jwk: json!({
                "kty": "OKP", "crv": crv, "x": b64u_encode(x), "d": b64u_encode(d),
            }),
        },
    }
}

/// The foreign party's secrets as the crate takes them.
pub fn secrets(party: &Foreign) -> ExampleSecretsResolver {
    ExampleSecretsResolver::new(vec![
        secret(&party.ed_kid, "Ed25519", &party.ed_public, &party.ed_seed),
        secret(&party.x_kid, "X25519", &party.x_public, &party.x_secret),
    ])
}

pub fn resolver(docs: &[DidDocument]) -> ExampleDIDResolver {
    ExampleDIDResolver::new(docs.iter().map(did_doc).collect())
}

fn message(plaintext: &Value) -> Message {
    serde_json::from_value(plaintext.clone()).expect("didcomm parses our message")
}

/// How the foreign party packs.
pub enum Mode {
    Anoncrypt(AnonCryptAlg),
    Authcrypt { signed: bool },
    Signed,
}

/// Packs `plaintext` from `from` to the DID `to` with the crate.
pub async fn pack(
    plaintext: &Value,
    from: &Foreign,
    to: &str,
    mode: Mode,
    docs: &[DidDocument],
) -> String {
    let resolver = resolver(docs);
    let secrets = secrets(from);
    let message = message(plaintext);
    let options = |enc_alg_anon| PackEncryptedOptions {
        forward: false,
        enc_alg_anon,
        ..PackEncryptedOptions::default()
    };
    match mode {
        Mode::Anoncrypt(alg) => {
            message
                .pack_encrypted(to, None, None, &resolver, &secrets, &options(alg))
                .await
                .expect("didcomm anoncrypts")
                .0
        }
        Mode::Authcrypt { signed } => {
            let sign_by = signed.then_some(from.did.as_str());
            message
                .pack_encrypted(
                    to,
                    Some(&from.did),
                    sign_by,
                    &resolver,
                    &secrets,
                    &options(AnonCryptAlg::A256cbcHs512EcdhEsA256kw),
                )
                .await
                .expect("didcomm authcrypts")
                .0
        }
        Mode::Signed => {
            message
                .pack_signed(&from.did, &resolver, &secrets)
                .await
                .expect("didcomm signs")
                .0
        }
    }
}

/// Unpacks with the crate as the foreign party; returns the plaintext and the crate's metadata.
pub async fn unpack(
    packed: &str,
    me: &Foreign,
    docs: &[DidDocument],
) -> Result<(Value, UnpackMetadata), String> {
    let resolver = resolver(docs);
    let secrets = secrets(me);
    let (message, metadata) =
        Message::unpack(packed, &resolver, &secrets, &UnpackOptions::default())
            .await
            .map_err(|e| format!("{e:#}"))?;
    Ok((serde_json::to_value(message).unwrap(), metadata))
}

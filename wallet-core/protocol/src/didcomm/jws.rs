//! DIDComm signed messages: JWS in the General JSON Serialization (RFC 7515 §7.2.1) with
//! `EdDSA` over Ed25519 (RFC 8037), the signer's kid in the per-signature unprotected header
//! as DIDComm Messaging v2.1 §"DIDComm Signed Messages" and its Appendix C.2 show.

use serde::{Deserialize, Serialize};

use super::DidCommError;
use crate::encoding::{b64u_decode, b64u_encode};
use crate::keys::{Ed25519Verifier, KeyRing, KeyType, PublicKey};

/// `typ` of a signed DIDComm message.
pub const SIGNED_TYP: &str = "application/didcomm-signed+json";

#[derive(Serialize, Deserialize)]
struct JwsJson {
    payload: String,
    signatures: Vec<SignatureJson>,
}

#[derive(Serialize, Deserialize)]
struct SignatureJson {
    protected: String,
    signature: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    header: Option<SignatureHeader>,
}

#[derive(Serialize, Deserialize)]
struct SignatureHeader {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
}

#[derive(Deserialize)]
struct ProtectedHeader {
    #[serde(default)]
    typ: Option<String>,
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Signs `payload` with the Ed25519 key `key` (held in `ring`), naming it `kid`.
pub fn sign(
    ring: &KeyRing,
    payload: &[u8],
    kid: &str,
    key: &PublicKey,
) -> Result<String, DidCommError> {
    if key.kind != KeyType::Ed25519 {
        return Err(DidCommError::UnsupportedKey {
            kid: kid.to_string(),
            found: format!("{:?}", key.kind),
        });
    }
    let protected = b64u_encode(
        serde_json::json!({"typ": SIGNED_TYP, "alg": "EdDSA", "crv": "Ed25519"}).to_string(),
    );
    let payload = b64u_encode(payload);
    let signing_input = format!("{protected}.{payload}");
    let signature = ring.sign(key, signing_input.as_bytes())?;
    Ok(serde_json::to_string(&JwsJson {
        payload,
        signatures: vec![SignatureJson {
            protected,
            signature: b64u_encode(signature),
            header: Some(SignatureHeader {
                kid: Some(kid.to_string()),
            }),
        }],
    })
    .expect("a JWS always serialises"))
}

/// A JWS parsed for shape; signatures not yet checked.
pub(crate) struct ParsedJws {
    payload_b64: String,
    pub(crate) payload: Vec<u8>,
    signatures: Vec<(String, String, Vec<u8>)>,
}

impl ParsedJws {
    /// Parses a JWS for shape: base64url payload, at least one signature with its header.
    pub(crate) fn parse(bytes: &[u8]) -> Result<ParsedJws, DidCommError> {
        let jws: JwsJson = serde_json::from_slice(bytes)
            .map_err(|e| DidCommError::Malformed(format!("signed message: {e}")))?;
        let payload = b64u_decode(&jws.payload)
            .map_err(|_| DidCommError::Malformed("JWS payload is not base64url".into()))?;
        if jws.signatures.is_empty() {
            return Err(DidCommError::Malformed("JWS has no signatures".into()));
        }
        let mut signatures = Vec::with_capacity(jws.signatures.len());
        for signature in jws.signatures {
            let header_bytes = b64u_decode(&signature.protected).map_err(|_| {
                DidCommError::Malformed("JWS protected header is not base64url".into())
            })?;
            let header: ProtectedHeader = serde_json::from_slice(&header_bytes)
                .map_err(|e| DidCommError::Malformed(format!("JWS protected header: {e}")))?;
            if header.alg != "EdDSA" {
                return Err(DidCommError::UnsupportedAlg(header.alg));
            }
            if let Some(typ) = &header.typ {
                if typ != SIGNED_TYP && typ != "JWM+json" {
                    return Err(DidCommError::Malformed(format!(
                        "JWS typ is {typ:?}, expected {SIGNED_TYP:?}"
                    )));
                }
            }
            let kid = signature
                .header
                .and_then(|h| h.kid)
                .or(header.kid)
                .ok_or_else(|| DidCommError::Malformed("JWS signature names no kid".into()))?;
            let bytes = b64u_decode(&signature.signature)
                .map_err(|_| DidCommError::Malformed("JWS signature is not base64url".into()))?;
            signatures.push((kid, signature.protected, bytes));
        }
        Ok(ParsedJws {
            payload_b64: jws.payload,
            payload,
            signatures,
        })
    }

    /// The signers' kids, in message order.
    pub(crate) fn signer_kids(&self) -> impl Iterator<Item = &str> {
        self.signatures.iter().map(|(kid, _, _)| kid.as_str())
    }

    /// Checks the signature made by `kid` against `key`.
    pub(crate) fn verify(
        &self,
        verifier: &Ed25519Verifier,
        kid: &str,
        key: &PublicKey,
    ) -> Result<(), DidCommError> {
        let (_, protected, signature) = self
            .signatures
            .iter()
            .find(|(k, _, _)| k == kid)
            .ok_or_else(|| DidCommError::Malformed(format!("JWS has no signature by {kid}")))?;
        let mut input = Vec::with_capacity(protected.len() + 1 + self.payload_b64.len());
        input.extend_from_slice(protected.as_bytes());
        input.push(b'.');
        input.extend_from_slice(self.payload_b64.as_bytes());
        verifier
            .verify(key, &input, signature)
            .map_err(|_| DidCommError::BadSignature {
                kid: kid.to_string(),
            })
    }
}

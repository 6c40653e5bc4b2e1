//! Data Integrity proofs with the `eddsa-jcs-2022` cryptosuite (W3C "Data Integrity EdDSA
//! Cryptosuites v1.0", §3.3): the proof configuration (with the document's `@context`) and the
//! document are each JCS-canonicalized and SHA-256 hashed; the Ed25519 signature is over
//! proofHash ‖ docHash (64 bytes) and travels as a base58btc multibase `proofValue`.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::jcs::canonicalize;
use super::time::parse_rfc3339;
use super::CredentialError;
use crate::did::{did_of, DidResolver};
use crate::keys::{verify_ed25519, KeyRing, KeyType, PublicKey};

/// The proof `type`.
pub const PROOF_TYPE: &str = "DataIntegrityProof";
/// The one cryptosuite: Ed25519 over the RFC 8785 canonical form.
pub const CRYPTOSUITE: &str = "eddsa-jcs-2022";
/// The proof purpose of a credential's proof.
pub const ASSERTION_METHOD: &str = "assertionMethod";
/// The proof purpose of a presentation's proof.
pub const AUTHENTICATION: &str = "authentication";

/// What a new proof says besides its signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProofOptions {
    /// A DID URL naming the signing key in its controller's document.
    pub verification_method: String,
    /// `assertionMethod` (credentials) or `authentication` (presentations).
    pub proof_purpose: String,
    /// RFC 3339.
    pub created: String,
    /// The verifier's nonce (presentations).
    pub challenge: Option<String>,
    /// The domain the proof is bound to (presentations).
    pub domain: Option<String>,
}

/// What a verified proof established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The DID URL of the key that made the proof.
    pub verification_method: String,
    /// The DID whose key made the proof.
    pub controller: String,
    /// When the proof was made, RFC 3339.
    pub created: String,
    /// The nonce it carries, if any.
    pub challenge: Option<String>,
    /// The domain it is bound to, if any.
    pub domain: Option<String>,
}

/// proofHash ‖ docHash of a document (without `proof`) and a proof configuration (without
/// `proofValue`).
fn hash_data(document: &Value, config: &Value) -> Result<[u8; 64], CredentialError> {
    let mut combined = [0u8; 64];
    combined[..32].copy_from_slice(&Sha256::digest(canonicalize(config)?.as_bytes()));
    combined[32..].copy_from_slice(&Sha256::digest(canonicalize(document)?.as_bytes()));
    Ok(combined)
}

/// Adds an `eddsa-jcs-2022` proof by `key` (held in `ring`) to `document`.
pub fn sign(
    document: &Value,
    ring: &KeyRing,
    key: &PublicKey,
    options: &ProofOptions,
) -> Result<Value, CredentialError> {
    let Value::Object(unsecured) = document else {
        return Err(CredentialError::shape("only a JSON object can be signed"));
    };
    if unsecured.contains_key("proof") {
        return Err(CredentialError::shape(
            "the document has a proof already (proof sets are not supported)",
        ));
    }
    if key.kind != KeyType::Ed25519 {
        return Err(CredentialError::Signing(
            "eddsa-jcs-2022 signs with Ed25519".into(),
        ));
    }
    let mut config = Map::new();
    config.insert("type".into(), Value::from(PROOF_TYPE));
    config.insert("cryptosuite".into(), Value::from(CRYPTOSUITE));
    config.insert("created".into(), Value::from(options.created.clone()));
    config.insert(
        "verificationMethod".into(),
        Value::from(options.verification_method.clone()),
    );
    config.insert(
        "proofPurpose".into(),
        Value::from(options.proof_purpose.clone()),
    );
    if let Some(challenge) = &options.challenge {
        config.insert("challenge".into(), Value::from(challenge.clone()));
    }
    if let Some(domain) = &options.domain {
        config.insert("domain".into(), Value::from(domain.clone()));
    }
    if let Some(context) = unsecured.get("@context") {
        config.insert("@context".into(), context.clone());
    }
    let config = Value::Object(config);
    let signature = ring
        .sign(key, &hash_data(document, &config)?)
        .map_err(|e| CredentialError::Signing(e.to_string()))?;
    let mut proof = config;
    proof["proofValue"] = Value::from(format!("z{}", bs58::encode(signature).into_string()));
    let mut secured = unsecured.clone();
    secured.insert("proof".into(), proof);
    Ok(Value::Object(secured))
}

fn proof_text<'a>(proof: &'a Map<String, Value>, name: &str) -> Result<&'a str, CredentialError> {
    proof
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| CredentialError::Proof(format!("proof.{name} is missing")))
}

/// Verifies the `eddsa-jcs-2022` proof of `secured` for `purpose`; the key must be listed
/// under that relationship in its controller's DID document.
pub async fn verify<R: DidResolver>(
    secured: &Value,
    resolver: &R,
    purpose: &str,
) -> Result<VerifiedProof, CredentialError> {
    let Value::Object(document) = secured else {
        return Err(CredentialError::shape(
            "a secured document is a JSON object",
        ));
    };
    let proof = match document.get("proof") {
        Some(Value::Object(proof)) => proof,
        Some(Value::Array(_)) => {
            return Err(CredentialError::Proof(
                "proof sets are not supported".into(),
            ))
        }
        _ => return Err(CredentialError::Proof("there is no proof".into())),
    };
    if proof_text(proof, "type")? != PROOF_TYPE {
        return Err(CredentialError::Proof(format!(
            "proof.type is {}, not {PROOF_TYPE}",
            proof_text(proof, "type")?
        )));
    }
    if proof_text(proof, "cryptosuite")? != CRYPTOSUITE {
        return Err(CredentialError::Proof(format!(
            "the cryptosuite {} is not supported (only {CRYPTOSUITE})",
            proof_text(proof, "cryptosuite")?
        )));
    }
    let proof_purpose = proof_text(proof, "proofPurpose")?;
    if proof_purpose != purpose {
        return Err(CredentialError::Proof(format!(
            "the proof's purpose is {proof_purpose}, not {purpose}"
        )));
    }
    let created = proof_text(proof, "created")?;
    if parse_rfc3339(created).is_none() {
        return Err(CredentialError::Proof(format!(
            "proof.created {created:?} is not an RFC 3339 date-time"
        )));
    }
    // The proof's @context, when present, must be how the document's starts (§3.3.2 step 4).
    if let Some(proof_context) = proof.get("@context") {
        let as_list = |v: Option<&Value>| match v {
            Some(Value::Array(items)) => items.clone(),
            Some(other) => vec![other.clone()],
            None => Vec::new(),
        };
        let mine = as_list(Some(proof_context));
        let theirs = as_list(document.get("@context"));
        if !theirs.starts_with(&mine) {
            return Err(CredentialError::Proof(
                "the document's @context does not start with the proof's".into(),
            ));
        }
    }
    let proof_value = proof_text(proof, "proofValue")?;
    let signature = proof_value
        .strip_prefix('z')
        .filter(|v| v.len() <= 100)
        .and_then(|v| bs58::decode(v).into_vec().ok())
        .filter(|s| s.len() == 64)
        .ok_or_else(|| {
            CredentialError::Proof("proofValue is not a base58btc Ed25519 signature".into())
        })?;
    let method = proof_text(proof, "verificationMethod")?;
    let controller = did_of(method);
    let doc = resolver
        .resolve(controller)
        .await
        .map_err(|e| CredentialError::UnknownKey {
            key: method.to_string(),
            reason: e.to_string(),
        })?;
    let listed = match purpose {
        ASSERTION_METHOD => doc.assertion_keys(),
        AUTHENTICATION => doc.authentication_keys(),
        other => {
            return Err(CredentialError::Proof(format!(
                "the purpose {other} is not supported"
            )))
        }
    };
    let key = listed
        .iter()
        .find(|(id, _)| id == method || doc.absolute_id(id) == method)
        .map(|(_, key)| *key)
        .ok_or_else(|| CredentialError::UnknownKey {
            key: method.to_string(),
            reason: format!("{controller} does not list it under {purpose}"),
        })?;
    let mut unsecured = document.clone();
    unsecured.remove("proof");
    let mut config = proof.clone();
    config.remove("proofValue");
    let data = hash_data(&Value::Object(unsecured), &Value::Object(config))?;
    verify_ed25519(&key, &data, &signature)
        .map_err(|_| CredentialError::Proof("the signature does not match the document".into()))?;
    Ok(VerifiedProof {
        verification_method: method.to_string(),
        controller: controller.to_string(),
        created: created.to_string(),
        challenge: proof
            .get("challenge")
            .and_then(Value::as_str)
            .map(str::to_string),
        domain: proof
            .get("domain")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

//! W3C Verifiable Credentials Data Model 2.0 as Lanyard uses it: credentials issued by an
//! organisation's DID about a holder's connection DID, naming their template in
//! `credentialSchema`, revocable through a `BitstringStatusListEntry`; and presentations the
//! holder signs for a verifier's `challenge` and `domain`. Issuing and presenting sign with
//! [`super::data_integrity`]; verifying checks shape, proof, signer and validity period.

use serde_json::{json, Map, Value};

use super::data_integrity::{self, ProofOptions, ASSERTION_METHOD, AUTHENTICATION};
use super::time::{format_rfc3339, parse_rfc3339};
use super::CredentialError;
use crate::did::DidResolver;
use crate::keys::{KeyRing, PublicKey};

/// The VC Data Model 2.0 context, first in every credential's `@context`.
pub const VC_CONTEXT: &str = "https://www.w3.org/ns/credentials/v2";
/// The `credentialSchema.type` that names a Lanyard template.
pub const TEMPLATE_SCHEMA_TYPE: &str = "LanyardCredentialTemplate";
/// Largest credential or presentation accepted, as JSON.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// A credential's place in a Bitstring Status List.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEntry {
    /// The status list credential's URL.
    pub list: String,
    /// The entry's index in the list.
    pub index: u64,
    /// What a set bit means (`revocation`).
    pub purpose: String,
}

/// What a verified credential says.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedCredential {
    /// The credential's `id` (`urn:uuid:...`).
    pub id: Option<String>,
    /// The issuer's DID.
    pub issuer: String,
    /// The issuer's `name`, as it calls itself.
    pub issuer_name: Option<String>,
    /// The credential's `name`.
    pub name: Option<String>,
    /// The holder's DID (`credentialSubject.id`).
    pub subject_id: String,
    /// `credentialSchema.id` when it names a Lanyard template.
    pub template_id: Option<String>,
    /// The subject's other members.
    pub claims: Map<String, Value>,
    /// `validFrom`, seconds since the epoch.
    pub valid_from: Option<u64>,
    /// `validUntil`, seconds since the epoch.
    pub valid_until: Option<u64>,
    /// Its `credentialStatus` entry, when it has one.
    pub status: Option<StatusEntry>,
}

/// What a verified presentation says.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedPresentation {
    /// The holder's DID, who signed the presentation.
    pub holder: String,
    /// The credentials it carries, each verified.
    pub credentials: Vec<VerifiedCredential>,
}

/// Signs an unsigned credential as its issuer (`assertionMethod`).
pub fn issue(
    unsigned: &Value,
    ring: &KeyRing,
    key: &PublicKey,
    verification_method: &str,
    now: u64,
) -> Result<Value, CredentialError> {
    data_integrity::sign(
        unsigned,
        ring,
        key,
        &ProofOptions {
            verification_method: verification_method.to_string(),
            proof_purpose: ASSERTION_METHOD.into(),
            created: format_rfc3339(now),
            challenge: None,
            domain: None,
        },
    )
}

fn has_type(value: &Value, wanted: &str) -> bool {
    match value.get("type") {
        Some(Value::String(t)) => t == wanted,
        Some(Value::Array(types)) => types.iter().any(|t| t.as_str() == Some(wanted)),
        _ => false,
    }
}

fn check_context(value: &Value, what: &str) -> Result<(), CredentialError> {
    let first = match value.get("@context") {
        Some(Value::Array(items)) => items.first().and_then(Value::as_str),
        Some(Value::String(url)) => Some(url.as_str()),
        _ => None,
    };
    if first == Some(VC_CONTEXT) {
        Ok(())
    } else {
        Err(CredentialError::shape(format!(
            "the {what}'s @context does not start with {VC_CONTEXT}"
        )))
    }
}

fn time_field(value: &Value, name: &str) -> Result<Option<u64>, CredentialError> {
    match value.get(name) {
        None => Ok(None),
        Some(Value::String(text)) => parse_rfc3339(text).map(Some).ok_or_else(|| {
            CredentialError::shape(format!("{name} {text:?} is not an RFC 3339 date-time"))
        }),
        Some(_) => Err(CredentialError::shape(format!("{name} is not a string"))),
    }
}

/// Reads a credential's members without checking its proof.
pub fn read_credential(vc: &Value) -> Result<VerifiedCredential, CredentialError> {
    if !vc.is_object() {
        return Err(CredentialError::shape("a credential is a JSON object"));
    }
    check_context(vc, "credential")?;
    if !has_type(vc, "VerifiableCredential") {
        return Err(CredentialError::shape(
            "the credential's type does not include VerifiableCredential",
        ));
    }
    let (issuer, issuer_name) = match vc.get("issuer") {
        Some(Value::String(id)) => (id.clone(), None),
        Some(Value::Object(issuer)) => (
            issuer
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| CredentialError::shape("issuer.id is missing"))?
                .to_string(),
            issuer
                .get("name")
                .and_then(Value::as_str)
                .map(str::to_string),
        ),
        _ => return Err(CredentialError::shape("the credential has no issuer")),
    };
    let Some(Value::Object(subject)) = vc.get("credentialSubject") else {
        return Err(CredentialError::shape(
            "credentialSubject is missing or not one object",
        ));
    };
    let subject_id = subject
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| CredentialError::shape("credentialSubject.id (the holder) is missing"))?
        .to_string();
    let mut claims = subject.clone();
    claims.remove("id");
    let template_id = vc
        .get("credentialSchema")
        .filter(|schema| has_type(schema, TEMPLATE_SCHEMA_TYPE))
        .and_then(|schema| schema.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let status = match vc.get("credentialStatus") {
        None => None,
        Some(status) if has_type(status, "BitstringStatusListEntry") => {
            let text = |name: &str| {
                status.get(name).and_then(Value::as_str).ok_or_else(|| {
                    CredentialError::shape(format!("credentialStatus.{name} is missing"))
                })
            };
            Some(StatusEntry {
                list: text("statusListCredential")?.to_string(),
                index: text("statusListIndex")?.parse().map_err(|_| {
                    CredentialError::shape("credentialStatus.statusListIndex is not a number")
                })?,
                purpose: text("statusPurpose")?.to_string(),
            })
        }
        Some(_) => {
            return Err(CredentialError::shape(
                "credentialStatus is not a BitstringStatusListEntry",
            ))
        }
    };
    Ok(VerifiedCredential {
        id: vc.get("id").and_then(Value::as_str).map(str::to_string),
        issuer,
        issuer_name,
        name: vc.get("name").and_then(Value::as_str).map(str::to_string),
        subject_id,
        template_id,
        claims,
        valid_from: time_field(vc, "validFrom")?,
        valid_until: time_field(vc, "validUntil")?,
        status,
    })
}

/// Verifies a credential at `now` (seconds): its shape, its proof by a key the issuer's DID
/// lists for assertions, and its validity period. Status lists are the caller's to check
/// (they need fetching); see [`super::status_list`].
pub async fn verify_credential<R: DidResolver>(
    vc: &Value,
    resolver: &R,
    now: u64,
) -> Result<VerifiedCredential, CredentialError> {
    if serde_json::to_vec(vc).map_or(0, |b| b.len()) > MAX_DOCUMENT_BYTES {
        return Err(CredentialError::shape(
            "the credential is larger than 256 KiB",
        ));
    }
    let read = read_credential(vc)?;
    let proof = data_integrity::verify(vc, resolver, ASSERTION_METHOD).await?;
    if proof.controller != read.issuer {
        return Err(CredentialError::Mismatch(format!(
            "the proof was made by {}, not the issuer {}",
            proof.controller, read.issuer
        )));
    }
    if let Some(until) = read.valid_until {
        if now >= until {
            return Err(CredentialError::Expired(format_rfc3339(until)));
        }
    }
    if let Some(from) = read.valid_from {
        if now < from {
            return Err(CredentialError::NotYetValid(format_rfc3339(from)));
        }
    }
    Ok(read)
}

/// A presentation of `credentials` by `holder`, signed for a verifier's challenge and domain.
#[allow(clippy::too_many_arguments)]
pub fn present(
    credentials: &[Value],
    holder: &str,
    ring: &KeyRing,
    key: &PublicKey,
    verification_method: &str,
    challenge: &str,
    domain: &str,
    now: u64,
) -> Result<Value, CredentialError> {
    let vp = json!({
        "@context": [VC_CONTEXT],
        "id": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "type": ["VerifiablePresentation"],
        "holder": holder,
        "verifiableCredential": credentials,
    });
    data_integrity::sign(
        &vp,
        ring,
        key,
        &ProofOptions {
            verification_method: verification_method.to_string(),
            proof_purpose: AUTHENTICATION.into(),
            created: format_rfc3339(now),
            challenge: Some(challenge.to_string()),
            domain: Some(domain.to_string()),
        },
    )
}

/// Verifies a presentation for the expected challenge and domain: the holder's proof, then
/// every credential, each of which must be about the holder.
pub async fn verify_presentation<R: DidResolver>(
    vp: &Value,
    resolver: &R,
    challenge: &str,
    domain: &str,
    now: u64,
) -> Result<VerifiedPresentation, CredentialError> {
    if serde_json::to_vec(vp).map_or(0, |b| b.len()) > MAX_DOCUMENT_BYTES {
        return Err(CredentialError::shape(
            "the presentation is larger than 256 KiB",
        ));
    }
    check_context(vp, "presentation")?;
    if !has_type(vp, "VerifiablePresentation") {
        return Err(CredentialError::shape(
            "the presentation's type does not include VerifiablePresentation",
        ));
    }
    let holder = vp
        .get("holder")
        .and_then(Value::as_str)
        .ok_or_else(|| CredentialError::shape("the presentation has no holder"))?;
    let proof = data_integrity::verify(vp, resolver, AUTHENTICATION).await?;
    if proof.controller != holder {
        return Err(CredentialError::Mismatch(format!(
            "the presentation was signed by {}, not its holder {holder}",
            proof.controller
        )));
    }
    if proof.challenge.as_deref() != Some(challenge) {
        return Err(CredentialError::Mismatch(
            "the presentation's challenge does not match the request's".into(),
        ));
    }
    if proof.domain.as_deref() != Some(domain) {
        return Err(CredentialError::Mismatch(
            "the presentation's domain does not match the request's".into(),
        ));
    }
    let listed = match vp.get("verifiableCredential") {
        Some(Value::Array(items)) => items.clone(),
        Some(item @ Value::Object(_)) => vec![item.clone()],
        _ => {
            return Err(CredentialError::shape(
                "the presentation holds no credential",
            ))
        }
    };
    if listed.len() > 16 {
        return Err(CredentialError::shape(
            "the presentation holds more than 16 credentials",
        ));
    }
    let mut credentials = Vec::with_capacity(listed.len());
    for vc in &listed {
        let verified = verify_credential(vc, resolver, now).await?;
        if verified.subject_id != holder {
            return Err(CredentialError::Mismatch(format!(
                "a credential is about {}, not the presentation's holder {holder}",
                verified.subject_id
            )));
        }
        credentials.push(verified);
    }
    Ok(VerifiedPresentation {
        holder: holder.to_string(),
        credentials,
    })
}

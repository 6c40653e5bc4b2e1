//! Present Proof 3.0 (DIF WACI-DIDComm `present_proof`): `request-presentation` with a DIF
//! Presentation Exchange definition (`dif/presentation-exchange/definitions@v1.0`) plus the
//! `challenge` and `domain` the holder's proof must carry, and `presentation` with the signed
//! W3C VP (`dif/presentation-exchange/submission@v1.0`). Lanyard asks for credentials by
//! template (a `credentialSchema.id` filter) and names the subject fields it needs.

use serde_json::{json, Value};

use super::{attachment_json, expect_type, thid_of, ProtocolError};
use crate::didcomm::{Attachment, Message};

/// The Present Proof 3.0 protocol.
pub const PIURI: &str = "https://didcomm.org/present-proof/3.0";
/// The verifier asks for a presentation.
pub const REQUEST: &str = "https://didcomm.org/present-proof/3.0/request-presentation";
/// The holder presents.
pub const PRESENTATION: &str = "https://didcomm.org/present-proof/3.0/presentation";
/// The verifier says whether the presentation verified.
pub const ACK: &str = "https://didcomm.org/present-proof/3.0/ack";
/// The attachment format of the request's presentation definition.
pub const DEFINITION_FORMAT: &str = "dif/presentation-exchange/definitions@v1.0";
/// The attachment format of the presentation's signed VP.
pub const SUBMISSION_FORMAT: &str = "dif/presentation-exchange/submission@v1.0";

/// What a verifier asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresentationRequest {
    /// The request message's id, which threads the exchange.
    pub thid: String,
    /// Who asks, as people should see it.
    pub verifier_name: String,
    /// Why it asks, for the holder.
    pub purpose: String,
    /// The template the credential must come from.
    pub template_id: String,
    /// `credentialSubject` members that must be present and disclosed.
    pub required_fields: Vec<String>,
    /// The nonce the presentation's proof must carry.
    pub challenge: String,
    /// The domain the presentation's proof must be bound to (the verifier's host).
    pub domain: String,
}

/// The `request-presentation` message of `request` (its id is `request.thid`).
pub fn request_message(request: &PresentationRequest) -> Message {
    let mut fields = vec![json!({
        "path": ["$.credentialSchema.id"],
        "filter": { "type": "string", "const": request.template_id },
    })];
    fields.extend(
        request
            .required_fields
            .iter()
            .map(|field| json!({ "path": [format!("$.credentialSubject.{field}")] })),
    );
    let definition = json!({
        "options": { "challenge": request.challenge, "domain": request.domain },
        "presentation_definition": {
            "id": request.thid,
            "name": request.verifier_name,
            "purpose": request.purpose,
            "input_descriptors": [{
                "id": "credential",
                "name": request.template_id,
                "constraints": { "limit_disclosure": "preferred", "fields": fields },
            }],
        },
    });
    let mut attachment = Attachment::json(definition);
    attachment.id = Some("presentation-definition".into());
    attachment.media_type = Some("application/json".into());
    attachment.format = Some(DEFINITION_FORMAT.into());
    let mut message = Message::new(
        REQUEST,
        json!({ "goal_code": "present-vp", "comment": request.purpose, "will_confirm": true }),
    )
    .attachment(attachment);
    message.id = request.thid.clone();
    message
}

/// Reads a `request-presentation` (strictly: one input descriptor, a template filter).
pub fn parse_request(message: &Message) -> Result<PresentationRequest, ProtocolError> {
    expect_type(message, REQUEST, "request-presentation")?;
    let invalid = |problem: &str| ProtocolError::Invalid {
        message: "request-presentation",
        problem: problem.to_string(),
    };
    let attached = attachment_json(message, DEFINITION_FORMAT, "request-presentation")?;
    let text = |pointer: &str, what: &str| -> Result<String, ProtocolError> {
        attached
            .pointer(pointer)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 512)
            .map(str::to_string)
            .ok_or_else(|| invalid(&format!("{what} is missing")))
    };
    let challenge = text("/options/challenge", "options.challenge")?;
    let domain = text("/options/domain", "options.domain")?;
    let definition = attached
        .get("presentation_definition")
        .ok_or_else(|| invalid("presentation_definition is missing"))?;
    let descriptors = definition
        .get("input_descriptors")
        .and_then(Value::as_array)
        .filter(|d| d.len() == 1)
        .ok_or_else(|| invalid("exactly one input descriptor is supported"))?;
    let fields = descriptors[0]
        .pointer("/constraints/fields")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("the input descriptor has no constraints.fields"))?;
    let mut template_id = None;
    let mut required_fields = Vec::new();
    for field in fields {
        let path = field
            .pointer("/path/0")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("a constraint field has no path"))?;
        if path == "$.credentialSchema.id" {
            template_id = field
                .pointer("/filter/const")
                .and_then(Value::as_str)
                .map(str::to_string);
        } else if let Some(name) = path.strip_prefix("$.credentialSubject.") {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(invalid(&format!("{path} is not a subject field path")));
            }
            required_fields.push(name.to_string());
        } else {
            return Err(invalid(&format!("the path {path} is not supported")));
        }
    }
    Ok(PresentationRequest {
        thid: message.id.clone(),
        verifier_name: definition
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        purpose: definition
            .get("purpose")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        template_id: template_id
            .ok_or_else(|| invalid("no credentialSchema.id filter names the template"))?,
        required_fields,
        challenge,
        domain,
    })
}

/// The holder's `presentation` of `vp` in the request's thread.
pub fn presentation_message(request: &PresentationRequest, vp: Value) -> Message {
    let mut attachment = Attachment::json(json!({
        "presentation_submission": {
            "id": uuid::Uuid::new_v4().to_string(),
            "definition_id": request.thid,
            "descriptor_map": [{ "id": "credential", "format": "ldp_vp", "path": "$.verifiableCredential[0]" }],
        },
        "verifiablePresentation": vp,
    }));
    attachment.id = Some("presentation".into());
    attachment.media_type = Some("application/json".into());
    attachment.format = Some(SUBMISSION_FORMAT.into());
    Message::new(PRESENTATION, json!({}))
        .thid(request.thid.clone())
        .attachment(attachment)
}

/// A `presentation`: its thread and the VP.
pub fn parse_presentation(message: &Message) -> Result<(String, Value), ProtocolError> {
    expect_type(message, PRESENTATION, "presentation")?;
    let thid = thid_of(message, "presentation")?;
    let attached = attachment_json(message, SUBMISSION_FORMAT, "presentation")?;
    let vp = attached
        .get("verifiablePresentation")
        .filter(|vp| vp.is_object())
        .ok_or(ProtocolError::Missing {
            message: "presentation",
            what: "verifiablePresentation",
        })?;
    Ok((thid, vp.clone()))
}

/// The verifier's answer: `OK` when verified, else `FAIL` with the reasons.
pub fn ack_message(thid: &str, verified: bool, reasons: &[String]) -> Message {
    Message::new(
        ACK,
        json!({ "status": if verified { "OK" } else { "FAIL" }, "reasons": reasons }),
    )
    .thid(thid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> PresentationRequest {
        PresentationRequest {
            thid: "req-1".into(),
            verifier_name: "Acme door".into(),
            purpose: "Show your membership".into(),
            template_id: "urn:template:lanyard:member".into(),
            required_fields: vec!["holderFullName".into()],
            challenge: "c-123".into(),
            domain: "agent.example".into(),
        }
    }

    #[test]
    fn a_request_and_its_presentation_round_trip() {
        let message = request_message(&request());
        let wire: Message = serde_json::from_str(&message.to_json()).unwrap();
        assert_eq!(parse_request(&wire).unwrap(), request());
        let answer =
            presentation_message(&request(), json!({ "type": ["VerifiablePresentation"] }));
        let (thid, vp) = parse_presentation(&answer).unwrap();
        assert_eq!(thid, "req-1");
        assert_eq!(vp["type"][0], "VerifiablePresentation");
    }

    #[test]
    fn requests_lanyard_cannot_answer_are_refused_by_name() {
        let mut message = request_message(&request());
        message.attachments[0].data.json.as_mut().unwrap()["options"] = json!({});
        assert!(parse_request(&message)
            .unwrap_err()
            .to_string()
            .contains("challenge"));
        let mut message = request_message(&request());
        let json = message.attachments[0].data.json.as_mut().unwrap();
        json["presentation_definition"]["input_descriptors"][0]["constraints"]["fields"][1]
            ["path"] = json!(["$..credentialSubject[*]"]);
        assert!(parse_request(&message)
            .unwrap_err()
            .to_string()
            .contains("not supported"));
    }
}

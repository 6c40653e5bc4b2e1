//! Issue Credential 3.0 (DIF WACI-DIDComm `issue_credential`): `offer-credential`,
//! `request-credential`, `issue-credential` and `ack`, with W3C VC attachments in the
//! `aries/ld-proof-vc-detail@v1.0` (offer, request) and `aries/ld-proof-vc@v1.0` (issue)
//! formats, and the `credential_preview` the customer decides on.

use serde_json::{json, Value};

use super::{attachment_json, expect_type, thid_of, ProtocolError};
use crate::didcomm::{Attachment, Message};

/// The Issue Credential 3.0 protocol.
pub const PIURI: &str = "https://didcomm.org/issue-credential/3.0";
/// The issuer offers a credential.
pub const OFFER: &str = "https://didcomm.org/issue-credential/3.0/offer-credential";
/// The holder asks for the credential offered.
pub const REQUEST: &str = "https://didcomm.org/issue-credential/3.0/request-credential";
/// The issuer sends the signed credential.
pub const ISSUE: &str = "https://didcomm.org/issue-credential/3.0/issue-credential";
/// The holder acknowledges the credential (verified and stored).
pub const ACK: &str = "https://didcomm.org/issue-credential/3.0/ack";
/// The type of the offer's `credential_preview`.
pub const PREVIEW: &str = "https://didcomm.org/issue-credential/3.0/credential-credential";
/// An unsigned credential and the proof the issuer will add.
pub const DETAIL_FORMAT: &str = "aries/ld-proof-vc-detail@v1.0";
/// A signed credential.
pub const VC_FORMAT: &str = "aries/ld-proof-vc@v1.0";

/// What an issuer offers.
#[derive(Clone, Debug, PartialEq)]
pub struct Offer {
    /// The offer message's id, which threads the exchange.
    pub thid: String,
    /// The issuer's words about the offer.
    pub comment: Option<String>,
    /// The fields and values, in the template's order, as the customer sees them.
    pub attributes: Vec<(String, String)>,
    /// What each field means, from the issuer's template (field name, description); an
    /// optional `description` member of each preview attribute on the wire.
    pub descriptions: Vec<(String, String)>,
    /// `{"credential": <unsigned VC>, "options": {...}}`.
    pub detail: Value,
}

/// The `options` of a credential detail: a Data Integrity `eddsa-jcs-2022` proof.
pub fn proof_options() -> Value {
    json!({ "proofType": "DataIntegrityProof", "cryptosuite": "eddsa-jcs-2022", "proofPurpose": "assertionMethod" })
}

fn detail_attachment(detail: Value) -> Attachment {
    let mut attachment = Attachment::json(detail);
    attachment.id = Some("credential-detail".into());
    attachment.media_type = Some("application/json".into());
    attachment.format = Some(DETAIL_FORMAT.into());
    attachment
}

/// The `offer-credential` message of `offer` (its id is `offer.thid`).
pub fn offer_message(offer: &Offer) -> Message {
    let attributes: Vec<Value> = offer
        .attributes
        .iter()
        .map(|(name, value)| {
            let mut attribute = json!({ "name": name, "value": value });
            if let Some((_, description)) = offer.descriptions.iter().find(|(n, _)| n == name) {
                attribute["description"] = json!(description);
            }
            attribute
        })
        .collect();
    let mut body = json!({
        "goal_code": "issue-vc",
        "credential_preview": { "type": PREVIEW, "body": { "attributes": attributes } },
    });
    if let Some(comment) = &offer.comment {
        body["comment"] = json!(comment);
    }
    let mut message = Message::new(OFFER, body).attachment(detail_attachment(offer.detail.clone()));
    message.id = offer.thid.clone();
    message
}

/// Reads an `offer-credential`.
pub fn parse_offer(message: &Message) -> Result<Offer, ProtocolError> {
    expect_type(message, OFFER, "offer-credential")?;
    let invalid = |problem: &str| ProtocolError::Invalid {
        message: "offer-credential",
        problem: problem.to_string(),
    };
    let preview = message
        .body
        .get("credential_preview")
        .ok_or(ProtocolError::Missing {
            message: "offer-credential",
            what: "credential_preview",
        })?;
    let items = preview
        .pointer("/body/attributes")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("credential_preview has no attributes list"))?;
    let mut attributes = Vec::with_capacity(items.len());
    let mut descriptions = Vec::new();
    for item in items {
        let name = item.get("name").and_then(Value::as_str);
        let value = item.get("value").and_then(Value::as_str);
        match (name, value) {
            (Some(name), Some(value)) if item.get("media_type").is_none_or(Value::is_null) => {
                if let Some(description) = item.get("description").and_then(Value::as_str) {
                    descriptions.push((name.to_string(), description.to_string()));
                }
                attributes.push((name.to_string(), value.to_string()))
            }
            _ => return Err(invalid("each attribute needs a name and a text value")),
        }
    }
    let detail = attachment_json(message, DETAIL_FORMAT, "offer-credential")?;
    if !detail.get("credential").is_some_and(Value::is_object) {
        return Err(invalid("the credential detail has no credential"));
    }
    Ok(Offer {
        thid: message.thread_id().to_string(),
        comment: message
            .body
            .get("comment")
            .and_then(Value::as_str)
            .map(str::to_string),
        attributes,
        descriptions,
        detail: detail.clone(),
    })
}

/// The holder's `request-credential` for an offer: the offered detail, echoed.
pub fn request_message(offer: &Offer) -> Message {
    Message::new(REQUEST, json!({ "goal_code": "issue-vc" }))
        .thid(offer.thid.clone())
        .attachment(detail_attachment(offer.detail.clone()))
}

/// A `request-credential`: the thread it answers and the detail asked for.
pub fn parse_request(message: &Message) -> Result<(String, Value), ProtocolError> {
    expect_type(message, REQUEST, "request-credential")?;
    let thid = thid_of(message, "request-credential")?;
    let detail = attachment_json(message, DETAIL_FORMAT, "request-credential")?;
    Ok((thid, detail.clone()))
}

/// The `issue-credential` carrying the signed `credential`, asking for an ack of the outcome.
pub fn issue_message(thid: &str, credential: Value) -> Message {
    let mut attachment = Attachment::json(credential);
    attachment.id = Some("credential".into());
    attachment.media_type = Some("application/json".into());
    attachment.format = Some(VC_FORMAT.into());
    let mut message = Message::new(ISSUE, json!({}))
        .thid(thid)
        .attachment(attachment);
    message
        .extra
        .insert("please_ack".into(), json!(["outcome"]));
    message
}

/// An `issue-credential`: its thread and the credential.
pub fn parse_issue(message: &Message) -> Result<(String, Value), ProtocolError> {
    expect_type(message, ISSUE, "issue-credential")?;
    let thid = thid_of(message, "issue-credential")?;
    let credential = attachment_json(message, VC_FORMAT, "issue-credential")?;
    if !credential.is_object() {
        return Err(ProtocolError::Invalid {
            message: "issue-credential",
            problem: "the credential is not a JSON object".into(),
        });
    }
    Ok((thid, credential.clone()))
}

/// The holder's `ack` that the credential was verified and stored.
pub fn ack_message(thid: &str) -> Message {
    Message::new(ACK, json!({ "status": "OK" })).thid(thid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> Offer {
        Offer {
            thid: "offer-1".into(),
            comment: Some("Your membership".into()),
            attributes: vec![("holderFullName".into(), "Jane Doe".into())],
            descriptions: vec![("holderFullName".into(), "Holder Full Name".into())],
            detail: json!({ "credential": { "type": ["VerifiableCredential"] }, "options": proof_options() }),
        }
    }

    #[test]
    fn an_offer_round_trips_and_is_answered_in_its_thread() {
        let message = offer_message(&offer());
        assert_eq!(message.id, "offer-1");
        let wire: Message = serde_json::from_str(&message.to_json()).unwrap();
        let parsed = parse_offer(&wire).unwrap();
        assert_eq!(parsed, offer());
        let request = request_message(&parsed);
        assert_eq!(
            parse_request(&request).unwrap(),
            ("offer-1".into(), offer().detail)
        );
        let issued = issue_message("offer-1", json!({ "id": "urn:uuid:1" }));
        assert_eq!(issued.extra["please_ack"], json!(["outcome"]));
        assert_eq!(parse_issue(&issued).unwrap().1["id"], "urn:uuid:1");
        assert_eq!(ack_message("offer-1").thid.as_deref(), Some("offer-1"));
    }

    #[test]
    fn malformed_messages_are_refused_by_what_is_wrong() {
        let mut message = offer_message(&offer());
        message.body["credential_preview"]["body"]["attributes"] = json!([{ "name": "x" }]);
        assert!(parse_offer(&message)
            .unwrap_err()
            .to_string()
            .contains("text value"));
        let mut message = offer_message(&offer());
        message.attachments.clear();
        assert!(parse_offer(&message)
            .unwrap_err()
            .to_string()
            .contains("attachment"));
        let request = Message::new(REQUEST, json!({}));
        assert!(parse_request(&request)
            .unwrap_err()
            .to_string()
            .contains("thid"));
        assert!(matches!(
            parse_issue(&ack_message("t")),
            Err(ProtocolError::WrongType { .. })
        ));
    }
}

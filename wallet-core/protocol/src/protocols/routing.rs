//! Routing 2.0 `forward` (DIDComm Messaging v2.1 §"Routing Protocol 2.0"): the plaintext a
//! sender wraps around an encrypted message for each mediator on the way to its recipient.
//! [`crate::didcomm::DidComm::pack_for_delivery`] wraps with it; a mediator reads it with
//! [`parse_forward`].

use serde_json::{json, Value};

use super::{Body, ProtocolError};
use crate::didcomm::{Attachment, Message, ENCRYPTED_TYP};
use crate::encoding::b64u_decode;

/// The Routing 2.0 protocol.
pub const PIURI: &str = "https://didcomm.org/routing/2.0";
/// The message type of a forward.
pub const FORWARD: &str = "https://didcomm.org/routing/2.0/forward";

/// A forward: whom to send it on to, and the envelope to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Forward {
    /// The DID or DID URL (key) the attached envelope is for.
    pub next: String,
    /// The attached envelope, as JSON.
    pub payload: Value,
}

/// The forward message carrying `forward.payload` on to `forward.next`: one inline JSON
/// attachment of media type [`ENCRYPTED_TYP`].
pub fn forward_message(forward: &Forward) -> Message {
    let mut attachment = Attachment::json(forward.payload.clone());
    attachment.media_type = Some(ENCRYPTED_TYP.to_string());
    Message::new(FORWARD, json!({ "next": forward.next })).attachment(attachment)
}

/// Reads a forward, refusing anything but a non-empty `next` and exactly one attachment
/// carrying a JSON object (inline, or base64url with or without padding).
pub fn parse_forward(message: &Message) -> Result<Forward, ProtocolError> {
    let body = Body::of(message, FORWARD, "forward")?;
    let next = body
        .opt_str("next")?
        .filter(|next| !next.is_empty())
        .ok_or_else(|| body.invalid("the forward body has no next"))?
        .to_string();
    let [attachment] = message.attachments.as_slice() else {
        return Err(body.invalid(format!(
            "a forward carries exactly one attachment, this one has {}",
            message.attachments.len()
        )));
    };
    let payload = if let Some(json) = &attachment.data.json {
        json.clone()
    } else if let Some(base64) = &attachment.data.base64 {
        let bytes = b64u_decode(base64.trim_end_matches('='))
            .map_err(|_| body.invalid("the forward attachment is not base64url"))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| body.invalid(format!("the forward attachment is not JSON: {e}")))?
    } else {
        return Err(body.invalid("the forward attachment carries neither json nor base64"));
    };
    if !payload.is_object() {
        return Err(body.invalid("the forward attachment is not a JSON object"));
    }
    Ok(Forward { next, payload })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::b64u_encode;

    fn forward() -> Forward {
        Forward {
            next: "did:example:phone#key-1".into(),
            payload: json!({ "protected": "x", "ciphertext": "y" }),
        }
    }

    #[test]
    fn a_forward_round_trips_inline_and_as_base64() {
        let message = forward_message(&forward());
        assert_eq!(
            message.attachments[0].media_type.as_deref(),
            Some(ENCRYPTED_TYP)
        );
        let wire: Message = serde_json::from_str(&message.to_json()).unwrap();
        assert_eq!(parse_forward(&wire).unwrap(), forward());
        let mut base64 = message.clone();
        base64.attachments[0].data.json = None;
        base64.attachments[0].data.base64 =
            Some(format!("{}==", b64u_encode(forward().payload.to_string())));
        assert_eq!(parse_forward(&base64).unwrap(), forward());
    }

    #[test]
    fn malformed_forwards_are_refused_by_what_is_wrong() {
        let refusal = |change: &dyn Fn(&mut Message)| {
            let mut message = forward_message(&forward());
            change(&mut message);
            parse_forward(&message).unwrap_err().to_string()
        };
        assert!(refusal(&|m| m.body = json!({})).contains("no next"));
        assert!(refusal(&|m| m.body = json!({ "next": "" })).contains("no next"));
        assert!(refusal(&|m| m.body = json!({ "next": 7 })).contains("next is not a string"));
        assert!(
            refusal(&|m| m.attachments.clear()).contains("exactly one attachment, this one has 0")
        );
        assert!(refusal(&|m| m.attachments.push(m.attachments[0].clone()))
            .contains("exactly one attachment, this one has 2"));
        assert!(refusal(&|m| m.attachments[0].data.json = Some(json!([1])))
            .contains("not a JSON object"));
        assert!(refusal(&|m| m.attachments[0].data.json = None).contains("neither json nor base64"));
        assert!(refusal(&|m| {
            m.attachments[0].data.json = None;
            m.attachments[0].data.base64 = Some("!!".into());
        })
        .contains("not base64url"));
        assert!(matches!(
            refusal(&|m| m.type_ = FORWARD.replace("/2.0/", "/1.0/")),
            text if text.contains("forward expected, got a message of type")
        ));
    }
}

//! Routing 2.0 `forward` (DIDComm Messaging v2.1 §"Routing Protocol 2.0"): the plaintext a
//! sender wraps around an encrypted message for each mediator on the way to its recipient.

use serde_json::Value;

use super::{Attachment, DidCommError, Message};
use crate::encoding::b64u_decode;

/// The message type of a forward.
pub const FORWARD_TYPE: &str = "https://didcomm.org/routing/2.0/forward";

/// A parsed forward: whom to send it on to, and the envelope to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Forward {
    /// The DID or DID URL (key) the attached envelope is for.
    pub next: String,
    /// The attached envelope, as JSON.
    pub payload: Value,
}

impl Forward {
    /// A forward message carrying `payload` on to `next`.
    pub fn message(next: &str, payload: Value) -> Message {
        let mut attachment = Attachment::json(payload);
        attachment.media_type = Some(super::ENCRYPTED_TYP.to_string());
        Message::new(FORWARD_TYPE, serde_json::json!({ "next": next })).attachment(attachment)
    }

    /// Reads a forward out of an unpacked message, refusing anything but exactly one
    /// attachment carrying JSON (inline or base64) and a non-empty `next`.
    pub fn parse(message: &Message) -> Result<Forward, DidCommError> {
        if message.type_ != FORWARD_TYPE {
            return Err(DidCommError::Malformed(format!(
                "expected a {FORWARD_TYPE} message, found {}",
                message.type_
            )));
        }
        let next = message
            .body
            .get("next")
            .and_then(Value::as_str)
            .filter(|next| !next.is_empty())
            .ok_or_else(|| DidCommError::Malformed("forward body has no next".into()))?
            .to_string();
        let [attachment] = message.attachments.as_slice() else {
            return Err(DidCommError::Malformed(format!(
                "a forward carries exactly one attachment, this one has {}",
                message.attachments.len()
            )));
        };
        let payload = if let Some(json) = &attachment.data.json {
            json.clone()
        } else if let Some(base64) = &attachment.data.base64 {
            let bytes = b64u_decode(base64.trim_end_matches('=')).map_err(|_| {
                DidCommError::Malformed("forward attachment is not base64url".into())
            })?;
            serde_json::from_slice(&bytes)
                .map_err(|e| DidCommError::Malformed(format!("forward attachment: {e}")))?
        } else {
            return Err(DidCommError::Malformed(
                "forward attachment carries neither json nor base64".into(),
            ));
        };
        if !payload.is_object() {
            return Err(DidCommError::Malformed(
                "forward attachment is not a JSON object".into(),
            ));
        }
        Ok(Forward { next, payload })
    }
}

//! Lanyard's credential deletion notice: when an issuer deletes a credential template, it tells
//! each holder which credentials of that template it issued them, so the wallet removes them.
//! The wallet acts only on credentials the sender of the notice issued over that connection.

use serde_json::{json, Value};

use super::{expect_type, ProtocolError};
use crate::didcomm::Message;

/// Lanyard's credential deletion protocol.
pub const PIURI: &str = "https://lanyard.dev/protocols/credential-deletion/1.0";
/// The message type of a deletion notice.
pub const NOTICE: &str = "https://lanyard.dev/protocols/credential-deletion/1.0/notice";

/// Which credentials go, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// The deleted template.
    pub template_id: String,
    /// The ids (`urn:uuid:...`) of the credentials of that template issued to this holder.
    pub credential_ids: Vec<String>,
    /// Why, for the holder (empty when the issuer gave none).
    pub reason: String,
}

/// The `notice` message of `notice`.
pub fn notice_message(notice: &Notice) -> Message {
    Message::new(
        NOTICE,
        json!({
            "template_id": notice.template_id,
            "credential_ids": notice.credential_ids,
            "reason": notice.reason,
        }),
    )
}

/// Reads a `notice`: a non-empty `template_id`, at most 10,000 string `credential_ids`, an optional `reason`.
pub fn parse_notice(message: &Message) -> Result<Notice, ProtocolError> {
    expect_type(message, NOTICE, "credential deletion notice")?;
    let invalid = |problem: &str| ProtocolError::Invalid {
        message: "credential deletion notice",
        problem: problem.to_string(),
    };
    let template_id = message
        .body
        .get("template_id")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("template_id is missing"))?;
    let ids = message
        .body
        .get("credential_ids")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("credential_ids is missing"))?;
    if ids.len() > 10_000 {
        return Err(invalid("more than 10000 credential ids"));
    }
    let credential_ids = ids
        .iter()
        .map(|id| {
            id.as_str()
                .map(str::to_string)
                .ok_or_else(|| invalid("a credential id is not a string"))
        })
        .collect::<Result<_, _>>()?;
    Ok(Notice {
        template_id: template_id.to_string(),
        credential_ids,
        reason: message
            .body
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_round_trips_and_bad_ones_are_named() {
        let notice = Notice {
            template_id: "urn:template:x".into(),
            credential_ids: vec!["urn:uuid:1".into()],
            reason: "template deleted".into(),
        };
        assert_eq!(parse_notice(&notice_message(&notice)).unwrap(), notice);
        let mut message = notice_message(&notice);
        message.body["credential_ids"] = json!([1]);
        assert!(parse_notice(&message)
            .unwrap_err()
            .to_string()
            .contains("credential id"));
        message.body = json!({});
        assert!(parse_notice(&message)
            .unwrap_err()
            .to_string()
            .contains("template_id"));
    }
}

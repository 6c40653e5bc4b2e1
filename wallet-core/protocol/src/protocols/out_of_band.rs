//! The Out-of-Band 2.0 invitation message (DIDComm Messaging v2.1 §"Out Of Band Messages"):
//! who invites (`from`, a DID), why (`goal_code`, `goal`), what it is called (`label`), which
//! DIDComm profiles it accepts, until when it holds (`expires_time`), and the messages it
//! carries (a credential offer, a presentation request) as inline JSON attachments.
//! The transports (the `_oob` URL, short URLs, deep links, QR codes) belong to the agent and
//! the wallet; this is only the message.

use serde_json::{json, Value};

use super::{Body, ProtocolError};
use crate::didcomm::{Attachment, Message};

/// The Out-of-Band 2.0 protocol.
pub const PIURI: &str = "https://didcomm.org/out-of-band/2.0";
/// The message type of an invitation.
pub const INVITATION: &str = "https://didcomm.org/out-of-band/2.0/invitation";
/// The `accept` profile of DIDComm v2.
pub const DIDCOMM_V2: &str = "didcomm/v2";
/// Messages one invitation may carry.
pub const MAX_ATTACHMENTS: usize = 8;
/// Profiles one invitation may list in `accept`.
pub const MAX_ACCEPT: usize = 16;

/// An invitation.
#[derive(Clone, Debug, PartialEq)]
pub struct Invitation {
    /// The message id, which the invitee's first message names as its `pthid`.
    pub id: String,
    /// The inviter's DID.
    pub from: String,
    /// The inviter's name, as it calls itself.
    pub label: Option<String>,
    /// What the invitation is for, for software (e.g. `issue-vc`).
    pub goal_code: Option<String>,
    /// What the invitation is for, for people.
    pub goal: Option<String>,
    /// The DIDComm profiles the inviter accepts; it speaks DIDComm v2 when empty.
    pub accept: Vec<String>,
    /// Seconds since the epoch after which the invitation no longer holds.
    pub expires_time: Option<u64>,
    /// The attached messages, as JSON, in order; at most [`MAX_ATTACHMENTS`].
    pub attachments: Vec<Value>,
}

impl Invitation {
    /// An invitation from `from` with a fresh id, accepting DIDComm v2, with nothing else.
    pub fn new(from: impl Into<String>) -> Invitation {
        Invitation {
            id: uuid::Uuid::new_v4().to_string(),
            from: from.into(),
            label: None,
            goal_code: None,
            goal: None,
            accept: vec![DIDCOMM_V2.to_string()],
            expires_time: None,
            attachments: Vec::new(),
        }
    }
}

/// The invitation message of `invitation`: no `typ` (the spec's compact form), each attached
/// message an inline JSON attachment. Check what a stranger gave for it with
/// [`parse_invitation`].
pub fn invitation_message(invitation: &Invitation) -> Message {
    let mut body = json!({ "accept": invitation.accept });
    if let Some(goal_code) = &invitation.goal_code {
        body["goal_code"] = json!(goal_code);
    }
    if let Some(goal) = &invitation.goal {
        body["goal"] = json!(goal);
    }
    let mut message = Message::new(INVITATION, body).from(invitation.from.clone());
    message.id = invitation.id.clone();
    message.typ = None;
    message.expires_time = invitation.expires_time;
    if let Some(label) = &invitation.label {
        message.extra.insert("label".into(), json!(label));
    }
    for attachment in &invitation.attachments {
        message = message.attachment(Attachment::json(attachment.clone()));
    }
    message
}

/// Reads an invitation: of the OOB 2.0 type, `from` a DID, `accept` (when given) a list that
/// names [`DIDCOMM_V2`], at most [`MAX_ATTACHMENTS`] attachments and the inline JSON ones each
/// an object (attachments carried otherwise are left out: Lanyard attaches messages inline).
/// Whether it has expired is the reader's to judge against its clock (`expires_time`).
pub fn parse_invitation(message: &Message) -> Result<Invitation, ProtocolError> {
    let body = Body::of(message, INVITATION, "invitation")?;
    let from = match &message.from {
        Some(from) if from.starts_with("did:") => from.clone(),
        _ => return Err(body.invalid("it does not say who it is from (a DID)")),
    };
    let accept = match body.opt_list("accept")? {
        None => Vec::new(),
        Some(_) => body.strings("accept", MAX_ACCEPT, |n| {
            format!("accept lists {n} profiles, over the limit of {MAX_ACCEPT}")
        })?,
    };
    if !accept.is_empty() && !accept.iter().any(|profile| profile == DIDCOMM_V2) {
        return Err(body.invalid("the inviter does not speak DIDComm v2"));
    }
    if message.attachments.len() > MAX_ATTACHMENTS {
        return Err(body.invalid(format!(
            "it carries {} attachments, over the limit of {MAX_ATTACHMENTS}",
            message.attachments.len()
        )));
    }
    let mut attachments = Vec::with_capacity(message.attachments.len());
    for (n, attachment) in message.attachments.iter().enumerate() {
        match &attachment.data.json {
            None => {}
            Some(json) if json.is_object() => attachments.push(json.clone()),
            Some(_) => {
                return Err(
                    body.invalid(format!("attachment {n} is not a JSON message (an object)"))
                )
            }
        }
    }
    let label = match message.extra.get("label") {
        None | Some(Value::Null) => None,
        Some(Value::String(label)) => Some(label.clone()),
        Some(_) => return Err(body.invalid("label is not a string")),
    };
    Ok(Invitation {
        id: message.id.clone(),
        from,
        label,
        goal_code: body.opt_str("goal_code")?.map(str::to_string),
        goal: body.opt_str("goal")?.map(str::to_string),
        accept,
        expires_time: message.expires_time,
        attachments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invitation() -> Invitation {
        Invitation {
            label: Some("Acme Gym".into()),
            goal_code: Some("issue-vc".into()),
            goal: Some("Get your membership card".into()),
            expires_time: Some(4_000_000_000),
            attachments: vec![json!({ "type": "https://example.org/x/1.0/offer", "id": "m-1" })],
            id: "invitation-1".into(),
            ..Invitation::new("did:example:acme")
        }
    }

    #[test]
    fn an_invitation_round_trips_in_the_compact_form() {
        let message = invitation_message(&invitation());
        assert_eq!(message.typ, None);
        assert_eq!(message.id, invitation().id);
        assert_eq!(message.extra["label"], "Acme Gym");
        assert_eq!(message.body["accept"], json!([DIDCOMM_V2]));
        let wire: Message = serde_json::from_str(&message.to_json()).unwrap();
        assert_eq!(parse_invitation(&wire).unwrap(), invitation());
        let bare = invitation_message(&Invitation::new("did:example:acme"));
        assert_eq!(bare.body, json!({ "accept": [DIDCOMM_V2] }));
        assert!(bare.attachments.is_empty() && bare.extra.is_empty());
    }

    #[test]
    fn bad_invitations_are_refused_by_what_is_wrong() {
        let refusal = |change: &dyn Fn(&mut Message)| {
            let mut message = invitation_message(&invitation());
            change(&mut message);
            parse_invitation(&message).unwrap_err().to_string()
        };
        assert!(refusal(&|m| m.from = None).contains("does not say who it is from"));
        assert!(refusal(&|m| m.from = Some("acme".into())).contains("does not say who it is from"));
        assert!(
            refusal(&|m| m.body["accept"] = json!(["didcomm/aip2;env=rfc19"]))
                .contains("does not speak DIDComm v2")
        );
        assert!(
            refusal(&|m| m.body["accept"] = json!("didcomm/v2")).contains("accept is not a list")
        );
        assert!(refusal(&|m| m.attachments[0].data.json = Some(json!("hi")))
            .contains("attachment 0 is not a JSON message"));
        assert!(refusal(&|m| {
            let one = m.attachments[0].clone();
            m.attachments = vec![one; MAX_ATTACHMENTS + 1];
        })
        .contains("9 attachments, over the limit of 8"));
        assert!(refusal(&|m| {
            m.extra.insert("label".into(), json!(1));
        })
        .contains("label is not a string"));
        let v1_type = INVITATION.replace("/2.0/", "/1.1/");
        let v1 = refusal(&|m| m.type_ = v1_type.clone());
        assert_eq!(
            v1,
            format!("invitation expected, got a message of type {v1_type}")
        );
    }

    #[test]
    fn attachments_not_inline_are_left_out_and_no_accept_means_v2() {
        let mut message = invitation_message(&invitation());
        message.attachments[0].data.json = None;
        message.attachments[0].data.links = Some(vec!["https://example.org/m".into()]);
        message.body = json!({});
        let parsed = parse_invitation(&message).unwrap();
        assert!(parsed.attachments.is_empty());
        assert!(parsed.accept.is_empty());
    }
}

//! Coordinate Mediation 3.0: a client asks a mediator for mediation (`mediate-request`,
//! answered `mediate-grant` or `mediate-deny`), registers and removes the DIDs messages may be
//! forwarded to it for (`recipient-update`, answered `recipient-update-response`) and lists
//! them (`recipient-query`, answered `recipient`).
//!
//! The message types are per version in [`v3`]; the builders and parsers here read and write
//! 3.0 (2.0, whose `keylist-*` messages name keys instead, would sit beside it as `v2`).

use serde_json::{json, Value};

use super::{item_str, Body, ProtocolError};
use crate::didcomm::Message;

/// The Coordinate Mediation 3.0 message types.
pub mod v3 {
    /// The Coordinate Mediation 3.0 protocol.
    pub const PIURI: &str = "https://didcomm.org/coordinate-mediation/3.0";
    /// A client asks for mediation.
    pub const MEDIATE_REQUEST: &str =
        "https://didcomm.org/coordinate-mediation/3.0/mediate-request";
    /// The mediator grants it.
    pub const MEDIATE_GRANT: &str = "https://didcomm.org/coordinate-mediation/3.0/mediate-grant";
    /// The mediator denies it.
    pub const MEDIATE_DENY: &str = "https://didcomm.org/coordinate-mediation/3.0/mediate-deny";
    /// A client adds or removes recipient DIDs.
    pub const RECIPIENT_UPDATE: &str =
        "https://didcomm.org/coordinate-mediation/3.0/recipient-update";
    /// What became of each update.
    pub const RECIPIENT_UPDATE_RESPONSE: &str =
        "https://didcomm.org/coordinate-mediation/3.0/recipient-update-response";
    /// A client asks which recipient DIDs it has registered.
    pub const RECIPIENT_QUERY: &str =
        "https://didcomm.org/coordinate-mediation/3.0/recipient-query";
    /// The recipient DIDs registered.
    pub const RECIPIENT: &str = "https://didcomm.org/coordinate-mediation/3.0/recipient";
}

/// Updates one `recipient-update` may carry.
pub const MAX_RECIPIENT_UPDATES: usize = 100;
/// Routing DIDs one `mediate-grant` may name.
pub const MAX_ROUTING_DIDS: usize = 16;
/// Recipient DIDs one `recipient` answer may list.
pub const MAX_LISTED_RECIPIENTS: usize = 10_000;

/// A client's request for mediation (its body is empty; answering an invitation, it carries
/// the invitation's id as `pthid`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediateRequest;

/// The `mediate-request` message.
pub fn mediate_request_message(_: &MediateRequest) -> Message {
    Message::new(v3::MEDIATE_REQUEST, json!({}))
}

/// Reads a `mediate-request`.
pub fn parse_mediate_request(message: &Message) -> Result<MediateRequest, ProtocolError> {
    Body::of(message, v3::MEDIATE_REQUEST, "mediate-request")?;
    Ok(MediateRequest)
}

/// The mediator's grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediateGrant {
    /// The DIDs a sender forwards through to reach the client (the mediator's own).
    pub routing_did: Vec<String>,
}

/// The `mediate-grant` message, unthreaded (thread it with [`Message::in_reply_to`]).
pub fn mediate_grant_message(grant: &MediateGrant) -> Message {
    Message::new(
        v3::MEDIATE_GRANT,
        json!({ "routing_did": grant.routing_did }),
    )
}

/// Reads a `mediate-grant`: `routing_did` is a list of at most [`MAX_ROUTING_DIDS`] DIDs.
pub fn parse_mediate_grant(message: &Message) -> Result<MediateGrant, ProtocolError> {
    let body = Body::of(message, v3::MEDIATE_GRANT, "mediate-grant")?;
    let routing_did = body.strings("routing_did", MAX_ROUTING_DIDS, |n| {
        format!("routing_did lists {n} DIDs, over the limit of {MAX_ROUTING_DIDS}")
    })?;
    if let Some(bad) = routing_did.iter().find(|did| !did.starts_with("did:")) {
        return Err(body.invalid(format!("routing_did {bad:?} is not a DID")));
    }
    Ok(MediateGrant { routing_did })
}

/// The mediator's refusal (its body is empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediateDeny;

/// The `mediate-deny` message, unthreaded.
pub fn mediate_deny_message(_: &MediateDeny) -> Message {
    Message::new(v3::MEDIATE_DENY, json!({}))
}

/// Reads a `mediate-deny`.
pub fn parse_mediate_deny(message: &Message) -> Result<MediateDeny, ProtocolError> {
    Body::of(message, v3::MEDIATE_DENY, "mediate-deny")?;
    Ok(MediateDeny)
}

/// What a recipient update does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Register the DID.
    Add,
    /// Forget it.
    Remove,
}

impl Action {
    /// The wire name: `add` or `remove`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Add => "add",
            Action::Remove => "remove",
        }
    }

    fn parse(text: &str) -> Option<Action> {
        match text {
            "add" => Some(Action::Add),
            "remove" => Some(Action::Remove),
            _ => None,
        }
    }
}

/// One change to the recipient list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Update {
    /// The DID (or DID URL), as the client wrote it.
    pub recipient_did: String,
    /// Whether it is added or removed.
    pub action: Action,
}

/// A client's `recipient-update`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientUpdate {
    /// The changes, in order; at most [`MAX_RECIPIENT_UPDATES`].
    pub updates: Vec<Update>,
}

/// The `recipient-update` message.
pub fn recipient_update_message(update: &RecipientUpdate) -> Message {
    let updates: Vec<Value> = update
        .updates
        .iter()
        .map(|u| json!({ "recipient_did": u.recipient_did, "action": u.action.as_str() }))
        .collect();
    Message::new(v3::RECIPIENT_UPDATE, json!({ "updates": updates }))
}

/// Reads a `recipient-update`: a list of at most [`MAX_RECIPIENT_UPDATES`] updates, each a
/// `recipient_did` that is a DID and an `action` of `add` or `remove`.
pub fn parse_recipient_update(message: &Message) -> Result<RecipientUpdate, ProtocolError> {
    let body = Body::of(message, v3::RECIPIENT_UPDATE, "recipient-update")?;
    let items = body.within(body.list("updates")?, MAX_RECIPIENT_UPDATES, |n| {
        format!(
            "it carries {n} updates, over this mediator's limit of {MAX_RECIPIENT_UPDATES} per \
             message"
        )
    })?;
    let mut updates = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let (Some(recipient_did), Some(action)) =
            (item_str(item, "recipient_did"), item_str(item, "action"))
        else {
            return Err(body.invalid(format!(
                "update {n}: each update needs a recipient_did and an action, as strings"
            )));
        };
        if !recipient_did.starts_with("did:") {
            return Err(body.invalid(format!("update {n}: {recipient_did:?} is not a DID")));
        }
        let action = Action::parse(action).ok_or_else(|| {
            body.invalid(format!(
                "update {n}: unknown recipient-update action {action:?} (add or remove)"
            ))
        })?;
        updates.push(Update {
            recipient_did: recipient_did.to_string(),
            action,
        });
    }
    Ok(RecipientUpdate { updates })
}

/// What became of one update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdateResult {
    /// Done.
    Success,
    /// Nothing to do (already added, or not there to remove).
    NoChange,
    /// Refused for something the client did.
    ClientError,
    /// The mediator failed.
    ServerError,
}

impl UpdateResult {
    /// The wire name: `success`, `no_change`, `client_error` or `server_error`.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateResult::Success => "success",
            UpdateResult::NoChange => "no_change",
            UpdateResult::ClientError => "client_error",
            UpdateResult::ServerError => "server_error",
        }
    }

    fn parse(text: &str) -> Option<UpdateResult> {
        [
            UpdateResult::Success,
            UpdateResult::NoChange,
            UpdateResult::ClientError,
            UpdateResult::ServerError,
        ]
        .into_iter()
        .find(|result| result.as_str() == text)
    }
}

/// One update, answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Updated {
    /// The DID as the update named it.
    pub recipient_did: String,
    /// What was asked.
    pub action: Action,
    /// What became of it.
    pub result: UpdateResult,
}

/// The mediator's `recipient-update-response`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientUpdateResponse {
    /// Each update, in the order asked.
    pub updated: Vec<Updated>,
}

/// The `recipient-update-response` message, unthreaded.
pub fn recipient_update_response_message(response: &RecipientUpdateResponse) -> Message {
    let updated: Vec<Value> = response
        .updated
        .iter()
        .map(|u| {
            json!({
                "recipient_did": u.recipient_did,
                "action": u.action.as_str(),
                "result": u.result.as_str(),
            })
        })
        .collect();
    Message::new(v3::RECIPIENT_UPDATE_RESPONSE, json!({ "updated": updated }))
}

/// Reads a `recipient-update-response`: at most [`MAX_RECIPIENT_UPDATES`] entries, each with
/// a `recipient_did`, a known `action` and a known `result`.
pub fn parse_recipient_update_response(
    message: &Message,
) -> Result<RecipientUpdateResponse, ProtocolError> {
    let body = Body::of(
        message,
        v3::RECIPIENT_UPDATE_RESPONSE,
        "recipient-update-response",
    )?;
    let items = body.within(body.list("updated")?, MAX_RECIPIENT_UPDATES, |n| {
        format!("it answers {n} updates, over the limit of {MAX_RECIPIENT_UPDATES}")
    })?;
    let mut updated = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let recipient_did = item_str(item, "recipient_did");
        let action = item_str(item, "action").and_then(Action::parse);
        let result = item_str(item, "result").and_then(UpdateResult::parse);
        let (Some(recipient_did), Some(action), Some(result)) = (recipient_did, action, result)
        else {
            return Err(body.invalid(format!(
                "entry {n} needs a recipient_did, an action (add or remove) and a result \
                 (success, no_change, client_error or server_error)"
            )));
        };
        updated.push(Updated {
            recipient_did: recipient_did.to_string(),
            action,
            result,
        });
    }
    Ok(RecipientUpdateResponse { updated })
}

/// A client's `recipient-query` (its optional `paginate` is not read: the answer lists
/// every recipient).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecipientQuery;

/// The `recipient-query` message.
pub fn recipient_query_message(_: &RecipientQuery) -> Message {
    Message::new(v3::RECIPIENT_QUERY, json!({}))
}

/// Reads a `recipient-query`.
pub fn parse_recipient_query(message: &Message) -> Result<RecipientQuery, ProtocolError> {
    Body::of(message, v3::RECIPIENT_QUERY, "recipient-query")?;
    Ok(RecipientQuery)
}

/// The mediator's `recipient` answer: the DIDs registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipients {
    /// The recipient DIDs.
    pub dids: Vec<String>,
}

/// The `recipient` message, unthreaded.
pub fn recipient_message(recipients: &Recipients) -> Message {
    let dids: Vec<Value> = recipients
        .dids
        .iter()
        .map(|did| json!({ "recipient_did": did }))
        .collect();
    Message::new(v3::RECIPIENT, json!({ "dids": dids }))
}

/// Reads a `recipient` answer: at most [`MAX_LISTED_RECIPIENTS`] entries, each with a
/// `recipient_did`.
pub fn parse_recipient(message: &Message) -> Result<Recipients, ProtocolError> {
    let body = Body::of(message, v3::RECIPIENT, "recipient")?;
    let items = body.within(body.list("dids")?, MAX_LISTED_RECIPIENTS, |n| {
        format!("it lists {n} DIDs, over the limit of {MAX_LISTED_RECIPIENTS}")
    })?;
    let dids = items
        .iter()
        .enumerate()
        .map(|(n, item)| {
            item_str(item, "recipient_did")
                .map(str::to_string)
                .ok_or_else(|| body.invalid(format!("entry {n} has no recipient_did")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Recipients { dids })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(message: &Message) -> Message {
        serde_json::from_str(&message.to_json()).unwrap()
    }

    #[test]
    fn every_message_round_trips() {
        let request = wire(&mediate_request_message(&MediateRequest).pthid("invitation-1"));
        assert_eq!(parse_mediate_request(&request).unwrap(), MediateRequest);
        let grant = MediateGrant {
            routing_did: vec!["did:example:mediator".into()],
        };
        let message = wire(&mediate_grant_message(&grant).in_reply_to(&request));
        assert_eq!(message.thid.as_deref(), Some(request.id.as_str()));
        assert_eq!(message.pthid.as_deref(), Some("invitation-1"));
        assert_eq!(parse_mediate_grant(&message).unwrap(), grant);
        assert_eq!(
            parse_mediate_deny(&wire(&mediate_deny_message(&MediateDeny))).unwrap(),
            MediateDeny
        );
        let update = RecipientUpdate {
            updates: vec![
                Update {
                    recipient_did: "did:example:a#key-1".into(),
                    action: Action::Add,
                },
                Update {
                    recipient_did: "did:example:b".into(),
                    action: Action::Remove,
                },
            ],
        };
        assert_eq!(
            parse_recipient_update(&wire(&recipient_update_message(&update))).unwrap(),
            update
        );
        let response = RecipientUpdateResponse {
            updated: [
                UpdateResult::Success,
                UpdateResult::NoChange,
                UpdateResult::ClientError,
                UpdateResult::ServerError,
            ]
            .into_iter()
            .map(|result| Updated {
                recipient_did: "did:example:a".into(),
                action: Action::Add,
                result,
            })
            .collect(),
        };
        let message = wire(&recipient_update_response_message(&response));
        assert_eq!(message.body["updated"][1]["result"], "no_change");
        assert_eq!(parse_recipient_update_response(&message).unwrap(), response);
        assert_eq!(
            parse_recipient_query(&wire(&recipient_query_message(&RecipientQuery))).unwrap(),
            RecipientQuery
        );
        let recipients = Recipients {
            dids: vec!["did:example:a".into(), "did:example:b".into()],
        };
        let message = wire(&recipient_message(&recipients));
        assert_eq!(
            message.body["dids"][0],
            json!({ "recipient_did": "did:example:a" })
        );
        assert_eq!(parse_recipient(&message).unwrap(), recipients);
    }

    #[test]
    fn every_type_is_of_the_protocol() {
        for type_ in [
            v3::MEDIATE_REQUEST,
            v3::MEDIATE_GRANT,
            v3::MEDIATE_DENY,
            v3::RECIPIENT_UPDATE,
            v3::RECIPIENT_UPDATE_RESPONSE,
            v3::RECIPIENT_QUERY,
            v3::RECIPIENT,
        ] {
            assert!(type_.starts_with(&format!("{}/", v3::PIURI)), "{type_}");
        }
    }

    #[test]
    fn malformed_messages_are_refused_by_what_is_wrong() {
        let update = |body: Value| {
            parse_recipient_update(&Message::new(v3::RECIPIENT_UPDATE, body))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(update(json!({})), "recipient-update has no updates");
        assert_eq!(
            update(json!({ "updates": {} })),
            "recipient-update: updates is not a list"
        );
        let many: Vec<Value> = (0..=MAX_RECIPIENT_UPDATES)
            .map(|n| json!({ "recipient_did": format!("did:example:{n}"), "action": "add" }))
            .collect();
        assert!(update(json!({ "updates": many }))
            .contains("carries 101 updates, over this mediator's limit of 100"));
        assert!(
            update(json!({ "updates": [{ "recipient_did": "did:example:a" }] }))
                .contains("update 0: each update needs a recipient_did and an action")
        );
        assert!(
            update(json!({ "updates": [{ "recipient_did": "mailto:x", "action": "add" }] }))
                .contains("\"mailto:x\" is not a DID")
        );
        assert!(update(
            json!({ "updates": [{ "recipient_did": "did:example:a", "action": "steal" }] })
        )
        .contains("unknown recipient-update action \"steal\""));

        let grant = |body: Value| {
            parse_mediate_grant(&Message::new(v3::MEDIATE_GRANT, body))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(grant(json!({})), "mediate-grant has no routing_did");
        assert!(grant(json!({ "routing_did": ["https://x"] })).contains("is not a DID"));
        assert!(grant(json!({ "routing_did": vec!["did:x"; 17] })).contains("over the limit of 16"));

        let response = |body: Value| {
            parse_recipient_update_response(&Message::new(v3::RECIPIENT_UPDATE_RESPONSE, body))
                .unwrap_err()
                .to_string()
        };
        assert!(response(
            json!({ "updated": [{ "recipient_did": "did:x", "action": "add", "result": "maybe" }] })
        )
        .contains("entry 0 needs"));
        assert!(
            parse_recipient(&Message::new(v3::RECIPIENT, json!({ "dids": [{}] })))
                .unwrap_err()
                .to_string()
                .contains("entry 0 has no recipient_did")
        );
        assert!(matches!(
            parse_mediate_request(&mediate_grant_message(&MediateGrant {
                routing_did: vec![]
            })),
            Err(ProtocolError::WrongType {
                expected: "mediate-request",
                ..
            })
        ));
    }
}

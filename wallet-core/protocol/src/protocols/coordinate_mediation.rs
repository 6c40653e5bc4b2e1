//! Coordinate Mediation 3.0 and 2.0: a client asks a mediator for mediation (`mediate-request`,
//! answered `mediate-grant` or `mediate-deny`), registers and removes the DIDs messages may be
//! forwarded to it for (3.0 `recipient-update`, 2.0 `keylist-update`, answered
//! `…-update-response`) and lists them (3.0 `recipient-query` answered `recipient`, 2.0
//! `keylist-query` answered `keylist`).
//!
//! The message types are per version in [`v3`] and [`v2`]. Every builder takes the
//! [`Version`] to write; every parser reads either version (the message's type says which,
//! [`Version::classify`]). What differs on the wire:
//! - 2.0's `mediate-grant` names one `routing_did` as a string (3.0: a list). A 2.0 grant read
//!   here may carry either shape (deployed 2.0 mediators send both);
//! - 2.0 names the update and query messages `keylist-*`, and its `keylist` answer lists the
//!   DIDs under `keys` (3.0: `dids`), each as `{"recipient_did": …}`;
//! - 2.0 clients built on the Aries 1.0 shape write an update's DID as `recipient_key`; a 2.0
//!   update read here takes it when it holds a DID and `recipient_did` is absent.

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

/// The Coordinate Mediation 2.0 message types.
pub mod v2 {
    /// The Coordinate Mediation 2.0 protocol.
    pub const PIURI: &str = "https://didcomm.org/coordinate-mediation/2.0";
    /// A client asks for mediation.
    pub const MEDIATE_REQUEST: &str =
        "https://didcomm.org/coordinate-mediation/2.0/mediate-request";
    /// The mediator grants it.
    pub const MEDIATE_GRANT: &str = "https://didcomm.org/coordinate-mediation/2.0/mediate-grant";
    /// The mediator denies it.
    pub const MEDIATE_DENY: &str = "https://didcomm.org/coordinate-mediation/2.0/mediate-deny";
    /// A client adds or removes recipient DIDs (3.0's `recipient-update`).
    pub const KEYLIST_UPDATE: &str = "https://didcomm.org/coordinate-mediation/2.0/keylist-update";
    /// What became of each update.
    pub const KEYLIST_UPDATE_RESPONSE: &str =
        "https://didcomm.org/coordinate-mediation/2.0/keylist-update-response";
    /// A client asks which recipient DIDs it has registered (3.0's `recipient-query`).
    pub const KEYLIST_QUERY: &str = "https://didcomm.org/coordinate-mediation/2.0/keylist-query";
    /// The recipient DIDs registered (3.0's `recipient`).
    pub const KEYLIST: &str = "https://didcomm.org/coordinate-mediation/2.0/keylist";
}

/// A version of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Version {
    /// Coordinate Mediation 2.0 (`keylist-*` messages).
    V2,
    /// Coordinate Mediation 3.0 (`recipient-*` messages).
    V3,
}

/// What a message of the protocol does, whatever its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `mediate-request`.
    MediateRequest,
    /// `mediate-grant`.
    MediateGrant,
    /// `mediate-deny`.
    MediateDeny,
    /// 3.0 `recipient-update`, 2.0 `keylist-update`.
    RecipientUpdate,
    /// 3.0 `recipient-update-response`, 2.0 `keylist-update-response`.
    RecipientUpdateResponse,
    /// 3.0 `recipient-query`, 2.0 `keylist-query`.
    RecipientQuery,
    /// 3.0 `recipient`, 2.0 `keylist`.
    Recipient,
}

const KINDS: [Kind; 7] = [
    Kind::MediateRequest,
    Kind::MediateGrant,
    Kind::MediateDeny,
    Kind::RecipientUpdate,
    Kind::RecipientUpdateResponse,
    Kind::RecipientQuery,
    Kind::Recipient,
];

impl Kind {
    /// The message a parser of this kind reads, as a refusal names it.
    fn expected(self) -> &'static str {
        match self {
            Kind::MediateRequest => "mediate-request",
            Kind::MediateGrant => "mediate-grant",
            Kind::MediateDeny => "mediate-deny",
            Kind::RecipientUpdate => "recipient-update (2.0 keylist-update)",
            Kind::RecipientUpdateResponse => {
                "recipient-update-response (2.0 keylist-update-response)"
            }
            Kind::RecipientQuery => "recipient-query (2.0 keylist-query)",
            Kind::Recipient => "recipient (2.0 keylist)",
        }
    }
}

impl Version {
    /// Both versions, the newest first (the order a client tries them in).
    pub const ALL: [Version; 2] = [Version::V3, Version::V2];

    /// The protocol's PIURI in this version.
    pub fn piuri(self) -> &'static str {
        match self {
            Version::V2 => v2::PIURI,
            Version::V3 => v3::PIURI,
        }
    }

    /// The message type of `kind` in this version.
    pub fn type_of(self, kind: Kind) -> &'static str {
        match (self, kind) {
            (Version::V3, Kind::MediateRequest) => v3::MEDIATE_REQUEST,
            (Version::V3, Kind::MediateGrant) => v3::MEDIATE_GRANT,
            (Version::V3, Kind::MediateDeny) => v3::MEDIATE_DENY,
            (Version::V3, Kind::RecipientUpdate) => v3::RECIPIENT_UPDATE,
            (Version::V3, Kind::RecipientUpdateResponse) => v3::RECIPIENT_UPDATE_RESPONSE,
            (Version::V3, Kind::RecipientQuery) => v3::RECIPIENT_QUERY,
            (Version::V3, Kind::Recipient) => v3::RECIPIENT,
            (Version::V2, Kind::MediateRequest) => v2::MEDIATE_REQUEST,
            (Version::V2, Kind::MediateGrant) => v2::MEDIATE_GRANT,
            (Version::V2, Kind::MediateDeny) => v2::MEDIATE_DENY,
            (Version::V2, Kind::RecipientUpdate) => v2::KEYLIST_UPDATE,
            (Version::V2, Kind::RecipientUpdateResponse) => v2::KEYLIST_UPDATE_RESPONSE,
            (Version::V2, Kind::RecipientQuery) => v2::KEYLIST_QUERY,
            (Version::V2, Kind::Recipient) => v2::KEYLIST,
        }
    }

    /// The version and kind of a message type of this protocol; `None` for any other type.
    pub fn classify(type_: &str) -> Option<(Version, Kind)> {
        super::classify(&Version::ALL, &KINDS, Version::type_of, type_)
    }

    /// The version whose PIURI `piuri` is.
    pub fn of_piuri(piuri: &str) -> Option<Version> {
        Version::ALL.into_iter().find(|v| v.piuri() == piuri)
    }

    /// A message of `kind` in this version with `body`.
    fn message(self, kind: Kind, body: Value) -> Message {
        Message::new(self.type_of(kind), body)
    }
}

/// The body of `message` when it is of `kind` in either version, read under the message's
/// wire name; the version it is in.
fn body_of(message: &Message, kind: Kind) -> Result<(Version, Body<'_>), ProtocolError> {
    let version = match Version::classify(&message.type_) {
        Some((version, found)) if found == kind => version,
        _ => {
            return Err(ProtocolError::WrongType {
                type_: message.type_.clone(),
                expected: kind.expected(),
            })
        }
    };
    let name = wire_name(version, kind);
    Ok((version, Body::of(message, &message.type_, name)?))
}

/// The message's name as its version writes it (the last segment of its type).
fn wire_name(version: Version, kind: Kind) -> &'static str {
    let type_ = version.type_of(kind);
    &type_[type_.rfind('/').map_or(0, |slash| slash + 1)..]
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

/// The `mediate-request` message in `version`.
pub fn mediate_request_message(version: Version, _: &MediateRequest) -> Message {
    version.message(Kind::MediateRequest, json!({}))
}

/// Reads a `mediate-request` of either version.
pub fn parse_mediate_request(message: &Message) -> Result<MediateRequest, ProtocolError> {
    body_of(message, Kind::MediateRequest)?;
    Ok(MediateRequest)
}

/// The mediator's grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediateGrant {
    /// The DIDs a sender forwards through to reach the client (the mediator's own).
    pub routing_did: Vec<String>,
}

/// The `mediate-grant` message in `version`, unthreaded (thread it with
/// [`Message::in_reply_to`]). 2.0 names one routing DID, as a string: the first.
pub fn mediate_grant_message(version: Version, grant: &MediateGrant) -> Message {
    let routing_did = match version {
        Version::V3 => json!(grant.routing_did),
        Version::V2 => json!(grant.routing_did.first()),
    };
    version.message(Kind::MediateGrant, json!({ "routing_did": routing_did }))
}

/// Reads a `mediate-grant`: 3.0's `routing_did` is a list of at most [`MAX_ROUTING_DIDS`]
/// DIDs; 2.0's is one DID, as a string or a list of one or more.
pub fn parse_mediate_grant(message: &Message) -> Result<MediateGrant, ProtocolError> {
    let (version, body) = body_of(message, Kind::MediateGrant)?;
    let over = |n| format!("routing_did lists {n} DIDs, over the limit of {MAX_ROUTING_DIDS}");
    let routing_did = match (version, body.opt_str("routing_did")) {
        (Version::V2, Ok(Some(did))) => vec![did.to_string()],
        (Version::V2, _) => {
            let dids = body.strings("routing_did", MAX_ROUTING_DIDS, over)?;
            if dids.is_empty() {
                return Err(body.invalid("routing_did names no DID"));
            }
            dids
        }
        (Version::V3, _) => body.strings("routing_did", MAX_ROUTING_DIDS, over)?,
    };
    if let Some(bad) = routing_did.iter().find(|did| !did.starts_with("did:")) {
        return Err(body.invalid(format!("routing_did {bad:?} is not a DID")));
    }
    Ok(MediateGrant { routing_did })
}

/// The mediator's refusal (its body is empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MediateDeny;

/// The `mediate-deny` message in `version`, unthreaded.
pub fn mediate_deny_message(version: Version, _: &MediateDeny) -> Message {
    version.message(Kind::MediateDeny, json!({}))
}

/// Reads a `mediate-deny` of either version.
pub fn parse_mediate_deny(message: &Message) -> Result<MediateDeny, ProtocolError> {
    body_of(message, Kind::MediateDeny)?;
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

/// A client's `recipient-update` (2.0 `keylist-update`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientUpdate {
    /// The changes, in order; at most [`MAX_RECIPIENT_UPDATES`].
    pub updates: Vec<Update>,
}

/// The `recipient-update` message (2.0 `keylist-update`) in `version`.
pub fn recipient_update_message(version: Version, update: &RecipientUpdate) -> Message {
    let updates: Vec<Value> = update
        .updates
        .iter()
        .map(|u| json!({ "recipient_did": u.recipient_did, "action": u.action.as_str() }))
        .collect();
    version.message(Kind::RecipientUpdate, json!({ "updates": updates }))
}

/// Reads a `recipient-update` (2.0 `keylist-update`): a list of at most
/// [`MAX_RECIPIENT_UPDATES`] updates, each a `recipient_did` that is a DID (in 2.0, or a
/// `recipient_key` holding one) and an `action` of `add` or `remove`.
pub fn parse_recipient_update(message: &Message) -> Result<RecipientUpdate, ProtocolError> {
    let (version, body) = body_of(message, Kind::RecipientUpdate)?;
    let items = body.within(body.list("updates")?, MAX_RECIPIENT_UPDATES, |n| {
        format!(
            "it carries {n} updates, over this mediator's limit of {MAX_RECIPIENT_UPDATES} per \
             message"
        )
    })?;
    let mut updates = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let recipient_did = match (item_str(item, "recipient_did"), version) {
            (None, Version::V2) => item_str(item, "recipient_key"),
            (found, _) => found,
        };
        let (Some(recipient_did), Some(action)) = (recipient_did, item_str(item, "action")) else {
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

/// The mediator's `recipient-update-response` (2.0 `keylist-update-response`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientUpdateResponse {
    /// Each update, in the order asked.
    pub updated: Vec<Updated>,
}

/// The `recipient-update-response` message (2.0 `keylist-update-response`) in `version`,
/// unthreaded.
pub fn recipient_update_response_message(
    version: Version,
    response: &RecipientUpdateResponse,
) -> Message {
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
    version.message(Kind::RecipientUpdateResponse, json!({ "updated": updated }))
}

/// Reads a `recipient-update-response` (2.0 `keylist-update-response`): at most
/// [`MAX_RECIPIENT_UPDATES`] entries, each with a `recipient_did`, a known `action` and a
/// known `result`.
pub fn parse_recipient_update_response(
    message: &Message,
) -> Result<RecipientUpdateResponse, ProtocolError> {
    let (_, body) = body_of(message, Kind::RecipientUpdateResponse)?;
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

/// A client's `recipient-query` (2.0 `keylist-query`; its optional `paginate` is not read:
/// the answer lists every recipient).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecipientQuery;

/// The `recipient-query` message (2.0 `keylist-query`) in `version`.
pub fn recipient_query_message(version: Version, _: &RecipientQuery) -> Message {
    version.message(Kind::RecipientQuery, json!({}))
}

/// Reads a `recipient-query` (2.0 `keylist-query`).
pub fn parse_recipient_query(message: &Message) -> Result<RecipientQuery, ProtocolError> {
    body_of(message, Kind::RecipientQuery)?;
    Ok(RecipientQuery)
}

/// The mediator's `recipient` answer (2.0 `keylist`): the DIDs registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipients {
    /// The recipient DIDs.
    pub dids: Vec<String>,
}

/// The list field of the answer in `version`: 3.0 `dids`, 2.0 `keys`.
fn listed(version: Version) -> &'static str {
    match version {
        Version::V2 => "keys",
        Version::V3 => "dids",
    }
}

/// The `recipient` message (2.0 `keylist`) in `version`, unthreaded.
pub fn recipient_message(version: Version, recipients: &Recipients) -> Message {
    let dids: Vec<Value> = recipients
        .dids
        .iter()
        .map(|did| json!({ "recipient_did": did }))
        .collect();
    let mut body = json!({});
    body[listed(version)] = Value::Array(dids);
    version.message(Kind::Recipient, body)
}

/// Reads a `recipient` answer (3.0 `dids`, 2.0 `keylist` `keys`): at most
/// [`MAX_LISTED_RECIPIENTS`] entries, each with a `recipient_did`.
pub fn parse_recipient(message: &Message) -> Result<Recipients, ProtocolError> {
    let (version, body) = body_of(message, Kind::Recipient)?;
    let field = listed(version);
    let items = body.within(body.list(field)?, MAX_LISTED_RECIPIENTS, |n| {
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
    fn every_message_round_trips_in_both_versions() {
        for version in Version::ALL {
            let request =
                wire(&mediate_request_message(version, &MediateRequest).pthid("invitation-1"));
            assert_eq!(parse_mediate_request(&request).unwrap(), MediateRequest);
            let grant = MediateGrant {
                routing_did: vec!["did:example:mediator".into()],
            };
            let message = wire(&mediate_grant_message(version, &grant).in_reply_to(&request));
            assert_eq!(message.thid.as_deref(), Some(request.id.as_str()));
            assert_eq!(message.pthid.as_deref(), Some("invitation-1"));
            assert_eq!(parse_mediate_grant(&message).unwrap(), grant);
            assert_eq!(
                parse_mediate_deny(&wire(&mediate_deny_message(version, &MediateDeny))).unwrap(),
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
                parse_recipient_update(&wire(&recipient_update_message(version, &update))).unwrap(),
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
            let message = wire(&recipient_update_response_message(version, &response));
            assert_eq!(message.body["updated"][1]["result"], "no_change");
            assert_eq!(parse_recipient_update_response(&message).unwrap(), response);
            assert_eq!(
                parse_recipient_query(&wire(&recipient_query_message(version, &RecipientQuery)))
                    .unwrap(),
                RecipientQuery
            );
            let recipients = Recipients {
                dids: vec!["did:example:a".into(), "did:example:b".into()],
            };
            let message = wire(&recipient_message(version, &recipients));
            assert_eq!(parse_recipient(&message).unwrap(), recipients);
        }
    }

    #[test]
    fn each_version_writes_its_own_wire_shapes() {
        let grant = MediateGrant {
            routing_did: vec!["did:example:mediator".into()],
        };
        let v3_grant = mediate_grant_message(Version::V3, &grant);
        assert_eq!(v3_grant.type_, v3::MEDIATE_GRANT);
        assert_eq!(
            v3_grant.body,
            json!({ "routing_did": ["did:example:mediator"] })
        );
        let v2_grant = mediate_grant_message(Version::V2, &grant);
        assert_eq!(v2_grant.type_, v2::MEDIATE_GRANT);
        assert_eq!(
            v2_grant.body,
            json!({ "routing_did": "did:example:mediator" })
        );

        let update = RecipientUpdate {
            updates: vec![Update {
                recipient_did: "did:example:a".into(),
                action: Action::Add,
            }],
        };
        assert_eq!(
            recipient_update_message(Version::V2, &update).type_,
            v2::KEYLIST_UPDATE
        );
        assert_eq!(
            recipient_update_message(Version::V3, &update).type_,
            v3::RECIPIENT_UPDATE
        );
        assert_eq!(
            recipient_query_message(Version::V2, &RecipientQuery).type_,
            v2::KEYLIST_QUERY
        );
        let recipients = Recipients {
            dids: vec!["did:example:a".into()],
        };
        let keylist = recipient_message(Version::V2, &recipients);
        assert_eq!(keylist.type_, v2::KEYLIST);
        assert_eq!(
            keylist.body,
            json!({ "keys": [{ "recipient_did": "did:example:a" }] })
        );
        assert_eq!(
            recipient_message(Version::V3, &recipients).body,
            json!({ "dids": [{ "recipient_did": "did:example:a" }] })
        );
    }

    #[test]
    fn a_2_0_grant_may_name_its_routing_did_as_a_list_and_an_update_by_recipient_key() {
        let listed = Message::new(
            v2::MEDIATE_GRANT,
            json!({ "routing_did": ["did:example:m"] }),
        );
        assert_eq!(
            parse_mediate_grant(&listed).unwrap().routing_did,
            ["did:example:m"]
        );
        let keyed = Message::new(
            v2::KEYLIST_UPDATE,
            json!({ "updates": [{ "recipient_key": "did:key:z6Mk", "action": "add" }] }),
        );
        assert_eq!(
            parse_recipient_update(&keyed).unwrap().updates[0].recipient_did,
            "did:key:z6Mk"
        );
        // Not in 3.0, whose updates name the DID only as recipient_did.
        let keyed_v3 = Message::new(
            v3::RECIPIENT_UPDATE,
            json!({ "updates": [{ "recipient_key": "did:key:z6Mk", "action": "add" }] }),
        );
        assert!(parse_recipient_update(&keyed_v3)
            .unwrap_err()
            .to_string()
            .contains("update 0: each update needs a recipient_did and an action"));
        // Nor does a raw key stand for a DID.
        let raw = Message::new(
            v2::KEYLIST_UPDATE,
            json!({ "updates": [{ "recipient_key": "8HH5gYEeNc3z7PYXmd54d4x6qAfCNrqQqEB3nS7Zfu7K", "action": "add" }] }),
        );
        assert_eq!(
            parse_recipient_update(&raw).unwrap_err().to_string(),
            "keylist-update: update 0: \"8HH5gYEeNc3z7PYXmd54d4x6qAfCNrqQqEB3nS7Zfu7K\" is not a DID"
        );
    }

    #[test]
    fn every_type_is_of_its_protocol_version_and_classified_once() {
        let mut seen = std::collections::HashSet::new();
        for version in Version::ALL {
            for kind in KINDS {
                let type_ = version.type_of(kind);
                assert!(
                    type_.starts_with(&format!("{}/", version.piuri())),
                    "{type_}"
                );
                assert_eq!(Version::classify(type_), Some((version, kind)), "{type_}");
                assert!(seen.insert(type_), "{type_} twice");
            }
            assert_eq!(Version::of_piuri(version.piuri()), Some(version));
        }
        assert_eq!(
            Version::classify("https://didcomm.org/coordinate-mediation/1.0/mediate-request"),
            None
        );
        assert_eq!(wire_name(Version::V2, Kind::Recipient), "keylist");
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
        assert_eq!(
            parse_recipient_update(&Message::new(v2::KEYLIST_UPDATE, json!({})))
                .unwrap_err()
                .to_string(),
            "keylist-update has no updates"
        );

        let grant = |type_: &str, body: Value| {
            parse_mediate_grant(&Message::new(type_, body))
                .unwrap_err()
                .to_string()
        };
        for type_ in [v3::MEDIATE_GRANT, v2::MEDIATE_GRANT] {
            assert_eq!(grant(type_, json!({})), "mediate-grant has no routing_did");
            assert!(grant(type_, json!({ "routing_did": ["https://x"] })).contains("is not a DID"));
            assert!(grant(type_, json!({ "routing_did": vec!["did:x"; 17] }))
                .contains("over the limit of 16"));
            assert_eq!(
                grant(type_, json!({ "routing_did": 7 })),
                "mediate-grant: routing_did is not a list"
            );
        }
        assert_eq!(
            grant(v2::MEDIATE_GRANT, json!({ "routing_did": "https://x" })),
            "mediate-grant: routing_did \"https://x\" is not a DID"
        );
        assert_eq!(
            grant(v2::MEDIATE_GRANT, json!({ "routing_did": [] })),
            "mediate-grant: routing_did names no DID"
        );
        assert_eq!(
            grant(v3::MEDIATE_GRANT, json!({ "routing_did": "did:example:m" })),
            "mediate-grant: routing_did is not a list",
            "3.0 grants name their routing DIDs in a list"
        );

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
        assert_eq!(
            parse_recipient(&Message::new(
                v2::KEYLIST,
                json!({ "dids": [{ "recipient_did": "did:x" }] })
            ))
            .unwrap_err()
            .to_string(),
            "keylist has no keys",
            "a 2.0 keylist lists its DIDs under keys"
        );
        assert!(matches!(
            parse_mediate_request(&mediate_grant_message(
                Version::V3,
                &MediateGrant {
                    routing_did: vec![]
                }
            )),
            Err(ProtocolError::WrongType {
                expected: "mediate-request",
                ..
            })
        ));
        assert_eq!(
            parse_recipient_query(&Message::new(v2::KEYLIST, json!({})))
                .unwrap_err()
                .to_string(),
            format!(
                "recipient-query (2.0 keylist-query) expected, got a message of type {}",
                v2::KEYLIST
            )
        );
    }
}

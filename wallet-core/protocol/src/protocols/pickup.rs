//! Message Pickup 3.0 and 4.0: a mediated client asks how many messages wait
//! (`status-request`, answered `status`), asks for them (`delivery-request`, answered
//! `delivery` with each queued envelope as an inline JSON attachment), acknowledges what it
//! stored (`messages-received`) and, over a WebSocket, switches live delivery on or off
//! (`live-delivery-change`, answered `status`).
//!
//! The message types are per version in [`v3`] and [`v4`] (4.0 renamed the protocol
//! `message-pickup`); every builder takes the [`Version`] to write, every parser reads either
//! (the type says which, [`Version::classify`]). The bodies are the same; what 4.0 changes is
//! how the parties behave in live mode: every pushed `delivery` must be acknowledged with
//! `messages-received` (a message not acknowledged stays queued for a later pickup), and only
//! messages arriving after live mode was switched on are pushed; those already queued must
//! still be asked for with `delivery-request` ([`Version::live_pushes_queued`]).

use serde_json::{json, Value};

use super::{Body, ProtocolError};
use crate::didcomm::{Attachment, Message, ENCRYPTED_TYP};

/// The Message Pickup 3.0 message types.
pub mod v3 {
    /// The Message Pickup 3.0 protocol.
    pub const PIURI: &str = "https://didcomm.org/messagepickup/3.0";
    /// A client asks how many messages wait.
    pub const STATUS_REQUEST: &str = "https://didcomm.org/messagepickup/3.0/status-request";
    /// How many messages wait.
    pub const STATUS: &str = "https://didcomm.org/messagepickup/3.0/status";
    /// A client asks for waiting messages.
    pub const DELIVERY_REQUEST: &str = "https://didcomm.org/messagepickup/3.0/delivery-request";
    /// Waiting messages, attached.
    pub const DELIVERY: &str = "https://didcomm.org/messagepickup/3.0/delivery";
    /// A client acknowledges messages, which the mediator then forgets.
    pub const MESSAGES_RECEIVED: &str = "https://didcomm.org/messagepickup/3.0/messages-received";
    /// A client switches live delivery on or off.
    pub const LIVE_DELIVERY_CHANGE: &str =
        "https://didcomm.org/messagepickup/3.0/live-delivery-change";
}

/// The Message Pickup 4.0 message types.
pub mod v4 {
    /// The Message Pickup 4.0 protocol.
    pub const PIURI: &str = "https://didcomm.org/message-pickup/4.0";
    /// A client asks how many messages wait.
    pub const STATUS_REQUEST: &str = "https://didcomm.org/message-pickup/4.0/status-request";
    /// How many messages wait (always threaded on what it answers).
    pub const STATUS: &str = "https://didcomm.org/message-pickup/4.0/status";
    /// A client asks for waiting messages.
    pub const DELIVERY_REQUEST: &str = "https://didcomm.org/message-pickup/4.0/delivery-request";
    /// Waiting messages, attached.
    pub const DELIVERY: &str = "https://didcomm.org/message-pickup/4.0/delivery";
    /// A client acknowledges messages, which the mediator then forgets.
    pub const MESSAGES_RECEIVED: &str = "https://didcomm.org/message-pickup/4.0/messages-received";
    /// A client switches live delivery on or off.
    pub const LIVE_DELIVERY_CHANGE: &str =
        "https://didcomm.org/message-pickup/4.0/live-delivery-change";
}

/// A version of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Version {
    /// Message Pickup 3.0.
    V3,
    /// Message Pickup 4.0.
    V4,
}

/// What a message of the protocol does, whatever its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `status-request`.
    StatusRequest,
    /// `status`.
    Status,
    /// `delivery-request`.
    DeliveryRequest,
    /// `delivery`.
    Delivery,
    /// `messages-received`.
    MessagesReceived,
    /// `live-delivery-change`.
    LiveDeliveryChange,
}

const KINDS: [Kind; 6] = [
    Kind::StatusRequest,
    Kind::Status,
    Kind::DeliveryRequest,
    Kind::Delivery,
    Kind::MessagesReceived,
    Kind::LiveDeliveryChange,
];

impl Kind {
    /// The message's name (the last segment of its type, the same in both versions).
    fn name(self) -> &'static str {
        match self {
            Kind::StatusRequest => "status-request",
            Kind::Status => "status",
            Kind::DeliveryRequest => "delivery-request",
            Kind::Delivery => "delivery",
            Kind::MessagesReceived => "messages-received",
            Kind::LiveDeliveryChange => "live-delivery-change",
        }
    }
}

impl Version {
    /// Both versions, the newest last.
    pub const ALL: [Version; 2] = [Version::V3, Version::V4];

    /// The protocol's PIURI in this version.
    pub fn piuri(self) -> &'static str {
        match self {
            Version::V3 => v3::PIURI,
            Version::V4 => v4::PIURI,
        }
    }

    /// The message type of `kind` in this version.
    pub fn type_of(self, kind: Kind) -> &'static str {
        match (self, kind) {
            (Version::V3, Kind::StatusRequest) => v3::STATUS_REQUEST,
            (Version::V3, Kind::Status) => v3::STATUS,
            (Version::V3, Kind::DeliveryRequest) => v3::DELIVERY_REQUEST,
            (Version::V3, Kind::Delivery) => v3::DELIVERY,
            (Version::V3, Kind::MessagesReceived) => v3::MESSAGES_RECEIVED,
            (Version::V3, Kind::LiveDeliveryChange) => v3::LIVE_DELIVERY_CHANGE,
            (Version::V4, Kind::StatusRequest) => v4::STATUS_REQUEST,
            (Version::V4, Kind::Status) => v4::STATUS,
            (Version::V4, Kind::DeliveryRequest) => v4::DELIVERY_REQUEST,
            (Version::V4, Kind::Delivery) => v4::DELIVERY,
            (Version::V4, Kind::MessagesReceived) => v4::MESSAGES_RECEIVED,
            (Version::V4, Kind::LiveDeliveryChange) => v4::LIVE_DELIVERY_CHANGE,
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

    /// Whether live mode, once switched on, also pushes the messages that were already
    /// queued (3.0, where the spec leaves it open). 4.0 pushes only messages that arrive
    /// later: those already queued "MUST still be requested with `delivery-request`".
    pub fn live_pushes_queued(self) -> bool {
        self == Version::V3
    }

    fn message(self, kind: Kind, body: Value) -> Message {
        Message::new(self.type_of(kind), body)
    }
}

/// The body of `message` when it is of `kind` in either version.
fn body_of(message: &Message, kind: Kind) -> Result<Body<'_>, ProtocolError> {
    match Version::classify(&message.type_) {
        Some((_, found)) if found == kind => Body::of(message, &message.type_, kind.name()),
        _ => Err(ProtocolError::WrongType {
            type_: message.type_.clone(),
            expected: kind.name(),
        }),
    }
}

/// Ids one `messages-received` may acknowledge; a `delivery` carries no more than can be
/// acknowledged at once.
pub const MAX_ACKNOWLEDGED_IDS: usize = 1000;

/// A client's `status-request`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusRequest {
    /// Only this recipient's queue; all of the client's when `None`.
    pub recipient_did: Option<String>,
}

/// The `status-request` message in `version`.
pub fn status_request_message(version: Version, request: &StatusRequest) -> Message {
    let mut body = json!({});
    if let Some(did) = &request.recipient_did {
        body["recipient_did"] = json!(did);
    }
    version.message(Kind::StatusRequest, body)
}

/// Reads a `status-request`: `recipient_did`, when present, is a string.
pub fn parse_status_request(message: &Message) -> Result<StatusRequest, ProtocolError> {
    let body = body_of(message, Kind::StatusRequest)?;
    Ok(StatusRequest {
        recipient_did: body.opt_str("recipient_did")?.map(str::to_string),
    })
}

/// The mediator's `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// The queue counted, when the request named one.
    pub recipient_did: Option<String>,
    /// Messages waiting.
    pub message_count: u64,
    /// Whether live delivery is on for this connection.
    pub live_delivery: bool,
}

/// The `status` message in `version`, unthreaded (thread it with [`Message::in_reply_to`]).
pub fn status_message(version: Version, status: &Status) -> Message {
    let mut body = json!({
        "message_count": status.message_count,
        "live_delivery": status.live_delivery,
    });
    if let Some(did) = &status.recipient_did {
        body["recipient_did"] = json!(did);
    }
    version.message(Kind::Status, body)
}

/// Reads a `status`: a non-negative integer `message_count`, an optional boolean
/// `live_delivery` (false when absent) and an optional `recipient_did`.
pub fn parse_status(message: &Message) -> Result<Status, ProtocolError> {
    let body = body_of(message, Kind::Status)?;
    let message_count = match message.body.get("message_count") {
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| {
            body.invalid(format!("message_count {n} is not a non-negative integer"))
        })?,
        Some(Value::Null) | None => {
            return Err(ProtocolError::Missing {
                message: "status",
                what: "message_count",
            })
        }
        Some(other) => {
            return Err(body.invalid(format!(
                "message_count {other} is not a non-negative integer"
            )))
        }
    };
    Ok(Status {
        recipient_did: body.opt_str("recipient_did")?.map(str::to_string),
        message_count,
        live_delivery: body.opt_bool("live_delivery")?.unwrap_or(false),
    })
}

/// A client's `delivery-request`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryRequest {
    /// Most messages to deliver (at least 1; the mediator has its own maximum).
    pub limit: u64,
    /// Only this recipient's queue; all of the client's when `None`.
    pub recipient_did: Option<String>,
}

/// The `delivery-request` message in `version`.
pub fn delivery_request_message(version: Version, request: &DeliveryRequest) -> Message {
    let mut body = json!({ "limit": request.limit });
    if let Some(did) = &request.recipient_did {
        body["recipient_did"] = json!(did);
    }
    version.message(Kind::DeliveryRequest, body)
}

/// Reads a `delivery-request`: `limit` is a positive integer, `recipient_did`, when present,
/// a string.
pub fn parse_delivery_request(message: &Message) -> Result<DeliveryRequest, ProtocolError> {
    let body = body_of(message, Kind::DeliveryRequest)?;
    let limit = match message.body.get("limit") {
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|&n| n >= 1)
            .ok_or_else(|| body.invalid(format!("limit {n} is not a positive integer")))?,
        Some(Value::Null) | None => {
            return Err(ProtocolError::Missing {
                message: "delivery-request",
                what: "limit",
            })
        }
        Some(other) => return Err(body.invalid(format!("limit {other} is not a positive integer"))),
    };
    Ok(DeliveryRequest {
        limit,
        recipient_did: body.opt_str("recipient_did")?.map(str::to_string),
    })
}

/// One delivered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// Its id in the mediator's queue, which acknowledges it.
    pub id: String,
    /// The envelope; `None` when its attachment carried neither JSON nor base64url UTF-8 text
    /// (it is still acknowledged, or it would come again for ever). The builder writes such an
    /// entry as an attachment without data.
    pub envelope: Option<String>,
}

/// The mediator's `delivery`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// The queue delivered from, when the request named one.
    pub recipient_did: Option<String>,
    /// The messages, each an attachment.
    pub messages: Vec<Delivered>,
}

/// The `delivery` message in `version`, unthreaded (a live push starts its own thread; an
/// answer to a request is threaded with [`Message::in_reply_to`]): each envelope an attachment
/// of media type [`ENCRYPTED_TYP`] whose id is the queue id, inline JSON
/// ([`Attachment::envelope`]).
pub fn delivery_message(version: Version, delivery: &Delivery) -> Message {
    let mut body = json!({});
    if let Some(did) = &delivery.recipient_did {
        body["recipient_did"] = json!(did);
    }
    let mut message = version.message(Kind::Delivery, body);
    message.attachments = delivery
        .messages
        .iter()
        .map(|delivered| match &delivered.envelope {
            Some(envelope) => Attachment::envelope(delivered.id.clone(), envelope),
            None => {
                let mut attachment = Attachment::json(Value::Null);
                attachment.id = Some(delivered.id.clone());
                attachment.media_type = Some(ENCRYPTED_TYP.to_string());
                attachment.data.json = None;
                attachment
            }
        })
        .collect();
    message
}

/// Reads a `delivery`: at most [`MAX_ACKNOWLEDGED_IDS`] attachments; one without an id
/// cannot be acknowledged and is left out, one whose data is neither inline JSON nor
/// base64url UTF-8 text ([`AttachmentData::text`](crate::didcomm::AttachmentData::text)) is
/// delivered with no envelope.
pub fn parse_delivery(message: &Message) -> Result<Delivery, ProtocolError> {
    let body = body_of(message, Kind::Delivery)?;
    if message.attachments.len() > MAX_ACKNOWLEDGED_IDS {
        return Err(body.invalid(format!(
            "it carries {} messages, more than the {MAX_ACKNOWLEDGED_IDS} one \
             messages-received can acknowledge",
            message.attachments.len()
        )));
    }
    let messages = message
        .attachments
        .iter()
        .filter_map(|attachment| {
            let id = attachment.id.clone()?;
            let envelope = attachment.data.text();
            Some(Delivered { id, envelope })
        })
        .collect();
    Ok(Delivery {
        recipient_did: body.opt_str("recipient_did")?.map(str::to_string),
        messages,
    })
}

/// A client's `messages-received`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessagesReceived {
    /// The queue ids of the messages stored, at most [`MAX_ACKNOWLEDGED_IDS`].
    pub message_id_list: Vec<String>,
}

/// The `messages-received` message in `version`.
pub fn messages_received_message(version: Version, received: &MessagesReceived) -> Message {
    version.message(
        Kind::MessagesReceived,
        json!({ "message_id_list": received.message_id_list }),
    )
}

/// Reads a `messages-received`: a list of at most [`MAX_ACKNOWLEDGED_IDS`] string ids.
pub fn parse_messages_received(message: &Message) -> Result<MessagesReceived, ProtocolError> {
    let body = body_of(message, Kind::MessagesReceived)?;
    let message_id_list = body.strings("message_id_list", MAX_ACKNOWLEDGED_IDS, |n| {
        format!(
            "it lists {n} ids, over this mediator's limit of {MAX_ACKNOWLEDGED_IDS} per message"
        )
    })?;
    Ok(MessagesReceived { message_id_list })
}

/// A client's `live-delivery-change`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveDeliveryChange {
    /// Whether the mediator pushes messages on this connection as they arrive.
    pub live_delivery: bool,
}

/// The `live-delivery-change` message in `version`.
pub fn live_delivery_change_message(version: Version, change: &LiveDeliveryChange) -> Message {
    version.message(
        Kind::LiveDeliveryChange,
        json!({ "live_delivery": change.live_delivery }),
    )
}

/// Reads a `live-delivery-change`: `live_delivery` is true or false.
pub fn parse_live_delivery_change(message: &Message) -> Result<LiveDeliveryChange, ProtocolError> {
    let body = body_of(message, Kind::LiveDeliveryChange)?;
    let live_delivery = body
        .opt_bool("live_delivery")?
        .ok_or(ProtocolError::Missing {
            message: "live-delivery-change",
            what: "live_delivery",
        })?;
    Ok(LiveDeliveryChange { live_delivery })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::didcomm::AttachmentData;
    use crate::encoding::b64u_encode;

    fn wire(message: &Message) -> Message {
        serde_json::from_str(&message.to_json()).unwrap()
    }

    #[test]
    fn every_message_round_trips() {
        for request in [
            StatusRequest::default(),
            StatusRequest {
                recipient_did: Some("did:example:a".into()),
            },
        ] {
            assert_eq!(
                parse_status_request(&wire(&status_request_message(Version::V3, &request)))
                    .unwrap(),
                request
            );
        }
        let status = Status {
            recipient_did: Some("did:example:a".into()),
            message_count: 3,
            live_delivery: true,
        };
        assert_eq!(
            parse_status(&wire(&status_message(Version::V3, &status))).unwrap(),
            status
        );
        let request = DeliveryRequest {
            limit: 50,
            recipient_did: None,
        };
        assert_eq!(
            parse_delivery_request(&wire(&delivery_request_message(Version::V3, &request)))
                .unwrap(),
            request
        );
        let delivery = Delivery {
            recipient_did: None,
            messages: vec![
                Delivered {
                    id: "q-1".into(),
                    envelope: Some(r#"{"protected":"x"}"#.into()),
                },
                Delivered {
                    id: "q-2".into(),
                    envelope: None,
                },
            ],
        };
        let message = wire(&delivery_message(Version::V3, &delivery));
        assert_eq!(
            message.attachments[0].media_type.as_deref(),
            Some(ENCRYPTED_TYP)
        );
        // Inline JSON, the form Veramo's Pickup handler reads (and Credo's, Identus's).
        assert_eq!(
            message.attachments[0].data.json,
            Some(json!({ "protected": "x" }))
        );
        assert_eq!(message.attachments[0].data.base64, None);
        assert_eq!(parse_delivery(&message).unwrap(), delivery);
        // A delivery in the base64url form (older Lanyard mediators, Identus's) reads the same.
        let mut base64 = message.clone();
        base64.attachments[0].data = AttachmentData {
            base64: Some(b64u_encode(r#"{"protected":"x"}"#)),
            ..AttachmentData::default()
        };
        assert_eq!(parse_delivery(&base64).unwrap(), delivery);
        let received = MessagesReceived {
            message_id_list: vec!["q-1".into(), "q-2".into()],
        };
        assert_eq!(
            parse_messages_received(&wire(&messages_received_message(Version::V3, &received)))
                .unwrap(),
            received
        );
        let change = LiveDeliveryChange {
            live_delivery: true,
        };
        assert_eq!(
            parse_live_delivery_change(&wire(&live_delivery_change_message(Version::V3, &change)))
                .unwrap(),
            change
        );
    }

    #[test]
    fn a_delivery_keeps_what_can_be_acknowledged() {
        let mut message = delivery_message(Version::V3, &Delivery::default());
        let mut unnamed = Attachment::json(Value::Null);
        unnamed.id = None;
        let mut garbled = Attachment::json(Value::Null);
        garbled.id = Some("q-9".into());
        garbled.data.json = None;
        garbled.data.base64 = Some(b64u_encode([0xff, 0xfe]));
        message.attachments = vec![unnamed, garbled];
        assert_eq!(
            parse_delivery(&message).unwrap().messages,
            vec![Delivered {
                id: "q-9".into(),
                envelope: None
            }]
        );
        message.attachments = vec![message.attachments[1].clone(); MAX_ACKNOWLEDGED_IDS + 1];
        assert!(parse_delivery(&message)
            .unwrap_err()
            .to_string()
            .contains("1001 messages, more than the 1000"));
    }

    #[test]
    fn malformed_messages_are_refused_by_what_is_wrong() {
        let delivery_request = |body: Value| {
            parse_delivery_request(&Message::new(v3::DELIVERY_REQUEST, body))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(delivery_request(json!({})), "delivery-request has no limit");
        for (limit, shown) in [
            (json!(0), "0"),
            (json!(-3), "-3"),
            (json!("5"), "\"5\""),
            (json!(1.5), "1.5"),
        ] {
            assert_eq!(
                delivery_request(json!({ "limit": limit })),
                format!("delivery-request: limit {shown} is not a positive integer")
            );
        }
        assert_eq!(
            delivery_request(json!({ "limit": 1, "recipient_did": 7 })),
            "delivery-request: recipient_did is not a string"
        );
        assert_eq!(
            parse_status_request(&Message::new(
                v3::STATUS_REQUEST,
                json!({ "recipient_did": [] })
            ))
            .unwrap_err()
            .to_string(),
            "status-request: recipient_did is not a string"
        );
        let received = |body: Value| {
            parse_messages_received(&Message::new(v3::MESSAGES_RECEIVED, body))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            received(json!({})),
            "messages-received has no message_id_list"
        );
        assert_eq!(
            received(json!({ "message_id_list": [1, 2] })),
            "messages-received: each of message_id_list is a string"
        );
        let ids: Vec<String> = (0..=MAX_ACKNOWLEDGED_IDS).map(|n| n.to_string()).collect();
        assert!(received(json!({ "message_id_list": ids }))
            .contains("lists 1001 ids, over this mediator's limit of 1000"));
        let change = |body: Value| {
            parse_live_delivery_change(&Message::new(v3::LIVE_DELIVERY_CHANGE, body))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            change(json!({})),
            "live-delivery-change has no live_delivery"
        );
        assert_eq!(
            change(json!({ "live_delivery": "on" })),
            "live-delivery-change: live_delivery is not true or false"
        );
        let status = |body: Value| {
            parse_status(&Message::new(v3::STATUS, body))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(status(json!({})), "status has no message_count");
        assert_eq!(
            status(json!({ "message_count": -1 })),
            "status: message_count -1 is not a non-negative integer"
        );
        assert!(matches!(
            parse_delivery(&status_message(Version::V3, &Status::default())),
            Err(ProtocolError::WrongType {
                expected: "delivery",
                ..
            })
        ));
    }

    #[test]
    fn every_message_round_trips_in_4_0() {
        let request = wire(&delivery_request_message(
            Version::V4,
            &DeliveryRequest {
                limit: 5,
                recipient_did: Some("did:example:a".into()),
            },
        ));
        assert_eq!(request.type_, v4::DELIVERY_REQUEST);
        assert_eq!(parse_delivery_request(&request).unwrap().limit, 5);
        let empty =
            wire(&delivery_message(Version::V4, &Delivery::default()).in_reply_to(&request));
        assert_eq!(empty.type_, v4::DELIVERY);
        assert_eq!(empty.thid.as_deref(), Some(request.id.as_str()));
        assert_eq!(parse_delivery(&empty).unwrap(), Delivery::default());
        let status = Status {
            recipient_did: None,
            message_count: 2,
            live_delivery: true,
        };
        let message = wire(&status_message(Version::V4, &status));
        assert_eq!(message.type_, v4::STATUS);
        assert_eq!(parse_status(&message).unwrap(), status);
        let received = MessagesReceived {
            message_id_list: vec!["q-1".into()],
        };
        let message = wire(&messages_received_message(Version::V4, &received));
        assert_eq!(message.type_, v4::MESSAGES_RECEIVED);
        assert_eq!(parse_messages_received(&message).unwrap(), received);
        let change = LiveDeliveryChange {
            live_delivery: false,
        };
        let message = wire(&live_delivery_change_message(Version::V4, &change));
        assert_eq!(message.type_, v4::LIVE_DELIVERY_CHANGE);
        assert_eq!(parse_live_delivery_change(&message).unwrap(), change);
        let message = wire(&status_request_message(
            Version::V4,
            &StatusRequest::default(),
        ));
        assert_eq!(message.type_, v4::STATUS_REQUEST);
        assert_eq!(
            parse_status_request(&message).unwrap(),
            StatusRequest::default()
        );
        assert!(!Version::V4.live_pushes_queued());
        assert!(Version::V3.live_pushes_queued());
    }

    #[test]
    fn refusals_of_4_0_messages_name_the_field() {
        assert_eq!(
            parse_delivery_request(&Message::new(v4::DELIVERY_REQUEST, json!({ "limit": 0 })))
                .unwrap_err()
                .to_string(),
            "delivery-request: limit 0 is not a positive integer"
        );
        assert_eq!(
            parse_messages_received(&Message::new(v4::MESSAGES_RECEIVED, json!({})))
                .unwrap_err()
                .to_string(),
            "messages-received has no message_id_list"
        );
        assert_eq!(
            parse_status(&Message::new(v4::STATUS, json!({ "message_count": "3" })))
                .unwrap_err()
                .to_string(),
            "status: message_count \"3\" is not a non-negative integer"
        );
        assert_eq!(
            parse_live_delivery_change(&Message::new(
                v4::LIVE_DELIVERY_CHANGE,
                json!({ "live_delivery": 1 })
            ))
            .unwrap_err()
            .to_string(),
            "live-delivery-change: live_delivery is not true or false"
        );
        // A 4.0 parser does not take 3.0's neighbour types for its own.
        assert_eq!(
            parse_delivery(&Message::new(v4::STATUS, json!({ "message_count": 0 })))
                .unwrap_err()
                .to_string(),
            format!("delivery expected, got a message of type {}", v4::STATUS)
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
                assert!(type_.ends_with(&format!("/{}", kind.name())), "{type_}");
                assert_eq!(Version::classify(type_), Some((version, kind)), "{type_}");
                assert!(seen.insert(type_), "{type_} twice");
            }
            assert_eq!(Version::of_piuri(version.piuri()), Some(version));
        }
        assert_eq!(
            Version::classify("https://didcomm.org/messagepickup/4.0/status"),
            None,
            "4.0 is named message-pickup"
        );
    }
}

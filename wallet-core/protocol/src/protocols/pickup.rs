//! Message Pickup 3.0: a mediated client asks how many messages wait (`status-request`,
//! answered `status`), asks for them (`delivery-request`, answered `delivery` with each queued
//! envelope as an inline JSON attachment, or `status` when none wait), acknowledges what it
//! stored (`messages-received`) and, over a WebSocket, switches live delivery on or off
//! (`live-delivery-change`, answered `status`).
//!
//! The message types are per version in [`v3`]; the builders and parsers here read and write
//! 3.0 (4.0 would sit beside it as `v4`).

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

/// Ids one `messages-received` may acknowledge; a `delivery` carries no more than can be
/// acknowledged at once.
pub const MAX_ACKNOWLEDGED_IDS: usize = 1000;

/// A client's `status-request`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatusRequest {
    /// Only this recipient's queue; all of the client's when `None`.
    pub recipient_did: Option<String>,
}

/// The `status-request` message.
pub fn status_request_message(request: &StatusRequest) -> Message {
    let mut body = json!({});
    if let Some(did) = &request.recipient_did {
        body["recipient_did"] = json!(did);
    }
    Message::new(v3::STATUS_REQUEST, body)
}

/// Reads a `status-request`: `recipient_did`, when present, is a string.
pub fn parse_status_request(message: &Message) -> Result<StatusRequest, ProtocolError> {
    let body = Body::of(message, v3::STATUS_REQUEST, "status-request")?;
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

/// The `status` message, unthreaded (thread it with [`Message::in_reply_to`]).
pub fn status_message(status: &Status) -> Message {
    let mut body = json!({
        "message_count": status.message_count,
        "live_delivery": status.live_delivery,
    });
    if let Some(did) = &status.recipient_did {
        body["recipient_did"] = json!(did);
    }
    Message::new(v3::STATUS, body)
}

/// Reads a `status`: a non-negative integer `message_count`, an optional boolean
/// `live_delivery` (false when absent) and an optional `recipient_did`.
pub fn parse_status(message: &Message) -> Result<Status, ProtocolError> {
    let body = Body::of(message, v3::STATUS, "status")?;
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

/// The `delivery-request` message.
pub fn delivery_request_message(request: &DeliveryRequest) -> Message {
    let mut body = json!({ "limit": request.limit });
    if let Some(did) = &request.recipient_did {
        body["recipient_did"] = json!(did);
    }
    Message::new(v3::DELIVERY_REQUEST, body)
}

/// Reads a `delivery-request`: `limit` is a positive integer, `recipient_did`, when present,
/// a string.
pub fn parse_delivery_request(message: &Message) -> Result<DeliveryRequest, ProtocolError> {
    let body = Body::of(message, v3::DELIVERY_REQUEST, "delivery-request")?;
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

/// The `delivery` message, unthreaded (a live push starts its own thread; an answer to a
/// request is threaded with [`Message::in_reply_to`]): each envelope an attachment of media
/// type [`ENCRYPTED_TYP`] whose id is the queue id, inline JSON ([`Attachment::envelope`]).
pub fn delivery_message(delivery: &Delivery) -> Message {
    let mut body = json!({});
    if let Some(did) = &delivery.recipient_did {
        body["recipient_did"] = json!(did);
    }
    let mut message = Message::new(v3::DELIVERY, body);
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
    let body = Body::of(message, v3::DELIVERY, "delivery")?;
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

/// The `messages-received` message.
pub fn messages_received_message(received: &MessagesReceived) -> Message {
    Message::new(
        v3::MESSAGES_RECEIVED,
        json!({ "message_id_list": received.message_id_list }),
    )
}

/// Reads a `messages-received`: a list of at most [`MAX_ACKNOWLEDGED_IDS`] string ids.
pub fn parse_messages_received(message: &Message) -> Result<MessagesReceived, ProtocolError> {
    let body = Body::of(message, v3::MESSAGES_RECEIVED, "messages-received")?;
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

/// The `live-delivery-change` message.
pub fn live_delivery_change_message(change: &LiveDeliveryChange) -> Message {
    Message::new(
        v3::LIVE_DELIVERY_CHANGE,
        json!({ "live_delivery": change.live_delivery }),
    )
}

/// Reads a `live-delivery-change`: `live_delivery` is true or false.
pub fn parse_live_delivery_change(message: &Message) -> Result<LiveDeliveryChange, ProtocolError> {
    let body = Body::of(message, v3::LIVE_DELIVERY_CHANGE, "live-delivery-change")?;
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
                parse_status_request(&wire(&status_request_message(&request))).unwrap(),
                request
            );
        }
        let status = Status {
            recipient_did: Some("did:example:a".into()),
            message_count: 3,
            live_delivery: true,
        };
        assert_eq!(
            parse_status(&wire(&status_message(&status))).unwrap(),
            status
        );
        let request = DeliveryRequest {
            limit: 50,
            recipient_did: None,
        };
        assert_eq!(
            parse_delivery_request(&wire(&delivery_request_message(&request))).unwrap(),
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
        let message = wire(&delivery_message(&delivery));
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
            parse_messages_received(&wire(&messages_received_message(&received))).unwrap(),
            received
        );
        let change = LiveDeliveryChange {
            live_delivery: true,
        };
        assert_eq!(
            parse_live_delivery_change(&wire(&live_delivery_change_message(&change))).unwrap(),
            change
        );
    }

    #[test]
    fn a_delivery_keeps_what_can_be_acknowledged() {
        let mut message = delivery_message(&Delivery::default());
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
            parse_delivery(&status_message(&Status::default())),
            Err(ProtocolError::WrongType {
                expected: "delivery",
                ..
            })
        ));
    }

    #[test]
    fn every_type_is_of_the_protocol() {
        for type_ in [
            v3::STATUS_REQUEST,
            v3::STATUS,
            v3::DELIVERY_REQUEST,
            v3::DELIVERY,
            v3::MESSAGES_RECEIVED,
            v3::LIVE_DELIVERY_CHANGE,
        ] {
            assert!(type_.starts_with(&format!("{}/", v3::PIURI)), "{type_}");
        }
    }
}

//! The DIDComm protocols wallet and agent speak, as typed messages shared by both sides (one
//! implementation of each wire format): one module per protocol, each with a struct per
//! message, a builder `x_message(&X) -> Message` and a strict parser
//! `parse_x(&Message) -> Result<X, ProtocolError>`.
//!
//! - [`coordinate_mediation`]: Coordinate Mediation 3.0 and 2.0 (the `v3` and `v2` types);
//! - [`routing`]: Routing 2.0 `forward`;
//! - [`pickup`]: Message Pickup 3.0 and 4.0 (the `v3` and `v4` types), live mode included;
//! - [`trust_ping`]: Trust Ping 2.0, and the one reply to a ping;
//! - [`discover_features`]: Discover Features 2.0, with the caps on what a query may ask;
//! - [`out_of_band`]: the Out-of-Band 2.0 invitation message (its transports, URLs and QR
//!   codes, belong to the agent and the wallet);
//! - [`report_problem`]: Report Problem 2.0;
//! - [`basic_message`]: Basic Message 2.0, which Lanyard only carries (tests and the load
//!   generator send it);
//! - [`issue_credential`], [`present_proof`] and Lanyard's credential [`deletion`] notice;
//! - [`push_notifications`]: how a wallet registers its wake-up (Aries RFCs 0699 APNs and
//!   0734 FCM, and Lanyard's webhook protocol of the same shape).
//!
//! A parser checks the message type, that required fields are present with the right JSON
//! type and that lists are within their caps, and names the message and what was wrong in its
//! [`ProtocolError`]; unknown extra fields are ignored. A reply is threaded on its request
//! with [`Message::in_reply_to`]. Pure: no I/O, no state.

pub mod basic_message;
pub mod coordinate_mediation;
pub mod deletion;
pub mod discover_features;
pub mod issue_credential;
pub mod out_of_band;
pub mod pickup;
pub mod present_proof;
pub mod push_notifications;
pub mod report_problem;
pub mod routing;
pub mod trust_ping;

use serde_json::{Map, Value};

use crate::didcomm::Message;

/// A protocol message that does not have the shape its type promises.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The message is of another type than the parser reads.
    #[error("{expected} expected, got a message of type {type_}")]
    WrongType {
        /// The type the message has.
        type_: String,
        /// The message the parser reads.
        expected: &'static str,
    },
    /// A required field (or header, or attachment) is absent.
    #[error("{message} has no {what}")]
    Missing {
        /// The message read.
        message: &'static str,
        /// What it lacks.
        what: &'static str,
    },
    /// A field is there but wrong: its JSON type, its value, or a list over its cap.
    #[error("{message}: {problem}")]
    Invalid {
        /// The message read.
        message: &'static str,
        /// What is wrong, naming the field (and the cap, for a list over it).
        problem: String,
    },
}

/// The message's type, checked.
pub(crate) fn expect_type(
    message: &Message,
    type_: &str,
    expected: &'static str,
) -> Result<(), ProtocolError> {
    if message.type_ == type_ {
        Ok(())
    } else {
        Err(ProtocolError::WrongType {
            type_: message.type_.clone(),
            expected,
        })
    }
}

/// The `thid` a reply must carry.
pub(crate) fn thid_of(message: &Message, name: &'static str) -> Result<String, ProtocolError> {
    message.thid.clone().ok_or(ProtocolError::Missing {
        message: name,
        what: "thid (the thread it answers)",
    })
}

/// The inline JSON of the attachment in `format`.
pub(crate) fn attachment_json<'a>(
    message: &'a Message,
    format: &str,
    name: &'static str,
) -> Result<&'a Value, ProtocolError> {
    message
        .attachments
        .iter()
        .find(|a| a.format.as_deref() == Some(format))
        .and_then(|a| a.data.json.as_ref())
        .ok_or(ProtocolError::Missing {
            message: name,
            what: "attachment in the expected format",
        })
}

static NO_FIELDS: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

/// A message's body, read field by field with errors that name the message and the field. A
/// field that is `null` counts as absent; a present field of the wrong JSON type is refused.
pub(crate) struct Body<'a> {
    name: &'static str,
    fields: &'a Map<String, Value>,
}

impl<'a> Body<'a> {
    /// The body of `message`, once its type is checked to be `type_` (the message `name`). A
    /// body must be a JSON object (an absent one reads as empty).
    pub(crate) fn of(
        message: &'a Message,
        type_: &str,
        name: &'static str,
    ) -> Result<Body<'a>, ProtocolError> {
        expect_type(message, type_, name)?;
        let fields = match &message.body {
            Value::Object(fields) => fields,
            Value::Null => &NO_FIELDS,
            _ => {
                return Err(ProtocolError::Invalid {
                    message: name,
                    problem: "its body is not a JSON object".into(),
                })
            }
        };
        Ok(Body { name, fields })
    }

    /// An error about this message.
    pub(crate) fn invalid(&self, problem: impl Into<String>) -> ProtocolError {
        ProtocolError::Invalid {
            message: self.name,
            problem: problem.into(),
        }
    }

    fn missing(&self, what: &'static str) -> ProtocolError {
        ProtocolError::Missing {
            message: self.name,
            what,
        }
    }

    fn get(&self, field: &str) -> Option<&'a Value> {
        self.fields.get(field).filter(|value| !value.is_null())
    }

    /// An optional text field.
    pub(crate) fn opt_str(&self, field: &'static str) -> Result<Option<&'a str>, ProtocolError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(self.invalid(format!("{field} is not a string"))),
        }
    }

    /// A required text field.
    pub(crate) fn str(&self, field: &'static str) -> Result<&'a str, ProtocolError> {
        self.opt_str(field)?.ok_or_else(|| self.missing(field))
    }

    /// An optional boolean field.
    pub(crate) fn opt_bool(&self, field: &'static str) -> Result<Option<bool>, ProtocolError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(_) => Err(self.invalid(format!("{field} is not true or false"))),
        }
    }

    /// An optional list field.
    pub(crate) fn opt_list(
        &self,
        field: &'static str,
    ) -> Result<Option<&'a [Value]>, ProtocolError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(_) => Err(self.invalid(format!("{field} is not a list"))),
        }
    }

    /// A required list field.
    pub(crate) fn list(&self, field: &'static str) -> Result<&'a [Value], ProtocolError> {
        self.opt_list(field)?.ok_or_else(|| self.missing(field))
    }

    /// `items` when there are at most `cap`; a longer list is refused in the words `over`
    /// gives its length.
    pub(crate) fn within<'i>(
        &self,
        items: &'i [Value],
        cap: usize,
        over: impl FnOnce(usize) -> String,
    ) -> Result<&'i [Value], ProtocolError> {
        if items.len() > cap {
            return Err(self.invalid(over(items.len())));
        }
        Ok(items)
    }

    /// A required list of strings, at most `cap` long; `over` words the refusal of a longer
    /// one from its length.
    pub(crate) fn strings(
        &self,
        field: &'static str,
        cap: usize,
        over: impl FnOnce(usize) -> String,
    ) -> Result<Vec<String>, ProtocolError> {
        self.within(self.list(field)?, cap, over)?
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| self.invalid(format!("each of {field} is a string")))
            })
            .collect()
    }
}

/// The (version, kind) of a versioned protocol whose message type is `type_`: the first of
/// `versions` × `kinds` for which `type_of` gives it.
pub(crate) fn classify<V: Copy, K: Copy>(
    versions: &[V],
    kinds: &[K],
    type_of: impl Fn(V, K) -> &'static str,
    type_: &str,
) -> Option<(V, K)> {
    versions.iter().find_map(|&version| {
        kinds
            .iter()
            .find(|&&kind| type_of(version, kind) == type_)
            .map(|&kind| (version, kind))
    })
}

/// `field` of one JSON object in a list, when it is a string.
pub(crate) fn item_str<'a>(item: &'a Value, field: &str) -> Option<&'a str> {
    item.get(field).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_are_read_strictly_and_refusals_name_the_field() {
        let message = Message::new(
            "https://example.org/t/1.0/m",
            json!({ "s": "x", "b": true, "n": 1, "l": ["a", 2], "z": null }),
        );
        let body = Body::of(&message, "https://example.org/t/1.0/m", "m").unwrap();
        assert_eq!(body.str("s").unwrap(), "x");
        assert_eq!(body.opt_bool("b").unwrap(), Some(true));
        assert_eq!(body.opt_str("z").unwrap(), None, "null counts as absent");
        assert_eq!(
            body.str("n").unwrap_err().to_string(),
            "m: n is not a string"
        );
        assert_eq!(body.str("z").unwrap_err().to_string(), "m has no z");
        assert_eq!(
            body.opt_bool("s").unwrap_err().to_string(),
            "m: s is not true or false"
        );
        assert_eq!(
            body.list("s").unwrap_err().to_string(),
            "m: s is not a list"
        );
        assert_eq!(
            body.strings("l", 5, |n| format!("{n} items"))
                .unwrap_err()
                .to_string(),
            "m: each of l is a string"
        );
        assert_eq!(
            body.strings("l", 1, |n| format!("{n} items, over 1"))
                .unwrap_err()
                .to_string(),
            "m: 2 items, over 1"
        );
        assert!(matches!(
            Body::of(&message, "https://example.org/t/1.0/other", "other"),
            Err(ProtocolError::WrongType {
                expected: "other",
                ..
            })
        ));
        let mut text_body = message.clone();
        text_body.body = json!("hello");
        assert_eq!(
            Body::of(&text_body, "https://example.org/t/1.0/m", "m")
                .err()
                .unwrap()
                .to_string(),
            "m: its body is not a JSON object"
        );
        let mut absent = message;
        absent.body = Value::Null;
        assert!(Body::of(&absent, "https://example.org/t/1.0/m", "m")
            .unwrap()
            .opt_str("s")
            .unwrap()
            .is_none());
    }
}

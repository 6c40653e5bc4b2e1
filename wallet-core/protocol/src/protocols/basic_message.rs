//! Basic Message 2.0: a text from one party to another. Lanyard's wallet and agent do not act
//! on it; the tests and the load generator send it as the ordinary message a mediator carries.

use serde_json::json;

use super::{Body, ProtocolError};
use crate::didcomm::Message;

/// The Basic Message 2.0 protocol.
pub const PIURI: &str = "https://didcomm.org/basicmessage/2.0";
/// The message type of a basic message.
pub const MESSAGE: &str = "https://didcomm.org/basicmessage/2.0/message";

/// A basic message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicMessage {
    /// The text.
    pub content: String,
}

/// The basic `message` of `message`.
pub fn basic_message(message: &BasicMessage) -> Message {
    Message::new(MESSAGE, json!({ "content": message.content }))
}

/// Reads a basic `message`: `content` is a string.
pub fn parse_basic_message(message: &Message) -> Result<BasicMessage, ProtocolError> {
    let body = Body::of(message, MESSAGE, "basic message")?;
    Ok(BasicMessage {
        content: body.str("content")?.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_basic_message_round_trips_and_needs_content() {
        let hello = BasicMessage {
            content: "hello".into(),
        };
        let wire: Message = serde_json::from_str(&basic_message(&hello).to_json()).unwrap();
        assert_eq!(parse_basic_message(&wire).unwrap(), hello);
        assert_eq!(
            parse_basic_message(&Message::new(MESSAGE, json!({ "content": 1 })))
                .unwrap_err()
                .to_string(),
            "basic message: content is not a string"
        );
    }
}

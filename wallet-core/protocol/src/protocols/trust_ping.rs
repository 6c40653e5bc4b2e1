//! Trust Ping 2.0: a `ping` proves a connection works (and, answering an invitation, makes
//! it); the `ping-response` answers it in its thread unless the ping said
//! `response_requested: false`. [`reply_to`] is the one way a ping is answered.

use serde_json::json;

use super::{Body, ProtocolError};
use crate::didcomm::Message;

/// The Trust Ping 2.0 protocol.
pub const PIURI: &str = "https://didcomm.org/trust-ping/2.0";
/// The message type of a ping.
pub const PING: &str = "https://didcomm.org/trust-ping/2.0/ping";
/// The message type of the answer to a ping.
pub const PING_RESPONSE: &str = "https://didcomm.org/trust-ping/2.0/ping-response";

/// A ping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ping {
    /// Whether the sender wants a `ping-response` (true when the ping does not say).
    pub response_requested: bool,
}

/// The `ping` message of `ping`.
pub fn ping_message(ping: &Ping) -> Message {
    Message::new(
        PING,
        json!({ "response_requested": ping.response_requested }),
    )
}

/// Reads a `ping`: `response_requested`, when present, is true or false.
pub fn parse_ping(message: &Message) -> Result<Ping, ProtocolError> {
    let body = Body::of(message, PING, "ping")?;
    Ok(Ping {
        response_requested: body.opt_bool("response_requested")?.unwrap_or(true),
    })
}

/// A `ping-response` (its body is empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PingResponse;

/// The `ping-response` message, unthreaded: [`reply_to`] threads it on its ping.
pub fn ping_response_message(_: &PingResponse) -> Message {
    Message::new(PING_RESPONSE, json!({}))
}

/// Reads a `ping-response`, which must answer a thread.
pub fn parse_ping_response(message: &Message) -> Result<PingResponse, ProtocolError> {
    Body::of(message, PING_RESPONSE, "ping-response")?;
    super::thid_of(message, "ping-response")?;
    Ok(PingResponse)
}

/// What answers `ping`: its `ping-response` in the ping's thread, or `None` when it asked for
/// none. Refused when `ping` is not a well-formed ping.
pub fn reply_to(ping: &Message) -> Result<Option<Message>, ProtocolError> {
    Ok(parse_ping(ping)?
        .response_requested
        .then(|| ping_response_message(&PingResponse).in_reply_to(ping)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ping_is_answered_in_its_thread_unless_it_asks_for_no_answer() {
        let ping = ping_message(&Ping {
            response_requested: true,
        })
        .pthid("invitation-1");
        let wire: Message = serde_json::from_str(&ping.to_json()).unwrap();
        assert!(parse_ping(&wire).unwrap().response_requested);
        let response = reply_to(&wire).unwrap().unwrap();
        assert_eq!(response.type_, PING_RESPONSE);
        assert_eq!(response.thid.as_deref(), Some(ping.id.as_str()));
        assert_eq!(response.pthid.as_deref(), Some("invitation-1"));
        assert_eq!(parse_ping_response(&response).unwrap(), PingResponse);

        let quiet = ping_message(&Ping {
            response_requested: false,
        });
        assert_eq!(reply_to(&quiet).unwrap(), None);
        let unsaid = Message::new(PING, json!({}));
        assert!(parse_ping(&unsaid).unwrap().response_requested);
    }

    #[test]
    fn malformed_pings_are_refused_by_what_is_wrong() {
        let odd = Message::new(PING, json!({ "response_requested": "yes" }));
        assert_eq!(
            reply_to(&odd).unwrap_err().to_string(),
            "ping: response_requested is not true or false"
        );
        let response = ping_response_message(&PingResponse);
        assert_eq!(
            parse_ping_response(&response).unwrap_err().to_string(),
            "ping-response has no thid (the thread it answers)"
        );
        assert!(matches!(
            parse_ping(&response),
            Err(ProtocolError::WrongType {
                expected: "ping",
                ..
            })
        ));
    }
}

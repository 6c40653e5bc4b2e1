//! The application protocols wallet and agent speak over DIDComm, as message builders and
//! strict parsers shared by both sides (one implementation of each wire format):
//! Issue Credential 3.0, Present Proof 3.0 and Lanyard's credential deletion notice. Pure: no I/O, no state.

pub mod deletion;
pub mod issue_credential;
pub mod present_proof;

use serde_json::Value;

use crate::didcomm::Message;

/// A Report Problem 2.0 message in thread `thid`.
pub fn problem_report(thid: &str, code: &str, comment: &str) -> Message {
    Message::new(
        crate::didcomm::PROBLEM_REPORT_TYPE,
        serde_json::json!({ "code": code, "comment": comment }),
    )
    .thid(thid)
}

/// A protocol message that does not have the shape its type promises.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("{type_} is not a {expected} message")]
    WrongType {
        type_: String,
        expected: &'static str,
    },
    #[error("{message} has no {what}")]
    Missing {
        message: &'static str,
        what: &'static str,
    },
    #[error("{message}: {problem}")]
    Invalid {
        message: &'static str,
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

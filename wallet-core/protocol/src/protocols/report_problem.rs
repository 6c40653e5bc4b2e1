//! Report Problem 2.0 (DIDComm Messaging v2.1 §"Problem Reports"): a `problem-report` with a
//! `code` (`e.p.msg.bad-request`, `w.p.msg.queue-full`...: sorter, scope, descriptors), a
//! human `comment` whose `{1}`, `{2}`... placeholders the `args` fill, threaded on the message
//! that caused it.

use serde_json::{json, Value};

use super::{Body, ProtocolError};
use crate::didcomm::Message;

/// The Report Problem 2.0 protocol.
pub const PIURI: &str = "https://didcomm.org/report-problem/2.0";
/// The message type of a problem report.
pub const PROBLEM_REPORT: &str = "https://didcomm.org/report-problem/2.0/problem-report";

/// Most `args` a problem report may carry.
pub const MAX_ARGS: usize = 32;

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProblemReport {
    /// The problem code, e.g. `e.p.req.declined`.
    pub code: String,
    /// What happened, for people; `{1}`... name the `args`.
    pub comment: Option<String>,
    /// Values for the comment's placeholders.
    pub args: Vec<String>,
}

impl ProblemReport {
    /// A report of `code` with `comment` and no args.
    pub fn new(code: impl Into<String>, comment: impl Into<String>) -> ProblemReport {
        ProblemReport {
            code: code.into(),
            comment: Some(comment.into()),
            args: Vec::new(),
        }
    }
}

/// The `problem-report` message of `report`; thread it on what it answers (e.g. with
/// [`Message::thid`] or [`Message::in_reply_to`]).
pub fn problem_report_message(report: &ProblemReport) -> Message {
    let mut body = json!({ "code": report.code });
    if let Some(comment) = &report.comment {
        body["comment"] = json!(comment);
    }
    if !report.args.is_empty() {
        body["args"] = json!(report.args);
    }
    Message::new(PROBLEM_REPORT, body)
}

/// Reads a `problem-report`: a non-empty `code`, an optional `comment`, at most [`MAX_ARGS`]
/// string `args`.
pub fn parse_problem_report(message: &Message) -> Result<ProblemReport, ProtocolError> {
    let body = Body::of(message, PROBLEM_REPORT, "problem-report")?;
    let code = body.str("code")?;
    if code.is_empty() {
        return Err(body.invalid("its code is empty"));
    }
    let args = match body.opt_list("args")? {
        None => Vec::new(),
        Some(_) => body.strings("args", MAX_ARGS, |n| {
            format!("it carries {n} args, over the limit of {MAX_ARGS}")
        })?,
    };
    Ok(ProblemReport {
        code: code.to_string(),
        comment: body.opt_str("comment")?.map(str::to_string),
        args,
    })
}

/// The `comment` of what claims to be a problem report, whatever else it holds: for showing
/// a peer's report to a person even when it is malformed.
pub fn comment_of(message: &Message) -> Option<&str> {
    message.body.get("comment").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_report_round_trips_in_its_thread() {
        let report = ProblemReport {
            code: "e.p.msg.bad-request".into(),
            comment: Some("{1} is not a DID".into()),
            args: vec!["mailto:x".into()],
        };
        let message = problem_report_message(&report).thid("t-1");
        let wire: Message = serde_json::from_str(&message.to_json()).unwrap();
        assert_eq!(parse_problem_report(&wire).unwrap(), report);
        assert_eq!(wire.thid.as_deref(), Some("t-1"));
        let plain = problem_report_message(&ProblemReport::new("e.p.req.declined", "no"));
        assert_eq!(
            plain.body,
            json!({ "code": "e.p.req.declined", "comment": "no" })
        );
        assert_eq!(comment_of(&plain), Some("no"));
    }

    #[test]
    fn malformed_problem_reports_are_refused_by_what_is_wrong() {
        let refusal = |body: Value| {
            parse_problem_report(&Message::new(PROBLEM_REPORT, body))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(refusal(json!({})), "problem-report has no code");
        assert_eq!(
            refusal(json!({ "code": "" })),
            "problem-report: its code is empty"
        );
        assert_eq!(
            refusal(json!({ "code": "e.p", "comment": 3 })),
            "problem-report: comment is not a string"
        );
        assert_eq!(
            refusal(json!({ "code": "e.p", "args": [1] })),
            "problem-report: each of args is a string"
        );
        assert_eq!(
            refusal(json!({ "code": "e.p", "args": vec!["a"; MAX_ARGS + 1] })),
            "problem-report: it carries 33 args, over the limit of 32"
        );
    }
}

//! Discover Features 2.0: `queries` ask which features (protocols, goal codes...) a party
//! supports, by `match` patterns with `*` wildcards; `disclose` answers. A stranger writes
//! the queries, so what they may ask is capped: at most [`MAX_FEATURE_QUERIES`] queries, each
//! pattern at most [`MAX_MATCH_BYTES`] long with at most [`MAX_MATCH_STARS`] wildcards, and
//! [`matches()`] takes time linear in pattern × text, without recursion.

use serde_json::{json, Value};

use super::{item_str, Body, ProtocolError};
use crate::didcomm::Message;

/// The Discover Features 2.0 protocol.
pub const PIURI: &str = "https://didcomm.org/discover-features/2.0";
/// The message type of a query.
pub const QUERIES: &str = "https://didcomm.org/discover-features/2.0/queries";
/// The message type of the answer.
pub const DISCLOSE: &str = "https://didcomm.org/discover-features/2.0/disclose";

/// Discover Features queries one message may carry.
pub const MAX_FEATURE_QUERIES: usize = 20;
/// Longest `match` pattern of a query, in bytes.
pub const MAX_MATCH_BYTES: usize = 256;
/// Most `*` wildcards in one `match` pattern.
pub const MAX_MATCH_STARS: usize = 64;
/// Most disclosures one `disclose` may carry.
pub const MAX_DISCLOSURES: usize = 1000;

/// The feature type of protocols (their PIURIs).
pub const PROTOCOL: &str = "protocol";

/// One query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// What kind of feature: [`PROTOCOL`], `goal-code`, `header`...
    pub feature_type: String,
    /// The `match` pattern (`*` matches any run of characters); empty when the query has none.
    pub pattern: String,
}

/// A `queries` message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Queries {
    /// The queries, in order.
    pub queries: Vec<Query>,
}

/// The `queries` message.
pub fn queries_message(queries: &Queries) -> Message {
    let queries: Vec<Value> = queries
        .queries
        .iter()
        .map(|q| json!({ "feature-type": q.feature_type, "match": q.pattern }))
        .collect();
    Message::new(QUERIES, json!({ "queries": queries }))
}

/// Reads a `queries` message: `queries` (absent means none) is a list of at most
/// [`MAX_FEATURE_QUERIES`]; each pattern is at most [`MAX_MATCH_BYTES`] long with at most
/// [`MAX_MATCH_STARS`] wildcards. An entry without a string `feature-type` asks for nothing
/// and is left out.
pub fn parse_queries(message: &Message) -> Result<Queries, ProtocolError> {
    let body = Body::of(message, QUERIES, "discover-features queries")?;
    let items = body.opt_list("queries")?.unwrap_or_default();
    let items = body.within(items, MAX_FEATURE_QUERIES, |n| {
        format!("it carries {n} queries, over this mediator's limit of {MAX_FEATURE_QUERIES}")
    })?;
    let mut queries = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let Some(feature_type) = item_str(item, "feature-type") else {
            continue;
        };
        let pattern = match item.get("match") {
            None | Some(Value::Null) => "",
            Some(Value::String(pattern)) => pattern.as_str(),
            Some(_) => return Err(body.invalid(format!("query {n}: its match is not a string"))),
        };
        if pattern.len() > MAX_MATCH_BYTES {
            return Err(body.invalid(format!(
                "query {n}: its match is {} bytes, over this mediator's limit of \
                 {MAX_MATCH_BYTES}",
                pattern.len()
            )));
        }
        let stars = pattern.bytes().filter(|&b| b == b'*').count();
        if stars > MAX_MATCH_STARS {
            return Err(body.invalid(format!(
                "query {n}: its match has {stars} wildcards, over this mediator's limit of \
                 {MAX_MATCH_STARS}"
            )));
        }
        queries.push(Query {
            feature_type: feature_type.to_string(),
            pattern: pattern.to_string(),
        });
    }
    Ok(Queries { queries })
}

/// One disclosed feature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disclosure {
    /// What kind of feature.
    pub feature_type: String,
    /// Which (for a protocol, its PIURI).
    pub id: String,
    /// The roles played in it, when said.
    pub roles: Vec<String>,
}

/// A `disclose` message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Disclose {
    /// The features disclosed, in order.
    pub disclosures: Vec<Disclosure>,
}

/// The `disclose` message, unthreaded (thread it with [`Message::in_reply_to`]).
pub fn disclose_message(disclose: &Disclose) -> Message {
    let disclosures: Vec<Value> = disclose
        .disclosures
        .iter()
        .map(|d| {
            let mut disclosure = json!({ "feature-type": d.feature_type, "id": d.id });
            if !d.roles.is_empty() {
                disclosure["roles"] = json!(d.roles);
            }
            disclosure
        })
        .collect();
    Message::new(DISCLOSE, json!({ "disclosures": disclosures }))
}

/// Reads a `disclose`: at most [`MAX_DISCLOSURES`] entries, each with a string
/// `feature-type` and `id` (and `roles`, when present, a list of strings).
pub fn parse_disclose(message: &Message) -> Result<Disclose, ProtocolError> {
    let body = Body::of(message, DISCLOSE, "disclose")?;
    let items = body.within(body.list("disclosures")?, MAX_DISCLOSURES, |n| {
        format!("it carries {n} disclosures, over the limit of {MAX_DISCLOSURES}")
    })?;
    let mut disclosures = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        let (Some(feature_type), Some(id)) = (item_str(item, "feature-type"), item_str(item, "id"))
        else {
            return Err(body.invalid(format!(
                "disclosure {n} needs a feature-type and an id, as strings"
            )));
        };
        let roles = match item.get("roles") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(roles)) => roles
                .iter()
                .map(|role| role.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| body.invalid(format!("disclosure {n}: a role is not a string")))?,
            Some(_) => return Err(body.invalid(format!("disclosure {n}: roles is not a list"))),
        };
        disclosures.push(Disclosure {
            feature_type: feature_type.to_string(),
            id: id.to_string(),
            roles,
        });
    }
    Ok(Disclose { disclosures })
}

/// The answer to `queries` from a party supporting `protocols` (PIURIs): for each
/// [`PROTOCOL`] query in order, every protocol its pattern [`matches()`]. Other feature types
/// are not disclosed.
pub fn disclose_protocols(queries: &Queries, protocols: &[&str]) -> Disclose {
    let disclosures = queries
        .queries
        .iter()
        .filter(|query| query.feature_type == PROTOCOL)
        .flat_map(|query| {
            protocols
                .iter()
                .filter(|protocol| matches(&query.pattern, protocol))
                .map(|protocol| Disclosure {
                    feature_type: PROTOCOL.to_string(),
                    id: protocol.to_string(),
                    roles: Vec::new(),
                })
        })
        .collect();
    Disclose { disclosures }
}

/// Whether `text` matches `pattern`: `*` matches any run of characters; everything else
/// matches itself. Iterative and greedy with one backtrack point (the last `*` seen):
/// O(pattern × text) at worst, no recursion. Bytes are compared, which is exact for UTF-8: a
/// literal's first byte never matches a continuation byte, so a match starts on a character
/// boundary.
pub fn matches(pattern: &str, text: &str) -> bool {
    let (pattern, text) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0, 0);
    // Where the pattern resumes after the last `*`, and the text position that `*` covers to.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                backtrack = Some((p, t));
            }
            Some(&c) if c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                // Let the last `*` take one more character, and try again from there.
                Some((resume, covered)) => {
                    backtrack = Some((resume, covered + 1));
                    p = resume;
                    t = covered + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::protocols::routing::PIURI as ROUTING;
    use crate::protocols::trust_ping::PIURI as PING;

    fn query(pattern: &str) -> Query {
        Query {
            feature_type: PROTOCOL.into(),
            pattern: pattern.into(),
        }
    }

    #[test]
    fn queries_and_disclosures_round_trip() {
        let queries = Queries {
            queries: vec![
                query("https://didcomm.org/*"),
                Query {
                    feature_type: "goal-code".into(),
                    pattern: "org.lanyard.*".into(),
                },
            ],
        };
        let wire: Message = serde_json::from_str(&queries_message(&queries).to_json()).unwrap();
        assert_eq!(parse_queries(&wire).unwrap(), queries);
        let disclose = Disclose {
            disclosures: vec![
                Disclosure {
                    feature_type: PROTOCOL.into(),
                    id: ROUTING.into(),
                    roles: vec![],
                },
                Disclosure {
                    feature_type: PROTOCOL.into(),
                    id: PING.into(),
                    roles: vec!["responder".into()],
                },
            ],
        };
        let message = disclose_message(&disclose);
        assert_eq!(
            message.body["disclosures"][0],
            json!({ "feature-type": "protocol", "id": ROUTING })
        );
        assert_eq!(parse_disclose(&message).unwrap(), disclose);
    }

    #[test]
    fn protocol_queries_are_answered_by_pattern_in_order() {
        let queries = Queries {
            queries: vec![
                query("*/trust-*"),
                Query {
                    feature_type: "goal-code".into(),
                    pattern: "*".into(),
                },
                query("https://didcomm.org/*"),
                query(""),
            ],
        };
        let ids: Vec<String> = disclose_protocols(&queries, &[ROUTING, PING])
            .disclosures
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, [PING, ROUTING, PING]);
        let none = Message::new(QUERIES, json!({}));
        assert_eq!(parse_queries(&none).unwrap(), Queries::default());
        let odd = Message::new(
            QUERIES,
            json!({ "queries": [7, { "match": "*" }, { "feature-type": "protocol" }] }),
        );
        assert_eq!(parse_queries(&odd).unwrap().queries, vec![query("")]);
    }

    #[test]
    fn queries_over_a_cap_are_refused_naming_it() {
        let refusal = |queries: Value| {
            parse_queries(&Message::new(QUERIES, json!({ "queries": queries })))
                .unwrap_err()
                .to_string()
        };
        let many: Vec<Value> = (0..=MAX_FEATURE_QUERIES)
            .map(|n| json!({ "feature-type": "protocol", "match": format!("https://example.org/{n}/*") }))
            .collect();
        assert!(
            refusal(json!(many)).contains("carries 21 queries, over this mediator's limit of 20")
        );
        assert!(
            refusal(json!([{ "feature-type": "protocol", "match": "*".repeat(100_000) }]))
                .contains("query 0: its match is 100000 bytes, over this mediator's limit of 256")
        );
        assert!(refusal(json!([{ "feature-type": "header" }, { "feature-type": "protocol", "match": "*".repeat(65) }]))
            .contains("query 1: its match has 65 wildcards, over this mediator's limit of 64"));
        assert!(refusal(json!([{ "feature-type": "protocol", "match": 3 }]))
            .contains("match is not a string"));
        assert!(refusal(json!("all")).contains("queries is not a list"));
        assert!(parse_disclose(&Message::new(
            DISCLOSE,
            json!({ "disclosures": [{ "id": ROUTING }] })
        ))
        .unwrap_err()
        .to_string()
        .contains("disclosure 0 needs a feature-type and an id"));
    }

    #[test]
    fn wildcards_match_like_discover_features_says() {
        assert!(matches("https://didcomm.org/*", ROUTING));
        assert!(matches("*", "anything"));
        assert!(matches(PING, PING));
        assert!(!matches("https://didcomm.org/tictactoe/*", ROUTING));
        assert!(matches("https://*/routing/*", ROUTING));
        assert!(matches("", ""));
        assert!(!matches("", "x"));
        assert!(matches("**", ""));
        assert!(matches("a*b*c", "aXbYbZc"));
        assert!(!matches("a*b*c", "aXbYbZ"));
        assert!(matches("*é*", "café au lait"));
        assert!(!matches("caf?", "café"));
    }

    #[test]
    fn wildcards_take_linear_time_on_hostile_patterns() {
        // The recursive matcher never returned on this; this one answers at once.
        let hostile = format!("{}!", "*".repeat(40));
        assert!(!matches(&hostile, PIURI));
        // Nor does a pattern far longer than any the parser takes overflow the stack.
        let huge = "*".repeat(100_000);
        assert!(matches(&huge, ROUTING));
        assert!(!matches(&format!("{huge}!"), &"a".repeat(1000)));
    }
}

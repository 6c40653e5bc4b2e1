//! Discover Features 2.0: the mediator's answer to `queries`, with bounded patterns.

use serde_json::{json, Value};

use super::{Refusal, PROTOCOLS};

/// Discover Features queries one message may carry.
pub const MAX_FEATURE_QUERIES: usize = 20;
/// Longest `match` pattern of a Discover Features query, in bytes.
pub const MAX_MATCH_BYTES: usize = 256;
/// Most `*` wildcards in one `match` pattern.
pub const MAX_MATCH_STARS: usize = 64;

/// Discover Features 2.0: answer `protocol` queries against [`PROTOCOLS`] (`*` wildcards).
/// At most [`MAX_FEATURE_QUERIES`] queries, each pattern at most [`MAX_MATCH_BYTES`] long with
/// at most [`MAX_MATCH_STARS`] wildcards; a message over a limit is refused, naming it.
pub(super) fn disclose(body: &Value) -> Result<Value, Refusal> {
    let queries = match body.get("queries") {
        None => &[][..],
        Some(Value::Array(queries)) => queries.as_slice(),
        Some(_) => {
            return Err(Refusal::BadRequest(
                "discover-features queries is not a list".into(),
            ))
        }
    };
    if queries.len() > MAX_FEATURE_QUERIES {
        return Err(Refusal::BadRequest(format!(
            "discover-features carries {} queries, over this mediator's limit of \
             {MAX_FEATURE_QUERIES}",
            queries.len()
        )));
    }
    let mut disclosures = Vec::new();
    for (n, query) in queries.iter().enumerate() {
        if query.get("feature-type").and_then(Value::as_str) != Some("protocol") {
            continue;
        }
        let pattern = query.get("match").and_then(Value::as_str).unwrap_or("");
        if pattern.len() > MAX_MATCH_BYTES {
            return Err(Refusal::BadRequest(format!(
                "discover-features query {n}: its match is {} bytes, over this mediator's \
                 limit of {MAX_MATCH_BYTES}",
                pattern.len()
            )));
        }
        let stars = pattern.bytes().filter(|&b| b == b'*').count();
        if stars > MAX_MATCH_STARS {
            return Err(Refusal::BadRequest(format!(
                "discover-features query {n}: its match has {stars} wildcards, over this \
                 mediator's limit of {MAX_MATCH_STARS}"
            )));
        }
        for protocol in PROTOCOLS {
            if wildcard(pattern, protocol) {
                disclosures.push(json!({ "feature-type": "protocol", "id": protocol }));
            }
        }
    }
    Ok(json!({ "disclosures": disclosures }))
}

/// `*` matches any run of characters; everything else matches itself. Iterative and greedy
/// with one backtrack point (the last `*` seen): O(pattern × text) at worst, no recursion.
/// Bytes are compared, which is exact for UTF-8: a literal's first byte never matches a
/// continuation byte, so a match starts on a character boundary.
fn wildcard(pattern: &str, text: &str) -> bool {
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
    use super::wildcard;

    #[test]
    fn wildcards_match_like_discover_features_says() {
        assert!(wildcard(
            "https://didcomm.org/*",
            "https://didcomm.org/routing/2.0"
        ));
        assert!(wildcard("*", "anything"));
        assert!(wildcard(
            "https://didcomm.org/trust-ping/2.0",
            "https://didcomm.org/trust-ping/2.0"
        ));
        assert!(!wildcard(
            "https://didcomm.org/tictactoe/*",
            "https://didcomm.org/routing/2.0"
        ));
        assert!(wildcard(
            "https://*/routing/*",
            "https://didcomm.org/routing/2.0"
        ));
        assert!(wildcard("", ""));
        assert!(!wildcard("", "x"));
        assert!(wildcard("**", ""));
        assert!(wildcard("a*b*c", "aXbYbZc"));
        assert!(!wildcard("a*b*c", "aXbYbZ"));
        assert!(wildcard("*é*", "café au lait"));
        assert!(!wildcard("caf?", "café"));
    }

    #[test]
    fn wildcards_take_linear_time_on_hostile_patterns() {
        // The recursive matcher never returned on this; this one answers at once.
        let hostile = format!("{}!", "*".repeat(40));
        assert!(!wildcard(
            &hostile,
            "https://didcomm.org/discover-features/2.0"
        ));
        // Nor does a pattern far longer than any the endpoint takes overflow the stack.
        let huge = "*".repeat(100_000);
        assert!(wildcard(&huge, "https://didcomm.org/routing/2.0"));
        assert!(!wildcard(&format!("{huge}!"), &"a".repeat(1000)));
    }
}

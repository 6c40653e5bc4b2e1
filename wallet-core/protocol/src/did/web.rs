//! did:web (W3C CCG did:web Method Specification §3.2): the DID ↔ URL mapping and resolution
//! over HTTP. `did:web:example.com:orgs:a` is served at `https://example.com/orgs/a/did.json`
//! (`/.well-known/did.json` when there is no path); a port is written `%3A`. For local
//! development the loopback hosts `localhost`, `127.0.0.1` and `[::1]` map to `http://`, as
//! browsers treat them as secure contexts; every other host needs HTTPS. Whether a loopback
//! (or any non-public) host may be fetched at all is the [`HttpClient`]'s policy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{DidDocument, DidError, DidResolver, Resolver};
use crate::net::{HttpClient, Request};

/// Largest DID document fetched.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// How long a fetched document is trusted before it is fetched again.
const TTL: Duration = Duration::from_secs(300);
/// Fetch times remembered before stale ones are dropped.
const MAX_FETCHED: usize = 4096;

fn is_loopback(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with('[') {
            name
        } else {
            host
        }
    });
    matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

/// The did:web DID served at `<base>/did.json` (or `/.well-known/did.json` for a bare host).
pub fn did_web_from_url(base: &str) -> Result<String, DidError> {
    let bad = |why: &str| DidError::NotADid(format!("{base}: {why}"));
    let rest = base
        .strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"))
        .ok_or_else(|| bad("not an http(s) URL"))?;
    let mut segments = rest.trim_end_matches('/').split('/');
    let host = segments
        .next()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no host"))?;
    let mut did = format!("did:web:{}", host.replace(':', "%3A"));
    for segment in segments {
        if segment.is_empty() || segment.contains(':') || segment.contains('%') {
            return Err(bad(&format!(
                "{segment:?} cannot be a did:web path segment"
            )));
        }
        did.push(':');
        did.push_str(segment);
    }
    Ok(did)
}

/// The URL a did:web DID's document is fetched from.
pub fn did_web_document_url(did: &str) -> Result<String, DidError> {
    let bad = |why: &str| DidError::NotADid(format!("{did}: {why}"));
    let id = did
        .strip_prefix("did:web:")
        .ok_or_else(|| bad("not a did:web DID"))?;
    let mut parts = id.split(':');
    let host = parts
        .next()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no host"))?
        .replace("%3A", ":")
        .replace("%3a", ":");
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    {
        return Err(bad("the host has characters a host name cannot have"));
    }
    let path: Vec<&str> = parts.collect();
    if path
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == ".." || p.contains(['/', '?', '#', '%']))
    {
        return Err(bad("a path segment is empty or not a plain name"));
    }
    let scheme = if is_loopback(&host) { "http" } else { "https" };
    Ok(if path.is_empty() {
        format!("{scheme}://{host}/.well-known/did.json")
    } else {
        format!("{scheme}://{host}/{}/did.json", path.join("/"))
    })
}

/// Resolves did:key and did:peer:2 locally and did:web over HTTP through the hardened
/// [`HttpClient`] (so a DID naming a private or loopback host is refused unless its policy
/// allows it), caching documents (did:web ones for five minutes).
pub struct HttpResolver {
    local: Resolver,
    client: HttpClient,
    fetched: std::sync::Mutex<std::collections::HashMap<String, Instant>>,
}

impl HttpResolver {
    /// A resolver that fetches did:web documents with `client`.
    pub fn new(client: HttpClient) -> HttpResolver {
        HttpResolver {
            local: Resolver::default(),
            client,
            fetched: Default::default(),
        }
    }

    async fn fetch(&self, did: &str) -> Result<DidDocument, DidError> {
        let url = did_web_document_url(did)?;
        let failed = |why: String| DidError::NotFound(did.to_string(), why);
        let response = self
            .client
            .send(
                Request::get(&url)
                    .header("accept", "application/did+json, application/json")
                    .max_bytes(MAX_DOCUMENT_BYTES),
            )
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !response.is_success() {
            return Err(failed(format!("{url} answered {}", response.status)));
        }
        let doc: DidDocument = serde_json::from_slice(&response.body)
            .map_err(|e| failed(format!("{url} is not a DID document: {e}")))?;
        if doc.id != did {
            return Err(failed(format!("{url} is the document of {}", doc.id)));
        }
        Ok(doc)
    }
}

impl DidResolver for HttpResolver {
    fn resolve_known(&self, did: &str) -> Result<Arc<DidDocument>, DidError> {
        self.local.resolve_now(did)
    }

    async fn resolve(&self, did: &str) -> Result<Arc<DidDocument>, DidError> {
        if !did.starts_with("did:web:") {
            return self.local.resolve_now(did);
        }
        let fresh = self
            .fetched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(did)
            .is_some_and(|at| at.elapsed() < TTL);
        if fresh {
            if let Ok(doc) = self.local.resolve_now(did) {
                return Ok(doc);
            }
        }
        let doc = self.fetch(did).await?;
        self.local.insert(doc);
        let mut fetched = self.fetched.lock().unwrap_or_else(|p| p.into_inner());
        if fetched.len() >= MAX_FETCHED {
            // Stale entries would be fetched again anyway.
            fetched.retain(|_, at| at.elapsed() < TTL);
            if fetched.len() >= MAX_FETCHED {
                // Forgetting only means fetching again.
                fetched.clear();
            }
        }
        fetched.insert(did.to_string(), Instant::now());
        drop(fetched);
        self.local.resolve_now(did)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dids_map_to_urls_as_the_method_says() {
        // The did:web specification's examples.
        assert_eq!(
            did_web_document_url("did:web:w3c-ccg.github.io").unwrap(),
            "https://w3c-ccg.github.io/.well-known/did.json"
        );
        assert_eq!(
            did_web_document_url("did:web:w3c-ccg.github.io:user:alice").unwrap(),
            "https://w3c-ccg.github.io/user/alice/did.json"
        );
        assert_eq!(
            did_web_document_url("did:web:example.com%3A3000:user:alice").unwrap(),
            "https://example.com:3000/user/alice/did.json"
        );
        assert_eq!(
            did_web_document_url("did:web:127.0.0.1%3A8080:orgs:a1").unwrap(),
            "http://127.0.0.1:8080/orgs/a1/did.json"
        );
        assert_eq!(
            did_web_from_url("http://127.0.0.1:8080/orgs/a1").unwrap(),
            "did:web:127.0.0.1%3A8080:orgs:a1"
        );
        assert_eq!(
            did_web_from_url("https://example.com/").unwrap(),
            "did:web:example.com"
        );
        for bad in [
            "did:key:z6Mk",
            "did:web:",
            "did:web:example.com:..:etc",
            "did:web:example.com::a",
            "did:web:exa mple.com",
            "did:web:example.com:a%2Fb",
        ] {
            assert!(did_web_document_url(bad).is_err(), "{bad}");
        }
        assert!(did_web_from_url("ftp://x").is_err());
        // Only loopback hosts get plain HTTP.
        assert!(did_web_document_url("did:web:localhost.evil.com")
            .unwrap()
            .starts_with("https://"));
    }
}

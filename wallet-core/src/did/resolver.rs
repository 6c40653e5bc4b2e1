//! DID resolution: the [`DidResolver`] trait, local resolution of did:key and did:peer:2, a
//! caching [`Resolver`], and a [`StaticResolver`] over known documents (tests, interop).
//! `did:web` (DID resolution over HTTPS) implements the same trait, or registers fetched
//! documents with [`Resolver::insert`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use super::{method_of, resolve_did_key, resolve_did_peer_2, DidDocument, DidError};

/// Resolves a DID to its document.
pub trait DidResolver: Send + Sync {
    fn resolve(&self, did: &str)
        -> impl Future<Output = Result<Arc<DidDocument>, DidError>> + Send;
}

/// Resolves the methods that need no network: did:key and did:peer:2.
pub fn resolve_local(did: &str) -> Result<DidDocument, DidError> {
    match method_of(did)? {
        "key" => resolve_did_key(did),
        "peer" => resolve_did_peer_2(did),
        other => Err(DidError::UnsupportedMethod(other.to_string())),
    }
}

/// Bound on cached documents; when full the cache is emptied.
const CACHE_LIMIT: usize = 4096;

/// Resolves did:key and did:peer:2 locally and caches every document it returns, including
/// documents of other methods registered with [`Resolver::insert`].
#[derive(Debug, Default)]
pub struct Resolver {
    cache: RwLock<HashMap<String, Arc<DidDocument>>>,
}

impl Resolver {
    /// Registers a document resolved elsewhere (e.g. a did:web fetched over HTTPS).
    pub fn insert(&self, doc: DidDocument) {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(doc.id.clone(), Arc::new(doc));
    }

    fn cached(&self, did: &str) -> Option<Arc<DidDocument>> {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(did)
            .cloned()
    }

    /// Synchronous resolution (no network methods).
    pub fn resolve_now(&self, did: &str) -> Result<Arc<DidDocument>, DidError> {
        if let Some(doc) = self.cached(did) {
            return Ok(doc);
        }
        let doc = resolve_local(did)?;
        self.insert(doc);
        self.cached(did)
            .ok_or_else(|| DidError::NotFound(did.to_string(), "evicted".into()))
    }
}

impl DidResolver for Resolver {
    async fn resolve(&self, did: &str) -> Result<Arc<DidDocument>, DidError> {
        self.resolve_now(did)
    }
}

impl<R: DidResolver> DidResolver for Arc<R> {
    fn resolve(
        &self,
        did: &str,
    ) -> impl Future<Output = Result<Arc<DidDocument>, DidError>> + Send {
        (**self).resolve(did)
    }
}

/// A fixed set of documents (e.g. `did:example` ones from a spec), falling back to local
/// resolution.
#[derive(Debug, Default)]
pub struct StaticResolver {
    docs: HashMap<String, Arc<DidDocument>>,
    local: Resolver,
}

impl StaticResolver {
    pub fn new(docs: Vec<DidDocument>) -> StaticResolver {
        StaticResolver {
            docs: docs
                .into_iter()
                .map(|d| (d.id.clone(), Arc::new(d)))
                .collect(),
            local: Resolver::default(),
        }
    }
}

impl DidResolver for StaticResolver {
    async fn resolve(&self, did: &str) -> Result<Arc<DidDocument>, DidError> {
        match self.docs.get(did) {
            Some(doc) => Ok(doc.clone()),
            None => self.local.resolve_now(did),
        }
    }
}

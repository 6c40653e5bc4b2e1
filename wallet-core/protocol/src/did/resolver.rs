//! DID resolution (DID Core 1.0 §7.1): the [`DidResolver`] trait, local resolution of did:key
//! and did:peer:2, a caching [`Resolver`], and a [`StaticResolver`] over known documents
//! (spec vectors, interop tests).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use super::{method_of, resolve_did_key, resolve_did_peer_2, shorten, DidDocument, DidError};

/// Resolves a DID (not a DID URL: strip the fragment with [`super::did_of`]) to its document.
pub trait DidResolver: Send + Sync {
    /// The document of `did`, or why it could not be had.
    fn resolve(&self, did: &str)
        -> impl Future<Output = Result<Arc<DidDocument>, DidError>> + Send;

    /// Resolves without any I/O: methods derived from the DID itself (did:key, did:peer:2)
    /// and documents already held. What would need the network is an error. Envelope code
    /// uses it for the DIDs a stranger lists, before anything proves who sent them.
    fn resolve_known(&self, did: &str) -> Result<Arc<DidDocument>, DidError> {
        resolve_local(did).map(Arc::new)
    }
}

/// Resolves the methods that need no network: did:key and did:peer:2. Any other method, or
/// another did:peer numalgo, is [`DidError::UnsupportedMethod`].
pub fn resolve_local(did: &str) -> Result<DidDocument, DidError> {
    match method_of(did)? {
        "key" => resolve_did_key(did),
        "peer" => match did
            .get("did:peer:".len()..)
            .and_then(|rest| rest.chars().next())
        {
            Some('2') => resolve_did_peer_2(did),
            Some(numalgo) => Err(DidError::UnsupportedMethod(format!("peer:{numalgo}"))),
            None => Err(DidError::NotADid(shorten(did))),
        },
        other => Err(DidError::UnsupportedMethod(other.to_string())),
    }
}

/// How many documents a [`Resolver`] keeps.
const CACHE_LIMIT: usize = 4096;
/// How many bytes of documents (as JSON) a [`Resolver`] keeps. A DID costs a stranger nothing
/// to make up, and a did:peer:2 of [`super::MAX_DID_LEN`] names its DID again in each of its
/// hundred-odd keys (a document of over a megabyte), so the count alone does not bound memory.
const CACHE_BYTES: usize = 32 << 20;

#[derive(Debug)]
struct Cached {
    doc: Arc<DidDocument>,
    /// Registered with [`Resolver::insert`]: cannot be derived again from the DID alone.
    registered: bool,
    /// The document's size as JSON, a measure of the memory it holds.
    bytes: usize,
}

#[derive(Debug, Default)]
struct Cache {
    docs: HashMap<String, Cached>,
    /// The sum of the documents' `bytes`.
    bytes: usize,
}

impl Cache {
    fn remove(&mut self, did: &str) -> Option<Cached> {
        let entry = self.docs.remove(did)?;
        self.bytes = self.bytes.saturating_sub(entry.bytes);
        Some(entry)
    }

    fn retain_registered(&mut self) {
        self.docs.retain(|_, entry| entry.registered);
        self.bytes = self.docs.values().map(|entry| entry.bytes).sum();
    }

    fn clear(&mut self) {
        self.docs.clear();
        self.bytes = 0;
    }

    fn full(&self, adding: usize) -> bool {
        self.docs.len() >= CACHE_LIMIT || self.bytes + adding > CACHE_BYTES
    }
}

/// The length of `doc` as JSON, counted without writing it out.
fn json_size(doc: &DidDocument) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, doc) {
        Ok(()) => count.0,
        Err(_) => CACHE_BYTES,
    }
}

/// Resolves did:key and did:peer:2 locally and keeps up to 4096 documents, so
/// the envelope code decodes each peer's keys once.
///
/// Documents of other methods are registered with [`Resolver::insert`]; that is how
/// [`super::HttpResolver`] keeps the did:web documents it fetched.
///
/// Eviction is simple: when the cache is full (4096 documents, or 32 MiB of them as JSON),
/// every derived (did:key, did:peer:2) document is dropped, since any of them can be derived
/// again; registered ones stay unless they alone fill the cache, in which case it starts over
/// empty.
#[derive(Debug, Default)]
pub struct Resolver {
    cache: RwLock<Cache>,
}

impl Resolver {
    /// Registers a document resolved elsewhere (e.g. a did:web fetched over HTTPS), under its
    /// `id`, replacing any document cached for that DID.
    pub fn insert(&self, doc: DidDocument) {
        self.store(doc, true);
    }

    /// Forgets the document cached or registered for `did`, returning it.
    pub fn remove(&self, did: &str) -> Option<Arc<DidDocument>> {
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        cache.remove(did).map(|entry| entry.doc)
    }

    /// How many documents are cached or registered.
    pub fn len(&self) -> usize {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .docs
            .len()
    }

    /// Whether no document is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn store(&self, doc: DidDocument, registered: bool) -> Arc<DidDocument> {
        let doc = Arc::new(doc);
        let bytes = json_size(&doc);
        // A poisoned lock only means another thread panicked mid-insert; the map is intact.
        let mut cache = self.cache.write().unwrap_or_else(|p| p.into_inner());
        cache.remove(&doc.id);
        if cache.full(bytes) {
            cache.retain_registered();
            if cache.full(bytes) {
                cache.clear();
            }
        }
        cache.bytes += bytes;
        cache.docs.insert(
            doc.id.clone(),
            Cached {
                doc: doc.clone(),
                registered,
                bytes,
            },
        );
        doc
    }

    fn cached(&self, did: &str) -> Option<Arc<DidDocument>> {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .docs
            .get(did)
            .map(|entry| entry.doc.clone())
    }

    /// Resolves without waiting: a registered or cached document, else did:key or
    /// did:peer:2 derived locally (and cached).
    pub fn resolve_now(&self, did: &str) -> Result<Arc<DidDocument>, DidError> {
        if let Some(doc) = self.cached(did) {
            return Ok(doc);
        }
        Ok(self.store(resolve_local(did)?, false))
    }
}

impl DidResolver for Resolver {
    async fn resolve(&self, did: &str) -> Result<Arc<DidDocument>, DidError> {
        self.resolve_now(did)
    }

    fn resolve_known(&self, did: &str) -> Result<Arc<DidDocument>, DidError> {
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

    fn resolve_known(&self, did: &str) -> Result<Arc<DidDocument>, DidError> {
        (**self).resolve_known(did)
    }
}

/// A fixed set of documents (e.g. the `did:example` ones of a spec), falling back to local
/// resolution for did:key and did:peer:2.
#[derive(Debug, Default)]
pub struct StaticResolver {
    docs: HashMap<String, Arc<DidDocument>>,
    local: Resolver,
}

impl StaticResolver {
    /// A resolver of `docs` (by their ids), and of did:key and did:peer:2 by derivation.
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
        self.resolve_known(did)
    }

    fn resolve_known(&self, did: &str) -> Result<Arc<DidDocument>, DidError> {
        match self.docs.get(did) {
            Some(doc) => Ok(doc.clone()),
            None => self.local.resolve_now(did),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::did::{did_key, did_peer_2, PeerDidSpec};
    use crate::keys::PublicKey;

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn local_methods_resolve_and_others_are_named() {
        let key = did_key(&PublicKey::x25519([5; 32]));
        assert_eq!(resolve_local(&key).map(|d| d.id), Ok(key.clone()));
        let peer = did_peer_2(&PeerDidSpec {
            key_agreement: vec![PublicKey::x25519([5; 32])],
            ..PeerDidSpec::default()
        });
        assert_eq!(resolve_local(&peer).map(|d| d.id), Ok(peer));
        for (did, method) in [
            ("did:web:example.com", "web"),
            ("did:peer:4zQmXyz", "peer:4"),
            ("did:peer:0z6Mk", "peer:0"),
        ] {
            assert_eq!(
                resolve_local(did).map(|d| d.id),
                Err(DidError::UnsupportedMethod(method.to_string())),
                "{did}"
            );
        }
        assert_eq!(
            resolve_local("did:peer:.x").map(|d| d.id),
            Err(DidError::UnsupportedMethod("peer:.".into()))
        );
        assert!(matches!(resolve_local(""), Err(DidError::NotADid(_))));
    }

    #[test]
    fn the_resolver_caches_and_serves_registered_documents() {
        let resolver = Resolver::default();
        let key = did_key(&PublicKey::x25519([6; 32]));
        let first = block_on(resolver.resolve(&key)).expect("did:key resolves");
        let second = block_on(resolver.resolve(&key)).expect("did:key resolves");
        assert!(Arc::ptr_eq(&first, &second), "second resolution not cached");
        assert_eq!(
            block_on(resolver.resolve("did:web:example.com")).map(|d| d.id.clone()),
            Err(DidError::UnsupportedMethod("web".into()))
        );
        resolver.insert(DidDocument::new("did:web:example.com"));
        assert_eq!(
            block_on(resolver.resolve("did:web:example.com")).map(|d| d.id.clone()),
            Ok("did:web:example.com".to_string()),
            "registered document not found"
        );
        assert!(resolver.remove("did:web:example.com").is_some());
        assert!(resolver.resolve_now("did:web:example.com").is_err());
    }

    #[test]
    fn a_full_cache_drops_derived_documents_first() {
        let resolver = Resolver::default();
        resolver.insert(DidDocument::new("did:web:kept.example"));
        for i in 0..CACHE_LIMIT {
            let mut bytes = [0u8; 32];
            bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
            resolver
                .resolve_now(&did_key(&PublicKey::x25519(bytes)))
                .expect("did:key resolves");
        }
        assert!(
            resolver.len() <= CACHE_LIMIT,
            "cache grew to {}",
            resolver.len()
        );
        assert!(
            resolver.resolve_now("did:web:kept.example").is_ok(),
            "the registered document was evicted"
        );
    }

    #[test]
    fn made_up_peer_dids_of_the_longest_kind_cannot_fill_memory() {
        // 150 keys make a did:peer:2 of about 7.5 KiB whose document (the DID again in each
        // key's controller) is over a megabyte of JSON.
        let resolver = Resolver::default();
        resolver.insert(DidDocument::new("did:web:kept.example"));
        let mut size = 0;
        for n in 0..64u8 {
            let key_agreement = (0..150u8)
                .map(|i| {
                    PublicKey::x25519([
                        n, i, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
                        20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30,
                    ])
                })
                .collect();
            let did = did_peer_2(&PeerDidSpec {
                key_agreement,
                ..PeerDidSpec::default()
            });
            assert!(did.len() <= crate::did::MAX_DID_LEN, "{}", did.len());
            let doc = resolver
                .resolve_now(&did)
                .expect("the long did:peer:2 resolves");
            assert_eq!(doc.key_agreement_keys().len(), 150);
            size = serde_json::to_vec(&*doc).expect("serialises").len();
        }
        assert!(size > 1 << 20, "a document of {size} bytes");
        let kept = resolver.len() - 1;
        assert!(
            kept * size <= CACHE_BYTES,
            "{kept} documents of {size} bytes kept, over {CACHE_BYTES}"
        );
        assert!(
            resolver.resolve_now("did:web:kept.example").is_ok(),
            "the registered document was evicted"
        );
    }

    #[test]
    fn the_static_resolver_prefers_its_documents_then_resolves_locally() {
        let resolver = StaticResolver::new(vec![DidDocument::new("did:example:alice")]);
        assert!(block_on(resolver.resolve("did:example:alice")).is_ok());
        let key = did_key(&PublicKey::x25519([7; 32]));
        assert!(block_on(resolver.resolve(&key)).is_ok());
        assert_eq!(
            block_on(resolver.resolve("did:example:bob")).map(|d| d.id.clone()),
            Err(DidError::UnsupportedMethod("example".into()))
        );
    }
}

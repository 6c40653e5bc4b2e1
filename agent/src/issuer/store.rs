//! The issuer side's durable state behind one small trait, [`IssuerStorage`]: named
//! collections of JSON records with atomic multi-record writes. Organisations, templates,
//! customers, issued credentials and verifications are typed layers over it (`issuer::*`), so
//! a shared PostgreSQL backend needs only a `(collection, key, value)` table to follow.
//! [`SledIssuerStorage`] is the embedded default; like the mediator's store, every write
//! returns only once it is on disk (group commit). It seals every value at rest (customers'
//! names, emails and phone numbers, credential values, everything) with the wallet store's
//! record sealing ([`lanyard_protocol::store::Sealer`], XChaCha20-Poly1305) under a data key kept
//! in the identity store; keys (collection and ids, no personal data) stay readable so that
//! prefix scans and ordering work.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use lanyard_protocol::store::Sealer;

use crate::group_commit::GroupCommit;
use crate::storage::StorageError;

/// One write of an atomic batch: a record to put, or a key to delete. `Debug` shows a put's
/// value only by its length (records hold personal data).
#[derive(Clone)]
pub enum Write {
    /// Stores `value` at `key`.
    Put {
        /// The collection.
        collection: &'static str,
        /// The key.
        key: String,
        /// The bytes stored.
        value: Vec<u8>,
    },
    /// Removes `key` (nothing when absent).
    Delete {
        /// The collection.
        collection: &'static str,
        /// The key.
        key: String,
    },
}

impl Write {
    /// A record as JSON.
    pub fn put<T: Serialize>(
        collection: &'static str,
        key: impl Into<String>,
        value: &T,
    ) -> Result<Write, StorageError> {
        Ok(Write::Put {
            collection,
            key: key.into(),
            value: serde_json::to_vec(value).map_err(|e| StorageError::Corrupt(e.to_string()))?,
        })
    }

    /// Removes `key` from `collection`.
    pub fn delete(collection: &'static str, key: impl Into<String>) -> Write {
        Write::Delete {
            collection,
            key: key.into(),
        }
    }
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Write::Put {
                collection,
                key,
                value,
            } => f
                .debug_struct("Put")
                .field("collection", collection)
                .field("key", key)
                .field("value", &format_args!("[redacted {} bytes]", value.len()))
                .finish(),
            Write::Delete { collection, key } => f
                .debug_struct("Delete")
                .field("collection", collection)
                .field("key", key)
                .finish(),
        }
    }
}

/// A condition an atomic batch checks before it writes anything. `Debug` shows an expected
/// value only by its length.
#[derive(Clone)]
pub enum Expect {
    /// The key must not exist yet.
    Absent {
        /// The collection.
        collection: &'static str,
        /// The key.
        key: String,
    },
    /// The key must hold exactly these bytes (optimistic concurrency on a record read before).
    Equals {
        /// The collection.
        collection: &'static str,
        /// The key.
        key: String,
        /// The bytes it must hold.
        value: Vec<u8>,
    },
}

impl std::fmt::Debug for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expect::Absent { collection, key } => f
                .debug_struct("Absent")
                .field("collection", collection)
                .field("key", key)
                .finish(),
            Expect::Equals {
                collection,
                key,
                value,
            } => f
                .debug_struct("Equals")
                .field("collection", collection)
                .field("key", key)
                .field("value", &format_args!("[redacted {} bytes]", value.len()))
                .finish(),
        }
    }
}

/// Why a batch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// An [`Expect`] did not hold; nothing was written.
    #[error("the record changed meanwhile")]
    Conflict,
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Collections of records with atomic, durable, conditional batches. Keys sort bytewise
/// within a collection.
pub trait IssuerStorage: Send + Sync + 'static {
    /// The record at `key`, if any.
    fn get(
        &self,
        collection: &'static str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StorageError>> + Send;
    /// Records whose key starts with `prefix`, in key order, skipping `skip`, at most `limit`.
    fn scan(
        &self,
        collection: &'static str,
        prefix: &str,
        skip: usize,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>, StorageError>> + Send;
    /// How many records have keys starting with `prefix`.
    fn count(
        &self,
        collection: &'static str,
        prefix: &str,
    ) -> impl Future<Output = Result<usize, StorageError>> + Send;
    /// Records whose key starts with `prefix` and sorts after `after` (from the first when
    /// None), in key order, at most `limit`: a page that costs `limit` reads however far into
    /// the collection it starts (unlike `skip`).
    fn scan_after(
        &self,
        collection: &'static str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>, StorageError>> + Send;
    /// Applies every write or none, after checking every expectation; durable on return.
    fn apply(
        &self,
        expect: Vec<Expect>,
        writes: Vec<Write>,
    ) -> impl Future<Output = Result<(), BatchError>> + Send;
}

/// Typed helpers over any [`IssuerStorage`].
pub trait IssuerStorageExt: IssuerStorage {
    /// The record at `key` read as JSON, if any.
    fn get_json<T: DeserializeOwned>(
        &self,
        collection: &'static str,
        key: &str,
    ) -> impl Future<Output = Result<Option<T>, StorageError>> + Send {
        async move {
            self.get(collection, key)
                .await?
                .map(|bytes| decode(collection, key, &bytes))
                .transpose()
        }
    }

    /// [`IssuerStorage::scan`] with each record read as JSON.
    fn scan_json<T: DeserializeOwned>(
        &self,
        collection: &'static str,
        prefix: &str,
        skip: usize,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<T>, StorageError>> + Send {
        async move {
            self.scan(collection, prefix, skip, limit)
                .await?
                .into_iter()
                .map(|(key, bytes)| decode(collection, &key, &bytes))
                .collect()
        }
    }

    /// Of the records under `prefix` (in key order) that `keep` accepts: those from the
    /// `skip`th on, at most `limit`, and how many it accepts in all. Reads a page of records
    /// at a time, so memory stays bounded however many there are.
    fn filter_json<T, F>(
        &self,
        collection: &'static str,
        prefix: &str,
        keep: F,
        skip: usize,
        limit: usize,
    ) -> impl Future<Output = Result<(Vec<T>, usize), StorageError>> + Send
    where
        T: DeserializeOwned + Send,
        F: Fn(&T) -> bool + Send,
    {
        const PAGE: usize = 256;
        async move {
            let (mut items, mut accepted) = (Vec::new(), 0);
            let mut last: Option<String> = None;
            loop {
                let page = self
                    .scan_after(collection, prefix, last.as_deref(), PAGE)
                    .await?;
                let read = page.len();
                for (key, bytes) in page {
                    let record: T = decode(collection, &key, &bytes)?;
                    last = Some(key);
                    if keep(&record) {
                        if accepted >= skip && items.len() < limit {
                            items.push(record);
                        }
                        accepted += 1;
                    }
                }
                if read < PAGE {
                    return Ok((items, accepted));
                }
            }
        }
    }
}

impl<S: IssuerStorage> IssuerStorageExt for S {}

/// One storage shared by several issuers (agents in one process, as tests run them).
impl<S: IssuerStorage> IssuerStorage for std::sync::Arc<S> {
    fn get(
        &self,
        collection: &'static str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StorageError>> + Send {
        (**self).get(collection, key)
    }

    fn scan(
        &self,
        collection: &'static str,
        prefix: &str,
        skip: usize,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>, StorageError>> + Send {
        (**self).scan(collection, prefix, skip, limit)
    }

    fn count(
        &self,
        collection: &'static str,
        prefix: &str,
    ) -> impl Future<Output = Result<usize, StorageError>> + Send {
        (**self).count(collection, prefix)
    }

    fn scan_after(
        &self,
        collection: &'static str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>, StorageError>> + Send {
        (**self).scan_after(collection, prefix, after, limit)
    }

    fn apply(
        &self,
        expect: Vec<Expect>,
        writes: Vec<Write>,
    ) -> impl Future<Output = Result<(), BatchError>> + Send {
        (**self).apply(expect, writes)
    }
}

fn decode<T: DeserializeOwned>(
    collection: &str,
    key: &str,
    bytes: &[u8],
) -> Result<T, StorageError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StorageError::Corrupt(format!("{collection}/{key}: {e}")))
}

/// The embedded sled backend: one tree, keys `collection \0 key`, values sealed with the
/// collection as the sealing's tree and the full key as its place (a value copied to another
/// key does not open).
pub struct SledIssuerStorage {
    tree: sled::Db,
    commit: GroupCommit,
    sealer: RecordSealer,
}

/// The sealing of every backend's values: [`Sealer`] with the collection as the sealing's
/// tree and `collection \0 key` as its place, so a value copied to another key or collection
/// does not open (and a record moved between backends opens the same).
pub(crate) struct RecordSealer {
    sealer: Sealer,
}

impl RecordSealer {
    /// A sealing under `data_key`.
    pub(crate) fn new(data_key: &[u8; 32]) -> RecordSealer {
        RecordSealer {
            sealer: Sealer::new(data_key),
        }
    }

    /// `value` sealed as the record at `key` of `collection`.
    pub(crate) fn seal(
        &self,
        collection: &str,
        key: &str,
        value: &[u8],
    ) -> Result<Vec<u8>, StorageError> {
        self.seal_at(collection, &full_key(collection, key), value)
    }

    /// `value` sealed as the record whose full key (`collection \0 key`) is `full`.
    fn seal_at(
        &self,
        collection: &str,
        full: &[u8],
        value: &[u8],
    ) -> Result<Vec<u8>, StorageError> {
        self.sealer
            .seal(collection, full, value)
            .map_err(|e| StorageError::Backend(e.to_string()))
    }

    /// The value stored sealed at `key` of `collection`, opened; `Corrupt` naming the record
    /// when it does not open there.
    pub(crate) fn open(
        &self,
        collection: &str,
        key: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, StorageError> {
        self.sealer
            .open(collection, &full_key(collection, key), sealed)
            .map(|value| value.to_vec())
            .map_err(|e| StorageError::Corrupt(format!("{collection}/{key}: {e}")))
    }
}

/// The sled tree recording the values' format, and its one entry.
const FORMAT_TREE: &str = "format";
const SEALED_V1: &[u8] = b"sealed-v1";

fn full_key(collection: &str, key: &str) -> Vec<u8> {
    let mut full = Vec::with_capacity(collection.len() + 1 + key.len());
    full.extend_from_slice(collection.as_bytes());
    full.push(0);
    full.extend_from_slice(key.as_bytes());
    full
}

impl SledIssuerStorage {
    /// Opens the store at `path`, its values sealed under `data_key`. A store written before
    /// values were sealed is rewritten sealed first (see `seal_old_store`).
    pub fn open(
        path: &Path,
        commit_window: Duration,
        data_key: &[u8; 32],
    ) -> Result<SledIssuerStorage, StorageError> {
        let sealer = RecordSealer::new(data_key);
        finish_rewrite(path)?;
        let open = || {
            lanyard_protocol::store::open_sled(
                sled::Config::new()
                    .path(path)
                    .flush_every_ms(None)
                    .cache_capacity(32 << 20),
            )
        };
        let mut db = open()?;
        if !is_sealed(&db)? {
            if db.is_empty() {
                mark_sealed(&db)?;
            } else {
                drop(db);
                seal_old_store(path, &sealer)?;
                db = open()?;
            }
        }
        Ok(SledIssuerStorage {
            commit: GroupCommit::start(db.clone(), commit_window)?,
            tree: db,
            sealer,
        })
    }
}

/// Whether the values of `db` are recorded as sealed.
fn is_sealed(db: &sled::Db) -> Result<bool, StorageError> {
    match db.open_tree(FORMAT_TREE)?.get("values")? {
        Some(version) if version.as_ref() == SEALED_V1 => Ok(true),
        Some(_) => Err(StorageError::Corrupt(
            "the issuer store's values are in an unknown format".into(),
        )),
        None => Ok(false),
    }
}

fn mark_sealed(db: &sled::Db) -> Result<(), StorageError> {
    db.open_tree(FORMAT_TREE)?.insert("values", SEALED_V1)?;
    db.flush()?;
    Ok(())
}

/// Completes a rewrite by `seal_old_store` that a crash interrupted between its renames.
fn finish_rewrite(path: &Path) -> Result<(), StorageError> {
    let io = |what: &str, e: std::io::Error| StorageError::Backend(format!("{what}: {e}"));
    let (sealing, old) = (
        path.with_extension("sealing"),
        path.with_extension("plaintext"),
    );
    if !path.exists() && sealing.exists() {
        // The sealed copy was complete (flushed) before the old store was set aside.
        std::fs::rename(&sealing, path).map_err(|e| io("putting the sealed store in place", e))?;
    }
    if path.exists() && old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| io("deleting the plaintext store", e))?;
    }
    Ok(())
}

/// Rewrites a store from before sealing: every value sealed into a new database beside it,
/// which then takes the old one's place, and the old one is deleted. (Sealing in place would
/// leave the plaintext in sled's log until it happened to be compacted.) A crash midway leaves
/// either the old store, which is rewritten again at the next start, or the new one.
fn seal_old_store(path: &Path, sealer: &RecordSealer) -> Result<(), StorageError> {
    let io = |what: &str, e: std::io::Error| StorageError::Backend(format!("{what}: {e}"));
    let sealing = path.with_extension("sealing");
    let old = path.with_extension("plaintext");
    if sealing.exists() {
        std::fs::remove_dir_all(&sealing).map_err(|e| io("removing an unfinished rewrite", e))?;
    }
    let mut records = 0usize;
    {
        let from = lanyard_protocol::store::open_sled(sled::Config::new().path(path))?;
        let to = lanyard_protocol::store::open_sled(sled::Config::new().path(&sealing))?;
        for entry in from.iter() {
            let (key, value) = entry?;
            let collection = collection_of(&key)?;
            let sealed = sealer.seal_at(collection, &key, &value)?;
            to.insert(key, sealed)?;
            records += 1;
        }
        mark_sealed(&to)?;
    }
    std::fs::rename(path, &old).map_err(|e| io("setting the plaintext store aside", e))?;
    std::fs::rename(&sealing, path).map_err(|e| io("putting the sealed store in place", e))?;
    std::fs::remove_dir_all(&old).map_err(|e| io("deleting the plaintext store", e))?;
    tracing::info!(records, "issuer store: rewritten with its values sealed");
    Ok(())
}

/// The collection part of a full key (`collection \0 key`).
fn collection_of(full_key: &[u8]) -> Result<&str, StorageError> {
    full_key
        .iter()
        .position(|&b| b == 0)
        .and_then(|end| std::str::from_utf8(&full_key[..end]).ok())
        .ok_or_else(|| StorageError::Corrupt("a key of the issuer store has no collection".into()))
}

impl IssuerStorage for SledIssuerStorage {
    async fn get(
        &self,
        collection: &'static str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        self.tree
            .get(full_key(collection, key))?
            .map(|sealed| self.sealer.open(collection, key, &sealed))
            .transpose()
    }

    async fn scan(
        &self,
        collection: &'static str,
        prefix: &str,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let start = collection.len() + 1;
        let mut found = Vec::new();
        for entry in self
            .tree
            .scan_prefix(full_key(collection, prefix))
            .skip(skip)
            .take(limit)
        {
            let (full, sealed) = entry?;
            let key = std::str::from_utf8(&full[start..])
                .map_err(|_| StorageError::Corrupt(format!("{collection}: a key is not UTF-8")))?;
            let value = self.sealer.open(collection, key, &sealed)?;
            found.push((key.to_string(), value));
        }
        Ok(found)
    }

    async fn scan_after(
        &self,
        collection: &'static str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        use std::ops::Bound;
        let start = collection.len() + 1;
        let wanted = full_key(collection, prefix);
        let lower = match after.map(|after| full_key(collection, after)) {
            Some(after) if after >= wanted => Bound::Excluded(after),
            _ => Bound::Included(wanted.clone()),
        };
        let mut found = Vec::new();
        for entry in self.tree.range::<Vec<u8>, _>((lower, Bound::Unbounded)) {
            if found.len() == limit {
                break;
            }
            let (full, sealed) = entry?;
            if !full.starts_with(&wanted) {
                break;
            }
            let key = std::str::from_utf8(&full[start..])
                .map_err(|_| StorageError::Corrupt(format!("{collection}: a key is not UTF-8")))?;
            let value = self.sealer.open(collection, key, &sealed)?;
            found.push((key.to_string(), value));
        }
        Ok(found)
    }

    async fn count(&self, collection: &'static str, prefix: &str) -> Result<usize, StorageError> {
        let mut count = 0;
        for entry in self.tree.scan_prefix(full_key(collection, prefix)).keys() {
            entry?;
            count += 1;
        }
        Ok(count)
    }

    async fn apply(&self, expect: Vec<Expect>, writes: Vec<Write>) -> Result<(), BatchError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        // Sealed before the transaction, which sled may run more than once.
        let mut sealed_writes = Vec::with_capacity(writes.len());
        for write in &writes {
            sealed_writes.push(match write {
                Write::Put {
                    collection,
                    key,
                    value,
                } => {
                    let sealed = self.sealer.seal(collection, key, value)?;
                    (full_key(collection, key), Some(sealed))
                }
                Write::Delete { collection, key } => (full_key(collection, key), None),
            });
        }
        let outcome = self.tree.transaction(|tx| {
            for condition in &expect {
                let holds = match condition {
                    Expect::Absent { collection, key } => {
                        tx.get(full_key(collection, key))?.is_none()
                    }
                    Expect::Equals {
                        collection,
                        key,
                        value,
                    } => match tx.get(full_key(collection, key))? {
                        None => false,
                        Some(current) => {
                            let current = self
                                .sealer
                                .open(collection, key, &current)
                                .map_err(|e| ConflictableTransactionError::Abort(Some(e)))?;
                            current == *value
                        }
                    },
                };
                if !holds {
                    return Err(ConflictableTransactionError::Abort(None));
                }
            }
            for (full, sealed) in &sealed_writes {
                match sealed {
                    Some(sealed) => {
                        tx.insert(full.as_slice(), sealed.as_slice())?;
                    }
                    None => {
                        tx.remove(full.as_slice())?;
                    }
                }
            }
            Ok(())
        });
        match outcome {
            Ok(()) => {}
            Err(TransactionError::Abort(None)) => return Err(BatchError::Conflict),
            Err(TransactionError::Abort(Some(error))) => return Err(error.into()),
            Err(TransactionError::Storage(error)) => return Err(StorageError::from(error).into()),
        }
        self.commit.durable().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage() -> (tempfile::TempDir, SledIssuerStorage) {
        let dir = tempfile::tempdir().unwrap();
        let storage =
            SledIssuerStorage::open(&dir.path().join("issuer"), Duration::ZERO, &[7; 32]).unwrap();
        (dir, storage)
    }

    #[tokio::test]
    async fn batches_apply_whole_or_not_at_all() {
        let (_dir, storage) = storage();
        storage
            .apply(
                vec![Expect::Absent {
                    collection: "t",
                    key: "a".into(),
                }],
                vec![
                    Write::put("t", "a", &1).unwrap(),
                    Write::put("t", "b", &2).unwrap(),
                ],
            )
            .await
            .unwrap();
        // The same expectation fails now, and neither write of the second batch lands.
        let error = storage
            .apply(
                vec![Expect::Absent {
                    collection: "t",
                    key: "a".into(),
                }],
                vec![Write::put("t", "c", &3).unwrap(), Write::delete("t", "b")],
            )
            .await
            .unwrap_err();
        assert!(matches!(error, BatchError::Conflict), "{error}");
        assert_eq!(storage.count("t", "").await.unwrap(), 2);
        assert_eq!(storage.get_json::<u32>("t", "b").await.unwrap(), Some(2));
        let page: Vec<u32> = storage.scan_json("t", "", 1, 5).await.unwrap();
        assert_eq!(page, vec![2]);
        // Collections do not see each other's keys.
        assert_eq!(storage.count("t2", "").await.unwrap(), 0);
        let stale = Expect::Equals {
            collection: "t",
            key: "a".into(),
            value: b"7".to_vec(),
        };
        assert!(storage.apply(vec![stale], vec![]).await.is_err());
        // An expectation compares the opened value, not the sealed bytes.
        let current = Expect::Equals {
            collection: "t",
            key: "a".into(),
            value: b"1".to_vec(),
        };
        storage
            .apply(vec![current], vec![Write::put("t", "a", &5).unwrap()])
            .await
            .unwrap();
        assert_eq!(storage.get_json::<u32>("t", "a").await.unwrap(), Some(5));
    }

    /// Whether `needle` is anywhere in the files of `dir`.
    fn on_disk(dir: &Path, needle: &[u8]) -> bool {
        std::fs::read_dir(dir).unwrap().any(|entry| {
            let path = entry.unwrap().path();
            if path.is_dir() {
                on_disk(&path, needle)
            } else {
                let bytes = std::fs::read(&path).unwrap();
                bytes.windows(needle.len()).any(|w| w == needle)
            }
        })
    }

    #[tokio::test]
    async fn values_are_sealed_at_rest_and_bound_to_their_key() {
        let (dir, storage) = storage();
        let secret = "jane.secret@example.com";
        storage
            .apply(
                vec![],
                vec![Write::put("customers", "o/1", &secret).unwrap()],
            )
            .await
            .unwrap();
        storage.tree.flush().unwrap();
        assert!(!on_disk(dir.path(), secret.as_bytes()), "sealed on disk");
        assert_eq!(
            storage
                .get_json::<String>("customers", "o/1")
                .await
                .unwrap()
                .as_deref(),
            Some(secret)
        );
        // A sealed value copied under another key does not open there.
        let sealed = storage
            .tree
            .get(full_key("customers", "o/1"))
            .unwrap()
            .unwrap();
        storage
            .tree
            .insert(full_key("customers", "o/2"), sealed)
            .unwrap();
        let error = storage.get("customers", "o/2").await.unwrap_err();
        assert!(
            error.to_string().contains("does not authenticate"),
            "{error}"
        );
        // Nor under another data key.
        drop(storage);
        let other =
            SledIssuerStorage::open(&dir.path().join("issuer"), Duration::ZERO, &[8; 32]).unwrap();
        assert!(other.get("customers", "o/1").await.is_err());
    }

    #[tokio::test]
    async fn a_store_from_before_sealing_is_sealed_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("issuer");
        {
            let db = sled::open(&path).unwrap();
            db.insert(
                full_key("customers", "o/1"),
                b"\"Jane Plaintext\"".as_slice(),
            )
            .unwrap();
            db.flush().unwrap();
        }
        // Rewritten sealed at the first opening; the second reads what the first wrote.
        for opening in ["first", "second"] {
            let storage = SledIssuerStorage::open(&path, Duration::ZERO, &[7; 32]).unwrap();
            let read = storage.get_json::<String>("customers", "o/1").await;
            assert_eq!(
                read.unwrap().as_deref(),
                Some("Jane Plaintext"),
                "{opening} opening"
            );
        }
        assert!(!on_disk(dir.path(), b"Jane Plaintext"));
    }

    #[tokio::test]
    async fn a_rewrite_cut_short_between_its_renames_is_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("issuer");
        {
            let sealed = SledIssuerStorage::open(&path, Duration::ZERO, &[7; 32]).unwrap();
            sealed
                .apply(vec![], vec![Write::put("t", "a", &1).unwrap()])
                .await
                .unwrap();
        }
        // The crash came after the plaintext store was set aside, before the sealed one
        // took its place.
        std::fs::rename(&path, path.with_extension("sealing")).unwrap();
        std::fs::create_dir(path.with_extension("plaintext")).unwrap();
        let storage = SledIssuerStorage::open(&path, Duration::ZERO, &[7; 32]).unwrap();
        assert_eq!(storage.get_json::<u32>("t", "a").await.unwrap(), Some(1));
        assert!(!path.with_extension("sealing").exists());
        assert!(!path.with_extension("plaintext").exists());
    }

    #[test]
    fn writes_show_no_value() {
        let write = Write::put("customers", "o/1", &"jane@example.com").unwrap();
        let expect = Expect::Equals {
            collection: "customers",
            key: "o/1".into(),
            value: b"jane@example.com".to_vec(),
        };
        for shown in [format!("{write:?}"), format!("{expect:?}")] {
            assert!(!shown.contains("jane"), "{shown}");
            assert!(
                shown.contains("[redacted") && shown.contains("o/1"),
                "{shown}"
            );
        }
    }

    #[tokio::test]
    async fn pages_start_after_the_last_key_seen() {
        let (_dir, storage) = storage();
        let writes = ["a1", "a2", "a3", "b1"]
            .iter()
            .map(|k| Write::put("t", *k, k).unwrap())
            .chain([Write::put("u", "a4", &"other").unwrap()])
            .collect();
        storage.apply(vec![], writes).await.unwrap();
        let keys = |page: Vec<(String, Vec<u8>)>| -> Vec<String> {
            page.into_iter().map(|(k, _)| k).collect()
        };
        let first = keys(storage.scan_after("t", "a", None, 2).await.unwrap());
        assert_eq!(first, ["a1", "a2"]);
        let second = keys(storage.scan_after("t", "a", Some("a2"), 2).await.unwrap());
        assert_eq!(
            second,
            ["a3"],
            "the prefix ends the page, other collections are not seen"
        );
        // A cursor before the prefix starts at the prefix; the whole collection with "".
        let from = keys(storage.scan_after("t", "b", Some("a"), 5).await.unwrap());
        assert_eq!(from, ["b1"]);
        let all = keys(storage.scan_after("t", "", Some("a1"), 10).await.unwrap());
        assert_eq!(all, ["a2", "a3", "b1"]);
        assert!(storage
            .scan_after("t", "", None, 0)
            .await
            .unwrap()
            .is_empty());
    }
}

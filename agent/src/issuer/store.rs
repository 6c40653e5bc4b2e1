//! The issuer side's durable state behind one small trait, [`IssuerStorage`]: named
//! collections of JSON records with atomic multi-record writes. Organisations, templates,
//! customers, issued credentials and verifications are typed layers over it (`issuer::*`), so
//! a shared PostgreSQL backend needs only a `(collection, key, value)` table to follow.
//! [`SledIssuerStorage`] is the embedded default; like the mediator's store, every write
//! returns only once it is on disk (group commit).

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::storage::{GroupCommit, StorageError};

/// One write of an atomic batch: a record to put, or a key to delete.
#[derive(Clone, Debug)]
pub enum Write {
    Put {
        collection: &'static str,
        key: String,
        value: Vec<u8>,
    },
    Delete {
        collection: &'static str,
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

    pub fn delete(collection: &'static str, key: impl Into<String>) -> Write {
        Write::Delete {
            collection,
            key: key.into(),
        }
    }
}

/// A condition an atomic batch checks before it writes anything.
#[derive(Clone, Debug)]
pub enum Expect {
    /// The key must not exist yet.
    Absent {
        collection: &'static str,
        key: String,
    },
    /// The key must hold exactly these bytes (optimistic concurrency on a record read before).
    Equals {
        collection: &'static str,
        key: String,
        value: Vec<u8>,
    },
}

/// Why a batch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// An [`Expect`] did not hold; nothing was written.
    #[error("the record changed meanwhile")]
    Conflict,
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Collections of records with atomic, durable, conditional batches. Keys sort bytewise
/// within a collection.
pub trait IssuerStorage: Send + Sync + 'static {
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
            let (mut items, mut accepted, mut offset) = (Vec::new(), 0, 0);
            loop {
                let page = self.scan(collection, prefix, offset, PAGE).await?;
                let read = page.len();
                for (key, bytes) in page {
                    let record: T = decode(collection, &key, &bytes)?;
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
                offset += read;
            }
        }
    }
}

impl<S: IssuerStorage> IssuerStorageExt for S {}

fn decode<T: DeserializeOwned>(
    collection: &str,
    key: &str,
    bytes: &[u8],
) -> Result<T, StorageError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StorageError::Corrupt(format!("{collection}/{key}: {e}")))
}

/// The embedded sled backend: one tree, keys `collection \0 key`.
pub struct SledIssuerStorage {
    tree: sled::Db,
    commit: GroupCommit,
}

fn full_key(collection: &str, key: &str) -> Vec<u8> {
    let mut full = Vec::with_capacity(collection.len() + 1 + key.len());
    full.extend_from_slice(collection.as_bytes());
    full.push(0);
    full.extend_from_slice(key.as_bytes());
    full
}

impl SledIssuerStorage {
    pub fn open(path: &Path, commit_window: Duration) -> Result<SledIssuerStorage, StorageError> {
        let db = wallet_core::store::open_sled(
            sled::Config::new()
                .path(path)
                .flush_every_ms(None)
                .cache_capacity(32 << 20),
        )?;
        Ok(SledIssuerStorage {
            commit: GroupCommit::start(db.clone(), commit_window)?,
            tree: db,
        })
    }
}

impl IssuerStorage for SledIssuerStorage {
    async fn get(
        &self,
        collection: &'static str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .tree
            .get(full_key(collection, key))?
            .map(|v| v.to_vec()))
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
            let (key, value) = entry?;
            let key = std::str::from_utf8(&key[start..])
                .map_err(|_| StorageError::Corrupt(format!("{collection}: a key is not UTF-8")))?
                .to_string();
            found.push((key, value.to_vec()));
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
            let (key, value) = entry?;
            if !key.starts_with(&wanted) {
                break;
            }
            let key = std::str::from_utf8(&key[start..])
                .map_err(|_| StorageError::Corrupt(format!("{collection}: a key is not UTF-8")))?
                .to_string();
            found.push((key, value.to_vec()));
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
                    } => tx
                        .get(full_key(collection, key))?
                        .is_some_and(|current| current.as_ref() == value.as_slice()),
                };
                if !holds {
                    return Err(ConflictableTransactionError::Abort(()));
                }
            }
            for write in &writes {
                match write {
                    Write::Put {
                        collection,
                        key,
                        value,
                    } => {
                        tx.insert(full_key(collection, key), value.as_slice())?;
                    }
                    Write::Delete { collection, key } => {
                        tx.remove(full_key(collection, key))?;
                    }
                }
            }
            Ok(())
        });
        match outcome {
            Ok(()) => {}
            Err(TransactionError::Abort(())) => return Err(BatchError::Conflict),
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
        let storage = SledIssuerStorage::open(&dir.path().join("issuer"), Duration::ZERO).unwrap();
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

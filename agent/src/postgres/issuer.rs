//! The issuer's records on the shared PostgreSQL ([`PgIssuerStorage`]): one table,
//! `issuer_records (collection, key, value)` (migration 0003), with the sled backend's
//! semantics. Keys are stored as bytes, so they order and prefix-match bytewise as in sled; a
//! prefix is the index range `[prefix, successor(prefix))`, never a `LIKE`. Values are sealed
//! at rest with the sled backend's sealing ([`RecordSealer`]), bound to collection and key.
//!
//! A batch is one transaction, serializable with every other batch of every agent: it first
//! takes transaction-scoped advisory locks on every key it expects something of or writes (in
//! one global order: a shared lock on [`BATCHES`], then the records' lock ids sorted), so two
//! batches that touch a common key take turns, even where the key does not exist yet (no
//! write skew between a batch expecting a key absent and one writing it). Holding them, it
//! reads the latest committed values of what it expects, checks, and writes. A batch touching
//! more than [`MOST_LOCKS`] keys takes [`BATCHES`] exclusively instead, so a transaction holds
//! a bounded number of locks. A record a batch expects absent is inserted without `ON
//! CONFLICT` (a unique violation is a `Conflict`); a deadlock or serialization failure the
//! server reports rolls the batch back and runs it again (its expectations checked afresh), a
//! bounded number of times.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use sha2::{Digest, Sha256};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::Database;
use crate::issuer::store::{BatchError, Expect, IssuerStorage, RecordSealer, Write};
use crate::storage::StorageError;

/// How many times a batch runs when the server rolls it back for a deadlock or a
/// serialization failure, before it is reported as a `Conflict`.
const ATTEMPTS: usize = 8;

/// The advisory lock every batch holds: shared by batches that lock their keys one by one,
/// exclusive for a batch of more keys than [`MOST_LOCKS`]. ("issuer" in ASCII, under the
/// migration lock's "lanyard" prefix.)
const BATCHES: i64 = 0x6c61_6e69_7373_7565;

/// The most record locks a batch takes; a batch touching more keys locks [`BATCHES`] alone.
const MOST_LOCKS: usize = 256;

/// The issuer store on PostgreSQL. Several agents may share one database: each holds its own
/// `PgIssuerStorage` (its own pool) and their batches stay atomic and conditional across them.
pub struct PgIssuerStorage {
    db: Database,
    sealer: RecordSealer,
}

impl fmt::Debug for PgIssuerStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgIssuerStorage")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl PgIssuerStorage {
    /// The store in `db` (already migrated), its values sealed under `data_key`. Does no I/O.
    pub fn new(db: Database, data_key: &[u8; 32]) -> PgIssuerStorage {
        PgIssuerStorage {
            db,
            sealer: RecordSealer::new(data_key),
        }
    }
}

/// The smallest byte string greater than every string starting with `prefix` (None when there
/// is none: `prefix` is empty or all 0xFF).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The advisory lock id of a record: the first 8 bytes of a SHA-256 of its collection and key
/// (the same in every agent and version; two records sharing an id only wait for each other).
fn lock_id(collection: &str, key: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(b"lanyard issuer record\0")
        .chain_update(collection.as_bytes())
        .chain_update([0])
        .chain_update(key.as_bytes())
        .finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(id)
}

/// A count or offset as the server takes it.
fn bigint(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The statement selecting `columns` from the records of `$1` with keys from `$2` (`>` when
/// `exclusive`, else `>=`) up to `$3` (exclusive) when `bounded`, followed by `tail` whose
/// parameters come next. Built only from these fixed pieces.
fn range_sql(columns: &str, exclusive: bool, bounded: bool, tail: &str) -> String {
    let lower = if exclusive { ">" } else { ">=" };
    let (upper, next) = if bounded {
        (" AND key < $3", 4)
    } else {
        ("", 3)
    };
    let tail = tail
        .replace("$A", &format!("${next}"))
        .replace("$B", &format!("${}", next + 1));
    format!("SELECT {columns} FROM issuer_records WHERE collection = $1 AND key {lower} $2{upper} {tail}")
}

impl PgIssuerStorage {
    /// Runs a range query: the records of `collection` from `lower` (excluded when
    /// `exclusive`) to the end of `prefix`'s range, with `tail` (using `$A`, `$B` for `extra`).
    #[allow(clippy::too_many_arguments)] // until h/pgiss's final commit lands
    async fn range(
        &self,
        columns: &str,
        collection: &'static str,
        prefix: &str,
        lower: &[u8],
        exclusive: bool,
        tail: &str,
        extra: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StorageError> {
        let upper = successor(prefix.as_bytes());
        let sql = range_sql(columns, exclusive, upper.is_some(), tail);
        let client = self.db.client().await?;
        let statement = client.prepare_cached(&sql).await?;
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&collection, &lower];
        if let Some(upper) = &upper {
            params.push(upper);
        }
        params.extend_from_slice(extra);
        Ok(client.query(&statement, &params).await?)
    }

    /// Rows of `(key, sealed value)` read back as `(key, value)`.
    fn records(
        &self,
        collection: &'static str,
        rows: Vec<tokio_postgres::Row>,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        rows.into_iter()
            .map(|row| {
                let key = String::from_utf8(row.try_get(0)?).map_err(|_| {
                    StorageError::Corrupt(format!("{collection}: a key is not UTF-8"))
                })?;
                let sealed: &[u8] = row.try_get(1)?;
                let value = self.sealer.open(collection, &key, sealed)?;
                Ok((key, value))
            })
            .collect()
    }
}

/// A batch prepared for its transaction: values sealed, writes reduced to the last one per
/// key and sorted by key, the lock ids of every key it touches sorted.
struct Prepared<'a> {
    expect: &'a [Expect],
    /// The record lock ids, sorted; empty when the batch locks [`BATCHES`] exclusively.
    locks: Vec<i64>,
    deletes: (Vec<&'a str>, Vec<&'a [u8]>),
    /// Puts of records expected absent: inserted without replacing.
    fresh: (Vec<&'a str>, Vec<&'a [u8]>, Vec<Vec<u8>>),
    /// Other puts: inserted or replacing.
    puts: (Vec<&'a str>, Vec<&'a [u8]>, Vec<Vec<u8>>),
}

fn expected_record(condition: &Expect) -> (&'static str, &str) {
    match condition {
        Expect::Absent { collection, key }
        | Expect::Equals {
            collection, key, ..
        } => (*collection, key.as_str()),
    }
}

impl<'a> Prepared<'a> {
    fn new(
        sealer: &RecordSealer,
        expect: &'a [Expect],
        writes: &'a [Write],
    ) -> Result<Prepared<'a>, StorageError> {
        let mut last: BTreeMap<(&'a str, &'a str), Option<&'a [u8]>> = BTreeMap::new();
        for write in writes {
            match write {
                Write::Put {
                    collection,
                    key,
                    value,
                } => last.insert((*collection, key.as_str()), Some(value.as_slice())),
                Write::Delete { collection, key } => last.insert((*collection, key.as_str()), None),
            };
        }
        let absent: BTreeSet<(&str, &str)> = expect
            .iter()
            .filter(|c| matches!(c, Expect::Absent { .. }))
            .map(expected_record)
            .collect();
        let mut touched: BTreeSet<(&str, &str)> = expect.iter().map(expected_record).collect();
        touched.extend(last.keys().copied());
        let mut locks: Vec<i64> = touched
            .iter()
            .map(|(collection, key)| lock_id(collection, key))
            .collect();
        locks.sort_unstable();
        locks.dedup();
        if locks.len() > MOST_LOCKS {
            locks.clear();
        }
        let mut prepared = Prepared {
            expect,
            locks,
            deletes: (Vec::new(), Vec::new()),
            fresh: (Vec::new(), Vec::new(), Vec::new()),
            puts: (Vec::new(), Vec::new(), Vec::new()),
        };
        for ((collection, key), value) in last {
            let Some(value) = value else {
                prepared.deletes.0.push(collection);
                prepared.deletes.1.push(key.as_bytes());
                continue;
            };
            let sealed = sealer.seal(collection, key, value)?;
            let into = if absent.contains(&(collection, key)) {
                &mut prepared.fresh
            } else {
                &mut prepared.puts
            };
            into.0.push(collection);
            into.1.push(key.as_bytes());
            into.2.push(sealed);
        }
        Ok(prepared)
    }
}

/// How one run of a batch ended, when not applied.
enum Failed {
    /// The server rolled it back for a deadlock or serialization failure: run it again.
    Again,
    /// An expectation did not hold, or a record expected absent was inserted meanwhile.
    Conflict,
    /// The storage failed.
    Storage(StorageError),
}

impl From<StorageError> for Failed {
    fn from(error: StorageError) -> Self {
        Failed::Storage(error)
    }
}

impl From<tokio_postgres::Error> for Failed {
    fn from(error: tokio_postgres::Error) -> Self {
        match error.code() {
            Some(code)
                if *code == SqlState::T_R_DEADLOCK_DETECTED
                    || *code == SqlState::T_R_SERIALIZATION_FAILURE =>
            {
                Failed::Again
            }
            Some(code) if *code == SqlState::UNIQUE_VIOLATION => Failed::Conflict,
            _ => Failed::Storage(error.into()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for Failed {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Failed::Storage(error.into())
    }
}

impl PgIssuerStorage {
    /// One run of a prepared batch, in one transaction (rolled back unless it commits).
    async fn run(&self, batch: &Prepared<'_>) -> Result<(), Failed> {
        let mut client = self.db.client().await?;
        let tx = client.transaction().await?;
        // Every lock in one order: BATCHES first, then the records' ids ascending.
        if batch.locks.is_empty() {
            let lock = tx
                .prepare_cached("SELECT pg_advisory_xact_lock($1)")
                .await?;
            tx.execute(&lock, &[&BATCHES]).await?;
        } else {
            let lock = tx
                .prepare_cached(
                    "SELECT pg_advisory_xact_lock_shared($1), pg_advisory_xact_lock(id) \
                     FROM unnest($2::bigint[]) WITH ORDINALITY AS l(id, n) ORDER BY n",
                )
                .await?;
            tx.execute(&lock, &[&BATCHES, &batch.locks]).await?;
        }
        // Nobody else writes these keys until we commit: read what is expected.
        let mut current: HashMap<(String, Vec<u8>), Vec<u8>> = HashMap::new();
        if !batch.expect.is_empty() {
            let (collections, keys): (Vec<&str>, Vec<&[u8]>) = batch
                .expect
                .iter()
                .map(|condition| {
                    let (collection, key) = expected_record(condition);
                    (collection, key.as_bytes())
                })
                .unzip();
            let read = tx
                .prepare_cached(
                    "SELECT collection, key, value FROM issuer_records \
                     WHERE (collection, key) IN \
                       (SELECT * FROM unnest($1::text[], $2::bytea[]))",
                )
                .await?;
            for row in tx.query(&read, &[&collections, &keys]).await? {
                current.insert((row.try_get(0)?, row.try_get(1)?), row.try_get(2)?);
            }
        }
        for condition in batch.expect {
            let (collection, key) = expected_record(condition);
            let found = current.get(&(collection.to_string(), key.as_bytes().to_vec()));
            let holds = match (condition, found) {
                (Expect::Absent { .. }, found) => found.is_none(),
                (Expect::Equals { .. }, None) => false,
                (Expect::Equals { value, .. }, Some(sealed)) => {
                    self.sealer.open(collection, key, sealed)? == *value
                }
            };
            if !holds {
                return Err(Failed::Conflict);
            }
        }
        if !batch.deletes.0.is_empty() {
            let delete = tx
                .prepare_cached(
                    "DELETE FROM issuer_records WHERE (collection, key) IN \
                       (SELECT * FROM unnest($1::text[], $2::bytea[]))",
                )
                .await?;
            tx.execute(&delete, &[&batch.deletes.0, &batch.deletes.1])
                .await?;
        }
        if !batch.fresh.0.is_empty() {
            let insert = tx
                .prepare_cached(
                    "INSERT INTO issuer_records (collection, key, value) \
                     SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[])",
                )
                .await?;
            let (collections, keys, values) = &batch.fresh;
            tx.execute(&insert, &[collections, keys, values]).await?;
        }
        if !batch.puts.0.is_empty() {
            let upsert = tx
                .prepare_cached(
                    "INSERT INTO issuer_records (collection, key, value) \
                     SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[]) \
                     ON CONFLICT (collection, key) DO UPDATE SET value = EXCLUDED.value",
                )
                .await?;
            let (collections, keys, values) = &batch.puts;
            tx.execute(&upsert, &[collections, keys, values]).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl IssuerStorage for PgIssuerStorage {
    async fn get(
        &self,
        collection: &'static str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let client = self.db.client().await?;
        let statement = client
            .prepare_cached("SELECT value FROM issuer_records WHERE collection = $1 AND key = $2")
            .await?;
        let row = client
            .query_opt(&statement, &[&collection, &key.as_bytes()])
            .await?;
        row.map(|row| {
            let sealed: &[u8] = row.try_get(0)?;
            self.sealer.open(collection, key, sealed)
        })
        .transpose()
    }

    async fn scan(
        &self,
        collection: &'static str,
        prefix: &str,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let (skip, limit) = (bigint(skip), bigint(limit));
        let rows = self
            .range(
                "key, value",
                collection,
                prefix,
                prefix.as_bytes(),
                false,
                "ORDER BY key OFFSET $A LIMIT $B",
                &[&skip, &limit],
            )
            .await?;
        self.records(collection, rows)
    }

    async fn count(&self, collection: &'static str, prefix: &str) -> Result<usize, StorageError> {
        let rows = self
            .range(
                "count(*)",
                collection,
                prefix,
                prefix.as_bytes(),
                false,
                "",
                &[],
            )
            .await?;
        let count: i64 = match rows.first() {
            Some(row) => row.try_get(0)?,
            None => 0,
        };
        usize::try_from(count).map_err(|_| StorageError::Corrupt(format!("{collection}: count")))
    }

    async fn scan_after(
        &self,
        collection: &'static str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        // As in sled: after the cursor when it lies within or past the prefix's range, else
        // from the prefix's first key.
        let (lower, exclusive) = match after {
            Some(after) if after >= prefix => (after, true),
            _ => (prefix, false),
        };
        let limit = bigint(limit);
        let rows = self
            .range(
                "key, value",
                collection,
                prefix,
                lower.as_bytes(),
                exclusive,
                "ORDER BY key LIMIT $A",
                &[&limit],
            )
            .await?;
        self.records(collection, rows)
    }

    async fn apply(&self, expect: Vec<Expect>, writes: Vec<Write>) -> Result<(), BatchError> {
        // Sealed once, before the transaction (which may run more than once).
        let batch = Prepared::new(&self.sealer, &expect, &writes)?;
        for _attempt in 0..ATTEMPTS {
            match self.run(&batch).await {
                Ok(()) => return Ok(()),
                Err(Failed::Again) => continue,
                Err(Failed::Conflict) => return Err(BatchError::Conflict),
                Err(Failed::Storage(error)) => return Err(error.into()),
            }
        }
        Err(BatchError::Conflict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_ends_before_the_next_prefix() {
        assert_eq!(successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(successor(b"\xff\xff"), None);
        assert_eq!(successor(b""), None);
    }

    #[test]
    fn lock_ids_tell_collection_from_key() {
        assert_ne!(lock_id("ab", "c"), lock_id("a", "bc"));
        assert_eq!(lock_id("t", "k"), lock_id("t", "k"));
    }
}

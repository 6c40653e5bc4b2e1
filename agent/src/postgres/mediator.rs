//! The mediator's store on the shared PostgreSQL database: [`PgMediatorStorage`], with the
//! sled backend's semantics, for several agents at once (migrations `0001_mediator` and
//! `0005_mediator_writes`).
//!
//! - Quotas hold across agents: what the queues hold is counted in usage rows (per
//!   recipient, per client) updated in the same transaction as the queue. Every transaction
//!   locks them in one order (recipients, then clients, each sorted by key), so agents wait
//!   for each other but never deadlock. The totals are 16 shard rows, each change adding to
//!   one at random, read as sums without a lock: the store-wide byte cap holds to within the
//!   batches committing at that instant.
//! - Forward ids are remembered in a table (by a digest of recipient and id). A batch inserts
//!   its ids, sorted, before it takes any usage lock: an id another batch holds makes it wait
//!   for that batch's end, so the same forward is queued once whichever agents see it.
//! - Group commit: concurrent `enqueue`s go through a bounded channel to [`WRITERS`] writer
//!   tasks, which take turns gathering them into batches, each one transaction of multi-row
//!   statements over arrays, every caller answered after the commit. The bulk of a batch (its
//!   messages) is written before the usage locks are taken, so the batches of several
//!   writers and agents overlap but for the quota checks and the commits. A refused message
//!   (a quota) is taken back and answered with its refusal; the others in its batch are
//!   stored.
//! - Live wake across agents: each batch's transaction sends one `NOTIFY` (split to stay
//!   under PostgreSQL's 8000-byte payload) naming the [`WakeTag`]s of the clients it queued
//!   for; every agent holds one connection `LISTEN`ing and hands what it hears to the
//!   mediator's [`WakeHook`]s. When that connection drops it reconnects with backoff and then
//!   wakes everyone once, since a notification may have been lost meanwhile.
//!
//! Every query is by key or index: nothing on a request path reads all queues.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::AsyncMessage;

use super::{Database, PgInvitationStore};
use crate::mediator::{
    dedup_key, digest, message_id, parse_id, Enqueued, MediatorStorage, QueueQuota, QueuedMessage,
    RecipientUpdate, RemoteWake, WakeHook, WakeTag,
};
use crate::storage::StorageError;

/// The channel the agents notify each other on.
const CHANNEL: &str = "lanyard_mediator_wake";

/// Room for a notification's payload (PostgreSQL refuses 8000 bytes and more).
const PAYLOAD_BYTES: usize = 7900;

/// Enqueues waiting for the writer at most; past it callers wait for room.
const WRITE_QUEUE: usize = 4096;

/// Messages one batch takes at most.
const MAX_BATCH: usize = 1024;

/// Envelope bytes one batch takes at most (a message larger than this is a batch alone).
const MAX_BATCH_BYTES: usize = 16 << 20;

/// Queued messages one expiry transaction drops at most.
const EXPIRE_CHUNK: i64 = 1000;

/// Forward ids remembered at most; past it the sweep forgets the oldest first.
const FORWARDS_CAP: i64 = 1_000_000;

/// Forward ids one sweep transaction forgets at most.
const FORWARDS_CHUNK: i64 = 10_000;

/// Waits before reconnecting the listening connection: the first, and the most.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MOST: Duration = Duration::from_secs(5);

/// Locks (creating when missing) the usage rows of these recipients, in key order.
const LOCK_RECIPIENTS: &str = "INSERT INTO mediator_recipient_usage AS u (recipient_key)
     SELECT k FROM unnest($1::bytea[]) AS k ORDER BY k
     ON CONFLICT (recipient_key) DO UPDATE SET count = u.count
     RETURNING u.recipient_key, u.count, u.bytes";

/// Locks (creating when missing) the usage rows of these clients, in key order.
const LOCK_CLIENTS: &str = "INSERT INTO mediator_client_usage AS u (client_key)
     SELECT k FROM unnest($1::bytea[]) AS k ORDER BY k
     ON CONFLICT (client_key) DO UPDATE SET bytes = u.bytes
     RETURNING u.client_key, u.bytes";

/// The totals: the sums of the usage shards, read without a lock.
const TOTALS: &str = "SELECT coalesce(sum(count), 0)::bigint, coalesce(sum(bytes), 0)::bigint,
            coalesce(sum(forwards), 0)::bigint FROM mediator_usage";

/// Usage shards (rows of `mediator_usage`, migration 0005): each change adds to one.
const SHARDS: u32 = 16;

const ADD_RECIPIENTS: &str = "UPDATE mediator_recipient_usage u
     SET count = u.count + d.c, bytes = u.bytes + d.b
     FROM unnest($1::bytea[], $2::bigint[], $3::bigint[]) AS d(k, c, b)
     WHERE u.recipient_key = d.k";

const ADD_CLIENTS: &str = "UPDATE mediator_client_usage u SET bytes = u.bytes + d.b
     FROM unnest($1::bytea[], $2::bigint[]) AS d(k, b) WHERE u.client_key = d.k";

/// Adds to the totals' shard `$4`.
const ADD_TOTAL: &str = "UPDATE mediator_usage
     SET count = count + $1, bytes = bytes + $2, forwards = forwards + $3 WHERE id = $4";

/// Remembers forward ids (sorted, so batches wait for each other in one order): returns each
/// id it took, fresh or past its window, with whether it was fresh. An id still within its
/// window is left (and locked until this transaction ends): the forward is a duplicate.
const REMEMBER: &str = "INSERT INTO mediator_forwards AS f (key, expires_at)
     SELECT * FROM unnest($1::bytea[], $2::bigint[]) AS d(k, e) ORDER BY k
     ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at WHERE f.expires_at < $3
     RETURNING f.key, f.xmax = 0";

/// Queues a batch's messages under one range of seqs (one `nextval`: the sequence steps by
/// [`MAX_BATCH`]), the n-th message at the range's start + n; returns the start.
const QUEUE: &str = "WITH range AS MATERIALIZED (SELECT nextval('mediator_queue_seq') AS start),
     queued AS (
         INSERT INTO mediator_queue (recipient_key, seq, client_key, received_at, message)
         SELECT m.r, range.start + m.n - 1, m.c, m.t, m.m FROM range,
             unnest($1::bytea[], $2::bytea[], $3::bigint[], $4::text[])
                 WITH ORDINALITY AS m(r, c, t, m, n)
         RETURNING 1)
     SELECT start, (SELECT count(*) FROM queued) FROM range";

/// Takes back queued messages by (recipient key, seq): those a batch refused.
const UNQUEUE: &str = "DELETE FROM mediator_queue q
     USING unnest($1::bytea[], $2::bigint[]) AS d(k, s)
     WHERE q.recipient_key = d.k AND q.seq = d.s";

/// Forgets forward ids a batch took for messages it refused.
const FORGET: &str = "DELETE FROM mediator_forwards WHERE key = ANY($1::bytea[])";

/// A usage shard, picked at random.
fn shard() -> i32 {
    (rand_core::RngCore::next_u32(&mut rand_core::OsRng) % SHARDS) as i32 + 1
}

/// A statement parameter.
type Param<'a> = &'a (dyn ToSql + Sync);

/// One `enqueue` on its way to the writer.
struct Write {
    client_key: [u8; 32],
    recipient: String,
    recipient_key: [u8; 32],
    message: String,
    dedup: Option<[u8; 16]>,
    quota: QueueQuota,
    received_at: u64,
    reply: oneshot::Sender<Result<Enqueued, StorageError>>,
}

/// The PostgreSQL mediator store. Several agents may each open one on the same database.
pub struct PgMediatorStorage {
    db: Database,
    writes: mpsc::Sender<Write>,
    hooks: Arc<Mutex<Vec<WakeHook>>>,
    commits: Arc<AtomicU64>,
    listener: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for PgMediatorStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgMediatorStorage")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

impl Drop for PgMediatorStorage {
    fn drop(&mut self) {
        // The writer ends with the channel; the listener would hold its connection forever.
        self.listener.abort();
    }
}

fn now() -> u64 {
    lanyard_protocol::didcomm::now()
}

/// `u64` seconds or bytes as PostgreSQL's `bigint` (saturating: nothing we count gets near).
fn big(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn key32(bytes: &[u8], what: &str) -> Result<[u8; 32], StorageError> {
    bytes
        .try_into()
        .map_err(|_| StorageError::Corrupt(format!("{what} key is not 32 bytes")))
}

fn slices<const N: usize>(keys: &[[u8; N]]) -> Vec<&[u8]> {
    keys.iter().map(|k| k.as_slice()).collect()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The payloads that name `tags` as woken by `origin`: each `origin tag tag …` in hex, under
/// PostgreSQL's payload limit.
fn payloads(origin: &WakeTag, tags: &[WakeTag]) -> Vec<String> {
    let origin = hex(origin);
    let mut out = Vec::new();
    let mut current = origin.clone();
    for tag in tags {
        if current.len() + 1 + 2 * tag.len() > PAYLOAD_BYTES {
            out.push(std::mem::replace(&mut current, origin.clone()));
        }
        current.push(' ');
        current.push_str(&hex(tag));
    }
    if current.len() > origin.len() {
        out.push(current);
    }
    out
}

/// What a payload says: who sent it, and whom it wakes (malformed tags are skipped).
fn parse_payload(payload: &str) -> Option<(WakeTag, Vec<WakeTag>)> {
    let mut words = payload.split(' ');
    let origin = unhex(words.next()?)?;
    Some((origin, words.filter_map(unhex).collect()))
}

impl PgMediatorStorage {
    /// The store on `db` (migrated), its writer gathering concurrent `enqueue`s into one
    /// transaction: after the first write of a batch it waits up to `commit_window` for more
    /// (zero: it commits at once what has arrived). Returns once this agent listens for the
    /// others' wake-ups.
    pub async fn open(
        db: Database,
        commit_window: Duration,
    ) -> Result<PgMediatorStorage, StorageError> {
        let mut origin = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut origin);
        let hooks = Arc::new(Mutex::new(Vec::<WakeHook>::new()));
        let listening = listen(&db).await?;
        let listener = tokio::spawn(keep_listening(db.clone(), listening, origin, hooks.clone()));
        let (writes, queue) = mpsc::channel(WRITE_QUEUE);
        let commits = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            db: db.clone(),
            origin,
            commits: commits.clone(),
        };
        let inbox = Arc::new(tokio::sync::Mutex::new(Inbox { queue, held: None }));
        for _ in 0..WRITERS {
            tokio::spawn(write_batches(writer.clone(), inbox.clone(), commit_window));
        }
        Ok(PgMediatorStorage {
            db,
            writes,
            hooks,
            commits,
            listener,
        })
    }

    /// The invitations this agent hosts, in the same database.
    pub fn invitations(&self) -> PgInvitationStore {
        PgInvitationStore::new(self.db.clone())
    }

    /// Transactions the writer committed with messages in them (each a batch of `enqueue`s).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Deletes the queued messages at these (recipient key, seq) pairs (only those received
    /// before `before`), keeping the usage rows right; returns how many it deleted.
    async fn drop_messages(
        &self,
        pairs: &[([u8; 32], i64)],
        before: u64,
    ) -> Result<u64, StorageError> {
        if pairs.is_empty() {
            return Ok(0);
        }
        let mut recipients: Vec<[u8; 32]> = pairs.iter().map(|(r, _)| *r).collect();
        recipients.sort_unstable();
        recipients.dedup();
        let keys: Vec<&[u8]> = pairs.iter().map(|(r, _)| r.as_slice()).collect();
        let seqs: Vec<i64> = pairs.iter().map(|(_, s)| *s).collect();
        let mut client = self.db.client().await?;
        let lock_recipients = client.prepare_cached(LOCK_RECIPIENTS).await?;
        let lock_clients = client.prepare_cached(LOCK_CLIENTS).await?;
        let delete = client
            .prepare_cached(
                "DELETE FROM mediator_queue q
                 USING unnest($1::bytea[], $2::bigint[]) AS d(k, s)
                 WHERE q.recipient_key = d.k AND q.seq = d.s AND q.received_at < $3
                 RETURNING q.recipient_key, q.client_key, octet_length(q.message)::bigint",
            )
            .await?;
        let add_recipients = client.prepare_cached(ADD_RECIPIENTS).await?;
        let add_clients = client.prepare_cached(ADD_CLIENTS).await?;
        let add_total = client.prepare_cached(ADD_TOTAL).await?;
        let empty_recipients = client
            .prepare_cached(
                "DELETE FROM mediator_recipient_usage u USING unnest($1::bytea[]) AS k
                 WHERE u.recipient_key = k AND u.count <= 0",
            )
            .await?;
        let empty_clients = client
            .prepare_cached(
                "DELETE FROM mediator_client_usage u USING unnest($1::bytea[]) AS k
                 WHERE u.client_key = k AND u.bytes <= 0",
            )
            .await?;
        let tx = client.transaction().await?;
        tx.query(&lock_recipients, &[&slices(&recipients)]).await?;
        let deleted = tx.query(&delete, &[&keys, &seqs, &big(before)]).await?;
        if deleted.is_empty() {
            tx.commit().await?;
            return Ok(0);
        }
        let mut by_recipient: HashMap<[u8; 32], (i64, i64)> = HashMap::new();
        let mut by_client: HashMap<[u8; 32], i64> = HashMap::new();
        let mut bytes = 0;
        for row in &deleted {
            let size: i64 = row.get(2);
            let entry = by_recipient
                .entry(key32(row.get(0), "recipient")?)
                .or_default();
            entry.0 -= 1;
            entry.1 -= size;
            *by_client.entry(key32(row.get(1), "client")?).or_default() -= size;
            bytes += size;
        }
        let mut clients: Vec<[u8; 32]> = by_client.keys().copied().collect();
        clients.sort_unstable();
        tx.query(&lock_clients, &[&slices(&clients)]).await?;
        let (r_keys, r_counts, r_bytes) = columns3(&by_recipient);
        let c_keys: Vec<&[u8]> = clients.iter().map(|k| k.as_slice()).collect();
        let c_bytes: Vec<i64> = clients.iter().map(|k| by_client[k]).collect();
        let count = deleted.len() as i64;
        let (count, bytes) = (-count, -bytes);
        let by_recipient: [Param<'_>; 3] = [&r_keys, &r_counts, &r_bytes];
        let by_client: [Param<'_>; 2] = [&c_keys, &c_bytes];
        let shard = shard();
        let in_all: [Param<'_>; 4] = [&count, &bytes, &0i64, &shard];
        let (just_recipients, just_clients): ([Param<'_>; 1], [Param<'_>; 1]) =
            ([&r_keys], [&c_keys]);
        tokio::try_join!(
            tx.execute(&add_recipients, &by_recipient),
            tx.execute(&add_clients, &by_client),
            tx.execute(&add_total, &in_all),
            // Empty usage rows go (a batch waiting for one inserts it afresh).
            tx.execute(&empty_recipients, &just_recipients),
            tx.execute(&empty_clients, &just_clients),
        )?;
        tx.commit().await?;
        Ok(deleted.len() as u64)
    }

    /// Drops the messages of one queue received before `not_before`.
    async fn expire_queue(
        &self,
        recipient: &[u8; 32],
        not_before: u64,
    ) -> Result<u64, StorageError> {
        let mut dropped = 0;
        loop {
            let client = self.db.client().await?;
            let old = client
                .prepare_cached(
                    "SELECT seq FROM mediator_queue WHERE recipient_key = $1 AND received_at < $2
                     ORDER BY seq LIMIT $3",
                )
                .await?;
            let rows = client
                .query(
                    &old,
                    &[&recipient.as_slice(), &big(not_before), &EXPIRE_CHUNK],
                )
                .await?;
            drop(client);
            if rows.is_empty() {
                return Ok(dropped);
            }
            let pairs: Vec<([u8; 32], i64)> = rows.iter().map(|r| (*recipient, r.get(0))).collect();
            dropped += self.drop_messages(&pairs, not_before).await?;
        }
    }

    /// Forgets forward ids past their window, then the oldest while more than the cap are
    /// remembered, in transactions of a bounded size. Ids a batch holds are skipped (the
    /// sweep never waits for a batch, which may be waiting for it), and the count is taken
    /// from a shard last.
    async fn prune_forwards(&self) -> Result<(), StorageError> {
        loop {
            let mut db = self.db.client().await?;
            let totals = db.prepare_cached(TOTALS).await?;
            let add_total = db.prepare_cached(ADD_TOTAL).await?;
            let expired = db
                .prepare_cached(
                    "DELETE FROM mediator_forwards WHERE key IN (
                         SELECT key FROM mediator_forwards WHERE expires_at < $1
                         LIMIT $2 FOR UPDATE SKIP LOCKED)",
                )
                .await?;
            let oldest = db
                .prepare_cached(
                    "DELETE FROM mediator_forwards WHERE key IN (
                         SELECT key FROM mediator_forwards ORDER BY expires_at
                         LIMIT $1 FOR UPDATE SKIP LOCKED)",
                )
                .await?;
            let tx = db.transaction().await?;
            let remembered: i64 = tx.query_one(&totals, &[]).await?.get(2);
            let mut forgotten = tx
                .execute(&expired, &[&big(now()), &FORWARDS_CHUNK])
                .await? as i64;
            let over = (remembered - forgotten - FORWARDS_CAP).clamp(0, FORWARDS_CHUNK - forgotten);
            if over > 0 {
                forgotten += tx.execute(&oldest, &[&over]).await? as i64;
            }
            if forgotten > 0 {
                tx.execute(&add_total, &[&0i64, &0i64, &-forgotten, &shard()])
                    .await?;
            }
            tx.commit().await?;
            if forgotten < FORWARDS_CHUNK {
                return Ok(());
            }
        }
    }
}

/// The three columns of a per-recipient delta map, as arrays.
fn columns3(map: &HashMap<[u8; 32], (i64, i64)>) -> (Vec<&[u8]>, Vec<i64>, Vec<i64>) {
    let mut keys = Vec::with_capacity(map.len());
    let mut counts = Vec::with_capacity(map.len());
    let mut bytes = Vec::with_capacity(map.len());
    for (key, (count, size)) in map {
        keys.push(key.as_slice());
        counts.push(*count);
        bytes.push(*size);
    }
    (keys, counts, bytes)
}

/// What each writer task holds.
#[derive(Clone)]
struct Writer {
    db: Database,
    origin: WakeTag,
    commits: Arc<AtomicU64>,
}

/// Writer tasks per agent. While one commits (its statements run on one PostgreSQL backend,
/// then the fsync), the next gathers and sends its batch. Two did best with two agents on
/// this 2-core machine (more split the same forwards into smaller batches); see
/// BENCHMARKS.md.
const WRITERS: usize = 2;

/// Where the writers take their batches from, one writer at a time.
struct Inbox {
    queue: mpsc::Receiver<Write>,
    /// A write that did not fit the last batch: it starts the next.
    held: Option<Write>,
}

impl Inbox {
    /// The next batch: what waits, and what arrives within `window` of its first write, up
    /// to [`MAX_BATCH`] messages and (past the first) [`MAX_BATCH_BYTES`]. `None` once every
    /// sender is gone.
    async fn batch(&mut self, window: Duration) -> Option<Vec<Write>> {
        let first = match self.held.take() {
            Some(write) => write,
            None => self.queue.recv().await?,
        };
        let mut bytes = first.message.len();
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + window;
        while batch.len() < MAX_BATCH {
            let next = match self.queue.try_recv() {
                Ok(write) => write,
                Err(mpsc::error::TryRecvError::Empty) if !window.is_zero() => {
                    match tokio::time::timeout_at(deadline, self.queue.recv()).await {
                        Ok(Some(write)) => write,
                        _ => break,
                    }
                }
                Err(_) => break,
            };
            if bytes + next.message.len() > MAX_BATCH_BYTES {
                self.held = Some(next);
                break;
            }
            bytes += next.message.len();
            batch.push(next);
        }
        Some(batch)
    }
}

/// A writer: takes turns with the others at `inbox` for a batch, then commits it in one
/// transaction and answers its callers, until every sender is gone.
async fn write_batches(writer: Writer, inbox: Arc<tokio::sync::Mutex<Inbox>>, window: Duration) {
    loop {
        let Some(batch) = inbox.lock().await.batch(window).await else {
            return;
        };
        match writer.commit(&batch).await {
            Ok(outcomes) => {
                for (write, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = write.reply.send(outcome);
                }
            }
            Err(error) => {
                tracing::warn!(%error, messages = batch.len(), "a batch of forwards failed");
                let words = error.to_string();
                for write in batch {
                    let _ = write.reply.send(Err(StorageError::Backend(words.clone())));
                }
            }
        }
    }
}

/// A recipient queue's usage in a batch: messages and bytes.
#[derive(Clone, Copy, Default)]
struct Held {
    count: i64,
    bytes: i64,
}

/// A forward id a batch took: fresh (not remembered before), and whether a message of the
/// batch was queued under it.
struct Taken {
    fresh: bool,
    used: bool,
}

impl Writer {
    /// Stores a batch in one transaction: each write's outcome, in order, once committed.
    async fn commit(
        &self,
        batch: &[Write],
    ) -> Result<Vec<Result<Enqueued, StorageError>>, StorageError> {
        let client = self.db.client().await?;
        let outcomes = self.run(&client, batch).await;
        if outcomes.is_err() {
            // The connection goes back to the pool: outside any transaction.
            let _ = client.batch_execute("ROLLBACK").await;
        }
        outcomes
    }

    /// The batch's transaction on `client`, in two round trips. The first remembers the
    /// forward ids and queues every message (the bulk of the work, under no shared lock),
    /// then locks the usage rows the quotas are checked against. The second takes back what
    /// the checks refused, adds to the usage rows and commits: the usage locks are held for
    /// one round trip and the commit.
    async fn run(
        &self,
        client: &deadpool_postgres::Object,
        batch: &[Write],
    ) -> Result<Vec<Result<Enqueued, StorageError>>, StorageError> {
        let mut recipients: Vec<[u8; 32]> = batch.iter().map(|w| w.recipient_key).collect();
        recipients.sort_unstable();
        recipients.dedup();
        let mut clients: Vec<[u8; 32]> = batch.iter().map(|w| w.client_key).collect();
        clients.sort_unstable();
        clients.dedup();
        // Each forward id once (the first write's window), sorted.
        let mut ids: HashMap<[u8; 16], i64> = HashMap::new();
        for write in batch {
            if let Some(key) = write.dedup {
                let expiry = big(write.received_at.saturating_add(write.quota.dedup_secs));
                ids.entry(key).or_insert(expiry);
            }
        }
        let mut sorted: Vec<([u8; 16], i64)> = ids.into_iter().collect();
        sorted.sort_unstable();
        let id_keys: Vec<&[u8]> = sorted.iter().map(|(k, _)| k.as_slice()).collect();
        let id_expiry: Vec<i64> = sorted.iter().map(|(_, e)| *e).collect();
        let now = big(now());

        let remember = client.prepare_cached(REMEMBER).await?;
        let queue = client.prepare_cached(QUEUE).await?;
        let lock_recipients = client.prepare_cached(LOCK_RECIPIENTS).await?;
        let lock_clients = client.prepare_cached(LOCK_CLIENTS).await?;
        let totals = client.prepare_cached(TOTALS).await?;
        let unqueue = client.prepare_cached(UNQUEUE).await?;
        let forget = client.prepare_cached(FORGET).await?;
        let add_recipients = client.prepare_cached(ADD_RECIPIENTS).await?;
        let add_clients = client.prepare_cached(ADD_CLIENTS).await?;
        let add_total = client.prepare_cached(ADD_TOTAL).await?;
        let notify = client.prepare_cached("SELECT pg_notify($1, $2)").await?;

        let m_recipients: Vec<&[u8]> = batch.iter().map(|w| w.recipient_key.as_slice()).collect();
        let m_clients: Vec<&[u8]> = batch.iter().map(|w| w.client_key.as_slice()).collect();
        let m_times: Vec<i64> = batch.iter().map(|w| big(w.received_at)).collect();
        let m_messages: Vec<&str> = batch.iter().map(|w| w.message.as_str()).collect();
        let (recipient_keys, client_keys) = (slices(&recipients), slices(&clients));
        let p_remember: [Param; 3] = [&id_keys, &id_expiry, &now];
        let p_queue: [Param; 4] = [&m_recipients, &m_clients, &m_times, &m_messages];
        let p_recipients: [Param; 1] = [&recipient_keys];
        let p_clients: [Param; 1] = [&client_keys];
        // Pipelined, run in this order: forward ids and messages (waiting only for another
        // batch holding the same forward id), then the usage locks in the one lock order.
        let (_, remembered, queued, recipient_rows, client_rows, total) = tokio::try_join!(
            client.batch_execute("BEGIN"),
            client.query(&remember, &p_remember),
            client.query_one(&queue, &p_queue),
            client.query(&lock_recipients, &p_recipients),
            client.query(&lock_clients, &p_clients),
            client.query_one(&totals, &[]),
        )?;
        let start: i64 = queued.get(0);
        let mut taken: HashMap<[u8; 16], Taken> = HashMap::with_capacity(remembered.len());
        for row in &remembered {
            if let Ok(key) = <[u8; 16]>::try_from(row.get::<_, &[u8]>(0)) {
                let fresh = row.get(1);
                taken.insert(key, Taken { fresh, used: false });
            }
        }
        let mut queues: HashMap<[u8; 32], Held> = HashMap::with_capacity(recipient_rows.len());
        for row in &recipient_rows {
            queues.insert(
                key32(row.get(0), "recipient")?,
                Held {
                    count: row.get(1),
                    bytes: row.get(2),
                },
            );
        }
        let mut owners: HashMap<[u8; 32], i64> = HashMap::with_capacity(client_rows.len());
        for row in &client_rows {
            owners.insert(key32(row.get(0), "client")?, row.get(1));
        }
        let mut total_bytes: i64 = total.get(1);

        let mut outcomes = Vec::with_capacity(batch.len());
        let (mut back_recipients, mut back_seqs) = (Vec::new(), Vec::new());
        let mut recipient_delta: HashMap<[u8; 32], (i64, i64)> = HashMap::new();
        let mut client_delta: HashMap<[u8; 32], i64> = HashMap::new();
        let mut woken: Vec<WakeTag> = Vec::new();
        let (mut added, mut added_bytes) = (0i64, 0i64);
        for (n, write) in batch.iter().enumerate() {
            let seq = start + n as i64;
            let refusal = match write.dedup.map(|key| taken.get(&key)) {
                // Remembered within its window (by another batch), or queued by this one.
                Some(None | Some(Taken { used: true, .. })) => Err(Enqueued::Duplicate),
                _ => {
                    let queue = queues.entry(write.recipient_key).or_default();
                    let owner = owners.entry(write.client_key).or_default();
                    let size = write.message.len() as i64;
                    let quota = &write.quota;
                    if queue.count >= big(quota.per_recipient as u64) {
                        Ok(Some(StorageError::QueueFull {
                            recipient: write.recipient.clone(),
                            cap: quota.per_recipient,
                        }))
                    } else if *owner + size > big(quota.client_bytes) {
                        Ok(Some(StorageError::ClientQuota {
                            recipient: write.recipient.clone(),
                            cap: quota.client_bytes,
                        }))
                    } else if total_bytes + size > big(quota.total_bytes) {
                        Ok(Some(StorageError::StoreFull {
                            cap: quota.total_bytes,
                        }))
                    } else {
                        queue.count += 1;
                        queue.bytes += size;
                        *owner += size;
                        total_bytes += size;
                        Ok(None)
                    }
                }
            };
            match refusal {
                Ok(None) => {}
                Ok(Some(refused)) => {
                    outcomes.push(Err(refused));
                    back_recipients.push(write.recipient_key.as_slice());
                    back_seqs.push(seq);
                    continue;
                }
                Err(duplicate) => {
                    outcomes.push(Ok(duplicate));
                    back_recipients.push(write.recipient_key.as_slice());
                    back_seqs.push(seq);
                    continue;
                }
            }
            let size = write.message.len() as i64;
            if let Some(taken) = write.dedup.and_then(|key| taken.get_mut(&key)) {
                taken.used = true;
            }
            let delta = recipient_delta.entry(write.recipient_key).or_default();
            delta.0 += 1;
            delta.1 += size;
            *client_delta.entry(write.client_key).or_default() += size;
            added += 1;
            added_bytes += size;
            let tag = wake_tag_of(&write.client_key);
            if !woken.contains(&tag) {
                woken.push(tag);
            }
            outcomes.push(Ok(Enqueued::Queued(QueuedMessage {
                id: message_id(&write.recipient_key, seq as u64),
                recipient_did: write.recipient.clone(),
                received_at: write.received_at,
                message: write.message.clone(),
            })));
        }
        // Ids taken for refused messages only are forgotten again (one past its window was
        // as good as forgotten); each fresh one kept is one more remembered.
        let mut forgotten: Vec<&[u8]> = Vec::new();
        let mut new_forwards = 0i64;
        for (key, taken) in &taken {
            match (taken.used, taken.fresh) {
                (true, true) => new_forwards += 1,
                (true, false) => {}
                (false, fresh) => {
                    forgotten.push(key.as_slice());
                    if !fresh {
                        new_forwards -= 1;
                    }
                }
            }
        }

        let (r_keys, r_counts, r_bytes) = columns3(&recipient_delta);
        let c_keys: Vec<&[u8]> = client_delta.keys().map(|k| k.as_slice()).collect();
        let c_bytes: Vec<i64> = client_delta.values().copied().collect();
        let messages = payloads(&self.origin, &woken);
        let notes: Vec<[Param<'_>; 2]> = messages.iter().map(|m| [&CHANNEL as _, m as _]).collect();
        let shard = shard();
        let taken_back: [Param<'_>; 2] = [&back_recipients, &back_seqs];
        let forget_ids: [Param<'_>; 1] = [&forgotten];
        let by_recipient: [Param<'_>; 3] = [&r_keys, &r_counts, &r_bytes];
        let by_client: [Param<'_>; 2] = [&c_keys, &c_bytes];
        let in_all: [Param<'_>; 4] = [&added, &added_bytes, &new_forwards, &shard];
        let when = |yes: bool, statement, params| async move {
            match yes {
                true => client.execute(statement, params).await.map(|_| ()),
                false => Ok(()),
            }
        };
        tokio::try_join!(
            when(!back_seqs.is_empty(), &unqueue, &taken_back[..]),
            when(!forgotten.is_empty(), &forget, &forget_ids[..]),
            when(added > 0, &add_recipients, &by_recipient[..]),
            when(added > 0, &add_clients, &by_client[..]),
            when(added != 0 || new_forwards != 0, &add_total, &in_all[..]),
            futures_util::future::try_join_all(
                notes.iter().map(|params| client.execute(&notify, params)),
            ),
            client.batch_execute("COMMIT"),
        )?;
        if added > 0 {
            self.commits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(outcomes)
    }
}

/// The wake tag of a client key (its first 8 bytes, as [`wake_tag`] takes them).
fn wake_tag_of(client_key: &[u8; 32]) -> WakeTag {
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&client_key[..8]);
    tag
}

/// A connection that listens on [`CHANNEL`]: the client (kept open) and what the server sends.
type Listening = (
    tokio_postgres::Client,
    futures_util::stream::BoxStream<'static, Result<AsyncMessage, tokio_postgres::Error>>,
);

/// Opens a dedicated connection and `LISTEN`s on it.
async fn listen(db: &Database) -> Result<Listening, StorageError> {
    let (client, mut connection) = db.dedicated().await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx)).boxed();
    {
        let sql = format!("LISTEN {CHANNEL}");
        let listening = client.batch_execute(&sql);
        tokio::pin!(listening);
        loop {
            tokio::select! {
                done = &mut listening => {
                    done?;
                    break;
                }
                message = messages.next() => match message {
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error.into()),
                    None => {
                        return Err(StorageError::Backend(
                            "the listening connection closed".into(),
                        ))
                    }
                },
            }
        }
    }
    Ok((client, messages))
}

fn call_hooks(hooks: &Mutex<Vec<WakeHook>>, wake: RemoteWake) {
    let hooks: Vec<WakeHook> = hooks.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for hook in hooks {
        hook(wake.clone());
    }
}

/// Hands every notification from another agent to the hooks; when the connection drops,
/// reconnects with backoff and then wakes everyone once.
async fn keep_listening(
    db: Database,
    mut listening: Listening,
    origin: WakeTag,
    hooks: Arc<Mutex<Vec<WakeHook>>>,
) {
    loop {
        let (_client, messages) = &mut listening;
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) => match parse_payload(note.payload()) {
                    Some((from, _)) if from == origin => {}
                    Some((_, tags)) => call_hooks(&hooks, RemoteWake::Clients(tags)),
                    None => tracing::debug!("a wake notification that does not parse"),
                },
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %super::describe(&error), "the wake listener's connection failed");
                    break;
                }
            }
        }
        let mut wait = BACKOFF_FIRST;
        listening = loop {
            tokio::time::sleep(wait).await;
            match listen(&db).await {
                Ok(listening) => break listening,
                Err(error) => {
                    tracing::warn!(%error, "reconnecting the wake listener");
                    wait = (wait * 2).min(BACKOFF_MOST);
                }
            }
        };
        tracing::info!(at = %db.location(), "the wake listener reconnected");
        call_hooks(&hooks, RemoteWake::Everyone);
    }
}

impl MediatorStorage for PgMediatorStorage {
    async fn grant(&self, client: &str) -> Result<(), StorageError> {
        let db = self.db.client().await?;
        let statement = db
            .prepare_cached(
                "INSERT INTO mediator_grants (client_key, client, granted_at) VALUES ($1, $2, $3)
                 ON CONFLICT (client_key) DO NOTHING",
            )
            .await?;
        db.execute(
            &statement,
            &[&digest(client).as_slice(), &client, &big(now())],
        )
        .await?;
        Ok(())
    }

    async fn is_granted(&self, client: &str) -> Result<bool, StorageError> {
        let db = self.db.client().await?;
        let statement = db
            .prepare_cached("SELECT 1 FROM mediator_grants WHERE client_key = $1")
            .await?;
        Ok(db
            .query_opt(&statement, &[&digest(client).as_slice()])
            .await?
            .is_some())
    }

    async fn add_recipient(
        &self,
        client: &str,
        recipient: &str,
        cap: usize,
    ) -> Result<RecipientUpdate, StorageError> {
        let client_key = digest(client);
        let recipient_key = digest(recipient);
        let mut db = self.db.client().await?;
        let tx = db.transaction().await?;
        // One client's updates take turns (across agents), so its count is checked with the
        // insert. Advisory keys of two 32-bit halves do not meet the migrations' 64-bit one.
        let half = i32::from_be_bytes([client_key[0], client_key[1], client_key[2], client_key[3]]);
        tx.execute("SELECT pg_advisory_xact_lock(1, $1)", &[&half])
            .await?;
        let owner = tx
            .query_opt(
                "SELECT client_key FROM mediator_recipients WHERE recipient_key = $1",
                &[&recipient_key.as_slice()],
            )
            .await?;
        if let Some(owner) = owner {
            let owner: &[u8] = owner.get(0);
            return Ok(if owner == client_key.as_slice() {
                RecipientUpdate::NoChange
            } else {
                RecipientUpdate::ClientError
            });
        }
        let held: i64 = tx
            .query_one(
                "SELECT count(*) FROM (SELECT 1 FROM mediator_recipients
                 WHERE client_key = $1 LIMIT $2) AS held",
                &[&client_key.as_slice(), &big(cap as u64)],
            )
            .await?
            .get(0);
        if held >= big(cap as u64) {
            return Err(StorageError::TooManyRecipients {
                client: client.to_string(),
                cap,
            });
        }
        let inserted = tx
            .execute(
                "INSERT INTO mediator_recipients (recipient_key, recipient, client_key, client)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (recipient_key) DO NOTHING",
                &[
                    &recipient_key.as_slice(),
                    &recipient,
                    &client_key.as_slice(),
                    &client,
                ],
            )
            .await?;
        if inserted == 0 {
            // Another client registered it meanwhile (its own lock is not ours).
            return Ok(RecipientUpdate::ClientError);
        }
        tx.commit().await?;
        Ok(RecipientUpdate::Success)
    }

    async fn remove_recipient(
        &self,
        client: &str,
        recipient: &str,
    ) -> Result<RecipientUpdate, StorageError> {
        let db = self.db.client().await?;
        let removed = db
            .query_opt(
                "WITH gone AS (
                     DELETE FROM mediator_recipients WHERE recipient_key = $1 AND client_key = $2
                     RETURNING 1)
                 SELECT (SELECT count(*) FROM gone),
                        (SELECT client_key FROM mediator_recipients WHERE recipient_key = $1)",
                &[&digest(recipient).as_slice(), &digest(client).as_slice()],
            )
            .await?;
        let Some(row) = removed else {
            return Ok(RecipientUpdate::NoChange);
        };
        let gone: i64 = row.get(0);
        // The CTE's snapshot still sees the deleted row: an owner other than us is another's.
        let owner: Option<&[u8]> = row.get(1);
        Ok(match (gone, owner) {
            (1.., _) => RecipientUpdate::Success,
            (_, None) => RecipientUpdate::NoChange,
            (_, Some(_)) => RecipientUpdate::ClientError,
        })
    }

    async fn recipients(&self, client: &str) -> Result<Vec<String>, StorageError> {
        let db = self.db.client().await?;
        let statement = db
            .prepare_cached("SELECT recipient FROM mediator_recipients WHERE client_key = $1")
            .await?;
        Ok(db
            .query(&statement, &[&digest(client).as_slice()])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    async fn client_of(&self, recipient: &str) -> Result<Option<String>, StorageError> {
        let db = self.db.client().await?;
        let statement = db
            .prepare_cached("SELECT client FROM mediator_recipients WHERE recipient_key = $1")
            .await?;
        Ok(db
            .query_opt(&statement, &[&digest(recipient).as_slice()])
            .await?
            .map(|row| row.get(0)))
    }

    async fn enqueue(
        &self,
        client: &str,
        recipient: &str,
        message: &str,
        dedup: Option<&str>,
        quota: &QueueQuota,
    ) -> Result<Enqueued, StorageError> {
        let (reply, answer) = oneshot::channel();
        let write = Write {
            client_key: digest(client),
            recipient: recipient.to_string(),
            recipient_key: digest(recipient),
            message: message.to_string(),
            dedup: dedup.map(|id| dedup_key(recipient, id)),
            quota: *quota,
            received_at: now(),
            reply,
        };
        let gone = || StorageError::Backend("the mediator's writer has stopped".into());
        self.writes.send(write).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    async fn peek(
        &self,
        recipient: &str,
        limit: usize,
        not_before: u64,
    ) -> Result<Vec<QueuedMessage>, StorageError> {
        let key = digest(recipient);
        let limit = big(limit as u64);
        let read = || async {
            let db = self.db.client().await?;
            let statement = db
                .prepare_cached(
                    "SELECT seq, received_at, message FROM mediator_queue
                     WHERE recipient_key = $1 ORDER BY seq LIMIT $2",
                )
                .await?;
            Ok::<_, StorageError>(db.query(&statement, &[&key.as_slice(), &limit]).await?)
        };
        let mut rows = read().await?;
        if rows
            .iter()
            .any(|row| (row.get::<_, i64>(1) as u64) < not_before)
        {
            if self.expire_queue(&key, not_before).await? > 0 {
                tracing::debug!(recipient = %recipient, "expired messages dropped");
            }
            rows = read().await?;
        }
        Ok(rows
            .iter()
            .filter(|row| row.get::<_, i64>(1) as u64 >= not_before)
            .map(|row| {
                let seq: i64 = row.get(0);
                QueuedMessage {
                    id: message_id(&key, seq as u64),
                    recipient_did: recipient.to_string(),
                    received_at: row.get::<_, i64>(1) as u64,
                    message: row.get(2),
                }
            })
            .collect())
    }

    async fn count(&self, recipient: &str) -> Result<usize, StorageError> {
        let db = self.db.client().await?;
        let statement = db
            .prepare_cached("SELECT count FROM mediator_recipient_usage WHERE recipient_key = $1")
            .await?;
        Ok(db
            .query_opt(&statement, &[&digest(recipient).as_slice()])
            .await?
            .map_or(0, |row| row.get::<_, i64>(0).max(0) as usize))
    }

    async fn queued_total(&self) -> Result<u64, StorageError> {
        let db = self.db.client().await?;
        let statement = db.prepare_cached(TOTALS).await?;
        Ok(db.query_one(&statement, &[]).await?.get::<_, i64>(0).max(0) as u64)
    }

    async fn remove(&self, recipients: &[String], ids: &[String]) -> Result<usize, StorageError> {
        let keys: Vec<[u8; 32]> = recipients.iter().map(|r| digest(r)).collect();
        let mut pairs = Vec::new();
        for (seq, tag) in ids.iter().filter_map(|id| parse_id(id)) {
            // Ids this store hands out always carry their recipient's tag.
            let (Some(tag), Ok(seq)) = (tag, i64::try_from(seq)) else {
                continue;
            };
            pairs.extend(keys.iter().filter(|k| k[..4] == tag).map(|k| (*k, seq)));
        }
        Ok(self.drop_messages(&pairs, u64::MAX).await? as usize)
    }

    async fn expire(&self, not_before: u64) -> Result<u64, StorageError> {
        let mut dropped = 0;
        loop {
            let db = self.db.client().await?;
            let old = db
                .prepare_cached(
                    "SELECT recipient_key, seq FROM mediator_queue WHERE received_at < $1 LIMIT $2",
                )
                .await?;
            let rows = db.query(&old, &[&big(not_before), &EXPIRE_CHUNK]).await?;
            drop(db);
            if rows.is_empty() {
                break;
            }
            let pairs = rows
                .iter()
                .map(|row| Ok((key32(row.get(0), "recipient")?, row.get(1))))
                .collect::<Result<Vec<_>, StorageError>>()?;
            dropped += self.drop_messages(&pairs, not_before).await?;
        }
        self.prune_forwards().await?;
        Ok(dropped)
    }

    fn on_remote_wake(&self, hook: WakeHook) {
        self.hooks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(hook);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mediator::wake_tag;

    #[test]
    fn wake_payloads_stay_under_the_limit_and_read_back() {
        let origin = [0xab; 8];
        let tags: Vec<WakeTag> = (0..2000u32)
            .map(|n| {
                let mut tag = [0u8; 8];
                tag[..4].copy_from_slice(&n.to_be_bytes());
                tag
            })
            .collect();
        let sent = payloads(&origin, &tags);
        assert!(sent.len() > 1, "2000 tags need more than one notification");
        let mut heard = Vec::new();
        for payload in &sent {
            assert!(payload.len() < 8000, "{}", payload.len());
            let (from, tags) = parse_payload(payload).unwrap();
            assert_eq!(from, origin);
            heard.extend(tags);
        }
        assert_eq!(heard, tags);
        assert!(
            payloads(&origin, &[]).is_empty(),
            "nothing to wake, nothing sent"
        );
        assert_eq!(
            wake_tag_of(&digest("did:example:alice")),
            wake_tag("did:example:alice")
        );
        // A payload that is not ours is ignored, a bad tag skipped.
        assert_eq!(parse_payload("hello"), None);
        assert_eq!(
            parse_payload("abababababababab zz 0000000000000001"),
            Some((origin, vec![[0, 0, 0, 0, 0, 0, 0, 1]]))
        );
    }
}

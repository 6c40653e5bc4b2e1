//! The mediator's store on the shared PostgreSQL database: [`PgMediatorStorage`], with the
//! sled backend's semantics, for several agents at once (migration `0001_mediator`).
//!
//! - Quotas hold across agents: what the queues hold is counted in usage rows (per
//!   recipient, per client, in all) updated in the same transaction as the queue. Every
//!   transaction locks them in one order (recipients, then clients, each sorted by key, then
//!   the totals; the forward ids after them), so agents wait for each other but never deadlock.
//! - Forward ids are remembered in a table (by a digest of recipient and id), checked under the
//!   recipient's usage lock, so the same forward is queued once whichever agents see it.
//! - Group commit: concurrent `enqueue`s go through a bounded channel to one writer task,
//!   which gathers them into one transaction (multi-row statements over arrays) and answers
//!   every caller of the batch after the commit. A refused message (a quota) is answered with
//!   its refusal; the others in its batch are stored.
//! - Live wake across agents: each batch's transaction sends one `NOTIFY` (split to stay
//!   under PostgreSQL's 8000-byte payload) naming the [`WakeTag`]s of the clients it queued
//!   for; every agent holds one connection `LISTEN`ing and hands what it hears to the
//!   mediator's [`WakeHook`]s. When that connection drops it reconnects with backoff and then
//!   wakes everyone once, since a notification may have been lost meanwhile.
//!
//! Every query is by key or index: nothing on a request path reads all queues.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::AsyncMessage;

use super::{Database, PgInvitationStore};
use crate::mediator::{
    dedup_key, digest, message_id, parse_id, seq_of, Enqueued, MediatorStorage, QueueQuota,
    QueuedMessage, RecipientUpdate, RemoteWake, WakeHook, WakeRegistration, WakeTag,
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

const LOCK_TOTAL: &str =
    "SELECT count, bytes, forwards FROM mediator_usage WHERE id = 1 FOR UPDATE";

const ADD_RECIPIENTS: &str = "UPDATE mediator_recipient_usage u
     SET count = u.count + d.c, bytes = u.bytes + d.b
     FROM unnest($1::bytea[], $2::bigint[], $3::bigint[]) AS d(k, c, b)
     WHERE u.recipient_key = d.k";

const ADD_CLIENTS: &str = "UPDATE mediator_client_usage u SET bytes = u.bytes + d.b
     FROM unnest($1::bytea[], $2::bigint[]) AS d(k, b) WHERE u.client_key = d.k";

const ADD_TOTAL: &str = "UPDATE mediator_usage
     SET count = count + $1, bytes = bytes + $2, forwards = forwards + $3 WHERE id = 1";

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
        tokio::spawn(write_batches(
            Writer {
                db: db.clone(),
                origin,
                commits: commits.clone(),
            },
            queue,
            commit_window,
        ));
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
        let in_all: [Param<'_>; 3] = [&count, &bytes, &0i64];
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
    /// Up to `limit` of `recipient`'s oldest messages (after sequence number `after`, when
    /// given) received at or after `not_before`; older ones met on the way are dropped.
    async fn read_queue(
        &self,
        recipient: &str,
        after: Option<i64>,
        limit: usize,
        not_before: u64,
    ) -> Result<Vec<QueuedMessage>, StorageError> {
        let key = digest(recipient);
        let limit = big(limit as u64);
        let after = after.unwrap_or(-1);
        let read = || async {
            let db = self.db.client().await?;
            let statement = db
                .prepare_cached(
                    "SELECT seq, received_at, message FROM mediator_queue
                     WHERE recipient_key = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .await?;
            Ok::<_, StorageError>(
                db.query(&statement, &[&key.as_slice(), &after, &limit])
                    .await?,
            )
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
    /// remembered, in transactions of a bounded size.
    async fn prune_forwards(&self) -> Result<(), StorageError> {
        loop {
            let mut db = self.db.client().await?;
            let lock_total = db.prepare_cached(LOCK_TOTAL).await?;
            let add_total = db.prepare_cached(ADD_TOTAL).await?;
            let expired = db
                .prepare_cached(
                    "DELETE FROM mediator_forwards WHERE key IN (
                         SELECT key FROM mediator_forwards WHERE expires_at < $1 LIMIT $2)",
                )
                .await?;
            let oldest = db
                .prepare_cached(
                    "DELETE FROM mediator_forwards WHERE key IN (
                         SELECT key FROM mediator_forwards ORDER BY expires_at LIMIT $1)",
                )
                .await?;
            let tx = db.transaction().await?;
            // The totals row first, as everywhere (a batch holds it when it inserts ids).
            let remembered: i64 = tx.query_one(&lock_total, &[]).await?.get(2);
            let mut forgotten = tx
                .execute(&expired, &[&big(now()), &FORWARDS_CHUNK])
                .await? as i64;
            let over = (remembered - forgotten - FORWARDS_CAP).clamp(0, FORWARDS_CHUNK - forgotten);
            if over > 0 {
                forgotten += tx.execute(&oldest, &[&over]).await? as i64;
            }
            if forgotten > 0 {
                tx.execute(&add_total, &[&0i64, &0i64, &-forgotten]).await?;
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

/// What the writer task holds.
struct Writer {
    db: Database,
    origin: WakeTag,
    commits: Arc<AtomicU64>,
}

/// The writer: gathers what waits in `queue` into batches and commits each in one
/// transaction, until every sender is gone.
async fn write_batches(writer: Writer, mut queue: mpsc::Receiver<Write>, window: Duration) {
    let mut held: Option<Write> = None;
    loop {
        let first = match held.take() {
            Some(write) => write,
            None => match queue.recv().await {
                Some(write) => write,
                None => return,
            },
        };
        let mut bytes = first.message.len();
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + window;
        while batch.len() < MAX_BATCH {
            let next = match queue.try_recv() {
                Ok(write) => write,
                Err(mpsc::error::TryRecvError::Empty) if !window.is_zero() => {
                    match tokio::time::timeout_at(deadline, queue.recv()).await {
                        Ok(Some(write)) => write,
                        _ => break,
                    }
                }
                Err(_) => break,
            };
            if bytes + next.message.len() > MAX_BATCH_BYTES {
                held = Some(next);
                break;
            }
            bytes += next.message.len();
            batch.push(next);
        }
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

    /// The batch's transaction on `client`, in two round trips: BEGIN, the locks and what
    /// they guard; then the writes and COMMIT (so the locks are held for one round trip, the
    /// quota checks and the commit).
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
        let dedups: Vec<&[u8]> = batch
            .iter()
            .filter_map(|w| w.dedup.as_ref().map(|d| d.as_slice()))
            .collect();
        let lock_recipients = client.prepare_cached(LOCK_RECIPIENTS).await?;
        let lock_clients = client.prepare_cached(LOCK_CLIENTS).await?;
        let lock_total = client.prepare_cached(LOCK_TOTAL).await?;
        let seen = client
            .prepare_cached(
                "SELECT f.key, f.expires_at FROM unnest($1::bytea[]) AS k
                 JOIN mediator_forwards f ON f.key = k",
            )
            .await?;
        let seqs = client
            .prepare_cached(
                "SELECT nextval('mediator_queue_seq') AS s FROM generate_series(1, $1::int) ORDER BY s",
            )
            .await?;
        let insert = client
            .prepare_cached(
                "INSERT INTO mediator_queue (recipient_key, seq, client_key, received_at, message)
                 SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bytea[], $4::bigint[], $5::text[])",
            )
            .await?;
        let remember = client
            .prepare_cached(
                "INSERT INTO mediator_forwards (key, expires_at)
                 SELECT * FROM unnest($1::bytea[], $2::bigint[])
                 ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at",
            )
            .await?;
        let add_recipients = client.prepare_cached(ADD_RECIPIENTS).await?;
        let add_clients = client.prepare_cached(ADD_CLIENTS).await?;
        let add_total = client.prepare_cached(ADD_TOTAL).await?;
        let notify = client.prepare_cached("SELECT pg_notify($1, $2)").await?;

        // In the one lock order: recipients, clients, totals (pipelined: sent in this order).
        let (recipient_keys, client_keys) = (slices(&recipients), slices(&clients));
        let wanted = batch.len() as i32;
        let p_recipients: [Param; 1] = [&recipient_keys];
        let p_clients: [Param; 1] = [&client_keys];
        let p_dedups: [Param; 1] = [&dedups];
        let p_wanted: [Param; 1] = [&wanted];
        let (_, recipient_rows, client_rows, total, seen_rows, seq_rows) = tokio::try_join!(
            client.batch_execute("BEGIN"),
            client.query(&lock_recipients, &p_recipients),
            client.query(&lock_clients, &p_clients),
            client.query_one(&lock_total, &[]),
            client.query(&seen, &p_dedups),
            client.query(&seqs, &p_wanted),
        )?;
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
        let now = big(now());
        // Ids remembered (and whether still within their window), then those taken here.
        let mut known: HashMap<[u8; 16], bool> = HashMap::with_capacity(seen_rows.len());
        for row in &seen_rows {
            let key: &[u8] = row.get(0);
            let expires_at: i64 = row.get(1);
            if let Ok(key) = <[u8; 16]>::try_from(key) {
                known.insert(key, expires_at >= now);
            }
        }

        let mut outcomes = Vec::with_capacity(batch.len());
        let mut taken: HashSet<[u8; 16]> = HashSet::new();
        let (mut q_recipients, mut q_seqs, mut q_clients, mut q_times, mut q_messages) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut f_keys, mut f_expiry) = (Vec::new(), Vec::new());
        let mut new_forwards = 0i64;
        let mut recipient_delta: HashMap<[u8; 32], (i64, i64)> = HashMap::new();
        let mut client_delta: HashMap<[u8; 32], i64> = HashMap::new();
        let mut woken: Vec<WakeTag> = Vec::new();
        let (mut added, mut added_bytes) = (0i64, 0i64);
        for (write, seq_row) in batch.iter().zip(&seq_rows) {
            if let Some(key) = &write.dedup {
                if taken.contains(key) || known.get(key) == Some(&true) {
                    outcomes.push(Ok(Enqueued::Duplicate));
                    continue;
                }
            }
            let size = write.message.len() as i64;
            let queue = queues.entry(write.recipient_key).or_default();
            let owner = owners.entry(write.client_key).or_default();
            let quota = &write.quota;
            let refusal = if queue.count >= big(quota.per_recipient as u64) {
                Some(StorageError::QueueFull {
                    recipient: write.recipient.clone(),
                    cap: quota.per_recipient,
                })
            } else if *owner + size > big(quota.client_bytes) {
                Some(StorageError::ClientQuota {
                    recipient: write.recipient.clone(),
                    cap: quota.client_bytes,
                })
            } else if total_bytes + size > big(quota.total_bytes) {
                Some(StorageError::StoreFull {
                    cap: quota.total_bytes,
                })
            } else {
                None
            };
            if let Some(refusal) = refusal {
                outcomes.push(Err(refusal));
                continue;
            }
            queue.count += 1;
            queue.bytes += size;
            *owner += size;
            total_bytes += size;
            let delta = recipient_delta.entry(write.recipient_key).or_default();
            delta.0 += 1;
            delta.1 += size;
            *client_delta.entry(write.client_key).or_default() += size;
            added += 1;
            added_bytes += size;
            if let Some(key) = &write.dedup {
                taken.insert(*key);
                if !known.contains_key(key) {
                    new_forwards += 1;
                }
                f_keys.push(key.as_slice());
                f_expiry.push(big(write.received_at.saturating_add(quota.dedup_secs)));
            }
            let seq: i64 = seq_row.get(0);
            q_recipients.push(write.recipient_key.as_slice());
            q_seqs.push(seq);
            q_clients.push(write.client_key.as_slice());
            q_times.push(big(write.received_at));
            q_messages.push(write.message.as_str());
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
        if added > 0 {
            let (r_keys, r_counts, r_bytes) = columns3(&recipient_delta);
            let c_keys: Vec<&[u8]> = client_delta.keys().map(|k| k.as_slice()).collect();
            let c_bytes: Vec<i64> = client_delta.values().copied().collect();
            let messages = payloads(&self.origin, &woken);
            let notes: Vec<[Param<'_>; 2]> =
                messages.iter().map(|m| [&CHANNEL as _, m as _]).collect();
            let notified = futures_util::future::try_join_all(
                notes.iter().map(|params| client.execute(&notify, params)),
            );
            let queued: [Param<'_>; 5] =
                [&q_recipients, &q_seqs, &q_clients, &q_times, &q_messages];
            let remembered: [Param<'_>; 2] = [&f_keys, &f_expiry];
            let by_recipient: [Param<'_>; 3] = [&r_keys, &r_counts, &r_bytes];
            let by_client: [Param<'_>; 2] = [&c_keys, &c_bytes];
            let in_all: [Param<'_>; 3] = [&added, &added_bytes, &new_forwards];
            tokio::try_join!(
                client.execute(&insert, &queued),
                client.execute(&remember, &remembered),
                client.execute(&add_recipients, &by_recipient),
                client.execute(&add_clients, &by_client),
                client.execute(&add_total, &in_all),
                notified,
                client.batch_execute("COMMIT"),
            )?;
        } else {
            client.batch_execute("COMMIT").await?;
        }
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
        self.read_queue(recipient, None, limit, not_before).await
    }

    async fn peek_after(
        &self,
        recipient: &str,
        after: &str,
        limit: usize,
        not_before: u64,
    ) -> Result<Vec<QueuedMessage>, StorageError> {
        let after = i64::try_from(seq_of(after)?)
            .map_err(|_| StorageError::Corrupt(format!("{after:?} is out of range")))?;
        self.read_queue(recipient, Some(after), limit, not_before)
            .await
    }

    async fn newest(&self, recipient: &str) -> Result<Option<String>, StorageError> {
        let key = digest(recipient);
        let db = self.db.client().await?;
        let statement = db
            .prepare_cached(
                "SELECT seq FROM mediator_queue WHERE recipient_key = $1
                 ORDER BY seq DESC LIMIT 1",
            )
            .await?;
        Ok(db
            .query_opt(&statement, &[&key.as_slice()])
            .await?
            .map(|row| message_id(&key, row.get::<_, i64>(0) as u64)))
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
        let statement = db
            .prepare_cached("SELECT count FROM mediator_usage WHERE id = 1")
            .await?;
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

    async fn set_wake(
        &self,
        client: &str,
        wake: Option<&WakeRegistration>,
    ) -> Result<Option<WakeRegistration>, StorageError> {
        let client_key = digest(client);
        let mut db = self.db.client().await?;
        let tx = db.transaction().await?;
        // One client's registrations take turns (across agents), so the one replaced is the
        // one returned. Class 2 of the two-key advisory locks (recipient updates take 1).
        let half = i32::from_be_bytes([client_key[0], client_key[1], client_key[2], client_key[3]]);
        tx.execute("SELECT pg_advisory_xact_lock(2, $1)", &[&half])
            .await?;
        let previous = tx
            .query_opt(
                "SELECT registration FROM mediator_wakes WHERE client_key = $1",
                &[&client_key.as_slice()],
            )
            .await?
            .map(|row| WakeRegistration::decode(row.get(0)))
            .transpose()?;
        match wake {
            Some(wake) => {
                tx.execute(
                    "INSERT INTO mediator_wakes (client_key, registration, updated_at)
                     VALUES ($1, $2, $3)
                     ON CONFLICT (client_key) DO UPDATE
                     SET registration = EXCLUDED.registration, updated_at = EXCLUDED.updated_at",
                    &[&client_key.as_slice(), &wake.encode(), &big(now())],
                )
                .await?;
            }
            None => {
                tx.execute(
                    "DELETE FROM mediator_wakes WHERE client_key = $1",
                    &[&client_key.as_slice()],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(previous)
    }

    async fn wake_of(&self, client: &str) -> Result<Option<WakeRegistration>, StorageError> {
        let db = self.db.client().await?;
        let statement = db
            .prepare_cached("SELECT registration FROM mediator_wakes WHERE client_key = $1")
            .await?;
        db.query_opt(&statement, &[&digest(client).as_slice()])
            .await?
            .map(|row| WakeRegistration::decode(row.get(0)))
            .transpose()
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

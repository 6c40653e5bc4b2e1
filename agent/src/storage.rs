//! The mediator's durable state behind one trait, [`MediatorStorage`]: mediation records
//! (Coordinate Mediation 3.0), the recipient DIDs each mediated client registered, and a
//! per-recipient message queue (Pickup 3.0). [`SledStorage`] is the embedded default; a shared
//! PostgreSQL backend for several agents implements the same trait.
//!
//! Durability: `enqueue` and every mutation return only once the write is on disk. Writes go to
//! sled's memory first; a committer thread then runs one `flush` (fsync) for every write that
//! was waiting when it started, so concurrent requests share one fsync (group commit) instead
//! of paying one each.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::invitations::InvitationRecord;
use sha2::{Digest, Sha256};

/// A queued message as pickup hands it out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMessage {
    /// Unique within the recipient's queue; what `messages-received` acknowledges.
    pub id: String,
    pub recipient_did: String,
    /// Seconds since the epoch when the mediator accepted it.
    pub received_at: u64,
    /// The envelope, exactly as it arrived inside the forward.
    pub message: String,
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the queue for {recipient} is full ({cap} messages waiting)")]
    QueueFull { recipient: String, cap: usize },
    #[error("storage failed: {0}")]
    Backend(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

impl From<sled::Error> for StorageError {
    fn from(error: sled::Error) -> Self {
        StorageError::Backend(error.to_string())
    }
}

/// The mediator's state. Every method that changes something returns after it is durable.
pub trait MediatorStorage: Send + Sync + 'static {
    /// Records that `client` was granted mediation.
    fn grant(&self, client: &str) -> impl Future<Output = Result<(), StorageError>> + Send;
    fn is_granted(&self, client: &str) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// Registers `recipient` (a DID) for `client`; false when it already was. Refused when
    /// another client holds it.
    fn add_recipient(
        &self,
        client: &str,
        recipient: &str,
    ) -> impl Future<Output = Result<RecipientUpdate, StorageError>> + Send;
    fn remove_recipient(
        &self,
        client: &str,
        recipient: &str,
    ) -> impl Future<Output = Result<RecipientUpdate, StorageError>> + Send;
    /// The recipient DIDs `client` registered.
    fn recipients(
        &self,
        client: &str,
    ) -> impl Future<Output = Result<Vec<String>, StorageError>> + Send;
    /// The client a recipient DID belongs to, if any.
    fn client_of(
        &self,
        recipient: &str,
    ) -> impl Future<Output = Result<Option<String>, StorageError>> + Send;
    /// Appends to the recipient's queue, durably, unless it holds `cap` messages already.
    fn enqueue(
        &self,
        recipient: &str,
        message: &str,
        cap: usize,
    ) -> impl Future<Output = Result<QueuedMessage, StorageError>> + Send;
    /// Up to `limit` of the oldest messages for `recipient`, in arrival order.
    fn peek(
        &self,
        recipient: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<QueuedMessage>, StorageError>> + Send;
    fn count(&self, recipient: &str) -> impl Future<Output = Result<usize, StorageError>> + Send;
    /// Messages waiting in all queues.
    fn queued_total(&self) -> impl Future<Output = Result<u64, StorageError>> + Send;
    /// Deletes the acknowledged messages of `recipient`; returns how many existed.
    fn remove(
        &self,
        recipient: &str,
        ids: &[String],
    ) -> impl Future<Output = Result<usize, StorageError>> + Send;
    /// Stores an invitation under its code, durably.
    fn put_invitation(
        &self,
        record: &InvitationRecord,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;
    fn invitation(
        &self,
        code: &str,
    ) -> impl Future<Output = Result<Option<InvitationRecord>, StorageError>> + Send;
    /// Marks the single-use invitation whose message id is `invitation_id` used, once: true
    /// when this call used it; false when it was already used, is multi-use, or unknown.
    fn use_invitation(
        &self,
        invitation_id: &str,
        at: u64,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;
}

/// The outcome of a recipient update, in Coordinate Mediation 3.0's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientUpdate {
    Success,
    NoChange,
    /// Another client holds this recipient DID.
    ClientError,
}

/// One fsync for every write waiting when it starts, after a short window for more to join.
pub(crate) struct GroupCommit {
    waiters:
        std::sync::Mutex<std::sync::mpsc::Sender<tokio::sync::oneshot::Sender<Result<(), String>>>>,
}

impl GroupCommit {
    pub(crate) fn start(db: sled::Db, window: Duration) -> Result<GroupCommit, StorageError> {
        let (sender, receiver) =
            std::sync::mpsc::channel::<tokio::sync::oneshot::Sender<Result<(), String>>>();
        std::thread::Builder::new()
            .name("sled-group-commit".into())
            .spawn(move || {
                // Ends when the storage (every sender) is dropped.
                while let Ok(first) = receiver.recv() {
                    if !window.is_zero() {
                        std::thread::sleep(window);
                    }
                    let mut batch = vec![first];
                    batch.extend(receiver.try_iter());
                    let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
                    for waiter in batch {
                        let _ = waiter.send(result.clone());
                    }
                }
            })
            .map_err(|e| StorageError::Backend(format!("cannot start the committer: {e}")))?;
        Ok(GroupCommit {
            waiters: std::sync::Mutex::new(sender),
        })
    }

    /// Resolves once everything written before the call is on disk.
    pub(crate) async fn durable(&self) -> Result<(), StorageError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(sender)
            .map_err(|_| StorageError::Backend("the committer stopped".into()))?;
        receiver
            .await
            .map_err(|_| StorageError::Backend("the committer stopped".into()))?
            .map_err(StorageError::Backend)
    }
}

/// The embedded sled backend.
pub struct SledStorage {
    db: sled::Db,
    commit: GroupCommit,
    grants: sled::Tree,
    recipients: sled::Tree,
    queue: sled::Tree,
    /// Messages waiting per recipient (by key prefix). Derived from `queue` when the store
    /// opens, so it needs no writes of its own; the lock also serialises the cap check with
    /// the insert.
    counts: std::sync::Mutex<std::collections::HashMap<[u8; 32], u64>>,
    invitations: sled::Tree,
    /// Invitation message id → code.
    invitation_ids: sled::Tree,
}

fn recipient_prefix(recipient: &str) -> [u8; 32] {
    Sha256::digest(recipient.as_bytes()).into()
}

fn queue_key(recipient: &str, seq: u64) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(&recipient_prefix(recipient));
    key[32..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The most memory sled's page cache may take.
const CACHE_BYTES: u64 = 128 << 20;

/// Version tag of the queue value layout: the tag, the arrival time (u64, big-endian), then the
/// envelope's bytes as they arrived. Values written by earlier versions are JSON and start
/// with `{`.
const QUEUED_V1: u8 = 1;

fn encode_queued(received_at: u64, message: &str) -> Vec<u8> {
    let mut value = Vec::with_capacity(9 + message.len());
    value.push(QUEUED_V1);
    value.extend_from_slice(&received_at.to_be_bytes());
    value.extend_from_slice(message.as_bytes());
    value
}

fn decode_queued(recipient: &str, key: &[u8], value: &[u8]) -> Result<QueuedMessage, StorageError> {
    let corrupt = |what: &str| StorageError::Corrupt(format!("queued message: {what}"));
    match value.split_first() {
        Some((&QUEUED_V1, rest)) if rest.len() >= 8 => {
            let (time, message) = rest.split_at(8);
            let seq: [u8; 8] = key
                .get(32..40)
                .and_then(|s| s.try_into().ok())
                .ok_or_else(|| corrupt("the key is not 40 bytes"))?;
            Ok(QueuedMessage {
                id: format!("{:016x}", u64::from_be_bytes(seq)),
                recipient_did: recipient.to_string(),
                received_at: u64::from_be_bytes(time.try_into().map_err(|_| corrupt("time"))?),
                message: String::from_utf8(message.to_vec())
                    .map_err(|_| corrupt("the envelope is not UTF-8"))?,
            })
        }
        Some((b'{', _)) => serde_json::from_slice(value).map_err(|e| corrupt(&e.to_string())),
        _ => Err(corrupt("unknown layout")),
    }
}

fn parse_id(id: &str) -> Option<u64> {
    (id.len() == 16).then(|| u64::from_str_radix(id, 16).ok())?
}

fn now() -> u64 {
    wallet_core::didcomm::now()
}

impl SledStorage {
    /// Opens (or creates) the store at `path`. `commit_window` is how long the committer
    /// waits after the first write of a batch for others to join it before it flushes: longer
    /// windows mean fewer fsyncs (and less CPU) per write under load, and that much more
    /// latency for a lone write.
    pub fn open(path: &Path, commit_window: Duration) -> Result<SledStorage, StorageError> {
        let db = wallet_core::store::open_sled(
            sled::Config::new()
                .path(path)
                .mode(sled::Mode::HighThroughput)
                // Every write is flushed by the group committer; a timer flush on top of it
                // only competes for the log.
                .flush_every_ms(None)
                // sled caches up to 1 GiB by default; queued messages are read once, at pickup.
                .cache_capacity(CACHE_BYTES),
        )?;
        let queue = db.open_tree("queue")?;
        let mut counts = std::collections::HashMap::<[u8; 32], u64>::new();
        for key in queue.iter().keys() {
            let key = key?;
            let prefix: [u8; 32] = key
                .get(..32)
                .and_then(|p| p.try_into().ok())
                .ok_or_else(|| StorageError::Corrupt("a queue key is too short".into()))?;
            *counts.entry(prefix).or_default() += 1;
        }
        // The count tree of earlier versions is not used any more.
        let _ = db.drop_tree("counts");
        Ok(SledStorage {
            commit: GroupCommit::start(db.clone(), commit_window)?,
            grants: db.open_tree("grants")?,
            recipients: db.open_tree("recipients")?,
            queue,
            counts: std::sync::Mutex::new(counts),
            invitations: db.open_tree("invitations")?,
            invitation_ids: db.open_tree("invitation_ids")?,
            db,
        })
    }

    async fn durable(&self) -> Result<(), StorageError> {
        self.commit.durable().await
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<[u8; 32], u64>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count_now(&self, recipient: &str) -> Result<usize, StorageError> {
        Ok(self
            .counts()
            .get(&recipient_prefix(recipient))
            .copied()
            .unwrap_or(0) as usize)
    }
}

impl MediatorStorage for SledStorage {
    async fn grant(&self, client: &str) -> Result<(), StorageError> {
        self.grants
            .insert(client.as_bytes(), &now().to_be_bytes())?;
        self.durable().await
    }

    async fn is_granted(&self, client: &str) -> Result<bool, StorageError> {
        Ok(self.grants.contains_key(client.as_bytes())?)
    }

    async fn add_recipient(
        &self,
        client: &str,
        recipient: &str,
    ) -> Result<RecipientUpdate, StorageError> {
        let outcome = self.recipients.compare_and_swap(
            recipient.as_bytes(),
            None as Option<&[u8]>,
            Some(client.as_bytes()),
        )?;
        let update = match outcome {
            Ok(()) => RecipientUpdate::Success,
            Err(current) if current.current.as_deref() == Some(client.as_bytes()) => {
                RecipientUpdate::NoChange
            }
            Err(_) => RecipientUpdate::ClientError,
        };
        self.durable().await?;
        Ok(update)
    }

    async fn remove_recipient(
        &self,
        client: &str,
        recipient: &str,
    ) -> Result<RecipientUpdate, StorageError> {
        let outcome = self.recipients.compare_and_swap(
            recipient.as_bytes(),
            Some(client.as_bytes()),
            None as Option<&[u8]>,
        )?;
        let update = match outcome {
            Ok(()) => RecipientUpdate::Success,
            Err(current) if current.current.is_none() => RecipientUpdate::NoChange,
            Err(_) => RecipientUpdate::ClientError,
        };
        self.durable().await?;
        Ok(update)
    }

    async fn recipients(&self, client: &str) -> Result<Vec<String>, StorageError> {
        let mut found = Vec::new();
        for entry in self.recipients.iter() {
            let (recipient, owner) = entry?;
            if owner.as_ref() == client.as_bytes() {
                found.push(
                    String::from_utf8(recipient.to_vec())
                        .map_err(|_| StorageError::Corrupt("recipient DID is not UTF-8".into()))?,
                );
            }
        }
        Ok(found)
    }

    async fn client_of(&self, recipient: &str) -> Result<Option<String>, StorageError> {
        self.recipients
            .get(recipient.as_bytes())?
            .map(|owner| {
                String::from_utf8(owner.to_vec())
                    .map_err(|_| StorageError::Corrupt("client DID is not UTF-8".into()))
            })
            .transpose()
    }

    async fn enqueue(
        &self,
        recipient: &str,
        message: &str,
        cap: usize,
    ) -> Result<QueuedMessage, StorageError> {
        let seq = self.db.generate_id()?;
        let received_at = now();
        let value = encode_queued(received_at, message);
        let key = queue_key(recipient, seq);
        let prefix = recipient_prefix(recipient);
        {
            let mut counts = self.counts();
            let count = counts.entry(prefix).or_default();
            if *count as usize >= cap {
                return Err(StorageError::QueueFull {
                    recipient: recipient.to_string(),
                    cap,
                });
            }
            self.queue.insert(&key[..], value)?;
            *count += 1;
        }
        self.durable().await?;
        Ok(QueuedMessage {
            id: format!("{seq:016x}"),
            recipient_did: recipient.to_string(),
            received_at,
            message: message.to_string(),
        })
    }

    async fn peek(
        &self,
        recipient: &str,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, StorageError> {
        let mut messages = Vec::new();
        for entry in self
            .queue
            .scan_prefix(recipient_prefix(recipient))
            .take(limit)
        {
            let (key, value) = entry?;
            messages.push(decode_queued(recipient, &key, &value)?);
        }
        Ok(messages)
    }

    async fn count(&self, recipient: &str) -> Result<usize, StorageError> {
        self.count_now(recipient)
    }

    async fn queued_total(&self) -> Result<u64, StorageError> {
        Ok(self.counts().values().sum())
    }

    async fn remove(&self, recipient: &str, ids: &[String]) -> Result<usize, StorageError> {
        let keys: Vec<[u8; 40]> = ids
            .iter()
            .filter_map(|id| parse_id(id))
            .map(|seq| queue_key(recipient, seq))
            .collect();
        let prefix = recipient_prefix(recipient);
        let mut removed = 0u64;
        {
            let mut counts = self.counts();
            for key in &keys {
                if self.queue.remove(key.as_slice())?.is_some() {
                    removed += 1;
                }
            }
            if let Some(count) = counts.get_mut(&prefix) {
                *count = count.saturating_sub(removed);
                if *count == 0 {
                    counts.remove(&prefix);
                }
            }
        }
        self.durable().await?;
        Ok(removed as usize)
    }

    async fn put_invitation(&self, record: &InvitationRecord) -> Result<(), StorageError> {
        let value = serde_json::to_vec(record).map_err(|e| StorageError::Corrupt(e.to_string()))?;
        self.invitations.insert(record.code.as_bytes(), value)?;
        self.invitation_ids
            .insert(record.message.id.as_bytes(), record.code.as_bytes())?;
        self.durable().await
    }

    async fn invitation(&self, code: &str) -> Result<Option<InvitationRecord>, StorageError> {
        self.invitations
            .get(code.as_bytes())?
            .map(|v| serde_json::from_slice(&v).map_err(|e| StorageError::Corrupt(e.to_string())))
            .transpose()
    }

    async fn use_invitation(&self, invitation_id: &str, at: u64) -> Result<bool, StorageError> {
        let Some(code) = self.invitation_ids.get(invitation_id.as_bytes())? else {
            return Ok(false);
        };
        let code = code.as_ref();
        let mut used_now = false;
        // The closure may run again if another writer raced us; only its last run counts. It
        // never returns None, which would delete the record.
        self.invitations.fetch_and_update(code, |current| {
            used_now = false;
            let current = current?;
            let Ok(mut record) = serde_json::from_slice::<InvitationRecord>(current) else {
                return Some(current.to_vec());
            };
            if record.single_use && record.used_at.is_none() {
                record.used_at = Some(at);
                used_now = true;
            }
            Some(serde_json::to_vec(&record).unwrap_or_else(|_| current.to_vec()))
        })?;
        self.durable().await?;
        Ok(used_now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_values_read_back_in_both_layouts() {
        let key = queue_key("did:example:phone", 0x2a);
        let envelope = r#"{"protected":"x","ciphertext":"y"}"#;
        let read = decode_queued("did:example:phone", &key, &encode_queued(7, envelope)).unwrap();
        assert_eq!(read.id, "000000000000002a");
        assert_eq!((read.received_at, read.message.as_str()), (7, envelope));

        // The JSON layout of earlier versions still reads.
        let legacy = serde_json::to_vec(&read).unwrap();
        assert_eq!(
            decode_queued("did:example:phone", &key, &legacy).unwrap(),
            read
        );

        for bad in [&b""[..], b"\x01short", b"\x09whatever", b"{not json"] {
            let error = decode_queued("did:example:phone", &key, bad).unwrap_err();
            assert!(error.to_string().contains("queued message"), "{error}");
        }
    }
}

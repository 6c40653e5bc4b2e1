//! The mediator's durable state behind one trait, [`MediatorStorage`]: mediation records
//! (Coordinate Mediation 3.0), the recipient DIDs each mediated client registered (with a
//! client → recipients index, so a client's recipients are one prefix scan), and a
//! per-recipient message queue (Pickup 3.0) under quotas: messages per recipient, queued bytes
//! per client, queued bytes in all, and an age after which a queued message expires.
//! [`SledStorage`] is its one backend today (embedded); another backend implements the same
//! trait. The invitations this agent hosts are kept beside it, in the same sled database, by
//! [`SledInvitationStore`](crate::invitations::SledInvitationStore) ([`SledStorage::invitations`]).
//!
//! Durability: `enqueue` and every mutation return only once the write is on disk
//! ([`crate::group_commit`]: concurrent writes share one fsync).

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use lanyard_protocol::protocols::push_notifications::PushService;
use sha2::{Digest, Sha256};

use crate::group_commit::GroupCommit;
use crate::invitations::SledInvitationStore;
use crate::replay::SeenSet;
use crate::storage::StorageError;

/// A queued message as pickup hands it out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedMessage {
    /// Unique within the recipient's queue; what `messages-received` acknowledges.
    pub id: String,
    /// The recipient DID whose queue holds it.
    pub recipient_did: String,
    /// Seconds since the epoch when the mediator accepted it.
    pub received_at: u64,
    /// The envelope, exactly as it arrived inside the forward.
    pub message: String,
}

/// The quotas one `enqueue` is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueQuota {
    /// Messages one recipient's queue may hold.
    pub per_recipient: usize,
    /// Bytes all of one client's queues may hold.
    pub client_bytes: u64,
    /// Bytes all queues together may hold.
    pub total_bytes: u64,
    /// How long a forward's id is remembered, so that the same forward is queued once.
    pub dedup_secs: u64,
}

/// What `enqueue` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored, as this.
    Queued(QueuedMessage),
    /// A forward with the same id for the same recipient was queued within the dedup window:
    /// nothing new was stored.
    Duplicate,
}

/// How a client asked to be woken when a message waits and it has no live socket: the wake
/// service and the opaque handle the push gateway gave for its device. The device token itself
/// is never stored by the mediator.
#[derive(Clone, PartialEq, Eq)]
pub struct WakeRegistration {
    /// The service the device registered with.
    pub service: PushService,
    /// The push gateway's handle for the device (base64url of 32 random bytes).
    pub handle: String,
}

impl std::fmt::Debug for WakeRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The handle is a capability to wake the device: kept out of logs.
        f.debug_struct("WakeRegistration")
            .field("service", &self.service)
            .field("handle", &"[redacted]")
            .finish()
    }
}

impl WakeRegistration {
    /// What a backend stores: `service SP handle`.
    pub(crate) fn encode(&self) -> String {
        format!("{} {}", self.service.name(), self.handle)
    }

    /// Reads back what [`WakeRegistration::encode`] wrote.
    pub(crate) fn decode(stored: &str) -> Result<WakeRegistration, StorageError> {
        let corrupt = || StorageError::Corrupt("a stored wake registration does not read".into());
        let (service, handle) = stored.split_once(' ').ok_or_else(corrupt)?;
        Ok(WakeRegistration {
            service: service.parse().map_err(|_| corrupt())?,
            handle: handle.to_string(),
        })
    }
}

/// The mediator's state. Every method that changes something returns after it is durable.
pub trait MediatorStorage: Send + Sync + 'static {
    /// Records that `client` was granted mediation.
    fn grant(&self, client: &str) -> impl Future<Output = Result<(), StorageError>> + Send;
    /// Whether `client` was granted mediation.
    fn is_granted(&self, client: &str) -> impl Future<Output = Result<bool, StorageError>> + Send;
    /// Registers `recipient` (a DID) for `client`, unless `client` holds `cap` recipients
    /// already. `ClientError` when another client holds it.
    fn add_recipient(
        &self,
        client: &str,
        recipient: &str,
        cap: usize,
    ) -> impl Future<Output = Result<RecipientUpdate, StorageError>> + Send;
    /// Unregisters `recipient` from `client`. `ClientError` when another client holds it.
    fn remove_recipient(
        &self,
        client: &str,
        recipient: &str,
    ) -> impl Future<Output = Result<RecipientUpdate, StorageError>> + Send;
    /// The recipient DIDs `client` registered (one index prefix scan, not a scan of all).
    fn recipients(
        &self,
        client: &str,
    ) -> impl Future<Output = Result<Vec<String>, StorageError>> + Send;
    /// The client a recipient DID belongs to, if any.
    fn client_of(
        &self,
        recipient: &str,
    ) -> impl Future<Output = Result<Option<String>, StorageError>> + Send;
    /// Appends to the recipient's queue, durably, within `quota`. `dedup` (a forward's id)
    /// makes the call idempotent: the same id for the same recipient within
    /// `quota.dedup_secs` stores nothing new.
    fn enqueue(
        &self,
        client: &str,
        recipient: &str,
        message: &str,
        dedup: Option<&str>,
        quota: &QueueQuota,
    ) -> impl Future<Output = Result<Enqueued, StorageError>> + Send;
    /// Up to `limit` of the oldest messages for `recipient` received at or after
    /// `not_before`, in arrival order; older ones met on the way are dropped.
    fn peek(
        &self,
        recipient: &str,
        limit: usize,
        not_before: u64,
    ) -> impl Future<Output = Result<Vec<QueuedMessage>, StorageError>> + Send;
    /// Like [`MediatorStorage::peek`], but only messages queued after the one `after` names
    /// (an id [`MediatorStorage::newest`] or `peek` gave): what Pickup 4.0's live mode pushes,
    /// as the messages already queued when it was switched on must be asked for.
    fn peek_after(
        &self,
        recipient: &str,
        after: &str,
        limit: usize,
        not_before: u64,
    ) -> impl Future<Output = Result<Vec<QueuedMessage>, StorageError>> + Send;
    /// The id of the newest message queued for `recipient`, if any (one index lookup).
    fn newest(
        &self,
        recipient: &str,
    ) -> impl Future<Output = Result<Option<String>, StorageError>> + Send;
    /// Messages waiting for `recipient`.
    fn count(&self, recipient: &str) -> impl Future<Output = Result<usize, StorageError>> + Send;
    /// Messages waiting in all queues.
    fn queued_total(&self) -> impl Future<Output = Result<u64, StorageError>> + Send;
    /// Deletes the acknowledged messages among the queues of `recipients`; returns how many
    /// existed.
    fn remove(
        &self,
        recipients: &[String],
        ids: &[String],
    ) -> impl Future<Output = Result<usize, StorageError>> + Send;
    /// Drops every queued message received before `not_before`; returns how many.
    fn expire(&self, not_before: u64) -> impl Future<Output = Result<u64, StorageError>> + Send;
    /// Sets (`Some`) or clears (`None`) `client`'s wake registration, durably; returns the one
    /// it replaced.
    fn set_wake(
        &self,
        client: &str,
        wake: Option<&WakeRegistration>,
    ) -> impl Future<Output = Result<Option<WakeRegistration>, StorageError>> + Send;
    /// `client`'s wake registration, if it has one.
    fn wake_of(
        &self,
        client: &str,
    ) -> impl Future<Output = Result<Option<WakeRegistration>, StorageError>> + Send;
    /// Has `hook` called whenever another agent sharing this store queued messages, naming
    /// whose live sessions to wake ([`RemoteWake`]). A store only this agent writes (sled)
    /// never calls it: the mediator wakes its own sessions after each `enqueue`.
    fn on_remote_wake(&self, hook: WakeHook) {
        let _ = hook;
    }
}

/// A short tag of a client DID (the first 8 bytes of its SHA-256): how one agent tells the
/// others whose live sessions to wake, without sending DIDs around. Two clients sharing a tag
/// only cost a needless look at the queue.
pub type WakeTag = [u8; 8];

/// The [`WakeTag`] of `client`.
pub fn wake_tag(client: &str) -> WakeTag {
    let mut tag = [0u8; 8];
    tag.copy_from_slice(&digest(client)[..8]);
    tag
}

/// Whose live sessions another agent's writes woke.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteWake {
    /// Messages were queued for the clients with these tags.
    Clients(Vec<WakeTag>),
    /// A notification may have been missed (the link to the other agents was down): every
    /// live session should look at its queue.
    Everyone,
}

/// What a store calls with each [`RemoteWake`] ([`MediatorStorage::on_remote_wake`]); called
/// on the store's own task, so it must not block.
pub type WakeHook = std::sync::Arc<dyn Fn(RemoteWake) + Send + Sync>;

/// The outcome of a recipient update, in Coordinate Mediation 3.0's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientUpdate {
    /// Done.
    Success,
    /// Already so (added before, or not there to remove).
    NoChange,
    /// Another client holds this recipient DID.
    ClientError,
}

/// What one recipient's queue holds, kept in memory (derived from the queue when the store
/// opens, so it needs no writes of its own).
#[derive(Clone, Copy, Debug, Default)]
struct QueueUsage {
    count: u64,
    bytes: u64,
    /// The client whose quota the queue counts against.
    client: [u8; 32],
}

/// Every queue's usage, each client's bytes and the total; the lock also serialises each
/// quota check with its insert.
#[derive(Debug, Default)]
struct Usage {
    queues: HashMap<[u8; 32], QueueUsage>,
    clients: HashMap<[u8; 32], u64>,
    total_bytes: u64,
    total_count: u64,
}

impl Usage {
    fn add(&mut self, recipient: [u8; 32], client: [u8; 32], bytes: u64) {
        let queue = self.queues.entry(recipient).or_insert(QueueUsage {
            client,
            ..QueueUsage::default()
        });
        queue.count += 1;
        queue.bytes += bytes;
        *self.clients.entry(queue.client).or_default() += bytes;
        self.total_bytes += bytes;
        self.total_count += 1;
    }

    fn take(&mut self, recipient: &[u8; 32], bytes: u64) {
        let Some(queue) = self.queues.get_mut(recipient) else {
            return;
        };
        queue.count = queue.count.saturating_sub(1);
        queue.bytes = queue.bytes.saturating_sub(bytes);
        let client = queue.client;
        if queue.count == 0 {
            self.queues.remove(recipient);
        }
        if let Some(used) = self.clients.get_mut(&client) {
            *used = used.saturating_sub(bytes);
            if *used == 0 {
                self.clients.remove(&client);
            }
        }
        self.total_bytes = self.total_bytes.saturating_sub(bytes);
        self.total_count = self.total_count.saturating_sub(1);
    }
}

/// The embedded sled backend.
pub struct SledStorage {
    db: sled::Db,
    commit: Arc<GroupCommit>,
    grants: sled::Tree,
    /// Recipient DID → client DID.
    recipients: sled::Tree,
    /// SHA-256(client) ‖ recipient DID → nothing: each client's recipients as one prefix.
    client_recipients: sled::Tree,
    /// Serialises recipient updates, so a client's recipient count is checked with its insert.
    recipient_lock: tokio::sync::Mutex<()>,
    queue: sled::Tree,
    usage: std::sync::Mutex<Usage>,
    /// Forward ids (hashed with their recipient) queued recently, rebuilt from the queue when
    /// the store opens.
    forwards_seen: SeenSet,
    /// Client DID → its wake registration ([`WakeRegistration::encode`]).
    wakes: sled::Tree,
}

/// SHA-256 of a DID: what the stores key clients and recipients by.
pub(crate) fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn recipient_prefix(recipient: &str) -> [u8; 32] {
    digest(recipient)
}

fn queue_key(prefix: &[u8; 32], seq: u64) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(prefix);
    key[32..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn client_recipient_key(client: &str, recipient: &str) -> Vec<u8> {
    let mut key = digest(client).to_vec();
    key.extend_from_slice(recipient.as_bytes());
    key
}

/// What a forward's id is remembered as: a digest of the recipient and the id.
pub(crate) fn dedup_key(recipient: &str, forward_id: &str) -> [u8; 16] {
    crate::replay::digest_of(recipient, forward_id)
}

/// The most memory sled's page cache may take.
const CACHE_BYTES: u64 = 128 << 20;

/// Forward ids remembered at most (about 60 bytes each): past it the oldest are forgotten.
const FORWARDS_SEEN_CAP: usize = 200_000;

/// Version tags of the queue value layout. V1: the tag, the arrival time (u64, big-endian),
/// then the envelope's bytes as they arrived. V2: the tag, the arrival time, the 16-byte
/// dedup key of the forward that carried it (zeros: none), then the envelope. Values written
/// by the first versions are JSON and start with `{`.
const QUEUED_V1: u8 = 1;
const QUEUED_V2: u8 = 2;

fn encode_queued(received_at: u64, dedup: Option<[u8; 16]>, message: &str) -> Vec<u8> {
    let mut value = Vec::with_capacity(25 + message.len());
    value.push(QUEUED_V2);
    value.extend_from_slice(&received_at.to_be_bytes());
    value.extend_from_slice(&dedup.unwrap_or_default());
    value.extend_from_slice(message.as_bytes());
    value
}

/// A queued value's parts: arrival time, dedup key, envelope bytes.
struct Decoded<'a> {
    received_at: u64,
    dedup: Option<[u8; 16]>,
    message: std::borrow::Cow<'a, [u8]>,
}

fn decode_parts(value: &[u8]) -> Result<Decoded<'_>, StorageError> {
    let corrupt = |what: &str| StorageError::Corrupt(format!("queued message: {what}"));
    let time = |bytes: &[u8]| -> Result<u64, StorageError> {
        Ok(u64::from_be_bytes(
            bytes.try_into().map_err(|_| corrupt("time"))?,
        ))
    };
    match value.split_first() {
        Some((&QUEUED_V1, rest)) if rest.len() >= 8 => Ok(Decoded {
            received_at: time(&rest[..8])?,
            dedup: None,
            message: rest[8..].into(),
        }),
        Some((&QUEUED_V2, rest)) if rest.len() >= 24 => {
            let mut dedup = [0u8; 16];
            dedup.copy_from_slice(&rest[8..24]);
            Ok(Decoded {
                received_at: time(&rest[..8])?,
                dedup: (dedup != [0u8; 16]).then_some(dedup),
                message: rest[24..].into(),
            })
        }
        Some((b'{', _)) => {
            let legacy: QueuedMessage =
                serde_json::from_slice(value).map_err(|e| corrupt(&e.to_string()))?;
            Ok(Decoded {
                received_at: legacy.received_at,
                dedup: None,
                message: legacy.message.into_bytes().into(),
            })
        }
        _ => Err(corrupt("unknown layout")),
    }
}

fn decode_queued(recipient: &str, key: &[u8], value: &[u8]) -> Result<QueuedMessage, StorageError> {
    let corrupt = |what: &str| StorageError::Corrupt(format!("queued message: {what}"));
    let parts = decode_parts(value)?;
    let seq: [u8; 8] = key
        .get(32..40)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(|| corrupt("the key is not 40 bytes"))?;
    Ok(QueuedMessage {
        id: message_id(&recipient_prefix(recipient), u64::from_be_bytes(seq)),
        recipient_did: recipient.to_string(),
        received_at: parts.received_at,
        message: String::from_utf8(parts.message.into_owned())
            .map_err(|_| corrupt("the envelope is not UTF-8"))?,
    })
}

/// A queued message's id: its sequence number, then four bytes of its recipient's prefix, so
/// an acknowledgement finds its queue without trying every queue of the client.
pub(crate) fn message_id(prefix: &[u8; 32], seq: u64) -> String {
    format!(
        "{seq:016x}{:08x}",
        u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]])
    )
}

/// A message id's sequence number and recipient tag (none in the 16-digit ids of earlier
/// versions).
pub(crate) fn parse_id(id: &str) -> Option<(u64, Option<[u8; 4]>)> {
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let seq = u64::from_str_radix(id.get(..16)?, 16).ok()?;
    match id.len() {
        16 => Some((seq, None)),
        24 => Some((
            seq,
            Some(u32::from_str_radix(&id[16..], 16).ok()?.to_be_bytes()),
        )),
        _ => None,
    }
}

/// The sequence number of `id`, a queued message's id this store handed out.
pub(crate) fn seq_of(id: &str) -> Result<u64, StorageError> {
    parse_id(id)
        .map(|(seq, _)| seq)
        .ok_or_else(|| StorageError::Corrupt(format!("{id:?} is not a queued message's id")))
}

fn now() -> u64 {
    lanyard_protocol::didcomm::now()
}

fn utf8(bytes: &[u8], what: &str) -> Result<String, StorageError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| StorageError::Corrupt(format!("{what} is not UTF-8")))
}

impl SledStorage {
    /// Opens (or creates) the store at `path`. `commit_window` is how long the committer
    /// waits after the first write of a batch for others to join it before it flushes: longer
    /// windows mean fewer fsyncs (and less CPU) per write under load, and that much more
    /// latency for a lone write. Opening reads every queued message once, to rebuild the
    /// queues' usage and the forward ids seen.
    pub fn open(path: &Path, commit_window: Duration) -> Result<SledStorage, StorageError> {
        let db = lanyard_protocol::store::open_sled(
            sled::Config::new()
                .path(path)
                .mode(sled::Mode::HighThroughput)
                // Every write is flushed by the group committer; a timer flush on top of it
                // only competes for the log.
                .flush_every_ms(None)
                // sled caches up to 1 GiB by default; queued messages are read once, at pickup.
                .cache_capacity(CACHE_BYTES),
        )?;
        let recipients = db.open_tree("recipients")?;
        let client_recipients = db.open_tree("client_recipients")?;
        // The index is new in this version: build it from the recipients registered before.
        let mut owners = HashMap::<[u8; 32], [u8; 32]>::new();
        let index_missing = client_recipients.is_empty();
        for entry in recipients.iter() {
            let (recipient, client) = entry?;
            let (recipient, client) = (
                utf8(&recipient, "recipient DID")?,
                utf8(&client, "client DID")?,
            );
            owners.insert(recipient_prefix(&recipient), digest(&client));
            if index_missing {
                client_recipients.insert(client_recipient_key(&client, &recipient), &[])?;
            }
        }
        let queue = db.open_tree("queue")?;
        let mut usage = Usage::default();
        let forwards_seen = SeenSet::new(FORWARDS_SEEN_CAP);
        for entry in queue.iter() {
            let (key, value) = entry?;
            let prefix: [u8; 32] = key
                .get(..32)
                .and_then(|p| p.try_into().ok())
                .ok_or_else(|| StorageError::Corrupt("a queue key is too short".into()))?;
            let parts = decode_parts(&value)?;
            let client = owners.get(&prefix).copied().unwrap_or_default();
            usage.add(prefix, client, parts.message.len() as u64);
            if let Some(dedup) = parts.dedup {
                // Remembered for as long as the message waits, at least.
                forwards_seen.insert(dedup, u64::MAX);
            }
        }
        // The count tree of earlier versions is not used any more.
        let _ = db.drop_tree("counts");
        if index_missing && !recipients.is_empty() {
            db.flush()?;
        }
        Ok(SledStorage {
            commit: Arc::new(GroupCommit::start(db.clone(), commit_window)?),
            grants: db.open_tree("grants")?,
            recipients,
            client_recipients,
            recipient_lock: tokio::sync::Mutex::new(()),
            queue,
            usage: std::sync::Mutex::new(usage),
            forwards_seen,
            wakes: db.open_tree("wakes")?,
            db,
        })
    }

    /// The invitations this agent hosts, kept in the same database (trees `invitations` and
    /// `invitation_ids`) under the same group commit.
    pub fn invitations(&self) -> Result<SledInvitationStore, StorageError> {
        SledInvitationStore::open_in(&self.db, self.commit.clone())
    }

    async fn durable(&self) -> Result<(), StorageError> {
        self.commit.durable().await
    }

    fn usage(&self) -> std::sync::MutexGuard<'_, Usage> {
        self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes one queued value; true when it was there.
    fn remove_key(&self, prefix: &[u8; 32], key: &[u8]) -> Result<bool, StorageError> {
        let mut usage = self.usage();
        match self.queue.remove(key)? {
            Some(old) => {
                let bytes = decode_parts(&old)
                    .map(|p| p.message.len() as u64)
                    .unwrap_or(0);
                usage.take(prefix, bytes);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Drops the messages at the front of one queue received before `not_before`.
    fn expire_queue(&self, prefix: &[u8; 32], not_before: u64) -> Result<u64, StorageError> {
        let mut dropped = 0;
        for entry in self.queue.scan_prefix(prefix) {
            let (key, value) = entry?;
            if decode_parts(&value)?.received_at >= not_before {
                break;
            }
            if self.remove_key(prefix, &key)? {
                dropped += 1;
            }
        }
        Ok(dropped)
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
        cap: usize,
    ) -> Result<RecipientUpdate, StorageError> {
        let _serialised = self.recipient_lock.lock().await;
        match self.recipients.get(recipient.as_bytes())? {
            Some(owner) if owner.as_ref() == client.as_bytes() => {
                return Ok(RecipientUpdate::NoChange)
            }
            Some(_) => return Ok(RecipientUpdate::ClientError),
            None => {}
        }
        let held = self
            .client_recipients
            .scan_prefix(digest(client))
            .keys()
            .take(cap)
            .count();
        if held >= cap {
            return Err(StorageError::TooManyRecipients {
                client: client.to_string(),
                cap,
            });
        }
        // The index first: an index entry whose registration a crash cut short is ignored by
        // `recipients`, while a registration without its index entry would be lost to it.
        let index_key = client_recipient_key(client, recipient);
        self.client_recipients.insert(index_key.as_slice(), &[])?;
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
            Err(_) => {
                self.client_recipients.remove(index_key.as_slice())?;
                RecipientUpdate::ClientError
            }
        };
        self.durable().await?;
        Ok(update)
    }

    async fn remove_recipient(
        &self,
        client: &str,
        recipient: &str,
    ) -> Result<RecipientUpdate, StorageError> {
        let _serialised = self.recipient_lock.lock().await;
        let outcome = self.recipients.compare_and_swap(
            recipient.as_bytes(),
            Some(client.as_bytes()),
            None as Option<&[u8]>,
        )?;
        let update = match outcome {
            Ok(()) => {
                self.client_recipients
                    .remove(client_recipient_key(client, recipient))?;
                RecipientUpdate::Success
            }
            Err(current) if current.current.is_none() => RecipientUpdate::NoChange,
            Err(_) => RecipientUpdate::ClientError,
        };
        self.durable().await?;
        Ok(update)
    }

    async fn recipients(&self, client: &str) -> Result<Vec<String>, StorageError> {
        let mut found = Vec::new();
        for key in self.client_recipients.scan_prefix(digest(client)).keys() {
            let key = key?;
            let recipient = utf8(&key[32..], "recipient DID")?;
            // Only registrations that completed count.
            if self.recipients.get(recipient.as_bytes())?.as_deref() == Some(client.as_bytes()) {
                found.push(recipient);
            }
        }
        Ok(found)
    }

    async fn client_of(&self, recipient: &str) -> Result<Option<String>, StorageError> {
        self.recipients
            .get(recipient.as_bytes())?
            .map(|owner| utf8(&owner, "client DID"))
            .transpose()
    }

    async fn enqueue(
        &self,
        client: &str,
        recipient: &str,
        message: &str,
        dedup: Option<&str>,
        quota: &QueueQuota,
    ) -> Result<Enqueued, StorageError> {
        let received_at = now();
        let dedup = dedup.map(|id| dedup_key(recipient, id));
        if let Some(key) = dedup {
            if !self
                .forwards_seen
                .insert(key, received_at.saturating_add(quota.dedup_secs))
            {
                return Ok(Enqueued::Duplicate);
            }
        }
        let refused = |error: StorageError| {
            if let Some(key) = dedup {
                self.forwards_seen.forget(&key);
            }
            Err(error)
        };
        let seq = match self.db.generate_id() {
            Ok(seq) => seq,
            Err(e) => return refused(e.into()),
        };
        let prefix = recipient_prefix(recipient);
        let key = queue_key(&prefix, seq);
        let bytes = message.len() as u64;
        {
            let mut usage = self.usage();
            let queue = usage.queues.get(&prefix).copied().unwrap_or_default();
            let client_key = if queue.count > 0 {
                queue.client
            } else {
                digest(client)
            };
            let client_used = usage.clients.get(&client_key).copied().unwrap_or(0);
            let full = if queue.count as usize >= quota.per_recipient {
                Some(StorageError::QueueFull {
                    recipient: recipient.to_string(),
                    cap: quota.per_recipient,
                })
            } else if client_used + bytes > quota.client_bytes {
                Some(StorageError::ClientQuota {
                    recipient: recipient.to_string(),
                    cap: quota.client_bytes,
                })
            } else if usage.total_bytes + bytes > quota.total_bytes {
                Some(StorageError::StoreFull {
                    cap: quota.total_bytes,
                })
            } else {
                None
            };
            if let Some(error) = full {
                drop(usage);
                return refused(error);
            }
            if let Err(e) = self
                .queue
                .insert(&key[..], encode_queued(received_at, dedup, message))
            {
                drop(usage);
                return refused(e.into());
            }
            usage.add(prefix, client_key, bytes);
        }
        if let Err(e) = self.durable().await {
            return refused(e);
        }
        Ok(Enqueued::Queued(QueuedMessage {
            id: message_id(&prefix, seq),
            recipient_did: recipient.to_string(),
            received_at,
            message: message.to_string(),
        }))
    }

    async fn peek(
        &self,
        recipient: &str,
        limit: usize,
        not_before: u64,
    ) -> Result<Vec<QueuedMessage>, StorageError> {
        let prefix = recipient_prefix(recipient);
        if self.expire_queue(&prefix, not_before)? > 0 {
            tracing::debug!(recipient = %recipient, "expired messages dropped");
        }
        let mut messages = Vec::new();
        for entry in self.queue.scan_prefix(prefix).take(limit) {
            let (key, value) = entry?;
            messages.push(decode_queued(recipient, &key, &value)?);
        }
        Ok(messages)
    }

    async fn peek_after(
        &self,
        recipient: &str,
        after: &str,
        limit: usize,
        not_before: u64,
    ) -> Result<Vec<QueuedMessage>, StorageError> {
        let prefix = recipient_prefix(recipient);
        let seq = seq_of(after)?;
        if self.expire_queue(&prefix, not_before)? > 0 {
            tracing::debug!(recipient = %recipient, "expired messages dropped");
        }
        let Some(next) = seq.checked_add(1) else {
            return Ok(Vec::new());
        };
        let mut end = prefix.to_vec();
        end.extend_from_slice(&[0xff; 8]);
        let mut messages = Vec::new();
        for entry in self
            .queue
            .range(queue_key(&prefix, next).to_vec()..=end)
            .take(limit)
        {
            let (key, value) = entry?;
            messages.push(decode_queued(recipient, &key, &value)?);
        }
        Ok(messages)
    }

    async fn newest(&self, recipient: &str) -> Result<Option<String>, StorageError> {
        let prefix = recipient_prefix(recipient);
        match self.queue.scan_prefix(prefix).next_back() {
            Some(entry) => {
                let (key, _) = entry?;
                let seq: [u8; 8] = key[32..]
                    .try_into()
                    .map_err(|_| StorageError::Corrupt("a queue key is not 40 bytes".into()))?;
                Ok(Some(message_id(&prefix, u64::from_be_bytes(seq))))
            }
            None => Ok(None),
        }
    }

    async fn count(&self, recipient: &str) -> Result<usize, StorageError> {
        Ok(self
            .usage()
            .queues
            .get(&recipient_prefix(recipient))
            .map_or(0, |q| q.count as usize))
    }

    async fn queued_total(&self) -> Result<u64, StorageError> {
        Ok(self.usage().total_count)
    }

    async fn remove(&self, recipients: &[String], ids: &[String]) -> Result<usize, StorageError> {
        let prefixes: Vec<[u8; 32]> = recipients.iter().map(|r| recipient_prefix(r)).collect();
        let mut removed = 0;
        for (seq, tag) in ids.iter().filter_map(|id| parse_id(id)) {
            for prefix in prefixes
                .iter()
                .filter(|p| tag.is_none_or(|tag| p[..4] == tag))
            {
                if self.remove_key(prefix, &queue_key(prefix, seq))? {
                    removed += 1;
                    break;
                }
            }
        }
        self.durable().await?;
        Ok(removed)
    }

    async fn set_wake(
        &self,
        client: &str,
        wake: Option<&WakeRegistration>,
    ) -> Result<Option<WakeRegistration>, StorageError> {
        let previous = match wake {
            Some(wake) => self
                .wakes
                .insert(client.as_bytes(), wake.encode().as_bytes())?,
            None => self.wakes.remove(client.as_bytes())?,
        };
        self.durable().await?;
        previous
            .map(|bytes| WakeRegistration::decode(&utf8(&bytes, "wake registration")?))
            .transpose()
    }

    async fn wake_of(&self, client: &str) -> Result<Option<WakeRegistration>, StorageError> {
        self.wakes
            .get(client.as_bytes())?
            .map(|bytes| WakeRegistration::decode(&utf8(&bytes, "wake registration")?))
            .transpose()
    }

    async fn expire(&self, not_before: u64) -> Result<u64, StorageError> {
        let prefixes: Vec<[u8; 32]> = self.usage().queues.keys().copied().collect();
        let mut dropped = 0;
        for prefix in prefixes {
            dropped += self.expire_queue(&prefix, not_before)?;
        }
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_values_read_back_in_every_layout() {
        let prefix = recipient_prefix("did:example:phone");
        let key = queue_key(&prefix, 0x2a);
        let envelope = r#"{"protected":"x","ciphertext":"y"}"#;
        let dedup = dedup_key("did:example:phone", "forward-1");
        let read = decode_queued(
            "did:example:phone",
            &key,
            &encode_queued(7, Some(dedup), envelope),
        )
        .unwrap();
        assert_eq!(&read.id[..16], "000000000000002a");
        assert_eq!(
            parse_id(&read.id),
            Some((0x2a, Some([prefix[0], prefix[1], prefix[2], prefix[3]])))
        );
        assert_eq!((read.received_at, read.message.as_str()), (7, envelope));
        assert_eq!(
            decode_parts(&encode_queued(7, Some(dedup), envelope))
                .unwrap()
                .dedup,
            Some(dedup)
        );

        // The layouts of earlier versions still read.
        let mut v1 = vec![QUEUED_V1];
        v1.extend_from_slice(&7u64.to_be_bytes());
        v1.extend_from_slice(envelope.as_bytes());
        assert_eq!(decode_queued("did:example:phone", &key, &v1).unwrap(), read);
        let legacy = serde_json::to_vec(&read).unwrap();
        assert_eq!(
            decode_queued("did:example:phone", &key, &legacy).unwrap(),
            read
        );
        // Ids of earlier versions (16 digits) are still understood.
        assert_eq!(parse_id("000000000000002a"), Some((0x2a, None)));
        for bad in [
            "",
            "2a",
            "zz00000000000000",
            "000000000000002a0",
            "+00000000000002a",
        ] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }

        for bad in [
            &b""[..],
            b"\x01short",
            b"\x02short",
            b"\x09whatever",
            b"{not json",
        ] {
            let error = decode_queued("did:example:phone", &key, bad).unwrap_err();
            assert!(error.to_string().contains("queued message"), "{error}");
        }
    }

    fn quota() -> QueueQuota {
        QueueQuota {
            per_recipient: 100,
            client_bytes: 1 << 20,
            total_bytes: 1 << 20,
            dedup_secs: 3600,
        }
    }

    /// Queues alice's message `m1` for `a1` as the forward `f1`.
    async fn enqueue_f1(store: &SledStorage) -> Enqueued {
        store
            .enqueue(
                "did:example:alice",
                "did:example:a1",
                "m1",
                Some("f1"),
                &quota(),
            )
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_store_of_the_previous_version_opens_with_its_index_usage_and_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mediator");
        // The previous layout: recipients without the client index, V1 values, 16-digit ids.
        {
            let db = sled::open(&path).unwrap();
            let recipients = db.open_tree("recipients").unwrap();
            recipients
                .insert("did:example:a1", "did:example:alice")
                .unwrap();
            recipients
                .insert("did:example:a2", "did:example:alice")
                .unwrap();
            recipients
                .insert("did:example:b1", "did:example:bob")
                .unwrap();
            let queue = db.open_tree("queue").unwrap();
            let mut v1 = vec![QUEUED_V1];
            v1.extend_from_slice(&now().to_be_bytes());
            v1.extend_from_slice(b"{\"ciphertext\":\"old\"}");
            queue
                .insert(queue_key(&recipient_prefix("did:example:a2"), 7), v1)
                .unwrap();
            db.flush().unwrap();
        }
        let store = SledStorage::open(&path, Duration::ZERO).unwrap();
        let mut alice = store.recipients("did:example:alice").await.unwrap();
        alice.sort();
        assert_eq!(alice, ["did:example:a1", "did:example:a2"]);
        assert_eq!(
            store.recipients("did:example:bob").await.unwrap(),
            ["did:example:b1"]
        );
        assert_eq!(store.count("did:example:a2").await.unwrap(), 1);
        // Alice's old message counts against her quota.
        let tight = QueueQuota {
            client_bytes: 30,
            ..quota()
        };
        let refused = store
            .enqueue(
                "did:example:alice",
                "did:example:a1",
                "{\"ciphertext\":\"new\"}",
                None,
                &tight,
            )
            .await
            .unwrap_err();
        assert!(
            matches!(refused, StorageError::ClientQuota { cap: 30, .. }),
            "{refused}"
        );
        // An id of the earlier format still acknowledges it, among all of her queues.
        let ids = ["0000000000000007".to_string()];
        assert_eq!(store.remove(&alice, &ids).await.unwrap(), 1);
        assert_eq!(store.queued_total().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn recipients_forwards_and_expiry_keep_to_their_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStorage::open(&dir.path().join("m"), Duration::ZERO).unwrap();
        let add = |r: &'static str| store.add_recipient("did:example:alice", r, 2);
        assert_eq!(
            add("did:example:a1").await.unwrap(),
            RecipientUpdate::Success
        );
        assert_eq!(
            add("did:example:a1").await.unwrap(),
            RecipientUpdate::NoChange
        );
        assert_eq!(
            add("did:example:a2").await.unwrap(),
            RecipientUpdate::Success
        );
        let error = add("did:example:a3").await.unwrap_err();
        assert!(
            matches!(error, StorageError::TooManyRecipients { cap: 2, .. }),
            "{error}"
        );
        assert_eq!(
            store
                .add_recipient("did:example:bob", "did:example:a1", 2)
                .await
                .unwrap(),
            RecipientUpdate::ClientError
        );
        assert_eq!(
            store
                .remove_recipient("did:example:alice", "did:example:a2")
                .await
                .unwrap(),
            RecipientUpdate::Success
        );
        assert_eq!(
            store.recipients("did:example:alice").await.unwrap(),
            ["did:example:a1"]
        );
        assert_eq!(
            add("did:example:a3").await.unwrap(),
            RecipientUpdate::Success
        );

        // The same forward id for the same recipient is queued once.
        let queued = enqueue_f1(&store).await;
        let Enqueued::Queued(first) = queued else {
            panic!("not queued")
        };
        assert_eq!(enqueue_f1(&store).await, Enqueued::Duplicate);
        assert!(matches!(
            store
                .enqueue(
                    "did:example:alice",
                    "did:example:a3",
                    "m1",
                    Some("f1"),
                    &quota()
                )
                .await
                .unwrap(),
            Enqueued::Queued(_)
        ));
        // A refused forward is not remembered: its retry is taken once there is room.
        let full = QueueQuota {
            total_bytes: 0,
            ..quota()
        };
        assert!(store
            .enqueue(
                "did:example:alice",
                "did:example:a1",
                "m2",
                Some("f2"),
                &full
            )
            .await
            .is_err());
        assert!(matches!(
            store
                .enqueue(
                    "did:example:alice",
                    "did:example:a1",
                    "m2",
                    Some("f2"),
                    &quota()
                )
                .await
                .unwrap(),
            Enqueued::Queued(_)
        ));
        // Expiry drops what arrived before the cutoff, on read and by the sweep.
        assert_eq!(store.peek("did:example:a1", 10, 0).await.unwrap()[0], first);
        assert!(store
            .peek("did:example:a1", 10, now() + 1)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(store.count("did:example:a1").await.unwrap(), 0);
        assert_eq!(store.expire(now() + 1).await.unwrap(), 1, "a3's message");
        assert_eq!(store.queued_total().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_queued_forward_is_remembered_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        {
            let store = SledStorage::open(&path, Duration::ZERO).unwrap();
            let queued = enqueue_f1(&store).await;
            assert!(matches!(queued, Enqueued::Queued(_)));
        }
        let store = SledStorage::open(&path, Duration::ZERO).unwrap();
        assert_eq!(
            enqueue_f1(&store).await,
            Enqueued::Duplicate,
            "the id was read back from the queued message"
        );
        assert_eq!(store.queued_total().await.unwrap(), 1);
    }
}

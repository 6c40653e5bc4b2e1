//! The mediator's protocol logic, independent of transport: Routing 2.0 `forward`,
//! Coordinate Mediation 3.0, Pickup 3.0, Trust Ping 2.0, Discover Features 2.0 and Report
//! Problem 2.0. Envelopes are `lanyard-protocol`'s; the agent has no envelope code of its
//! own. Live mode's per-socket state is a [`LiveSession`] (`live`); the durable state is
//! behind [`MediatorStorage`] (`storage`); the invitations it admits by are an
//! [`InvitationStore`].

mod features;
mod live;
mod storage;

pub use features::{MAX_FEATURE_QUERIES, MAX_MATCH_BYTES, MAX_MATCH_STARS};
pub(crate) use live::LiveState;
pub use live::{LiveSession, Push, Wake};
pub use storage::{
    Enqueued, MediatorStorage, QueueQuota, QueuedMessage, RecipientUpdate, SledStorage,
};

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use lanyard_protocol::did::{did_of, Resolver};
use lanyard_protocol::didcomm::{
    Attachment, DidComm, DidCommError, Forward, Message, Unpacked, FORWARD_TYPE,
};
use lanyard_protocol::encoding::b64u_encode;
use serde_json::{json, Value};

use crate::invitations::{InvitationRecord, InvitationStore};
use crate::metrics::Metrics;
use crate::replay::SeenSet;
use crate::storage::StorageError;
use features::disclose;
use live::Wakers;

pub const MEDIATE_REQUEST: &str = "https://didcomm.org/coordinate-mediation/3.0/mediate-request";
pub const MEDIATE_GRANT: &str = "https://didcomm.org/coordinate-mediation/3.0/mediate-grant";
pub const RECIPIENT_UPDATE: &str = "https://didcomm.org/coordinate-mediation/3.0/recipient-update";
pub const RECIPIENT_UPDATE_RESPONSE: &str =
    "https://didcomm.org/coordinate-mediation/3.0/recipient-update-response";
pub const RECIPIENT_QUERY: &str = "https://didcomm.org/coordinate-mediation/3.0/recipient-query";
pub const RECIPIENT: &str = "https://didcomm.org/coordinate-mediation/3.0/recipient";
pub const STATUS_REQUEST: &str = "https://didcomm.org/messagepickup/3.0/status-request";
pub const STATUS: &str = "https://didcomm.org/messagepickup/3.0/status";
pub const DELIVERY_REQUEST: &str = "https://didcomm.org/messagepickup/3.0/delivery-request";
pub const DELIVERY: &str = "https://didcomm.org/messagepickup/3.0/delivery";
pub const MESSAGES_RECEIVED: &str = "https://didcomm.org/messagepickup/3.0/messages-received";
pub const LIVE_DELIVERY_CHANGE: &str = "https://didcomm.org/messagepickup/3.0/live-delivery-change";
pub const PING: &str = "https://didcomm.org/trust-ping/2.0/ping";
pub const PING_RESPONSE: &str = "https://didcomm.org/trust-ping/2.0/ping-response";
pub const QUERIES: &str = "https://didcomm.org/discover-features/2.0/queries";
pub const DISCLOSE: &str = "https://didcomm.org/discover-features/2.0/disclose";
pub const PROBLEM_REPORT: &str = "https://didcomm.org/report-problem/2.0/problem-report";

/// The protocols this mediator discloses.
pub const PROTOCOLS: [&str; 6] = [
    "https://didcomm.org/routing/2.0",
    "https://didcomm.org/coordinate-mediation/3.0",
    "https://didcomm.org/messagepickup/3.0",
    "https://didcomm.org/trust-ping/2.0",
    "https://didcomm.org/discover-features/2.0",
    "https://didcomm.org/report-problem/2.0",
];

/// Limits the mediator enforces.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Messages a recipient's queue may hold.
    pub queue_cap: usize,
    /// Largest `limit` a delivery-request may ask for.
    pub max_delivery: usize,
    /// Who may be granted mediation.
    pub admission: Admission,
    /// Recipient DIDs one client may register.
    pub max_recipients: usize,
    /// Bytes all of one client's queues may hold.
    pub client_queue_bytes: u64,
    /// Bytes all queues together may hold.
    pub store_queue_bytes: u64,
    /// How long a message may wait; older ones are dropped on read and by the sweep.
    pub message_max_age: std::time::Duration,
    /// How long a control message's id is remembered against replays; messages created
    /// longer ago (or that far ahead) are refused as stale.
    pub replay_window: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            queue_cap: 10_000,
            max_delivery: 100,
            admission: Admission::Open,
            max_recipients: 1000,
            client_queue_bytes: 64 << 20,
            store_queue_bytes: 4 << 30,
            message_max_age: std::time::Duration::from_secs(30 * 24 * 3600),
            replay_window: std::time::Duration::from_secs(600),
        }
    }
}

/// Who may be granted mediation (Coordinate Mediation 3.0 `mediate-request`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Any wallet that asks (authcrypted).
    Open,
    /// Only a wallet whose mediate-request answers one of this agent's invitations (its
    /// `pthid` is the id of a stored invitation that is neither expired nor used up).
    Invited,
}

/// An admission policy that is neither `open` nor `invited` (the text given).
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is neither \"open\" nor \"invited\"")]
pub struct UnknownAdmission(pub String);

impl std::str::FromStr for Admission {
    type Err = UnknownAdmission;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "open" => Ok(Admission::Open),
            "invited" => Ok(Admission::Invited),
            other => Err(UnknownAdmission(other.to_string())),
        }
    }
}

/// Updates one recipient-update may carry.
pub const MAX_RECIPIENT_UPDATES: usize = 100;
/// Ids one messages-received may acknowledge.
pub const MAX_ACKNOWLEDGED_IDS: usize = 1000;
/// Messages a live connection may have been pushed and not acknowledged before it is pushed
/// more.
pub const MAX_UNACKNOWLEDGED_PUSHED: usize = 1000;

/// Control messages remembered against replays (about 60 bytes each).
const CONTROL_SEEN_CAP: usize = 100_000;

/// What became of an inbound message.
#[derive(Debug)]
pub enum Outcome {
    /// Durable; nothing to answer.
    Accepted,
    /// A packed answer to return on the same connection.
    Reply(String),
}

/// Why an inbound message was refused. Each maps to an HTTP status and a problem code.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Envelope(#[from] DidCommError),
    #[error("no mediated client has registered {0} as a recipient")]
    UnknownRecipient(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("{0} must be sent authcrypted so the mediator knows who asks")]
    Unauthenticated(&'static str),
    #[error("{0} has not been granted mediation")]
    NotMediated(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotForMe(String),
    #[error("{0}")]
    Replay(String),
    #[error("{0}")]
    NotAdmitted(String),
}

impl Refusal {
    /// The Report Problem 2.0 code.
    pub fn problem_code(&self) -> &'static str {
        match self {
            Refusal::Envelope(DidCommError::TooLarge { .. }) => "e.p.msg.too-large",
            Refusal::Envelope(DidCommError::NotForUs(_) | DidCommError::WrongRecipient { .. }) => {
                "e.p.msg.not-for-me"
            }
            Refusal::Envelope(_) => "e.p.msg.unreadable",
            Refusal::UnknownRecipient(_) => "e.p.msg.forward.unknown-recipient",
            Refusal::Storage(StorageError::QueueFull { .. }) => "w.p.msg.queue-full",
            Refusal::Storage(StorageError::ClientQuota { .. }) => "w.p.msg.client-quota",
            Refusal::Storage(StorageError::StoreFull { .. }) => "w.p.me.res.store-full",
            Refusal::Storage(StorageError::TooManyRecipients { .. }) => "e.p.req.recipient-cap",
            Refusal::Storage(_) => "e.p.me.res.storage",
            Refusal::Unauthenticated(_) => "e.p.msg.unauthenticated",
            Refusal::NotMediated(_) => "e.p.req.not-mediated",
            Refusal::BadRequest(_) => "e.p.msg.bad-request",
            Refusal::NotForMe(_) => "e.p.msg.not-for-me",
            Refusal::Replay(_) => "e.p.msg.replay",
            Refusal::NotAdmitted(_) => "e.p.req.admission",
        }
    }

    /// The refusal as a Report Problem 2.0 message in plaintext JSON: its code and its reason.
    pub fn problem_report(&self) -> Value {
        problem_json(self.problem_code(), &self.to_string())
    }
}

/// Where the agent's own parts (the issuer's outbox) queue messages for the phones this
/// mediator serves, without packing a forward for it: held to the same quotas, replay
/// de-duplication and live wake as a forward that arrived over HTTP.
pub trait QueuePort: Send + Sync {
    /// Queues `envelope` (packed for `recipient`, a DID a client of this mediator registered)
    /// durably before it returns. `id` makes the call idempotent: the same id for the same
    /// recipient within the age limit queues nothing new. Refused with
    /// [`Refusal::UnknownRecipient`] when no client registered `recipient`, and with
    /// [`Refusal::Storage`] over a quota.
    fn enqueue<'a>(
        &'a self,
        recipient: &'a str,
        envelope: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), Refusal>>;
}

impl<S: MediatorStorage> QueuePort for Mediator<S> {
    fn enqueue<'a>(
        &'a self,
        recipient: &'a str,
        envelope: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(self.queue(did_of(recipient), envelope, id))
    }
}

/// The mediator: its identity, envelopes and storage.
pub struct Mediator<S> {
    did: String,
    didcomm: DidComm<Resolver>,
    storage: S,
    limits: Limits,
    /// The invitations mediate-requests may answer.
    invitations: Arc<dyn InvitationStore>,
    /// Wakes the live connections of a client when a forward for it is queued.
    wakers: Wakers,
    metrics: Arc<Metrics>,
    /// Control messages handled recently, by sender and id.
    seen: SeenSet,
}

fn reply_to(request: &Message, type_: &str, body: Value) -> Message {
    let mut message = Message::new(type_, body).thid(request.thread_id().to_string());
    if let Some(pthid) = &request.pthid {
        message = message.pthid(pthid.clone());
    }
    message
}

fn string_field<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str)
}

impl<S: MediatorStorage> Mediator<S> {
    /// A mediator for `did` (whose keys `didcomm` holds), its state in `storage`, admitting
    /// by the invitations in `invitations`, within `limits`.
    pub fn new(
        did: String,
        didcomm: DidComm<Resolver>,
        storage: S,
        invitations: Arc<dyn InvitationStore>,
        limits: Limits,
    ) -> Self {
        Mediator {
            did,
            didcomm,
            storage,
            invitations,
            limits,
            wakers: Wakers::default(),
            metrics: Arc::new(Metrics::default()),
            seen: SeenSet::new(CONTROL_SEEN_CAP),
        }
    }

    /// Its counters, rendered at `/metrics`.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// How many clients have a live connection waiting for pushes.
    pub fn live_clients(&self) -> usize {
        self.wakers.len()
    }

    /// The mediator's DID.
    pub fn did(&self) -> &str {
        &self.did
    }

    /// Its durable state.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Queued messages received before this have expired.
    fn not_before(&self) -> u64 {
        lanyard_protocol::didcomm::now().saturating_sub(self.limits.message_max_age.as_secs())
    }

    /// Drops every queued message older than the age limit; returns how many.
    pub async fn expire_old(&self) -> Result<u64, Refusal> {
        let dropped = self.storage.expire(self.not_before()).await?;
        self.metrics.messages_expired.inc_by(dropped);
        Ok(dropped)
    }

    /// Handles one envelope the router unpacked for the mediator (or found unencrypted), on a
    /// live connection (`session`) or over plain HTTP (`None`), where live delivery cannot be
    /// switched on. `Reply` carries the packed answer when the protocol has one (the sender is
    /// expected to have asked for `return_route`).
    pub(crate) async fn receive(
        &self,
        unpacked: Unpacked,
        session: Option<&mut LiveState>,
    ) -> Result<Outcome, Refusal> {
        let Unpacked { message, metadata } = unpacked;
        if message.type_ == FORWARD_TYPE {
            return self.forward(&message).await;
        }
        let Some(sender) = metadata.authcrypt_sender_did() else {
            return Err(Refusal::Unauthenticated("this message"));
        };
        let replay_key = self.first_sight(&sender, &message)?;
        let outcome = self.control(&sender, &message, session).await;
        if let Err(Refusal::Storage(_)) = &outcome {
            // Nothing was done: a retry of the same message must be taken.
            self.seen.forget(&replay_key);
        }
        outcome
    }

    /// Refuses a control message seen before within the replay window, or created outside
    /// it; otherwise remembers it. Returns the digest it is remembered by.
    fn first_sight(&self, sender: &str, message: &Message) -> Result<[u8; 16], Refusal> {
        let now = lanyard_protocol::didcomm::now();
        let window = self.limits.replay_window.as_secs();
        if let Some(created) = message.created_time {
            if created.saturating_add(window) < now || created > now.saturating_add(window) {
                return Err(Refusal::Replay(format!(
                    "message {} was created at {created}, more than {window} s from now ({now}): \
                     send a fresh message",
                    message.id
                )));
            }
        }
        let key = crate::replay::digest_of(sender, &message.id);
        // Remembered past the window on both sides of the clock.
        if !self.seen.insert(key, now.saturating_add(2 * window)) {
            return Err(Refusal::Replay(format!(
                "message {} from {sender} was already handled; send a new message to ask again",
                message.id
            )));
        }
        Ok(key)
    }

    /// The stored invitation a message answers (its `pthid`), and whether this message spent
    /// it: the first message that answers a single-use invitation of the mediator spends it.
    async fn answered_invitation(
        &self,
        sender: &str,
        message: &Message,
    ) -> Result<Option<(InvitationRecord, bool)>, Refusal> {
        let Some(pthid) = &message.pthid else {
            return Ok(None);
        };
        let Some(record) = self.invitations.by_id(pthid).await? else {
            return Ok(None);
        };
        let mut spent_now = false;
        if record.message.from.as_deref() == Some(self.did.as_str()) {
            spent_now = self
                .invitations
                .use_once(pthid, lanyard_protocol::didcomm::now())
                .await?;
            if spent_now {
                tracing::info!(invitation = %pthid, client = %sender, "invitation used");
            }
        }
        Ok(Some((record, spent_now)))
    }

    /// Whether `sender` may be granted mediation under the admission policy, given the
    /// invitation its request answers.
    async fn admit(
        &self,
        sender: &str,
        message: &Message,
        invitation: Option<(InvitationRecord, bool)>,
    ) -> Result<(), Refusal> {
        if self.limits.admission == Admission::Open || self.storage.is_granted(sender).await? {
            return Ok(());
        }
        let refuse = |why: String| {
            Err(Refusal::NotAdmitted(format!(
                "this mediator grants mediation only to wallets answering one of its \
                 invitations: {why}"
            )))
        };
        let Some((record, spent_now)) = invitation else {
            return match &message.pthid {
                None => refuse("the mediate-request has no pthid".into()),
                Some(pthid) => refuse(format!("no invitation has the id {pthid:?}")),
            };
        };
        if let Err(expired @ crate::invitations::InvitationError::Expired(_)) = record.check() {
            return refuse(expired.to_string());
        }
        // A single-use invitation of the mediator admits the request that spent it; one of an
        // organisation's (spent by the organisation's own exchange) admits while unused.
        let used_up = if record.message.from.as_deref() == Some(self.did.as_str()) {
            record.single_use && !spent_now
        } else {
            record.single_use && record.used_at.is_some()
        };
        if used_up {
            return refuse("the invitation was already used".into());
        }
        Ok(())
    }

    /// Handles an authenticated message for the mediator itself.
    async fn control(
        &self,
        sender: &str,
        message: &Message,
        mut session: Option<&mut LiveState>,
    ) -> Result<Outcome, Refusal> {
        let sender = sender.to_string();
        let invitation = self.answered_invitation(&sender, message).await?;
        let reply = match message.type_.as_str() {
            MEDIATE_REQUEST => {
                self.admit(&sender, message, invitation).await?;
                self.storage.grant(&sender).await?;
                tracing::info!(client = %sender, "mediation granted");
                reply_to(message, MEDIATE_GRANT, json!({ "routing_did": [self.did] }))
            }
            RECIPIENT_UPDATE => self.recipient_update(&sender, message).await?,
            RECIPIENT_QUERY => {
                self.require_grant(&sender).await?;
                let dids: Vec<Value> = self
                    .storage
                    .recipients(&sender)
                    .await?
                    .into_iter()
                    .map(|did| json!({ "recipient_did": did }))
                    .collect();
                reply_to(message, RECIPIENT, json!({ "dids": dids }))
            }
            STATUS_REQUEST => {
                self.require_grant(&sender).await?;
                let filter = string_field(&message.body, "recipient_did");
                self.status(&sender, message, filter).await?
            }
            DELIVERY_REQUEST => self.delivery(&sender, message).await?,
            MESSAGES_RECEIVED => {
                let status = self.messages_received(&sender, message).await?;
                // Acknowledged messages are gone: the socket need not remember pushing them.
                if let Some(session) = session.as_deref_mut() {
                    let acknowledged = message
                        .body
                        .get("message_id_list")
                        .and_then(Value::as_array);
                    session
                        .acknowledged(acknowledged.into_iter().flatten().filter_map(Value::as_str));
                }
                status
            }
            LIVE_DELIVERY_CHANGE => match session {
                Some(session) => {
                    self.require_grant(&sender).await?;
                    let live = message
                        .body
                        .get("live_delivery")
                        .and_then(Value::as_bool)
                        .ok_or_else(|| {
                            Refusal::BadRequest("live-delivery-change needs live_delivery".into())
                        })?;
                    session.switch(&sender, live)?;
                    let mut status = self.status(&sender, message, None).await?;
                    status.body["live_delivery"] = json!(live);
                    status
                }
                None => reply_to(
                    message,
                    PROBLEM_REPORT,
                    json!({
                        "code": "e.m.live-mode-not-supported",
                        "comment": "live delivery is offered over the WebSocket endpoint /ws only",
                    }),
                ),
            },
            PING => {
                let wanted = message
                    .body
                    .get("response_requested")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                if !wanted {
                    return Ok(Outcome::Accepted);
                }
                reply_to(message, PING_RESPONSE, json!({}))
            }
            QUERIES => reply_to(message, DISCLOSE, disclose(&message.body)?),
            PROBLEM_REPORT => {
                tracing::warn!(from = %sender, code = ?message.body.get("code"), "problem reported");
                return Ok(Outcome::Accepted);
            }
            other => reply_to(
                message,
                PROBLEM_REPORT,
                json!({
                    "code": "e.p.msg.unsupported",
                    "comment": format!("this mediator does not handle {other}"),
                }),
            ),
        };
        let reply = reply.from(self.did.clone()).to([sender.clone()]);
        let packed = self
            .didcomm
            .pack_authcrypt(&reply, &self.did, &[&sender], false)
            .await?;
        Ok(Outcome::Reply(packed))
    }

    async fn require_grant(&self, client: &str) -> Result<(), Refusal> {
        if self.storage.is_granted(client).await? {
            Ok(())
        } else {
            Err(Refusal::NotMediated(client.to_string()))
        }
    }

    async fn forward(&self, message: &Message) -> Result<Outcome, Refusal> {
        let forward = Forward::parse(message)?;
        // The forward's id makes it idempotent: a replayed (or re-sent) forward is accepted
        // again without a second queue entry.
        self.queue(
            did_of(&forward.next),
            &forward.payload.to_string(),
            &message.id,
        )
        .await?;
        Ok(Outcome::Accepted)
    }

    /// Queues `envelope` for `recipient` within the quotas, once per `id`, and wakes the
    /// client's live connections.
    async fn queue(&self, recipient: &str, envelope: &str, id: &str) -> Result<(), Refusal> {
        let Some(client) = self.storage.client_of(recipient).await? else {
            return Err(Refusal::UnknownRecipient(recipient.to_string()));
        };
        let quota = QueueQuota {
            per_recipient: self.limits.queue_cap,
            client_bytes: self.limits.client_queue_bytes,
            total_bytes: self.limits.store_queue_bytes,
            dedup_secs: self.limits.message_max_age.as_secs(),
        };
        let queued = self
            .storage
            .enqueue(&client, recipient, envelope, Some(id), &quota)
            .await?;
        let Enqueued::Queued(queued) = queued else {
            tracing::debug!(recipient = %recipient, forward = %id, "forward already queued");
            self.metrics.forwards_deduplicated.inc();
            return Ok(());
        };
        tracing::debug!(recipient = %recipient, id = %queued.id, "forward queued");
        self.metrics.forwards_queued.inc();
        // Wake the client's live connections, if it has any open.
        self.wakers.wake(&client);
        Ok(())
    }

    async fn recipient_update(&self, client: &str, message: &Message) -> Result<Message, Refusal> {
        self.require_grant(client).await?;
        let updates = message
            .body
            .get("updates")
            .and_then(Value::as_array)
            .ok_or_else(|| Refusal::BadRequest("recipient-update has no updates list".into()))?;
        if updates.len() > MAX_RECIPIENT_UPDATES {
            return Err(Refusal::BadRequest(format!(
                "recipient-update carries {} updates, over this mediator's limit of \
                 {MAX_RECIPIENT_UPDATES} per message",
                updates.len()
            )));
        }
        // Every update is checked, and the recipient cap, before anything is changed.
        let mut checked = Vec::with_capacity(updates.len());
        let mut held: HashSet<String> =
            self.storage.recipients(client).await?.into_iter().collect();
        for update in updates {
            let (Some(recipient), Some(action)) = (
                string_field(update, "recipient_did"),
                string_field(update, "action"),
            ) else {
                return Err(Refusal::BadRequest(
                    "each update needs recipient_did and action".into(),
                ));
            };
            if !recipient.starts_with("did:") {
                return Err(Refusal::BadRequest(format!("{recipient:?} is not a DID")));
            }
            match action {
                "add" => held.insert(did_of(recipient).to_string()),
                "remove" => held.remove(did_of(recipient)),
                other => {
                    return Err(Refusal::BadRequest(format!(
                        "unknown recipient-update action {other:?}"
                    )))
                }
            };
            if held.len() > self.limits.max_recipients {
                return Err(Refusal::Storage(StorageError::TooManyRecipients {
                    client: client.to_string(),
                    cap: self.limits.max_recipients,
                }));
            }
            checked.push((recipient, action));
        }
        let mut updated = Vec::with_capacity(checked.len());
        for (recipient, action) in checked {
            let result = if action == "add" {
                self.storage
                    .add_recipient(client, did_of(recipient), self.limits.max_recipients)
                    .await?
            } else {
                self.storage
                    .remove_recipient(client, did_of(recipient))
                    .await?
            };
            let result = match result {
                RecipientUpdate::Success => "success",
                RecipientUpdate::NoChange => "no_change",
                RecipientUpdate::ClientError => "client_error",
            };
            updated.push(json!({ "recipient_did": recipient, "action": action, "result": result }));
        }
        Ok(reply_to(
            message,
            RECIPIENT_UPDATE_RESPONSE,
            json!({ "updated": updated }),
        ))
    }

    /// The recipients whose queues `client` may read: all of its own, or the one asked for.
    async fn queues(&self, client: &str, filter: Option<&str>) -> Result<Vec<String>, Refusal> {
        let mine = self.storage.recipients(client).await?;
        match filter {
            None => Ok(mine),
            Some(did) if mine.iter().any(|m| m == did) => Ok(vec![did.to_string()]),
            Some(did) => Err(Refusal::BadRequest(format!(
                "{did} is not a recipient registered by {client}"
            ))),
        }
    }

    async fn status(
        &self,
        client: &str,
        request: &Message,
        filter: Option<&str>,
    ) -> Result<Message, Refusal> {
        let mut count = 0;
        for recipient in self.queues(client, filter).await? {
            count += self.storage.count(&recipient).await?;
        }
        let mut body = json!({ "message_count": count, "live_delivery": false });
        if let Some(did) = filter {
            body["recipient_did"] = json!(did);
        }
        Ok(reply_to(request, STATUS, body))
    }

    async fn delivery(&self, client: &str, request: &Message) -> Result<Message, Refusal> {
        self.require_grant(client).await?;
        let limit = match request.body.get("limit") {
            Some(Value::Number(n)) => n.as_u64().filter(|&n| n >= 1).ok_or_else(|| {
                Refusal::BadRequest(format!(
                    "delivery-request limit {n} is not a positive integer"
                ))
            })?,
            Some(other) => {
                return Err(Refusal::BadRequest(format!(
                    "delivery-request limit {other} is not a positive integer"
                )))
            }
            None => return Err(Refusal::BadRequest("delivery-request has no limit".into())),
        };
        if limit as usize > self.limits.max_delivery {
            return Err(Refusal::BadRequest(format!(
                "delivery-request limit {limit} is over this mediator's maximum of {}",
                self.limits.max_delivery
            )));
        }
        let filter = string_field(&request.body, "recipient_did");
        let not_before = self.not_before();
        let mut attachments = Vec::new();
        for recipient in self.queues(client, filter).await? {
            let room = limit as usize - attachments.len();
            if room == 0 {
                break;
            }
            for queued in self.storage.peek(&recipient, room, not_before).await? {
                attachments.push(delivery_attachment(queued));
            }
        }
        if attachments.is_empty() {
            return self.status(client, request, filter).await;
        }
        let mut body = json!({});
        if let Some(did) = filter {
            body["recipient_did"] = json!(did);
        }
        self.metrics.messages_out.inc_by(attachments.len() as u64);
        let mut reply = reply_to(request, DELIVERY, body);
        reply.attachments = attachments;
        Ok(reply)
    }

    async fn messages_received(&self, client: &str, request: &Message) -> Result<Message, Refusal> {
        self.require_grant(client).await?;
        let ids = request
            .body
            .get("message_id_list")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                Refusal::BadRequest("messages-received has no message_id_list".into())
            })?;
        if ids.len() > MAX_ACKNOWLEDGED_IDS {
            return Err(Refusal::BadRequest(format!(
                "messages-received lists {} ids, over this mediator's limit of \
                 {MAX_ACKNOWLEDGED_IDS} per message",
                ids.len()
            )));
        }
        let ids: Vec<String> = ids
            .iter()
            .map(|id| {
                id.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Refusal::BadRequest("message ids are strings".into()))
            })
            .collect::<Result<_, _>>()?;
        let recipients = self.queues(client, None).await?;
        self.storage.remove(&recipients, &ids).await?;
        self.status(client, request, None).await
    }
}

/// A Report Problem 2.0 message as plaintext JSON: what a refusal is answered with over HTTP
/// and on a live connection.
pub fn problem_json(code: &str, comment: &str) -> Value {
    json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "type": lanyard_protocol::didcomm::PROBLEM_REPORT_TYPE,
        "body": { "code": code, "comment": comment },
    })
}

/// A queued message as a delivery attachment: its queue id, base64url of the envelope.
fn delivery_attachment(queued: QueuedMessage) -> Attachment {
    let mut attachment = Attachment::json(Value::Null);
    attachment.id = Some(queued.id);
    attachment.media_type = Some(lanyard_protocol::didcomm::ENCRYPTED_TYP.to_string());
    attachment.data.json = None;
    attachment.data.base64 = Some(b64u_encode(queued.message.as_bytes()));
    attachment
}

#[cfg(test)]
mod port_tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn the_queue_port_queues_once_per_id_for_registered_recipients_only() {
        let dir = tempfile::tempdir().unwrap();
        let identity =
            crate::identity::load_or_create(dir.path(), "http://agent.test/didcomm").unwrap();
        let storage = SledStorage::open(&dir.path().join("mediator"), Duration::ZERO).unwrap();
        let invitations = Arc::new(storage.invitations().unwrap());
        let mediator = Mediator::new(
            identity.did.clone(),
            DidComm::new(identity.keys.clone(), Resolver::default()),
            storage,
            invitations,
            Limits::default(),
        );
        let port: &dyn QueuePort = &mediator;
        let refused = port
            .enqueue("did:example:phone", "{}", "m1")
            .await
            .unwrap_err();
        assert_eq!(refused.problem_code(), "e.p.msg.forward.unknown-recipient");
        assert_eq!(
            refused.to_string(),
            "no mediated client has registered did:example:phone as a recipient"
        );

        mediator.storage().grant("did:example:alice").await.unwrap();
        mediator
            .storage()
            .add_recipient("did:example:alice", "did:example:phone", 10)
            .await
            .unwrap();
        port.enqueue("did:example:phone", "{\"ciphertext\":\"x\"}", "m1")
            .await
            .unwrap();
        // A repeated hand-over of the same message (an outbox retry) is not queued twice.
        port.enqueue("did:example:phone", "{\"ciphertext\":\"x\"}", "m1")
            .await
            .unwrap();
        assert_eq!(
            mediator.storage().count("did:example:phone").await.unwrap(),
            1
        );
        assert_eq!(mediator.metrics().forwards_queued.get(), 1);
        assert_eq!(mediator.metrics().forwards_deduplicated.get(), 1);
        // Held to the same quotas as a forward.
        let tight = Mediator::new(
            identity.did.clone(),
            DidComm::new(identity.keys.clone(), Resolver::default()),
            SledStorage::open(&dir.path().join("tight"), Duration::ZERO).unwrap(),
            Arc::new(
                SledStorage::open(&dir.path().join("tight-inv"), Duration::ZERO)
                    .unwrap()
                    .invitations()
                    .unwrap(),
            ),
            Limits {
                queue_cap: 1,
                ..Limits::default()
            },
        );
        tight
            .storage()
            .add_recipient("did:example:alice", "did:example:phone", 10)
            .await
            .unwrap();
        let tight: &dyn QueuePort = &tight;
        tight.enqueue("did:example:phone", "{}", "a").await.unwrap();
        let full = tight
            .enqueue("did:example:phone", "{}", "b")
            .await
            .unwrap_err();
        assert_eq!(full.problem_code(), "w.p.msg.queue-full");
    }
}

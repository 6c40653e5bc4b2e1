//! The mediator's protocol logic, independent of transport: Routing 2.0 `forward`,
//! Coordinate Mediation 3.0 and 2.0, Pickup 3.0 and 4.0 (each answered in the version asked,
//! among those [`Offered`]), Trust Ping 2.0, Discover Features 2.0 and Report
//! Problem 2.0, every message built and parsed by `lanyard_protocol::protocols`. It receives
//! what the agent's [`DidCommRouter`](crate::DidCommRouter) unpacked for it; the issuer queues
//! through its [`QueuePort`]. Live mode's per-socket state is a [`LiveSession`] (`live`); the
//! durable state is behind [`MediatorStorage`] (`storage`); the invitations it admits by are
//! an [`InvitationStore`]. Its refusals are [`Refusal`]s, each with a problem code
//! ([`Refusal::problem_report`]); the HTTP layer maps them to statuses once.

mod live;
mod storage;
mod wake;

pub(crate) use live::LiveState;
pub use live::{LiveSession, Push, Wake};
pub(crate) use storage::{dedup_key, digest, message_id, parse_id, seq_of};
pub use storage::{
    wake_tag, Enqueued, MediatorStorage, QueueQuota, QueuedMessage, RecipientUpdate, RemoteWake,
    SledStorage, WakeHook, WakeRegistration, WakeTag,
};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::future::BoxFuture;

use lanyard_protocol::did::{did_of, Resolver};
use lanyard_protocol::didcomm::{DidComm, DidCommError, Message, Unpacked};
use lanyard_protocol::protocols::coordinate_mediation::{
    self as mediation, Action, MediateGrant, RecipientUpdateResponse, Recipients, UpdateResult,
    Updated,
};
use lanyard_protocol::protocols::pickup::{self, Delivered, Delivery, Status};
use lanyard_protocol::protocols::report_problem::{self, ProblemReport};
use lanyard_protocol::protocols::{
    discover_features, push_notifications, routing, trust_ping, ProtocolError,
};
use serde_json::Value;

use crate::invitations::{InvitationRecord, InvitationStore};
use crate::metrics::Metrics;
use crate::replay::SeenSet;
use crate::storage::StorageError;
use live::Wakers;

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
    /// The Coordinate Mediation and Message Pickup versions answered and disclosed.
    pub offered: Offered,
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
            offered: Offered::default(),
        }
    }
}

/// Which versions of Coordinate Mediation and Message Pickup the mediator answers; a message
/// of a version not offered is answered `e.p.msg.unsupported`, as any type the mediator does
/// not handle, and Discover Features does not disclose it. Read from a comma-separated list
/// of PIURIs naming at least one version of each (default: all four).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offered {
    /// The Coordinate Mediation versions (2.0, 3.0).
    pub coordinate: Vec<mediation::Version>,
    /// The Message Pickup versions (3.0, 4.0).
    pub pickup: Vec<pickup::Version>,
}

impl Default for Offered {
    fn default() -> Self {
        Offered {
            coordinate: mediation::Version::ALL.to_vec(),
            pickup: pickup::Version::ALL.to_vec(),
        }
    }
}

impl Offered {
    /// The PIURIs offered, Coordinate Mediation then Pickup, in the order listed.
    fn piuris(&self) -> impl Iterator<Item = &'static str> + '_ {
        let coordinate = self.coordinate.iter().map(|v| v.piuri());
        coordinate.chain(self.pickup.iter().map(|v| v.piuri()))
    }
}

/// A list of mediation protocols that names an unknown PIURI, or no version of one of the two.
#[derive(Debug, thiserror::Error)]
#[error(
    "{0}; name PIURIs among {cm3}, {cm2}, {p3} and {p4}, at least one Coordinate Mediation \
     and one Pickup version",
    cm3 = mediation::v3::PIURI,
    cm2 = mediation::v2::PIURI,
    p3 = pickup::v3::PIURI,
    p4 = pickup::v4::PIURI
)]
pub struct UnknownProtocols(String);

impl std::str::FromStr for Offered {
    type Err = UnknownProtocols;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut offered = Offered {
            coordinate: Vec::new(),
            pickup: Vec::new(),
        };
        for piuri in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some(version) = mediation::Version::of_piuri(piuri) {
                if !offered.coordinate.contains(&version) {
                    offered.coordinate.push(version);
                }
            } else if let Some(version) = pickup::Version::of_piuri(piuri) {
                if !offered.pickup.contains(&version) {
                    offered.pickup.push(version);
                }
            } else {
                return Err(UnknownProtocols(format!(
                    "{piuri:?} is not a protocol offered"
                )));
            }
        }
        if offered.coordinate.is_empty() || offered.pickup.is_empty() {
            return Err(UnknownProtocols(
                "it names no Coordinate Mediation or no Pickup version".into(),
            ));
        }
        Ok(offered)
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
    /// The envelope does not open (or is too large, or not for this agent).
    #[error(transparent)]
    Envelope(#[from] DidCommError),
    /// A forward (or a hand-over) for a DID no client registered.
    #[error("no mediated client has registered {0} as a recipient")]
    UnknownRecipient(String),
    /// The store refused (a quota) or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A message that needs a known sender came anoncrypted or in plaintext.
    #[error("{0} must be sent authcrypted so the mediator knows who asks")]
    Unauthenticated(&'static str),
    /// The sender asks for something only a mediated client may.
    #[error("{0} has not been granted mediation")]
    NotMediated(String),
    /// The message is malformed or asks for too much, in words naming what.
    #[error("{0}")]
    BadRequest(String),
    /// The envelope's layers or `to` do not agree on whom it is for.
    #[error("{0}")]
    NotForMe(String),
    /// A control message seen before, or created outside the replay window.
    #[error("{0}")]
    Replay(String),
    /// The admission policy refuses mediation to this sender.
    #[error("{0}")]
    NotAdmitted(String),
}

/// A message that does not have the shape its type promises is a bad request, in the
/// parser's words.
impl From<ProtocolError> for Refusal {
    fn from(error: ProtocolError) -> Self {
        Refusal::BadRequest(error.to_string())
    }
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
    /// Wakes the live connections of a client when a forward for it is queued (here, or by
    /// another agent sharing the store).
    wakers: Arc<Wakers>,
    metrics: Arc<Metrics>,
    /// Control messages handled recently, by sender and id.
    seen: SeenSet,
    /// The push gateway that wakes devices, once [`Mediator::start_push`] set it.
    push: std::sync::OnceLock<wake::PushWake>,
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
        let wakers = Arc::new(Wakers::default());
        let woken = Arc::downgrade(&wakers);
        storage.on_remote_wake(Arc::new(move |wake| {
            if let Some(wakers) = woken.upgrade() {
                wakers.remote(wake);
            }
        }));
        Mediator {
            did,
            didcomm,
            storage,
            invitations,
            limits,
            wakers,
            metrics: Arc::new(Metrics::default()),
            seen: SeenSet::new(CONTROL_SEEN_CAP),
            push: std::sync::OnceLock::new(),
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
        if message.type_ == routing::FORWARD {
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
        session: Option<&mut LiveState>,
    ) -> Result<Outcome, Refusal> {
        let sender = sender.to_string();
        let invitation = self.answered_invitation(&sender, message).await?;
        let offered = &self.limits.offered;
        let reply = if let Some((version, kind)) = mediation::Version::classify(&message.type_)
            .filter(|(version, _)| offered.coordinate.contains(version))
        {
            self.mediation(&sender, message, version, kind, invitation)
                .await?
        } else if let Some((version, kind)) = pickup::Version::classify(&message.type_)
            .filter(|(version, _)| offered.pickup.contains(version))
        {
            self.pickup(&sender, message, version, kind, session)
                .await?
        } else {
            match message.type_.as_str() {
                trust_ping::PING => match trust_ping::reply_to(message)? {
                    Some(response) => response,
                    None => return Ok(Outcome::Accepted),
                },
                discover_features::QUERIES => {
                    let queries = discover_features::parse_queries(message)?;
                    discover_features::disclose_message(&discover_features::disclose_protocols(
                        &queries,
                        &self.with_push_protocols(&self.protocols()),
                    ))
                }
                report_problem::PROBLEM_REPORT => {
                    tracing::warn!(from = %sender, code = ?message.body.get("code"), "problem reported");
                    return Ok(Outcome::Accepted);
                }
                other if push_notifications::classify(other).is_some() => {
                    self.push_control(&sender, message).await?
                }
                other => unsupported(other),
            }
        };
        let reply = reply
            .in_reply_to(message)
            .from(self.did.clone())
            .to([sender.clone()]);
        let packed = self
            .didcomm
            .pack_authcrypt(&reply, &self.did, &[&sender], false)
            .await?;
        Ok(Outcome::Reply(packed))
    }

    /// A Coordinate Mediation message of `kind` in `version` (2.0 or 3.0), answered in the
    /// same version.
    async fn mediation(
        &self,
        sender: &str,
        message: &Message,
        version: mediation::Version,
        kind: mediation::Kind,
        invitation: Option<(InvitationRecord, bool)>,
    ) -> Result<Message, Refusal> {
        Ok(match kind {
            mediation::Kind::MediateRequest => {
                mediation::parse_mediate_request(message)?;
                self.admit(sender, message, invitation).await?;
                self.storage.grant(sender).await?;
                tracing::info!(client = %sender, ?version, "mediation granted");
                mediation::mediate_grant_message(
                    version,
                    &MediateGrant {
                        routing_did: vec![self.did.clone()],
                    },
                )
            }
            mediation::Kind::RecipientUpdate => {
                self.recipient_update(sender, message, version).await?
            }
            mediation::Kind::RecipientQuery => {
                self.require_grant(sender).await?;
                mediation::parse_recipient_query(message)?;
                mediation::recipient_message(
                    version,
                    &Recipients {
                        dids: self.storage.recipients(sender).await?,
                    },
                )
            }
            // The mediator's own answers, which no client sends it.
            mediation::Kind::MediateGrant
            | mediation::Kind::MediateDeny
            | mediation::Kind::RecipientUpdateResponse
            | mediation::Kind::Recipient => unsupported(&message.type_),
        })
    }

    /// A Message Pickup message of `kind` in `version` (3.0 or 4.0), answered in the same
    /// version; `session` is the live connection it came on, if any.
    async fn pickup(
        &self,
        sender: &str,
        message: &Message,
        version: pickup::Version,
        kind: pickup::Kind,
        session: Option<&mut LiveState>,
    ) -> Result<Message, Refusal> {
        Ok(match kind {
            pickup::Kind::StatusRequest => {
                self.require_grant(sender).await?;
                let request = pickup::parse_status_request(message)?;
                self.status(sender, request.recipient_did.as_deref(), false, version)
                    .await?
            }
            pickup::Kind::DeliveryRequest => self.delivery(sender, message, version).await?,
            pickup::Kind::MessagesReceived => {
                self.require_grant(sender).await?;
                let received = pickup::parse_messages_received(message)?;
                let recipients = self.queues(sender, None).await?;
                self.storage
                    .remove(&recipients, &received.message_id_list)
                    .await?;
                // Acknowledged messages are gone: the socket need not remember pushing them.
                let live = match session {
                    Some(session) => {
                        session.acknowledged(received.message_id_list.iter().map(String::as_str));
                        session.is_live()
                    }
                    None => false,
                };
                self.status(sender, None, live, version).await?
            }
            pickup::Kind::LiveDeliveryChange => match session {
                Some(session) => {
                    self.require_grant(sender).await?;
                    let change = pickup::parse_live_delivery_change(message)?;
                    // 4.0 pushes only what arrives from now on: remember where each queue
                    // ends, so the messages already in it are left for delivery-request.
                    let queued_before = if change.live_delivery && !version.live_pushes_queued() {
                        let mut ends = HashMap::new();
                        for recipient in self.storage.recipients(sender).await? {
                            if let Some(newest) = self.storage.newest(&recipient).await? {
                                ends.insert(recipient, newest);
                            }
                        }
                        Some(ends)
                    } else {
                        None
                    };
                    session.switch(sender, change.live_delivery, version, queued_before)?;
                    self.status(sender, None, change.live_delivery, version)
                        .await?
                }
                None => report_problem::problem_report_message(&ProblemReport::new(
                    "e.m.live-mode-not-supported",
                    "live delivery is offered over the WebSocket endpoint /ws only",
                )),
            },
            pickup::Kind::Status | pickup::Kind::Delivery => unsupported(&message.type_),
        })
    }

    /// The protocols this mediator discloses: the versions of Coordinate Mediation and
    /// Pickup it offers among the others.
    fn protocols(&self) -> Vec<&'static str> {
        let mut protocols = vec![routing::PIURI];
        protocols.extend(self.limits.offered.piuris());
        protocols.extend([
            trust_ping::PIURI,
            discover_features::PIURI,
            report_problem::PIURI,
        ]);
        protocols
    }

    async fn require_grant(&self, client: &str) -> Result<(), Refusal> {
        if self.storage.is_granted(client).await? {
            Ok(())
        } else {
            Err(Refusal::NotMediated(client.to_string()))
        }
    }

    async fn forward(&self, message: &Message) -> Result<Outcome, Refusal> {
        // Malformed, a forward is unreadable (as an envelope that does not open).
        let forward = routing::parse_forward(message).map_err(DidCommError::from)?;
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
        // Wake the client's live connections, if it has any open; its device otherwise.
        self.wakers.wake(&client);
        self.request_wake(&client);
        Ok(())
    }

    async fn recipient_update(
        &self,
        client: &str,
        message: &Message,
        version: mediation::Version,
    ) -> Result<Message, Refusal> {
        self.require_grant(client).await?;
        let request = mediation::parse_recipient_update(message)?;
        // Every update is checked, and the recipient cap, before anything is changed.
        let mut held: HashSet<String> =
            self.storage.recipients(client).await?.into_iter().collect();
        for update in &request.updates {
            let did = did_of(&update.recipient_did);
            match update.action {
                Action::Add => held.insert(did.to_string()),
                Action::Remove => held.remove(did),
            };
            if held.len() > self.limits.max_recipients {
                return Err(Refusal::Storage(StorageError::TooManyRecipients {
                    client: client.to_string(),
                    cap: self.limits.max_recipients,
                }));
            }
        }
        let mut updated = Vec::with_capacity(request.updates.len());
        for update in request.updates {
            let did = did_of(&update.recipient_did);
            let result = match update.action {
                Action::Add => {
                    self.storage
                        .add_recipient(client, did, self.limits.max_recipients)
                        .await?
                }
                Action::Remove => self.storage.remove_recipient(client, did).await?,
            };
            updated.push(Updated {
                result: match result {
                    RecipientUpdate::Success => UpdateResult::Success,
                    RecipientUpdate::NoChange => UpdateResult::NoChange,
                    RecipientUpdate::ClientError => UpdateResult::ClientError,
                },
                recipient_did: update.recipient_did,
                action: update.action,
            });
        }
        Ok(mediation::recipient_update_response_message(
            version,
            &RecipientUpdateResponse { updated },
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

    /// The `status` of `client`'s queues (or the one `filter` names).
    async fn status(
        &self,
        client: &str,
        filter: Option<&str>,
        live_delivery: bool,
        version: pickup::Version,
    ) -> Result<Message, Refusal> {
        let mut count = 0;
        for recipient in self.queues(client, filter).await? {
            count += self.storage.count(&recipient).await?;
        }
        Ok(pickup::status_message(
            version,
            &Status {
                recipient_did: filter.map(str::to_string),
                message_count: count as u64,
                live_delivery,
            },
        ))
    }

    /// The answer to a `delivery-request`: the waiting messages, up to its limit; when none
    /// wait, a `status` (both versions say so).
    async fn delivery(
        &self,
        client: &str,
        request: &Message,
        version: pickup::Version,
    ) -> Result<Message, Refusal> {
        self.require_grant(client).await?;
        let request = pickup::parse_delivery_request(request)?;
        if request.limit > self.limits.max_delivery as u64 {
            return Err(Refusal::BadRequest(format!(
                "delivery-request limit {} is over this mediator's maximum of {}",
                request.limit, self.limits.max_delivery
            )));
        }
        let limit = request.limit as usize;
        let filter = request.recipient_did.as_deref();
        let not_before = self.not_before();
        let mut messages = Vec::new();
        for recipient in self.queues(client, filter).await? {
            let room = limit - messages.len();
            if room == 0 {
                break;
            }
            for queued in self.storage.peek(&recipient, room, not_before).await? {
                messages.push(delivered(queued));
            }
        }
        if messages.is_empty() {
            return self.status(client, filter, false, version).await;
        }
        self.metrics.messages_out.inc_by(messages.len() as u64);
        Ok(pickup::delivery_message(
            version,
            &Delivery {
                recipient_did: filter.map(str::to_string),
                messages,
            },
        ))
    }
}

/// The answer to a message type this mediator does not handle.
fn unsupported(type_: &str) -> Message {
    report_problem::problem_report_message(&ProblemReport::new(
        "e.p.msg.unsupported",
        format!("this mediator does not handle {type_}"),
    ))
}

/// A queued message as pickup delivers it: its queue id and the envelope.
fn delivered(queued: QueuedMessage) -> Delivered {
    Delivered {
        id: queued.id,
        envelope: Some(queued.message),
    }
}

/// A Report Problem 2.0 message as plaintext JSON: what a refusal is answered with over HTTP
/// and on a live connection.
pub fn problem_json(code: &str, comment: &str) -> Value {
    let report = report_problem::problem_report_message(&ProblemReport::new(code, comment));
    serde_json::to_value(report).unwrap_or(Value::Null)
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

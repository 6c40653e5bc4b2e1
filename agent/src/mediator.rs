//! The mediator's protocol logic, independent of transport: Routing 2.0 `forward`,
//! Coordinate Mediation 3.0, Pickup 3.0, Trust Ping 2.0, Discover Features 2.0 and Report
//! Problem 2.0. Envelopes are `wallet-core`'s; the agent has no envelope code of its own.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;

use serde_json::{json, Value};
use tokio::sync::Notify;
use wallet_core::did::{did_of, Resolver};
use wallet_core::didcomm::{
    Attachment, DidComm, DidCommError, Forward, Layer, Message, Unpacked, FORWARD_TYPE,
};
use wallet_core::encoding::b64u_encode;

use crate::metrics::Metrics;
use crate::storage::{MediatorStorage, RecipientUpdate, StorageError};

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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            queue_cap: 10_000,
            max_delivery: 100,
        }
    }
}

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
}

impl Refusal {
    /// The Report Problem 2.0 code.
    pub fn problem_code(&self) -> &'static str {
        match self {
            Refusal::Envelope(DidCommError::TooLarge { .. }) => "e.p.msg.too-large",
            Refusal::Envelope(DidCommError::NotForUs(_)) => "e.p.msg.not-for-me",
            Refusal::Envelope(_) => "e.p.msg.unreadable",
            Refusal::UnknownRecipient(_) => "e.p.msg.forward.unknown-recipient",
            Refusal::Storage(StorageError::QueueFull { .. }) => "w.p.msg.queue-full",
            Refusal::Storage(_) => "e.p.me.res.storage",
            Refusal::Unauthenticated(_) => "e.p.msg.unauthenticated",
            Refusal::NotMediated(_) => "e.p.req.not-mediated",
            Refusal::BadRequest(_) => "e.p.msg.bad-request",
        }
    }
}

/// A live connection (Pickup 3.0 live mode): which client it authenticated as, whether it
/// asked for live delivery, and which queued messages it was already sent (they stay queued
/// until acknowledged, but are not pushed twice on the same connection).
#[derive(Debug, Default)]
pub struct Session {
    pub client: Option<String>,
    pub live: bool,
    sent: HashSet<String>,
}

/// Messages for the other DIDs this agent hosts (organisations' DIDComm identities): the
/// mediator unpacks every envelope that reaches its endpoint and hands these over.
pub trait Inbox: Send + Sync {
    /// Handles a message unpacked for one of the inbox's DIDs; returns once what it changed is
    /// durable.
    fn receive(&self, unpacked: Unpacked) -> BoxFuture<'_, Result<Outcome, Refusal>>;
}

/// What the agent's other parts (the issuer) ask of the mediator beside them.
pub trait Hub: Send + Sync {
    /// Stores an invitation hosted at `/i/<code>`.
    fn put_invitation<'a>(
        &'a self,
        record: &'a crate::invitations::InvitationRecord,
    ) -> BoxFuture<'a, Result<(), StorageError>>;
    /// An invitation by its code.
    fn invitation<'a>(
        &'a self,
        code: &'a str,
    ) -> BoxFuture<'a, Result<Option<crate::invitations::InvitationRecord>, StorageError>>;
    /// Spends the single-use invitation whose message id is `invitation_id`: true when this
    /// call spent it, false when it was spent before, is multi-use, or unknown.
    fn use_invitation<'a>(
        &'a self,
        invitation_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>>;
    /// Takes a packed message (a forward to a phone this mediator serves) as if it had arrived
    /// over HTTP: durably queued when this returns.
    fn deliver<'a>(&'a self, envelope: &'a str) -> BoxFuture<'a, Result<(), Refusal>>;
}

/// The mediator: its identity, envelopes and storage.
pub struct Mediator<S> {
    did: String,
    didcomm: DidComm<Resolver>,
    storage: S,
    limits: Limits,
    /// Wakes the live connections of a client when a forward for it is queued.
    live: Mutex<HashMap<String, Arc<Notify>>>,
    metrics: Arc<Metrics>,
    /// Where messages for the agent's other DIDs go.
    inbox: std::sync::OnceLock<std::sync::Weak<dyn Inbox>>,
}

impl<S: MediatorStorage> Hub for Mediator<S> {
    fn put_invitation<'a>(
        &'a self,
        record: &'a crate::invitations::InvitationRecord,
    ) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(self.storage.put_invitation(record))
    }

    fn invitation<'a>(
        &'a self,
        code: &'a str,
    ) -> BoxFuture<'a, Result<Option<crate::invitations::InvitationRecord>, StorageError>> {
        Box::pin(self.storage.invitation(code))
    }

    fn use_invitation<'a>(
        &'a self,
        invitation_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(
            self.storage
                .use_invitation(invitation_id, wallet_core::didcomm::now()),
        )
    }

    fn deliver<'a>(&'a self, envelope: &'a str) -> BoxFuture<'a, Result<(), Refusal>> {
        Box::pin(async move {
            match self.handle(envelope).await? {
                Outcome::Accepted => Ok(()),
                Outcome::Reply(_) => Err(Refusal::BadRequest(
                    "a delivery expected no answer but got one".into(),
                )),
            }
        })
    }
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
    pub fn new(did: String, didcomm: DidComm<Resolver>, storage: S, limits: Limits) -> Self {
        Mediator {
            did,
            didcomm,
            storage,
            limits,
            live: Mutex::new(HashMap::new()),
            metrics: Arc::new(Metrics::default()),
            inbox: std::sync::OnceLock::new(),
        }
    }

    /// Sets where messages for the agent's other DIDs go (once).
    pub fn set_inbox(&self, inbox: std::sync::Weak<dyn Inbox>) {
        let _ = self.inbox.set(inbox);
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The notifier a live connection of `client` waits on.
    pub fn live_notifier(&self, client: &str) -> Arc<Notify> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(client.to_string())
            .or_default()
            .clone()
    }

    /// How many clients have a live notifier registered.
    pub fn live_clients(&self) -> usize {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Forgets a client's notifier when its last live connection closed.
    pub fn release_notifier(&self, client: &str, notifier: Arc<Notify>) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        // Two references: the map's and the caller's.
        if Arc::strong_count(&notifier) <= 2 {
            live.remove(client);
        }
    }

    /// For a live session: the next `delivery` of queued messages not yet pushed on it,
    /// packed for its client; `None` when there is nothing new.
    pub async fn live_delivery(&self, session: &mut Session) -> Result<Option<String>, Refusal> {
        let (Some(client), true) = (session.client.clone(), session.live) else {
            return Ok(None);
        };
        let mut attachments = Vec::new();
        for recipient in self.storage.recipients(&client).await? {
            let room = self.limits.max_delivery - attachments.len();
            if room == 0 {
                break;
            }
            let waiting = self
                .storage
                .peek(&recipient, room + session.sent.len())
                .await?;
            for queued in waiting {
                if attachments.len() == self.limits.max_delivery {
                    break;
                }
                if session.sent.insert(queued.id.clone()) {
                    attachments.push(delivery_attachment(queued));
                }
            }
        }
        if attachments.is_empty() {
            return Ok(None);
        }
        self.metrics.messages_out.inc_by(attachments.len() as u64);
        let mut delivery = Message::new(DELIVERY, json!({}))
            .from(self.did.clone())
            .to([client.clone()]);
        delivery.attachments = attachments;
        Ok(Some(
            self.didcomm
                .pack_authcrypt(&delivery, &self.did, &[&client], false)
                .await?,
        ))
    }

    pub fn did(&self) -> &str {
        &self.did
    }

    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// Handles one inbound envelope. `Reply` carries the packed answer when the protocol has
    /// one (the sender is expected to have asked for `return_route`).
    pub async fn handle(&self, envelope: &str) -> Result<Outcome, Refusal> {
        self.handle_in(envelope, None).await
    }

    /// Handles one envelope that arrived on a live connection (`session`) or over plain HTTP
    /// (`None`), where live delivery cannot be switched on.
    pub async fn handle_in(
        &self,
        envelope: &str,
        mut session: Option<&mut Session>,
    ) -> Result<Outcome, Refusal> {
        let unpacked = self.didcomm.unpack(envelope).await?;
        let recipient = unpacked
            .metadata
            .layers
            .iter()
            .find_map(|layer| match layer {
                Layer::Anoncrypt { recipient_kid, .. } | Layer::Authcrypt { recipient_kid, .. } => {
                    Some(did_of(recipient_kid))
                }
                Layer::Signed { .. } => None,
            });
        if let Some(recipient) = recipient.filter(|did| *did != self.did) {
            // Encrypted to another DID whose keys this agent holds: an organisation's.
            let recipient = recipient.to_string();
            let inbox = self.inbox.get().and_then(std::sync::Weak::upgrade);
            return match inbox {
                Some(inbox) => inbox.receive(unpacked).await,
                None => Err(Refusal::BadRequest(format!(
                    "nothing here receives messages for {recipient}"
                ))),
            };
        }
        let Unpacked { message, metadata } = unpacked;
        if message.type_ == FORWARD_TYPE {
            return self.forward(&message).await;
        }
        let Some(sender) = metadata.authcrypt_sender_did() else {
            return Err(Refusal::Unauthenticated("this message"));
        };
        // The first message that answers a single-use invitation of the mediator spends it.
        if let Some(pthid) = &message.pthid {
            if self
                .storage
                .use_invitation(pthid, wallet_core::didcomm::now())
                .await?
            {
                tracing::info!(invitation = %pthid, client = %sender, "invitation used");
            }
        }
        let reply = match message.type_.as_str() {
            MEDIATE_REQUEST => {
                self.storage.grant(&sender).await?;
                tracing::info!(client = %sender, "mediation granted");
                reply_to(
                    &message,
                    MEDIATE_GRANT,
                    json!({ "routing_did": [self.did] }),
                )
            }
            RECIPIENT_UPDATE => self.recipient_update(&sender, &message).await?,
            RECIPIENT_QUERY => {
                self.require_grant(&sender).await?;
                let dids: Vec<Value> = self
                    .storage
                    .recipients(&sender)
                    .await?
                    .into_iter()
                    .map(|did| json!({ "recipient_did": did }))
                    .collect();
                reply_to(&message, RECIPIENT, json!({ "dids": dids }))
            }
            STATUS_REQUEST => {
                self.require_grant(&sender).await?;
                let filter = string_field(&message.body, "recipient_did");
                self.status(&sender, &message, filter).await?
            }
            DELIVERY_REQUEST => self.delivery(&sender, &message).await?,
            MESSAGES_RECEIVED => {
                let status = self.messages_received(&sender, &message).await?;
                // Acknowledged messages are gone: the socket need not remember pushing them.
                if let Some(session) = session.as_deref_mut() {
                    let acknowledged = message
                        .body
                        .get("message_id_list")
                        .and_then(Value::as_array);
                    for id in acknowledged.into_iter().flatten().filter_map(Value::as_str) {
                        session.sent.remove(id);
                    }
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
                    if session.client.as_deref().is_some_and(|c| c != sender) {
                        return Err(Refusal::BadRequest(
                            "this connection belongs to another client".into(),
                        ));
                    }
                    session.client = Some(sender.clone());
                    session.live = live;
                    session.sent.clear();
                    let mut status = self.status(&sender, &message, None).await?;
                    status.body["live_delivery"] = json!(live);
                    status
                }
                None => reply_to(
                    &message,
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
                reply_to(&message, PING_RESPONSE, json!({}))
            }
            QUERIES => reply_to(&message, DISCLOSE, disclose(&message.body)),
            PROBLEM_REPORT => {
                tracing::warn!(from = %sender, code = ?message.body.get("code"), "problem reported");
                return Ok(Outcome::Accepted);
            }
            other => reply_to(
                &message,
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
        let recipient = did_of(&forward.next).to_string();
        let Some(client) = self.storage.client_of(&recipient).await? else {
            return Err(Refusal::UnknownRecipient(recipient));
        };
        let queued = self
            .storage
            .enqueue(
                &recipient,
                &forward.payload.to_string(),
                self.limits.queue_cap,
            )
            .await?;
        tracing::debug!(recipient = %recipient, id = %queued.id, "forward queued");
        self.metrics.forwards_queued.inc();
        // Wake the client's live connections, if it has any open.
        let notifier = self
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&client)
            .cloned();
        if let Some(notifier) = notifier {
            notifier.notify_waiters();
        }
        Ok(Outcome::Accepted)
    }

    async fn recipient_update(&self, client: &str, message: &Message) -> Result<Message, Refusal> {
        self.require_grant(client).await?;
        let updates = message
            .body
            .get("updates")
            .and_then(Value::as_array)
            .ok_or_else(|| Refusal::BadRequest("recipient-update has no updates list".into()))?;
        let mut updated = Vec::with_capacity(updates.len());
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
            let result = match action {
                "add" => {
                    self.storage
                        .add_recipient(client, did_of(recipient))
                        .await?
                }
                "remove" => {
                    self.storage
                        .remove_recipient(client, did_of(recipient))
                        .await?
                }
                other => {
                    return Err(Refusal::BadRequest(format!(
                        "unknown recipient-update action {other:?}"
                    )))
                }
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
        let mut attachments = Vec::new();
        for recipient in self.queues(client, filter).await? {
            let room = limit as usize - attachments.len();
            if room == 0 {
                break;
            }
            for queued in self.storage.peek(&recipient, room).await? {
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
        let ids: Vec<String> = request
            .body
            .get("message_id_list")
            .and_then(Value::as_array)
            .ok_or_else(|| Refusal::BadRequest("messages-received has no message_id_list".into()))?
            .iter()
            .map(|id| {
                id.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| Refusal::BadRequest("message ids are strings".into()))
            })
            .collect::<Result<_, _>>()?;
        for recipient in self.queues(client, None).await? {
            self.storage.remove(&recipient, &ids).await?;
        }
        self.status(client, request, None).await
    }
}

/// A queued message as a delivery attachment: its queue id, base64url of the envelope.
fn delivery_attachment(queued: crate::storage::QueuedMessage) -> Attachment {
    let mut attachment = Attachment::json(Value::Null);
    attachment.id = Some(queued.id);
    attachment.media_type = Some(wallet_core::didcomm::ENCRYPTED_TYP.to_string());
    attachment.data.json = None;
    attachment.data.base64 = Some(b64u_encode(queued.message.as_bytes()));
    attachment
}

/// Discover Features 2.0: answer `protocol` queries against [`PROTOCOLS`] (`*` wildcards).
fn disclose(body: &Value) -> Value {
    let mut disclosures = Vec::new();
    for query in body
        .get("queries")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if query.get("feature-type").and_then(Value::as_str) != Some("protocol") {
            continue;
        }
        let pattern = query.get("match").and_then(Value::as_str).unwrap_or("");
        for protocol in PROTOCOLS {
            if wildcard(pattern, protocol) {
                disclosures.push(json!({ "feature-type": "protocol", "id": protocol }));
            }
        }
    }
    json!({ "disclosures": disclosures })
}

/// `*` matches any run of characters; everything else matches itself.
fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            text.starts_with(head)
                && (0..=text.len() - head.len())
                    .filter(|&i| text.is_char_boundary(head.len() + i))
                    .any(|i| wildcard(rest, &text[head.len() + i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wildcard;

    #[test]
    fn wildcards_match_like_discover_features_says() {
        assert!(wildcard(
            "https://didcomm.org/*",
            "https://didcomm.org/routing/2.0"
        ));
        assert!(wildcard("*", "anything"));
        assert!(wildcard(
            "https://didcomm.org/trust-ping/2.0",
            "https://didcomm.org/trust-ping/2.0"
        ));
        assert!(!wildcard(
            "https://didcomm.org/tictactoe/*",
            "https://didcomm.org/routing/2.0"
        ));
        assert!(wildcard(
            "https://*/routing/*",
            "https://didcomm.org/routing/2.0"
        ));
    }
}

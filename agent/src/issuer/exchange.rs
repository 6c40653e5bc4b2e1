//! The organisations' DIDComm side: what reaches an organisation's DID through the mediator's
//! endpoint (a wallet connecting with `pthid` = a customer's invitation, Issue Credential 3.0
//! requests, acks, problem reports), and what goes out to wallets (offers, credentials,
//! deletion notices) through a durable outbox: every outgoing message is stored in the same
//! atomic write as the state change that caused it, then handed to the mediator, and handed
//! again after a crash until the mediator has queued it. Wallets de-duplicate by message id.
//!
//! The outbox is bounded: only parties with a connection to the organisation (or a
//! verification it asked for) are ever written to it; a problem report to a sender without a
//! connection is handed to the mediator at once or not at all, and rate-limited per
//! organisation. An entry is dropped (logged and counted) once it is older than the TTL or has
//! had its attempts; [`run_outbox`] sweeps it page by page in the background.

use prometheus_client::metrics::counter::Counter;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use lanyard_protocol::did::{did_of, multikey_encode, resolve_local, Resolver};
use lanyard_protocol::didcomm::{DidComm, Message, Unpacked};
use lanyard_protocol::protocols::issue_credential::{self, Offer};
use lanyard_protocol::protocols::{deletion, present_proof, ProtocolError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::callbacks::Event;
use super::customers::{Customer, Status};
use super::store::{BatchError, Expect, IssuerStorage, IssuerStorageExt, Write};
use super::templates::Template;
use super::time::now_ms;
use super::{
    ApiError, Issuer, Org, CUSTOMERS, CUSTOMER_INVITATIONS, ORG_AGREEMENT_KEYS, TEMPLATES,
    TEMPLATE_IDS,
};
use crate::mediator::{Inbox, Outcome, Refusal, PING, PING_RESPONSE, PROBLEM_REPORT};

/// Collections of this module.
pub(crate) const CONNECTIONS: &str = "connections";
pub(crate) const CREDENTIALS: &str = "credentials";
/// `<template id>/<thid>` → credential key, for deletion.
pub(crate) const CREDENTIALS_BY_TEMPLATE: &str = "credentials_by_template";
pub(crate) const OUTBOX: &str = "outbox";
/// Inbound message ids already handled (wallets may send again after a timeout).
pub(crate) const SEEN: &str = "seen";
/// Per organisation: the next free status list index.
pub(crate) const STATUS_COUNTERS: &str = "status_counters";

/// A wallet connected to an organisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub org_id: String,
    /// The wallet's pairwise DID for this organisation.
    pub their_did: String,
    pub customer_id: Option<String>,
    pub created_ms: u64,
}

/// Where an issuance stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CredentialState {
    /// The offer went out; waiting for the wallet's request.
    Offered,
    /// Signed and sent; waiting for the wallet's ack.
    Issued,
    /// The wallet verified and stored it.
    Accepted,
    /// The wallet declined the offer or refused the credential.
    Declined,
    /// Its template was deleted: revoked in the status list, the holder told.
    Revoked,
}

/// One credential exchange of an organisation, from offer to ack. `Debug` redacts the values,
/// the offered detail and the credential.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedCredential {
    /// `urn:uuid:...`, the credential's id.
    pub id: String,
    pub org_id: String,
    pub template_id: String,
    pub customer_id: Option<String>,
    pub holder_did: String,
    /// The offer's message id, which threads the exchange.
    pub thid: String,
    pub state: CredentialState,
    pub values: Map<String, Value>,
    /// The detail offered (the unsigned credential); the request must echo it.
    pub detail: Value,
    pub status_index: u64,
    pub credential: Option<Value>,
    /// Why the wallet declined, when it did.
    pub problem: Option<String>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

lanyard_protocol::redacted_debug!(IssuedCredential {
    shown: [
        id,
        org_id,
        template_id,
        customer_id,
        holder_did,
        thid,
        state,
        status_index,
        problem,
        created_ms,
        updated_ms
    ],
    redacted: [values, detail, credential],
});

/// A message waiting to be handed to the mediator. `Debug` redacts the message (it can carry
/// a credential).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
struct Outgoing {
    from: String,
    to: String,
    message: Message,
    /// Hand-overs tried and failed.
    #[serde(default)]
    attempts: u32,
    /// Not to be tried again before this time (ms since the epoch).
    #[serde(default)]
    next_ms: u64,
}

/// Per organisation: a value that changes whenever a bit of its status list does.
pub(crate) const STATUS_REVISIONS: &str = "status_revisions";

/// How many outbox entries one sweep reads at a time.
const OUTBOX_PAGE: usize = 100;

/// The longest wait between two hand-over attempts of one outbox entry.
const MAX_RETRY_WAIT_MS: u64 = 3600 * 1000;

/// What the outbox dropped, and the strangers it did not answer, since start (on `/metrics`
/// once registered with [`OutboxCounters::register`]).
#[derive(Debug, Default)]
pub struct OutboxCounters {
    /// Entries dropped because they outlived the TTL.
    pub expired: Counter,
    /// Entries dropped after their last attempt.
    pub exhausted: Counter,
    /// Entries that could not be read, dropped.
    pub unreadable: Counter,
    /// Problem reports not sent to strangers because of the rate limit.
    pub strangers_rate_limited: Counter,
    /// Problem reports to strangers the mediator would not take (not mediated here).
    pub strangers_unreachable: Counter,
}

impl OutboxCounters {
    /// Adds the counters to the agent's `/metrics`.
    pub fn register(&self, metrics: &crate::metrics::Metrics) {
        for (name, help, counter) in [
            (
                "outbox_expired",
                "Outbox messages dropped for outliving the outbox TTL",
                &self.expired,
            ),
            (
                "outbox_exhausted",
                "Outbox messages dropped after their last hand-over attempt",
                &self.exhausted,
            ),
            (
                "outbox_unreadable",
                "Outbox entries that could not be read, dropped",
                &self.unreadable,
            ),
            (
                "stranger_answers_rate_limited",
                "Problem reports to senders without a connection withheld by the rate limit",
                &self.strangers_rate_limited,
            ),
            (
                "stranger_answers_unreachable",
                "Problem reports to senders without a connection the mediator would not take",
                &self.strangers_unreachable,
            ),
        ] {
            metrics.register(name, help, counter.clone());
        }
    }
}

/// Each organisation's signed status list and the revision it was signed at.
pub(crate) type StatusListCache = Mutex<std::collections::HashMap<String, (String, Value)>>;

/// When an outbox key's entry was written (its first 16 hex digits), if it says.
fn written_ms(key: &str) -> Option<u64> {
    key.get(..16)
        .and_then(|ms| u64::from_str_radix(ms, 16).ok())
}

lanyard_protocol::redacted_debug!(Outgoing {
    shown: [from, to, attempts, next_ms],
    redacted: [message],
});

/// The storage writes of one state change, with the messages it sends.
#[derive(Default)]
pub(crate) struct Change {
    pub expect: Vec<Expect>,
    pub writes: Vec<Write>,
    outgoing: Vec<(String, Outgoing)>,
    events: Vec<Event>,
}

impl Change {
    /// Marks an inbound message handled, once: the change fails if it was handled meanwhile.
    pub fn mark_seen(&mut self, message: &Message) -> Result<(), ApiError> {
        self.expect.push(Expect::Absent {
            collection: SEEN,
            key: message.id.clone(),
        });
        self.writes.push(Write::put(SEEN, &message.id, &now_ms())?);
        Ok(())
    }

    /// Records a callback event as part of this change.
    pub fn event(&mut self, org: &Org, type_: &str, data: Value) {
        self.events.push(Event::new(org, type_, data));
    }

    /// Queues `message` from `from` to `to` in the outbox as part of this change.
    pub fn send(&mut self, from: &str, to: &str, message: Message) -> Result<(), ApiError> {
        let key = format!("{:016x}-{}", now_ms(), message.id);
        let outgoing = Outgoing {
            from: from.to_string(),
            to: to.to_string(),
            message: message.from(from.to_string()).to([to.to_string()]),
            attempts: 0,
            next_ms: 0,
        };
        self.writes.push(Write::put(OUTBOX, &key, &outgoing)?);
        self.outgoing.push((key, outgoing));
        Ok(())
    }
}

/// The status list index credentials of one organisation are numbered with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StatusCounter {
    pub next: u64,
}

/// How many credentials one organisation's status list holds.
pub const STATUS_LIST_SIZE: u64 = 131_072;

fn credential_key(org_id: &str, thid: &str) -> String {
    format!("{org_id}/{thid}")
}

/// An organisation's connection with the wallet DID `their_did`.
fn connection_key(org_id: &str, their_did: &str) -> String {
    format!("{org_id}/{their_did}")
}

/// Sweeps the outbox in the background: once at start for what a restart left behind, then
/// every `outbox_retry`. The agent serves meanwhile, however large the outbox.
pub async fn run_outbox<S: IssuerStorage>(issuer: std::sync::Weak<Issuer<S>>) {
    let started = now_ms();
    let mut first = true;
    loop {
        let Some(issuer) = issuer.upgrade() else {
            break;
        };
        // Entries not tried yet that are younger than this are being handed over by the
        // change that wrote them.
        let cutoff = if first {
            started
        } else {
            now_ms().saturating_sub(5_000)
        };
        match issuer.sweep_outbox(cutoff, first).await {
            Ok(n) if first && n > 0 => {
                tracing::info!(entries = n, "outbox swept after a restart")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "outbox sweep"),
        }
        first = false;
        let wait = issuer.limits.outbox_retry;
        drop(issuer);
        tokio::time::sleep(wait).await;
    }
}

impl<S: IssuerStorage> Issuer<S> {
    /// Applies a change and hands its messages to the mediator.
    pub(crate) async fn commit(&self, mut change: Change) -> Result<(), ApiError> {
        let events = std::mem::take(&mut change.events);
        for event in &events {
            change.writes.extend(self.event_writes(event).await?);
        }
        self.storage.apply(change.expect, change.writes).await?;
        if !events.is_empty() {
            self.callbacks.notify_one();
        }
        for (key, outgoing) in change.outgoing {
            self.deliver(&key, &outgoing).await;
        }
        Ok(())
    }

    /// Packs `message` from `from` for `to` and hands it to the mediator, which queues it
    /// durably before this returns.
    async fn hand_over(&self, from: &str, to: &str, message: &Message) -> Result<(), String> {
        let didcomm = DidComm::new(self.keys.clone(), Resolver::default());
        let packed = didcomm
            .pack_for_delivery(message, Some(from), to, false)
            .await
            .map_err(|e| e.to_string())?;
        self.hub()
            .map_err(|e| e.message)?
            .deliver(&packed.message)
            .await
            .map_err(|e| e.to_string())
    }

    /// Hands one outbox message to the mediator and removes it from the outbox once queued. A
    /// failure counts an attempt and sets when to try again, for [`run_outbox`].
    async fn deliver(&self, key: &str, outgoing: &Outgoing) {
        let result = match self
            .hand_over(&outgoing.from, &outgoing.to, &outgoing.message)
            .await
        {
            Ok(()) => self
                .storage
                .apply(vec![], vec![Write::delete(OUTBOX, key)])
                .await
                .map_err(|e| e.to_string()),
            Err(error) => Err(error),
        };
        match result {
            Ok(()) => {
                tracing::debug!(message = %outgoing.message.id, to = %outgoing.to, "message handed to the mediator")
            }
            Err(error) => {
                tracing::warn!(message = %outgoing.message.id, to = %outgoing.to, attempts = outgoing.attempts + 1, %error, "message stays in the outbox");
                self.count_attempt(key, outgoing).await;
            }
        }
    }

    /// Records a failed attempt of an outbox entry (unless it changed or went meanwhile).
    async fn count_attempt(&self, key: &str, outgoing: &Outgoing) {
        let Ok(before) = serde_json::to_vec(outgoing) else {
            return;
        };
        let mut retried = outgoing.clone();
        retried.attempts = outgoing.attempts.saturating_add(1);
        let base = self.limits.outbox_retry.as_millis() as u64;
        let wait = base
            .saturating_mul(1u64 << outgoing.attempts.min(32))
            .min(MAX_RETRY_WAIT_MS);
        retried.next_ms = now_ms().saturating_add(wait);
        let write = match Write::put(OUTBOX, key, &retried) {
            Ok(write) => write,
            Err(_) => return,
        };
        let guard = Expect::Equals {
            collection: OUTBOX,
            key: key.to_string(),
            value: before,
        };
        if let Err(BatchError::Storage(error)) = self.storage.apply(vec![guard], vec![write]).await
        {
            tracing::warn!(%key, %error, "outbox attempt not recorded");
        }
    }

    /// Hands every message still in the outbox to the mediator, page by page; returns how many
    /// entries it looked at.
    pub async fn flush_outbox(&self) -> Result<usize, ApiError> {
        self.sweep_outbox(u64::MAX, true).await
    }

    /// One pass over the outbox, [`OUTBOX_PAGE`] entries at a time: entries written after
    /// `cutoff_ms` and not tried yet are left to the change that wrote them; entries past the
    /// TTL or their last attempt are dropped; entries due (all of them when `all_due`, as
    /// after a restart) are handed over. Returns the entries looked at.
    async fn sweep_outbox(&self, cutoff_ms: u64, all_due: bool) -> Result<usize, ApiError> {
        let mut after: Option<String> = None;
        let mut looked = 0;
        loop {
            let page = self
                .storage
                .scan_after(OUTBOX, "", after.as_deref(), OUTBOX_PAGE)
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            looked += page.len();
            let full = page.len() == OUTBOX_PAGE;
            for (key, bytes) in page {
                self.sweep_entry(&key, &bytes, cutoff_ms, all_due).await?;
            }
            if !full {
                break;
            }
            // A long sweep shares the runtime with the requests being served.
            tokio::task::yield_now().await;
        }
        Ok(looked)
    }

    async fn sweep_entry(
        &self,
        key: &str,
        bytes: &[u8],
        cutoff_ms: u64,
        all_due: bool,
    ) -> Result<(), ApiError> {
        let now = now_ms();
        let written = written_ms(key);
        let outgoing = match serde_json::from_slice::<Outgoing>(bytes) {
            Ok(outgoing) => outgoing,
            Err(error) => {
                tracing::error!(%key, %error, "unreadable outbox entry dropped");
                self.outbox_counters.unreadable.inc();
                return self.drop_entry(key, bytes).await;
            }
        };
        if outgoing.attempts == 0 && written.is_some_and(|ms| ms > cutoff_ms) {
            // Not tried yet: the change that wrote it is handing it over now.
            return Ok(());
        }
        let ttl = self.limits.outbox_ttl.as_millis() as u64;
        if written.is_none_or(|ms| now.saturating_sub(ms) > ttl) {
            tracing::warn!(message = %outgoing.message.id, to = %outgoing.to, attempts = outgoing.attempts, "outbox message dropped: older than the outbox TTL");
            self.outbox_counters.expired.inc();
            return self.drop_entry(key, bytes).await;
        }
        if outgoing.attempts >= self.limits.outbox_max_attempts {
            tracing::warn!(message = %outgoing.message.id, to = %outgoing.to, attempts = outgoing.attempts, "outbox message dropped: every attempt failed");
            self.outbox_counters.exhausted.inc();
            return self.drop_entry(key, bytes).await;
        }
        if all_due || outgoing.next_ms <= now {
            self.deliver(key, &outgoing).await;
        }
        Ok(())
    }

    /// Removes an outbox entry unless it changed meanwhile.
    async fn drop_entry(&self, key: &str, bytes: &[u8]) -> Result<(), ApiError> {
        let guard = Expect::Equals {
            collection: OUTBOX,
            key: key.to_string(),
            value: bytes.to_vec(),
        };
        match self
            .storage
            .apply(vec![guard], vec![Write::delete(OUTBOX, key)])
            .await
        {
            Ok(()) | Err(BatchError::Conflict) => Ok(()),
            Err(BatchError::Storage(error)) => Err(error.into()),
        }
    }

    /// How many messages wait in the outbox (a full count: for tests and tools, not hot
    /// paths).
    pub async fn outbox_len(&self) -> Result<usize, ApiError> {
        Ok(self.storage.count(OUTBOX, "").await?)
    }

    /// The organisation a message was encrypted to, by its key agreement key.
    async fn recipient_org(&self, unpacked: &Unpacked) -> Result<Org, Refusal> {
        let kid = unpacked
            .metadata
            .recipient_kid()
            .ok_or_else(|| Refusal::BadRequest("the message was not encrypted".into()))?;
        let key = resolve_local(did_of(kid))
            .ok()
            .and_then(|doc| doc.find_key(kid))
            .ok_or_else(|| Refusal::BadRequest(format!("no key {kid}")))?;
        let org_id: Option<String> = self
            .storage
            .get_json(ORG_AGREEMENT_KEYS, &multikey_encode(&key))
            .await
            .map_err(Refusal::Storage)?;
        let org = match org_id {
            Some(id) => self.org(&id).await.ok().flatten(),
            None => None,
        };
        org.ok_or_else(|| Refusal::BadRequest(format!("no organisation receives at {kid}")))
    }

    /// Handles a message for an organisation.
    async fn receive_for_org(&self, unpacked: Unpacked) -> Result<Outcome, Refusal> {
        let org = self.recipient_org(&unpacked).await?;
        let Some(sender) = unpacked.metadata.authcrypt_sender_did() else {
            return Err(Refusal::Unauthenticated("a message to an organisation"));
        };
        let message = unpacked.message;
        if self
            .storage
            .get(SEEN, &message.id)
            .await
            .map_err(Refusal::Storage)?
            .is_some()
        {
            tracing::debug!(message = %message.id, "already handled");
            return Ok(Outcome::Accepted);
        }
        let result = self.dispatch(&org, &sender, &message).await;
        match result {
            Ok(()) => Ok(Outcome::Accepted),
            Err(Answer::Problem(code, comment)) => {
                let report = lanyard_protocol::protocols::problem_report(
                    message.thread_id(),
                    &code,
                    &comment,
                );
                if !self
                    .connected(&org, &sender)
                    .await
                    .map_err(Refusal::Storage)?
                {
                    // Nothing of a stranger's is stored: no outbox entry, no seen mark. A
                    // problem report is never answered with another (no ping-pong).
                    if message.type_ != PROBLEM_REPORT {
                        self.answer_stranger(&org, &sender, &code, report).await;
                    }
                    return Ok(Outcome::Accepted);
                }
                tracing::info!(org = %org.record.id, from = %sender, %code, %comment, "problem reported to a wallet");
                let mut change = Change::default();
                change
                    .writes
                    .push(Write::put(SEEN, &message.id, &now_ms()).map_err(Refusal::Storage)?);
                change
                    .send(&org.didcomm_did, &sender, report)
                    .map_err(api_refusal)?;
                self.commit(change).await.map_err(api_refusal)?;
                Ok(Outcome::Accepted)
            }
            Err(Answer::Refuse(refusal)) => Err(refusal),
        }
    }

    /// Whether `sender` has a connection with `org`.
    async fn connected(
        &self,
        org: &Org,
        sender: &str,
    ) -> Result<bool, crate::storage::StorageError> {
        Ok(self
            .storage
            .get(CONNECTIONS, &connection_key(&org.record.id, sender))
            .await?
            .is_some())
    }

    /// A problem report to a sender without a connection: handed to the mediator at once if
    /// the organisation's rate for strangers allows, never stored in the outbox, so a stranger
    /// (who may be mediated elsewhere, or nowhere) cannot make it grow.
    async fn answer_stranger(&self, org: &Org, sender: &str, code: &str, report: Message) {
        if self.stranger_answers.take(&org.record.id).is_err() {
            self.outbox_counters.strangers_rate_limited.inc();
            tracing::debug!(org = %org.record.id, from = %sender, %code, "stranger not answered: rate limit");
            return;
        }
        let report = report
            .from(org.didcomm_did.clone())
            .to([sender.to_string()]);
        match self.hand_over(&org.didcomm_did, sender, &report).await {
            Ok(()) => {
                tracing::info!(org = %org.record.id, from = %sender, %code, "problem reported to a stranger")
            }
            Err(error) => {
                self.outbox_counters.strangers_unreachable.inc();
                tracing::debug!(org = %org.record.id, from = %sender, %code, %error, "stranger not answered: not reachable through this mediator");
            }
        }
    }

    async fn dispatch(&self, org: &Org, sender: &str, message: &Message) -> Result<(), Answer> {
        if message.type_ == present_proof::PRESENTATION {
            // Verifiers need no connection: the wallet answers a request it was handed.
            return self.presentation(org, sender, message).await;
        }
        let connection: Option<Connection> = self
            .storage
            .get_json(CONNECTIONS, &connection_key(&org.record.id, sender))
            .await?;
        if connection.is_none()
            || self
                .answers_another_invitation(org, sender, message)
                .await?
        {
            // The first message of a wallet answers an invitation; so does a connected DID's
            // answer to another invitation of the organisation (a second customer record, or
            // the same phone onboarded again).
            return self.connect(org, sender, message).await;
        }
        match message.type_.as_str() {
            PING => {
                let mut change = self.seen(message)?;
                if message
                    .body
                    .get("response_requested")
                    .and_then(Value::as_bool)
                    != Some(false)
                {
                    let reply = Message::new(PING_RESPONSE, json!({})).thid(message.id.clone());
                    change.send(&org.didcomm_did, sender, reply)?;
                }
                self.commit(change).await?;
                Ok(())
            }
            issue_credential::REQUEST => self.issue(org, sender, message).await,
            issue_credential::ACK => {
                self.settle(org, sender, message, CredentialState::Accepted, None)
                    .await
            }
            PROBLEM_REPORT => {
                let comment = message
                    .body
                    .get("comment")
                    .and_then(Value::as_str)
                    .unwrap_or("(no comment)")
                    .to_string();
                self.settle(
                    org,
                    sender,
                    message,
                    CredentialState::Declined,
                    Some(comment),
                )
                .await
            }
            other => Err(Answer::Problem(
                "e.p.msg.unsupported".into(),
                format!("{} does not handle {other}", org.record.name),
            )),
        }
    }

    /// Whether `message` answers (by `pthid`) a customer invitation of `org` that `sender` has
    /// not connected through yet.
    async fn answers_another_invitation(
        &self,
        org: &Org,
        sender: &str,
        message: &Message,
    ) -> Result<bool, Answer> {
        let Some(pthid) = message.pthid.as_deref() else {
            return Ok(false);
        };
        let Some(key) = self
            .storage
            .get_json::<String>(CUSTOMER_INVITATIONS, pthid)
            .await?
        else {
            return Ok(false);
        };
        let customer: Option<Customer> = self.storage.get_json(CUSTOMERS, &key).await?;
        Ok(customer.is_some_and(|c| {
            c.org_id == org.record.id && c.connection_did.as_deref() != Some(sender)
        }))
    }

    /// The change that marks `message` handled.
    fn seen(&self, message: &Message) -> Result<Change, ApiError> {
        let mut change = Change::default();
        change.mark_seen(message)?;
        Ok(change)
    }

    /// A wallet's first message: it must answer a customer's invitation (`pthid`).
    async fn connect(&self, org: &Org, sender: &str, message: &Message) -> Result<(), Answer> {
        let Some(pthid) = message.pthid.as_deref() else {
            return Err(Answer::Problem(
                "e.p.req.not-connected".into(),
                "connect first: answer an invitation with its id as pthid".into(),
            ));
        };
        let key: Option<String> = self.storage.get_json(CUSTOMER_INVITATIONS, pthid).await?;
        let Some(key) = key else {
            return Err(Answer::Problem(
                "e.p.req.unknown-invitation".into(),
                format!("{} sent no invitation {pthid}", org.record.name),
            ));
        };
        let customer: Customer = self
            .storage
            .get_json(CUSTOMERS, &key)
            .await?
            .ok_or_else(|| Answer::Problem("e.p.req.unknown-invitation".into(), pthid.into()))?;
        if customer.org_id != org.record.id {
            return Err(Answer::Problem(
                "e.p.req.unknown-invitation".into(),
                format!("{} sent no invitation {pthid}", org.record.name),
            ));
        }
        if !self
            .hub()?
            .use_invitation(pthid)
            .await
            .map_err(Refusal::Storage)?
        {
            return Err(Answer::Problem(
                "e.p.req.invitation-used".into(),
                "this invitation was used already".into(),
            ));
        }
        let now = now_ms();
        let mut change = self.seen(message)?;
        let connection = Connection {
            org_id: org.record.id.clone(),
            their_did: sender.to_string(),
            customer_id: Some(customer.id.clone()),
            created_ms: now,
        };
        change.writes.push(Write::put(
            CONNECTIONS,
            connection_key(&org.record.id, sender),
            &connection,
        )?);
        let before =
            serde_json::to_vec(&customer).map_err(|e| ApiError::internal(&e.to_string()))?;
        let mut onboarded = customer.clone();
        onboarded.status = Status::Onboarded;
        onboarded.connection_did = Some(sender.to_string());
        onboarded.updated_ms = now;
        change.expect.push(Expect::Equals {
            collection: CUSTOMERS,
            key: key.clone(),
            value: before,
        });
        change.writes.push(Write::put(CUSTOMERS, &key, &onboarded)?);
        if message.type_ == PING
            && message
                .body
                .get("response_requested")
                .and_then(Value::as_bool)
                != Some(false)
        {
            let reply = Message::new(PING_RESPONSE, json!({})).thid(message.id.clone());
            change.send(&org.didcomm_did, sender, reply)?;
        }
        if let Some(auto_issue) = &customer.details.auto_issue {
            match self.template_any(&auto_issue.template_id).await? {
                Some(template) if template.has_room() => {
                    self.offer_into(
                        &mut change,
                        org,
                        &template,
                        sender,
                        Some(&customer.id),
                        &auto_issue.values,
                    )
                    .await?;
                }
                Some(template) => {
                    tracing::warn!(template = %template.template_id, "auto-issue skipped: numberOfCredentials reached")
                }
                None => {
                    tracing::warn!(template = %auto_issue.template_id, "auto-issue skipped: the template is gone")
                }
            }
        }
        change.event(
            org,
            "customer.onboarded",
            json!({ "customerId": customer.id, "connectionDid": sender }),
        );
        self.commit(change).await?;
        tracing::info!(org = %org.record.id, customer = %customer.id, "customer onboarded: wallet connected");
        Ok(())
    }

    /// Adds an offer of a credential from `template` with `values` to `holder` to `change`.
    pub(crate) async fn offer_into(
        &self,
        change: &mut Change,
        org: &Org,
        template: &Template,
        holder: &str,
        customer_id: Option<&str>,
        values: &Map<String, Value>,
    ) -> Result<IssuedCredential, ApiError> {
        let now = now_ms();
        let counter: StatusCounter = self
            .storage
            .get_json(STATUS_COUNTERS, &org.record.id)
            .await?
            .unwrap_or_default();
        if counter.next >= STATUS_LIST_SIZE {
            return Err(ApiError::conflict(&format!(
                "the organisation's status list is full ({STATUS_LIST_SIZE} credentials)"
            )));
        }
        let counter_bytes =
            serde_json::to_vec(&counter).map_err(|e| ApiError::internal(&e.to_string()))?;
        change.expect.push(if counter.next == 0 {
            Expect::Absent {
                collection: STATUS_COUNTERS,
                key: org.record.id.clone(),
            }
        } else {
            Expect::Equals {
                collection: STATUS_COUNTERS,
                key: org.record.id.clone(),
                value: counter_bytes,
            }
        });
        change.writes.push(Write::put(
            STATUS_COUNTERS,
            &org.record.id,
            &StatusCounter {
                next: counter.next + 1,
            },
        )?);
        let claims = self.claims(template, values);
        let id = format!("urn:uuid:{}", uuid::Uuid::new_v4());
        let detail = json!({
            "credential": self.unsigned_credential(org, template, &id, holder, &claims, counter.next),
            "options": issue_credential::proof_options(),
        });
        let offer = Offer {
            thid: uuid::Uuid::new_v4().to_string(),
            comment: Some(format!(
                "{} offers you {}",
                org.record.name, template.spec.name
            )),
            attributes: claims
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect(),
            descriptions: template
                .fields()
                .into_iter()
                .filter(|(name, _, _)| claims.contains_key(name))
                .map(|(name, description, _)| (name, description))
                .collect(),
            detail: detail.clone(),
        };
        let record = IssuedCredential {
            id,
            org_id: org.record.id.clone(),
            template_id: template.template_id.clone(),
            customer_id: customer_id.map(str::to_string),
            holder_did: holder.to_string(),
            thid: offer.thid.clone(),
            state: CredentialState::Offered,
            values: values.clone(),
            detail,
            status_index: counter.next,
            credential: None,
            problem: None,
            created_ms: now,
            updated_ms: now,
        };
        let key = credential_key(&org.record.id, &offer.thid);
        change.writes.push(Write::put(CREDENTIALS, &key, &record)?);
        change.writes.push(Write::put(
            CREDENTIALS_BY_TEMPLATE,
            format!("{}/{}", template.template_id, offer.thid),
            &key,
        )?);
        self.count_into(change, template, 1, 0)?;
        change.send(
            &org.didcomm_did,
            holder,
            issue_credential::offer_message(&offer),
        )?;
        Ok(record)
    }

    /// Adds `offered` and `issued` to a template's counters, guarded against concurrent
    /// changes to it.
    fn count_into(
        &self,
        change: &mut Change,
        template: &Template,
        offered: u64,
        issued: u64,
    ) -> Result<(), ApiError> {
        let before =
            serde_json::to_vec(template).map_err(|e| ApiError::internal(&e.to_string()))?;
        let mut counted = template.clone();
        counted.total_offered += offered;
        counted.total_issued += issued;
        counted.updated_ms = now_ms();
        change.expect.push(Expect::Equals {
            collection: TEMPLATES,
            key: template.key.clone(),
            value: before,
        });
        change
            .writes
            .push(Write::put(TEMPLATES, &template.key, &counted)?);
        Ok(())
    }

    /// The credential subject's claims: the template's fixed fields, then the values given.
    fn claims(&self, template: &Template, values: &Map<String, Value>) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert(
            "credentialIssuer".into(),
            json!(template.spec.credential_issuer),
        );
        claims.insert(
            "credentialType".into(),
            json!(template.spec.credential_type),
        );
        for (name, _, _) in template.fields() {
            if let Some(value) = values.get(&name) {
                claims.insert(name, value.clone());
            }
        }
        claims
    }

    /// The status list credential's URL of an organisation.
    pub fn status_list_url(&self, org: &Org) -> String {
        format!("{}/orgs/{}/status/1", self.public_url, org.record.id)
    }

    /// A wallet's `request-credential`: sign and send the offered credential.
    async fn issue(&self, org: &Org, sender: &str, message: &Message) -> Result<(), Answer> {
        let (thid, detail) = issue_credential::parse_request(message).map_err(protocol_problem)?;
        let key = credential_key(&org.record.id, &thid);
        let record: Option<IssuedCredential> = self.storage.get_json(CREDENTIALS, &key).await?;
        let record = match record {
            Some(r) if r.holder_did == sender => r,
            _ => {
                return Err(Answer::Problem(
                    "e.p.req.unknown-offer".into(),
                    format!("no offer {thid} was made to you"),
                ))
            }
        };
        if record.state != CredentialState::Offered {
            return Err(Answer::Problem(
                "e.p.req.not-offered".into(),
                format!("the offer {thid} is {:?} already", record.state),
            ));
        }
        if detail != record.detail {
            return Err(Answer::Problem(
                "e.p.req.detail-changed".into(),
                "the request asks for another credential than the one offered".into(),
            ));
        }
        let template = self
            .template_any(&record.template_id)
            .await?
            .ok_or_else(|| {
                Answer::Problem(
                    "e.p.req.template-deleted".into(),
                    format!("the template {} was deleted", record.template_id),
                )
            })?;
        if !template.has_room() {
            return Err(Answer::Problem(
                "e.p.req.limit-reached".into(),
                format!(
                    "{} has issued all the credentials it may",
                    template.spec.name
                ),
            ));
        }
        let credential = self.sign_credential(org, &record.detail)?;
        let mut change = self.seen(message)?;
        let before = serde_json::to_vec(&record).map_err(|e| ApiError::internal(&e.to_string()))?;
        let mut issued = record.clone();
        issued.state = CredentialState::Issued;
        issued.credential = Some(credential.clone());
        issued.updated_ms = now_ms();
        change.expect.push(Expect::Equals {
            collection: CREDENTIALS,
            key: key.clone(),
            value: before,
        });
        change.writes.push(Write::put(CREDENTIALS, &key, &issued)?);
        self.count_into(&mut change, &template, 0, 1)?;
        change.send(
            &org.didcomm_did,
            sender,
            issue_credential::issue_message(&thid, credential),
        )?;
        change.event(
            org,
            "credential.issued",
            json!({ "credentialId": issued.id, "templateId": issued.template_id, "customerId": issued.customer_id }),
        );
        self.commit(change).await?;
        tracing::info!(org = %org.record.id, credential = %issued.id, "credential issued");
        Ok(())
    }

    /// An ack or a problem report in an exchange's thread.
    async fn settle(
        &self,
        org: &Org,
        sender: &str,
        message: &Message,
        state: CredentialState,
        problem: Option<String>,
    ) -> Result<(), Answer> {
        let Some(thid) = message.thid.as_deref() else {
            // A problem report outside any exchange: noted, nothing to change.
            self.commit(self.seen(message)?).await?;
            return Ok(());
        };
        let key = credential_key(&org.record.id, thid);
        let record: Option<IssuedCredential> = self.storage.get_json(CREDENTIALS, &key).await?;
        let Some(record) = record.filter(|r| r.holder_did == sender) else {
            self.commit(self.seen(message)?).await?;
            return Ok(());
        };
        let allowed = match state {
            CredentialState::Accepted => record.state == CredentialState::Issued,
            _ => matches!(
                record.state,
                CredentialState::Offered | CredentialState::Issued
            ),
        };
        let mut change = self.seen(message)?;
        if allowed {
            let before =
                serde_json::to_vec(&record).map_err(|e| ApiError::internal(&e.to_string()))?;
            let mut settled = record.clone();
            settled.state = state;
            settled.problem = problem;
            settled.updated_ms = now_ms();
            change.expect.push(Expect::Equals {
                collection: CREDENTIALS,
                key: key.clone(),
                value: before,
            });
            change.writes.push(Write::put(CREDENTIALS, &key, &settled)?);
            change.event(
                org,
                match state {
                    CredentialState::Accepted => "credential.accepted",
                    _ => "credential.declined",
                },
                json!({ "credentialId": record.id, "templateId": record.template_id, "customerId": record.customer_id, "problem": settled.problem }),
            );
            tracing::info!(org = %org.record.id, credential = %record.id, ?state, "exchange settled");
        }
        self.commit(change).await?;
        Ok(())
    }

    /// Every credential exchange of a template.
    pub(crate) async fn credentials_of_template(
        &self,
        template_id: &str,
    ) -> Result<Vec<IssuedCredential>, ApiError> {
        let keys: Vec<String> = self
            .storage
            .scan_json(
                CREDENTIALS_BY_TEMPLATE,
                &format!("{template_id}/"),
                0,
                usize::MAX,
            )
            .await?;
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(record) = self.storage.get_json(CREDENTIALS, &key).await? {
                found.push(record);
            }
        }
        Ok(found)
    }

    /// Deletes a template of `org`: tells every holder of its credentials which ones go, marks
    /// them revoked (status list), and removes the template, in one atomic change.
    pub async fn delete_template(
        &self,
        org: &Org,
        template_id: &str,
    ) -> Result<Template, ApiError> {
        let template = self.template(org, template_id).await?;
        let credentials = self.credentials_of_template(&template.template_id).await?;
        let mut change = Change::default();
        let before =
            serde_json::to_vec(&template).map_err(|e| ApiError::internal(&e.to_string()))?;
        change.expect.push(Expect::Equals {
            collection: TEMPLATES,
            key: template.key.clone(),
            value: before,
        });
        change.writes.push(Write::delete(TEMPLATES, &template.key));
        change
            .writes
            .push(Write::delete(TEMPLATE_IDS, &template.template_id));
        let mut by_holder: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for record in &credentials {
            let key = credential_key(&org.record.id, &record.thid);
            if matches!(
                record.state,
                CredentialState::Issued | CredentialState::Accepted
            ) {
                by_holder
                    .entry(record.holder_did.clone())
                    .or_default()
                    .push(record.id.clone());
            }
            if record.state != CredentialState::Revoked {
                let mut revoked = record.clone();
                revoked.state = CredentialState::Revoked;
                revoked.updated_ms = now_ms();
                change.writes.push(Write::put(CREDENTIALS, &key, &revoked)?);
            }
        }
        if credentials
            .iter()
            .any(|c| c.state != CredentialState::Revoked)
        {
            // The status list changes: its next GET signs it again.
            change.writes.push(Write::put(
                STATUS_REVISIONS,
                &org.record.id,
                &super::new_object_id(),
            )?);
        }
        let holders = by_holder.len();
        change.event(
            org,
            "template.deleted",
            json!({ "templateId": template.template_id, "credentialsRevoked": credentials.iter().filter(|c| c.state != CredentialState::Revoked).count(), "holdersNotified": holders }),
        );
        for (holder, credential_ids) in by_holder {
            let notice = deletion::Notice {
                template_id: template.template_id.clone(),
                credential_ids,
                reason: format!(
                    "{} deleted the template {}",
                    org.record.name, template.spec.name
                ),
            };
            change.send(&org.didcomm_did, &holder, deletion::notice_message(&notice))?;
        }
        self.commit(change).await.map_err(|e| match e.status {
            409 => ApiError::conflict("the template changed while it was being deleted; try again"),
            _ => e,
        })?;
        tracing::info!(org = %org.record.id, template = %template_id, holders, "template deleted");
        Ok(template)
    }
}

/// How a message to an organisation is answered when it cannot be acted on.
pub(crate) enum Answer {
    /// Sent back to the wallet as a problem report (the message itself was fine to receive).
    Problem(String, String),
    /// Refused at the door (the HTTP answer says why).
    Refuse(Refusal),
}

impl From<ApiError> for Answer {
    fn from(error: ApiError) -> Self {
        Answer::Refuse(api_refusal(error))
    }
}

impl From<crate::storage::StorageError> for Answer {
    fn from(error: crate::storage::StorageError) -> Self {
        Answer::Refuse(Refusal::Storage(error))
    }
}

impl From<Refusal> for Answer {
    fn from(refusal: Refusal) -> Self {
        Answer::Refuse(refusal)
    }
}

impl From<BatchError> for Answer {
    fn from(error: BatchError) -> Self {
        Answer::from(ApiError::from(error))
    }
}

fn api_refusal(error: ApiError) -> Refusal {
    match error.status {
        500.. => Refusal::Storage(crate::storage::StorageError::Backend(error.message)),
        _ => Refusal::BadRequest(error.message),
    }
}

fn protocol_problem(error: ProtocolError) -> Answer {
    Answer::Problem("e.p.msg.malformed".into(), error.to_string())
}

impl<S: IssuerStorage> Inbox for Issuer<S> {
    fn receive(&self, unpacked: Unpacked) -> BoxFuture<'_, Result<Outcome, Refusal>> {
        Box::pin(self.receive_for_org(unpacked))
    }
}

/// The issuer as the mediator's inbox.
pub fn inbox<S: IssuerStorage>(issuer: &Arc<Issuer<S>>) -> std::sync::Weak<dyn Inbox> {
    let inbox: Arc<dyn Inbox> = issuer.clone();
    Arc::downgrade(&inbox)
}

impl<S: IssuerStorage> Issuer<S> {
    /// The unsigned W3C VC 2.0 a template's credential is: issued by the organisation's
    /// did:web, about the holder's connection DID, naming the template in `credentialSchema`,
    /// with a revocation entry in the organisation's status list.
    fn unsigned_credential(
        &self,
        org: &Org,
        template: &Template,
        id: &str,
        holder: &str,
        claims: &Map<String, Value>,
        status_index: u64,
    ) -> Value {
        let mut subject = Map::new();
        subject.insert("id".into(), json!(holder));
        subject.extend(claims.clone());
        let list = self.status_list_url(org);
        let mut credential = json!({
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "id": id,
            "type": ["VerifiableCredential", "LanyardCredential"],
            "issuer": { "id": org.issuer_did, "name": org.record.name },
            "name": template.spec.name,
            "validFrom": super::time::rfc3339_secs(now_ms() / 1000),
            "credentialSubject": subject,
            "credentialSchema": { "id": template.template_id, "type": "LanyardCredentialTemplate" },
            "credentialStatus": {
                "id": format!("{list}#{status_index}"),
                "type": "BitstringStatusListEntry",
                "statusPurpose": "revocation",
                "statusListIndex": status_index.to_string(),
                "statusListCredential": list,
            },
        });
        if let Some(until) = &template.spec.credential_expiration {
            credential["validUntil"] = json!(until);
        }
        credential
    }
}

impl<S: IssuerStorage> Issuer<S> {
    /// Signs the credential of an offer's detail as the organisation (its did:web key).
    fn sign_credential(&self, org: &Org, detail: &Value) -> Result<Value, ApiError> {
        let unsigned = detail
            .get("credential")
            .ok_or_else(|| ApiError::internal("the offer holds no credential"))?;
        lanyard_protocol::credentials::vc::issue(
            unsigned,
            &self.keys,
            &org.signing_key,
            &format!("{}#key-1", org.issuer_did),
            now_ms() / 1000,
        )
        .map_err(|e| ApiError::internal(&format!("signing the credential: {e}")))
    }

    /// The organisation's revocation list as a signed `BitstringStatusListCredential`: every
    /// credential of a deleted template has its bit set. Signed once per change of the list
    /// (its revision, written with every revocation) and served from memory in between, so a
    /// GET costs one read however often anyone asks.
    pub async fn status_list(&self, org: &Org) -> Result<Value, ApiError> {
        let revision: String = self
            .storage
            .get_json(STATUS_REVISIONS, &org.record.id)
            .await?
            .unwrap_or_default();
        let cached = self
            .status_lists
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&org.record.id)
            .filter(|(signed_at, _)| *signed_at == revision)
            .map(|(_, list)| list.clone());
        if let Some(list) = cached {
            return Ok(list);
        }
        // Labelled with the revision read before the scan: a revocation meanwhile makes the
        // next GET sign again.
        let list = self.sign_status_list(org).await?;
        self.status_lists
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(org.record.id.clone(), (revision, list.clone()));
        Ok(list)
    }

    async fn sign_status_list(&self, org: &Org) -> Result<Value, ApiError> {
        use lanyard_protocol::credentials::status_list::{status_list_credential, StatusList};
        let mut list = StatusList::new(STATUS_LIST_SIZE as usize);
        for record in self.credential_exchanges(org).await? {
            if record.state == CredentialState::Revoked {
                list.set(record.status_index as usize, true);
            }
        }
        let now = now_ms() / 1000;
        let unsigned = status_list_credential(
            &self.status_list_url(org),
            &org.issuer_did,
            &super::time::rfc3339_secs(now),
            &list,
        );
        lanyard_protocol::credentials::vc::issue(
            &unsigned,
            &self.keys,
            &org.signing_key,
            &format!("{}#key-1", org.issuer_did),
            now,
        )
        .map_err(|e| ApiError::internal(&format!("signing the status list: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use lanyard_protocol::did::{did_peer_2, PeerDidSpec, PeerService};
    use lanyard_protocol::keys::{KeyRing, KeyType};

    use super::*;
    use crate::issuer::store::SledIssuerStorage;
    use crate::issuer::IssuerLimits;
    use crate::mediator::{Limits, Mediator, SledStorage};

    /// An issuer beside a real mediator, both on sled in `dir`.
    fn issuer(dir: &std::path::Path, limits: IssuerLimits) -> Issuer<SledIssuerStorage> {
        let identity = crate::identity::load_or_create(dir, "http://agent.test/didcomm").unwrap();
        let storage = SledStorage::open(&dir.join("mediator"), Duration::ZERO).unwrap();
        let invitations = Arc::new(storage.invitations().unwrap());
        let mediator = Arc::new(Mediator::new(
            identity.did.clone(),
            DidComm::new(identity.keys.clone(), Resolver::default()),
            storage,
            invitations,
            Limits::default(),
        ));
        Issuer::new(
            SledIssuerStorage::open(&dir.join("issuer"), Duration::ZERO, &[7u8; 32]).unwrap(),
            identity.keys.clone(),
            identity.store.clone(),
            "http://agent.test".into(),
        )
        .with_hub(mediator.clone(), "lanyard")
        .with_limits(limits)
    }

    /// A phone's DID routed through the mediator, which it never asked for mediation: every
    /// hand-over to it is refused.
    fn unmediated_phone() -> String {
        let ring = KeyRing::new();
        did_peer_2(&PeerDidSpec {
            authentication: vec![ring.generate(KeyType::Ed25519)],
            key_agreement: vec![ring.generate(KeyType::X25519)],
            services: vec![PeerService {
                uri: "http://agent.test/didcomm".into(),
                routing_keys: vec![],
                accept: vec!["didcomm/v2".into()],
            }],
        })
    }

    async fn queue(issuer: &Issuer<SledIssuerStorage>, org: &Org, to: &str, n: usize) {
        let mut change = Change::default();
        for i in 0..n {
            change
                .send(
                    &org.didcomm_did,
                    to,
                    Message::new(PING, json!({ "response_requested": false, "n": i })),
                )
                .unwrap();
        }
        issuer.commit(change).await.unwrap();
    }

    #[tokio::test]
    async fn an_entry_goes_after_its_last_attempt_with_a_count() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = issuer(
            dir.path(),
            IssuerLimits {
                outbox_max_attempts: 3,
                outbox_retry: Duration::from_millis(1),
                ..IssuerLimits::default()
            },
        );
        let (org, _) = issuer.create_org("Acme").await.unwrap();
        let phone = unmediated_phone();
        queue(&issuer, &org, &phone, 1).await;
        // The commit's own hand-over was the first attempt.
        assert_eq!(issuer.outbox_len().await.unwrap(), 1);
        for attempts in [2, 3] {
            tokio::time::sleep(Duration::from_millis(20)).await;
            issuer.flush_outbox().await.unwrap();
            let entries = issuer.storage.scan(OUTBOX, "", 0, 10).await.unwrap();
            let outgoing: Outgoing = serde_json::from_slice(&entries[0].1).unwrap();
            assert_eq!(outgoing.attempts, attempts);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        issuer.flush_outbox().await.unwrap();
        assert_eq!(issuer.outbox_len().await.unwrap(), 0);
        let counters = issuer.outbox_counters();
        assert_eq!(counters.exhausted.get(), 1);
        assert_eq!(counters.expired.get(), 0);
    }

    #[tokio::test]
    async fn a_sweep_pages_through_and_drops_what_outlived_the_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = issuer(
            dir.path(),
            IssuerLimits {
                outbox_ttl: Duration::from_millis(1),
                ..IssuerLimits::default()
            },
        );
        let (org, _) = issuer.create_org("Acme").await.unwrap();
        let phone = unmediated_phone();
        // More than one page of the sweep.
        let total = OUTBOX_PAGE * 2 + 50;
        queue(&issuer, &org, &phone, total).await;
        assert_eq!(issuer.outbox_len().await.unwrap(), total);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(issuer.flush_outbox().await.unwrap(), total);
        assert_eq!(issuer.outbox_len().await.unwrap(), 0);
        let counters = issuer.outbox_counters();
        assert_eq!(counters.expired.get(), total as u64);
        let metrics = crate::metrics::Metrics::default();
        counters.register(&metrics);
        assert!(
            metrics
                .render()
                .contains(&format!("lanyard_outbox_expired_total {total}\n")),
            "{}",
            metrics.render()
        );
    }

    #[tokio::test]
    async fn an_unreadable_entry_is_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = issuer(dir.path(), IssuerLimits::default());
        issuer
            .storage
            .apply(
                vec![],
                vec![Write::Put {
                    collection: OUTBOX,
                    key: format!("{:016x}-junk", now_ms()),
                    value: b"not json".to_vec(),
                }],
            )
            .await
            .unwrap();
        issuer.flush_outbox().await.unwrap();
        assert_eq!(issuer.outbox_len().await.unwrap(), 0);
        assert_eq!(issuer.outbox_counters().unreadable.get(), 1);
    }
}

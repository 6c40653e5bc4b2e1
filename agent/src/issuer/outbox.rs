//! What goes out to wallets (offers, credentials, deletion notices, answers) goes through a
//! durable outbox: every outgoing message is stored in the same atomic write as the state
//! change that caused it ([`Change`]), then handed to the mediator, and handed again after a
//! crash until the mediator has queued it. Wallets de-duplicate by message id.
//!
//! The outbox is bounded: only parties with a connection to the organisation (or a
//! verification it asked for) are ever written to it (answers to strangers are handed over at
//! once or not at all, see `inbound.rs`). An entry is dropped (logged and counted) once it is
//! older than the TTL or has had its attempts; [`run_outbox`] sweeps it page by page in the
//! background.
//!
//! Several agents may sweep one outbox (one shared store): an agent hands an entry over only
//! under a lease on it ([`Claim`]), taken in a write guarded by the entry as read, so of two
//! agents sweeping at once one takes the entry and the other skips it. The change that
//! writes an entry writes it leased to its own agent, which hands it over at once; an entry
//! whose agent died before it was handed over is taken by any agent once the lease ran out.
//! The mediator's de-duplication by message id stays the second line of defence.

use prometheus_client::metrics::counter::Counter;

use lanyard_protocol::didcomm::Message;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::callbacks::Event;
use super::claim::{self, Claim};
use super::records::SEEN;
use super::store::{BatchError, Expect, IssuerStorage, Write};
use super::time::now_ms;
use super::{Issuer, IssuerError, Org};
use crate::mediator::Refusal;
use crate::storage::StorageError;

/// Collection of the messages waiting to be handed to the mediator.
pub(crate) const OUTBOX: &str = "outbox";

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
    /// The agent handing it over now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claim: Option<Claim>,
}

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

/// When an outbox key's entry was written (its first 16 hex digits), if it says.
fn written_ms(key: &str) -> Option<u64> {
    key.get(..16)
        .and_then(|ms| u64::from_str_radix(ms, 16).ok())
}

lanyard_protocol::redacted_debug!(Outgoing {
    shown: [from, to, attempts, next_ms, claim],
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
    pub(crate) fn mark_seen(&mut self, message: &Message) -> Result<(), IssuerError> {
        self.expect.push(Expect::Absent {
            collection: SEEN,
            key: message.id.clone(),
        });
        self.writes.push(Write::put(SEEN, &message.id, &now_ms())?);
        Ok(())
    }

    /// Records a callback event as part of this change.
    pub(crate) fn event(&mut self, org: &Org, type_: &str, data: Value) {
        self.events.push(Event::new(org, type_, data));
    }

    /// Queues `message` from `from` to `to` in the outbox as part of this change (written,
    /// leased to the committing agent, by [`Issuer::commit`]).
    pub(crate) fn send(
        &mut self,
        from: &str,
        to: &str,
        message: Message,
    ) -> Result<(), IssuerError> {
        let key = format!("{:016x}-{}", now_ms(), message.id);
        let outgoing = Outgoing {
            from: from.to_string(),
            to: to.to_string(),
            message: message.from(from.to_string()).to([to.to_string()]),
            attempts: 0,
            next_ms: 0,
            claim: None,
        };
        self.outgoing.push((key, outgoing));
        Ok(())
    }
}

/// Sweeps the outbox in the background: once at start for what a restart left behind, then
/// every `outbox_retry`. The agent serves meanwhile, however large the outbox.
pub async fn run_outbox<S: IssuerStorage>(issuer: std::sync::Weak<Issuer<S>>) {
    let mut first = true;
    loop {
        let Some(issuer) = issuer.upgrade() else {
            break;
        };
        match issuer.sweep_outbox(first).await {
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
    /// Applies a change and hands its messages to the mediator. Its outbox entries are
    /// written leased to this agent, which hands them over now: no other agent's sweep takes
    /// them meanwhile.
    pub(crate) async fn commit(&self, mut change: Change) -> Result<(), IssuerError> {
        let events = std::mem::take(&mut change.events);
        for event in &events {
            change.writes.extend(self.event_writes(event).await?);
        }
        let mut outgoing = std::mem::take(&mut change.outgoing);
        for (key, entry) in &mut outgoing {
            entry.claim = Some(self.outbox_claim());
            change
                .writes
                .push(Write::put(OUTBOX, key.as_str(), &*entry)?);
        }
        self.storage.apply(change.expect, change.writes).await?;
        if !events.is_empty() {
            self.callbacks.notify_one();
        }
        for (key, entry) in outgoing {
            self.deliver(&key, &entry).await;
        }
        Ok(())
    }

    /// A lease on an outbox entry for this agent.
    fn outbox_claim(&self) -> Claim {
        Claim::new(&self.agent_id, self.limits.outbox_lease)
    }

    /// Packs `message` from `from` for `to` (authcrypt) and queues it with the mediator for
    /// `to`, durably before this returns; the message's id makes a repeated hand-over queue it
    /// once.
    pub(super) async fn hand_over(
        &self,
        from: &str,
        to: &str,
        message: &Message,
    ) -> Result<(), Refusal> {
        let queue = self
            .queue()
            .map_err(|e| Refusal::Storage(StorageError::Backend(e.to_string())))?;
        // The sender's keys may be only in the issuer store (an agent restarted, or another
        // agent created the organisation).
        self.ensure_keys_of(from)
            .await
            .map_err(|e| Refusal::Storage(StorageError::Backend(e.to_string())))?;
        let packed = self
            .packer
            .pack_authcrypt(message, from, &[to], false)
            .await?;
        queue.enqueue(to, &packed, &message.id).await
    }

    /// Hands one outbox message (`outgoing`, as stored under this agent's lease) to the
    /// mediator and removes it from the outbox once queued. A failure counts an attempt, sets
    /// when to try again (for [`run_outbox`]) and gives the lease up.
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
            Err(error) => Err(error.to_string()),
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

    /// Records a failed attempt of an outbox entry and releases its lease (unless it changed
    /// or went meanwhile: another agent took it after the lease ran out).
    async fn count_attempt(&self, key: &str, outgoing: &Outgoing) {
        let Ok(before) = serde_json::to_vec(outgoing) else {
            return;
        };
        let mut retried = outgoing.clone();
        retried.claim = None;
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
    /// (Entries another agent, or a change of this one, is handing over under a lease are
    /// left to it.)
    pub async fn flush_outbox(&self) -> Result<usize, IssuerError> {
        self.sweep_outbox(true).await
    }

    /// One pass over the outbox, [`OUTBOX_PAGE`] entries at a time: entries under a lease
    /// are left to the agent holding it (the change that wrote them, or another agent's
    /// sweep); entries past the TTL or their last attempt are dropped; entries due (all of
    /// them when `all_due`, as after a restart) are leased to this agent and handed over.
    /// Returns the entries looked at.
    async fn sweep_outbox(&self, all_due: bool) -> Result<usize, IssuerError> {
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
                self.sweep_entry(&key, &bytes, all_due).await?;
            }
            if !full {
                break;
            }
            // A long sweep shares the runtime with the requests being served.
            tokio::task::yield_now().await;
        }
        Ok(looked)
    }

    async fn sweep_entry(&self, key: &str, bytes: &[u8], all_due: bool) -> Result<(), IssuerError> {
        let now = now_ms();
        let written = written_ms(key);
        let outgoing = match serde_json::from_slice::<Outgoing>(bytes) {
            Ok(outgoing) => outgoing,
            Err(error) => {
                if self.drop_entry(key, bytes).await? {
                    tracing::error!(%key, %error, "unreadable outbox entry dropped");
                    self.outbox_counters.unreadable.inc();
                }
                return Ok(());
            }
        };
        if claim::held(&outgoing.claim, now, &self.agent_id) {
            // Being handed over: by the change that wrote it, or by another agent's sweep.
            return Ok(());
        }
        let ttl = self.limits.outbox_ttl.as_millis() as u64;
        if written.is_none_or(|ms| now.saturating_sub(ms) > ttl) {
            if self.drop_entry(key, bytes).await? {
                tracing::warn!(message = %outgoing.message.id, to = %outgoing.to, attempts = outgoing.attempts, "outbox message dropped: older than the outbox TTL");
                self.outbox_counters.expired.inc();
            }
            return Ok(());
        }
        if outgoing.attempts >= self.limits.outbox_max_attempts {
            if self.drop_entry(key, bytes).await? {
                tracing::warn!(message = %outgoing.message.id, to = %outgoing.to, attempts = outgoing.attempts, "outbox message dropped: every attempt failed");
                self.outbox_counters.exhausted.inc();
            }
            return Ok(());
        }
        if all_due || outgoing.next_ms <= now {
            let mut claimed = outgoing;
            claimed.claim = Some(self.outbox_claim());
            let guard = Expect::Equals {
                collection: OUTBOX,
                key: key.to_string(),
                value: bytes.to_vec(),
            };
            match self
                .storage
                .apply(vec![guard], vec![Write::put(OUTBOX, key, &claimed)?])
                .await
            {
                Ok(()) => self.deliver(key, &claimed).await,
                // Another agent took it (or it went) since it was read.
                Err(BatchError::Conflict) => {}
                Err(BatchError::Storage(error)) => return Err(error.into()),
            }
        }
        Ok(())
    }

    /// Removes an outbox entry unless it changed meanwhile; whether this removed it (of
    /// several agents dropping one entry, one does, and counts it).
    async fn drop_entry(&self, key: &str, bytes: &[u8]) -> Result<bool, IssuerError> {
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
            Ok(()) => Ok(true),
            Err(BatchError::Conflict) => Ok(false),
            Err(BatchError::Storage(error)) => Err(error.into()),
        }
    }

    /// How many messages wait in the outbox (a full count: for tests and tools, not hot
    /// paths).
    pub async fn outbox_len(&self) -> Result<usize, IssuerError> {
        Ok(self.storage.count(OUTBOX, "").await?)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use lanyard_protocol::did::{did_peer_2, PeerDidSpec, PeerService};
    use lanyard_protocol::keys::{KeyRing, KeyType};

    use serde_json::json;

    use super::*;
    use crate::issuer::store::SledIssuerStorage;
    use crate::issuer::IssuerLimits;
    use lanyard_protocol::protocols::trust_ping::PING;

    /// An issuer beside a real mediator, both on sled in `dir`.
    pub(crate) fn issuer(dir: &std::path::Path, limits: IssuerLimits) -> Issuer<SledIssuerStorage> {
        crate::testing::Parts::new(dir).issuer.with_limits(limits)
    }

    /// A phone's DID with keys in `ring`, served at `uri`.
    pub(crate) fn phone_did(ring: &KeyRing, uri: &str) -> String {
        did_peer_2(&PeerDidSpec {
            authentication: vec![ring.generate(KeyType::Ed25519)],
            key_agreement: vec![ring.generate(KeyType::X25519)],
            services: vec![PeerService {
                uri: uri.into(),
                routing_keys: vec![],
                accept: vec!["didcomm/v2".into()],
            }],
        })
    }

    /// A fresh phone (served at `uri`) answering the invitation `invitation_id` of the
    /// organisation at `org_did` with a trust ping, authcrypted to it: the phone's DID and the
    /// envelope.
    pub(crate) async fn connecting_ping(
        org_did: &str,
        invitation_id: &str,
        uri: &str,
    ) -> (String, String) {
        let ring = std::sync::Arc::new(KeyRing::new());
        let phone = phone_did(&ring, uri);
        let ping = Message::new(PING, serde_json::json!({ "response_requested": false }))
            .pthid(invitation_id.to_string())
            .from(phone.clone())
            .to([org_did.to_string()]);
        let packed = lanyard_protocol::didcomm::DidComm::new(
            ring,
            lanyard_protocol::did::Resolver::default(),
        )
        .pack_authcrypt(&ping, &phone, &[org_did], false)
        .await
        .unwrap();
        (phone, packed)
    }

    /// A phone's DID routed through the mediator, which it never asked for mediation: every
    /// hand-over to it is refused.
    fn unmediated_phone() -> String {
        phone_did(&KeyRing::new(), "http://agent.test/didcomm")
    }

    async fn queue<S: IssuerStorage>(issuer: &Issuer<S>, org: &Org, to: &str, n: usize) {
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

    /// The outbox entries as stored.
    async fn entries<S: IssuerStorage>(issuer: &Issuer<S>) -> Vec<(String, Outgoing)> {
        issuer
            .storage
            .scan(OUTBOX, "", 0, usize::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|(key, bytes)| (key, serde_json::from_slice(&bytes).unwrap()))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_agents_sweeping_one_outbox_hand_each_entry_over_once() {
        use std::sync::atomic::Ordering;
        let dir = tempfile::tempdir().unwrap();
        let agents = crate::testing::TwoAgents::new(
            dir.path(),
            IssuerLimits {
                outbox_retry: Duration::from_millis(1),
                ..IssuerLimits::default()
            },
        );
        let (org, _) = agents.a.create_org("Acme").await.unwrap();
        let phone = phone_did(&KeyRing::new(), "http://agent.test/didcomm");
        // The mediator is away while 200 messages are written: each stays in the outbox,
        // tried once and its lease given up.
        agents.queue.refusing.store(true, Ordering::SeqCst);
        queue(&*agents.a, &org, &phone, 200).await;
        let waiting = entries(&*agents.a).await;
        assert_eq!(waiting.len(), 200);
        assert!(waiting
            .iter()
            .all(|(_, e)| e.attempts == 1 && e.claim.is_none()));
        agents.queue.refusing.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;

        // Both agents sweep at once.
        let (a, b) = (agents.a.clone(), agents.b.clone());
        let (swept_a, swept_b) = tokio::join!(
            tokio::spawn(async move { a.sweep_outbox(false).await.unwrap() }),
            tokio::spawn(async move { b.sweep_outbox(false).await.unwrap() }),
        );
        assert!(swept_a.unwrap() > 0 && swept_b.unwrap() > 0);
        let by_id = agents.queue.by_id.lock().unwrap().clone();
        assert_eq!(by_id.len(), 200, "every entry was handed over");
        let twice = by_id.values().filter(|n| **n != 1).count();
        assert_eq!(twice, 0, "entries handed over more than once");
        assert_eq!(agents.a.outbox_len().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_entry_leased_by_an_agent_that_died_is_taken_once_its_lease_ran_out() {
        let dir = tempfile::tempdir().unwrap();
        let agents = crate::testing::TwoAgents::new(dir.path(), IssuerLimits::default());
        let (org, _) = agents.a.create_org("Acme").await.unwrap();
        let phone = phone_did(&KeyRing::new(), "http://agent.test/didcomm");
        // An agent wrote the entry, leased to itself, and died before it handed it over.
        let message = Message::new(PING, json!({ "response_requested": false }));
        let id = message.id.clone();
        let key = format!("{:016x}-{id}", now_ms());
        let mut entry = Outgoing {
            from: org.didcomm_did.clone(),
            to: phone.clone(),
            message: message.from(org.didcomm_did.clone()).to([phone.clone()]),
            attempts: 0,
            next_ms: 0,
            claim: Some(Claim {
                by: "agent-dead".into(),
                until_ms: now_ms() + 3_600_000,
            }),
        };
        let put = |entry: &Outgoing| Write::put(OUTBOX, &key, entry).unwrap();
        agents
            .storage
            .apply(vec![], vec![put(&entry)])
            .await
            .unwrap();

        // While the lease holds, no agent takes it, even at a restart's sweep.
        agents.b.flush_outbox().await.unwrap();
        agents.a.sweep_outbox(false).await.unwrap();
        assert_eq!(agents.queue.total(), 0);
        assert_eq!(
            entries(&*agents.b).await,
            vec![(key.clone(), entry.clone())]
        );

        // The lease ran out: both agents sweep, one hands it over, once.
        entry.claim.as_mut().unwrap().until_ms = now_ms() - 1;
        agents
            .storage
            .apply(vec![], vec![put(&entry)])
            .await
            .unwrap();
        let (a, b) = tokio::join!(agents.a.sweep_outbox(false), agents.b.sweep_outbox(false));
        a.unwrap();
        b.unwrap();
        assert_eq!(agents.queue.by_id.lock().unwrap().get(&id), Some(&1));
        assert_eq!(agents.queue.total(), 1);
        assert_eq!(agents.b.outbox_len().await.unwrap(), 0);
    }
}

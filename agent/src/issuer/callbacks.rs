//! Callbacks (the console document's "Callback Configuration"): per organisation a URL that
//! events are `POST`ed to as JSON — customer onboarded, credential issued / accepted /
//! declined, template deleted, verification completed. Each delivery carries
//! `X-Lanyard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` under the
//! organisation's callback secret, and is retried with exponential backoff until the receiver
//! answers 2xx or the attempts run out. Events are written in the same atomic change as what
//! caused them, so a crash delays a callback but never loses it; every attempt is visible.
//!
//! Several agents on one store deliver each attempt once: an agent makes an attempt only
//! under a lease on the event ([`Claim`]), taken in a write guarded by the event as read, and
//! records the attempt's outcome in a write guarded by the leased event, which gives the lease
//! up. An agent that died during an attempt holds the event until the lease runs out (longer
//! than one delivery may take); then any agent's loop tries again. Each loop looks for due
//! events at least every poll interval, so events another agent wrote are found even if that
//! agent died before it delivered them.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use lanyard_protocol::net::{HttpClient, Request};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;

use super::claim::{self, Claim};
use super::store::{BatchError, Expect, IssuerStorage, IssuerStorageExt, Write};
use super::time::{iso_millis, now_ms};
use super::{Issuer, IssuerError, Org};

/// Collections of this module.
const CALLBACKS: &str = "callbacks";
pub(crate) const EVENTS: &str = "events";

/// Deliveries tried per event before giving up.
pub(crate) const MAX_ATTEMPTS: u32 = 8;
/// The largest answer a receiver may give (its status is what counts).
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// An organisation's callback endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackConfig {
    /// Where events are POSTed.
    pub url: String,
    /// When the configuration last changed (ms since the epoch).
    pub updated_ms: u64,
}

/// One try at delivering an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at_ms: u64,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// An event waiting for, or done with, delivery. `Debug` redacts its data (disclosed values).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The event's id (the `x-lanyard-delivery` header).
    pub id: String,
    /// The organisation it belongs to.
    pub org_id: String,
    /// What happened, e.g. `credential.issued`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The event's details.
    pub data: Value,
    /// When it happened (ms since the epoch).
    pub created_ms: u64,
    /// The delivery attempts so far.
    pub attempts: Vec<Attempt>,
    /// When to try next; None once delivered or given up.
    pub next_attempt_ms: Option<u64>,
    /// Whether a delivery succeeded.
    pub delivered: bool,
    /// The agent making an attempt now, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claim: Option<Claim>,
}

lanyard_protocol::redacted_debug!(Event {
    shown: [
        id,
        org_id,
        type_,
        created_ms,
        attempts,
        next_attempt_ms,
        delivered,
        claim
    ],
    redacted: [data],
});

impl Event {
    /// An event of `type_` for `org` with `data`, not delivered yet.
    pub fn new(org: &Org, type_: &str, data: Value) -> Event {
        Event {
            id: format!("evt_{}", uuid::Uuid::new_v4().simple()),
            org_id: org.record.id.clone(),
            type_: type_.to_string(),
            data,
            created_ms: now_ms(),
            attempts: Vec::new(),
            next_attempt_ms: Some(now_ms()),
            delivered: false,
            claim: None,
        }
    }

    /// The storage key: organisation, then creation order.
    pub fn key(&self) -> String {
        format!("{}/{:016x}-{}", self.org_id, self.created_ms, self.id)
    }

    /// The JSON body the receiver gets.
    pub fn payload(&self) -> Value {
        json!({
            "id": self.id,
            "type": self.type_,
            "created": iso_millis(self.created_ms),
            "organization": self.org_id,
            "data": self.data,
        })
    }
}

/// The delay before attempt `n` (1-based) after a failure: 1 s, 2 s, 4 s, ... capped at 10 min,
/// scaled by `unit` (tests use a small unit).
pub(crate) fn backoff(attempts: u32, unit: Duration) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(10);
    (unit * factor).min(Duration::from_secs(600))
}

/// HMAC-SHA256 of the concatenated `parts` under `secret`, hex.
fn hmac_hex(secret: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `X-Lanyard-Signature` header value of `body` sent at `timestamp`.
pub(crate) fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let hex = hmac_hex(secret, &[timestamp.to_string().as_bytes(), b".", body]);
    format!("t={timestamp},v1={hex}")
}

impl<S: IssuerStorage> Issuer<S> {
    /// Sets an organisation's callback URL; returns the signing secret, which is shown only
    /// when it is made (on the first configuration, or when `rotate` asks for a new one).
    pub async fn set_callback(
        &self,
        org: &Org,
        body: &Value,
    ) -> Result<(CallbackConfig, Option<String>), IssuerError> {
        let Value::Object(fields) = body else {
            return Err(IssuerError::bad_request("the body must be a JSON object"));
        };
        if let Some(unknown) = fields.keys().find(|k| *k != "url" && *k != "rotateSecret") {
            return Err(IssuerError::field(
                unknown,
                "is not a callback field (url, rotateSecret)",
            ));
        }
        let url = match fields.get("url") {
            Some(Value::String(url)) => url.trim().to_string(),
            None | Some(Value::Null) => return Err(IssuerError::field("url", "is required")),
            Some(_) => return Err(IssuerError::field("url", "must be a string")),
        };
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.len() > 2048
            || url.contains(char::is_whitespace)
        {
            return Err(IssuerError::field(
                "url",
                &format!("{url:?} is not an http(s) URL"),
            ));
        }
        // What can be told before any fetch: https, and an IP-literal host that is public.
        // A host name is checked each time it is resolved, at delivery.
        if let Err(error) = self.http.check_url(&url) {
            return Err(IssuerError::field("url", &error.to_string()));
        }
        let rotate = match fields.get("rotateSecret") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(rotate)) => *rotate,
            Some(_) => return Err(IssuerError::field("rotateSecret", "must be true or false")),
        };
        let has_secret = self.has_callback_secret(&org.record.id).await?;
        let config = CallbackConfig {
            url,
            updated_ms: now_ms(),
        };
        let mut writes = vec![Write::put(CALLBACKS, &org.record.id, &config)?];
        let secret = if rotate || !has_secret {
            use rand_core::{OsRng, RngCore};
            let mut bytes = [0u8; 32];
            OsRng.fill_bytes(&mut bytes);
            let secret = format!("whsec_{}", lanyard_protocol::encoding::b64u_encode(bytes));
            writes.push(self.callback_secret_write(&org.record.id, secret.as_bytes())?);
            Some(secret)
        } else {
            None
        };
        // The configuration and its secret in one atomic batch.
        self.storage.apply(vec![], writes).await?;
        Ok((config, secret))
    }

    /// The organisation's callback configuration, if it set one.
    pub async fn callback(&self, org: &Org) -> Result<Option<CallbackConfig>, IssuerError> {
        Ok(self.storage.get_json(CALLBACKS, &org.record.id).await?)
    }

    /// The writes that record `event` for delivery, when the organisation has a callback.
    pub(crate) async fn event_writes(&self, event: &Event) -> Result<Vec<Write>, IssuerError> {
        if self.storage.get(CALLBACKS, &event.org_id).await?.is_none() {
            return Ok(Vec::new());
        }
        Ok(vec![Write::put(EVENTS, event.key(), event)?])
    }

    /// One page of an organisation's events with their delivery attempts, newest first.
    pub async fn events(
        &self,
        org: &Org,
        page: usize,
        page_size: usize,
    ) -> Result<(Vec<Event>, usize), IssuerError> {
        let mut all: Vec<Event> = self
            .storage
            .scan_json(EVENTS, &format!("{}/", org.record.id), 0, usize::MAX)
            .await?;
        all.reverse();
        let total = all.len();
        let skip = (page - 1).saturating_mul(page_size);
        Ok((all.into_iter().skip(skip).take(page_size).collect(), total))
    }

    /// The events waiting for delivery, by organisation (each in creation order), and when
    /// the next is due; finished ones older than `retention` are deleted on the way.
    async fn due_events(
        &self,
        retention: Duration,
    ) -> Result<(BTreeMap<String, Vec<(String, Vec<u8>)>>, Option<u64>), IssuerError> {
        let all: Vec<(String, Vec<u8>)> = self.storage.scan(EVENTS, "", 0, usize::MAX).await?;
        let now = now_ms();
        let retention_ms = retention.as_millis() as u64;
        let mut due: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
        let mut next: Option<u64> = None;
        let mut soonest = |at: u64| next = Some(next.map_or(at, |n: u64| n.min(at)));
        let mut expired = Vec::new();
        for (key, bytes) in all {
            let Ok(event) = serde_json::from_slice::<Event>(&bytes) else {
                tracing::error!(%key, "unreadable callback event");
                continue;
            };
            if let Some(held) = event.claim.as_ref().filter(|c| c.held(now, &self.agent_id)) {
                // An agent is making an attempt; if it dies, the event is due when its
                // lease runs out.
                if event.next_attempt_ms.is_some() {
                    soonest(held.until_ms);
                }
                continue;
            }
            match event.next_attempt_ms {
                Some(at) if at <= now => due
                    .entry(event.org_id.clone())
                    .or_default()
                    .push((key, bytes)),
                Some(at) => soonest(at),
                None => {
                    // Delivered or given up: kept for the events API, then deleted.
                    let finished = event.attempts.last().map_or(event.created_ms, |a| a.at_ms);
                    let until = finished.saturating_add(retention_ms);
                    if until <= now {
                        expired.push(Write::delete(EVENTS, &key));
                    } else {
                        soonest(until);
                    }
                }
            }
        }
        if !expired.is_empty() {
            tracing::debug!(events = expired.len(), "finished callback events deleted");
            self.storage.apply(vec![], expired).await?;
        }
        Ok((due, next))
    }

    /// Delivers one organisation's due events, oldest first: each under a lease taken from
    /// the event as read (skipped when another agent took it since), its outcome recorded
    /// under the lease, which it gives up.
    async fn deliver_org(
        &self,
        client: &HttpClient,
        events: Vec<(String, Vec<u8>)>,
        unit: Duration,
    ) {
        for (key, bytes) in events {
            let Ok(mut event) = serde_json::from_slice::<Event>(&bytes) else {
                continue;
            };
            if claim::held(&event.claim, now_ms(), &self.agent_id) {
                continue;
            }
            event.claim = Some(Claim::new(&self.agent_id, attempt_lease(client)));
            let Some(leased) = self.replace_event(&key, bytes, &event).await else {
                // Another agent took it (or it changed) since it was read.
                continue;
            };
            let mut updated = self.attempt(client, event, unit).await;
            updated.claim = None;
            if self.replace_event(&key, leased, &updated).await.is_none() {
                tracing::warn!(%key, "callback attempt not recorded: the event's lease ran out and another agent took it");
            }
        }
    }

    /// Writes `event` at `key` if it still holds `before`; the bytes written, or None when
    /// it changed meanwhile (or the write failed, which is logged).
    async fn replace_event(&self, key: &str, before: Vec<u8>, event: &Event) -> Option<Vec<u8>> {
        let after = match serde_json::to_vec(event) {
            Ok(after) => after,
            Err(error) => {
                tracing::error!(%key, %error, "callback event not updated");
                return None;
            }
        };
        let applied = self
            .storage
            .apply(
                vec![Expect::Equals {
                    collection: EVENTS,
                    key: key.to_string(),
                    value: before,
                }],
                vec![Write::Put {
                    collection: EVENTS,
                    key: key.to_string(),
                    value: after.clone(),
                }],
            )
            .await;
        match applied {
            Ok(()) => Some(after),
            Err(BatchError::Conflict) => None,
            Err(BatchError::Storage(error)) => {
                tracing::warn!(%key, %error, "callback event not updated");
                None
            }
        }
    }

    /// One delivery attempt of `event`; returns it with the attempt recorded. The attempt's
    /// error is in words that name no address or connection detail (the organisation reads
    /// it); the operator's log has the detail.
    async fn attempt(&self, client: &HttpClient, mut event: Event, unit: Duration) -> Event {
        let outcome: Result<u16, AttemptError> = async {
            let config: CallbackConfig = self
                .storage
                .get_json(CALLBACKS, &event.org_id)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "callback configuration");
                    AttemptError::ConfigUnreadable
                })?
                .ok_or(AttemptError::Removed)?;
            let secret = self
                .callback_secret(&event.org_id)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "callback secret");
                    AttemptError::SecretUnreadable
                })?
                .ok_or(AttemptError::SecretMissing)?;
            let body = serde_json::to_vec(&event.payload()).map_err(AttemptError::Payload)?;
            let timestamp = now_ms() / 1000;
            let response = client
                .send(
                    Request::post(&config.url, "application/json", body.clone())
                        .header("x-lanyard-event", event.type_.clone())
                        .header("x-lanyard-delivery", event.id.clone())
                        .header("x-lanyard-signature", signature(&secret, timestamp, &body))
                        .max_bytes(MAX_ANSWER_BYTES),
                )
                .await;
            match response {
                Ok(response) => Ok(response.status),
                Err(error) => {
                    tracing::info!(event = %event.id, %error, "callback delivery failed");
                    Err(AttemptError::Send(error.public()))
                }
            }
        }
        .await;
        let at_ms = now_ms();
        let (status, error) = match outcome {
            Ok(status) if (200..300).contains(&status) => (Some(status), None),
            Ok(status) => (
                Some(status),
                Some(format!("the receiver answered {status}")),
            ),
            Err(error) => (None, Some(error.to_string())),
        };
        event.delivered = error.is_none();
        event.attempts.push(Attempt {
            at_ms,
            status,
            error,
        });
        let tries = event.attempts.len() as u32;
        event.next_attempt_ms = if event.delivered || tries >= MAX_ATTEMPTS {
            None
        } else {
            Some(at_ms + backoff(tries, unit).as_millis() as u64)
        };
        if event.delivered {
            tracing::info!(event = %event.id, kind = %event.type_, "callback delivered");
        } else {
            tracing::warn!(event = %event.id, kind = %event.type_, tries, "callback not delivered");
        }
        event
    }
}

/// Why one delivery attempt failed, in the words recorded on the event for the organisation:
/// no address or connection detail (the operator's log has it).
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error("the callback configuration could not be read")]
    ConfigUnreadable,
    #[error("the callback was removed")]
    Removed,
    #[error("the callback secret could not be read")]
    SecretUnreadable,
    #[error("the callback secret is missing")]
    SecretMissing,
    #[error("{0}")]
    Payload(serde_json::Error),
    #[error("{0}")]
    Send(&'static str),
}

/// How long an agent holds an event while it makes one attempt: well beyond the longest an
/// attempt may take (the client's total timeout), so that a live agent's attempt is never
/// made again by another; an attempt of an agent that died is made again after it.
fn attempt_lease(client: &HttpClient) -> Duration {
    client.policy().timeout.saturating_mul(2) + Duration::from_secs(30)
}

/// How callbacks are delivered.
#[derive(Clone, Debug)]
pub struct Deliveries {
    /// The hardened client, its total timeout being one delivery's limit.
    pub client: HttpClient,
    /// The first retry's wait; each further one doubles ([`backoff`]).
    pub retry_unit: Duration,
    /// Organisations delivered to at the same time.
    pub concurrency: usize,
    /// How long finished events are kept.
    pub retention: Duration,
    /// The longest wait between two looks for due events: events other agents on the same
    /// store wrote (and did not deliver, having died) are found within it.
    pub poll: Duration,
}

/// Runs deliveries until the issuer is dropped: wakes when `wake` is notified (a new event was
/// committed, or an organisation's deliveries ended) or the next retry is due. Each
/// organisation's due events are delivered by a task of its own, at most one per
/// organisation and `concurrency` in all, so a dead or hanging endpoint holds up only the
/// organisation that configured it.
pub async fn run<S: IssuerStorage + 'static>(
    issuer: std::sync::Weak<Issuer<S>>,
    wake: std::sync::Arc<tokio::sync::Notify>,
    deliveries: Deliveries,
) {
    let busy: Arc<Mutex<HashSet<String>>> = Arc::default();
    let slots = Arc::new(tokio::sync::Semaphore::new(deliveries.concurrency.max(1)));
    loop {
        let next = {
            let Some(issuer) = issuer.upgrade() else {
                return;
            };
            match issuer.due_events(deliveries.retention).await {
                Ok((due, next)) => {
                    for (org, events) in due {
                        if !busy
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(org.clone())
                        {
                            // Its deliveries are under way; what is due now waits for them.
                            continue;
                        }
                        let Ok(slot) = slots.clone().try_acquire_owned() else {
                            busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&org);
                            continue;
                        };
                        let issuer = Arc::downgrade(&issuer);
                        let (busy, wake, client) =
                            (busy.clone(), wake.clone(), deliveries.client.clone());
                        let unit = deliveries.retry_unit;
                        tokio::spawn(async move {
                            if let Some(issuer) = issuer.upgrade() {
                                issuer.deliver_org(&client, events, unit).await;
                            }
                            busy.lock().unwrap_or_else(|p| p.into_inner()).remove(&org);
                            drop(slot);
                            wake.notify_one();
                        });
                    }
                    next
                }
                Err(error) => {
                    tracing::error!(message = %error, "callback deliveries");
                    Some(now_ms() + 5_000)
                }
            }
        };
        let wait = next
            .map_or(deliveries.poll, |at| {
                Duration::from_millis(at.saturating_sub(now_ms()))
            })
            .min(deliveries.poll);
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::time::now_ms;

    #[test]
    fn signatures_are_hmac_sha256_of_time_dot_body() {
        // RFC 4231 test case 2, its message fed in parts.
        assert_eq!(
            hmac_hex(b"Jefe", &[b"what do ya", b" want for nothing?"]),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let expected = hmac_hex(b"Jefe", &[b"1700000000.{\"a\":1}"]);
        assert_eq!(
            signature(b"Jefe", 1_700_000_000, b"{\"a\":1}"),
            format!("t=1700000000,v1={expected}")
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let unit = Duration::from_secs(1);
        assert_eq!(backoff(1, unit), Duration::from_secs(1));
        assert_eq!(backoff(4, unit), Duration::from_secs(8));
        assert_eq!(backoff(30, unit), Duration::from_secs(600));
    }

    /// A callback receiver on loopback: counts deliveries by event id and refuses (500) the
    /// first delivery of each event, takes (204) the rest.
    async fn receiver() -> (String, Arc<Mutex<std::collections::HashMap<String, usize>>>) {
        let seen: Arc<Mutex<std::collections::HashMap<String, usize>>> = Arc::default();
        let log = seen.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let log = log.clone();
                async move {
                    let id = headers["x-lanyard-delivery"].to_str().unwrap().to_string();
                    let mut log = log.lock().unwrap();
                    let n = log.entry(id).or_default();
                    *n += 1;
                    if *n == 1 {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::NO_CONTENT
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, seen)
    }

    fn deliveries() -> Deliveries {
        Deliveries {
            client: crate::testing::loopback(),
            retry_unit: Duration::from_millis(5),
            concurrency: 4,
            retention: Duration::from_secs(3600),
            poll: Duration::from_millis(20),
        }
    }

    /// Commits `n` events of `org` through `issuer`.
    async fn events_by<S: IssuerStorage>(issuer: &Issuer<S>, org: &Org, n: usize) {
        let mut change = super::super::outbox::Change::default();
        for i in 0..n {
            change.event(org, "test.event", json!({ "n": i }));
        }
        issuer.commit(change).await.unwrap();
    }

    /// Waits (a bounded while) until every event of `org` is delivered; returns them.
    async fn all_delivered<S: IssuerStorage>(
        issuer: &Issuer<S>,
        org: &Org,
        n: usize,
    ) -> Vec<Event> {
        for _ in 0..1000 {
            let (events, total) = issuer.events(org, 1, n).await.unwrap();
            if total == n && events.iter().all(|e| e.delivered) {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the events were not all delivered");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_agents_delivering_one_store_make_each_attempt_once() {
        let dir = tempfile::tempdir().unwrap();
        let agents = crate::testing::TwoAgents::new(dir.path(), Default::default());
        let (url, seen) = receiver().await;
        let (org, _) = agents.a.create_org("Acme").await.unwrap();
        agents
            .a
            .set_callback(&org, &json!({ "url": url }))
            .await
            .unwrap();
        for issuer in [&agents.a, &agents.b] {
            tokio::spawn(run(
                Arc::downgrade(issuer),
                issuer.callback_waker(),
                deliveries(),
            ));
        }
        // Events written by both agents, while both loops run.
        const N: usize = 40;
        let (a, b) = tokio::join!(
            events_by(&*agents.a, &org, N / 2),
            events_by(&*agents.b, &org, N / 2)
        );
        ((), ()) = (a, b);
        let events = all_delivered(&*agents.a, &org, N).await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), N, "every event reached the receiver");
        for event in &events {
            // Refused once, taken at the retry: two attempts, each made once.
            assert_eq!(seen.get(&event.id), Some(&2), "deliveries of {}", event.id);
            let statuses: Vec<_> = event.attempts.iter().map(|a| a.status).collect();
            assert_eq!(statuses, [Some(500), Some(204)], "attempts of {}", event.id);
            assert_eq!(event.claim, None, "the lease was given up");
        }
    }

    #[tokio::test]
    async fn events_of_an_agent_that_died_are_delivered_by_another() {
        let dir = tempfile::tempdir().unwrap();
        let agents = crate::testing::TwoAgents::new(dir.path(), Default::default());
        let (url, seen) = receiver().await;
        let (org, _) = agents.a.create_org("Acme").await.unwrap();
        agents
            .a
            .set_callback(&org, &json!({ "url": url }))
            .await
            .unwrap();
        // A writes events (its wake reaches no loop) and is gone.
        events_by(&*agents.a, &org, 3).await;
        // One event A had leased (an attempt under way) when it died.
        let (key, bytes) = agents
            .storage
            .scan(EVENTS, "", 0, 1)
            .await
            .unwrap()
            .remove(0);
        let mut leased: Event = serde_json::from_slice(&bytes).unwrap();
        leased.claim = Some(Claim {
            by: "agent-dead".into(),
            until_ms: now_ms() + 200,
        });
        agents
            .storage
            .apply(vec![], vec![Write::put(EVENTS, &key, &leased).unwrap()])
            .await
            .unwrap();
        // Only B delivers.
        tokio::spawn(run(
            Arc::downgrade(&agents.b),
            agents.b.callback_waker(),
            deliveries(),
        ));
        let events = all_delivered(&*agents.b, &org, 3).await;
        let seen = seen.lock().unwrap().clone();
        for event in &events {
            assert_eq!(seen.get(&event.id), Some(&2), "deliveries of {}", event.id);
            assert_eq!(event.attempts.len(), 2);
        }
        // The leased one was tried only after its lease ran out.
        let retaken = events.iter().find(|e| e.id == leased.id).unwrap();
        assert!(retaken.attempts[0].at_ms >= leased.claim.as_ref().unwrap().until_ms);
    }
}

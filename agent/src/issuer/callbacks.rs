//! Callbacks (the console document's "Callback Configuration"): per organisation a URL that
//! events are `POST`ed to as JSON — customer onboarded, credential issued / accepted /
//! declined, template deleted, verification completed. Each delivery carries
//! `X-Lanyard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` under the
//! organisation's callback secret, and is retried with exponential backoff until the receiver
//! answers 2xx or the attempts run out. Events are written in the same atomic change as what
//! caused them, so a crash delays a callback but never loses it; every attempt is visible.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use lanyard_protocol::net::{HttpClient, Request};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;

use super::store::{Expect, IssuerStorage, IssuerStorageExt, Write};
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
}

lanyard_protocol::redacted_debug!(Event {
    shown: [
        id,
        org_id,
        type_,
        created_ms,
        attempts,
        next_attempt_ms,
        delivered
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

    /// Delivers one organisation's due events, oldest first.
    async fn deliver_org(
        &self,
        client: &HttpClient,
        events: Vec<(String, Vec<u8>)>,
        unit: Duration,
    ) {
        for (key, bytes) in events {
            let Ok(event) = serde_json::from_slice::<Event>(&bytes) else {
                continue;
            };
            let updated = self.attempt(client, event, unit).await;
            let write = match Write::put(EVENTS, &key, &updated) {
                Ok(write) => write,
                Err(error) => {
                    tracing::error!(%key, %error, "callback event not updated");
                    return;
                }
            };
            let applied = self
                .storage
                .apply(
                    vec![Expect::Equals {
                        collection: EVENTS,
                        key: key.clone(),
                        value: bytes,
                    }],
                    vec![write],
                )
                .await;
            if let Err(error) = applied {
                tracing::warn!(%key, %error, "callback event not updated");
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
        let wait = next.map_or(Duration::from_secs(60), |at| {
            Duration::from_millis(at.saturating_sub(now_ms()))
        });
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

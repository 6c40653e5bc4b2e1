//! [`LocalPushGateway`]: the gateway in this process, over a [`PushStore`], sending through
//! the hardened client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lanyard_protocol::net::{HttpClient, NetError, Request};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use zeroize::Zeroizing;

use super::apns::Apns;
use super::fcm::Fcm;
use super::store::{PushBackend, PushStore, WakeClaim};
use super::{Device, Platform, PushConfig, PushError, PushGateway, WakeHandle, Woken};
use crate::issuer::store::RecordSealer;
use crate::storage::StorageError;

/// The sealing's collection for devices (the handle is the record's key).
const DEVICES: &str = "push-devices";
/// The body of a webhook wake: fixed, naming nothing.
pub(crate) const WEBHOOK_BODY: &str = r#"{"type":"lanyard.wake"}"#;
/// Handles remembered in memory as recently woken, at most.
const RECENT_CAP: usize = 100_000;
/// The longest wait between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(300);

/// Seconds since the epoch.
pub(crate) fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What one attempt at a push came to.
pub(crate) enum Outcome {
    /// The platform accepted it.
    Delivered,
    /// The platform says the token is gone.
    Gone,
    /// A failure a later attempt may not have: wait the platform's `Retry-After` if it sent
    /// one.
    Retry(Option<Duration>, PushError),
    /// A refusal a retry does not fix.
    Failed(PushError),
}

impl Outcome {
    /// A request that failed on the way (a retry may get through), named without its URL.
    pub(crate) fn unreachable(platform: Platform, error: &NetError) -> Outcome {
        Outcome::Retry(
            None,
            PushError::Unreachable {
                platform,
                reason: error.public(),
            },
        )
    }
}

/// The labels of `lanyard_push_wakes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct WakeLabel {
    platform: &'static str,
    /// `sent`, `coalesced`, `dropped`, `not_configured`, `retried` or `failed`.
    outcome: &'static str,
}

struct Inner {
    store: PushBackend,
    sealer: RecordSealer,
    apns: Option<Apns>,
    fcm: Option<Fcm>,
    /// The client webhooks are called with, when webhooks are on.
    webhook: Option<HttpClient>,
    coalesce: Duration,
    retry_base: Duration,
    attempts: u32,
    max_devices: u64,
    /// Handles this process woke, when, and their platform.
    recent: Mutex<HashMap<WakeHandle, (Instant, Platform)>>,
    wakes: Family<WakeLabel, Counter>,
}

/// The push gateway in this process: devices in a [`PushStore`] (sled or PostgreSQL), sealed
/// with the agent's record sealing under the data key it is given, pushes sent through the
/// hardened client. Cheap to clone.
#[derive(Clone)]
pub struct LocalPushGateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalPushGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPushGateway")
            .field("apns", &self.inner.apns.is_some())
            .field("fcm", &self.inner.fcm.is_some())
            .field("webhooks", &self.inner.webhook.is_some())
            .finish_non_exhaustive()
    }
}

impl LocalPushGateway {
    /// The gateway `config` describes (its key files read now; what is wrong with one is
    /// named), over `store`, sealing devices under `data_key`, every request through
    /// `client`.
    pub fn new(
        config: &PushConfig,
        store: PushBackend,
        data_key: &[u8; 32],
        client: HttpClient,
    ) -> Result<LocalPushGateway, PushError> {
        Ok(LocalPushGateway {
            inner: Arc::new(Inner {
                store,
                sealer: RecordSealer::new(data_key),
                apns: Apns::from_config(config, client.clone())?,
                fcm: Fcm::from_config(config, client.clone())?,
                webhook: config.webhooks.then_some(client),
                coalesce: config.coalesce,
                retry_base: config.retry_base.max(Duration::from_millis(1)),
                attempts: config.attempts.max(1),
                max_devices: config.max_devices,
                recent: Mutex::new(HashMap::new()),
                wakes: Family::default(),
            }),
        })
    }

    /// Adds `lanyard_push_wakes_total{platform,outcome}` to `metrics`' registry.
    pub fn register_metrics(&self, metrics: &crate::Metrics) {
        metrics.register_metric(
            "push_wakes",
            "Push wakes by platform and outcome (sent, coalesced, dropped, not_configured, retried, failed)",
            self.inner.wakes.clone(),
        );
    }

    /// Whether `platform` is configured here.
    pub fn configured(&self, platform: Platform) -> bool {
        match platform {
            Platform::Apns => self.inner.apns.is_some(),
            Platform::Fcm => self.inner.fcm.is_some(),
            Platform::Webhook => self.inner.webhook.is_some(),
        }
    }
}

impl Inner {
    fn count(&self, platform: Platform, outcome: &'static str) {
        self.wakes
            .get_or_create(&WakeLabel {
                platform: platform.name(),
                outcome,
            })
            .inc();
    }

    fn seal(&self, handle: &str, device: &Device) -> Result<Vec<u8>, PushError> {
        let plain = Zeroizing::new(
            serde_json::to_vec(device).map_err(|e| StorageError::Corrupt(e.to_string()))?,
        );
        Ok(self.sealer.seal(DEVICES, handle, &plain)?)
    }

    async fn device(&self, handle: &str) -> Result<Option<Device>, PushError> {
        let Some(sealed) = self.store.get(handle).await? else {
            return Ok(None);
        };
        let plain = Zeroizing::new(self.sealer.open(DEVICES, handle, &sealed)?);
        let device = serde_json::from_slice(&plain)
            .map_err(|e| StorageError::Corrupt(format!("push device: {e}")))?;
        Ok(Some(device))
    }

    /// Whether this process woke `handle` within the window (and its platform).
    fn recently_woken(&self, handle: &WakeHandle) -> Option<Platform> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .get(handle)
            .filter(|(at, _)| at.elapsed() < self.coalesce)
            .map(|(_, platform)| *platform)
    }

    fn remember(&self, handle: WakeHandle, platform: Platform) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() >= RECENT_CAP {
            recent.retain(|_, (at, _)| at.elapsed() < self.coalesce);
            if recent.len() >= RECENT_CAP {
                // The store still coalesces; memory is only the first, cheap check.
                recent.clear();
            }
        }
        recent.insert(handle, (Instant::now(), platform));
    }

    fn forget(&self, handle: &WakeHandle) {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(handle);
    }

    /// One attempt at pushing to `device`.
    async fn attempt(&self, device: &Device) -> Outcome {
        match device.platform {
            Platform::Apns => match &self.apns {
                Some(apns) => apns.send(&device.token).await,
                None => Outcome::Failed(PushError::NotConfigured(Platform::Apns)),
            },
            Platform::Fcm => match &self.fcm {
                Some(fcm) => fcm.send(&device.token).await,
                None => Outcome::Failed(PushError::NotConfigured(Platform::Fcm)),
            },
            Platform::Webhook => match &self.webhook {
                Some(client) => webhook(client, &device.token).await,
                None => Outcome::Failed(PushError::NotConfigured(Platform::Webhook)),
            },
        }
    }

    /// The delay before attempt `attempt` (2, 3, ...): the platform's `Retry-After` when it
    /// sent one, else the base doubled per attempt; at most [`MAX_DELAY`].
    fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        retry_after
            .unwrap_or_else(|| {
                self.retry_base
                    .saturating_mul(1u32 << (attempt.saturating_sub(2)).min(20))
            })
            .min(MAX_DELAY)
    }

    /// The token is gone: the handle is forgotten.
    async fn drop_handle(&self, handle: &WakeHandle, platform: Platform) {
        self.forget(handle);
        if let Err(error) = self.store.remove(&handle.to_string()).await {
            tracing::warn!(%error, %platform, "a push handle the platform dropped is not removed");
        }
        self.count(platform, Woken::Dropped.name());
    }

    /// Attempts 2.. of a wake whose first attempt failed transiently.
    async fn retry(self: Arc<Self>, handle: WakeHandle, device: Device, first: Option<Duration>) {
        let mut retry_after = first;
        for attempt in 2..=self.attempts {
            tokio::time::sleep(self.delay(attempt, retry_after)).await;
            match self.attempt(&device).await {
                Outcome::Delivered => {
                    self.count(device.platform, Woken::Sent.name());
                    return;
                }
                Outcome::Gone => {
                    self.drop_handle(&handle, device.platform).await;
                    return;
                }
                Outcome::Retry(after, error) => {
                    self.count(device.platform, "retried");
                    tracing::info!(%error, attempt, "push failed; retrying");
                    retry_after = after;
                }
                Outcome::Failed(error) => {
                    self.count(device.platform, "failed");
                    tracing::warn!(%error, attempt, "push refused");
                    return;
                }
            }
        }
        self.count(device.platform, "failed");
        tracing::warn!(attempts = self.attempts, platform = %device.platform, "push given up");
    }
}

/// One webhook call: a POST of the fixed body.
async fn webhook(client: &HttpClient, url: &str) -> Outcome {
    let request =
        Request::post(url, "application/json", WEBHOOK_BODY.as_bytes().to_vec()).max_bytes(4096);
    match client.send(request).await {
        Ok(response) => {
            let refused = PushError::Refused {
                platform: Platform::Webhook,
                status: response.status,
                reason: None,
            };
            match response.status {
                200..=299 => Outcome::Delivered,
                410 => Outcome::Gone,
                429 | 500..=599 => Outcome::Retry(response.retry_after(), refused),
                _ => Outcome::Failed(refused),
            }
        }
        // A redirect or a refused address does not change by retrying.
        Err(
            error @ (NetError::Redirect { .. }
            | NetError::Refused { .. }
            | NetError::PlainHttp { .. }
            | NetError::BadUrl { .. }),
        ) => Outcome::Failed(PushError::Unreachable {
            platform: Platform::Webhook,
            reason: error.public(),
        }),
        Err(error) => Outcome::unreachable(Platform::Webhook, &error),
    }
}

#[async_trait::async_trait]
impl PushGateway for LocalPushGateway {
    async fn register(&self, device: Device) -> Result<WakeHandle, PushError> {
        let inner = &self.inner;
        if !self.configured(device.platform) {
            return Err(PushError::NotConfigured(device.platform));
        }
        device.check()?;
        if let (Platform::Webhook, Some(client)) = (device.platform, &inner.webhook) {
            client
                .check_url(&device.token)
                .map_err(PushError::BadWebhook)?;
        }
        let handle = WakeHandle::random();
        let key = handle.to_string();
        let sealed = inner.seal(&key, &device)?;
        if !inner.store.put(&key, &sealed, inner.max_devices).await? {
            return Err(PushError::Full {
                cap: inner.max_devices,
            });
        }
        Ok(handle)
    }

    async fn unregister(&self, handle: &WakeHandle) -> Result<(), PushError> {
        self.inner.forget(handle);
        self.inner.store.remove(&handle.to_string()).await?;
        Ok(())
    }

    async fn wake(&self, handle: &WakeHandle) -> Result<Woken, PushError> {
        let inner = &self.inner;
        if let Some(platform) = inner.recently_woken(handle) {
            inner.count(platform, Woken::Coalesced.name());
            return Ok(Woken::Coalesced);
        }
        let key = handle.to_string();
        let device = inner.device(&key).await?.ok_or(PushError::UnknownHandle)?;
        let platform = device.platform;
        if !self.configured(platform) {
            inner.count(platform, Woken::NotConfigured.name());
            return Ok(Woken::NotConfigured);
        }
        match inner
            .store
            .claim_wake(&key, unix_millis(), inner.coalesce.as_millis() as u64)
            .await?
        {
            WakeClaim::Won => {}
            WakeClaim::Coalesced => {
                inner.count(platform, Woken::Coalesced.name());
                return Ok(Woken::Coalesced);
            }
            WakeClaim::Unknown => return Err(PushError::UnknownHandle),
        }
        inner.remember(*handle, platform);
        match inner.attempt(&device).await {
            Outcome::Delivered => {
                inner.count(platform, Woken::Sent.name());
                Ok(Woken::Sent)
            }
            Outcome::Gone => {
                inner.drop_handle(handle, platform).await;
                Ok(Woken::Dropped)
            }
            Outcome::Retry(after, error) if inner.attempts > 1 => {
                inner.count(platform, "retried");
                tracing::info!(%error, "push failed; retrying in the background");
                tokio::spawn(self.inner.clone().retry(*handle, device, after));
                Ok(Woken::Sent)
            }
            Outcome::Retry(_, error) | Outcome::Failed(error) => {
                inner.count(platform, "failed");
                Err(error)
            }
        }
    }
}

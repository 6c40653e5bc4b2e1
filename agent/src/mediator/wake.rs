//! Push wake-up, the mediator's side: a mediated client registers its device with a
//! `set-device-info` (`lanyard_protocol::protocols::push_notifications`: APNs, FCM or a
//! webhook); the mediator hands the token to the push gateway and stores only the opaque
//! [`WakeHandle`] it gets back ([`MediatorStorage::set_wake`]). When a message is queued for a
//! client with no live socket at this agent, the mediator asks the gateway to wake the device.
//!
//! Off the request path and bounded: a queued message only puts its client's DID on a bounded
//! channel (once while a wake for it is pending; dropped, and counted in the log, when the
//! channel is full, since a wake already waits for a client that busy); a few workers look the
//! handle up and call the gateway, which coalesces wakes per handle across agents. A client
//! with a live socket at another agent is woken too (the push is then redundant, never
//! harmful: the gateway's window bounds it). A handle the gateway reports gone (the platform
//! said the token is dead) is forgotten here as well.
//!
//! The gateway sends at most one wake per handle per coalescing window and refuses the rest
//! (`Coalesced`). A message queued inside the window (the credential that answers the request
//! the woken phone just sent) would then wait unannounced: so a coalesced wake is tried again
//! once the window has passed, if messages still wait for the client then (a trailing wake;
//! at most one pending per client, and at most [`WAKE_QUEUE`] clients).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lanyard_protocol::didcomm::Message;
use lanyard_protocol::protocols::push_notifications::{
    self as push, DeviceInfo, PushMessageKind, PushService,
};
use lanyard_protocol::protocols::report_problem::{self, ProblemReport};
use tokio::sync::mpsc;

use super::{Mediator, MediatorStorage, Refusal, WakeRegistration, WakeTag};
use crate::push::{Device, Platform, PushError, PushGateway, WakeHandle, Woken};

/// Clients waiting for a wake at most; past it a wake is skipped (one is pending already for
/// every client that busy, or the gateway is too slow to keep up).
const WAKE_QUEUE: usize = 4096;

/// Gateway calls in flight at once.
const WAKE_CONCURRENCY: usize = 16;

/// The mediator's link to the push gateway: the gateway, and the bounded queue of clients to
/// wake.
pub(super) struct PushWake {
    gateway: Arc<dyn PushGateway>,
    queue: mpsc::Sender<String>,
    /// Clients on the queue, so a burst of messages queues one wake.
    pending: Mutex<HashSet<WakeTag>>,
    /// The gateway's coalescing window.
    window: Duration,
    /// Clients whose wake was coalesced, and when to try again.
    deferred: Mutex<HashMap<WakeTag, (String, Instant)>>,
}

impl PushWake {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashSet<WakeTag>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn deferred(&self) -> std::sync::MutexGuard<'_, HashMap<WakeTag, (String, Instant)>> {
        self.deferred.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers to wake `client` again once the window has passed (the first due time holds).
    fn defer(&self, client: &str) {
        let mut deferred = self.deferred();
        if deferred.len() >= WAKE_QUEUE {
            tracing::debug!(client = %client, "trailing wakes full: skipped");
            return;
        }
        deferred
            .entry(super::wake_tag(client))
            .or_insert_with(|| (client.to_string(), Instant::now() + self.window));
    }

    /// The deferred clients now due, taken off the list.
    fn due(&self) -> Vec<String> {
        let now = Instant::now();
        let mut due = Vec::new();
        self.deferred().retain(|_, (client, at)| {
            if *at <= now {
                due.push(std::mem::take(client));
                false
            } else {
                true
            }
        });
        due
    }
}

/// The gateway's platform for a registration service.
fn platform(service: PushService) -> Platform {
    match service {
        PushService::Apns => Platform::Apns,
        PushService::Fcm => Platform::Fcm,
        PushService::Webhook => Platform::Webhook,
    }
}

/// The problem code a refused registration is reported with.
fn push_problem_code(error: &PushError) -> &'static str {
    match error {
        PushError::NotConfigured(_) => "e.p.req.push.not-configured",
        PushError::UnknownPlatform(_) | PushError::BadToken { .. } | PushError::BadWebhook(_) => {
            "e.p.msg.push.bad-token"
        }
        _ => "e.p.me.res.push",
    }
}

fn problem(code: &str, comment: impl Into<String>) -> Message {
    report_problem::problem_report_message(&ProblemReport::new(code, comment))
}

impl<S: MediatorStorage> Mediator<S> {
    /// Wakes devices through `gateway`, whose coalescing window is `window`: registrations
    /// are taken from now on, and each message queued for a client without a live socket here
    /// wakes it. Starts the workers that call the gateway and the one that tries coalesced
    /// wakes again (they end when the mediator is dropped). Once only; later calls are
    /// ignored.
    pub fn start_push(self: &Arc<Self>, gateway: Arc<dyn PushGateway>, window: Duration) {
        let (queue, wakes) = mpsc::channel(WAKE_QUEUE);
        let link = PushWake {
            gateway,
            queue,
            pending: Mutex::new(HashSet::new()),
            window,
            deferred: Mutex::new(HashMap::new()),
        };
        if self.push.set(link).is_err() {
            tracing::warn!("the push gateway was set already; keeping the first");
            return;
        }
        tokio::spawn(run_wakes(Arc::downgrade(self), wakes));
        tokio::spawn(run_trailing_wakes(
            Arc::downgrade(self),
            window.clamp(Duration::from_millis(100), Duration::from_secs(1)),
        ));
    }

    /// Whether messages wait for any of `client`'s recipients.
    async fn has_waiting(&self, client: &str) -> bool {
        let Ok(recipients) = self.storage.recipients(client).await else {
            return false;
        };
        for recipient in recipients {
            if self.storage.count(&recipient).await.is_ok_and(|n| n > 0) {
                return true;
            }
        }
        false
    }

    /// `protocols`, and the push notification protocols when a gateway is configured.
    pub(super) fn with_push_protocols(&self, protocols: &[&'static str]) -> Vec<&'static str> {
        let mut all = protocols.to_vec();
        if self.push_configured() {
            all.extend(PushService::ALL.map(PushService::piuri));
        }
        all
    }

    /// Whether a push gateway is configured.
    pub fn push_configured(&self) -> bool {
        self.push.get().is_some()
    }

    /// Asks for `client`'s device to be woken, when a gateway is configured and the client
    /// has no live socket here. Never waits.
    pub(super) fn request_wake(&self, client: &str) {
        let Some(link) = self.push.get() else {
            return;
        };
        if self.wakers.is_live(client) {
            return;
        }
        let tag = super::wake_tag(client);
        if !link.pending().insert(tag) {
            return;
        }
        if link.queue.try_send(client.to_string()).is_err() {
            link.pending().remove(&tag);
            tracing::debug!(client = %client, "wake queue full: wake skipped");
        }
    }

    /// Answers a message of the push notification protocols from `client`.
    pub(super) async fn push_control(
        &self,
        client: &str,
        message: &Message,
    ) -> Result<Message, Refusal> {
        self.require_grant(client).await?;
        let Some((service, kind)) = push::classify(&message.type_) else {
            return Err(Refusal::BadRequest(format!(
                "{} is not a push notification message",
                message.type_
            )));
        };
        match kind {
            PushMessageKind::SetDeviceInfo => {
                let set = push::parse_set_device_info(message)?;
                match set.token {
                    Some(token) => self.register_device(client, service, token).await,
                    None => self.unregister_device(client, service).await,
                }
            }
            PushMessageKind::GetDeviceInfo => {
                push::parse_get_device_info(message)?;
                let held = self.storage.wake_of(client).await?;
                let registered = held.is_some_and(|wake| wake.service == service);
                if !registered {
                    return Ok(problem(
                        "e.p.req.not-registered-for-push-notifications",
                        format!("no {service} device is registered for this client"),
                    ));
                }
                Ok(push::device_info_message(&DeviceInfo {
                    service,
                    registered,
                }))
            }
            PushMessageKind::DeviceInfo => Ok(problem(
                "e.p.msg.unsupported",
                "this mediator sends device-info; it does not take it",
            )),
        }
    }

    async fn register_device(
        &self,
        client: &str,
        service: PushService,
        token: String,
    ) -> Result<Message, Refusal> {
        let Some(link) = self.push.get() else {
            return Ok(problem(
                "e.p.req.push.not-configured",
                "this mediator has no push gateway configured: it cannot wake devices \
                 (pick up with sync, or stay connected in live mode)",
            ));
        };
        let device = Device {
            platform: platform(service),
            token,
        };
        let handle = match link.gateway.register(device).await {
            Ok(handle) => handle,
            Err(error) => {
                tracing::info!(client = %client, %service, %error, "push registration refused");
                return Ok(problem(push_problem_code(&error), error.public()));
            }
        };
        let registration = WakeRegistration {
            service,
            handle: handle.to_string(),
        };
        let replaced = match self.storage.set_wake(client, Some(&registration)).await {
            Ok(replaced) => replaced,
            Err(error) => {
                // Nothing refers to the new handle: the gateway forgets it.
                forget(&*link.gateway, &handle).await;
                return Err(error.into());
            }
        };
        if let Some(old) = replaced.filter(|old| old.handle != registration.handle) {
            forget_stored(&*link.gateway, &old).await;
        }
        tracing::info!(client = %client, %service, "push registered");
        Ok(push::device_info_message(&DeviceInfo {
            service,
            registered: true,
        }))
    }

    /// Removes whatever wake registration `client` has (a client has one device at most).
    async fn unregister_device(
        &self,
        client: &str,
        service: PushService,
    ) -> Result<Message, Refusal> {
        if let Some(old) = self.storage.set_wake(client, None).await? {
            if let Some(link) = self.push.get() {
                forget_stored(&*link.gateway, &old).await;
            }
            tracing::info!(client = %client, service = %old.service, "push unregistered");
        }
        Ok(push::device_info_message(&DeviceInfo {
            service,
            registered: false,
        }))
    }

    /// Wakes `client`'s device, if it registered one.
    async fn wake_client(&self, link: &PushWake, client: &str) {
        let registration = match self.storage.wake_of(client).await {
            Ok(Some(registration)) => registration,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(client = %client, %error, "reading the wake registration");
                return;
            }
        };
        let Ok(handle) = registration.handle.parse::<WakeHandle>() else {
            tracing::warn!(client = %client, "a stored wake handle does not read: forgotten");
            self.drop_registration(client, &registration).await;
            return;
        };
        match link.gateway.wake(&handle).await {
            Ok(Woken::Dropped) | Err(PushError::UnknownHandle) => {
                tracing::info!(client = %client, service = %registration.service,
                    "the push gateway dropped the device: registration forgotten");
                self.drop_registration(client, &registration).await;
            }
            Ok(Woken::Coalesced) => {
                tracing::debug!(client = %client, "wake coalesced: tried again after the window");
                link.defer(client);
            }
            Ok(woken) => {
                tracing::debug!(client = %client, outcome = woken.name(), "wake");
            }
            Err(error) => tracing::warn!(client = %client, %error, "wake failed"),
        }
    }

    /// Forgets `registration` of `client`, unless a newer one replaced it meanwhile.
    async fn drop_registration(&self, client: &str, registration: &WakeRegistration) {
        match self.storage.set_wake(client, None).await {
            Ok(Some(held)) if held != *registration => {
                // Registered again since: keep the new one.
                if let Err(error) = self.storage.set_wake(client, Some(&held)).await {
                    tracing::warn!(client = %client, %error, "restoring a wake registration");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(client = %client, %error, "forgetting a wake handle"),
        }
    }
}

/// Asks the gateway to forget `handle`; a failure leaves a handle nothing refers to, which
/// is only logged.
async fn forget(gateway: &dyn PushGateway, handle: &WakeHandle) {
    if let Err(error) = gateway.unregister(handle).await {
        tracing::warn!(%error, "the push gateway did not forget a replaced handle");
    }
}

async fn forget_stored(gateway: &dyn PushGateway, registration: &WakeRegistration) {
    if let Ok(handle) = registration.handle.parse::<WakeHandle>() {
        forget(gateway, &handle).await;
    }
}

/// The wake workers: take clients off the queue and wake them, [`WAKE_CONCURRENCY`] at once,
/// until the mediator is gone.
async fn run_wakes<S: MediatorStorage>(mediator: Weak<Mediator<S>>, wakes: mpsc::Receiver<String>) {
    let clients = futures_util::stream::unfold(wakes, |mut wakes| async move {
        wakes.recv().await.map(|client| (client, wakes))
    });
    clients
        .for_each_concurrent(WAKE_CONCURRENCY, |client| {
            let mediator = mediator.clone();
            async move {
                let Some(mediator) = mediator.upgrade() else {
                    return;
                };
                let Some(link) = mediator.push.get() else {
                    return;
                };
                // Off the pending set first: a message queued from here on asks again (the
                // gateway's window coalesces it).
                link.pending().remove(&super::wake_tag(&client));
                mediator.wake_client(link, &client).await;
            }
        })
        .await;
}

/// Every `tick`, wakes again the clients whose wake was coalesced a window ago, when messages
/// still wait for them, until the mediator is gone.
async fn run_trailing_wakes<S: MediatorStorage>(mediator: Weak<Mediator<S>>, tick: Duration) {
    loop {
        tokio::time::sleep(tick).await;
        let Some(mediator) = mediator.upgrade() else {
            return;
        };
        let Some(link) = mediator.push.get() else {
            return;
        };
        for client in link.due() {
            if mediator.has_waiting(&client).await {
                mediator.request_wake(&client);
            }
        }
    }
}

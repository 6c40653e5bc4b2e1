//! Pickup live mode (3.0 and 4.0): one [`LiveSession`] per live connection. It holds what the
//! session authenticated as, whether live delivery is on and in which Pickup version it was
//! asked for (its pushes are `delivery` messages of that version), which queued messages it
//! already pushed (they stay queued until acknowledged, as 4.0 requires, but are not pushed
//! twice on the same connection: a connection that dies before acknowledging leaves them for
//! the next pickup or, in 3.0, the next live connection), where the client's queues ended
//! when 4.0 live delivery was switched on (4.0 pushes only what arrives later; what was
//! queued before must be asked for with `delivery-request`), and its registration for
//! wake-ups, released when the session is dropped. The transport only
//! pumps frames: a frame in goes to [`LiveSession::receive`], and what
//! [`LiveSession::next_push`] returns goes out.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use lanyard_protocol::protocols::pickup::{self, Delivery};
use tokio::sync::futures::OwnedNotified;
use tokio::sync::Notify;

use super::{
    delivered, problem_json, wake_tag, MediatorStorage, Outcome, Refusal, RemoteWake, WakeTag,
    MAX_UNACKNOWLEDGED_PUSHED,
};
use crate::issuer::store::IssuerStorage;
use crate::router::DidCommRouter;

/// What a live session is (Pickup live mode), as control messages change it.
#[derive(Debug)]
pub(crate) struct LiveState {
    /// The client the session authenticated as (with its first live-delivery-change).
    client: Option<String>,
    /// Whether the client asked for live delivery.
    live: bool,
    /// The Pickup version live delivery was switched in, which the pushes are written in.
    version: pickup::Version,
    /// Queued messages pushed on this connection and not yet acknowledged.
    sent: HashSet<String>,
    /// In 4.0, where each of the client's queues ended when live delivery was switched on
    /// (recipient → id of its newest message then): only what came after is pushed. `None`
    /// in 3.0, which pushes every queued message.
    queued_before: Option<HashMap<String, String>>,
}

impl Default for LiveState {
    fn default() -> Self {
        LiveState {
            client: None,
            live: false,
            version: pickup::Version::V3,
            sent: HashSet::new(),
            queued_before: None,
        }
    }
}

impl LiveState {
    /// Switches live delivery on or off for `client`, in Pickup `version`; a session belongs
    /// to the first client that switched it. What was pushed before is forgotten (pushed
    /// again if still queued and pushable). `queued_before` is where each of the client's
    /// queues ended at the switch, when only later messages may be pushed (4.0).
    pub(super) fn switch(
        &mut self,
        client: &str,
        live: bool,
        version: pickup::Version,
        queued_before: Option<HashMap<String, String>>,
    ) -> Result<(), Refusal> {
        if self.client.as_deref().is_some_and(|c| c != client) {
            return Err(Refusal::BadRequest(
                "this connection belongs to another client".into(),
            ));
        }
        self.client = Some(client.to_string());
        self.live = live;
        self.version = version;
        self.sent.clear();
        self.queued_before = queued_before;
        Ok(())
    }

    /// Whether live delivery is on.
    pub(super) fn is_live(&self) -> bool {
        self.live
    }

    /// Acknowledged messages are gone: the session need not remember pushing them.
    pub(super) fn acknowledged<'a>(&mut self, ids: impl Iterator<Item = &'a str>) {
        for id in ids {
            self.sent.remove(id);
        }
    }
}

/// Which clients have live sessions waiting for pushes: one notifier per client (by its
/// [`WakeTag`], which is what other agents name it by), shared by its sessions, forgotten when
/// the last of them is dropped.
#[derive(Debug, Default)]
pub(super) struct Wakers(Mutex<HashMap<WakeTag, Arc<Notify>>>);

impl Wakers {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<WakeTag, Arc<Notify>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The notifier `client`'s sessions wait on.
    fn register(&self, client: &str) -> Arc<Notify> {
        self.map().entry(wake_tag(client)).or_default().clone()
    }

    /// Forgets `client`'s notifier when `notifier` is the last session's.
    fn release(&self, client: &str, notifier: Arc<Notify>) {
        let mut map = self.map();
        // Two references: the map's and the caller's.
        if Arc::strong_count(&notifier) <= 2 {
            map.remove(&wake_tag(client));
        }
    }

    /// Wakes every live session of `client`, if it has any.
    pub(super) fn wake(&self, client: &str) {
        self.wake_tags(&[wake_tag(client)]);
    }

    /// Wakes the live sessions of the clients with these tags.
    fn wake_tags(&self, tags: &[WakeTag]) {
        let notifiers: Vec<Arc<Notify>> = {
            let map = self.map();
            tags.iter()
                .filter_map(|tag| map.get(tag).cloned())
                .collect()
        };
        for notifier in notifiers {
            notifier.notify_waiters();
        }
    }

    /// Wakes the sessions another agent's writes named.
    pub(super) fn remote(&self, wake: RemoteWake) {
        match wake {
            RemoteWake::Clients(tags) => self.wake_tags(&tags),
            RemoteWake::Everyone => {
                let notifiers: Vec<Arc<Notify>> = self.map().values().cloned().collect();
                for notifier in notifiers {
                    notifier.notify_waiters();
                }
            }
        }
    }

    /// Whether `client` has a live session here.
    pub(super) fn is_live(&self, client: &str) -> bool {
        self.map().contains_key(&wake_tag(client))
    }

    /// How many clients have a notifier registered.
    pub(super) fn len(&self) -> usize {
        self.map().len()
    }
}

/// Resolves when a forward for the session's client was queued after it was made; never,
/// when the session has no live delivery on.
pub struct Wake(Option<Pin<Box<OwnedNotified>>>);

impl Future for Wake {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.0.as_mut() {
            Some(notified) => notified.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

/// What a live session has to send next.
pub enum Push {
    /// A packed `delivery` of queued messages not yet pushed on this connection.
    Deliver(String),
    /// Nothing now: wait for this (or for a frame from the client) and ask again.
    Wait(Wake),
}

/// One live connection's session with the mediator. Its frames go through the agent's
/// [`DidCommRouter`] like any envelope (a frame may be for an organisation). Counted in the
/// `live_connections` metric while it exists; its wake-up registration is released when it
/// is dropped.
pub struct LiveSession<S: MediatorStorage, I: IssuerStorage> {
    router: Arc<DidCommRouter<S, I>>,
    state: LiveState,
    /// The client's notifier, once live delivery is on.
    notifier: Option<(String, Arc<Notify>)>,
}

impl<S: MediatorStorage, I: IssuerStorage> LiveSession<S, I> {
    /// Opens a session on a new live connection.
    pub fn new(router: Arc<DidCommRouter<S, I>>) -> Self {
        router.mediator().metrics().live_connections.inc();
        LiveSession {
            router,
            state: LiveState::default(),
            notifier: None,
        }
    }

    /// Handles one text frame, a DIDComm message as if posted with `return_route: all`; the
    /// frame to answer with, if any (the packed reply, or a problem report as plaintext JSON).
    pub async fn receive(&mut self, text: &str) -> Option<String> {
        let router = self.router.clone();
        let mediator = router.mediator();
        match router.handle_in(text, Some(&mut self.state)).await {
            Ok(outcome) => {
                mediator.metrics().messages_in.inc();
                match outcome {
                    Outcome::Reply(packed) => Some(packed),
                    Outcome::Accepted => None,
                }
            }
            Err(refusal) => {
                mediator.metrics().refused(refusal.problem_code());
                Some(refusal.problem_report().to_string())
            }
        }
    }

    /// Handles one binary frame: a DIDComm message in UTF-8, or a problem report saying it is
    /// not.
    pub async fn receive_binary(&mut self, bytes: &[u8]) -> Option<String> {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.receive(text).await,
            Err(_) => {
                Some(problem_json("e.p.msg.unreadable", "the frame is not UTF-8").to_string())
            }
        }
    }

    /// What to push next. The wake-up is registered before the queue is looked at, so no
    /// forward queued in between is missed; a failure to read the queue is logged and waited
    /// out like an empty queue.
    pub async fn next_push(&mut self) -> Push {
        loop {
            if self.notifier.is_none() && self.state.live {
                if let Some(client) = self.state.client.clone() {
                    let notifier = self.router.mediator().wakers.register(&client);
                    self.notifier = Some((client, notifier));
                }
            }
            let mut wake = Wake(
                self.notifier
                    .as_ref()
                    .map(|(_, n)| Box::pin(n.clone().notified_owned())),
            );
            if let Some(notified) = wake.0.as_mut() {
                notified.as_mut().enable();
            }
            match self.delivery().await {
                Ok(Some(delivery)) => return Push::Deliver(delivery),
                Ok(None) => {}
                Err(refusal) => tracing::warn!(reason = %refusal, "live delivery failed"),
            }
            let woke =
                std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut wake).poll(cx).is_ready()))
                    .await;
            if !woke {
                return Push::Wait(wake);
            }
            // Already notified (and so finished): look at the queue again with a fresh waiter.
        }
    }

    /// The next `delivery` of queued messages not yet pushed on this session, packed for its
    /// client; `None` when there is nothing new or live delivery is off.
    async fn delivery(&mut self) -> Result<Option<String>, Refusal> {
        let mediator = &**self.router.mediator();
        let session = &mut self.state;
        let (Some(client), true) = (session.client.clone(), session.live) else {
            return Ok(None);
        };
        if session.sent.len() >= MAX_UNACKNOWLEDGED_PUSHED {
            // Until the client acknowledges some, pushing more would only re-read its queue.
            return Ok(None);
        }
        let not_before = mediator.not_before();
        let max = mediator.limits.max_delivery;
        let mut messages = Vec::new();
        for recipient in mediator.storage.recipients(&client).await? {
            let room = max - messages.len();
            if room == 0 {
                break;
            }
            let limit = room + session.sent.len();
            let after = session
                .queued_before
                .as_ref()
                .and_then(|ends| ends.get(&recipient));
            let waiting = match after {
                Some(after) => {
                    mediator
                        .storage
                        .peek_after(&recipient, after, limit, not_before)
                        .await?
                }
                None => mediator.storage.peek(&recipient, limit, not_before).await?,
            };
            for queued in waiting {
                if messages.len() == max {
                    break;
                }
                if session.sent.insert(queued.id.clone()) {
                    messages.push(delivered(queued));
                }
            }
        }
        if messages.is_empty() {
            return Ok(None);
        }
        mediator.metrics.messages_out.inc_by(messages.len() as u64);
        let delivery = pickup::delivery_message(
            session.version,
            &Delivery {
                recipient_did: None,
                messages,
            },
        )
        .from(mediator.did.clone())
        .to([client.clone()]);
        Ok(Some(
            mediator
                .didcomm
                .pack_authcrypt(&delivery, &mediator.did, &[&client], false)
                .await?,
        ))
    }
}

impl<S: MediatorStorage, I: IssuerStorage> Drop for LiveSession<S, I> {
    fn drop(&mut self) {
        let mediator = self.router.mediator();
        if let Some((client, notifier)) = self.notifier.take() {
            mediator.wakers.release(&client, notifier);
        }
        mediator.metrics().live_connections.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::store::SledIssuerStorage;
    use crate::mediator::SledStorage;

    /// A router over a real mediator and issuer, both on sled in `dir`.
    fn router(dir: &std::path::Path) -> Arc<DidCommRouter<SledStorage, SledIssuerStorage>> {
        crate::testing::Parts::new(dir).router()
    }

    #[tokio::test]
    async fn a_client_stays_registered_for_wakes_until_its_last_live_session_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let router = router(dir.path());
        let mediator = router.mediator().clone();
        let mut first = LiveSession::new(router.clone());
        let mut second = LiveSession::new(router);
        assert_eq!(mediator.metrics().live_connections.get(), 2);
        // Not live yet: nothing registered, nothing to wait for.
        assert!(matches!(first.next_push().await, Push::Wait(Wake(None))));
        assert_eq!(mediator.live_clients(), 0);

        for session in [&mut first, &mut second] {
            session
                .state
                .switch("did:example:alice", true, pickup::Version::V3, None)
                .unwrap();
            assert!(matches!(
                session.next_push().await,
                Push::Wait(Wake(Some(_)))
            ));
        }
        assert_eq!(
            mediator.live_clients(),
            1,
            "one notifier shared by alice's sessions"
        );
        // A session belongs to the client that switched it on first.
        let taken = first
            .state
            .switch("did:example:mallory", true, pickup::Version::V3, None)
            .unwrap_err();
        assert_eq!(
            taken.to_string(),
            "this connection belongs to another client"
        );

        drop(first);
        assert_eq!(
            mediator.live_clients(),
            1,
            "alice's second session still waits"
        );
        drop(second);
        assert_eq!(mediator.live_clients(), 0, "released with the last session");
        assert_eq!(mediator.metrics().live_connections.get(), 0);
    }

    #[tokio::test]
    async fn a_wake_for_the_client_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let router = router(dir.path());
        let mediator = router.mediator().clone();
        let mut session = LiveSession::new(router);
        session
            .state
            .switch("did:example:alice", true, pickup::Version::V3, None)
            .unwrap();
        let Push::Wait(wake) = session.next_push().await else {
            panic!("nothing is queued for alice");
        };
        // Registered before the queue was looked at: a wake right after is not missed.
        mediator.wakers.wake("did:example:alice");
        assert_eq!(futures_util::FutureExt::now_or_never(wake), Some(()));
    }

    #[tokio::test]
    async fn another_agents_wake_ends_the_wait_of_the_clients_it_names() {
        let dir = tempfile::tempdir().unwrap();
        let router = router(dir.path());
        let mediator = router.mediator().clone();
        let mut session = LiveSession::new(router);
        session
            .state
            .switch("did:example:alice", true, pickup::Version::V3, None)
            .unwrap();
        let wait = |session: &mut LiveSession<_, _>| {
            let push = futures_util::FutureExt::now_or_never(session.next_push());
            let Some(Push::Wait(wake)) = push else {
                panic!("nothing is queued for alice");
            };
            wake
        };
        let mut wake = wait(&mut session);
        mediator
            .wakers
            .remote(RemoteWake::Clients(vec![wake_tag("did:example:bob")]));
        assert!(
            futures_util::FutureExt::now_or_never(&mut wake).is_none(),
            "bob's wake is not alice's"
        );
        mediator.wakers.remote(RemoteWake::Clients(vec![
            wake_tag("did:example:bob"),
            wake_tag("did:example:alice"),
        ]));
        assert_eq!(futures_util::FutureExt::now_or_never(wake), Some(()));
        // After a lost link, everyone looks at their queue.
        let wake = wait(&mut session);
        mediator.wakers.remote(RemoteWake::Everyone);
        assert_eq!(futures_util::FutureExt::now_or_never(wake), Some(()));
    }
}

//! What the library's unit tests share: an agent's parts wired as `start` wires them, on sled
//! in a temporary folder, without the HTTP server.

use std::sync::Arc;
use std::time::Duration;

use lanyard_protocol::did::Resolver;
use lanyard_protocol::didcomm::DidComm;

use crate::identity::Identity;
use crate::invitations::InvitationStore;
use crate::issuer::store::{IssuerStorage, SledIssuerStorage};
use crate::issuer::Issuer;
use crate::mediator::{Limits, Mediator, SledStorage};
use crate::router::DidCommRouter;

/// A mediator and an issuer beside it (holding its queue port and invitation store), on sled
/// in `dir`.
pub(crate) struct Parts<I = SledIssuerStorage> {
    /// The agent's identity (its keys).
    pub(crate) identity: Identity,
    /// The mediator.
    pub(crate) mediator: Arc<Mediator<SledStorage>>,
    /// The issuer, wired to the mediator.
    pub(crate) issuer: Issuer<I>,
}

/// The issuer store's data key of the test parts.
pub(crate) const ISSUER_STORE_KEY: [u8; 32] = [7u8; 32];

impl Parts {
    /// The parts, in `dir`.
    pub(crate) fn new(dir: &std::path::Path) -> Parts {
        let storage =
            SledIssuerStorage::open(&dir.join("issuer"), Duration::ZERO, &ISSUER_STORE_KEY)
                .unwrap();
        Parts::over(dir, storage)
    }
}

impl<I: IssuerStorage> Parts<I> {
    /// The parts in `dir`, the issuer's state in `issuer_storage` (which other parts may share: a
    /// second agent on the same issuer store).
    pub(crate) fn over(dir: &std::path::Path, issuer_storage: I) -> Parts<I> {
        let identity = crate::identity::load_or_create(dir, "http://agent.test/didcomm").unwrap();
        let storage = SledStorage::open(&dir.join("mediator"), Duration::ZERO).unwrap();
        let invitations: Arc<dyn InvitationStore> = Arc::new(storage.invitations().unwrap());
        let mediator = Arc::new(Mediator::new(
            identity.did.clone(),
            DidComm::new(identity.keys.clone(), Resolver::default()),
            storage,
            invitations.clone(),
            Limits::default(),
        ));
        let issuer = Issuer::new(
            issuer_storage,
            identity.keys.clone(),
            &ISSUER_STORE_KEY,
            "http://agent.test".into(),
        )
        .with_mediator(mediator.clone(), invitations, "lanyard");
        Parts {
            identity,
            mediator,
            issuer,
        }
    }

    /// The router over them.
    pub(crate) fn router(self) -> Arc<DidCommRouter<SledStorage, I>> {
        Arc::new(DidCommRouter::new(
            DidComm::new(self.identity.keys.clone(), Resolver::default()),
            self.mediator,
            Arc::new(self.issuer),
        ))
    }
}

/// A mediator stand-in that counts what it is asked to queue, by message id, and keeps the
/// envelopes; it refuses everything while `refusing`.
#[derive(Default)]
pub(crate) struct CountingQueue {
    /// Hand-overs taken, by message id (a repeat is counted, not de-duplicated).
    pub(crate) by_id: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    /// The envelopes taken, with their recipients, in order.
    pub(crate) envelopes: std::sync::Mutex<Vec<(String, String)>>,
    /// Whether it refuses hand-overs now.
    pub(crate) refusing: std::sync::atomic::AtomicBool,
}

impl CountingQueue {
    /// How many hand-overs it took in all.
    pub(crate) fn total(&self) -> usize {
        self.by_id.lock().unwrap().values().sum()
    }
}

impl crate::mediator::QueuePort for CountingQueue {
    fn enqueue<'a>(
        &'a self,
        recipient: &'a str,
        envelope: &'a str,
        id: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<(), crate::mediator::Refusal>> {
        Box::pin(async move {
            if self.refusing.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(crate::mediator::Refusal::UnknownRecipient(
                    recipient.to_string(),
                ));
            }
            // A hand-over takes a moment: two agents at it at once overlap.
            tokio::task::yield_now().await;
            *self
                .by_id
                .lock()
                .unwrap()
                .entry(id.to_string())
                .or_default() += 1;
            self.envelopes
                .lock()
                .unwrap()
                .push((recipient.to_string(), envelope.to_string()));
            Ok(())
        })
    }
}

/// A hardened client that may reach loopback (the tests' receivers).
pub(crate) fn loopback() -> lanyard_protocol::net::HttpClient {
    lanyard_protocol::net::HttpClient::new(lanyard_protocol::net::NetPolicy::loopback()).unwrap()
}

/// The issuer of one agent of several sharing a store.
pub(crate) type SharedIssuer = Issuer<Arc<SledIssuerStorage>>;

/// Two agents' issuers on ONE store (as two agents on one database), handing over to one
/// [`CountingQueue`]; each has a key ring of its own, as agents do (an organisation's keys
/// reach the other agent's ring from the store).
pub(crate) struct TwoAgents {
    /// The first agent's issuer.
    pub(crate) a: Arc<SharedIssuer>,
    /// The second agent's issuer.
    pub(crate) b: Arc<SharedIssuer>,
    /// Where both hand over.
    pub(crate) queue: Arc<CountingQueue>,
    /// The store both use.
    pub(crate) storage: Arc<SledIssuerStorage>,
    _mediator: SledStorage,
}

impl TwoAgents {
    /// The two, in `dir`, within `limits`.
    pub(crate) fn new(dir: &std::path::Path, limits: crate::issuer::IssuerLimits) -> TwoAgents {
        let identity = crate::identity::load_or_create(dir, "http://agent.test/didcomm").unwrap();
        let mediator = SledStorage::open(&dir.join("mediator"), Duration::ZERO).unwrap();
        let invitations: Arc<dyn InvitationStore> = Arc::new(mediator.invitations().unwrap());
        let storage = Arc::new(
            SledIssuerStorage::open(&dir.join("issuer"), Duration::ZERO, &ISSUER_STORE_KEY)
                .unwrap(),
        );
        let queue = Arc::new(CountingQueue::default());
        let issuer = |keys: Arc<lanyard_protocol::keys::KeyRing>| {
            Arc::new(
                Issuer::new(
                    storage.clone(),
                    keys,
                    &ISSUER_STORE_KEY,
                    "http://agent.test".into(),
                )
                .with_mediator(queue.clone(), invitations.clone(), "lanyard")
                .with_limits(limits.clone())
                // Callback receivers in tests are on loopback.
                .with_network(loopback(), 1 << 20),
            )
        };
        TwoAgents {
            a: issuer(identity.keys.clone()),
            b: issuer(Arc::new(lanyard_protocol::keys::KeyRing::new())),
            queue,
            storage,
            _mediator: mediator,
        }
    }
}

/// An organisation "Acme Gym" with a template "Member" whose one custom field is `skill`.
pub(crate) async fn org_with_template<S: IssuerStorage>(
    issuer: &Issuer<S>,
) -> (crate::issuer::Org, crate::issuer::Template) {
    let (org, _) = issuer.create_org("Acme Gym").await.unwrap();
    let template = issuer
        .create_template(
            &org,
            &serde_json::json!({
                "templateName": "Member", "credentialIssuer": "Acme", "credentialType": "Member",
                "logoURL": "https://example.com/logo.png", "credentialExpiration": null,
                "customFields": ["skill"], "descriptions": ["Skill"], "numberOfCredentials": null
            }),
        )
        .await
        .unwrap();
    (org, template)
}

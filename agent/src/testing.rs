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

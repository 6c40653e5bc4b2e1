//! The agent's one DIDComm router: every envelope that reaches the agent (`POST /didcomm`, a
//! live socket's frame) is unpacked here once and routed by the DID it was encrypted to: to
//! the mediator (its own DID, or nothing encrypted) or to an organisation (any other DID
//! whose keys the agent holds: the issuer finds which). The mediator and the issuer do not
//! hold each other; the issuer queues its messages through the mediator's
//! [`QueuePort`](crate::mediator::QueuePort).
//!
//! Agents sharing one issuer store hold only the organisations' keys they have used: an
//! envelope for an organisation this agent's key ring lacks is unpacked once more after the
//! issuer loaded that organisation's keys from the store (one indexed read for an unknown key).

use std::sync::Arc;

use lanyard_protocol::did::{did_of, resolve_local, Resolver};
use lanyard_protocol::didcomm::{DidComm, DidCommError, Layer, Unpacked};
use lanyard_protocol::keys::KeyType;
use lanyard_protocol::protocols::routing;

use crate::issuer::store::IssuerStorage;
use crate::issuer::Issuer;
use crate::mediator::{LiveState, Mediator, MediatorStorage, Outcome, Refusal};
use crate::storage::StorageError;

/// Unpacks inbound envelopes once and hands each to the mediator or the issuer.
pub struct DidCommRouter<S, I> {
    didcomm: DidComm<Resolver>,
    mediator: Arc<Mediator<S>>,
    issuer: Arc<Issuer<I>>,
}

impl<S: MediatorStorage, I: IssuerStorage> DidCommRouter<S, I> {
    /// A router unpacking with `didcomm`, whose key ring must be the issuer's
    /// ([`Issuer::keys`]): the mediator's keys and the organisations', which the issuer loads
    /// into it from its store when an envelope is for an organisation it lacks.
    pub fn new(
        didcomm: DidComm<Resolver>,
        mediator: Arc<Mediator<S>>,
        issuer: Arc<Issuer<I>>,
    ) -> Self {
        DidCommRouter {
            didcomm,
            mediator,
            issuer,
        }
    }

    /// The mediator it routes to.
    pub fn mediator(&self) -> &Arc<Mediator<S>> {
        &self.mediator
    }

    /// Handles one envelope that arrived over plain HTTP; returns once what it changed is
    /// durable. `Reply` carries the packed answer when the protocol has one.
    pub async fn handle(&self, envelope: &str) -> Result<Outcome, Refusal> {
        self.handle_in(envelope, None).await
    }

    /// Handles one envelope that arrived on a live connection (`session`) or over plain HTTP
    /// (`None`).
    pub(crate) async fn handle_in(
        &self,
        envelope: &str,
        session: Option<&mut LiveState>,
    ) -> Result<Outcome, Refusal> {
        let unpacked = match self.didcomm.unpack(envelope).await {
            Err(DidCommError::NotForUs(kids)) if self.load_org_keys(&kids).await? => {
                self.didcomm.unpack(envelope).await?
            }
            unpacked => unpacked?,
        };
        match routed_to(&unpacked)? {
            None if unpacked.message.type_ == routing::FORWARD => {
                Err(Refusal::BadRequest(format!(
                    "a forward must be encrypted to the mediator {}",
                    self.mediator.did()
                )))
            }
            // Encrypted to another DID whose keys this agent holds: an organisation's.
            Some(recipient) if recipient != self.mediator.did() => {
                self.issuer.receive(unpacked).await
            }
            _ => self.mediator.receive(unpacked, session).await,
        }
    }
}

impl<S: MediatorStorage, I: IssuerStorage> DidCommRouter<S, I> {
    /// Asks the issuer to load the keys of the organisation an envelope this ring cannot open
    /// was encrypted to; true when it did. Only the first recipient kid whose DID resolves
    /// without the network to a key agreement key is looked up: a stranger's envelope listing
    /// many kids costs one indexed read, and stores nothing.
    async fn load_org_keys(&self, kids: &[String]) -> Result<bool, Refusal> {
        let Some(key) = kids.iter().find_map(|kid| {
            resolve_local(did_of(kid))
                .ok()?
                .find_key(kid)
                .filter(|key| key.kind == KeyType::X25519)
        }) else {
            return Ok(false);
        };
        if self.issuer.keys().contains(&key) {
            return Ok(false);
        }
        self.issuer.load_keys_for(&key).await.map_err(|error| {
            tracing::error!(%error, "loading an organisation's keys");
            Refusal::Storage(StorageError::Backend(
                "the organisation's keys cannot be read".into(),
            ))
        })
    }
}

/// Which DID an unpacked envelope was encrypted to, checked against its plaintext: every
/// encryption layer must be addressed to the same DID (the one the envelope is routed on), and
/// the message's `to`, when present, must name it. `None` when nothing was encrypted.
fn routed_to(unpacked: &Unpacked) -> Result<Option<&str>, Refusal> {
    let mut layers = unpacked
        .metadata
        .layers
        .iter()
        .filter_map(|layer| match layer {
            Layer::Anoncrypt { recipient_kid, .. } | Layer::Authcrypt { recipient_kid, .. } => {
                Some(did_of(recipient_kid))
            }
            Layer::Signed { .. } => None,
        });
    let Some(outer) = layers.next() else {
        return Ok(None);
    };
    if let Some(inner) = layers.find(|did| *did != outer) {
        return Err(Refusal::NotForMe(format!(
            "the envelope's layers are encrypted to different DIDs ({outer} outside, {inner} \
             inside)"
        )));
    }
    if let Some(to) = &unpacked.message.to {
        if !to.iter().any(|did| did == outer) {
            return Err(Refusal::NotForMe(format!(
                "the message is addressed to {to:?} but was encrypted to {outer}"
            )));
        }
    }
    Ok(Some(outer))
}

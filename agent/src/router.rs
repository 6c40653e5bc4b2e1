//! The agent's one DIDComm router: every envelope that reaches the agent (`POST /didcomm`, a
//! live socket's frame) is unpacked here once and routed by the DID it was encrypted to: to
//! the mediator (its own DID, or nothing encrypted) or to an organisation (any other DID
//! whose keys the agent holds: the issuer finds which). The mediator and the issuer do not
//! hold each other; the issuer queues its messages through the mediator's
//! [`QueuePort`](crate::mediator::QueuePort).

use std::sync::Arc;

use lanyard_protocol::did::{did_of, Resolver};
use lanyard_protocol::didcomm::{DidComm, Layer, Unpacked};
use lanyard_protocol::protocols::routing;

use crate::issuer::store::IssuerStorage;
use crate::issuer::Issuer;
use crate::mediator::{LiveState, Mediator, MediatorStorage, Outcome, Refusal};

/// Unpacks inbound envelopes once and hands each to the mediator or the issuer.
pub struct DidCommRouter<S, I> {
    didcomm: DidComm<Resolver>,
    mediator: Arc<Mediator<S>>,
    issuer: Arc<Issuer<I>>,
}

impl<S: MediatorStorage, I: IssuerStorage> DidCommRouter<S, I> {
    /// A router unpacking with `didcomm` (which holds every key of the agent: the mediator's
    /// and the organisations').
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
        let unpacked = self.didcomm.unpack(envelope).await?;
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

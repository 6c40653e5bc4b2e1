//! Fixtures the fuzz targets share: two parties (Alice and Bob) with fixed did:peer:2
//! identities and key rings, a did:key issuer and holder for credentials, and `run`, which
//! drives the library's async functions to completion without a runtime (with the local
//! resolver nothing they await is ever pending).
//!
//! The keys are derived from constant seeds so that the seed corpus (`examples/seeds.rs`)
//! stays valid: an envelope packed for Bob today unpacks tomorrow.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use lanyard_protocol::did::{did_key, did_peer_2, PeerDidSpec, PeerService, Resolver};
use lanyard_protocol::didcomm::{DidComm, Recipient};
use lanyard_protocol::keys::{KeyRing, PublicKey};
use zeroize::Zeroizing;

/// One DIDComm party: its DID, its keys (held in `ring`) and their kids.
pub struct Party {
    pub did: String,
    pub ring: Arc<KeyRing>,
    /// Ed25519, `#key-1` (authentication).
    pub signing: Recipient,
    /// X25519, `#key-2` (key agreement).
    pub agreement: Recipient,
}

impl Party {
    fn new(seed: u8, endpoint: &str) -> Party {
        let ring = Arc::new(KeyRing::new());
        let ed = ring.import_ed25519(&Zeroizing::new([seed; 32]));
        let x = ring.import_x25519(&Zeroizing::new([seed.wrapping_add(1); 32]));
        let did = did_peer_2(&PeerDidSpec {
            authentication: vec![ed],
            key_agreement: vec![x],
            services: vec![PeerService {
                uri: endpoint.to_string(),
                routing_keys: vec![],
                accept: vec!["didcomm/v2".to_string()],
            }],
        });
        Party {
            signing: Recipient {
                kid: format!("{did}#key-1"),
                key: ed,
            },
            agreement: Recipient {
                kid: format!("{did}#key-2"),
                key: x,
            },
            did,
            ring,
        }
    }
}

/// A did:key signer of credentials or presentations.
pub struct Signer {
    pub did: String,
    pub ring: KeyRing,
    pub key: PublicKey,
    /// The verification method: `did:key:z…#z…`.
    pub method: String,
}

impl Signer {
    fn new(seed: u8) -> Signer {
        let ring = KeyRing::new();
        let key = ring.import_ed25519(&Zeroizing::new([seed; 32]));
        let did = did_key(&key);
        let fragment = did["did:key:".len()..].to_string();
        Signer {
            method: format!("{did}#{fragment}"),
            did,
            ring,
            key,
        }
    }
}

pub struct Fixtures {
    pub alice: Party,
    pub bob: Party,
    /// Bob's side: unpacks what is sent to him, resolving locally (no network).
    pub bob_comm: DidComm<Resolver>,
    pub issuer: Signer,
    pub holder: Signer,
}

/// The fixtures, made once per process.
pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let alice = Party::new(1, "https://alice.example/didcomm");
        let bob = Party::new(3, "https://bob.example/didcomm");
        let bob_comm = DidComm::new(bob.ring.clone(), Resolver::default());
        Fixtures {
            alice,
            bob,
            bob_comm,
            issuer: Signer::new(5),
            holder: Signer::new(6),
        }
    })
}

/// The challenge and domain presentations are made and checked for.
pub const CHALLENGE: &str = "fuzz-challenge";
pub const DOMAIN: &str = "verifier.example";

/// A fixed "now" (2026-01-01T00:00:00Z), so that a seed's validity does not drift.
pub const NOW: u64 = 1_767_225_600;

/// Runs `future` to completion by polling it; with local resolution nothing is ever pending,
/// so a `Pending` is a finding (something awaited I/O it should not have).
pub fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    match future.as_mut().poll(&mut context) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a local operation awaited something (no I/O is expected)"),
    }
}

/// Splits an input into a mode (its first byte) and the rest.
pub fn mode(data: &[u8], modes: u8) -> Option<(u8, &[u8])> {
    let (first, rest) = data.split_first()?;
    Some((first % modes, rest))
}

#![warn(missing_docs, unreachable_pub)]
//! Lanyard's protocol core, shared by the phone's wallet and the cloud agent: keys and the key
//! ring, the encrypted store, DIDs, DIDComm v2 envelopes, verifiable credentials, the typed
//! protocol messages, and the one hardened outbound HTTP client.
//!
//! Layers depend downwards only: `encoding`, `net`, `redact` < `keys` < `store`, `did` <
//! `credentials`, `didcomm` < `protocols`; the one exception is Routing 2.0, whose `forward`
//! is a protocol message ([`protocols::routing`]) that [`didcomm`] wraps envelopes in. Secret
//! key bytes never leave [`keys`]. Nothing here holds a socket open or a task: the protocol
//! messages are values with builders and strict parsers (one module per protocol in
//! [`protocols`], which writes each protocol URI once), and the only
//! I/O is [`net`] (fetches under the policy, for did:web among others) and [`store`] (the
//! sealed sled store).

pub mod credentials;
pub mod did;
pub mod didcomm;
pub mod encoding;
pub mod keys;
pub mod net;
pub mod protocols;
pub mod redact;
pub mod store;

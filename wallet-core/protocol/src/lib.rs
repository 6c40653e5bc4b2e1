#![warn(missing_docs, unreachable_pub)]
//! Lanyard's protocol core, shared by the phone's wallet and the cloud agent: keys and the key
//! ring, the encrypted store, DIDs, DIDComm v2 envelopes, verifiable credentials, the typed
//! protocol messages, and the one hardened outbound HTTP client.
//!
//! Layers depend downwards only: `encoding`, `net` < `did`, `keys` < `didcomm` < `credentials`,
//! `protocols`. Secret key bytes never leave [`keys`]. Nothing here holds a socket open or a
//! task: the protocol messages are values with builders and strict parsers, and the only I/O is
//! `net` (fetches under the policy) and `store` (the sealed sled store).

pub mod credentials;
pub mod did;
pub mod didcomm;
pub mod encoding;
pub mod keys;
pub mod net;
pub mod protocols;
pub mod redact;
pub mod store;

//! Lanyard's wallet core: the customer's keys, the encrypted store that holds them, DIDs, and
//! DIDComm v2 envelopes. Layers depend downwards only: `encoding`, `net` < `did`, `keys` <
//! `didcomm` < `store`-backed state. Secret key bytes never leave [`keys`].

pub mod credentials;
pub mod did;
pub mod didcomm;
pub mod encoding;
pub mod keys;
pub mod net;
pub mod protocols;
pub mod redact;
pub mod store;
pub mod wallet;

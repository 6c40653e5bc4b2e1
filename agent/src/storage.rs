//! The error every store of the agent returns (the mediator's queue, the invitations, the
//! issuer's records): quotas refused, the backend failing, a stored record that does not read.
//! The stores themselves live with their owners: [`crate::mediator::MediatorStorage`],
//! [`crate::invitations::InvitationStore`] and [`crate::issuer::store::IssuerStorage`], each
//! with a sled backend (one agent, the default) and a PostgreSQL one ([`crate::postgres`],
//! several agents).

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The recipient's queue holds as many messages as it may.
    #[error("the queue for {recipient} is full ({cap} messages waiting)")]
    QueueFull {
        /// The recipient DID whose queue is full.
        recipient: String,
        /// Messages a queue may hold.
        cap: usize,
    },
    /// The client's queues together hold as many bytes as its quota allows.
    #[error("the messages waiting for the owner of {recipient} are over its quota of {cap} bytes")]
    ClientQuota {
        /// The recipient DID the refused message was for.
        recipient: String,
        /// Bytes one client's queues may hold.
        cap: u64,
    },
    /// All queues together hold as many bytes as the store takes.
    #[error("the mediator's store is full ({cap} bytes queued); try again later")]
    StoreFull {
        /// Bytes all queues may hold.
        cap: u64,
    },
    /// The client registered as many recipient DIDs as it may.
    #[error("{client} already has the most recipients a client may register ({cap})")]
    TooManyRecipients {
        /// The client DID.
        client: String,
        /// Recipients one client may register.
        cap: usize,
    },
    /// The backend failed (its own words).
    #[error("storage failed: {0}")]
    Backend(String),
    /// A stored record does not read.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

impl From<sled::Error> for StorageError {
    fn from(error: sled::Error) -> Self {
        StorageError::Backend(error.to_string())
    }
}

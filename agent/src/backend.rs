//! Which store the agent runs on, chosen at start: the embedded sled folder (the default, one
//! agent) or the shared PostgreSQL database (`LANYARD_DATABASE_URL`, any number of agents).
//! Each enum forwards every call of its trait to the backend it holds, so the mediator, the
//! issuer and the HTTP layers are built once, over one type.

use crate::issuer::store::{BatchError, Expect, IssuerStorage, SledIssuerStorage, Write};
use crate::mediator::{
    Enqueued, MediatorStorage, QueueQuota, QueuedMessage, RecipientUpdate, WakeHook,
    WakeRegistration,
};
use crate::postgres::{PgIssuerStorage, PgMediatorStorage};
use crate::storage::StorageError;
use crate::SledStorage;

/// The mediator's store the agent was started on.
pub enum MediatorBackend {
    /// The embedded sled folder.
    Sled(SledStorage),
    /// The shared PostgreSQL database.
    Postgres(PgMediatorStorage),
}

/// The issuer's store the agent was started on.
pub enum IssuerBackend {
    /// The embedded sled folder.
    Sled(SledIssuerStorage),
    /// The shared PostgreSQL database (boxed: it is the larger, and there is one).
    Postgres(Box<PgIssuerStorage>),
}

/// Forwards `$call` to whichever backend `$self` holds.
macro_rules! each {
    ($self:expr, $store:ident => $call:expr) => {
        match $self {
            Self::Sled($store) => $call.await,
            Self::Postgres($store) => $call.await,
        }
    };
}

impl MediatorStorage for MediatorBackend {
    async fn grant(&self, client: &str) -> Result<(), StorageError> {
        each!(self, s => s.grant(client))
    }

    async fn is_granted(&self, client: &str) -> Result<bool, StorageError> {
        each!(self, s => s.is_granted(client))
    }

    async fn add_recipient(
        &self,
        client: &str,
        recipient: &str,
        cap: usize,
    ) -> Result<RecipientUpdate, StorageError> {
        each!(self, s => s.add_recipient(client, recipient, cap))
    }

    async fn remove_recipient(
        &self,
        client: &str,
        recipient: &str,
    ) -> Result<RecipientUpdate, StorageError> {
        each!(self, s => s.remove_recipient(client, recipient))
    }

    async fn recipients(&self, client: &str) -> Result<Vec<String>, StorageError> {
        each!(self, s => s.recipients(client))
    }

    async fn client_of(&self, recipient: &str) -> Result<Option<String>, StorageError> {
        each!(self, s => s.client_of(recipient))
    }

    async fn enqueue(
        &self,
        client: &str,
        recipient: &str,
        message: &str,
        dedup: Option<&str>,
        quota: &QueueQuota,
    ) -> Result<Enqueued, StorageError> {
        each!(self, s => s.enqueue(client, recipient, message, dedup, quota))
    }

    async fn peek(
        &self,
        recipient: &str,
        limit: usize,
        not_before: u64,
    ) -> Result<Vec<QueuedMessage>, StorageError> {
        each!(self, s => s.peek(recipient, limit, not_before))
    }

    async fn peek_after(
        &self,
        recipient: &str,
        after: &str,
        limit: usize,
        not_before: u64,
    ) -> Result<Vec<QueuedMessage>, StorageError> {
        each!(self, s => s.peek_after(recipient, after, limit, not_before))
    }

    async fn newest(&self, recipient: &str) -> Result<Option<String>, StorageError> {
        each!(self, s => s.newest(recipient))
    }

    async fn count(&self, recipient: &str) -> Result<usize, StorageError> {
        each!(self, s => s.count(recipient))
    }

    async fn queued_total(&self) -> Result<u64, StorageError> {
        each!(self, s => s.queued_total())
    }

    async fn remove(&self, recipients: &[String], ids: &[String]) -> Result<usize, StorageError> {
        each!(self, s => s.remove(recipients, ids))
    }

    async fn expire(&self, not_before: u64) -> Result<u64, StorageError> {
        each!(self, s => s.expire(not_before))
    }

    async fn set_wake(
        &self,
        client: &str,
        wake: Option<&WakeRegistration>,
    ) -> Result<Option<WakeRegistration>, StorageError> {
        each!(self, s => s.set_wake(client, wake))
    }

    async fn wake_of(&self, client: &str) -> Result<Option<WakeRegistration>, StorageError> {
        each!(self, s => s.wake_of(client))
    }

    fn on_remote_wake(&self, hook: WakeHook) {
        match self {
            Self::Sled(s) => s.on_remote_wake(hook),
            Self::Postgres(s) => s.on_remote_wake(hook),
        }
    }
}

impl IssuerStorage for IssuerBackend {
    async fn get(
        &self,
        collection: &'static str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        each!(self, s => s.get(collection, key))
    }

    async fn scan(
        &self,
        collection: &'static str,
        prefix: &str,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        each!(self, s => s.scan(collection, prefix, skip, limit))
    }

    async fn count(&self, collection: &'static str, prefix: &str) -> Result<usize, StorageError> {
        each!(self, s => s.count(collection, prefix))
    }

    async fn scan_after(
        &self,
        collection: &'static str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        each!(self, s => s.scan_after(collection, prefix, after, limit))
    }

    async fn apply(&self, expect: Vec<Expect>, writes: Vec<Write>) -> Result<(), BatchError> {
        each!(self, s => s.apply(expect, writes))
    }
}

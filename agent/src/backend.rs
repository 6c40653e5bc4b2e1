//! Which store the agent runs on, chosen at start: the embedded sled folder (the default, one
//! agent) or the shared PostgreSQL database (`LANYARD_DATABASE_URL`, any number of agents).
//! Each enum forwards every call of its trait to the backend it holds, so the mediator, the
//! issuer and the HTTP layers are built once, over one type.

use std::future::Future;

use crate::issuer::store::{BatchError, Expect, IssuerStorage, SledIssuerStorage, Write};
use crate::mediator::{Enqueued, MediatorStorage, QueueQuota, QueuedMessage, RecipientUpdate};
use crate::storage::StorageError;
use crate::SledStorage;

/// The mediator's store the agent was started on.
pub enum MediatorBackend {
    /// The embedded sled folder.
    Sled(SledStorage),
}

/// The issuer's store the agent was started on.
pub enum IssuerBackend {
    /// The embedded sled folder.
    Sled(SledIssuerStorage),
}

/// Forwards `$call` to whichever backend `$self` holds.
macro_rules! each {
    ($self:expr, $store:ident => $call:expr) => {
        match $self {
            Self::Sled($store) => $call.await,
        }
    };
}

impl MediatorStorage for MediatorBackend {
    fn grant(&self, client: &str) -> impl Future<Output = Result<(), StorageError>> + Send {
        async move { each!(self, s => s.grant(client)) }
    }

    fn is_granted(&self, client: &str) -> impl Future<Output = Result<bool, StorageError>> + Send {
        async move { each!(self, s => s.is_granted(client)) }
    }

    fn add_recipient(
        &self,
        client: &str,
        recipient: &str,
        cap: usize,
    ) -> impl Future<Output = Result<RecipientUpdate, StorageError>> + Send {
        async move { each!(self, s => s.add_recipient(client, recipient, cap)) }
    }

    fn remove_recipient(
        &self,
        client: &str,
        recipient: &str,
    ) -> impl Future<Output = Result<RecipientUpdate, StorageError>> + Send {
        async move { each!(self, s => s.remove_recipient(client, recipient)) }
    }

    fn recipients(
        &self,
        client: &str,
    ) -> impl Future<Output = Result<Vec<String>, StorageError>> + Send {
        async move { each!(self, s => s.recipients(client)) }
    }

    fn client_of(
        &self,
        recipient: &str,
    ) -> impl Future<Output = Result<Option<String>, StorageError>> + Send {
        async move { each!(self, s => s.client_of(recipient)) }
    }

    fn enqueue(
        &self,
        client: &str,
        recipient: &str,
        message: &str,
        dedup: Option<&str>,
        quota: &QueueQuota,
    ) -> impl Future<Output = Result<Enqueued, StorageError>> + Send {
        async move { each!(self, s => s.enqueue(client, recipient, message, dedup, quota)) }
    }

    fn peek(
        &self,
        recipient: &str,
        limit: usize,
        not_before: u64,
    ) -> impl Future<Output = Result<Vec<QueuedMessage>, StorageError>> + Send {
        async move { each!(self, s => s.peek(recipient, limit, not_before)) }
    }

    fn count(&self, recipient: &str) -> impl Future<Output = Result<usize, StorageError>> + Send {
        async move { each!(self, s => s.count(recipient)) }
    }

    fn queued_total(&self) -> impl Future<Output = Result<u64, StorageError>> + Send {
        async move { each!(self, s => s.queued_total()) }
    }

    fn remove(
        &self,
        recipients: &[String],
        ids: &[String],
    ) -> impl Future<Output = Result<usize, StorageError>> + Send {
        async move { each!(self, s => s.remove(recipients, ids)) }
    }

    fn expire(&self, not_before: u64) -> impl Future<Output = Result<u64, StorageError>> + Send {
        async move { each!(self, s => s.expire(not_before)) }
    }
}

impl IssuerStorage for IssuerBackend {
    fn get(
        &self,
        collection: &'static str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StorageError>> + Send {
        async move { each!(self, s => s.get(collection, key)) }
    }

    fn scan(
        &self,
        collection: &'static str,
        prefix: &str,
        skip: usize,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>, StorageError>> + Send {
        async move { each!(self, s => s.scan(collection, prefix, skip, limit)) }
    }

    fn count(
        &self,
        collection: &'static str,
        prefix: &str,
    ) -> impl Future<Output = Result<usize, StorageError>> + Send {
        async move { each!(self, s => s.count(collection, prefix)) }
    }

    fn scan_after(
        &self,
        collection: &'static str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, Vec<u8>)>, StorageError>> + Send {
        async move { each!(self, s => s.scan_after(collection, prefix, after, limit)) }
    }

    fn apply(
        &self,
        expect: Vec<Expect>,
        writes: Vec<Write>,
    ) -> impl Future<Output = Result<(), BatchError>> + Send {
        async move { each!(self, s => s.apply(expect, writes)) }
    }
}

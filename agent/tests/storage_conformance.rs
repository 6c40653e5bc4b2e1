//! The storage conformance suites (lanyard-test-support's `mediator_storage_tests!`,
//! `invitation_store_tests!`, `issuer_storage_tests!`, `console_accounts_tests!` and `push_store_tests!`) against the sled backends, each test
//! on a fresh store in a temporary folder. A later backend invokes the same macros.

use std::time::Duration;

use agent::issuer::store::SledIssuerStorage;
use agent::{SledInvitationStore, SledStorage};

/// A fresh sled mediator store, committing every write at once.
fn sled_mediator() -> (tempfile::TempDir, SledStorage) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStorage::open(&dir.path().join("mediator"), Duration::ZERO).unwrap();
    (dir, store)
}

/// A fresh sled issuer store under a fixed data key.
fn sled_issuer() -> (tempfile::TempDir, SledIssuerStorage) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SledIssuerStorage::open(&dir.path().join("issuer"), Duration::ZERO, &[7; 32]).unwrap();
    (dir, store)
}

/// A fresh sled invitation store (in a mediator database, where the agent keeps it).
fn sled_invitations() -> (tempfile::TempDir, SledInvitationStore) {
    let (dir, mediator) = sled_mediator();
    let store = mediator.invitations().unwrap();
    (dir, store)
}

lanyard_test_support::mediator_storage_tests!(sled_mediator());
lanyard_test_support::invitation_store_tests!(sled_invitations());
lanyard_test_support::issuer_storage_tests!(sled_issuer());
lanyard_test_support::console_accounts_tests!(sled_issuer());

/// A fresh sled push store, committing every write at once.
fn sled_push() -> (tempfile::TempDir, agent::push::SledPushStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = agent::push::SledPushStore::open(&dir.path().join("push"), Duration::ZERO).unwrap();
    (dir, store)
}

lanyard_test_support::push_store_tests!(sled_push());

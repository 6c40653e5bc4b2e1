//! The push store on PostgreSQL: the conformance suite (`push_store_tests!`) on a fresh
//! migrated database, then what several agents on one database show: wakes of one handle
//! through two agents' gateways at once send one push, and the table holds no token.

mod push_common;

use std::sync::Arc;

use agent::postgres::Database;
use agent::push::{
    Device, LocalPushGateway, PgPushStore, Platform, PushBackend, PushConfig, PushGateway, Woken,
};
use lanyard_test_support::postgres::{database, TestDatabase};
use push_common::{quick, Receiver};

/// A fresh, migrated database and a pool on it.
async fn migrated() -> (TestDatabase, Database) {
    let test = database();
    let db = Database::connect(&test.url, 16).await.unwrap();
    db.migrate().await.unwrap();
    (test, db)
}

async fn pg_push() -> (TestDatabase, PgPushStore) {
    let (test, db) = migrated().await;
    (test, PgPushStore::new(db))
}

lanyard_test_support::push_store_tests!(pg_push().await);

/// Two agents' gateways on one database (each its own pool), webhooks to `receiver`.
async fn two_agents(
    receiver: &Receiver,
) -> (TestDatabase, Database, LocalPushGateway, LocalPushGateway) {
    let (test, db) = migrated().await;
    let other = Database::connect(&test.url, 16).await.unwrap();
    let config = PushConfig {
        webhooks: true,
        ..quick()
    };
    let gateway = |db: Database| {
        LocalPushGateway::new(
            &config,
            PushBackend::Postgres(PgPushStore::new(db)),
            &[5; 32],
            receiver.client(),
        )
        .unwrap()
    };
    (test, db.clone(), gateway(db), gateway(other))
}

#[tokio::test]
async fn wakes_through_two_agents_at_once_send_one_push() {
    let receiver = Receiver::start(None).await;
    let (_test, _db, a, b) = two_agents(&receiver).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let handle = a
        .register(Device {
            platform: Platform::Webhook,
            token: format!("{}/hook", receiver.url()),
        })
        .await
        .unwrap();
    push_common::wake_at_once_and_expect_one_sent(&[a.clone(), b.clone()], handle, 40).await;
    assert_eq!(receiver.seen().len(), 1);
    // Either agent unregisters it (one store): the one that did knows it gone at once; the
    // other may still answer from its memory of the wake within the window, never with a push.
    b.unregister(&handle).await.unwrap();
    assert!(matches!(
        b.wake(&handle).await,
        Err(agent::push::PushError::UnknownHandle)
    ));
    let other = a.wake(&handle).await;
    assert!(
        matches!(
            other,
            Ok(Woken::Coalesced) | Err(agent::push::PushError::UnknownHandle)
        ),
        "{other:?}"
    );
    assert_eq!(receiver.seen().len(), 1);
}

#[tokio::test]
async fn the_table_holds_no_token() {
    let receiver = Receiver::start(None).await;
    let (test, _db, a, _b) = two_agents(&receiver).await;
    let hook = format!("{}/secret-hook-path-0815", receiver.url());
    let handle = a
        .register(Device {
            platform: Platform::Webhook,
            token: hook.clone(),
        })
        .await
        .unwrap();
    let (client, connection) = tokio_postgres::connect(&test.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let rows = client
        .query("SELECT handle, device, last_wake_ms FROM push_devices", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let stored_handle: String = rows[0].get(0);
    assert_eq!(stored_handle, handle.to_string());
    let device: Vec<u8> = rows[0].get(1);
    assert!(
        device.len() > hook.len(),
        "sealed: nonce, ciphertext and tag"
    );
    for secret in [hook.as_bytes(), b"secret-hook-path-0815".as_slice()] {
        assert!(!device.windows(secret.len()).any(|w| w == secret));
    }
    // The whole table as text, as a dump would show it.
    let dumped: String = client
        .query_one("SELECT string_agg(t::text, '\n') FROM push_devices t", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!dumped.contains("secret-hook-path"), "{dumped}");
}

//! One identity for every agent on a PostgreSQL database: agents starting together end with
//! one DID and one key set, a key file that does not open it and an endpoint other than its
//! DID's are refused by name, and the table holds only sealed secrets.

use std::path::Path;

use agent::identity::{load_or_create_shared, Identity, IdentityError};
use agent::postgres::Database;
use lanyard_protocol::keys::{KeyType, PublicKey};
use lanyard_protocol::store::Sealer;
use lanyard_test_support as support;

const ENDPOINT: &str = "https://agents.example.com/didcomm";

/// A key file of 32 random bytes at `path`.
fn key_file(path: &Path, byte: u8) {
    std::fs::write(path, [byte; 32]).unwrap();
}

async fn migrated(url: &str) -> Database {
    let db = Database::connect(url, 2).await.unwrap();
    db.migrate().await.unwrap();
    db
}

fn key_of(identity: &Identity, kind: KeyType) -> PublicKey {
    let keys: Vec<PublicKey> = identity
        .keys
        .public_keys()
        .into_iter()
        .filter(|k| k.kind == kind)
        .collect();
    assert_eq!(keys.len(), 1, "one {kind:?} key");
    keys[0]
}

#[tokio::test]
async fn agents_starting_together_share_one_identity() {
    let pg = support::postgres::database();
    let dir = tempfile::tempdir().unwrap();
    // Two machines, each given a copy of the deployment's key file.
    let (file_a, file_b) = (dir.path().join("a.key"), dir.path().join("b.key"));
    key_file(&file_a, 9);
    key_file(&file_b, 9);
    let (db_a, db_b) = (migrated(&pg.url).await, migrated(&pg.url).await);
    let (a, b) = tokio::join!(
        load_or_create_shared(&db_a, &file_a, ENDPOINT),
        load_or_create_shared(&db_b, &file_b, ENDPOINT)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.did, b.did);
    assert!(a.did.starts_with("did:peer:2."), "{}", a.did);
    assert!(a.store.is_none() && b.store.is_none(), "no local store");
    let signing = key_of(&a, KeyType::Ed25519);
    assert_eq!(signing, key_of(&b, KeyType::Ed25519));
    assert_eq!(key_of(&a, KeyType::X25519), key_of(&b, KeyType::X25519));
    // The same secrets: Ed25519 signatures are deterministic.
    assert_eq!(
        a.keys.sign(&signing, b"one mediator").unwrap(),
        b.keys.sign(&signing, b"one mediator").unwrap()
    );
    assert_eq!(
        *a.issuer_store_key().unwrap(),
        *b.issuer_store_key().unwrap()
    );
    // A later start loads the same.
    let later = load_or_create_shared(&db_a, &file_a, ENDPOINT)
        .await
        .unwrap();
    assert_eq!(later.did, a.did);
    assert_eq!(
        *later.issuer_store_key().unwrap(),
        *a.issuer_store_key().unwrap()
    );
}

#[tokio::test]
async fn a_key_file_that_does_not_open_the_stored_identity_is_refused() {
    let pg = support::postgres::database();
    let dir = tempfile::tempdir().unwrap();
    let (first, other) = (dir.path().join("first.key"), dir.path().join("other.key"));
    let db = migrated(&pg.url).await;
    // The first agent's key file is created (0600) since it is missing.
    let made = load_or_create_shared(&db, &first, ENDPOINT).await.unwrap();
    assert_eq!(std::fs::read(&first).unwrap().len(), 32);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&first).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    key_file(&other, 1);
    let refused = match load_or_create_shared(&db, &other, ENDPOINT).await {
        Err(refused) => refused,
        Ok(_) => panic!("another key file opened the shared identity"),
    };
    assert!(
        matches!(refused, IdentityError::SealedElsewhere { .. }),
        "{refused}"
    );
    let message = refused.to_string();
    assert!(
        message.contains("sealed under another key file")
            && message.contains(&other.display().to_string()),
        "{message}"
    );
    // Nothing changed: the first key file still opens the same identity.
    let again = load_or_create_shared(&db, &first, ENDPOINT).await.unwrap();
    assert_eq!(again.did, made.did);
}

#[tokio::test]
async fn an_endpoint_other_than_the_stored_dids_is_refused_naming_both() {
    let pg = support::postgres::database();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.key");
    let db = migrated(&pg.url).await;
    load_or_create_shared(&db, &file, ENDPOINT).await.unwrap();
    let elsewhere = "https://other.example.com/didcomm";
    let refused = match load_or_create_shared(&db, &file, elsewhere).await {
        Err(refused) => refused.to_string(),
        Ok(_) => panic!("an identity for another endpoint was loaded"),
    };
    assert!(
        refused.contains(ENDPOINT) && refused.contains(elsewhere),
        "{refused}"
    );
}

#[tokio::test]
async fn the_identity_table_holds_no_secret_in_plaintext() {
    let pg = support::postgres::database();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.key");
    let db = migrated(&pg.url).await;
    let identity = load_or_create_shared(&db, &file, ENDPOINT).await.unwrap();
    // Each secret key's bytes, through a sealing the test holds the key of.
    let sealer = Sealer::new(&[5u8; 32]);
    let mut secrets: Vec<Vec<u8>> = identity
        .keys
        .public_keys()
        .iter()
        .map(|key| {
            let sealed = identity.keys.export_sealed(key, &sealer, b"t").unwrap();
            sealer.open("sealed key", b"t", &sealed).unwrap()[1..].to_vec()
        })
        .collect();
    assert_eq!(secrets.len(), 2);
    secrets.push(identity.issuer_store_key().unwrap().to_vec());
    secrets.push(std::fs::read(&file).unwrap());

    let (client, connection) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT convert_to(endpoint || signing_key || agreement_key, 'UTF8') \
             || signing_sealed || agreement_sealed || issuer_key_sealed FROM lanyard_identity",
            &[],
        )
        .await
        .unwrap();
    let stored: Vec<u8> = row.get(0);
    assert!(stored.len() > 3 * 32, "the row was read");
    for secret in &secrets {
        assert!(
            !stored.windows(secret.len()).any(|w| w == secret.as_slice()),
            "a secret is stored in plaintext"
        );
    }
}

//! The PostgreSQL foundation: migrations apply once however many agents start together, and a
//! database newer than the binary is refused by name.

use agent::postgres::{schema_version, Database, DatabaseError};
use lanyard_test_support as support;

#[tokio::test]
async fn migrations_apply_once_when_agents_start_together() {
    let pg = support::postgres::database();
    let (a, b) = tokio::join!(Database::connect(&pg.url, 4), Database::connect(&pg.url, 4));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.current_version().await.unwrap(), 0, "an empty database");
    let (applied_a, applied_b) = tokio::join!(a.migrate(), b.migrate());
    let mut applied = applied_a.unwrap();
    applied.extend(applied_b.unwrap());
    applied.sort();
    let every: Vec<i32> = (1..=schema_version()).collect();
    assert_eq!(
        applied, every,
        "each migration applied by exactly one of the two"
    );
    assert_eq!(a.current_version().await.unwrap(), schema_version());
    assert!(
        a.migrate().await.unwrap().is_empty(),
        "nothing left to apply"
    );
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused_by_name() {
    let pg = support::postgres::database();
    let db = Database::connect(&pg.url, 2).await.unwrap();
    db.migrate().await.unwrap();
    let newer = schema_version() + 1;
    let (client, connection) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "INSERT INTO lanyard_schema (version, name) VALUES ($1, 'from the future')",
            &[&newer],
        )
        .await
        .unwrap();
    match db.migrate().await {
        Err(DatabaseError::SchemaTooNew { found, known, .. }) => {
            assert_eq!((found, known), (newer, schema_version()));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_database_is_named_without_its_password() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://lanyard:s3cret-pass@127.0.0.1:{port}/lanyard");
    let error = Database::connect(&url, 2).await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, DatabaseError::Unreachable { .. }), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{port}/lanyard")),
        "{text}"
    );
    assert!(
        !text.contains("s3cret-pass"),
        "the password is not repeated: {text}"
    );
}

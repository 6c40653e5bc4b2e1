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

/// An agent's configuration on the database `url`, with the key file `key_file`, the shared
/// admin token and public URL, and its own data folder.
fn agent_config(
    url: &str,
    key_file: &std::path::Path,
    data: &std::path::Path,
) -> agent::config::Config {
    let vars: std::collections::HashMap<&str, String> = [
        ("LANYARD_LISTEN", "127.0.0.1:0".to_string()),
        ("LANYARD_PUBLIC_URL", "http://127.0.0.1:9".to_string()),
        ("LANYARD_DATABASE_URL", url.to_string()),
        ("LANYARD_KEY_FILE", key_file.display().to_string()),
        ("LANYARD_ADMIN_TOKEN", support::ADMIN_TOKEN.to_string()),
        ("LANYARD_DATA_DIR", data.display().to_string()),
    ]
    .into();
    agent::config::Config::from_vars(|name| vars.get(name).cloned()).unwrap()
}

#[tokio::test]
async fn two_agents_on_one_database_are_one_mediator_and_one_issuer() {
    let pg = support::postgres::database();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("agent.key");
    let a = agent::start(agent_config(&pg.url, &key, &dir.path().join("a")))
        .await
        .unwrap();
    let b = agent::start(agent_config(&pg.url, &key, &dir.path().join("b")))
        .await
        .unwrap();
    assert_eq!(a.did, b.did, "one mediator identity");
    let health: serde_json::Value = reqwest::get(format!("http://{}/health", b.addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["store"], "postgresql", "{health}");
    assert_eq!(health["database"]["status"], "ok", "{health}");
    // An organisation made through A is one B knows (and signs for).
    let client = reqwest::Client::new();
    let created: serde_json::Value = client
        .post(format!("http://{}/admin/orgs", a.addr))
        .bearer_auth(support::ADMIN_TOKEN)
        .json(&serde_json::json!({ "name": "Acme" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_key = created["data"]["apiKey"].as_str().unwrap();
    let listed = client
        .get(format!(
            "http://{}/core/api/v1/programmatic/credential/template",
            b.addr
        ))
        .header("x-api-key", api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200, "B accepts A's organisation's key");
    let did_doc = client
        .get(format!(
            "http://{}/orgs/{}/did.json",
            b.addr,
            created["data"]["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(did_doc.status(), 200);
    // A third agent given another key file cannot open the shared identity, and says so.
    let other_key = dir.path().join("other.key");
    let refused = agent::start(agent_config(&pg.url, &other_key, &dir.path().join("c")))
        .await
        .err()
        .expect("another key file is refused")
        .to_string();
    assert!(
        refused.contains(&other_key.display().to_string()),
        "{refused}"
    );
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_shared_admin_token_an_agent_on_postgres_does_not_start() {
    let pg = support::postgres::database();
    let dir = tempfile::tempdir().unwrap();
    let mut config = agent_config(&pg.url, &dir.path().join("agent.key"), dir.path());
    config.admin_token = None;
    let refused = agent::start(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(refused.contains("LANYARD_ADMIN_TOKEN"), "{refused}");
}

//! The issuer store on PostgreSQL: lanyard-test-support's `issuer_storage_tests!` (and the
//! console's accounts over it, `console_accounts_tests!`) on a fresh,
//! migrated database per test, and what only a shared database shows: two agents (two pools)
//! racing conditional batches, values sealed in the table itself, and records that do not read.

use std::sync::Arc;

use agent::issuer::store::{BatchError, Expect, IssuerStorage, IssuerStorageExt, Write};
use agent::postgres::{Database, PgIssuerStorage};
use lanyard_test_support as support;
use support::postgres::TestDatabase;

const DATA_KEY: [u8; 32] = [7; 32];

/// A fresh, migrated database and a store on it (the guard keeps the database).
async fn pg_issuer() -> (TestDatabase, PgIssuerStorage) {
    let pg = support::postgres::database();
    let store = agent_on(&pg, 4).await;
    store_migrated(&pg).await;
    (pg, store)
}

async fn store_migrated(pg: &TestDatabase) {
    Database::connect(&pg.url, 2)
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
}

/// What one agent holds: its own pool of `connections` on the database.
async fn agent_on(pg: &TestDatabase, connections: usize) -> PgIssuerStorage {
    let db = Database::connect(&pg.url, connections).await.unwrap();
    PgIssuerStorage::new(db, &DATA_KEY)
}

/// A plain client on the test database, to look at the table itself.
async fn raw(pg: &TestDatabase) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

lanyard_test_support::issuer_storage_tests!(pg_issuer().await);
lanyard_test_support::console_accounts_tests!(pg_issuer().await);

fn absent(key: &str) -> Expect {
    Expect::Absent {
        collection: "t",
        key: key.into(),
    }
}

/// Two agents racing `n` batches that each expect the same key absent: exactly one applies,
/// every other is a Conflict and writes nothing. `claim` says whether the batches write the
/// key they expect absent or only other records.
async fn race_for_absent(claim: bool) {
    let (pg, a) = pg_issuer().await;
    let b = agent_on(&pg, 4).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let n = 24;
    let mut tasks = Vec::new();
    for i in 0..n {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut writes = vec![Write::put("t", format!("winner/{i}"), &i).unwrap()];
            if claim {
                writes.push(Write::put("t", "claim", &i).unwrap());
            }
            store.apply(vec![absent("claim")], writes).await
        }));
    }
    let (mut won, mut conflicts) = (Vec::new(), 0);
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(()) => won.push(i),
            Err(BatchError::Conflict) if claim => conflicts += 1,
            Err(error) => panic!("batch {i}: {error}"),
        }
    }
    if claim {
        assert_eq!(won.len(), 1, "exactly one batch applies: {won:?}");
        assert_eq!(conflicts, n - 1);
        assert_eq!(a.count("t", "winner/").await.unwrap(), 1);
        assert_eq!(
            a.get_json::<usize>("t", "claim").await.unwrap(),
            Some(won[0])
        );
        assert_eq!(
            b.get_json::<usize>("t", &format!("winner/{}", won[0]))
                .await
                .unwrap(),
            Some(won[0])
        );
    } else {
        // Nobody writes the key, so every batch finds it absent: all apply.
        assert_eq!(won.len(), n);
        assert_eq!(a.count("t", "winner/").await.unwrap(), n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_agents_racing_for_an_absent_key_apply_once() {
    race_for_absent(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_expecting_an_absent_key_nobody_writes_all_apply() {
    race_for_absent(false).await;
}

/// Batches that expect a key absent without writing it take turns with a batch that writes
/// it under the same expectation: once the key exists, none of them applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_absent_expectation_holds_for_the_key_not_written_by_the_batch() {
    let (pg, a) = pg_issuer().await;
    let b = Arc::new(agent_on(&pg, 4).await);
    let a = Arc::new(a);
    // One batch creates "gate"; the others, each writing only a record of its own, expect it
    // absent. Each of them either ran entirely before the gate (and applied) or after it
    // (a Conflict): after the gate is there, no "before/…" record may appear.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            if i == 10 {
                return store
                    .apply(
                        vec![absent("gate")],
                        vec![Write::put("t", "gate", &"shut").unwrap()],
                    )
                    .await
                    .map(|()| true);
            }
            store
                .apply(
                    vec![absent("gate")],
                    vec![Write::put("t", format!("before/{i:02}"), &i).unwrap()],
                )
                .await
                .map(|()| false)
        }));
    }
    let mut applied = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => applied += 1,
            Err(BatchError::Conflict) => {}
            Err(error) => panic!("{error}"),
        }
    }
    assert_eq!(
        a.get_json::<String>("t", "gate").await.unwrap().as_deref(),
        Some("shut")
    );
    assert_eq!(a.count("t", "before/").await.unwrap() + 1, applied);
    // And once shut, it stays shut for everyone.
    let late = b
        .apply(
            vec![absent("gate")],
            vec![Write::put("t", "before/late", &0).unwrap()],
        )
        .await
        .unwrap_err();
    assert!(matches!(late, BatchError::Conflict), "{late}");
    assert_eq!(a.get("t", "before/late").await.unwrap(), None);
}

/// Write skew: of two batches each expecting absent the key the other writes, only one may
/// apply (as run one after the other), however the two agents interleave them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_expecting_what_the_other_writes_do_not_both_apply() {
    let (pg, a) = pg_issuer().await;
    let b = agent_on(&pg, 4).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let pairs = 40;
    let mut tasks = Vec::new();
    for pair in 0..pairs {
        for (store, expects, writes) in [(&a, "x", "y"), (&b, "y", "x")] {
            let store = store.clone();
            let (expects, writes) = (format!("{pair}/{expects}"), format!("{pair}/{writes}"));
            tasks.push(tokio::spawn(async move {
                store
                    .apply(
                        vec![absent(&expects)],
                        vec![Write::put("t", writes, &pair).unwrap()],
                    )
                    .await
            }));
        }
    }
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) | Err(BatchError::Conflict) => {}
            Err(error) => panic!("{error}"),
        }
    }
    for pair in 0..pairs {
        assert_eq!(
            a.count("t", &format!("{pair}/")).await.unwrap(),
            1,
            "pair {pair}: exactly one of the two applied"
        );
    }
}

/// A batch of more keys than a transaction locks one by one (it locks all batches out
/// instead) is still serialized with small ones: of a big batch and a small one each
/// expecting absent a key the other writes, only one applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_of_many_keys_is_serialized_with_small_ones() {
    let (pg, a) = pg_issuer().await;
    let b = agent_on(&pg, 4).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    for round in 0..8 {
        let big = {
            let a = a.clone();
            tokio::spawn(async move {
                let writes = (0..300)
                    .map(|i| Write::put("t", format!("{round}/big/{i:03}"), &i).unwrap())
                    .collect();
                a.apply(vec![absent(&format!("{round}/small"))], writes)
                    .await
            })
        };
        let small = {
            let b = b.clone();
            tokio::spawn(async move {
                b.apply(
                    vec![absent(&format!("{round}/big/150"))],
                    vec![Write::put("t", format!("{round}/small"), &0).unwrap()],
                )
                .await
            })
        };
        let outcomes = [big.await.unwrap(), small.await.unwrap()];
        let applied = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(applied, 1, "round {round}: {outcomes:?}");
        let written = a.count("t", &format!("{round}/")).await.unwrap();
        assert!(written == 1 || written == 300, "round {round}: {written}");
    }
}

/// Read-modify-write increments of one counter, each batch expecting the value it read,
/// from 2×50 tasks on two agents, retrying on Conflict: every increment lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_increments_of_one_counter_all_land_once() {
    let (pg, a) = pg_issuer().await;
    let b = agent_on(&pg, 8).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut tasks = Vec::new();
    for i in 0..100 {
        let store = if i < 50 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0u32;
            loop {
                let current = store.get("t", "counter").await.unwrap();
                let (expect, next) = match &current {
                    None => (absent("counter"), 1u64),
                    Some(bytes) => {
                        let n: u64 = serde_json::from_slice(bytes).unwrap();
                        (
                            Expect::Equals {
                                collection: "t",
                                key: "counter".into(),
                                value: bytes.clone(),
                            },
                            n + 1,
                        )
                    }
                };
                let write = Write::put("t", "counter", &next).unwrap();
                match store.apply(vec![expect], vec![write]).await {
                    Ok(()) => return conflicts,
                    Err(BatchError::Conflict) => conflicts += 1,
                    Err(error) => panic!("{error}"),
                }
            }
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.unwrap();
    }
    assert_eq!(a.get_json::<u64>("t", "counter").await.unwrap(), Some(100));
    eprintln!("100 increments, {conflicts} conflicts retried");
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Customer {
    name: String,
    email: String,
}

/// A customer's name and email are nowhere in the table's bytes; a sealed value copied to
/// another key does not open there, and the error names the record.
#[tokio::test]
async fn values_are_sealed_in_the_table_and_bound_to_their_key() {
    let (pg, store) = pg_issuer().await;
    let jane = Customer {
        name: "Jane Secretname".into(),
        email: "jane.secret@example.com".into(),
    };
    store
        .apply(
            vec![],
            vec![Write::put("customers", "org1/c1", &jane).unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get_json::<Customer>("customers", "org1/c1")
            .await
            .unwrap(),
        Some(jane)
    );
    let client = raw(&pg).await;
    let rows = client
        .query("SELECT collection, key, value FROM issuer_records", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let mut bytes = Vec::new();
    for row in &rows {
        bytes.extend_from_slice(row.get::<_, &str>(0).as_bytes());
        bytes.extend_from_slice(row.get::<_, &[u8]>(1));
        bytes.extend_from_slice(row.get::<_, &[u8]>(2));
    }
    for needle in ["Jane", "Secretname", "jane.secret", "example.com"] {
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} is in the table"
        );
    }
    // Copied under another key, the value does not open.
    client
        .execute(
            "INSERT INTO issuer_records (collection, key, value) \
             SELECT collection, 'org1/c2'::bytea, value FROM issuer_records WHERE key = 'org1/c1'",
            &[],
        )
        .await
        .unwrap();
    let error = store.get("customers", "org1/c2").await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("customers/org1/c2") && text.contains("does not authenticate"),
        "{text}"
    );
    // Nor under another data key.
    let other = PgIssuerStorage::new(Database::connect(&pg.url, 2).await.unwrap(), &[8; 32]);
    let error = other.get("customers", "org1/c1").await.unwrap_err();
    assert!(error.to_string().contains("customers/org1/c1"), "{error}");
}

/// A value that is no sealed record, or one whose content is not what the caller reads,
/// is refused naming the record (in scans too); a record never written reads as None.
#[tokio::test]
async fn records_that_do_not_read_are_named() {
    let (pg, store) = pg_issuer().await;
    let client = raw(&pg).await;
    client
        .execute(
            "INSERT INTO issuer_records (collection, key, value) VALUES ('t', 'o/bad', 'garbage')",
            &[],
        )
        .await
        .unwrap();
    let error = store.get("t", "o/bad").await.unwrap_err();
    assert!(
        error.to_string().contains("corrupt") && error.to_string().contains("t/o/bad"),
        "{error}"
    );
    let error = store.scan("t", "o/", 0, 10).await.unwrap_err();
    assert!(error.to_string().contains("t/o/bad"), "{error}");
    // An Equals expectation on it fails as storage, not as a Conflict, and writes nothing.
    let error = store
        .apply(
            vec![Expect::Equals {
                collection: "t",
                key: "o/bad".into(),
                value: b"1".to_vec(),
            }],
            vec![Write::put("t", "o/new", &1).unwrap()],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, BatchError::Storage(e) if e.to_string().contains("t/o/bad")),
        "{error}"
    );
    assert_eq!(store.get("t", "o/new").await.unwrap(), None);
    // Sealed fine, but not the type read.
    store
        .apply(vec![], vec![Write::put("t", "o/text", &"words").unwrap()])
        .await
        .unwrap();
    let error = store.get_json::<u64>("t", "o/text").await.unwrap_err();
    assert!(error.to_string().contains("t/o/text"), "{error}");
    assert_eq!(store.get("t", "o/never").await.unwrap(), None);
    assert_eq!(store.get_json::<u64>("t", "o/never").await.unwrap(), None);
}

/// A batch the server refuses part of (a key longer than its index takes) is a storage
/// failure that writes nothing of the batch, and the error names no address.
#[tokio::test]
async fn a_refused_write_leaves_the_whole_batch_unwritten() {
    let (pg, store) = pg_issuer().await;
    // Not compressible, so longer than a b-tree entry may be.
    let long: String = (0..400)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    let error = store
        .apply(
            vec![],
            vec![
                Write::put("t", "first", &1).unwrap(),
                Write::put("t", long, &2).unwrap(),
            ],
        )
        .await
        .unwrap_err();
    let BatchError::Storage(error) = error else {
        panic!("expected a storage failure, got {error}");
    };
    let text = error.to_string();
    assert!(text.starts_with("storage failed"), "{text}");
    assert!(
        !text.contains("127.0.0.1") && !text.contains(&pg.url),
        "{text}"
    );
    assert_eq!(store.get("t", "first").await.unwrap(), None);
    assert_eq!(store.count("t", "").await.unwrap(), 0);
}

/// A figure, not an assertion: 10,000 single-record batches (each expecting its key absent)
/// from 16 tasks. `cargo test -p agent --test postgres_issuer_conformance -- --ignored
/// --nocapture single_record_batches_per_second`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn single_record_batches_per_second() {
    let (pg, _small) = pg_issuer().await;
    let store = Arc::new(agent_on(&pg, 16).await);
    let (tasks, each) = (16, 625);
    let started = std::time::Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..each {
                let key = format!("r/{t:02}/{i:04}");
                store
                    .apply(
                        vec![Expect::Absent {
                            collection: "t",
                            key: key.clone(),
                        }],
                        vec![Write::put("t", key, &i).unwrap()],
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let elapsed = started.elapsed();
    assert_eq!(store.count("t", "r/").await.unwrap(), tasks * each);
    eprintln!(
        "{} single-record batches from {tasks} tasks in {:.2} s: {:.0} records/s",
        tasks * each,
        elapsed.as_secs_f64(),
        (tasks * each) as f64 / elapsed.as_secs_f64()
    );
}

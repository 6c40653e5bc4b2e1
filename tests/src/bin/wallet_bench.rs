//! Wallet benchmarks against the real agent on loopback (release builds, `RUST_BACKTRACE`
//! unset): invite scan → credential stored, a sync of 1,000 waiting messages (offers, then
//! credentials), and opening a wallet that holds 10,000 credentials. Bounded: it makes one
//! organisation, a few dozen customers and 10,000 credentials, then stops.
//!
//! `cargo build --release -p agent -p lanyard-tests --bins && target/release/wallet_bench`

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lanyard_protocol::store::Unlock;
use lanyard_test_support::{spawn_agent, Endpoint, FileKeyProtector, OrgClient, ADMIN_TOKEN};
use serde_json::{json, Value};
use wallet_core::{Accepted, Wallet};

/// A wallet in `dir` whose data key the test keystore wraps (no KDF, as on a phone, so
/// opening measures the store and not Argon2).
fn open(dir: &std::path::Path) -> Wallet {
    Wallet::builder(dir, Unlock::Protector(Arc::new(FileKeyProtector([9; 32]))))
        .network(lanyard_protocol::net::NetPolicy::loopback())
        .open()
        .expect("the wallet opens")
}

/// The agent under measurement, at `url`.
struct Bench {
    url: String,
    did: String,
}

impl Endpoint for Bench {
    fn url(&self) -> &str {
        &self.url
    }

    fn did(&self) -> &str {
        &self.did
    }
}

/// Calls the programmatic API, expecting success; returns the `data`.
async fn call(api: &OrgClient, method: &str, path: &str, body: Value) -> Value {
    let (status, data) = api.api(method, path, Some(body)).await;
    assert!((200..300).contains(&status), "{path}: {status} {data}");
    data
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let exe = std::env::current_exe().unwrap();
    let agent_bin = exe.with_file_name("agent");
    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new(&agent_bin);
    command
        .env("LANYARD_LISTEN", "127.0.0.1:0")
        .env("LANYARD_DATA_DIR", data.path())
        .env("LANYARD_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("LANYARD_QUEUE_CAP", "100000")
        .env("RUST_LOG", "error");
    assert!(
        agent_bin.exists(),
        "{}: build it first (cargo build --release -p agent)",
        agent_bin.display()
    );
    let (mut agent, url, did) = spawn_agent(command);
    let api = OrgClient::create(&Bench { url, did }, "Bench").await;
    let template = call(
        &api,
        "POST",
        "/credential/template",
        json!({
            "templateName": "Bench", "credentialIssuer": "Bench", "credentialType": "Bench",
            "logoURL": "https://example.com/l.png", "credentialExpiration": null,
            "customFields": ["n"], "descriptions": ["N"], "numberOfCredentials": null }),
    )
    .await["templateId"]
        .as_str()
        .unwrap()
        .to_string();
    let dirs = tempfile::tempdir().unwrap();

    // 1. Invite scan → credential stored, 20 customers, each a fresh wallet (first use, so
    //    mediation is asked for too).
    let mut scans = Vec::new();
    for n in 0..20 {
        let customer = call(
            &api,
            "POST",
            "/customer",
            json!({ "name": format!("C{n}"), "medium": "email", "email": "c@example.com",
                  "autoIssue": { "templateId": template, "values": { "n": n.to_string() } } }),
        )
        .await;
        let link = customer["invitation"]["url"].as_str().unwrap().to_string();
        let wallet = open(&dirs.path().join(format!("scan-{n}")));
        wallet.set_auto_accept(true);
        let started = Instant::now();
        let accepted = wallet.accept_invitation(&link).await.unwrap();
        assert!(matches!(accepted, Accepted::Connection(_)));
        while wallet.credentials().unwrap().is_empty() {
            wallet.sync().await.unwrap();
        }
        scans.push(started.elapsed());
    }
    scans.sort();
    println!(
        "invite scan -> credential stored (20 customers, fresh wallets): p50 {:.1} ms, max {:.1} ms",
        ms(scans[scans.len() / 2]),
        ms(scans[scans.len() - 1])
    );

    // 2. One wallet, 1,000 offers waiting: a sync that stores them, then one that receives,
    //    verifies and stores 1,000 credentials.
    let dir = dirs.path().join("big");
    let wallet = open(&dir);
    let customer = call(
        &api,
        "POST",
        "/customer",
        json!({ "name": "Big", "medium": "email", "email": "b@example.com" }),
    )
    .await;
    wallet
        .accept_invitation(customer["invitation"]["url"].as_str().unwrap())
        .await
        .unwrap();
    wallet.sync().await.unwrap();
    let offer_batch = |count: usize| {
        let (api, template, id) = (&api, template.clone(), customer["id"].clone());
        async move {
            for n in 0..count {
                call(api, "POST", "/credential", json!({ "customerId": id, "templateId": template, "values": { "n": n.to_string() } }))
                    .await;
            }
        }
    };
    offer_batch(1000).await;
    let started = Instant::now();
    let report = wallet.sync().await.unwrap();
    let offers_sync = started.elapsed();
    assert_eq!(report.processed, 1000, "{report:?}");
    println!(
        "sync of 1,000 waiting offers: {:.0} ms ({:.2} ms per message)",
        ms(offers_sync),
        ms(offers_sync) / 1000.0
    );
    for offer in wallet.offers().unwrap() {
        wallet.accept_offer(&offer.id).await.unwrap();
    }
    let started = Instant::now();
    let report = wallet.sync().await.unwrap();
    let credentials_sync = started.elapsed();
    println!(
        "sync of 1,000 waiting credentials (each verified against the issuer's did:web, stored, acked): {:.0} ms ({:.2} ms per message; {} processed)",
        ms(credentials_sync),
        ms(credentials_sync) / 1000.0,
        report.processed
    );

    // 3. Up to 10,000 credentials, then open the wallet afresh.
    wallet.set_auto_accept(true);
    while wallet.credentials().unwrap().len() < 10_000 {
        offer_batch(1000).await;
        wallet.sync().await.unwrap();
        wallet.sync().await.unwrap();
    }
    let held = wallet.credentials().unwrap().len();
    drop(wallet);
    let mut opens = Vec::new();
    let mut lists = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let wallet = open(&dir);
        opens.push(started.elapsed());
        let started = Instant::now();
        assert_eq!(wallet.credentials().unwrap().len(), held);
        lists.push(started.elapsed());
    }
    opens.sort();
    lists.sort();
    println!(
        "open a wallet holding {held} credentials: median {:.1} ms (of 5); listing them all after: median {:.0} ms",
        ms(opens[2]),
        ms(lists[2])
    );
    let _ = agent.kill();
    let _ = agent.wait();
}

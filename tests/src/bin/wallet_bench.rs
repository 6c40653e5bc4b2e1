//! Wallet benchmarks against the real agent on loopback (release builds, `RUST_BACKTRACE`
//! unset): invite scan → credential stored, a sync of 1,000 waiting messages (offers, then
//! credentials), and opening a wallet that holds 10,000 credentials. Bounded: it makes one
//! organisation, a few dozen customers and 10,000 credentials, then stops.
//!
//! `cargo build --release -p agent && cargo run --release -p lanyard-tests --bin wallet_bench`

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use lanyard_protocol::store::{KeyProtector, ProtectorError, Unlock};
use serde_json::{json, Value};
use wallet_core::{Accepted, Wallet};

/// A stand-in for the platform keystore: a fixed key wraps the data key (no KDF, as on a
/// phone, so opening measures the store and not Argon2).
struct Keystore([u8; 32]);

impl KeyProtector for Keystore {
    fn wrap(&self, data_key: &[u8]) -> Result<Vec<u8>, ProtectorError> {
        let nonce = [7u8; 24];
        let mut out = nonce.to_vec();
        out.extend(
            XChaCha20Poly1305::new((&self.0).into())
                .encrypt(XNonce::from_slice(&nonce), data_key)
                .map_err(|_| ProtectorError("wrap".into()))?,
        );
        Ok(out)
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, ProtectorError> {
        XChaCha20Poly1305::new((&self.0).into())
            .decrypt(XNonce::from_slice(&wrapped[..24]), &wrapped[24..])
            .map_err(|_| ProtectorError("unwrap".into()))
    }
}

fn open(dir: &std::path::Path) -> Wallet {
    Wallet::builder(dir, Unlock::Protector(Arc::new(Keystore([9; 32]))))
        .network(lanyard_protocol::net::NetPolicy::loopback())
        .open()
        .expect("the wallet opens")
}

struct Api {
    url: String,
    key: String,
    client: reqwest::Client,
}

impl Api {
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let response = self
            .client
            .request(
                method.parse().unwrap(),
                format!("{}/core/api/v1/programmatic{path}", self.url),
            )
            .header("x-api-key", &self.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json::<Value>().await.unwrap()["data"].clone()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let exe = std::env::current_exe().unwrap();
    let agent_bin = exe.with_file_name("agent");
    let data = tempfile::tempdir().unwrap();
    let mut agent = Command::new(&agent_bin)
        .env("LANYARD_LISTEN", "127.0.0.1:0")
        .env("LANYARD_DATA_DIR", data.path())
        .env("LANYARD_ADMIN_TOKEN", "bench-admin-token-0123456789")
        .env("LANYARD_QUEUE_CAP", "100000")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (cargo build --release -p agent)",
                agent_bin.display()
            )
        });
    let mut lines = BufReader::new(agent.stdout.take().unwrap()).lines();
    let url = lines
        .next()
        .unwrap()
        .unwrap()
        .trim_start_matches("listening on ")
        .to_string();
    let client = reqwest::Client::new();
    let org: Value = client
        .post(format!("{url}/admin/orgs"))
        .bearer_auth("bench-admin-token-0123456789")
        .json(&json!({ "name": "Bench" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api = Api {
        url: url.clone(),
        key: org["data"]["apiKey"].as_str().unwrap().into(),
        client,
    };
    let template = api
        .call(
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
        let customer = api
            .call(
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
    let customer = api
        .call(
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
                api.call("POST", "/credential", json!({ "customerId": id, "templateId": template, "values": { "n": n.to_string() } }))
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

//! Killing the wallet mid-sync loses nothing and duplicates nothing: the `wallet` CLI (the same
//! Wallet the apps use) is SIGKILLed again and again while it picks up, verifies, stores and
//! acknowledges twenty credentials; then it syncs to the end, and every credential is there
//! exactly once, every exchange completed rather than hung between offer and issue.

use lanyard_test_support as support;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::{binary, AgentProcess, OrgClient};

const CREDENTIALS: usize = 20;

fn wallet_cli(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(binary("wallet"));
    command
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env("LANYARD_WALLET_PASSPHRASE", "crash test passphrase")
        .env("LANYARD_WALLET_ALLOW_LOOPBACK", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn run(dir: &std::path::Path, args: &[&str]) -> Value {
    let output = wallet_cli(dir, args).output().unwrap();
    assert!(
        output.status.success(),
        "wallet {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_killed_during_sync_ends_with_every_credential_once() {
    let agent = AgentProcess::start(&[]);
    let acme = OrgClient::create(&agent, "Acme").await;
    let template = acme.template("Ticket").await;
    let (_, customer) = acme
        .onboard_auto_issue(
            "Jane",
            "jane@example.com",
            &template,
            json!({ "skill": "ticket 0" }),
        )
        .await;
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("wallet");
    run(
        &dir,
        &[
            "--json",
            "accept",
            customer["invitation"]["url"].as_str().unwrap(),
        ],
    );
    for n in 1..CREDENTIALS {
        let (status, _) = acme
            .api("POST", "/credential", Some(json!({ "customerId": customer["id"], "templateId": template, "values": { "skill": format!("ticket {n}") } })))
            .await;
        assert_eq!(status, 201);
    }

    // Sync, killed with SIGKILL at growing delays, until a sync runs to its end.
    let mut kills = 0;
    for delay_ms in [40u64, 80, 120, 160, 200, 260, 320, 400, 500, 650] {
        let mut child = wallet_cli(&dir, &["--auto-accept", "sync"])
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert!(kills >= 3, "the syncs were killed mid-way {kills} times");
    for _ in 0..6 {
        run(&dir, &["--auto-accept", "--json", "sync"]);
    }

    let stored = run(&dir, &["--json", "credentials"]);
    let tickets: Vec<String> = stored
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["fields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == "skill")
                .unwrap()["value"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_every_ticket_once(tickets);
    assert_every_exchange_accepted(&acme).await;
}

/// The other side: the agent is SIGKILLed while the wallet's requests are being signed and
/// queued, and restarted on its data; the wallet's next syncs complete every exchange (the
/// issuer's outbox hands over what the crash left, the wallet asks again for what it lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_killed_between_offer_and_issue_completes_after_restart() {
    let agent = AgentProcess::start(&[]);
    let acme = OrgClient::create(&agent, "Acme").await;
    let template = acme.template("Ticket").await;
    let (_, customer) = acme
        .api(
            "POST",
            "/customer",
            Some(json!({ "name": "Jane", "medium": "email", "email": "jane@example.com" })),
        )
        .await;
    let (wallet, _events, _dir) = support::wallet();
    wallet.set_auto_accept(true);
    wallet
        .accept_invitation(customer["invitation"]["url"].as_str().unwrap())
        .await
        .unwrap();
    for n in 0..CREDENTIALS {
        let (status, _) = acme
            .api("POST", "/credential", Some(json!({ "customerId": customer["id"], "templateId": template, "values": { "skill": format!("ticket {n}") } })))
            .await;
        assert_eq!(status, 201);
    }

    // The wallet picks up the offers and asks for each; the agent dies mid-way.
    let syncing = {
        let wallet = wallet.clone();
        tokio::spawn(async move { wallet.sync().await })
    };
    tokio::time::sleep(Duration::from_millis(60)).await;
    let agent = agent.kill_and_restart();
    let _ = syncing.await.unwrap();
    for _ in 0..10 {
        if wallet.credentials().unwrap().len() == CREDENTIALS && wallet.offers().unwrap().is_empty()
        {
            break;
        }
        let _ = wallet.sync().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let tickets: Vec<String> = wallet
        .credentials()
        .unwrap()
        .iter()
        .map(|c| {
            c.fields
                .iter()
                .find(|f| f.name == "skill")
                .unwrap()
                .value
                .clone()
        })
        .collect();
    assert_every_ticket_once(tickets);
    assert_eq!(
        acme.url, agent.url,
        "the agent came back at the same address"
    );
    assert_every_exchange_accepted(&acme).await;
}

/// The wallet holds ticket 0 to CREDENTIALS-1, each once.
fn assert_every_ticket_once(mut tickets: Vec<String>) {
    tickets.sort();
    let mut expected: Vec<String> = (0..CREDENTIALS).map(|n| format!("ticket {n}")).collect();
    expected.sort();
    assert_eq!(tickets, expected, "every credential exactly once");
}

/// Every exchange of the organisation ended Accepted (none hung between offer and issue).
async fn assert_every_exchange_accepted(acme: &OrgClient) {
    let (_, exchanges) = acme.api("GET", "/credential?pageSize=100", None).await;
    let states: Vec<&str> = exchanges["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap())
        .collect();
    assert!(
        states.iter().all(|s| *s == "Accepted"),
        "every exchange completed: {states:?}"
    );
}

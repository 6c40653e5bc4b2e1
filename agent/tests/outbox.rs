//! The issuer's outbox stays bounded whatever strangers send: the agent binary takes
//! thousands of authcrypted junk messages to an organisation's DID from senders without a
//! connection and stores nothing for them (no outbox entry, no seen mark); a stranger mediated
//! here gets its problem reports at the organisation's rate only. After a restart on the same
//! data folder the agent serves at once and the outbox is swept in the background.

use lanyard_test_support as support;

use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;

use agent::issuer::store::{IssuerStorage, SledIssuerStorage};
use lanyard_protocol::didcomm::Message;
use serde_json::json;
use support::{mediator, Agent, OrgClient, Phone};

const CUSTOMERS: &str = "/core/api/v1/programmatic/customer";
const CREDENTIALS: &str = "/core/api/v1/programmatic/credential";
const BASIC: &str = lanyard_protocol::protocols::basic_message::MESSAGE;

/// A data folder and the loopback port the agent serves it on, kept across restarts (the
/// organisations' DIDs name the endpoint).
struct Home {
    data: tempfile::TempDir,
    port: u16,
}

impl Home {
    fn new() -> Home {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        Home {
            data: tempfile::tempdir().unwrap(),
            port: probe.local_addr().unwrap().port(),
        }
    }
}

/// The agent binary on `home` with `env` set; its process and an [`Agent`] for it.
fn spawn(home: &Home, env: &[(&str, &str)]) -> (Child, Agent) {
    let address = format!("127.0.0.1:{}", home.port);
    let mut command = Command::new(env!("CARGO_BIN_EXE_agent"));
    command
        .env("LANYARD_LISTEN", &address)
        .env("LANYARD_DATA_DIR", home.data.path())
        .env("LANYARD_PUBLIC_URL", format!("http://{address}"))
        .env("LANYARD_ADMIN_TOKEN", support::ADMIN_TOKEN)
        .env("RUST_LOG", "warn");
    for (name, value) in env {
        command.env(name, value);
    }
    let (child, url, did) = support::spawn_agent(command);
    (child, Agent::at(url, did))
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// How many records a collection of the issuer store holds (the agent must be stopped).
async fn count(data: &std::path::Path, collection: &'static str) -> usize {
    // The issuer store is sealed under a key kept in the identity store.
    let identity = agent::identity::load_or_create(data, "http://127.0.0.1:0/didcomm").unwrap();
    let key = identity.issuer_store_key().unwrap();
    let storage = SledIssuerStorage::open(&data.join("issuer"), Duration::ZERO, &key).unwrap();
    storage.count(collection, "").await.unwrap()
}

/// `phone` sends `n` junk messages (a type no organisation handles, no invitation answered)
/// to `to` from 8 tasks at once; every one is taken (202).
async fn junk(phone: Arc<Phone>, to: &str, n: usize) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..8 {
        let (phone, next, to) = (phone.clone(), next.clone(), to.to_string());
        senders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= n {
                    return;
                }
                let message = Message::new(BASIC, json!({ "content": format!("junk {i}") }));
                assert_eq!(phone.tell(&to, message).await, 202, "junk {i}");
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_flood_stores_nothing_and_the_agent_serves_after_a_restart() {
    let home = Home::new();
    let (child, agent) = spawn(&home, &[]);
    let acme = OrgClient::create(&agent, "Acme").await;
    // Strangers nobody mediates: thousands of junk messages, a fresh DID every 500. Each may
    // be answered (within the organisation's rate) only if the mediator takes the answer,
    // which it does not; nothing is kept to try again.
    for _ in 0..4 {
        junk(Arc::new(Phone::new(&agent.did)), &acme.didcomm_did, 500).await;
    }
    stop(child);

    assert_eq!(
        count(home.data.path(), "outbox").await,
        0,
        "nothing queued to strangers"
    );
    assert_eq!(
        count(home.data.path(), "seen").await,
        0,
        "nothing marked for strangers"
    );

    let (child, agent) = spawn(&home, &[]);
    let health = reqwest::get(format!("{}/health", agent.url)).await.unwrap();
    assert_eq!(health.status(), 200);
    stop(child);
}

#[tokio::test]
async fn a_stranger_mediated_here_gets_answers_at_the_organisations_rate_only() {
    let agent = Agent::start_with(Default::default(), |config| {
        let answers = &mut config.issuer_limits.stranger_answers;
        answers.per_period = 0;
        answers.burst = 8;
    })
    .await;
    let acme = OrgClient::create(&agent, "Acme").await;
    // Unreachable strangers take from the same budget (their answers cost the packing).
    junk(Arc::new(Phone::new(&agent.did)), &acme.didcomm_did, 3).await;
    let mediated = Arc::new(Phone::new(&agent.did));
    mediated.connect(&agent).await;
    junk(mediated.clone(), &acme.didcomm_did, 30).await;
    let reports = mediated.pick_up(&agent, 100).await;
    assert_eq!(reports.len(), 5, "what is left of the burst, no more");
    for report in &reports {
        assert_eq!(report.type_, mediator::PROBLEM_REPORT);
        assert_eq!(report.body["code"], "e.p.req.not-connected");
        assert_eq!(report.from.as_deref(), Some(acme.didcomm_did.as_str()));
    }
    // What was withheld is counted on /metrics.
    let metrics = agent.metrics().await;
    for line in [
        "lanyard_stranger_answers_unreachable_total 3\n",
        "lanyard_stranger_answers_rate_limited_total 25\n",
        "lanyard_outbox_expired_total 0\n",
    ] {
        assert!(metrics.contains(line), "{line:?} not in:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_outbox_holds_at_a_restart_goes_out_in_the_background() {
    let home = Home::new();
    // A queue of 3: most offers cannot be handed over and stay in the outbox.
    let (child, agent) = spawn(&home, &[("LANYARD_QUEUE_CAP", "3")]);
    let acme = OrgClient::create(&agent, "Acme").await;
    let mut template = support::seed_template_request();
    template["templateName"] = json!("Badge");
    let created = acme.call("POST", support::TEMPLATES, Some(template)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let template_id = created.body["data"]["templateId"].as_str().unwrap();
    let customer = acme
        .call(
            "POST",
            CUSTOMERS,
            Some(json!({ "name": "Jane", "medium": "email", "email": "jane@example.com" })),
        )
        .await;
    assert_eq!(customer.status, 201, "{}", customer.body);
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;
    phone
        .accept_invitation(customer.body["data"]["invitation"]["url"].as_str().unwrap())
        .await;
    const OFFERS: usize = 40;
    for n in 0..OFFERS {
        let offered = acme
            .call(
                "POST",
                CREDENTIALS,
                Some(json!({
                    "customerId": customer.body["data"]["id"],
                    "templateId": template_id,
                    "values": { "holderFullName": format!("Jane {n}") },
                })),
            )
            .await;
        assert_eq!(offered.status, 201, "{}", offered.body);
    }
    stop(child);
    // The ping's answer and two offers were queued; the rest waits in the outbox.
    assert_eq!(count(home.data.path(), "outbox").await, OFFERS - 2);

    let (child, agent) = spawn(
        &home,
        &[
            ("LANYARD_QUEUE_CAP", "1000"),
            ("LANYARD_OUTBOX_RETRY_MS", "100"),
        ],
    );
    let health = reqwest::get(format!("{}/health", agent.url)).await.unwrap();
    assert_eq!(health.status(), 200);
    // Every offer reaches the phone, once.
    let mut offers = std::collections::BTreeSet::new();
    let mut others = 0;
    for _ in 0..200 {
        for message in phone.pick_up(&agent, 100).await {
            if message.type_ == lanyard_protocol::protocols::issue_credential::OFFER {
                assert!(offers.insert(message.id), "an offer came twice");
            } else {
                others += 1;
            }
        }
        if offers.len() == OFFERS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(offers.len(), OFFERS, "every offer the outbox held went out");
    assert_eq!(others, 1, "and the ping's answer");
    stop(child);
    assert_eq!(count(home.data.path(), "outbox").await, 0);
}

//! Push wake-up end to end: the `wallet` CLI as the phone's background handler
//! (`wake-listen`, a webhook on loopback) registers with the agent's mediator, an organisation
//! offers a credential while the wallet has no live socket, the webhook fires, the wallet syncs
//! and ends up holding the credential with no user action. With two agents on PostgreSQL, a
//! burst of messages through both gives one wake, not one per agent.

use lanyard_test_support as support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use lanyard_protocol::protocols::push_notifications::WEBHOOK_SET_DEVICE_INFO;
use serde_json::{json, Value};
use support::{
    run_wallet as run, wallet_cli, AgentProcess, Cluster, Issuer, OrgClient, Phone, WakeReceiver,
};
use wallet_core::PushService;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_woken_by_its_webhook_receives_its_credential_with_no_user_action() {
    let agent = AgentProcess::start(&[
        ("LANYARD_PUSH_WEBHOOKS", "true".into()),
        // The credential answers the request the woken wallet sends at once, inside this
        // window: its wake is the trailing one, after the window.
        ("LANYARD_PUSH_COALESCE_S", "1".into()),
    ]);
    let acme = OrgClient::create(&agent, "Acme").await;
    let template = acme.template("Membership").await;
    let customer = acme.email_customer("Jane", "jane@example.com").await;
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

    // The phone goes to sleep: only its background handler runs, woken by the webhook.
    let mut handler = wallet_cli(
        &dir,
        &[
            "--json",
            "--auto-accept",
            "wake-listen",
            "--register",
            "--seconds",
            "120",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdout = BufReader::new(handler.stdout.take().unwrap()).lines();
    let listening: Value = serde_json::from_str(&stdout.next().unwrap().unwrap()).unwrap();
    assert!(listening["listening"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
    let registered: Value = serde_json::from_str(&stdout.next().unwrap().unwrap()).unwrap();
    assert_eq!(registered["registered"], "webhook");

    let (status, offered) = acme
        .api(
            "POST",
            "/credential",
            Some(json!({ "customerId": customer["id"], "templateId": template, "values": { "skill": "Rust" } })),
        )
        .await;
    assert_eq!(status, 201, "{offered}");

    // Events go to stderr: wait for the stored credential (the handler syncs once per wake:
    // the offer's, then the credential's).
    let events = BufReader::new(handler.stderr.take().unwrap());
    let stored = tokio::task::spawn_blocking(move || {
        for line in events.lines() {
            let line = line.unwrap();
            if let Ok(event) = serde_json::from_str::<Value>(&line) {
                if event["event"] == "credential_stored" {
                    return Some(event);
                }
            }
        }
        None
    });
    let stored = tokio::time::timeout(std::time::Duration::from_secs(90), stored)
        .await
        .expect("the credential arrives after the wakes")
        .unwrap()
        .expect("the handler reported the stored credential");
    assert_eq!(stored["issuer_name"], "Acme");
    handler.kill().unwrap();
    handler.wait().unwrap();
    let woken: Vec<Value> = stdout
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .collect();
    assert!(
        !woken.is_empty() && woken.iter().all(|w| w.get("woken").is_some()),
        "one line per wake: {woken:?}"
    );

    let credentials = run(&dir, &["--json", "credentials"]);
    assert_eq!(credentials.as_array().unwrap().len(), 1, "{credentials}");
    assert_eq!(credentials[0]["issuer_did"], acme.issuer_did.as_str());
    let metrics = agent.metrics().await;
    assert!(wakes(&metrics, "sent") >= 1, "{metrics}");

    // Unregistering stops the wakes; the CLI says so.
    let removed = run(&dir, &["--json", "unregister-push"]);
    assert_eq!(removed["registered"], Value::Null);
}

/// The sum of `lanyard_push_wakes_total` for `outcome` in a metrics text.
fn wakes(metrics: &str, outcome: &str) -> u64 {
    let prefix = format!(r#"lanyard_push_wakes_total{{platform="webhook",outcome="{outcome}"}} "#);
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|n| n.trim().parse::<u64>().unwrap())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_through_two_agents_on_postgresql_wakes_the_device_once() {
    let receiver = WakeReceiver::start(204).await;
    let cluster = Cluster::start_with(
        2,
        &[
            ("LANYARD_PUSH_WEBHOOKS", "true".into()),
            ("LANYARD_PUSH_COALESCE_S", "600".into()),
        ],
    );
    let (first, second) = (cluster.direct(0), cluster.direct(1));
    let phone = Phone::new(&first.did);
    phone.connect(&first).await;
    let registered = phone
        .ask(
            &first,
            WEBHOOK_SET_DEVICE_INFO,
            json!({ "url": receiver.url }),
        )
        .await;
    assert_eq!(registered.message.body["registered"], true);

    let issuer = Issuer::new();
    for n in 0..40 {
        let agent = if n % 2 == 0 { &first } else { &second };
        assert_eq!(issuer.send_to(agent, &phone.did, n).await, 202);
    }
    receiver.wait_for(1).await;
    // Each agent queued for a client with no live socket, so each asked the gateway at least
    // once; wait until both have, then count.
    let mut asked = [0u64; 2];
    for _ in 0..1200 {
        for (index, count) in asked.iter_mut().enumerate() {
            let metrics = cluster.metrics(index).await;
            *count = wakes(&metrics, "sent") + wakes(&metrics, "coalesced");
        }
        if asked.iter().all(|&n| n >= 1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        asked.iter().all(|&n| n >= 1),
        "wake calls per agent: {asked:?}"
    );
    let mut sent = 0;
    for index in 0..2 {
        sent += wakes(&cluster.metrics(index).await, "sent");
    }
    assert_eq!(sent, 1, "one wake sent across both agents");
    assert_eq!(receiver.wakes().len(), 1, "one webhook call");
    assert_eq!(phone.waiting(&first).await, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallet_refuses_a_push_registration_it_cannot_make_and_says_why() {
    let (wallet, _events, _dir) = support::wallet();
    let refused = wallet
        .register_push(PushService::Webhook, "https://phone.example/wake")
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "push registration refused: this wallet has no mediator yet: accept an invitation first"
    );
    wallet.unregister_push().await.unwrap();

    // An agent with no push gateway configured.
    let agent = AgentProcess::start(&[]);
    let acme = OrgClient::create(&agent, "Acme").await;
    let customer = acme.email_customer("Jane", "jane@example.com").await;
    wallet
        .accept_invitation(customer["invitation"]["url"].as_str().unwrap())
        .await
        .unwrap();
    let refused = wallet
        .register_push(PushService::Webhook, " ")
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "push registration refused: the webhook token is empty (use unregister_push to stop \
         wake-ups)"
    );
    let refused = wallet
        .register_push(PushService::Fcm, "fcm-registration-token")
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("no push gateway configured"),
        "{refused}"
    );
    assert!(!refused.is_transient());
    assert_eq!(wallet.push_service().unwrap(), None, "nothing remembered");
}

/// Tells the measurement each offer the wallet received, as it is stored.
struct Offers(tokio::sync::mpsc::UnboundedSender<()>);

impl wallet_core::WalletListener for Offers {
    fn on_event(&self, event: wallet_core::WalletEvent) {
        if matches!(event, wallet_core::WalletEvent::OfferReceived { .. }) {
            let _ = self.0.send(());
        }
    }
}

/// The figure for BENCHMARKS.md: from an offer queued for a wallet with no live socket to the
/// wallet holding it, woken by the webhook (the agent and the wallet in this process, on
/// loopback). Run in release: `cargo test --release -p lanyard-tests --test push --
/// --ignored --nocapture wake_latency`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn wake_latency() {
    const ROUNDS: usize = 30;
    let agent = support::Agent::start_with(Default::default(), |config| {
        config.push.webhooks = true;
        // Every offer wakes: no window between rounds.
        config.push.coalesce = std::time::Duration::ZERO;
    })
    .await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let template = acme.template("Ticket").await;
    let customer = acme.email_customer("Jane", "jane@example.com").await;
    let (wallet, _events, _dir) = support::wallet();
    wallet
        .accept_invitation(customer["invitation"]["url"].as_str().unwrap())
        .await
        .unwrap();
    let (offered, mut offers) = tokio::sync::mpsc::unbounded_channel();
    wallet.set_listener(Some(std::sync::Arc::new(Offers(offered))));
    // The phone's background handler: each wake runs a sync.
    let (woken, mut wakes) = tokio::sync::mpsc::channel::<()>(1);
    let app = axum::Router::new().route(
        "/wake",
        axum::routing::post(move || {
            let woken = woken.clone();
            async move {
                let _ = woken.try_send(());
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/wake", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let handler = {
        let wallet = wallet.clone();
        tokio::spawn(async move {
            while wakes.recv().await.is_some() {
                wallet.sync().await.unwrap();
            }
        })
    };
    wallet
        .register_push(PushService::Webhook, &url)
        .await
        .unwrap();
    let mut times = Vec::with_capacity(ROUNDS);
    for n in 0..ROUNDS {
        let started = std::time::Instant::now();
        let (status, _) = acme
            .api("POST", "/credential", Some(json!({ "customerId": customer["id"], "templateId": template, "values": { "skill": format!("ticket {n}") } })))
            .await;
        assert_eq!(status, 201);
        offers.recv().await.unwrap();
        times.push(started.elapsed());
    }
    handler.abort();
    times.sort();
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    println!(
        "offer queued -> wallet holds it, woken by webhook, {ROUNDS} rounds: median {:.1} ms, \
         p90 {:.1} ms, min {:.1} ms, max {:.1} ms (includes the organisation's API call that \
         queues the offer)",
        ms(times[ROUNDS / 2]),
        ms(times[ROUNDS * 9 / 10]),
        ms(times[0]),
        ms(times[ROUNDS - 1])
    );
}

//! Several agents on one PostgreSQL behind nginx (round-robin, no stickiness): the balancer
//! alternates between its upstreams and carries the WebSocket upgrade; a phone's HTTP requests
//! and its live socket land on different agents and a forward taken by one is pushed by the
//! other; pickup and acknowledgement work through any agent; one agent SIGKILLed mid-flood and
//! restarted loses no acknowledged forward and delivers none twice; the customer's whole
//! journey runs through nginx; the same credential request at both agents at once issues one
//! credential.

use lanyard_test_support as support;

use axum::extract::ws::{Message as WsMessage, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use lanyard_protocol::didcomm::{Message, ENCRYPTED_TYP};
use lanyard_protocol::protocols::issue_credential;
use serde_json::json;
use support::TEMPLATES;
use support::{mediator, onboarding, Agent, Cluster, Issuer, Nginx, OrgClient, Phone, SmtpSink};
use tokio_tungstenite::tungstenite::Message as Frame;

/// A tiny upstream on a loopback port that answers `/who` with its name and the
/// `X-Forwarded-For` it was sent, and `/ws` with a WebSocket that echoes `NAME: frame`.
async fn named_upstream(name: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let app = axum::Router::new()
        .route(
            "/who",
            get(move |headers: HeaderMap| async move {
                let forwarded = headers
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_string();
                format!("{name} {forwarded}")
            }),
        )
        .route(
            "/ws",
            get(move |upgrade: WebSocketUpgrade| async move {
                upgrade.on_upgrade(move |mut socket| async move {
                    while let Some(Ok(WsMessage::Text(text))) = socket.recv().await {
                        let echo = format!("{name}: {}", text.as_str());
                        if socket.send(WsMessage::Text(echo.into())).await.is_err() {
                            return;
                        }
                    }
                })
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

#[tokio::test]
async fn nginx_alternates_requests_between_upstreams_and_carries_websockets() {
    let a = named_upstream("a").await;
    let b = named_upstream("b").await;
    let nginx = Nginx::start(&[&a, &b]);

    // One client keeping its connection to nginx: the upstream still changes every request.
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for _ in 0..6 {
        let response = client
            .get(format!("{}/who", nginx.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", nginx.error_log());
        answers.push(response.text().await.unwrap());
    }
    for pair in answers.windows(2) {
        assert_ne!(
            pair[0], pair[1],
            "consecutive requests hit one upstream: {answers:?}"
        );
    }
    for name in ["a", "b"] {
        let hits = answers
            .iter()
            .filter(|answer| answer.starts_with(&format!("{name} ")))
            .count();
        assert_eq!(hits, 3, "{name} took {hits} of 6: {answers:?}");
    }
    assert!(
        answers.iter().all(|answer| answer.ends_with(" 127.0.0.1")),
        "X-Forwarded-For names the client: {answers:?}"
    );
    let log = nginx.access_log();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains(&format!("upstream={a}")))
            .count(),
        3,
        "{log}"
    );

    // Two WebSockets through nginx land on the two upstreams and stay open both ways.
    let ws_url = format!("{}/ws", nginx.url.replace("http://", "ws://"));
    let mut names = Vec::new();
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
        for n in 0..2 {
            socket
                .send(tokio_tungstenite::tungstenite::Message::Text(
                    format!("hello {n}").into(),
                ))
                .await
                .unwrap();
            let echo = socket.next().await.unwrap().unwrap().into_text().unwrap();
            let (name, text) = echo.split_once(": ").unwrap();
            assert_eq!(text, format!("hello {n}"));
            names.push(name.to_string());
        }
        sockets.push(socket);
    }
    assert_eq!(names[0], names[1], "one socket stays on one upstream");
    assert_eq!(names[2], names[3], "one socket stays on one upstream");
    assert_ne!(
        names[0], names[2],
        "the second socket went to the other upstream"
    );
}

/// The value of the sample `name` (no labels) in a `/metrics` text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Agent `index`'s sample `name`.
async fn agent_metric(cluster: &Cluster, index: usize, name: &str) -> u64 {
    metric(&cluster.metrics(index).await, name)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next DIDComm message on a live socket (a guard of 10 s against hanging).
async fn next_frame(phone: &Phone, socket: &mut Socket) -> Message {
    let frame = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
        .await
        .expect("a frame arrives within 10 s")
        .expect("the socket stays open")
        .unwrap();
    let text = frame.into_text().unwrap();
    phone
        .didcomm
        .unpack(&text)
        .await
        .expect("frames unpack")
        .message
}

/// The contents (`offer N`) of a delivery's attachments, and their ids.
async fn delivered(phone: &Phone, delivery: &Message) -> (Vec<String>, Vec<String>) {
    let mut contents = Vec::new();
    let mut ids = Vec::new();
    for attachment in &delivery.attachments {
        ids.push(attachment.id.clone().unwrap());
        let envelope = attachment.data.text().expect("a delivered envelope");
        let inner = phone
            .didcomm
            .unpack(&envelope)
            .await
            .expect("a delivered message unpacks");
        contents.push(inner.message.body["content"].as_str().unwrap().to_string());
    }
    (contents, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_taken_by_one_agent_is_pushed_at_once_by_the_agent_holding_the_socket() {
    let cluster = Cluster::start(2);
    let balanced = cluster.balanced();
    let phone = Phone::new(&balanced.did);
    // Mediation and the recipient update through nginx: one request to each agent.
    phone.connect(&balanced).await;
    for index in 0..2 {
        assert!(
            agent_metric(&cluster, index, "lanyard_messages_in_total").await >= 1,
            "agent {index} took none of the phone's HTTP requests"
        );
    }

    // The phone's live socket, through nginx too.
    let ws_url = format!("{}/ws", balanced.url.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let live_on = phone
        .pack_request(
            &balanced,
            mediator::LIVE_DELIVERY_CHANGE,
            json!({"live_delivery": true}),
        )
        .await;
    socket.send(Frame::Text(live_on.into())).await.unwrap();
    let status = next_frame(&phone, &mut socket).await;
    assert_eq!(status.type_, mediator::STATUS);
    assert_eq!(status.body["live_delivery"], true);
    let mut live = Vec::new();
    for index in 0..2 {
        live.push(agent_metric(&cluster, index, "lanyard_live_connections").await);
    }
    let holder = live
        .iter()
        .position(|&n| n == 1)
        .expect("one agent holds the socket");
    let other = 1 - holder;
    assert_eq!(live[other], 0, "only one agent holds the socket: {live:?}");

    // A forward to the agent that does not hold the socket is pushed by the one that does.
    let issuer = Issuer::new();
    assert_eq!(
        issuer.send_to(&cluster.direct(other), &phone.did, 1).await,
        202
    );
    let pushed = next_frame(&phone, &mut socket).await;
    assert_eq!(pushed.type_, mediator::DELIVERY);
    let (contents, ids) = delivered(&phone, &pushed).await;
    assert_eq!(contents, ["offer 1"]);
    assert_eq!(
        agent_metric(&cluster, other, "lanyard_forwards_queued_total").await,
        1,
        "the forward was taken by the agent without the socket"
    );
    assert_eq!(
        agent_metric(&cluster, holder, "lanyard_forwards_queued_total").await,
        0
    );
    assert_eq!(
        agent_metric(&cluster, holder, "lanyard_messages_out_total").await,
        1,
        "the agent holding the socket pushed it"
    );

    // Acknowledged over the socket: gone for the other agent too.
    let ack = phone
        .pack_request(
            &balanced,
            mediator::MESSAGES_RECEIVED,
            json!({"message_id_list": ids}),
        )
        .await;
    socket.send(Frame::Text(ack.into())).await.unwrap();
    let status = next_frame(&phone, &mut socket).await;
    assert_eq!(status.type_, mediator::STATUS);
    assert_eq!(status.body["message_count"], 0);
    assert_eq!(phone.waiting(&cluster.direct(other)).await, 0);
    socket.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pickup_and_acknowledgement_work_through_any_agent() {
    let cluster = Cluster::start(2);
    let balanced = cluster.balanced();
    let (first, second) = (cluster.direct(0), cluster.direct(1));
    let phone = Phone::new(&balanced.did);
    phone.connect(&balanced).await;
    let issuer = Issuer::new();
    for n in 0..4 {
        assert_eq!(issuer.send_to(&balanced, &phone.did, n).await, 202);
    }
    for index in 0..2 {
        assert_eq!(
            agent_metric(&cluster, index, "lanyard_forwards_queued_total").await,
            2,
            "nginx alternates the forwards"
        );
    }
    assert_eq!(phone.waiting(&first).await, 4);
    assert_eq!(phone.waiting(&second).await, 4);

    // Delivered by one agent, not acknowledged: delivered again by the other.
    let mut batches = Vec::new();
    for agent in [&first, &second] {
        let delivery = phone
            .ask(agent, mediator::DELIVERY_REQUEST, json!({ "limit": 10 }))
            .await;
        assert_eq!(delivery.message.type_, mediator::DELIVERY);
        batches.push(delivered(&phone, &delivery.message).await);
    }
    assert_eq!(
        batches[0], batches[1],
        "the same messages, not yet acknowledged"
    );
    assert_eq!(
        batches[0].0,
        ["offer 0", "offer 1", "offer 2", "offer 3"],
        "in the order they were queued, whichever agent took them"
    );

    // Acknowledged at the second agent: deleted for the first.
    let (_, ids) = &batches[0];
    let status = phone
        .ask(
            &second,
            mediator::MESSAGES_RECEIVED,
            json!({ "message_id_list": ids[..3] }),
        )
        .await;
    assert_eq!(status.message.type_, mediator::STATUS);
    assert_eq!(status.message.body["message_count"], 1);
    assert_eq!(phone.waiting(&first).await, 1);
    let rest = phone.pick_up(&first, 10).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].body["content"], "offer 3");
    assert_eq!(phone.waiting(&second).await, 0);
}

/// Floods two agents behind nginx with `TOTAL` forwards and, once 300 are acknowledged,
/// restarts agent `index` with `restart`; checks that every acknowledged forward is delivered
/// once. Returns what the flood ended with.
async fn flood_across_a_restart(
    index: usize,
    restart: fn(&mut Cluster, usize),
) -> support::flood::Flooded {
    const TOTAL: usize = 1500;
    let mut cluster = Cluster::start(2);
    let balanced = cluster.balanced();
    let phone = Phone::new(&balanced.did);
    phone.connect(&balanced).await;
    let flood = support::flood::Flood::start(&balanced, &phone.did, TOTAL, 8).await;
    flood
        .wait_acked(300, std::time::Duration::from_secs(120))
        .await;
    let at_restart = flood.sent();
    tokio::task::block_in_place(|| restart(&mut cluster, index));
    let flooded = flood.finish().await;
    assert!(
        at_restart < TOTAL,
        "the restart came after the flood ended; nothing was tested"
    );
    let received = support::flood::pick_up_all(&phone, &balanced).await;
    support::flood::assert_each_acknowledged_once(&flooded.acked, &received);
    println!(
        "{TOTAL} forwards: {at_restart} sent before the restart, {} acknowledged, {} not, {} \
         delivered",
        flooded.acked.len(),
        flooded.failed,
        received.len()
    );
    flooded
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_agent_mid_flood_loses_no_acknowledged_forward_and_delivers_none_twice() {
    // Requests in flight at the killed agent are answered 502 by nginx: never acknowledged.
    flood_across_a_restart(0, Cluster::kill_and_restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_of_one_agent_mid_flood_loses_no_acknowledged_forward() {
    // A graceful stop: the agent's group-commit batches in flight commit before it answers,
    // and it exits; then it starts again.
    let flooded = flood_across_a_restart(1, Cluster::terminate_and_restart).await;
    // What the stopping agent had taken in it finished, and what came after went to the
    // other; only a connection caught in the listen backlog as it closed can fail, at most one
    // per sender (each has one forward in flight).
    assert!(
        flooded.failed <= 8,
        "a graceful stop failed {} forwards, more than were in flight",
        flooded.failed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_journey_runs_through_nginx_on_two_agents() {
    let sink = SmtpSink::start();
    let cluster = Cluster::start_with(2, &[("LANYARD_SMTP_URL", sink.url())]);
    support::customer_journey(&cluster, &sink).await;
    for index in 0..2 {
        assert!(
            agent_metric(&cluster, index, "lanyard_messages_in_total").await > 0,
            "agent {index} took no DIDComm message of the journey"
        );
    }
}

/// Posts `packed` to `agent` once every poster waits at `barrier`; returns the status.
async fn post_together(agent: &Agent, barrier: &tokio::sync::Barrier, packed: String) -> u16 {
    barrier.wait().await;
    agent.post(ENCRYPTED_TYP, packed).await.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_credential_request_at_both_agents_at_once_issues_one_credential() {
    let cluster = Cluster::start(2);
    let balanced = cluster.balanced();
    let acme = OrgClient::create(&cluster, "Acme").await;
    let template = onboarding::skill_template(&acme).await;
    let customer = onboarding::onboard(
        &acme,
        onboarding::auto_issue_customer(
            "Jane",
            "jane@example.com",
            &template,
            json!({ "skill": "Rust" }),
        ),
    )
    .await;
    let phone = onboarding::mediated_phone(&balanced).await;
    phone
        .accept_invitation(customer["invitation"]["url"].as_str().unwrap())
        .await;
    let offers = onboarding::picked(&phone, &balanced, issue_credential::OFFER).await;
    let offer = issue_credential::parse_offer(&offers[0]).unwrap();

    // One request, packed once, sent to both agents directly at the same instant.
    let request = issue_credential::request_message(&offer)
        .from(phone.did.clone())
        .to([acme.didcomm_did.clone()]);
    let packed = phone
        .didcomm
        .pack_for_delivery(&request, Some(&phone.did), &acme.didcomm_did, false)
        .await
        .unwrap()
        .message;
    let (first, second) = (cluster.direct(0), cluster.direct(1));
    let barrier = tokio::sync::Barrier::new(2);
    let (a, b) = tokio::join!(
        post_together(&first, &barrier, packed.clone()),
        post_together(&second, &barrier, packed),
    );
    assert!(
        [a, b].contains(&202) && [a, b].iter().all(|&s| s == 202 || (400..500).contains(&s)),
        "the request was taken (and the twin taken or refused): {a}, {b}"
    );
    println!("the two agents answered {a} and {b}");

    let counted = acme
        .call("GET", &format!("{TEMPLATES}/{template}"), None)
        .await;
    assert_eq!(
        counted.body["data"]["totalIssued"].as_u64(),
        Some(1),
        "one counter increment: {}",
        counted.body
    );
    let exchanges = acme
        .call(
            "GET",
            &format!("/core/api/v1/programmatic/credential?templateId={template}"),
            None,
        )
        .await;
    let listed = exchanges.body["data"]["data"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "one credential: {}", exchanges.body);
    assert_eq!(listed[0]["state"], "Issued");
    let issued = onboarding::picked(&phone, &balanced, issue_credential::ISSUE).await;
    assert_eq!(issued.len(), 1, "one credential reaches the phone");
}

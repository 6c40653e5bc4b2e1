//! What a stranger can make the public mediator do costs bounded work: hostile Discover
//! Features patterns, oversized lists, replayed envelopes, envelopes whose layers disagree,
//! quotas on recipients and queued bytes, message expiry, the admission policy, and the HTTP
//! server's connection limits and timeouts. Each refusal names its reason.

use lanyard_test_support as support;

use std::time::Duration;

use agent::mediator::{Admission, Limits};
use lanyard_protocol::didcomm::{Message, ENCRYPTED_TYP};
use lanyard_protocol::keys::ContentEnc;
use lanyard_protocol::protocols::routing::FORWARD as FORWARD_TYPE;
use serde_json::{json, Value};
use support::{mediator, Agent, Issuer, OrgClient, Phone};

/// An HTTP client that gives up on a request that would otherwise hang forever.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn post(agent: &Agent, body: String) -> (u16, String) {
    let response = client()
        .post(format!("{}/didcomm", agent.url))
        .header("content-type", ENCRYPTED_TYP)
        .body(body)
        .send()
        .await
        .expect("the agent answers within 30 s");
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

/// Asserts a plaintext problem report with `code` whose comment contains `words`.
fn assert_problem(
    what: &str,
    (status, text): &(u16, String),
    expected: u16,
    code: &str,
    words: &str,
) {
    assert_eq!(*status, expected, "{what}: got {status} {text}");
    let problem: Value = serde_json::from_str(text)
        .unwrap_or_else(|_| panic!("{what}: not a problem report: {text}"));
    assert_eq!(problem["body"]["code"], code, "{what}: {text}");
    let comment = problem["body"]["comment"].as_str().unwrap_or_default();
    assert!(
        comment.contains(words),
        "{what}: {comment:?} does not say {words:?}"
    );
}

async fn metrics(agent: &Agent) -> String {
    client()
        .get(format!("{}/metrics", agent.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn assert_counted(metrics: &str, code: &str, n: u64) {
    let line = format!("lanyard_refusals_total{{code=\"{code}\"}} {n}");
    assert!(
        metrics.lines().any(|l| l == line),
        "no {line:?} in\n{metrics}"
    );
}

async fn assert_healthy(agent: &Agent, phone: &Phone) {
    let health = client()
        .get(format!("{}/health", agent.url))
        .send()
        .await
        .expect("the agent still answers");
    assert_eq!(health.status(), 200);
    let pong = phone
        .ask(agent, mediator::PING, json!({ "response_requested": true }))
        .await;
    assert_eq!(pong.message.type_, mediator::PING_RESPONSE);
}

fn queries(patterns: &[String]) -> Value {
    let queries: Vec<Value> = patterns
        .iter()
        .map(|p| json!({ "feature-type": "protocol", "match": p }))
        .collect();
    json!({ "queries": queries })
}

#[tokio::test]
async fn hostile_discover_features_patterns_are_answered_and_the_agent_stays_healthy() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);

    // 40 wildcards then a character no protocol has: exponential for the recursive matcher.
    let hostile = format!("{}!", "*".repeat(40));
    let packed = phone
        .pack_request(&agent, mediator::QUERIES, queries(&[hostile]))
        .await;
    let (status, text) = post(&agent, packed).await;
    assert_eq!(status, 200, "{text}");
    let disclose = phone.didcomm.unpack(&text).await.unwrap();
    assert_eq!(disclose.message.type_, mediator::DISCLOSE);
    assert_eq!(disclose.message.body["disclosures"], json!([]));
    // The wildcards still work.
    let packed = phone
        .pack_request(
            &agent,
            mediator::QUERIES,
            queries(&["*/trust-*".to_string()]),
        )
        .await;
    let (_, text) = post(&agent, packed).await;
    let disclose = phone.didcomm.unpack(&text).await.unwrap();
    assert_eq!(
        disclose.message.body["disclosures"],
        json!([{"feature-type": "protocol", "id": "https://didcomm.org/trust-ping/2.0"}])
    );

    // 100,000 wildcards overflowed the stack; now the pattern is over the length limit.
    let packed = phone
        .pack_request(&agent, mediator::QUERIES, queries(&["*".repeat(100_000)]))
        .await;
    assert_problem(
        "100,000 wildcards",
        &post(&agent, packed).await,
        400,
        "e.p.msg.bad-request",
        "its match is 100000 bytes, over this mediator's limit of 256",
    );
    let packed = phone
        .pack_request(&agent, mediator::QUERIES, queries(&["*".repeat(65)]))
        .await;
    assert_problem(
        "65 wildcards",
        &post(&agent, packed).await,
        400,
        "e.p.msg.bad-request",
        "has 65 wildcards, over this mediator's limit of 64",
    );
    let many: Vec<String> = (0..21)
        .map(|n| format!("https://example.org/{n}/*"))
        .collect();
    let packed = phone
        .pack_request(&agent, mediator::QUERIES, queries(&many))
        .await;
    assert_problem(
        "21 queries",
        &post(&agent, packed).await,
        400,
        "e.p.msg.bad-request",
        "carries 21 queries, over this mediator's limit of 20",
    );
    assert_healthy(&agent, &phone).await;
}

#[tokio::test]
async fn lists_over_their_caps_are_refused_and_change_nothing() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;

    let updates: Vec<Value> = (0..101)
        .map(|n| json!({ "recipient_did": format!("did:example:{n}"), "action": "add" }))
        .collect();
    let packed = phone
        .pack_request(
            &agent,
            mediator::RECIPIENT_UPDATE,
            json!({ "updates": updates }),
        )
        .await;
    assert_problem(
        "101 recipient updates",
        &post(&agent, packed).await,
        400,
        "e.p.msg.bad-request",
        "carries 101 updates, over this mediator's limit of 100",
    );
    let ids: Vec<String> = (0..1001).map(|n| format!("{n:024x}")).collect();
    let packed = phone
        .pack_request(
            &agent,
            mediator::MESSAGES_RECEIVED,
            json!({ "message_id_list": ids }),
        )
        .await;
    assert_problem(
        "1001 acknowledged ids",
        &post(&agent, packed).await,
        400,
        "e.p.msg.bad-request",
        "lists 1001 ids, over this mediator's limit of 1000",
    );
    let query = phone
        .ask(&agent, mediator::RECIPIENT_QUERY, json!({}))
        .await;
    assert_eq!(
        query.message.body["dids"],
        json!([{ "recipient_did": phone.did }]),
        "no recipient was added"
    );
}

#[tokio::test]
async fn replayed_envelopes_are_acted_on_once() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);

    // A replayed mediate-request is refused, naming the message.
    let request = phone
        .pack_request(&agent, mediator::MEDIATE_REQUEST, json!({}))
        .await;
    assert_eq!(post(&agent, request.clone()).await.0, 200);
    assert_problem(
        "replayed mediate-request",
        &post(&agent, request).await,
        409,
        "e.p.msg.replay",
        "was already handled",
    );

    // A captured recipient-update (remove) replayed after the phone registered again does
    // not remove it a second time.
    let add = json!({"updates": [{"recipient_did": phone.did, "action": "add"}]});
    let remove = json!({"updates": [{"recipient_did": phone.did, "action": "remove"}]});
    assert_eq!(
        phone
            .ask(&agent, mediator::RECIPIENT_UPDATE, add.clone())
            .await
            .message
            .body["updated"][0]["result"],
        "success"
    );
    let captured = phone
        .pack_request(&agent, mediator::RECIPIENT_UPDATE, remove)
        .await;
    assert_eq!(post(&agent, captured.clone()).await.0, 200);
    assert_eq!(
        phone
            .ask(&agent, mediator::RECIPIENT_UPDATE, add)
            .await
            .message
            .body["updated"][0]["result"],
        "success"
    );
    assert_problem(
        "replayed recipient-update",
        &post(&agent, captured).await,
        409,
        "e.p.msg.replay",
        "was already handled",
    );
    let query = phone
        .ask(&agent, mediator::RECIPIENT_QUERY, json!({}))
        .await;
    assert_eq!(
        query.message.body["dids"],
        json!([{ "recipient_did": phone.did }])
    );

    // A replayed forward is accepted again (so a sender's retry is safe) without a second
    // queue entry.
    let forward = Issuer::new().pack_for(&agent, &phone.did, 1).await;
    assert_eq!(post(&agent, forward.clone()).await.0, 202);
    assert_eq!(post(&agent, forward).await.0, 202);
    assert_eq!(
        phone.waiting(&agent).await,
        1,
        "the forward was queued once"
    );
    assert!(metrics(&agent)
        .await
        .lines()
        .any(|l| l == "lanyard_forwards_deduplicated_total 1"));

    // A control message created outside the replay window is refused as stale.
    let mut stale = Message::new(mediator::STATUS_REQUEST, json!({}))
        .from(phone.did.clone())
        .to([agent.did.clone()]);
    stale.created_time = Some(lanyard_protocol::didcomm::now() - 3600);
    stale.extra.insert("return_route".into(), json!("all"));
    let packed = phone
        .didcomm
        .pack_authcrypt(&stale, &phone.did, &[&agent.did], false)
        .await
        .unwrap();
    assert_problem(
        "a message from an hour ago",
        &post(&agent, packed).await,
        409,
        "e.p.msg.replay",
        "more than 600 s from now",
    );
    assert_counted(&metrics(&agent).await, "e.p.msg.replay", 3);
}

#[tokio::test]
async fn routing_checks_to_against_the_layer_it_routes_on() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    let org = OrgClient::create(&agent, "Acme").await;

    // Anoncrypted to the mediator outside, authcrypted to an organisation inside, `to` the
    // organisation: the mediator used to take it as a mediate-request for itself.
    let mut request = Message::new(mediator::MEDIATE_REQUEST, json!({}))
        .from(phone.did.clone())
        .to([org.didcomm_did.clone()]);
    request.extra.insert("return_route".into(), json!("all"));
    let inner = phone
        .didcomm
        .pack_authcrypt(&request, &phone.did, &[&org.didcomm_did], false)
        .await
        .unwrap();
    let outer = phone
        .didcomm
        .pack_anoncrypt_bytes(inner.as_bytes(), &[&agent.did], ContentEnc::A256CbcHs512)
        .await
        .unwrap();
    assert_problem(
        "layers encrypted to different DIDs",
        &post(&agent, outer).await,
        400,
        "e.p.msg.not-for-me",
        "encrypted to different DIDs",
    );
    assert_eq!(
        phone
            .send(&agent, mediator::DELIVERY_REQUEST, json!({"limit": 1}))
            .await
            .status(),
        403,
        "no mediation was granted"
    );

    // Encrypted to the mediator, addressed to someone else.
    let mut misaddressed = Message::new(mediator::MEDIATE_REQUEST, json!({}))
        .from(phone.did.clone())
        .to([org.didcomm_did.clone()]);
    misaddressed
        .extra
        .insert("return_route".into(), json!("all"));
    let packed = phone
        .didcomm
        .pack_authcrypt(&misaddressed, &phone.did, &[&agent.did], false)
        .await
        .unwrap();
    let answer = post(&agent, packed).await;
    assert_eq!(answer.0, 400, "{}", answer.1);
    assert!(answer.1.contains("e.p.msg.not-for-me"), "{}", answer.1);

    // A forward that is not encrypted at all is not queued.
    phone.connect(&agent).await;
    let inner = Issuer::new().pack_for(&agent, &phone.did, 1).await;
    let mut plain = Message::new(FORWARD_TYPE, json!({ "next": phone.did }));
    plain.attachments = vec![lanyard_protocol::didcomm::Attachment::json(
        serde_json::from_str(&inner).unwrap(),
    )];
    assert_problem(
        "a plaintext forward",
        &post(&agent, plain.to_json()).await,
        400,
        "e.p.msg.bad-request",
        "must be encrypted to the mediator",
    );
    assert_eq!(phone.waiting(&agent).await, 0);
    // What wallets send (forwards with no `to`, requests to the mediator) still goes through.
    assert_eq!(Issuer::new().send_to(&agent, &phone.did, 2).await, 202);
    assert_eq!(phone.waiting(&agent).await, 1);
}

/// The length of what the mediator queues for `phone` from `issuer` (the inner envelope).
async fn queued_size(issuer: &Issuer, phone: &str) -> u64 {
    let message = Message::new(
        lanyard_protocol::protocols::basic_message::MESSAGE,
        json!({ "content": "offer 0" }),
    )
    .from(issuer.did.clone())
    .to([phone.to_string()]);
    let packed = issuer
        .didcomm
        .pack_authcrypt(&message, &issuer.did, &[phone], false)
        .await
        .unwrap();
    let value: Value = serde_json::from_str(&packed).unwrap();
    value.to_string().len() as u64
}

#[tokio::test]
async fn quotas_refuse_clearly_and_are_counted() {
    let issuer = Issuer::new();
    // Measured for a phone of another agent: its DID is as long as the ones below.
    let size = {
        let other_agent = Agent::start(Limits::default()).await;
        queued_size(&issuer, &Phone::new(&other_agent.did).did).await
    };
    let agent = Agent::start(Limits {
        max_recipients: 2,
        client_queue_bytes: size * 5 / 2,
        store_queue_bytes: size * 7 / 2,
        ..Limits::default()
    })
    .await;
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;

    // Recipients: one more fits, the third is refused before anything changes.
    let other = Phone::new(&agent.did);
    let third = Phone::new(&agent.did);
    let update = phone.update_recipient(&agent, &other.did, "add").await;
    assert_eq!(update.message.body["updated"][0]["result"], "success");
    let packed = phone
        .pack_request(
            &agent,
            mediator::RECIPIENT_UPDATE,
            json!({"updates": [{"recipient_did": third.did, "action": "add"}]}),
        )
        .await;
    assert_problem(
        "a third recipient",
        &post(&agent, packed).await,
        429,
        "e.p.req.recipient-cap",
        "already has the most recipients a client may register (2)",
    );
    assert_eq!(
        issuer.send_to(&agent, &third.did, 0).await,
        404,
        "not registered"
    );

    // Queued bytes per client: two messages fit, the third is over the phone's quota.
    assert_eq!(issuer.send_to(&agent, &phone.did, 1).await, 202);
    assert_eq!(issuer.send_to(&agent, &phone.did, 2).await, 202);
    let forward = issuer.pack_for(&agent, &other.did, 3).await;
    assert_problem(
        "over the client's quota",
        &post(&agent, forward).await,
        429,
        "w.p.msg.client-quota",
        &format!("over its quota of {} bytes", size * 5 / 2),
    );
    // Queued bytes in all: another client's first message fits, its second does not.
    let neighbour = Phone::new(&agent.did);
    neighbour.connect(&agent).await;
    assert_eq!(issuer.send_to(&agent, &neighbour.did, 4).await, 202);
    let forward = issuer.pack_for(&agent, &neighbour.did, 5).await;
    assert_problem(
        "over the store's cap",
        &post(&agent, forward).await,
        507,
        "w.p.me.res.store-full",
        "the mediator's store is full",
    );
    assert_eq!(phone.waiting(&agent).await, 2);
    assert_eq!(neighbour.waiting(&agent).await, 1);

    // Picking up frees the quota.
    assert_eq!(phone.pick_up(&agent, 10).await.len(), 2);
    assert_eq!(issuer.send_to(&agent, &phone.did, 6).await, 202);

    let metrics = metrics(&agent).await;
    assert_counted(&metrics, "e.p.req.recipient-cap", 1);
    assert_counted(&metrics, "w.p.msg.client-quota", 1);
    assert_counted(&metrics, "w.p.me.res.store-full", 1);
}

#[tokio::test]
async fn messages_past_the_age_limit_expire() {
    let agent = Agent::start(Limits {
        message_max_age: Duration::from_secs(1),
        ..Limits::default()
    })
    .await;
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;
    assert_eq!(Issuer::new().send_to(&agent, &phone.did, 1).await, 202);
    // Let the message grow older than the limit (arrival times are whole seconds).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        phone.pick_up(&agent, 10).await.is_empty(),
        "an expired message is not delivered"
    );
    assert_eq!(phone.waiting(&agent).await, 0, "and is dropped");
    // A fresh one is.
    assert_eq!(Issuer::new().send_to(&agent, &phone.did, 2).await, 202);
    assert_eq!(phone.pick_up(&agent, 10).await.len(), 1);
}

#[tokio::test]
async fn invited_admission_grants_mediation_only_to_invitation_answers() {
    let agent = Agent::start(Limits {
        admission: Admission::Invited,
        ..Limits::default()
    })
    .await;
    async fn ask(agent: &Agent, phone: &Phone, pthid: Option<&str>) -> (u16, String) {
        let mut request = Message::new(mediator::MEDIATE_REQUEST, json!({}))
            .from(phone.did.clone())
            .to([agent.did.clone()]);
        if let Some(pthid) = pthid {
            request = request.pthid(pthid);
        }
        request.extra.insert("return_route".into(), json!("all"));
        let packed = phone
            .didcomm
            .pack_authcrypt(&request, &phone.did, &[&agent.did], false)
            .await
            .unwrap();
        post(agent, packed).await
    }
    let phone = Phone::new(&agent.did);
    assert_problem(
        "no pthid",
        &ask(&agent, &phone, None).await,
        403,
        "e.p.req.admission",
        "the mediate-request has no pthid",
    );
    assert_problem(
        "an unknown pthid",
        &ask(&agent, &phone, Some("made-up")).await,
        403,
        "e.p.req.admission",
        "no invitation has the id \"made-up\"",
    );
    let single = support::create_invitation(&agent, json!({ "single_use": true })).await;
    let id = single["invitation"]["id"].as_str().unwrap();
    assert_eq!(
        ask(&agent, &phone, Some(id)).await.0,
        200,
        "answering an invitation"
    );
    // Granted once, the phone may ask again; the spent invitation admits nobody else.
    assert_eq!(ask(&agent, &phone, None).await.0, 200);
    let latecomer = Phone::new(&agent.did);
    assert_problem(
        "a spent invitation",
        &ask(&agent, &latecomer, Some(id)).await,
        403,
        "e.p.req.admission",
        "already used",
    );
    let multi = support::create_invitation(&agent, json!({})).await;
    let id = multi["invitation"]["id"].as_str().unwrap();
    assert_eq!(ask(&agent, &latecomer, Some(id)).await.0, 200);
    assert_counted(&metrics(&agent).await, "e.p.req.admission", 3);
}

/// Reads from `stream` until the peer closes it; what it sent.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("the agent closes the connection (30 s guard)")
        .ok();
    String::from_utf8_lossy(&answer).to_string()
}

#[tokio::test]
async fn connections_over_the_limit_are_refused_with_a_reason() {
    use tokio::net::TcpStream;
    let agent = Agent::start_with(Limits::default(), |config| {
        config.max_connections = 3;
        config.max_live_connections = 1;
    })
    .await;
    let host = agent.url.trim_start_matches("http://").to_string();
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(&host).await.unwrap());
    }
    let mut fourth = TcpStream::connect(&host).await.unwrap();
    let answer = read_until_closed(&mut fourth).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("w.p.me.res.connection-limit"), "{answer}");
    drop(idle);

    // Live sockets have their own limit (once upgraded, they leave the connection count).
    let ws_url = format!("{}/ws", agent.url.replace("http://", "ws://"));
    let connect = || async {
        use tokio_tungstenite::tungstenite::Error;
        for _ in 0..200 {
            match tokio_tungstenite::connect_async(&ws_url).await {
                // The slots of the dropped connections may not be free yet.
                Err(Error::Io(_)) | Err(Error::Protocol(_)) => {}
                Err(Error::Http(response))
                    if String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                        .contains("connection-limit") => {}
                other => return other,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no connection slot came free");
    };
    let (_live, _) = connect().await.expect("the first live socket opens");
    match connect().await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            let body =
                String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).to_string();
            assert!(body.contains("w.p.me.res.live-limit"), "{body}");
        }
        other => panic!("a second live socket: {other:?}"),
    }
    // Connection slots free up once the peers are gone; then the refusals show in metrics.
    let mut text = String::new();
    for _ in 0..100 {
        match reqwest::get(format!("{}/metrics", agent.url)).await {
            Ok(response) if response.status() == 200 => {
                text = response.text().await.unwrap();
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_counted(&text, "live.limit", 1);
    assert!(
        text.lines()
            .any(|l| l.starts_with("lanyard_refusals_total{code=\"connection.limit\"}")),
        "{text}"
    );
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    use tokio::io::AsyncWriteExt;
    let agent = Agent::start_with(Limits::default(), |config| {
        config.header_read_timeout = Duration::from_millis(300);
        config.request_timeout = Duration::from_millis(300);
        config.live_idle_timeout = Duration::from_secs(1);
    })
    .await;
    let host = agent.url.trim_start_matches("http://").to_string();

    // Headers that never end.
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    stream
        .write_all(format!("POST /didcomm HTTP/1.1\r\nHost: {host}\r\n").as_bytes())
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );

    // A body that never ends.
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /didcomm HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ENCRYPTED_TYP}\r\n\
                 Content-Length: 1000\r\n\r\n{{\"protected\""
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("e.p.msg.timeout"), "{answer}");

    // A live socket whose client never answers the mediator's ping is closed: a raw
    // handshake, then nothing.
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    stream
        .write_all(
            format!(
                "GET /ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
    assert!(answer.contains("idle for too long"), "{answer:?}");
    let text = metrics(&agent).await;
    assert_counted(&text, "live.idle", 1);
    assert_counted(&text, "request.timeout", 1);
    assert_counted(&text, "header.timeout", 1);
}

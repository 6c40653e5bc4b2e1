//! The mediator's side of push wake-up: a mediated client registers a device with
//! `set-device-info` (RFC 0699/0734 shapes, Lanyard's webhook protocol), the mediator keeps
//! only the gateway's handle, and a message queued while the client has no live socket wakes
//! the device with a body that names nothing. Without a gateway, registration is refused in a
//! problem report that says so.

use lanyard_protocol::protocols::push_notifications::{
    APNS_SET_DEVICE_INFO, FCM_PIURI, WEBHOOK_DEVICE_INFO, WEBHOOK_GET_DEVICE_INFO, WEBHOOK_PIURI,
    WEBHOOK_SET_DEVICE_INFO,
};
use lanyard_test_support as support;
use serde_json::json;
use support::mediator::{DISCLOSE, PROBLEM_REPORT, QUERIES};
use support::{Agent, Issuer, Phone, WakeReceiver};

/// An agent that wakes devices through webhooks (coalescing over `window_s`), on `data`.
async fn push_agent(data: &std::path::Path, window_s: u64) -> Agent {
    let data = data.to_path_buf();
    Agent::start_with(Default::default(), move |config| {
        config.data_dir = data;
        config.push.webhooks = true;
        config.push.coalesce = std::time::Duration::from_secs(window_s);
    })
    .await
}

/// Every byte of every file under `dir`.
fn every_byte(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all.extend(every_byte(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            all.extend(bytes);
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Registers `receiver` as `phone`'s webhook at `agent`; returns the `device-info` answer,
/// checked to say registered.
async fn register_webhook(
    phone: &Phone,
    agent: &Agent,
    receiver: &WakeReceiver,
) -> lanyard_protocol::didcomm::Message {
    let registered = phone
        .ask(
            agent,
            WEBHOOK_SET_DEVICE_INFO,
            json!({ "url": receiver.url }),
        )
        .await
        .message;
    assert_eq!(registered.type_, WEBHOOK_DEVICE_INFO, "{}", registered.body);
    assert_eq!(registered.body["registered"], true);
    registered
}

#[tokio::test]
async fn registration_is_refused_in_a_problem_report_when_no_gateway_is_configured() {
    let agent = Agent::start(Default::default()).await;
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;
    let answer = phone
        .ask(
            &agent,
            WEBHOOK_SET_DEVICE_INFO,
            json!({ "url": "https://phone.example/wake" }),
        )
        .await
        .message;
    assert_eq!(answer.type_, PROBLEM_REPORT);
    assert_eq!(answer.body["code"], "e.p.req.push.not-configured");
    assert!(
        answer.body["comment"]
            .as_str()
            .unwrap()
            .contains("no push gateway configured"),
        "{}",
        answer.body
    );
    // Nothing to disclose either.
    let disclosed = phone
        .ask(
            &agent,
            QUERIES,
            json!({ "queries": [{ "feature-type": "protocol", "match": "*" }] }),
        )
        .await
        .message;
    assert_eq!(disclosed.type_, DISCLOSE);
    assert!(!disclosed.body.to_string().contains("push-notifications"));
}

#[tokio::test]
async fn only_a_granted_client_may_register_and_malformed_registrations_are_named() {
    let data = tempfile::tempdir().unwrap();
    let agent = push_agent(data.path(), 600).await;
    let stranger = Phone::new(&agent.did);
    let refused = stranger
        .send(
            &agent,
            WEBHOOK_SET_DEVICE_INFO,
            json!({ "url": "https://phone.example/wake" }),
        )
        .await;
    let status = refused.status();
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(
        body["body"]["code"], "e.p.req.not-mediated",
        "{status} {body}"
    );

    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;
    let refused = phone
        .send(&agent, APNS_SET_DEVICE_INFO, json!({ "device_token": 42 }))
        .await;
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["body"]["code"], "e.p.msg.bad-request");
    assert_eq!(
        body["body"]["comment"],
        "set-device-info: device_token is not a string"
    );
    // APNs is not configured on this gateway: the gateway's refusal, in public words.
    let answer = phone
        .ask(
            &agent,
            APNS_SET_DEVICE_INFO,
            json!({ "device_token": "ab".repeat(32) }),
        )
        .await
        .message;
    assert_eq!(answer.body["code"], "e.p.req.push.not-configured");
    assert_eq!(
        answer.body["comment"],
        "push through apns is not available here"
    );
    // A webhook the outbound policy refuses (not http(s)) is refused by the gateway's check.
    let answer = phone
        .ask(
            &agent,
            WEBHOOK_SET_DEVICE_INFO,
            json!({ "url": "ftp://phone.example/wake" }),
        )
        .await
        .message;
    assert_eq!(
        answer.body["code"], "e.p.msg.push.bad-token",
        "{}",
        answer.body
    );
}

#[tokio::test]
async fn a_webhook_registration_keeps_only_the_handle_and_a_queued_message_wakes_the_device() {
    let receiver = WakeReceiver::start(204).await;
    let data = tempfile::tempdir().unwrap();
    let agent = push_agent(data.path(), 600).await;
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;

    let registered = register_webhook(&phone, &agent, &receiver).await;
    assert_eq!(
        registered.body["url"],
        serde_json::Value::Null,
        "the token is never sent back"
    );
    let held = phone
        .ask(&agent, WEBHOOK_GET_DEVICE_INFO, json!({}))
        .await
        .message;
    assert_eq!(held.body["registered"], true);
    // The push protocols are disclosed now.
    let disclosed = phone
        .ask(
            &agent,
            QUERIES,
            json!({ "queries": [{ "feature-type": "protocol", "match": "https://*push*" }] }),
        )
        .await
        .message;
    let text = disclosed.body.to_string();
    assert!(
        text.contains(WEBHOOK_PIURI) && text.contains(FCM_PIURI),
        "{text}"
    );

    // A message for the phone while it has no live socket: one wake, naming nothing.
    let issuer = Issuer::new();
    assert_eq!(issuer.send_to(&agent, &phone.did, 1).await, 202);
    let wakes = receiver.wait_for(1).await;
    let body = String::from_utf8(wakes[0].clone()).unwrap();
    assert_eq!(body, r#"{"type":"lanyard.wake"}"#);
    assert!(!body.contains(&issuer.did) && !body.contains(&phone.did));
    assert_eq!(phone.waiting(&agent).await, 1);

    // The device token (the webhook's URL) is nowhere on disk in the clear: the mediator
    // stores the handle, the gateway seals what it keeps.
    let disk = every_byte(data.path());
    assert!(
        contains(&disk, phone.did.as_bytes()),
        "the reading sees the stores (the mediator keeps recipient DIDs as they are)"
    );
    assert!(
        contains(&disk, b"webhook "),
        "the mediator's wake registration is on disk"
    );
    assert!(!contains(&disk, receiver.secret.as_bytes()));
    assert!(!contains(&disk, receiver.url.as_bytes()));

    // Removing (a null url) unregisters.
    let removed = phone
        .ask(&agent, WEBHOOK_SET_DEVICE_INFO, json!({ "url": null }))
        .await
        .message;
    assert_eq!(removed.body["registered"], false);
    let gone = phone
        .ask(&agent, WEBHOOK_GET_DEVICE_INFO, json!({}))
        .await
        .message;
    assert_eq!(gone.type_, PROBLEM_REPORT);
    assert_eq!(
        gone.body["code"],
        "e.p.req.not-registered-for-push-notifications"
    );
    let metrics = agent.metrics().await;
    assert!(
        metrics.contains(r#"lanyard_push_wakes_total{platform="webhook",outcome="sent"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_wake_coalesced_in_the_window_is_sent_once_the_window_has_passed() {
    let receiver = WakeReceiver::start(204).await;
    let data = tempfile::tempdir().unwrap();
    let agent = push_agent(data.path(), 5).await;
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;
    phone
        .ask(
            &agent,
            WEBHOOK_SET_DEVICE_INFO,
            json!({ "url": receiver.url }),
        )
        .await;
    let issuer = Issuer::new();
    assert_eq!(issuer.send_to(&agent, &phone.did, 1).await, 202);
    receiver.wait_for(1).await;
    // The phone has not picked up; a second message comes inside the window: the gateway
    // coalesces it, and the mediator wakes again once the window has passed.
    assert_eq!(issuer.send_to(&agent, &phone.did, 2).await, 202);
    receiver.wait_for(2).await;
    let metrics = agent.metrics().await;
    assert!(
        metrics.contains(r#"lanyard_push_wakes_total{platform="webhook",outcome="coalesced"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_agent_given_a_gateway_url_registers_and_wakes_through_the_gateway_run_alone() {
    const SECRET: &str = "push-gateway-secret-0123456789-abcdefghij";
    let receiver = WakeReceiver::start(204).await;
    let gateway_data = tempfile::tempdir().unwrap();
    let gateway = agent::push::serve_gateway(agent::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: gateway_data.path().to_path_buf(),
        net: lanyard_protocol::net::NetPolicy::loopback(),
        push: agent::push::PushConfig {
            webhooks: true,
            gateway_secret: Some(SECRET.into()),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let url = format!("http://{}", gateway.addr);
    let agent_data = tempfile::tempdir().unwrap();
    let agent = {
        let data = agent_data.path().to_path_buf();
        Agent::start_with(Default::default(), move |config| {
            config.data_dir = data;
            config.push.gateway_url = Some(url);
            config.push.gateway_secret = Some(SECRET.into());
        })
        .await
    };
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;
    register_webhook(&phone, &agent, &receiver).await;

    let issuer = Issuer::new();
    assert_eq!(issuer.send_to(&agent, &phone.did, 1).await, 202);
    let wakes = receiver.wait_for(1).await;
    assert_eq!(
        String::from_utf8(wakes[0].clone()).unwrap(),
        r#"{"type":"lanyard.wake"}"#
    );
    // The agent kept only the handle; the device lives in the gateway's folder, sealed.
    assert!(!contains(
        &every_byte(agent_data.path()),
        receiver.url.as_bytes()
    ));
    assert!(!contains(
        &every_byte(gateway_data.path()),
        receiver.url.as_bytes()
    ));
}

//! What the agent fetches cannot be pointed inside: a callback URL or SMS gateway on a
//! loopback, private, link-local or metadata address is refused when it is set (IP literals,
//! plain http) or when its name resolves (at delivery), with a reason that names no address;
//! the strict policy is the default.

use lanyard_test_support as support;

use std::sync::atomic::Ordering;

use serde_json::{json, Value};
use support::{counting_server, Agent, OrgClient, TEMPLATES};

const CUSTOMERS: &str = "/core/api/v1/programmatic/customer";
const CALLBACK: &str = "/core/api/v1/programmatic/callback";

/// An agent with the default (strict) outbound policy, published at a public name as a
/// deployment is (one both listening and published on loopback, which only this machine can
/// reach, allows loopback fetches).
async fn strict_agent(edit: impl FnOnce(&mut agent::config::Config)) -> Agent {
    Agent::start_with(Default::default(), |config| {
        config.net = lanyard_protocol::net::NetPolicy::default();
        config.public_url = Some("https://agent.example".to_string());
        config.callback_retry = std::time::Duration::from_millis(20);
        edit(config);
    })
    .await
}

#[test]
fn the_default_policy_is_strict() {
    let config = agent::config::Config::default();
    assert!(!config.net.allow_loopback);
    assert!(config.net.allow.is_empty());
}

#[tokio::test]
async fn callback_urls_inside_are_refused_when_set() {
    let agent = strict_agent(|_| {}).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    for (url, reason) in [
        (
            "https://169.254.169.254/latest/meta-data",
            "a cloud metadata address",
        ),
        ("https://[fd00:ec2::254]/hook", "a cloud metadata address"),
        ("https://169.254.3.4/hook", "a link-local address"),
        ("https://10.0.0.7/hook", "a private address"),
        ("https://127.0.0.1:8080/hook", "a loopback address"),
        ("http://hooks.example.com/hook", "plain http://"),
        ("http://127.0.0.1:8080/hook", "plain http://"),
    ] {
        let set = acme
            .call("PUT", CALLBACK, Some(json!({ "url": url })))
            .await;
        assert_eq!(set.status, 400, "{url}: {}", set.body);
        let message = set.body.to_string();
        assert!(
            message.contains("url") && message.contains(reason),
            "{url}: {message}"
        );
    }
    let current = acme.call("GET", CALLBACK, None).await;
    assert!(
        current.status == 404 || current.body["data"].is_null(),
        "a refused URL was stored: {}",
        current.body
    );
}

#[tokio::test]
async fn a_callback_host_resolving_inside_is_refused_at_delivery() {
    let (port, hits) = counting_server(axum::http::StatusCode::NO_CONTENT).await;
    let agent = strict_agent(|_| {}).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    // A name, so only its resolution can tell: `localhost` is loopback.
    let set = acme
        .call(
            "PUT",
            CALLBACK,
            Some(json!({ "url": format!("https://localhost:{port}/hook") })),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    // A template made and deleted: one template.deleted event.
    let created = acme
        .call("POST", TEMPLATES, Some(support::seed_template_request()))
        .await;
    let template = created.body["data"]["templateId"].as_str().unwrap();
    acme.call("DELETE", &format!("{TEMPLATES}/{template}"), None)
        .await;
    let mut attempted = Value::Null;
    for _ in 0..200 {
        let events = acme.call("GET", &format!("{CALLBACK}/events"), None).await;
        let event = events.body["data"]["data"][0].clone();
        if event["attempts"].as_array().is_some_and(|a| a.len() >= 2) {
            attempted = event;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let attempts = attempted["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("no delivery was attempted: {attempted}"));
    for attempt in attempts {
        assert_eq!(
            attempt["error"], "the host is not a public address",
            "{attempted}"
        );
        assert!(attempt["status"].is_null());
    }
    assert_eq!(attempted["delivered"], false);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the callback reached a loopback host"
    );
}

#[tokio::test]
async fn sms_gateways_inside_are_refused() {
    // At start: an IP literal or plain http is refused by name.
    for (url, reason) in [
        ("https://169.254.169.254/sms", "a cloud metadata address"),
        ("https://192.168.0.10/sms", "a private address"),
        ("http://sms.example.com/send", "plain http://"),
    ] {
        let data = tempfile::tempdir().unwrap();
        let config = agent::config::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data.path().to_path_buf(),
            sms_url: Some(url.to_string()),
            ..agent::config::Config::default()
        };
        let error = match agent::start(config).await {
            Ok(_) => panic!("the agent started with LANYARD_SMS_URL={url}"),
            Err(error) => error.to_string(),
        };
        assert!(
            error.contains("LANYARD_SMS_URL") && error.contains(reason),
            "{url}: {error}"
        );
    }

    // A name resolving inside: refused when the text is sent, without the address.
    let (port, hits) = counting_server(axum::http::StatusCode::NO_CONTENT).await;
    let agent = strict_agent(|config| {
        config.sms_url = Some(format!("https://localhost:{port}/sms"));
    })
    .await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let created = acme
        .call(
            "POST",
            CUSTOMERS,
            Some(
                json!({"name": "Jane", "medium": "sms", "phoneNumber": "+15555550100",
                         "organizationLabel": "Acme"}),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let delivery = &created.body["data"]["deliveries"][0];
    assert_eq!(delivery["ok"], false, "{}", created.body);
    assert_eq!(
        delivery["detail"], "SMS gateway: the host is not a public address",
        "{}",
        created.body
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the SMS reached a loopback host"
    );
}

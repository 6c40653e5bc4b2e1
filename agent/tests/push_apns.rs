//! The gateway against an APNs stand-in on loopback that checks what APNs checks: HTTP/2 over
//! TLS (the receiver offers nothing else), `POST /3/device/<token>`, the provider token (an
//! ES256 JWT with `kid`, `iss` = team id and a current `iat`, its signature verified with the
//! test key's public half), `apns-topic`, `apns-push-type: background`, `apns-priority: 5` and
//! the body `{"aps":{"content-available":1}}`; then a 410 dropping the handle, a 503 retried
//! after its `Retry-After`, and the refusals of what is not configured. End to end: a real
//! wallet registered for APNs with an agent whose gateway talks to the stand-in is woken by a
//! background push when its credential is queued, syncs and holds it; the token is nowhere in
//! the agent's files.

mod push_common;

use std::time::Duration;

use agent::push::{Device, Platform, PushConfig, PushError, PushGateway, Woken};
use push_common::{apns_key, now, quick, sled_gateway, split_jwt, Answer, Receiver};
use serde_json::json;

const TEAM: &str = "TEAM123456";
const KEY_ID: &str = "KEY7654321";
const TOPIC: &str = "com.example.lanyard";

/// APNs configured against `receiver` with a fresh key; the key's public half.
fn apns_config(dir: &std::path::Path, receiver: &Receiver) -> (PushConfig, Vec<u8>) {
    let (pem, public) = apns_key();
    let path = dir.join("AuthKey.p8");
    std::fs::write(&path, pem).unwrap();
    let config = PushConfig {
        apns_key_file: Some(path),
        apns_key_id: Some(KEY_ID.into()),
        apns_team_id: Some(TEAM.into()),
        apns_topic: Some(TOPIC.into()),
        apns_url: receiver.url(),
        ..quick()
    };
    (config, public)
}

fn iphone(n: u8) -> Device {
    Device {
        platform: Platform::Apns,
        token: format!("{n:02x}").repeat(32),
    }
}

#[tokio::test]
async fn a_wake_is_an_http2_background_push_with_a_signed_provider_token() {
    let receiver = Receiver::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, public) = apns_config(dir.path(), &receiver);
    let gateway = sled_gateway(dir.path(), &config, receiver.client());
    let device = iphone(0xab);
    let handle = gateway.register(device.clone()).await.unwrap();
    assert_eq!(gateway.wake(&handle).await.unwrap(), Woken::Sent);

    let seen = receiver.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let push = &seen[0];
    assert_eq!(push.version, hyper::Version::HTTP_2);
    assert_eq!(push.method, "POST");
    assert_eq!(push.path, format!("/3/device/{}", device.token));
    assert_eq!(push.header("apns-topic"), Some(TOPIC));
    assert_eq!(push.header("apns-push-type"), Some("background"));
    assert_eq!(push.header("apns-priority"), Some("5"));
    assert_eq!(push.header("content-type"), Some("application/json"));
    assert_eq!(push.json(), json!({ "aps": { "content-available": 1 } }));
    assert_eq!(push.body, br#"{"aps":{"content-available":1}}"#);

    let bearer = push
        .header("authorization")
        .expect("an authorization header");
    let jwt = split_jwt(bearer.strip_prefix("bearer ").expect("bearer <JWT>"));
    assert_eq!(jwt.header, json!({ "alg": "ES256", "kid": KEY_ID }));
    assert_eq!(jwt.claims["iss"], TEAM);
    let iat = jwt.claims["iat"].as_u64().expect("a numeric iat");
    assert!(iat.abs_diff(now()) < 120, "iat {iat} is not now");
    assert_eq!(jwt.claims.as_object().unwrap().len(), 2, "{}", jwt.claims);
    assert_eq!(jwt.signature.len(), 64, "ES256 is r || s");
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &public)
        .verify(jwt.input.as_bytes(), &jwt.signature)
        .expect("the provider token verifies with the team's key");

    // Within the window nothing more is sent; the wake carries nothing of any message.
    for _ in 0..5 {
        assert_eq!(gateway.wake(&handle).await.unwrap(), Woken::Coalesced);
    }
    assert_eq!(receiver.seen().len(), 1);
}

#[tokio::test]
async fn the_provider_token_is_reused_across_wakes_and_devices() {
    let receiver = Receiver::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = apns_config(dir.path(), &receiver);
    let config = PushConfig {
        coalesce: Duration::from_secs(1),
        ..config
    };
    let gateway = sled_gateway(dir.path(), &config, receiver.client());
    let first = gateway.register(iphone(1)).await.unwrap();
    let second = gateway.register(iphone(2)).await.unwrap();
    assert_eq!(gateway.wake(&first).await.unwrap(), Woken::Sent);
    assert_eq!(gateway.wake(&second).await.unwrap(), Woken::Sent);
    // Past the (one second) window the same handle is woken again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(gateway.wake(&first).await.unwrap(), Woken::Sent);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 3);
    let tokens: Vec<&str> = seen
        .iter()
        .map(|s| s.header("authorization").unwrap())
        .collect();
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "one provider token for every push within the hour: {tokens:?}"
    );
}

#[tokio::test]
async fn a_410_unregistered_drops_the_handle() {
    let receiver = Receiver::start(None).await;
    receiver.script([Answer::json(
        410,
        json!({ "reason": "Unregistered", "timestamp": 1 }),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = apns_config(dir.path(), &receiver);
    let gateway = sled_gateway(dir.path(), &config, receiver.client());
    let metrics = agent::Metrics::default();
    gateway.register_metrics(&metrics);
    let handle = gateway.register(iphone(3)).await.unwrap();
    assert_eq!(gateway.wake(&handle).await.unwrap(), Woken::Dropped);
    let again = gateway.wake(&handle).await.unwrap_err();
    assert!(matches!(again, PushError::UnknownHandle), "{again}");
    assert_eq!(
        again.to_string(),
        "no device is registered under this wake handle"
    );
    assert_eq!(receiver.seen().len(), 1);
    assert!(
        metrics
            .render()
            .contains(r#"lanyard_push_wakes_total{platform="apns",outcome="dropped"} 1"#),
        "{}",
        metrics.render()
    );
}

#[tokio::test]
async fn a_503_is_retried_after_its_retry_after_then_sent() {
    let receiver = Receiver::start(None).await;
    receiver.script([
        Answer::json(503, json!({ "reason": "ServiceUnavailable" })).header("retry-after", "1"),
        Answer::json(429, json!({ "reason": "TooManyRequests" })),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = apns_config(dir.path(), &receiver);
    let gateway = sled_gateway(dir.path(), &config, receiver.client());
    let metrics = agent::Metrics::default();
    gateway.register_metrics(&metrics);
    let handle = gateway.register(iphone(4)).await.unwrap();
    // The first attempt failed transiently: the rest happen in the background.
    assert_eq!(gateway.wake(&handle).await.unwrap(), Woken::Sent);
    let seen = receiver.wait_for("/3/device/", 3).await;
    assert!(seen.iter().all(|s| s.body == seen[0].body));
    let sent = r#"lanyard_push_wakes_total{platform="apns",outcome="sent"} 1"#;
    for _ in 0..3000 {
        if metrics.render().contains(sent) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rendered = metrics.render();
    assert!(rendered.contains(sent), "{rendered}");
    assert!(
        rendered.contains(r#"lanyard_push_wakes_total{platform="apns",outcome="retried"} 2"#),
        "{rendered}"
    );
    // Still registered, and coalesced for the window.
    assert_eq!(gateway.wake(&handle).await.unwrap(), Woken::Coalesced);
    assert_eq!(receiver.seen().len(), 3);
}

#[tokio::test]
async fn a_refusal_that_a_retry_does_not_fix_is_reported_with_its_reason() {
    let receiver = Receiver::start(None).await;
    receiver.script([Answer::json(400, json!({ "reason": "BadDeviceToken" }))]);
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = apns_config(dir.path(), &receiver);
    let gateway = sled_gateway(dir.path(), &config, receiver.client());
    let handle = gateway.register(iphone(5)).await.unwrap();
    let refused = gateway.wake(&handle).await.unwrap_err();
    assert_eq!(
        refused.to_string(),
        "apns refused the push: HTTP 400 (BadDeviceToken)"
    );
    assert_eq!(refused.public(), "apns refused the push");
    assert_eq!(receiver.seen().len(), 1, "a 400 is not retried");
}

#[tokio::test]
async fn what_is_not_configured_is_refused_by_name_and_nothing_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let client = lanyard_protocol::net::HttpClient::strict().unwrap();
    let gateway = sled_gateway(dir.path(), &PushConfig::default(), client.clone());
    for (platform, token) in [
        (Platform::Apns, "ab".repeat(32)),
        (Platform::Fcm, "fcm-token".to_string()),
        (
            Platform::Webhook,
            "https://hooks.example.com/wake".to_string(),
        ),
    ] {
        let refused = gateway
            .register(Device { platform, token })
            .await
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            format!("push through {platform} is not configured on this gateway")
        );
        assert_eq!(
            refused.public(),
            format!("push through {platform} is not available here")
        );
    }

    // APNs half configured, or with a key file that is not a key: refused at start, by name.
    let path = dir.path().join("AuthKey.p8");
    std::fs::write(
        &path,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let half = PushConfig {
        apns_key_file: Some(path.clone()),
        ..PushConfig::default()
    };
    let store =
        agent::push::SledPushStore::open(&dir.path().join("other"), Duration::ZERO).unwrap();
    let refused = agent::push::LocalPushGateway::new(
        &half,
        agent::push::PushBackend::Sled(store),
        &[1; 32],
        client.clone(),
    )
    .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "apns credentials: LANYARD_APNS_KEY_ID must be set with LANYARD_APNS_KEY_FILE"
    );
    let bad_key = PushConfig {
        apns_key_id: Some(KEY_ID.into()),
        apns_team_id: Some(TEAM.into()),
        apns_topic: Some(TOPIC.into()),
        ..half
    };
    let store =
        agent::push::SledPushStore::open(&dir.path().join("third"), Duration::ZERO).unwrap();
    let refused = agent::push::LocalPushGateway::new(
        &bad_key,
        agent::push::PushBackend::Sled(store),
        &[1; 32],
        client,
    )
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("AuthKey.p8") && refused.contains("not a PKCS#8 P-256 key"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_token_not_of_apns_form_is_refused_and_nothing_is_stored() {
    let receiver = Receiver::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = apns_config(dir.path(), &receiver);
    let store = agent::push::SledPushStore::open(&dir.path().join("push"), Duration::ZERO).unwrap();
    let gateway = agent::push::LocalPushGateway::new(
        &config,
        agent::push::PushBackend::Sled(store),
        &[9; 32],
        receiver.client(),
    )
    .unwrap();
    let refused = gateway
        .register(Device {
            platform: Platform::Apns,
            token: "../../etc/passwd?x=1".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "the apns token is refused: an APNs device token is an even number of hex digits"
    );
    drop(gateway);
    let store = agent::push::SledPushStore::open(&dir.path().join("push"), Duration::ZERO).unwrap();
    use agent::push::PushStore as _;
    assert_eq!(store.count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_receiver_whose_certificate_is_not_trusted_is_not_pushed_to() {
    let receiver = Receiver::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = apns_config(dir.path(), &receiver);
    let config = PushConfig {
        attempts: 1,
        ..config
    };
    // Loopback allowed, but the test CA not among the roots: verification stays on.
    let untrusting =
        lanyard_protocol::net::HttpClient::new(lanyard_protocol::net::NetPolicy::loopback())
            .unwrap();
    let gateway = sled_gateway(dir.path(), &config, untrusting);
    let handle = gateway.register(iphone(6)).await.unwrap();
    let failed = gateway.wake(&handle).await.unwrap_err();
    assert_eq!(
        failed.to_string(),
        "apns could not be reached: it could not be reached"
    );
    assert!(receiver.seen().is_empty());
}

#[tokio::test]
async fn a_fresh_provider_token_called_expired_is_not_renewed_within_20_minutes() {
    let receiver = Receiver::start(None).await;
    receiver.script([Answer::json(
        403,
        json!({ "reason": "ExpiredProviderToken" }),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = apns_config(dir.path(), &receiver);
    let gateway = sled_gateway(dir.path(), &config, receiver.client());
    let handle = gateway.register(iphone(7)).await.unwrap();
    let refused = gateway.wake(&handle).await.unwrap_err();
    assert_eq!(
        refused.to_string(),
        "apns refused the push: HTTP 403 (ExpiredProviderToken)"
    );
    assert_eq!(
        receiver.seen().len(),
        1,
        "no second attempt with a renewed token"
    );
}

#[tokio::test]
async fn a_wallet_registered_for_apns_is_woken_by_a_background_push_and_syncs() {
    use lanyard_test_support as support;
    use wallet_core::PushService;
    let receiver = Receiver::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let (push, _) = apns_config(dir.path(), &receiver);
    let data = dir.path().join("agent");
    let ca = receiver.ca_der.clone();
    let agent = support::Agent::start_with(Default::default(), {
        let data = data.clone();
        move |config| {
            config.data_dir = data;
            config.push = push;
            // The APNs stand-in's certificate comes from a test CA.
            config.net.extra_roots.push(ca);
        }
    })
    .await;
    let acme = support::OrgClient::create(&agent, "Acme Gym").await;
    let template = acme.template("Membership").await;
    let customer = acme.onboard_member(&template).await;
    let (wallet, _events, _wallet_dir) = support::wallet();
    wallet
        .accept_invitation(customer["invitation"]["url"].as_str().unwrap())
        .await
        .unwrap();
    // The phone drained what waited, then went to sleep registered for APNs.
    wallet.sync().await.unwrap();
    let offer = wallet.offers().unwrap().remove(0);
    let token = "c0".repeat(32);
    wallet
        .register_push(PushService::Apns, &token)
        .await
        .expect("the mediator registers the device with APNs configured");

    // Accepting the offer makes the issuer send the credential while no socket is open: the
    // mediator asks APNs to wake the device.
    wallet.accept_offer(&offer.id).await.unwrap();
    let pushes = receiver.wait_for("/3/device/", 1).await;
    assert_eq!(pushes[0].path, format!("/3/device/{token}"));
    assert_eq!(pushes[0].header("apns-push-type"), Some("background"));
    assert_eq!(pushes[0].header("apns-topic"), Some(TOPIC));
    assert_eq!(pushes[0].json(), json!({"aps": {"content-available": 1}}));
    // Woken, the phone syncs and holds the credential.
    wallet.sync().await.unwrap();
    assert_eq!(wallet.credentials().unwrap().len(), 1);

    // The device token is nowhere in the agent's files, in any form the gateway was given.
    drop(agent);
    let mut all = Vec::new();
    for entry in walk(&data) {
        all.extend(std::fs::read(entry).unwrap_or_default());
    }
    assert!(!all.is_empty());
    assert!(
        !all.windows(token.len()).any(|w| w == token.as_bytes()),
        "the raw token is stored"
    );
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

//! The gateway run alone and `RemotePushGateway` over its HTTP API: register, wake (coalesced
//! the second time), unregister, refusals carried back by kind; the bearer secret and body
//! caps enforced; `gateway_from_config` choosing remote, local or nothing; and the
//! `agent push-gateway` binary refusing to start without its secret.

mod push_common;

use std::sync::Arc;

use agent::admin::AdminToken;
use agent::config::Config;
use agent::push::{
    gateway_from_config, serve_gateway, Device, Platform, PushConfig, PushError, PushGateway,
    RemotePushGateway, RunningGateway, Woken,
};
use lanyard_protocol::net::{HttpClient, NetPolicy};
use push_common::{quick, Receiver};

const SECRET: &str = "push-gateway-secret-0123456789-abcdefghij";

/// A gateway alone in `dir`, webhooks on, calling out through `receiver`'s trust.
async fn gateway(dir: &std::path::Path, receiver: &Receiver) -> RunningGateway {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        net: NetPolicy {
            allow_loopback: true,
            extra_roots: vec![receiver.ca_der.clone()],
            ..NetPolicy::default()
        },
        push: PushConfig {
            webhooks: true,
            gateway_secret: Some(SECRET.into()),
            ..quick()
        },
        ..Config::default()
    };
    serve_gateway(config).await.unwrap()
}

fn remote(running: &RunningGateway, secret: &str) -> RemotePushGateway {
    RemotePushGateway::new(
        &format!("http://{}", running.addr),
        AdminToken::new(secret, "test").unwrap(),
        HttpClient::new(NetPolicy::loopback()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn the_remote_gateway_registers_wakes_and_unregisters_over_http() {
    let receiver = Receiver::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let running = gateway(dir.path(), &receiver).await;
    let gateway = remote(&running, SECRET);
    let handle = gateway
        .register(Device {
            platform: Platform::Webhook,
            token: format!("{}/wake-me", receiver.url()),
        })
        .await
        .unwrap();
    assert_eq!(gateway.wake(&handle).await.unwrap(), Woken::Sent);
    assert_eq!(gateway.wake(&handle).await.unwrap(), Woken::Coalesced);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/wake-me");
    assert_eq!(seen[0].body, br#"{"type":"lanyard.wake"}"#);

    // Refusals come back as what they are.
    let refused = gateway
        .register(Device {
            platform: Platform::Apns,
            token: "ab".repeat(32),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(refused, PushError::NotConfigured(Platform::Apns)),
        "{refused}"
    );
    let refused = gateway
        .register(Device {
            platform: Platform::Webhook,
            token: "ftp://example.com/".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "the push gateway answered 400: the webhook token is refused: a webhook is an https:// URL"
    );
    assert_eq!(
        refused.public(),
        "the webhook token is refused: a webhook is an https:// URL"
    );

    gateway.unregister(&handle).await.unwrap();
    gateway.unregister(&handle).await.unwrap();
    assert!(matches!(
        gateway.wake(&handle).await,
        Err(PushError::UnknownHandle)
    ));
    // The wakes were counted where the gateway runs.
    let metrics = reqwest::Client::new()
        .get(format!("http://{}/metrics", running.addr))
        .bearer_auth(SECRET)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"lanyard_push_wakes_total{platform="webhook",outcome="sent"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"lanyard_push_wakes_total{platform="webhook",outcome="coalesced"} 1"#),
        "{metrics}"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn the_api_wants_its_secret_and_small_well_formed_bodies() {
    let receiver = Receiver::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let running = gateway(dir.path(), &receiver).await;
    let wrong = remote(&running, "another-secret-of-enough-length-0123456789");
    let refused = wrong
        .register(Device {
            platform: Platform::Webhook,
            token: format!("{}/x", receiver.url()),
        })
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "the push gateway answered 401: the push gateway's bearer secret is missing or wrong"
    );
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", running.addr);
    let status = http
        .post(url("/push/v1/wake"))
        .json(&serde_json::json!({ "handle": "x" }))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401, "no secret");
    let answer = http
        .post(url("/push/v1/register"))
        .bearer_auth(SECRET)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"platform":"webhook","token":"{}"}}"#,
            "a".repeat(5000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 413, "a body over 4 KiB");
    let answer = http
        .post(url("/push/v1/wake"))
        .bearer_auth(SECRET)
        .json(&serde_json::json!({ "handle": "not-a-handle" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "bad_handle");
    assert_eq!(
        body["message"],
        "not a wake handle (32 bytes as 43 base64url characters)"
    );
    let answer = http
        .post(url("/push/v1/register"))
        .bearer_auth(SECRET)
        .json(&serde_json::json!({ "platform": "sms", "token": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"], "bad_device");
    assert_eq!(
        body["message"],
        "\"sms\" is not a push platform (apns, fcm or webhook)"
    );
    assert!(receiver.seen().is_empty());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn gateway_from_config_is_remote_local_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = agent::Metrics::default();
    let client = HttpClient::new(NetPolicy::loopback()).unwrap();
    let nothing = Config {
        data_dir: dir.path().to_path_buf(),
        ..Config::default()
    };
    assert!(
        gateway_from_config(&nothing, None, &[1; 32], client.clone(), &metrics)
            .unwrap()
            .is_none()
    );
    assert!(
        !dir.path().join("push").exists(),
        "nothing configured opens no store"
    );

    // A remote gateway: the wake goes through the gateway run alone.
    let receiver = Receiver::start(None).await;
    let gw_dir = tempfile::tempdir().unwrap();
    let running = gateway(gw_dir.path(), &receiver).await;
    let remote_config = Config {
        data_dir: dir.path().to_path_buf(),
        push: PushConfig {
            gateway_url: Some(format!("http://{}", running.addr)),
            gateway_secret: Some(SECRET.into()),
            ..PushConfig::default()
        },
        ..Config::default()
    };
    let remote: Arc<dyn PushGateway> =
        gateway_from_config(&remote_config, None, &[1; 32], client.clone(), &metrics)
            .unwrap()
            .unwrap();
    let handle = remote
        .register(Device {
            platform: Platform::Webhook,
            token: format!("{}/remote", receiver.url()),
        })
        .await
        .unwrap();
    assert_eq!(remote.wake(&handle).await.unwrap(), Woken::Sent);
    assert_eq!(receiver.seen().len(), 1);

    let local_config = Config {
        data_dir: dir.path().to_path_buf(),
        push: PushConfig {
            webhooks: true,
            ..PushConfig::default()
        },
        ..Config::default()
    };
    let local = gateway_from_config(&local_config, None, &[1; 32], client, &metrics)
        .unwrap()
        .unwrap();
    let refused = local
        .register(Device {
            platform: Platform::Fcm,
            token: "token".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(refused, PushError::NotConfigured(Platform::Fcm)));
    assert!(
        dir.path().join("push").exists(),
        "the local store is in the data folder"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn agent_push_gateway_refuses_to_start_without_its_secret_or_a_platform() {
    let dir = tempfile::tempdir().unwrap();
    let run = |vars: &[(&str, &str)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_agent"));
        command
            .arg("push-gateway")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LANYARD_DATA_DIR", dir.path())
            .env("LANYARD_LISTEN", "127.0.0.1:0");
        for (name, value) in vars {
            command.env(name, value);
        }
        command.output().unwrap()
    };
    let output = run(&[("LANYARD_PUSH_WEBHOOKS", "true")]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("agent push-gateway needs LANYARD_PUSH_GATEWAY_SECRET"),
        "{stderr}"
    );
    let output = run(&[("LANYARD_PUSH_GATEWAY_SECRET", SECRET)]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("agent push-gateway has no platform configured"),
        "{stderr}"
    );
    let output = run(&[
        ("LANYARD_PUSH_GATEWAY_SECRET", "short"),
        ("LANYARD_PUSH_WEBHOOKS", "true"),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("LANYARD_PUSH_GATEWAY_SECRET"), "{stderr}");
}

//! Webhook wakes (a POST of a fixed body to the registered https URL, 410 drops), coalescing
//! under many concurrent wakes, the outbound policy applied to webhook URLs, and what the
//! gateway leaves on disk: no token and no webhook URL anywhere in the sled files.

mod push_common;

use std::path::Path;
use std::sync::Arc;

use agent::push::{Device, Platform, PushConfig, PushError, PushGateway, Woken};
use push_common::{quick, sled_gateway, Answer, Receiver};

fn webhooks() -> PushConfig {
    PushConfig {
        webhooks: true,
        ..quick()
    }
}

#[tokio::test]
async fn a_webhook_wake_posts_a_fixed_body_and_a_410_drops_it() {
    let receiver = Receiver::start(None).await;
    receiver.script([Answer::status(204), Answer::status(410)]);
    let dir = tempfile::tempdir().unwrap();
    let gateway = sled_gateway(dir.path(), &webhooks(), receiver.client());
    let kept = gateway
        .register(Device {
            platform: Platform::Webhook,
            token: format!("{}/hooks/one?device=7", receiver.url()),
        })
        .await
        .unwrap();
    let gone = gateway
        .register(Device {
            platform: Platform::Webhook,
            token: format!("{}/hooks/two", receiver.url()),
        })
        .await
        .unwrap();
    assert_eq!(gateway.wake(&kept).await.unwrap(), Woken::Sent);
    assert_eq!(gateway.wake(&gone).await.unwrap(), Woken::Dropped);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/hooks/one?device=7");
    assert_eq!(seen[1].path, "/hooks/two");
    for request in &seen {
        assert_eq!(request.body, br#"{"type":"lanyard.wake"}"#);
        assert_eq!(request.header("content-type"), Some("application/json"));
    }
    assert!(matches!(
        gateway.wake(&gone).await,
        Err(PushError::UnknownHandle)
    ));
    // Unregistering is idempotent, and the handle is then unknown.
    gateway.unregister(&kept).await.unwrap();
    gateway.unregister(&kept).await.unwrap();
    assert!(matches!(
        gateway.wake(&kept).await,
        Err(PushError::UnknownHandle)
    ));
}

#[tokio::test]
async fn many_concurrent_wakes_send_one_push() {
    let receiver = Receiver::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let gateway = Arc::new(sled_gateway(dir.path(), &webhooks(), receiver.client()));
    let handle = gateway
        .register(Device {
            platform: Platform::Webhook,
            token: format!("{}/hook", receiver.url()),
        })
        .await
        .unwrap();
    push_common::wake_at_once_and_expect_one_sent(&[gateway], handle, 50).await;
    assert_eq!(receiver.seen().len(), 1);
}

#[tokio::test]
async fn a_webhook_the_outbound_policy_refuses_is_not_registered() {
    let dir = tempfile::tempdir().unwrap();
    let strict = lanyard_protocol::net::HttpClient::strict().unwrap();
    let gateway = sled_gateway(dir.path(), &webhooks(), strict);
    for (url, said) in [
        (
            "https://10.1.2.3/hook",
            "the webhook URL is refused: 10.1.2.3 resolves to 10.1.2.3, a private address, which is not allowed",
        ),
        (
            "http://hooks.example.com/hook",
            "the webhook URL is refused: http://hooks.example.com/hook uses plain http://, which is allowed only to loopback hosts in development; use https://",
        ),
        (
            "https://169.254.169.254/latest/meta-data",
            "the webhook URL is refused: 169.254.169.254 resolves to 169.254.169.254, a cloud metadata address, which is not allowed",
        ),
    ] {
        let refused = gateway
            .register(Device {
                platform: Platform::Webhook,
                token: url.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.to_string(), said);
        assert!(!refused.public().contains("10.1.2.3"), "{}", refused.public());
    }
}

/// Every file under `dir`, read whole.
fn every_file(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn no_token_and_no_webhook_url_is_on_disk() {
    let receiver = Receiver::start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let token = "f00dfeed".repeat(8);
    let hook = format!("{}/secret-hook-path-4711", receiver.url());
    let (pem, _) = push_common::apns_key();
    let key = dir.path().join("AuthKey.p8");
    std::fs::write(&key, pem).unwrap();
    let config = PushConfig {
        apns_key_file: Some(key),
        apns_key_id: Some("KEY".into()),
        apns_team_id: Some("TEAM".into()),
        apns_topic: Some("com.example.lanyard".into()),
        apns_url: receiver.url(),
        ..webhooks()
    };
    let store_dir = dir.path().join("store");
    std::fs::create_dir(&store_dir).unwrap();
    let gateway = sled_gateway(&store_dir, &config, receiver.client());
    let apns = gateway
        .register(Device {
            platform: Platform::Apns,
            token: token.clone(),
        })
        .await
        .unwrap();
    let webhook = gateway
        .register(Device {
            platform: Platform::Webhook,
            token: hook.clone(),
        })
        .await
        .unwrap();
    assert_eq!(gateway.wake(&apns).await.unwrap(), Woken::Sent);
    assert_eq!(gateway.wake(&webhook).await.unwrap(), Woken::Sent);
    drop(gateway);
    let files = every_file(&store_dir);
    assert!(!files.is_empty());
    // The handles are there (they are the keys), so the files were read whole.
    let all: Vec<u8> = files.iter().flat_map(|(_, bytes)| bytes.clone()).collect();
    assert!(
        contains(&all, apns.to_string().as_bytes()),
        "the store holds the handle"
    );
    for (path, bytes) in &files {
        for secret in [
            token.as_bytes(),
            hook.as_bytes(),
            b"secret-hook-path-4711",
            b"f00dfeed",
        ] {
            assert!(
                !contains(bytes, secret),
                "{} holds {:?}",
                path.display(),
                String::from_utf8_lossy(secret)
            );
        }
    }
}

//! The gateway against a local OAuth2 token endpoint and an FCM HTTP v1 stand-in: the
//! JWT-bearer assertion is RS256 under the service account's (test) key with `iss`, `scope`,
//! `aud` = the key file's `token_uri`, `iat` and `exp`; the access token it gets is cached
//! and sent as the bearer of a data-only message (no `notification`, android priority high);
//! `UNREGISTERED` drops the handle.

mod push_common;

use std::sync::Arc;

use agent::push::{Device, Platform, PushConfig, PushError, PushGateway, Woken};
use push_common::{
    now, quick, rsa_public, sled_gateway, split_jwt, Answer, Receiver, Seen, RSA_KEY,
};
use serde_json::json;

const PROJECT: &str = "lanyard-test";
const EMAIL: &str = "push@lanyard-test.iam.gserviceaccount.com";
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// The token endpoint: a valid-looking form gets a token; anything else a 400.
fn token_endpoint() -> push_common::Responder {
    Arc::new(|seen: &Seen| {
        if !seen.path.starts_with("/token") {
            return None;
        }
        let form = String::from_utf8_lossy(&seen.body);
        Some(
            if form.starts_with(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=",
            ) {
                Answer::json(
                    200,
                    json!({ "access_token": "ya29.test-access-token", "expires_in": 3599, "token_type": "Bearer" }),
                )
            } else {
                Answer::json(400, json!({ "error": "invalid_grant" }))
            },
        )
    })
}

/// A service-account key file naming `receiver`'s token endpoint, and FCM there too.
fn fcm_config(dir: &std::path::Path, receiver: &Receiver) -> (PushConfig, String) {
    let token_uri = format!("{}/token", receiver.url());
    let account = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "0123456789abcdef",
        "private_key": RSA_KEY,
        "client_email": EMAIL,
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
    });
    let path = dir.join("service-account.json");
    std::fs::write(&path, account.to_string()).unwrap();
    let config = PushConfig {
        fcm_service_account: Some(path),
        fcm_url: receiver.url(),
        ..quick()
    };
    (config, token_uri)
}

fn android(n: u8) -> Device {
    Device {
        platform: Platform::Fcm,
        token: format!("fcm-registration-token:{n}-APA91b"),
    }
}

#[tokio::test]
async fn a_wake_is_a_data_only_message_under_an_oauth2_token_from_a_signed_assertion() {
    let receiver = Receiver::start(Some(token_endpoint())).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, token_uri) = fcm_config(dir.path(), &receiver);
    let gateway = sled_gateway(dir.path(), &config, receiver.client());
    let first = gateway.register(android(1)).await.unwrap();
    let second = gateway.register(android(2)).await.unwrap();
    assert_eq!(gateway.wake(&first).await.unwrap(), Woken::Sent);
    assert_eq!(gateway.wake(&second).await.unwrap(), Woken::Sent);

    // One token exchange for both (cached).
    let exchanges = receiver.wait_for("/token", 1).await;
    assert_eq!(exchanges.len(), 1, "{exchanges:?}");
    let exchange = &exchanges[0];
    assert_eq!(exchange.method, "POST");
    assert_eq!(
        exchange.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let form = String::from_utf8(exchange.body.clone()).unwrap();
    let assertion = form
        .strip_prefix("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=")
        .expect("the JWT-bearer grant");
    let jwt = split_jwt(assertion);
    assert_eq!(
        jwt.header,
        json!({ "alg": "RS256", "typ": "JWT", "kid": "0123456789abcdef" })
    );
    assert_eq!(jwt.claims["iss"], EMAIL);
    assert_eq!(jwt.claims["scope"], SCOPE);
    assert_eq!(jwt.claims["aud"], token_uri.as_str());
    let iat = jwt.claims["iat"].as_u64().unwrap();
    assert!(iat.abs_diff(now()) < 120, "iat {iat}");
    assert_eq!(jwt.claims["exp"].as_u64().unwrap(), iat + 3600);
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        rsa_public(),
    )
    .verify(jwt.input.as_bytes(), &jwt.signature)
    .expect("the assertion verifies with the service account's key");

    let sends = receiver
        .wait_for(&format!("/v1/projects/{PROJECT}/messages:send"), 2)
        .await;
    for (send, device) in sends.iter().zip([android(1), android(2)]) {
        assert_eq!(send.method, "POST");
        assert_eq!(
            send.header("authorization"),
            Some("Bearer ya29.test-access-token")
        );
        assert_eq!(send.header("content-type"), Some("application/json"));
        let body = send.json();
        assert_eq!(
            body,
            json!({
                "message": {
                    "token": device.token,
                    "data": { "lanyard": "wake" },
                    "android": { "priority": "high" },
                }
            })
        );
        assert!(body["message"].get("notification").is_none());
    }
    assert_eq!(gateway.wake(&first).await.unwrap(), Woken::Coalesced);
}

#[tokio::test]
async fn unregistered_drops_the_handle() {
    let receiver = Receiver::start(Some(token_endpoint())).await;
    receiver.script([Answer::json(
        404,
        json!({ "error": {
            "code": 404,
            "message": "Requested entity was not found.",
            "status": "NOT_FOUND",
            "details": [{
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": "UNREGISTERED"
            }]
        }}),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = fcm_config(dir.path(), &receiver);
    let gateway = sled_gateway(dir.path(), &config, receiver.client());
    let handle = gateway.register(android(3)).await.unwrap();
    assert_eq!(gateway.wake(&handle).await.unwrap(), Woken::Dropped);
    assert!(matches!(
        gateway.wake(&handle).await,
        Err(PushError::UnknownHandle)
    ));
}

#[tokio::test]
async fn unregistered_in_a_400_drops_the_handle_too_and_a_plain_400_does_not() {
    let receiver = Receiver::start(Some(token_endpoint())).await;
    receiver.script([
        Answer::json(
            400,
            json!({ "error": { "code": 400, "status": "INVALID_ARGUMENT", "details": [{
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": "UNREGISTERED" }] } }),
        ),
        Answer::json(
            400,
            json!({ "error": { "code": 400, "status": "INVALID_ARGUMENT", "details": [{
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": "INVALID_ARGUMENT" }] } }),
        ),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = fcm_config(dir.path(), &receiver);
    let gateway = sled_gateway(dir.path(), &config, receiver.client());
    let gone = gateway.register(android(4)).await.unwrap();
    let kept = gateway.register(android(5)).await.unwrap();
    assert_eq!(gateway.wake(&gone).await.unwrap(), Woken::Dropped);
    let refused = gateway.wake(&kept).await.unwrap_err();
    assert_eq!(
        refused.to_string(),
        "fcm refused the push: HTTP 400 (INVALID_ARGUMENT)"
    );
    // Refused, not gone: the handle stays (coalesced within the window).
    assert_eq!(gateway.wake(&kept).await.unwrap(), Woken::Coalesced);
}

#[tokio::test]
async fn a_token_endpoint_refusal_is_named_and_not_taken_for_a_gone_token() {
    let receiver = Receiver::start(Some(Arc::new(|seen: &Seen| {
        seen.path
            .starts_with("/token")
            .then(|| Answer::json(400, json!({ "error": "invalid_grant" })))
    })))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = fcm_config(dir.path(), &receiver);
    let config = PushConfig {
        attempts: 1,
        ..config
    };
    let gateway = sled_gateway(dir.path(), &config, receiver.client());
    let handle = gateway.register(android(6)).await.unwrap();
    let refused = gateway.wake(&handle).await.unwrap_err();
    assert_eq!(
        refused.to_string(),
        "fcm credentials: the token endpoint answered 400 invalid_grant"
    );
    assert_eq!(refused.public(), "the push gateway failed; try again later");
    assert!(receiver.seen().iter().all(|s| s.path.starts_with("/token")));
}

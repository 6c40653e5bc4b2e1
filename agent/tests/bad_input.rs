//! A table of malformed and hostile inputs to the mediator's endpoint: each is answered with a
//! clear 4xx and a problem report naming what was wrong, and nothing is stored.

use lanyard_test_support as support;

use lanyard_protocol::didcomm::{Attachment, Message, ENCRYPTED_TYP};
use lanyard_protocol::protocols::routing::FORWARD as FORWARD_TYPE;
use serde_json::{json, Value};
use support::{Agent, Issuer, Phone};

/// A forward message anoncrypted to the mediator, with a body and attachments of our choosing.
async fn forward_with(
    issuer: &Issuer,
    agent: &Agent,
    body: Value,
    attachments: Vec<Attachment>,
) -> String {
    let mut message = Message::new(FORWARD_TYPE, body);
    message.attachments = attachments;
    issuer
        .didcomm
        .pack_anoncrypt(&message, &[&agent.did])
        .await
        .unwrap()
}

/// POSTs `{}` to `path` exactly as written; returns the status code.
async fn raw_post(agent: &Agent, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = agent.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ENCRYPTED_TYP}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

#[tokio::test]
async fn malformed_inputs_get_clear_4xx_and_change_nothing() {
    let agent = Agent::start(Default::default()).await;
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;
    let issuer = Issuer::new();
    let stranger = Phone::new(&agent.did);

    let real = issuer.pack_for(&agent, &phone.did, 1).await;
    let tampered = {
        let mut v: Value = serde_json::from_str(&real).unwrap();
        let ciphertext = v["ciphertext"].as_str().unwrap().to_string();
        let flipped = if ciphertext.starts_with('A') {
            "B"
        } else {
            "A"
        };
        v["ciphertext"] = json!(format!("{flipped}{}", &ciphertext[1..]));
        v.to_string()
    };
    let for_someone_else = issuer
        .didcomm
        .pack_anoncrypt(
            &Message::new("https://example.org/x", json!({})),
            &[&issuer.did],
        )
        .await
        .unwrap();
    let p384 = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/vectors/didcomm-spec/C3-anoncrypt-ecdh-es-a256kw-p384-a256cbc-hs512.json"
    ))
    .unwrap();
    let inner = serde_json::from_str::<Value>(&real).unwrap();
    let expired = {
        let message = Message::new(lanyard_protocol::protocols::trust_ping::PING, json!({}))
            .from(phone.did.clone())
            .to([agent.did.clone()])
            .expires_time(1);
        phone
            .didcomm
            .pack_authcrypt(&message, &phone.did, &[&agent.did], false)
            .await
            .unwrap()
    };
    let anon_request = {
        let message = Message::new(support::mediator::MEDIATE_REQUEST, json!({}))
            .from(phone.did.clone())
            .to([agent.did.clone()]);
        phone
            .didcomm
            .pack_anoncrypt(&message, &[&agent.did])
            .await
            .unwrap()
    };
    let signed_request = {
        let message = Message::new(support::mediator::MEDIATE_REQUEST, json!({}))
            .from(phone.did.clone())
            .to([agent.did.clone()]);
        phone
            .didcomm
            .pack_signed(&message, &phone.did)
            .await
            .unwrap()
    };
    let plaintext = Message::new(support::mediator::MEDIATE_REQUEST, json!({}))
        .from(phone.did.clone())
        .to_json();

    // (what, content type, body, expected status, words the problem must contain)
    let mut cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "not JSON",
            ENCRYPTED_TYP,
            "not json".into(),
            400,
            "not a JSON object",
        ),
        (
            "empty body",
            ENCRYPTED_TYP,
            String::new(),
            400,
            "not a JSON object",
        ),
        (
            "a JSON array",
            ENCRYPTED_TYP,
            "[1,2,3]".into(),
            400,
            "not a JSON object",
        ),
        (
            "a JSON string",
            ENCRYPTED_TYP,
            "\"hi\"".into(),
            400,
            "not a JSON object",
        ),
        (
            "an empty object",
            ENCRYPTED_TYP,
            "{}".into(),
            400,
            "plaintext message",
        ),
        (
            "text/plain",
            "text/plain",
            real.clone(),
            415,
            "Content-Type",
        ),
        (
            "application/json",
            "application/json",
            real.clone(),
            415,
            "Content-Type",
        ),
        ("no content type", "", real.clone(), 415, "Content-Type"),
        (
            "plaintext media type",
            "application/didcomm-plain+json",
            plaintext.clone(),
            415,
            "Content-Type",
        ),
        ("tampered JWE", ENCRYPTED_TYP, tampered, 400, "altered"),
        (
            "JWE for someone else",
            ENCRYPTED_TYP,
            for_someone_else,
            400,
            "not addressed to any key",
        ),
        ("JWE on P-384", ENCRYPTED_TYP, p384, 400, "P-384"),
        (
            "JWE missing its tag",
            ENCRYPTED_TYP,
            {
                let mut v = inner.clone();
                v.as_object_mut().unwrap().remove("tag");
                v.to_string()
            },
            400,
            "tag",
        ),
        (
            "JWE with no recipients",
            ENCRYPTED_TYP,
            {
                let mut v = inner.clone();
                v["recipients"] = json!([]);
                v.to_string()
            },
            400,
            "recipients",
        ),
        ("expired message", ENCRYPTED_TYP, expired, 400, "expired"),
        (
            "anoncrypted mediate-request",
            ENCRYPTED_TYP,
            anon_request,
            401,
            "authcrypted",
        ),
        (
            "signed mediate-request",
            "application/didcomm-signed+json",
            signed_request,
            401,
            "authcrypted",
        ),
        (
            "oversized",
            ENCRYPTED_TYP,
            "x".repeat(2 * 1024 * 1024),
            413,
            "",
        ),
    ];
    cases.push((
        "forward for an unregistered DID",
        ENCRYPTED_TYP,
        issuer.pack_for(&agent, &stranger.did, 2).await,
        404,
        "no mediated client",
    ));
    cases.push((
        "forward without attachment",
        ENCRYPTED_TYP,
        forward_with(&issuer, &agent, json!({"next": phone.did}), vec![]).await,
        400,
        "exactly one attachment",
    ));
    cases.push((
        "forward without next",
        ENCRYPTED_TYP,
        forward_with(
            &issuer,
            &agent,
            json!({}),
            vec![Attachment::json(json!({}))],
        )
        .await,
        400,
        "no next",
    ));
    cases.push((
        "forward with two attachments",
        ENCRYPTED_TYP,
        forward_with(
            &issuer,
            &agent,
            json!({"next": phone.did}),
            vec![
                Attachment::json(json!({"a": 1})),
                Attachment::json(json!({"b": 2})),
            ],
        )
        .await,
        400,
        "exactly one attachment",
    ));
    cases.push((
        "forward carrying a non-object",
        ENCRYPTED_TYP,
        forward_with(
            &issuer,
            &agent,
            json!({"next": phone.did}),
            vec![Attachment::json(json!([1]))],
        )
        .await,
        400,
        "not a JSON object",
    ));

    for (what, content_type, body, expected, words) in cases {
        let mut request = reqwest::Client::new().post(format!("{}/didcomm", agent.url));
        if !content_type.is_empty() {
            request = request.header("content-type", content_type);
        }
        let response = request.body(body).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(status, expected, "{what}: got {status} {text}");
        assert!(
            text.contains(words),
            "{what}: the answer {text:?} does not say {words:?}"
        );
        if expected != 413 {
            let problem: Value = serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{what}: not a problem report: {text}"));
            assert_eq!(
                problem["type"],
                lanyard_protocol::protocols::report_problem::PROBLEM_REPORT
            );
        }
    }

    // Pickup requests that are wrong in themselves.
    let pickups: Vec<(&str, &str, Value, u16)> = vec![
        (
            "limit 0",
            support::mediator::DELIVERY_REQUEST,
            json!({"limit": 0}),
            400,
        ),
        (
            "negative limit",
            support::mediator::DELIVERY_REQUEST,
            json!({"limit": -3}),
            400,
        ),
        (
            "limit as text",
            support::mediator::DELIVERY_REQUEST,
            json!({"limit": "5"}),
            400,
        ),
        (
            "limit over the maximum",
            support::mediator::DELIVERY_REQUEST,
            json!({"limit": 100000}),
            400,
        ),
        (
            "no limit",
            support::mediator::DELIVERY_REQUEST,
            json!({}),
            400,
        ),
        (
            "someone else's queue",
            support::mediator::STATUS_REQUEST,
            json!({"recipient_did": stranger.did}),
            400,
        ),
        (
            "messages-received without ids",
            support::mediator::MESSAGES_RECEIVED,
            json!({}),
            400,
        ),
        (
            "message ids that are not strings",
            support::mediator::MESSAGES_RECEIVED,
            json!({"message_id_list": [1, 2]}),
            400,
        ),
        (
            "recipient-update of a non-DID",
            support::mediator::RECIPIENT_UPDATE,
            json!({"updates": [{"recipient_did": "mailto:x", "action": "add"}]}),
            400,
        ),
        (
            "recipient-update with an unknown action",
            support::mediator::RECIPIENT_UPDATE,
            json!({"updates": [{"recipient_did": phone.did, "action": "steal"}]}),
            400,
        ),
        (
            "recipient-update without updates",
            support::mediator::RECIPIENT_UPDATE,
            json!({}),
            400,
        ),
    ];
    for (what, type_, body, expected) in pickups {
        let response = phone.send(&agent, type_, body).await;
        assert_eq!(response.status().as_u16(), expected, "{what}");
    }
    assert_eq!(
        stranger
            .send(
                &agent,
                support::mediator::DELIVERY_REQUEST,
                json!({"limit": 1})
            )
            .await
            .status(),
        403,
        "pickup without mediation"
    );

    // Paths that are not the endpoint, sent raw (an HTTP client would normalise them).
    let client = reqwest::Client::new();
    for path in [
        "/didcomm/extra",
        "/%2e%2e/didcomm",
        "/didcomm/../didcomm",
        "/didcomm%00",
        "//didcomm",
        "/DIDCOMM",
    ] {
        let status = raw_post(&agent, path).await;
        assert!(
            status == 404 || status == 405 || status == 400,
            "{path} gave {status}"
        );
    }
    assert_eq!(
        client
            .get(format!("{}/didcomm", agent.url))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );

    // Nothing was stored: no message waits, the stranger has no mediation, the registry holds
    // only the phone.
    assert_eq!(phone.waiting(&agent).await, 0);
    let query = phone
        .ask(&agent, support::mediator::RECIPIENT_QUERY, json!({}))
        .await;
    assert_eq!(
        query.message.body["dids"],
        json!([{ "recipient_did": phone.did }])
    );
    assert_eq!(
        stranger
            .send(&agent, support::mediator::RECIPIENT_QUERY, json!({}))
            .await
            .status(),
        403
    );
}

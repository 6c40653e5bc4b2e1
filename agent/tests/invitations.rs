//! Invitations: created through the admin API, served at a short URL as JSON, an HTML page and
//! QR images whose PNG an independent decoder (`rqrr`) reads back to the URL; deep links; the
//! `.well-known` files; expiry and single use.

mod support;

use serde_json::{json, Value};
use support::{create_invitation, decode_qr, fetch_invitation, Agent, Phone, ADMIN_TOKEN};
use wallet_core::encoding::b64u_decode;

#[tokio::test]
async fn an_invitation_is_served_as_json_page_qr_and_deep_link() {
    let agent = Agent::start(Default::default()).await;
    let created = create_invitation(
        &agent,
        json!({"goal_code": "connect", "goal": "Get your membership card", "label": "Acme Gym"}),
    )
    .await;
    let url = created["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/i/", agent.url)), "{url}");
    let client = reqwest::Client::new();

    // Wallets ask for JSON.
    let invitation = fetch_invitation(url).await;
    assert_eq!(
        invitation["type"],
        "https://didcomm.org/out-of-band/2.0/invitation"
    );
    assert_eq!(invitation["from"], agent.did);
    assert_eq!(invitation["body"]["goal_code"], "connect");
    assert_eq!(invitation["body"]["accept"], json!(["didcomm/v2"]));

    // The _oob URL and the deep link carry the same invitation.
    for link in [&created["oobUrl"], &created["deepLink"]] {
        let link = link.as_str().unwrap();
        let encoded = link.split("_oob=").nth(1).unwrap();
        let decoded: Value = serde_json::from_slice(&b64u_decode(encoded).unwrap()).unwrap();
        assert_eq!(decoded, invitation, "{link}");
    }
    assert!(created["deepLink"]
        .as_str()
        .unwrap()
        .starts_with("lanyard://oob?_oob="));

    // People get a page with the QR code and the button into the app.
    let page = client.get(url).send().await.unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    assert!(html.contains("Acme Gym invites you to connect"));
    assert!(html.contains("Get your membership card"));
    assert!(html.contains("<svg"));
    assert!(html.contains("href=\"lanyard://oob?_oob="));

    // The QR images; the PNG decodes back to the short URL.
    let png = client.get(format!("{url}/qr.png")).send().await.unwrap();
    assert_eq!(png.headers()["content-type"], "image/png");
    assert_eq!(decode_qr(&png.bytes().await.unwrap()), url);
    let svg = client.get(format!("{url}/qr.svg")).send().await.unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().starts_with("<?xml"));
}

#[tokio::test]
async fn admin_api_wants_its_token_and_valid_requests() {
    let agent = Agent::start(Default::default()).await;
    let client = reqwest::Client::new();
    let endpoint = format!("{}/admin/invitations", agent.url);
    for token in [None, Some("wrong-token-wrong-token")] {
        let mut request = client.post(&endpoint).json(&json!({}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.unwrap().status(), 401);
    }
    for (body, words) in [
        (json!({"from": "not-a-did"}), "not a DID"),
        (json!({"expires_time": 1}), "in the past"),
        (json!({"attachments": [1]}), "JSON message"),
        (json!({"single_use": "yes"}), "invalid type"),
    ] {
        let response = client
            .post(&endpoint)
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let text = response.text().await.unwrap();
        assert!(text.contains(words), "{body}: {text}");
    }
}

#[tokio::test]
async fn unknown_expired_and_used_codes_say_so() {
    let agent = Agent::start(Default::default()).await;
    let client = reqwest::Client::new();
    for code in ["AAAAAAAAAAAA", "..%2F..%2Fetc", "short"] {
        let response = client
            .get(format!("{}/i/{code}", agent.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "{code}");
        assert!(response
            .text()
            .await
            .unwrap()
            .contains("no invitation has the code"));
    }

    let soon = wallet_core::didcomm::now() + 1;
    let expiring = create_invitation(&agent, json!({ "expires_time": soon })).await;
    let url = expiring["url"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let response = loop {
        let response = client.get(url).send().await.unwrap();
        if response.status() != 200 || std::time::Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(response.status(), 410);
    let text = response.text().await.unwrap();
    assert!(text.contains("expired at"), "{text}");
    assert!(text.contains(&agent::invitations::rfc3339(soon)), "{text}");
    assert_eq!(
        client
            .get(format!("{url}/qr.png"))
            .send()
            .await
            .unwrap()
            .status(),
        410
    );

    // A single-use invitation of the mediator is spent by the first message answering it.
    let single = create_invitation(&agent, json!({ "single_use": true })).await;
    let url = single["url"].as_str().unwrap();
    let id = single["invitation"]["id"].as_str().unwrap().to_string();
    assert_eq!(client.get(url).send().await.unwrap().status(), 200);
    let phone = Phone::new(&agent.did);
    let mut ping = wallet_core::didcomm::Message::new(
        "https://didcomm.org/trust-ping/2.0/ping",
        json!({"response_requested": false}),
    )
    .from(phone.did.clone())
    .to([agent.did.clone()])
    .pthid(id);
    ping.extra.insert("return_route".into(), json!("all"));
    let packed = phone
        .didcomm
        .pack_authcrypt(&ping, &phone.did, &[&agent.did], false)
        .await
        .unwrap();
    assert_eq!(
        agent
            .post(wallet_core::didcomm::ENCRYPTED_TYP, packed)
            .await
            .status(),
        202
    );
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 410);
    assert!(response.text().await.unwrap().contains("already used at"));
    // A multi-use invitation is not spent.
    let multi = create_invitation(&agent, json!({})).await;
    assert_eq!(
        client
            .get(multi["url"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn well_known_files_let_the_apps_open_invite_links() {
    let agent = Agent::start(Default::default()).await;
    let client = reqwest::Client::new();
    let aasa: Value = client
        .get(format!(
            "{}/.well-known/apple-app-site-association",
            agent.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        aasa["applinks"]["details"][0]["appIDs"],
        json!(["TEAM123456.app.lanyard.wallet"])
    );
    assert_eq!(aasa["applinks"]["details"][0]["components"][0]["/"], "/i/*");
    let links: Value = client
        .get(format!("{}/.well-known/assetlinks.json", agent.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(links[0]["target"]["package_name"], "app.lanyard.wallet");
    assert_eq!(
        links[0]["target"]["sha256_cert_fingerprints"],
        json!(["AB:CD:EF"])
    );
}

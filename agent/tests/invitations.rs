//! Invitations: created through the admin API, served at a short URL as JSON, an HTML page and
//! QR images whose PNG an independent decoder (`rqrr`) reads back to the URL; deep links; the
//! `.well-known` files; expiry and single use.

use lanyard_test_support as support;

use lanyard_protocol::encoding::b64u_decode;
use serde_json::{json, Value};
use support::{
    create_invitation, decode_qr, fetch_invitation, Agent, OrgClient, Phone, ADMIN_TOKEN,
};

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
        lanyard_protocol::protocols::out_of_band::INVITATION
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

/// A new phone answers the mediator's invitation `id` (a trust ping in its thread), which
/// spends a single-use one; the HTTP status of the answer.
async fn answer_invitation(agent: &Agent, id: String) -> u16 {
    let phone = Phone::new(&agent.did);
    let mut ping = lanyard_protocol::didcomm::Message::new(
        lanyard_protocol::protocols::trust_ping::PING,
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
    agent
        .post(lanyard_protocol::didcomm::ENCRYPTED_TYP, packed)
        .await
        .status()
        .as_u16()
}

#[tokio::test]
async fn unknown_expired_and_used_codes_say_so() {
    let agent = Agent::start(Default::default()).await;
    // A wallet's client: it asks for JSON (a browser gets a page; see below).
    let client = reqwest::Client::builder()
        .default_headers(
            [(
                reqwest::header::ACCEPT,
                reqwest::header::HeaderValue::from_static("application/json"),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
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

    let soon = lanyard_protocol::didcomm::now() + 1;
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
    assert_eq!(answer_invitation(&agent, id).await, 202);
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

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36";
const DESKTOP: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";

/// A browser's GET: status, content type and body.
async fn open_in_browser(url: &str, user_agent: &str) -> (u16, String, String) {
    let response = reqwest::Client::new()
        .get(url)
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .header("user-agent", user_agent)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    (status, content_type, response.text().await.unwrap())
}

#[tokio::test]
async fn a_spent_expired_or_unknown_invitation_is_a_page_for_people_and_json_for_clients() {
    let agent = Agent::start(Default::default()).await;
    let client = reqwest::Client::new();

    // Unknown: a page that says so and what to do.
    let unknown = format!("{}/i/AAAAAAAAAAAA", agent.url);
    let (status, content_type, html) = open_in_browser(&unknown, DESKTOP).await;
    assert_eq!(status, 404);
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(
        html.contains("<h1>This invitation link does not work</h1>"),
        "{html}"
    );
    assert!(
        html.contains("Check that the whole link was copied"),
        "{html}"
    );
    // A path trick is not echoed into the page.
    let (status, _, html) =
        open_in_browser(&format!("{}/i/%3Cscript%3E", agent.url), DESKTOP).await;
    assert_eq!(status, 404);
    assert!(!html.contains("<script>"), "{html}");
    // Clients that ask for JSON get the error as JSON.
    let response = client
        .get(&unknown)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_invitation");

    // Used: spent by the mediator's first answer.
    let single =
        create_invitation(&agent, json!({ "single_use": true, "label": "Acme Gym" })).await;
    let url = single["url"].as_str().unwrap();
    let id = single["invitation"]["id"].as_str().unwrap().to_string();
    assert_eq!(answer_invitation(&agent, id).await, 202);
    let (status, content_type, html) = open_in_browser(url, IPHONE).await;
    assert_eq!(status, 410);
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert!(
        html.contains("<h1>This invitation was already used</h1>"),
        "{html}"
    );
    assert!(html.contains("Ask Acme Gym for a new invitation"), "{html}");
    let response = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 410);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invitation_used");

    // Expired: the page names the time it expired.
    let soon = lanyard_protocol::didcomm::now() + 1;
    let expiring = create_invitation(&agent, json!({ "expires_time": soon })).await;
    let url = expiring["url"].as_str().unwrap();
    let (status, _, html) = loop {
        let seen = open_in_browser(url, DESKTOP).await;
        if seen.0 != 200 {
            break seen;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(status, 410);
    assert!(
        html.contains("<h1>This invitation has expired</h1>"),
        "{html}"
    );
    assert!(html.contains(&agent::invitations::rfc3339(soon)), "{html}");
    assert!(
        html.contains("Ask the organisation that sent it for a new invitation"),
        "{html}"
    );
}

#[tokio::test]
async fn a_verification_request_page_says_who_asks_to_see_what() {
    let agent = Agent::start(Default::default()).await;
    let org = OrgClient::create(&agent, "<script>alert(1)</script> & \"Sons\"").await;
    let mut request = support::seed_template_request();
    request["customFields"] = json!(["skillLevel"]);
    request["descriptions"] = json!(["Skill level"]);
    let created = org.call("POST", support::TEMPLATES, Some(request)).await;
    let template = created.body["data"]["templateId"]
        .as_str()
        .unwrap()
        .to_string();
    let verification = org
        .call(
            "POST",
            "/core/api/v1/programmatic/verification",
            Some(
                json!({ "templateId": template, "requiredFields": ["skillLevel", "holderFullName"],
                         "purpose": "Entry to <the> gym" }),
            ),
        )
        .await;
    assert_eq!(verification.status, 201, "{}", verification.body);
    let url = verification.body["data"]["invitation"]["url"]
        .as_str()
        .unwrap();
    let (status, _, html) = open_in_browser(url, DESKTOP).await;
    assert_eq!(status, 200, "{html}");
    assert!(!html.contains("invites you to connect"), "{html}");
    assert!(!html.contains("<script>alert"), "{html}");
    let who = "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;Sons&quot;";
    assert!(
        html.contains(&format!("<h1>{who} asks to see your credential</h1>")),
        "{html}"
    );
    assert!(html.contains("Entry to &lt;the&gt; gym"), "{html}");
    assert!(
        html.contains("<li>Skill level</li>") && html.contains("<li>Holder full name</li>"),
        "the fields it asks for: {html}"
    );
    assert!(html.contains(&format!("<title>{who} asks to see your credential</title>")));
}

#[tokio::test]
async fn on_a_phone_the_page_leads_with_the_open_in_lanyard_button() {
    let agent = Agent::start(Default::default()).await;
    let created = create_invitation(&agent, json!({"label": "Acme Gym"})).await;
    let url = created["url"].as_str().unwrap();
    for user_agent in [IPHONE, ANDROID] {
        let (status, _, html) = open_in_browser(url, user_agent).await;
        assert_eq!(status, 200);
        let button = html.find("class=\"open\"").expect("the button");
        let qr = html.find("<svg").expect("the QR code, for another device");
        assert!(button < qr, "the button comes first on a phone: {html}");
        assert!(html.contains("class=\"phone\""), "{html}");
    }
    let (_, _, html) = open_in_browser(url, DESKTOP).await;
    let button = html.find("class=\"open\"").expect("the button");
    let qr = html.find("<svg").expect("the QR code");
    assert!(qr < button, "the QR code comes first on a desktop: {html}");
}

//! Onboarding customers as the console document describes it: an invitation by email (a real
//! SMTP exchange with an independent server, aiosmtpd, whose received QR image decodes back to
//! the invite URL) or by SMS (an HTTP gateway on loopback), or handed back to the caller when
//! no transport is configured; statuses `Initiated` → `Invited`, listed and filtered.

use lanyard_test_support as support;

use serde_json::{json, Value};
use support::onboarding::onboard;
use support::{decode_qr, fetch_invitation, Agent, OrgClient, SmsReceiver, SmtpSink};

const CUSTOMERS: &str = "/core/api/v1/programmatic/customer";

fn email_customer(name: &str, email: &str) -> Value {
    json!({ "name": name, "medium": "email", "email": email })
}

#[tokio::test]
async fn an_email_invitation_arrives_over_smtp_with_a_qr_code_of_the_invite_url() {
    let sink = SmtpSink::start();
    let smtp = sink.url();
    let agent = Agent::start_with(Default::default(), |config| {
        config.smtp_url = Some(smtp);
        config.smtp_from = "Acme via Lanyard <invites@acme.test>".into();
    })
    .await;
    let acme = OrgClient::create(&agent, "Acme").await;

    let customer = &onboard(&acme, email_customer("Jane Doe", "jane@example.com")).await;
    assert_eq!(customer["status"], "Invited", "{customer}");
    assert_eq!(customer["deliveries"][0]["ok"], true);
    let url = customer["invitation"]["url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/i/", agent.url)), "{url}");

    let mail = sink.message(1).await;
    assert_eq!(mail["rcpt_tos"], json!(["jane@example.com"]));
    assert_eq!(mail["from"], "Acme via Lanyard <invites@acme.test>");
    assert_eq!(mail["subject"], "Acme invites you to connect");
    let text = mail["text"].as_str().unwrap();
    assert!(
        text.contains("Hello Jane Doe") && text.contains(url),
        "{text}"
    );
    assert!(mail["html"].as_str().unwrap().contains("cid:invite-qr"));
    let image = &mail["images"][0];
    assert_eq!(image["type"], "image/png");
    let png = std::fs::read(image["path"].as_str().unwrap()).unwrap();
    assert_eq!(
        decode_qr(&png),
        url,
        "the emailed QR code is the invite URL"
    );

    // The link is an OOB 2.0 invitation from the organisation's DIDComm DID.
    let invitation = fetch_invitation(url).await;
    assert_eq!(
        invitation["type"],
        lanyard_protocol::protocols::out_of_band::INVITATION
    );
    assert_eq!(invitation["from"], acme.didcomm_did.as_str());
    assert_eq!(invitation["label"], "Acme");
    assert_eq!(invitation["body"]["goal_code"], "issue-vc");
    assert_eq!(invitation["id"], customer["invitation"]["id"]);
}

#[tokio::test]
async fn a_custom_email_template_fills_its_placeholders() {
    let sink = SmtpSink::start();
    let smtp = sink.url();
    let agent = Agent::start_with(Default::default(), |config| config.smtp_url = Some(smtp)).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let mut request = email_customer("Ann", "ann@example.com");
    request["emailTemplate"] = json!({
        "subject": "{{customerName}}, your {{organizationName}} card",
        "body": "Dear {{customerName}},\n\nTap {{inviteUrl}} to get it."
    });
    let onboarded = acme.call("POST", CUSTOMERS, Some(request)).await;
    assert_eq!(onboarded.status, 201, "{}", onboarded.body);
    let url = onboarded.body["data"]["invitation"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let mail = sink.message(1).await;
    assert_eq!(mail["subject"], "Ann, your Acme card");
    assert_eq!(
        // Email lines end in CRLF on the wire.
        mail["text"]
            .as_str()
            .unwrap()
            .replace("\r\n", "\n")
            .trim_end(),
        format!("Dear Ann,\n\nTap {url} to get it.")
    );
}

#[tokio::test]
async fn an_sms_invitation_goes_to_the_gateway_with_the_label_and_link() {
    let gateway = SmsReceiver::start(202).await;
    let gateway_url = gateway.url.clone();
    let agent = Agent::start_with(Default::default(), |config| {
        config.sms_url = Some(gateway_url);
        config.sms_token = Some("gateway-secret".into());
    })
    .await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let onboarded = acme
        .call(
            "POST",
            CUSTOMERS,
            Some(json!({
                "name": "Bob",
                "medium": "sms",
                "phoneNumber": "+1 (415) 555-0123",
                "organizationLabel": "ACME"
            })),
        )
        .await;
    assert_eq!(onboarded.status, 201, "{}", onboarded.body);
    let customer = &onboarded.body["data"];
    assert_eq!(customer["status"], "Invited");
    assert_eq!(
        customer["phoneNumber"], "+14155550123",
        "kept in E.164 form"
    );
    let url = customer["invitation"]["url"].as_str().unwrap();
    let received = gateway.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let (auth, sms) = &received[0];
    assert_eq!(auth.as_deref(), Some("Bearer gateway-secret"));
    assert_eq!(sms["to"], "+14155550123");
    assert_eq!(sms["from"], "ACME");
    let body = sms["body"].as_str().unwrap();
    assert!(
        body.starts_with("ACME: Hi Bob") && body.ends_with(url),
        "{body}"
    );
}

#[tokio::test]
async fn without_a_transport_the_caller_gets_the_link_and_the_customer_stays_initiated() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let customer = onboard(&acme, email_customer("Jane", "jane@example.com")).await;
    assert_eq!(customer["status"], "Initiated");
    assert_eq!(customer["deliveries"], json!([]));
    let invitation = &customer["invitation"];
    let url = invitation["url"].as_str().unwrap();
    assert!(invitation["deepLink"]
        .as_str()
        .unwrap()
        .starts_with("lanyard://oob?_oob="));
    let png = reqwest::get(invitation["qrPng"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(decode_qr(&png), url);

    // Resending needs a transport, and says which.
    let id = customer["id"].as_str().unwrap();
    let resend = acme
        .call("POST", &format!("{CUSTOMERS}/{id}/invitation"), None)
        .await;
    assert_eq!(resend.status, 409);
    assert!(
        resend.message().contains("LANYARD_SMTP_URL"),
        "{}",
        resend.message()
    );
    let fetched = acme.call("GET", &format!("{CUSTOMERS}/{id}"), None).await;
    assert_eq!(fetched.body["data"]["status"], "Initiated");
    assert_eq!(fetched.body["data"]["invitation"]["url"], url);
}

#[tokio::test]
async fn a_failed_send_is_recorded_and_a_resend_invites() {
    // The relay is down at first: reserve a port with nothing listening on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let agent = Agent::start_with(Default::default(), |config| {
        config.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
    })
    .await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let customer = &onboard(&acme, email_customer("Jane", "jane@example.com")).await;
    assert_eq!(customer["status"], "Initiated");
    assert_eq!(customer["deliveries"][0]["ok"], false);
    assert!(
        customer["deliveries"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("SMTP"),
        "{customer}"
    );

    let sink = SmtpSink::start_on(Some(port));
    let id = customer["id"].as_str().unwrap();
    let resent = acme
        .call("POST", &format!("{CUSTOMERS}/{id}/invitation"), None)
        .await;
    assert_eq!(resent.status, 200, "{}", resent.body);
    assert_eq!(resent.body["data"]["status"], "Invited");
    assert_eq!(
        resent.body["data"]["deliveries"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        sink.message(1).await["rcpt_tos"],
        json!(["jane@example.com"])
    );
}

#[tokio::test]
async fn customers_are_listed_by_status_page_by_page() {
    let gateway = SmsReceiver::start(200).await;
    let gateway_url = gateway.url.clone();
    let agent = Agent::start_with(Default::default(), |config| {
        config.sms_url = Some(gateway_url)
    })
    .await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let globex = OrgClient::create(&agent, "Globex").await;
    for n in 0..3 {
        let by_sms = json!({"name": format!("S{n}"), "medium": "sms", "phoneNumber": "+447700900123", "organizationLabel": "Acme"});
        assert_eq!(acme.call("POST", CUSTOMERS, Some(by_sms)).await.status, 201);
        let by_email = email_customer(&format!("E{n}"), "e@example.com");
        assert_eq!(
            acme.call("POST", CUSTOMERS, Some(by_email)).await.status,
            201
        );
    }
    let list = |query: &'static str| {
        let acme = &acme;
        async move {
            acme.call("GET", &format!("{CUSTOMERS}{query}"), None)
                .await
                .body["data"]
                .clone()
        }
    };
    let all = list("").await;
    assert_eq!(all["totalItem"], 6);
    let invited = list("?status=Invited&pageSize=2").await;
    assert_eq!(
        (invited["totalItem"].as_u64(), invited["totalPage"].as_u64()),
        (Some(3), Some(2))
    );
    let names: Vec<&str> = invited["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["S0", "S1"]);
    let initiated = list("?status=initiated").await;
    assert_eq!(initiated["totalItem"], 3, "email has no transport here");
    assert_eq!(list("?status=Onboarded").await["totalItem"], 0);
    assert_eq!(
        globex.call("GET", CUSTOMERS, None).await.body["data"]["totalItem"],
        0
    );
    let id = all["data"][0]["id"].as_str().unwrap();
    assert_eq!(
        globex
            .call("GET", &format!("{CUSTOMERS}/{id}"), None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn auto_issue_values_are_checked_against_the_template() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let template_id = support::onboarding::skill_template(&acme).await;

    let mut request = email_customer("Jane", "jane@example.com");
    request["autoIssue"] = json!({ "templateId": template_id, "values": { "holderFullName": "Jane Doe", "skill": "Rust" } });
    let onboarded = acme.call("POST", CUSTOMERS, Some(request.clone())).await;
    assert_eq!(onboarded.status, 201, "{}", onboarded.body);
    assert_eq!(
        onboarded.body["data"]["autoIssue"]["values"]["skill"],
        "Rust"
    );

    request["autoIssue"]["values"] = json!({ "colour": "blue" });
    let refused = acme.call("POST", CUSTOMERS, Some(request.clone())).await;
    assert_eq!(refused.status, 400);
    assert!(
        refused
            .message()
            .starts_with("autoIssue.values.colour is not a field"),
        "{}",
        refused.message()
    );
    request["autoIssue"]["templateId"] = json!("urn:template:lanyard:missing");
    let refused = acme.call("POST", CUSTOMERS, Some(request)).await;
    assert_eq!(refused.status, 404);
    assert!(
        refused.message().contains("autoIssue.templateId"),
        "{}",
        refused.message()
    );
    assert_eq!(
        acme.call("GET", CUSTOMERS, None).await.body["data"]["totalItem"],
        1,
        "only the good one"
    );
}

#[tokio::test]
async fn invitations_sent_are_rate_limited_per_organisation_and_over_it_nothing_is_stored() {
    let gateway = SmsReceiver::start(202).await;
    let gateway_url = gateway.url.clone();
    let agent = Agent::start_with(Default::default(), |config| {
        config.sms_url = Some(gateway_url);
        let sent = &mut config.issuer_limits.invitations_sent;
        sent.per_period = 0;
        sent.burst = 2;
    })
    .await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let globex = OrgClient::create(&agent, "Globex").await;
    let sms = |name: &str| json!({ "name": name, "medium": "sms", "phoneNumber": "+14155550123", "organizationLabel": "ACME" });
    for name in ["Ann", "Ben"] {
        let onboarded = acme.call("POST", CUSTOMERS, Some(sms(name))).await;
        assert_eq!(onboarded.status, 201, "{}", onboarded.body);
    }
    let refused = acme.call("POST", CUSTOMERS, Some(sms("Cal"))).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "rate_limited");
    let message = refused.message();
    assert!(
        message.contains("0 per hour (bursts of 2)")
            && message.contains("LANYARD_INVITATIONS_PER_HOUR")
            && message.contains("nothing was stored"),
        "{message}"
    );
    // Nothing of Cal's was kept, and no SMS went out for him.
    let listed = acme.call("GET", CUSTOMERS, None).await;
    let names: Vec<&str> = listed.body["data"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Ann", "Ben"]);
    assert_eq!(gateway.received.lock().unwrap().len(), 2);
    // A resend counts too.
    let ann = listed.body["data"]["data"][0]["id"].as_str().unwrap();
    let resent = acme
        .call("POST", &format!("{CUSTOMERS}/{ann}/invitation"), None)
        .await;
    assert_eq!(resent.status, 429, "{}", resent.body);
    assert_eq!(gateway.received.lock().unwrap().len(), 2);
    // The limit is the organisation's: another one sends.
    let other = globex.call("POST", CUSTOMERS, Some(sms("Dee"))).await;
    assert_eq!(other.status, 201, "{}", other.body);
    // Without a transport for the medium nothing is sent, so nothing is limited.
    let by_email = acme
        .call(
            "POST",
            CUSTOMERS,
            Some(email_customer("Eve", "eve@example.com")),
        )
        .await;
    assert_eq!(by_email.status, 201, "{}", by_email.body);
}

//! Callbacks and batch issuance: events reach the organisation's callback URL signed with
//! HMAC-SHA256 and are retried until the receiver takes them, every attempt visible; a batch
//! (JSON or CSV) onboards each good row and reports each bad one by what was wrong.

use lanyard_test_support as support;

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use support::onboarding::skill_template;
use support::{Agent, OrgClient, Phone, TEMPLATES};

const CUSTOMERS: &str = "/core/api/v1/programmatic/customer";
const CALLBACK: &str = "/core/api/v1/programmatic/callback";
const BATCH: &str = "/core/api/v1/programmatic/credential/batch";

/// What the receiver was sent: headers and body.
type Delivery = (HeaderMap, Vec<u8>);

/// A callback receiver on loopback that refuses the first `failures` deliveries.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Delivery>>>,
}

async fn receiver(failures: usize) -> Receiver {
    let received: Arc<Mutex<Vec<Delivery>>> = Default::default();
    let log = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let log = log.clone();
            async move {
                let mut log = log.lock().unwrap();
                log.push((headers, body.to_vec()));
                if log.len() <= failures {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, received }
}

#[tokio::test]
async fn events_are_signed_and_retried_until_taken() {
    let hook = receiver(1).await;
    let agent = Agent::start_with(Default::default(), |config| {
        config.callback_retry = std::time::Duration::from_millis(50);
    })
    .await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let set = acme
        .call("PUT", CALLBACK, Some(json!({ "url": hook.url })))
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let secret = set.body["data"]["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let again = acme
        .call("PUT", CALLBACK, Some(json!({ "url": hook.url })))
        .await;
    assert!(
        again.body["data"].get("secret").is_none(),
        "the secret is shown once"
    );

    // A customer connects: customer.onboarded.
    let onboarded = acme
        .call(
            "POST",
            CUSTOMERS,
            Some(json!({"name": "Jane", "medium": "email", "email": "jane@example.com"})),
        )
        .await;
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;
    phone
        .accept_invitation(
            onboarded.body["data"]["invitation"]["url"]
                .as_str()
                .unwrap(),
        )
        .await;

    let mut delivered = None;
    for _ in 0..100 {
        let events = acme.call("GET", &format!("{CALLBACK}/events"), None).await;
        let event = events.body["data"]["data"][0].clone();
        if event["delivered"] == true {
            delivered = Some(event);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let event = delivered.expect("the event is delivered within 5 s");
    assert_eq!(event["type"], "customer.onboarded");
    let attempts = event["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "refused once, then taken: {event}");
    assert_eq!(
        (
            attempts[0]["status"].as_u64(),
            attempts[1]["status"].as_u64()
        ),
        (Some(500), Some(204))
    );

    let received = hook.received.lock().unwrap().clone();
    let (headers, body) = received.last().unwrap();
    assert_eq!(headers["x-lanyard-event"], "customer.onboarded");
    let signature = headers["x-lanyard-signature"].to_str().unwrap();
    let (t, v1) = signature.split_once(',').unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        v1.strip_prefix("v1=").unwrap(),
        expected,
        "HMAC-SHA256 of t.body"
    );
    let payload: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(payload["data"]["customerId"], onboarded.body["data"]["id"]);
    assert_eq!(payload["data"]["connectionDid"], phone.did.as_str());
    assert_eq!(payload["organization"], acme.id.as_str());

    let bad = acme
        .call("PUT", CALLBACK, Some(json!({ "url": "not a url" })))
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.message().starts_with("url "), "{}", bad.message());
}

#[tokio::test]
async fn a_json_batch_onboards_the_good_rows_and_reports_the_bad() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let template = skill_template(&acme).await;
    let row = |name: &str, email: &str, skill: &str| {
        json!({ "name": name, "medium": "email", "email": email,
                "autoIssue": { "templateId": template, "values": { "skill": skill } } })
    };
    let batch = json!([
        row("Ann", "ann@example.com", "Rust"),
        row("Bob", "bob@@example.com", "Go"),
        row("Cat", "cat@example.com", "Zig"),
    ]);
    let report = acme.call("POST", BATCH, Some(batch)).await;
    assert_eq!(report.status, 200, "{}", report.body);
    let data = &report.body["data"];
    assert_eq!(
        (
            data["total"].as_u64(),
            data["succeeded"].as_u64(),
            data["failed"].as_u64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(data["rows"][1]["ok"], false);
    assert_eq!(data["rows"][1]["status"], 400);
    assert!(
        data["rows"][1]["error"]
            .as_str()
            .unwrap()
            .starts_with("email "),
        "{data}"
    );
    assert!(data["rows"][0]["invitation"]
        .as_str()
        .unwrap()
        .contains("/i/"));
    assert_eq!(
        acme.call("GET", CUSTOMERS, None).await.body["data"]["totalItem"],
        2
    );
}

#[tokio::test]
async fn a_csv_batch_reads_customer_columns_and_template_fields() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let template = skill_template(&acme).await;
    let csv = "name,medium,email,phoneNumber,organizationLabel,holderFullName,skill\n\
               Ann,email,ann@example.com,,,Ann Lee,Rust\n\
               Bob,sms,,+14155550123,ACME,Bob Ray,Go\n\
               Cat,fax,cat@example.com,,,Cat,Zig\n\
               Dan,email,dan@example.com\n\
               Eve,email,eve@example.com,,,Eve,Zig,extra\n\
               Fay,email,fay@example.com,,,Fay,\n";
    let response = reqwest::Client::new()
        .post(format!("{}{BATCH}?templateId={template}", agent.url))
        .header("x-api-key", &acme.key)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    let rows = report["data"]["rows"].as_array().unwrap();
    let outcome: Vec<bool> = rows.iter().map(|r| r["ok"].as_bool().unwrap()).collect();
    assert_eq!(outcome, [true, true, false, false, false, true], "{report}");
    assert!(rows[2]["error"].as_str().unwrap().contains("medium"));
    assert!(
        rows[3]["error"]
            .as_str()
            .unwrap()
            .contains("line 5 has 3 cells but the header has 7"),
        "{}",
        rows[3]
    );
    assert!(rows[4]["error"]
        .as_str()
        .unwrap()
        .contains("line 6 has 8 cells"));
    let customers = acme.call("GET", CUSTOMERS, None).await.body["data"]["data"].clone();
    let ann = &customers[0];
    assert_eq!(
        ann["autoIssue"]["values"],
        json!({ "holderFullName": "Ann Lee", "skill": "Rust" })
    );
    assert_eq!(customers[1]["phoneNumber"], "+14155550123");

    // A CSV needs its template, and a header that names the customer.
    let send = |query: String, body: &'static str| {
        let (url, key) = (agent.url.clone(), acme.key.clone());
        async move {
            let response = reqwest::Client::new()
                .post(format!("{url}{BATCH}{query}"))
                .header("x-api-key", key)
                .header("content-type", "text/csv")
                .body(body)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = send(String::new(), "name,medium\nA,email\n").await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("templateId"));
    let (status, body) = send(
        "?templateId=urn:template:none".into(),
        "name,medium\nA,email\n",
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let query = format!("?templateId={template}");
    let (status, body) = send(query.clone(), "fullname,medium\nA,email\n").await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("name "),
        "{body}"
    );
    let (status, _) = send(query, "name,medium\n").await;
    assert_eq!(status, 400, "no rows");
    assert_eq!(
        acme.call("GET", CUSTOMERS, None).await.body["data"]["totalItem"],
        3,
        "nothing more"
    );
}

/// A callback endpoint that accepts connections and never answers; counts them.
async fn hanging_endpoint() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(stream);
        }
    });
    (url, accepted)
}

/// Creates and deletes a template of `org`: one `template.deleted` event.
async fn template_deleted_event(org: &OrgClient) {
    let template = skill_template(org).await;
    let deleted = org
        .call("DELETE", &format!("{TEMPLATES}/{template}"), None)
        .await;
    assert!(deleted.status < 300, "{}", deleted.body);
}

async fn events_of(org: &OrgClient) -> Vec<Value> {
    org.call("GET", &format!("{CALLBACK}/events"), None)
        .await
        .body["data"]["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_hanging_endpoint_delays_only_its_own_organisation() {
    let agent = Agent::start_with(Default::default(), |config| {
        // Long enough that, were deliveries one queue, B would wait behind A's attempt.
        config.callback_timeout = std::time::Duration::from_secs(120);
        config.callback_retry = std::time::Duration::from_millis(50);
    })
    .await;
    let (dead_url, accepted) = hanging_endpoint().await;
    let live = receiver(0).await;
    let a = OrgClient::create(&agent, "A").await;
    let b = OrgClient::create(&agent, "B").await;
    for (org, url) in [(&a, &dead_url), (&b, &live.url)] {
        let set = org.call("PUT", CALLBACK, Some(json!({ "url": url }))).await;
        assert_eq!(set.status, 200, "{}", set.body);
    }

    // A's event first; its delivery hangs on the dead endpoint.
    template_deleted_event(&a).await;
    for _ in 0..200 {
        if accepted.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        accepted.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "A's delivery never started"
    );

    // B's event is delivered while A's attempt is still under way.
    template_deleted_event(&b).await;
    let mut delivered = false;
    for _ in 0..200 {
        if events_of(&b)
            .await
            .first()
            .is_some_and(|e| e["delivered"] == true)
        {
            delivered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(delivered, "B's event waited behind A's dead endpoint");
    assert_eq!(live.received.lock().unwrap().len(), 1);
    let a_events = events_of(&a).await;
    assert_eq!(
        a_events[0]["attempts"].as_array().map(Vec::len),
        Some(0),
        "A's first attempt should still be hanging: {a_events:?}"
    );
}

#[tokio::test]
async fn delivered_events_are_deleted_after_the_retention_period() {
    let agent = Agent::start_with(Default::default(), |config| {
        config.callback_retention = std::time::Duration::ZERO;
    })
    .await;
    let hook = receiver(0).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let set = acme
        .call("PUT", CALLBACK, Some(json!({ "url": hook.url })))
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    template_deleted_event(&acme).await;
    let mut left = Vec::new();
    for _ in 0..200 {
        left = events_of(&acme).await;
        if !hook.received.lock().unwrap().is_empty() && left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(
        hook.received.lock().unwrap().len(),
        1,
        "the event was delivered once"
    );
    assert!(
        left.is_empty(),
        "a delivered event outlived its retention: {left:?}"
    );

    // The default keeps them (seven days).
    let kept = Agent::start(Default::default()).await;
    let org = OrgClient::create(&kept, "Kept").await;
    let hook = receiver(0).await;
    org.call("PUT", CALLBACK, Some(json!({ "url": hook.url })))
        .await;
    template_deleted_event(&org).await;
    let mut events = Vec::new();
    for _ in 0..200 {
        events = events_of(&org).await;
        if events.first().is_some_and(|e| e["delivered"] == true) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["delivered"], true);
}

//! Verifications end to end: an organisation asks for a credential of its template; the
//! request travels as an OOB invitation (URL, QR) carrying a Present Proof 3.0 request; the
//! phone answers with a presentation signed by the credential's holder key; the verifier
//! records `verified` with the disclosed values, or `failed` with the reasons for a tampered
//! credential, a wrong challenge, a revoked credential, a missing field, and a replay.

use lanyard_test_support as support;

use lanyard_protocol::didcomm::Message;
use lanyard_protocol::protocols::present_proof::{self, PresentationRequest};
use serde_json::{json, Value};
use support::onboarding::{picked, Holder};
use support::{fetch_invitation, OrgClient, TEMPLATES};

const VERIFICATIONS: &str = "/core/api/v1/programmatic/verification";

/// An organisation, a template with `skill`, and a phone holding a credential from it
/// (holderFullName left out).
type Setup = Holder;

async fn setup() -> Setup {
    Holder::start_with(|_| {}).await
}

/// Creates a verification request; returns its id and the request the phone reads from the
/// invitation (as a scanner would get it from the QR code's URL).
async fn ask(setup: &Setup, body: Value) -> (String, PresentationRequest, String) {
    let created = setup.acme.call("POST", VERIFICATIONS, Some(body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let data = &created.body["data"];
    assert_eq!(data["state"], "pending");
    let invitation = fetch_invitation(data["invitation"]["url"].as_str().unwrap()).await;
    assert_eq!(invitation["body"]["goal_code"], "request-proof");
    let attached: Message =
        serde_json::from_value(invitation["attachments"][0]["data"]["json"].clone()).unwrap();
    let request = present_proof::parse_request(&attached).unwrap();
    assert_eq!(request.challenge, data["challenge"].as_str().unwrap());
    (
        data["id"].as_str().unwrap().to_string(),
        request,
        invitation["id"].as_str().unwrap().to_string(),
    )
}

/// The phone answers `request` with `message`; returns the verifier's ack and the record.
async fn answer(
    setup: &Setup,
    id: &str,
    invitation_id: &str,
    message: Message,
) -> (Message, Value) {
    let message = message.pthid(invitation_id);
    assert_eq!(
        setup.phone.tell(&setup.acme.didcomm_did, message).await,
        202
    );
    let acks = picked(&setup.phone, &setup.agent, present_proof::ACK).await;
    let record = setup
        .acme
        .call("GET", &format!("{VERIFICATIONS}/{id}"), None)
        .await
        .body["data"]
        .clone();
    (
        acks.into_iter().next().expect("the verifier answers"),
        record,
    )
}

#[tokio::test]
async fn a_presented_credential_is_verified_with_its_disclosed_values() {
    let setup = setup().await;
    let (id, request, invitation) = ask(
        &setup,
        json!({ "templateId": setup.template, "requiredFields": ["skill"] }),
    )
    .await;
    assert_eq!(request.template_id, setup.template);
    assert_eq!(request.required_fields, ["skill"]);
    assert_eq!(request.verifier_name, "Acme");
    let presentation = setup
        .phone
        .present(&request, std::slice::from_ref(&setup.credential), None);
    let (ack, record) = answer(&setup, &id, &invitation, presentation.clone()).await;
    assert_eq!(ack.body["status"], "OK", "{}", ack.body);
    assert_eq!(record["state"], "verified", "{record}");
    assert_eq!(record["disclosed"]["skill"], "Rust");
    assert_eq!(record["holderDid"], setup.phone.did.as_str());
    assert_eq!(record["issuerDid"], setup.acme.issuer_did.as_str());

    // The same request answered again (a replay) changes nothing.
    let mut replay = presentation;
    replay.id = uuid::Uuid::new_v4().to_string();
    setup.phone.tell(&setup.acme.didcomm_did, replay).await;
    let problems = picked(
        &setup.phone,
        &setup.agent,
        support::mediator::PROBLEM_REPORT,
    )
    .await;
    assert_eq!(problems[0].body["code"], "e.p.req.already-answered");
    let after = setup
        .acme
        .call("GET", &format!("{VERIFICATIONS}/{id}"), None)
        .await
        .body["data"]
        .clone();
    assert_eq!(after, record);
}

#[tokio::test]
async fn forged_misdirected_missing_and_revoked_presentations_fail_with_reasons() {
    let setup = setup().await;
    let body = json!({ "templateId": setup.template, "requiredFields": ["skill"] });

    let (id, request, invitation) = ask(&setup, body.clone()).await;
    let mut forged = setup.credential.clone();
    forged["credentialSubject"]["skill"] = json!("Everything");
    let (ack, record) = answer(
        &setup,
        &id,
        &invitation,
        setup.phone.present(&request, &[forged], None),
    )
    .await;
    assert_eq!(ack.body["status"], "FAIL");
    assert_eq!(record["state"], "failed");
    assert!(
        record["reasons"][0]
            .as_str()
            .unwrap()
            .contains("does not match the document"),
        "{record}"
    );

    // A presentation made for one request, replayed against another (a reused challenge).
    let (_, first_request, _) = ask(&setup, body.clone()).await;
    let (id, request, invitation) = ask(&setup, body.clone()).await;
    let mut reused = setup.phone.present(
        &first_request,
        std::slice::from_ref(&setup.credential),
        None,
    );
    reused.thid = Some(request.thid.clone());
    let (_, record) = answer(&setup, &id, &invitation, reused).await;
    assert_eq!(record["state"], "failed");
    let reasons = record["reasons"].to_string();
    assert!(reasons.contains("challenge does not match"), "{record}");

    let (id, request, invitation) = ask(&setup, body.clone()).await;
    let presentation = setup.phone.present(
        &request,
        std::slice::from_ref(&setup.credential),
        Some("another-challenge"),
    );
    let (_, record) = answer(&setup, &id, &invitation, presentation).await;
    assert!(
        record["reasons"][0]
            .as_str()
            .unwrap()
            .contains("challenge does not match"),
        "{record}"
    );

    let (id, request, invitation) = ask(
        &setup,
        json!({ "templateId": setup.template, "requiredFields": ["skill", "holderFullName"] }),
    )
    .await;
    let presentation = setup
        .phone
        .present(&request, std::slice::from_ref(&setup.credential), None);
    let (_, record) = answer(&setup, &id, &invitation, presentation).await;
    assert_eq!(record["state"], "failed");
    assert_eq!(
        record["reasons"],
        json!(["the required field holderFullName is missing"])
    );

    // Revoked: the template is deleted; the credential's status bit is set.
    let (id, request, invitation) = ask(&setup, body).await;
    setup
        .acme
        .call("DELETE", &format!("{TEMPLATES}/{}", setup.template), None)
        .await;
    let presentation = setup
        .phone
        .present(&request, std::slice::from_ref(&setup.credential), None);
    let (_, record) = answer(&setup, &id, &invitation, presentation).await;
    assert_eq!(record["state"], "failed");
    let reasons = record["reasons"].to_string();
    assert!(reasons.contains("revoked"), "{record}");
}

#[tokio::test]
async fn verification_requests_are_checked_by_name() {
    let setup = setup().await;
    for (body, status, names) in [
        (json!({}), 400, "templateId is required"),
        (
            json!({ "templateId": "urn:template:none" }),
            404,
            "templateId",
        ),
        (
            json!({ "templateId": setup.template, "requiredFields": ["colour"] }),
            400,
            "requiredFields[0]",
        ),
        (
            json!({ "templateId": setup.template, "requiredFields": "skill" }),
            400,
            "requiredFields",
        ),
        (
            json!({ "templateId": setup.template, "extra": 1 }),
            400,
            "extra",
        ),
    ] {
        let reply = setup.acme.call("POST", VERIFICATIONS, Some(body)).await;
        assert_eq!(reply.status, status, "{}", reply.body);
        assert!(reply.message().contains(names), "{}", reply.message());
    }
    let unknown = setup
        .acme
        .call("GET", &format!("{VERIFICATIONS}/nope"), None)
        .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn verifications_are_listed_in_pages_and_filtered_by_state() {
    let setup = setup().await;
    let body = json!({ "templateId": setup.template, "requiredFields": ["skill"] });
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(ask(&setup, body.clone()).await.0);
    }
    // The second one is answered and verified.
    let created = setup.acme.call("POST", VERIFICATIONS, Some(body)).await;
    let answered = created.body["data"]["id"].as_str().unwrap().to_string();
    let invitation =
        fetch_invitation(created.body["data"]["invitation"]["url"].as_str().unwrap()).await;
    let attached: Message =
        serde_json::from_value(invitation["attachments"][0]["data"]["json"].clone()).unwrap();
    let request = present_proof::parse_request(&attached).unwrap();
    let presentation = setup
        .phone
        .present(&request, std::slice::from_ref(&setup.credential), None);
    let (_, record) = answer(
        &setup,
        &answered,
        invitation["id"].as_str().unwrap(),
        presentation,
    )
    .await;
    assert_eq!(record["state"], "verified", "{record}");
    ids.push(answered.clone());

    let list = |query: &str| {
        let acme = &setup.acme;
        let path = format!("{VERIFICATIONS}{query}");
        async move { acme.call("GET", &path, None).await }
    };
    let all = list("").await;
    assert_eq!(all.status, 200, "{}", all.body);
    let page = &all.body["data"];
    assert_eq!(
        (
            page["page"].as_u64(),
            page["pageSize"].as_u64(),
            page["totalItem"].as_u64(),
            page["totalPage"].as_u64()
        ),
        (Some(1), Some(10), Some(4), Some(1)),
        "{page}"
    );
    let listed: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids, "every verification once, oldest first");
    assert_eq!(page["data"][3], record, "each as GET by id shows it");

    let pending = list("?state=pending&page=2&pageSize=2").await.body["data"].clone();
    assert_eq!(pending["totalItem"], 3, "{pending}");
    assert_eq!(pending["totalPage"], 2, "{pending}");
    assert_eq!(pending["data"].as_array().unwrap().len(), 1, "{pending}");
    assert_eq!(pending["data"][0]["id"], ids[2].as_str());
    let verified = list("?state=verified").await.body["data"].clone();
    assert_eq!(verified["totalItem"], 1, "{verified}");
    assert_eq!(verified["data"][0]["id"], answered.as_str());
    let failed = list("?state=failed").await.body["data"].clone();
    assert_eq!(
        (failed["totalItem"].as_u64(), &failed["data"]),
        (Some(0), &json!([]))
    );

    for (query, names) in [
        (
            "?state=done",
            "state must be pending, verified or failed, not \"done\"",
        ),
        ("?pageSize=101", "pageSize"),
        ("?page=0", "page"),
        ("?templateId=x", "templateId is not a query parameter"),
    ] {
        let reply = list(query).await;
        assert_eq!(reply.status, 400, "{query}: {}", reply.body);
        assert!(
            reply.message().contains(names),
            "{query}: {}",
            reply.message()
        );
    }

    // Another organisation sees none of them.
    let globex = OrgClient::create(&setup.agent, "Globex").await;
    let theirs = globex.call("GET", VERIFICATIONS, None).await;
    assert_eq!(theirs.status, 200, "{}", theirs.body);
    assert_eq!(theirs.body["data"]["totalItem"], 0);
}

fn set_issuer(credential: &mut Value, issuer: &str) {
    match &mut credential["issuer"] {
        Value::Object(object) => {
            object.insert("id".into(), json!(issuer));
        }
        other => *other = json!(issuer),
    }
}

#[tokio::test]
async fn a_presentation_naming_other_dids_makes_the_verifier_fetch_nothing() {
    let setup = setup().await;
    let (port, hits) = support::counting_server(axum::http::StatusCode::NOT_FOUND).await;
    let body = json!({ "templateId": setup.template, "requiredFields": ["skill"] });
    let rogue = format!("did:web:127.0.0.1%3A{port}:orgs:rogue");
    let not_the_issuer = |issuer: &str| {
        json!([format!(
            "the credential was issued by {issuer}, not the template's issuer {}",
            setup.acme.issuer_did
        )])
    };

    // Another issuer (a host the presenter chose, or the metadata address): refused on what
    // the credential says, before any proof is checked.
    for issuer in [rogue.clone(), "did:web:169.254.169.254".to_string()] {
        let (id, request, invitation) = ask(&setup, body.clone()).await;
        let mut foreign = setup.credential.clone();
        set_issuer(&mut foreign, &issuer);
        foreign["proof"]["verificationMethod"] = json!(format!("{issuer}#key-1"));
        let (ack, record) = answer(
            &setup,
            &id,
            &invitation,
            setup.phone.present(&request, &[foreign], None),
        )
        .await;
        assert_eq!(ack.body["status"], "FAIL");
        assert_eq!(record["state"], "failed");
        assert_eq!(record["reasons"], not_the_issuer(&issuer), "{record}");
    }

    // The template's issuer on the credential, its proof naming a key of another DID: only
    // the template's issuer is resolved.
    let (id, request, invitation) = ask(&setup, body.clone()).await;
    let mut misproved = setup.credential.clone();
    misproved["proof"]["verificationMethod"] = json!(format!("{rogue}#key-1"));
    let (_, record) = answer(
        &setup,
        &id,
        &invitation,
        setup.phone.present(&request, &[misproved], None),
    )
    .await;
    assert_eq!(record["state"], "failed");
    let reasons = record["reasons"].to_string();
    assert!(
        reasons.contains("only the template's issuer is resolved"),
        "{record}"
    );

    // A holder that is a did:web of the presenter's choosing.
    let (id, request, invitation) = ask(&setup, body).await;
    let ring = lanyard_protocol::keys::KeyRing::new();
    let key = ring.generate(lanyard_protocol::keys::KeyType::Ed25519);
    let vp = lanyard_protocol::credentials::vc::present(
        std::slice::from_ref(&setup.credential),
        &rogue,
        &ring,
        &key,
        &format!("{rogue}#key-1"),
        &request.challenge,
        &request.domain,
        lanyard_protocol::didcomm::now(),
    )
    .unwrap();
    let message = present_proof::presentation_message(&request, vp).pthid(&invitation);
    setup.phone.tell(&setup.acme.didcomm_did, message).await;
    picked(&setup.phone, &setup.agent, present_proof::ACK).await;
    let record = setup
        .acme
        .call("GET", &format!("{VERIFICATIONS}/{id}"), None)
        .await
        .body["data"]
        .clone();
    assert_ne!(record["state"], "verified", "{record}");

    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the verifier fetched a DID the presenter named"
    );
}

#[tokio::test]
async fn a_status_list_that_cannot_be_read_is_a_fixed_reason() {
    // Every status list is larger than this, so reading it fails.
    let setup = Holder::start_with(|config| config.status_list_max_bytes = 16).await;
    let (id, request, invitation) = ask(
        &setup,
        json!({ "templateId": setup.template, "requiredFields": ["skill"] }),
    )
    .await;
    let (ack, record) = answer(
        &setup,
        &id,
        &invitation,
        setup
            .phone
            .present(&request, std::slice::from_ref(&setup.credential), None),
    )
    .await;
    assert_eq!(record["state"], "failed");
    assert_eq!(
        record["reasons"],
        json!(["the status list is unavailable"]),
        "{record}"
    );
    let told = ack.body.to_string();
    assert!(
        !told.contains("127.0.0.1") && !told.contains("bytes"),
        "the presenter was told network details: {told}"
    );
}

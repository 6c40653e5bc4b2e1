//! Issuance end to end over real HTTP: an organisation onboards a customer with auto-issue, a
//! phone (wallet-core envelopes, routed through the agent's mediator) answers the invitation,
//! the customer becomes Onboarded, the offer waits in the mediator's queue, the phone requests,
//! receives the signed credential and acks; deleting the template sends a deletion notice and
//! revokes the credential.

use lanyard_test_support as support;

use lanyard_protocol::credentials::status_list::is_set;
use lanyard_protocol::credentials::vc;
use lanyard_protocol::did::HttpResolver;
use lanyard_protocol::didcomm::{now, Message};
use lanyard_protocol::net::{HttpClient, NetPolicy};
use lanyard_protocol::protocols::{deletion, issue_credential};
use serde_json::{json, Value};
use support::onboarding::{self, mediated_phone as phone, picked, receive_credential};
use support::{Agent, OrgClient, Phone, TEMPLATES};

const CUSTOMERS: &str = "/core/api/v1/programmatic/customer";
const CREDENTIALS: &str = "/core/api/v1/programmatic/credential";

/// A template with one custom field, `skill`; returns its id.
async fn skill_template(org: &OrgClient, limit: Option<u64>) -> String {
    onboarding::skill_template_with(org, |request| {
        request["templateName"] = json!("Skill Badge");
        request["numberOfCredentials"] = json!(limit);
    })
    .await
}

/// Onboards `name` by email (no transport: the link comes back) with auto-issue.
async fn onboard(org: &OrgClient, name: &str, template: &str, skill: &str) -> Value {
    let values = json!({ "holderFullName": name, "skill": skill });
    onboarding::onboard(
        org,
        onboarding::auto_issue_customer(name, "customer@example.com", template, values),
    )
    .await
}

#[tokio::test]
async fn an_auto_issued_credential_goes_from_offer_to_ack() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let template = skill_template(&acme, None).await;
    let customer = onboard(&acme, "Jane Doe", &template, "Rust").await;
    let customer_path = format!("{CUSTOMERS}/{}", customer["id"].as_str().unwrap());

    let phone = phone(&agent).await;
    let invitation = phone
        .accept_invitation(customer["invitation"]["url"].as_str().unwrap())
        .await;
    assert_eq!(invitation["from"], acme.didcomm_did.as_str());
    let fetched = acme.call("GET", &customer_path, None).await.body["data"].clone();
    assert_eq!(fetched["status"], "Onboarded");
    assert_eq!(fetched["connectionDid"], phone.did.as_str());

    // The ping's answer and the offer wait in the mediator for the phone.
    let messages = phone.pick_up(&agent, 100).await;
    let types: Vec<&str> = messages.iter().map(|m| m.type_.as_str()).collect();
    assert_eq!(
        types,
        [support::mediator::PING_RESPONSE, issue_credential::OFFER],
        "in the order they were sent"
    );
    assert!(messages
        .iter()
        .all(|m| m.from.as_deref() == Some(acme.didcomm_did.as_str())));
    let offer = issue_credential::parse_offer(&messages[1]).unwrap();
    assert!(
        offer.attributes.contains(&("skill".into(), "Rust".into())),
        "{:?}",
        offer.attributes
    );
    assert!(offer
        .attributes
        .contains(&("credentialIssuer".into(), "Dentity".into())));

    let status = phone
        .tell(&acme.didcomm_did, issue_credential::request_message(&offer))
        .await;
    assert_eq!(status, 202);
    let issued = picked(&phone, &agent, issue_credential::ISSUE).await;
    assert_eq!(issued.len(), 1);
    let (thid, credential) = issue_credential::parse_issue(&issued[0]).unwrap();
    assert_eq!(thid, offer.thid);
    assert_eq!(credential["issuer"]["id"], acme.issuer_did.as_str());
    assert_eq!(credential["credentialSubject"]["id"], phone.did.as_str());
    assert_eq!(credential["credentialSubject"]["skill"], "Rust");
    assert_eq!(credential["credentialSchema"]["id"], template.as_str());
    assert_eq!(credential["proof"]["cryptosuite"], "eddsa-jcs-2022");
    // The phone verifies it as a wallet would: the issuer's did:web fetched from the agent.
    let verified = vc::verify_credential(
        &credential,
        &HttpResolver::new(HttpClient::new(NetPolicy::loopback()).unwrap()),
        now(),
    )
    .await
    .expect("the credential verifies against the issuer's did:web document");
    assert_eq!(verified.issuer, acme.issuer_did);
    assert_eq!(verified.template_id.as_deref(), Some(template.as_str()));

    let exchanges = acme
        .call("GET", &format!("{CREDENTIALS}?templateId={template}"), None)
        .await;
    let exchange = &exchanges.body["data"]["data"][0];
    assert_eq!(exchange["state"], "Issued");
    assert_eq!(
        phone
            .tell(&acme.didcomm_did, issue_credential::ack_message(&thid))
            .await,
        202
    );
    let id = credential["id"].as_str().unwrap();
    let settled = acme.call("GET", &format!("{CREDENTIALS}/{id}"), None).await;
    assert_eq!(
        settled.body["data"]["state"], "Accepted",
        "{}",
        settled.body
    );
    let counted = acme
        .call("GET", &format!("{TEMPLATES}/{template}"), None)
        .await;
    assert_eq!(
        (
            counted.body["data"]["totalOffered"].as_u64(),
            counted.body["data"]["totalIssued"].as_u64()
        ),
        (Some(1), Some(1))
    );
}

#[tokio::test]
async fn deleting_the_template_tells_each_holder_which_credentials_go() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let template = skill_template(&acme, None).await;
    let other = skill_template(&acme, None).await;
    let customer = onboard(&acme, "Jane", &template, "Rust").await;
    let phone = phone(&agent).await;
    phone
        .accept_invitation(customer["invitation"]["url"].as_str().unwrap())
        .await;
    let first = receive_credential(&phone, &agent, &acme).await;
    // A second credential, from another template, on request.
    let offered = acme
        .call("POST", CREDENTIALS, Some(json!({ "customerId": customer["id"], "templateId": other, "values": { "skill": "Go" } })))
        .await;
    assert_eq!(offered.status, 201, "{}", offered.body);
    let second = receive_credential(&phone, &agent, &acme).await;

    let deleted = acme
        .call("DELETE", &format!("{TEMPLATES}/{template}"), None)
        .await;
    assert_eq!(deleted.body, json!({ "data": { "isSuccess": true } }));
    let notices = picked(&phone, &agent, deletion::NOTICE).await;
    assert_eq!(notices.len(), 1);
    let notice = deletion::parse_notice(&notices[0]).unwrap();
    assert_eq!(notice.template_id, template);
    assert_eq!(notice.credential_ids, [first["id"].as_str().unwrap()]);
    assert_ne!(
        notice.credential_ids[0],
        second["id"].as_str().unwrap(),
        "the other template's stays"
    );
    let revoked = acme
        .call(
            "GET",
            &format!("{CREDENTIALS}/{}", first["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(revoked.body["data"]["state"], "Revoked");
    let kept = acme
        .call(
            "GET",
            &format!("{CREDENTIALS}/{}", second["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(kept.body["data"]["state"], "Issued");

    // Verifiers see the revocation in the organisation's signed status list.
    let resolver = HttpResolver::new(HttpClient::new(NetPolicy::loopback()).unwrap());
    let entry = |vc: &Value| vc::read_credential(vc).unwrap().status.unwrap();
    let (first_entry, second_entry) = (entry(&first), entry(&second));
    assert_eq!(
        first_entry.list, second_entry.list,
        "one list per organisation"
    );
    let list: Value = reqwest::get(&first_entry.list)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let read = vc::verify_credential(&list, &resolver, now())
        .await
        .expect("the list is signed by the issuer");
    assert_eq!(read.issuer, acme.issuer_did);
    assert!(
        is_set(&first_entry, &list).unwrap(),
        "the deleted template's credential is revoked"
    );
    assert!(
        !is_set(&second_entry, &list).unwrap(),
        "the other one is not"
    );
}

#[tokio::test]
async fn wallets_that_did_not_connect_or_ask_out_of_turn_get_problem_reports() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let template = skill_template(&acme, Some(1)).await;
    let jane = onboard(&acme, "Jane", &template, "Rust").await;
    let bob = onboard(&acme, "Bob", &template, "Go").await;

    // A stranger without an invitation.
    let stranger = phone(&agent).await;
    let hello = Message::new(support::mediator::PING, json!({}));
    assert_eq!(stranger.tell(&acme.didcomm_did, hello).await, 202);
    let problems = picked(&stranger, &agent, support::mediator::PROBLEM_REPORT).await;
    assert_eq!(problems[0].body["code"], "e.p.req.not-connected");

    // Jane connects; a second wallet using her single-use invitation is turned away.
    let url = jane["invitation"]["url"].as_str().unwrap();
    let phone_jane = phone(&agent).await;
    phone_jane.accept_invitation(url).await;
    let jane_offer = issue_credential::parse_offer(
        &picked(&phone_jane, &agent, issue_credential::OFFER).await[0],
    )
    .unwrap();
    let copycat = phone(&agent).await;
    let ping = Message::new(support::mediator::PING, json!({}))
        .pthid(jane["invitation"]["id"].as_str().unwrap());
    copycat.tell(&acme.didcomm_did, ping).await;
    let problems = picked(&copycat, &agent, support::mediator::PROBLEM_REPORT).await;
    assert_eq!(problems[0].body["code"], "e.p.req.invitation-used");

    // Jane asks for an offer that was never made.
    let bogus = issue_credential::Offer {
        thid: "no-such-offer".into(),
        comment: None,
        attributes: vec![],
        descriptions: vec![],
        detail: json!({ "credential": {} }),
    };
    phone_jane
        .tell(&acme.didcomm_did, issue_credential::request_message(&bogus))
        .await;
    let problems = picked(&phone_jane, &agent, support::mediator::PROBLEM_REPORT).await;
    assert_eq!(problems[0].body["code"], "e.p.req.unknown-offer");

    // numberOfCredentials = 1: Bob's offer stands, but once Jane's is issued his request is refused.
    let phone_bob = phone(&agent).await;
    phone_bob
        .accept_invitation(bob["invitation"]["url"].as_str().unwrap())
        .await;
    let bob_offer = issue_credential::parse_offer(
        &picked(&phone_bob, &agent, issue_credential::OFFER).await[0],
    )
    .unwrap();
    phone_jane
        .tell(
            &acme.didcomm_did,
            issue_credential::request_message(&jane_offer),
        )
        .await;
    assert_eq!(
        picked(&phone_jane, &agent, issue_credential::ISSUE)
            .await
            .len(),
        1
    );
    phone_bob
        .tell(
            &acme.didcomm_did,
            issue_credential::request_message(&bob_offer),
        )
        .await;
    let problems = picked(&phone_bob, &agent, support::mediator::PROBLEM_REPORT).await;
    assert_eq!(problems[0].body["code"], "e.p.req.limit-reached");
    // And a request sent twice is handled once.
    let again = issue_credential::request_message(&jane_offer);
    phone_jane.tell(&acme.didcomm_did, again.clone()).await;
    phone_jane.tell(&acme.didcomm_did, again).await;
    let problems = picked(&phone_jane, &agent, support::mediator::PROBLEM_REPORT).await;
    assert_eq!(problems.len(), 1, "one answer for one message id");
    assert_eq!(problems[0].body["code"], "e.p.req.not-offered");
}

/// The status list document at `url`, as text.
async fn status_list_text(url: &str) -> String {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn the_status_list_is_signed_again_only_when_it_changes() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let template = skill_template(&acme, None).await;
    let customer = onboard(&acme, "Jane", &template, "Rust").await;
    let phone = phone(&agent).await;
    phone
        .accept_invitation(customer["invitation"]["url"].as_str().unwrap())
        .await;
    let credential = receive_credential(&phone, &agent, &acme).await;
    let entry = vc::read_credential(&credential).unwrap().status.unwrap();

    let first = status_list_text(&entry.list).await;
    // Signed per GET, the next one would carry a later validFrom and proof date.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let second = status_list_text(&entry.list).await;
    assert_eq!(first, second, "the same signed document, not signed again");
    let list: Value = serde_json::from_str(&first).unwrap();
    assert!(!is_set(&entry, &list).unwrap());

    let deleted = acme
        .call("DELETE", &format!("{TEMPLATES}/{template}"), None)
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    let revoked = status_list_text(&entry.list).await;
    assert_ne!(revoked, first, "a revocation signs a new list");
    let list: Value = serde_json::from_str(&revoked).unwrap();
    vc::verify_credential(
        &list,
        &HttpResolver::new(HttpClient::new(NetPolicy::loopback()).unwrap()),
        now(),
    )
    .await
    .expect("the new list is signed by the issuer");
    assert!(is_set(&entry, &list).unwrap(), "the credential is revoked");
    assert_eq!(status_list_text(&entry.list).await, revoked);
}

/// A phone that answered `customer`'s invitation, and the offer auto-issue sent it.
async fn connected_with_offer(agent: &Agent, customer: &Value) -> (Phone, issue_credential::Offer) {
    let phone = phone(agent).await;
    phone
        .accept_invitation(customer["invitation"]["url"].as_str().unwrap())
        .await;
    let offers = picked(&phone, agent, issue_credential::OFFER).await;
    let offer = issue_credential::parse_offer(&offers[0]).unwrap();
    (phone, offer)
}

#[tokio::test]
async fn problem_reports_in_another_partys_exchange_change_nothing() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let template = skill_template(&acme, None).await;
    let jane = onboard(&acme, "Jane", &template, "Rust").await;
    let bob = onboard(&acme, "Bob", &template, "Go").await;
    let (phone_jane, offer) = connected_with_offer(&agent, &jane).await;
    let (phone_bob, bob_offer) = connected_with_offer(&agent, &bob).await;
    let stranger = phone(&agent).await;
    let decline = |thid: &str| {
        lanyard_protocol::protocols::report_problem::problem_report_message(
            &lanyard_protocol::protocols::report_problem::ProblemReport::new(
                "e.p.req.declined",
                "not mine to decline",
            ),
        )
        .thid(thid)
    };
    // Bob (connected) and a stranger (not) both name Jane's exchange.
    assert_eq!(
        phone_bob
            .tell(&acme.didcomm_did, decline(&offer.thid))
            .await,
        202
    );
    assert_eq!(
        stranger.tell(&acme.didcomm_did, decline(&offer.thid)).await,
        202
    );
    assert!(
        stranger.pick_up(&agent, 10).await.is_empty(),
        "a stranger's problem report is not answered"
    );
    let exchanges = acme
        .call("GET", &format!("{CREDENTIALS}?templateId={template}"), None)
        .await;
    let by_holder = |did: &str| {
        exchanges.body["data"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["holderDid"] == did)
            .cloned()
            .unwrap()
    };
    let janes = by_holder(&phone_jane.did);
    assert_eq!(janes["state"], "Offered", "{janes}");
    assert!(janes["problem"].is_null());
    // Jane's exchange still works; Bob declining his own does decline it.
    assert_eq!(
        phone_jane
            .tell(&acme.didcomm_did, issue_credential::request_message(&offer))
            .await,
        202
    );
    assert_eq!(
        picked(&phone_jane, &agent, issue_credential::ISSUE)
            .await
            .len(),
        1
    );
    assert_eq!(
        phone_bob
            .tell(&acme.didcomm_did, decline(&bob_offer.thid))
            .await,
        202
    );
    let exchanges = acme
        .call("GET", &format!("{CREDENTIALS}?templateId={template}"), None)
        .await;
    let states: Vec<(String, String)> = exchanges.body["data"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["holderDid"].as_str().unwrap().to_string(),
                c["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        states.contains(&(phone_jane.did.clone(), "Issued".into())),
        "{states:?}"
    );
    assert!(
        states.contains(&(phone_bob.did.clone(), "Declined".into())),
        "{states:?}"
    );
}

#[tokio::test]
async fn a_wallet_answering_two_invitations_of_one_organisation_gets_both_connections() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let template = skill_template(&acme, None).await;
    let first = onboard(&acme, "Jane", &template, "Rust").await;
    let again = onboard(&acme, "Jane (new phone number)", &template, "Go").await;
    let bob = onboard(&acme, "Bob", &template, "Zig").await;
    let jane = phone(&agent).await;
    let other = phone(&agent).await;
    jane.accept_invitation(first["invitation"]["url"].as_str().unwrap())
        .await;
    jane.accept_invitation(again["invitation"]["url"].as_str().unwrap())
        .await;
    other
        .accept_invitation(bob["invitation"]["url"].as_str().unwrap())
        .await;
    for (customer, did) in [(&first, &jane.did), (&again, &jane.did), (&bob, &other.did)] {
        let path = format!("{CUSTOMERS}/{}", customer["id"].as_str().unwrap());
        let fetched = acme.call("GET", &path, None).await.body["data"].clone();
        assert_eq!(fetched["status"], "Onboarded", "{fetched}");
        assert_eq!(fetched["connectionDid"], did.as_str());
    }
    // Both of Jane's offers came, and each is issued on request.
    let offers = picked(&jane, &agent, issue_credential::OFFER).await;
    let skills: Vec<String> = offers
        .iter()
        .map(|m| {
            let offer = issue_credential::parse_offer(m).unwrap();
            offer
                .attributes
                .iter()
                .find(|(k, _)| k == "skill")
                .unwrap()
                .1
                .clone()
        })
        .collect();
    assert_eq!(skills, ["Rust", "Go"]);
    for message in &offers {
        let offer = issue_credential::parse_offer(message).unwrap();
        assert_eq!(
            jane.tell(&acme.didcomm_did, issue_credential::request_message(&offer))
                .await,
            202
        );
    }
    let issued = picked(&jane, &agent, issue_credential::ISSUE).await;
    assert_eq!(issued.len(), 2);
    assert!(picked(&jane, &agent, support::mediator::PROBLEM_REPORT)
        .await
        .is_empty());
    assert_eq!(
        picked(&other, &agent, issue_credential::OFFER).await.len(),
        1
    );
}

#[tokio::test]
async fn the_wallet_keeps_two_connections_with_one_organisation_apart() {
    use wallet_core::Accepted;
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let template = skill_template(&acme, None).await;
    let first = onboard(&acme, "Jane", &template, "Rust").await;
    let second = onboard(&acme, "Jane again", &template, "Go").await;
    let dir = tempfile::tempdir().unwrap();
    let wallet = loopback_wallet(dir.path());
    let mut connections = Vec::new();
    for customer in [&first, &second] {
        match wallet
            .accept_invitation(customer["invitation"]["url"].as_str().unwrap())
            .await
            .unwrap()
        {
            Accepted::Connection(connection) => connections.push(connection),
            other => panic!("expected a connection, got {other:?}"),
        }
    }
    assert_eq!(connections[0].their_did, connections[1].their_did);
    assert_ne!(connections[0].my_did, connections[1].my_did);
    wallet.sync().await.unwrap();
    let offers = wallet.offers().unwrap();
    assert_eq!(offers.len(), 2);
    // Each offer is matched to the connection it was sent over (our DID), not to the first
    // connection with the organisation's DID.
    for offer in &offers {
        let skill = &offer
            .attributes
            .iter()
            .find(|(k, _)| k == "skill")
            .unwrap()
            .1;
        let expected = if skill == "Rust" {
            &connections[0]
        } else {
            &connections[1]
        };
        assert_eq!(offer.connection_id, expected.id, "the {skill} offer");
        wallet.accept_offer(&offer.id).await.unwrap();
    }
    wallet.sync().await.unwrap();
    let credentials = wallet.credentials().unwrap();
    assert_eq!(credentials.len(), 2);
    for credential in &credentials {
        let connection = connections
            .iter()
            .find(|c| c.id == credential.connection_id)
            .unwrap();
        assert_eq!(
            credential.credential["credentialSubject"]["id"],
            connection.my_did.as_str()
        );
    }
}

#[tokio::test]
async fn a_wallet_answering_an_invitation_gets_mediation_where_only_invited_wallets_do() {
    use wallet_core::Accepted;
    let agent = Agent::start_with(Default::default(), |config| {
        config.limits.admission = agent::mediator::Admission::Invited;
    })
    .await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let template = skill_template(&acme, None).await;
    let customer = onboard(&acme, "Jane", &template, "Rust").await;
    let dir = tempfile::tempdir().unwrap();
    let wallet = loopback_wallet(dir.path());
    // The mediate-request names the invitation it answers, so the mediator grants it, and the
    // organisation's exchange still finds the invitation unused.
    let accepted = wallet
        .accept_invitation(customer["invitation"]["url"].as_str().unwrap())
        .await
        .unwrap();
    assert!(
        matches!(accepted, Accepted::Connection(_)),
        "expected a connection, got {accepted:?}"
    );
    wallet.sync().await.unwrap();
    assert_eq!(
        wallet.offers().unwrap().len(),
        1,
        "the auto-issued offer arrived"
    );
}

/// The phone's real wallet in `dir`, allowed to reach the agent on loopback over plain http.
fn loopback_wallet(dir: &std::path::Path) -> wallet_core::Wallet {
    use lanyard_protocol::store::{Argon2Params, Unlock};
    wallet_core::Wallet::builder(
        &dir.join("wallet"),
        Unlock::Passphrase {
            passphrase: zeroize::Zeroizing::new("phone passphrase".to_string()),
            params: Argon2Params::insecure_for_tests(),
        },
    )
    .network(NetPolicy::loopback())
    .open()
    .unwrap()
}

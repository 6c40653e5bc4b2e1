//! The customer's whole journey against a running agent (one process, or a cluster behind
//! nginx), no mocks: an issuer creates a template and onboards a customer by email; the wallet
//! takes the QR code from the email the SMTP sink received, connects, and stores the
//! auto-issued credential on its next sync (it was offline when it was issued); live mode
//! delivers the next one at once; a verifier's request is answered and ends `verified` with
//! the disclosed values; the template is deleted and after the next sync the credentials are
//! gone and the event says so; a second issuer's credential is untouched.

use serde_json::json;
use wallet_core::{Accepted, WalletEvent};

use crate::{Endpoint, OrgClient, SmtpSink};

/// Runs the journey against `agent`, whose invitation emails go to `sink`.
pub async fn customer_journey(agent: &impl Endpoint, sink: &SmtpSink) {
    let acme = OrgClient::create(agent, "Acme Gym").await;
    let template = acme.template("Membership").await;
    let (status, customer) = acme
        .onboard_auto_issue(
            "Jane Doe",
            "jane@example.com",
            &template,
            json!({ "skill": "climbing", "level": "gold", "holderFullName": "Jane Doe" }),
        )
        .await;
    assert_eq!(status, 201, "{customer}");
    assert_eq!(customer["status"], "Invited");

    // The phone scans the QR code in the email.
    let mail = sink.message(1).await;
    let link =
        crate::decode_qr(&std::fs::read(mail["images"][0]["path"].as_str().unwrap()).unwrap());
    assert_eq!(link, customer["invitation"]["url"].as_str().unwrap());
    let (wallet, events, _dir) = crate::wallet();
    let connection = match wallet.accept_invitation(&link).await.unwrap() {
        Accepted::Connection(connection) => connection,
        other => panic!("expected a connection, got {other:?}"),
    };
    assert_eq!(connection.label, "Acme Gym");
    // Scanning the same code again makes no second connection.
    let again = wallet.accept_invitation(&link).await.unwrap();
    assert_eq!(again, Accepted::Connection(connection.clone()));
    assert_eq!(wallet.connections().unwrap().len(), 1);
    let (_, onboarded) = acme
        .api(
            "GET",
            &format!("/customer/{}", customer["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(onboarded["status"], "Onboarded");

    // The auto-issued offer waited at the mediator; the customer accepts it.
    wallet.sync().await.unwrap();
    let offers = wallet.offers().unwrap();
    assert_eq!(offers.len(), 1);
    assert!(offers[0]
        .attributes
        .contains(&("skill".into(), "climbing".into())));
    wallet.accept_offer(&offers[0].id).await.unwrap();
    wallet.sync().await.unwrap();
    let credentials = wallet.credentials().unwrap();
    assert_eq!(credentials.len(), 1, "{:?}", events.all());
    let membership = &credentials[0];
    assert_eq!(membership.issuer_did, acme.issuer_did);
    assert_eq!(membership.template_id.as_deref(), Some(template.as_str()));
    assert!(membership.fields.iter().any(|f| f.name == "level"
        && f.value == "gold"
        && f.description.as_deref() == Some("Level")));
    let (_, exchange) = acme
        .api("GET", &format!("/credential/{}", membership.id), None)
        .await;
    assert_eq!(exchange["state"], "Accepted", "the wallet acked");

    // Live mode: the next credential arrives while the app is open.
    wallet.set_auto_accept(true);
    let live = wallet.start_live().await.unwrap();
    let second_template = acme.template("Locker").await;
    let (status, _) = acme
        .api("POST", "/credential", Some(json!({ "customerId": customer["id"], "templateId": second_template, "values": { "skill": "locker 12" } })))
        .await;
    assert_eq!(status, 201);
    events
        .wait_for("live credential", |e| {
            matches!(e, WalletEvent::CredentialStored { .. })
                && wallet.credentials().unwrap().len() == 2
        })
        .await;
    live.stop().await;

    // A second issuer, whose credential must survive Acme's template deletion.
    let globex = OrgClient::create(agent, "Globex").await;
    let globex_template = globex.template("Badge").await;
    let (_, globex_customer) = globex
        .onboard_auto_issue(
            "Jane",
            "jane@example.com",
            &globex_template,
            json!({ "skill": "welding" }),
        )
        .await;
    wallet
        .accept_invitation(globex_customer["invitation"]["url"].as_str().unwrap())
        .await
        .unwrap();
    wallet.sync().await.unwrap();
    wallet.sync().await.unwrap();
    assert_eq!(wallet.credentials().unwrap().len(), 3, "{:?}", events.all());

    // A verifier (Acme's door) asks for the membership with its level.
    let (status, verification) = acme
        .api(
            "POST",
            "/verification",
            Some(json!({ "templateId": template, "requiredFields": ["level"] })),
        )
        .await;
    assert_eq!(status, 201, "{verification}");
    let request = match wallet
        .accept_invitation(verification["invitation"]["url"].as_str().unwrap())
        .await
        .unwrap()
    {
        Accepted::PresentationRequest(request) => request,
        other => panic!("expected a presentation request, got {other:?}"),
    };
    let waiting = wallet.presentation_requests().unwrap();
    assert_eq!(
        waiting[0].1,
        vec![membership.id.clone()],
        "only the membership matches"
    );
    wallet
        .present(&request.id, std::slice::from_ref(&membership.id))
        .await
        .unwrap();
    wallet.sync().await.unwrap();
    assert!(
        events
            .all()
            .iter()
            .any(|e| matches!(e, WalletEvent::PresentationResult { verified: true, .. })),
        "{:?}",
        events.all()
    );
    let (_, verified) = acme
        .api(
            "GET",
            &format!("/verification/{}", verification["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(verified["state"], "verified", "{verified}");
    assert_eq!(verified["disclosed"]["level"], "gold");

    // Acme deletes the membership template: after the next sync it is gone, and only it.
    let (status, deleted) = acme
        .api("DELETE", &format!("/credential/template/{template}"), None)
        .await;
    assert_eq!((status, deleted), (200, json!({ "isSuccess": true })));
    wallet.sync().await.unwrap();
    let left: Vec<_> = wallet
        .credentials()
        .unwrap()
        .into_iter()
        .map(|c| c.issuer_did)
        .collect();
    assert_eq!(left.len(), 2);
    assert!(
        left.contains(&globex.issuer_did),
        "the other issuer's credential stays"
    );
    assert!(events.all().contains(&WalletEvent::CredentialsRemoved {
        template_id: Some(template.clone()),
        count: 1
    }));
}

//! What a hostile or broken party can do to a wallet, against the real agent process: a
//! rogue issuer (its own DIDComm endpoint on loopback) that the customer connected with tries
//! to delete another issuer's credential and to slip in a forged one; a stranger writes to the
//! wallet's DID; a message is delivered twice; a verifier's request is replayed. Each is
//! refused or harmless, and nothing stored is lost.

use lanyard_test_support as support;

use std::sync::{Arc, Mutex};

use lanyard_protocol::credentials::vc;
use lanyard_protocol::did::{did_key, did_peer_2, PeerDidSpec, PeerService, Resolver};
use lanyard_protocol::didcomm::{now, DidComm, Message, ENCRYPTED_TYP};
use lanyard_protocol::keys::{KeyRing, KeyType, PublicKey};
use lanyard_protocol::protocols::{deletion, issue_credential};
use serde_json::{json, Value};
use support::{AgentProcess, OrgClient};
use wallet_core::{Accepted, Wallet, WalletError, WalletEvent, OOB_INVITATION};

/// A DIDComm party with its own endpoint on loopback that records what it is sent.
struct Rogue {
    did: String,
    didcomm: Arc<DidComm<Resolver>>,
    ring: Arc<KeyRing>,
    signing: PublicKey,
    inbox: Arc<Mutex<Vec<Message>>>,
}

impl Rogue {
    async fn start() -> Rogue {
        let ring = Arc::new(KeyRing::new());
        let signing = ring.generate(KeyType::Ed25519);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/didcomm", listener.local_addr().unwrap());
        let did = did_peer_2(&PeerDidSpec {
            authentication: vec![signing],
            key_agreement: vec![ring.generate(KeyType::X25519)],
            services: vec![PeerService {
                uri: endpoint,
                routing_keys: vec![],
                accept: vec!["didcomm/v2".into()],
            }],
        });
        let didcomm = Arc::new(DidComm::new(ring.clone(), Resolver::default()));
        let inbox: Arc<Mutex<Vec<Message>>> = Default::default();
        let (unpacker, log) = (didcomm.clone(), inbox.clone());
        let app = axum::Router::new().route(
            "/didcomm",
            axum::routing::post(move |body: String| {
                let (unpacker, log) = (unpacker.clone(), log.clone());
                async move {
                    if let Ok(unpacked) = unpacker.unpack(&body).await {
                        log.lock().unwrap().push(unpacked.message);
                    }
                    axum::http::StatusCode::ACCEPTED
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Rogue {
            did,
            didcomm,
            ring,
            signing,
            inbox,
        }
    }

    /// An OOB invitation from this party, as raw JSON.
    fn invitation(&self) -> String {
        json!({ "type": OOB_INVITATION, "id": uuid::Uuid::new_v4().to_string(), "from": self.did,
                "label": "Totally Legit Bank", "body": { "accept": ["didcomm/v2"] } })
        .to_string()
    }

    /// The wallet DID that connected to this party (from its first message).
    fn connected_wallet(&self) -> String {
        self.inbox.lock().unwrap()[0]
            .from
            .clone()
            .expect("the wallet said who it is")
    }

    /// Packs `message` for `to` (through its mediator); returns the envelope and endpoint.
    async fn pack(&self, to: &str, message: Message) -> (String, String) {
        let message = message.from(self.did.clone()).to([to.to_string()]);
        let packed = self
            .didcomm
            .pack_for_delivery(&message, Some(&self.did), to, false)
            .await
            .unwrap();
        (packed.message, packed.endpoint.unwrap())
    }

    async fn post(&self, envelope: &str, endpoint: &str) -> u16 {
        reqwest::Client::new()
            .post(endpoint)
            .header("content-type", ENCRYPTED_TYP)
            .body(envelope.to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn send(&self, to: &str, message: Message) -> u16 {
        let (envelope, endpoint) = self.pack(to, message).await;
        self.post(&envelope, &endpoint).await
    }
}

/// A wallet holding one credential from Acme (through the real agent); returns it all.
async fn wallet_with_acme_credential(
    agent: &AgentProcess,
) -> (
    Arc<Wallet>,
    Arc<support::Events>,
    tempfile::TempDir,
    OrgClient,
    String,
    String,
) {
    let acme = OrgClient::create(agent, "Acme").await;
    let template = acme.template("Membership").await;
    let (_, customer) = acme
        .onboard_auto_issue(
            "Jane",
            "jane@example.com",
            &template,
            json!({ "skill": "climbing" }),
        )
        .await;
    let (wallet, events, dir) =
        wallet_auto_issued(customer["invitation"]["url"].as_str().unwrap()).await;
    let id = wallet.credentials().unwrap()[0].id.clone();
    (wallet, events, dir, acme, template, id)
}

/// A new wallet that answered an onboarding invitation with auto-issue and stored the one
/// credential.
async fn wallet_auto_issued(url: &str) -> (Arc<Wallet>, Arc<support::Events>, tempfile::TempDir) {
    let (wallet, events, dir) = support::wallet();
    wallet.set_auto_accept(true);
    wallet.accept_invitation(url).await.unwrap();
    wallet.sync().await.unwrap();
    wallet.sync().await.unwrap();
    assert_eq!(wallet.credentials().unwrap().len(), 1, "{:?}", events.all());
    (wallet, events, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_issuer_cannot_delete_or_forge_credentials() {
    let agent = AgentProcess::start(&[]);
    let (wallet, events, _dir, acme, template, acme_credential) =
        wallet_with_acme_credential(&agent).await;
    let rogue = Rogue::start().await;
    let connected = wallet.accept_invitation(&rogue.invitation()).await.unwrap();
    assert!(matches!(connected, Accepted::Connection(_)));
    let victim = rogue.connected_wallet();

    // Cross-issuer deletion: the rogue names Acme's credential and template.
    let notice = deletion::notice_message(&deletion::Notice {
        template_id: template.clone(),
        credential_ids: vec![acme_credential.clone()],
        reason: "trust me".into(),
    });
    assert_eq!(rogue.send(&victim, notice).await, 202);
    let report = wallet.sync().await.unwrap();
    assert_eq!(report.refused, 1, "{report:?}");
    assert!(
        wallet.credential(&acme_credential).is_ok(),
        "Acme's credential stays"
    );
    assert!(events.all().iter().any(
        |e| matches!(e, WalletEvent::Problem { message } if message.contains("did not issue"))
    ));

    // A forged credential: offered, then issued in Acme's name but signed by the rogue.
    let mut unsigned: Value = wallet.credential(&acme_credential).unwrap().credential;
    unsigned.as_object_mut().unwrap().remove("proof");
    unsigned["id"] = json!(format!("urn:uuid:{}", uuid::Uuid::new_v4()));
    unsigned["credentialSubject"]["id"] = json!(victim);
    unsigned["credentialSubject"]["skill"] = json!("everything");
    let offer = issue_credential::Offer {
        thid: uuid::Uuid::new_v4().to_string(),
        comment: None,
        attributes: vec![("skill".into(), "everything".into())],
        descriptions: vec![],
        detail: json!({ "credential": unsigned, "options": issue_credential::proof_options() }),
    };
    rogue
        .send(&victim, issue_credential::offer_message(&offer))
        .await;
    wallet.sync().await.unwrap();
    assert!(
        rogue
            .inbox
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.type_ == issue_credential::REQUEST),
        "auto-accepted"
    );
    let method = format!(
        "{}#{}",
        did_key(&rogue.signing),
        &did_key(&rogue.signing)[8..]
    );
    let forged = vc::issue(&unsigned, &rogue.ring, &rogue.signing, &method, now()).unwrap();
    rogue
        .send(
            &victim,
            issue_credential::issue_message(&offer.thid, forged),
        )
        .await;
    let report = wallet.sync().await.unwrap();
    assert_eq!(report.refused, 1);
    assert_eq!(
        wallet.credentials().unwrap().len(),
        1,
        "nothing forged is stored"
    );
    // The sender hears why, in the forgery's thread: the proof is not the issuer's.
    let inbox = rogue.inbox.lock().unwrap().clone();
    let report = inbox
        .iter()
        .find(|m| {
            m.type_ == lanyard_protocol::protocols::report_problem::PROBLEM_REPORT
                && m.thid.as_deref() == Some(offer.thid.as_str())
        })
        .unwrap_or_else(|| panic!("no problem report in the forgery's thread: {inbox:?}"));
    assert_eq!(report.body["code"], "e.p.msg.bad-credential", "{report:?}");
    let comment = report.body["comment"].as_str().unwrap_or("");
    assert_eq!(
        comment,
        format!(
            "the proof was made by {}, not the issuer {}",
            did_key(&rogue.signing),
            acme.issuer_did
        ),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_duplicates_and_replays_change_nothing() {
    let agent = AgentProcess::start(&[]);
    let (wallet, events, _dir, acme, template, _) = wallet_with_acme_credential(&agent).await;
    let rogue = Rogue::start().await;
    wallet.accept_invitation(&rogue.invitation()).await.unwrap();
    let victim = rogue.connected_wallet();

    // A stranger (no connection) writes to the wallet's DID.
    let stranger = Rogue::start().await;
    assert_eq!(
        stranger
            .send(
                &victim,
                Message::new(
                    lanyard_protocol::protocols::basic_message::MESSAGE,
                    json!({ "content": "hi" })
                )
            )
            .await,
        202
    );
    let report = wallet.sync().await.unwrap();
    assert_eq!(report.refused, 1);
    assert!(events.all().iter().any(
        |e| matches!(e, WalletEvent::Problem { message } if message.contains("no connection"))
    ));

    // The same envelope delivered twice is processed once.
    wallet.set_auto_accept(false);
    let offer = issue_credential::Offer {
        thid: uuid::Uuid::new_v4().to_string(),
        comment: None,
        attributes: vec![("skill".into(), "x".into())],
        descriptions: vec![],
        detail: json!({ "credential": { "type": ["VerifiableCredential"] } }),
    };
    let offer_message = issue_credential::offer_message(&offer);
    let (envelope, endpoint) = rogue.pack(&victim, offer_message.clone()).await;
    assert_eq!(rogue.post(&envelope, &endpoint).await, 202);
    // Replayed as it is, the mediator queues it once (the same forward id)...
    assert_eq!(rogue.post(&envelope, &endpoint).await, 202);
    // ...sent again in a fresh forward, it reaches the wallet twice, which takes it once.
    let (again, _) = rogue.pack(&victim, offer_message).await;
    assert_eq!(rogue.post(&again, &endpoint).await, 202);
    let report = wallet.sync().await.unwrap();
    assert_eq!((report.processed, report.duplicates), (1, 1), "{report:?}");
    assert_eq!(wallet.offers().unwrap().len(), 1);

    // A verifier's request: accepting it twice keeps one; once answered it cannot be replayed.
    let verification = request_verification(&acme, &template).await;
    let url = verification["invitation"]["url"].as_str().unwrap();
    let first = wallet.accept_invitation(url).await.unwrap();
    let second = wallet.accept_invitation(url).await.unwrap();
    assert_eq!(first, second);
    assert_eq!(wallet.presentation_requests().unwrap().len(), 1);
    let Accepted::PresentationRequest(request) = first else {
        panic!("a request")
    };
    let credential = wallet.credentials().unwrap()[0].id.clone();
    wallet
        .present(&request.id, std::slice::from_ref(&credential))
        .await
        .unwrap();
    let replay = wallet
        .present(&request.id, std::slice::from_ref(&credential))
        .await
        .unwrap_err();
    assert!(matches!(replay, WalletError::WrongState { .. }), "{replay}");
    wallet.sync().await.unwrap();
    let (_, record) = acme
        .api(
            "GET",
            &format!("/verification/{}", verification["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(record["state"], "verified");
    let again = wallet.accept_invitation(url).await;
    assert!(
        matches!(again, Err(WalletError::InvitationUsed)),
        "a spent request says so: {again:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_presentation_is_refused_and_the_relay_proves_no_domain() {
    let agent = AgentProcess::start(&[]);
    let (wallet, _events, _dir, acme, template, credential) =
        wallet_with_acme_credential(&agent).await;
    let domain = agent.url.trim_start_matches("http://").to_string();

    // Acme's own request: the wallet proves who asks (Acme's DID, reached through the domain
    // the presentation is bound to).
    let genuine = request_verification(&acme, &template).await;
    let Accepted::PresentationRequest(request) = wallet
        .accept_invitation(genuine["invitation"]["url"].as_str().unwrap())
        .await
        .unwrap()
    else {
        panic!("a request")
    };
    assert_eq!(request.verified_domain.as_deref(), Some(domain.as_str()));
    assert!(request.verifier_did.starts_with("did:peer:2"));
    wallet.decline_request(&request.id).await.unwrap();

    // A rogue reads another request of Acme's from its public link and passes it off as its
    // own, under Acme's name.
    let verification = request_verification(&acme, &template).await;
    let mut invitation =
        support::fetch_invitation(verification["invitation"]["url"].as_str().unwrap()).await;
    let acme_invitation = invitation["id"].as_str().unwrap().to_string();
    let rogue = Rogue::start().await;
    invitation["id"] = json!(uuid::Uuid::new_v4().to_string());
    invitation["from"] = json!(rogue.did);
    invitation["attachments"][0]["data"]["json"]["from"] = json!(rogue.did);
    let Accepted::PresentationRequest(relayed) = wallet
        .accept_invitation(&invitation.to_string())
        .await
        .unwrap()
    else {
        panic!("a request")
    };
    assert_eq!(relayed.verifier_name, "Acme", "the label claims Acme");
    assert_eq!(relayed.verifier_did, rogue.did, "the DID is the rogue's");
    assert_eq!(relayed.domain, domain, "the request names Acme's domain");
    assert_eq!(
        relayed.verified_domain, None,
        "the rogue is not reached through Acme's domain, so the wallet shows none"
    );

    // Acme's own link to the same request now names another verifier than the one the
    // wallet holds it from: refused, naming it, rather than shown as Acme's.
    let same = wallet
        .accept_invitation(verification["invitation"]["url"].as_str().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(&same, WalletError::Refused(..))
            && same
                .to_string()
                .contains("already received from another verifier")
            && same.to_string().contains(&rogue.did),
        "{same}"
    );

    // The customer presents anyway; the rogue forwards the presentation to Acme from its own
    // DID. Acme refuses it: the sender is not the holder.
    wallet
        .present(&relayed.id, std::slice::from_ref(&credential))
        .await
        .unwrap();
    let received = rogue
        .inbox
        .lock()
        .unwrap()
        .iter()
        .find(|m| m.type_ == lanyard_protocol::protocols::present_proof::PRESENTATION)
        .cloned()
        .expect("the wallet answered the rogue");
    let mut forwarded = received.clone();
    forwarded.id = uuid::Uuid::new_v4().to_string();
    forwarded.pthid = Some(acme_invitation);
    forwarded.from = None;
    forwarded.to = None;
    assert_eq!(rogue.send(&request.verifier_did, forwarded).await, 202);
    let (_, record) = acme
        .api(
            "GET",
            &format!("/verification/{}", verification["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(record["state"], "failed", "{record}");
    let reasons = record["reasons"].to_string();
    assert!(
        reasons.contains(&format!("sent by {}, not by its holder", rogue.did))
            && reasons.contains("relayed presentation is refused"),
        "{reasons}"
    );
}

/// A verification request of `org` for its template `template`.
async fn request_verification(org: &OrgClient, template: &str) -> Value {
    let (status, verification) = org
        .api(
            "POST",
            "/verification",
            Some(json!({ "templateId": template })),
        )
        .await;
    assert_eq!(status, 201, "{verification}");
    verification
}

/// Every file under `dir`, read whole.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_data_folder_shows_no_customer_data() {
    let agent = AgentProcess::start(&[]);
    let acme = OrgClient::create(&agent, "Acme").await;
    let template = acme.template("Membership").await;
    let (name, email, phone, skill) = (
        "Zebediah Quixote",
        "zebediah.quixote@example.com",
        "+14155550123",
        "xylophone-virtuoso",
    );
    let (status, emailed) = acme
        .onboard_auto_issue(name, email, &template, json!({ "skill": skill }))
        .await;
    assert_eq!(status, 201, "{emailed}");
    let (status, texted) = acme
        .api(
            "POST",
            "/customer",
            Some(json!({ "name": "Philippa Wrenfeather", "medium": "sms", "phoneNumber": phone, "organizationLabel": "Acme" })),
        )
        .await;
    assert_eq!(status, 201, "{texted}");
    let _wallet = wallet_auto_issued(emailed["invitation"]["url"].as_str().unwrap()).await;

    // SIGKILLed: what is on disk is what a thief of the folder gets.
    let agent = agent.kill_and_restart();
    let files = files_under(agent.data.path());
    assert!(files
        .iter()
        .any(|(path, _)| path.starts_with(agent.data.path().join("issuer"))));
    for secret in [name, email, "Philippa Wrenfeather", phone, skill] {
        for (path, bytes) in &files {
            assert!(
                !bytes
                    .windows(secret.len())
                    .any(|window| window == secret.as_bytes()),
                "{secret:?} is in plaintext in {}",
                path.display()
            );
        }
    }

    // Everything reads back after the restart.
    let customer = |id: &Value| format!("/customer/{}", id.as_str().unwrap());
    let (_, read) = acme.api("GET", &customer(&emailed["id"]), None).await;
    assert_eq!(read["name"], name, "{read}");
    assert_eq!(read["email"], email);
    assert_eq!(read["status"], "Onboarded");
    let (_, read) = acme.api("GET", &customer(&texted["id"]), None).await;
    assert_eq!(read["phoneNumber"], phone, "{read}");
    let (_, issued) = acme
        .api("GET", &format!("/credential?templateId={template}"), None)
        .await;
    assert_eq!(issued["data"][0]["values"]["skill"], skill, "{issued}");
}

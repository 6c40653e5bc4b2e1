//! The mediator over real HTTP on loopback, driven by clients built on `wallet-core`'s
//! envelopes: a phone asks for mediation, registers its DID, an issuer's messages reach it
//! through forwards while it is offline, and it picks them up and acknowledges them.

use std::sync::Arc;

use agent::config::Config;
use agent::mediator::{self, Limits};
use serde_json::{json, Value};
use wallet_core::did::{did_key, did_peer_2, PeerDidSpec, PeerService, Resolver};
use wallet_core::didcomm::{DidComm, Message, Unpacked, ENCRYPTED_TYP};
use wallet_core::encoding::b64u_decode;
use wallet_core::keys::{KeyRing, KeyType};

/// A running agent on a loopback port with its own data folder.
struct Agent {
    running: Option<agent::Running>,
    url: String,
    did: String,
    _data: tempfile::TempDir,
}

impl Agent {
    async fn start(limits: Limits) -> Agent {
        let data = tempfile::tempdir().unwrap();
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data.path().to_path_buf(),
            limits,
            ..Config::default()
        };
        let running = agent::start(config).await.expect("the agent starts");
        Agent {
            url: format!("http://{}", running.addr),
            did: running.did.clone(),
            running: Some(running),
            _data: data,
        }
    }

    async fn post(&self, content_type: &str, body: String) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/didcomm", self.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("the agent answers")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.server.abort();
        }
    }
}

/// A wallet: a did:peer:2 whose service is the mediator's DID.
struct Phone {
    did: String,
    didcomm: DidComm<Resolver>,
}

impl Phone {
    fn new(mediator_did: &str) -> Phone {
        let ring = Arc::new(KeyRing::new());
        let did = did_peer_2(&PeerDidSpec {
            authentication: vec![ring.generate(KeyType::Ed25519)],
            key_agreement: vec![ring.generate(KeyType::X25519)],
            services: vec![PeerService {
                uri: mediator_did.to_string(),
                routing_keys: vec![],
                accept: vec!["didcomm/v2".into()],
            }],
        });
        Phone {
            did,
            didcomm: DidComm::new(ring, Resolver::default()),
        }
    }

    /// Sends a request to the mediator and unpacks its answer.
    async fn ask(&self, agent: &Agent, type_: &str, body: Value) -> Unpacked {
        let response = self.send(agent, type_, body).await;
        assert_eq!(response.status(), 200, "{type_} was not answered");
        let text = response.text().await.unwrap();
        self.didcomm
            .unpack(&text)
            .await
            .expect("the answer unpacks")
    }

    async fn send(&self, agent: &Agent, type_: &str, body: Value) -> reqwest::Response {
        let mut message = Message::new(type_, body)
            .from(self.did.clone())
            .to([agent.did.clone()]);
        message.extra.insert("return_route".into(), json!("all"));
        let packed = self
            .didcomm
            .pack_authcrypt(&message, &self.did, &[&agent.did], false)
            .await
            .unwrap();
        agent.post(ENCRYPTED_TYP, packed).await
    }

    async fn connect(&self, agent: &Agent) {
        let grant = self.ask(agent, mediator::MEDIATE_REQUEST, json!({})).await;
        assert_eq!(grant.message.type_, mediator::MEDIATE_GRANT);
        assert_eq!(grant.message.body["routing_did"], json!([agent.did]));
        let update = self
            .ask(
                agent,
                mediator::RECIPIENT_UPDATE,
                json!({"updates": [{"recipient_did": self.did, "action": "add"}]}),
            )
            .await;
        assert_eq!(update.message.body["updated"][0]["result"], "success");
    }

    /// Picks up to `limit` waiting messages, unpacks each, and acknowledges them.
    async fn pick_up(&self, agent: &Agent, limit: u64) -> Vec<Message> {
        let delivery = self
            .ask(agent, mediator::DELIVERY_REQUEST, json!({ "limit": limit }))
            .await;
        if delivery.message.type_ == mediator::STATUS {
            return Vec::new();
        }
        assert_eq!(delivery.message.type_, mediator::DELIVERY);
        let mut messages = Vec::new();
        let mut ids = Vec::new();
        for attachment in &delivery.message.attachments {
            ids.push(attachment.id.clone().unwrap());
            let bytes = b64u_decode(attachment.data.base64.as_deref().unwrap()).unwrap();
            let inner = self
                .didcomm
                .unpack(std::str::from_utf8(&bytes).unwrap())
                .await
                .expect("a delivered message unpacks");
            messages.push(inner.message);
        }
        let status = self
            .ask(
                agent,
                mediator::MESSAGES_RECEIVED,
                json!({ "message_id_list": ids }),
            )
            .await;
        assert_eq!(status.message.type_, mediator::STATUS);
        messages
    }

    async fn waiting(&self, agent: &Agent) -> u64 {
        let status = self.ask(agent, mediator::STATUS_REQUEST, json!({})).await;
        status.message.body["message_count"].as_u64().unwrap()
    }
}

/// An issuer with a did:key, sending through the phone's mediator.
struct Issuer {
    did: String,
    didcomm: DidComm<Resolver>,
}

impl Issuer {
    fn new() -> Issuer {
        let ring = Arc::new(KeyRing::new());
        let ed = ring.generate(KeyType::Ed25519);
        ring.derive_x25519(&ed).unwrap();
        Issuer {
            did: did_key(&ed),
            didcomm: DidComm::new(ring, Resolver::default()),
        }
    }

    async fn send_to(&self, agent: &Agent, phone: &str, n: u32) -> reqwest::StatusCode {
        let message = Message::new(
            "https://didcomm.org/basicmessage/2.0/message",
            json!({ "content": format!("offer {n}") }),
        )
        .from(self.did.clone())
        .to([phone.to_string()]);
        let packed = self
            .didcomm
            .pack_for_delivery(&message, Some(&self.did), phone, false)
            .await
            .unwrap();
        assert_eq!(
            packed.endpoint.as_deref(),
            Some(format!("{}/didcomm", agent.url).as_str()),
            "the phone's DID routes through the mediator's endpoint"
        );
        agent.post(ENCRYPTED_TYP, packed.message).await.status()
    }
}

#[tokio::test]
async fn an_offline_phone_receives_forwarded_messages_on_pickup() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;
    let issuer = Issuer::new();
    for n in 0..3 {
        assert_eq!(issuer.send_to(&agent, &phone.did, n).await, 202);
    }
    assert_eq!(phone.waiting(&agent).await, 3);
    let first = phone.pick_up(&agent, 2).await;
    let rest = phone.pick_up(&agent, 10).await;
    let contents: Vec<Value> = first
        .iter()
        .chain(&rest)
        .map(|m| m.body["content"].clone())
        .collect();
    assert_eq!(
        contents,
        vec![json!("offer 0"), json!("offer 1"), json!("offer 2")]
    );
    assert!(first
        .iter()
        .all(|m| m.from.as_deref() == Some(issuer.did.as_str())));
    assert_eq!(phone.waiting(&agent).await, 0);
    assert!(phone.pick_up(&agent, 5).await.is_empty());
}

#[tokio::test]
async fn unacknowledged_messages_are_delivered_again() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;
    Issuer::new().send_to(&agent, &phone.did, 1).await;
    for _ in 0..2 {
        let delivery = phone
            .ask(&agent, mediator::DELIVERY_REQUEST, json!({ "limit": 5 }))
            .await;
        assert_eq!(
            delivery.message.attachments.len(),
            1,
            "not yet acknowledged"
        );
    }
    assert_eq!(phone.pick_up(&agent, 5).await.len(), 1);
    assert_eq!(phone.waiting(&agent).await, 0);
}

#[tokio::test]
async fn a_full_queue_refuses_clearly() {
    let agent = Agent::start(Limits {
        queue_cap: 2,
        ..Limits::default()
    })
    .await;
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;
    let issuer = Issuer::new();
    assert_eq!(issuer.send_to(&agent, &phone.did, 1).await, 202);
    assert_eq!(issuer.send_to(&agent, &phone.did, 2).await, 202);
    assert_eq!(issuer.send_to(&agent, &phone.did, 3).await, 429);
    assert_eq!(phone.waiting(&agent).await, 2);
}

#[tokio::test]
async fn forwards_for_unregistered_recipients_are_refused_and_nothing_is_stored() {
    let agent = Agent::start(Limits::default()).await;
    let stranger = Phone::new(&agent.did);
    let response = Issuer::new().send_to(&agent, &stranger.did, 1).await;
    assert_eq!(response, 404);
    // Registering afterwards shows nothing was queued.
    stranger.connect(&agent).await;
    assert_eq!(stranger.waiting(&agent).await, 0);
}

#[tokio::test]
async fn pickup_requires_mediation_and_sane_limits() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    let response = phone
        .send(&agent, mediator::DELIVERY_REQUEST, json!({ "limit": 1 }))
        .await;
    assert_eq!(response.status(), 403, "no mediation yet");
    phone.connect(&agent).await;
    for limit in [json!(0), json!(-1), json!("ten"), json!(1000), json!(1.5)] {
        let response = phone
            .send(
                &agent,
                mediator::DELIVERY_REQUEST,
                json!({ "limit": limit }),
            )
            .await;
        assert_eq!(response.status(), 400, "limit {limit} was accepted");
        let problem: Value = response.json().await.unwrap();
        assert!(
            problem["body"]["comment"]
                .as_str()
                .unwrap()
                .contains("limit"),
            "{problem}"
        );
    }
}

#[tokio::test]
async fn trust_ping_and_discover_features_are_answered() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    let pong = phone
        .ask(
            &agent,
            mediator::PING,
            json!({ "response_requested": true }),
        )
        .await;
    assert_eq!(pong.message.type_, mediator::PING_RESPONSE);
    let disclose = phone
        .ask(
            &agent,
            mediator::QUERIES,
            json!({"queries": [{"feature-type": "protocol", "match": "https://didcomm.org/messagepickup/*"}]}),
        )
        .await;
    assert_eq!(
        disclose.message.body["disclosures"],
        json!([{"feature-type": "protocol", "id": "https://didcomm.org/messagepickup/3.0"}])
    );
}

#[tokio::test]
async fn recipients_can_be_queried_and_removed() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    assert_eq!(
        phone
            .send(&agent, mediator::RECIPIENT_QUERY, json!({}))
            .await
            .status(),
        403,
        "no mediation yet"
    );
    phone.connect(&agent).await;
    let query = phone
        .ask(&agent, mediator::RECIPIENT_QUERY, json!({}))
        .await;
    assert_eq!(
        query.message.body["dids"],
        json!([{ "recipient_did": phone.did }])
    );
    // Another phone cannot take the same recipient DID.
    let thief = Phone::new(&agent.did);
    thief
        .ask(&agent, mediator::MEDIATE_REQUEST, json!({}))
        .await;
    let update = thief
        .ask(
            &agent,
            mediator::RECIPIENT_UPDATE,
            json!({"updates": [{"recipient_did": phone.did, "action": "add"}]}),
        )
        .await;
    assert_eq!(update.message.body["updated"][0]["result"], "client_error");
    let update = phone
        .ask(
            &agent,
            mediator::RECIPIENT_UPDATE,
            json!({"updates": [{"recipient_did": phone.did, "action": "remove"}]}),
        )
        .await;
    assert_eq!(update.message.body["updated"][0]["result"], "success");
    assert_eq!(Issuer::new().send_to(&agent, &phone.did, 1).await, 404);
}

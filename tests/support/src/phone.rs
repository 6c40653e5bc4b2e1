//! A phone (a did:peer:2 routed through the mediator) and a did:key issuer, speaking DIDComm
//! with lanyard-protocol's envelopes.

use std::sync::Arc;

use crate::mediator;
use lanyard_protocol::did::{did_key, did_peer_2, PeerDidSpec, PeerService, Resolver};
use lanyard_protocol::didcomm::{DidComm, Message, Unpacked, ENCRYPTED_TYP};
use lanyard_protocol::keys::{KeyRing, KeyType};
use serde_json::{json, Value};

use crate::{fetch_invitation, Agent};

/// A wallet: a did:peer:2 whose service is the mediator's DID.
pub struct Phone {
    /// The did:peer:2.
    pub did: String,
    /// Packs and unpacks with the phone's keys.
    pub didcomm: DidComm<Resolver>,
    /// The phone's keys.
    pub ring: Arc<KeyRing>,
    /// The Ed25519 key of the DID's authentication relationship.
    pub signing: lanyard_protocol::keys::PublicKey,
}

impl Phone {
    /// A phone whose DID's service routes through `mediator_did`.
    pub fn new(mediator_did: &str) -> Phone {
        let ring = Arc::new(KeyRing::new());
        let signing = ring.generate(KeyType::Ed25519);
        let did = did_peer_2(&PeerDidSpec {
            authentication: vec![signing],
            key_agreement: vec![ring.generate(KeyType::X25519)],
            services: vec![PeerService {
                uri: mediator_did.to_string(),
                routing_keys: vec![],
                accept: vec!["didcomm/v2".into()],
            }],
        });
        Phone {
            did,
            didcomm: DidComm::new(ring.clone(), Resolver::default()),
            ring,
            signing,
        }
    }

    /// A presentation of `credentials` for `request`, signed with this DID's authentication
    /// key for the request's challenge and domain (or `challenge` instead, to test refusals).
    pub fn present(
        &self,
        request: &lanyard_protocol::protocols::present_proof::PresentationRequest,
        credentials: &[Value],
        challenge: Option<&str>,
    ) -> Message {
        let method = lanyard_protocol::did::resolve_local(&self.did)
            .unwrap()
            .authentication_keys()[0]
            .0
            .clone();
        let vp = lanyard_protocol::credentials::vc::present(
            credentials,
            &self.did,
            &self.ring,
            &self.signing,
            &method,
            challenge.unwrap_or(&request.challenge),
            &request.domain,
            lanyard_protocol::didcomm::now(),
        )
        .unwrap();
        lanyard_protocol::protocols::present_proof::presentation_message(request, vp)
    }

    /// Sends a request to the mediator and unpacks its answer.
    pub async fn ask(&self, agent: &Agent, type_: &str, body: Value) -> Unpacked {
        let response = self.send(agent, type_, body).await;
        assert_eq!(response.status(), 200, "{type_} was not answered");
        let text = response.text().await.unwrap();
        self.didcomm
            .unpack(&text)
            .await
            .expect("the answer unpacks")
    }

    /// A request to the mediator, authcrypted, asking for answers on the same connection.
    pub async fn pack_request(&self, agent: &Agent, type_: &str, body: Value) -> String {
        let mut message = Message::new(type_, body)
            .from(self.did.clone())
            .to([agent.did.clone()]);
        message.extra.insert("return_route".into(), json!("all"));
        self.didcomm
            .pack_authcrypt(&message, &self.did, &[&agent.did], false)
            .await
            .unwrap()
    }

    /// Sends a request to the mediator; returns its HTTP answer.
    pub async fn send(&self, agent: &Agent, type_: &str, body: Value) -> reqwest::Response {
        let packed = self.pack_request(agent, type_, body).await;
        agent.post(ENCRYPTED_TYP, packed).await
    }

    /// Asks for mediation and registers its DID as a recipient.
    pub async fn connect(&self, agent: &Agent) {
        let grant = self.ask(agent, mediator::MEDIATE_REQUEST, json!({})).await;
        assert_eq!(grant.message.type_, mediator::MEDIATE_GRANT);
        assert_eq!(grant.message.body["routing_did"], json!([agent.did]));
        let update = self.update_recipient(agent, &self.did, "add").await;
        assert_eq!(update.message.body["updated"][0]["result"], "success");
    }

    /// One recipient update (`action` "add" or "remove" of `recipient`) and its answer.
    pub async fn update_recipient(&self, agent: &Agent, recipient: &str, action: &str) -> Unpacked {
        self.ask(
            agent,
            mediator::RECIPIENT_UPDATE,
            json!({"updates": [{"recipient_did": recipient, "action": action}]}),
        )
        .await
    }

    /// Picks up to `limit` waiting messages, unpacks each, and acknowledges them.
    pub async fn pick_up(&self, agent: &Agent, limit: u64) -> Vec<Message> {
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
            let envelope = attachment.data.text().expect("a delivered envelope");
            let inner = self
                .didcomm
                .unpack(&envelope)
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

    /// Sends `message` from this phone to `to` (an organisation's DID, served by the agent):
    /// authcrypted, posted to the endpoint the recipient's DID document names.
    pub async fn tell(&self, to: &str, message: Message) -> reqwest::StatusCode {
        let message = message.from(self.did.clone()).to([to.to_string()]);
        let packed = self
            .didcomm
            .pack_for_delivery(&message, Some(&self.did), to, false)
            .await
            .expect("packing for an organisation");
        let endpoint = packed
            .endpoint
            .expect("the organisation's DID names an endpoint");
        reqwest::Client::new()
            .post(endpoint)
            .header("content-type", ENCRYPTED_TYP)
            .body(packed.message)
            .send()
            .await
            .expect("the agent answers")
            .status()
    }

    /// Fetches the invitation at a short URL and answers it with a trust ping (`pthid` = the
    /// invitation's id); returns the invitation.
    pub async fn accept_invitation(&self, url: &str) -> Value {
        let invitation = fetch_invitation(url).await;
        let from = invitation["from"].as_str().expect("the inviter's DID");
        let ping = Message::new(mediator::PING, json!({ "response_requested": true }))
            .pthid(invitation["id"].as_str().unwrap());
        let status = self.tell(from, ping).await;
        assert_eq!(
            status, 202,
            "the first message to the organisation is taken"
        );
        invitation
    }

    /// How many messages the mediator holds for it (Pickup's status).
    pub async fn waiting(&self, agent: &Agent) -> u64 {
        let status = self.ask(agent, mediator::STATUS_REQUEST, json!({})).await;
        status.message.body["message_count"].as_u64().unwrap()
    }
}

/// An issuer with a did:key, sending through the phone's mediator.
pub struct Issuer {
    /// The did:key.
    pub did: String,
    /// Packs with the issuer's keys.
    pub didcomm: DidComm<Resolver>,
}

impl Default for Issuer {
    fn default() -> Issuer {
        Issuer::new()
    }
}

impl Issuer {
    /// An issuer with fresh keys.
    pub fn new() -> Issuer {
        let ring = Arc::new(KeyRing::new());
        let ed = ring.generate(KeyType::Ed25519);
        ring.derive_x25519(&ed).unwrap();
        Issuer {
            did: did_key(&ed),
            didcomm: DidComm::new(ring, Resolver::default()),
        }
    }

    /// A message to `phone`, packed for delivery through the mediator.
    pub async fn pack_for(&self, agent: &Agent, phone: &str, n: u32) -> String {
        let message = Message::new(
            lanyard_protocol::protocols::basic_message::MESSAGE,
            json!({ "content": format!("offer {n}") }),
        )
        .from(self.did.clone())
        .to([phone.to_string()]);
        let packed = self
            .didcomm
            .pack_for_delivery(&message, Some(&self.did), phone, false)
            .await
            .unwrap();
        assert!(
            packed
                .endpoint
                .as_deref()
                .is_some_and(|e| e.ends_with("/didcomm")),
            "the phone's DID routes through the mediator's endpoint"
        );
        let _ = agent;
        packed.message
    }

    /// Sends message `n` to `phone` through the mediator; returns the HTTP status.
    pub async fn send_to(&self, agent: &Agent, phone: &str, n: u32) -> reqwest::StatusCode {
        let packed = self.pack_for(agent, phone, n).await;
        agent.post(ENCRYPTED_TYP, packed).await.status()
    }
}

//! The mediator in the other protocol versions deployed stacks speak, over real HTTP and
//! WebSocket on loopback: Coordinate Mediation 2.0 (its `keylist-*` messages, answered in
//! 2.0), Message Pickup 4.0 (a `status` when nothing waits; live mode pushes only what arrives
//! after it is switched on, and a message pushed on a socket that dies before its
//! `messages-received` is delivered again), and
//! clients that name did:peer:2 keys in the legacy multibase-fragment form.

use lanyard_test_support as support;

use agent::mediator::Limits;
use futures_util::{SinkExt, StreamExt};
use lanyard_protocol::did::{multikey_encode, resolve_local};
use lanyard_protocol::didcomm::{encrypt_authcrypt, Message, Recipient, ENCRYPTED_TYP};
use lanyard_protocol::protocols::coordinate_mediation::v2;
use lanyard_protocol::protocols::pickup::v4;
use serde_json::{json, Value};
use support::{mediator, Agent, Issuer, Phone};
use tokio_tungstenite::tungstenite::Message as Frame;

#[tokio::test]
async fn coordinate_mediation_2_0_is_answered_in_2_0() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    let request = phone.ask(&agent, v2::MEDIATE_REQUEST, json!({})).await;
    assert_eq!(request.message.type_, v2::MEDIATE_GRANT);
    assert_eq!(
        request.message.body["routing_did"],
        json!(agent.did),
        "2.0 names the routing DID as a string"
    );

    let update = phone
        .ask(
            &agent,
            v2::KEYLIST_UPDATE,
            json!({"updates": [{"recipient_did": phone.did, "action": "add"}]}),
        )
        .await;
    assert_eq!(update.message.type_, v2::KEYLIST_UPDATE_RESPONSE);
    assert_eq!(
        update.message.body["updated"],
        json!([{"recipient_did": phone.did, "action": "add", "result": "success"}])
    );
    assert_eq!(Issuer::new().send_to(&agent, &phone.did, 1).await, 202);
    assert_eq!(phone.waiting(&agent).await, 1);

    let keylist = phone.ask(&agent, v2::KEYLIST_QUERY, json!({})).await;
    assert_eq!(keylist.message.type_, v2::KEYLIST);
    assert_eq!(
        keylist.message.body["keys"],
        json!([{ "recipient_did": phone.did }])
    );

    let removed = phone
        .ask(
            &agent,
            v2::KEYLIST_UPDATE,
            json!({"updates": [{"recipient_did": phone.did, "action": "remove"}]}),
        )
        .await;
    assert_eq!(removed.message.body["updated"][0]["result"], "success");
    assert_eq!(Issuer::new().send_to(&agent, &phone.did, 2).await, 404);
}

#[tokio::test]
async fn a_2_0_keylist_update_naming_the_did_as_recipient_key_registers_it() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    phone.ask(&agent, v2::MEDIATE_REQUEST, json!({})).await;
    let update = phone
        .ask(
            &agent,
            v2::KEYLIST_UPDATE,
            json!({"updates": [{"recipient_key": phone.did, "action": "add"}]}),
        )
        .await;
    assert_eq!(update.message.body["updated"][0]["result"], "success");
    assert_eq!(Issuer::new().send_to(&agent, &phone.did, 1).await, 202);

    // A raw key is no DID: refused, naming it, and nothing registered.
    let raw = phone
        .send(
            &agent,
            v2::KEYLIST_UPDATE,
            json!({"updates": [{"recipient_key": "8HH5gYEeNc3z7PYXmd54d4x6qAfCNrqQqEB3nS7Zfu7K", "action": "add"}]}),
        )
        .await;
    assert_eq!(raw.status(), 400);
    let problem: Value = raw.json().await.unwrap();
    assert_eq!(
        problem["body"]["comment"],
        "keylist-update: update 0: \"8HH5gYEeNc3z7PYXmd54d4x6qAfCNrqQqEB3nS7Zfu7K\" is not a DID"
    );
    let keylist = phone.ask(&agent, v2::KEYLIST_QUERY, json!({})).await;
    assert_eq!(
        keylist.message.body["keys"],
        json!([{ "recipient_did": phone.did }])
    );
}

#[tokio::test]
async fn pickup_4_0_is_answered_in_4_0_and_an_empty_queue_with_a_status() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;

    let status = phone.ask(&agent, v4::STATUS_REQUEST, json!({})).await;
    assert_eq!(status.message.type_, v4::STATUS);
    assert!(status.message.thid.is_some(), "4.0 threads its status");
    assert_eq!(status.message.body["message_count"], 0);

    // "If no messages are available to be sent, a status message MUST be sent immediately."
    let empty = phone
        .ask(&agent, v4::DELIVERY_REQUEST, json!({ "limit": 10 }))
        .await;
    assert_eq!(empty.message.type_, v4::STATUS);
    assert_eq!(empty.message.body["message_count"], 0);

    let issuer = Issuer::new();
    for n in 0..2 {
        assert_eq!(issuer.send_to(&agent, &phone.did, n).await, 202);
    }
    let delivery = phone
        .ask(&agent, v4::DELIVERY_REQUEST, json!({ "limit": 10 }))
        .await;
    assert_eq!(delivery.message.type_, v4::DELIVERY);
    let ids = attachment_ids(&delivery.message);
    assert_eq!(ids.len(), 2);
    let ack = phone
        .ask(
            &agent,
            v4::MESSAGES_RECEIVED,
            json!({ "message_id_list": ids }),
        )
        .await;
    assert_eq!(ack.message.type_, v4::STATUS);
    assert_eq!(ack.message.body["message_count"], 0);

    // 3.0 is still answered in 3.0, with a status when nothing waits.
    let v3 = phone
        .ask(&agent, mediator::DELIVERY_REQUEST, json!({ "limit": 10 }))
        .await;
    assert_eq!(v3.message.type_, mediator::STATUS);
}

#[tokio::test]
async fn pickup_4_0_live_mode_pushes_only_what_arrives_after_it_is_switched_on() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;
    let issuer = Issuer::new();
    assert_eq!(issuer.send_to(&agent, &phone.did, 1).await, 202);
    let queued = phone
        .ask(&agent, v4::STATUS_REQUEST, json!({}))
        .await
        .message
        .body["message_count"]
        .clone();
    assert_eq!(queued, 1);

    let mut socket = live_socket(&agent, &phone).await;
    assert_eq!(issuer.send_to(&agent, &phone.did, 2).await, 202);
    // "Messages already in the queue are not affected by Live Mode; they MUST still be
    // requested with delivery-request messages": the first push holds the new one only.
    let pushed = next_of(&phone, &mut socket, v4::DELIVERY).await;
    let pushed_ids = attachment_ids(&pushed);
    assert_eq!(pushed_ids.len(), 1, "only the message that arrived live");

    // The one queued before is handed out when asked for, on the same socket.
    let asked = ask_on(
        &agent,
        &phone,
        &mut socket,
        v4::DELIVERY_REQUEST,
        json!({ "limit": 10 }),
        v4::DELIVERY,
    )
    .await;
    let asked_ids = attachment_ids(&asked);
    assert_eq!(
        asked_ids.len(),
        2,
        "the queue holds both until acknowledged"
    );
    assert!(asked_ids.contains(&pushed_ids[0]));
    let status = ask_on(
        &agent,
        &phone,
        &mut socket,
        v4::MESSAGES_RECEIVED,
        json!({ "message_id_list": asked_ids }),
        v4::STATUS,
    )
    .await;
    assert_eq!(status.body["message_count"], 0);
}

#[tokio::test]
async fn pickup_4_0_live_mode_delivers_again_what_a_dying_socket_did_not_acknowledge() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;
    let issuer = Issuer::new();

    let mut socket = live_socket(&agent, &phone).await;
    assert_eq!(issuer.send_to(&agent, &phone.did, 7).await, 202);
    let pushed = next_of(&phone, &mut socket, v4::DELIVERY).await;
    let ids = attachment_ids(&pushed);
    assert_eq!(ids.len(), 1, "the new message is pushed in 4.0");
    // The socket dies before the phone acknowledges.
    drop(socket);

    // Still queued: the next pickup over HTTP sees it ...
    assert_eq!(phone.waiting(&agent).await, 1);
    // ... and on the next live socket a delivery-request hands it out again, under the same
    // id (4.0 does not push what was queued before live mode was switched on).
    let mut socket = live_socket(&agent, &phone).await;
    let again = ask_on(
        &agent,
        &phone,
        &mut socket,
        v4::DELIVERY_REQUEST,
        json!({ "limit": 10 }),
        v4::DELIVERY,
    )
    .await;
    assert_eq!(attachment_ids(&again), ids, "delivered again");
    let status = ask_on(
        &agent,
        &phone,
        &mut socket,
        v4::MESSAGES_RECEIVED,
        json!({ "message_id_list": ids }),
        v4::STATUS,
    )
    .await;
    assert_eq!(status.body["message_count"], 0);
    assert_eq!(status.body["live_delivery"], true);
    drop(socket);

    // Acknowledged, it is gone.
    assert_eq!(phone.waiting(&agent).await, 0);
    let empty = phone
        .ask(&agent, v4::DELIVERY_REQUEST, json!({ "limit": 10 }))
        .await;
    assert_eq!(empty.message.type_, v4::STATUS);
}

#[tokio::test]
async fn discover_features_lists_every_version_offered() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    let disclose = phone
        .ask(
            &agent,
            mediator::QUERIES,
            json!({"queries": [
                {"feature-type": "protocol", "match": "https://didcomm.org/coordinate-mediation/*"},
                {"feature-type": "protocol", "match": "https://didcomm.org/message-pickup/*"},
            ]}),
        )
        .await;
    let ids: Vec<&str> = disclose.message.body["disclosures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "https://didcomm.org/coordinate-mediation/3.0",
            "https://didcomm.org/coordinate-mediation/2.0",
            "https://didcomm.org/message-pickup/4.0",
        ]
    );
}

/// A DID's first key-agreement key: its `#key-N` id and the key.
fn agreement(did: &str) -> (String, lanyard_protocol::keys::PublicKey) {
    resolve_local(did).unwrap().key_agreement_keys()[0].clone()
}

/// A did:peer:2 key's id in the form peerdid 0.5 and older derive: the DID, `#`, and the
/// key's multibase value without its `z`.
fn legacy_kid(did: &str, key: &lanyard_protocol::keys::PublicKey) -> String {
    format!("{did}#{}", &multikey_encode(key)[1..])
}

/// A mediate-request from `phone`, authcrypted to the mediator's key-agreement key named
/// `recipient_kid`, from the phone's key named `sender_kid`.
fn mediate_request_to(
    agent: &Agent,
    phone: &Phone,
    recipient_kid: String,
    sender_kid: String,
) -> String {
    let mediator_key = agreement(&agent.did).1;
    let phone_key = agreement(&phone.did).1;
    let mut message = Message::new(mediator::MEDIATE_REQUEST, json!({}))
        .from(phone.did.clone())
        .to([agent.did.clone()]);
    message.extra.insert("return_route".into(), json!("all"));
    encrypt_authcrypt(
        &phone.ring,
        message.to_json().as_bytes(),
        &Recipient {
            kid: sender_kid,
            key: phone_key,
        },
        &[Recipient {
            kid: recipient_kid,
            key: mediator_key,
        }],
    )
    .unwrap()
}

/// Posts `envelope` and checks it was answered with a mediate-grant the phone can open.
async fn granted(agent: &Agent, phone: &Phone, envelope: String) {
    let response = agent.post(ENCRYPTED_TYP, envelope).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    let grant = phone.didcomm.unpack(&text).await.unwrap();
    assert_eq!(grant.message.type_, mediator::MEDIATE_GRANT);
}

#[tokio::test]
async fn an_envelope_naming_the_mediators_key_in_the_legacy_form_is_opened() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    let mediator_key = agreement(&agent.did).1;
    let phone_kid = agreement(&phone.did).0;
    let legacy = legacy_kid(&agent.did, &mediator_key);
    assert!(legacy.contains("#6LS"), "{legacy}");
    // Before the fix, this was refused as e.p.msg.not-for-me.
    let envelope = mediate_request_to(&agent, &phone, legacy, phone_kid);
    granted(&agent, &phone, envelope).await;
}

#[tokio::test]
async fn a_sender_naming_its_own_key_in_the_legacy_form_is_recognised() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    let mediator_kid = agreement(&agent.did).0;
    let phone_key = agreement(&phone.did).1;
    // Before the fix, the sender's key was not found under this id (e.p.msg.unreadable).
    let envelope = mediate_request_to(
        &agent,
        &phone,
        mediator_kid,
        legacy_kid(&phone.did, &phone_key),
    );
    granted(&agent, &phone, envelope).await;
}

#[tokio::test]
async fn a_legacy_fragment_naming_no_key_of_the_did_is_still_not_for_the_mediator() {
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    let phone_kid = agreement(&phone.did).0;
    // The legacy form of a key the mediator's DID does not list.
    let stranger = lanyard_protocol::keys::PublicKey::x25519([3; 32]);
    let response = agent
        .post(
            ENCRYPTED_TYP,
            mediate_request_to(&agent, &phone, legacy_kid(&agent.did, &stranger), phone_kid),
        )
        .await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["body"]["code"], "e.p.msg.not-for-me");
}

/// A WebSocket to the mediator with Pickup 4.0 live delivery switched on (its status read).
async fn live_socket(
    agent: &Agent,
    phone: &Phone,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let ws_url = format!("{}/ws", agent.url.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let live_on = phone
        .pack_request(
            agent,
            v4::LIVE_DELIVERY_CHANGE,
            json!({"live_delivery": true}),
        )
        .await;
    socket.send(Frame::Text(live_on.into())).await.unwrap();
    let status = next_of(phone, &mut socket, v4::STATUS).await;
    assert_eq!(status.body["live_delivery"], true);
    socket
}

/// Sends a `type_` request with `body` on the live socket and reads the next `answer` frame.
async fn ask_on(
    agent: &Agent,
    phone: &Phone,
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    type_: &str,
    body: Value,
    answer: &str,
) -> Message {
    let request = phone.pack_request(agent, type_, body).await;
    socket.send(Frame::Text(request.into())).await.unwrap();
    next_of(phone, socket, answer).await
}

/// The next frame of type `type_` (a status or a push before it is skipped), within 10 s.
async fn next_of(
    phone: &Phone,
    socket: &mut (impl StreamExt<Item = Result<Frame, tokio_tungstenite::tungstenite::Error>> + Unpin),
    type_: &str,
) -> Message {
    loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("a frame arrives within 10 s")
            .unwrap()
            .unwrap();
        let text = frame.into_text().unwrap();
        let message = phone
            .didcomm
            .unpack(&text)
            .await
            .expect("frames unpack")
            .message;
        assert!(
            message.type_ == v4::STATUS || message.type_ == v4::DELIVERY,
            "a 4.0 session is answered in 4.0, not {}",
            message.type_
        );
        if message.type_ == type_ {
            return message;
        }
    }
}

/// The queue ids a delivery carries.
fn attachment_ids(delivery: &Message) -> Vec<String> {
    delivery
        .attachments
        .iter()
        .map(|a| a.id.clone().unwrap())
        .collect()
}

/// A mediator that speaks only Coordinate Mediation 2.0 and Pickup 4.0, as deployed 2.0
/// stacks do.
async fn a_2_0_and_4_0_only_mediator() -> Agent {
    Agent::start(Limits {
        offered:
            "https://didcomm.org/coordinate-mediation/2.0,https://didcomm.org/message-pickup/4.0"
                .parse()
                .unwrap(),
        ..Limits::default()
    })
    .await
}

#[tokio::test]
async fn a_mediator_answers_only_the_versions_it_offers() {
    let agent = a_2_0_and_4_0_only_mediator().await;
    let phone = Phone::new(&agent.did);
    let refused = phone
        .ask(&agent, mediator::MEDIATE_REQUEST, json!({}))
        .await;
    assert_eq!(refused.message.type_, mediator::PROBLEM_REPORT);
    assert_eq!(refused.message.body["code"], "e.p.msg.unsupported");
    assert_eq!(
        refused.message.body["comment"],
        format!(
            "this mediator does not handle {}",
            mediator::MEDIATE_REQUEST
        )
    );
    let disclose = phone
        .ask(
            &agent,
            mediator::QUERIES,
            json!({"queries": [{"feature-type": "protocol", "match": "*"}]}),
        )
        .await;
    let ids: Vec<&str> = disclose.message.body["disclosures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&v2::PIURI) && ids.contains(&v4::PIURI),
        "{ids:?}"
    );
    assert!(
        !ids.iter().any(|id| id.ends_with("coordinate-mediation/3.0")
            || id.ends_with("messagepickup/3.0")),
        "{ids:?}"
    );
}

/// The wallet asks which versions the mediator speaks (Discover Features), mediates in 2.0
/// when 3.0 is not offered and picks up in 4.0 when 3.0 is not offered.
#[tokio::test]
async fn the_wallet_falls_back_to_coordinate_mediation_2_0_and_pickup_4_0() {
    let agent = a_2_0_and_4_0_only_mediator().await;
    let created = support::create_invitation(&agent, json!({"label": "Old Mediator"})).await;
    let (wallet, _events, _dir) = support::wallet();
    // Before the fallback, the wallet's 3.0 mediate-request was refused as unsupported.
    wallet
        .accept_invitation(created["url"].as_str().unwrap())
        .await
        .expect("the wallet mediates in 2.0");
    let connection = wallet.connections().unwrap().remove(0);
    // Its connection DID was registered with a 2.0 keylist-update: forwards for it are taken.
    let issuer = Issuer::new();
    assert_eq!(issuer.send_to(&agent, &connection.my_did, 1).await, 202);
    let report = wallet.sync().await.expect("the wallet picks up in 4.0");
    assert_eq!(report.processed + report.refused, 1, "{report:?}");
    // Acknowledged in 4.0: nothing comes again.
    let again = wallet.sync().await.unwrap();
    assert_eq!(
        again.processed + again.refused + again.duplicates,
        0,
        "{again:?}"
    );
}

#[tokio::test]
async fn a_forward_naming_the_recipient_by_its_legacy_key_id_is_queued_for_it() {
    use lanyard_protocol::protocols::routing::{forward_message, Forward};
    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;
    let issuer = Issuer::new();
    let inner = issuer
        .didcomm
        .pack_authcrypt(
            &Message::new(
                lanyard_protocol::protocols::basic_message::MESSAGE,
                json!({ "content": "legacy" }),
            )
            .from(issuer.did.clone())
            .to([phone.did.clone()]),
            &issuer.did,
            &[&phone.did],
            false,
        )
        .await
        .unwrap();
    let phone_key = agreement(&phone.did).1;
    let forward = forward_message(&Forward {
        next: legacy_kid(&phone.did, &phone_key),
        payload: serde_json::from_str(&inner).unwrap(),
    });
    let packed = issuer
        .didcomm
        .pack_anoncrypt(&forward, &[&agent.did])
        .await
        .unwrap();
    assert_eq!(agent.post(ENCRYPTED_TYP, packed).await.status(), 202);
    let picked = phone.pick_up(&agent, 10).await;
    assert_eq!(picked.len(), 1);
    assert_eq!(picked[0].body["content"], "legacy");
}

#[tokio::test]
async fn the_wallet_in_live_mode_over_pickup_4_0_asks_for_what_was_queued_and_takes_pushes() {
    use support::OrgClient;
    use wallet_core::WalletEvent;
    let agent = a_2_0_and_4_0_only_mediator().await;
    let acme = OrgClient::create(&agent, "Acme Gym").await;
    let template = acme.template("Membership").await;
    let customer = acme.onboard_member(&template).await;
    let (wallet, events, _dir) = support::wallet();
    wallet.set_auto_accept(true);
    wallet
        .accept_invitation(customer["invitation"]["url"].as_str().unwrap())
        .await
        .unwrap();

    // The auto-issued offer waits at the mediator, queued before live mode: a 4.0 mediator
    // does not push it, so the wallet must ask for it (before, it waited for the next sync).
    let live = wallet.start_live().await.unwrap();
    events
        .wait_for("the queued offer's credential", |e| {
            matches!(e, WalletEvent::CredentialStored { .. })
        })
        .await;
    // A credential offered while live arrives by push.
    let (status, _) = acme
        .api(
            "POST",
            "/credential",
            Some(json!({ "customerId": customer["id"], "templateId": template, "values": { "skill": "bouldering", "level": "silver", "holderFullName": "Jane Doe" } })),
        )
        .await;
    assert_eq!(status, 201);
    events
        .wait_for("the live credential", |e| {
            matches!(e, WalletEvent::CredentialStored { .. })
                && events
                    .all()
                    .iter()
                    .filter(|e| matches!(e, WalletEvent::CredentialStored { .. }))
                    .count()
                    == 2
        })
        .await;
    live.stop().await;
}

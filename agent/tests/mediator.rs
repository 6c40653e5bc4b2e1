//! The mediator over real HTTP on loopback, driven by clients built on `wallet-core`'s
//! envelopes: a phone asks for mediation, registers its DID, an issuer's messages reach it
//! through forwards while it is offline, and it picks them up and acknowledges them.

use lanyard_test_support as support;

use agent::mediator::Limits;
use serde_json::{json, Value};
use support::{mediator, Agent, Issuer, Phone};

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

    // The metrics tell the same story.
    let metrics = agent.metrics().await;
    for line in [
        "lanyard_forwards_queued_total 2",
        "lanyard_queue_depth 2",
        "lanyard_refusals_total{code=\"w.p.msg.queue-full\"} 1",
        "lanyard_live_connections 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
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
    let update = thief.update_recipient(&agent, &phone.did, "add").await;
    assert_eq!(update.message.body["updated"][0]["result"], "client_error");
    let update = phone.update_recipient(&agent, &phone.did, "remove").await;
    assert_eq!(update.message.body["updated"][0]["result"], "success");
    assert_eq!(Issuer::new().send_to(&agent, &phone.did, 1).await, 404);
}

/// A phone with the app open: live mode over a real WebSocket.
#[tokio::test]
async fn live_mode_pushes_messages_at_once_over_a_websocket() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Frame;

    let agent = Agent::start(Limits::default()).await;
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;
    let issuer = Issuer::new();
    // One message waits from while the phone was offline.
    assert_eq!(issuer.send_to(&agent, &phone.did, 0).await, 202);

    let ws_url = format!("{}/ws", agent.url.replace("http://", "ws://"));
    let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let live_on = phone
        .pack_request(
            &agent,
            mediator::LIVE_DELIVERY_CHANGE,
            json!({"live_delivery": true}),
        )
        .await;
    socket.send(Frame::Text(live_on.into())).await.unwrap();

    // Frames are DIDComm messages; read them with a bound on the wait.
    async fn next_message(
        phone: &Phone,
        socket: &mut (impl StreamExt<Item = Result<Frame, tokio_tungstenite::tungstenite::Error>>
                  + Unpin),
    ) -> lanyard_protocol::didcomm::Message {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("a frame arrives within 10 s")
            .unwrap()
            .unwrap();
        let text = frame.into_text().unwrap();
        phone
            .didcomm
            .unpack(&text)
            .await
            .expect("frames unpack")
            .message
    }

    let mut contents = Vec::new();
    let mut ids = Vec::new();
    let mut statuses = 0;
    while contents.is_empty() || statuses == 0 {
        let message = next_message(&phone, &mut socket).await;
        match message.type_.as_str() {
            mediator::STATUS => {
                assert_eq!(message.body["live_delivery"], true);
                statuses += 1;
            }
            mediator::DELIVERY => {
                for attachment in &message.attachments {
                    ids.push(attachment.id.clone().unwrap());
                    let envelope = attachment.data.text().expect("a delivered envelope");
                    let inner = phone.didcomm.unpack(&envelope).await.unwrap();
                    contents.push(inner.message.body["content"].clone());
                }
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        contents,
        vec![json!("offer 0")],
        "the waiting message is pushed on switching live on"
    );

    // A new forward is pushed while the socket is open.
    assert_eq!(issuer.send_to(&agent, &phone.did, 1).await, 202);
    let pushed = next_message(&phone, &mut socket).await;
    assert_eq!(pushed.type_, mediator::DELIVERY);
    assert_eq!(
        pushed.attachments.len(),
        1,
        "only the new message is pushed"
    );
    ids.push(pushed.attachments[0].id.clone().unwrap());

    // Acknowledging over the socket empties the queue.
    let ack = phone
        .pack_request(
            &agent,
            mediator::MESSAGES_RECEIVED,
            json!({"message_id_list": ids}),
        )
        .await;
    socket.send(Frame::Text(ack.into())).await.unwrap();
    let status = next_message(&phone, &mut socket).await;
    assert_eq!(status.type_, mediator::STATUS);
    assert_eq!(status.body["message_count"], 0);
    socket.close(None).await.unwrap();
    assert_eq!(phone.waiting(&agent).await, 0);

    // Over plain HTTP, live mode is declined with a problem report.
    let declined = phone
        .ask(
            &agent,
            mediator::LIVE_DELIVERY_CHANGE,
            json!({"live_delivery": true}),
        )
        .await;
    assert_eq!(declined.message.type_, mediator::PROBLEM_REPORT);
    assert_eq!(declined.message.body["code"], "e.m.live-mode-not-supported");
}

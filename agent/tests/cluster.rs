//! Several agents behind nginx: the balancer alternates between its upstreams and carries the
//! WebSocket upgrade.

use lanyard_test_support as support;

use axum::extract::ws::{Message as WsMessage, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use support::Nginx;

/// A tiny upstream on a loopback port that answers `/who` with its name and the
/// `X-Forwarded-For` it was sent, and `/ws` with a WebSocket that echoes `NAME: frame`.
async fn named_upstream(name: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let app = axum::Router::new()
        .route(
            "/who",
            get(move |headers: HeaderMap| async move {
                let forwarded = headers
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_string();
                format!("{name} {forwarded}")
            }),
        )
        .route(
            "/ws",
            get(move |upgrade: WebSocketUpgrade| async move {
                upgrade.on_upgrade(move |mut socket| async move {
                    while let Some(Ok(WsMessage::Text(text))) = socket.recv().await {
                        let echo = format!("{name}: {}", text.as_str());
                        if socket.send(WsMessage::Text(echo.into())).await.is_err() {
                            return;
                        }
                    }
                })
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

#[tokio::test]
async fn nginx_alternates_requests_between_upstreams_and_carries_websockets() {
    let a = named_upstream("a").await;
    let b = named_upstream("b").await;
    let nginx = Nginx::start(&[&a, &b]);

    // One client keeping its connection to nginx: the upstream still changes every request.
    let client = reqwest::Client::new();
    let mut answers = Vec::new();
    for _ in 0..6 {
        let response = client
            .get(format!("{}/who", nginx.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", nginx.error_log());
        answers.push(response.text().await.unwrap());
    }
    for pair in answers.windows(2) {
        assert_ne!(
            pair[0], pair[1],
            "consecutive requests hit one upstream: {answers:?}"
        );
    }
    for name in ["a", "b"] {
        let hits = answers
            .iter()
            .filter(|answer| answer.starts_with(&format!("{name} ")))
            .count();
        assert_eq!(hits, 3, "{name} took {hits} of 6: {answers:?}");
    }
    assert!(
        answers.iter().all(|answer| answer.ends_with(" 127.0.0.1")),
        "X-Forwarded-For names the client: {answers:?}"
    );
    let log = nginx.access_log();
    assert_eq!(
        log.lines()
            .filter(|l| l.contains(&format!("upstream={a}")))
            .count(),
        3,
        "{log}"
    );

    // Two WebSockets through nginx land on the two upstreams and stay open both ways.
    let ws_url = format!("{}/ws", nginx.url.replace("http://", "ws://"));
    let mut names = Vec::new();
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
        for n in 0..2 {
            socket
                .send(tokio_tungstenite::tungstenite::Message::Text(
                    format!("hello {n}").into(),
                ))
                .await
                .unwrap();
            let echo = socket.next().await.unwrap().unwrap().into_text().unwrap();
            let (name, text) = echo.split_once(": ").unwrap();
            assert_eq!(text, format!("hello {n}"));
            names.push(name.to_string());
        }
        sockets.push(socket);
    }
    assert_eq!(names[0], names[1], "one socket stays on one upstream");
    assert_eq!(names[2], names[3], "one socket stays on one upstream");
    assert_ne!(
        names[0], names[2],
        "the second socket went to the other upstream"
    );
}

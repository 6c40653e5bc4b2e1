//! The agent's HTTP surface: the DIDComm endpoint (`POST /didcomm`), live mode over a
//! WebSocket (`GET /ws`: DIDComm messages as text frames, Pickup 3.0 live delivery),
//! `/health`, and `GET /mediator` (the mediator's DID and document).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use wallet_core::did::resolve_local;
use wallet_core::didcomm::{DidCommError, ENCRYPTED_TYP, PROBLEM_REPORT_TYPE, SIGNED_TYP};

use crate::mediator::{Mediator, Outcome, Refusal, Session};
use crate::storage::{MediatorStorage, StorageError};

/// Builds the router over a mediator.
pub fn router<S: MediatorStorage>(mediator: Arc<Mediator<S>>, max_message_bytes: usize) -> Router {
    let ws_limit = max_message_bytes;
    Router::new()
        .route(
            "/ws",
            get(
                move |state: State<Arc<Mediator<S>>>, upgrade: WebSocketUpgrade| {
                    live_upgrade(state, upgrade, ws_limit)
                },
            ),
        )
        .route("/health", get(health))
        .route("/mediator", get(mediator_info::<S>))
        .route(
            "/didcomm",
            post(inbound::<S>).layer(DefaultBodyLimit::max(max_message_bytes)),
        )
        .with_state(mediator)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn mediator_info<S: MediatorStorage>(State(mediator): State<Arc<Mediator<S>>>) -> Response {
    match resolve_local(mediator.did()) {
        Ok(doc) => Json(json!({ "did": mediator.did(), "didDocument": doc })).into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, "e.p.me", &e.to_string()),
    }
}

/// A Report Problem 2.0 message as plaintext JSON.
fn problem_json(code: &str, comment: &str) -> serde_json::Value {
    json!({
        "id": uuid_like(),
        "type": PROBLEM_REPORT_TYPE,
        "body": { "code": code, "comment": comment },
    })
}

/// A Report Problem 2.0 message as a plaintext JSON body.
fn problem(status: StatusCode, code: &str, comment: &str) -> Response {
    (status, Json(problem_json(code, comment))).into_response()
}

async fn live_upgrade<S: MediatorStorage>(
    State(mediator): State<Arc<Mediator<S>>>,
    upgrade: WebSocketUpgrade,
    max_message_bytes: usize,
) -> Response {
    upgrade
        .max_message_size(max_message_bytes)
        .on_upgrade(move |socket| live(socket, mediator))
}

/// One live connection: every text frame is a DIDComm message handled as if posted with
/// `return_route: all`; once the client switched live delivery on, queued messages are
/// pushed as `delivery` frames, at once and whenever a forward for the client arrives.
async fn live<S: MediatorStorage>(mut socket: WebSocket, mediator: Arc<Mediator<S>>) {
    let mut session = Session::default();
    let mut notifier: Option<(String, Arc<tokio::sync::Notify>)> = None;
    loop {
        if notifier.is_none() && session.live {
            if let Some(client) = session.client.clone() {
                notifier = Some((client.clone(), mediator.live_notifier(&client)));
            }
        }
        let wake = notifier.as_ref().map(|(_, n)| n.clone());
        let notified = async move {
            match wake {
                Some(n) => n.notified_owned().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(notified);
        // Register interest before looking at the queue, so no forward slips in between.
        let woke = futures_poll_once(notified.as_mut()).await.is_some();
        match mediator.live_delivery(&mut session).await {
            Ok(Some(delivery)) => {
                if socket.send(WsMessage::Text(delivery.into())).await.is_err() {
                    break;
                }
                continue;
            }
            Ok(None) => {}
            Err(refusal) => tracing::warn!(reason = %refusal, "live delivery failed"),
        }
        if woke {
            // Already notified (and so finished): look at the queue again with a fresh waiter.
            continue;
        }
        tokio::select! {
            frame = socket.recv() => {
                let text = match frame {
                    Some(Ok(WsMessage::Text(text))) => text.to_string(),
                    Some(Ok(WsMessage::Binary(bytes))) => match String::from_utf8(bytes.to_vec()) {
                        Ok(text) => text,
                        Err(_) => {
                            let answer = problem_json("e.p.msg.unreadable", "the frame is not UTF-8");
                            if socket.send(WsMessage::Text(answer.to_string().into())).await.is_err() {
                                break;
                            }
                            continue;
                        }
                    },
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let answer = match mediator.handle_in(&text, Some(&mut session)).await {
                    Ok(Outcome::Reply(packed)) => Some(packed),
                    Ok(Outcome::Accepted) => None,
                    Err(refusal) => Some(problem_json(refusal.problem_code(), &refusal.to_string()).to_string()),
                };
                if let Some(answer) = answer {
                    if socket.send(WsMessage::Text(answer.into())).await.is_err() {
                        break;
                    }
                }
            }
            _ = &mut notified => {}
        }
    }
    if let Some((client, notifier)) = notifier {
        mediator.release_notifier(&client, notifier);
    }
}

/// Polls a future once (to register a `Notified` waiter) without waiting for it.
async fn futures_poll_once<F: std::future::Future + Unpin>(future: F) -> Option<F::Output> {
    let mut future = future;
    std::future::poll_fn(|cx| match std::pin::Pin::new(&mut future).poll(cx) {
        std::task::Poll::Ready(output) => std::task::Poll::Ready(Some(output)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

fn uuid_like() -> String {
    wallet_core::didcomm::Message::new("x", json!({})).id
}

fn status_of(refusal: &Refusal) -> StatusCode {
    match refusal {
        Refusal::Envelope(DidCommError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
        Refusal::Envelope(_) | Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
        Refusal::UnknownRecipient(_) => StatusCode::NOT_FOUND,
        Refusal::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Refusal::NotMediated(_) => StatusCode::FORBIDDEN,
        Refusal::Storage(StorageError::QueueFull { .. }) => StatusCode::TOO_MANY_REQUESTS,
        Refusal::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn inbound<S: MediatorStorage>(
    State(mediator): State<Arc<Mediator<S>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if media_type != ENCRYPTED_TYP && media_type != SIGNED_TYP {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "e.p.msg.media-type",
            &format!("Content-Type must be {ENCRYPTED_TYP} or {SIGNED_TYP}, not {media_type:?}"),
        );
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "e.p.msg.unreadable",
            "the body is not UTF-8",
        );
    };
    match mediator.handle(text).await {
        Ok(Outcome::Accepted) => StatusCode::ACCEPTED.into_response(),
        Ok(Outcome::Reply(packed)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, ENCRYPTED_TYP)],
            packed,
        )
            .into_response(),
        Err(refusal) => {
            let status = status_of(&refusal);
            tracing::info!(%status, code = refusal.problem_code(), reason = %refusal, "refused");
            problem(status, refusal.problem_code(), &refusal.to_string())
        }
    }
}

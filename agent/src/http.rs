//! The agent's HTTP surface: the DIDComm endpoint (`POST /didcomm`), `/health`, and
//! `GET /mediator` (the mediator's DID and document, for clients that start from the URL).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use wallet_core::did::resolve_local;
use wallet_core::didcomm::{DidCommError, ENCRYPTED_TYP, PROBLEM_REPORT_TYPE, SIGNED_TYP};

use crate::mediator::{Mediator, Outcome, Refusal};
use crate::storage::{MediatorStorage, StorageError};

/// Builds the router over a mediator.
pub fn router<S: MediatorStorage>(mediator: Arc<Mediator<S>>, max_message_bytes: usize) -> Router {
    Router::new()
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

/// A Report Problem 2.0 message as a plaintext JSON body.
fn problem(status: StatusCode, code: &str, comment: &str) -> Response {
    let body = json!({
        "id": uuid_like(),
        "type": PROBLEM_REPORT_TYPE,
        "body": { "code": code, "comment": comment },
    });
    (status, Json(body)).into_response()
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

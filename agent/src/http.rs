//! The agent's HTTP surface: the DIDComm endpoint (`POST /didcomm`), live mode over a
//! WebSocket (`GET /ws`: DIDComm messages as text frames, Pickup 3.0 live delivery),
//! `/health`, `GET /mediator` (the mediator's DID and document), invitations at `/i/{code}`
//! (JSON, HTML page, QR as PNG and SVG) created through `POST /admin/invitations`, and the
//! `.well-known` files that let the apps open invite links. [`serve`] runs them on hyper with
//! the limits a public endpoint needs: a cap on connections (and on live sockets), a header
//! read timeout, a timeout per request, an idle timeout on live sockets, and a graceful
//! shutdown with a deadline.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::ws::{Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lanyard_protocol::did::resolve_local;
use lanyard_protocol::didcomm::{DidCommError, ENCRYPTED_TYP, SIGNED_TYP};
use serde_json::json;

use crate::invitations::{self, AppLinks, InvitationError, InvitationStore, NewInvitation};
use crate::issuer::store::IssuerStorage;
use crate::mediator::{
    problem_json, LiveSession, Mediator, MediatorStorage, Outcome, Push, Refusal,
};
use crate::router::DidCommRouter;
use crate::storage::StorageError;

/// What the handlers share.
pub(crate) struct AppState<S, I> {
    /// Where inbound envelopes go (unpacked once, to the mediator or an organisation).
    pub(crate) router: Arc<DidCommRouter<S, I>>,
    /// The mediator (its DID, metrics and queue depth).
    pub(crate) mediator: Arc<Mediator<S>>,
    /// The invitations hosted at `/i/{code}`.
    pub(crate) invitations: Arc<dyn InvitationStore>,
    /// The base URL invite links and the DIDComm endpoint are published under.
    pub(crate) public_url: String,
    pub(crate) links: AppLinks,
    pub(crate) admin_token: crate::admin::AdminToken,
    pub(crate) apple_app_ids: Vec<String>,
    pub(crate) android_package: Option<String>,
    pub(crate) android_cert_sha256: Vec<String>,
    pub(crate) max_message_bytes: usize,
    /// Live sockets still free to open.
    pub(crate) live_slots: Arc<tokio::sync::Semaphore>,
    /// How long a live socket may go without a frame from its client (it is pinged halfway).
    pub(crate) live_idle: std::time::Duration,
    /// Turns true when the agent shuts down: live sockets close.
    pub(crate) closing: tokio::sync::watch::Receiver<bool>,
    /// The shared database, when the agent runs on PostgreSQL.
    pub(crate) database: Option<crate::postgres::Database>,
}

type Shared<S, I> = State<Arc<AppState<S, I>>>;

/// Builds the router.
pub(crate) fn router<S: MediatorStorage, I: IssuerStorage>(state: Arc<AppState<S, I>>) -> Router {
    let max_message_bytes = state.max_message_bytes;
    Router::new()
        .route("/ws", get(live_upgrade::<S, I>))
        .route("/health", get(health::<S, I>))
        .route("/metrics", get(metrics::<S, I>))
        .route("/mediator", get(mediator_info::<S, I>))
        .route(
            "/didcomm",
            post(inbound::<S, I>).layer(DefaultBodyLimit::max(max_message_bytes)),
        )
        .route(
            "/admin/invitations",
            post(create_invitation::<S, I>).layer(DefaultBodyLimit::max(64 * 1024)),
        )
        .route("/i/{code}", get(invitation::<S, I>))
        .route("/i/{code}/qr.png", get(invitation_png::<S, I>))
        .route("/i/{code}/qr.svg", get(invitation_svg::<S, I>))
        .route(
            "/.well-known/apple-app-site-association",
            get(apple_app_site_association::<S, I>),
        )
        .route("/.well-known/assetlinks.json", get(assetlinks::<S, I>))
        .with_state(state)
}

async fn metrics<S: MediatorStorage, I: IssuerStorage>(State(state): Shared<S, I>) -> Response {
    let metrics = state.mediator.metrics();
    if let Ok(total) = state.mediator.storage().queued_total().await {
        metrics.queue_depth.set(total as i64);
    }
    if let Some(database) = &state.database {
        metrics.set_pool(database.pool_status());
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
        .into_response()
}

/// The agent's health: `ok` with its version and store; on PostgreSQL also whether the
/// database answers (503 when it does not; the reason goes to the log, never to the caller).
async fn health<S: MediatorStorage, I: IssuerStorage>(State(state): Shared<S, I>) -> Response {
    let version = env!("CARGO_PKG_VERSION");
    let Some(database) = &state.database else {
        return Json(json!({ "status": "ok", "version": version, "store": "sled" }))
            .into_response();
    };
    let pool = database.pool_status();
    let pool = json!({ "max": pool.max_size, "open": pool.size, "idle": pool.available, "waiting": pool.waiting });
    match tokio::time::timeout(std::time::Duration::from_secs(2), database.ping()).await {
        Ok(Ok(())) => Json(json!({
            "status": "ok",
            "version": version,
            "store": "postgresql",
            "database": { "status": "ok", "pool": pool },
        }))
        .into_response(),
        outcome => {
            let reason = match outcome {
                Ok(Err(error)) => error.to_string(),
                _ => "no answer within 2 s".to_string(),
            };
            tracing::warn!(%reason, "health: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "unavailable",
                    "version": version,
                    "store": "postgresql",
                    "database": { "status": "unreachable", "pool": pool },
                })),
            )
                .into_response()
        }
    }
}

async fn mediator_info<S: MediatorStorage, I: IssuerStorage>(
    State(state): Shared<S, I>,
) -> Response {
    let did = state.mediator.did();
    match resolve_local(did) {
        Ok(doc) => Json(json!({ "did": did, "didDocument": doc })).into_response(),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, "e.p.me", &e.to_string()),
    }
}

/// A Report Problem 2.0 message as a plaintext JSON body.
fn problem(status: StatusCode, code: &str, comment: &str) -> Response {
    (status, Json(problem_json(code, comment))).into_response()
}

async fn live_upgrade<S: MediatorStorage, I: IssuerStorage>(
    State(state): Shared<S, I>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Ok(slot) = state.live_slots.clone().try_acquire_owned() else {
        state.mediator.metrics().refused("live.limit");
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "w.p.me.res.live-limit",
            "this mediator has as many live connections as it takes; use pickup over POST \
             /didcomm, or try again later",
        );
    };
    let live_socket = LiveSocket {
        router: state.router.clone(),
        idle: state.live_idle,
        closing: state.closing.clone(),
        _slot: slot,
    };
    // Small buffers: tungstenite's 128 KiB read buffer per socket would cost over 1 GiB at
    // 10k idle phones; frames larger than the buffer still arrive whole.
    upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(state.max_message_bytes)
        .max_frame_size(state.max_message_bytes)
        .on_upgrade(move |socket| live(socket, live_socket))
}

/// What one live connection holds: the mediator, its idle timeout, the shutdown signal and
/// its slot among the live connections.
struct LiveSocket<S, I> {
    router: Arc<DidCommRouter<S, I>>,
    idle: std::time::Duration,
    closing: tokio::sync::watch::Receiver<bool>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// One live connection: every text frame is a DIDComm message handled as if posted with
/// `return_route: all`; once the client switched live delivery on, queued messages are
/// pushed as `delivery` frames, at once and whenever a forward for the client arrives. The
/// [`LiveSession`] decides what to answer and push; this only pumps frames and keeps the
/// socket's timers.
async fn live<S: MediatorStorage, I: IssuerStorage>(
    mut socket: WebSocket,
    live_socket: LiveSocket<S, I>,
) {
    let LiveSocket {
        router,
        idle,
        mut closing,
        _slot,
    } = live_socket;
    let metrics = router.mediator().metrics().clone();
    let mut session = LiveSession::new(router);
    // When the client was last heard from, and whether it was pinged since.
    let mut heard = tokio::time::Instant::now();
    let mut pinged = false;
    loop {
        let wake = match session.next_push().await {
            Push::Deliver(delivery) => {
                if socket.send(WsMessage::Text(delivery.into())).await.is_err() {
                    break;
                }
                continue;
            }
            Push::Wait(wake) => wake,
        };
        let check = if pinged {
            heard + idle
        } else {
            heard + idle / 2
        };
        tokio::select! {
            _ = turned_true(&mut closing) => {
                let _ = socket.send(WsMessage::Close(Some(axum::extract::ws::CloseFrame {
                    code: axum::extract::ws::close_code::AWAY,
                    reason: "the mediator is shutting down".into(),
                }))).await;
                break;
            }
            _ = tokio::time::sleep_until(check) => {
                if pinged {
                    metrics.refused("live.idle");
                    let _ = socket.send(WsMessage::Close(Some(axum::extract::ws::CloseFrame {
                        code: axum::extract::ws::close_code::POLICY,
                        reason: "idle for too long".into(),
                    }))).await;
                    break;
                }
                pinged = true;
                if socket.send(WsMessage::Ping(Bytes::new())).await.is_err() {
                    break;
                }
            }
            frame = socket.recv() => {
                heard = tokio::time::Instant::now();
                pinged = false;
                let answer = match frame {
                    Some(Ok(WsMessage::Text(text))) => session.receive(text.as_str()).await,
                    Some(Ok(WsMessage::Binary(bytes))) => session.receive_binary(&bytes).await,
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                if let Some(answer) = answer {
                    if socket.send(WsMessage::Text(answer.into())).await.is_err() {
                        break;
                    }
                }
            }
            _ = wake => {}
        }
    }
}

/// Limits of the HTTP server itself.
#[derive(Clone, Debug)]
pub(crate) struct ServerLimits {
    /// Connections served at once (live sockets are counted apart, once upgraded); more are
    /// answered 503 and closed.
    pub(crate) max_connections: usize,
    /// How long a client may take to send a request's headers (and how long a kept-alive
    /// connection may sit idle before its next request).
    pub(crate) header_read_timeout: std::time::Duration,
    /// How long one request may take, body and answer included.
    pub(crate) request_timeout: std::time::Duration,
    /// How long a shutdown waits for open connections to finish before closing them.
    pub(crate) shutdown_grace: std::time::Duration,
}

/// Serves `app` on `listener` within `limits` until `stop` turns true; then stops accepting,
/// lets open connections finish their requests for up to the grace period, and closes what
/// is left. Refusals are counted in `metrics` (`connection.limit`, `header.timeout`,
/// `request.timeout`).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ServerLimits,
    metrics: Arc<crate::metrics::Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = turned_true(&mut stop) => break,
        };
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors, most likely: wait for some to be freed.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.refused("connection.limit");
            connections.spawn(refuse_connection(stream));
            continue;
        };
        let app = app.clone();
        let metrics = metrics.clone();
        let header_metrics = metrics.clone();
        let mut closing = closing_rx.clone();
        let limits = limits.clone();
        connections.spawn(async move {
            let _slot = slot;
            let timeout = limits.request_timeout;
            let service = hyper::service::service_fn(
                move |request: axum::http::Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    let metrics = metrics.clone();
                    async move {
                        let request = request.map(axum::body::Body::new);
                        let answer =
                            tokio::time::timeout(timeout, tower::ServiceExt::oneshot(app, request))
                                .await;
                        Ok::<_, std::convert::Infallible>(match answer {
                            Ok(Ok(response)) => response,
                            Ok(Err(never)) => match never {},
                            Err(_) => {
                                metrics.refused("request.timeout");
                                problem(
                                    StatusCode::REQUEST_TIMEOUT,
                                    "e.p.msg.timeout",
                                    &format!(
                                        "the request took longer than {} s",
                                        timeout.as_secs_f32()
                                    ),
                                )
                            }
                        })
                    }
                },
            );
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let connection = builder
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                ended = connection.as_mut() => {
                    if ended.is_err_and(|e| e.is_timeout()) {
                        header_metrics.refused("header.timeout");
                    }
                }
                _ = turned_true(&mut closing) => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    let deadline = tokio::time::sleep(limits.shutdown_grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            next = connections.join_next() => if next.is_none() { break },
            _ = &mut deadline => {
                tracing::warn!(
                    open = connections.len(),
                    "the shutdown grace period is over: closing the connections left"
                );
                connections.abort_all();
                break;
            }
        }
    }
    Ok(())
}

/// Resolves once `flag` is true (or its sender is gone).
async fn turned_true(flag: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|set| *set).await.map(|_| ());
}

/// Answers a connection over the limit with a 503 problem report and closes it.
async fn refuse_connection(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = problem_json(
        "w.p.me.res.connection-limit",
        "this agent serves as many connections as it takes; try again later",
    )
    .to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// A refusal over HTTP: its status (below) and its problem report as the body. The one
/// mapping of the mediator's refusals to HTTP.
impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = status_of(&self);
        tracing::info!(%status, code = self.problem_code(), reason = %self, "refused");
        (status, Json(self.problem_report())).into_response()
    }
}

fn status_of(refusal: &Refusal) -> StatusCode {
    match refusal {
        Refusal::Envelope(DidCommError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
        Refusal::Envelope(_) | Refusal::BadRequest(_) | Refusal::NotForMe(_) => {
            StatusCode::BAD_REQUEST
        }
        Refusal::UnknownRecipient(_) => StatusCode::NOT_FOUND,
        Refusal::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Refusal::NotMediated(_) | Refusal::NotAdmitted(_) => StatusCode::FORBIDDEN,
        Refusal::Replay(_) => StatusCode::CONFLICT,
        Refusal::Storage(
            StorageError::QueueFull { .. }
            | StorageError::ClientQuota { .. }
            | StorageError::TooManyRecipients { .. },
        ) => StatusCode::TOO_MANY_REQUESTS,
        Refusal::Storage(StorageError::StoreFull { .. }) => StatusCode::INSUFFICIENT_STORAGE,
        Refusal::Storage(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

async fn inbound<S: MediatorStorage, I: IssuerStorage>(
    State(state): Shared<S, I>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mediator = &state.mediator;
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
    // Handled on its own task: a sender that hangs up mid-request must not cut a state change
    // short between its writes (the outbox and the queue finish what they started).
    let handler = state.router.clone();
    let envelope = text.to_string();
    let outcome = tokio::spawn(async move { handler.handle(&envelope).await })
        .await
        .unwrap_or_else(|e| {
            Err(Refusal::Storage(StorageError::Backend(format!(
                "the message handler failed: {e}"
            ))))
        });
    match &outcome {
        Ok(_) => {
            mediator.metrics().messages_in.inc();
        }
        Err(refusal) => mediator.metrics().refused(refusal.problem_code()),
    }
    match outcome {
        Ok(Outcome::Accepted) => StatusCode::ACCEPTED.into_response(),
        Ok(Outcome::Reply(packed)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, ENCRYPTED_TYP)],
            packed,
        )
            .into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

impl<S, I> axum::extract::FromRef<Arc<AppState<S, I>>> for crate::admin::AdminToken {
    fn from_ref(state: &Arc<AppState<S, I>>) -> crate::admin::AdminToken {
        state.admin_token.clone()
    }
}

/// An error in the API's envelope (`{"error": {"code", "message"}}`), through the API layer's
/// one `ApiError: IntoResponse`.
fn api_error(status: StatusCode, code: &'static str, message: &str) -> Response {
    crate::api::ApiError {
        status,
        code,
        message: message.to_string(),
    }
    .into_response()
}

async fn create_invitation<S: MediatorStorage, I: IssuerStorage>(
    _: crate::api::Admin,
    State(state): Shared<S, I>,
    body: Bytes,
) -> Response {
    let mut request: NewInvitation = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return api_error(StatusCode::BAD_REQUEST, "invalid_body", &e.to_string()),
    };
    if request.from.is_empty() {
        request.from = state.mediator.did().to_string();
    }
    let record = match request.build() {
        Ok(record) => record,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_invitation",
                &e.to_string(),
            )
        }
    };
    if let Err(e) = state.invitations.put(&record).await {
        return api_error(StatusCode::SERVICE_UNAVAILABLE, "storage", &e.to_string());
    }
    let short_url = record.short_url(&state.public_url);
    (
        StatusCode::CREATED,
        Json(json!({ "data": {
            "code": record.code,
            "url": short_url,
            "oobUrl": record.oob_url(&state.public_url),
            "deepLink": record.deep_link(&state.links.scheme),
            "qrPng": format!("{short_url}/qr.png"),
            "qrSvg": format!("{short_url}/qr.svg"),
            "invitation": record.message,
        }})),
    )
        .into_response()
}

/// Why the invitation behind a code cannot be given out, with the record when there is one.
struct Unavailable {
    status: StatusCode,
    code: &'static str,
    error: InvitationError,
    record: Option<invitations::InvitationRecord>,
}

impl Unavailable {
    /// The answer: an HTML page that says what happened and what to do for people
    /// (`as_page`), the error as JSON for clients.
    fn respond(self, as_page: bool) -> Response {
        if !as_page {
            return api_error(self.status, self.code, &self.error.to_string());
        }
        let html = invitations::error_page(&self.error, self.record.as_ref());
        (
            self.status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            html,
        )
            .into_response()
    }
}

/// The invitation behind a code, or why not.
async fn lookup<S: MediatorStorage, I: IssuerStorage>(
    state: &AppState<S, I>,
    code: &str,
) -> Result<invitations::InvitationRecord, Unavailable> {
    let unknown = |shown: String| Unavailable {
        status: StatusCode::NOT_FOUND,
        code: "unknown_invitation",
        error: InvitationError::Unknown(shown),
        record: None,
    };
    if !invitations::valid_code(code) {
        return Err(unknown(code.chars().take(40).collect()));
    }
    let record = match state.invitations.by_code(code).await {
        Ok(Some(record)) => record,
        Ok(None) => return Err(unknown(code.to_string())),
        Err(error) => {
            // Strangers reach this: the storage's own words stay in the log.
            tracing::error!(%error, "invitation lookup");
            return Err(Unavailable {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "storage",
                error: InvitationError::Invalid("the invitation cannot be read just now".into()),
                record: None,
            });
        }
    };
    if let Err(error) = record.check() {
        let code = match error {
            InvitationError::Expired(_) => "invitation_expired",
            _ => "invitation_used",
        };
        return Err(Unavailable {
            status: StatusCode::GONE,
            code,
            error,
            record: Some(record),
        });
    }
    Ok(record)
}

/// Whether the client asked for JSON (wallets do) rather than a page.
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json") || v.contains("didcomm"))
}

async fn invitation<S: MediatorStorage, I: IssuerStorage>(
    State(state): Shared<S, I>,
    axum::extract::Path(code): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let as_json = wants_json(&headers);
    let record = match lookup(&state, &code).await {
        Ok(record) => record,
        Err(unavailable) => return unavailable.respond(!as_json),
    };
    if as_json {
        return Json(&record.message).into_response();
    }
    let phone = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(invitations::is_phone);
    let short_url = record.short_url(&state.public_url);
    match invitations::page(&record, &short_url, &state.links, phone) {
        Ok(html) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
                // The page is laid out for the device that asked.
                (header::VARY, "Accept, User-Agent"),
            ],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "invitation page");
            api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "render",
                "the invitation page cannot be shown",
            )
        }
    }
}

/// The QR code of an invitation's short URL, rendered by `render` as `content_type`.
async fn invitation_qr<S: MediatorStorage, I: IssuerStorage, B: IntoResponse>(
    state: &AppState<S, I>,
    code: &str,
    content_type: &'static str,
    render: impl FnOnce(&str) -> Result<B, InvitationError>,
) -> Response {
    let record = match lookup(state, code).await {
        Ok(record) => record,
        // An image is not a page: the reason goes as JSON.
        Err(unavailable) => return unavailable.respond(false),
    };
    match render(&record.short_url(&state.public_url)) {
        Ok(body) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "invitation QR code");
            api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "render",
                "the QR code cannot be drawn",
            )
        }
    }
}

async fn invitation_png<S: MediatorStorage, I: IssuerStorage>(
    State(state): Shared<S, I>,
    axum::extract::Path(code): axum::extract::Path<String>,
) -> Response {
    invitation_qr(&state, &code, "image/png", |url| {
        invitations::qr_png(url, 8)
    })
    .await
}

async fn invitation_svg<S: MediatorStorage, I: IssuerStorage>(
    State(state): Shared<S, I>,
    axum::extract::Path(code): axum::extract::Path<String>,
) -> Response {
    invitation_qr(&state, &code, "image/svg+xml", invitations::qr_svg).await
}

async fn apple_app_site_association<S: MediatorStorage, I: IssuerStorage>(
    State(state): Shared<S, I>,
) -> Response {
    if state.apple_app_ids.is_empty() {
        return api_error(
            StatusCode::NOT_FOUND,
            "not_configured",
            "LANYARD_APPLE_APP_IDS is not set",
        );
    }
    Json(json!({
        "applinks": {
            "details": [{
                "appIDs": state.apple_app_ids,
                "components": [{ "/": "/i/*", "comment": "Lanyard invitations" }],
            }],
        },
    }))
    .into_response()
}

async fn assetlinks<S: MediatorStorage, I: IssuerStorage>(State(state): Shared<S, I>) -> Response {
    let Some(package) = &state.android_package else {
        return api_error(
            StatusCode::NOT_FOUND,
            "not_configured",
            "LANYARD_ANDROID_PACKAGE is not set",
        );
    };
    Json(json!([{
        "relation": ["delegate_permission/common.handle_all_urls"],
        "target": {
            "namespace": "android_app",
            "package_name": package,
            "sha256_cert_fingerprints": state.android_cert_sha256,
        },
    }]))
    .into_response()
}

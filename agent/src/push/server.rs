//! The gateway run alone (`agent push-gateway`): an HTTP API over a [`PushGateway`] for
//! agents elsewhere ([`super::RemotePushGateway`]), behind a bearer secret compared in
//! constant time, with bodies of at most [`MAX_BODY`] bytes, served by the agent's own server
//! loop (connection cap, header and request timeouts).
//!
//! - `POST /push/v1/register` `{"platform": "apns"|"fcm"|"webhook", "token": "..."}` → 201
//!   `{"handle": "..."}`
//! - `POST /push/v1/unregister` `{"handle": "..."}` → 204
//! - `POST /push/v1/wake` `{"handle": "..."}` → 200 `{"outcome": "sent"|"coalesced"|...}`
//! - `GET /health` → 200; `GET /metrics` → the wakes counted (with the bearer secret)
//!
//! Errors are `{"error": code, "message": text safe for a stranger}` (and `"platform"` for
//! `not_configured`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::store::{PgPushStore, PushBackend, SledPushStore};
use super::{Device, LocalPushGateway, Platform, PushError, PushGateway, WakeHandle};
use crate::admin::AdminToken;
use crate::config::Config;

/// The largest request body the API reads.
pub const MAX_BODY: usize = 4096;

struct Api {
    gateway: Arc<dyn PushGateway>,
    secret: AdminToken,
    metrics: Arc<crate::Metrics>,
}

/// The API over `gateway`, answering only requests with `Authorization: Bearer <secret>`;
/// `/metrics` renders `metrics`.
pub fn gateway_router(
    gateway: Arc<dyn PushGateway>,
    secret: AdminToken,
    metrics: Arc<crate::Metrics>,
) -> Router {
    let api = Arc::new(Api {
        gateway,
        secret,
        metrics,
    });
    Router::new()
        .route("/push/v1/register", post(register))
        .route("/push/v1/unregister", post(unregister))
        .route("/push/v1/wake", post(wake))
        .route("/metrics", get(render_metrics))
        .route("/health", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

/// An error answer: `{"error": code, "message": text}` (and `"platform"` for
/// `not_configured`).
struct Problem {
    status: StatusCode,
    code: &'static str,
    message: String,
    platform: Option<Platform>,
}

impl Problem {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            message: message.into(),
            platform: None,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Some(platform) = self.platform {
            body["platform"] = json!(platform);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<PushError> for Problem {
    fn from(error: PushError) -> Problem {
        let (status, code) = match &error {
            PushError::NotConfigured(platform) => {
                return Problem {
                    platform: Some(*platform),
                    ..Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "not_configured",
                        error.public(),
                    )
                }
            }
            PushError::UnknownPlatform(_)
            | PushError::BadToken { .. }
            | PushError::BadWebhook(_) => (StatusCode::BAD_REQUEST, "bad_device"),
            PushError::BadHandle => (StatusCode::BAD_REQUEST, "bad_handle"),
            PushError::UnknownHandle => (StatusCode::NOT_FOUND, "unknown_handle"),
            PushError::Full { .. } => (StatusCode::SERVICE_UNAVAILABLE, "full"),
            PushError::Refused { .. } => (StatusCode::BAD_GATEWAY, "refused"),
            PushError::Credentials { .. }
            | PushError::Unreachable { .. }
            | PushError::Net(_)
            | PushError::Remote { .. }
            | PushError::Config(_)
            | PushError::Storage(_) => {
                tracing::warn!(%error, "push gateway call failed");
                (StatusCode::BAD_GATEWAY, "failed")
            }
        };
        Problem::new(status, code, error.public())
    }
}

/// Refuses a request without the bearer secret.
fn authorise(api: &Api, headers: &HeaderMap) -> Result<(), Problem> {
    if api.secret.authorises(headers) {
        return Ok(());
    }
    Err(Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorised",
        "the push gateway's bearer secret is missing or wrong",
    ))
}

/// The JSON body, or the answer naming what is wrong with it.
fn body(body: Result<Json<Value>, JsonRejection>) -> Result<Value, Problem> {
    body.map(|Json(value)| value)
        .map_err(|rejection| Problem::new(rejection.status(), "bad_request", rejection.body_text()))
}

/// The `handle` field.
fn handle_of(value: &Value) -> Result<WakeHandle, Problem> {
    Ok(value["handle"]
        .as_str()
        .ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "the body must be {\"handle\": \"...\"}",
            )
        })?
        .parse()?)
}

async fn register(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    json: Result<Json<Value>, JsonRejection>,
) -> Result<Response, Problem> {
    authorise(&api, &headers)?;
    let value = body(json)?;
    let (Some(platform), Some(token)) = (value["platform"].as_str(), value["token"].as_str())
    else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body must be {\"platform\": \"apns\"|\"fcm\"|\"webhook\", \"token\": \"...\"}",
        ));
    };
    let device = Device {
        platform: platform.parse()?,
        token: token.to_string(),
    };
    let handle = api.gateway.register(device).await?;
    Ok((StatusCode::CREATED, Json(json!({ "handle": handle }))).into_response())
}

async fn unregister(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    json: Result<Json<Value>, JsonRejection>,
) -> Result<Response, Problem> {
    authorise(&api, &headers)?;
    let handle = handle_of(&body(json)?)?;
    api.gateway.unregister(&handle).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn wake(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    json: Result<Json<Value>, JsonRejection>,
) -> Result<Response, Problem> {
    authorise(&api, &headers)?;
    let handle = handle_of(&body(json)?)?;
    let woken = api.gateway.wake(&handle).await?;
    Ok(Json(json!({ "outcome": woken.name() })).into_response())
}

async fn render_metrics(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authorise(&api, &headers)?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        api.metrics.render(),
    )
        .into_response())
}

/// Why the gateway did not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayStartError {
    /// `LANYARD_PUSH_GATEWAY_SECRET` is not set (or not usable).
    #[error(
        "agent push-gateway needs LANYARD_PUSH_GATEWAY_SECRET (at least 32 printable characters)"
    )]
    NoSecret,
    /// No platform is configured: the gateway would refuse everything.
    #[error("agent push-gateway has no platform configured: set LANYARD_APNS_KEY_FILE (with its id, team and topic), LANYARD_FCM_SERVICE_ACCOUNT or LANYARD_PUSH_WEBHOOKS=true")]
    NothingConfigured,
    /// The identity, store, database or listening address failed, as for the agent.
    #[error(transparent)]
    Start(#[from] crate::StartError),
    /// A platform's credentials or URL are refused.
    #[error(transparent)]
    Push(#[from] PushError),
}

/// A gateway serving its API.
pub struct RunningGateway {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The server task; ends after [`RunningGateway::stop`].
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl RunningGateway {
    /// Stops accepting, lets requests in flight finish (up to the shutdown grace), and waits.
    pub async fn stop(self) -> std::io::Result<()> {
        crate::stop_serving(&self.shutdown, self.server).await
    }
}

/// The gateway `config` describes, alone: its devices in `<data_dir>/push` (sled, sealed under
/// the data key of the data folder's identity) or, with `LANYARD_DATABASE_URL`, in the shared
/// database (sealed under the shared identity's, so agents with a gateway of their own on the
/// same database read the same devices); its API on `config.listen`.
pub async fn serve_gateway(config: Config) -> Result<RunningGateway, GatewayStartError> {
    let secret = config
        .push
        .gateway_secret
        .as_deref()
        .and_then(|s| AdminToken::new(s, "LANYARD_PUSH_GATEWAY_SECRET").ok())
        .ok_or(GatewayStartError::NoSecret)?;
    if !config.push.any_platform() {
        return Err(GatewayStartError::NothingConfigured);
    }
    let crate::Bound {
        listener,
        addr,
        endpoint,
        ..
    } = crate::bind(&config).await?;
    let store_error = |source| crate::StartError::Store {
        what: "push store",
        source,
    };
    let (store, data_key) = match &config.database_url {
        None => {
            let identity = crate::identity::load_or_create(&config.data_dir, &endpoint)
                .map_err(crate::StartError::from)?;
            let store = SledPushStore::open(&config.data_dir.join("push"), config.commit_window)
                .map_err(store_error)?;
            let key = identity
                .issuer_store_key()
                .map_err(crate::StartError::from)?;
            (PushBackend::Sled(store), key)
        }
        Some(url) => {
            let database = crate::postgres::Database::connect(url, config.database_pool)
                .await
                .map_err(crate::StartError::from)?;
            database.migrate().await.map_err(crate::StartError::from)?;
            std::fs::create_dir_all(&config.data_dir).map_err(|source| {
                crate::StartError::Identity(crate::identity::IdentityError::File {
                    path: config.data_dir.clone(),
                    source,
                })
            })?;
            let identity =
                crate::identity::load_or_create_shared(&database, &config.key_file(), &endpoint)
                    .await
                    .map_err(crate::StartError::from)?;
            let key = identity
                .issuer_store_key()
                .map_err(crate::StartError::from)?;
            (PushBackend::Postgres(PgPushStore::new(database)), key)
        }
    };
    let client = lanyard_protocol::net::HttpClient::new(config.net.clone())
        .map_err(crate::StartError::from)?;
    let gateway = LocalPushGateway::new(&config.push, store, &data_key, client)?;
    let metrics = Arc::new(crate::Metrics::default());
    gateway.register_metrics(&metrics);
    let app = gateway_router(Arc::new(gateway), secret, metrics.clone());
    let limits = crate::http::ServerLimits {
        max_connections: config.max_connections,
        header_read_timeout: config.header_read_timeout,
        request_timeout: config.request_timeout,
        shutdown_grace: config.shutdown_grace,
    };
    let (shutdown, stopped) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(crate::http::serve(listener, app, limits, metrics, stopped));
    tracing::info!(%addr, "push gateway listening");
    Ok(RunningGateway {
        addr,
        server,
        shutdown,
    })
}

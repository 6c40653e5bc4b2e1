//! [`RemotePushGateway`]: the [`PushGateway`] of a gateway run alone (`agent push-gateway`),
//! over its HTTP API ([`super::gateway_router`]) through the hardened client, with its bearer
//! secret.

use lanyard_protocol::net::{HttpClient, Request};
use serde_json::{json, Value};

use super::{Device, Platform, PushError, PushGateway, WakeHandle, Woken};
use crate::admin::AdminToken;

/// The largest answer read from the gateway.
const MAX_ANSWER: usize = 4096;

/// A gateway elsewhere, reached at its base URL with its bearer secret.
pub struct RemotePushGateway {
    base: String,
    secret: AdminToken,
    client: HttpClient,
}

impl std::fmt::Debug for RemotePushGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemotePushGateway")
            .field("base", &self.base)
            .field("secret", &lanyard_protocol::redact::Redacted)
            .finish()
    }
}

impl RemotePushGateway {
    /// The gateway at `base_url` (checked against `client`'s policy now), authenticating with
    /// `secret`.
    pub fn new(
        base_url: &str,
        secret: AdminToken,
        client: HttpClient,
    ) -> Result<RemotePushGateway, PushError> {
        let base = base_url.trim_end_matches('/').to_string();
        client.check_url(&format!("{base}/push/v1/wake"))?;
        Ok(RemotePushGateway {
            base,
            secret,
            client,
        })
    }

    /// POSTs `body` to `path`; the answer's status and JSON (`Null` when empty).
    async fn call(&self, path: &str, body: Value) -> Result<(u16, Value), PushError> {
        let request = Request::post(
            &format!("{}{path}", self.base),
            "application/json",
            body.to_string().into_bytes(),
        )
        .header("authorization", format!("Bearer {}", self.secret.expose()))
        .max_bytes(MAX_ANSWER);
        let response = self.client.send(request).await?;
        let value = if response.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&response.body).map_err(|_| PushError::Remote {
                status: response.status,
                message: "the answer is not JSON".into(),
            })?
        };
        if response.is_success() {
            return Ok((response.status, value));
        }
        Err(error_of(response.status, &value))
    }
}

/// The error a gateway's error answer stands for.
fn error_of(status: u16, answer: &Value) -> PushError {
    let message: String = answer["message"]
        .as_str()
        .unwrap_or("no message")
        .chars()
        .take(200)
        .collect();
    match answer["error"].as_str() {
        Some("not_configured") => match answer["platform"].as_str().map(str::parse::<Platform>) {
            Some(Ok(platform)) => PushError::NotConfigured(platform),
            _ => PushError::Remote { status, message },
        },
        Some("unknown_handle") => PushError::UnknownHandle,
        Some("bad_handle") => PushError::BadHandle,
        _ => PushError::Remote { status, message },
    }
}

fn unreadable(status: u16) -> PushError {
    PushError::Remote {
        status,
        message: "the answer is not of the push gateway's API".into(),
    }
}

#[async_trait::async_trait]
impl PushGateway for RemotePushGateway {
    async fn register(&self, device: Device) -> Result<WakeHandle, PushError> {
        let (status, answer) = self
            .call(
                "/push/v1/register",
                json!({ "platform": device.platform, "token": device.token }),
            )
            .await?;
        answer["handle"]
            .as_str()
            .and_then(|h| h.parse().ok())
            .ok_or_else(|| unreadable(status))
    }

    async fn unregister(&self, handle: &WakeHandle) -> Result<(), PushError> {
        self.call("/push/v1/unregister", json!({ "handle": handle }))
            .await
            .map(|_| ())
    }

    async fn wake(&self, handle: &WakeHandle) -> Result<Woken, PushError> {
        let (status, answer) = self
            .call("/push/v1/wake", json!({ "handle": handle }))
            .await?;
        answer["outcome"]
            .as_str()
            .and_then(Woken::from_name)
            .ok_or_else(|| unreadable(status))
    }
}

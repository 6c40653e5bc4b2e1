//! FCM HTTP v1: a POST to `<host>/v1/projects/<project>/messages:send` of a data-only message
//! (no `notification` block, android priority high), with an OAuth2 access token obtained
//! from the service-account key (RFC 7523 JWT-bearer grant: an RS256 assertion with `iss` =
//! the account's email, `scope` = firebase.messaging, `aud` = the key file's `token_uri`),
//! cached until a minute before it expires.

use std::time::{Duration, Instant};

use lanyard_protocol::net::{HttpClient, Request};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::apns::short;
use super::jwt::Rs256;
use super::local::{unix_seconds, Outcome};
use super::{Platform, PushConfig, PushError};

/// The OAuth2 scope of FCM sends.
pub(crate) const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The JWT-bearer grant type (RFC 7523 §2.1), form-encoded.
const GRANT: &str = "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer";
/// An access token is renewed this long before it expires.
const EARLY: Duration = Duration::from_secs(60);

/// The fields of a service-account key file the gateway uses.
#[derive(serde::Deserialize)]
struct ServiceAccount {
    project_id: String,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    token_uri: String,
}

/// FCM, configured.
pub(crate) struct Fcm {
    client: HttpClient,
    send_url: String,
    client_email: String,
    key_id: Option<String>,
    token_uri: String,
    key: Rs256,
    /// The access token and when it must be renewed.
    access: tokio::sync::Mutex<Option<(Zeroizing<String>, Instant)>>,
}

fn credentials(reason: impl Into<String>) -> PushError {
    PushError::Credentials {
        platform: Platform::Fcm,
        reason: reason.into(),
    }
}

impl Fcm {
    /// FCM from `config`, when its service-account file is set (read here).
    pub(crate) fn from_config(
        config: &PushConfig,
        client: HttpClient,
    ) -> Result<Option<Fcm>, PushError> {
        let Some(path) = &config.fcm_service_account else {
            return Ok(None);
        };
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            credentials(format!(
                "the service-account file {} cannot be read: {e}",
                path.display()
            ))
        })?);
        let mut account: ServiceAccount = serde_json::from_str(&text).map_err(|e| {
            credentials(format!(
                "the service-account file {} is not a service-account key: {e}",
                path.display()
            ))
        })?;
        let pem = Zeroizing::new(std::mem::take(&mut account.private_key));
        let key = Rs256::from_pem(&pem)
            .map_err(|e| credentials(format!("the private_key of {}: {e}", path.display())))?;
        if account.project_id.is_empty()
            || !account
                .project_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(credentials(format!(
                "the project_id of {} is not a project id",
                path.display()
            )));
        }
        client.check_url(&account.token_uri)?;
        let base = config.fcm_url.trim_end_matches('/');
        let send_url = format!("{base}/v1/projects/{}/messages:send", account.project_id);
        client.check_url(&send_url)?;
        Ok(Some(Fcm {
            client,
            send_url,
            client_email: account.client_email,
            key_id: account.private_key_id,
            token_uri: account.token_uri,
            key,
            access: tokio::sync::Mutex::new(None),
        }))
    }

    /// The cached access token, or a new one from the token endpoint.
    async fn access_token(&self) -> Result<Zeroizing<String>, PushError> {
        let mut cached = self.access.lock().await;
        if let Some((token, renew_at)) = cached.as_ref() {
            if Instant::now() < *renew_at {
                return Ok(token.clone());
            }
        }
        let iat = unix_seconds();
        let mut header = json!({ "typ": "JWT" });
        if let Some(kid) = &self.key_id {
            header["kid"] = kid.clone().into();
        }
        let assertion = self
            .key
            .sign(
                header,
                &json!({
                    "iss": self.client_email,
                    "scope": SCOPE,
                    "aud": self.token_uri,
                    "iat": iat,
                    "exp": iat + 3600,
                }),
            )
            .map_err(credentials)?;
        let body = format!("grant_type={GRANT}&assertion={assertion}");
        let response = self
            .client
            .send(
                Request::post(
                    &self.token_uri,
                    "application/x-www-form-urlencoded",
                    body.into_bytes(),
                )
                .max_bytes(16 * 1024),
            )
            .await?;
        if !response.is_success() {
            let error = serde_json::from_slice::<Value>(&response.body)
                .ok()
                .and_then(|v| v["error"].as_str().map(short))
                .unwrap_or_default();
            return Err(credentials(format!(
                "the token endpoint answered {} {error}",
                response.status
            )));
        }
        let answer: Value = serde_json::from_slice(&response.body)
            .map_err(|e| credentials(format!("the token endpoint's answer is not JSON: {e}")))?;
        let token = answer["access_token"]
            .as_str()
            .filter(|t| !t.is_empty() && t.len() <= 4096)
            .ok_or_else(|| credentials("the token endpoint's answer has no access_token"))?;
        let token = Zeroizing::new(token.to_string());
        let lifetime = Duration::from_secs(answer["expires_in"].as_u64().unwrap_or(3600));
        let renew_at = Instant::now() + lifetime.saturating_sub(EARLY);
        *cached = Some((token.clone(), renew_at));
        Ok(token)
    }

    /// Forgets the access token (FCM refused it).
    async fn forget_token(&self) {
        *self.access.lock().await = None;
    }

    /// One data-only message to the registration `token`.
    pub(crate) async fn send(&self, token: &str) -> Outcome {
        let bearer = match self.access_token().await {
            Ok(bearer) => bearer,
            // The token endpoint unreachable or failing is worth a retry.
            Err(error @ PushError::Net(_)) => {
                return Outcome::Retry(
                    None,
                    PushError::Unreachable {
                        platform: Platform::Fcm,
                        reason: match &error {
                            PushError::Net(net) => net.public(),
                            _ => "it could not be reached",
                        },
                    },
                )
            }
            Err(error) => return Outcome::Retry(None, error),
        };
        let body = json!({
            "message": {
                "token": token,
                "data": { "lanyard": "wake" },
                "android": { "priority": "high" },
            }
        });
        let request = Request::post(
            &self.send_url,
            "application/json",
            body.to_string().into_bytes(),
        )
        .header("authorization", format!("Bearer {}", bearer.as_str()))
        .max_bytes(16 * 1024);
        let response = match self.client.send(request).await {
            Ok(response) => response,
            Err(error) => return Outcome::unreachable(Platform::Fcm, &error),
        };
        let answer = serde_json::from_slice::<Value>(&response.body).unwrap_or(Value::Null);
        let unregistered = answer["error"]["details"]
            .as_array()
            .is_some_and(|details| {
                details
                    .iter()
                    .any(|d| d["errorCode"].as_str() == Some("UNREGISTERED"))
            });
        let refused = PushError::Refused {
            platform: Platform::Fcm,
            status: response.status,
            reason: answer["error"]["status"].as_str().map(short),
        };
        match response.status {
            200 => Outcome::Delivered,
            _ if unregistered => Outcome::Gone,
            404 => Outcome::Gone,
            401 => {
                self.forget_token().await;
                Outcome::Retry(None, refused)
            }
            429 | 500..=599 => Outcome::Retry(response.retry_after(), refused),
            _ => Outcome::Failed(refused),
        }
    }
}

//! APNs with token-based authentication: an HTTP/2 POST to `<host>/3/device/<token>` with a
//! provider token (an ES256 JWT: header `kid`, claims `iss` = team id and `iat`), reused and
//! renewed after 50 minutes (APNs refuses one older than an hour, and one renewed more often
//! than every 20 minutes), a background push (`apns-push-type: background`, `apns-priority:
//! 5`, body `{"aps":{"content-available":1}}`).

use std::sync::Mutex;

use lanyard_protocol::net::{HttpClient, Request};
use serde_json::json;

use super::jwt::Es256;
use super::local::{unix_seconds, Outcome};
use super::{Platform, PushConfig, PushError};

/// A provider token is renewed when it is this old (seconds).
const RENEW_AFTER: u64 = 50 * 60;
/// APNs throttles a provider whose token changes more often than this (seconds).
const MIN_RENEWAL: u64 = 20 * 60;

/// The APNs body of a background push: no alert, no sound, no content.
pub(crate) const BODY: &str = r#"{"aps":{"content-available":1}}"#;

/// APNs, configured.
pub(crate) struct Apns {
    client: HttpClient,
    url: String,
    topic: String,
    key_id: String,
    team_id: String,
    key: Es256,
    /// The provider token and when it was issued (seconds since the epoch).
    token: Mutex<Option<(String, u64)>>,
}

fn credentials(reason: impl Into<String>) -> PushError {
    PushError::Credentials {
        platform: Platform::Apns,
        reason: reason.into(),
    }
}

impl Apns {
    /// APNs from `config`, when its key file is set (then the key id, team id and topic must
    /// be too); the key file is read here.
    pub(crate) fn from_config(
        config: &PushConfig,
        client: HttpClient,
    ) -> Result<Option<Apns>, PushError> {
        let Some(path) = &config.apns_key_file else {
            return Ok(None);
        };
        let need = |value: &Option<String>, name: &str| {
            value
                .clone()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| {
                    credentials(format!("{name} must be set with LANYARD_APNS_KEY_FILE"))
                })
        };
        let key_id = need(&config.apns_key_id, "LANYARD_APNS_KEY_ID")?;
        let team_id = need(&config.apns_team_id, "LANYARD_APNS_TEAM_ID")?;
        let topic = need(&config.apns_topic, "LANYARD_APNS_TOPIC")?;
        let pem = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            credentials(format!(
                "the key file {} cannot be read: {e}",
                path.display()
            ))
        })?);
        let key = Es256::from_pem(&pem)
            .map_err(|e| credentials(format!("the key file {}: {e}", path.display())))?;
        client.check_url(&config.apns_url)?;
        Ok(Some(Apns {
            client,
            url: config.apns_url.trim_end_matches('/').to_string(),
            topic,
            key_id,
            team_id,
            key,
            token: Mutex::new(None),
        }))
    }

    /// The provider token: the cached one while younger than [`RENEW_AFTER`] (or when
    /// `force` asks for a new one sooner than [`MIN_RENEWAL`]), else a new one.
    fn provider_token(&self, force: bool) -> Result<String, PushError> {
        let now = unix_seconds();
        let mut cached = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((token, issued)) = cached.as_ref() {
            let age = now.saturating_sub(*issued);
            if age < RENEW_AFTER && !(force && age >= MIN_RENEWAL) {
                return Ok(token.clone());
            }
        }
        let token = self
            .key
            .sign(
                json!({ "kid": self.key_id }),
                &json!({ "iss": self.team_id, "iat": now }),
            )
            .map_err(credentials)?;
        *cached = Some((token.clone(), now));
        Ok(token)
    }

    /// One push to the device `token`.
    pub(crate) async fn send(&self, token: &str) -> Outcome {
        match self.attempt(token, false).await {
            // A token APNs calls expired is renewed once (if it may be yet).
            Outcome::Failed(PushError::Refused {
                status: 403,
                reason: Some(reason),
                ..
            }) if reason == "ExpiredProviderToken" => self.attempt(token, true).await,
            other => other,
        }
    }

    async fn attempt(&self, token: &str, force: bool) -> Outcome {
        let bearer = match self.provider_token(force) {
            Ok(bearer) => bearer,
            Err(error) => return Outcome::Failed(error),
        };
        let request = Request::post(
            &format!("{}/3/device/{token}", self.url),
            "application/json",
            BODY.as_bytes().to_vec(),
        )
        .header("authorization", format!("bearer {bearer}"))
        .header("apns-topic", self.topic.clone())
        .header("apns-push-type", "background")
        .header("apns-priority", "5")
        .max_bytes(4096);
        let response = match self.client.send(request).await {
            Ok(response) => response,
            Err(error) => return Outcome::unreachable(Platform::Apns, &error),
        };
        // APNs answers errors as {"reason": "..."}.
        let reason = serde_json::from_slice::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|v| v["reason"].as_str().map(short))
            .filter(|r| !r.is_empty());
        let refused = PushError::Refused {
            platform: Platform::Apns,
            status: response.status,
            reason,
        };
        match response.status {
            200 => Outcome::Delivered,
            410 => Outcome::Gone,
            429 | 500..=599 => Outcome::Retry(response.retry_after(), refused),
            _ => Outcome::Failed(refused),
        }
    }
}

/// A platform's reason word, kept short and printable.
pub(crate) fn short(reason: &str) -> String {
    reason
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_-. ".contains(*c))
        .take(64)
        .collect()
}

//! Administration from the command line (`agent org create`): through the running agent's
//! admin API when one answers at the configured address, else directly on the data folder
//! (which sled lets only one process open at a time).

use std::sync::Arc;

use axum::http::{header, HeaderMap};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::config::Config;
use crate::issuer::store::SledIssuerStorage;
use crate::issuer::Issuer;

/// The shortest admin token the agent accepts, from `LANYARD_ADMIN_TOKEN` or the token file.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// The admin bearer token (`/admin/*`): at least [`MIN_ADMIN_TOKEN_LEN`] visible ASCII
/// characters, zeroized when dropped, `[redacted]` in `Debug`.
#[derive(Clone)]
pub struct AdminToken(Zeroizing<String>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken([redacted])")
    }
}

/// Why an admin token was refused at start.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    #[error(
        "{origin} holds an admin token of {len} characters; at least {MIN_ADMIN_TOKEN_LEN} are required"
    )]
    TooShort { origin: String, len: usize },
    #[error("{origin}: the admin token must be visible ASCII characters without spaces")]
    NotPrintable { origin: String },
}

impl AdminToken {
    /// Checks a token read from `source` (the variable's or the file's name, for the error);
    /// surrounding whitespace (a file's final newline) is not part of it.
    pub fn new(token: &str, source: &str) -> Result<AdminToken, AdminTokenError> {
        let token = token.trim();
        let len = token.chars().count();
        if len < MIN_ADMIN_TOKEN_LEN {
            return Err(AdminTokenError::TooShort {
                origin: source.to_string(),
                len,
            });
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AdminTokenError::NotPrintable {
                origin: source.to_string(),
            });
        }
        Ok(AdminToken(Zeroizing::new(token.to_string())))
    }

    /// The token, to send as a bearer token.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`, compared in constant time.
    /// A missing or empty token never matches.
    pub fn authorises(&self, headers: &HeaderMap) -> bool {
        use subtle::ConstantTimeEq;
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        !given.is_empty()
            && !self.0.is_empty()
            && bool::from(given.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

/// The admin token of `config`: `LANYARD_ADMIN_TOKEN`, else the one kept in the data folder.
pub fn admin_token(config: &Config) -> Result<AdminToken, String> {
    match &config.admin_token {
        Some(token) => AdminToken::new(token, "LANYARD_ADMIN_TOKEN").map_err(|e| e.to_string()),
        None => crate::identity::admin_token(&config.data_dir),
    }
}

/// The URL the running agent of `config` answers at.
fn agent_url(config: &Config) -> String {
    config.public_url.clone().unwrap_or_else(|| {
        let mut listen = config.listen;
        if listen.ip().is_unspecified() {
            listen.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{listen}")
    })
}

/// Creates an organisation; returns it as the API shows it, with its API key.
pub async fn create_org(config: &Config, name: &str) -> Result<Value, String> {
    let url = agent_url(config);
    let token = admin_token(config)?;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    match client
        .post(format!("{url}/admin/orgs"))
        .bearer_auth(token.expose())
        .json(&json!({ "name": name }))
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status();
            let body: Value = response
                .json()
                .await
                .map_err(|e| format!("the agent at {url} answered {status} without JSON: {e}"))?;
            if status.is_success() {
                Ok(body["data"].clone())
            } else {
                Err(format!(
                    "the agent at {url} refused: {}",
                    body["error"]["message"].as_str().unwrap_or("(no message)")
                ))
            }
        }
        Err(error) if error.is_connect() => create_offline(config, &url, name).await,
        Err(error) => Err(format!("the agent at {url}: {error}")),
    }
}

/// Creates the organisation in the data folder, with no agent running.
async fn create_offline(config: &Config, url: &str, name: &str) -> Result<Value, String> {
    let identity = crate::identity::load_or_create(&config.data_dir, &format!("{url}/didcomm"))?;
    let storage = SledIssuerStorage::open(
        &config.data_dir.join("issuer"),
        config.commit_window,
        &*identity.issuer_store_key()?,
    )
    .map_err(|e| format!("issuer store (is the agent running elsewhere?): {e}"))?;
    let issuer = Issuer::new(
        storage,
        identity.keys.clone(),
        Arc::clone(&identity.store),
        url.to_string(),
    );
    let (org, api_key) = issuer.create_org(name).await.map_err(|e| e.message)?;
    Ok(crate::api::org_json(&org, Some(&api_key)))
}

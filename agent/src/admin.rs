//! Administration from the command line (`agent org create`): through the running agent's
//! admin API when one answers at the configured address, else directly on the data folder
//! (which sled lets only one process open at a time).

use std::sync::Arc;

use serde_json::{json, Value};

use crate::config::Config;
use crate::issuer::store::SledIssuerStorage;
use crate::issuer::Issuer;

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
    let token = match &config.admin_token {
        Some(token) => token.clone(),
        None => crate::identity::admin_token(&config.data_dir)?,
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    match client
        .post(format!("{url}/admin/orgs"))
        .bearer_auth(&token)
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
    let storage = SledIssuerStorage::open(&config.data_dir.join("issuer"), config.commit_window)
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

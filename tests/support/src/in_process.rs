//! The agent in this test's process, on a loopback port with its own data folder.

use agent::config::Config;
use agent::mediator::Limits;
use serde_json::Value;

use crate::{Endpoint, ADMIN_TOKEN};

/// A running agent on a loopback port with its own data folder.
pub struct Agent {
    running: Option<agent::Running>,
    /// Where it listens (`http://127.0.0.1:PORT`).
    pub url: String,
    /// Its mediator DID.
    pub did: String,
    _data: Option<tempfile::TempDir>,
}

impl Agent {
    /// The agent's `/metrics` text.
    pub async fn metrics(&self) -> String {
        crate::metrics(self).await
    }

    /// Starts an agent with `limits` and the test configuration.
    pub async fn start(limits: Limits) -> Agent {
        Agent::start_with(limits, |_| {}).await
    }

    /// Starts an agent whose configuration `edit` adjusts first.
    pub async fn start_with(limits: Limits, edit: impl FnOnce(&mut Config)) -> Agent {
        let data = tempfile::tempdir().unwrap();
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data.path().to_path_buf(),
            limits,
            admin_token: Some(ADMIN_TOKEN.to_string()),
            deep_link_scheme: "lanyard".to_string(),
            apple_app_ids: vec!["TEAM123456.app.lanyard.wallet".to_string()],
            android_package: Some("app.lanyard.wallet".to_string()),
            android_cert_sha256: vec!["AB:CD:EF".to_string()],
            // Everything runs on loopback: the development allowance.
            net: lanyard_protocol::net::NetPolicy::loopback(),
            ..Config::default()
        };
        edit(&mut config);
        let running = agent::start(config).await.expect("the agent starts");
        Agent {
            url: format!("http://{}", running.addr),
            did: running.did.clone(),
            running: Some(running),
            _data: Some(data),
        }
    }

    /// An agent running elsewhere (another process) at `url` with mediator DID `did`.
    pub fn at(url: String, did: String) -> Agent {
        Agent {
            running: None,
            url,
            did,
            _data: None,
        }
    }

    /// Posts `body` to `/didcomm` as `content_type`.
    pub async fn post(&self, content_type: &str, body: String) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/didcomm", self.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("the agent answers")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.server.abort();
        }
    }
}

/// Creates an invitation through the admin API; returns its `data`.
pub async fn create_invitation(agent: &Agent, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/admin/invitations", agent.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "invitation not created");
    response.json::<Value>().await.unwrap()["data"].clone()
}

impl Endpoint for Agent {
    fn url(&self) -> &str {
        &self.url
    }

    fn did(&self) -> &str {
        &self.did
    }
}

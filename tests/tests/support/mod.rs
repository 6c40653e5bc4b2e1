//! What the journeys share: the real agent binary on a loopback port with its own data folder,
//! the organisation side of its API, an SMTP sink (aiosmtpd) and a wallet event recorder.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lanyard_protocol::store::{Argon2Params, Unlock};
use serde_json::{json, Value};
use wallet_core::{Wallet, WalletEvent, WalletListener};

pub const ADMIN_TOKEN: &str = "journey-admin-token-0123456789";

/// An invitation as a wallet reads it from its link (the agent answers JSON when asked).
pub async fn invitation_json(url: &str) -> Value {
    reqwest::Client::new()
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A binary of the workspace (`target/<profile>/<name>`), brought up to date by `cargo build`
/// once per test process: an existing binary may be older than the code under test.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let path = dir.join(name);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let profile = dir.file_name().unwrap().to_string_lossy().to_string();
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "--bin", name]);
        if name == "wallet" {
            build.args(["-p", "wallet-core", "--features", "cli"]);
        } else if name == "uniffi-bindgen" {
            build.args(["-p", "lanyard-ffi", "--features", "bindgen"]);
        } else {
            build.args(["-p", "agent"]);
        }
        if profile == "release" {
            build.arg("--release");
        }
        assert!(build.status().unwrap().success(), "building {name}");
        built.push(name.to_string());
    }
    path
}

/// The agent process.
pub struct AgentProcess {
    child: Child,
    pub url: String,
    pub did: String,
    pub data: tempfile::TempDir,
}

impl AgentProcess {
    /// Starts the agent with extra `LANYARD_*` variables.
    pub fn start(vars: &[(&str, String)]) -> AgentProcess {
        let data = tempfile::tempdir().unwrap();
        AgentProcess::start_on(data, vars)
    }

    pub fn start_on(data: tempfile::TempDir, vars: &[(&str, String)]) -> AgentProcess {
        let mut command = Command::new(binary("agent"));
        command
            .env("LANYARD_LISTEN", "127.0.0.1:0")
            .env("LANYARD_DATA_DIR", data.path())
            .env("LANYARD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("LANYARD_CALLBACK_RETRY_MS", "50")
            .env("LANYARD_NET_ALLOW_LOOPBACK", "true")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped());
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the agent binary starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = lines
            .next()
            .unwrap()
            .unwrap()
            .trim_start_matches("listening on ")
            .to_string();
        let did = lines
            .next()
            .unwrap()
            .unwrap()
            .trim_start_matches("mediator DID ")
            .to_string();
        AgentProcess {
            child,
            url,
            did,
            data,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the agent and starts it again on the same data folder and address.
    pub fn kill_and_restart(mut self) -> AgentProcess {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let address = self.url.trim_start_matches("http://").to_string();
        let data = std::mem::replace(&mut self.data, tempfile::tempdir().unwrap());
        drop(self);
        AgentProcess::start_on(data, &[("LANYARD_LISTEN", address)])
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An organisation's side of the API.
pub struct Org {
    pub url: String,
    pub key: String,
    pub id: String,
    pub issuer_did: String,
    client: reqwest::Client,
}

impl Org {
    pub async fn create(agent: &AgentProcess, name: &str) -> Org {
        let client = reqwest::Client::new();
        let data: Value = client
            .post(format!("{}/admin/orgs", agent.url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = &data["data"];
        Org {
            url: agent.url.clone(),
            key: data["apiKey"].as_str().unwrap().into(),
            id: data["id"].as_str().unwrap().into(),
            issuer_did: data["issuerDid"].as_str().unwrap().into(),
            client,
        }
    }

    /// Calls the API; returns the status and the `data` (or the error).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .client
            .request(
                method.parse().unwrap(),
                format!("{}/core/api/v1/programmatic{path}", self.url),
            )
            .header("x-api-key", &self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let data = if body.get("data").is_some() {
            body["data"].clone()
        } else {
            body
        };
        (status, data)
    }

    /// A template with custom fields `skill` and `level`; returns its id.
    pub async fn template(&self, name: &str) -> String {
        let (status, data) = self
            .call(
                "POST",
                "/credential/template",
                Some(json!({
                    "templateName": name, "credentialIssuer": "Issuer", "credentialType": name,
                    "logoURL": "https://example.com/logo.png", "credentialExpiration": null,
                    "customFields": ["skill", "level"], "descriptions": ["Skill", "Level"],
                    "numberOfCredentials": null
                })),
            )
            .await;
        assert_eq!(status, 201, "{data}");
        data["templateId"].as_str().unwrap().to_string()
    }
}

/// The SMTP sink (aiosmtpd, Python) the agent sends invitation emails to.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let dir = tempfile::tempdir().unwrap();
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../agent/tests/support/smtp_sink.py"
        );
        let python = if std::path::Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let mut child = Command::new(python)
            .arg(script)
            .arg(dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiosmtpd (apt install python3-aiosmtpd)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the SMTP sink prints its port");
        SmtpSink { child, port, dir }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The `n`th message (1-based), waiting up to 10 s.
    pub async fn message(&self, n: usize) -> Value {
        let path = self.dir.path().join(format!("{n:04}.json"));
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return serde_json::from_str(&text).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no email {n} arrived");
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Records a wallet's events.
#[derive(Default)]
pub struct Events(pub Mutex<Vec<WalletEvent>>);

impl WalletListener for Events {
    fn on_event(&self, event: WalletEvent) {
        self.0.lock().unwrap().push(event);
    }
}

impl Events {
    pub fn all(&self) -> Vec<WalletEvent> {
        self.0.lock().unwrap().clone()
    }

    /// Waits up to 10 s for an event `matches` accepts.
    pub async fn wait_for(
        &self,
        what: &str,
        matches: impl Fn(&WalletEvent) -> bool,
    ) -> WalletEvent {
        for _ in 0..200 {
            if let Some(event) = self.all().into_iter().find(|e| matches(e)) {
                return event;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {what} event within 10 s: {:?}", self.all());
    }
}

/// A wallet in a fresh folder (fast Argon2 parameters: tests only), with an event recorder.
pub fn wallet() -> (Arc<Wallet>, Arc<Events>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    // The agent runs on loopback: the development allowance.
    let wallet = Wallet::builder(
        &dir.path().join("wallet"),
        Unlock::Passphrase {
            passphrase: zeroize::Zeroizing::new("journey passphrase".to_string()),
            params: Argon2Params::insecure_for_tests(),
        },
    )
    .network(lanyard_protocol::net::NetPolicy::loopback())
    .open()
    .unwrap();
    let events = Arc::new(Events::default());
    wallet.set_listener(Some(events.clone()));
    (Arc::new(wallet), events, dir)
}

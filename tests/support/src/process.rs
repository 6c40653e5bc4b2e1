//! The agent binary as a child process on loopback.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::{Endpoint, ADMIN_TOKEN};

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

/// Spawns `command` (an agent binary with its environment set) with stdout piped, and reads
/// the two lines the agent prints once it serves: its URL and its mediator DID. Returns the
/// process, the URL and the DID.
pub fn spawn_agent(mut command: Command) -> (Child, String, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .spawn()
        .expect("the agent binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut line = |prefix: &str| {
        lines
            .next()
            .expect("the agent prints a line")
            .unwrap()
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("the agent prints {prefix:?}"))
            .to_string()
    };
    let url = line("listening on ");
    let did = line("mediator DID ");
    (child, url, did)
}

/// The agent binary running on a data folder of its own, killed when dropped.
pub struct AgentProcess {
    child: Child,
    /// Where it listens (`http://127.0.0.1:PORT`).
    pub url: String,
    /// Its mediator DID.
    pub did: String,
    /// Its data folder.
    pub data: tempfile::TempDir,
    /// The extra variables it was started with (and is restarted with).
    vars: Vec<(String, String)>,
}

impl AgentProcess {
    /// Starts the agent (built by [`binary`]) with extra `LANYARD_*` variables.
    pub fn start(vars: &[(&str, String)]) -> AgentProcess {
        let data = tempfile::tempdir().unwrap();
        AgentProcess::start_on(data, vars)
    }

    /// Starts the agent on `data` with extra variables: on a free loopback port, with the
    /// [`ADMIN_TOKEN`], callbacks retried after 50 ms and loopback allowed to its client.
    pub fn start_on(data: tempfile::TempDir, vars: &[(&str, String)]) -> AgentProcess {
        let mut command = Command::new(binary("agent"));
        command
            .env("LANYARD_LISTEN", "127.0.0.1:0")
            .env("LANYARD_DATA_DIR", data.path())
            .env("LANYARD_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("LANYARD_CALLBACK_RETRY_MS", "50")
            .env("LANYARD_NET_ALLOW_LOOPBACK", "true")
            .env("RUST_LOG", "warn");
        for (name, value) in vars {
            command.env(name, value);
        }
        let (child, url, did) = spawn_agent(command);
        AgentProcess {
            child,
            url,
            did,
            data,
            vars: vars
                .iter()
                .map(|(name, value)| (name.to_string(), value.clone()))
                .collect(),
        }
    }

    /// The agent's `/metrics` text.
    pub async fn metrics(&self) -> String {
        crate::metrics(self).await
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the agent and starts it again on the same data folder and address, with the
    /// variables it was started with.
    pub fn kill_and_restart(self) -> AgentProcess {
        self.restart_after("KILL")
    }

    /// Sends SIGTERM (a graceful shutdown: in-flight requests finish), waits for the agent to
    /// exit, and starts it again as [`AgentProcess::kill_and_restart`] does.
    pub fn terminate_and_restart(self) -> AgentProcess {
        self.restart_after("TERM")
    }

    fn restart_after(mut self, signal: &str) -> AgentProcess {
        let sent = std::process::Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -{signal} failed");
        self.child.wait().unwrap();
        let address = self.url.trim_start_matches("http://").to_string();
        let data = std::mem::replace(&mut self.data, tempfile::tempdir().unwrap());
        let mut vars: Vec<(&str, String)> = self
            .vars
            .iter()
            .filter(|(name, _)| name != "LANYARD_LISTEN")
            .map(|(name, value)| (name.as_str(), value.clone()))
            .collect();
        vars.push(("LANYARD_LISTEN", address));
        let restarted = AgentProcess::start_on(data, &vars);
        drop(self);
        restarted
    }
}

impl Endpoint for AgentProcess {
    fn url(&self) -> &str {
        &self.url
    }

    fn did(&self) -> &str {
        &self.did
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

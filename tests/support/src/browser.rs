//! The console in a real browser: an agent with an SMTP sink ([`Console`]) and Playwright
//! scripts (`tests/browser/*.mjs`, on `tests/browser/harness.mjs`) that drive Debian's
//! Chromium against it through npm `playwright-core`, installed by `scripts/test` from
//! `tests/browser/package-lock.json` into `<target>/tools/playwright` (nothing is downloaded
//! while a test runs, and the browser reaches nothing but the agent on loopback).
//!
//! A script talks with its test: `ask(name, data)` in the script is [`Script::next`] here,
//! answered with [`Script::reply`] (the test does what a person or a phone would do meanwhile:
//! read the mail sink, run the `wallet` CLI); what the script returns is what
//! [`Script::finish`] gives. A script that fails (an exception, a page error, a request
//! outside the agent) fails the test with everything it printed. Screenshots are kept under
//! `<target>/test-artifacts/console/` ([`artifacts`]).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use agent::config::Config;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::{Agent, SmtpSink};

/// How long one script may run in all before the test gives up on it (a hung browser).
const SCRIPT_LIMIT: Duration = Duration::from_secs(600);

/// The prefix of the lines a script says something to its test with.
const PREFIX: &str = "@@lanyard ";

/// The build's target folder (`<target>/<profile>/deps/<test binary>` is running).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .unwrap_or_else(|| panic!("{} is not under <target>/<profile>/deps", exe.display()))
        .to_path_buf()
}

/// Where the console's screenshots are kept: `<target>/test-artifacts/console/`.
pub fn artifacts() -> PathBuf {
    target_dir().join("test-artifacts/console")
}

/// `playwright-core`'s entry point as `scripts/test` installs it.
fn playwright() -> PathBuf {
    let tools = target_dir().join("tools/playwright");
    let entry = tools.join("node_modules/playwright-core/index.mjs");
    assert!(
        entry.is_file(),
        "playwright-core is not installed in {}: scripts/test installs it \
         (cp tests/browser/package*.json {0}/ && npm ci --prefix {0})",
        tools.display()
    );
    entry
}

/// The folder of the console scripts (`tests/browser/`).
fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../browser")
}

/// An agent on loopback whose invitation emails go to an SMTP sink: what the console's
/// browser tests run against.
pub struct Console {
    /// The agent (its console at `{url}/console`).
    pub agent: Agent,
    /// Where its emails arrive.
    pub smtp: SmtpSink,
}

impl Console {
    /// Starts the SMTP sink and an agent sending to it.
    pub async fn start() -> Console {
        Console::start_with(|_| {}).await
    }

    /// Starts the SMTP sink and an agent sending to it, whose configuration `edit` adjusts.
    pub async fn start_with(edit: impl FnOnce(&mut Config)) -> Console {
        let smtp = SmtpSink::start();
        let url = smtp.url();
        let agent = Agent::start_with(Default::default(), |config| {
            config.smtp_url = Some(url);
            config.smtp_from = "Lanyard console test <console@lanyard.test>".into();
            edit(config);
        })
        .await;
        Console { agent, smtp }
    }

    /// Stops the SMTP sink's process (SIGSTOP) so that an email the agent sends waits (a slow
    /// mail server): what keeps a batch's first row in progress while a page is looked at.
    pub fn pause_mail(&self) {
        self.signal_mail("STOP");
    }

    /// Lets the SMTP sink go on (SIGCONT) after [`Console::pause_mail`].
    pub fn resume_mail(&self) {
        self.signal_mail("CONT");
    }

    fn signal_mail(&self, signal: &str) {
        let sent = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.smtp.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal} of the SMTP sink failed");
    }

    /// The agent's base URL.
    pub fn url(&self) -> &str {
        &self.agent.url
    }

    /// Starts `tests/browser/<name>` against this agent with `input` (the script's `input`).
    pub fn script(&self, name: &str, input: Value) -> Script {
        Script::start(name, self.url(), input)
    }

    /// Runs `tests/browser/<name>` to its end with `input`: its result; the test fails with
    /// the script's output when the script fails or asks for something.
    pub async fn run(&self, name: &str, input: Value) -> Value {
        self.script(name, input).expect_success().await
    }
}

/// A console script running in Chromium: its questions to the test, its answers, its result.
pub struct Script {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Lines<BufReader<ChildStdout>>,
    /// Every line it printed that is not part of the conversation.
    log: Vec<String>,
    stderr: tokio::task::JoinHandle<String>,
    result: Option<Value>,
    deadline: tokio::time::Instant,
}

/// A script that failed: what it printed, for the test's message.
#[derive(Debug)]
pub struct ScriptFailure {
    /// The script's file name.
    pub script: String,
    /// Its exit status, or why it has none.
    pub status: String,
    /// What it printed on stdout (the conversation's lines left out) and on stderr.
    pub output: String,
}

impl std::fmt::Display for ScriptFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the browser script {} failed ({}):\n{}",
            self.script, self.status, self.output
        )
    }
}

impl Script {
    /// Starts `tests/browser/<name>` (Node.js) against the agent at `url` with `input`.
    pub fn start(name: &str, url: &str, input: Value) -> Script {
        let path = scripts().join(name);
        assert!(path.is_file(), "no browser script {}", path.display());
        let mut child = tokio::process::Command::new("node")
            .arg(&path)
            .env("LANYARD_URL", url)
            .env("LANYARD_INPUT", input.to_string())
            .env("LANYARD_ARTIFACTS", artifacts())
            .env("LANYARD_PLAYWRIGHT", playwright())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (the image's Node.js)");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text).await;
            text
        });
        Script {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            lines,
            log: Vec::new(),
            stderr,
            result: None,
            deadline: tokio::time::Instant::now() + SCRIPT_LIMIT,
        }
    }

    /// The next thing the script says to its test (`None` when it ended): its question
    /// `{"ask": name, "data": ...}` or its result `{"result": ...}`. Other lines go to the log.
    async fn said(&mut self) -> Result<Option<Value>, String> {
        loop {
            let line = tokio::time::timeout_at(self.deadline, self.lines.next_line())
                .await
                .map_err(|_| format!("still running after {} s", SCRIPT_LIMIT.as_secs()))?
                .map_err(|e| format!("its stdout cannot be read: {e}"))?;
            let Some(line) = line else {
                return Ok(None);
            };
            match line.strip_prefix(PREFIX) {
                Some(message) => {
                    return serde_json::from_str(message)
                        .map(Some)
                        .map_err(|e| format!("it said {message:?}, not JSON: {e}"))
                }
                None => {
                    println!("[{}] {line}", self.name);
                    self.log.push(line);
                }
            }
        }
    }

    /// The script's next question, `(name, data)`, waiting for it; the test fails (with the
    /// script's output) when the script ends or fails instead of asking.
    pub async fn next(&mut self) -> (String, Value) {
        match self.said().await {
            Ok(Some(message)) if message.get("ask").is_some() => (
                message["ask"].as_str().unwrap_or_default().to_string(),
                message["data"].clone(),
            ),
            Ok(Some(message)) => {
                self.result = message.get("result").cloned();
                let outcome = self.finish_inner().await;
                panic!("the browser script ended instead of asking: {outcome:?}")
            }
            Ok(None) => match self.finish_inner().await {
                Err(failure) => panic!("{failure}"),
                Ok(result) => panic!(
                    "the browser script {} ended instead of asking (result {result})",
                    self.name
                ),
            },
            Err(why) => panic!("{}", self.failure(why).await),
        }
    }

    /// Waits for the script's question `name` and returns its data (the test fails when it
    /// asks something else).
    pub async fn expect(&mut self, name: &str) -> Value {
        let (asked, data) = self.next().await;
        assert_eq!(asked, name, "the browser script asked {asked:?} ({data})");
        data
    }

    /// Answers the script's last question with `value`.
    pub async fn reply(&mut self, value: Value) {
        let stdin = self.stdin.as_mut().expect("the script's stdin is open");
        let mut line = value.to_string();
        line.push('\n');
        if let Err(error) = stdin.write_all(line.as_bytes()).await {
            panic!(
                "{}",
                self.failure(format!("cannot be answered: {error}")).await
            );
        }
    }

    /// Waits for the script to end: its result, or what it printed when it failed.
    pub async fn finish(mut self) -> Result<Value, ScriptFailure> {
        self.finish_inner().await
    }

    /// [`Script::finish`], failing the test with the script's output when the script failed.
    pub async fn expect_success(self) -> Value {
        self.finish()
            .await
            .unwrap_or_else(|failure| panic!("{failure}"))
    }

    async fn finish_inner(&mut self) -> Result<Value, ScriptFailure> {
        // No more answers: a script still asking sees its stdin closed.
        self.stdin = None;
        loop {
            match self.said().await {
                Ok(Some(message)) if message.get("result").is_some() => {
                    self.result = message.get("result").cloned()
                }
                Ok(Some(message)) => {
                    return Err(self
                        .failure(format!("it asked {message} after the test had finished"))
                        .await)
                }
                Ok(None) => break,
                Err(why) => return Err(self.failure(why).await),
            }
        }
        let status = match tokio::time::timeout_at(self.deadline, self.child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(error)) => {
                return Err(self.failure(format!("cannot be waited for: {error}")).await)
            }
            Err(_) => {
                return Err(self
                    .failure(format!("still running after {} s", SCRIPT_LIMIT.as_secs()))
                    .await)
            }
        };
        match (status.success(), self.result.take()) {
            (true, Some(result)) => Ok(result),
            (true, None) => Err(self.failure("it ended without a result".into()).await),
            (false, _) => Err(self.failure(status.to_string()).await),
        }
    }

    /// The failure `status` with everything the script printed.
    async fn failure(&mut self, status: String) -> ScriptFailure {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let stderr = (&mut self.stderr).await.unwrap_or_default();
        self.stderr = tokio::spawn(async { String::new() });
        let mut output = self.log.join("\n");
        if !stderr.is_empty() {
            output.push_str("\n--- stderr ---\n");
            output.push_str(&stderr);
        }
        ScriptFailure {
            script: self.name.clone(),
            status,
            output,
        }
    }
}

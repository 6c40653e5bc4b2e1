//! Protocol-level interop with Veramo 7 (npm `@veramo/did-comm` 7.0.1), independent code run
//! by Node.js: the driver in `tests/veramo/driver.mjs` runs Veramo's own Coordinate Mediation
//! 3.0 message builders and recipient handler and its Pickup 3.0 recipient handler, over
//! envelopes that didcomm-node 0.4.1 (the WASM build of didcomm-rust) packs and unpacks,
//! against the real agent binary. Veramo's own envelopes (which deviate from DIDComm v2.1)
//! are shown refused, with the reason named.
//!
//! The npm packages are installed from `tests/veramo/package-lock.json` into
//! `<target>/tools/veramo` by `scripts/test` when missing; each test copies the driver beside
//! them.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};

use lanyard_protocol::didcomm::{Message, ENCRYPTED_TYP};
use lanyard_protocol::protocols::basic_message;
use lanyard_test_support as support;
use serde_json::{json, Value};
use support::{Agent, AgentProcess, Phone};

/// Where `scripts/test` installs the driver's npm packages.
fn tools() -> PathBuf {
    support::binary("agent")
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("tools/veramo")
}

/// The driver, copied beside its `node_modules` (Node.js resolves packages from the script's
/// folder): a fresh copy per test, renamed into place so parallel tests never see half a file.
fn driver() -> PathBuf {
    let tools = tools();
    assert!(
        tools.join("node_modules/@veramo/did-comm").is_dir()
            && tools.join("node_modules/didcomm-node").is_dir(),
        "the Veramo driver's npm packages are not installed in {}: scripts/test installs them \
         (cp tests/veramo/package*.json {0}/ && npm ci --prefix {0})",
        tools.display()
    );
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("veramo/driver.mjs");
    let target = tools.join("driver.mjs");
    let staging = tools.join(format!("driver.{}.mjs.tmp", std::process::id()));
    std::fs::copy(&source, &staging).unwrap();
    std::fs::rename(&staging, &target).unwrap();
    target
}

/// The driver running one mode against the mediator; its stdout read a JSON line at a time.
struct Driver {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Driver {
    fn start(mode: &str, mediator_did: &str) -> Driver {
        Driver::start_with(mode, mediator_did, &[])
    }

    fn start_with(mode: &str, mediator_did: &str, extra: &[&str]) -> Driver {
        let mut child = Command::new("node")
            .arg(driver())
            .args([mode, mediator_did])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node (the image's Node.js) runs the Veramo driver");
        let stdin = child.stdin.take();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Driver {
            child,
            stdin,
            lines,
        }
    }

    /// The next step the driver reports (blocking: the driver answers or exits).
    fn step(&mut self, name: &str) -> Value {
        let line = self
            .lines
            .next()
            .unwrap_or_else(|| {
                panic!("the Veramo driver ended before step {name:?} (see its stderr)")
            })
            .unwrap();
        let step: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(step["step"], name, "{step}");
        step
    }

    /// Tells the driver to go on.
    fn go(&mut self) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }

    fn finish(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the Veramo driver failed: {status}");
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a blocking driver call off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn veramo_gets_mediation_registers_and_picks_up_what_a_lanyard_wallet_forwarded() {
    let process = AgentProcess::start(&[]);
    let agent = Agent::at(process.url.clone(), process.did.clone());
    let mediator_did = process.did.clone();

    let (mut driver, registered) = blocking(move || {
        let mut driver = Driver::start("pickup", &mediator_did);
        let registered = driver.step("registered");
        (driver, registered)
    })
    .await;
    let veramo_did = registered["did"].as_str().unwrap().to_string();
    assert!(veramo_did.starts_with("did:peer:2."), "{registered}");
    // Veramo's recipient handler took the grant; its routing DID is our mediator's.
    assert_eq!(registered["routing_did"], json!([process.did]));
    assert_eq!(
        registered["updates"],
        json!([{"recipient_did": veramo_did, "action": "add", "result": "success"}])
    );
    assert_eq!(
        registered["recipients"],
        json!([{ "recipient_did": veramo_did }])
    );

    // A Lanyard wallet (a did:peer:2 with mediation of its own) sends Veramo a message:
    // authcrypted to Veramo's DID, wrapped in a forward to the mediator its DID names.
    let phone = Phone::new(&agent.did);
    phone.connect(&agent).await;
    let message = Message::new(
        basic_message::MESSAGE,
        json!({ "content": "hello Veramo, from Lanyard" }),
    )
    .from(phone.did.clone())
    .to([veramo_did.clone()]);
    let packed = phone
        .didcomm
        .pack_for_delivery(&message, Some(&phone.did), &veramo_did, false)
        .await
        .expect("Veramo's did:peer:2 resolves and routes through our mediator");
    assert_eq!(
        packed.endpoint.as_deref(),
        Some(format!("{}/didcomm", agent.url).as_str())
    );
    let posted = agent.post(ENCRYPTED_TYP, packed.message).await;
    assert_eq!(posted.status(), 202, "the forward to Veramo is queued");

    let picked = blocking(move || {
        driver.go();
        let picked = driver.step("picked-up");
        driver.finish();
        picked
    })
    .await;
    assert_eq!(picked["waiting_before"], 1, "{picked}");
    assert_eq!(picked["delivered"].as_array().unwrap().len(), 1, "{picked}");
    let received = &picked["received"];
    assert_eq!(received.as_array().unwrap().len(), 1, "{picked}");
    assert_eq!(received[0]["id"], json!(message.id), "{picked}");
    assert_eq!(received[0]["type"], basic_message::MESSAGE);
    assert_eq!(received[0]["from"], json!(phone.did));
    assert_eq!(received[0]["body"], message.body);
    // Veramo's handler acknowledged it (messages-received, answered with a status) and the
    // queue is empty.
    assert_eq!(picked["acknowledged"], true, "{picked}");
    assert_eq!(picked["waiting_after"], 0, "{picked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn veramo_stock_envelopes_are_refused_naming_the_missing_apv_and_the_failed_key_wrap() {
    let process = AgentProcess::start(&[]);
    let agent = Agent::at(process.url.clone(), process.did.clone());
    let mediator_did = process.did.clone();
    let stock = blocking(move || {
        let mut driver = Driver::start("stock", &mediator_did);
        let stock = driver.step("stock");
        driver.finish();
        stock
    })
    .await;

    let refusal = |envelope: &Value| {
        let envelope = envelope.as_str().unwrap().to_string();
        let agent = &agent;
        async move {
            let response = agent.post(ENCRYPTED_TYP, envelope).await;
            assert_eq!(response.status(), 400);
            let report: Value = response.json().await.unwrap();
            assert_eq!(report["body"]["code"], "e.p.msg.unreadable", "{report}");
            report["body"]["comment"].as_str().unwrap().to_string()
        }
    };
    // As Veramo packs them: no apv (nor apu) in the protected header.
    for form in ["authcrypt", "anoncrypt"] {
        assert_eq!(
            refusal(&stock[form]).await,
            "malformed message: JWE header has no apv",
            "{form}"
        );
    }
    // With the headers patched in, what Veramo derived its keys from still differs: the
    // anoncrypt key wrap does not open, and authcrypt is refused for A256GCM.
    assert_eq!(
        refusal(&stock["anoncrypt_patched"]).await,
        "the key wrap failed to authenticate: the wrapped key was not made for this key"
    );
    assert_eq!(
        refusal(&stock["authcrypt_patched"]).await,
        "unsupported content encryption \"A256GCM with ECDH-1PU (only A256CBC-HS512 is allowed)\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn veramo_plaintext_with_an_iso_created_time_is_taken_by_the_mediator() {
    let process = AgentProcess::start(&[]);
    let agent = Agent::at(process.url.clone(), process.did.clone());
    let phone = Phone::new(&agent.did);
    let (mediator_did, from) = (process.did.clone(), phone.did.clone());
    let plaintext = blocking(move || {
        let mut driver = Driver::start_with("plaintext", &mediator_did, &[&from]);
        let step = driver.step("plaintext");
        driver.finish();
        step
    })
    .await;
    // Veramo's builder writes created_time as an ISO 8601 string, not seconds since the epoch.
    let mut message = plaintext["message"].clone();
    assert!(message["created_time"].is_string(), "{message}");
    message["return_route"] = json!("all");

    // Authcrypted by the phone exactly as Veramo's builder made it (a spec-correct envelope).
    let sender = phone
        .didcomm
        .recipients_of(&phone.did)
        .await
        .unwrap()
        .remove(0);
    let recipients = phone.didcomm.recipients_of(&agent.did).await.unwrap();
    let packed = lanyard_protocol::didcomm::encrypt_authcrypt(
        phone.didcomm.keys(),
        message.to_string().as_bytes(),
        &sender,
        &recipients,
    )
    .unwrap();
    let response = agent.post(ENCRYPTED_TYP, packed).await;
    assert_eq!(response.status(), 200, "the mediate-request is answered");
    let grant = phone
        .didcomm
        .unpack(&response.text().await.unwrap())
        .await
        .unwrap();
    assert_eq!(grant.message.type_, support::mediator::MEDIATE_GRANT);
    assert_eq!(grant.message.thid.as_deref(), message["id"].as_str());
}

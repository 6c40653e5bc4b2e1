//! The `wallet` CLI as the README's newcomer uses it: the QR code image from the invite email
//! (received by the SMTP sink) is decoded by `wallet accept --qr-image`, and the credential
//! arrives on `sync`; bad input is refused with a message that says what was wrong.

mod support;

use std::process::Command;

use serde_json::{json, Value};
use support::{binary, AgentProcess, Org, SmtpSink};

fn wallet(dir: &std::path::Path, args: &[&str]) -> (bool, Value, String) {
    let output = Command::new(binary("wallet"))
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env("LANYARD_WALLET_PASSPHRASE", "cli test passphrase")
        .env("LANYARD_WALLET_ALLOW_LOOPBACK", "true")
        .output()
        .unwrap();
    let stdout = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    (
        output.status.success(),
        stdout,
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_the_emailed_qr_code_and_receives_the_credential() {
    let sink = SmtpSink::start();
    let agent = AgentProcess::start(&[("LANYARD_SMTP_URL", sink.url())]);
    let acme = Org::create(&agent, "Acme").await;
    let template = acme.template("Membership").await;
    acme.call(
        "POST",
        "/customer",
        Some(
            json!({ "name": "Jane", "medium": "email", "email": "jane@example.com",
              "autoIssue": { "templateId": template, "values": { "level": "gold" } } }),
        ),
    )
    .await;
    let mail = sink.message(1).await;
    let qr = mail["images"][0]["path"].as_str().unwrap();
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("wallet");

    let (ok, connection, err) = wallet(&dir, &["--json", "accept", "--qr-image", qr]);
    assert!(ok, "{err}");
    assert_eq!(connection["label"], "Acme");
    let (ok, _, err) = wallet(&dir, &["--json", "--auto-accept", "sync"]);
    assert!(ok, "{err}");
    wallet(&dir, &["--json", "sync"]);
    let (_, credentials, _) = wallet(&dir, &["--json", "credentials"]);
    assert_eq!(credentials.as_array().unwrap().len(), 1, "{credentials}");
    assert_eq!(credentials[0]["issuer_did"], acme.issuer_did.as_str());

    // Refusals name what was wrong.
    let (ok, _, err) = wallet(&dir, &["accept", "not a link"]);
    assert!(
        !ok && err.contains("neither a link nor an invitation"),
        "{err}"
    );
    let (ok, _, err) = wallet(&dir, &["accept", "--qr-image", "/nonexistent.png"]);
    assert!(!ok && err.contains("/nonexistent.png"), "{err}");
    let (ok, _, err) = wallet(&dir, &["accept-offer", "no-such-offer"]);
    assert!(
        !ok && err.contains("No offer has the id no-such-offer"),
        "{err}"
    );
    let output = Command::new(binary("wallet"))
        .arg("--dir")
        .arg(&dir)
        .arg("credentials")
        .env("LANYARD_WALLET_PASSPHRASE", "the wrong passphrase")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr)
        .to_lowercase()
        .contains("passphrase"));
}

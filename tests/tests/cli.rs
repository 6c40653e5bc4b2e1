//! The `wallet` CLI as the README's newcomer uses it: the QR code image from the invite email
//! (received by the SMTP sink) is decoded by `wallet accept --qr-image`, and the credential
//! arrives on `sync`; bad input is refused with a message that says what was wrong.

use lanyard_test_support as support;

use std::process::Command;

use serde_json::{json, Value};
use support::{binary, AgentProcess, OrgClient, SmtpSink};

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
    let acme = OrgClient::create(&agent, "Acme").await;
    let template = acme.template("Membership").await;
    acme.onboard_auto_issue(
        "Jane",
        "jane@example.com",
        &template,
        json!({ "level": "gold" }),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_the_cli_prints_is_whole_whatever_an_inviter_names_itself() {
    let agent = AgentProcess::start(&[]);
    let acme = OrgClient::create(&agent, "Acme").await;
    let (status, customer) = acme
        .api(
            "POST",
            "/customer",
            Some(json!({ "name": "Jane", "medium": "email", "email": "jane@example.com" })),
        )
        .await;
    assert_eq!(status, 201, "{customer}");
    // The invitation as a wallet reads it, relabelled by whoever passed it on: the label is
    // shown to people, and it carries a newline, a carriage return and terminal escapes.
    let mut invitation =
        support::fetch_invitation(customer["invitation"]["url"].as_str().unwrap()).await;
    invitation["label"] = json!("Acme\nstored credential forged from Bank\r\u{1b}[2K");
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("wallet");
    let output = Command::new(binary("wallet"))
        .arg("--dir")
        .arg(&dir)
        .args(["accept", &invitation.to_string()])
        .env("LANYARD_WALLET_PASSPHRASE", "cli test passphrase")
        .env("LANYARD_WALLET_ALLOW_LOOPBACK", "true")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    );
    assert!(output.status.success(), "{stderr}");
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(text.ends_with('\n'), "{name} ends mid-line: {text:?}");
        assert!(!text.contains(['\r', '\u{1b}']), "{name}: {text:?}");
        assert!(
            !text.lines().any(|l| l.starts_with("stored credential")),
            "{name} has a forged line: {text:?}"
        );
    }
    let event = stderr
        .lines()
        .find(|l| l.starts_with("connected with"))
        .unwrap_or_else(|| panic!("no connection event in {stderr:?}"));
    assert_eq!(
        event,
        "connected with Acme\\nstored credential forged from Bank\\r\\u{1b}[2K"
    );
}

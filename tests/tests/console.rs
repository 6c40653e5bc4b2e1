//! The issuer's web console in a real browser (issue 15): Playwright scripts
//! (`tests/browser/*.mjs`) drive Debian's Chromium against an agent with an SMTP sink
//! (`support::browser`); screenshots of every page are kept under
//! `<target>/test-artifacts/console/`.

use lanyard_test_support as support;

use serde_json::{json, Value};
use support::browser::artifacts;
use support::console::TEST_PASSWORD;
use support::{create_invitation, run_wallet, Console, OrgClient};

#[tokio::test]
async fn console_harness_runs_a_script_that_asks_the_test_and_keeps_its_screenshot() {
    let console = Console::start().await;
    let mut script = console.script("harness_check.mjs", json!({ "label": "Acme Gym" }));
    let asked = script.expect("invitation").await;
    assert_eq!(asked, json!({ "label": "Acme Gym" }));
    let created = create_invitation(&console.agent, json!({ "label": asked["label"] })).await;
    script.reply(json!({ "url": created["url"] })).await;
    let result = script.expect_success().await;

    assert_eq!(result["button"], 1, "the invite page's button: {result}");
    assert!(
        result["heading"].as_str().unwrap().contains("Acme Gym"),
        "{result}"
    );
    let path = artifacts().join("harness-invite-page.png");
    assert_eq!(result["path"], path.display().to_string());
    let png = std::fs::read(&path).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG screenshot");
}

#[tokio::test]
async fn console_harness_fails_a_script_whose_page_reaches_outside_the_agent() {
    let console = Console::start().await;
    // A documentation address (TEST-NET-1): never fetched, the harness aborts it first.
    let outside = "http://192.0.2.1/logo.png";
    let failure = console
        .script("harness_check.mjs", json!({ "external": outside }))
        .finish()
        .await
        .expect_err("a page that fetches from outside the agent fails its script");
    assert_eq!(failure.script, "harness_check.mjs");
    assert!(
        failure
            .output
            .contains(&format!("the page fetched {outside}, outside the agent")),
        "{failure}"
    );
    assert!(failure.output.contains("harness_check failed"), "{failure}");
}

/// What `zbarimg` (Debian's zbar-tools, a decoder independent of the agent's QR code) reads
/// in the image at `path`.
fn zbarimg(path: &str) -> String {
    let output = std::process::Command::new("zbarimg")
        .args(["--raw", "-q", path])
        .output()
        .expect("zbarimg runs (apt-get install zbar-tools; scripts/test installs it)");
    assert!(
        output.status.success(),
        "zbarimg found no QR code in {path}"
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// The journey of issue 15 through the console in Chromium: sign in; a template made on its
/// page; a customer onboarded with the form by email (the SMTP sink receives the invite),
/// shown Onboarded once the `wallet` CLI accepted the emailed QR code and synced; a batch
/// with a bad row, watched while its first row waits for the mail server, reported row by
/// row and its failures downloaded; a verification created from the template, its QR code
/// on screen read by zbarimg, answered by the wallet, and the disclosed value appearing on
/// the page without a reload; the template deleted on its page after confirming, so a second
/// verification fails with the reason on screen and the wallet loses the credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_journey_from_sign_in_to_a_verification_on_screen() {
    let console = Console::start().await;
    let acme = OrgClient::create(&console.agent, "Acme Gym").await;
    let email = "staff@acme.test";
    let added = acme.add_user(email, TEST_PASSWORD).await;
    assert_eq!(added.status, 201, "{}", added.body);

    let csv = "name,medium,email,skill,level\n\
               Ada Lovelace,email,ada@example.com,maths,gold\n\
               Bad Row,email,not-an-email,x,y\n\
               Bob Stone,email,bob@example.com,rust,silver\n";
    let mut script = console.script(
        "console_journey.mjs",
        json!({
            "email": email, "password": TEST_PASSWORD, "templateName": "Membership", "csv": csv,
        }),
    );

    // The template the page made is the API's too.
    script.expect("template made").await;
    let (status, templates) = acme.api("GET", "/credential/template", None).await;
    assert_eq!(status, 200, "{templates}");
    let made = &templates["data"][0];
    assert_eq!(made["name"], "Membership", "{templates}");
    assert_eq!(
        made["customFields"],
        json!(["skill", "level"]),
        "{templates}"
    );
    let template = made["templateId"].as_str().unwrap().to_string();
    script.reply(json!({ "template": template })).await;

    // The customer onboarded with the form; the wallet accepts the emailed QR code.
    script.expect("onboarded").await;
    let mail = console.smtp.message(1).await;
    assert_eq!(mail["to"], "jane@example.com", "{mail}");
    let qr = mail["images"][0]["path"].as_str().unwrap().to_string();
    let wallet_dir = tempfile::tempdir().unwrap();
    let wallet = wallet_dir.path().join("wallet");
    run_wallet(&wallet, &["--json", "accept", "--qr-image", &qr]);
    run_wallet(&wallet, &["--json", "--auto-accept", "sync"]);
    run_wallet(&wallet, &["--json", "sync"]);
    let credentials = run_wallet(&wallet, &["--json", "credentials"]);
    assert_eq!(credentials.as_array().unwrap().len(), 1, "{credentials}");
    script.reply(json!(null)).await;
    script.expect("hold mail").await;
    console.pause_mail();
    script.reply(json!(null)).await;
    script.expect("release mail").await;
    console.resume_mail();
    script.reply(json!(null)).await;

    let asked = script.expect("present").await;
    let url = asked["url"].as_str().unwrap().to_string();
    assert_eq!(
        zbarimg(asked["qr"].as_str().unwrap()),
        url,
        "the QR code on the page"
    );
    run_wallet(&wallet, &["--json", "accept", &url]);
    run_wallet(&wallet, &["--json", "sync"]);
    let requests = run_wallet(&wallet, &["--json", "requests"]);
    let request = requests[0]["request"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no request in {requests}"))
        .to_string();
    run_wallet(&wallet, &["--json", "present", &request]);
    script.reply(json!(null)).await;

    // The second request reaches the wallet; the template is deleted before it answers.
    let asked = script.expect("present revoked").await;
    run_wallet(
        &wallet,
        &["--json", "accept", asked["url"].as_str().unwrap()],
    );
    run_wallet(&wallet, &["--json", "sync"]);
    let requests = run_wallet(&wallet, &["--json", "requests"]);
    let pending: Vec<&Value> = requests
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["request"]["state"] == "Pending")
        .collect();
    let request = pending
        .last()
        .and_then(|r| r["request"]["id"].as_str())
        .unwrap_or_else(|| panic!("no second request in {requests}"))
        .to_string();
    script.reply(json!(null)).await;
    // The page deleted the template; the wallet answers the request.
    script.expect("deleted").await;
    let (status, gone) = acme
        .api("GET", &format!("/credential/template/{template}"), None)
        .await;
    assert_eq!(status, 404, "the template is gone: {gone}");
    run_wallet(&wallet, &["--json", "present", &request]);
    script.reply(json!(null)).await;
    let result = script.expect_success().await;

    // The template's deletion reaches the wallet: its credential is gone.
    run_wallet(&wallet, &["--json", "sync"]);
    let credentials = run_wallet(&wallet, &["--json", "credentials"]);
    assert_eq!(
        credentials,
        json!([]),
        "the wallet lost the deleted template's credential"
    );

    assert_eq!(
        result["steps"],
        json!([
            "signed in",
            "template",
            "onboarded",
            "batch",
            "verification",
            "template deleted",
            "failed verification"
        ])
    );
    assert!(
        ["Initiated", "Invited"].contains(&result["invited"].as_str().unwrap()),
        "{result}"
    );
    assert_eq!(result["onboardedRows"], json!(["Jane Doe"]), "{result}");
    let credential_row = result["credentialRow"].as_str().unwrap();
    assert!(
        credential_row.starts_with("Membership") && credential_row.contains("Accepted"),
        "the customer's credential by its template's name: {credential_row}"
    );
    let failed = &result["failed"];
    assert_eq!(failed["state"], "Failed", "{failed}");
    assert_eq!(
        failed["reasons"],
        json!([format!(
            "the template {template} was deleted, so its credentials are revoked"
        )]),
        "{failed}"
    );
    assert_eq!(failed["valuesShown"], false);
    // The batch was on screen running (its first row waiting for the mail server), then
    // done on the same page, every row reported.
    assert_eq!(result["running"]["processed"], "0", "{result}");
    assert_eq!(result["running"]["total"], "3");
    assert_eq!(result["running"]["max"], "3");
    assert_eq!(result["live"], true, "the batch page was not reloaded");
    assert_eq!(result["progress"], json!({ "value": 3, "max": 3 }));
    let rows = result["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "{result}");
    assert_eq!(rows[0][1], "Ada Lovelace");
    assert_eq!(rows[0][2], "Succeeded");
    assert_eq!(rows[1][2], "Failed");
    assert!(
        rows[1][3].as_str().unwrap().starts_with("email "),
        "the bad row's reason names the email: {}",
        rows[1][3]
    );
    assert_eq!(rows[2][2], "Succeeded");
    assert_eq!(result["reloaded"], 3, "the report read back from the store");
    let failures = result["failures"].as_str().unwrap();
    let lines: Vec<&str> = failures.lines().collect();
    assert_eq!(lines[0], "name,medium,email,skill,level,error");
    assert!(
        lines[1].starts_with("Bad Row,email,not-an-email,x,y,"),
        "{failures}"
    );
    assert_eq!(lines.len(), 2, "{failures}");

    // The verification's result appeared on the page it was asked from.
    let verification = &result["verification"];
    assert_eq!(
        verification["live"], true,
        "the verification page was not reloaded"
    );
    assert_eq!(verification["state"], "Verified", "{verification}");
    assert_eq!(
        verification["values"]["skill"], "climbing",
        "{verification}"
    );
    assert_eq!(verification["requestHidden"], true);
}

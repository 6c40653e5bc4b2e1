//! The issuer's web console in a real browser (issue 15): Playwright scripts
//! (`tests/browser/*.mjs`) drive Debian's Chromium against an agent with an SMTP sink
//! (`support::browser`); screenshots of every page are kept under
//! `<target>/test-artifacts/console/`.

use lanyard_test_support as support;

use serde_json::json;
use support::browser::artifacts;
use support::{create_invitation, Console};

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

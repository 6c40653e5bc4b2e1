//! The credential templates and email templates pages in a real browser
//! (`tests/browser/mail_pages.mjs` through lanyard-test-support's Playwright harness): what a
//! person sees after each step, read from the pages, and screenshots kept under
//! `<target>/test-artifacts/console/mail-*.png`.

use lanyard_test_support as support;

use serde_json::json;
use support::console::TEST_PASSWORD;
use support::{Console, OrgClient};

#[tokio::test]
async fn templates_and_email_templates_pages_work_in_chromium() {
    let console = Console::start().await;
    let acme = OrgClient::create(&console.agent, "Acme Gym").await;
    let added = acme.add_user("staff@acme.test", TEST_PASSWORD).await;
    assert_eq!(added.status, 201, "{}", added.body);
    let result = console
        .run(
            "mail_pages.mjs",
            json!({
                "email": "staff@acme.test",
                "password": TEST_PASSWORD,
                "template": {
                    "name": "Gym <b>membership</b>",
                    "description": "Membership \"level\" & tier",
                },
                "email_template": { "name": "Welcome <i>new</i> members" },
                "logo": concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/acme-logo.png"),
            }),
        )
        .await;
    let text = |key: &str| result[key].as_str().unwrap_or_default().to_string();
    assert!(
        text("fieldError").starts_with("\"member since\" is not a field name"),
        "{result}"
    );
    assert_eq!(result["invalid"], "true");
    assert_eq!(text("created"), "The template was created.");
    assert_eq!(text("heading"), "Gym <b>membership</b>", "shown as text");
    assert_eq!(
        result["fields"],
        json!([
            "credentialIssuer",
            "credentialType",
            "holderFullName",
            "level",
            "memberSince",
            "locker"
        ])
    );
    assert!(text("consequence").contains("the credentials leave the holders' wallets"));
    assert_eq!(
        text("unconfirmed"),
        "Tick the box to confirm that the holders lose these credentials."
    );
    assert!(text("deleted").starts_with("The template was deleted"));
    assert_eq!(text("previewTitle"), "Acme Gym invites you to connect");
    assert_eq!(result["previewLogo"], 1);
    assert!(text("previewBody").contains("Your membership card is ready."));
    assert_eq!(
        text("buttonColour"),
        "rgb(11, 95, 255)",
        "the preview's stylesheet applies"
    );
    assert_eq!(text("scrolledTo"), "#preview-h", "the preview is shown");
    assert_eq!(text("saved"), "The email template was saved.");
    assert_eq!(result["savedLogo"], 1);
    assert!(text("listed").contains("Welcome <i>new</i> members"));
    assert_eq!(text("defaultTitle"), "Acme Gym invites you to connect");
    let templates = acme
        .call("GET", "/core/api/v1/programmatic/credential/template", None)
        .await;
    assert_eq!(templates.body["data"]["totalItem"], 0, "deleted");
    let emails = acme
        .call("GET", "/core/api/v1/programmatic/email-template", None)
        .await;
    assert_eq!(emails.body["data"]["totalItem"], 1);
}

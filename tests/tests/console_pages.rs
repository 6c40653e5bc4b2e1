//! The console's own pages (sign-in, dashboard, customers, onboarding, a customer's page,
//! settings) in a real browser, on a laptop and a phone (`tests/browser/console_pages.mjs`);
//! screenshots under `<target>/test-artifacts/console/console-*.png`.

use lanyard_test_support as support;

use serde_json::json;
use support::{Console, OrgClient, TEST_PASSWORD};

#[tokio::test]
async fn the_console_pages_work_in_a_browser_on_a_laptop_and_a_phone() {
    let console = Console::start().await;
    let acme = OrgClient::create(&console.agent, "Acme Climbing").await;
    acme.template("Climbing skill").await;
    assert_eq!(
        acme.add_user("ada@acme.test", TEST_PASSWORD).await.status,
        201
    );
    let seen = console
        .run(
            "console_pages.mjs",
            json!({ "email": "ada@acme.test", "password": TEST_PASSWORD, "template": "Climbing skill" }),
        )
        .await;
    assert_eq!(seen["signInUrl"], "/console/sign-in", "{seen}");
    assert_eq!(seen["wrongPassword"], "the email or the password is wrong");
    assert_eq!(seen["dashboardHeading"], "Dashboard");
    assert_eq!(seen["firstFocus"], "Skip to the content");
    assert_eq!(
        seen["emailError"], "email \"jane-at-example.com\" is not a valid email address",
        "{seen}"
    );
    assert_eq!(seen["emailInvalid"], "true");
    assert_eq!(seen["nameKept"], "Jane Doe");
    assert_eq!(seen["emailHiddenForSms"], true);
    assert!(
        seen["labelError"]
            .as_str()
            .unwrap()
            .contains("organizationLabel is required for SMS"),
        "{seen}"
    );
    assert_eq!(
        seen["valueError"], "level is required for this template",
        "{seen}"
    );
    assert_eq!(seen["notice"], "The customer was onboarded.");
    assert!(
        seen["customerHeading"]
            .as_str()
            .unwrap()
            .starts_with("Jane Doe"),
        "{seen}"
    );
    assert_eq!(seen["qr"], 1);
    let invitation = seen["invitation"].as_str().unwrap();
    assert!(
        invitation.starts_with(&format!("{}/i/", console.url())),
        "{seen}"
    );
    assert_eq!(seen["rows"], 1);
    assert!(
        seen["onboardedEmpty"]
            .as_str()
            .unwrap()
            .contains("No customers yet in the Onboarded stage"),
        "{seen}"
    );
    assert_eq!(seen["searchRows"], 1);
    assert!(seen["newKey"]
        .as_str()
        .unwrap()
        .starts_with(&format!("lk_{}_", acme.id)));
    assert_eq!(seen["keyShownAgain"], false, "shown once");
    assert_eq!(seen["keysListed"], 1, "listed by name");
    assert_eq!(seen["navHiddenOnPhone"], true);
    assert_eq!(seen["navShownAfterMenu"], true);
    assert_eq!(seen["afterSignOut"], "/console/sign-in");

    // The onboarded customer's invitation went out by email, with the link the page shows.
    let mail = console.smtp.message(1).await.to_string();
    assert!(mail.contains("jane@example.com"), "{mail}");
    assert!(
        mail.contains(invitation),
        "the mail carries the page's link: {mail}"
    );
}

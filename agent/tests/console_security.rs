//! The console's security over real HTTP (reqwest, no browser): the session cookie's flags,
//! CSRF refused with its reason, sign-out, lockout after failed sign-ins, one organisation's
//! user kept out of another's data, hostile names escaped, and API keys made and revoked in
//! the console.

use lanyard_test_support as support;

use support::console::cookie_value;
use support::{Agent, ConsoleClient, OrgClient, TEST_PASSWORD};

#[tokio::test]
async fn signing_in_sets_an_http_only_strict_session_cookie_and_shows_the_dashboard() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    assert_eq!(
        acme.add_user("ada@acme.test", TEST_PASSWORD).await.status,
        201
    );
    let anonymous = ConsoleClient::anonymous(&agent.url);
    let page = anonymous
        .attempt_sign_in("Ada@Acme.test", TEST_PASSWORD)
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), Some("/console"));
    let cookies = page.set_cookies();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("lanyard_console="))
        .expect("a session cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(session.contains(flag), "{flag} missing: {session}");
    }
    // The agent's public URL is plain http on loopback: the one case without Secure.
    assert!(!session.contains("Secure"), "{session}");
    let value = cookie_value(&cookies, "lanyard_console").unwrap();
    assert_eq!(value.len(), 43, "{value}");

    let console = ConsoleClient::sign_in(&agent.url, "ada@acme.test", TEST_PASSWORD)
        .await
        .unwrap();
    let dashboard = console.get("/console").await;
    assert_eq!(dashboard.status, 200, "{}", dashboard.body);
    assert!(
        dashboard.body.contains("Customers by stage"),
        "{}",
        dashboard.body
    );
    assert!(dashboard.body.contains("Acme"));
    let csp = dashboard.headers["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );

    // Without a session: to the sign-in page, and back after.
    let away = anonymous.get("/console?from=mail").await;
    assert_eq!(away.status, 303);
    assert_eq!(
        away.location(),
        Some("/console/sign-in?next=/console%3Ffrom%3Dmail")
    );
}

#[tokio::test]
async fn a_public_https_url_marks_the_cookies_secure() {
    let agent = Agent::start_with(Default::default(), |config| {
        config.public_url = Some("https://agent.example.com".into());
    })
    .await;
    let page = ConsoleClient::anonymous(&agent.url)
        .get("/console/sign-in")
        .await;
    let cookie = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("lanyard_console_signin="))
        .unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

#[tokio::test]
async fn a_wrong_password_or_unknown_email_is_refused_without_saying_which() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    acme.add_user("ada@acme.test", TEST_PASSWORD).await;
    for (email, password) in [
        ("ada@acme.test", "not the password at all"),
        ("nobody@acme.test", TEST_PASSWORD),
    ] {
        let refused = ConsoleClient::sign_in(&agent.url, email, password)
            .await
            .err()
            .expect("refused");
        assert_eq!(refused.status, 401, "{}", refused.body);
        assert!(
            refused.body.contains("the email or the password is wrong"),
            "{}",
            refused.body
        );
        assert!(cookie_value(&refused.set_cookies(), "lanyard_console").is_none());
    }
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused_and_changes_nothing() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let console = acme.console_user("ada@acme.test").await;
    // Sign-out is a state-changing form: without the token, or with another, it is refused.
    let missing = console.post_raw("/console/sign-out", &[]).await;
    assert_eq!(missing.status, 403, "{}", missing.body);
    assert!(
        missing.body.contains("the request carries no CSRF token"),
        "{}",
        missing.body
    );
    let wrong = console
        .post_raw(
            "/console/sign-out",
            &[("_csrf", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")],
        )
        .await;
    assert_eq!(wrong.status, 403);
    assert!(
        wrong.text().contains("the request's CSRF token is wrong"),
        "{}",
        wrong.body
    );
    assert_eq!(console.get("/console").await.status, 200, "still signed in");

    // A sign-in form posted without its cookie's token is refused too (login CSRF).
    let anonymous = ConsoleClient::anonymous(&agent.url);
    let forged = anonymous
        .post_raw(
            "/console/sign-in",
            &[
                ("_csrf", "x"),
                ("email", "ada@acme.test"),
                ("password", TEST_PASSWORD),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(
        forged
            .body
            .contains("the sign-in form has expired or this browser refuses cookies"),
        "{}",
        forged.body
    );

    // With the token: signed out, and the session is gone on the server.
    let out = console.post("/console/sign-out", &[]).await;
    assert_eq!(out.status, 303);
    assert_eq!(
        console.get("/console").await.status,
        303,
        "the old cookie no longer works"
    );
}

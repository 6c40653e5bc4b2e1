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
        assert_eq!(refused.status, 200, "the form again: {}", refused.body);
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

#[tokio::test]
async fn a_state_changing_request_from_another_site_is_refused() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let console = acme.console_user("ada@acme.test").await;
    let csrf = console.csrf().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let session = console.session.clone().unwrap();
    for (header, value, reason) in [
        ("sec-fetch-site", "cross-site", "Sec-Fetch-Site: cross-site"),
        (
            "origin",
            "https://evil.example",
            "its Origin is not this agent",
        ),
    ] {
        let response = client
            .post(format!("{}/console/settings/api-keys", agent.url))
            .header("cookie", format!("lanyard_console={session}"))
            .header(header, value)
            .form(&[("_csrf", csrf.as_str()), ("name", "stolen")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        let body = response.text().await.unwrap();
        assert!(body.contains(reason), "{body}");
    }
    let settings = console.get("/console/settings").await;
    assert!(!settings.body.contains("stolen"), "no key was made");
}

#[tokio::test]
async fn an_account_is_locked_after_five_failed_sign_ins_even_for_the_right_password() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    acme.add_user("ada@acme.test", TEST_PASSWORD).await;
    let anonymous = ConsoleClient::anonymous(&agent.url);
    for attempt in 1..=4 {
        let page = anonymous
            .attempt_sign_in("ada@acme.test", "wrong password!!")
            .await;
        assert!(
            page.text().contains("the email or the password is wrong"),
            "attempt {attempt}: {}",
            page.body
        );
    }
    let fifth = anonymous
        .attempt_sign_in("ada@acme.test", "wrong password!!")
        .await;
    assert!(
        fifth.text().contains(
            "too many failed sign-ins for this account: it is locked; try again in 1 minute"
        ),
        "{}",
        fifth.body
    );
    let right = ConsoleClient::sign_in(&agent.url, "ada@acme.test", TEST_PASSWORD)
        .await
        .err()
        .expect("locked");
    assert!(cookie_value(&right.set_cookies(), "lanyard_console").is_none());
    assert!(right.text().contains("it is locked"), "{}", right.body);
    // Another account is not locked by it.
    acme.add_user("bob@acme.test", TEST_PASSWORD).await;
    assert!(
        ConsoleClient::sign_in(&agent.url, "bob@acme.test", TEST_PASSWORD)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn one_organisations_user_cannot_see_or_change_anothers_customers() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let globex = OrgClient::create(&agent, "Globex").await;
    let customer = acme
        .email_customer("Jane Acme-Customer", "jane@example.com")
        .await;
    let id = customer["id"].as_str().unwrap();
    let ada = acme.console_user("ada@acme.test").await;
    let hank = globex.console_user("hank@globex.test").await;

    let own = ada.get(&format!("/console/customers/{id}")).await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert!(own.body.contains("Jane Acme-Customer"));

    let list = hank.get("/console/customers").await;
    assert_eq!(list.status, 200);
    assert!(!list.body.contains("Jane Acme-Customer"), "{}", list.body);
    let search = hank.get("/console/customers?q=jane").await;
    assert!(!search.body.contains("Jane Acme-Customer"));
    // By guessing the URL: not found, saying nothing of the other organisation.
    let guessed = hank.get(&format!("/console/customers/{id}")).await;
    assert_eq!(guessed.status, 404, "{}", guessed.body);
    assert!(
        guessed
            .text()
            .contains(&format!("no customer has the id \"{id}\"")),
        "{}",
        guessed.body
    );
    assert!(!guessed.body.contains("Jane"));
    let resend = hank
        .post(&format!("/console/customers/{id}/resend"), &[])
        .await;
    assert_eq!(resend.status, 404, "{}", resend.body);
    // Another organisation's session does not open this one's dashboard counts either.
    let dashboard = hank.get("/console").await;
    assert!(dashboard.body.contains("Globex") && !dashboard.body.contains(">Acme<"));
}

/// Markup in every name a page shows: the organisation's, a customer's, a template's, an API
/// key's, a user's search.
const HOSTILE: &str = "<script>alert('x')</script><img src=x onerror=alert(1)>";

#[tokio::test]
async fn hostile_names_are_escaped_on_every_page() {
    let agent = Agent::start(Default::default()).await;
    let org = OrgClient::create(&agent, &format!("Org {HOSTILE}")).await;
    let template = org.template(&format!("Tpl {HOSTILE}")).await;
    let customer = org
        .email_customer(&format!("Name {HOSTILE}"), "jane@example.com")
        .await;
    let id = customer["id"].as_str().unwrap();
    let console = org.console_user("ada@acme.test").await;
    let made = console
        .post(
            "/console/settings/api-keys",
            &[("name", &format!("Key {HOSTILE}"))],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let org_name = escaped(&format!("Org {HOSTILE}"));
    let customer_name = escaped(&format!("Name {HOSTILE}"));
    let pages = [
        ("/console".to_string(), vec![org_name.clone()]),
        (
            "/console/customers".to_string(),
            vec![org_name.clone(), customer_name.clone()],
        ),
        (
            "/console/customers?q=%3Cscript%3E".to_string(),
            vec![customer_name.clone(), escaped("<script>")],
        ),
        (
            format!("/console/customers/{id}"),
            vec![customer_name.clone()],
        ),
        (
            format!("/console/customers/new?template={template}"),
            vec![escaped(&format!("Tpl {HOSTILE}"))],
        ),
        (
            "/console/settings".to_string(),
            vec![escaped(&format!("Key {HOSTILE}"))],
        ),
    ];
    for (path, names) in pages {
        let page = console.get(&path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        assert!(
            !page.body.contains("<script>alert"),
            "{path} shows raw markup: {}",
            page.body
        );
        assert!(!page.body.contains("<img src=x"), "{path} shows raw markup");
        for name in names {
            assert!(
                page.body.contains(name.as_str()),
                "{path} shows {name}: {}",
                page.body
            );
        }
    }
}

/// `text` as the console's templates escape it.
fn escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

#[tokio::test]
async fn api_keys_made_in_the_console_work_until_revoked_and_the_first_key_can_be_revoked() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let console = acme.console_user("ada@acme.test").await;
    let made = console
        .post("/console/settings/api-keys", &[("name", "CRM integration")])
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let key = support::console::element_text(&made.body, "new-key").expect("the key is shown");
    assert!(key.starts_with(&format!("lk_{}_", acme.id)), "{key}");
    // Shown once: the settings page lists the key by name only.
    let settings = console.get("/console/settings").await;
    assert!(settings.body.contains("CRM integration") && !settings.body.contains(&key));

    let with = |key: &str| {
        let url = format!("{}/core/api/v1/programmatic/customer", agent.url);
        let key = key.to_string();
        async move {
            reqwest::Client::new()
                .get(url)
                .header("x-api-key", key)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(with(&key).await.status(), 200);
    assert_eq!(
        with(&acme.key).await.status(),
        200,
        "the first key still works"
    );

    // Revoke the new key: refused by the API, the first still works.
    let new_id = support::console::revoke_form_id(&settings.body, "CRM integration").unwrap();
    let revoked = console
        .post(&format!("/console/settings/api-keys/{new_id}/revoke"), &[])
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    let refused = with(&key).await;
    assert_eq!(refused.status(), 401);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["message"], "the x-api-key is not valid");
    assert_eq!(with(&acme.key).await.status(), 200);

    // The first key too.
    let settings = console.get("/console/settings").await;
    let first = support::console::revoke_form_id(&settings.body, "First key").unwrap();
    assert_eq!(first, "first");
    console
        .post("/console/settings/api-keys/first/revoke", &[])
        .await;
    assert_eq!(with(&acme.key).await.status(), 401);
    let settings = console.get("/console/settings").await;
    assert!(settings.body.contains("No API key"), "{}", settings.body);
    // Revoking what is not there (another's, or gone) says so.
    let again = console
        .post("/console/settings/api-keys/first/revoke", &[])
        .await;
    assert_eq!(again.status, 404);
    assert!(
        again.text().contains("no API key has the id \"first\""),
        "{}",
        again.body
    );
}

// The CLI runs as a child process while this test's runtime serves the agent: two workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_adds_console_users_offline_and_through_the_running_agent() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    // No agent running: `org create --email` on the data folder, the password from stdin.
    let data_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args([
            "org",
            "create",
            "--name",
            "Hooli",
            "--email",
            "gavin@hooli.test",
            "--json",
        ])
        .env("LANYARD_LISTEN", "127.0.0.1:9")
        .env("LANYARD_DATA_DIR", data_dir.path())
        .env_remove("LANYARD_USER_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{TEST_PASSWORD}").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(created["userEmail"], "gavin@hooli.test");
    let org_id = created["id"].as_str().unwrap().to_string();
    // A password too short is refused before anything is made.
    let short = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args([
            "user",
            "add",
            "--org",
            &org_id,
            "--email",
            "short@hooli.test",
        ])
        .env("LANYARD_LISTEN", "127.0.0.1:9")
        .env("LANYARD_DATA_DIR", data_dir.path())
        .env("LANYARD_USER_PASSWORD", "too short")
        .output()
        .unwrap();
    assert!(!short.status.success());
    let error = String::from_utf8_lossy(&short.stderr);
    assert!(
        error.contains("password must be at least 12 characters"),
        "{error}"
    );

    // An agent on that folder: the user signs in; `user add` then goes through its admin API.
    let config = agent::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.path().to_path_buf(),
        ..Default::default()
    };
    let running = agent::start(config).await.unwrap();
    let url = format!("http://{}", running.addr);
    ConsoleClient::sign_in(&url, "gavin@hooli.test", TEST_PASSWORD)
        .await
        .expect("the user made offline signs in");
    let output = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args([
            "user",
            "add",
            "--org",
            &org_id,
            "--email",
            "dinesh@hooli.test",
        ])
        .env("LANYARD_LISTEN", running.addr.to_string())
        .env("LANYARD_DATA_DIR", data_dir.path())
        .env("LANYARD_USER_PASSWORD", TEST_PASSWORD)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("console user dinesh@hooli.test added"),
        "{text}"
    );
    let dinesh = ConsoleClient::sign_in(&url, "dinesh@hooli.test", TEST_PASSWORD)
        .await
        .expect("the user added through the agent signs in");
    assert!(dinesh.get("/console").await.body.contains("Hooli"));
    // An unknown organisation is refused by name.
    let unknown = Command::new(env!("CARGO_BIN_EXE_agent"))
        .args([
            "user",
            "add",
            "--org",
            "ffffffffffffffffffffffff",
            "--email",
            "x@hooli.test",
        ])
        .env("LANYARD_LISTEN", running.addr.to_string())
        .env("LANYARD_DATA_DIR", data_dir.path())
        .env("LANYARD_USER_PASSWORD", TEST_PASSWORD)
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    let error = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        error.contains("no organisation has the id \"ffffffffffffffffffffffff\""),
        "{error}"
    );
    running.stop().await.unwrap();
}

/// Two agents on one PostgreSQL: a session begun at one works at the other and ends at both
/// on sign-out; an API key made at one is taken by both, and refused by both once revoked.
#[tokio::test]
async fn sessions_and_api_keys_hold_across_agents_on_one_database() {
    let cluster = support::Cluster::start(2);
    let (a, b) = (cluster.direct(0), cluster.direct(1));
    let acme = OrgClient::create(&a, "Acme").await;
    assert_eq!(
        acme.add_user("ada@acme.test", TEST_PASSWORD).await.status,
        201
    );
    let at_a = ConsoleClient::sign_in(&a.url, "ada@acme.test", TEST_PASSWORD)
        .await
        .unwrap();
    let mut at_b = ConsoleClient::anonymous(&b.url);
    at_b.session = at_a.session.clone();
    assert_eq!(
        at_b.get("/console").await.status,
        200,
        "the session is shared"
    );

    let made = at_a
        .post("/console/settings/api-keys", &[("name", "Shared")])
        .await;
    let key = support::console::element_text(&made.body, "new-key").unwrap();
    let status = |url: String, key: String| async move {
        reqwest::Client::new()
            .get(format!("{url}/core/api/v1/programmatic/customer"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(status(b.url.clone(), key.clone()).await, 200);
    let settings = at_b.get("/console/settings").await;
    let id = support::console::revoke_form_id(&settings.body, "Shared").unwrap();
    let revoked = at_b
        .post(&format!("/console/settings/api-keys/{id}/revoke"), &[])
        .await;
    assert_eq!(revoked.status, 303);
    assert_eq!(status(a.url.clone(), key.clone()).await, 401);
    assert_eq!(status(b.url.clone(), key).await, 401);

    assert_eq!(at_b.post("/console/sign-out", &[]).await.status, 303);
    assert_eq!(
        at_a.get("/console").await.status,
        303,
        "signed out at every agent"
    );
}

/// Where sign-in leads after is a console path only: another site, or a value a header cannot
/// carry (a 500 before `safe_next` checked the bytes), leads to the
/// dashboard.
#[tokio::test]
async fn sign_in_returns_only_to_a_console_path() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    acme.add_user("ada@acme.test", TEST_PASSWORD).await;
    let anonymous = ConsoleClient::anonymous(&agent.url);
    for (next, to) in [
        (
            "/console/customers?stage=Invited",
            "/console/customers?stage=Invited",
        ),
        ("https://evil.example/console", "/console"),
        ("//evil.example", "/console"),
        ("/console\n\rSet-Cookie: x=y", "/console"),
        ("/console/sign-out", "/console"),
    ] {
        let page = anonymous
            .attempt_sign_in_to("ada@acme.test", TEST_PASSWORD, Some(next))
            .await;
        assert_eq!(page.status, 303, "{next:?}: {}", page.body);
        assert_eq!(page.location(), Some(to), "{next:?}");
    }
}

/// An organisation holds at most 20 API keys; a key's name is checked; neither refusal
/// makes a key.
#[tokio::test]
async fn api_keys_are_capped_and_their_names_checked() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let console = acme.console_user("ada@acme.test").await;
    let unnamed = console
        .post("/console/settings/api-keys", &[("name", "  ")])
        .await;
    assert_eq!(
        support::console::element_text(&unnamed.text(), "name-error").as_deref(),
        Some("name must be 1 to 100 characters without control characters"),
        "{}",
        unnamed.body
    );
    assert!(!unnamed.body.contains("id=\"new-key\""));
    // The first key and 19 more make 20.
    for i in 1..20 {
        let made = console
            .post(
                "/console/settings/api-keys",
                &[("name", &format!("key {i}"))],
            )
            .await;
        assert!(
            made.body.contains("id=\"new-key\""),
            "key {i}: {}",
            made.body
        );
    }
    let over = console
        .post("/console/settings/api-keys", &[("name", "one too many")])
        .await;
    assert!(
        over.text()
            .contains("an organisation may hold at most 20 API keys: revoke one first"),
        "{}",
        over.body
    );
    assert!(!over.body.contains("id=\"new-key\""));
    let settings = console.get("/console/settings").await;
    assert_eq!(settings.body.matches("/revoke\"").count(), 20);
}

//! Security review regressions on the agent's own secrets: an empty or short admin token (in
//! `LANYARD_ADMIN_TOKEN` or the token file) stops the agent at start with an error naming where
//! it came from and the minimum length; an empty presented token never matches; the
//! configuration's `Debug` shows no secret.

use agent::admin::{AdminToken, MIN_ADMIN_TOKEN_LEN};
use agent::config::Config;
use axum::http::{header, HeaderMap, HeaderValue};

fn config_in(dir: &std::path::Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        admin_token: None,
        ..Config::default()
    }
}

#[tokio::test]
async fn an_empty_or_short_admin_token_file_stops_the_agent_at_start() {
    for content in ["", "\n", "   \n", "short-token\n"] {
        let data = tempfile::tempdir().unwrap();
        std::fs::write(data.path().join("admin.token"), content).unwrap();
        let refused = match agent::start(config_in(data.path())).await {
            Ok(running) => {
                // Before the fix an empty file meant an empty token, which an empty
                // Authorization header matched: the admin API was open to anyone.
                let open = reqwest::Client::new()
                    .post(format!("http://{}/admin/invitations", running.addr))
                    .json(&serde_json::json!({}))
                    .send()
                    .await
                    .unwrap()
                    .status();
                running.stop().await.unwrap();
                panic!("the agent started with the token file {content:?} (admin API answered {open} without a token)");
            }
            Err(error) => error.to_string(),
        };
        assert!(
            refused.contains("admin.token")
                && refused.contains(&format!("at least {MIN_ADMIN_TOKEN_LEN}")),
            "{content:?}: {refused}"
        );
    }
}

#[tokio::test]
async fn a_good_admin_token_file_is_kept_and_one_is_made_when_missing() {
    let data = tempfile::tempdir().unwrap();
    let running = agent::start(config_in(data.path())).await.unwrap();
    let made = std::fs::read_to_string(data.path().join("admin.token")).unwrap();
    assert!(made.len() >= MIN_ADMIN_TOKEN_LEN, "{made:?}");
    let answer = |token: String| {
        let url = format!("http://{}/admin/invitations", running.addr);
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&serde_json::json!({}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(answer(made.clone()).await, 201);
    assert_eq!(
        answer(String::new()).await,
        401,
        "an empty token never matches"
    );
    running.stop().await.unwrap();
}

#[test]
fn an_empty_or_short_admin_token_variable_is_refused_by_name() {
    for value in [
        "",
        " ",
        &" ".repeat(20),
        "fifteen-chars15",
        "has a space in it!",
    ] {
        let error = Config::from_vars(|name| (name == "LANYARD_ADMIN_TOKEN").then(|| value.into()))
            .expect_err(value)
            .to_string();
        assert!(error.contains("LANYARD_ADMIN_TOKEN"), "{value:?}: {error}");
        if value.trim().len() < MIN_ADMIN_TOKEN_LEN {
            assert!(
                error.contains(&format!("at least {MIN_ADMIN_TOKEN_LEN}")),
                "{value:?}: {error}"
            );
        } else {
            assert!(error.contains("without spaces"), "{value:?}: {error}");
        }
    }
    let config = Config::from_vars(|name| {
        (name == "LANYARD_ADMIN_TOKEN").then(|| "  sixteen-chars-ok\n".into())
    })
    .unwrap();
    assert_eq!(config.admin_token.as_deref(), Some("sixteen-chars-ok"));
}

#[test]
fn an_empty_presented_token_never_matches() {
    let token = AdminToken::new("0123456789abcdef", "test").unwrap();
    let with = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    };
    assert!(token.authorises(&with("Bearer 0123456789abcdef")));
    assert!(!token.authorises(&HeaderMap::new()));
    assert!(!token.authorises(&with("Bearer ")));
    assert!(!token.authorises(&with("Bearer 0123456789abcde")));
    assert!(!token.authorises(&with("0123456789abcdef")));
    assert_eq!(format!("{token:?}"), "AdminToken([redacted])");
}

#[test]
fn the_configuration_shows_no_secret() {
    let config = Config::from_vars(|name| {
        match name {
            "LANYARD_ADMIN_TOKEN" => Some("admin-secret-0123456789"),
            "LANYARD_SMTP_URL" => Some("smtp://mailer:smtp-password@mail.example:587"),
            "LANYARD_SMS_URL" => Some("https://sms.example/send?key=sms-url-key"),
            "LANYARD_SMS_TOKEN" => Some("sms-bearer-token"),
            "LANYARD_LISTEN" => Some("127.0.0.1:9123"),
            _ => None,
        }
        .map(str::to_string)
    })
    .unwrap();
    let shown = format!("{config:?}");
    for secret in [
        "admin-secret",
        "smtp-password",
        "sms-url-key",
        "sms-bearer-token",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("admin_token: [redacted]"), "{shown}");
    assert!(
        shown.contains("127.0.0.1:9123"),
        "the rest is shown: {shown}"
    );
}

#[test]
fn records_holding_customer_data_show_none_of_it() {
    use agent::issuer::{AutoIssue, Medium, NewCustomer};
    use agent::issuer::{CredentialState, IssuedCredential};
    use serde_json::json;
    let values: serde_json::Map<String, serde_json::Value> =
        serde_json::from_value(json!({ "skill": "secret-skill-value" })).unwrap();
    let customer = NewCustomer {
        name: "Jane Secretname".into(),
        medium: Medium::Sms,
        email: Some("jane.secret@example.com".into()),
        phone_number: Some("+14155550199".into()),
        organization_label: Some("Acme".into()),
        email_template: None,
        email_template_id: None,
        auto_issue: Some(AutoIssue {
            template_id: "urn:template:t".into(),
            values: values.clone(),
        }),
    };
    let issued = IssuedCredential {
        id: "urn:uuid:1".into(),
        org_id: "o".into(),
        template_id: "urn:template:t".into(),
        customer_id: None,
        holder_did: "did:peer:2.x".into(),
        thid: "t".into(),
        state: CredentialState::Issued,
        values,
        detail: json!({ "credentialSubject": { "skill": "secret-skill-value" } }),
        status_index: 3,
        credential: Some(json!({ "credentialSubject": { "skill": "secret-skill-value" } })),
        problem: None,
        created_ms: 0,
        updated_ms: 0,
    };
    for shown in [format!("{customer:?}"), format!("{issued:?}")] {
        for secret in [
            "Secretname",
            "jane.secret",
            "+14155550199",
            "secret-skill-value",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("[redacted]"), "{shown}");
    }
    assert!(format!("{issued:?}").contains("status_index: 3"));
}

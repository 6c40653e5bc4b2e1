//! The console's credential templates pages (`/console/templates`) and email templates pages
//! (`/console/email-templates`) over HTTP as a browser sends forms: created from the form and
//! read back through the JSON API (one domain), errors beside their fields with nothing
//! stored, deletion behind its confirmation, CSRF refused, hostile names escaped, another
//! organisation's records not found.

use lanyard_test_support as support;

use serde_json::{json, Value};
use support::console::ConsoleClient;
use support::{Agent, OrgClient};

const TEMPLATES: &str = "/core/api/v1/programmatic/credential/template";
const EMAIL_TEMPLATES: &str = "/core/api/v1/programmatic/email-template";

async fn signed_in(agent: &Agent, org: &str) -> (OrgClient, ConsoleClient) {
    let client = OrgClient::create(agent, org).await;
    let console = client
        .console_user(&format!("staff@{}.test", org.to_lowercase()))
        .await;
    (client, console)
}

fn template_form<'a>(overrides: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("templateName", "Gym membership"),
        ("credentialIssuer", "Acme Gym"),
        ("credentialType", "Membership"),
        ("logoURL", "https://acme.test/logo.png"),
        ("credentialExpiration", ""),
        ("field_name_0", "level"),
        ("field_description_0", "Membership level"),
        ("field_name_1", ""),
        ("field_description_1", ""),
        ("field_name_2", "memberSince"),
        ("field_description_2", "Member since"),
        ("numberOfCredentials", "100"),
    ];
    for (name, value) in overrides {
        match fields.iter_mut().find(|(n, _)| n == name) {
            Some(field) => field.1 = value,
            None => fields.push((name, value)),
        }
    }
    fields
}

/// A redirect's path without its query (`?created=1`).
fn path_of(location: &str) -> String {
    location.split('?').next().unwrap().to_string()
}

/// A form's fields as (name, value).
type Form<'a> = &'a [(&'a str, &'a str)];

async fn api_templates(client: &OrgClient) -> Vec<Value> {
    let listed = client.call("GET", TEMPLATES, None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    listed.body["data"]["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_template_made_with_the_form_is_the_api_s_template_and_is_shown() {
    let agent = Agent::start(Default::default()).await;
    let (acme, console) = signed_in(&agent, "Acme").await;
    let form = console.get("/console/templates/new").await;
    assert_eq!(form.status, 200);
    for field in [
        "templateName",
        "credentialIssuer",
        "credentialType",
        "logoURL",
        "credentialExpiration",
        "field_name_0",
        "field_description_0",
        "numberOfCredentials",
    ] {
        assert!(
            form.body.contains(&format!("name=\"{field}\"")),
            "the form has {field}"
        );
    }
    let created = console
        .post(
            "/console/templates",
            &template_form(&[("credentialExpiration", "2099-01-31")]),
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let redirect = created.location().unwrap().to_string();
    assert!(redirect.ends_with("?created=1"), "{redirect}");
    let location = path_of(&redirect);
    assert!(location.starts_with("/console/templates/"), "{location}");

    let templates = api_templates(&acme).await;
    assert_eq!(templates.len(), 1);
    let template = &templates[0];
    assert_eq!(template["name"], "Gym membership");
    assert_eq!(template["customFields"], json!(["level", "memberSince"]));
    assert_eq!(template["numberOfCredentials"], 100);
    assert_eq!(
        template["credentialExpiration"], "2099-01-31T00:00:00Z",
        "{template}"
    );

    let shown = console.get(&redirect).await;
    assert_eq!(shown.status, 200);
    let text = shown.text();
    for expected in [
        "The template was created.",
        "Gym membership",
        "Membership level",
        "memberSince",
        "100 credentials",
        template["templateId"].as_str().unwrap(),
    ] {
        assert!(text.contains(expected), "{expected} is on the page");
    }
    let listed = console.get("/console/templates").await;
    assert!(listed.text().contains("Gym membership"));
}

#[tokio::test]
async fn form_errors_show_beside_their_field_and_nothing_is_stored() {
    let agent = Agent::start(Default::default()).await;
    let (acme, console) = signed_in(&agent, "Acme").await;
    // (the fields changed, the field beside which the error shows, what it says)
    let cases: [(Form, &str, &str); 6] = [
        (
            &[("templateName", "")],
            "templateName",
            "Template name must not be empty",
        ),
        (
            &[("logoURL", "ftp://x")],
            "logoURL",
            "Logo URL must be an http(s) URL",
        ),
        (
            &[("credentialExpiration", "2001-01-01")],
            "credentialExpiration",
            "Expiration \"2001-01-01\" is in the past",
        ),
        (
            &[("field_name_2", "member since")],
            "field_name_2",
            "\"member since\" is not a field name",
        ),
        (
            &[("field_name_2", "level")],
            "field_name_2",
            "\"level\" is listed twice",
        ),
        (
            &[("numberOfCredentials", "lots")],
            "numberOfCredentials",
            "Limit \"lots\" is not a whole number",
        ),
    ];
    for (overrides, field, message) in cases {
        let page = console
            .post("/console/templates", &template_form(overrides))
            .await;
        assert_eq!(page.status, 200, "{field}: {}", page.body);
        let text = page.text();
        let error = format!("<p class=\"field-error\" id=\"{field}-error\">");
        let at = text
            .find(&error)
            .unwrap_or_else(|| panic!("no error beside {field}: {text}"));
        assert!(
            text[at..].split("</p>").next().unwrap().contains(message),
            "{field}: {message}"
        );
        assert!(
            page.body
                .contains(&format!("aria-describedby=\"{field}-error\"")),
            "{field} points at its error"
        );
        // What was typed is kept.
        assert!(page.body.contains("value=\"Acme Gym\""));
    }
    assert!(api_templates(&acme).await.is_empty(), "nothing was stored");
}

#[tokio::test]
async fn deleting_a_template_says_what_holders_lose_and_needs_confirming() {
    let agent = Agent::start(Default::default()).await;
    let (acme, console) = signed_in(&agent, "Acme").await;
    let created = console
        .post("/console/templates", &template_form(&[]))
        .await;
    let location = path_of(created.location().unwrap());
    let confirm = console.get(&format!("{location}/delete")).await;
    assert_eq!(confirm.status, 200);
    let text = confirm.text();
    assert!(text.contains("every credential issued from it"), "{text}");
    assert!(text.contains("the credentials leave the holders' wallets"));
    assert!(text.contains("This cannot be undone."));

    let unconfirmed = console.post(&format!("{location}/delete"), &[]).await;
    assert_eq!(unconfirmed.status, 200);
    assert!(unconfirmed
        .text()
        .contains("Tick the box to confirm that the holders lose these credentials."));
    assert_eq!(api_templates(&acme).await.len(), 1, "still there");

    let deleted = console
        .post(&format!("{location}/delete"), &[("confirm", "yes")])
        .await;
    assert_eq!(deleted.status, 303, "{}", deleted.body);
    assert_eq!(deleted.location(), Some("/console/templates?deleted=1"));
    assert!(api_templates(&acme).await.is_empty());
    let listed = console.get("/console/templates?deleted=1").await;
    assert!(listed
        .text()
        .contains("their holders' wallets were told to remove them"));
    assert_eq!(console.get(&location).await.status, 404);
}

#[tokio::test]
async fn the_forms_refuse_a_post_without_the_session_s_csrf_token() {
    let agent = Agent::start(Default::default()).await;
    let (acme, console) = signed_in(&agent, "Acme").await;
    let (_, other) = signed_in(&agent, "Globex").await;
    let other_token = other.csrf().await;
    let created = console
        .post("/console/templates", &template_form(&[]))
        .await;
    let location = path_of(created.location().unwrap());
    let email = console
        .post(
            "/console/email-templates",
            &[
                ("name", "Welcome"),
                ("subject", "Hi"),
                ("htmlBody", "<p>Hi</p>"),
                ("textBody", "{{inviteUrl}}"),
            ],
        )
        .await;
    assert_eq!(email.status, 303, "{}", email.body);
    let email_page = email.location().unwrap().to_string();
    let email_path = email_page.split('?').next().unwrap().to_string();
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/console/templates".to_string(), template_form(&[])),
        (format!("{location}/delete"), vec![("confirm", "yes")]),
        (
            "/console/email-templates".to_string(),
            vec![
                ("name", "X"),
                ("subject", "X"),
                ("htmlBody", "X"),
                ("textBody", "{{inviteUrl}}"),
            ],
        ),
        (email_path.clone(), vec![("name", "Changed")]),
        (format!("{email_path}/delete"), vec![]),
    ];
    for token in [None, Some("forged"), Some(other_token.as_str())] {
        for (path, fields) in &forms {
            let mut all: Vec<(&str, &str)> = token.map(|t| ("_csrf", t)).into_iter().collect();
            all.extend(fields.iter().copied());
            let page = console.post_raw(path, &all).await;
            assert_eq!(page.status, 403, "{path} with {token:?}: {}", page.body);
            assert!(page.text().contains("CSRF token"), "{}", page.body);
        }
    }
    assert_eq!(
        api_templates(&acme).await.len(),
        1,
        "nothing more, nothing less"
    );
    let emails = acme.call("GET", EMAIL_TEMPLATES, None).await;
    assert_eq!(emails.body["data"]["totalItem"], 1);
    assert_eq!(emails.body["data"]["data"][0]["name"], "Welcome");
}

#[tokio::test]
async fn hostile_names_and_fields_are_escaped_on_every_page() {
    let agent = Agent::start(Default::default()).await;
    let (acme, console) = signed_in(&agent, "Acme").await;
    let hostile = "<script>alert(1)</script>";
    let attribute = "\"><img src=x onerror=alert(2)>";
    let created = console
        .post(
            "/console/templates",
            &template_form(&[
                ("templateName", hostile),
                ("credentialType", attribute),
                ("field_description_0", attribute),
            ]),
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let location = path_of(created.location().unwrap());
    let email = console
        .post(
            "/console/email-templates",
            &[
                ("name", hostile),
                ("subject", attribute),
                (
                    "htmlBody",
                    "<p>Hi {{customerName}}</p><script>alert(3)</script>",
                ),
                ("textBody", "{{inviteUrl}} </pre><script>alert(4)</script>"),
            ],
        )
        .await;
    assert_eq!(email.status, 303, "{}", email.body);
    let email_page = email.location().unwrap().to_string();
    // A refused form shows what was typed, escaped too.
    let refused = console
        .post(
            "/console/templates",
            &template_form(&[("templateName", hostile), ("logoURL", attribute)]),
        )
        .await;
    assert_eq!(refused.status, 200);
    assert!(refused.body.contains("logoURL-error"));
    // So does an error naming a hostile placeholder.
    let placeholder = console
        .post(
            "/console/email-templates",
            &[
                ("name", "P"),
                ("subject", "{{<img src=x onerror=alert(5)>}}"),
                ("htmlBody", "<p>x</p>"),
                ("textBody", "{{inviteUrl}}"),
            ],
        )
        .await;
    assert!(
        placeholder.body.contains(
            "subject uses the unknown placeholder {{&#60;img src=x onerror=alert(5)&#62;}}"
        ),
        "{}",
        placeholder.body
    );
    let mut pages = vec![refused, placeholder];
    for path in [
        "/console/templates".to_string(),
        location.clone(),
        format!("{location}/delete"),
        "/console/email-templates".to_string(),
        email_page.clone(),
    ] {
        let page = console.get(&path).await;
        assert_eq!(page.status, 200, "{path}");
        pages.push(page);
    }
    for page in &pages {
        for raw in ["<script>alert", "<img src=x", "\"><img"] {
            assert!(!page.body.contains(raw), "{raw} unescaped in {}", page.body);
        }
    }
    // The email's own HTML is shown only inside the sandboxed frame's escaped srcdoc.
    let edit = console.get(&email_page).await;
    assert!(edit.body.contains(
        "<iframe class=\"email-preview\" title=\"The email's HTML part\" sandbox srcdoc=\""
    ));
    assert!(
        edit.body
            .contains("&#60;p&#62;Hi Jane Doe&#60;/p&#62;&#60;script&#62;alert(3)"),
        "the frame's document, escaped as an attribute: {}",
        edit.body
    );
    assert_eq!(acme.call("GET", TEMPLATES, None).await.status, 200);
}

#[tokio::test]
async fn email_templates_are_made_previewed_changed_and_deleted_from_the_console() {
    let agent = Agent::start(Default::default()).await;
    let (acme, console) = signed_in(&agent, "Acme").await;
    let fields = [
        ("name", "Welcome"),
        ("subject", "{{customerName}}, join {{organizationName}}"),
        ("htmlBody", "<p>Dear {{customerName}}, welcome.</p>"),
        ("textBody", "Dear {{customerName}}: {{inviteUrl}}"),
    ];
    // A preview shows the email and stores nothing.
    let mut preview = fields.to_vec();
    preview.push(("intent", "preview"));
    let shown = console.post("/console/email-templates", &preview).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let text = shown.text();
    assert!(text.contains("Jane Doe, join Acme"), "the subject filled");
    assert!(text.contains("Dear Jane Doe: "), "the text part");
    assert!(text.contains("Dear Jane Doe, welcome."), "the HTML part");
    let count = |reply: &support::Reply| reply.body["data"]["totalItem"].clone();
    assert_eq!(count(&acme.call("GET", EMAIL_TEMPLATES, None).await), 0);

    // An unknown placeholder is named beside its field.
    let mut bad = fields.to_vec();
    bad[1] = ("subject", "Hi {{firstName}}");
    let refused = console.post("/console/email-templates", &bad).await;
    assert_eq!(refused.status, 200);
    let text = refused.text();
    assert!(
        text.contains("<p class=\"field-error\" id=\"subject-error\">subject uses the unknown placeholder {{firstName}}"),
        "{text}"
    );
    assert_eq!(count(&acme.call("GET", EMAIL_TEMPLATES, None).await), 0);

    let saved = console.post("/console/email-templates", &fields).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let page = saved.location().unwrap().to_string();
    let id = page
        .trim_start_matches("/console/email-templates/")
        .split('?')
        .next()
        .unwrap()
        .to_string();
    let stored = acme
        .call("GET", &format!("{EMAIL_TEMPLATES}/{id}"), None)
        .await;
    assert_eq!(stored.body["data"]["subject"], fields[1].1);
    let edit = console.get(&page).await;
    assert!(edit.text().contains("The email template was saved."));

    let mut changed = fields.to_vec();
    changed[0] = ("name", "Welcome back");
    let updated = console
        .post(&format!("/console/email-templates/{id}"), &changed)
        .await;
    assert_eq!(updated.status, 303, "{}", updated.body);
    let stored = acme
        .call("GET", &format!("{EMAIL_TEMPLATES}/{id}"), None)
        .await;
    assert_eq!(stored.body["data"]["name"], "Welcome back");

    let default = console.get("/console/email-templates/default").await;
    assert_eq!(default.status, 200);
    assert!(default.text().contains("Acme invites you to connect"));

    let deleted = console
        .post(&format!("/console/email-templates/{id}/delete"), &[])
        .await;
    assert_eq!(deleted.status, 303);
    assert_eq!(count(&acme.call("GET", EMAIL_TEMPLATES, None).await), 0);
}

#[tokio::test]
async fn another_organisation_s_templates_are_not_found_in_the_console() {
    let agent = Agent::start(Default::default()).await;
    let (acme, _) = signed_in(&agent, "Acme").await;
    let (_, globex) = signed_in(&agent, "Globex").await;
    let template = acme
        .call(
            "POST",
            TEMPLATES,
            Some(json!({
                "templateName": "Acme only", "credentialIssuer": "Acme", "credentialType": "T",
                "logoURL": "https://acme.test/l.png", "credentialExpiration": null,
                "customFields": [], "descriptions": []
            })),
        )
        .await;
    let object_id = template.body["data"]["_id"].as_str().unwrap().to_string();
    let email = acme
        .call(
            "POST",
            EMAIL_TEMPLATES,
            Some(json!({"name": "A", "subject": "S", "htmlBody": "<p>x</p>", "textBody": "{{inviteUrl}}"})),
        )
        .await;
    let email_id = email.body["data"]["id"].as_str().unwrap().to_string();
    for path in [
        format!("/console/templates/{object_id}"),
        format!("/console/templates/{object_id}/delete"),
        format!("/console/email-templates/{email_id}"),
    ] {
        let page = globex.get(&path).await;
        assert_eq!(page.status, 404, "{path}");
    }
    let deleted = globex
        .post(
            &format!("/console/templates/{object_id}/delete"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(deleted.status, 404);
    let deleted = globex
        .post(&format!("/console/email-templates/{email_id}/delete"), &[])
        .await;
    assert_eq!(deleted.status, 404);
    assert!(!globex
        .get("/console/templates")
        .await
        .body
        .contains("Acme only"));
    assert_eq!(api_templates(&acme).await.len(), 1);
    let emails = acme.call("GET", EMAIL_TEMPLATES, None).await;
    assert_eq!(emails.body["data"]["totalItem"], 1);
}

#[tokio::test]
async fn the_template_list_is_paged_with_links_both_ways() {
    let agent = Agent::start(Default::default()).await;
    let (acme, console) = signed_in(&agent, "Acme").await;
    for n in 0..21 {
        acme.template(&format!("Pass {n}")).await;
    }
    let first = console.get("/console/templates").await;
    assert_eq!(first.status, 200);
    assert!(first.body.contains("Page 1 of 2"), "{}", first.body);
    assert!(first
        .body
        .contains("<a href=\"/console/templates?page=2\">Next</a>"));
    assert!(!first.body.contains(">Previous</a>"));
    let second = console.get("/console/templates?page=2").await;
    assert!(second.body.contains("Page 2 of 2"), "{}", second.body);
    assert!(second
        .body
        .contains("<a href=\"/console/templates?page=1\">Previous</a>"));
    assert!(!second.body.contains(">Next</a>"));
}

//! The console's pages over HTTP (no browser): the onboard form's validation shown beside
//! each field with nothing stored, onboarding with auto-issue through the same domain code as
//! the API, the customer list's stages, search and pages, and the dashboard's counts.

use lanyard_test_support as support;

use serde_json::json;
use support::console::element_text;
use support::{Agent, ConsoleClient, OrgClient};

async fn customers(org: &OrgClient) -> u64 {
    let (status, data) = org.api("GET", "/customer", None).await;
    assert_eq!(status, 200, "{data}");
    data["totalItem"]
        .as_u64()
        .unwrap_or_else(|| panic!("no totalItem: {data}"))
}

/// The key the onboard form names `template`'s value inputs under (`v.<key>.<field>`).
async fn value_key(console: &ConsoleClient) -> String {
    let page = console.get("/console/customers/new").await;
    page.body
        .split("name=\"v.")
        .nth(1)
        .and_then(|rest| rest.split('.').next())
        .expect("the template's value inputs")
        .to_string()
}

async fn signed_in(agent: &Agent) -> (OrgClient, ConsoleClient, String) {
    let acme = OrgClient::create(agent, "Acme").await;
    let template = acme.template("Climbing skill").await;
    let console = acme.console_user("ada@acme.test").await;
    (acme, console, template)
}

#[tokio::test]
async fn the_onboard_forms_errors_are_shown_beside_their_fields_and_nothing_is_stored() {
    let agent = Agent::start(Default::default()).await;
    let (acme, console, template) = signed_in(&agent).await;
    let key = value_key(&console).await;
    let skill = format!("v.{key}.skill");
    let level = format!("v.{key}.level");
    for (fields, id, message) in [
        (
            vec![
                ("name", "Jane"),
                ("medium", "email"),
                ("email", "jane-at-example.com"),
            ],
            "email-error",
            "email \"jane-at-example.com\" is not a valid email address",
        ),
        (
            vec![
                ("name", ""),
                ("medium", "email"),
                ("email", "jane@example.com"),
            ],
            "name-error",
            "name must not be empty",
        ),
        (
            vec![
                ("name", "Jane"),
                ("medium", "sms"),
                ("phoneNumber", "+14155550123"),
            ],
            "organizationLabel-error",
            "organizationLabel is required for SMS: who the message says it is from",
        ),
        (
            vec![
                ("name", "Jane"),
                ("medium", "sms"),
                ("phoneNumber", "12"),
                ("organizationLabel", "Acme"),
            ],
            "phoneNumber-error",
            "phoneNumber \"12\" is not a phone number with its country code (e.g. +14155550123)",
        ),
        (
            vec![
                ("name", "Jane"),
                ("medium", "email"),
                ("email", "jane@example.com"),
                ("templateId", &template),
                (&skill, "Climbing"),
            ],
            &format!("{level}-error"),
            "level is required for this template",
        ),
        (
            vec![
                ("name", "Jane"),
                ("medium", "email"),
                ("email", "jane@example.com"),
                ("templateId", "urn:template:nobody"),
            ],
            "templateId-error",
            "templateId: no template of yours has the id \"urn:template:nobody\"",
        ),
    ] {
        let answer = console.post("/console/customers", &fields).await;
        assert_eq!(answer.status, 200, "the form again: {}", answer.body);
        let shown = element_text(&answer.text(), id)
            .unwrap_or_else(|| panic!("no {id} on the page: {}", answer.body));
        assert_eq!(shown, message, "{fields:?}");
        // The field is marked and described by its error, and what was typed is kept.
        let field = id.trim_end_matches("-error");
        assert!(
            answer
                .body
                .contains(&format!("aria-describedby=\"{field}-error\"")),
            "{field}: {}",
            answer.body
        );
        assert!(answer.body.contains("value=\"Jane\"") || field == "name");
    }
    let long = "x".repeat(1001);
    let answer = console
        .post(
            "/console/customers",
            &[
                ("name", "Jane"),
                ("medium", "email"),
                ("email", "jane@example.com"),
                ("templateId", &template),
                (&skill, &long),
                (&level, "Expert"),
            ],
        )
        .await;
    assert_eq!(
        element_text(&answer.text(), &format!("{skill}-error")).as_deref(),
        Some("skill is longer than 1000 characters"),
        "the issuer's own check, beside the field"
    );
    assert_eq!(customers(&acme).await, 0, "nothing was stored");
}

#[tokio::test]
async fn onboarding_with_auto_issue_in_the_console_stores_what_the_api_shows() {
    let agent = Agent::start(Default::default()).await;
    let (acme, console, template) = signed_in(&agent).await;
    let key = value_key(&console).await;
    let done = console
        .post(
            "/console/customers",
            &[
                ("name", "Jane Doe"),
                ("medium", "email"),
                ("email", "jane@example.com"),
                ("phoneNumber", "+14155550123"),
                ("templateId", &template),
                (&format!("v.{key}.skill"), "Climbing"),
                (&format!("v.{key}.level"), "Expert"),
                (&format!("v.{key}.holderFullName"), "Jane Q. Doe"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let location = done.location().unwrap().to_string();
    let id = location
        .strip_prefix("/console/customers/")
        .and_then(|rest| rest.strip_suffix("?notice=onboarded"))
        .unwrap();
    let (status, customer) = acme.api("GET", &format!("/customer/{id}"), None).await;
    assert_eq!(status, 200, "{customer}");
    assert_eq!(customer["name"], "Jane Doe");
    assert_eq!(customer["email"], "jane@example.com");
    assert!(
        customer["phoneNumber"].is_null(),
        "the SMS field of an email customer is not sent"
    );
    assert_eq!(customer["autoIssue"]["templateId"], template.as_str());
    assert_eq!(
        customer["autoIssue"]["values"],
        json!({ "skill": "Climbing", "level": "Expert", "holderFullName": "Jane Q. Doe" })
    );
    let shown = console.get(&location).await;
    assert_eq!(shown.status, 200);
    assert!(shown.body.contains("The customer was onboarded."));
    assert!(
        shown.body.contains("<svg"),
        "the invitation's QR code is inline"
    );
    let link = customer["invitation"]["url"].as_str().unwrap_or_default();
    assert!(link.is_empty() || shown.body.contains(link), "{customer}");
    // No email transport on this agent: the customer stays Initiated, and resending says why.
    let resend = console
        .post(&format!("/console/customers/{id}/resend"), &[])
        .await;
    assert_eq!(resend.status, 409, "{}", resend.body);
    assert!(
        resend
            .text()
            .contains("no email (LANYARD_SMTP_URL) transport is configured"),
        "{}",
        resend.body
    );
}

#[tokio::test]
async fn customers_are_listed_by_stage_searched_and_paged_and_counted_on_the_dashboard() {
    let agent = Agent::start(Default::default()).await;
    let (acme, console, _) = signed_in(&agent).await;
    for i in 0..23 {
        acme.email_customer(&format!("Customer {i:02}"), &format!("c{i:02}@example.com"))
            .await;
    }
    let (status, sms) = acme
        .api(
            "POST",
            "/customer",
            Some(json!({ "name": "Texting Tom", "medium": "sms", "phoneNumber": "+14155550199", "organizationLabel": "Acme" })),
        )
        .await;
    assert_eq!(status, 201, "{sms}");
    let rows = |body: &str| body.matches("<tr>").count() - 1;
    let first = console.get("/console/customers").await;
    assert_eq!(rows(&first.body), 20, "a page of 20");
    assert!(first.body.contains("24 customers"), "{}", first.body);
    assert!(first.body.contains("href=\"/console/customers?page=2\""));
    let second = console.get("/console/customers?page=2").await;
    assert_eq!(rows(&second.body), 4);
    assert!(second.body.contains("Texting Tom"));
    // No transport here: every customer is Initiated.
    let initiated = console.get("/console/customers?stage=Initiated").await;
    assert!(initiated.body.contains("24 customers"));
    let invited = console.get("/console/customers?stage=Invited").await;
    assert!(
        invited
            .body
            .contains("No customers yet in the Invited stage"),
        "{}",
        invited.body
    );
    for (query, name) in [
        ("customer%2007", "Customer 07"),
        ("C19%40EXAMPLE", "Customer 19"),
        ("%2B1415555%200199", "Texting Tom"),
    ] {
        let found = console.get(&format!("/console/customers?q={query}")).await;
        assert_eq!(rows(&found.body), 1, "{query}: {}", found.body);
        assert!(found.body.contains(name), "{query}");
    }
    let bad = console.get("/console/customers?stage=Lost").await;
    assert_eq!(bad.status, 400);
    assert!(bad
        .text()
        .contains("stage must be All, Initiated, Invited or Onboarded, not \"Lost\""));
    let dashboard = console.get("/console").await;
    let figures: Vec<&str> = dashboard
        .body
        .split("<span class=\"figure\">")
        .skip(1)
        .map(|rest| rest.split('<').next().unwrap())
        .collect();
    assert_eq!(
        figures,
        ["24", "24", "0", "0", "0", "0", "0", "0", "0"],
        "{}",
        dashboard.body
    );
}

#[tokio::test]
async fn the_onboard_form_offers_the_organisations_email_templates_and_sends_the_one_chosen() {
    let agent = Agent::start(Default::default()).await;
    let (acme, console, _) = signed_in(&agent).await;
    let (status, created) = acme
        .api(
            "POST",
            "/email-template",
            Some(json!({
                "name": "Welcome <b>aboard</b>",
                "subject": "Welcome, {{customerName}}",
                "htmlBody": "<p>Hi {{customerName}}</p>",
                "textBody": "Hi {{customerName}}: {{inviteUrl}}",
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let form = console.get("/console/customers/new").await;
    assert!(
        form.body.contains(&format!(
            "<option value=\"{id}\">Welcome &#60;b&#62;aboard&#60;/b&#62;</option>"
        )),
        "the template is offered, its name escaped: {}",
        form.body
    );

    // Another organisation's template id is refused beside the field, nothing stored.
    let refused = console
        .post(
            "/console/customers",
            &[
                ("name", "Jane Doe"),
                ("medium", "email"),
                ("email", "jane@example.com"),
                ("emailTemplateId", "000000000000000000000000"),
            ],
        )
        .await;
    assert_eq!(refused.status, 200);
    assert!(
        element_text(&refused.body, "emailTemplateId-error")
            .is_some_and(|e| e.contains("emailTemplateId")),
        "{}",
        refused.body
    );
    assert_eq!(customers(&acme).await, 0);

    let done = console
        .post(
            "/console/customers",
            &[
                ("name", "Jane Doe"),
                ("medium", "email"),
                ("email", "jane@example.com"),
                ("emailTemplateId", &id),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let customer_id = done
        .location()
        .unwrap()
        .strip_prefix("/console/customers/")
        .and_then(|rest| rest.strip_suffix("?notice=onboarded"))
        .unwrap()
        .to_string();
    let (_, customer) = acme
        .api("GET", &format!("/customer/{customer_id}"), None)
        .await;
    assert_eq!(customer["emailTemplateId"], id.as_str(), "{customer}");
}

//! Bad input to the issuer API, table-driven: each request is refused with the right status
//! and a message that names the field or header that was wrong, and nothing is created.

use lanyard_test_support as support;

use serde_json::{json, Value};
use support::{seed_template_request, Agent, OrgClient, TEMPLATES};

const CUSTOMERS: &str = "/core/api/v1/programmatic/customer";

/// The seed request with `field` set to `value` (or removed when `value` is `None`).
fn with(field: &str, value: Option<Value>) -> Value {
    let mut request = seed_template_request();
    match value {
        Some(value) => request[field] = value,
        None => {
            request.as_object_mut().unwrap().remove(field);
        }
    }
    request
}

/// `base` with the members of `extra` set, or removed where `extra` has them null.
fn merged(mut base: Value, extra: Value) -> Value {
    for (key, value) in extra.as_object().unwrap() {
        if value.is_null() {
            base.as_object_mut().unwrap().remove(key);
        } else {
            base[key] = value.clone();
        }
    }
    base
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    status: u16,
    /// A piece of the error message (the field or header it names).
    names: &'static str,
}

fn json_case(name: &'static str, body: Value, status: u16, names: &'static str) -> Case {
    Case {
        name,
        method: "POST",
        path: TEMPLATES.to_string(),
        headers: vec![("content-type", "application/json".into())],
        body: Some(serde_json::to_vec(&body).unwrap()),
        status,
        names,
    }
}

fn cases(key: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    for field in [
        "templateName",
        "credentialIssuer",
        "credentialType",
        "logoURL",
        "credentialExpiration",
        "customFields",
        "descriptions",
    ] {
        cases.push(json_case(
            "required field missing",
            with(field, None),
            400,
            field,
        ));
    }
    let more = [
        (
            "empty templateName",
            with("templateName", Some(json!("  "))),
            "templateName",
        ),
        (
            "templateName not a string",
            with("templateName", Some(json!(7))),
            "templateName",
        ),
        (
            "templateName too long",
            with("templateName", Some(json!("x".repeat(201)))),
            "templateName",
        ),
        (
            "credentialIssuer null",
            with("credentialIssuer", Some(Value::Null)),
            "credentialIssuer",
        ),
        (
            "logoURL not a URL",
            with("logoURL", Some(json!("javascript:alert(1)"))),
            "logoURL",
        ),
        (
            "customFields not an array",
            with("customFields", Some(json!("a,b"))),
            "customFields",
        ),
        (
            "customFields holds a number",
            with("customFields", Some(json!([1]))),
            "customFields[0]",
        ),
        (
            "descriptions shorter than customFields",
            with("descriptions", Some(json!([]))),
            "descriptions",
        ),
        (
            "custom field name with a space",
            json!({"customFields": ["full name"]}),
            "customFields[0]",
        ),
        (
            "custom field listed twice",
            json!({"customFields": ["a", "a"], "descriptions": ["A", "A"]}),
            "customFields[1]",
        ),
        (
            "custom field shadows a standard one",
            json!({"customFields": ["credentialType"]}),
            "customFields[0]",
        ),
        (
            "numberOfCredentials zero",
            with("numberOfCredentials", Some(json!(0))),
            "numberOfCredentials",
        ),
        (
            "numberOfCredentials negative",
            with("numberOfCredentials", Some(json!(-5))),
            "numberOfCredentials",
        ),
        (
            "numberOfCredentials fractional",
            with("numberOfCredentials", Some(json!(1.5))),
            "numberOfCredentials",
        ),
        (
            "numberOfCredentials a string",
            with("numberOfCredentials", Some(json!("5"))),
            "numberOfCredentials",
        ),
        (
            "credentialExpiration not a date",
            with("credentialExpiration", Some(json!("next year"))),
            "credentialExpiration",
        ),
        (
            "credentialExpiration in the past",
            with("credentialExpiration", Some(json!("2001-01-01"))),
            "credentialExpiration",
        ),
        (
            "credentialExpiration empty",
            with("credentialExpiration", Some(json!(""))),
            "credentialExpiration must be a date",
        ),
        (
            "credentialExpiration a number",
            with("credentialExpiration", Some(json!(1767225600))),
            "credentialExpiration must be a date string or null",
        ),
        (
            "credentialExpiration impossible date",
            with("credentialExpiration", Some(json!("2030-02-30"))),
            "credentialExpiration",
        ),
        (
            "unknown field",
            with("templateNmae", Some(json!("typo"))),
            "templateNmae",
        ),
        (
            "body is an array",
            json!([seed_template_request()]),
            "JSON object",
        ),
    ];
    for (name, body, names) in more {
        // Shorthand bodies (objects missing the seed's other fields) start from the seed.
        let body = match body {
            Value::Object(partial) if !partial.contains_key("templateName") => {
                let mut request = seed_template_request();
                for (k, v) in partial {
                    request[&k] = v;
                }
                if request["customFields"].as_array().map(Vec::len)
                    != request["descriptions"].as_array().map(Vec::len)
                {
                    let n = request["customFields"].as_array().unwrap().len();
                    request["descriptions"] = json!(vec!["description"; n]);
                }
                request
            }
            other => other,
        };
        cases.push(json_case(name, body, 400, names));
    }
    let raw = |name, content_type: &str, body: &[u8], status, names| Case {
        name,
        method: "POST",
        path: TEMPLATES.to_string(),
        headers: vec![("content-type", content_type.to_string())],
        body: Some(body.to_vec()),
        status,
        names,
    };
    cases.push(raw(
        "not JSON",
        "application/json",
        b"{templateName:",
        400,
        "not valid JSON",
    ));
    cases.push(raw(
        "wrong media type",
        "text/plain",
        b"{}",
        415,
        "Content-Type",
    ));
    cases.push(raw(
        "oversized body",
        "application/json",
        &vec![b' '; 2 << 20],
        413,
        "",
    ));
    let get = |name, path: String, status, names| Case {
        name,
        method: "GET",
        path,
        headers: vec![],
        body: None,
        status,
        names,
    };
    cases.push(get("page zero", format!("{TEMPLATES}?page=0"), 400, "page"));
    cases.push(get(
        "page not a number",
        format!("{TEMPLATES}?page=two"),
        400,
        "page",
    ));
    cases.push(get(
        "pageSize too large",
        format!("{TEMPLATES}?pageSize=1000"),
        400,
        "pageSize",
    ));
    cases.push(get(
        "unknown query parameter",
        format!("{TEMPLATES}?sort=name"),
        400,
        "sort",
    ));
    cases.push(get(
        "unknown template id",
        format!("{TEMPLATES}/urn:template:lanyard:nope"),
        404,
        "urn:template:lanyard:nope",
    ));
    cases.push(get(
        "path trick in the id",
        format!("{TEMPLATES}/..%2F..%2Fadmin"),
        404,
        "no template",
    ));
    cases.push(Case {
        method: "DELETE",
        ..get(
            "delete of an unknown template",
            format!("{TEMPLATES}/urn:template:x"),
            404,
            "urn:template:x",
        )
    });
    let customer = |name, body: Value, status, names| Case {
        path: CUSTOMERS.to_string(),
        ..json_case(name, body, status, names)
    };
    let email = |extra: Value| {
        merged(
            json!({"name": "Jane", "medium": "email", "email": "jane@example.com"}),
            extra,
        )
    };
    let sms = |extra: Value| {
        merged(
            json!({"name": "Bob", "medium": "sms", "phoneNumber": "+14155550123", "organizationLabel": "Acme"}),
            extra,
        )
    };
    for (name, body, status, names) in [
        (
            "customer without a name",
            email(json!({"name": null})),
            400,
            "name is required",
        ),
        (
            "customer without a medium",
            email(json!({"medium": null})),
            400,
            "medium",
        ),
        (
            "unknown medium",
            email(json!({"medium": "fax"})),
            400,
            "medium",
        ),
        (
            "email medium without an address",
            email(json!({"email": null})),
            400,
            "email is required",
        ),
        (
            "invalid email address",
            email(json!({"email": "jane@@example"})),
            400,
            "email",
        ),
        (
            "email address with a space",
            email(json!({"email": "ja ne@example.com"})),
            400,
            "email",
        ),
        (
            "phone number on the email medium",
            email(json!({"phoneNumber": "+14155550123"})),
            400,
            "phoneNumber",
        ),
        (
            "email template without the link",
            email(json!({"emailTemplate": {"subject": "Hi", "body": "no link"}})),
            400,
            "emailTemplate.body",
        ),
        (
            "email template without a subject",
            email(json!({"emailTemplate": {"body": "{{inviteUrl}}"}})),
            400,
            "emailTemplate.subject",
        ),
        (
            "sms without a number",
            sms(json!({"phoneNumber": null})),
            400,
            "phoneNumber is required",
        ),
        (
            "sms number without a country code",
            sms(json!({"phoneNumber": "4155550123"})),
            400,
            "phoneNumber",
        ),
        (
            "sms number with letters",
            sms(json!({"phoneNumber": "+1 415 CALL NOW"})),
            400,
            "phoneNumber",
        ),
        (
            "sms without a label",
            sms(json!({"organizationLabel": null})),
            400,
            "organizationLabel",
        ),
        (
            "sms label too long",
            sms(json!({"organizationLabel": "x".repeat(31)})),
            400,
            "organizationLabel",
        ),
        (
            "email address on the sms medium",
            sms(json!({"email": "bob@example.com"})),
            400,
            "email",
        ),
        (
            "autoIssue not an object",
            email(json!({"autoIssue": "yes"})),
            400,
            "autoIssue",
        ),
        (
            "autoIssue without a template",
            email(json!({"autoIssue": {"values": {}}})),
            400,
            "autoIssue.templateId",
        ),
        (
            "autoIssue with an unknown member",
            email(json!({"autoIssue": {"templateId": "x", "extra": 1}})),
            400,
            "autoIssue.extra",
        ),
        (
            "autoIssue of an unknown template",
            email(json!({"autoIssue": {"templateId": "urn:template:none", "values": {}}})),
            404,
            "autoIssue.templateId",
        ),
        (
            "unknown customer field",
            email(json!({"nickname": "J"})),
            400,
            "nickname",
        ),
    ] {
        cases.push(customer(name, body, status, names));
    }
    cases.push(get(
        "unknown customer id",
        format!("{CUSTOMERS}/{}", "a".repeat(24)),
        404,
        "no customer",
    ));
    cases.push(get(
        "customer status filter",
        format!("{CUSTOMERS}?status=Gone"),
        400,
        "status",
    ));
    cases.push(Case {
        method: "POST",
        ..get(
            "resend to an unknown customer",
            format!("{CUSTOMERS}/nobody/invitation"),
            404,
            "nobody",
        )
    });
    // Keys: none, wrong, malformed, and another organisation's shape with a bad secret.
    for (name, value, names) in [
        ("no API key", None, "x-api-key header is missing"),
        (
            "wrong API key",
            Some(format!("{}x", &key[..key.len() - 1])),
            "x-api-key is not valid",
        ),
        (
            "malformed API key",
            Some("let-me-in".to_string()),
            "x-api-key is not valid",
        ),
        (
            "unknown organisation",
            Some(format!("lk_{}_secret", "f".repeat(24))),
            "x-api-key is not valid",
        ),
    ] {
        let mut case = json_case(name, seed_template_request(), 401, names);
        case.headers.push(("x-api-key", value.unwrap_or_default()));
        cases.push(case);
    }
    cases
}

#[tokio::test]
async fn bad_requests_are_refused_by_name_and_change_nothing() {
    let agent = Agent::start(Default::default()).await;
    let acme = OrgClient::create(&agent, "Acme").await;
    let client = reqwest::Client::new();
    let cases = cases(&acme.key);
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let mut request = client.request(
            case.method.parse().unwrap(),
            format!("{}{}", agent.url, case.path),
        );
        let key_given = case.headers.iter().any(|(name, _)| *name == "x-api-key");
        if !key_given {
            request = request.header("x-api-key", &acme.key);
        }
        for (name, value) in &case.headers {
            if !(*name == "x-api-key" && value.is_empty()) {
                request = request.header(*name, value);
            }
        }
        if let Some(body) = case.body {
            request = request.body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body["error"]["message"].as_str().unwrap_or("").to_string();
        if status != case.status || !message.contains(case.names) {
            failures.push(format!(
                "{}: expected {} naming {:?}, got {status} {body}",
                case.name, case.status, case.names
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    let listed = acme.call("GET", TEMPLATES, None).await;
    assert_eq!(
        listed.body["data"]["totalItem"], 0,
        "no template was created"
    );
    let customers = acme.call("GET", CUSTOMERS, None).await;
    assert_eq!(
        customers.body["data"]["totalItem"], 0,
        "no customer was created"
    );
}

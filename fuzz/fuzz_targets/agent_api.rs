//! The agent API's request bodies, through the functions its handlers call: the template
//! create body (`TemplateSpec::parse`, then the template's API and JSON Schema views), the
//! customer onboarding body (`NewCustomer::template_id` and `NewCustomer::parse` against a
//! template), and batch issuance (`rows_from_csv`, `rows_from_json`, each row then parsed as an
//! onboarding body). The first byte picks which; the rest is the body.
//!
//! Checks besides "no panic": what parses keeps the limits the API documents (50 custom
//! fields with one description each, valid field names, at most 1000 batch rows, auto-issue
//! values that are fields of the template).
#![no_main]

use std::sync::OnceLock;

use agent::issuer::{
    rows_from_csv, rows_from_json, valid_email, valid_field_name, Medium, NewCustomer, Template,
    TemplateSpec, MAX_BATCH_ROWS, MAX_CUSTOM_FIELDS,
};
use agent::api::ApiError;
use agent::issuer::IssuerError;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// 2026-01-01T00:00:00Z in milliseconds.
const NOW_MS: u64 = 1_767_225_600_000;
const ORG: &str = "0123456789abcdef01234567";

fn template_of(spec: TemplateSpec) -> Template {
    Template {
        object_id: "fedcba9876543210fedcba98".to_string(),
        template_id: format!("urn:template:lanyard:membership-{ORG}-{NOW_MS}"),
        org_id: ORG.to_string(),
        key: format!("{ORG}/{NOW_MS:016x}fedcba98"),
        spec,
        total_offered: 0,
        total_issued: 0,
        created_ms: NOW_MS,
        updated_ms: NOW_MS,
    }
}

/// The template onboarding and batch rows are checked against.
fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let body = json!({
            "templateName": "Membership",
            "credentialIssuer": "Acme Club",
            "credentialType": "Membership",
            "logoURL": "https://acme.example/logo.png",
            "customFields": ["memberNumber", "level"],
            "descriptions": ["Member number", "Level"],
        });
        template_of(TemplateSpec::parse(&body, NOW_MS).expect("the fixture template parses"))
    })
}

fn onboard(body: &Value) {
    let template = template();
    let wanted = match NewCustomer::template_id(body) {
        Ok(wanted) => wanted,
        Err(error) => return check_error(&error),
    };
    let found = wanted
        .filter(|id| *id == template.template_id)
        .map(|_| template);
    match NewCustomer::parse(body, found) {
        Ok(customer) => {
            match customer.medium {
                Medium::Email => {
                    assert!(customer.email.as_deref().is_some_and(valid_email));
                    assert!(customer.phone_number.is_none());
                }
                Medium::Sms => {
                    let phone = customer
                        .phone_number
                        .as_deref()
                        .expect("an sms customer has a phone");
                    assert!(
                        phone.starts_with('+') && phone[1..].bytes().all(|b| b.is_ascii_digit())
                    );
                    assert!(customer.email.is_none());
                }
            }
            if let Some(auto) = &customer.auto_issue {
                let fields = template.fields();
                assert!(auto
                    .values
                    .keys()
                    .all(|name| fields.iter().any(|(field, _, _)| field == name)));
            }
        }
        Err(error) => check_error(&error),
    }
}

fn check_error(error: &IssuerError) {
    let answer = ApiError::from(error.clone());
    assert!(answer.status.is_client_error(), "{error:?}");
    assert!(!answer.message.is_empty());
}

fn rows(parsed: Result<Vec<Result<Value, IssuerError>>, IssuerError>) {
    match parsed {
        Ok(rows) => {
            assert!(
                !rows.is_empty() && rows.len() <= MAX_BATCH_ROWS,
                "{} rows",
                rows.len()
            );
            for row in rows {
                match row {
                    Ok(body) => onboard(&body),
                    Err(error) => check_error(&error),
                }
            }
        }
        Err(error) => check_error(&error),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = lanyard_fuzz::mode(data, 4) else {
        return;
    };
    if mode == 2 {
        if let Ok(text) = std::str::from_utf8(rest) {
            rows(rows_from_csv(text, &template().template_id));
        }
        return;
    }
    let Ok(body) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    match mode {
        0 => match TemplateSpec::parse(&body, NOW_MS) {
            Ok(spec) => {
                assert!(spec.custom_fields.len() <= MAX_CUSTOM_FIELDS);
                assert_eq!(spec.custom_fields.len(), spec.descriptions.len());
                assert!(spec.custom_fields.iter().all(|f| valid_field_name(f)));
                let template = template_of(spec);
                let api =
                    template.to_api("https://agent.example", "did:web:agent.example", "lanyard");
                assert_eq!(api["templateId"], template.template_id);
                let schema = template.json_schema("https://agent.example");
                assert!(schema["properties"]
                    .as_object()
                    .is_some_and(|p| p.len() >= 4));
            }
            Err(error) => check_error(&error),
        },
        1 => onboard(&body),
        _ => rows(rows_from_json(&body)),
    }
});

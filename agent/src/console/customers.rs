//! The customers' pages: the list (stage tabs All / Initiated / Invited / Onboarded, search by
//! name, email or phone, pages), the onboard form (the seed's validation: a valid email, or a
//! phone number with its country code and the organisation's label for SMS; optional
//! auto-issue with values for the chosen template's fields, errors beside each field), and a
//! customer's page (the invitation link and its QR code, resend, the credentials issued).
//! Onboarding and resending go through the same issuer code as the JSON API.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::dashboard::COUNT_CAP;
use super::page::{render, ConsoleError, FieldErrors, Nav, NoticeQuery, Page};
use super::{ConsoleState, CsrfForm, Shared, SignedIn};
use crate::issuer::{
    iso_millis, Customer, IssuerError, Medium, Status, Template as CredentialTemplate,
    MAX_EMAIL_TEMPLATES,
};

/// Customers per page of the list.
const PAGE_SIZE: usize = 20;
/// Templates offered for auto-issue.
const TEMPLATE_CHOICES: usize = 100;

pub(super) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/console/customers", get(list).post(onboard))
        .route("/console/customers/new", get(new_customer))
        .route("/console/customers/{id}", get(customer))
        .route("/console/customers/{id}/resend", post(resend))
}

/// One row of the list.
struct Row {
    id: String,
    name: String,
    contact: String,
    medium: &'static str,
    stage: &'static str,
    created: String,
}

struct Tab {
    label: &'static str,
    href: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "console/customers.html")]
struct ListPage {
    page: Page,
    tabs: Vec<Tab>,
    stage: String,
    query: String,
    rows: Vec<Row>,
    matched: usize,
    capped: bool,
    page_number: usize,
    previous: Option<String>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    stage: Option<String>,
    q: Option<String>,
    page: Option<String>,
}

/// The list's URL for a stage, search and page.
fn list_url(stage: Option<Status>, query: &str, page: usize) -> String {
    let mut params = Vec::new();
    if let Some(stage) = stage {
        params.push(format!("stage={}", stage.as_str()));
    }
    if !query.is_empty() {
        params.push(format!("q={}", super::page::percent_encode(query)));
    }
    if page > 1 {
        params.push(format!("page={page}"));
    }
    if params.is_empty() {
        "/console/customers".to_string()
    } else {
        format!("/console/customers?{}", params.join("&"))
    }
}

fn contact(customer: &Customer) -> String {
    match customer.details.medium {
        Medium::Email => customer.details.email.clone().unwrap_or_default(),
        Medium::Sms => customer.details.phone_number.clone().unwrap_or_default(),
    }
}

fn medium(medium: Medium) -> &'static str {
    match medium {
        Medium::Email => "Email",
        Medium::Sms => "SMS",
    }
}

async fn list(
    State(state): Shared,
    user: SignedIn,
    Query(query): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let stage = match query
        .stage
        .as_deref()
        .filter(|s| !s.is_empty() && *s != "All")
    {
        None => None,
        Some(text) => Some(Status::parse(text).ok_or_else(|| {
            ConsoleError::BadRequest(format!(
                "stage must be All, Initiated, Invited or Onboarded, not {text:?}"
            ))
        })?),
    };
    let search: String = query
        .q
        .unwrap_or_default()
        .trim()
        .chars()
        .take(100)
        .collect();
    let page_number = match query.page.as_deref() {
        None | Some("") => 1,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .ok_or_else(|| {
                ConsoleError::BadRequest(format!(
                    "page must be a whole number from 1 to 100000, not {text:?}"
                ))
            })?,
    };
    let found = state
        .issuer
        .console_customers(&user.org, stage, &search, page_number, PAGE_SIZE, COUNT_CAP)
        .await?;
    let rows = found
        .items
        .iter()
        .map(|c| Row {
            id: c.id.clone(),
            name: c.details.name.clone(),
            contact: contact(c),
            medium: medium(c.details.medium),
            stage: c.status.as_str(),
            created: iso_millis(c.created_ms)[..10].to_string(),
        })
        .collect();
    let tabs = [
        ("All", None),
        ("Initiated", Some(Status::Initiated)),
        ("Invited", Some(Status::Invited)),
        ("Onboarded", Some(Status::Onboarded)),
    ]
    .into_iter()
    .map(|(label, tab)| Tab {
        label,
        href: list_url(tab, &search, 1),
        current: tab == stage,
    })
    .collect();
    let pages = found.matched.div_ceil(PAGE_SIZE).max(1);
    render(&ListPage {
        page: user.page(Nav::Customers),
        tabs,
        stage: stage.map_or("", Status::as_str).to_string(),
        previous: (page_number > 1).then(|| list_url(stage, &search, page_number - 1)),
        next: (page_number < pages).then(|| list_url(stage, &search, page_number + 1)),
        query: search,
        rows,
        matched: found.matched,
        capped: found.capped,
        page_number,
    })
}

/// A template offered for auto-issue, with the fields its values are asked for.
struct Choice {
    template_id: String,
    name: String,
    fields: Vec<ValueField>,
    selected: bool,
}

struct ValueField {
    /// The input's name and id.
    input: String,
    label: String,
    value: String,
    required: bool,
}

/// One of the organisation's email templates, offered for the invitation email.
struct EmailChoice {
    id: String,
    name: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "console/customer_new.html")]
struct OnboardPage {
    page: Page,
    errors: FieldErrors,
    form: HashMap<String, String>,
    email_chosen: bool,
    templates: Vec<Choice>,
    email_templates: Vec<EmailChoice>,
}

impl OnboardPage {
    /// What the form held for `name` (empty when nothing).
    fn value(&self, name: &str) -> &str {
        self.form.get(name).map_or("", String::as_str)
    }
}

/// The key a template's value inputs are named under (letters and digits only).
fn template_key(template: &CredentialTemplate) -> String {
    template
        .object_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// The fields a person fills for auto-issue: the holder's name and the custom fields (the
/// issuer and type come from the template). Custom fields are required.
fn value_fields(template: &CredentialTemplate) -> Vec<(String, String, bool)> {
    template
        .fields()
        .into_iter()
        .filter(|(name, _, _)| name != "credentialIssuer" && name != "credentialType")
        .map(|(name, description, _)| {
            let required = template.spec.custom_fields.contains(&name);
            (name, description, required)
        })
        .collect()
}

async fn onboard_page(
    state: &ConsoleState,
    user: &SignedIn,
    form: HashMap<String, String>,
    errors: FieldErrors,
) -> Result<OnboardPage, ConsoleError> {
    let (templates, _) = state
        .issuer
        .templates(&user.org, 1, TEMPLATE_CHOICES)
        .await?;
    let chosen = form.get("templateId").cloned().unwrap_or_default();
    let templates = templates
        .iter()
        .map(|t| {
            let key = template_key(t);
            Choice {
                template_id: t.template_id.clone(),
                name: t.spec.name.clone(),
                selected: t.template_id == chosen,
                fields: value_fields(t)
                    .into_iter()
                    .map(|(field, label, required)| {
                        let input = format!("v.{key}.{field}");
                        ValueField {
                            value: form.get(&input).cloned().unwrap_or_default(),
                            input,
                            label,
                            required,
                        }
                    })
                    .collect(),
            }
        })
        .collect();
    let chosen_email = form.get("emailTemplateId").cloned().unwrap_or_default();
    let (email_templates, _) = state
        .issuer
        .email_templates(&user.org, 1, MAX_EMAIL_TEMPLATES)
        .await?;
    let email_templates = email_templates
        .into_iter()
        .map(|t| EmailChoice {
            selected: t.id == chosen_email,
            id: t.id,
            name: t.spec.name,
        })
        .collect();
    Ok(OnboardPage {
        page: user.page(Nav::Customers),
        errors,
        email_chosen: form.get("medium").is_none_or(|m| m != "sms"),
        form,
        templates,
        email_templates,
    })
}

async fn new_customer(
    State(state): Shared,
    user: SignedIn,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let mut form = HashMap::new();
    if let Some(template) = query.get("template") {
        form.insert("templateId".to_string(), template.clone());
    }
    render(&onboard_page(&state, &user, form, FieldErrors::new()).await?)
}

/// The API's onboarding body from the form, with the errors found before the issuer sees it
/// (the seed's rules the API leaves optional: the SMS label, every custom field's value).
async fn onboarding_body(
    state: &ConsoleState,
    user: &SignedIn,
    form: &HashMap<String, String>,
) -> Result<(Value, Option<String>), FieldErrors> {
    let field = |name: &str| form.get(name).map(|v| v.trim()).unwrap_or("");
    let mut errors = FieldErrors::new();
    let mut body = Map::new();
    body.insert("name".into(), json!(field("name")));
    match field("medium") {
        "sms" => {
            body.insert("medium".into(), json!("sms"));
            body.insert("phoneNumber".into(), json!(field("phoneNumber")));
            if field("organizationLabel").is_empty() {
                errors.add(
                    "organizationLabel",
                    "organizationLabel is required for SMS: who the message says it is from",
                );
            }
            body.insert(
                "organizationLabel".into(),
                json!(field("organizationLabel")),
            );
        }
        "email" => {
            body.insert("medium".into(), json!("email"));
            body.insert("email".into(), json!(field("email")));
            // The organisation's own email template, or the default one.
            if !field("emailTemplateId").is_empty() {
                body.insert("emailTemplateId".into(), json!(field("emailTemplateId")));
            }
        }
        other => errors.add(
            "medium",
            format!("medium must be Email or SMS, not {other:?}"),
        ),
    }
    let template_id = field("templateId");
    let mut key = None;
    if !template_id.is_empty() {
        match state.issuer.template(&user.org, template_id).await {
            Ok(template) => {
                let prefix = format!("v.{}.", template_key(&template));
                let mut values = Map::new();
                for (name, _, required) in value_fields(&template) {
                    let input = format!("{prefix}{name}");
                    let value = field(&input);
                    if value.is_empty() {
                        if required {
                            errors.add(&input, format!("{name} is required for this template"));
                        }
                    } else {
                        values.insert(name, json!(value));
                    }
                }
                body.insert(
                    "autoIssue".into(),
                    json!({ "templateId": template.template_id, "values": values }),
                );
                key = Some(prefix);
            }
            Err(_) => errors.add(
                "templateId",
                format!("templateId: no template of yours has the id {template_id:?}"),
            ),
        }
    }
    if errors.is_empty() {
        Ok((Value::Object(body), key))
    } else {
        Err(errors)
    }
}

/// Where the API's field names go on the form.
fn form_field(api_field: &str, values_prefix: Option<&str>) -> Option<String> {
    match api_field {
        "name" | "medium" | "email" | "emailTemplateId" | "phoneNumber" | "organizationLabel" => {
            Some(api_field.to_string())
        }
        "autoIssue" | "autoIssue.templateId" | "autoIssue.values" => Some("templateId".into()),
        other => other
            .strip_prefix("autoIssue.values.")
            .and_then(|name| values_prefix.map(|prefix| format!("{prefix}{name}"))),
    }
}

async fn onboard(
    State(state): Shared,
    CsrfForm { user, form }: CsrfForm<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let refused = |errors: FieldErrors, form: HashMap<String, String>| {
        let state = state.clone();
        let user = user.clone();
        async move {
            let page = onboard_page(&state, &user, form, errors).await?;
            // The form again with its errors (a 200: a browser reports a 4xx page as a
            // failed load).
            render(&page)
        }
    };
    let (body, prefix) = match onboarding_body(&state, &user, &form).await {
        Ok(body) => body,
        Err(errors) => return refused(errors, form).await,
    };
    match state.issuer.onboard(&user.org, &body).await {
        Ok((customer, _)) => Ok(Redirect::to(&format!(
            "/console/customers/{}?notice=onboarded",
            customer.id
        ))
        .into_response()),
        Err(error @ (IssuerError::InvalidField { .. } | IssuerError::BadRequest(_))) => {
            let errors = FieldErrors::from_issuer(&error, |f| form_field(f, prefix.as_deref()));
            refused(errors, form).await
        }
        Err(error @ (IssuerError::RateLimited(_) | IssuerError::Conflict(_))) => {
            let mut errors = FieldErrors::new();
            errors.form = Some(error.to_string());
            refused(errors, form).await
        }
        Err(other) => Err(other.into()),
    }
}

struct Exchange {
    template_id: String,
    /// The template's name; none when it was deleted.
    template_name: Option<String>,
    state: String,
    created: String,
}

struct Delivery {
    at: String,
    medium: &'static str,
    ok: bool,
    detail: String,
}

#[derive(Template)]
#[template(path = "console/customer.html")]
struct CustomerPage {
    page: Page,
    id: String,
    name: String,
    medium: &'static str,
    contact: String,
    label: String,
    stage: &'static str,
    created: String,
    invitation_url: String,
    qr_svg: String,
    can_resend: bool,
    deliveries: Vec<Delivery>,
    credentials: Vec<Exchange>,
    credentials_capped: bool,
}

/// The fixed notices a redirect may ask for (never text from the URL).
fn notice(key: Option<&str>) -> Option<&'static str> {
    match key? {
        "onboarded" => Some("The customer was onboarded."),
        "resent" => Some("The invitation was sent again."),
        _ => None,
    }
}

async fn customer(
    State(state): Shared,
    user: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, ConsoleError> {
    let customer = state.issuer.customer(&user.org, &id).await?;
    let links = state.issuer.customer_links(&customer);
    let url = links["url"].as_str().unwrap_or_default().to_string();
    let svg = crate::invitations::qr_svg(&url)
        .map_err(|e| IssuerError::internal(&format!("the invitation's QR code: {e}")))?;
    let svg = svg
        .find("<svg")
        .map_or(svg.clone(), |at| svg[at..].to_string());
    let (exchanges, credentials_capped) = state
        .issuer
        .customer_credentials(&user.org, &customer.id, COUNT_CAP)
        .await?;
    // Each template's name, looked up once per template.
    let mut names: HashMap<String, Option<String>> = HashMap::new();
    for exchange in &exchanges {
        if !names.contains_key(&exchange.template_id) {
            let name = match state
                .issuer
                .template(&user.org, &exchange.template_id)
                .await
            {
                Ok(template) => Some(template.spec.name),
                Err(IssuerError::NotFound(_)) => None,
                Err(other) => return Err(other.into()),
            };
            names.insert(exchange.template_id.clone(), name);
        }
    }
    let mut page = user.page(Nav::Customers);
    if let Some(text) = notice(query.notice.as_deref()) {
        page = page.with_notice(text);
    }
    render(&CustomerPage {
        page,
        id: customer.id.clone(),
        name: customer.details.name.clone(),
        medium: medium(customer.details.medium),
        contact: contact(&customer),
        label: customer
            .details
            .organization_label
            .clone()
            .unwrap_or_default(),
        stage: customer.status.as_str(),
        created: iso_millis(customer.created_ms),
        invitation_url: url,
        qr_svg: svg,
        can_resend: customer.status != Status::Onboarded,
        deliveries: customer
            .deliveries
            .iter()
            .rev()
            .map(|d| Delivery {
                at: iso_millis(d.at_ms),
                medium: medium(d.medium),
                ok: d.ok,
                detail: d.detail.clone(),
            })
            .collect(),
        credentials: exchanges
            .iter()
            .map(|e| Exchange {
                template_id: e.template_id.clone(),
                template_name: names.get(&e.template_id).cloned().flatten(),
                state: format!("{:?}", e.state),
                created: iso_millis(e.created_ms),
            })
            .collect(),
        credentials_capped,
    })
}

async fn resend(
    State(state): Shared,
    Path(id): Path<String>,
    CsrfForm { user, .. }: CsrfForm<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    state.issuer.resend(&user.org, &id).await?;
    Ok(Redirect::to(&format!("/console/customers/{id}?notice=resent")).into_response())
}

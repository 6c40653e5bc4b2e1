//! Verification pages: ask a holder for a credential of one of the organisation's templates
//! with some of its fields, show the request's QR code and link, and show the result as soon
//! as the wallet answers: the disclosed values, or the reasons it failed.
//!
//! - `GET /console/verifications`: the organisation's verifications, newest first, and the
//!   choice of template for a new one;
//! - `GET /console/verifications/new?templateId=...`: the template's fields to ask for, and
//!   the purpose shown to the holder;
//! - `POST /console/verifications`: creates the request (the JSON API's domain code);
//! - `GET /console/verifications/{id}`: the QR code and link, and the result, kept live by
//!   `/console/static/verifications.js` asking `GET /console/verifications/{id}/result?wait=25`
//!   (a long poll: answered when the outcome is recorded, by any agent of the store, or after
//!   the wait, at most [`MAX_VERIFICATION_WAIT`]).

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::batch::when;
use super::page::{render, ConsoleError, FieldErrors, Nav, Page};
use super::{ConsoleState, CsrfForm, SignedIn};
use crate::invitations::qr_svg;
use crate::issuer::{IssuerError, Verification, VerificationState};
use crate::issuer::{Template as CredentialTemplate, MAX_VERIFICATION_WAIT};

type Shared = State<Arc<ConsoleState>>;

/// The page's script.
const JS: &str = include_str!("static/verifications.js");
/// Verifications a page of the list shows.
const PAGE_SIZE: usize = 20;
/// Templates the form offers (the first ones).
const TEMPLATE_CHOICES: usize = 200;
/// The longest purpose kept (what the holder's wallet shows).
const MAX_PURPOSE_CHARS: usize = 200;

pub(super) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/console/verifications", get(list).post(create))
        .route("/console/verifications/new", get(new_form))
        .route("/console/verifications/{id}", get(show))
        .route("/console/verifications/{id}/result", get(result))
        .route("/console/static/verifications.js", get(script))
}

fn state_label(state: VerificationState) -> &'static str {
    match state {
        VerificationState::Pending => "Pending",
        VerificationState::Verified => "Verified",
        VerificationState::Failed => "Failed",
    }
}

/// A verification as the pages show it.
struct VerificationView {
    id: String,
    template_name: String,
    purpose: String,
    required_fields: Vec<String>,
    state: &'static str,
    css: &'static str,
    created: String,
    completed: Option<String>,
    disclosed: Vec<(String, String)>,
    reasons: Vec<String>,
    holder: Option<String>,
}

/// A disclosed value as text: a string as it is, anything else as JSON.
fn shown(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

impl VerificationView {
    fn new(v: &Verification, template_name: String) -> VerificationView {
        VerificationView {
            id: v.id.clone(),
            template_name,
            purpose: v.purpose.clone(),
            required_fields: v.required_fields.clone(),
            state: state_label(v.state),
            css: match v.state {
                VerificationState::Pending => "pending",
                VerificationState::Verified => "verified",
                VerificationState::Failed => "failed",
            },
            created: when(v.created_ms),
            completed: v.completed_ms.map(when),
            disclosed: v
                .disclosed
                .iter()
                .filter(|(name, _)| name.as_str() != "id")
                .map(|(name, value)| (name.clone(), shown(value)))
                .collect(),
            reasons: v.reasons.clone(),
            holder: v.holder.clone(),
        }
    }

    fn json(&self) -> Value {
        json!({
            "state": self.css,
            "label": self.state,
            "completed": self.completed,
            "disclosed": self.disclosed,
            "reasons": self.reasons,
            "holder": self.holder,
        })
    }
}

/// The names of `org`'s templates by id (for the list), and the templates.
async fn templates(
    state: &ConsoleState,
    user: &SignedIn,
) -> Result<Vec<CredentialTemplate>, ConsoleError> {
    Ok(state
        .issuer
        .templates(&user.org, 1, TEMPLATE_CHOICES)
        .await?
        .0)
}

async fn template_name(state: &ConsoleState, user: &SignedIn, id: &str) -> String {
    state
        .issuer
        .template(&user.org, id)
        .await
        .map(|t| t.spec.name)
        .unwrap_or_else(|_| format!("{id} (deleted)"))
}

#[derive(Template)]
#[template(path = "console/verifications_list.html")]
struct ListPage {
    page: Page,
    templates: Vec<(String, String)>,
    verifications: Vec<VerificationView>,
    page_number: usize,
    pages: usize,
}

#[derive(Deserialize)]
struct ListQuery {
    page: Option<usize>,
}

async fn list(
    State(state): Shared,
    user: SignedIn,
    Query(query): Query<ListQuery>,
) -> Result<Response, ConsoleError> {
    let (_, total) = state.issuer.verifications(&user.org, None, 1, 0).await?;
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page_number = query.page.unwrap_or(1).clamp(1, pages);
    // Page 1 is the newest: the store's pages run oldest first.
    let (mut items, _) = state
        .issuer
        .verifications(&user.org, None, pages - page_number + 1, PAGE_SIZE)
        .await?;
    items.reverse();
    let choices = templates(&state, &user).await?;
    let name_of = |id: &str| {
        choices
            .iter()
            .find(|t| t.template_id == id)
            .map(|t| t.spec.name.clone())
            .unwrap_or_else(|| format!("{id} (deleted)"))
    };
    render(&ListPage {
        page: user.page(Nav::Verifications),
        verifications: items
            .iter()
            .map(|v| VerificationView::new(v, name_of(&v.template_id)))
            .collect(),
        templates: choices
            .iter()
            .map(|t| (t.template_id.clone(), t.spec.name.clone()))
            .collect(),
        page_number,
        pages,
    })
}

#[derive(Template)]
#[template(path = "console/verifications_new.html")]
struct NewPage {
    page: Page,
    template_id: String,
    template_name: String,
    /// `(name, description, checked)`.
    fields: Vec<(String, String, bool)>,
    purpose: String,
    errors: FieldErrors,
}

#[derive(Deserialize)]
struct NewQuery {
    #[serde(rename = "templateId")]
    template_id: Option<String>,
}

async fn new_page(
    state: &ConsoleState,
    user: &SignedIn,
    template_id: &str,
    checked: Option<&[String]>,
    purpose: String,
    errors: FieldErrors,
) -> Result<NewPage, ConsoleError> {
    let template = state
        .issuer
        .template(&user.org, template_id)
        .await
        .map_err(|_| IssuerError::not_found(&format!("no template has the id {template_id:?}")))?;
    let fields = template
        .fields()
        .into_iter()
        .map(|(name, description, optional)| {
            let on = match checked {
                Some(checked) => checked.contains(&name),
                None => !optional,
            };
            (name, description, on)
        })
        .collect();
    Ok(NewPage {
        page: user.page(Nav::Verifications),
        template_id: template.template_id,
        template_name: template.spec.name,
        fields,
        purpose,
        errors,
    })
}

async fn new_form(
    State(state): Shared,
    user: SignedIn,
    Query(query): Query<NewQuery>,
) -> Result<Response, ConsoleError> {
    let Some(template_id) = query.template_id.filter(|t| !t.trim().is_empty()) else {
        return Ok(Redirect::to("/console/verifications").into_response());
    };
    render(
        &new_page(
            &state,
            &user,
            template_id.trim(),
            None,
            String::new(),
            FieldErrors::new(),
        )
        .await?,
    )
}

async fn create(
    State(state): Shared,
    CsrfForm { user, form }: CsrfForm<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    let value = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let template_id = value("templateId");
    let purpose = value("purpose");
    let fields: Vec<String> = form
        .iter()
        .filter(|(key, _)| key == "requiredFields")
        .map(|(_, v)| v.clone())
        .collect();
    let mut errors = FieldErrors::new();
    if purpose.chars().count() > MAX_PURPOSE_CHARS {
        errors.add(
            "purpose",
            format!("The purpose is at most {MAX_PURPOSE_CHARS} characters"),
        );
    }
    if fields.is_empty() {
        errors.add(
            "requiredFields",
            "Choose at least one field the holder must disclose",
        );
    }
    if errors.is_empty() {
        let mut body = json!({ "templateId": template_id, "requiredFields": fields });
        if !purpose.is_empty() {
            body["purpose"] = json!(purpose);
        }
        match state.issuer.create_verification(&user.org, &body).await {
            Ok((verification, _)) => {
                return Ok(
                    Redirect::to(&format!("/console/verifications/{}", verification.id))
                        .into_response(),
                )
            }
            Err(IssuerError::InvalidField { field, problem }) => {
                let name = if field.starts_with("requiredFields") {
                    "requiredFields"
                } else {
                    field.as_str()
                };
                errors.add(name, format!("{field} {problem}"));
            }
            Err(IssuerError::NotFound(message)) => {
                return Err(IssuerError::NotFound(message).into())
            }
            Err(other) if matches!(other, IssuerError::Internal(_)) => return Err(other.into()),
            Err(other) => errors.form = Some(other.to_string()),
        }
    }
    let page = new_page(&state, &user, &template_id, Some(&fields), purpose, errors).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(page.render()?)).into_response())
}

#[derive(Template)]
#[template(path = "console/verifications_show.html")]
struct ShowPage {
    page: Page,
    verification: VerificationView,
    url: String,
    qr: String,
    pending: bool,
}

async fn show(
    State(state): Shared,
    user: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let verification = state.issuer.verification(&user.org, &id).await?;
    let url = format!(
        "{}/i/{}",
        state.issuer.public_url(),
        verification.invitation_code
    );
    let qr = qr_svg(&url).map_err(|e| IssuerError::internal(&format!("the QR code: {e}")))?;
    let name = template_name(&state, &user, &verification.template_id).await;
    render(&ShowPage {
        page: user.page(Nav::Verifications),
        pending: verification.state == VerificationState::Pending,
        verification: VerificationView::new(&verification, name),
        url,
        qr,
    })
}

#[derive(Deserialize)]
struct ResultQuery {
    /// Seconds to wait for the outcome (0: answer at once).
    wait: Option<u64>,
}

async fn result(
    State(state): Shared,
    user: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<ResultQuery>,
) -> Result<Response, ConsoleError> {
    let wait = Duration::from_secs(query.wait.unwrap_or(0)).min(MAX_VERIFICATION_WAIT);
    let verification = state
        .issuer
        .wait_for_verification(&user.org, &id, wait)
        .await?;
    let view = VerificationView::new(&verification, String::new());
    Ok(Json(view.json()).into_response())
}

async fn script() -> Response {
    super::batch::asset("text/javascript; charset=utf-8", JS)
}

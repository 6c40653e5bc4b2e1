//! The email templates pages (`/console/email-templates`): the organisation's own invitation
//! emails, listed, created and edited with a preview of the email as it is sent (the subject,
//! the HTML part in a sandboxed frame, the text part), and deleted. The default email has a
//! preview of its own. Every change goes through the issuer's email template methods, the
//! ones the JSON API uses (`issuer::email`).
//!
//! The preview's HTML is the organisation's own: it is shown only in an `<iframe sandbox>`
//! (no scripts, an opaque origin) from `srcdoc`, escaped as an attribute, under the console's
//! Content-Security-Policy. That policy refuses inline styles, so the preview draws the
//! email's frame with a stylesheet of its own (the organisation's inline styles show in the
//! email itself, not in the preview).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use super::page::{render, ConsoleError, FieldErrors, Nav, Page};
use super::templates::asset;
use super::{ConsoleState, CsrfForm, SignedIn};
use crate::issuer::{
    iso_millis, EmailTemplateSpec, IssuerError, Logo, RenderedEmail, StoredEmailTemplate,
    MAX_EMAIL_TEMPLATES, MAX_LOGO_BYTES, PLACEHOLDERS, PREVIEW_CUSTOMER,
};

type Shared = State<Arc<ConsoleState>>;

/// Largest form these pages take: the bodies (a character may take 4 bytes of UTF-8, each
/// percent-encoded in 3) and a logo as a base64 data URL, with room for the other fields.
const MAX_FORM: usize = (50_000 + 20_000) * 12 + MAX_LOGO_BYTES * 2 + 16 * 1024;

pub(super) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/console/email-templates", get(list).post(create))
        .route("/console/email-templates/new", get(new_form))
        .route("/console/email-templates/default", get(default_preview))
        .route("/console/email-templates/{id}", get(edit).post(update))
        .route("/console/email-templates/{id}/delete", post(delete))
        .layer(DefaultBodyLimit::max(MAX_FORM))
        .route("/console/static/email.js", get(script))
        .route("/console/static/email-preview.css", get(preview_stylesheet))
        .route("/console/static/email.css", get(page_stylesheet))
}

/// The form as typed (shown again beside its errors or its preview).
#[derive(Clone, Debug, Default, Deserialize)]
struct EmailForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    subject: String,
    #[serde(default, rename = "htmlBody")]
    html_body: String,
    #[serde(default, rename = "textBody")]
    text_body: String,
    /// A new logo as a data URL (the page's script reads the chosen file into it); empty
    /// keeps the template's logo.
    #[serde(default)]
    logo: String,
    /// `yes` removes the template's logo.
    #[serde(default)]
    remove_logo: Option<String>,
    /// `preview` shows the email without saving; anything else saves.
    #[serde(default)]
    intent: Option<String>,
}

impl EmailForm {
    fn sample() -> EmailForm {
        EmailForm {
            name: String::new(),
            subject: "{{organizationName}} invites you to connect".into(),
            html_body:
                "<p>Hello {{customerName}},</p>\n\
                        <p>{{organizationName}} would like to send you a verifiable credential.</p>"
                    .into(),
            text_body: "Hello {{customerName}},\n\n{{organizationName}} would like to send you a \
                        verifiable credential. Open this link on your phone:\n\n{{inviteUrl}}"
                .into(),
            ..EmailForm::default()
        }
    }

    fn of(template: &StoredEmailTemplate) -> EmailForm {
        EmailForm {
            name: template.spec.name.clone(),
            subject: template.spec.subject.clone(),
            html_body: template.spec.html_body.clone(),
            text_body: template.spec.text_body.clone(),
            ..EmailForm::default()
        }
    }

    fn previewing(&self) -> bool {
        self.intent.as_deref() == Some("preview")
    }

    /// The validated template, `current` the logo kept when no new one is given.
    fn spec(&self, current: Option<&Logo>) -> Result<EmailTemplateSpec, IssuerError> {
        let logo = if !self.logo.trim().is_empty() {
            Some(Logo::from_data_url(self.logo.trim(), "logo")?)
        } else if self.remove_logo.as_deref() == Some("yes") {
            None
        } else {
            current.cloned()
        };
        EmailTemplateSpec::new(
            &self.name,
            &self.subject,
            &self.html_body,
            &self.text_body,
            logo,
        )
    }
}

/// A preview as a page shows it.
struct Preview {
    subject: String,
    /// The HTML part with its images as data URLs (the frame's `srcdoc`).
    html: String,
    text: String,
}

impl From<RenderedEmail> for Preview {
    fn from(email: RenderedEmail) -> Preview {
        Preview {
            html: preview_document(&email.html_with_data_images()),
            subject: email.subject,
            text: email.text,
        }
    }
}

/// The email's HTML as the preview frame shows it under the console's Content-Security-Policy
/// (which the frame inherits and which refuses inline styles): its `<style>` elements and
/// double-quoted `style` attributes left out, and the preview stylesheet, which draws the
/// email's frame from its classes, linked instead.
fn preview_document(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find("<style") {
        out.push_str(&rest[..start]);
        match rest[start..].find("</style>") {
            Some(end) => rest = &rest[start + end + "</style>".len()..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    let mut clean = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(start) = rest.find(" style=\"") {
        clean.push_str(&rest[..start]);
        let after = &rest[start + " style=\"".len()..];
        rest = after.find('"').map_or("", |end| &after[end + 1..]);
    }
    clean.push_str(rest);
    let link = "<link rel=\"stylesheet\" href=\"/console/static/email-preview.css\">";
    match clean.find("</head>") {
        Some(at) => format!("{}{link}{}", &clean[..at], &clean[at..]),
        None => format!("{link}{clean}"),
    }
}

struct Row {
    id: String,
    name: String,
    subject: String,
    has_logo: bool,
    updated: String,
}

#[derive(askama::Template)]
#[template(path = "console/email_list.html")]
struct ListPage {
    page: Page,
    rows: Vec<Row>,
    total: usize,
    max: usize,
    placeholders: Vec<String>,
}

#[derive(askama::Template)]
#[template(path = "console/email_form.html")]
struct FormPage {
    page: Page,
    /// The stored template's id when editing.
    id: Option<String>,
    form: EmailForm,
    /// Whether the stored template has a logo (editing).
    has_logo: bool,
    errors: FieldErrors,
    preview: Option<Preview>,
    placeholders: Vec<String>,
    sample_customer: &'static str,
    max_logo_kb: usize,
}

#[derive(askama::Template)]
#[template(path = "console/email_default.html")]
struct DefaultPage {
    page: Page,
    preview: Preview,
    sample_customer: &'static str,
}

/// A time as a list shows it: `2026-12-01 20:17 UTC`.
fn minutes(ms: u64) -> String {
    let iso = iso_millis(ms);
    format!("{} UTC", iso.get(..16).unwrap_or(&iso).replace('T', " "))
}

fn placeholders() -> Vec<String> {
    PLACEHOLDERS
        .iter()
        .map(|p| format!("{{{{{p}}}}}"))
        .collect()
}

#[derive(Deserialize)]
struct Notice {
    saved: Option<String>,
    deleted: Option<String>,
}

async fn list(
    State(state): Shared,
    user: SignedIn,
    Query(notice): Query<Notice>,
) -> Result<Response, ConsoleError> {
    let (templates, total) = state
        .issuer
        .email_templates(&user.org, 1, MAX_EMAIL_TEMPLATES)
        .await?;
    let mut page = user.page(Nav::EmailTemplates);
    if notice.deleted.is_some() {
        page = page.with_notice("The email template was deleted.");
    }
    render(&ListPage {
        page,
        rows: templates
            .into_iter()
            .map(|t| Row {
                has_logo: t.spec.logo.is_some(),
                updated: minutes(t.updated_ms),
                id: t.id,
                name: t.spec.name,
                subject: t.spec.subject,
            })
            .collect(),
        total,
        max: MAX_EMAIL_TEMPLATES,
        placeholders: placeholders(),
    })
}

fn form_page(
    user: &SignedIn,
    id: Option<String>,
    form: EmailForm,
    has_logo: bool,
    errors: FieldErrors,
    preview: Option<Preview>,
) -> FormPage {
    FormPage {
        page: user.page(Nav::EmailTemplates),
        id,
        form,
        has_logo,
        errors,
        preview,
        placeholders: placeholders(),
        sample_customer: PREVIEW_CUSTOMER,
        max_logo_kb: MAX_LOGO_BYTES / 1024,
    }
}

/// The form again with its errors beside the fields. Answered 200, as the page a person
/// reads next (a browser reports an error status on a page load as a failed resource).
fn refused(page: &FormPage) -> Result<Response, ConsoleError> {
    render(page)
}

fn field_errors(error: &IssuerError) -> FieldErrors {
    FieldErrors::from_issuer(error, |field| {
        ["name", "subject", "htmlBody", "textBody", "logo"]
            .contains(&field)
            .then(|| field.to_string())
    })
}

async fn new_form(user: SignedIn) -> Result<Response, ConsoleError> {
    render(&form_page(
        &user,
        None,
        EmailForm::sample(),
        false,
        FieldErrors::new(),
        None,
    ))
}

/// Saves (or previews) `form` as a new template, or as a change of `stored`.
async fn submit(
    state: &ConsoleState,
    user: SignedIn,
    stored: Option<StoredEmailTemplate>,
    form: EmailForm,
) -> Result<Response, ConsoleError> {
    let current_logo = stored.as_ref().and_then(|t| t.spec.logo.as_ref());
    let id = stored.as_ref().map(|t| t.id.clone());
    // The form again with `errors`; a logo chosen but not saved is to be chosen again.
    let refuse = |mut form: EmailForm, errors: FieldErrors| {
        form.logo.clear();
        refused(&form_page(
            &user,
            id.clone(),
            form,
            current_logo.is_some(),
            errors,
            None,
        ))
    };
    let spec = match form.spec(current_logo) {
        Ok(spec) => spec,
        Err(error @ IssuerError::InvalidField { .. }) => {
            return refuse(form, field_errors(&error));
        }
        Err(error) => return Err(error.into()),
    };
    if form.previewing() {
        let preview = state.issuer.preview_email(&user.org, Some(&spec))?;
        let has_logo = spec.logo.is_some();
        return render(&form_page(
            &user,
            id,
            form,
            has_logo,
            FieldErrors::new(),
            Some(preview.into()),
        ));
    }
    let saved = match &stored {
        Some(stored) => {
            state
                .issuer
                .change_email_template(&user.org, &stored.id, spec)
                .await
        }
        None => state.issuer.add_email_template(&user.org, spec).await,
    };
    match saved {
        Ok(saved) => Ok(
            Redirect::to(&format!("/console/email-templates/{}?saved=1", saved.id)).into_response(),
        ),
        Err(error @ IssuerError::Conflict(_)) => {
            let mut errors = FieldErrors::new();
            errors.form = Some(error.to_string());
            refuse(form, errors)
        }
        Err(error) => Err(error.into()),
    }
}

async fn create(
    State(state): Shared,
    CsrfForm { user, form }: CsrfForm<EmailForm>,
) -> Result<Response, ConsoleError> {
    submit(&state, user, None, form).await
}

async fn edit(
    State(state): Shared,
    user: SignedIn,
    Path(id): Path<String>,
    Query(notice): Query<Notice>,
) -> Result<Response, ConsoleError> {
    let template = state.issuer.email_template(&user.org, &id).await?;
    let preview = state
        .issuer
        .preview_email(&user.org, Some(&template.spec))?;
    let mut page = form_page(
        &user,
        Some(template.id.clone()),
        EmailForm::of(&template),
        template.spec.logo.is_some(),
        FieldErrors::new(),
        Some(preview.into()),
    );
    if notice.saved.is_some() {
        page.page = page.page.with_notice("The email template was saved.");
    }
    render(&page)
}

async fn update(
    State(state): Shared,
    Path(id): Path<String>,
    CsrfForm { user, form }: CsrfForm<EmailForm>,
) -> Result<Response, ConsoleError> {
    let stored = state.issuer.email_template(&user.org, &id).await?;
    submit(&state, user, Some(stored), form).await
}

#[derive(Deserialize)]
struct Empty {}

async fn delete(
    State(state): Shared,
    Path(id): Path<String>,
    CsrfForm {
        user,
        form: Empty {},
    }: CsrfForm<Empty>,
) -> Result<Response, ConsoleError> {
    state.issuer.delete_email_template(&user.org, &id).await?;
    Ok(Redirect::to("/console/email-templates?deleted=1").into_response())
}

async fn default_preview(State(state): Shared, user: SignedIn) -> Result<Response, ConsoleError> {
    let preview = state.issuer.preview_email(&user.org, None)?;
    render(&DefaultPage {
        page: user.page(Nav::EmailTemplates),
        preview: preview.into(),
        sample_customer: PREVIEW_CUSTOMER,
    })
}

/// The pages' own stylesheet (the preview frame's size).
async fn page_stylesheet() -> Response {
    asset("text/css; charset=utf-8", include_str!("static/email.css"))
}

/// The preview frame's stylesheet (see [`preview_document`]).
async fn preview_stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("static/email-preview.css"),
    )
}

/// The form's script: reads a chosen logo file into the form's `logo` field.
async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("static/email.js"),
    )
}

#[cfg(test)]
mod tests {
    use super::preview_document;

    #[test]
    fn the_preview_leaves_out_inline_styles_and_links_its_stylesheet() {
        let html = "<html><head><style>a{}</style></head><body style=\"x\"><p class=\"a\" style=\"color:red\">Hi</p></body></html>";
        assert_eq!(
            preview_document(html),
            "<html><head><link rel=\"stylesheet\" href=\"/console/static/email-preview.css\"></head><body><p class=\"a\">Hi</p></body></html>"
        );
    }
}

//! What every page shares: the [`Page`] value its template gets (organisation, user, CSRF
//! token, navigation), the field errors a form shows beside its fields, and the console's
//! error answer.

use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};

use crate::api::ApiError;
use crate::issuer::IssuerError;

/// The navigation's items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nav {
    /// `/console`: counts at a glance.
    Dashboard,
    /// `/console/customers`: onboarding.
    Customers,
    /// `/console/templates`: credential templates.
    Templates,
    /// `/console/email-templates`: invitation emails.
    EmailTemplates,
    /// `/console/batches`: batch issuance.
    Batches,
    /// `/console/verifications`: verification requests.
    Verifications,
    /// `/console/settings`: callbacks and API keys.
    Settings,
}

impl Nav {
    const ALL: [Nav; 7] = [
        Nav::Dashboard,
        Nav::Customers,
        Nav::Templates,
        Nav::EmailTemplates,
        Nav::Batches,
        Nav::Verifications,
        Nav::Settings,
    ];

    /// Where the item leads.
    pub fn href(self) -> &'static str {
        match self {
            Nav::Dashboard => "/console",
            Nav::Customers => "/console/customers",
            Nav::Templates => "/console/templates",
            Nav::EmailTemplates => "/console/email-templates",
            Nav::Batches => "/console/batches",
            Nav::Verifications => "/console/verifications",
            Nav::Settings => "/console/settings",
        }
    }

    /// The item's label.
    pub fn label(self) -> &'static str {
        match self {
            Nav::Dashboard => "Dashboard",
            Nav::Customers => "Customers",
            Nav::Templates => "Templates",
            Nav::EmailTemplates => "Email templates",
            Nav::Batches => "Batch issuance",
            Nav::Verifications => "Verifications",
            Nav::Settings => "Settings",
        }
    }
}

/// One item of the navigation as the layout draws it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NavItem {
    /// Where it leads.
    pub href: &'static str,
    /// Its label.
    pub label: &'static str,
    /// Whether it is the page shown (`aria-current="page"`).
    pub current: bool,
}

/// What the layout of every signed-in page shows: give it to the page's template as `page`.
#[derive(Clone, Debug)]
pub struct Page {
    /// The organisation's name.
    pub org_name: String,
    /// The organisation's id.
    pub org_id: String,
    /// The signed-in user's email.
    pub user: String,
    /// The session's CSRF token: every form's hidden `_csrf`, every script's `x-csrf-token`.
    pub csrf: String,
    /// The navigation item of this page.
    pub nav: Nav,
    /// A line confirming what was just done, shown above the content.
    pub notice: Option<String>,
}

impl Page {
    /// The navigation, this page's item marked.
    pub fn nav_items(&self) -> Vec<NavItem> {
        Nav::ALL
            .iter()
            .map(|&item| NavItem {
                href: item.href(),
                label: item.label(),
                current: item == self.nav,
            })
            .collect()
    }

    /// With a notice above the content.
    pub fn with_notice(mut self, notice: impl Into<String>) -> Page {
        self.notice = Some(notice.into());
        self
    }
}

/// A form's errors by field name, shown beside each field (`console/macros.html`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors {
    fields: Vec<(String, String)>,
    /// An error about the form as a whole (shown above it).
    pub form: Option<String>,
}

impl FieldErrors {
    /// No errors.
    pub fn new() -> FieldErrors {
        FieldErrors::default()
    }

    /// Adds `message` beside `field` (the first error of a field is the one shown).
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        if self.get(field).is_none() {
            self.fields.push((field.to_string(), message.into()));
        }
    }

    /// The error shown beside `field`, if any.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, message)| message.as_str())
    }

    /// Whether `field` has an error.
    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    /// Whether there is no error at all.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.form.is_none()
    }

    /// The errors of an issuer refusal: an invalid field beside that field (the field's
    /// name is the API's, such as `email` or `autoIssue.values.name`; `rename` maps it to
    /// the form's), anything else about the form.
    pub fn from_issuer(
        error: &IssuerError,
        rename: impl Fn(&str) -> Option<String>,
    ) -> FieldErrors {
        let mut errors = FieldErrors::new();
        match error {
            IssuerError::InvalidField { field, problem } => match rename(field) {
                Some(name) => errors.add(&name, format!("{} {problem}", human(field))),
                None => errors.form = Some(error.to_string()),
            },
            other => errors.form = Some(other.to_string()),
        }
        errors
    }
}

/// A field path as a person reads it: its last part.
fn human(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

/// Why a console request was not served: a page saying so (with the status), or the way to
/// the sign-in page.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No session (or it ended): to the sign-in page, and back to `next` after.
    #[error("sign in first")]
    SignIn {
        /// Where to return after signing in (a console path).
        next: Option<String>,
    },
    /// A state-changing request without the session's CSRF token, or from another site.
    #[error("{0}")]
    Forbidden(String),
    /// The request cannot be read (a malformed form).
    #[error("{0}")]
    BadRequest(String),
    /// The issuer refused or failed.
    #[error(transparent)]
    Issuer(#[from] IssuerError),
    /// A page did not render.
    #[error("the page did not render: {0}")]
    Render(#[from] askama::Error),
}

impl ConsoleError {
    /// The CSRF refusal, saying what was wrong.
    pub fn csrf(reason: &str) -> ConsoleError {
        ConsoleError::Forbidden(format!(
            "{reason}: reload the page and try again (the form's CSRF token protects your \
             session from other sites)"
        ))
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ConsoleError::SignIn { next } => {
                let target = match next {
                    Some(next) => format!("/console/sign-in?next={}", percent_encode(&next)),
                    None => "/console/sign-in".to_string(),
                };
                return Redirect::to(&target).into_response();
            }
            ConsoleError::Forbidden(message) => (StatusCode::FORBIDDEN, message),
            ConsoleError::BadRequest(message) => (StatusCode::BAD_REQUEST, message),
            ConsoleError::Issuer(error) => {
                let api = ApiError::from(error);
                if api.status.is_server_error() {
                    tracing::error!(code = api.code, message = %api.message, "console error");
                    // What failed inside stays in the log.
                    (
                        api.status,
                        "the agent failed to do this; the operator's log says why".to_string(),
                    )
                } else {
                    (api.status, api.message)
                }
            }
            ConsoleError::Render(error) => {
                tracing::error!(%error, "console page did not render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the page did not render; the operator's log says why".to_string(),
                )
            }
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let page = ErrorPage {
            status: status.as_u16(),
            title,
            message: &message,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, [(header::CONTENT_TYPE, "text/plain")], message).into_response(),
        }
    }
}

/// Renders `template` as a 200 HTML page.
pub(super) fn render<T: Template>(template: &T) -> Result<Response, ConsoleError> {
    Ok(Html(template.render()?).into_response())
}

/// `text` percent-encoded for a query value.
pub(super) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

//! The issuer's web console (issue 15), served by the agent under `/console`: server-rendered
//! pages (askama templates in `agent/templates/console/`, every value escaped) over the same
//! domain code as the JSON API ([`ConsoleState::issuer`]), a small stylesheet and script of
//! its own, nothing fetched from elsewhere.
//!
//! How a page module is written (this module's own pages, and the other helpers'):
//! - it exposes `pub(super) fn routes() -> Router<Arc<ConsoleState>>` with full paths
//!   (`/console/templates`, `/console/templates/{id}`...), merged in [`pages`];
//! - a handler takes [`SignedIn`] (redirects to the sign-in page when there is no session)
//!   and renders a template that extends `console/layout.html` (blocks `title` and
//!   `content`) holding a field `page: Page` ([`SignedIn::page`] with its [`Nav`] item);
//! - a state-changing request takes [`CsrfForm<T>`] (a url-encoded form with `_csrf`),
//!   [`CsrfHeader`] (a script's `fetch` with `x-csrf-token`), or checks a multipart field
//!   with [`SignedIn::check_csrf`]; forms put `{{ page.csrf }}` in a hidden `_csrf` input;
//! - a field's error is shown beside the field with the macros of
//!   `console/macros.html` (`{% import "console/macros.html" as m %}`,
//!   `{% call m::error(errors, "email") %}`, and `{% call m::invalid(errors, "email") %}`
//!   inside the input tag), from a [`FieldErrors`];
//! - its own script, if any, is `/console/static/<module>.js`, served by its own module
//!   (`include_str!`).
//!
//! Every answer carries a strict Content-Security-Policy (scripts and styles from the agent
//! only), `no-store`, `nosniff` and no framing.

mod accounts;
mod assets;
mod auth;
mod batch;
mod customers;
mod dashboard;
mod email;
mod page;
mod settings;
mod templates;
mod verifications;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::Router;

use crate::admin::AdminToken;
use crate::backend::IssuerBackend;
use crate::issuer::Issuer;

pub use self::accounts::{
    add_org_user, check_password, create_org_with_user, normalise_email, Accounts, FirstUser,
    Session, SessionToken, SignInPolicy, User, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS,
    WRONG_CREDENTIALS,
};
pub use self::auth::{CsrfForm, CsrfHeader, SignedIn, SESSION_COOKIE, SIGN_IN_COOKIE};
pub use self::page::{ConsoleError, FieldErrors, Nav, NavItem, Page};

/// Largest request body a console page takes (a page module may set a larger one on its
/// own routes, as the batch upload does).
const MAX_BODY: usize = 256 * 1024;

/// The state extractor of the console's handlers.
type Shared = axum::extract::State<Arc<ConsoleState>>;

/// What the console's handlers share.
pub struct ConsoleState {
    /// The issuer side, the very one the JSON API acts on.
    pub issuer: Arc<Issuer<IssuerBackend>>,
    /// Users, sessions and sign-in bounds.
    pub accounts: Arc<Accounts>,
    /// Whether cookies are marked `Secure`: always, except when the agent's public URL is
    /// plain http on a loopback address (a developer's machine).
    pub secure_cookies: bool,
    /// The admin bearer token (`/admin/*` routes the console serves).
    pub admin_token: AdminToken,
}

impl ConsoleState {
    /// The state for `issuer`, its cookies `Secure` unless `public_url` is plain http on a
    /// loopback address.
    pub fn new(
        issuer: Arc<Issuer<IssuerBackend>>,
        accounts: Arc<Accounts>,
        admin_token: AdminToken,
    ) -> ConsoleState {
        let secure_cookies = !crate::is_loopback_http(issuer.public_url());
        ConsoleState {
            issuer,
            accounts,
            secure_cookies,
            admin_token,
        }
    }
}

impl FromRef<Arc<ConsoleState>> for AdminToken {
    fn from_ref(state: &Arc<ConsoleState>) -> AdminToken {
        state.admin_token.clone()
    }
}

/// Every page module's routes: the one place they are merged. A module of another helper
/// adds its `mod` line above and its `.merge(x::routes())` line here.
fn pages() -> Router<Arc<ConsoleState>> {
    Router::new()
        .merge(assets::routes())
        .merge(auth::routes())
        .merge(dashboard::routes())
        .merge(customers::routes())
        .merge(settings::routes())
        .merge(templates::routes())
        .merge(email::routes())
        .merge(batch::routes())
        .merge(verifications::routes())
}

/// The console's router (`/console/...`, and the admin route that adds users).
pub fn router(state: Arc<ConsoleState>) -> Router {
    pages()
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// The headers every console answer carries.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

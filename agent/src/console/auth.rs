//! Who a console request is from: the session cookie ([`SignedIn`]), the CSRF checks of
//! state-changing requests ([`CsrfForm`], [`CsrfHeader`]), the sign-in and sign-out pages,
//! and the admin route that adds a user.
//!
//! Cookies: the session's (`lanyard_console`) and, before sign-in, the sign-in form's
//! double-submit token (`lanyard_console_signin`), both `HttpOnly`, `SameSite=Strict`,
//! `Path=/console` and `Secure` unless the agent's public URL is plain http on loopback.
//! A state-changing request is also refused when the browser says it came from another
//! site (`Sec-Fetch-Site`) or its `Origin` is not the host it was sent to.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::page::{render, ConsoleError, FieldErrors, Nav, Page};
use super::{ConsoleState, SessionToken};
use crate::api::{Admin, ApiError};
use crate::issuer::{IssuerError, Org};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "lanyard_console";
/// The sign-in form's double-submit cookie's name.
pub const SIGN_IN_COOKIE: &str = "lanyard_console_signin";

type Shared = State<Arc<ConsoleState>>;

pub(super) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", post(sign_out))
        .route("/admin/orgs/{id}/users", post(admin_add_user))
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// A `Set-Cookie` value for the console's cookies; `max_age` 0 removes it.
fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("cookie values are base64url")
}

/// The signed-in user of a request: the organisation, the email and the session's CSRF
/// token. Without a live session, a page request is sent to the sign-in page (and back
/// after).
#[derive(Clone, Debug)]
pub struct SignedIn {
    /// The user's organisation.
    pub org: Org,
    /// The user's email.
    pub email: String,
    /// The session's CSRF token.
    pub csrf: String,
    token: SessionToken,
}

impl SignedIn {
    /// The [`Page`] of a page in the navigation item `nav`.
    pub fn page(&self, nav: Nav) -> Page {
        Page {
            org_name: self.org.record.name.clone(),
            org_id: self.org.record.id.clone(),
            user: self.email.clone(),
            csrf: self.csrf.clone(),
            nav,
            notice: None,
        }
    }

    /// The organisation's id.
    pub fn org_id(&self) -> &str {
        &self.org.record.id
    }

    /// Checks a CSRF token a request carried (a multipart form's `_csrf` field), in
    /// constant time.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), ConsoleError> {
        let given = given
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .ok_or_else(|| ConsoleError::csrf("the request carries no CSRF token"))?;
        if bool::from(given.as_bytes().ct_eq(self.csrf.as_bytes())) {
            Ok(())
        } else {
            Err(ConsoleError::csrf("the request's CSRF token is wrong"))
        }
    }
}

impl FromRequestParts<Arc<ConsoleState>> for SignedIn {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ConsoleState>,
    ) -> Result<Self, ConsoleError> {
        let next = (parts.method == Method::GET)
            .then(|| parts.uri.path_and_query().map(|p| p.as_str().to_string()))
            .flatten();
        let sign_in = || ConsoleError::SignIn { next: next.clone() };
        let token = cookie(&parts.headers, SESSION_COOKIE)
            .and_then(SessionToken::parse)
            .ok_or_else(sign_in)?;
        let storage = state.issuer.storage();
        let session = state
            .accounts
            .session(storage, &token)
            .await?
            .ok_or_else(sign_in)?;
        let org = state
            .issuer
            .org(&session.org_id)
            .await?
            .ok_or_else(sign_in)?;
        Ok(SignedIn {
            org,
            email: session.email,
            csrf: token.csrf_token(),
            token,
        })
    }
}

/// Refuses a state-changing request the browser says came from another site.
fn same_site(headers: &HeaderMap) -> Result<(), ConsoleError> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return Err(ConsoleError::csrf(&format!(
                "the request came from another site (Sec-Fetch-Site: {site})"
            )));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest);
        if origin_host.is_none() || origin_host != host {
            return Err(ConsoleError::csrf(
                "the request came from another site (its Origin is not this agent)",
            ));
        }
    }
    Ok(())
}

/// A url-encoded form posted by the signed-in user, with the session's CSRF token in its
/// `_csrf` field (refused with 403 otherwise, saying why). `form` is the rest, read as `T`.
pub struct CsrfForm<T> {
    /// Who posted it.
    pub user: SignedIn,
    /// The form.
    pub form: T,
}

impl<T: DeserializeOwned> FromRequest<Arc<ConsoleState>> for CsrfForm<T> {
    type Rejection = ConsoleError;

    async fn from_request(
        request: Request,
        state: &Arc<ConsoleState>,
    ) -> Result<Self, ConsoleError> {
        let (mut parts, body) = request.into_parts();
        let user = SignedIn::from_request_parts(&mut parts, state).await?;
        same_site(&parts.headers)?;
        let body = form_body(parts, body, state).await?;
        user.check_csrf(form_field(&body, "_csrf").as_deref())?;
        let form = serde_urlencoded::from_bytes(&body)
            .map_err(|e| ConsoleError::BadRequest(format!("the form does not read: {e}")))?;
        Ok(CsrfForm { user, form })
    }
}

/// The body of a url-encoded form.
async fn form_body(
    parts: Parts,
    body: axum::body::Body,
    state: &Arc<ConsoleState>,
) -> Result<Bytes, ConsoleError> {
    let media_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media_type.as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(ConsoleError::BadRequest(format!(
            "the form must be sent as application/x-www-form-urlencoded, not {}",
            media_type.as_deref().unwrap_or("(none)")
        )));
    }
    Bytes::from_request(Request::from_parts(parts, body), state)
        .await
        .map_err(|e| ConsoleError::BadRequest(format!("the form does not read: {e}")))
}

/// The first value of `name` in a url-encoded body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// A script's state-changing request (`fetch`) by the signed-in user, with the session's
/// CSRF token in its `x-csrf-token` header (refused with 403 otherwise, saying why).
pub struct CsrfHeader(pub SignedIn);

impl FromRequestParts<Arc<ConsoleState>> for CsrfHeader {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ConsoleState>,
    ) -> Result<Self, ConsoleError> {
        let user = SignedIn::from_request_parts(parts, state).await?;
        same_site(&parts.headers)?;
        let given = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok());
        user.check_csrf(given)?;
        Ok(CsrfHeader(user))
    }
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    csrf: String,
    email: String,
    next: String,
    errors: FieldErrors,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// Where to go after signing in: a console path only (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with("/console")
                && !next.starts_with("//")
                && !next.contains('\\')
                && !next.starts_with("/console/sign-") =>
        {
            next.to_string()
        }
        _ => "/console".to_string(),
    }
}

/// The sign-in page; sets a fresh double-submit token for its form.
async fn sign_in_page(State(state): Shared, Query(query): Query<NextQuery>) -> Response {
    let token = SessionToken::generate();
    let page = SignInPage {
        csrf: token.expose().to_string(),
        email: String::new(),
        next: safe_next(query.next.as_deref()),
        errors: FieldErrors::new(),
    };
    sign_in_answer(&state, StatusCode::OK, &page, &token)
}

fn sign_in_answer(
    state: &ConsoleState,
    status: StatusCode,
    page: &SignInPage,
    token: &SessionToken,
) -> Response {
    match render(page) {
        Ok(mut response) => {
            *response.status_mut() = status;
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(SIGN_IN_COOKIE, token.expose(), 3600, state.secure_cookies),
            );
            response
        }
        Err(error) => error.into_response(),
    }
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: Option<String>,
}

async fn sign_in(State(state): Shared, request: Request) -> Result<Response, ConsoleError> {
    let (parts, body) = request.into_parts();
    same_site(&parts.headers)?;
    let expected = cookie(&parts.headers, SIGN_IN_COOKIE).map(str::to_string);
    let body = form_body(parts, body, &state).await?;
    let given = form_field(&body, "_csrf");
    match (&expected, &given) {
        (None, _) => {
            return Err(ConsoleError::csrf(
                "the sign-in form has expired or this browser refuses cookies",
            ))
        }
        (Some(expected), Some(given))
            if bool::from(expected.as_bytes().ct_eq(given.as_bytes())) => {}
        _ => return Err(ConsoleError::csrf("the sign-in form's CSRF token is wrong")),
    }
    let form: SignInForm = serde_urlencoded::from_bytes(&body)
        .map_err(|e| ConsoleError::BadRequest(format!("the form does not read: {e}")))?;
    let next = safe_next(form.next.as_deref());
    match state
        .accounts
        .sign_in(state.issuer.storage(), &form.email, &form.password)
        .await
    {
        Ok((session, token)) => {
            let ttl = session.expires_ms.saturating_sub(session.created_ms) / 1000;
            let mut response = Redirect::to(&next).into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                set_cookie(SESSION_COOKIE, token.expose(), ttl, state.secure_cookies),
            );
            headers.append(
                header::SET_COOKIE,
                set_cookie(SIGN_IN_COOKIE, "", 0, state.secure_cookies),
            );
            Ok(response)
        }
        Err(error @ (IssuerError::Unauthenticated(_) | IssuerError::RateLimited(_))) => {
            let status = ApiError::from(error.clone()).status;
            let mut errors = FieldErrors::new();
            errors.form = Some(error.to_string());
            let token = SessionToken::generate();
            let page = SignInPage {
                csrf: token.expose().to_string(),
                email: form.email.chars().take(254).collect(),
                next,
                errors,
            };
            Ok(sign_in_answer(&state, status, &page, &token))
        }
        Err(other) => Err(other.into()),
    }
}

async fn sign_out(
    State(state): Shared,
    super::CsrfForm { user, .. }: CsrfForm<Value>,
) -> Result<Response, ConsoleError> {
    state
        .accounts
        .sign_out(state.issuer.storage(), &user.token)
        .await?;
    let mut response = Redirect::to("/console/sign-in").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, state.secure_cookies),
    );
    Ok(response)
}

/// `POST /admin/orgs/{id}/users` `{"email", "password"}` (admin token): adds a console user.
async fn admin_add_user(
    State(state): Shared,
    _: Admin,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    let org = crate::api::org_at(&state.issuer, &id).await?;
    let text = |name: &str| -> Result<String, ApiError> {
        match body.get(name) {
            Some(Value::String(text)) => Ok(text.clone()),
            Some(other) => Err(ApiError::field(
                name,
                &format!("must be a string, not {}", crate::issuer::json_type(other)),
            )),
            None => Err(ApiError::field(name, "is required")),
        }
    };
    let user = state
        .accounts
        .add_user(
            state.issuer.storage(),
            &org.record.id,
            &text("email")?,
            &text("password")?,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "data": { "email": user.email, "orgId": user.org_id } })),
    )
        .into_response())
}

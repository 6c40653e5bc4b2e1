//! The issuer and verifier HTTP API (`/core/api/v1/programmatic/...`, DESIGN §4): JSON bodies,
//! an `x-api-key` per organisation, success as `{"data": ...}`, errors as
//! `{"error": {"code", "message"}}` with the message naming what was wrong. Also the public
//! documents that go with it: each organisation's `did:web` document and each template's
//! JSON Schema, and the admin route that creates organisations.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::handler::Handler;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::backend::IssuerBackend;
use crate::issuer::{Customer, Issuer, IssuerError, Org, Status, VerificationState};

mod auth;
mod dto;
mod error;

pub use self::auth::{Admin, Authenticated};
pub use self::dto::page_json;
pub use self::error::ApiError;

/// What the API's handlers share.
pub struct ApiState {
    /// The issuer side the handlers act on.
    pub issuer: Arc<Issuer<IssuerBackend>>,
    /// The bearer token `/admin/*` requires.
    pub admin_token: crate::admin::AdminToken,
    /// The console's users: `POST /admin/orgs` with an `email` adds the first.
    pub accounts: Arc<crate::console::Accounts>,
}

type Shared = State<Arc<ApiState>>;

/// Largest request body of the API.
const MAX_BODY: usize = 1 << 20;

/// The template routes (DESIGN §4).
pub const TEMPLATES_PATH: &str = "/core/api/v1/programmatic/credential/template";
/// The customer (onboarding) routes.
pub const CUSTOMERS_PATH: &str = "/core/api/v1/programmatic/customer";
/// The credential (issuance) routes.
pub const CREDENTIALS_PATH: &str = "/core/api/v1/programmatic/credential";
/// The verification routes.
pub const VERIFICATIONS_PATH: &str = "/core/api/v1/programmatic/verification";
/// The callback (webhook) routes.
pub const CALLBACK_PATH: &str = "/core/api/v1/programmatic/callback";

fn data(status: StatusCode, value: Value) -> Response {
    (status, Json(json!({ "data": value }))).into_response()
}

/// One route of the API: a method, a path (axum's syntax, as the OpenAPI document writes it)
/// and its handler.
struct Route {
    method: Method,
    path: String,
    handler: MethodRouter<Arc<ApiState>>,
}

fn route<H, T>(method: Method, path: impl Into<String>, handler: H) -> Route
where
    H: Handler<T, Arc<ApiState>>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("the API's methods are standard");
    Route {
        method,
        path: path.into(),
        handler: on(filter, handler),
    }
}

/// The API's routes: the router is built from this table, and [`route_table`] lists it.
fn routes() -> Vec<Route> {
    vec![
        route(Method::POST, TEMPLATES_PATH, create_template),
        route(Method::GET, TEMPLATES_PATH, list_templates),
        route(
            Method::GET,
            format!("{TEMPLATES_PATH}/{{id}}"),
            get_template,
        ),
        route(
            Method::DELETE,
            format!("{TEMPLATES_PATH}/{{id}}"),
            delete_template,
        ),
        route(Method::POST, CUSTOMERS_PATH, onboard),
        route(Method::GET, CUSTOMERS_PATH, list_customers),
        route(
            Method::GET,
            format!("{CUSTOMERS_PATH}/{{id}}"),
            get_customer,
        ),
        route(
            Method::POST,
            format!("{CUSTOMERS_PATH}/{{id}}/invitation"),
            resend_invitation,
        ),
        route(Method::POST, CREDENTIALS_PATH, offer),
        route(Method::GET, CREDENTIALS_PATH, list_credentials),
        route(Method::POST, format!("{CREDENTIALS_PATH}/batch"), batch),
        route(
            Method::GET,
            format!("{CREDENTIALS_PATH}/{{id}}"),
            get_credential,
        ),
        route(Method::PUT, CALLBACK_PATH, set_callback),
        route(Method::GET, CALLBACK_PATH, get_callback),
        route(
            Method::GET,
            format!("{CALLBACK_PATH}/events"),
            callback_events,
        ),
        route(Method::POST, VERIFICATIONS_PATH, create_verification),
        route(Method::GET, VERIFICATIONS_PATH, list_verifications),
        route(
            Method::GET,
            format!("{VERIFICATIONS_PATH}/{{id}}"),
            get_verification,
        ),
        route(Method::GET, "/openapi.json", openapi),
        route(Method::POST, "/admin/orgs", create_org),
        route(Method::GET, "/orgs/{id}/did.json", org_did_document),
        route(Method::GET, "/orgs/{id}/status/1", org_status_list),
        route(Method::GET, "/schemas/{id}", template_schema),
    ]
}

/// Every route of the API as (method, path), in the syntax of the OpenAPI document's paths:
/// what [`router`] serves, for checking the document against.
pub fn route_table() -> Vec<(Method, String)> {
    routes()
        .into_iter()
        .map(|route| (route.method, route.path))
        .collect()
}

/// The routes of the API.
pub fn router(state: Arc<ApiState>) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(&route.path, route.handler)
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Parses a JSON body, naming what is wrong with it.
fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if media_type.as_deref() != Some("application/json") {
        return Err(ApiError::unsupported_media_type(format!(
            "Content-Type must be application/json, not {}",
            media_type.as_deref().unwrap_or("(none)")
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(&format!("the body is not valid JSON: {e}")))
}

/// `page` and `pageSize` from a query, checked; `extra` are the other parameters allowed.
fn paging(
    query: &std::collections::HashMap<String, String>,
    extra: &[&str],
) -> Result<(usize, usize), ApiError> {
    let number = |name: &str, default: usize, max: usize| -> Result<usize, ApiError> {
        match query.get(name) {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::field(
                    name,
                    &format!("must be a whole number from 1 to {max}, not {text:?}"),
                )),
            },
        }
    };
    let allowed: Vec<&str> = ["page", "pageSize"].iter().chain(extra).copied().collect();
    if let Some(unknown) = query.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::field(
            unknown,
            &format!("is not a query parameter here ({})", allowed.join(", ")),
        ));
    }
    Ok((number("page", 1, 1_000_000)?, number("pageSize", 10, 100)?))
}

/// The listing filter `name` of a query, read by `parse`; `expected` names the values it takes.
fn filter<T>(
    query: &std::collections::HashMap<String, String>,
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
    expected: &str,
) -> Result<Option<T>, ApiError> {
    query
        .get(name)
        .map(|text| {
            parse(text)
                .ok_or_else(|| ApiError::field(name, &format!("must be {expected}, not {text:?}")))
        })
        .transpose()
}

async fn create_template(
    State(state): Shared,
    Authenticated(org): Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, &body)?;
    let template = state.issuer.create_template(&org, &body).await?;
    Ok(data(
        StatusCode::CREATED,
        state.issuer.template_json(&org, &template),
    ))
}

async fn list_templates(
    State(state): Shared,
    Authenticated(org): Authenticated,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (page, page_size) = paging(&query, &[])?;
    let (templates, total) = state.issuer.templates(&org, page, page_size).await?;
    let items = templates
        .iter()
        .map(|t| state.issuer.template_json(&org, t))
        .collect();
    Ok(data(
        StatusCode::OK,
        page_json(items, page, page_size, total),
    ))
}

async fn get_template(
    State(state): Shared,
    Authenticated(org): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let template = state.issuer.template_by_either_id(&org, &id).await?;
    Ok(data(
        StatusCode::OK,
        state.issuer.template_json(&org, &template),
    ))
}

async fn delete_template(
    State(state): Shared,
    Authenticated(org): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let template = state.issuer.template_by_either_id(&org, &id).await?;
    state
        .issuer
        .delete_template(&org, &template.template_id)
        .await?;
    Ok(data(StatusCode::OK, json!({ "isSuccess": true })))
}

async fn create_org(
    State(state): Shared,
    _: Admin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, &body)?;
    let name = match body.get("name") {
        Some(Value::String(name)) => name.as_str(),
        Some(other) => {
            return Err(ApiError::field(
                "name",
                &format!("must be a string, not {}", crate::issuer::json_type(other)),
            ))
        }
        None => return Err(ApiError::field("name", "is required")),
    };
    // With an `email` (and `password`), the organisation's first console user too: both
    // are checked before anything is created.
    let text = |field: &str| -> Result<Option<&str>, ApiError> {
        match body.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(other) => Err(ApiError::field(
                field,
                &format!("must be a string, not {}", crate::issuer::json_type(other)),
            )),
        }
    };
    let user = match (text("email")?, text("password")?) {
        (None, None) => None,
        (Some(email), Some(password)) => {
            let email = crate::console::normalise_email(email)?;
            crate::console::check_password(password)?;
            if state
                .accounts
                .user(state.issuer.storage(), &email)
                .await?
                .is_some()
            {
                return Err(IssuerError::conflict(&format!(
                    "a console user with the email {email} exists already"
                ))
                .into());
            }
            Some((email, password))
        }
        (Some(_), None) => return Err(ApiError::field("password", "is required with email")),
        (None, Some(_)) => return Err(ApiError::field("email", "is required with password")),
    };
    let (org, api_key) = state.issuer.create_org(name).await?;
    let mut answer = org_json(&org, Some(&api_key));
    if let Some((email, password)) = user {
        state
            .accounts
            .add_user(state.issuer.storage(), &org.record.id, &email, password)
            .await?;
        answer["userEmail"] = json!(email);
    }
    Ok(data(StatusCode::CREATED, answer))
}

/// An organisation as the API shows it; the API key only when it was just made.
pub fn org_json(org: &Org, api_key: Option<&str>) -> Value {
    let mut value = json!({
        "id": org.record.id,
        "name": org.record.name,
        "issuerDid": org.issuer_did,
        "didcommDid": org.didcomm_did,
    });
    if let Some(key) = api_key {
        value["apiKey"] = json!(key);
    }
    value
}

/// The organisation a path names.
pub(crate) async fn org_at(issuer: &Issuer<IssuerBackend>, id: &str) -> Result<Org, ApiError> {
    let not_found = || ApiError::not_found(&format!("no organisation has the id {id:?}"));
    if id.len() != 24 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    issuer.org(id).await?.ok_or_else(not_found)
}

async fn org_did_document(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let org = org_at(&state.issuer, &id).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/did+json")],
        Json(state.issuer.did_document(&org)),
    )
        .into_response())
}

async fn org_status_list(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let org = org_at(&state.issuer, &id).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/vc+ld+json")],
        Json(state.issuer.status_list(&org).await?),
    )
        .into_response())
}

async fn template_schema(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok((
        [(header::CONTENT_TYPE, "application/schema+json")],
        Json(state.issuer.template_schema(&id).await?),
    )
        .into_response())
}

async fn onboard(
    State(state): Shared,
    Authenticated(org): Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, &body)?;
    let (customer, links) = state.issuer.onboard(&org, &body).await?;
    Ok(data(StatusCode::CREATED, customer.to_api(&links)))
}

async fn list_customers(
    State(state): Shared,
    Authenticated(org): Authenticated,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (page, page_size) = paging(&query, &["status"])?;
    let status = filter(
        &query,
        "status",
        Status::parse,
        "Initiated, Invited or Onboarded",
    )?;
    let (customers, total) = state
        .issuer
        .customers(&org, status, page, page_size)
        .await?;
    let items = customers
        .iter()
        .map(|c| state.issuer.customer_json(c))
        .collect();
    Ok(data(
        StatusCode::OK,
        page_json(items, page, page_size, total),
    ))
}

async fn get_customer(
    State(state): Shared,
    Authenticated(org): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let customer = state.issuer.customer(&org, &id).await?;
    Ok(data(StatusCode::OK, state.issuer.customer_json(&customer)))
}

async fn resend_invitation(
    State(state): Shared,
    Authenticated(org): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let customer = state.issuer.resend(&org, &id).await?;
    Ok(data(StatusCode::OK, state.issuer.customer_json(&customer)))
}

async fn offer(
    State(state): Shared,
    Authenticated(org): Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, &body)?;
    let record = state.issuer.offer_to_customer(&org, &body).await?;
    Ok(data(StatusCode::CREATED, record.to_api()))
}

async fn list_credentials(
    State(state): Shared,
    Authenticated(org): Authenticated,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (page, page_size) = paging(&query, &["templateId", "customerId"])?;
    let all = state.issuer.credential_exchanges(&org).await?;
    let matching: Vec<_> = all
        .into_iter()
        .filter(|c| query.get("templateId").is_none_or(|t| &c.template_id == t))
        .filter(|c| {
            query
                .get("customerId")
                .is_none_or(|id| c.customer_id.as_ref() == Some(id))
        })
        .collect();
    let total = matching.len();
    let items = matching
        .iter()
        .skip((page - 1).saturating_mul(page_size))
        .take(page_size)
        .map(|c| c.to_api())
        .collect();
    Ok(data(
        StatusCode::OK,
        page_json(items, page, page_size, total),
    ))
}

async fn get_credential(
    State(state): Shared,
    Authenticated(org): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(data(
        StatusCode::OK,
        state.issuer.credential_exchange(&org, &id).await?.to_api(),
    ))
}

async fn batch(
    State(state): Shared,
    Authenticated(org): Authenticated,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    use crate::issuer::{rows_from_csv, rows_from_json};
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let rows = if media_type == "text/csv" {
        if let Some(unknown) = query.keys().find(|k| *k != "templateId") {
            return Err(ApiError::field(
                unknown,
                "is not a query parameter here (templateId)",
            ));
        }
        let template_id = query.get("templateId").ok_or_else(|| {
            ApiError::field("templateId", "is required as a query parameter with CSV")
        })?;
        state
            .issuer
            .template(&org, template_id)
            .await
            .map_err(|_| {
                ApiError::not_found(&format!(
                    "templateId: no template has the id {template_id:?}"
                ))
            })?;
        let text = std::str::from_utf8(&body)
            .map_err(|_| ApiError::bad_request("the CSV is not UTF-8"))?;
        rows_from_csv(text, template_id)?
    } else {
        rows_from_json(&json_body(&headers, &body)?)?
    };
    let outcomes = state.issuer.batch(&org, rows).await;
    Ok(data(StatusCode::OK, batch_report(outcomes)))
}

/// The per-row report of a batch: what became of each row, with the HTTP status and message
/// of a row that failed.
fn batch_report(outcomes: Vec<Result<(Customer, Value), IssuerError>>) -> Value {
    let mut report = Vec::with_capacity(outcomes.len());
    let mut succeeded = 0;
    for (index, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok((customer, links)) => {
                succeeded += 1;
                report.push(json!({
                    "row": index + 1,
                    "ok": true,
                    "customerId": customer.id,
                    "status": customer.status.as_str(),
                    "invitation": links["url"],
                }));
            }
            Err(error) => {
                let error = ApiError::from(error);
                report.push(json!({
                    "row": index + 1,
                    "ok": false,
                    "status": error.status.as_u16(),
                    "error": error.message,
                }))
            }
        }
    }
    json!({
        "total": report.len(),
        "succeeded": succeeded,
        "failed": report.len() - succeeded,
        "rows": report,
    })
}

async fn set_callback(
    State(state): Shared,
    Authenticated(org): Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, &body)?;
    let (config, secret) = state.issuer.set_callback(&org, &body).await?;
    let mut answer = json!({ "url": config.url, "signatureHeader": "X-Lanyard-Signature" });
    if let Some(secret) = secret {
        answer["secret"] = json!(secret);
    }
    Ok(data(StatusCode::OK, answer))
}

async fn get_callback(
    State(state): Shared,
    Authenticated(org): Authenticated,
) -> Result<Response, ApiError> {
    let config = state
        .issuer
        .callback(&org)
        .await?
        .ok_or_else(|| ApiError::not_found("no callback is configured"))?;
    Ok(data(StatusCode::OK, json!({ "url": config.url })))
}

async fn callback_events(
    State(state): Shared,
    Authenticated(org): Authenticated,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (page, page_size) = paging(&query, &[])?;
    let (events, total) = state.issuer.events(&org, page, page_size).await?;
    let items = events.iter().map(|e| e.to_api()).collect();
    Ok(data(
        StatusCode::OK,
        page_json(items, page, page_size, total),
    ))
}

/// The OpenAPI description of this API, kept in the repository at `agent/api/openapi.json`.
pub const OPENAPI: &str = include_str!("../../api/openapi.json");

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn create_verification(
    State(state): Shared,
    Authenticated(org): Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, &body)?;
    let (verification, links) = state.issuer.create_verification(&org, &body).await?;
    Ok(data(StatusCode::CREATED, verification.to_api(Some(links))))
}

async fn get_verification(
    State(state): Shared,
    Authenticated(org): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let verification = state.issuer.verification(&org, &id).await?;
    Ok(data(StatusCode::OK, verification.to_api(None)))
}

async fn list_verifications(
    State(state): Shared,
    Authenticated(org): Authenticated,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (page, page_size) = paging(&query, &["state"])?;
    let wanted = filter(
        &query,
        "state",
        VerificationState::parse,
        "pending, verified or failed",
    )?;
    let (verifications, total) = state
        .issuer
        .verifications(&org, wanted, page, page_size)
        .await?;
    let items = verifications.iter().map(|v| v.to_api(None)).collect();
    Ok(data(
        StatusCode::OK,
        page_json(items, page, page_size, total),
    ))
}

//! Settings: the callback URL and its signing secret (shown once, when made or rotated), the
//! recent callback deliveries, and the organisation's API keys (made here and shown once,
//! revoked here; the API takes any unrevoked one).

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::page::{render, ConsoleError, FieldErrors, Nav, NoticeQuery, Page};
use super::{ConsoleState, CsrfForm, Shared, SignedIn};
use crate::issuer::{iso_millis, IssuerError};

/// Callback deliveries shown.
const RECENT_EVENTS: usize = 20;

pub(super) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/console/settings", get(settings))
        .route("/console/settings/callback", post(set_callback))
        .route("/console/settings/api-keys", post(create_key))
        .route("/console/settings/api-keys/{id}/revoke", post(revoke_key))
}

struct KeyRow {
    id: String,
    name: String,
    created: String,
    created_by: String,
}

struct EventRow {
    id: String,
    kind: String,
    created: String,
    outcome: &'static str,
    attempts: usize,
    last: String,
}

#[derive(Template)]
#[template(path = "console/settings.html")]
struct SettingsPage {
    page: Page,
    callback_url: String,
    callback_errors: FieldErrors,
    new_secret: Option<String>,
    events: Vec<EventRow>,
    keys: Vec<KeyRow>,
    key_errors: FieldErrors,
    key_name: String,
    new_key: Option<(String, String)>,
}

/// What a settings page shows beyond what is stored.
#[derive(Default)]
struct Shown {
    notice: Option<&'static str>,
    callback_url: Option<String>,
    callback_errors: FieldErrors,
    new_secret: Option<String>,
    key_errors: FieldErrors,
    key_name: String,
    new_key: Option<(String, String)>,
}

async fn settings_page(
    state: &ConsoleState,
    user: &SignedIn,
    shown: Shown,
) -> Result<SettingsPage, ConsoleError> {
    let issuer = &state.issuer;
    let stored_url = issuer.callback(&user.org).await?.map(|c| c.url);
    let (events, _) = issuer.events(&user.org, 1, RECENT_EVENTS).await?;
    let keys = issuer.api_keys(&user.org).await?;
    let mut page = user.page(Nav::Settings);
    if let Some(notice) = shown.notice {
        page = page.with_notice(notice);
    }
    Ok(SettingsPage {
        page,
        callback_url: shown.callback_url.or(stored_url).unwrap_or_default(),
        callback_errors: shown.callback_errors,
        new_secret: shown.new_secret,
        events: events
            .iter()
            .map(|e| EventRow {
                id: e.id.clone(),
                kind: e.type_.clone(),
                created: iso_millis(e.created_ms),
                outcome: if e.delivered {
                    "delivered"
                } else if e.next_attempt_ms.is_some() {
                    "waiting"
                } else {
                    "given up"
                },
                attempts: e.attempts.len(),
                last: e
                    .attempts
                    .last()
                    .map_or_else(String::new, |a| match (&a.status, &a.error) {
                        (Some(status), _) => format!("HTTP {status}"),
                        (None, Some(error)) => error.clone(),
                        (None, None) => String::new(),
                    }),
            })
            .collect(),
        keys: keys
            .iter()
            .map(|k| KeyRow {
                id: k.id.clone(),
                name: k.name.clone(),
                created: iso_millis(k.created_ms)[..10].to_string(),
                created_by: k.created_by.clone().unwrap_or_else(|| "—".into()),
            })
            .collect(),
        key_errors: shown.key_errors,
        key_name: shown.key_name,
        new_key: shown.new_key,
    })
}

async fn settings(
    State(state): Shared,
    user: SignedIn,
    Query(query): Query<NoticeQuery>,
) -> Result<Response, ConsoleError> {
    let notice = match query.notice.as_deref() {
        Some("revoked") => Some("The API key was revoked: the API refuses it from now on."),
        _ => None,
    };
    render(
        &settings_page(
            &state,
            &user,
            Shown {
                notice,
                ..Shown::default()
            },
        )
        .await?,
    )
}

/// The settings page with what `shown` adds (a form shown again with its errors is a 200,
/// as a browser reports a 4xx page as a failed load).
async fn answer(
    state: &ConsoleState,
    user: &SignedIn,
    shown: Shown,
) -> Result<Response, ConsoleError> {
    render(&settings_page(state, user, shown).await?)
}

async fn set_callback(
    State(state): Shared,
    CsrfForm { user, form }: CsrfForm<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let url = form
        .get("url")
        .map(|u| u.trim().to_string())
        .unwrap_or_default();
    let rotate = form.get("rotateSecret").is_some_and(|v| v == "on");
    let body = json!({ "url": url, "rotateSecret": rotate });
    match state.issuer.set_callback(&user.org, &body).await {
        Ok((config, secret)) => {
            let shown = Shown {
                notice: Some("The callback URL was saved."),
                callback_url: Some(config.url),
                new_secret: secret,
                ..Shown::default()
            };
            answer(&state, &user, shown).await
        }
        Err(error @ (IssuerError::InvalidField { .. } | IssuerError::BadRequest(_))) => {
            let shown = Shown {
                callback_url: Some(url),
                callback_errors: FieldErrors::from_issuer(&error, |f| {
                    (f == "url").then(|| "url".to_string())
                }),
                ..Shown::default()
            };
            answer(&state, &user, shown).await
        }
        Err(other) => Err(other.into()),
    }
}

async fn create_key(
    State(state): Shared,
    CsrfForm { user, form }: CsrfForm<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let name = form.get("name").cloned().unwrap_or_default();
    match state
        .issuer
        .create_api_key(&user.org, &name, Some(&user.email))
        .await
    {
        Ok((key, secret)) => {
            let shown = Shown {
                notice: Some("The API key was made. Copy it now: it is not shown again."),
                new_key: Some((key.name, secret)),
                ..Shown::default()
            };
            answer(&state, &user, shown).await
        }
        Err(error @ (IssuerError::InvalidField { .. } | IssuerError::Conflict(_))) => {
            let shown = Shown {
                key_errors: FieldErrors::from_issuer(&error, |f| {
                    (f == "name").then(|| "name".to_string())
                }),
                key_name: name.chars().take(100).collect(),
                ..Shown::default()
            };
            answer(&state, &user, shown).await
        }
        Err(other) => Err(other.into()),
    }
}

async fn revoke_key(
    State(state): Shared,
    Path(id): Path<String>,
    CsrfForm { user, .. }: CsrfForm<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    state.issuer.revoke_api_key(&user.org, &id).await?;
    Ok(Redirect::to("/console/settings?notice=revoked").into_response())
}

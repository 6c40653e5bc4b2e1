//! Batch issuance pages: upload a CSV of customers and their credential values for one
//! template (a multipart form), watch the progress bar and the per-row report fill while the
//! rows are worked through (`issuer::batches`, in the background, on any agent of the store),
//! and download the failed rows as a CSV to fix and upload again.
//!
//! - `GET /console/batches`: the upload form and the organisation's recent batches;
//! - `POST /console/batches`: creates a batch (multipart: `_csrf`, `templateId`, `file`);
//! - `GET /console/batches/{id}`: its progress and per-row report, kept live by
//!   `/console/static/batch.js` polling `GET /console/batches/{id}/progress?after=N`;
//! - `GET /console/batches/{id}/failures.csv`: the failed rows and why.

use std::sync::Arc;

use askama::Template;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::page::{render, ConsoleError, FieldErrors, Nav, Page};
use super::{ConsoleState, SignedIn};
use crate::issuer::{iso_millis, MAX_BATCH_CSV_BYTES};
use crate::issuer::{Batch, BatchRow, BatchState, IssuerError, Template as CredentialTemplate};

type Shared = State<Arc<ConsoleState>>;

/// The page's script.
const JS: &str = include_str!("static/batch.js");
/// The page's own styles.
const CSS: &str = include_str!("static/batch.css");
/// Rows one progress answer carries at most (the script asks again for more).
const PROGRESS_ROWS: usize = 200;
/// Templates the upload form offers (the newest first).
const TEMPLATE_CHOICES: usize = 200;
/// What a multipart upload may carry beyond its CSV (the other fields, the parts' headers).
const FORM_OVERHEAD: usize = 64 * 1024;

pub(super) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route(
            "/console/batches",
            get(list)
                .post(upload)
                .layer(DefaultBodyLimit::max(MAX_BATCH_CSV_BYTES + FORM_OVERHEAD)),
        )
        .route("/console/batches/{id}", get(show))
        .route("/console/batches/{id}/progress", get(progress))
        .route("/console/batches/{id}/failures.csv", get(failures))
        .route("/console/static/batch.js", get(script))
        .route("/console/static/batch.css", get(style))
}

/// A batch as its row in the list shows it.
struct BatchLine {
    id: String,
    file_name: String,
    created: String,
    state: &'static str,
    processed: usize,
    total: usize,
    succeeded: usize,
    failed: usize,
}

impl From<&Batch> for BatchLine {
    fn from(batch: &Batch) -> BatchLine {
        BatchLine {
            id: batch.id.clone(),
            file_name: batch.file_name.clone(),
            created: when(batch.created_ms),
            state: state_label(batch.state),
            processed: batch.processed,
            total: batch.total,
            succeeded: batch.succeeded,
            failed: batch.failed,
        }
    }
}

fn state_label(state: BatchState) -> &'static str {
    match state {
        BatchState::Running => "Running",
        BatchState::Done => "Done",
    }
}

#[derive(Template)]
#[template(path = "console/batch_list.html")]
struct ListPage {
    page: Page,
    templates: Vec<(String, String)>,
    chosen: String,
    errors: FieldErrors,
    batches: Vec<BatchLine>,
    columns: String,
}

#[derive(Template)]
#[template(path = "console/batch_show.html")]
struct ShowPage {
    page: Page,
    batch: BatchLine,
    template_name: String,
    percent: usize,
    running: bool,
    rows: Vec<BatchRow>,
}

/// The templates of `org` the form offers, `(id, name)`.
async fn template_choices(
    state: &ConsoleState,
    user: &SignedIn,
) -> Result<Vec<(String, String)>, ConsoleError> {
    let (templates, _) = state
        .issuer
        .templates(&user.org, 1, TEMPLATE_CHOICES)
        .await?;
    Ok(templates
        .into_iter()
        .map(|t: CredentialTemplate| (t.template_id, t.spec.name))
        .collect())
}

async fn list_page(
    state: &ConsoleState,
    user: &SignedIn,
    chosen: String,
    errors: FieldErrors,
) -> Result<ListPage, ConsoleError> {
    let batches = state.issuer.batches(&user.org).await?;
    Ok(ListPage {
        page: user.page(Nav::Batches),
        templates: template_choices(state, user).await?,
        chosen,
        errors,
        batches: batches.iter().map(BatchLine::from).collect(),
        columns: "name, medium, email, phoneNumber, organizationLabel".into(),
    })
}

async fn list(State(state): Shared, user: SignedIn) -> Result<Response, ConsoleError> {
    render(&list_page(&state, &user, String::new(), FieldErrors::new()).await?)
}

/// What the upload form carried.
#[derive(Default)]
struct Upload {
    csrf: Option<String>,
    template_id: String,
    file_name: String,
    file: Option<Vec<u8>>,
}

async fn read_upload(mut multipart: Multipart) -> Result<Upload, ConsoleError> {
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        ConsoleError::BadRequest(format!("the upload cannot be read: {}", e.body_text()))
    };
    let mut upload = Upload::default();
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        match field.name().unwrap_or_default() {
            "_csrf" => upload.csrf = Some(field.text().await.map_err(unreadable)?),
            "templateId" => upload.template_id = field.text().await.map_err(unreadable)?,
            "file" => {
                upload.file_name = field.file_name().unwrap_or("upload.csv").to_string();
                upload.file = Some(field.bytes().await.map_err(unreadable)?.to_vec());
            }
            // Nothing else is read (a field the form does not have is skipped).
            _ => {}
        }
    }
    Ok(upload)
}

/// The form's errors for a refusal: beside the template or the file when it is about one.
fn upload_errors(error: &IssuerError) -> FieldErrors {
    let mut errors = FieldErrors::new();
    let message = error.to_string();
    if message.starts_with("templateId") {
        errors.add(
            "templateId",
            message.replacen("templateId", "The template", 1),
        );
    } else if let Some(rest) = message.strip_prefix("file") {
        errors.add("file", format!("The file{rest}"));
    } else {
        errors.form = Some(message);
    }
    errors
}

async fn upload(
    State(state): Shared,
    user: SignedIn,
    multipart: Multipart,
) -> Result<Response, ConsoleError> {
    let upload = read_upload(multipart).await?;
    user.check_csrf(upload.csrf.as_deref())?;
    let mut errors = FieldErrors::new();
    if upload.template_id.trim().is_empty() {
        errors.add(
            "templateId",
            "Choose the template the credentials are issued from",
        );
    }
    let file = upload.file.filter(|f| !f.is_empty());
    if file.is_none() {
        errors.add(
            "file",
            "Choose a CSV file with a header row and one customer a row",
        );
    }
    let created = match (errors.is_empty(), file) {
        (true, Some(file)) => Some(
            state
                .issuer
                .create_batch(
                    &user.org,
                    upload.template_id.trim(),
                    &upload.file_name,
                    &file,
                )
                .await,
        ),
        _ => None,
    };
    let (status, errors) = match created {
        Some(Ok(batch)) => {
            return Ok(Redirect::to(&format!("/console/batches/{}", batch.id)).into_response())
        }
        Some(Err(IssuerError::Internal(message))) => {
            return Err(IssuerError::Internal(message).into())
        }
        Some(Err(error)) => (
            crate::api::ApiError::from(error.clone()).status,
            upload_errors(&error),
        ),
        None => (StatusCode::UNPROCESSABLE_ENTITY, errors),
    };
    let page = list_page(&state, &user, upload.template_id, errors).await?;
    Ok((status, Html(page.render()?)).into_response())
}

async fn show(
    State(state): Shared,
    user: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let batch = state.issuer.batch_job(&user.org, &id).await?;
    let rows = state
        .issuer
        .batch_rows(&batch, 0, crate::issuer::MAX_BATCH_ROWS)
        .await?;
    let template_name = state
        .issuer
        .template(&user.org, &batch.template_id)
        .await
        .map(|t| t.spec.name)
        .unwrap_or_else(|_| format!("{} (deleted)", batch.template_id));
    render(&ShowPage {
        page: user.page(Nav::Batches),
        percent: batch.percent(),
        running: batch.state == BatchState::Running,
        batch: BatchLine::from(&batch),
        template_name,
        rows,
    })
}

#[derive(Deserialize)]
struct ProgressQuery {
    after: Option<usize>,
}

/// One row of the report as the script adds it.
fn row_json(row: &BatchRow) -> serde_json::Value {
    json!({
        "row": row.row,
        "ok": row.ok,
        "name": row.name,
        "customerId": row.customer_id,
        "status": row.customer_status,
        "error": row.error,
    })
}

async fn progress(
    State(state): Shared,
    user: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<ProgressQuery>,
) -> Result<Response, ConsoleError> {
    let batch = state.issuer.batch_job(&user.org, &id).await?;
    let after = query.after.unwrap_or(0).min(batch.total);
    let rows = state
        .issuer
        .batch_rows(&batch, after, PROGRESS_ROWS)
        .await?;
    Ok(Json(json!({
        "state": match batch.state { BatchState::Running => "running", BatchState::Done => "done" },
        "label": state_label(batch.state),
        "processed": batch.processed,
        "total": batch.total,
        "succeeded": batch.succeeded,
        "failed": batch.failed,
        "percent": batch.percent(),
        "rows": rows.iter().map(row_json).collect::<Vec<_>>(),
    }))
    .into_response())
}

async fn failures(
    State(state): Shared,
    user: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let batch = state.issuer.batch_job(&user.org, &id).await?;
    let csv = state.issuer.batch_failures_csv(&batch).await?;
    let disposition = format!("attachment; filename=\"failures-{}.csv\"", batch.id);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv,
    )
        .into_response())
}

/// A moment as the pages show it: `2026-12-01 20:33 UTC`.
pub(super) fn when(ms: u64) -> String {
    let iso = iso_millis(ms);
    format!(
        "{} UTC",
        iso.get(..16).unwrap_or(&iso).replacen('T', " ", 1)
    )
}

/// A script or stylesheet of a page, compiled in.
pub(super) fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_moment_reads_to_the_minute_in_utc() {
        // 2026-12-01T20:33:11.543Z
        assert_eq!(super::when(1_796_157_191_543), "2026-12-01 20:33 UTC");
    }
}

//! The credential templates pages (`/console/templates`): the list, the create form with the
//! seed's fields (name, issuer, type, logo URL, expiration, custom fields with their
//! descriptions, the limit) whose errors show beside their fields, a template's page, and its
//! deletion with the consequence spelled out (the credentials issued from it are revoked and
//! leave their holders' wallets) behind a confirmation step. Every change goes through the
//! same issuer methods as the JSON API (`Issuer::create_template`, `Issuer::delete_template`),
//! from the same request body.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::page::{render, ConsoleError, FieldErrors, Nav, Page};
use super::{ConsoleState, CsrfForm, SignedIn};
use crate::issuer::{iso_millis, IssuerError, Template, MAX_CUSTOM_FIELDS, STANDARD_FIELDS};

type Shared = State<Arc<ConsoleState>>;

/// Custom field rows the create form shows (its script adds more, up to the template limit).
const BLANK_ROWS: usize = 5;
/// Templates one list page shows.
const PAGE_SIZE: usize = 20;

pub(super) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new()
        .route("/console/templates", get(list).post(create))
        .route("/console/templates/new", get(new_form))
        .route("/console/templates/{id}", get(show))
        .route(
            "/console/templates/{id}/delete",
            get(confirm_delete).post(delete),
        )
        .route("/console/static/templates.js", get(script))
        .route("/console/static/templates.css", get(stylesheet))
}

/// One custom field row of the form.
struct FieldRow {
    name: String,
    description: String,
}

/// What the create form holds (as typed, to show again beside the errors).
struct TemplateForm {
    template_name: String,
    credential_issuer: String,
    credential_type: String,
    logo_url: String,
    credential_expiration: String,
    number_of_credentials: String,
    rows: Vec<FieldRow>,
}

impl TemplateForm {
    fn blank(org_name: &str) -> TemplateForm {
        TemplateForm {
            template_name: String::new(),
            credential_issuer: org_name.to_string(),
            credential_type: String::new(),
            logo_url: String::new(),
            credential_expiration: String::new(),
            number_of_credentials: String::new(),
            rows: (0..BLANK_ROWS)
                .map(|_| FieldRow {
                    name: String::new(),
                    description: String::new(),
                })
                .collect(),
        }
    }

    /// The form from posted pairs: `field_name_<i>` / `field_description_<i>` are the rows.
    fn read(pairs: &[(String, String)]) -> Result<TemplateForm, ConsoleError> {
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
                .unwrap_or_default()
        };
        let mut rows = Vec::new();
        for index in 0..MAX_CUSTOM_FIELDS + BLANK_ROWS {
            let (name_key, description_key) = (
                format!("field_name_{index}"),
                format!("field_description_{index}"),
            );
            if !pairs
                .iter()
                .any(|(key, _)| *key == name_key || *key == description_key)
            {
                continue;
            }
            rows.push(FieldRow {
                name: get(&name_key),
                description: get(&description_key),
            });
        }
        let posted_rows = pairs
            .iter()
            .filter(|(key, _)| key.starts_with("field_name_"))
            .count();
        if posted_rows > rows.len() {
            return Err(ConsoleError::BadRequest(format!(
                "the form has custom field rows beyond the {MAX_CUSTOM_FIELDS} a template may have"
            )));
        }
        Ok(TemplateForm {
            template_name: get("templateName"),
            credential_issuer: get("credentialIssuer"),
            credential_type: get("credentialType"),
            logo_url: get("logoURL"),
            credential_expiration: get("credentialExpiration"),
            number_of_credentials: get("numberOfCredentials"),
            rows,
        })
    }

    /// The rows a person filled in (a name or a description), with their row index.
    fn filled_rows(&self) -> Vec<(usize, &FieldRow)> {
        self.rows
            .iter()
            .enumerate()
            .filter(|(_, row)| !row.name.trim().is_empty() || !row.description.trim().is_empty())
            .collect()
    }

    /// The API's create request for this form, or the errors of what the form alone can
    /// tell (a number that is not one).
    fn request(&self) -> Result<Value, FieldErrors> {
        let mut body = Map::new();
        body.insert("templateName".into(), json!(self.template_name));
        body.insert("credentialIssuer".into(), json!(self.credential_issuer));
        body.insert("credentialType".into(), json!(self.credential_type));
        body.insert("logoURL".into(), json!(self.logo_url));
        let expiration = self.credential_expiration.trim();
        body.insert(
            "credentialExpiration".into(),
            if expiration.is_empty() {
                Value::Null
            } else {
                json!(expiration)
            },
        );
        let rows = self.filled_rows();
        body.insert(
            "customFields".into(),
            json!(rows.iter().map(|(_, r)| r.name.trim()).collect::<Vec<_>>()),
        );
        body.insert(
            "descriptions".into(),
            json!(rows
                .iter()
                .map(|(_, r)| r.description.trim())
                .collect::<Vec<_>>()),
        );
        let limit = self.number_of_credentials.trim();
        let limit = if limit.is_empty() {
            Value::Null
        } else {
            match limit.parse::<u64>() {
                Ok(n) => json!(n),
                Err(_) => {
                    let mut errors = FieldErrors::new();
                    errors.add(
                        "numberOfCredentials",
                        format!(
                            "Limit {limit:?} is not a whole number; leave it empty for no limit"
                        ),
                    );
                    return Err(errors);
                }
            }
        };
        body.insert("numberOfCredentials".into(), limit);
        Ok(Value::Object(body))
    }

    /// The form field an API error names: `customFields[i]` and `descriptions[i]` are the
    /// i-th filled row's inputs.
    fn field_of(&self, api_field: &str) -> Option<String> {
        let row_input = |prefix: &str, input: &str| -> Option<String> {
            let index: usize = api_field
                .strip_prefix(prefix)?
                .strip_suffix(']')?
                .parse()
                .ok()?;
            let (row, _) = *self.filled_rows().get(index)?;
            Some(format!("{input}_{row}"))
        };
        match api_field {
            "templateName"
            | "credentialIssuer"
            | "credentialType"
            | "logoURL"
            | "credentialExpiration"
            | "numberOfCredentials" => Some(api_field.to_string()),
            // Both lists are checked as a whole: the first row's inputs carry it.
            "customFields" => Some(format!("field_name_{}", self.first_row())),
            "descriptions" => Some(format!("field_description_{}", self.first_row())),
            _ => row_input("customFields[", "field_name")
                .or_else(|| row_input("descriptions[", "field_description")),
        }
    }

    /// The issuer's refusal of `api_field` beside the form's field, in the form's words: the
    /// field's label, then what is wrong (a row's error says only what is wrong, beside it).
    fn errors(&self, api_field: &str, problem: &str) -> FieldErrors {
        let mut errors = FieldErrors::new();
        let label = match api_field {
            "templateName" => "Template name",
            "credentialIssuer" => "Issuer",
            "credentialType" => "Credential type",
            "logoURL" => "Logo URL",
            "credentialExpiration" => "Expiration",
            "numberOfCredentials" => "Limit",
            "customFields" => "Custom fields",
            "descriptions" => "Descriptions",
            _ => "",
        };
        let message = if label.is_empty() {
            let mut chars = problem.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().collect::<String>() + chars.as_str())
                .unwrap_or_default()
        } else {
            format!("{label} {problem}")
        };
        match self.field_of(api_field) {
            Some(field) => errors.add(&field, message),
            None => errors.form = Some(format!("{api_field} {problem}")),
        }
        errors
    }

    fn first_row(&self) -> usize {
        self.filled_rows().first().map_or(0, |(index, _)| *index)
    }
}

#[derive(askama::Template)]
#[template(path = "console/templates_list.html")]
struct ListPage {
    page: Page,
    templates: Vec<Template>,
    number: usize,
    pages: usize,
    total: usize,
}

#[derive(askama::Template)]
#[template(path = "console/templates_new.html")]
struct NewPage {
    page: Page,
    form: TemplateForm,
    errors: FieldErrors,
    max_fields: usize,
    standard: Vec<(&'static str, &'static str)>,
}

#[derive(askama::Template)]
#[template(path = "console/templates_show.html")]
struct ShowPage {
    page: Page,
    template: Template,
    fields: Vec<(String, String, bool)>,
    created: String,
    schema_url: String,
}

#[derive(askama::Template)]
#[template(path = "console/templates_delete.html")]
struct DeletePage {
    page: Page,
    template: Template,
    errors: FieldErrors,
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<usize>,
    created: Option<String>,
    deleted: Option<String>,
}

async fn list(
    State(state): Shared,
    user: SignedIn,
    Query(query): Query<PageQuery>,
) -> Result<Response, ConsoleError> {
    let number = query.page.unwrap_or(1).clamp(1, 1_000_000);
    let (templates, total) = state.issuer.templates(&user.org, number, PAGE_SIZE).await?;
    let mut page = user.page(Nav::Templates);
    if query.deleted.is_some() {
        page = page.with_notice(
            "The template was deleted: its credentials are revoked and their holders' wallets \
             were told to remove them.",
        );
    }
    render(&ListPage {
        page,
        templates,
        number,
        pages: total.div_ceil(PAGE_SIZE).max(1),
        total,
    })
}

fn new_page(user: &SignedIn, form: TemplateForm, errors: FieldErrors) -> NewPage {
    NewPage {
        page: user.page(Nav::Templates),
        form,
        errors,
        max_fields: MAX_CUSTOM_FIELDS,
        standard: STANDARD_FIELDS
            .iter()
            .map(|(name, description, _)| (*name, *description))
            .collect(),
    }
}

async fn new_form(user: SignedIn) -> Result<Response, ConsoleError> {
    let form = TemplateForm::blank(&user.org.record.name);
    render(&new_page(&user, form, FieldErrors::new()))
}

/// The form again with its errors beside the fields. Answered 200, as the page a person
/// reads next (a browser reports an error status on a page load as a failed resource).
fn refused<T: askama::Template>(page: &T) -> Result<Response, ConsoleError> {
    render(page)
}

async fn create(
    State(state): Shared,
    CsrfForm { user, form }: CsrfForm<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    let form = TemplateForm::read(&form)?;
    let request = match form.request() {
        Ok(request) => request,
        Err(errors) => return refused(&new_page(&user, form, errors)),
    };
    match state.issuer.create_template(&user.org, &request).await {
        Ok(template) => Ok(Redirect::to(&format!(
            "/console/templates/{}?created=1",
            template.object_id
        ))
        .into_response()),
        Err(IssuerError::InvalidField { field, problem }) => {
            let errors = form.errors(&field, &problem);
            refused(&new_page(&user, form, errors))
        }
        Err(error) => Err(error.into()),
    }
}

async fn template_of(
    state: &ConsoleState,
    user: &SignedIn,
    id: &str,
) -> Result<Template, ConsoleError> {
    Ok(state.issuer.template_by_either_id(&user.org, id).await?)
}

async fn show(
    State(state): Shared,
    user: SignedIn,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, ConsoleError> {
    let template = template_of(&state, &user, &id).await?;
    let mut page = user.page(Nav::Templates);
    if query.created.is_some() {
        page = page.with_notice("The template was created.");
    }
    render(&ShowPage {
        page,
        fields: template.fields(),
        created: iso_millis(template.created_ms),
        schema_url: format!(
            "{}/schemas/{}",
            state.issuer.public_url(),
            template.template_id
        ),
        template,
    })
}

async fn confirm_delete(
    State(state): Shared,
    user: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let template = template_of(&state, &user, &id).await?;
    render(&DeletePage {
        page: user.page(Nav::Templates),
        template,
        errors: FieldErrors::new(),
    })
}

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    confirm: Option<String>,
}

async fn delete(
    State(state): Shared,
    Path(id): Path<String>,
    CsrfForm { user, form }: CsrfForm<DeleteForm>,
) -> Result<Response, ConsoleError> {
    let template = template_of(&state, &user, &id).await?;
    if form.confirm.as_deref() != Some("yes") {
        let mut errors = FieldErrors::new();
        errors.add(
            "confirm",
            "Tick the box to confirm that the holders lose these credentials.",
        );
        return refused(&DeletePage {
            page: user.page(Nav::Templates),
            template,
            errors,
        });
    }
    state
        .issuer
        .delete_template(&user.org, &template.template_id)
        .await?;
    Ok(Redirect::to("/console/templates?deleted=1").into_response())
}

/// A file of a page module compiled in, served as `content_type` (cached a few minutes).
pub(super) fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, content_type),
            (axum::http::header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// The templates pages' stylesheet (the custom field rows).
async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("static/templates.css"),
    )
}

/// The create form's script: adds custom field rows.
async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("static/templates.js"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn filled_rows_become_the_lists_and_errors_point_at_their_row() {
        let form = TemplateForm::read(&pairs(&[
            ("templateName", "Gym"),
            ("field_name_0", ""),
            ("field_description_0", ""),
            ("field_name_1", "level"),
            ("field_description_1", "Level"),
            ("field_name_2", "bad name"),
            ("field_description_2", "Oops"),
            ("numberOfCredentials", ""),
        ]))
        .unwrap();
        let request = form.request().unwrap();
        assert_eq!(request["customFields"], json!(["level", "bad name"]));
        assert_eq!(request["descriptions"], json!(["Level", "Oops"]));
        assert_eq!(request["numberOfCredentials"], Value::Null);
        assert_eq!(request["credentialExpiration"], Value::Null);
        assert_eq!(
            form.field_of("customFields[1]").as_deref(),
            Some("field_name_2")
        );
        assert_eq!(
            form.field_of("descriptions[0]").as_deref(),
            Some("field_description_1")
        );
        assert_eq!(form.field_of("unknown"), None);
        let errors = form.errors("customFields[1]", "\"bad name\" is not a field name");
        assert_eq!(
            errors.get("field_name_2"),
            Some("\"bad name\" is not a field name")
        );
        let errors = form.errors("logoURL", "must be an http(s) URL");
        assert_eq!(
            errors.get("logoURL"),
            Some("Logo URL must be an http(s) URL")
        );
    }

    #[test]
    fn a_limit_that_is_no_number_is_refused_beside_its_field() {
        let form = TemplateForm::read(&pairs(&[("numberOfCredentials", "ten")])).unwrap();
        let errors = form.request().unwrap_err();
        assert_eq!(
            errors.get("numberOfCredentials"),
            Some("Limit \"ten\" is not a whole number; leave it empty for no limit")
        );
    }
}

//! Issuing through the API: an offer to an onboarded customer on request, batch issuance (a
//! JSON array of onboarding requests, or CSV rows of customers and their credential values,
//! each onboarded with auto-issue) with a per-row report, and the exchanges' state.

use serde_json::{json, Map, Value};

use super::customers::{check_values, Status};
use super::exchange::{Change, IssuedCredential, CREDENTIALS};
use super::store::{IssuerStorage, IssuerStorageExt};
use super::templates::{json_type, MAX_CUSTOM_FIELDS, STANDARD_FIELDS};
use super::time::iso_millis;
use super::{ApiError, Issuer, Org};

/// Most rows one batch may hold.
pub const MAX_BATCH_ROWS: usize = 1000;

/// The customer columns of a batch CSV; every other column is a credential field.
const CUSTOMER_COLUMNS: [&str; 5] = [
    "name",
    "medium",
    "email",
    "phoneNumber",
    "organizationLabel",
];

/// The most columns a batch CSV can usefully have: the customer columns and every field a
/// template can have. A wider header is refused before its names are compared.
const MAX_CSV_COLUMNS: usize = CUSTOMER_COLUMNS.len() + STANDARD_FIELDS.len() + MAX_CUSTOM_FIELDS;

impl IssuedCredential {
    /// The exchange as the API shows it.
    pub fn to_api(&self) -> Value {
        json!({
            "id": self.id,
            "templateId": self.template_id,
            "customerId": self.customer_id,
            "holderDid": self.holder_did,
            "state": self.state,
            "values": self.values,
            "statusListIndex": self.status_index,
            "credential": self.credential,
            "problem": self.problem,
            "dateCreated": iso_millis(self.created_ms),
            "dateUpdated": iso_millis(self.updated_ms),
        })
    }
}

fn required_string<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str, ApiError> {
    match body.get(field) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.trim()),
        Some(Value::String(_)) => Err(ApiError::field(field, "must not be empty")),
        None | Some(Value::Null) => Err(ApiError::field(field, "is required")),
        Some(other) => Err(ApiError::field(
            field,
            &format!("must be a string, not {}", json_type(other)),
        )),
    }
}

impl<S: IssuerStorage> Issuer<S> {
    /// Offers a credential to an onboarded customer: `{customerId, templateId, values}`.
    pub async fn offer_to_customer(
        &self,
        org: &Org,
        body: &Value,
    ) -> Result<IssuedCredential, ApiError> {
        let Value::Object(body) = body else {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        };
        if let Some(unknown) = body
            .keys()
            .find(|k| !["customerId", "templateId", "values"].contains(&k.as_str()))
        {
            return Err(ApiError::field(
                unknown,
                "is not an issuance field (customerId, templateId, values)",
            ));
        }
        let customer_id = required_string(body, "customerId")?;
        let template_id = required_string(body, "templateId")?;
        let customer = self.customer(org, customer_id).await.map_err(|_| {
            ApiError::not_found(&format!(
                "customerId: no customer has the id {customer_id:?}"
            ))
        })?;
        let template = self.template(org, template_id).await.map_err(|_| {
            ApiError::not_found(&format!(
                "templateId: no template has the id {template_id:?}"
            ))
        })?;
        let values = check_values(
            &template,
            body.get("values").unwrap_or(&json!({})),
            "values",
        )?;
        let holder = match (&customer.status, &customer.connection_did) {
            (Status::Onboarded, Some(did)) => did.clone(),
            _ => {
                return Err(ApiError::conflict(&format!(
                    "customerId: customer {customer_id} is {} and has no wallet connected yet",
                    customer.status.as_str()
                )))
            }
        };
        if !template.has_room() {
            return Err(ApiError::conflict(&format!(
                "templateId: template {template_id} has issued its numberOfCredentials ({})",
                template.spec.number_of_credentials.unwrap_or_default()
            )));
        }
        let mut change = Change::default();
        let record = self
            .offer_into(
                &mut change,
                org,
                &template,
                &holder,
                Some(&customer.id),
                &values,
            )
            .await?;
        self.commit(change).await?;
        Ok(record)
    }

    /// A credential exchange of `org` by credential id.
    pub async fn credential_exchange(
        &self,
        org: &Org,
        id: &str,
    ) -> Result<IssuedCredential, ApiError> {
        self.credential_exchanges(org)
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| ApiError::not_found(&format!("no credential has the id {id:?}")))
    }

    /// Every credential exchange of `org`, oldest first.
    pub async fn credential_exchanges(&self, org: &Org) -> Result<Vec<IssuedCredential>, ApiError> {
        let mut all: Vec<IssuedCredential> = self
            .storage
            .scan_json(CREDENTIALS, &format!("{}/", org.record.id), 0, usize::MAX)
            .await?;
        all.sort_by_key(|c| c.created_ms);
        Ok(all)
    }

    /// Batch issuance: each row onboards a customer with auto-issue. `rows` are onboarding
    /// request bodies (from a JSON array, or built from CSV); each is handled on its own, and
    /// the report says for each what became of it.
    pub async fn batch(&self, org: &Org, rows: Vec<Result<Value, ApiError>>) -> Value {
        let mut report = Vec::with_capacity(rows.len());
        let mut succeeded = 0;
        for (index, row) in rows.into_iter().enumerate() {
            let outcome = match row {
                Ok(body) => self.onboard(org, &body).await,
                Err(error) => Err(error),
            };
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
                Err(error) => report.push(json!({
                    "row": index + 1,
                    "ok": false,
                    "status": error.status,
                    "error": error.message,
                })),
            }
        }
        json!({
            "total": report.len(),
            "succeeded": succeeded,
            "failed": report.len() - succeeded,
            "rows": report,
        })
    }
}

/// The rows of a batch sent as a JSON array of onboarding requests.
pub fn rows_from_json(body: &Value) -> Result<Vec<Result<Value, ApiError>>, ApiError> {
    let Value::Array(items) = body else {
        return Err(ApiError::bad_request(&format!(
            "a JSON batch is an array of onboarding requests, not {}",
            json_type(body)
        )));
    };
    check_size(items.len())?;
    Ok(items.iter().cloned().map(Ok).collect())
}

fn check_size(rows: usize) -> Result<(), ApiError> {
    match rows {
        0 => Err(ApiError::bad_request("the batch has no rows")),
        n if n > MAX_BATCH_ROWS => Err(ApiError::bad_request(&format!(
            "the batch has {n} rows; at most {MAX_BATCH_ROWS} are taken at once"
        ))),
        _ => Ok(()),
    }
}

/// The rows of a CSV batch: a header row naming the customer columns (`name`, `medium`,
/// `email`, `phoneNumber`, `organizationLabel`) and the template's fields; every row is one
/// customer. A row with the wrong number of cells is reported, not fatal.
pub fn rows_from_csv(
    text: &str,
    template_id: &str,
) -> Result<Vec<Result<Value, ApiError>>, ApiError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ApiError::bad_request(&format!("the CSV header row cannot be read: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    if headers.len() > MAX_CSV_COLUMNS {
        return Err(ApiError::bad_request(&format!(
            "the CSV header row has {} columns; at most {MAX_CSV_COLUMNS} (the customer columns and a template's fields) are taken",
            headers.len()
        )));
    }
    for required in ["name", "medium"] {
        if !headers.iter().any(|h| h == required) {
            return Err(ApiError::field(
                required,
                "is a required column of the CSV header row",
            ));
        }
    }
    if let Some(duplicate) = headers
        .iter()
        .enumerate()
        .find(|(i, h)| headers[..*i].contains(h))
        .map(|(_, h)| h)
    {
        return Err(ApiError::field(duplicate, "is a column of the CSV twice"));
    }
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let line = index + 2;
        let row = match record {
            Err(error) => Err(ApiError::bad_request(&format!("line {line}: {error}"))),
            Ok(record) if record.len() != headers.len() => Err(ApiError::bad_request(&format!(
                "line {line} has {} cells but the header has {}",
                record.len(),
                headers.len()
            ))),
            Ok(record) => {
                let mut body = Map::new();
                let mut values = Map::new();
                for (header, cell) in headers.iter().zip(record.iter()) {
                    if cell.is_empty() {
                        continue;
                    }
                    if CUSTOMER_COLUMNS.contains(&header.as_str()) {
                        body.insert(header.clone(), json!(cell));
                    } else {
                        values.insert(header.clone(), json!(cell));
                    }
                }
                body.insert(
                    "autoIssue".into(),
                    json!({ "templateId": template_id, "values": values }),
                );
                Ok(Value::Object(body))
            }
        };
        rows.push(row);
        if rows.len() > MAX_BATCH_ROWS {
            return check_size(rows.len()).map(|()| Vec::new());
        }
    }
    check_size(rows.len())?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_header_wider_than_any_template_is_refused_before_it_is_compared() {
        let header = |columns: usize| {
            let mut names = vec!["name".to_string(), "medium".to_string()];
            names.extend((names.len()..columns).map(|i| format!("field{i}")));
            format!("{}\nAda,email\n", names.join(","))
        };
        let error = rows_from_csv(&header(MAX_CSV_COLUMNS + 1), "urn:template:x")
            .expect_err("a header of 59 columns was taken");
        assert_eq!(error.status, 400);
        assert!(
            error
                .message
                .contains("the CSV header row has 59 columns; at most 58"),
            "{}",
            error.message
        );
        let rows = rows_from_csv(&header(MAX_CSV_COLUMNS), "urn:template:x")
            .expect("a header of 58 columns is read");
        assert_eq!(rows.len(), 1);
    }
}

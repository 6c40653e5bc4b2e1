//! Issuing: the Issue Credential 3.0 flow with a wallet (the offer, the wallet's request
//! answered with the signed credential, the ack or problem report that settles it), and
//! through the API an offer to an onboarded customer on request, batch issuance (a JSON array
//! of onboarding requests, or CSV rows of customers and their credential values, each onboarded
//! with auto-issue) with a per-row report, and the exchanges' state.

use serde_json::{json, Map, Value};

use super::customers::{check_values, Customer, Status};
use super::error::MAX_RACES;
use lanyard_protocol::didcomm::Message;
use lanyard_protocol::protocols::issue_credential::{self, Offer};

use super::inbound::{protocol_problem, Answer};
use super::outbox::Change;
use super::records::{
    credential_key, CredentialState, IssuedCredential, CREDENTIALS, CREDENTIALS_BY_TEMPLATE,
};
use super::status_list::{StatusCounter, STATUS_COUNTERS, STATUS_LIST_SIZE};
use super::store::{Expect, Write};
use super::store::{IssuerStorage, IssuerStorageExt};
use super::templates::Template;
use super::templates::{json_type, MAX_CUSTOM_FIELDS, STANDARD_FIELDS};
use super::time::now_ms;
use super::TEMPLATES;
use super::{Issuer, IssuerError, Org};

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

fn required_string<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str, IssuerError> {
    match body.get(field) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(text.trim()),
        Some(Value::String(_)) => Err(IssuerError::field(field, "must not be empty")),
        None | Some(Value::Null) => Err(IssuerError::field(field, "is required")),
        Some(other) => Err(IssuerError::field(
            field,
            &format!("must be a string, not {}", json_type(other)),
        )),
    }
}

impl<S: IssuerStorage> Issuer<S> {
    /// Offers a credential to an onboarded customer: `{customerId, templateId, values}`. An
    /// offer that lost to a concurrent change (another offer of the organisation taking the
    /// next status list index, at this agent or another) is made again from what is stored.
    pub async fn offer_to_customer(
        &self,
        org: &Org,
        body: &Value,
    ) -> Result<IssuedCredential, IssuerError> {
        let mut races = 0;
        loop {
            match self.offer_to_customer_once(org, body).await {
                Err(error) if error.is_changed_meanwhile() && races < MAX_RACES => races += 1,
                other => return other,
            }
        }
    }

    async fn offer_to_customer_once(
        &self,
        org: &Org,
        body: &Value,
    ) -> Result<IssuedCredential, IssuerError> {
        let Value::Object(body) = body else {
            return Err(IssuerError::bad_request("the body must be a JSON object"));
        };
        if let Some(unknown) = body
            .keys()
            .find(|k| !["customerId", "templateId", "values"].contains(&k.as_str()))
        {
            return Err(IssuerError::field(
                unknown,
                "is not an issuance field (customerId, templateId, values)",
            ));
        }
        let customer_id = required_string(body, "customerId")?;
        let template_id = required_string(body, "templateId")?;
        let customer = self.customer(org, customer_id).await.map_err(|_| {
            IssuerError::not_found(&format!(
                "customerId: no customer has the id {customer_id:?}"
            ))
        })?;
        let template = self.template(org, template_id).await.map_err(|_| {
            IssuerError::not_found(&format!(
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
                return Err(IssuerError::conflict(&format!(
                    "customerId: customer {customer_id} is {} and has no wallet connected yet",
                    customer.status.as_str()
                )))
            }
        };
        if !template.has_room() {
            return Err(IssuerError::conflict(&format!(
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
    ) -> Result<IssuedCredential, IssuerError> {
        self.credential_exchanges(org)
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| IssuerError::not_found(&format!("no credential has the id {id:?}")))
    }

    /// Every credential exchange of `org`, oldest first.
    pub async fn credential_exchanges(
        &self,
        org: &Org,
    ) -> Result<Vec<IssuedCredential>, IssuerError> {
        let mut all: Vec<IssuedCredential> = self
            .storage
            .scan_json(CREDENTIALS, &format!("{}/", org.record.id), 0, usize::MAX)
            .await?;
        all.sort_by_key(|c| c.created_ms);
        Ok(all)
    }

    /// Batch issuance: each row onboards a customer with auto-issue. `rows` are onboarding
    /// request bodies (from a JSON array, or built from CSV); each is handled on its own, and
    /// the outcome of each (in order) says what became of it.
    pub async fn batch(
        &self,
        org: &Org,
        rows: Vec<Result<Value, IssuerError>>,
    ) -> Vec<Result<(Customer, Value), IssuerError>> {
        let mut outcomes = Vec::with_capacity(rows.len());
        for row in rows {
            outcomes.push(match row {
                Ok(body) => self.onboard(org, &body).await,
                Err(error) => Err(error),
            });
        }
        outcomes
    }
}

/// The rows of a batch sent as a JSON array of onboarding requests.
pub fn rows_from_json(body: &Value) -> Result<Vec<Result<Value, IssuerError>>, IssuerError> {
    let Value::Array(items) = body else {
        return Err(IssuerError::bad_request(&format!(
            "a JSON batch is an array of onboarding requests, not {}",
            json_type(body)
        )));
    };
    check_size(items.len())?;
    Ok(items.iter().cloned().map(Ok).collect())
}

fn check_size(rows: usize) -> Result<(), IssuerError> {
    match rows {
        0 => Err(IssuerError::bad_request("the batch has no rows")),
        n if n > MAX_BATCH_ROWS => Err(IssuerError::bad_request(&format!(
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
) -> Result<Vec<Result<Value, IssuerError>>, IssuerError> {
    let table = CsvTable::read(text)?;
    Ok(table
        .rows
        .iter()
        .map(|row| match &row.error {
            Some(error) => Err(error.clone()),
            None => Ok(CsvTable::onboarding_request(
                &table.headers,
                &row.cells,
                template_id,
            )),
        })
        .collect())
}

/// A batch CSV read: its header row (checked: the required columns, no column twice, not too
/// wide) and each row's trimmed cells.
#[derive(Clone, Debug)]
pub(crate) struct CsvTable {
    /// The header row's column names.
    pub(crate) headers: Vec<String>,
    /// The rows, in order.
    pub(crate) rows: Vec<CsvRow>,
}

/// One row of a batch CSV: its cells as read, and why it cannot be taken when it cannot (the
/// wrong number of cells; reported, not fatal to the batch).
#[derive(Clone, Debug)]
pub(crate) struct CsvRow {
    /// The cells, trimmed.
    pub(crate) cells: Vec<String>,
    /// Why the row is not taken, if it is not.
    pub(crate) error: Option<IssuerError>,
}

impl CsvTable {
    /// Reads `text`: between one and [`MAX_BATCH_ROWS`] rows under a valid header row.
    pub(crate) fn read(text: &str) -> Result<CsvTable, IssuerError> {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| {
                IssuerError::bad_request(&format!("the CSV header row cannot be read: {e}"))
            })?
            .iter()
            .map(str::to_string)
            .collect();
        if headers.len() > MAX_CSV_COLUMNS {
            return Err(IssuerError::bad_request(&format!(
                "the CSV header row has {} columns; at most {MAX_CSV_COLUMNS} (the customer columns and a template's fields) are taken",
                headers.len()
            )));
        }
        for required in ["name", "medium"] {
            if !headers.iter().any(|h| h == required) {
                return Err(IssuerError::field(
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
            return Err(IssuerError::field(
                duplicate,
                "is a column of the CSV twice",
            ));
        }
        let mut rows = Vec::new();
        for (index, record) in reader.records().enumerate() {
            let line = index + 2;
            rows.push(match record {
                Err(error) => CsvRow {
                    cells: Vec::new(),
                    error: Some(IssuerError::bad_request(&format!("line {line}: {error}"))),
                },
                Ok(record) => CsvRow {
                    cells: record.iter().map(str::to_string).collect(),
                    error: (record.len() != headers.len()).then(|| {
                        IssuerError::bad_request(&format!(
                            "line {line} has {} cells but the header has {}",
                            record.len(),
                            headers.len()
                        ))
                    }),
                },
            });
            if rows.len() > MAX_BATCH_ROWS {
                return check_size(rows.len()).map(|()| CsvTable {
                    headers,
                    rows: Vec::new(),
                });
            }
        }
        check_size(rows.len())?;
        Ok(CsvTable { headers, rows })
    }

    /// The onboarding request of one row's `cells` under `headers`: the customer columns as they are, every
    /// other column a value of the auto-issued credential of `template_id`; empty cells left
    /// out.
    pub(crate) fn onboarding_request(
        headers: &[String],
        cells: &[String],
        template_id: &str,
    ) -> Value {
        let mut body = Map::new();
        let mut values = Map::new();
        for (header, cell) in headers.iter().zip(cells) {
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
        Value::Object(body)
    }
}

/// The Issue Credential 3.0 flow with a wallet: the offer (on request or on onboarding), the
/// wallet's request answered with the signed credential, and the ack or problem report that
/// settles the exchange.
impl<S: IssuerStorage> Issuer<S> {
    /// Adds an offer of a credential from `template` with `values` to `holder` to `change`.
    pub(crate) async fn offer_into(
        &self,
        change: &mut Change,
        org: &Org,
        template: &Template,
        holder: &str,
        customer_id: Option<&str>,
        values: &Map<String, Value>,
    ) -> Result<IssuedCredential, IssuerError> {
        let now = now_ms();
        let counter: StatusCounter = self
            .storage
            .get_json(STATUS_COUNTERS, &org.record.id)
            .await?
            .unwrap_or_default();
        if counter.next >= STATUS_LIST_SIZE {
            return Err(IssuerError::conflict(&format!(
                "the organisation's status list is full ({STATUS_LIST_SIZE} credentials)"
            )));
        }
        let counter_bytes =
            serde_json::to_vec(&counter).map_err(|e| IssuerError::internal(&e.to_string()))?;
        change.expect.push(if counter.next == 0 {
            Expect::Absent {
                collection: STATUS_COUNTERS,
                key: org.record.id.clone(),
            }
        } else {
            Expect::Equals {
                collection: STATUS_COUNTERS,
                key: org.record.id.clone(),
                value: counter_bytes,
            }
        });
        change.writes.push(Write::put(
            STATUS_COUNTERS,
            &org.record.id,
            &StatusCounter {
                next: counter.next + 1,
            },
        )?);
        let claims = self.claims(template, values);
        let id = format!("urn:uuid:{}", uuid::Uuid::new_v4());
        let detail = json!({
            "credential": self.unsigned_credential(org, template, &id, holder, &claims, counter.next),
            "options": issue_credential::proof_options(),
        });
        let offer = Offer {
            thid: uuid::Uuid::new_v4().to_string(),
            comment: Some(format!(
                "{} offers you {}",
                org.record.name, template.spec.name
            )),
            attributes: claims
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect(),
            descriptions: template
                .fields()
                .into_iter()
                .filter(|(name, _, _)| claims.contains_key(name))
                .map(|(name, description, _)| (name, description))
                .collect(),
            detail: detail.clone(),
        };
        let record = IssuedCredential {
            id,
            org_id: org.record.id.clone(),
            template_id: template.template_id.clone(),
            customer_id: customer_id.map(str::to_string),
            holder_did: holder.to_string(),
            thid: offer.thid.clone(),
            state: CredentialState::Offered,
            values: values.clone(),
            detail,
            status_index: counter.next,
            credential: None,
            problem: None,
            created_ms: now,
            updated_ms: now,
        };
        let key = credential_key(&org.record.id, &offer.thid);
        change.writes.push(Write::put(CREDENTIALS, &key, &record)?);
        change.writes.push(Write::put(
            CREDENTIALS_BY_TEMPLATE,
            format!("{}/{}", template.template_id, offer.thid),
            &key,
        )?);
        self.count_into(change, template, 1, 0)?;
        change.send(
            &org.didcomm_did,
            holder,
            issue_credential::offer_message(&offer),
        )?;
        Ok(record)
    }

    /// Adds `offered` and `issued` to a template's counters, guarded against concurrent
    /// changes to it.
    fn count_into(
        &self,
        change: &mut Change,
        template: &Template,
        offered: u64,
        issued: u64,
    ) -> Result<(), IssuerError> {
        let before =
            serde_json::to_vec(template).map_err(|e| IssuerError::internal(&e.to_string()))?;
        let mut counted = template.clone();
        counted.total_offered += offered;
        counted.total_issued += issued;
        counted.updated_ms = now_ms();
        change.expect.push(Expect::Equals {
            collection: TEMPLATES,
            key: template.key.clone(),
            value: before,
        });
        change
            .writes
            .push(Write::put(TEMPLATES, &template.key, &counted)?);
        Ok(())
    }

    /// The credential subject's claims: the template's fixed fields, then the values given.
    fn claims(&self, template: &Template, values: &Map<String, Value>) -> Map<String, Value> {
        let mut claims = Map::new();
        claims.insert(
            "credentialIssuer".into(),
            json!(template.spec.credential_issuer),
        );
        claims.insert(
            "credentialType".into(),
            json!(template.spec.credential_type),
        );
        for (name, _, _) in template.fields() {
            if let Some(value) = values.get(&name) {
                claims.insert(name, value.clone());
            }
        }
        claims
    }

    /// A wallet's `request-credential`: sign and send the offered credential.
    pub(super) async fn issue(
        &self,
        org: &Org,
        sender: &str,
        message: &Message,
    ) -> Result<(), Answer> {
        let (thid, detail) = issue_credential::parse_request(message).map_err(protocol_problem)?;
        let key = credential_key(&org.record.id, &thid);
        let record: Option<IssuedCredential> = self.storage.get_json(CREDENTIALS, &key).await?;
        let record = match record {
            Some(r) if r.holder_did == sender => r,
            _ => {
                return Err(Answer::Problem(
                    "e.p.req.unknown-offer".into(),
                    format!("no offer {thid} was made to you"),
                ))
            }
        };
        if record.state != CredentialState::Offered {
            return Err(Answer::Problem(
                "e.p.req.not-offered".into(),
                format!("the offer {thid} is {:?} already", record.state),
            ));
        }
        if detail != record.detail {
            return Err(Answer::Problem(
                "e.p.req.detail-changed".into(),
                "the request asks for another credential than the one offered".into(),
            ));
        }
        let template = self
            .template_any(&record.template_id)
            .await?
            .ok_or_else(|| {
                Answer::Problem(
                    "e.p.req.template-deleted".into(),
                    format!("the template {} was deleted", record.template_id),
                )
            })?;
        if !template.has_room() {
            return Err(Answer::Problem(
                "e.p.req.limit-reached".into(),
                format!(
                    "{} has issued all the credentials it may",
                    template.spec.name
                ),
            ));
        }
        let credential = self.sign_credential(org, &record.detail)?;
        let mut change = self.seen(message)?;
        let before =
            serde_json::to_vec(&record).map_err(|e| IssuerError::internal(&e.to_string()))?;
        let mut issued = record.clone();
        issued.state = CredentialState::Issued;
        issued.credential = Some(credential.clone());
        issued.updated_ms = now_ms();
        change.expect.push(Expect::Equals {
            collection: CREDENTIALS,
            key: key.clone(),
            value: before,
        });
        change.writes.push(Write::put(CREDENTIALS, &key, &issued)?);
        self.count_into(&mut change, &template, 0, 1)?;
        change.send(
            &org.didcomm_did,
            sender,
            issue_credential::issue_message(&thid, credential),
        )?;
        change.event(
            org,
            "credential.issued",
            json!({ "credentialId": issued.id, "templateId": issued.template_id, "customerId": issued.customer_id }),
        );
        self.commit(change).await?;
        tracing::info!(org = %org.record.id, credential = %issued.id, "credential issued");
        Ok(())
    }

    /// An ack or a problem report in an exchange's thread.
    pub(super) async fn settle(
        &self,
        org: &Org,
        sender: &str,
        message: &Message,
        state: CredentialState,
        problem: Option<String>,
    ) -> Result<(), Answer> {
        let Some(thid) = message.thid.as_deref() else {
            // A problem report outside any exchange: noted, nothing to change.
            self.commit(self.seen(message)?).await?;
            return Ok(());
        };
        let key = credential_key(&org.record.id, thid);
        let record: Option<IssuedCredential> = self.storage.get_json(CREDENTIALS, &key).await?;
        let Some(record) = record.filter(|r| r.holder_did == sender) else {
            self.commit(self.seen(message)?).await?;
            return Ok(());
        };
        let allowed = match state {
            CredentialState::Accepted => record.state == CredentialState::Issued,
            _ => matches!(
                record.state,
                CredentialState::Offered | CredentialState::Issued
            ),
        };
        let mut change = self.seen(message)?;
        if allowed {
            let before =
                serde_json::to_vec(&record).map_err(|e| IssuerError::internal(&e.to_string()))?;
            let mut settled = record.clone();
            settled.state = state;
            settled.problem = problem;
            settled.updated_ms = now_ms();
            change.expect.push(Expect::Equals {
                collection: CREDENTIALS,
                key: key.clone(),
                value: before,
            });
            change.writes.push(Write::put(CREDENTIALS, &key, &settled)?);
            change.event(
                org,
                match state {
                    CredentialState::Accepted => "credential.accepted",
                    _ => "credential.declined",
                },
                json!({ "credentialId": record.id, "templateId": record.template_id, "customerId": record.customer_id, "problem": settled.problem }),
            );
            tracing::info!(org = %org.record.id, credential = %record.id, ?state, "exchange settled");
        }
        self.commit(change).await?;
        Ok(())
    }

    /// The unsigned W3C VC 2.0 a template's credential is: issued by the organisation's
    /// did:web, about the holder's connection DID, naming the template in `credentialSchema`,
    /// with a revocation entry in the organisation's status list.
    fn unsigned_credential(
        &self,
        org: &Org,
        template: &Template,
        id: &str,
        holder: &str,
        claims: &Map<String, Value>,
        status_index: u64,
    ) -> Value {
        let mut subject = Map::new();
        subject.insert("id".into(), json!(holder));
        subject.extend(claims.clone());
        let list = self.status_list_url(org);
        let mut credential = json!({
            "@context": ["https://www.w3.org/ns/credentials/v2"],
            "id": id,
            "type": ["VerifiableCredential", "LanyardCredential"],
            "issuer": { "id": org.issuer_did, "name": org.record.name },
            "name": template.spec.name,
            "validFrom": super::time::rfc3339_secs(now_ms() / 1000),
            "credentialSubject": subject,
            "credentialSchema": { "id": template.template_id, "type": "LanyardCredentialTemplate" },
            "credentialStatus": {
                "id": format!("{list}#{status_index}"),
                "type": "BitstringStatusListEntry",
                "statusPurpose": "revocation",
                "statusListIndex": status_index.to_string(),
                "statusListCredential": list,
            },
        });
        if let Some(until) = &template.spec.credential_expiration {
            credential["validUntil"] = json!(until);
        }
        credential
    }

    /// Signs the credential of an offer's detail as the organisation (its did:web key).
    pub(super) fn sign_credential(&self, org: &Org, detail: &Value) -> Result<Value, IssuerError> {
        let unsigned = detail
            .get("credential")
            .ok_or_else(|| IssuerError::internal("the offer holds no credential"))?;
        lanyard_protocol::credentials::vc::issue(
            unsigned,
            &self.keys,
            &org.signing_key,
            &format!("{}#key-1", org.issuer_did),
            now_ms() / 1000,
        )
        .map_err(|e| IssuerError::internal(&format!("signing the credential: {e}")))
    }
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
        assert!(matches!(error, IssuerError::BadRequest(_)), "{error:?}");
        assert!(
            error
                .to_string()
                .contains("the CSV header row has 59 columns; at most 58"),
            "{error}"
        );
        let rows = rows_from_csv(&header(MAX_CSV_COLUMNS), "urn:template:x")
            .expect("a header of 58 columns is read");
        assert_eq!(rows.len(), 1);
    }
}

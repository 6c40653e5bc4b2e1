//! Batch issuance as a job whose progress can be watched (the console's batch page): a CSV of
//! customers and their credential values is stored as a [`Batch`] with its rows, and worked
//! through one row at a time in the background ([`run_batches`]), each row onboarding a
//! customer with auto-issue exactly as the API's batch does. The progress, the per-row report
//! and the failed rows (with their cells, for a CSV of failures) are in the issuer store, so
//! any agent on the store shows them while another works.
//!
//! Several agents, restarts: an agent works on a batch only under a lease on it ([`Claim`]),
//! renewed at every row in the write that records the row's outcome. A row is marked as begun
//! before it is onboarded; an agent that finds a row begun but not finished (its agent died
//! in between) reports it failed as interrupted instead of onboarding the customer a second
//! time, and goes on with the next row.
//!
//! Bounded: at most [`MAX_BATCH_ROWS`](super::MAX_BATCH_ROWS) rows and
//! [`MAX_BATCH_CSV_BYTES`] of CSV per batch, [`MAX_RUNNING_BATCHES`] running per
//! organisation, the [`KEPT_BATCHES`] newest kept (an older finished one is deleted, with its
//! rows, when a new one is created); one worker per agent.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::claim::{self, Claim};
use super::issuance::CsvTable;
use super::store::{BatchError, Expect, IssuerStorage, IssuerStorageExt, Write};
use super::time::now_ms;
use super::{new_object_id, Issuer, IssuerError, Org};

/// Batches: `{org}/{batch id}` → [`Batch`].
const BATCHES: &str = "batches";
/// A batch's rows still to do: `{org}/{batch id}` → [`BatchInput`] (deleted once done).
const BATCH_INPUTS: &str = "batch_inputs";
/// A batch's outcome per row: `{org}/{batch id}/{row:05}` → [`BatchRow`].
const BATCH_ROWS: &str = "batch_rows";
/// The batches not finished yet, for the workers: `{org}/{batch id}` → the same key.
const BATCHES_RUNNING: &str = "batches_running";

/// The largest CSV a batch takes.
pub const MAX_BATCH_CSV_BYTES: usize = 1 << 20;
/// Batches of one organisation running at once; one more is refused until one finishes.
pub const MAX_RUNNING_BATCHES: usize = 2;
/// Batches kept per organisation (the newest); an older finished one goes when a new one
/// comes.
pub const KEPT_BATCHES: usize = 20;
/// How long a worker holds a batch without recording a row: longer than one row's onboarding
/// (its email or SMS included) takes. A batch whose agent died is taken by another after it.
const BATCH_LEASE: Duration = Duration::from_secs(60);
/// How often a worker looks for batches left behind when nothing woke it.
const BATCH_SWEEP: Duration = Duration::from_secs(5);
/// The outcome of a row whose worker stopped between beginning it and recording it.
pub const INTERRUPTED: &str = "interrupted: the agent stopped while onboarding this row; check \
                               the customers list before sending it again";
/// The most characters of an uploaded file's name kept.
const MAX_FILE_NAME_CHARS: usize = 120;

/// Where a batch stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchState {
    /// Rows are still to be done.
    Running,
    /// Every row has its outcome.
    Done,
}

/// A batch as stored: what it was made from and how far it got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// 24 hex digits.
    pub id: String,
    /// The organisation.
    pub org_id: String,
    /// The template every row's credential is issued from.
    pub template_id: String,
    /// The uploaded file's name (shortened), for people.
    pub file_name: String,
    /// The CSV's header row (the failures' CSV has the same columns, and `error`).
    pub headers: Vec<String>,
    /// Rows in all.
    pub total: usize,
    /// Rows done (each with its outcome): the progress.
    pub processed: usize,
    /// Rows whose customer was onboarded.
    pub succeeded: usize,
    /// Rows that failed.
    pub failed: usize,
    /// Where it stands.
    pub state: BatchState,
    /// The row (0-based) a worker began and has not recorded yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    begun: Option<usize>,
    /// The worker holding it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claim: Option<Claim>,
    /// When it was created (ms since the epoch).
    pub created_ms: u64,
    /// When its last row was done.
    pub finished_ms: Option<u64>,
}

impl Batch {
    /// The share of rows done, 0 to 100.
    pub fn percent(&self) -> usize {
        (self.processed * 100)
            .checked_div(self.total)
            .unwrap_or(100)
    }

    fn key(&self) -> String {
        format!("{}/{}", self.org_id, self.id)
    }
}

/// The rows of a batch, as read from its CSV; a row that could not be read holds why.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct BatchInput {
    rows: Vec<InputRow>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct InputRow {
    cells: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unreadable: Option<String>,
}

/// What became of one row of a batch. A failed row keeps its cells (the failures' CSV); a
/// row that succeeded keeps only the customer it made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRow {
    /// The row's number, 1 for the first row under the header.
    pub row: usize,
    /// Whether its customer was onboarded.
    pub ok: bool,
    /// The customer made, when it was.
    pub customer_id: Option<String>,
    /// The customer's stage then (`Invited` once the invitation went out).
    pub customer_status: Option<String>,
    /// The customer's name, as the row gave it.
    pub name: String,
    /// Why the row failed, naming the column when one was wrong.
    pub error: Option<String>,
    /// The row's cells, when it failed.
    pub cells: Vec<String>,
}

impl<S: IssuerStorage> Issuer<S> {
    /// Creates a batch of `org` from `csv` (its file named `file_name`), each row to onboard
    /// a customer with auto-issue of `template_id`, and wakes the worker. Refused, with
    /// nothing stored, when the template is unknown, the CSV cannot be read as a batch (the
    /// message names the column or line) or the organisation has
    /// [`MAX_RUNNING_BATCHES`] running.
    pub async fn create_batch(
        &self,
        org: &Org,
        template_id: &str,
        file_name: &str,
        csv: &[u8],
    ) -> Result<Batch, IssuerError> {
        if csv.len() > MAX_BATCH_CSV_BYTES {
            return Err(IssuerError::field(
                "file",
                &format!(
                    "is {} bytes; a batch CSV is at most {MAX_BATCH_CSV_BYTES} bytes",
                    csv.len()
                ),
            ));
        }
        self.template(org, template_id).await.map_err(|_| {
            IssuerError::field(
                "templateId",
                &format!("names no template of {}", org.record.name),
            )
        })?;
        let text = std::str::from_utf8(csv)
            .map_err(|_| IssuerError::field("file", "is not UTF-8 text (a CSV is)"))?;
        let table = CsvTable::read(text).map_err(|e| e.within("file: "))?;
        let batches = self.batches(org).await?;
        let running = batches
            .iter()
            .filter(|b| b.state == BatchState::Running)
            .count();
        if running >= MAX_RUNNING_BATCHES {
            return Err(IssuerError::conflict(&format!(
                "{} has {running} batches running, the most at once; wait for one to finish",
                org.record.name
            )));
        }
        let now = now_ms();
        let batch = Batch {
            id: new_object_id(),
            org_id: org.record.id.clone(),
            template_id: template_id.to_string(),
            file_name: file_name.chars().take(MAX_FILE_NAME_CHARS).collect(),
            headers: table.headers.clone(),
            total: table.rows.len(),
            processed: 0,
            succeeded: 0,
            failed: 0,
            state: BatchState::Running,
            begun: None,
            claim: None,
            created_ms: now,
            finished_ms: None,
        };
        let input = BatchInput {
            rows: table
                .rows
                .into_iter()
                .map(|row| InputRow {
                    cells: row.cells,
                    unreadable: row.error.map(|e| e.to_string()),
                })
                .collect(),
        };
        let key = batch.key();
        let mut writes = vec![
            Write::put(BATCHES, &key, &batch)?,
            Write::put(BATCH_INPUTS, &key, &input)?,
            Write::put(BATCHES_RUNNING, &key, &key)?,
        ];
        let mut expect = vec![Expect::Absent {
            collection: BATCHES,
            key: key.clone(),
        }];
        // The oldest finished batches beyond what is kept go, with their rows.
        let finished: Vec<&Batch> = batches
            .iter()
            .filter(|b| b.state == BatchState::Done)
            .collect();
        let excess = (batches.len() + 1).saturating_sub(KEPT_BATCHES);
        for old in finished.iter().rev().take(excess) {
            let old_key = old.key();
            for (row_key, _) in self
                .storage
                .scan(BATCH_ROWS, &format!("{old_key}/"), 0, usize::MAX)
                .await?
            {
                writes.push(Write::delete(BATCH_ROWS, row_key));
            }
            writes.push(Write::delete(BATCHES, &old_key));
            expect.push(Expect::Equals {
                collection: BATCHES,
                key: old_key,
                value: serde_json::to_vec(old)
                    .map_err(|e| IssuerError::internal(&e.to_string()))?,
            });
        }
        self.storage.apply(expect, writes).await?;
        tracing::info!(org = %org.record.id, batch = %batch.id, rows = batch.total, "batch created");
        self.batch_waker.notify_one();
        Ok(batch)
    }

    /// `org`'s batches, newest first (at most [`KEPT_BATCHES`]).
    pub async fn batches(&self, org: &Org) -> Result<Vec<Batch>, IssuerError> {
        let mut all: Vec<Batch> = self
            .storage
            .scan_json(BATCHES, &format!("{}/", org.record.id), 0, usize::MAX)
            .await?;
        all.sort_by(|a, b| b.created_ms.cmp(&a.created_ms).then(b.id.cmp(&a.id)));
        Ok(all)
    }

    /// `org`'s batch `id`, as far as it got.
    pub async fn batch_job(&self, org: &Org, id: &str) -> Result<Batch, IssuerError> {
        let valid = id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit());
        let found: Option<Batch> = match valid {
            true => {
                self.storage
                    .get_json(BATCHES, &format!("{}/{id}", org.record.id))
                    .await?
            }
            false => None,
        };
        found.ok_or_else(|| IssuerError::not_found(&format!("no batch has the id {id:?}")))
    }

    /// The outcomes of `batch`'s rows done so far, in row order, from the `skip`th, at most
    /// `limit`.
    pub async fn batch_rows(
        &self,
        batch: &Batch,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<BatchRow>, IssuerError> {
        Ok(self
            .storage
            .scan_json(BATCH_ROWS, &format!("{}/", batch.key()), skip, limit)
            .await?)
    }

    /// The failed rows of `batch` as a CSV: its columns and `error`, one line per failed row
    /// (a row that could not be read has only its error), to fix and upload again. Cells a
    /// spreadsheet would run as a formula are written with a leading `'`.
    pub async fn batch_failures_csv(&self, batch: &Batch) -> Result<String, IssuerError> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<&str> = batch.headers.iter().map(String::as_str).collect();
        header.push("error");
        let internal = |e: csv::Error| IssuerError::internal(&format!("the failures' CSV: {e}"));
        writer.write_record(&header).map_err(internal)?;
        let mut last = None;
        loop {
            let page = self
                .storage
                .scan_after(
                    BATCH_ROWS,
                    &format!("{}/", batch.key()),
                    last.as_deref(),
                    256,
                )
                .await?;
            let read = page.len();
            for (key, bytes) in page {
                let row: BatchRow = serde_json::from_slice(&bytes)
                    .map_err(|e| IssuerError::internal(&format!("batch row {key}: {e}")))?;
                last = Some(key);
                if row.ok {
                    continue;
                }
                let mut cells: Vec<String> = (0..batch.headers.len())
                    .map(|i| {
                        row.cells
                            .get(i)
                            .map(|c| spreadsheet_safe(c))
                            .unwrap_or_default()
                    })
                    .collect();
                cells.push(spreadsheet_safe(row.error.as_deref().unwrap_or_default()));
                writer.write_record(&cells).map_err(internal)?;
            }
            if read < 256 {
                break;
            }
        }
        let bytes = writer
            .into_inner()
            .map_err(|e| IssuerError::internal(&format!("the failures' CSV: {e}")))?;
        String::from_utf8(bytes).map_err(|e| IssuerError::internal(&e.to_string()))
    }

    /// Works through every batch waiting that no other agent holds; how many rows it did.
    pub async fn work_batches(&self) -> Result<usize, IssuerError> {
        let mut done = 0;
        let mut after: Option<String> = None;
        loop {
            let page = self
                .storage
                .scan_after(BATCHES_RUNNING, "", after.as_deref(), 64)
                .await?;
            let read = page.len();
            for (key, _) in page {
                done += self.work_batch(&key).await?;
                after = Some(key);
            }
            if read < 64 {
                return Ok(done);
            }
        }
    }

    /// Works through the batch at `key` under a lease, row by row; the rows it did.
    async fn work_batch(&self, key: &str) -> Result<usize, IssuerError> {
        let mut done = 0;
        // Read once: the rows do not change while the batch runs.
        let mut input: Option<(Org, BatchInput)> = None;
        loop {
            let Some(mut batch) = self.storage.get_json::<Batch>(BATCHES, key).await? else {
                // Deleted meanwhile: nothing left to do.
                self.storage
                    .apply(vec![], vec![Write::delete(BATCHES_RUNNING, key)])
                    .await?;
                return Ok(done);
            };
            let theirs = batch.claim.as_ref().is_some_and(|c| c.by != self.agent_id)
                && claim::held(&batch.claim, now_ms(), &self.agent_id);
            if batch.state == BatchState::Done || theirs {
                return Ok(done);
            }
            if input.is_none() {
                let Some(org) = self.org(&batch.org_id).await? else {
                    return Ok(done);
                };
                let rows: BatchInput =
                    self.storage
                        .get_json(BATCH_INPUTS, key)
                        .await?
                        .ok_or_else(|| {
                            IssuerError::internal(&format!("batch {key} has no rows stored"))
                        })?;
                input = Some((org, rows));
            }
            let Some((org, rows)) = &input else {
                return Ok(done);
            };
            let before = encode(&batch)?;
            let row = batch.processed;
            let Some(item) = rows.rows.get(row) else {
                return Err(IssuerError::internal(&format!(
                    "batch {key} counts {} rows but stores {}",
                    batch.total,
                    rows.rows.len()
                )));
            };
            // A row begun by a worker that did not record it: reported, not done again.
            let interrupted = batch.begun == Some(row);
            batch.begun = Some(row);
            batch.claim = Some(Claim::new(&self.agent_id, BATCH_LEASE));
            let begun = encode(&batch)?;
            if self.guarded_put(key, before, &begun).await.is_err() {
                // Another agent took it meanwhile.
                return Ok(done);
            }
            let name = batch
                .headers
                .iter()
                .position(|h| h == "name")
                .and_then(|i| item.cells.get(i))
                .cloned()
                .unwrap_or_default();
            let outcome = if interrupted {
                Err(INTERRUPTED.to_string())
            } else if let Some(why) = &item.unreadable {
                Err(why.clone())
            } else {
                let request =
                    CsvTable::onboarding_request(&batch.headers, &item.cells, &batch.template_id);
                self.onboard(org, &request)
                    .await
                    .map(|(customer, _)| customer)
                    .map_err(|e| e.to_string())
            };
            let report = match outcome {
                Ok(customer) => {
                    batch.succeeded += 1;
                    BatchRow {
                        row: row + 1,
                        ok: true,
                        customer_id: Some(customer.id),
                        customer_status: Some(customer.status.as_str().to_string()),
                        name,
                        error: None,
                        cells: Vec::new(),
                    }
                }
                Err(error) => {
                    batch.failed += 1;
                    BatchRow {
                        row: row + 1,
                        ok: false,
                        customer_id: None,
                        customer_status: None,
                        name,
                        error: Some(error),
                        cells: item.cells.clone(),
                    }
                }
            };
            batch.processed += 1;
            batch.begun = None;
            let last = batch.processed >= batch.total;
            let mut writes = vec![Write::put(BATCH_ROWS, format!("{key}/{row:05}"), &report)?];
            if last {
                batch.state = BatchState::Done;
                batch.claim = None;
                batch.finished_ms = Some(now_ms());
                writes.push(Write::delete(BATCH_INPUTS, key));
                writes.push(Write::delete(BATCHES_RUNNING, key));
            }
            writes.push(Write::put(BATCHES, key, &batch)?);
            let recorded = self
                .storage
                .apply(
                    vec![Expect::Equals {
                        collection: BATCHES,
                        key: key.to_string(),
                        value: begun,
                    }],
                    writes,
                )
                .await;
            match recorded {
                Ok(()) => done += 1,
                // Lost the lease (this row outlived it): the next holder reports the row.
                Err(BatchError::Conflict) => return Ok(done),
                Err(BatchError::Storage(e)) => return Err(e.into()),
            }
            if last {
                tracing::info!(org = %batch.org_id, batch = %batch.id, succeeded = batch.succeeded, failed = batch.failed, "batch done");
                return Ok(done);
            }
        }
    }

    /// Puts `value` at the batch `key` if it still holds `before`.
    async fn guarded_put(
        &self,
        key: &str,
        before: Vec<u8>,
        value: &[u8],
    ) -> Result<(), IssuerError> {
        Ok(self
            .storage
            .apply(
                vec![Expect::Equals {
                    collection: BATCHES,
                    key: key.to_string(),
                    value: before,
                }],
                vec![Write::Put {
                    collection: BATCHES,
                    key: key.to_string(),
                    value: value.to_vec(),
                }],
            )
            .await?)
    }
}

fn encode(batch: &Batch) -> Result<Vec<u8>, IssuerError> {
    serde_json::to_vec(batch).map_err(|e| IssuerError::internal(&e.to_string()))
}

/// `cell` as a spreadsheet opens it as text: a leading `=`, `@`, tab or carriage return, or
/// a `+` or `-` not followed by a digit or a space (a formula, not a phone number or an
/// amount), gets a `'` before it.
fn spreadsheet_safe(cell: &str) -> String {
    let mut chars = cell.chars();
    let formula = match chars.next() {
        Some('=' | '@' | '\t' | '\r') => true,
        Some('+' | '-') => !chars.next().is_some_and(|c| c.is_ascii_digit() || c == ' '),
        _ => false,
    };
    match formula {
        true => format!("'{cell}"),
        false => cell.to_string(),
    }
}

/// Works through the batches in the background: at start what a restart left behind, then
/// whenever a batch is created here, and every few seconds for those another agent left.
pub async fn run_batches<S: IssuerStorage>(issuer: std::sync::Weak<Issuer<S>>) {
    loop {
        let Some(strong) = issuer.upgrade() else {
            break;
        };
        if let Err(error) = strong.work_batches().await {
            tracing::warn!(%error, "batch issuance");
        }
        let waker: Arc<tokio::sync::Notify> = strong.batch_waker.clone();
        drop(strong);
        let _ = tokio::time::timeout(BATCH_SWEEP, waker.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuer::store::Write;
    use crate::testing::TwoAgents;

    async fn org_with_template(issuer: &Issuer<impl IssuerStorage>) -> (Org, String) {
        let (org, template) = crate::testing::org_with_template(issuer).await;
        (org, template.template_id)
    }

    const CSV: &str = "name,medium,email,skill\n\
                       Ada,email,ada@example.com,rust\n\
                       Bob,email,not-an-email,=HYPERLINK(\"http://x\")\n\
                       Cy,email\n";

    #[tokio::test]
    async fn a_batch_is_worked_row_by_row_with_a_report_and_a_csv_of_its_failures() {
        let dir = tempfile::tempdir().unwrap();
        let agents = TwoAgents::new(dir.path(), Default::default());
        let (org, template) = org_with_template(&agents.a).await;
        let batch = agents
            .a
            .create_batch(&org, &template, "members.csv", CSV.as_bytes())
            .await
            .unwrap();
        assert_eq!(
            (batch.total, batch.processed, batch.state),
            (3, 0, BatchState::Running)
        );
        assert_eq!(batch.percent(), 0);

        assert_eq!(
            agents.b.work_batches().await.unwrap(),
            3,
            "rows done by the other agent"
        );
        let done = agents.a.batch_job(&org, &batch.id).await.unwrap();
        assert_eq!(
            (
                done.processed,
                done.succeeded,
                done.failed,
                done.state,
                done.percent()
            ),
            (3, 1, 2, BatchState::Done, 100)
        );
        let rows = agents.a.batch_rows(&done, 0, 10).await.unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows[0].ok && rows[0].customer_id.is_some(), "{rows:?}");
        assert_eq!(rows[0].name, "Ada");
        assert!(
            rows[0].cells.is_empty(),
            "a row that succeeded keeps no cells"
        );
        assert!(!rows[1].ok);
        assert!(
            rows[1].error.as_deref().unwrap().starts_with("email "),
            "{rows:?}"
        );
        assert_eq!(
            rows[2].error.as_deref(),
            Some("line 4 has 2 cells but the header has 4")
        );
        let customer = agents
            .a
            .customer(&org, rows[0].customer_id.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(customer.details.name, "Ada");

        let failures = agents.a.batch_failures_csv(&done).await.unwrap();
        let lines: Vec<&str> = failures.lines().collect();
        assert_eq!(lines[0], "name,medium,email,skill,error");
        assert!(
            lines[1]
                .starts_with("Bob,email,not-an-email,\"'=HYPERLINK(\"\"http://x\"\")\",\"email "),
            "{failures}"
        );
        assert_eq!(
            lines[2],
            "Cy,email,,,line 4 has 2 cells but the header has 4"
        );
        assert_eq!(lines.len(), 3, "{failures}");
        // Nothing is left to do, and the rows' input is gone.
        assert_eq!(agents.a.work_batches().await.unwrap(), 0);
        assert!(agents
            .storage
            .get(BATCH_INPUTS, &done.key())
            .await
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn a_row_begun_by_an_agent_that_died_is_reported_interrupted_not_onboarded_again() {
        let dir = tempfile::tempdir().unwrap();
        let agents = TwoAgents::new(dir.path(), Default::default());
        let (org, template) = org_with_template(&agents.a).await;
        let csv = "name,medium,email\nAda,email,ada@example.com\nBob,email,bob@example.com\n";
        let batch = agents
            .a
            .create_batch(&org, &template, "two.csv", csv.as_bytes())
            .await
            .unwrap();
        // Agent A began row 1 and died: its lease ran out.
        let mut begun = batch.clone();
        begun.begun = Some(0);
        begun.claim = Some(Claim {
            by: "dead-agent/life".into(),
            until_ms: now_ms() - 1,
        });
        agents
            .storage
            .apply(
                vec![],
                vec![Write::put(BATCHES, begun.key(), &begun).unwrap()],
            )
            .await
            .unwrap();

        assert_eq!(agents.b.work_batches().await.unwrap(), 2);
        let done = agents.b.batch_job(&org, &batch.id).await.unwrap();
        assert_eq!((done.succeeded, done.failed), (1, 1));
        let rows = agents.b.batch_rows(&done, 0, 10).await.unwrap();
        assert_eq!(rows[0].error.as_deref(), Some(INTERRUPTED));
        assert_eq!(rows[0].cells, ["Ada", "email", "ada@example.com"]);
        let (customers, total) = agents.b.customers(&org, None, 1, 10).await.unwrap();
        assert_eq!(
            total, 1,
            "Ada is not onboarded a second time: {customers:?}"
        );
        assert_eq!(customers[0].details.name, "Bob");
    }

    #[tokio::test]
    async fn a_batch_another_live_agent_holds_is_left_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let agents = TwoAgents::new(dir.path(), Default::default());
        let (org, template) = org_with_template(&agents.a).await;
        let batch = agents
            .a
            .create_batch(&org, &template, "one.csv", b"name,medium\nAda,email\n")
            .await
            .unwrap();
        let mut held = batch.clone();
        held.claim = Some(Claim::new("other-agent/life", BATCH_LEASE));
        agents
            .storage
            .apply(
                vec![],
                vec![Write::put(BATCHES, held.key(), &held).unwrap()],
            )
            .await
            .unwrap();
        assert_eq!(agents.b.work_batches().await.unwrap(), 0);
        let still = agents.b.batch_job(&org, &batch.id).await.unwrap();
        assert_eq!((still.processed, still.state), (0, BatchState::Running));
    }

    #[tokio::test]
    async fn bad_batches_are_refused_naming_what_is_wrong_and_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let agents = TwoAgents::new(dir.path(), Default::default());
        let (org, template) = org_with_template(&agents.a).await;
        let refused = |csv: &'static [u8], template: String| {
            let issuer = agents.a.clone();
            let org = org.clone();
            async move {
                issuer
                    .create_batch(&org, &template, "x.csv", csv)
                    .await
                    .expect_err("refused")
                    .to_string()
            }
        };
        assert_eq!(
            refused(b"name,medium\nAda,email\n", "urn:template:nope".into()).await,
            "templateId names no template of Acme Gym"
        );
        assert_eq!(
            refused(b"email\nada@example.com\n", template.clone()).await,
            "file: name is a required column of the CSV header row"
        );
        assert_eq!(
            refused(b"name,medium\n", template.clone()).await,
            "file: the batch has no rows"
        );
        assert_eq!(
            refused(b"name,medium\n\xff,email\n", template.clone()).await,
            "file is not UTF-8 text (a CSV is)"
        );
        let big = vec![b'a'; MAX_BATCH_CSV_BYTES + 1];
        let error = agents
            .a
            .create_batch(&org, &template, "big.csv", &big)
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "file is {} bytes; a batch CSV is at most {MAX_BATCH_CSV_BYTES} bytes",
                big.len()
            )
        );
        assert!(
            agents.a.batches(&org).await.unwrap().is_empty(),
            "nothing stored"
        );

        for _ in 0..MAX_RUNNING_BATCHES {
            agents
                .a
                .create_batch(&org, &template, "x.csv", b"name,medium\nAda,email\n")
                .await
                .unwrap();
        }
        assert_eq!(
            refused(b"name,medium\nAda,email\n", template.clone()).await,
            "Acme Gym has 2 batches running, the most at once; wait for one to finish"
        );
        assert_eq!(
            agents.a.batches(&org).await.unwrap().len(),
            MAX_RUNNING_BATCHES
        );
    }

    #[tokio::test]
    async fn only_the_newest_batches_are_kept_with_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let agents = TwoAgents::new(dir.path(), Default::default());
        let (org, template) = org_with_template(&agents.a).await;
        let mut ids = Vec::new();
        for _ in 0..=KEPT_BATCHES {
            let batch = agents
                .a
                .create_batch(&org, &template, "x.csv", b"name,medium\nAda,email\n")
                .await
                .unwrap();
            agents.a.work_batches().await.unwrap();
            ids.push(batch.id);
        }
        let kept: Vec<String> = agents
            .a
            .batches(&org)
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect();
        assert_eq!(kept.len(), KEPT_BATCHES);
        assert!(!kept.contains(&ids[0]), "the oldest went");
        assert_eq!(kept[0], ids[KEPT_BATCHES], "newest first");
        let rows = agents
            .storage
            .scan(BATCH_ROWS, &format!("{}/{}/", org.record.id, ids[0]), 0, 10)
            .await
            .unwrap();
        assert!(rows.is_empty(), "its rows went with it");
        assert!(agents.a.batch_job(&org, &ids[0]).await.is_err());
    }

    #[test]
    fn a_failed_cell_that_a_spreadsheet_would_run_is_written_as_text() {
        assert_eq!(spreadsheet_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(spreadsheet_safe("+HYPERLINK(\"x\")"), "'+HYPERLINK(\"x\")");
        assert_eq!(
            spreadsheet_safe("-cmd|' /C calc'!A0"),
            "'-cmd|' /C calc'!A0"
        );
        assert_eq!(
            spreadsheet_safe("+15551234567"),
            "+15551234567",
            "a phone number"
        );
        assert_eq!(spreadsheet_safe("@sum"), "'@sum");
        assert_eq!(spreadsheet_safe("Ada"), "Ada");
        assert_eq!(spreadsheet_safe(""), "");
    }
}

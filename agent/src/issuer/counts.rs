//! What the console's dashboard counts: an organisation's customers by stage, its credential
//! exchanges by state and its verifications by result. Each tally reads at most `cap`
//! records a page at a time (only the field it counts is decoded), and says when it stopped
//! at the cap, so the dashboard's cost is bounded however large the organisation grows.

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::records::CREDENTIALS;
use super::store::IssuerStorage;
use super::verification::VERIFICATIONS;
use super::{CredentialState, Issuer, IssuerError, Org, Status, VerificationState, CUSTOMERS};

/// A count and whether it stopped at the cap.
pub type Tally = (usize, bool);

/// An organisation's counts (each a [`Tally`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Customers in all.
    pub customers: Tally,
    /// Customers whose invitation was not sent.
    pub initiated: Tally,
    /// Customers invited.
    pub invited: Tally,
    /// Customers whose wallet connected.
    pub onboarded: Tally,
    /// Credentials offered, the wallet's request not in yet.
    pub offered: Tally,
    /// Credentials issued (sent, or accepted by the wallet).
    pub issued: Tally,
    /// Verifications waiting for a presentation.
    pub pending: Tally,
    /// Verifications that verified.
    pub verified: Tally,
    /// Verifications that failed.
    pub failed: Tally,
}

#[derive(Deserialize)]
struct CustomerStatus {
    status: Status,
}

#[derive(Deserialize)]
struct ExchangeState {
    state: CredentialState,
}

#[derive(Deserialize)]
struct VerificationResult {
    state: VerificationState,
}

/// Records read per page of a tally.
const PAGE: usize = 256;

impl<S: IssuerStorage> Issuer<S> {
    /// Reads at most `cap` records of `collection` under `prefix`, handing each to `add`;
    /// whether it stopped at the cap.
    async fn tally<T: DeserializeOwned>(
        &self,
        collection: &'static str,
        prefix: &str,
        cap: usize,
        mut add: impl FnMut(T),
    ) -> Result<bool, IssuerError> {
        let mut last: Option<String> = None;
        let mut read = 0;
        loop {
            let limit = PAGE.min(cap + 1 - read);
            let page = self
                .storage
                .scan_after(collection, prefix, last.as_deref(), limit)
                .await?;
            let got = page.len();
            for (key, bytes) in page {
                read += 1;
                if read > cap {
                    return Ok(true);
                }
                let record: T = serde_json::from_slice(&bytes).map_err(|e| {
                    IssuerError::internal(&format!("{collection}/{key} does not read: {e}"))
                })?;
                add(record);
                last = Some(key);
            }
            if got < limit {
                return Ok(false);
            }
        }
    }

    /// `org`'s counts, each over at most `cap` records.
    pub async fn console_counts(&self, org: &Org, cap: usize) -> Result<Counts, IssuerError> {
        let prefix = format!("{}/", org.record.id);
        let mut counts = Counts::default();
        let capped = self
            .tally(CUSTOMERS, &prefix, cap, |c: CustomerStatus| {
                counts.customers.0 += 1;
                match c.status {
                    Status::Initiated => counts.initiated.0 += 1,
                    Status::Invited => counts.invited.0 += 1,
                    Status::Onboarded => counts.onboarded.0 += 1,
                }
            })
            .await?;
        for tally in [
            &mut counts.customers,
            &mut counts.initiated,
            &mut counts.invited,
            &mut counts.onboarded,
        ] {
            tally.1 = capped;
        }
        let capped = self
            .tally(CREDENTIALS, &prefix, cap, |e: ExchangeState| {
                match e.state {
                    CredentialState::Offered => counts.offered.0 += 1,
                    CredentialState::Issued | CredentialState::Accepted => counts.issued.0 += 1,
                    CredentialState::Declined | CredentialState::Revoked => {}
                }
            })
            .await?;
        counts.offered.1 = capped;
        counts.issued.1 = capped;
        let capped = self
            .tally(
                VERIFICATIONS,
                &prefix,
                cap,
                |v: VerificationResult| match v.state {
                    VerificationState::Pending => counts.pending.0 += 1,
                    VerificationState::Verified => counts.verified.0 += 1,
                    VerificationState::Failed => counts.failed.0 += 1,
                },
            )
            .await?;
        counts.pending.1 = capped;
        counts.verified.1 = capped;
        counts.failed.1 = capped;
        Ok(counts)
    }
}

/// A page of customers found by the console, how many matched in all, and whether the
/// search stopped at its cap (so more may match).
#[derive(Clone, Debug, PartialEq)]
pub struct CustomerPage {
    /// The customers of the page asked for, oldest first.
    pub items: Vec<super::Customer>,
    /// How many matched among those read.
    pub matched: usize,
    /// Whether reading stopped at the cap.
    pub capped: bool,
}

/// Whether `customer` matches the search `query` (lower-cased): its name, email or phone
/// number contains it.
fn matches(customer: &super::Customer, query: &str) -> bool {
    let details = &customer.details;
    query.is_empty()
        || details.name.to_lowercase().contains(query)
        || details
            .email
            .as_deref()
            .is_some_and(|e| e.to_lowercase().contains(query))
        || details.phone_number.as_deref().is_some_and(|p| {
            let digits: String = query.chars().filter(|c| !c.is_whitespace()).collect();
            !digits.is_empty() && p.contains(&digits)
        })
}

impl<S: IssuerStorage> Issuer<S> {
    /// One page of `org`'s customers in `stage` (all when None) whose name, email or phone
    /// contains `query` (case-insensitive), reading at most `cap` customers.
    pub async fn console_customers(
        &self,
        org: &Org,
        stage: Option<Status>,
        query: &str,
        page: usize,
        page_size: usize,
        cap: usize,
    ) -> Result<CustomerPage, IssuerError> {
        let query = query.trim().to_lowercase();
        let skip = page.saturating_sub(1).saturating_mul(page_size);
        let mut found = CustomerPage {
            items: Vec::new(),
            matched: 0,
            capped: false,
        };
        let prefix = format!("{}/", org.record.id);
        found.capped = self
            .tally(CUSTOMERS, &prefix, cap, |customer: super::Customer| {
                if stage.is_some_and(|s| s != customer.status) || !matches(&customer, &query) {
                    return;
                }
                if found.matched >= skip && found.items.len() < page_size {
                    found.items.push(customer);
                }
                found.matched += 1;
            })
            .await?;
        Ok(found)
    }

    /// The credential exchanges of `org` with customer `customer_id`, reading at most `cap`
    /// of the organisation's exchanges; whether it stopped at the cap.
    pub async fn customer_credentials(
        &self,
        org: &Org,
        customer_id: &str,
        cap: usize,
    ) -> Result<(Vec<super::IssuedCredential>, bool), IssuerError> {
        let mut found = Vec::new();
        let capped = self
            .tally(
                CREDENTIALS,
                &format!("{}/", org.record.id),
                cap,
                |exchange: super::IssuedCredential| {
                    if exchange.customer_id.as_deref() == Some(customer_id) {
                        found.push(exchange);
                    }
                },
            )
            .await?;
        Ok((found, capped))
    }
}

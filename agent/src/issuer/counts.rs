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

//! Each organisation's revocation list: the status list index its credentials are numbered
//! with, the signed `BitstringStatusListCredential` and its cache, signed again only when a bit
//! changes.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::records::CredentialState;
use super::store::{IssuerStorage, IssuerStorageExt};
use super::time::now_ms;
use super::{Issuer, IssuerError, Org};

/// Per organisation: the next free status list index.
pub(crate) const STATUS_COUNTERS: &str = "status_counters";

/// Per organisation: a value that changes whenever a bit of its status list does.
pub(crate) const STATUS_REVISIONS: &str = "status_revisions";

/// Each organisation's signed status list and the revision it was signed at.
pub(crate) type StatusListCache = Mutex<std::collections::HashMap<String, (String, Value)>>;

/// The status list index credentials of one organisation are numbered with.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct StatusCounter {
    pub next: u64,
}

/// How many credentials one organisation's status list holds.
pub(crate) const STATUS_LIST_SIZE: u64 = 131_072;

impl<S: IssuerStorage> Issuer<S> {
    /// The status list credential's URL of an organisation.
    pub fn status_list_url(&self, org: &Org) -> String {
        format!("{}/orgs/{}/status/1", self.public_url, org.record.id)
    }

    /// The organisation's revocation list as a signed `BitstringStatusListCredential`: every
    /// credential of a deleted template has its bit set. Signed once per change of the list
    /// (its revision, written with every revocation) and served from memory in between, so a
    /// GET costs one read however often anyone asks.
    pub async fn status_list(&self, org: &Org) -> Result<Value, IssuerError> {
        let revision: String = self
            .storage
            .get_json(STATUS_REVISIONS, &org.record.id)
            .await?
            .unwrap_or_default();
        let cached = self
            .status_lists
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&org.record.id)
            .filter(|(signed_at, _)| *signed_at == revision)
            .map(|(_, list)| list.clone());
        if let Some(list) = cached {
            return Ok(list);
        }
        // Labelled with the revision read before the scan: a revocation meanwhile makes the
        // next GET sign again.
        let list = self.sign_status_list(org).await?;
        self.status_lists
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(org.record.id.clone(), (revision, list.clone()));
        Ok(list)
    }

    async fn sign_status_list(&self, org: &Org) -> Result<Value, IssuerError> {
        use lanyard_protocol::credentials::status_list::{status_list_credential, StatusList};
        let mut list = StatusList::new(STATUS_LIST_SIZE as usize);
        for record in self.credential_exchanges(org).await? {
            if record.state == CredentialState::Revoked {
                list.set(record.status_index as usize, true);
            }
        }
        let now = now_ms() / 1000;
        let unsigned = status_list_credential(
            &self.status_list_url(org),
            &org.issuer_did,
            &super::time::rfc3339_secs(now),
            &list,
        );
        lanyard_protocol::credentials::vc::issue(
            &unsigned,
            &self.keys,
            &org.signing_key,
            &format!("{}#key-1", org.issuer_did),
            now,
        )
        .map_err(|e| IssuerError::internal(&format!("signing the status list: {e}")))
    }
}

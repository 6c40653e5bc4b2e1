//! Where the invitations this agent hosts are kept: [`InvitationStore`] (put, by code, by id,
//! use once) and its sled backend, [`SledInvitationStore`], which lives in the mediator's sled
//! database (trees `invitations`: code → record as JSON, and `invitation_ids`: message id →
//! code), so a data folder written before the store had its own trait still reads.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::InvitationRecord;
use crate::group_commit::GroupCommit;
use crate::storage::StorageError;

/// The invitations hosted at `/i/<code>`: shared by the mediator (admission, single use), the
/// HTTP routes and the issuer (onboarding, verifications) as one object, so its methods
/// return boxed futures. Every method that changes something returns after it is durable.
pub trait InvitationStore: Send + Sync + 'static {
    /// Stores an invitation under its code (and its message id), durably; a record with the
    /// same code is replaced.
    fn put<'a>(&'a self, record: &'a InvitationRecord) -> BoxFuture<'a, Result<(), StorageError>>;
    /// The invitation with this code.
    fn by_code<'a>(
        &'a self,
        code: &'a str,
    ) -> BoxFuture<'a, Result<Option<InvitationRecord>, StorageError>>;
    /// The invitation whose message id is `invitation_id`.
    fn by_id<'a>(
        &'a self,
        invitation_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<InvitationRecord>, StorageError>>;
    /// Marks the single-use invitation whose message id is `invitation_id` used at `at`, once:
    /// true when this call used it; false when it was already used, is multi-use, or unknown.
    fn use_once<'a>(
        &'a self,
        invitation_id: &'a str,
        at: u64,
    ) -> BoxFuture<'a, Result<bool, StorageError>>;
}

/// The sled backend, in the mediator's database ([`crate::mediator::SledStorage::invitations`]).
pub struct SledInvitationStore {
    /// Code → the record as JSON.
    invitations: sled::Tree,
    /// Invitation message id → code.
    invitation_ids: sled::Tree,
    commit: Arc<GroupCommit>,
}

impl SledInvitationStore {
    /// The store in `db`'s invitation trees, made durable by `commit` (the database's one
    /// committer).
    pub(crate) fn open_in(
        db: &sled::Db,
        commit: Arc<GroupCommit>,
    ) -> Result<SledInvitationStore, StorageError> {
        Ok(SledInvitationStore {
            invitations: db.open_tree("invitations")?,
            invitation_ids: db.open_tree("invitation_ids")?,
            commit,
        })
    }

    fn read(&self, code: &[u8]) -> Result<Option<InvitationRecord>, StorageError> {
        self.invitations
            .get(code)?
            .map(|v| serde_json::from_slice(&v).map_err(|e| StorageError::Corrupt(e.to_string())))
            .transpose()
    }
}

impl InvitationStore for SledInvitationStore {
    fn put<'a>(&'a self, record: &'a InvitationRecord) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let value =
                serde_json::to_vec(record).map_err(|e| StorageError::Corrupt(e.to_string()))?;
            self.invitations.insert(record.code.as_bytes(), value)?;
            self.invitation_ids
                .insert(record.message.id.as_bytes(), record.code.as_bytes())?;
            self.commit.durable().await
        })
    }

    fn by_code<'a>(
        &'a self,
        code: &'a str,
    ) -> BoxFuture<'a, Result<Option<InvitationRecord>, StorageError>> {
        Box::pin(async move { self.read(code.as_bytes()) })
    }

    fn by_id<'a>(
        &'a self,
        invitation_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<InvitationRecord>, StorageError>> {
        Box::pin(async move {
            match self.invitation_ids.get(invitation_id.as_bytes())? {
                Some(code) => {
                    std::str::from_utf8(&code).map_err(|_| {
                        StorageError::Corrupt("invitation code is not UTF-8".into())
                    })?;
                    self.read(&code)
                }
                None => Ok(None),
            }
        })
    }

    fn use_once<'a>(
        &'a self,
        invitation_id: &'a str,
        at: u64,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            let Some(code) = self.invitation_ids.get(invitation_id.as_bytes())? else {
                return Ok(false);
            };
            let mut used_now = false;
            // The closure may run again if another writer raced us; only its last run counts.
            // It never returns None, which would delete the record.
            self.invitations
                .fetch_and_update(code.as_ref(), |current| {
                    used_now = false;
                    let current = current?;
                    let Ok(mut record) = serde_json::from_slice::<InvitationRecord>(current) else {
                        return Some(current.to_vec());
                    };
                    if record.single_use && record.used_at.is_none() {
                        record.used_at = Some(at);
                        used_now = true;
                    }
                    Some(serde_json::to_vec(&record).unwrap_or_else(|_| current.to_vec()))
                })?;
            self.commit.durable().await?;
            Ok(used_now)
        })
    }
}

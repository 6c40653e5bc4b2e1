//! The invitations this agent hosts, on the shared PostgreSQL database: [`PgInvitationStore`],
//! with the sled backend's semantics (tables `invitations`: code → record, and
//! `invitation_ids`: message id → code, migration `0002_invitations`). `use_once` is one
//! conditional `UPDATE`, so two agents racing to spend a single-use invitation see one win.

use futures_util::future::BoxFuture;

use super::Database;
use crate::invitations::{InvitationRecord, InvitationStore};
use crate::storage::StorageError;

/// The PostgreSQL invitation store (from [`PgMediatorStorage::invitations`](super::PgMediatorStorage::invitations)).
#[derive(Clone, Debug)]
pub struct PgInvitationStore {
    db: Database,
}

impl PgInvitationStore {
    /// The store on `db` (migrated).
    pub fn new(db: Database) -> PgInvitationStore {
        PgInvitationStore { db }
    }

    async fn read(&self, sql: &str, key: &str) -> Result<Option<InvitationRecord>, StorageError> {
        let client = self.db.client().await?;
        let statement = client.prepare_cached(sql).await?;
        let Some(row) = client.query_opt(&statement, &[&key]).await? else {
            return Ok(None);
        };
        let mut record: InvitationRecord = serde_json::from_str(row.get(0))
            .map_err(|e| StorageError::Corrupt(format!("invitation: {e}")))?;
        // The column is where a use is recorded.
        record.used_at = row.get::<_, Option<i64>>(1).map(|at| at as u64);
        Ok(Some(record))
    }
}

impl InvitationStore for PgInvitationStore {
    fn put<'a>(&'a self, record: &'a InvitationRecord) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let value =
                serde_json::to_string(record).map_err(|e| StorageError::Corrupt(e.to_string()))?;
            let used_at = record.used_at.map(|at| at as i64);
            let mut client = self.db.client().await?;
            let tx = client.transaction().await?;
            tx.execute(
                "INSERT INTO invitations (code, record, single_use, used_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (code) DO UPDATE SET record = EXCLUDED.record,
                     single_use = EXCLUDED.single_use, used_at = EXCLUDED.used_at",
                &[&record.code, &value, &record.single_use, &used_at],
            )
            .await?;
            tx.execute(
                "INSERT INTO invitation_ids (invitation_id, code) VALUES ($1, $2)
                 ON CONFLICT (invitation_id) DO UPDATE SET code = EXCLUDED.code",
                &[&record.message.id, &record.code],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn by_code<'a>(
        &'a self,
        code: &'a str,
    ) -> BoxFuture<'a, Result<Option<InvitationRecord>, StorageError>> {
        Box::pin(self.read(
            "SELECT record, used_at FROM invitations WHERE code = $1",
            code,
        ))
    }

    fn by_id<'a>(
        &'a self,
        invitation_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<InvitationRecord>, StorageError>> {
        Box::pin(self.read(
            "SELECT i.record, i.used_at FROM invitation_ids x
             JOIN invitations i ON i.code = x.code WHERE x.invitation_id = $1",
            invitation_id,
        ))
    }

    fn use_once<'a>(
        &'a self,
        invitation_id: &'a str,
        at: u64,
    ) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            let client = self.db.client().await?;
            // One statement: a racing agent's update waits for this row and then finds it used.
            let statement = client
                .prepare_cached(
                    "UPDATE invitations i SET used_at = $2 FROM invitation_ids x
                     WHERE x.invitation_id = $1 AND i.code = x.code
                       AND i.single_use AND i.used_at IS NULL",
                )
                .await?;
            let used = client
                .execute(&statement, &[&invitation_id, &(at as i64)])
                .await?;
            Ok(used == 1)
        })
    }
}

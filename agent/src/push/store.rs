//! Where the gateway keeps its devices: [`PushStore`], with [`SledPushStore`] (one agent, or
//! a gateway run alone, in its data folder) and [`PgPushStore`] (several agents on one
//! database, migration `0005_push`). A device is stored sealed (the gateway seals it before it
//! reaches the store, so both backends hold the same opaque bytes); beside it, in the clear,
//! the time of its last wake, which [`PushStore::claim_wake`] moves forward only when the
//! window has passed, in one conditional write, so of several agents exactly one wins.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::group_commit::GroupCommit;
use crate::postgres::Database;
use crate::storage::StorageError;

/// What [`PushStore::claim_wake`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeClaim {
    /// The window had passed: the wake is this caller's to send (its time is recorded).
    Won,
    /// The handle was woken within the window.
    Coalesced,
    /// No device is stored under the handle.
    Unknown,
}

/// The gateway's devices by handle (the handle's base64url text), each value sealed by the
/// gateway, and the time each was last woken.
pub trait PushStore: Send + Sync + 'static {
    /// Stores `sealed` under `handle` (never woken yet), unless `cap` devices are stored
    /// (`Ok(false)`). Returns once it is durable.
    fn put(
        &self,
        handle: &str,
        sealed: &[u8],
        cap: u64,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// The sealed device under `handle`.
    fn get(
        &self,
        handle: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StorageError>> + Send;

    /// Forgets `handle`; whether it was there. Returns once it is durable.
    fn remove(&self, handle: &str) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Records a wake of `handle` at `now_ms` (milliseconds since the epoch) if its last one
    /// was at least `window_ms` before, in one conditional write.
    fn claim_wake(
        &self,
        handle: &str,
        now_ms: u64,
        window_ms: u64,
    ) -> impl Future<Output = Result<WakeClaim, StorageError>> + Send;

    /// Devices stored.
    fn count(&self) -> impl Future<Output = Result<u64, StorageError>> + Send;
}

/// The embedded sled backend: its own database (tree `devices`: handle → sealed device; tree
/// `wakes`: handle → last wake, 8 bytes big-endian milliseconds).
pub struct SledPushStore {
    devices: sled::Tree,
    wakes: sled::Tree,
    commit: Arc<GroupCommit>,
}

impl SledPushStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path, commit_window: Duration) -> Result<SledPushStore, StorageError> {
        let db = lanyard_protocol::store::open_sled(
            sled::Config::new()
                .path(path)
                .flush_every_ms(None)
                .cache_capacity(8 << 20),
        )?;
        Ok(SledPushStore {
            devices: db.open_tree("devices")?,
            wakes: db.open_tree("wakes")?,
            commit: Arc::new(GroupCommit::start(db, commit_window)?),
        })
    }
}

impl PushStore for SledPushStore {
    async fn put(&self, handle: &str, sealed: &[u8], cap: u64) -> Result<bool, StorageError> {
        if self.devices.len() as u64 >= cap && !self.devices.contains_key(handle)? {
            return Ok(false);
        }
        self.wakes.remove(handle)?;
        self.devices.insert(handle, sealed)?;
        self.commit.durable().await?;
        Ok(true)
    }

    async fn get(&self, handle: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.devices.get(handle)?.map(|v| v.to_vec()))
    }

    async fn remove(&self, handle: &str) -> Result<bool, StorageError> {
        let was = self.devices.remove(handle)?.is_some();
        self.wakes.remove(handle)?;
        if was {
            self.commit.durable().await?;
        }
        Ok(was)
    }

    async fn claim_wake(
        &self,
        handle: &str,
        now_ms: u64,
        window_ms: u64,
    ) -> Result<WakeClaim, StorageError> {
        if !self.devices.contains_key(handle)? {
            return Ok(WakeClaim::Unknown);
        }
        loop {
            let current = self.wakes.get(handle)?;
            if let Some(last) = &current {
                let last = u64::from_be_bytes(
                    last.as_ref()
                        .try_into()
                        .map_err(|_| StorageError::Corrupt("push wake time".into()))?,
                );
                if now_ms < last.saturating_add(window_ms) {
                    return Ok(WakeClaim::Coalesced);
                }
            }
            // Not made durable: a wake time lost in a crash costs one extra wake at most.
            match self
                .wakes
                .compare_and_swap(handle, current, Some(&now_ms.to_be_bytes()[..]))?
            {
                Ok(()) => return Ok(WakeClaim::Won),
                Err(_) => continue,
            }
        }
    }

    async fn count(&self) -> Result<u64, StorageError> {
        Ok(self.devices.len() as u64)
    }
}

/// The PostgreSQL backend: table `push_devices (handle, device, last_wake_ms)`.
#[derive(Clone, Debug)]
pub struct PgPushStore {
    db: Database,
}

impl PgPushStore {
    /// The store on `db` (migrated).
    pub fn new(db: Database) -> PgPushStore {
        PgPushStore { db }
    }
}

impl PushStore for PgPushStore {
    async fn put(&self, handle: &str, sealed: &[u8], cap: u64) -> Result<bool, StorageError> {
        let client = self.db.client().await?;
        // One statement: the count and the insert see the same snapshot; two agents racing
        // at the cap may overshoot it by one each, which a cap of millions allows.
        let statement = client
            .prepare_cached(
                "INSERT INTO push_devices (handle, device, last_wake_ms)
                 SELECT $1, $2, NULL
                 WHERE (SELECT count(*) FROM push_devices) < $3
                    OR EXISTS (SELECT 1 FROM push_devices WHERE handle = $1)
                 ON CONFLICT (handle) DO UPDATE SET device = EXCLUDED.device, last_wake_ms = NULL",
            )
            .await?;
        let stored = client
            .execute(
                &statement,
                &[&handle, &sealed, &(cap.min(i64::MAX as u64) as i64)],
            )
            .await?;
        Ok(stored == 1)
    }

    async fn get(&self, handle: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let client = self.db.client().await?;
        let statement = client
            .prepare_cached("SELECT device FROM push_devices WHERE handle = $1")
            .await?;
        Ok(client
            .query_opt(&statement, &[&handle])
            .await?
            .map(|row| row.get::<_, Vec<u8>>(0)))
    }

    async fn remove(&self, handle: &str) -> Result<bool, StorageError> {
        let client = self.db.client().await?;
        let statement = client
            .prepare_cached("DELETE FROM push_devices WHERE handle = $1")
            .await?;
        Ok(client.execute(&statement, &[&handle]).await? == 1)
    }

    async fn claim_wake(
        &self,
        handle: &str,
        now_ms: u64,
        window_ms: u64,
    ) -> Result<WakeClaim, StorageError> {
        let client = self.db.client().await?;
        // One conditional UPDATE: a racing agent's waits for this row, then finds it claimed.
        let statement = client
            .prepare_cached(
                "UPDATE push_devices SET last_wake_ms = $2
                 WHERE handle = $1 AND (last_wake_ms IS NULL OR last_wake_ms <= $2 - $3)",
            )
            .await?;
        let now = now_ms.min(i64::MAX as u64) as i64;
        let window = window_ms.min(i64::MAX as u64 / 2) as i64;
        if client
            .execute(&statement, &[&handle, &now, &window])
            .await?
            == 1
        {
            return Ok(WakeClaim::Won);
        }
        let known = client
            .prepare_cached("SELECT 1 FROM push_devices WHERE handle = $1")
            .await?;
        Ok(match client.query_opt(&known, &[&handle]).await? {
            Some(_) => WakeClaim::Coalesced,
            None => WakeClaim::Unknown,
        })
    }

    async fn count(&self) -> Result<u64, StorageError> {
        let client = self.db.client().await?;
        let statement = client
            .prepare_cached("SELECT count(*) FROM push_devices")
            .await?;
        Ok(client.query_one(&statement, &[]).await?.get::<_, i64>(0) as u64)
    }
}

/// The push store the gateway was started on.
pub enum PushBackend {
    /// The embedded sled folder.
    Sled(SledPushStore),
    /// The shared PostgreSQL database.
    Postgres(PgPushStore),
}

macro_rules! each {
    ($self:expr, $store:ident => $call:expr) => {
        match $self {
            Self::Sled($store) => $call.await,
            Self::Postgres($store) => $call.await,
        }
    };
}

impl PushStore for PushBackend {
    async fn put(&self, handle: &str, sealed: &[u8], cap: u64) -> Result<bool, StorageError> {
        each!(self, s => s.put(handle, sealed, cap))
    }

    async fn get(&self, handle: &str) -> Result<Option<Vec<u8>>, StorageError> {
        each!(self, s => s.get(handle))
    }

    async fn remove(&self, handle: &str) -> Result<bool, StorageError> {
        each!(self, s => s.remove(handle))
    }

    async fn claim_wake(
        &self,
        handle: &str,
        now_ms: u64,
        window_ms: u64,
    ) -> Result<WakeClaim, StorageError> {
        each!(self, s => s.claim_wake(handle, now_ms, window_ms))
    }

    async fn count(&self) -> Result<u64, StorageError> {
        each!(self, s => s.count())
    }
}

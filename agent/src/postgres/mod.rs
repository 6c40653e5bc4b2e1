//! The shared PostgreSQL backend: one [`Database`] (a connection pool) that several agents
//! share, the migrations that shape it, and the stores built on it. Selected by
//! `LANYARD_DATABASE_URL`; without it the agent keeps everything in its embedded sled folder.
//!
//! Migrations are SQL files in `agent/migrations/`, compiled into the binary and applied in
//! order at start (and by `agent migrate`) under an advisory lock, so agents starting at the
//! same instant apply each one once. A database whose schema is newer than the binary is
//! refused at start, by name, rather than written with an older idea of its tables.

use std::fmt;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::storage::StorageError;

mod invitations;
mod issuer;
mod mediator;

pub use invitations::PgInvitationStore;
pub use issuer::PgIssuerStorage;
pub use mediator::PgMediatorStorage;

/// One migration: its version (the order it applies in), a name for logs, and its SQL.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration this binary knows, oldest first. Versions only grow; a migration, once
/// released, is never edited (a change is a new one).
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "mediator",
        sql: include_str!("../../migrations/0001_mediator.sql"),
    },
    Migration {
        version: 2,
        name: "invitations",
        sql: include_str!("../../migrations/0002_invitations.sql"),
    },
    Migration {
        version: 3,
        name: "issuer",
        sql: include_str!("../../migrations/0003_issuer.sql"),
    },
    Migration {
        version: 4,
        name: "identity",
        sql: include_str!("../../migrations/0004_identity.sql"),
    },
    Migration {
        version: 5,
        name: "push",
        sql: include_str!("../../migrations/0005_push.sql"),
    },
    Migration {
        version: 6,
        name: "mediator_push",
        sql: include_str!("../../migrations/0006_mediator_push.sql"),
    },
];

/// The advisory lock key migrations are applied under (any fixed number; "lanyard" in ASCII).
const MIGRATION_LOCK: i64 = 0x006c_616e_7961_7264;

/// The schema version this binary writes.
pub fn schema_version() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Why the database cannot be used. Messages name the server by host and port only: the URL's
/// password is never repeated.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// `LANYARD_DATABASE_URL` does not parse.
    #[error("LANYARD_DATABASE_URL is not a PostgreSQL URL: {0}")]
    Url(String),
    /// The server cannot be reached or refused us.
    #[error("cannot reach the database at {at}: {reason}")]
    Unreachable {
        /// Host and port.
        at: String,
        /// What the client said.
        reason: String,
    },
    /// The database holds a schema a newer binary wrote.
    #[error(
        "the database at {at} has schema version {found}, newer than this agent's {known}: \
         run the newer agent, or restore a backup taken before it migrated"
    )]
    SchemaTooNew {
        /// Host and port.
        at: String,
        /// The version the database records.
        found: i32,
        /// The newest version this binary knows.
        known: i32,
    },
    /// A migration failed (nothing of it was applied: each runs in a transaction).
    #[error("migration {version} ({name}) failed on {at}: {reason}")]
    Migration {
        /// Host and port.
        at: String,
        /// Its version.
        version: i32,
        /// Its name.
        name: &'static str,
        /// What the server said.
        reason: String,
    },
}

/// The shared database: a pool of connections to it. Cloning shares the pool.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    #[allow(dead_code)] // read by `dedicated`, whose first caller lands next (issue 13)
    config: tokio_postgres::Config,
    at: String,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: only where the server is.
        f.debug_struct("Database").field("at", &self.at).finish()
    }
}

/// Where a configuration points, as `host:port` (or the socket folder), without credentials.
fn location(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}

/// A client error in words that name no more than the server's own message (no addresses).
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

impl From<tokio_postgres::Error> for StorageError {
    fn from(error: tokio_postgres::Error) -> Self {
        StorageError::Backend(describe(&error))
    }
}

impl From<deadpool_postgres::PoolError> for StorageError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => error.into(),
            other => StorageError::Backend(format!("database pool: {other}")),
        }
    }
}

/// Pool figures for `/metrics` and `/health`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections the pool may hold.
    pub max_size: usize,
    /// Connections open now.
    pub size: usize,
    /// Open connections idle in the pool.
    pub available: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
}

impl Database {
    /// Connects a pool of up to `max_connections` to `url` (a `postgres://` URL or a libpq
    /// key=value string) and checks that the server answers.
    pub async fn connect(url: &str, max_connections: usize) -> Result<Database, DatabaseError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| DatabaseError::Url(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("lanyard-agent");
        let at = location(&config);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(2))
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| DatabaseError::Url(e.to_string()))?;
        let database = Database { pool, config, at };
        database.ping().await?;
        Ok(database)
    }

    /// Where the database is (`host:port/dbname`), for logs and errors.
    pub fn location(&self) -> &str {
        &self.at
    }

    fn unreachable(&self, reason: String) -> DatabaseError {
        DatabaseError::Unreachable {
            at: self.at.clone(),
            reason,
        }
    }

    /// Runs `SELECT 1` on a pooled connection.
    pub async fn ping(&self) -> Result<(), DatabaseError> {
        let client = self.pool.get().await.map_err(|e| {
            self.unreachable(match e {
                deadpool_postgres::PoolError::Backend(e) => describe(&e),
                other => other.to_string(),
            })
        })?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| self.unreachable(describe(&e)))?;
        Ok(())
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StorageError> {
        Ok(self.pool.get().await?)
    }

    /// A connection of its own, outside the pool (for `LISTEN`, which holds one open), with
    /// the task that drives it: the stream of what the server sends unasked comes through
    /// `on_message`.
    #[allow(dead_code)] // its first caller lands next (issue 13)
    pub(crate) async fn dedicated(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
        ),
        StorageError,
    > {
        Ok(self.config.connect(NoTls).await?)
    }

    /// The pool's figures now.
    pub fn pool_status(&self) -> PoolStatus {
        let status = self.pool.status();
        PoolStatus {
            max_size: status.max_size,
            size: status.size,
            available: status.available,
            waiting: status.waiting,
        }
    }

    /// The schema version the database records (0 for an empty database).
    pub async fn current_version(&self) -> Result<i32, DatabaseError> {
        let client = self
            .pool
            .get()
            .await
            .map_err(|e| self.unreachable(e.to_string()))?;
        current_version(&client)
            .await
            .map_err(|e| self.unreachable(describe(&e)))
    }

    /// Applies every migration the database lacks, in order, each in its own transaction,
    /// under an advisory lock (agents starting together take turns); refuses a database whose
    /// schema is newer than this binary. Returns the versions applied.
    pub async fn migrate(&self) -> Result<Vec<i32>, DatabaseError> {
        let mut client = self
            .pool
            .get()
            .await
            .map_err(|e| self.unreachable(e.to_string()))?;
        let fail = |e: tokio_postgres::Error| self.unreachable(describe(&e));
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(fail)?;
        let result = self.migrate_locked(&mut client).await;
        // The lock is the session's: give it back before the connection returns to the pool.
        let unlocked = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await;
        let applied = result?;
        unlocked.map_err(fail)?;
        Ok(applied)
    }

    async fn migrate_locked(
        &self,
        client: &mut deadpool_postgres::Object,
    ) -> Result<Vec<i32>, DatabaseError> {
        // Made by the first migration run (checked first: IF NOT EXISTS alone has the server
        // log a notice at every start).
        let found = current_version(client)
            .await
            .map_err(|e| self.unreachable(describe(&e)))?;
        self.check_version(found)?;
        if found == 0 {
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS lanyard_schema (
                     version integer PRIMARY KEY,
                     name text NOT NULL,
                     applied_at timestamptz NOT NULL DEFAULT now()
                 )",
                )
                .await
                .map_err(|e| self.unreachable(describe(&e)))?;
        }
        let mut applied = Vec::new();
        for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
            let failed = |e: tokio_postgres::Error| DatabaseError::Migration {
                at: self.at.clone(),
                version: migration.version,
                name: migration.name,
                reason: describe(&e),
            };
            let tx = client.transaction().await.map_err(failed)?;
            tx.batch_execute(migration.sql).await.map_err(failed)?;
            tx.execute(
                "INSERT INTO lanyard_schema (version, name) VALUES ($1, $2)",
                &[&migration.version, &migration.name],
            )
            .await
            .map_err(failed)?;
            tx.commit().await.map_err(failed)?;
            tracing::info!(version = migration.version, name = migration.name, at = %self.at, "migration applied");
            applied.push(migration.version);
        }
        Ok(applied)
    }

    /// Refuses a schema newer than this binary's.
    fn check_version(&self, found: i32) -> Result<(), DatabaseError> {
        if found > schema_version() {
            return Err(DatabaseError::SchemaTooNew {
                at: self.at.clone(),
                found,
                known: schema_version(),
            });
        }
        Ok(())
    }
}

async fn current_version(client: &tokio_postgres::Client) -> Result<i32, tokio_postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('lanyard_schema') IS NOT NULL", &[])
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_one("SELECT coalesce(max(version), 0) FROM lanyard_schema", &[])
        .await?;
    Ok(row.get(0))
}

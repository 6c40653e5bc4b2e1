//! Lanyard's cloud agent: the DIDComm v2 mediator phones talk through, and the issuer/verifier
//! API organisations drive. Every envelope goes through one [`DidCommRouter`]: unpacked once,
//! then handed to the [`Mediator`] (Routing, Coordinate Mediation, Pickup, Trust Ping,
//! Discover Features) or to the [`issuer::Issuer`] (an organisation's DID). The issuer queues
//! its messages to phones through the mediator's [`QueuePort`]; the invitations both host are
//! in an [`InvitationStore`]. Protocol code (DIDs, envelopes, credentials, message types) is
//! `lanyard-protocol`'s; the agent's state is behind [`MediatorStorage`], the
//! [`InvitationStore`] and [`issuer::store::IssuerStorage`], each with a sled backend (one
//! agent) and a PostgreSQL backend ([`postgres`]: any number of agents on one database).

#![warn(missing_docs, unreachable_pub)]

pub mod admin;
pub mod api;
pub mod backend;
pub mod config;
pub mod console;
mod group_commit;
mod http;
pub mod identity;
pub mod invitations;
pub mod issuer;
pub mod mediator;
mod metrics;
pub mod postgres;
pub mod push;
mod replay;
mod router;
pub mod storage;
#[cfg(test)]
mod testing;

pub use invitations::{InvitationStore, SledInvitationStore};
pub use mediator::{
    Admission, Limits, LiveSession, Mediator, MediatorStorage, QueuePort, SledStorage,
};
pub use metrics::Metrics;
pub use router::DidCommRouter;
pub use storage::StorageError;

use std::net::SocketAddr;
use std::sync::Arc;

use lanyard_protocol::did::Resolver;
use lanyard_protocol::didcomm::{DidComm, UnpackOptions};

use crate::config::Config;

/// Why the agent did not start. Each message names what failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The listening address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The configured address.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The identity (keys, key file, admin token) cannot be loaded or created.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// A store cannot be opened: `what` names it.
    #[error("{what}: {source}")]
    Store {
        /// "mediator store", "invitation store" or "issuer store".
        what: &'static str,
        /// The store's error.
        source: storage::StorageError,
    },
    /// The hardened outbound HTTP client cannot be built.
    #[error("outbound HTTP: {0}")]
    Net(#[from] lanyard_protocol::net::NetError),
    /// The SMTP or SMS gateway setting is refused, in its checker's words.
    #[error(transparent)]
    Delivery(#[from] issuer::DeliveryError),
    /// The admin token is refused or cannot be read.
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    /// The database cannot be reached, or its schema is newer than this binary.
    #[error(transparent)]
    Database(#[from] postgres::DatabaseError),
    /// The organisations' secrets of an older data folder's identity store cannot be copied
    /// into the issuer store.
    #[error("copying the organisations' secrets into the issuer store: {0}")]
    Secrets(issuer::IssuerError),
    /// The push gateway's settings are refused (a key file that does not read, a URL the
    /// outbound policy refuses), in its words.
    #[error("push gateway: {0}")]
    Push(#[from] push::PushError),
}

/// A running agent.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The mediator's DID.
    pub did: String,
    /// The server task; ends after [`Running::stop`].
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Running {
    /// Stops accepting, closes live sockets, lets in-flight requests finish for up to the
    /// shutdown grace period, closes what is left, and waits for the server to end.
    pub async fn stop(self) -> std::io::Result<()> {
        stop_serving(&self.shutdown, self.server).await
    }
}

/// Tells a server loop to shut down (see [`Running::stop`]) and waits for its task to end.
pub(crate) async fn stop_serving(
    shutdown: &tokio::sync::watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
) -> std::io::Result<()> {
    let _ = shutdown.send(true);
    server
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// Whether the agent listens on a loopback address and publishes a loopback URL, so only
/// processes on this machine can reach it.
fn only_this_machine_reaches(listen: SocketAddr, public_url: &str) -> bool {
    listen.ip().is_loopback() && published_on_loopback(public_url)
}

/// Whether `url`'s host is `localhost` or a loopback address.
fn published_on_loopback(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|url| {
        let host = url.host_str().unwrap_or_default();
        host.eq_ignore_ascii_case("localhost")
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    })
}

/// Whether `url` is plain http to a loopback host (a developer's machine): the one case
/// where the console's cookies go without `Secure`.
pub(crate) fn is_loopback_http(url: &str) -> bool {
    url.starts_with("http://") && published_on_loopback(url)
}

/// A store that failed to open, named.
fn store(what: &'static str) -> impl FnOnce(storage::StorageError) -> StartError {
    move |source| StartError::Store { what, source }
}

/// The identity and stores an agent runs on, opened from its data folder or its database.
struct Opened {
    identity: identity::Identity,
    storage: backend::MediatorBackend,
    issuer_storage: backend::IssuerBackend,
    invitations: Arc<dyn invitations::InvitationStore>,
    /// The shared database, on PostgreSQL.
    database: Option<postgres::Database>,
    admin_token: admin::AdminToken,
}

/// One agent on its sled folder: the identity, the stores and the admin token in
/// `config.data_dir`.
fn open_sled(config: &Config, endpoint: &str) -> Result<Opened, StartError> {
    let identity = identity::load_or_create(&config.data_dir, endpoint)?;
    let storage = SledStorage::open(&config.data_dir.join("mediator"), config.commit_window)
        .map_err(store("mediator store"))?;
    let issuer_storage = issuer::store::SledIssuerStorage::open(
        &config.data_dir.join("issuer"),
        config.commit_window,
        &*identity.issuer_store_key()?,
    )
    .map_err(store("issuer store"))?;
    let invitations: Arc<dyn invitations::InvitationStore> =
        Arc::new(storage.invitations().map_err(store("invitation store"))?);
    Ok(Opened {
        identity,
        storage: backend::MediatorBackend::Sled(storage),
        issuer_storage: backend::IssuerBackend::Sled(issuer_storage),
        invitations,
        database: None,
        admin_token: admin::admin_token(config)?,
    })
}

/// One of any number of agents sharing the PostgreSQL database at `url`: migrated first (a
/// schema newer than this binary is refused), the identity every agent shares (sealed under
/// the key file), the shared stores, and the admin token every agent is given.
async fn open_postgres(config: &Config, url: &str, endpoint: &str) -> Result<Opened, StartError> {
    let admin_token = admin::shared_admin_token(config)?;
    let database = postgres::Database::connect(url, config.database_pool).await?;
    let applied = database.migrate().await?;
    tracing::info!(at = %database.location(), ?applied, version = postgres::schema_version(), "database ready");
    // The key file (by default in the data folder) and the recorded address live there.
    std::fs::create_dir_all(&config.data_dir).map_err(|source| {
        StartError::Identity(identity::IdentityError::File {
            path: config.data_dir.clone(),
            source,
        })
    })?;
    let identity = identity::load_or_create_shared(&database, &config.key_file(), endpoint).await?;
    let storage = postgres::PgMediatorStorage::open(database.clone(), config.commit_window)
        .await
        .map_err(store("mediator store"))?;
    let invitations: Arc<dyn invitations::InvitationStore> = Arc::new(storage.invitations());
    let issuer_storage =
        postgres::PgIssuerStorage::new(database.clone(), &*identity.issuer_store_key()?);
    Ok(Opened {
        identity,
        storage: backend::MediatorBackend::Postgres(storage),
        issuer_storage: backend::IssuerBackend::Postgres(Box::new(issuer_storage)),
        invitations,
        database: Some(database),
        admin_token,
    })
}

/// What a server bound: its listener, the address it got, its public URL (configured, or
/// `http://` and that address) and the DIDComm endpoint under it.
pub(crate) struct Bound {
    pub(crate) listener: tokio::net::TcpListener,
    pub(crate) addr: SocketAddr,
    pub(crate) public_url: String,
    pub(crate) endpoint: String,
}

/// Binds `config.listen`, as the agent and the push gateway do.
pub(crate) async fn bind(config: &Config) -> Result<Bound, StartError> {
    let listen = |source| StartError::Listen {
        addr: config.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(listen)?;
    let addr = listener.local_addr().map_err(listen)?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let endpoint = format!("{public_url}/didcomm");
    Ok(Bound {
        listener,
        addr,
        public_url,
        endpoint,
    })
}

/// Opens the identity and stores (the sled folder, or the PostgreSQL database when
/// `LANYARD_DATABASE_URL` is set), binds, and serves until stopped.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let Bound {
        listener,
        addr,
        public_url,
        endpoint,
    } = bind(&config).await?;
    let Opened {
        identity,
        storage,
        issuer_storage,
        invitations,
        database,
        admin_token,
    } = match &config.database_url {
        None => open_sled(&config, &endpoint)?,
        Some(url) => open_postgres(&config, url, &endpoint).await?,
    };
    let did = identity.did.clone();
    let issuer_store_key = identity.issuer_store_key()?;
    // The mediator packs its answers with one DidComm; the router unpacks with another, under
    // the size limit.
    let mediator = Arc::new(Mediator::new(
        identity.did,
        DidComm::new(identity.keys.clone(), Resolver::default()),
        storage,
        invitations.clone(),
        config.limits.clone(),
    ));
    let mailer = match &config.smtp_url {
        Some(url) => Some(issuer::Mailer::new(url, &config.smtp_from)?),
        None => None,
    };
    // One hardened client for what the agent fetches; callbacks get their own time limit.
    let mut net = config.net.clone();
    if !net.allow_loopback && only_this_machine_reaches(addr, &public_url) {
        // The one-command start: verifications fetch the organisations' did:web documents
        // and status lists from this agent itself, over loopback http. No other machine can
        // send it anything, so no stranger can steer those fetches.
        tracing::info!("listening and published on loopback only: outbound loopback allowed");
        net.allow_loopback = true;
    }
    let http = lanyard_protocol::net::HttpClient::new(net.clone())?;
    // The push gateway the mediator wakes devices through: the one at
    // LANYARD_PUSH_GATEWAY_URL, or one in this process over the agent's own store (so that
    // wakes coalesce across agents on PostgreSQL), or none when no platform is configured
    // (then no wake is sent and registrations are refused).
    if let Some(gateway) = push::gateway_from_config(
        &config,
        database.as_ref(),
        &issuer_store_key,
        http.clone(),
        mediator.metrics(),
    )? {
        mediator.start_push(gateway, config.push.coalesce);
    }
    let callback_client =
        lanyard_protocol::net::HttpClient::new(lanyard_protocol::net::NetPolicy {
            timeout: config.callback_timeout,
            ..net
        })?;
    let sms = match &config.sms_url {
        Some(url) => Some(issuer::SmsGateway::new(
            url,
            config.sms_token.clone(),
            http.clone(),
        )?),
        None => None,
    };
    let issuer = Arc::new(
        issuer::Issuer::new(
            issuer_storage,
            identity.keys.clone(),
            &issuer_store_key,
            public_url.clone(),
        )
        .with_mediator(
            mediator.clone(),
            invitations.clone(),
            &config.deep_link_scheme,
        )
        .with_transports(mailer, sms)
        .with_limits(config.issuer_limits.clone())
        .with_agent_name(&identity::agent_name(&config.data_dir)?)
        .with_network(http, config.status_list_max_bytes),
    );
    // A data folder of an earlier version kept the organisations' secrets in its identity
    // store: they move to the issuer store (once; later starts find them there).
    if let Some(store) = &identity.store {
        issuer
            .adopt_local_secrets(store)
            .await
            .map_err(StartError::Secrets)?;
    }
    issuer.outbox_counters().register(mediator.metrics());
    // The outbox is swept in the background (first what a crash left behind, then every few
    // seconds), so the agent serves at once however large it is.
    tokio::spawn(issuer::run_outbox(Arc::downgrade(&issuer)));
    // Batch issuance jobs (the console's batches) are worked through in the background.
    tokio::spawn(issuer::run_batches(Arc::downgrade(&issuer)));
    tokio::spawn(issuer::run_callbacks(
        Arc::downgrade(&issuer),
        issuer.callback_waker(),
        issuer::Deliveries {
            client: callback_client,
            retry_unit: config.callback_retry,
            concurrency: config.callback_concurrency,
            retention: config.callback_retention,
            poll: config.callback_poll,
        },
    ));
    let (shutdown, stopped) = tokio::sync::watch::channel(false);
    // Queued messages past the age limit are dropped (also on read), at least once a minute.
    let sweeper = Arc::downgrade(&mediator);
    let sweep_every = config.limits.message_max_age.clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    );
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(sweep_every).await;
            let Some(mediator) = sweeper.upgrade() else {
                break;
            };
            match mediator.expire_old().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(messages = n, "expired messages dropped"),
                Err(error) => tracing::warn!(%error, "expiring old messages"),
            }
        }
    });
    let metrics = mediator.metrics().clone();
    let inbound =
        DidComm::new(identity.keys.clone(), Resolver::default()).with_options(UnpackOptions {
            max_message_bytes: config.max_message_bytes,
            ..UnpackOptions::default()
        });
    let state = Arc::new(http::AppState {
        router: Arc::new(router::DidCommRouter::new(
            inbound,
            mediator.clone(),
            issuer.clone(),
        )),
        mediator,
        invitations,
        public_url: public_url.clone(),
        links: invitations::AppLinks {
            scheme: config.deep_link_scheme.clone(),
            app_store_url: config.app_store_url.clone(),
            play_store_url: config.play_store_url.clone(),
        },
        admin_token: admin_token.clone(),
        apple_app_ids: config.apple_app_ids.clone(),
        android_package: config.android_package.clone(),
        android_cert_sha256: config.android_cert_sha256.clone(),
        max_message_bytes: config.max_message_bytes,
        live_slots: Arc::new(tokio::sync::Semaphore::new(config.max_live_connections)),
        live_idle: config.live_idle_timeout,
        closing: stopped.clone(),
        database,
    });
    let accounts = Arc::new(console::Accounts::new(config.console_sign_in.clone()));
    let console = console::router(Arc::new(console::ConsoleState::new(
        issuer.clone(),
        accounts.clone(),
        admin_token.clone(),
    )));
    let app = http::router(state)
        .merge(api::router(Arc::new(api::ApiState {
            issuer,
            admin_token,
            accounts,
        })))
        .merge(console);
    let limits = http::ServerLimits {
        max_connections: config.max_connections,
        header_read_timeout: config.header_read_timeout,
        request_timeout: config.request_timeout,
        shutdown_grace: config.shutdown_grace,
    };
    // The identity store stays open (and its folder locked) while the server runs: that lock
    // is how `agent org create` tells that an agent holds the data folder.
    let identity_store = identity.store;
    let server = tokio::spawn(async move {
        let served = http::serve(listener, app, limits, metrics, stopped).await;
        drop(identity_store);
        served
    });
    // `agent org create` finds the agent that holds this data folder here.
    if let Err(error) = admin::record_address(&config.data_dir, addr) {
        tracing::warn!(%error, "the agent's address is not recorded in its data folder");
    }
    tracing::info!(%addr, %did, "agent listening");
    Ok(Running {
        addr,
        did,
        server,
        shutdown,
    })
}

#[cfg(test)]
mod tests {
    use super::only_this_machine_reaches;

    #[test]
    fn loopback_fetches_are_allowed_only_when_no_other_machine_reaches_the_agent() {
        let local: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let everywhere: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(only_this_machine_reaches(local, "http://127.0.0.1:8080"));
        assert!(only_this_machine_reaches(local, "http://localhost:8080"));
        assert!(only_this_machine_reaches(
            "[::1]:80".parse().unwrap(),
            "http://[::1]"
        ));
        // Behind a proxy on this machine, or on every interface: strangers reach it.
        assert!(!only_this_machine_reaches(
            local,
            "https://agent.example.com"
        ));
        assert!(!only_this_machine_reaches(
            everywhere,
            "http://127.0.0.1:8080"
        ));
        assert!(!only_this_machine_reaches(
            everywhere,
            "http://0.0.0.0:8080"
        ));
    }
}

//! Lanyard's cloud agent: the DIDComm v2 mediator phones talk through (and, later, the
//! issuer/verifier API). It builds on `wallet-core` for DIDs and envelopes and keeps its state
//! behind [`storage::MediatorStorage`], with sled as the embedded default.

pub mod admin;
pub mod api;
pub mod config;
pub mod http;
pub mod identity;
pub mod invitations;
pub mod issuer;
pub mod mediator;
pub mod metrics;
pub mod storage;

use std::net::SocketAddr;
use std::sync::Arc;

use wallet_core::did::Resolver;
use wallet_core::didcomm::{DidComm, UnpackOptions};

use crate::config::Config;
use crate::mediator::Mediator;
use crate::storage::SledStorage;

/// A running agent.
pub struct Running {
    pub addr: SocketAddr,
    pub did: String,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
    shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Running {
    /// Stops accepting, finishes in-flight requests, and waits for the server to end.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(());
        self.server
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Opens the store and identity in `config.data_dir`, binds, and serves until stopped.
pub async fn start(config: Config) -> Result<Running, String> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let identity = identity::load_or_create(&config.data_dir, &format!("{public_url}/didcomm"))?;
    let storage = SledStorage::open(&config.data_dir.join("mediator"), config.commit_window)
        .map_err(|e| format!("mediator store: {e}"))?;
    let didcomm =
        DidComm::new(identity.keys.clone(), Resolver::default()).with_options(UnpackOptions {
            max_message_bytes: config.max_message_bytes,
            ..UnpackOptions::default()
        });
    let did = identity.did.clone();
    let issuer_storage = issuer::store::SledIssuerStorage::open(
        &config.data_dir.join("issuer"),
        config.commit_window,
    )
    .map_err(|e| format!("issuer store: {e}"))?;
    let mediator = Arc::new(Mediator::new(
        identity.did,
        didcomm,
        storage,
        config.limits.clone(),
    ));
    let mailer = match &config.smtp_url {
        Some(url) => Some(issuer::delivery::Mailer::new(url, &config.smtp_from)?),
        None => None,
    };
    // One hardened client for what the agent fetches; callbacks get their own time limit.
    let http = wallet_core::net::HttpClient::new(config.net.clone())
        .map_err(|e| format!("outbound HTTP: {e}"))?;
    let callback_client = wallet_core::net::HttpClient::new(wallet_core::net::NetPolicy {
        timeout: config.callback_timeout,
        ..config.net.clone()
    })
    .map_err(|e| format!("outbound HTTP: {e}"))?;
    let sms = match &config.sms_url {
        Some(url) => Some(issuer::delivery::SmsGateway::new(
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
            identity.store.clone(),
            public_url.clone(),
        )
        .with_hub(mediator.clone(), &config.deep_link_scheme)
        .with_transports(mailer, sms)
        .with_network(http, config.status_list_max_bytes),
    );
    mediator.set_inbox(issuer::exchange::inbox(&issuer));
    // Messages whose hand-over to the mediator failed are tried again every few seconds.
    let retry = Arc::downgrade(&issuer);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let Some(issuer) = retry.upgrade() else { break };
            let stale = std::time::Duration::from_secs(5);
            if let Err(error) = issuer.flush_outbox_older_than(stale).await {
                tracing::warn!(%error, "outbox");
            }
        }
    });
    tokio::spawn(issuer::callbacks::run(
        Arc::downgrade(&issuer),
        issuer.callback_waker(),
        issuer::callbacks::Deliveries {
            client: callback_client,
            retry_unit: config.callback_retry,
            concurrency: config.callback_concurrency,
            retention: config.callback_retention,
        },
    ));
    // Messages a crash left between the issuer's store and the mediator's queue go out now.
    match issuer.flush_outbox().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            messages = n,
            "outbox handed to the mediator after a restart"
        ),
        Err(error) => tracing::error!(%error, "outbox"),
    }
    let admin_token = match &config.admin_token {
        Some(token) => token.clone(),
        None => identity::admin_token(&config.data_dir)?,
    };
    let state = Arc::new(http::AppState {
        mediator,
        public_url: public_url.clone(),
        links: invitations::AppLinks {
            scheme: config.deep_link_scheme.clone(),
            app_store_url: config.app_store_url.clone(),
            play_store_url: config.play_store_url.clone(),
        },
        admin_token: zeroize::Zeroizing::new(admin_token.clone()),
        apple_app_ids: config.apple_app_ids.clone(),
        android_package: config.android_package.clone(),
        android_cert_sha256: config.android_cert_sha256.clone(),
        max_message_bytes: config.max_message_bytes,
    });
    let app = http::router(state).merge(api::router(Arc::new(api::ApiState {
        issuer,
        admin_token: zeroize::Zeroizing::new(admin_token),
    })));
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });
    tracing::info!(%addr, %did, "agent listening");
    Ok(Running {
        addr,
        did,
        server,
        shutdown,
    })
}

//! The uniffi export of Lanyard's wallet for Swift, Kotlin and Python: a thin layer over
//! `wallet_core::wallet::Wallet` that translates types and errors and holds no logic of its own
//! (STYLE: "the FFI in its own thin crate"). Async methods become Swift `async` / Kotlin
//! `suspend` functions run on tokio. The platform implements two foreign traits: the
//! [`KeyProtector`] (Keychain / Android Keystore) and the [`WalletListener`].
//!
//! What crosses the boundary: records of connections, offers, credentials and requests, and
//! the store's data key to and from the platform keystore's wrap/unwrap (that is what a
//! keystore wrap is; the Rust side keeps it zeroizing). Private signing and agreement keys
//! never cross: they stay in wallet-core's key ring.

use std::sync::{Arc, Mutex};

use wallet_core::store::{ProtectorError, Unlock};
use wallet_core::wallet::{self as core, Wallet};

uniffi::setup_scaffolding!();

/// What went wrong, in words an app can show. Each variant is one kind of failure.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum LanyardError {
    #[error("{0}")]
    InvalidInvitation(String),
    #[error("{0}")]
    InvitationExpired(String),
    #[error("{0}")]
    InvitationUsed(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    WrongState(String),
    #[error("{0}")]
    BadCredential(String),
    /// The store could not be opened or written (a wrong passphrase is one of these).
    #[error("{0}")]
    Storage(String),
    #[error("{0}")]
    Message(String),
    /// The platform's key protector failed.
    #[error("{0}")]
    KeyProtector(String),
}

impl From<core::WalletError> for LanyardError {
    fn from(error: core::WalletError) -> Self {
        use core::WalletError as E;
        let message = error.to_string();
        match error {
            E::InvalidInvitation(_) => LanyardError::InvalidInvitation(message),
            E::InvitationExpired(_) => LanyardError::InvitationExpired(message),
            E::InvitationUsed => LanyardError::InvitationUsed(message),
            E::Unreachable(_) => LanyardError::Unreachable(message),
            E::NotAllowed(_) => LanyardError::Refused(message),
            E::Refused(..) => LanyardError::Refused(message),
            E::NotFound { .. } => LanyardError::NotFound(message),
            E::WrongState { .. } => LanyardError::WrongState(message),
            E::BadCredential(_) => LanyardError::BadCredential(message),
            E::Storage(_) => LanyardError::Storage(message),
            E::Message(_) => LanyardError::Message(message),
        }
    }
}

/// Why the platform keystore could not wrap or unwrap (raised by the app's implementation).
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum KeyProtectorError {
    #[error("{reason}")]
    Failed { reason: String },
}

/// The platform keystore: wraps and unwraps the wallet store's data key with a key the
/// platform keeps (Keychain / Secure Enclave, Android Keystore).
#[uniffi::export(with_foreign)]
pub trait KeyProtector: Send + Sync {
    fn wrap(&self, data_key: Vec<u8>) -> Result<Vec<u8>, KeyProtectorError>;
    fn unwrap(&self, wrapped: Vec<u8>) -> Result<Vec<u8>, KeyProtectorError>;
}

/// Adapts the foreign protector to wallet-core's.
struct Protector(Arc<dyn KeyProtector>);

impl wallet_core::store::KeyProtector for Protector {
    fn wrap(&self, data_key: &[u8]) -> Result<Vec<u8>, ProtectorError> {
        self.0
            .wrap(data_key.to_vec())
            .map_err(|e| ProtectorError(e.to_string()))
    }

    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, ProtectorError> {
        self.0
            .unwrap(wrapped.to_vec())
            .map_err(|e| ProtectorError(e.to_string()))
    }
}

/// A field of a credential or an offer.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Field {
    pub name: String,
    pub value: String,
    /// What the field means, from the issuer's template.
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ConnectionInfo {
    pub id: String,
    /// The organisation's name.
    pub label: String,
    pub goal: Option<String>,
    pub created_at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct OfferInfo {
    pub id: String,
    pub issuer_name: String,
    pub comment: Option<String>,
    pub fields: Vec<Field>,
    pub received_at: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct CredentialInfo {
    pub id: String,
    pub name: Option<String>,
    pub issuer_name: String,
    pub issuer_did: String,
    pub template_id: Option<String>,
    pub fields: Vec<Field>,
    pub valid_from: Option<u64>,
    pub valid_until: Option<u64>,
    pub stored_at: u64,
    /// The signed credential as JSON, for display or export.
    pub json: String,
}

#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct PresentationRequestInfo {
    pub id: String,
    pub verifier_name: String,
    pub purpose: String,
    pub template_id: String,
    pub required_fields: Vec<String>,
    /// The stored credentials that can answer it.
    pub matching_credential_ids: Vec<String>,
    pub state: String,
}

#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct SyncSummary {
    pub processed: u64,
    pub duplicates: u64,
    pub refused: u64,
}

/// What accepting an invitation led to.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum AcceptedInvitation {
    Connection { connection: ConnectionInfo },
    PresentationRequest { request: PresentationRequestInfo },
}

/// What the app hears.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum WalletEvent {
    ConnectionEstablished {
        connection_id: String,
        label: String,
    },
    OfferReceived {
        offer_id: String,
        issuer_name: String,
    },
    CredentialStored {
        credential_id: String,
        issuer_name: String,
    },
    CredentialsRemoved {
        template_id: Option<String>,
        count: u64,
    },
    PresentationRequested {
        request_id: String,
        verifier_name: String,
    },
    PresentationSent {
        request_id: String,
    },
    PresentationResult {
        request_id: String,
        verified: bool,
        reasons: Vec<String>,
    },
    Problem {
        message: String,
    },
}

/// Hears the wallet's events (implemented by the app).
#[uniffi::export(with_foreign)]
pub trait WalletListener: Send + Sync {
    fn on_event(&self, event: WalletEvent);
}

struct Listener(Arc<dyn WalletListener>);

impl core::WalletListener for Listener {
    fn on_event(&self, event: core::WalletEvent) {
        use core::WalletEvent as E;
        self.0.on_event(match event {
            E::ConnectionEstablished {
                connection_id,
                label,
            } => WalletEvent::ConnectionEstablished {
                connection_id,
                label,
            },
            E::OfferReceived {
                offer_id,
                issuer_name,
            } => WalletEvent::OfferReceived {
                offer_id,
                issuer_name,
            },
            E::CredentialStored {
                credential_id,
                issuer_name,
            } => WalletEvent::CredentialStored {
                credential_id,
                issuer_name,
            },
            E::CredentialsRemoved { template_id, count } => WalletEvent::CredentialsRemoved {
                template_id,
                count: count as u64,
            },
            E::PresentationRequested {
                request_id,
                verifier_name,
            } => WalletEvent::PresentationRequested {
                request_id,
                verifier_name,
            },
            E::PresentationSent { request_id } => WalletEvent::PresentationSent { request_id },
            E::PresentationResult {
                request_id,
                verified,
                reasons,
            } => WalletEvent::PresentationResult {
                request_id,
                verified,
                reasons,
            },
            E::Problem { message } => WalletEvent::Problem { message },
        });
    }
}

fn connection_info(c: core::Connection) -> ConnectionInfo {
    ConnectionInfo {
        id: c.id,
        label: c.label,
        goal: c.goal,
        created_at: c.created_at,
    }
}

fn request_info(r: core::RequestRecord, matching: Vec<String>) -> PresentationRequestInfo {
    PresentationRequestInfo {
        id: r.id,
        verifier_name: r.verifier_name,
        purpose: r.purpose,
        template_id: r.template_id,
        required_fields: r.required_fields,
        matching_credential_ids: matching,
        state: format!("{:?}", r.state),
    }
}

fn credential_info(c: core::StoredCredential) -> CredentialInfo {
    CredentialInfo {
        json: c.credential.to_string(),
        id: c.id,
        name: c.name,
        issuer_name: c.issuer_name,
        issuer_did: c.issuer_did,
        template_id: c.template_id,
        fields: c
            .fields
            .into_iter()
            .map(|f| Field {
                name: f.name,
                value: f.value,
                description: f.description,
            })
            .collect(),
        valid_from: c.valid_from,
        valid_until: c.valid_until,
        stored_at: c.stored_at,
    }
}

/// What the wallet's HTTP client may reach beyond public HTTPS hosts.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct NetworkOptions {
    /// Loopback hosts (an agent on this machine), over plain http too: development only.
    pub allow_loopback: bool,
    /// Networks (`10.0.2.0/24`), addresses or host names exempt from the refusal of private
    /// addresses (an agent on the developer's network).
    pub allow: Vec<String>,
}

fn net_policy(options: NetworkOptions) -> Result<wallet_core::net::NetPolicy, LanyardError> {
    let allow = options
        .allow
        .iter()
        .map(|entry| entry.parse())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e: wallet_core::net::NetError| LanyardError::Refused(e.to_string()))?;
    Ok(wallet_core::net::NetPolicy {
        allow_loopback: options.allow_loopback,
        allow,
        ..wallet_core::net::NetPolicy::default()
    })
}

fn protector_error(e: core::WalletError) -> LanyardError {
    match e {
        core::WalletError::Storage(wallet_core::store::StoreError::ProtectorFailed(_))
        | core::WalletError::Storage(wallet_core::store::StoreError::ProtectorWrongKey) => {
            LanyardError::KeyProtector(e.to_string())
        }
        other => other.into(),
    }
}

/// A customer's wallet.
#[derive(uniffi::Object)]
pub struct LanyardWallet {
    inner: Arc<Wallet>,
    live: tokio::sync::Mutex<Option<core::Live>>,
    listener: Mutex<Option<Arc<dyn WalletListener>>>,
}

impl LanyardWallet {
    fn new(wallet: Wallet) -> Arc<LanyardWallet> {
        Arc::new(LanyardWallet {
            inner: Arc::new(wallet),
            live: tokio::sync::Mutex::new(None),
            listener: Mutex::new(None),
        })
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl LanyardWallet {
    /// Opens (or creates) the wallet in `dir`, its data key wrapped by the platform keystore.
    #[uniffi::constructor]
    pub fn open(dir: String, protector: Arc<dyn KeyProtector>) -> Result<Arc<Self>, LanyardError> {
        LanyardWallet::open_with_network(dir, protector, NetworkOptions::default())
    }

    /// [`LanyardWallet::open`] with what the wallet's HTTP client may reach beyond public
    /// HTTPS hosts.
    #[uniffi::constructor]
    pub fn open_with_network(
        dir: String,
        protector: Arc<dyn KeyProtector>,
        network: NetworkOptions,
    ) -> Result<Arc<Self>, LanyardError> {
        let wallet = Wallet::builder(
            std::path::Path::new(&dir),
            Unlock::Protector(Arc::new(Protector(protector))),
        )
        .network(net_policy(network)?)
        .open()
        .map_err(protector_error)?;
        Ok(LanyardWallet::new(wallet))
    }

    /// Opens (or creates) the wallet in `dir` under a passphrase (desktop and tests).
    #[uniffi::constructor]
    pub fn open_with_passphrase(
        dir: String,
        passphrase: String,
    ) -> Result<Arc<Self>, LanyardError> {
        let wallet = Wallet::open(std::path::Path::new(&dir), Unlock::passphrase(passphrase))?;
        Ok(LanyardWallet::new(wallet))
    }

    pub fn set_listener(&self, listener: Option<Arc<dyn WalletListener>>) {
        self.inner.set_listener(
            listener
                .clone()
                .map(|l| Arc::new(Listener(l)) as Arc<dyn core::WalletListener>),
        );
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = listener;
    }

    pub fn set_auto_accept(&self, on: bool) {
        self.inner.set_auto_accept(on);
    }

    /// Accepts what a QR code, a link or the OS handed over.
    pub async fn accept_invitation(
        &self,
        text: String,
    ) -> Result<AcceptedInvitation, LanyardError> {
        Ok(match self.inner.accept_invitation(&text).await? {
            core::Accepted::Connection(c) => AcceptedInvitation::Connection {
                connection: connection_info(c),
            },
            core::Accepted::PresentationRequest(r) => {
                let matching = self
                    .inner
                    .presentation_requests()?
                    .into_iter()
                    .find(|(req, _)| req.id == r.id)
                    .map(|(_, m)| m)
                    .unwrap_or_default();
                AcceptedInvitation::PresentationRequest {
                    request: request_info(r, matching),
                }
            }
        })
    }

    pub fn connections(&self) -> Result<Vec<ConnectionInfo>, LanyardError> {
        Ok(self
            .inner
            .connections()?
            .into_iter()
            .map(connection_info)
            .collect())
    }

    /// Picks up and processes everything waiting.
    pub async fn sync(&self) -> Result<SyncSummary, LanyardError> {
        let report = self.inner.sync().await?;
        Ok(SyncSummary {
            processed: report.processed as u64,
            duplicates: report.duplicates as u64,
            refused: report.refused as u64,
        })
    }

    /// Processes messages as they arrive until [`LanyardWallet::stop_live`].
    pub async fn start_live(&self) -> Result<(), LanyardError> {
        let mut live = self.live.lock().await;
        if live.is_none() {
            *live = Some(self.inner.start_live().await?);
        }
        Ok(())
    }

    pub async fn stop_live(&self) {
        if let Some(live) = self.live.lock().await.take() {
            live.stop().await;
        }
    }

    pub fn offers(&self) -> Result<Vec<OfferInfo>, LanyardError> {
        Ok(self
            .inner
            .offers()?
            .into_iter()
            .map(|o| OfferInfo {
                id: o.id,
                issuer_name: o.issuer_name,
                comment: o.comment,
                fields: o
                    .attributes
                    .into_iter()
                    .map(|(name, value)| Field {
                        description: o
                            .descriptions
                            .iter()
                            .find(|(n, _)| *n == name)
                            .map(|(_, d)| d.clone()),
                        name,
                        value,
                    })
                    .collect(),
                received_at: o.received_at,
            })
            .collect())
    }

    pub async fn accept_offer(&self, id: String) -> Result<(), LanyardError> {
        Ok(self.inner.accept_offer(&id).await?)
    }

    pub async fn decline_offer(&self, id: String) -> Result<(), LanyardError> {
        Ok(self.inner.decline_offer(&id).await?)
    }

    pub fn credentials(&self) -> Result<Vec<CredentialInfo>, LanyardError> {
        Ok(self
            .inner
            .credentials()?
            .into_iter()
            .map(credential_info)
            .collect())
    }

    pub fn credential(&self, id: String) -> Result<CredentialInfo, LanyardError> {
        Ok(credential_info(self.inner.credential(&id)?))
    }

    pub fn delete_credential(&self, id: String) -> Result<(), LanyardError> {
        Ok(self.inner.delete_credential(&id)?)
    }

    pub fn presentation_requests(&self) -> Result<Vec<PresentationRequestInfo>, LanyardError> {
        Ok(self
            .inner
            .presentation_requests()?
            .into_iter()
            .map(|(r, m)| request_info(r, m))
            .collect())
    }

    /// Answers a verifier with the chosen credentials (only those go out).
    pub async fn present(
        &self,
        request_id: String,
        credential_ids: Vec<String>,
    ) -> Result<(), LanyardError> {
        Ok(self.inner.present(&request_id, &credential_ids).await?)
    }

    pub async fn decline_request(&self, request_id: String) -> Result<(), LanyardError> {
        Ok(self.inner.decline_request(&request_id).await?)
    }
}

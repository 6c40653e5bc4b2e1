//! The uniffi export of Lanyard's wallet for Swift, Kotlin and Python: a thin layer over
//! `wallet_core::Wallet` that translates types and errors and holds no logic of its own
//! (STYLE: "the FFI in its own thin crate"). Async methods become Swift `async` / Kotlin
//! `suspend` functions run on tokio. The platform implements two foreign traits: the
//! [`KeyProtector`] (Keychain / Android Keystore) and the [`WalletListener`].
//!
//! What crosses the boundary: records of connections, offers, credentials and requests, and
//! the store's data key to and from the platform keystore's wrap/unwrap (that is what a
//! keystore wrap is; the Rust side keeps it zeroizing). Private signing and agreement keys
//! never cross: they stay in wallet-core's key ring.

#![warn(missing_docs, unreachable_pub)]

use std::sync::{Arc, Mutex};

use lanyard_protocol::store::{ProtectorError, Unlock};
use wallet_core::{self as core, Wallet};
use zeroize::Zeroizing;

uniffi::setup_scaffolding!();

/// What went wrong, in words an app can show. Each variant is one kind of failure; the
/// message is the wallet's, fit to show. Two kinds are transient, worth offering "try again":
/// [`LanyardError::Unreachable`] and [`LanyardError::Busy`]
/// ([`LanyardError::is_transient`]); every other kind gives the same answer until the input
/// or the wallet's state changes.
#[derive(Debug, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum LanyardError {
    /// The text is not an invitation the wallet can use.
    #[error("{0}")]
    InvalidInvitation(String),
    /// The invitation has expired.
    #[error("{0}")]
    InvitationExpired(String),
    /// The single-use invitation was already used.
    #[error("{0}")]
    InvitationUsed(String),
    /// The agent or a peer could not be reached (no network, a timeout): transient.
    #[error("{0}")]
    Unreachable(String),
    /// A peer refused, or an address the wallet's network policy does not allow.
    #[error("{0}")]
    Refused(String),
    /// No offer, credential or request has this id.
    #[error("{0}")]
    NotFound(String),
    /// The offer or request is not in a state that allows this step.
    #[error("{0}")]
    WrongState(String),
    /// A received credential did not verify.
    #[error("{0}")]
    BadCredential(String),
    /// The store could not be opened or written (a wrong passphrase is one of these).
    #[error("{0}")]
    Storage(String),
    /// The store is held by another open of the same wallet (another process, or a wallet
    /// not yet released): transient.
    #[error("{0}")]
    Busy(String),
    /// A DIDComm message could not be read or written.
    #[error("{0}")]
    Message(String),
    /// The platform's key protector failed.
    #[error("{0}")]
    KeyProtector(String),
}

impl LanyardError {
    /// Whether the same call may succeed if tried again later, unchanged (the wallet's
    /// [`core::WalletError::is_transient`], carried by the variant).
    pub fn is_transient(&self) -> bool {
        matches!(self, LanyardError::Unreachable(_) | LanyardError::Busy(_))
    }
}

impl From<core::WalletError> for LanyardError {
    fn from(error: core::WalletError) -> Self {
        use core::WalletError as E;
        let message = error.to_string();
        let transient = error.is_transient();
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
            E::Storage(_) if transient => LanyardError::Busy(message),
            E::Storage(_) => LanyardError::Storage(message),
            E::KeyProtector(_) => LanyardError::KeyProtector(message),
            E::Message(_) => LanyardError::Message(message),
        }
    }
}

/// Why the platform keystore could not wrap or unwrap (raised by the app's implementation).
#[derive(Debug, thiserror::Error, uniffi::Error)]
pub enum KeyProtectorError {
    /// The keystore failed; `reason` says how (shown in the wallet's error).
    #[error("{reason}")]
    Failed {
        /// What the keystore reported.
        reason: String,
    },
}

/// The store's data key on its way to or from the platform keystore. It crosses the boundary
/// exactly as a `Vec<u8>` does (bytes / `ByteArray` / `Data`, the same wire format and type
/// metadata), but every buffer the Rust side holds is zeroized: the key's own copy when it is
/// dropped, the transfer buffer a returned key arrives in as soon as the key is read out of it,
/// and the buffer a key is lowered into is sized up front so that it never reallocates (a
/// reallocation would leave a copy behind). The transfer buffer handed to the platform for
/// `wrap` is freed by the platform's generated code through uniffi, which does not zeroize it,
/// and the platform's own byte array copies are the platform's to clear.
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// The key, held zeroizing.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> SecretBytes {
        SecretBytes(bytes)
    }

    /// The bytes, moved out (no copy is left behind).
    pub fn into_inner(mut self) -> Vec<u8> {
        std::mem::take(&mut *self.0)
    }
}

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBytes({} bytes, [redacted])", self.0.len())
    }
}

// SAFETY: the FFI type is a RustBuffer holding what `Vec<u8>`'s converter writes (an i32
// big-endian count, then the bytes), and the type metadata is `Vec<u8>`'s, so the generated
// foreign code is the same as for `Vec<u8>`; only the Rust side's buffers are handled
// differently (zeroized).
unsafe impl<UT> uniffi::FfiConverter<UT> for SecretBytes {
    type FfiType = uniffi::RustBuffer;

    fn lower(obj: SecretBytes) -> uniffi::RustBuffer {
        let mut buf = Vec::with_capacity(4 + obj.0.len());
        <Self as uniffi::FfiConverter<UT>>::write(obj, &mut buf);
        uniffi::RustBuffer::from_vec(buf)
    }

    fn try_lift(buffer: uniffi::RustBuffer) -> uniffi::Result<SecretBytes> {
        let transfer = Zeroizing::new(buffer.destroy_into_vec());
        let mut rest = transfer.as_slice();
        let value = <Self as uniffi::FfiConverter<UT>>::try_read(&mut rest)?;
        if !rest.is_empty() {
            uniffi::deps::anyhow::bail!("{} bytes left after a data key", rest.len());
        }
        Ok(value)
    }

    fn write(obj: SecretBytes, buf: &mut Vec<u8>) {
        // A data key is 32 bytes; a protector never sees anything near i32::MAX.
        let len = i32::try_from(obj.0.len()).unwrap_or(i32::MAX);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&obj.0);
    }

    fn try_read(buf: &mut &[u8]) -> uniffi::Result<SecretBytes> {
        let (len, rest) = buf
            .split_first_chunk::<4>()
            .ok_or_else(|| uniffi::deps::anyhow::anyhow!("a data key without its length"))?;
        let len = usize::try_from(i32::from_be_bytes(*len))?;
        if rest.len() < len {
            uniffi::deps::anyhow::bail!("a data key of {len} bytes holds {}", rest.len());
        }
        let (bytes, rest) = rest.split_at(len);
        let mut value = Zeroizing::new(Vec::with_capacity(len));
        value.extend_from_slice(bytes);
        *buf = rest;
        Ok(SecretBytes(value))
    }

    const TYPE_ID_META: uniffi::MetadataBuffer = <Vec<u8> as uniffi::TypeId<UT>>::TYPE_ID_META;
}

uniffi::derive_ffi_traits!(blanket SecretBytes);

/// The platform keystore: wraps and unwraps the wallet store's data key with a key the
/// platform keeps (Keychain / Secure Enclave, Android Keystore).
#[uniffi::export(with_foreign)]
pub trait KeyProtector: Send + Sync {
    /// Encrypts the store's data key with the platform's key; the result is kept in the
    /// store's header.
    fn wrap(&self, data_key: SecretBytes) -> Result<Vec<u8>, KeyProtectorError>;
    /// Returns the data key from what [`KeyProtector::wrap`] produced.
    fn unwrap(&self, wrapped: Vec<u8>) -> Result<SecretBytes, KeyProtectorError>;
}

/// Adapts the foreign protector to wallet-core's.
struct Protector(Arc<dyn KeyProtector>);

impl lanyard_protocol::store::KeyProtector for Protector {
    fn wrap(&self, data_key: &[u8]) -> Result<Vec<u8>, ProtectorError> {
        self.0
            .wrap(SecretBytes(Zeroizing::new(data_key.to_vec())))
            .map_err(|e| ProtectorError(e.to_string()))
    }

    /// The key moves out of its zeroizing buffer into the store's header code, which holds it
    /// zeroizing in turn.
    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, ProtectorError> {
        self.0
            .unwrap(wrapped.to_vec())
            .map(SecretBytes::into_inner)
            .map_err(|e| ProtectorError(e.to_string()))
    }
}

/// A field of a credential or an offer: the wallet's own record (its uniffi derive, named
/// `Field` in the apps). `Debug` redacts the value.
pub use wallet_core::CredentialField as Field;

/// A connection with an organisation, as the app shows it (the wallet's record without the
/// pairwise DIDs).
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ConnectionInfo {
    /// The connection's id.
    pub id: String,
    /// The organisation's name.
    pub label: String,
    /// What the invitation said it is for.
    pub goal: Option<String>,
    /// When it was made (Unix seconds).
    pub created_at: u64,
}

/// An offer. `Debug` redacts the comment and the fields' values.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct OfferInfo {
    /// The offer's id (to accept or decline it).
    pub id: String,
    /// The organisation's name.
    pub issuer_name: String,
    /// What the issuer wrote with the offer.
    pub comment: Option<String>,
    /// The offered fields, with their template descriptions.
    pub fields: Vec<Field>,
    /// When it arrived (Unix seconds).
    pub received_at: u64,
}

lanyard_protocol::redacted_debug!(OfferInfo {
    shown: [id, issuer_name, fields, received_at],
    redacted: [comment],
});

/// A stored credential. `Debug` redacts the fields' values and the signed credential.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct CredentialInfo {
    /// The credential's id (`urn:uuid:...`).
    pub id: String,
    /// The credential's name, as the issuer gave it.
    pub name: Option<String>,
    /// The organisation's name.
    pub issuer_name: String,
    /// The issuer's DID, which signed it.
    pub issuer_did: String,
    /// The issuer's template it was made from, when it says.
    pub template_id: Option<String>,
    /// The subject's fields, in the credential's order.
    pub fields: Vec<Field>,
    /// Valid from (Unix seconds), when it says.
    pub valid_from: Option<u64>,
    /// Valid until (Unix seconds), when it says.
    pub valid_until: Option<u64>,
    /// When it was stored (Unix seconds).
    pub stored_at: u64,
    /// The signed credential as JSON, for display or export.
    pub json: String,
}

lanyard_protocol::redacted_debug!(CredentialInfo {
    shown: [
        id,
        name,
        issuer_name,
        issuer_did,
        template_id,
        fields,
        valid_from,
        valid_until,
        stored_at
    ],
    redacted: [json],
});

/// A verifier's request waiting for the customer's answer, with the credentials that can
/// answer it.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct PresentationRequestInfo {
    /// The request's id (to present or decline).
    pub id: String,
    /// What the verifier calls itself (the invitation's label): a claim, not proven. Show it
    /// beside `verified_domain`.
    pub verifier_name: String,
    /// The verifier's DID; the answer is encrypted to it.
    pub verifier_did: String,
    /// The domain the presentation would be bound to, as the verifier asked.
    pub domain: String,
    /// `domain` when the wallet checked that the verifier is reached through that host (its
    /// DIDComm endpoint, or its did:web); null when the request's domain is not the verifier's.
    pub verified_domain: Option<String>,
    /// Why the verifier asks, in its words.
    pub purpose: String,
    /// The template whose credentials can answer.
    pub template_id: String,
    /// The fields the answer discloses.
    pub required_fields: Vec<String>,
    /// The stored credentials that can answer it.
    pub matching_credential_ids: Vec<String>,
    /// Where the request stands: `Pending` (the lists hold only these), `Sent`, `Verified`,
    /// `Failed` or `Declined`.
    pub state: String,
}

/// What a sync did: the wallet's own record (its uniffi derive, named `SyncSummary` in the
/// apps).
pub use wallet_core::SyncReport as SyncSummary;

/// The service that wakes this device when a message waits at the mediator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum PushPlatform {
    /// Apple Push Notification service: the token is the device token as hex.
    Apns,
    /// Firebase Cloud Messaging: the token is the registration token.
    Fcm,
    /// An HTTPS webhook: the token is its URL.
    Webhook,
}

impl From<PushPlatform> for core::PushService {
    fn from(platform: PushPlatform) -> Self {
        match platform {
            PushPlatform::Apns => core::PushService::Apns,
            PushPlatform::Fcm => core::PushService::Fcm,
            PushPlatform::Webhook => core::PushService::Webhook,
        }
    }
}

/// What accepting an invitation led to.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum AcceptedInvitation {
    /// A connection with the inviting organisation.
    Connection {
        /// The connection.
        connection: ConnectionInfo,
    },
    /// A verifier's request, waiting for the customer's answer.
    PresentationRequest {
        /// The request.
        request: PresentationRequestInfo,
    },
}

/// What the app hears: the wallet's own event type (its uniffi derive, wallet-core's
/// `uniffi` feature).
pub use wallet_core::WalletEvent;

/// Hears the wallet's events (implemented by the app).
#[uniffi::export(with_foreign)]
pub trait WalletListener: Send + Sync {
    /// Called for each event, on the thread the wallet's work runs on: return quickly.
    fn on_event(&self, event: WalletEvent);
}

/// Adapts the foreign listener to wallet-core's.
struct Listener(Arc<dyn WalletListener>);

impl core::WalletListener for Listener {
    fn on_event(&self, event: WalletEvent) {
        self.0.on_event(event);
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
        verifier_did: r.verifier_did,
        domain: r.domain,
        verified_domain: r.verified_domain,
        purpose: r.purpose,
        template_id: r.template_id,
        required_fields: r.required_fields,
        matching_credential_ids: matching,
        state: r.state.name().to_string(),
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
        fields: c.fields,
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

fn net_policy(options: NetworkOptions) -> Result<lanyard_protocol::net::NetPolicy, LanyardError> {
    let allow = options
        .allow
        .iter()
        .map(|entry| entry.parse())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e: lanyard_protocol::net::NetError| LanyardError::Refused(e.to_string()))?;
    Ok(lanyard_protocol::net::NetPolicy {
        allow_loopback: options.allow_loopback,
        allow,
        ..lanyard_protocol::net::NetPolicy::default()
    })
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
        .open()?;
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

    /// Sets who hears the wallet's events (none: nobody).
    pub fn set_listener(&self, listener: Option<Arc<dyn WalletListener>>) {
        self.inner.set_listener(
            listener
                .clone()
                .map(|l| Arc::new(Listener(l)) as Arc<dyn core::WalletListener>),
        );
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = listener;
    }

    /// Whether offers are accepted as they arrive (otherwise they wait for the customer).
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
                let matching = r.matching(&self.inner.credentials()?);
                AcceptedInvitation::PresentationRequest {
                    request: request_info(r, matching),
                }
            }
        })
    }

    /// The connections with organisations.
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
        Ok(self.inner.sync().await?)
    }

    /// Asks the mediator to wake this device through `platform` when a message waits (the
    /// platform's token, or the webhook's URL). Call it again whenever the platform gives a
    /// new token; on a wake, call [`LanyardWallet::sync`].
    pub async fn register_push(
        &self,
        platform: PushPlatform,
        token: String,
    ) -> Result<(), LanyardError> {
        Ok(self.inner.register_push(platform.into(), &token).await?)
    }

    /// Stops wake-ups (nothing to do when none is registered).
    pub async fn unregister_push(&self) -> Result<(), LanyardError> {
        Ok(self.inner.unregister_push().await?)
    }

    /// Processes messages as they arrive until [`LanyardWallet::stop_live`].
    pub async fn start_live(&self) -> Result<(), LanyardError> {
        let mut live = self.live.lock().await;
        if live.is_none() {
            *live = Some(self.inner.start_live().await?);
        }
        Ok(())
    }

    /// Stops live mode (nothing when it is not running).
    pub async fn stop_live(&self) {
        if let Some(live) = self.live.lock().await.take() {
            live.stop().await;
        }
    }

    /// The offers waiting for the customer's decision.
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

    /// Accepts an offer: the credential is requested and arrives with a later sync.
    pub async fn accept_offer(&self, id: String) -> Result<(), LanyardError> {
        Ok(self.inner.accept_offer(&id).await?)
    }

    /// Declines an offer and tells the issuer.
    pub async fn decline_offer(&self, id: String) -> Result<(), LanyardError> {
        Ok(self.inner.decline_offer(&id).await?)
    }

    /// The stored credentials.
    pub fn credentials(&self) -> Result<Vec<CredentialInfo>, LanyardError> {
        Ok(self
            .inner
            .credentials()?
            .into_iter()
            .map(credential_info)
            .collect())
    }

    /// One stored credential.
    pub fn credential(&self, id: String) -> Result<CredentialInfo, LanyardError> {
        Ok(credential_info(self.inner.credential(&id)?))
    }

    /// Deletes a stored credential.
    pub fn delete_credential(&self, id: String) -> Result<(), LanyardError> {
        Ok(self.inner.delete_credential(&id)?)
    }

    /// The verifiers' requests waiting for an answer, each with the credentials that match.
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

    /// Declines a verifier's request (nothing is sent but the refusal).
    pub async fn decline_request(&self, request_id: String) -> Result<(), LanyardError> {
        Ok(self.inner.decline_request(&request_id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uniffi::FfiConverter;

    #[test]
    fn a_data_key_crosses_as_a_byte_vector_does() {
        let key: Vec<u8> = (0..32).collect();
        let ours = <SecretBytes as FfiConverter<crate::UniFfiTag>>::lower(SecretBytes::new(
            Zeroizing::new(key.clone()),
        ))
        .destroy_into_vec();
        let plain =
            <Vec<u8> as uniffi::Lower<crate::UniFfiTag>>::lower(key.clone()).destroy_into_vec();
        assert_eq!(ours, plain, "the same wire format as Vec<u8>");
        assert_eq!(
            <SecretBytes as FfiConverter<crate::UniFfiTag>>::TYPE_ID_META.as_ref(),
            <Vec<u8> as uniffi::TypeId<crate::UniFfiTag>>::TYPE_ID_META.as_ref(),
            "the same type for the bindings"
        );
        let lifted = <SecretBytes as FfiConverter<crate::UniFfiTag>>::try_lift(
            uniffi::RustBuffer::from_vec(plain),
        )
        .unwrap();
        assert_eq!(lifted.into_inner(), key);
    }

    #[test]
    fn a_short_or_overlong_transfer_is_refused() {
        let lift = |bytes: Vec<u8>| {
            <SecretBytes as FfiConverter<crate::UniFfiTag>>::try_lift(uniffi::RustBuffer::from_vec(
                bytes,
            ))
            .unwrap_err()
            .to_string()
        };
        assert!(lift(vec![0, 0]).contains("without its length"));
        assert!(lift(vec![0, 0, 0, 3, 1, 2]).contains("of 3 bytes holds 2"));
        assert!(lift(vec![0, 0, 0, 1, 1, 2]).contains("1 bytes left"));
    }

    /// The platform keystore as an app implements it: wraps by copying, or refuses.
    struct Keystore {
        refuse: bool,
    }

    impl KeyProtector for Keystore {
        fn wrap(&self, data_key: SecretBytes) -> Result<Vec<u8>, KeyProtectorError> {
            Ok(data_key.into_inner())
        }
        fn unwrap(&self, wrapped: Vec<u8>) -> Result<SecretBytes, KeyProtectorError> {
            if self.refuse {
                return Err(KeyProtectorError::Failed {
                    reason: "the device is locked".into(),
                });
            }
            Ok(SecretBytes::new(Zeroizing::new(wrapped)))
        }
    }

    fn open(dir: &std::path::Path, refuse: bool) -> Result<Arc<LanyardWallet>, LanyardError> {
        LanyardWallet::open_with_network(
            dir.to_string_lossy().into_owned(),
            Arc::new(Keystore { refuse }),
            NetworkOptions {
                allow_loopback: true,
                allow: Vec::new(),
            },
        )
    }

    #[test]
    fn a_wallet_held_by_another_open_is_busy_and_transient() {
        let dir = tempfile::tempdir().unwrap();
        let _held = open(dir.path(), false).unwrap();
        let error = open(dir.path(), false).map(|_| ()).unwrap_err();
        assert!(
            matches!(error, LanyardError::Busy(ref m) if m.contains("could not acquire lock")),
            "{error:?}"
        );
        assert!(error.is_transient());
    }

    #[test]
    fn an_unreachable_agent_is_transient() {
        let dir = tempfile::tempdir().unwrap();
        let wallet = open(dir.path(), false).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let error = runtime
            .block_on(wallet.accept_invitation("http://127.0.0.1:9/i/abcdefabcdef".into()))
            .unwrap_err();
        assert!(
            matches!(error, LanyardError::Unreachable(ref m)
                if m.starts_with("Cannot reach http://127.0.0.1:9/i/abcdefabcdef")),
            "{error:?}"
        );
        assert!(error.is_transient());
    }

    #[test]
    fn a_refusing_key_protector_and_an_unknown_id_are_permanent() {
        let dir = tempfile::tempdir().unwrap();
        let wallet = open(dir.path(), false).unwrap();
        let error = wallet.credential("urn:uuid:no-such".into()).unwrap_err();
        assert!(
            matches!(error, LanyardError::NotFound(ref m)
                if m == "No credential has the id urn:uuid:no-such."),
            "{error:?}"
        );
        assert!(!error.is_transient());
        drop(wallet);

        let error = open(dir.path(), true).map(|_| ()).unwrap_err();
        assert!(
            matches!(error, LanyardError::KeyProtector(ref m)
                if m.ends_with("the platform key protector failed: the device is locked")),
            "{error:?}"
        );
        assert!(!error.is_transient());
        // A passphrase on a keystore-protected wallet: the store's error, permanent.
        let error = LanyardWallet::open_with_passphrase(
            dir.path().to_string_lossy().into_owned(),
            "a passphrase".into(),
        )
        .map(|_| ())
        .unwrap_err();
        assert!(
            matches!(error, LanyardError::Storage(ref m) if m.contains("opened with a passphrase")),
            "{error:?}"
        );
        assert!(!error.is_transient());
    }

    #[test]
    fn debug_shows_no_key_and_no_personal_data() {
        let key = SecretBytes::new(Zeroizing::new(vec![0xAB; 32]));
        assert_eq!(format!("{key:?}"), "SecretBytes(32 bytes, [redacted])");
        let field = Field {
            name: "email".into(),
            value: "jane.secret@example.com".into(),
            description: None,
        };
        let offer = OfferInfo {
            id: "o".into(),
            issuer_name: "Acme".into(),
            comment: Some("for Jane Secretname".into()),
            fields: vec![field.clone()],
            received_at: 0,
        };
        let credential = CredentialInfo {
            id: "c".into(),
            name: None,
            issuer_name: "Acme".into(),
            issuer_did: "did:web:acme.example".into(),
            template_id: None,
            fields: vec![field],
            valid_from: None,
            valid_until: None,
            stored_at: 0,
            json: r#"{"email":"jane.secret@example.com"}"#.into(),
        };
        for shown in [format!("{offer:?}"), format!("{credential:?}")] {
            assert!(
                !shown.contains("jane.secret") && !shown.contains("Secretname"),
                "{shown}"
            );
            assert!(shown.contains("email"), "field names are shown: {shown}");
        }
    }
}

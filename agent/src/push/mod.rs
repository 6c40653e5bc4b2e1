//! The push gateway: it holds the device tokens phones register (APNs, FCM or an HTTPS
//! webhook), gives the mediator an opaque [`WakeHandle`] instead, and wakes the device behind
//! a handle with no message content and no sender (an APNs background push, an FCM data-only
//! message, a webhook POST of a fixed body).
//!
//! [`PushGateway`] is what the mediator holds (`Option<Arc<dyn PushGateway>>`):
//! [`LocalPushGateway`] in the agent's own process, over the agent's store ([`PushStore`]:
//! sled or PostgreSQL, tokens sealed at rest), or [`RemotePushGateway`] over the HTTP API of a
//! gateway run alone (`agent push-gateway`, [`gateway_router`]). Every request to APNs, FCM,
//! Google's token endpoint and webhooks goes through the one hardened client
//! (`lanyard_protocol::net::HttpClient`).
//!
//! A wake is coalesced per handle: at most one per window (`LANYARD_PUSH_COALESCE_S`) across
//! every agent on the same store, decided first in memory and then by a conditional update in
//! the store (exactly one agent wins). A 5xx or 429 is retried in the background with backoff
//! (bounded attempts, `Retry-After` honoured); a token the platform reports gone (APNs 410,
//! FCM `UNREGISTERED`, webhook 410) drops the handle.

mod apns;
mod config;
mod fcm;
mod jwt;
mod local;
mod store;

use std::fmt;
use std::str::FromStr;

use rand_core::{OsRng, RngCore};

pub use config::PushConfig;
pub use local::LocalPushGateway;
pub use store::{PgPushStore, PushBackend, PushStore, SledPushStore, WakeClaim};

use crate::storage::StorageError;
use lanyard_protocol::net::NetError;

/// Which service wakes the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Apple Push Notification service (iOS): a background push.
    Apns,
    /// Firebase Cloud Messaging HTTP v1 (Android): a data-only message.
    Fcm,
    /// A plain HTTPS webhook the wallet's own service runs: a POST of a fixed body.
    Webhook,
}

impl Platform {
    /// The platform's name as registered and in metrics: `apns`, `fcm` or `webhook`.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Apns => "apns",
            Platform::Fcm => "fcm",
            Platform::Webhook => "webhook",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Platform {
    type Err = PushError;

    fn from_str(text: &str) -> Result<Platform, PushError> {
        match text {
            "apns" => Ok(Platform::Apns),
            "fcm" => Ok(Platform::Fcm),
            "webhook" => Ok(Platform::Webhook),
            other => Err(PushError::UnknownPlatform(other.chars().take(40).collect())),
        }
    }
}

/// What a wallet registers: the platform and its token (APNs: the device token as hex; FCM:
/// the registration token; Webhook: an https URL, checked by the hardened client's policy when
/// registered and when called). `Debug` leaves the token out.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Device {
    /// The service that wakes it.
    pub platform: Platform,
    /// The platform's token (or the webhook URL).
    pub token: String,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("platform", &self.platform)
            .field("token", &lanyard_protocol::redact::Redacted)
            .finish()
    }
}

/// Longest token (or webhook URL) accepted, in bytes. APNs tokens are 32 bytes (64 hex
/// digits) today and documented as variable; FCM's are about 160 characters.
pub const MAX_TOKEN_BYTES: usize = 1024;

impl Device {
    /// Checks the token's form for its platform (what can be checked without the network);
    /// the refusal names what is wrong, never the token.
    pub(crate) fn check(&self) -> Result<(), PushError> {
        let bad = |reason: &'static str| PushError::BadToken {
            platform: self.platform,
            reason,
        };
        if self.token.is_empty() {
            return Err(bad("it is empty"));
        }
        if self.token.len() > MAX_TOKEN_BYTES {
            return Err(bad("it is longer than 1024 bytes"));
        }
        match self.platform {
            Platform::Apns => {
                if self.token.len() < 16
                    || self.token.len() % 2 != 0
                    || !self.token.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return Err(bad("an APNs device token is an even number of hex digits"));
                }
            }
            Platform::Fcm => {
                if !self
                    .token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b))
                {
                    return Err(bad(
                        "an FCM registration token has only letters, digits and -_:.",
                    ));
                }
            }
            Platform::Webhook => {
                if !self.token.starts_with("https://") && !self.token.starts_with("http://") {
                    return Err(bad("a webhook is an https:// URL"));
                }
            }
        }
        Ok(())
    }
}

/// The opaque handle the mediator keeps instead of the token: 32 random bytes, base64url
/// (43 characters). Carries nothing about the device.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct WakeHandle([u8; 32]);

impl WakeHandle {
    /// A new random handle.
    pub fn random() -> WakeHandle {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        WakeHandle(bytes)
    }
}

impl fmt::Display for WakeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&lanyard_protocol::encoding::b64u_encode(self.0))
    }
}

impl fmt::Debug for WakeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WakeHandle({self})")
    }
}

impl FromStr for WakeHandle {
    type Err = PushError;

    fn from_str(text: &str) -> Result<WakeHandle, PushError> {
        if text.len() != 43 {
            return Err(PushError::BadHandle);
        }
        let bytes =
            lanyard_protocol::encoding::b64u_decode(text).map_err(|_| PushError::BadHandle)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| PushError::BadHandle)?;
        Ok(WakeHandle(bytes))
    }
}

impl serde::Serialize for WakeHandle {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for WakeHandle {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<WakeHandle, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a gateway call failed. `Display` is for the operator; [`PushError::public`] is text
/// safe for a stranger (it names no host, address or token).
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The platform has no credentials configured on this gateway.
    #[error("push through {0} is not configured on this gateway")]
    NotConfigured(Platform),
    /// A platform name that is not `apns`, `fcm` or `webhook`.
    #[error("{0:?} is not a push platform (apns, fcm or webhook)")]
    UnknownPlatform(String),
    /// The token (or webhook URL) is not of its platform's form.
    #[error("the {platform} token is refused: {reason}")]
    BadToken {
        /// Its platform.
        platform: Platform,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The webhook URL is refused by the hardened client's policy.
    #[error("the webhook URL is refused: {0}")]
    BadWebhook(NetError),
    /// Not a wake handle (43 base64url characters).
    #[error("not a wake handle (32 bytes as 43 base64url characters)")]
    BadHandle,
    /// No device is registered under the handle (never, or it was dropped).
    #[error("no device is registered under this wake handle")]
    UnknownHandle,
    /// The gateway holds as many devices as it may.
    #[error("the push gateway holds as many devices as it may ({cap})")]
    Full {
        /// Devices it may hold.
        cap: u64,
    },
    /// The platform refused the push for a reason a retry does not fix.
    #[error("{platform} refused the push: HTTP {status}{}", reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    Refused {
        /// The platform.
        platform: Platform,
        /// Its HTTP status.
        status: u16,
        /// Its reason, when it gave one (APNs `reason`, FCM `error.status`).
        reason: Option<String>,
    },
    /// The platform's credentials could not be used (a key file, the OAuth2 exchange).
    #[error("{platform} credentials: {reason}")]
    Credentials {
        /// The platform.
        platform: Platform,
        /// What failed.
        reason: String,
    },
    /// A push could not be made (network, policy); in the words of
    /// [`NetError::public`], as the URL may hold the token.
    #[error("{platform} could not be reached: {reason}")]
    Unreachable {
        /// The platform.
        platform: Platform,
        /// What failed, naming no host or URL.
        reason: &'static str,
    },
    /// A configured URL is refused, or a request of the gateway's own failed (network,
    /// policy).
    #[error("push request: {0}")]
    Net(#[from] NetError),
    /// The remote gateway answered with an error or something unreadable.
    #[error("the push gateway answered {status}: {message}")]
    Remote {
        /// Its HTTP status.
        status: u16,
        /// Its (public) message.
        message: String,
    },
    /// The store failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl PushError {
    /// The reason in words fit for a stranger: no host, address, token or store detail.
    pub fn public(&self) -> String {
        match self {
            PushError::NotConfigured(platform) => {
                format!("push through {platform} is not available here")
            }
            PushError::UnknownPlatform(_) | PushError::BadToken { .. } | PushError::BadHandle => {
                self.to_string()
            }
            PushError::BadWebhook(error) => {
                format!("the webhook URL is refused: {}", error.public())
            }
            PushError::UnknownHandle => self.to_string(),
            PushError::Full { .. } => "the push gateway is full; try again later".into(),
            PushError::Refused { platform, .. } => format!("{platform} refused the push"),
            PushError::Credentials { .. }
            | PushError::Unreachable { .. }
            | PushError::Net(_)
            | PushError::Remote { .. }
            | PushError::Storage(_) => "the push gateway failed; try again later".into(),
        }
    }
}

/// What [`PushGateway::wake`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woken {
    /// The platform accepted the push, or it failed transiently (5xx, 429, the network) and
    /// is being retried in the background.
    Sent,
    /// This handle was woken within the coalescing window (by this agent or another on the
    /// same store): nothing sent.
    Coalesced,
    /// The platform said the token is gone (APNs 410, FCM `UNREGISTERED`, webhook 410): the
    /// handle is forgotten; the mediator may forget it too.
    Dropped,
    /// The handle's platform is not configured on this gateway (any more): nothing sent.
    NotConfigured,
}

impl Woken {
    /// The outcome's name in metrics: `sent`, `coalesced`, `dropped`, `not_configured`.
    pub fn name(self) -> &'static str {
        match self {
            Woken::Sent => "sent",
            Woken::Coalesced => "coalesced",
            Woken::Dropped => "dropped",
            Woken::NotConfigured => "not_configured",
        }
    }
}

/// The push gateway, as the mediator uses it ([`LocalPushGateway`] or [`RemotePushGateway`]).
#[async_trait::async_trait]
pub trait PushGateway: Send + Sync + 'static {
    /// Stores the device (its token sealed at rest) and returns a new handle for it. Refuses
    /// a platform that is not configured ([`PushError::NotConfigured`] names it) and a token
    /// not of its platform's form.
    async fn register(&self, device: Device) -> Result<WakeHandle, PushError>;

    /// Forgets a handle (and its token). Unknown handles are fine (`Ok`).
    async fn unregister(&self, handle: &WakeHandle) -> Result<(), PushError>;

    /// Wakes the device behind `handle`, at most once per coalescing window per handle across
    /// every agent on the same store (the others get [`Woken::Coalesced`]). Sends no message
    /// content and no sender. Retries 5xx/429 with backoff in the background; drops the handle
    /// when the platform reports the token gone. [`PushError::UnknownHandle`] when nothing is
    /// registered under `handle`.
    async fn wake(&self, handle: &WakeHandle) -> Result<Woken, PushError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_is_43_base64url_characters_and_reads_back() {
        let handle = WakeHandle::random();
        let text = handle.to_string();
        assert_eq!(text.len(), 43);
        assert_eq!(text.parse::<WakeHandle>().unwrap(), handle);
        assert_ne!(WakeHandle::random(), handle);
        let json = serde_json::to_string(&handle).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<WakeHandle>(&json).unwrap(), handle);
        for bad in ["", "short", &format!("{text}A"), &"!".repeat(43)] {
            assert!(
                matches!(bad.parse::<WakeHandle>(), Err(PushError::BadHandle)),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_device_debug_shows_no_token_and_tokens_are_checked_by_form() {
        let device = Device {
            platform: Platform::Apns,
            token: "ab".repeat(32),
        };
        let shown = format!("{device:?}");
        assert!(!shown.contains("abab"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(device.check().is_ok());
        let refused = Device {
            platform: Platform::Apns,
            token: "not hex at all!".repeat(2),
        }
        .check()
        .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the apns token is refused: an APNs device token is an even number of hex digits"
        );
        let refused = Device {
            platform: Platform::Fcm,
            token: "a".repeat(MAX_TOKEN_BYTES + 1),
        }
        .check()
        .unwrap_err();
        assert!(
            refused.to_string().contains("longer than 1024 bytes"),
            "{refused}"
        );
        let refused = Device {
            platform: Platform::Webhook,
            token: "ftp://example.com/".into(),
        }
        .check()
        .unwrap_err();
        assert!(refused.to_string().contains("https:// URL"), "{refused}");
        assert!(matches!(
            "sms".parse::<Platform>(),
            Err(PushError::UnknownPlatform(name)) if name == "sms"
        ));
    }
}

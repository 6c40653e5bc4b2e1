//! The gateway's settings (read by [`crate::config::Config`] from the environment and the
//! TOML file, as every other setting).

use std::path::PathBuf;
use std::time::Duration;

/// The push gateway's settings: which platforms are configured, where they are, how wakes
/// are coalesced and retried, or where a remote gateway is. With nothing configured no wake is
/// sent and registration is refused.
#[derive(Clone, PartialEq, Eq)]
pub struct PushConfig {
    /// `LANYARD_APNS_KEY_FILE`: the APNs token-signing key (the `.p8` file Apple gives: PKCS#8
    /// P-256). APNs is configured when this, the key id, the team id and the topic are set.
    pub apns_key_file: Option<PathBuf>,
    /// `LANYARD_APNS_KEY_ID`: the key's id (the JWT header's `kid`).
    pub apns_key_id: Option<String>,
    /// `LANYARD_APNS_TEAM_ID`: the Apple developer team id (the JWT's `iss`).
    pub apns_team_id: Option<String>,
    /// `LANYARD_APNS_TOPIC`: the app's bundle id (`apns-topic`).
    pub apns_topic: Option<String>,
    /// `LANYARD_APNS_URL`: the APNs base URL (default `https://api.push.apple.com`; the
    /// sandbox is `https://api.sandbox.push.apple.com`).
    pub apns_url: String,
    /// `LANYARD_FCM_SERVICE_ACCOUNT`: the Firebase service-account key file (JSON, with
    /// `project_id`, `client_email`, `private_key` and `token_uri`). FCM is configured when set.
    pub fcm_service_account: Option<PathBuf>,
    /// `LANYARD_FCM_URL`: the FCM base URL (default `https://fcm.googleapis.com`).
    pub fcm_url: String,
    /// `LANYARD_PUSH_WEBHOOKS`: whether wallets may register an HTTPS webhook to be woken by
    /// (default false). Webhook URLs are checked by the outbound policy (`LANYARD_NET_*`).
    pub webhooks: bool,
    /// `LANYARD_PUSH_COALESCE_S`: at most one wake per handle in this window (default 30).
    pub coalesce: Duration,
    /// `LANYARD_PUSH_RETRY_MS`: the first retry's delay after a 5xx, a 429 or a network
    /// failure, doubled each time up to 5 minutes (default 1000); a `Retry-After` is honoured
    /// instead when sent (up to 5 minutes).
    pub retry_base: Duration,
    /// `LANYARD_PUSH_ATTEMPTS`: attempts per wake, the first included (default 5).
    pub attempts: u32,
    /// `LANYARD_PUSH_MAX_DEVICES`: devices the gateway holds at most (default 10,000,000).
    pub max_devices: u64,
    /// `LANYARD_PUSH_GATEWAY_URL`: a gateway run alone (`agent push-gateway`) to use instead
    /// of the platforms configured here.
    pub gateway_url: Option<String>,
    /// `LANYARD_PUSH_GATEWAY_SECRET`: the bearer secret of that gateway's API (at least 32
    /// characters); `agent push-gateway` requires it too.
    pub gateway_secret: Option<String>,
}

lanyard_protocol::redacted_debug!(PushConfig {
    shown: [
        apns_key_file,
        apns_key_id,
        apns_team_id,
        apns_topic,
        apns_url,
        fcm_service_account,
        fcm_url,
        webhooks,
        coalesce,
        retry_base,
        attempts,
        max_devices,
        gateway_url,
    ],
    redacted: [gateway_secret],
});

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            apns_key_file: None,
            apns_key_id: None,
            apns_team_id: None,
            apns_topic: None,
            apns_url: "https://api.push.apple.com".into(),
            fcm_service_account: None,
            fcm_url: "https://fcm.googleapis.com".into(),
            webhooks: false,
            coalesce: Duration::from_secs(30),
            retry_base: Duration::from_secs(1),
            attempts: 5,
            max_devices: 10_000_000,
            gateway_url: None,
            gateway_secret: None,
        }
    }
}

impl PushConfig {
    /// Whether any platform is configured here (a local gateway has something to do).
    pub fn any_platform(&self) -> bool {
        self.apns_key_file.is_some() || self.fcm_service_account.is_some() || self.webhooks
    }
}

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
    /// `LANYARD_PUSH_GATEWAY_SECRET`: the bearer secret of that gateway's API (held to the
    /// admin token's rules: at least 32 printable characters); `agent push-gateway` requires
    /// it too.
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::{file_vars, Config};

    fn config(vars: &[(&str, &str)]) -> Result<Config, crate::config::ConfigError> {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        Config::from_vars(|name| vars.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn nothing_is_configured_by_default() {
        let push = config(&[]).unwrap().push;
        assert!(!push.any_platform());
        assert_eq!(push.apns_url, "https://api.push.apple.com");
        assert_eq!(push.fcm_url, "https://fcm.googleapis.com");
        assert_eq!(push.coalesce, std::time::Duration::from_secs(30));
        assert!(push.gateway_url.is_none());
    }

    #[test]
    fn the_push_settings_are_read_from_the_environment_and_the_file() {
        let push = config(&[
            ("LANYARD_APNS_KEY_FILE", "/run/secrets/AuthKey.p8"),
            ("LANYARD_APNS_KEY_ID", "KEY123"),
            ("LANYARD_APNS_TEAM_ID", "TEAM123"),
            ("LANYARD_APNS_TOPIC", "com.example.app"),
            ("LANYARD_APNS_URL", "https://api.sandbox.push.apple.com/"),
            ("LANYARD_FCM_SERVICE_ACCOUNT", "/run/secrets/fcm.json"),
            ("LANYARD_PUSH_WEBHOOKS", "true"),
            ("LANYARD_PUSH_COALESCE_S", "10"),
            ("LANYARD_PUSH_RETRY_MS", "250"),
            ("LANYARD_PUSH_ATTEMPTS", "3"),
            ("LANYARD_PUSH_MAX_DEVICES", "1000"),
        ])
        .unwrap()
        .push;
        assert!(push.any_platform());
        assert_eq!(push.apns_key_id.as_deref(), Some("KEY123"));
        assert_eq!(push.apns_url, "https://api.sandbox.push.apple.com");
        assert!(push.webhooks);
        assert_eq!(push.coalesce.as_secs(), 10);
        assert_eq!(push.retry_base.as_millis(), 250);
        assert_eq!(push.attempts, 3);
        assert_eq!(push.max_devices, 1000);
        let file = file_vars("push_webhooks = true\npush_coalesce_s = 5\n").unwrap();
        let push = Config::from_vars(|name| file.get(name).cloned())
            .unwrap()
            .push;
        assert!(push.webhooks);
        assert_eq!(push.coalesce.as_secs(), 5);
    }

    #[test]
    fn bad_push_settings_are_refused_by_name() {
        let refused = |vars: &[(&str, &str)]| config(vars).unwrap_err().to_string();
        assert!(refused(&[("LANYARD_PUSH_COALESCE_S", "0")]).contains("LANYARD_PUSH_COALESCE_S"));
        assert!(refused(&[("LANYARD_PUSH_ATTEMPTS", "99")]).contains("LANYARD_PUSH_ATTEMPTS"));
        assert!(refused(&[("LANYARD_APNS_URL", "api.push.apple.com")]).contains("LANYARD_APNS_URL"));
        assert!(
            refused(&[("LANYARD_PUSH_GATEWAY_URL", "https://push.internal")])
                .contains("LANYARD_PUSH_GATEWAY_URL needs LANYARD_PUSH_GATEWAY_SECRET")
        );
        let short = refused(&[
            ("LANYARD_PUSH_GATEWAY_URL", "https://push.internal"),
            ("LANYARD_PUSH_GATEWAY_SECRET", "short"),
        ]);
        assert!(short.contains("LANYARD_PUSH_GATEWAY_SECRET"), "{short}");
        assert!(
            !short.contains("short\""),
            "the secret is not repeated: {short}"
        );
        // The secret is not in the configuration's Debug.
        let secret = "a-gateway-secret-long-enough-0123456789";
        let shown = format!(
            "{:?}",
            config(&[
                ("LANYARD_PUSH_GATEWAY_URL", "https://push.internal"),
                ("LANYARD_PUSH_GATEWAY_SECRET", secret),
            ])
            .unwrap()
        );
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("push.internal"), "{shown}");
    }
}

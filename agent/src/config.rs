//! Agent configuration: working defaults, then a TOML file, then environment variables, each
//! overriding the one before. The file is `LANYARD_CONFIG` if set, else `lanyard.toml` in the
//! working folder if present; its keys are the variables' names without `LANYARD_`, in lower
//! case (`listen = "0.0.0.0:8080"`, `apple_app_ids = ["TEAM.app"]`). Every knob is documented
//! here, where it is read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::mediator::Limits;

/// How the agent runs. Its `Debug` redacts the secrets (see the impl below).
#[derive(Clone)]
pub struct Config {
    /// `LANYARD_LISTEN`: address to listen on (default `127.0.0.1:8080`; port 0 picks one).
    pub listen: SocketAddr,
    /// `LANYARD_PUBLIC_URL`: the base URL phones and issuers reach the agent at (default
    /// `http://<listen>`). The mediator's DIDComm endpoint is `<public_url>/didcomm`.
    pub public_url: Option<String>,
    /// `LANYARD_DATA_DIR`: where the embedded store and the mediator's keys live (default
    /// `./data`).
    pub data_dir: PathBuf,
    /// `LANYARD_MAX_MESSAGE_BYTES`: largest envelope accepted (default 1 MiB).
    pub max_message_bytes: usize,
    /// `LANYARD_QUEUE_CAP`: messages one recipient's queue may hold (default 10000), and
    /// `LANYARD_MAX_DELIVERY`: largest pickup batch (default 100).
    pub limits: Limits,
    /// `LANYARD_DEEP_LINK_SCHEME`: the app's custom URL scheme for deep links (default
    /// `lanyard`).
    pub deep_link_scheme: String,
    /// `LANYARD_APP_STORE_URL`, `LANYARD_PLAY_STORE_URL`: store links on the invite page.
    pub app_store_url: Option<String>,
    /// The Play Store listing the invitation page links to (`LANYARD_PLAY_STORE_URL`).
    pub play_store_url: Option<String>,
    /// `LANYARD_APPLE_APP_IDS`: comma-separated `TEAMID.bundle.id`s for
    /// `/.well-known/apple-app-site-association` (universal links to `/i/*`).
    pub apple_app_ids: Vec<String>,
    /// `LANYARD_ANDROID_PACKAGE` and `LANYARD_ANDROID_CERT_SHA256` (comma-separated
    /// fingerprints) for `/.well-known/assetlinks.json` (Android App Links).
    pub android_package: Option<String>,
    /// SHA-256 fingerprints of the Android app's signing certificates (`LANYARD_ANDROID_CERT_SHA256`).
    pub android_cert_sha256: Vec<String>,
    /// `LANYARD_ADMIN_TOKEN`: bearer token for `/admin/*`, at least 16 visible characters (an
    /// empty or shorter one is refused at start); when unset, a random one is kept in
    /// `<data_dir>/admin.token` (mode 0600), whose content is held to the same minimum.
    pub admin_token: Option<String>,
    /// `LANYARD_COMMIT_WINDOW_US`: how long the store's group commit waits for more writes to
    /// share one fsync, in microseconds (default 1000; 0 flushes at once; at most 100000).
    pub commit_window: Duration,
    /// `LANYARD_DATABASE_URL`: a PostgreSQL URL (`postgres://user:pass@host:5432/db`) to keep
    /// everything in, shared by any number of agents behind a load balancer; unset, the agent
    /// keeps it all in its sled folder (`LANYARD_DATA_DIR`). Migrations are applied at start.
    pub database_url: Option<String>,
    /// `LANYARD_DATABASE_POOL`: connections this agent keeps to the database (default 16,
    /// 2 to 1000).
    pub database_pool: usize,
    /// `LANYARD_SMTP_URL`: the SMTP relay invitation emails go through, as
    /// `smtp://[user:pass@]host[:port][?tls=required]` or `smtps://...`; unset, emails are not
    /// sent (customers stay `Initiated` and the API returns the link and QR to deliver).
    pub smtp_url: Option<String>,
    /// `LANYARD_SMTP_FROM`: the invitation emails' sender (default `Lanyard <no-reply@localhost>`).
    pub smtp_from: String,
    /// `LANYARD_SMS_URL`: an HTTP SMS gateway that takes `POST {"to", "from", "body"}`;
    /// `LANYARD_SMS_TOKEN`: its bearer token, if it wants one.
    pub sms_url: Option<String>,
    /// The SMS gateway's bearer token (`LANYARD_SMS_TOKEN`).
    pub sms_token: Option<String>,
    /// `LANYARD_CALLBACK_RETRY_MS`: the first wait before a failed callback is tried again, in
    /// milliseconds (default 1000); each further wait doubles, up to 10 minutes.
    pub callback_retry: Duration,
    // Issuer side: outbox bounds and per-organisation rate limits.
    /// `LANYARD_OUTBOX_TTL_SECS`: an outbox message not handed to the mediator within this is
    /// dropped, logged and counted (default 604800, a week); `LANYARD_OUTBOX_MAX_ATTEMPTS`:
    /// hand-over attempts before it is dropped (default 100); `LANYARD_OUTBOX_RETRY_MS`: how
    /// often the outbox is swept and the first wait before a failed hand-over is tried again,
    /// doubling up to an hour (default 2000). `LANYARD_STRANGER_ANSWERS_PER_MINUTE` and
    /// `LANYARD_STRANGER_ANSWER_BURST`: problem reports one organisation answers senders
    /// without a connection with (default 60 a minute, bursts of 20; never stored).
    /// `LANYARD_INVITATIONS_PER_HOUR` and `LANYARD_INVITATION_BURST`: invitation emails and SMS
    /// one organisation may send (default 1000 an hour, bursts of 100); over it, onboarding
    /// and resend answer 429 naming the limit and store nothing.
    pub issuer_limits: crate::issuer::IssuerLimits,
    // Mediator quotas and the public HTTP surface (h/mediator). The mediator's quotas live in
    // `limits`:
    // `LANYARD_MEDIATION_ADMISSION`: `open` (default: any wallet that asks, authcrypted) or
    // `invited` (only a wallet whose mediate-request's `pthid` is the id of one of this
    // agent's invitations, neither expired nor used up); `LANYARD_MAX_RECIPIENTS`: recipient
    // DIDs one client may register (default 1000); `LANYARD_CLIENT_QUEUE_BYTES`: bytes all of
    // one client's queues may hold (default 64 MiB); `LANYARD_STORE_QUEUE_BYTES`: bytes all
    // queues may hold (default 4 GiB); `LANYARD_MESSAGE_MAX_AGE_S`: seconds a message may wait
    // before it expires (default 2592000, 30 days); `LANYARD_REPLAY_WINDOW_S`: seconds a
    // control message's id is remembered, and how far its `created_time` may be from now
    // (default 600).
    /// `LANYARD_MAX_CONNECTIONS`: HTTP connections served at once; more are answered 503
    /// (default 4096).
    pub max_connections: usize,
    /// `LANYARD_MAX_LIVE_CONNECTIONS`: live-mode WebSockets open at once (default 10000).
    pub max_live_connections: usize,
    /// `LANYARD_HEADER_READ_TIMEOUT_MS`: how long a client may take to send a request's
    /// headers, and a kept-alive connection may sit idle (default 10000).
    pub header_read_timeout: Duration,
    /// `LANYARD_REQUEST_TIMEOUT_MS`: how long one request may take, body included (default
    /// 60000).
    pub request_timeout: Duration,
    /// `LANYARD_LIVE_IDLE_TIMEOUT_S`: a live WebSocket silent this long is closed; it is
    /// pinged halfway, and a pong counts (default 120).
    pub live_idle_timeout: Duration,
    /// `LANYARD_SHUTDOWN_GRACE_MS`: on SIGTERM, how long open requests may take to finish
    /// before the agent closes them and exits (default 10000).
    pub shutdown_grace: Duration,
    // Outbound HTTP (issue 11 §3): the hardened client's policy, status lists, callbacks.
    /// What the agent may fetch (did:web documents, status lists, callbacks, the SMS
    /// gateway): HTTPS to public addresses only, unless
    /// `LANYARD_NET_ALLOW_LOOPBACK=true` (loopback hosts, over plain http too: tests and
    /// development only) or `LANYARD_NET_ALLOW` (comma-separated networks, addresses or host
    /// names exempt from the refusal of private, link-local, CGNAT, unique-local and metadata
    /// addresses, e.g. `10.20.0.0/16,sms.internal` for an SMS gateway on a private network;
    /// an agent whose `LANYARD_PUBLIC_URL` is on a private network lists its own host, as
    /// verifications fetch the organisations' did:web documents and status lists from it).
    /// `LANYARD_NET_CONNECT_TIMEOUT_MS` (default 5000) and `LANYARD_NET_TIMEOUT_MS` (default
    /// 10000) bound one request's connection and whole exchange; `LANYARD_NET_PER_HOST`
    /// (default 8) is how many requests one host may have in flight.
    pub net: lanyard_protocol::net::NetPolicy,
    /// `LANYARD_STATUS_LIST_MAX_BYTES`: largest status list fetched (default 1 MiB).
    pub status_list_max_bytes: usize,
    /// `LANYARD_CALLBACK_TIMEOUT_MS`: how long one callback delivery may take (default 10000).
    pub callback_timeout: Duration,
    /// `LANYARD_CALLBACK_CONCURRENCY`: organisations whose callbacks are delivered at the
    /// same time (default 32). Each organisation's events go one at a time, in order, so a
    /// dead endpoint delays only its own organisation.
    pub callback_concurrency: usize,
    /// `LANYARD_CALLBACK_RETENTION_S`: how long a delivered (or abandoned) event is kept for
    /// the events API before it is deleted, in seconds (default 604800, seven days).
    pub callback_retention: Duration,
    // Shared identity (issue 13, h/ident).
    /// `LANYARD_KEY_FILE`: with several agents on one PostgreSQL, the 32-byte key that seals
    /// the identity they share in the database (every agent of the deployment is given the
    /// same file, as from a KMS). Created (random, mode 0600) when missing. Default
    /// `<data_dir>/agent.key`; read it through [`Config::key_file`]. On sled the data folder's
    /// identity store is always wrapped by `<data_dir>/agent.key`.
    pub key_file: Option<PathBuf>,
    // Several agents on one store (issue 13, h/claims): background work done once.
    /// `LANYARD_CALLBACK_POLL_MS`: the longest wait between two looks for due callback events,
    /// in milliseconds (default 2000): events another agent on the same database wrote (and
    /// did not deliver, having died) are delivered within it.
    pub callback_poll: Duration,
    // Push wake-up (issue 14, h/pushgw).
    /// The push gateway (`LANYARD_APNS_*`, `LANYARD_FCM_*`, `LANYARD_PUSH_*`; each documented
    /// on [`crate::push::PushConfig`]): APNs (key file, key id, team id, topic, URL), FCM
    /// (service-account file, URL), webhooks on or off, the coalescing window, retries, the
    /// device cap, or a remote gateway's URL and secret. Nothing configured (the default):
    /// no wake, and registration refused.
    pub push: crate::push::PushConfig,
    // The console's sign-in (issue 15, h/console).
    /// How console sign-in is bounded: `LANYARD_CONSOLE_SESSION_TTL_S` (how long a session
    /// lasts, default 43200, twelve hours), `LANYARD_CONSOLE_MAX_FAILURES` (failed sign-ins
    /// in a row that lock an account, default 5), `LANYARD_CONSOLE_LOCKOUT_S` (the first
    /// lock's length, doubling with each further failure up to an hour; default 60) and
    /// `LANYARD_CONSOLE_SIGN_INS_PER_MINUTE` (sign-in attempts this agent takes over all
    /// accounts, each costing an Argon2id hash; default 600, bursts of 60).
    pub console_sign_in: crate::console::SignInPolicy,
}

// Every field is named here (the macro does not compile otherwise): a new knob goes in
// `shown`, or in `redacted` when it is or may hold a secret (tokens, URLs with credentials).
lanyard_protocol::redacted_debug!(Config {
    shown: [
        listen,
        public_url,
        data_dir,
        max_message_bytes,
        limits,
        deep_link_scheme,
        app_store_url,
        play_store_url,
        apple_app_ids,
        android_package,
        android_cert_sha256,
        commit_window,
        database_pool,
        smtp_from,
        callback_retry,
        issuer_limits,
        max_connections,
        max_live_connections,
        header_read_timeout,
        request_timeout,
        live_idle_timeout,
        shutdown_grace,
        net,
        status_list_max_bytes,
        callback_timeout,
        callback_concurrency,
        callback_retention,
        key_file,
        callback_poll,
        push,
        console_sign_in,
    ],
    redacted: [admin_token, database_url, smtp_url, sms_url, sms_token],
});

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            data_dir: PathBuf::from("data"),
            max_message_bytes: lanyard_protocol::didcomm::DEFAULT_MAX_MESSAGE_BYTES,
            limits: Limits::default(),
            deep_link_scheme: "lanyard".to_string(),
            app_store_url: None,
            play_store_url: None,
            apple_app_ids: Vec::new(),
            android_package: None,
            android_cert_sha256: Vec::new(),
            admin_token: None,
            commit_window: Duration::from_micros(1000),
            database_url: None,
            database_pool: 16,
            smtp_url: None,
            smtp_from: "Lanyard <no-reply@localhost>".to_string(),
            sms_url: None,
            sms_token: None,
            callback_retry: Duration::from_secs(1),
            // Issuer side: outbox bounds and per-organisation rate limits.
            issuer_limits: crate::issuer::IssuerLimits::default(),
            // Mediator quotas and the public HTTP surface (h/mediator).
            max_connections: 4096,
            max_live_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            live_idle_timeout: Duration::from_secs(120),
            shutdown_grace: Duration::from_secs(10),
            // Outbound HTTP (issue 11 §3).
            net: lanyard_protocol::net::NetPolicy::default(),
            status_list_max_bytes: 1 << 20,
            callback_timeout: Duration::from_secs(10),
            callback_concurrency: 32,
            callback_retention: Duration::from_secs(7 * 24 * 3600),
            // Shared identity (issue 13, h/ident).
            key_file: None,
            // Several agents on one store (h/claims).
            callback_poll: Duration::from_secs(2),
            // Push wake-up (issue 14, h/pushgw).
            push: crate::push::PushConfig::default(),
            // The console's sign-in (issue 15, h/console).
            console_sign_in: crate::console::SignInPolicy::default(),
        }
    }
}

/// Every variable the agent reads.
const VARIABLES: [&str; 70] = [
    "LANYARD_LISTEN",
    "LANYARD_PUBLIC_URL",
    "LANYARD_DATA_DIR",
    "LANYARD_MAX_MESSAGE_BYTES",
    "LANYARD_QUEUE_CAP",
    "LANYARD_MAX_DELIVERY",
    "LANYARD_DEEP_LINK_SCHEME",
    "LANYARD_APP_STORE_URL",
    "LANYARD_PLAY_STORE_URL",
    "LANYARD_APPLE_APP_IDS",
    "LANYARD_ANDROID_PACKAGE",
    "LANYARD_ANDROID_CERT_SHA256",
    "LANYARD_ADMIN_TOKEN",
    "LANYARD_COMMIT_WINDOW_US",
    "LANYARD_DATABASE_URL",
    "LANYARD_DATABASE_POOL",
    "LANYARD_SMTP_URL",
    "LANYARD_SMTP_FROM",
    "LANYARD_SMS_URL",
    "LANYARD_SMS_TOKEN",
    "LANYARD_CALLBACK_RETRY_MS",
    // Issuer side: outbox bounds and per-organisation rate limits.
    "LANYARD_OUTBOX_TTL_SECS",
    "LANYARD_OUTBOX_MAX_ATTEMPTS",
    "LANYARD_OUTBOX_RETRY_MS",
    "LANYARD_STRANGER_ANSWERS_PER_MINUTE",
    "LANYARD_STRANGER_ANSWER_BURST",
    "LANYARD_INVITATIONS_PER_HOUR",
    "LANYARD_INVITATION_BURST",
    // Mediator quotas and the public HTTP surface (h/mediator).
    "LANYARD_MEDIATION_ADMISSION",
    "LANYARD_MAX_RECIPIENTS",
    "LANYARD_CLIENT_QUEUE_BYTES",
    "LANYARD_STORE_QUEUE_BYTES",
    "LANYARD_MESSAGE_MAX_AGE_S",
    "LANYARD_REPLAY_WINDOW_S",
    "LANYARD_MAX_CONNECTIONS",
    "LANYARD_MAX_LIVE_CONNECTIONS",
    "LANYARD_HEADER_READ_TIMEOUT_MS",
    "LANYARD_REQUEST_TIMEOUT_MS",
    "LANYARD_LIVE_IDLE_TIMEOUT_S",
    "LANYARD_SHUTDOWN_GRACE_MS",
    // Outbound HTTP (issue 11 §3).
    "LANYARD_NET_ALLOW_LOOPBACK",
    "LANYARD_NET_ALLOW",
    "LANYARD_NET_CONNECT_TIMEOUT_MS",
    "LANYARD_NET_TIMEOUT_MS",
    "LANYARD_NET_PER_HOST",
    "LANYARD_STATUS_LIST_MAX_BYTES",
    "LANYARD_CALLBACK_TIMEOUT_MS",
    "LANYARD_CALLBACK_CONCURRENCY",
    "LANYARD_CALLBACK_RETENTION_S",
    "LANYARD_KEY_FILE",
    // Several agents on one store (h/claims).
    "LANYARD_CALLBACK_POLL_MS",
    // Mediation protocol versions (issue 14, cm2).
    "LANYARD_MEDIATOR_PROTOCOLS",
    // Push wake-up (issue 14, h/pushgw).
    "LANYARD_APNS_KEY_FILE",
    "LANYARD_APNS_KEY_ID",
    "LANYARD_APNS_TEAM_ID",
    "LANYARD_APNS_TOPIC",
    "LANYARD_APNS_URL",
    "LANYARD_FCM_SERVICE_ACCOUNT",
    "LANYARD_FCM_URL",
    "LANYARD_PUSH_WEBHOOKS",
    "LANYARD_PUSH_COALESCE_S",
    "LANYARD_PUSH_RETRY_MS",
    "LANYARD_PUSH_ATTEMPTS",
    "LANYARD_PUSH_MAX_DEVICES",
    "LANYARD_PUSH_GATEWAY_URL",
    "LANYARD_PUSH_GATEWAY_SECRET",
    // The console's sign-in (issue 15, h/console).
    "LANYARD_CONSOLE_SESSION_TTL_S",
    "LANYARD_CONSOLE_MAX_FAILURES",
    "LANYARD_CONSOLE_LOCKOUT_S",
    "LANYARD_CONSOLE_SIGN_INS_PER_MINUTE",
];

/// Why the configuration was refused: names the variable (or file key) and what is wrong
/// with its value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// The config file holds something wrong.
    #[error("config file {}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong in it.
        source: Box<ConfigError>,
    },
    /// The file is not TOML.
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    /// The file has a key that stands for no variable.
    #[error("unknown key {0:?}")]
    UnknownKey(String),
    /// A file key's value is of a type no variable takes.
    #[error("{key}: {problem}")]
    FileValue {
        /// The key.
        key: String,
        /// What is wrong with its value.
        problem: String,
    },
    /// A variable's value cannot be read as what it stands for.
    #[error("{name}={value:?} is not valid: {reason}")]
    Unreadable {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
        /// Why it does not read.
        reason: String,
    },
    /// A variable's value reads but is not allowed; `value` is as the message shows it.
    #[error("{name}={value} {problem}")]
    Refused {
        /// The variable.
        name: String,
        /// Its value, as shown (quoted when text).
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A number that must be positive is 0.
    #[error("{0} must be positive")]
    NotPositive(String),
    /// A rule over one or more variables is broken; the message names them.
    #[error("{0}")]
    Rule(&'static str),
    /// `LANYARD_ADMIN_TOKEN` is not a usable token.
    #[error(transparent)]
    AdminToken(#[from] crate::admin::AdminTokenError),
    /// An entry of `LANYARD_NET_ALLOW` is not an address, network or host name.
    #[error("LANYARD_NET_ALLOW: {0}")]
    NetAllow(lanyard_protocol::net::NetError),
}

impl ConfigError {
    /// `name`'s value `value` (shown as given) is refused because of `problem`.
    fn refused(name: &str, value: impl std::fmt::Display, problem: impl Into<String>) -> Self {
        ConfigError::Refused {
            name: name.to_string(),
            value: value.to_string(),
            problem: problem.into(),
        }
    }

    /// `name`'s value `value` is outside `min..=max`.
    fn out_of_range(name: &str, value: u64, min: u64, max: u64) -> Self {
        ConfigError::refused(name, value, format!("is not between {min} and {max}"))
    }
}

/// A config file's entries as the variables they stand for; unknown keys are refused by name.
pub fn file_vars(text: &str) -> Result<HashMap<String, String>, ConfigError> {
    let table: toml::Table = text.parse()?;
    let mut vars = HashMap::new();
    for (key, value) in table {
        let name = format!("LANYARD_{}", key.to_ascii_uppercase());
        if !VARIABLES.contains(&name.as_str()) {
            return Err(ConfigError::UnknownKey(key));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    toml::Value::String(s) => Ok(s),
                    other => Err(ConfigError::FileValue {
                        key: key.clone(),
                        problem: format!("{} is not a string", other.type_str()),
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            other => {
                return Err(ConfigError::FileValue {
                    problem: format!(
                        "a {} is neither a string, a number, a boolean nor a list",
                        other.type_str()
                    ),
                    key,
                })
            }
        };
        vars.insert(name, text);
    }
    Ok(vars)
}

fn parse<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| ConfigError::Unreadable {
        name: name.to_string(),
        value: value.to_string(),
        reason: e.to_string(),
    })
}

impl Config {
    /// The key file that seals the identity: `LANYARD_KEY_FILE`, else `<data_dir>/agent.key`.
    pub fn key_file(&self) -> PathBuf {
        self.key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("agent.key"))
    }

    /// The defaults, the config file, then every `LANYARD_*` variable.
    pub fn from_env() -> Result<Config, ConfigError> {
        let path = match std::env::var("LANYARD_CONFIG") {
            Ok(path) => Some(std::path::PathBuf::from(path)),
            Err(_) => Some(std::path::PathBuf::from("lanyard.toml")).filter(|p| p.exists()),
        };
        let file = match path {
            Some(path) => {
                let text = match std::fs::read_to_string(&path) {
                    Ok(text) => text,
                    Err(source) => return Err(ConfigError::Read { path, source }),
                };
                file_vars(&text).map_err(|e| ConfigError::File {
                    path,
                    source: Box::new(e),
                })?
            }
            None => HashMap::new(),
        };
        Config::from_vars(|name| std::env::var(name).ok().or_else(|| file.get(name).cloned()))
    }

    /// The defaults with variables from `get` applied.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        if let Some(v) = get("LANYARD_LISTEN") {
            config.listen = parse("LANYARD_LISTEN", &v)?;
        }
        if let Some(v) = get("LANYARD_PUBLIC_URL") {
            if !(v.starts_with("http://") || v.starts_with("https://")) {
                return Err(ConfigError::refused(
                    "LANYARD_PUBLIC_URL",
                    format!("{v:?}"),
                    "is not an http(s) URL",
                ));
            }
            config.public_url = Some(v.trim_end_matches('/').to_string());
        }
        if let Some(v) = get("LANYARD_DATA_DIR") {
            config.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("LANYARD_MAX_MESSAGE_BYTES") {
            config.max_message_bytes = parse("LANYARD_MAX_MESSAGE_BYTES", &v)?;
        }
        if let Some(v) = get("LANYARD_QUEUE_CAP") {
            config.limits.queue_cap = parse("LANYARD_QUEUE_CAP", &v)?;
        }
        if let Some(v) = get("LANYARD_MAX_DELIVERY") {
            config.limits.max_delivery = parse("LANYARD_MAX_DELIVERY", &v)?;
        }
        if let Some(v) = get("LANYARD_DEEP_LINK_SCHEME") {
            let valid = v.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
            if !valid {
                return Err(ConfigError::refused(
                    "LANYARD_DEEP_LINK_SCHEME",
                    format!("{v:?}"),
                    "is not a URL scheme",
                ));
            }
            config.deep_link_scheme = v.to_ascii_lowercase();
        }
        config.app_store_url = get("LANYARD_APP_STORE_URL");
        config.play_store_url = get("LANYARD_PLAY_STORE_URL");
        let list = |v: Option<String>| -> Vec<String> {
            v.map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
        };
        config.apple_app_ids = list(get("LANYARD_APPLE_APP_IDS"));
        config.android_package = get("LANYARD_ANDROID_PACKAGE");
        config.android_cert_sha256 = list(get("LANYARD_ANDROID_CERT_SHA256"));
        if let Some(token) = get("LANYARD_ADMIN_TOKEN") {
            let token = crate::admin::AdminToken::new(&token, "LANYARD_ADMIN_TOKEN")?;
            config.admin_token = Some(token.expose().to_string());
        }
        if let Some(v) = get("LANYARD_COMMIT_WINDOW_US") {
            let micros: u64 = parse("LANYARD_COMMIT_WINDOW_US", &v)?;
            if micros > 100_000 {
                return Err(ConfigError::refused(
                    "LANYARD_COMMIT_WINDOW_US",
                    micros,
                    "is more than 100000 (0.1 s)",
                ));
            }
            config.commit_window = Duration::from_micros(micros);
        }
        if let Some(url) = get("LANYARD_DATABASE_URL").filter(|v| !v.is_empty()) {
            // Checked here so that a typo is named at start; the URL itself (it may hold a
            // password) is never repeated.
            if let Err(error) = url.parse::<tokio_postgres::Config>() {
                return Err(ConfigError::refused(
                    "LANYARD_DATABASE_URL",
                    "(not shown)",
                    format!("is not a PostgreSQL URL: {error}"),
                ));
            }
            config.database_url = Some(url);
        }
        if let Some(v) = get("LANYARD_DATABASE_POOL") {
            let pool: u64 = parse("LANYARD_DATABASE_POOL", &v)?;
            if !(2..=1000).contains(&pool) {
                return Err(ConfigError::out_of_range(
                    "LANYARD_DATABASE_POOL",
                    pool,
                    2,
                    1000,
                ));
            }
            config.database_pool = pool as usize;
        }
        config.smtp_url = get("LANYARD_SMTP_URL").filter(|v| !v.is_empty());
        if let Some(from) = get("LANYARD_SMTP_FROM") {
            config.smtp_from = from;
        }
        config.sms_url = get("LANYARD_SMS_URL").filter(|v| !v.is_empty());
        config.sms_token = get("LANYARD_SMS_TOKEN").filter(|v| !v.is_empty());
        if let Some(v) = get("LANYARD_CALLBACK_RETRY_MS") {
            let ms: u64 = parse("LANYARD_CALLBACK_RETRY_MS", &v)?;
            if !(1..=600_000).contains(&ms) {
                return Err(ConfigError::out_of_range(
                    "LANYARD_CALLBACK_RETRY_MS",
                    ms,
                    1,
                    600_000,
                ));
            }
            config.callback_retry = Duration::from_millis(ms);
        }
        // Issuer side: outbox bounds and per-organisation rate limits.
        let bounded = |name: &str,
                       range: std::ops::RangeInclusive<u64>|
         -> Result<Option<u64>, ConfigError> {
            let Some(v) = get(name) else { return Ok(None) };
            let n: u64 = parse(name, &v)?;
            if !range.contains(&n) {
                return Err(ConfigError::out_of_range(
                    name,
                    n,
                    *range.start(),
                    *range.end(),
                ));
            }
            Ok(Some(n))
        };
        let limits = &mut config.issuer_limits;
        if let Some(secs) = bounded("LANYARD_OUTBOX_TTL_SECS", 1..=365 * 24 * 3600)? {
            limits.outbox_ttl = Duration::from_secs(secs);
        }
        if let Some(n) = bounded("LANYARD_OUTBOX_MAX_ATTEMPTS", 1..=10_000)? {
            limits.outbox_max_attempts = n as u32;
        }
        if let Some(ms) = bounded("LANYARD_OUTBOX_RETRY_MS", 1..=600_000)? {
            limits.outbox_retry = Duration::from_millis(ms);
        }
        if let Some(n) = bounded("LANYARD_STRANGER_ANSWERS_PER_MINUTE", 0..=100_000)? {
            limits.stranger_answers.per_period = n as u32;
        }
        if let Some(n) = bounded("LANYARD_STRANGER_ANSWER_BURST", 0..=100_000)? {
            limits.stranger_answers.burst = n as u32;
        }
        if let Some(n) = bounded("LANYARD_INVITATIONS_PER_HOUR", 0..=1_000_000)? {
            limits.invitations_sent.per_period = n as u32;
        }
        if let Some(n) = bounded("LANYARD_INVITATION_BURST", 1..=100_000)? {
            limits.invitations_sent.burst = n as u32;
        }
        // Mediator quotas and the public HTTP surface (h/mediator).
        if let Some(v) = get("LANYARD_MEDIATION_ADMISSION") {
            config.limits.admission = parse("LANYARD_MEDIATION_ADMISSION", &v)?;
        }
        let positive = |name: &str| -> Result<Option<u64>, ConfigError> {
            match get(name) {
                None => Ok(None),
                Some(v) => match parse::<u64>(name, &v)? {
                    0 => Err(ConfigError::NotPositive(name.to_string())),
                    n => Ok(Some(n)),
                },
            }
        };
        if let Some(n) = positive("LANYARD_MAX_RECIPIENTS")? {
            config.limits.max_recipients = n as usize;
        }
        if let Some(n) = positive("LANYARD_CLIENT_QUEUE_BYTES")? {
            config.limits.client_queue_bytes = n;
        }
        if let Some(n) = positive("LANYARD_STORE_QUEUE_BYTES")? {
            config.limits.store_queue_bytes = n;
        }
        if let Some(n) = positive("LANYARD_MESSAGE_MAX_AGE_S")? {
            config.limits.message_max_age = Duration::from_secs(n);
        }
        if let Some(n) = positive("LANYARD_REPLAY_WINDOW_S")? {
            config.limits.replay_window = Duration::from_secs(n);
        }
        if let Some(n) = positive("LANYARD_MAX_CONNECTIONS")? {
            config.max_connections = n as usize;
        }
        if let Some(n) = positive("LANYARD_MAX_LIVE_CONNECTIONS")? {
            config.max_live_connections = n as usize;
        }
        if let Some(n) = positive("LANYARD_HEADER_READ_TIMEOUT_MS")? {
            config.header_read_timeout = Duration::from_millis(n);
        }
        if let Some(n) = positive("LANYARD_REQUEST_TIMEOUT_MS")? {
            config.request_timeout = Duration::from_millis(n);
        }
        if let Some(n) = positive("LANYARD_LIVE_IDLE_TIMEOUT_S")? {
            config.live_idle_timeout = Duration::from_secs(n);
        }
        if let Some(n) = positive("LANYARD_SHUTDOWN_GRACE_MS")? {
            config.shutdown_grace = Duration::from_millis(n);
        }
        // Outbound HTTP (issue 11 §3).
        if let Some(v) = get("LANYARD_NET_ALLOW_LOOPBACK") {
            config.net.allow_loopback = parse("LANYARD_NET_ALLOW_LOOPBACK", &v)?;
        }
        config.net.allow = list(get("LANYARD_NET_ALLOW"))
            .iter()
            .map(|entry| entry.parse())
            .collect::<Result<_, lanyard_protocol::net::NetError>>()
            .map_err(ConfigError::NetAllow)?;
        let millis = |name: &str, max: u64| -> Result<Option<Duration>, ConfigError> {
            let Some(v) = get(name) else { return Ok(None) };
            let ms: u64 = parse(name, &v)?;
            if !(1..=max).contains(&ms) {
                return Err(ConfigError::out_of_range(name, ms, 1, max));
            }
            Ok(Some(Duration::from_millis(ms)))
        };
        if let Some(d) = millis("LANYARD_NET_CONNECT_TIMEOUT_MS", 120_000)? {
            config.net.connect_timeout = d;
        }
        if let Some(d) = millis("LANYARD_NET_TIMEOUT_MS", 600_000)? {
            config.net.timeout = d;
        }
        if let Some(d) = millis("LANYARD_CALLBACK_TIMEOUT_MS", 600_000)? {
            config.callback_timeout = d;
        }
        let positive = |name: &str| -> Result<Option<usize>, ConfigError> {
            let Some(v) = get(name) else { return Ok(None) };
            match parse(name, &v)? {
                0 => Err(ConfigError::NotPositive(name.to_string())),
                n => Ok(Some(n)),
            }
        };
        if let Some(n) = positive("LANYARD_NET_PER_HOST")? {
            config.net.per_host = n;
        }
        if let Some(n) = positive("LANYARD_STATUS_LIST_MAX_BYTES")? {
            config.status_list_max_bytes = n;
        }
        if let Some(n) = positive("LANYARD_CALLBACK_CONCURRENCY")? {
            config.callback_concurrency = n;
        }
        if let Some(v) = get("LANYARD_CALLBACK_RETENTION_S") {
            config.callback_retention =
                Duration::from_secs(parse("LANYARD_CALLBACK_RETENTION_S", &v)?);
        }
        // Shared identity (issue 13, h/ident).
        if let Some(v) = get("LANYARD_KEY_FILE").filter(|v| !v.trim().is_empty()) {
            config.key_file = Some(PathBuf::from(v));
        }
        // Several agents on one store (h/claims).
        if let Some(d) = millis("LANYARD_CALLBACK_POLL_MS", 600_000)? {
            config.callback_poll = d;
        }
        // Mediation protocol versions (issue 14, cm2): `LANYARD_MEDIATOR_PROTOCOLS`, the
        // comma-separated PIURIs of the Coordinate Mediation and Message Pickup versions the
        // mediator answers and discloses (default all: coordinate-mediation 3.0 and 2.0,
        // messagepickup 3.0, message-pickup 4.0); at least one of each.
        if let Some(v) = get("LANYARD_MEDIATOR_PROTOCOLS") {
            config.limits.offered = parse("LANYARD_MEDIATOR_PROTOCOLS", &v)?;
        }
        // Push wake-up (issue 14, h/pushgw).
        let text = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let push = &mut config.push;
        push.apns_key_file = text("LANYARD_APNS_KEY_FILE").map(PathBuf::from);
        push.apns_key_id = text("LANYARD_APNS_KEY_ID");
        push.apns_team_id = text("LANYARD_APNS_TEAM_ID");
        push.apns_topic = text("LANYARD_APNS_TOPIC");
        for (name, url) in [
            ("LANYARD_APNS_URL", &mut push.apns_url),
            ("LANYARD_FCM_URL", &mut push.fcm_url),
        ] {
            if let Some(v) = text(name) {
                if !(v.starts_with("https://") || v.starts_with("http://")) {
                    return Err(ConfigError::refused(
                        name,
                        format!("{v:?}"),
                        "is not an http(s) URL",
                    ));
                }
                *url = v.trim_end_matches('/').to_string();
            }
        }
        push.fcm_service_account = text("LANYARD_FCM_SERVICE_ACCOUNT").map(PathBuf::from);
        if let Some(v) = text("LANYARD_PUSH_WEBHOOKS") {
            push.webhooks = parse("LANYARD_PUSH_WEBHOOKS", &v)?;
        }
        if let Some(v) = text("LANYARD_PUSH_COALESCE_S") {
            let seconds: u64 = parse("LANYARD_PUSH_COALESCE_S", &v)?;
            if !(1..=86_400).contains(&seconds) {
                return Err(ConfigError::out_of_range(
                    "LANYARD_PUSH_COALESCE_S",
                    seconds,
                    1,
                    86_400,
                ));
            }
            push.coalesce = Duration::from_secs(seconds);
        }
        if let Some(d) = millis("LANYARD_PUSH_RETRY_MS", 300_000)? {
            push.retry_base = d;
        }
        if let Some(v) = text("LANYARD_PUSH_ATTEMPTS") {
            let attempts: u64 = parse("LANYARD_PUSH_ATTEMPTS", &v)?;
            if !(1..=20).contains(&attempts) {
                return Err(ConfigError::out_of_range(
                    "LANYARD_PUSH_ATTEMPTS",
                    attempts,
                    1,
                    20,
                ));
            }
            push.attempts = attempts as u32;
        }
        if let Some(n) = positive("LANYARD_PUSH_MAX_DEVICES")? {
            push.max_devices = n as u64;
        }
        if let Some(v) = text("LANYARD_PUSH_GATEWAY_URL") {
            if !(v.starts_with("https://") || v.starts_with("http://")) {
                return Err(ConfigError::refused(
                    "LANYARD_PUSH_GATEWAY_URL",
                    format!("{v:?}"),
                    "is not an http(s) URL",
                ));
            }
            push.gateway_url = Some(v.trim_end_matches('/').to_string());
        }
        if let Some(secret) = text("LANYARD_PUSH_GATEWAY_SECRET") {
            // Held to the admin token's rules (long, printable).
            crate::admin::AdminToken::new(&secret, "LANYARD_PUSH_GATEWAY_SECRET")?;
            push.gateway_secret = Some(secret);
        }
        if push.gateway_url.is_some() && push.gateway_secret.is_none() {
            return Err(ConfigError::Rule(
                "LANYARD_PUSH_GATEWAY_URL needs LANYARD_PUSH_GATEWAY_SECRET",
            ));
        }
        // The console's sign-in (issue 15, h/console).
        let ranged = |name: &str, min: u64, max: u64| -> Result<Option<u64>, ConfigError> {
            let Some(v) = text(name) else { return Ok(None) };
            let n: u64 = parse(name, &v)?;
            if !(min..=max).contains(&n) {
                return Err(ConfigError::out_of_range(name, n, min, max));
            }
            Ok(Some(n))
        };
        let sign_in = &mut config.console_sign_in;
        if let Some(s) = ranged("LANYARD_CONSOLE_SESSION_TTL_S", 60, 30 * 86_400)? {
            sign_in.session_ttl = Duration::from_secs(s);
        }
        if let Some(n) = ranged("LANYARD_CONSOLE_MAX_FAILURES", 1, 100)? {
            sign_in.max_failures = n as u32;
        }
        if let Some(s) = ranged("LANYARD_CONSOLE_LOCKOUT_S", 1, 3600)? {
            sign_in.lockout = Duration::from_secs(s);
        }
        if let Some(n) = ranged("LANYARD_CONSOLE_SIGN_INS_PER_MINUTE", 1, 1_000_000)? {
            sign_in.attempts.per_period = n as u32;
            sign_in.attempts.burst = (n as u32 / 10).max(1);
        }
        if config.max_message_bytes < 1024 {
            return Err(ConfigError::Rule(
                "LANYARD_MAX_MESSAGE_BYTES must be at least 1024",
            ));
        }
        if config.limits.queue_cap == 0 || config.limits.max_delivery == 0 {
            return Err(ConfigError::Rule(
                "LANYARD_QUEUE_CAP and LANYARD_MAX_DELIVERY must be positive",
            ));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_in_the_data_folder_unless_named() {
        let vars: HashMap<&str, &str> = [("LANYARD_DATA_DIR", "/srv/lanyard")].into();
        let config = Config::from_vars(|name| vars.get(name).map(|v| v.to_string())).unwrap();
        assert_eq!(config.key_file(), PathBuf::from("/srv/lanyard/agent.key"));
        let vars: HashMap<&str, &str> = [
            ("LANYARD_DATA_DIR", "/srv/lanyard"),
            ("LANYARD_KEY_FILE", "/run/secrets/lanyard.key"),
        ]
        .into();
        let config = Config::from_vars(|name| vars.get(name).map(|v| v.to_string())).unwrap();
        assert_eq!(config.key_file(), PathBuf::from("/run/secrets/lanyard.key"));
        let file = file_vars("key_file = \"/etc/lanyard/agent.key\"\n").unwrap();
        let config = Config::from_vars(|name| file.get(name).cloned()).unwrap();
        assert_eq!(config.key_file(), PathBuf::from("/etc/lanyard/agent.key"));
    }

    #[test]
    fn a_file_sets_what_the_environment_does_not() {
        let file = file_vars(
            "listen = \"127.0.0.1:9000\"\nqueue_cap = 7\napple_app_ids = [\"A.b\", \"C.d\"]\n",
        )
        .unwrap();
        let env: HashMap<&str, &str> = [("LANYARD_QUEUE_CAP", "9")].into();
        let config = Config::from_vars(|name| {
            env.get(name)
                .map(|v| v.to_string())
                .or_else(|| file.get(name).cloned())
        })
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.limits.queue_cap, 9, "the environment wins");
        assert_eq!(config.apple_app_ids, vec!["A.b", "C.d"]);
        // Without the variable, the file's queue_cap is the one read.
        let config = Config::from_vars(|name| file.get(name).cloned()).unwrap();
        assert_eq!(config.limits.queue_cap, 7, "the file's value is read");
        assert_ne!(Config::default().limits.queue_cap, 7);
        let error = file_vars("lisen = \"x\"").unwrap_err().to_string();
        assert!(error.contains("unknown key \"lisen\""), "{error}");
        assert!(file_vars("listen = [1]")
            .unwrap_err()
            .to_string()
            .contains("not a string"));
        assert!(file_vars("listen = ").is_err());
    }

    #[test]
    fn the_database_url_is_checked_and_never_shown() {
        let vars: HashMap<&str, &str> = [
            (
                "LANYARD_DATABASE_URL",
                "postgres://agent:hunter2@db.internal:5432/lanyard",
            ),
            ("LANYARD_DATABASE_POOL", "32"),
        ]
        .into();
        let config = Config::from_vars(|n| vars.get(n).map(|v| v.to_string())).unwrap();
        assert_eq!(config.database_pool, 32);
        assert!(config.database_url.is_some());
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let error = Config::from_vars(|n| {
            (n == "LANYARD_DATABASE_URL").then(|| "postgres://agent:hunter2@db:notaport/x".into())
        })
        .unwrap_err()
        .to_string();
        assert!(error.contains("LANYARD_DATABASE_URL"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        let error = Config::from_vars(|n| (n == "LANYARD_DATABASE_POOL").then(|| "1".into()))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("LANYARD_DATABASE_POOL=1 is not between 2 and 1000"),
            "{error}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let error = Config::from_vars(|n| (n == "LANYARD_LISTEN").then(|| "nowhere".into()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("LANYARD_LISTEN=\"nowhere\""), "{error}");
        let error = Config::from_vars(|n| (n == "LANYARD_PUBLIC_URL").then(|| "ftp://x".into()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("LANYARD_PUBLIC_URL"), "{error}");
        let config = Config::from_vars(|n| (n == "LANYARD_QUEUE_CAP").then(|| "5".into())).unwrap();
        assert_eq!(config.limits.queue_cap, 5);
        let error =
            Config::from_vars(|n| (n == "LANYARD_COMMIT_WINDOW_US").then(|| "200000".into()))
                .unwrap_err()
                .to_string();
        assert!(error.contains("LANYARD_COMMIT_WINDOW_US=200000"), "{error}");
        let config =
            Config::from_vars(|n| (n == "LANYARD_COMMIT_WINDOW_US").then(|| "0".into())).unwrap();
        assert!(config.commit_window.is_zero());
    }

    #[test]
    fn issuer_limits_are_read_and_bounded() {
        let vars: HashMap<&str, &str> = [
            ("LANYARD_OUTBOX_TTL_SECS", "60"),
            ("LANYARD_OUTBOX_MAX_ATTEMPTS", "3"),
            ("LANYARD_OUTBOX_RETRY_MS", "50"),
            ("LANYARD_STRANGER_ANSWERS_PER_MINUTE", "0"),
            ("LANYARD_STRANGER_ANSWER_BURST", "2"),
            ("LANYARD_INVITATIONS_PER_HOUR", "10"),
            ("LANYARD_INVITATION_BURST", "4"),
        ]
        .into();
        let config = Config::from_vars(|n| vars.get(n).map(|v| v.to_string())).unwrap();
        let limits = &config.issuer_limits;
        assert_eq!(limits.outbox_ttl, Duration::from_secs(60));
        assert_eq!(limits.outbox_max_attempts, 3);
        assert_eq!(limits.outbox_retry, Duration::from_millis(50));
        assert_eq!(limits.stranger_answers.per_period, 0);
        assert_eq!(limits.stranger_answers.burst, 2);
        assert_eq!(limits.invitations_sent.per_period, 10);
        assert_eq!(limits.invitations_sent.burst, 4);
        let error = Config::from_vars(|n| (n == "LANYARD_OUTBOX_MAX_ATTEMPTS").then(|| "0".into()))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("LANYARD_OUTBOX_MAX_ATTEMPTS=0 is not between 1 and 10000"),
            "{error}"
        );
        let error = Config::from_vars(|n| (n == "LANYARD_INVITATION_BURST").then(|| "x".into()))
            .unwrap_err()
            .to_string();
        assert!(error.contains("LANYARD_INVITATION_BURST=\"x\""), "{error}");
        assert!(file_vars("outbox_ttl_secs = 5").is_ok());
    }

    #[test]
    fn mediator_quotas_and_server_limits_are_read_and_checked() {
        let vars: HashMap<&str, &str> = [
            ("LANYARD_MEDIATION_ADMISSION", "invited"),
            ("LANYARD_MAX_RECIPIENTS", "7"),
            ("LANYARD_CLIENT_QUEUE_BYTES", "1000"),
            ("LANYARD_STORE_QUEUE_BYTES", "2000"),
            ("LANYARD_MESSAGE_MAX_AGE_S", "60"),
            ("LANYARD_REPLAY_WINDOW_S", "30"),
            ("LANYARD_MAX_CONNECTIONS", "8"),
            ("LANYARD_MAX_LIVE_CONNECTIONS", "9"),
            ("LANYARD_HEADER_READ_TIMEOUT_MS", "250"),
            ("LANYARD_REQUEST_TIMEOUT_MS", "500"),
            ("LANYARD_LIVE_IDLE_TIMEOUT_S", "5"),
            ("LANYARD_SHUTDOWN_GRACE_MS", "1500"),
        ]
        .into();
        let config = Config::from_vars(|n| vars.get(n).map(|v| v.to_string())).unwrap();
        let limits = &config.limits;
        assert_eq!(limits.admission, crate::mediator::Admission::Invited);
        assert_eq!(
            (
                limits.max_recipients,
                limits.client_queue_bytes,
                limits.store_queue_bytes
            ),
            (7, 1000, 2000)
        );
        assert_eq!(limits.message_max_age, Duration::from_secs(60));
        assert_eq!(limits.replay_window, Duration::from_secs(30));
        assert_eq!(
            (config.max_connections, config.max_live_connections),
            (8, 9)
        );
        assert_eq!(config.header_read_timeout, Duration::from_millis(250));
        assert_eq!(config.request_timeout, Duration::from_millis(500));
        assert_eq!(config.live_idle_timeout, Duration::from_secs(5));
        assert_eq!(config.shutdown_grace, Duration::from_millis(1500));
        assert!(file_vars("mediation_admission = \"open\"").is_ok());

        let error =
            Config::from_vars(|n| (n == "LANYARD_MEDIATION_ADMISSION").then(|| "anyone".into()))
                .unwrap_err()
                .to_string();
        assert!(
            error.contains("LANYARD_MEDIATION_ADMISSION=\"anyone\""),
            "{error}"
        );
        assert!(
            error.contains("neither \"open\" nor \"invited\""),
            "{error}"
        );
        let error = Config::from_vars(|n| (n == "LANYARD_MAX_CONNECTIONS").then(|| "0".into()))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("LANYARD_MAX_CONNECTIONS must be positive"),
            "{error}"
        );
        // The defaults a public deployment keeps.
        let config = Config::default();
        assert_eq!(config.limits.admission, crate::mediator::Admission::Open);
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
    }

    #[test]
    fn outbound_http_is_strict_unless_configured() {
        let config = Config::from_vars(|_| None).unwrap();
        assert!(!config.net.allow_loopback, "loopback is allowed by default");
        assert!(config.net.allow.is_empty());
        let vars: HashMap<&str, &str> = [
            ("LANYARD_NET_ALLOW_LOOPBACK", "true"),
            ("LANYARD_NET_ALLOW", "10.20.0.0/16, sms.internal"),
            ("LANYARD_NET_TIMEOUT_MS", "2500"),
            ("LANYARD_CALLBACK_RETENTION_S", "0"),
        ]
        .into();
        let config = Config::from_vars(|n| vars.get(n).map(|v| v.to_string())).unwrap();
        assert!(config.net.allow_loopback);
        assert_eq!(config.net.allow.len(), 2);
        assert_eq!(config.net.timeout, Duration::from_millis(2500));
        assert!(config.callback_retention.is_zero());
        let error =
            Config::from_vars(|n| (n == "LANYARD_NET_ALLOW").then(|| "10.0.0.0/8,a b".into()))
                .unwrap_err()
                .to_string();
        assert!(
            error.contains("LANYARD_NET_ALLOW") && error.contains("\"a b\""),
            "{error}"
        );
        // The file's boolean reads as the variable would.
        let file = file_vars("net_allow_loopback = true\nnet_allow = [\"10.0.0.0/8\"]\n").unwrap();
        let config = Config::from_vars(|n| file.get(n).cloned()).unwrap();
        assert!(config.net.allow_loopback);
        assert_eq!(config.net.allow.len(), 1);
        let error = Config::from_vars(|n| (n == "LANYARD_NET_PER_HOST").then(|| "0".into()))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("LANYARD_NET_PER_HOST must be positive"),
            "{error}"
        );
    }

    // Mediation protocol versions (issue 14, cm2).
    #[test]
    fn the_mediation_versions_offered_are_read_and_checked() {
        use lanyard_protocol::protocols::{coordinate_mediation, pickup};
        let default = Config::default().limits.offered;
        assert_eq!(default.coordinate.len(), 2, "both offered by default");
        assert_eq!(default.pickup.len(), 2, "both offered by default");
        let only = |v: &str| {
            let v = v.to_string();
            Config::from_vars(move |n| (n == "LANYARD_MEDIATOR_PROTOCOLS").then(|| v.clone()))
        };
        let offered = only(
            "https://didcomm.org/coordinate-mediation/2.0, https://didcomm.org/message-pickup/4.0",
        )
        .unwrap()
        .limits
        .offered;
        assert_eq!(offered.coordinate, [coordinate_mediation::Version::V2]);
        assert_eq!(offered.pickup, [pickup::Version::V4]);
        let error = only("https://didcomm.org/coordinate-mediation/1.0")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("LANYARD_MEDIATOR_PROTOCOLS=")
                && error.contains(
                    "\"https://didcomm.org/coordinate-mediation/1.0\" is not a protocol offered"
                ),
            "{error}"
        );
        let error = only("https://didcomm.org/coordinate-mediation/3.0")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("it names no Coordinate Mediation or no Pickup version"),
            "{error}"
        );
        assert!(file_vars(
            "mediator_protocols = \"https://didcomm.org/coordinate-mediation/3.0,https://didcomm.org/messagepickup/3.0\""
        )
        .is_ok());
    }
}

//! The one hardened outbound HTTP client of the wallet and the agent (DESIGN §5): everything
//! either fetches (did:web documents, status lists, short invite URLs, the mediator document,
//! callbacks, the SMS gateway, DIDComm endpoints) goes through [`HttpClient`]. HTTPS only
//! (plain HTTP to loopback hosts when [`NetPolicy::allow_loopback`] is set); host names are
//! resolved by the client's own DNS hook, which drops every non-public address the policy does
//! not allow, so the address checked is the address connected to; no redirects; bodies read
//! as a stream and cut at a byte cap; connect and total timeouts; a per-host limit on requests
//! in flight. HTTP/2 is offered (ALPN) beside HTTP/1.1 over TLS: APNs speaks only HTTP/2.

mod policy;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;
use tokio::sync::Semaphore;

pub use policy::{Allowed, NetPolicy};

/// Why a request was refused or failed. `Display` is for the operator and the customer's own
/// app (it names hosts and addresses); [`NetError::public`] is what may be told a stranger.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NetError {
    /// Not an absolute http(s) URL with a host.
    #[error("{url:?} is not a URL that can be fetched: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `http://` to a host that is not loopback, or loopback when the policy refuses it.
    #[error("{url} uses plain http://, which is allowed only to loopback hosts in development; use https://")]
    PlainHttp {
        /// The URL.
        url: String,
    },
    /// The host is, or resolves to, an address the policy does not allow.
    #[error("{host} resolves to {ip}, a {range} address, which is not allowed")]
    Refused {
        /// The host name or IP literal.
        host: String,
        /// The address refused.
        ip: IpAddr,
        /// Which special-purpose range it is in.
        range: &'static str,
    },
    /// The host name did not resolve.
    #[error("{host} could not be resolved: {reason}")]
    Dns {
        /// The host name.
        host: String,
        /// The resolver's reason.
        reason: String,
    },
    /// A 3xx answer: redirects are never followed.
    #[error("{url} answered {status} (a redirect), and redirects are not followed")]
    Redirect {
        /// The URL.
        url: String,
        /// The 3xx status.
        status: u16,
    },
    /// The answer was longer than the request's byte cap.
    #[error("{url} answered more than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        limit: usize,
    },
    /// No whole answer within the total timeout.
    #[error("{url} did not answer within {seconds} s")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        seconds: u64,
    },
    /// The connection failed (refused, reset, TLS).
    #[error("{url} could not be reached: {reason}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// An allow-list entry that is not an address or network.
    #[error("allow-list entry {entry:?} is {reason}")]
    BadAllowEntry {
        /// The entry as configured.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The underlying client could not be built (TLS roots, resolver).
    #[error("the HTTP client cannot be built: {0}")]
    NoClient(String),
}

impl NetError {
    /// The reason in words that name no address, host resolution or connection detail: fit
    /// for a stranger (an API caller, a callback's attempt log).
    pub fn public(&self) -> &'static str {
        match self {
            NetError::BadUrl { .. } => "the URL cannot be fetched",
            NetError::PlainHttp { .. } => "the URL must use https://",
            NetError::Refused { .. } => "the host is not a public address",
            NetError::Dns { .. } => "the host name could not be resolved",
            NetError::Redirect { .. } => "it answered with a redirect, which is not followed",
            NetError::TooLarge { .. } => "the answer is too large",
            NetError::Timeout { .. } => "it did not answer in time",
            NetError::Unreachable { .. } => "it could not be reached",
            NetError::BadAllowEntry { .. } | NetError::NoClient(_) => {
                "the network configuration is invalid"
            }
        }
    }
}

/// A request to send: method, URL, headers, body, the largest answer to read.
pub struct Request {
    method: reqwest::Method,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    max_bytes: usize,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values (bearer tokens, signatures) and the body are left out.
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>(),
            )
            .field("body_bytes", &self.body.as_ref().map(Vec::len))
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

/// The answer cap when a request names none.
pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;

impl Request {
    /// A GET of `url`, reading at most [`DEFAULT_MAX_BYTES`].
    pub fn get(url: &str) -> Request {
        Request {
            method: reqwest::Method::GET,
            url: url.to_string(),
            headers: Vec::new(),
            body: None,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// A POST of `body` (of `content_type`) to `url`, reading at most [`DEFAULT_MAX_BYTES`].
    pub fn post(url: &str, content_type: &str, body: Vec<u8>) -> Request {
        Request {
            method: reqwest::Method::POST,
            url: url.to_string(),
            headers: vec![("content-type", content_type.to_string())],
            body: Some(body),
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Request {
        self.headers.push((name, value.into()));
        self
    }

    /// Reads at most `bytes` of the answer; a longer one is [`NetError::TooLarge`].
    pub fn max_bytes(mut self, bytes: usize) -> Request {
        self.max_bytes = bytes;
        self
    }
}

/// An answer: its status, its body (at most the request's byte cap) and the few headers a
/// caller may act on ([`KEPT_HEADERS`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// The body, at most the request's byte cap.
    pub body: Vec<u8>,
    /// The answer's headers named in [`KEPT_HEADERS`] (lower-case names), values cut at 256
    /// bytes.
    headers: Vec<(&'static str, String)>,
}

/// The answer headers [`Response::header`] keeps: when to retry, and APNs' id of a push.
pub const KEPT_HEADERS: [&str; 3] = ["retry-after", "apns-id", "content-type"];

impl Response {
    /// A 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The value of header `name` (one of [`KEPT_HEADERS`], lower case), if it was sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(kept, _)| *kept == name)
            .map(|(_, value)| value.as_str())
    }

    /// `Retry-After` in seconds (RFC 9110 §10.2.3: delay-seconds; an HTTP date is not read).
    pub fn retry_after(&self) -> Option<Duration> {
        self.header("retry-after")?
            .trim()
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
    }
}

/// The DNS hook: resolves, then keeps only the addresses the policy allows.
struct Guard {
    policy: NetPolicy,
}

impl reqwest::dns::Resolve for Guard {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let allowed = allowed_addrs(&policy, &host)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The addresses `host` resolves to that the policy lets the client connect to; the refusal
/// of the first one when none is left.
async fn allowed_addrs(policy: &NetPolicy, host: &str) -> Result<Vec<SocketAddr>, NetError> {
    let addrs: Vec<SocketAddr> = if policy::is_localhost_name(host) {
        // Never asked of DNS: `localhost` is this machine (RFC 6761).
        vec![
            SocketAddr::from(([127, 0, 0, 1], 0)),
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
        ]
    } else {
        tokio::net::lookup_host((host, 0))
            .await
            .map_err(|e| NetError::Dns {
                host: host.to_string(),
                reason: e.to_string(),
            })?
            .collect()
    };
    let mut refused = None;
    let allowed: Vec<SocketAddr> = addrs
        .into_iter()
        .filter(|addr| match policy.check_ip(host, addr.ip()) {
            Ok(()) => true,
            Err(error) => {
                refused.get_or_insert(error);
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        return Err(refused.unwrap_or_else(|| NetError::Dns {
            host: host.to_string(),
            reason: "no address".into(),
        }));
    }
    Ok(allowed)
}

/// Hosts with requests in flight and the slots each has left.
#[derive(Default)]
struct Slots {
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Slots {
    fn of(&self, host: &str, per_host: usize) -> Arc<Semaphore> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if hosts.len() >= 1024 {
            // Hosts nobody waits on or holds a slot of are forgotten.
            hosts.retain(|_, slots| Arc::strong_count(slots) > 1);
        }
        hosts
            .entry(host.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(per_host.max(1))))
            .clone()
    }
}

/// The hardened client. Cheap to clone (one connection pool, one policy).
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    policy: Arc<NetPolicy>,
    slots: Arc<Slots>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client that enforces `policy`.
    pub fn new(policy: NetPolicy) -> Result<HttpClient, NetError> {
        let mut builder = reqwest::Client::builder();
        for der in &policy.extra_roots {
            let root = reqwest::Certificate::from_der(der)
                .map_err(|e| NetError::NoClient(format!("an extra root certificate: {e}")))?;
            builder = builder.add_root_certificate(root);
        }
        let inner = builder
            .dns_resolver(Arc::new(Guard {
                policy: policy.clone(),
            }))
            // A proxy would resolve names itself, past the guard.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.timeout)
            .user_agent(concat!("Lanyard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NetError::NoClient(e.to_string()))?;
        Ok(HttpClient {
            inner,
            policy: Arc::new(policy),
            slots: Arc::default(),
        })
    }

    /// The strict default policy's client.
    pub fn strict() -> Result<HttpClient, NetError> {
        HttpClient::new(NetPolicy::default())
    }

    /// The policy this client enforces.
    pub fn policy(&self) -> &NetPolicy {
        &self.policy
    }

    /// Checks what can be checked of `url` without the network: a URL, `https://` (or
    /// `http://` to a loopback host when allowed), and an IP-literal host the policy allows.
    /// Host names are checked when they are resolved, at each connection.
    pub fn check_url(&self, url: &str) -> Result<Url, NetError> {
        let bad = |reason: &str| NetError::BadUrl {
            url: url.chars().take(200).collect(),
            reason: reason.to_string(),
        };
        let parsed = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad("it carries a user name or password"));
        }
        let host_text = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("it has no host"))?
            .to_string();
        // The URL parser has normalised IP literals (`[::1]`, `127.0.0.1`, even `0x7f.1`).
        let literal: Option<IpAddr> = host_text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok();
        match parsed.scheme() {
            "https" => {}
            "http" => {
                let loopback = match literal {
                    Some(ip) => ip.is_loopback(),
                    None => policy::is_localhost_name(&host_text),
                };
                if !(loopback && self.policy.allow_loopback) {
                    return Err(NetError::PlainHttp {
                        url: parsed.to_string(),
                    });
                }
            }
            other => return Err(bad(&format!("{other}: is neither https nor http"))),
        }
        if let Some(ip) = literal {
            self.policy.check_ip(&host_text, ip)?;
        }
        Ok(parsed)
    }

    /// Opens a TCP connection to `url`'s host under the policy (for a WebSocket, which
    /// reqwest does not carry): the URL is checked as for a request ([`check_url`], with
    /// `ws`/`wss` standing for `http`/`https`), the host resolved, only allowed addresses
    /// tried, within the connect timeout.
    ///
    /// [`check_url`]: HttpClient::check_url
    pub async fn connect(&self, url: &str) -> Result<tokio::net::TcpStream, NetError> {
        let as_http = if let Some(rest) = url.strip_prefix("wss://") {
            format!("https://{rest}")
        } else if let Some(rest) = url.strip_prefix("ws://") {
            format!("http://{rest}")
        } else {
            url.to_string()
        };
        let parsed = self.check_url(&as_http)?;
        let host = parsed.host_str().unwrap_or_default();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let literal: Option<IpAddr> = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok();
        let addrs = match literal {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => allowed_addrs(&self.policy, host)
                .await?
                .into_iter()
                .map(|addr| SocketAddr::new(addr.ip(), port))
                .collect(),
        };
        let timeout = self.policy.connect_timeout;
        let mut last = String::from("no address");
        for addr in addrs {
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => return Ok(stream),
                Ok(Err(error)) => last = error.to_string(),
                Err(_) => {
                    return Err(NetError::Timeout {
                        url: url.to_string(),
                        seconds: timeout.as_secs(),
                    })
                }
            }
        }
        Err(NetError::Unreachable {
            url: url.to_string(),
            reason: last,
        })
    }

    /// Sends `request` under the policy; the answer whatever its status, except a redirect.
    pub async fn send(&self, request: Request) -> Result<Response, NetError> {
        let url = self.check_url(&request.url)?;
        let shown = url.to_string();
        let seconds = self.policy.timeout.as_secs();
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let slots = self.slots.of(&host, self.policy.per_host);
        let work = async {
            let _slot = slots.acquire().await.map_err(|_| NetError::Unreachable {
                url: shown.clone(),
                reason: "the client is shutting down".into(),
            })?;
            self.exchange(url, request).await
        };
        tokio::time::timeout(self.policy.timeout, work)
            .await
            .unwrap_or(Err(NetError::Timeout {
                url: shown,
                seconds,
            }))
    }

    async fn exchange(&self, url: Url, request: Request) -> Result<Response, NetError> {
        let shown = url.to_string();
        let failed = |error: reqwest::Error| classify(&shown, self.policy.timeout, error);
        let mut builder = self.inner.request(request.method, url.clone());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let mut response = builder.send().await.map_err(failed)?;
        let status = response.status().as_u16();
        let headers = KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = response.headers().get(*name)?.to_str().ok()?;
                Some((*name, value.chars().take(256).collect()))
            })
            .collect();
        if (300..400).contains(&status) {
            return Err(NetError::Redirect { url: shown, status });
        }
        let limit = request.max_bytes;
        let too_large = || NetError::TooLarge {
            url: shown.clone(),
            limit,
        };
        if response
            .content_length()
            .is_some_and(|length| length > limit as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(failed)? {
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response {
            status,
            body,
            headers,
        })
    }
}

/// A reqwest failure as a [`NetError`]: the guard's own refusal when that is the cause.
fn classify(url: &str, timeout: Duration, error: reqwest::Error) -> NetError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(cause) = source {
        if let Some(refusal) = cause.downcast_ref::<NetError>() {
            return refusal.clone();
        }
        source = cause.source();
    }
    if error.is_timeout() {
        return NetError::Timeout {
            url: url.to_string(),
            seconds: timeout.as_secs(),
        };
    }
    // The innermost cause says what happened ("Connection refused (os error 111)").
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        reason = cause.to_string();
        source = cause.source();
    }
    NetError::Unreachable {
        url: url.to_string(),
        reason,
    }
}

//! What the push tests share: an HTTPS receiver on loopback that speaks only HTTP/2 (ALPN
//! `h2`, as APNs does) under a certificate of a test CA made at test time, recording every
//! request and answering from a script; the gateway built against it.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent::push::{
    LocalPushGateway, PushBackend, PushConfig, PushGateway, SledPushStore, WakeHandle, Woken,
};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use lanyard_protocol::net::{HttpClient, NetPolicy};
use tokio::sync::Notify;

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The HTTP version (`HTTP/2.0` expected).
    pub version: hyper::Version,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    /// The value of header `name`, if sent once; panics if sent more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let values: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(values.len() <= 1, "{name} sent {} times", values.len());
        values.first().copied()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// An answer: status, headers, body.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }

    pub fn json(status: u16, body: serde_json::Value) -> Answer {
        Answer {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Answer {
        self.headers.push((name, value.to_string()));
        self
    }
}

/// Decides the answer to a request (the token endpoint computes one); `None` falls back to
/// the script.
pub type Responder = Arc<dyn Fn(&Seen) -> Option<Answer> + Send + Sync>;

#[derive(Default)]
struct Log {
    seen: Mutex<Vec<Seen>>,
    script: Mutex<VecDeque<Answer>>,
    arrived: Notify,
}

/// The receiver: HTTPS on 127.0.0.1, HTTP/2 only.
pub struct Receiver {
    pub addr: SocketAddr,
    /// The test CA's certificate (DER), for the client's extra roots.
    pub ca_der: Vec<u8>,
    log: Arc<Log>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A test CA and a certificate for `localhost` it signed: (CA DER, leaf DER, leaf key DER).
fn test_pki() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Lanyard push test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    (
        ca.der().to_vec(),
        leaf.der().to_vec(),
        leaf_key.serialize_der(),
    )
}

impl Receiver {
    /// Starts a receiver answering from its script (200 with no body when it runs out), or
    /// from `responder` when it has an answer.
    pub async fn start(responder: Option<Responder>) -> Receiver {
        let (ca_der, leaf_der, key_der) = test_pki();
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut tls = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf_der.into()],
                tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(key_der.into()),
            )
            .unwrap();
        // HTTP/2 only, as APNs: a client that cannot speak it fails the handshake.
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Log::default());
        let served = log.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let log = served.clone();
                let responder = responder.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let log = log.clone();
                        let responder = responder.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                handle(&log, responder, request).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        Receiver {
            addr,
            ca_der,
            log,
            task,
        }
    }

    /// `https://localhost:<port>`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// Queues answers, used in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.log.script.lock().unwrap().extend(answers);
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.log.seen.lock().unwrap().clone()
    }

    /// Waits until `n` requests whose path starts with `prefix` arrived (at most 30 s, then
    /// panics naming what arrived).
    pub async fn wait_for(&self, prefix: &str, n: usize) -> Vec<Seen> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let notified = self.log.arrived.notified();
            let matching: Vec<Seen> = self
                .seen()
                .into_iter()
                .filter(|s| s.path.starts_with(prefix))
                .collect();
            if matching.len() >= n {
                return matching;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("{n} requests to {prefix} expected, got {matching:?}");
            }
        }
    }

    /// A client trusting the test CA, loopback allowed (the receiver's address).
    pub fn client(&self) -> HttpClient {
        HttpClient::new(NetPolicy {
            allow_loopback: true,
            extra_roots: vec![self.ca_der.clone()],
            ..NetPolicy::default()
        })
        .unwrap()
    }
}

async fn handle(
    log: &Log,
    responder: Option<Responder>,
    request: hyper::Request<Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let version = request.version();
    let method = request.method().to_string();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = request
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    let seen = Seen {
        version,
        method,
        path,
        headers,
        body,
    };
    let answer = responder
        .and_then(|r| r(&seen))
        .or_else(|| log.script.lock().unwrap().pop_front())
        .unwrap_or_else(|| Answer::status(200));
    log.seen.lock().unwrap().push(seen);
    log.arrived.notify_waiters();
    let mut response = hyper::Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        response = response.header(*name, value);
    }
    response.body(Full::new(Bytes::from(answer.body))).unwrap()
}

/// A P-256 key as Apple gives it (`.p8`: PKCS#8 PEM) and its public key (uncompressed SEC1).
pub fn apns_key() -> (String, Vec<u8>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    (key.serialize_pem(), key.public_key_raw().to_vec())
}

/// The test RSA key (PKCS#8 PEM) standing for a service account's.
pub const RSA_KEY: &str = include_str!("../data/push-test-rsa.pem");

/// The test RSA key's public key (DER RSAPublicKey), for checking signatures.
pub fn rsa_public() -> Vec<u8> {
    use base64::Engine as _;
    let body: String = RSA_KEY
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).unwrap();
    use ring::signature::KeyPair as _;
    pair.public_key().as_ref().to_vec()
}

/// A JWT's header, claims and signature input and signature.
pub struct Jwt {
    pub header: serde_json::Value,
    pub claims: serde_json::Value,
    pub input: String,
    pub signature: Vec<u8>,
}

pub fn split_jwt(jwt: &str) -> Jwt {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS: {jwt}");
    let decode = |p: &str| lanyard_protocol::encoding::b64u_decode(p).unwrap();
    Jwt {
        header: serde_json::from_slice(&decode(parts[0])).unwrap(),
        claims: serde_json::from_slice(&decode(parts[1])).unwrap(),
        input: format!("{}.{}", parts[0], parts[1]),
        signature: decode(parts[2]),
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A gateway on a fresh sled store in `dir` with `config`, through `client`.
pub fn sled_gateway(
    dir: &std::path::Path,
    config: &PushConfig,
    client: HttpClient,
) -> LocalPushGateway {
    let store = SledPushStore::open(&dir.join("push"), Duration::ZERO).unwrap();
    LocalPushGateway::new(config, PushBackend::Sled(store), &[9; 32], client).unwrap()
}

/// A config with retries quick (tests wait for them, never time them).
pub fn quick() -> PushConfig {
    PushConfig {
        retry_base: Duration::from_millis(20),
        ..PushConfig::default()
    }
}

/// Wakes `handle` `n` times at once, spread over `gateways` in turn (agents on one store), and
/// asserts that exactly one wake was sent and every other one coalesced.
pub async fn wake_at_once_and_expect_one_sent(
    gateways: &[Arc<LocalPushGateway>],
    handle: WakeHandle,
    n: usize,
) {
    let wakes: Vec<_> = (0..n)
        .map(|i| {
            let gateway = gateways[i % gateways.len()].clone();
            tokio::spawn(async move { gateway.wake(&handle).await.unwrap() })
        })
        .collect();
    let mut outcomes = Vec::new();
    for wake in wakes {
        outcomes.push(wake.await.unwrap());
    }
    let count = |woken: Woken| outcomes.iter().filter(|o| **o == woken).count();
    assert_eq!(count(Woken::Sent), 1, "{outcomes:?}");
    assert_eq!(count(Woken::Coalesced), n - 1, "{outcomes:?}");
}

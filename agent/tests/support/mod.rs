//! What the mediator tests share: a running agent on loopback, a phone (a wallet with a
//! did:peer:2 routed through the mediator) and an issuer with a did:key.

#![allow(dead_code)]

use std::sync::Arc;

use agent::config::Config;
use agent::mediator::Limits;
use lanyard_protocol::did::{did_key, did_peer_2, PeerDidSpec, PeerService, Resolver};
use lanyard_protocol::didcomm::{DidComm, Message, Unpacked, ENCRYPTED_TYP};
use lanyard_protocol::encoding::b64u_decode;
use lanyard_protocol::keys::{KeyRing, KeyType};
use serde_json::{json, Value};

/// The admin token the in-process agents are started with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// A running agent on a loopback port with its own data folder.
pub struct Agent {
    running: Option<agent::Running>,
    pub url: String,
    pub did: String,
    _data: Option<tempfile::TempDir>,
}

impl Agent {
    /// The agent's `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn start(limits: Limits) -> Agent {
        Agent::start_with(limits, |_| {}).await
    }

    /// Starts an agent whose configuration `edit` adjusts first.
    pub async fn start_with(limits: Limits, edit: impl FnOnce(&mut Config)) -> Agent {
        let data = tempfile::tempdir().unwrap();
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data.path().to_path_buf(),
            limits,
            admin_token: Some(ADMIN_TOKEN.to_string()),
            deep_link_scheme: "lanyard".to_string(),
            apple_app_ids: vec!["TEAM123456.app.lanyard.wallet".to_string()],
            android_package: Some("app.lanyard.wallet".to_string()),
            android_cert_sha256: vec!["AB:CD:EF".to_string()],
            // Everything runs on loopback: the development allowance.
            net: lanyard_protocol::net::NetPolicy::loopback(),
            ..Config::default()
        };
        edit(&mut config);
        let running = agent::start(config).await.expect("the agent starts");
        Agent {
            url: format!("http://{}", running.addr),
            did: running.did.clone(),
            running: Some(running),
            _data: Some(data),
        }
    }

    /// An agent running elsewhere (another process) at `url` with mediator DID `did`.
    pub fn at(url: String, did: String) -> Agent {
        Agent {
            running: None,
            url,
            did,
            _data: None,
        }
    }

    pub async fn post(&self, content_type: &str, body: String) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/didcomm", self.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("the agent answers")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.server.abort();
        }
    }
}

/// Creates an invitation through the admin API; returns its `data`.
pub async fn create_invitation(agent: &Agent, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/admin/invitations", agent.url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "invitation not created");
    response.json::<Value>().await.unwrap()["data"].clone()
}

/// A wallet: a did:peer:2 whose service is the mediator's DID.
pub struct Phone {
    pub did: String,
    pub didcomm: DidComm<Resolver>,
    pub ring: Arc<KeyRing>,
    /// The Ed25519 key of the DID's authentication relationship.
    pub signing: lanyard_protocol::keys::PublicKey,
}

impl Phone {
    pub fn new(mediator_did: &str) -> Phone {
        let ring = Arc::new(KeyRing::new());
        let signing = ring.generate(KeyType::Ed25519);
        let did = did_peer_2(&PeerDidSpec {
            authentication: vec![signing],
            key_agreement: vec![ring.generate(KeyType::X25519)],
            services: vec![PeerService {
                uri: mediator_did.to_string(),
                routing_keys: vec![],
                accept: vec!["didcomm/v2".into()],
            }],
        });
        Phone {
            did,
            didcomm: DidComm::new(ring.clone(), Resolver::default()),
            ring,
            signing,
        }
    }

    /// A presentation of `credentials` for `request`, signed with this DID's authentication
    /// key for the request's challenge and domain (or `challenge` instead, to test refusals).
    pub fn present(
        &self,
        request: &lanyard_protocol::protocols::present_proof::PresentationRequest,
        credentials: &[Value],
        challenge: Option<&str>,
    ) -> Message {
        let method = lanyard_protocol::did::resolve_local(&self.did)
            .unwrap()
            .authentication_keys()[0]
            .0
            .clone();
        let vp = lanyard_protocol::credentials::vc::present(
            credentials,
            &self.did,
            &self.ring,
            &self.signing,
            &method,
            challenge.unwrap_or(&request.challenge),
            &request.domain,
            lanyard_protocol::didcomm::now(),
        )
        .unwrap();
        lanyard_protocol::protocols::present_proof::presentation_message(request, vp)
    }

    /// Sends a request to the mediator and unpacks its answer.
    pub async fn ask(&self, agent: &Agent, type_: &str, body: Value) -> Unpacked {
        let response = self.send(agent, type_, body).await;
        assert_eq!(response.status(), 200, "{type_} was not answered");
        let text = response.text().await.unwrap();
        self.didcomm
            .unpack(&text)
            .await
            .expect("the answer unpacks")
    }

    /// A request to the mediator, authcrypted, asking for answers on the same connection.
    pub async fn pack_request(&self, agent: &Agent, type_: &str, body: Value) -> String {
        let mut message = Message::new(type_, body)
            .from(self.did.clone())
            .to([agent.did.clone()]);
        message.extra.insert("return_route".into(), json!("all"));
        self.didcomm
            .pack_authcrypt(&message, &self.did, &[&agent.did], false)
            .await
            .unwrap()
    }

    pub async fn send(&self, agent: &Agent, type_: &str, body: Value) -> reqwest::Response {
        let packed = self.pack_request(agent, type_, body).await;
        agent.post(ENCRYPTED_TYP, packed).await
    }

    pub async fn connect(&self, agent: &Agent) {
        let grant = self.ask(agent, mediator::MEDIATE_REQUEST, json!({})).await;
        assert_eq!(grant.message.type_, mediator::MEDIATE_GRANT);
        assert_eq!(grant.message.body["routing_did"], json!([agent.did]));
        let update = self
            .ask(
                agent,
                mediator::RECIPIENT_UPDATE,
                json!({"updates": [{"recipient_did": self.did, "action": "add"}]}),
            )
            .await;
        assert_eq!(update.message.body["updated"][0]["result"], "success");
    }

    /// Picks up to `limit` waiting messages, unpacks each, and acknowledges them.
    pub async fn pick_up(&self, agent: &Agent, limit: u64) -> Vec<Message> {
        let delivery = self
            .ask(agent, mediator::DELIVERY_REQUEST, json!({ "limit": limit }))
            .await;
        if delivery.message.type_ == mediator::STATUS {
            return Vec::new();
        }
        assert_eq!(delivery.message.type_, mediator::DELIVERY);
        let mut messages = Vec::new();
        let mut ids = Vec::new();
        for attachment in &delivery.message.attachments {
            ids.push(attachment.id.clone().unwrap());
            let bytes = b64u_decode(attachment.data.base64.as_deref().unwrap()).unwrap();
            let inner = self
                .didcomm
                .unpack(std::str::from_utf8(&bytes).unwrap())
                .await
                .expect("a delivered message unpacks");
            messages.push(inner.message);
        }
        let status = self
            .ask(
                agent,
                mediator::MESSAGES_RECEIVED,
                json!({ "message_id_list": ids }),
            )
            .await;
        assert_eq!(status.message.type_, mediator::STATUS);
        messages
    }

    /// Sends `message` from this phone to `to` (an organisation's DID, served by the agent):
    /// authcrypted, posted to the endpoint the recipient's DID document names.
    pub async fn tell(&self, to: &str, message: Message) -> reqwest::StatusCode {
        let message = message.from(self.did.clone()).to([to.to_string()]);
        let packed = self
            .didcomm
            .pack_for_delivery(&message, Some(&self.did), to, false)
            .await
            .expect("packing for an organisation");
        let endpoint = packed
            .endpoint
            .expect("the organisation's DID names an endpoint");
        reqwest::Client::new()
            .post(endpoint)
            .header("content-type", ENCRYPTED_TYP)
            .body(packed.message)
            .send()
            .await
            .expect("the agent answers")
            .status()
    }

    /// Fetches the invitation at a short URL and answers it with a trust ping (`pthid` = the
    /// invitation's id); returns the invitation.
    pub async fn accept_invitation(&self, url: &str) -> Value {
        let invitation = fetch_invitation(url).await;
        let from = invitation["from"].as_str().expect("the inviter's DID");
        let ping = Message::new(mediator::PING, json!({ "response_requested": true }))
            .pthid(invitation["id"].as_str().unwrap());
        let status = self.tell(from, ping).await;
        assert_eq!(
            status, 202,
            "the first message to the organisation is taken"
        );
        invitation
    }

    pub async fn waiting(&self, agent: &Agent) -> u64 {
        let status = self.ask(agent, mediator::STATUS_REQUEST, json!({})).await;
        status.message.body["message_count"].as_u64().unwrap()
    }
}

/// An issuer with a did:key, sending through the phone's mediator.
pub struct Issuer {
    pub did: String,
    pub didcomm: DidComm<Resolver>,
}

impl Issuer {
    pub fn new() -> Issuer {
        let ring = Arc::new(KeyRing::new());
        let ed = ring.generate(KeyType::Ed25519);
        ring.derive_x25519(&ed).unwrap();
        Issuer {
            did: did_key(&ed),
            didcomm: DidComm::new(ring, Resolver::default()),
        }
    }

    /// A message to `phone`, packed for delivery through the mediator.
    pub async fn pack_for(&self, agent: &Agent, phone: &str, n: u32) -> String {
        let message = Message::new(
            "https://didcomm.org/basicmessage/2.0/message",
            json!({ "content": format!("offer {n}") }),
        )
        .from(self.did.clone())
        .to([phone.to_string()]);
        let packed = self
            .didcomm
            .pack_for_delivery(&message, Some(&self.did), phone, false)
            .await
            .unwrap();
        assert!(
            packed
                .endpoint
                .as_deref()
                .is_some_and(|e| e.ends_with("/didcomm")),
            "the phone's DID routes through the mediator's endpoint"
        );
        let _ = agent;
        packed.message
    }

    /// Sends message `n` to `phone` through the mediator; returns the HTTP status.
    pub async fn send_to(&self, agent: &Agent, phone: &str, n: u32) -> reqwest::StatusCode {
        let packed = self.pack_for(agent, phone, n).await;
        agent.post(ENCRYPTED_TYP, packed).await.status()
    }
}

/// An organisation's view of the issuer API: its API key and a client.
pub struct OrgClient {
    pub url: String,
    pub key: String,
    pub id: String,
    pub issuer_did: String,
    pub didcomm_did: String,
    client: reqwest::Client,
}

/// A response's status and JSON body.
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    /// The error message of a refusal.
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

impl OrgClient {
    /// Creates an organisation through the admin API.
    pub async fn create(agent: &Agent, name: &str) -> OrgClient {
        let response = reqwest::Client::new()
            .post(format!("{}/admin/orgs", agent.url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "organisation not created");
        let data = response.json::<Value>().await.unwrap()["data"].clone();
        OrgClient::with_key(agent, &data)
    }

    /// A client for an organisation created elsewhere (`data` as the API returned it).
    pub fn with_key(agent: &Agent, data: &Value) -> OrgClient {
        let text = |key: &str| {
            data[key]
                .as_str()
                .unwrap_or_else(|| panic!("{key} in {data}"))
                .to_string()
        };
        OrgClient {
            url: agent.url.clone(),
            key: text("apiKey"),
            id: text("id"),
            issuer_did: text("issuerDid"),
            didcomm_did: text("didcommDid"),
            client: reqwest::Client::new(),
        }
    }

    /// Sends `method path` with the organisation's key and an optional JSON body.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{path}", self.url))
            .header("x-api-key", &self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the agent answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, body }
    }
}

/// The template API's path.
pub const TEMPLATES: &str = "/core/api/v1/programmatic/credential/template";

/// The seed's example create request (the fields of its "Create Template" example response).
pub fn seed_template_request() -> Value {
    json!({
        "templateName": "Template Demo",
        "credentialIssuer": "Dentity",
        "credentialType": "Credential Type",
        "logoURL": "https://example.com/logo.png",
        "credentialExpiration": null,
        "customFields": ["holderFullNamePopulatedAtIssuance"],
        "descriptions": ["Holder Full Name (Populated at Issuance)"],
        "numberOfCredentials": null
    })
}

/// The JSON examples of the seed's template document, in order: create, get, list, delete.
pub fn seed_examples() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/seeds/004_fe6b1c65c50f2b61.txt"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut examples = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("{\n    \"data\"") {
        let mut stream = serde_json::Deserializer::from_str(&rest[start..]).into_iter::<Value>();
        let value = stream
            .next()
            .expect("a JSON value")
            .expect("the seed's JSON parses");
        let end = start + stream.byte_offset();
        examples.push(value);
        rest = &rest[end..];
    }
    examples
}

/// Checks that `ours` has every member of `example` with the same JSON type, recursively (a
/// `null` in the example stands for any type; for maps keyed by field name, every entry of
/// ours is checked against the example's first). Returns what differs.
pub fn shape_differences(example: &Value, ours: &Value, path: &str) -> Vec<String> {
    let kind = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let mut differences = Vec::new();
    match (example, ours) {
        (Value::Null, _) => {}
        (Value::Object(example), Value::Object(ours))
            if path.ends_with(".fields") || path.ends_with(".fieldOrdering") =>
        {
            if let Some(first) = example.values().next() {
                for (key, value) in ours {
                    differences.extend(shape_differences(first, value, &format!("{path}.{key}")));
                }
            }
        }
        (Value::Object(example), Value::Object(ours)) => {
            for (key, value) in example {
                match ours.get(key) {
                    Some(mine) => {
                        differences.extend(shape_differences(value, mine, &format!("{path}.{key}")))
                    }
                    None => differences.push(format!("{path}.{key} is missing")),
                }
            }
        }
        (Value::Array(example), Value::Array(ours)) => {
            if let (Some(first), Some(mine)) = (example.first(), ours.first()) {
                differences.extend(shape_differences(first, mine, &format!("{path}[0]")));
            }
        }
        (example, ours) if kind(example) == kind(ours) => {}
        (example, ours) => differences.push(format!(
            "{path} is {} in the seed but {} here",
            kind(example),
            kind(ours)
        )),
    }
    differences
}

/// The SMTP sink (aiosmtpd, in Python: an SMTP server independent of ours) on a loopback port.
pub struct SmtpSink {
    child: std::process::Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        SmtpSink::start_on(None)
    }

    /// Starts the sink on `port` (a free one when None).
    pub fn start_on(port: Option<u16>) -> SmtpSink {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");
        // Debian's python3-aiosmtpd is installed for the system interpreter, which a pyenv or
        // venv python3 earlier on PATH would not see.
        let python = ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|p| !p.starts_with('/') || std::path::Path::new(p).exists())
            .unwrap();
        let mut command = std::process::Command::new(python);
        command.arg(script).arg(dir.path());
        if let Some(port) = port {
            command.arg(port.to_string());
        }
        let mut child = command
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs (apt install python3-aiosmtpd)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!("the SMTP sink did not start (is python3-aiosmtpd installed?): {line:?}")
        });
        SmtpSink { child, port, dir }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The `n`th message received (1-based), waiting up to 10 s for it.
    pub async fn message(&self, n: usize) -> Value {
        let path = self.dir.path().join(format!("{n:04}.json"));
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(&path) {
                return serde_json::from_str(&text).unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the SMTP sink received no message {n}");
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the gateway stand-in was sent: the Authorization header and the JSON body.
pub type ReceivedSms = (Option<String>, Value);

/// An SMS gateway stand-in: an HTTP server on loopback that records what it is sent and
/// answers `status`.
pub struct SmsReceiver {
    pub url: String,
    pub received: Arc<std::sync::Mutex<Vec<ReceivedSms>>>,
    server: tokio::task::JoinHandle<()>,
}

impl SmsReceiver {
    pub async fn start(status: u16) -> SmsReceiver {
        use axum::http::HeaderMap;
        let received: Arc<std::sync::Mutex<Vec<ReceivedSms>>> = Default::default();
        let log = received.clone();
        let app = axum::Router::new().route(
            "/sms",
            axum::routing::post(move |headers: HeaderMap, body: axum::Json<Value>| {
                let log = log.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    log.lock().unwrap().push((auth, body.0));
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/sms", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        SmsReceiver {
            url,
            received,
            server,
        }
    }
}

impl Drop for SmsReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Reads the QR code in a PNG with an independent decoder (rqrr).
pub fn decode_qr(png_bytes: &[u8]) -> String {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (width, height) = (info.width as usize, info.height as usize);
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| pixels[y * width + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

/// The OOB invitation a short invite URL serves to a wallet (which asks for JSON).
pub async fn fetch_invitation(url: &str) -> Value {
    reqwest::Client::new()
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A loopback HTTP server answering `status` to everything and counting the requests that
/// reach it (a host a stranger names, which the agent must not fetch).
pub async fn counting_server(
    status: axum::http::StatusCode,
) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let count = count.clone();
        async move {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            status
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, hits)
}

/// The message types the mediator speaks, as the protocol crate writes them (each test binary
/// uses some of them).
#[allow(unused_imports)]
pub mod mediator {
    pub use lanyard_protocol::protocols::coordinate_mediation::v3::{
        MEDIATE_GRANT, MEDIATE_REQUEST, RECIPIENT_QUERY, RECIPIENT_UPDATE,
    };
    pub use lanyard_protocol::protocols::discover_features::{DISCLOSE, QUERIES};
    pub use lanyard_protocol::protocols::pickup::v3::{
        DELIVERY, DELIVERY_REQUEST, LIVE_DELIVERY_CHANGE, MESSAGES_RECEIVED, STATUS, STATUS_REQUEST,
    };
    pub use lanyard_protocol::protocols::report_problem::PROBLEM_REPORT;
    pub use lanyard_protocol::protocols::trust_ping::{PING, PING_RESPONSE};
}

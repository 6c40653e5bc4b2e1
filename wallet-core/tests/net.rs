//! The hardened outbound client against real loopback servers: HTTPS only unless loopback is
//! allowed, every non-public address refused (IP literals at once, names where they are
//! resolved) with the range named, no redirects, a byte cap on a streamed body, a timeout, a
//! per-host limit; did:web through it; and unpacking that fetches nothing for kids a stranger
//! lists, then the sender within a time budget.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lanyard_protocol::did::{
    did_peer_2, multikey_encode, DidDocument, DidError, DidResolver, HttpResolver, PeerDidSpec,
    StaticResolver,
};
use lanyard_protocol::didcomm::{DidComm, DidCommError, Message, UnpackOptions};
use lanyard_protocol::keys::{KeyRing, KeyType};
use lanyard_protocol::net::{HttpClient, NetError, NetPolicy, Request};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a test server does with each connection.
#[derive(Clone)]
enum Behaviour {
    /// Answers with this raw HTTP response.
    Answer(String),
    /// Answers 200 with a chunked body that never ends.
    Endless,
    /// Reads the request and never answers.
    Hang,
    /// Answers 200 after `ms`, counting the requests in flight at once.
    Slow { ms: u64 },
}

/// A loopback HTTP server; counts the requests it got and the most in flight at once.
struct Server {
    port: u16,
    hits: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

async fn read_head(stream: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
}

async fn serve(behaviour: Behaviour) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let now = Arc::new(AtomicUsize::new(0));
    let (h, p) = (hits.clone(), peak.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (behaviour, hits, peak, now) =
                (behaviour.clone(), h.clone(), p.clone(), now.clone());
            tokio::spawn(async move {
                read_head(&mut stream).await;
                hits.fetch_add(1, Ordering::SeqCst);
                match behaviour {
                    Behaviour::Answer(text) => {
                        let _ = stream.write_all(text.as_bytes()).await;
                    }
                    Behaviour::Endless => {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                            .await;
                        let chunk = format!("{:x}\r\n{}\r\n", 4096, "x".repeat(4096));
                        while stream.write_all(chunk.as_bytes()).await.is_ok() {}
                    }
                    Behaviour::Hang => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    Behaviour::Slow { ms } => {
                        let inside = now.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(inside, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        now.fetch_sub(1, Ordering::SeqCst);
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .await;
                    }
                }
            });
        }
    });
    Server { port, hits, peak }
}

fn ok(body: &str) -> Behaviour {
    Behaviour::Answer(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ))
}

fn strict() -> HttpClient {
    HttpClient::new(NetPolicy::default()).unwrap()
}

fn loopback() -> HttpClient {
    HttpClient::new(NetPolicy::loopback()).unwrap()
}

async fn get(client: &HttpClient, url: &str) -> Result<lanyard_protocol::net::Response, NetError> {
    client.send(Request::get(url)).await
}

#[tokio::test]
async fn loopback_is_reached_only_when_configured() {
    let server = serve(ok("{}")).await;
    let url = format!("http://127.0.0.1:{}/", server.port);

    let refused = get(&strict(), &url).await.unwrap_err();
    assert!(
        matches!(refused, NetError::PlainHttp { .. }),
        "plain http under the strict policy: {refused}"
    );
    let refused = get(&strict(), &format!("https://127.0.0.1:{}/", server.port))
        .await
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "127.0.0.1 resolves to 127.0.0.1, a loopback address, which is not allowed"
    );
    // A name is checked where it is resolved: `localhost` is loopback too.
    let refused = get(&strict(), &format!("https://localhost:{}/", server.port))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, NetError::Refused { host, range: "loopback", .. } if host == "localhost"),
        "{refused:?}"
    );
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        0,
        "a refused request reached the server"
    );

    let answered = get(&loopback(), &url).await.expect("loopback allowed");
    assert_eq!(
        (answered.status, answered.body.as_slice()),
        (200, &b"{}"[..])
    );
    let answered = get(&loopback(), &format!("http://localhost:{}/", server.port))
        .await
        .expect("localhost allowed");
    assert_eq!(answered.status, 200);
    // Plain http stays refused to anything but loopback.
    let refused = get(&loopback(), "http://example.com/").await.unwrap_err();
    assert!(matches!(refused, NetError::PlainHttp { .. }), "{refused}");
}

#[tokio::test]
async fn private_link_local_and_metadata_addresses_are_refused_by_name() {
    // Loopback allowed, as in tests: the other ranges stay refused, before any connection.
    let client = loopback();
    for (url, range) in [
        (
            "https://169.254.169.254/latest/meta-data/",
            "cloud metadata",
        ),
        (
            "https://[fd00:ec2::254]/latest/meta-data/",
            "cloud metadata",
        ),
        ("https://169.254.10.1/", "link-local"),
        ("https://[fe80::1]/", "link-local"),
        ("https://10.0.0.1/", "private"),
        ("https://192.168.1.1/", "private"),
        ("https://100.64.1.1/", "shared (CGNAT)"),
        ("https://[fd12::1]/", "unique-local"),
        ("https://224.0.0.1/", "multicast"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://[::ffff:10.0.0.1]/", "private"),
        // The URL parser reads these as 127.0.0.1 and 10.0.0.1.
        ("http://2130706433/", "loopback-allowed"),
        ("https://0x0a.0.0.1/", "private"),
    ] {
        let result = get(&client, url).await;
        if range == "loopback-allowed" {
            // Allowed, and nothing listens on port 80 here: unreachable, not refused.
            assert!(
                !matches!(result, Err(NetError::Refused { .. })),
                "{url}: {result:?}"
            );
            continue;
        }
        match result {
            Err(NetError::Refused { range: named, .. }) => assert_eq!(named, range, "{url}"),
            other => panic!("{url} was not refused: {other:?}"),
        }
    }
    let error = get(&client, "https://169.254.169.254/").await.unwrap_err();
    assert_eq!(error.public(), "the host is not a public address");
    assert!(!error.public().contains("169.254"));
}

#[tokio::test]
async fn the_allow_list_lets_a_named_network_through() {
    // A port nothing listens on: an allowed address is tried (and refused by the OS), a
    // refused one is never tried.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("https://127.0.0.1:{port}/");
    let error = get(&strict(), &url).await.unwrap_err();
    assert!(matches!(error, NetError::Refused { .. }), "{error}");
    for entry in ["127.0.0.0/8", "127.0.0.1", "localhost"] {
        let listed = HttpClient::new(NetPolicy {
            allow: vec![entry.parse().unwrap()],
            ..NetPolicy::default()
        })
        .unwrap();
        let host = if entry == "localhost" {
            "localhost"
        } else {
            "127.0.0.1"
        };
        let error = get(&listed, &format!("https://{host}:{port}/"))
            .await
            .unwrap_err();
        assert!(
            matches!(error, NetError::Unreachable { .. }),
            "allowed by {entry}: {error}"
        );
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = serve(Behaviour::Answer(
        "HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/latest/meta-data/\r\ncontent-length: 0\r\n\r\n"
            .into(),
    ))
    .await;
    let url = format!("http://127.0.0.1:{}/invite", server.port);
    let error = get(&loopback(), &url).await.unwrap_err();
    assert_eq!(
        error,
        NetError::Redirect {
            url: url.clone(),
            status: 302
        }
    );
    assert!(
        error.to_string().contains("redirects are not followed"),
        "{error}"
    );
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_cap_not_buffered() {
    let server = serve(Behaviour::Endless).await;
    let url = format!("http://127.0.0.1:{}/list", server.port);
    let error = loopback()
        .send(Request::get(&url).max_bytes(100_000))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        NetError::TooLarge {
            url,
            limit: 100_000
        }
    );
    // A declared length over the cap is refused before the body is read.
    let big = serve(Behaviour::Answer(
        "HTTP/1.1 200 OK\r\ncontent-length: 5000000\r\n\r\n".into(),
    ))
    .await;
    let error = loopback()
        .send(Request::get(&format!("http://127.0.0.1:{}/", big.port)).max_bytes(1000))
        .await
        .unwrap_err();
    assert!(
        matches!(error, NetError::TooLarge { limit: 1000, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let server = serve(Behaviour::Hang).await;
    let client = HttpClient::new(NetPolicy {
        timeout: Duration::from_millis(300),
        ..NetPolicy::loopback()
    })
    .unwrap();
    let url = format!("http://127.0.0.1:{}/", server.port);
    let error = get(&client, &url).await.unwrap_err();
    assert!(matches!(error, NetError::Timeout { .. }), "{error}");
    assert_eq!(error.public(), "it did not answer in time");
}

#[tokio::test]
async fn one_host_gets_at_most_its_share_of_requests_at_once() {
    let server = serve(Behaviour::Slow { ms: 100 }).await;
    let client = HttpClient::new(NetPolicy {
        per_host: 2,
        ..NetPolicy::loopback()
    })
    .unwrap();
    let url = format!("http://127.0.0.1:{}/", server.port);
    let all = (0..6).map(|_| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move { get(&client, &url).await })
    });
    for request in all {
        assert_eq!(request.await.unwrap().unwrap().status, 200);
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 6);
    assert!(
        server.peak.load(Ordering::SeqCst) <= 2,
        "{} requests were in flight at once",
        server.peak.load(Ordering::SeqCst)
    );
}

#[tokio::test]
async fn did_web_cannot_point_the_resolver_inside() {
    let server = serve(ok("{}")).await;
    let strict = HttpResolver::new(strict());
    for (did, expected) in [
        (
            format!("did:web:127.0.0.1%3A{}", server.port),
            "uses plain http://",
        ),
        (
            format!("did:web:localhost%3A{}:orgs:a", server.port),
            "uses plain http://",
        ),
        (
            "did:web:169.254.169.254".to_string(),
            "a cloud metadata address",
        ),
        (
            "did:web:169.254.1.1:user".to_string(),
            "a link-local address",
        ),
        ("did:web:10.1.2.3".to_string(), "a private address"),
    ] {
        match strict.resolve(&did).await {
            Err(DidError::NotFound(_, why)) => assert!(why.contains(expected), "{did}: {why}"),
            other => panic!("{did} resolved: {other:?}"),
        }
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);

    // Allowed loopback, a redirect from it to the metadata address is not followed.
    let redirect = serve(Behaviour::Answer(
        "HTTP/1.1 301 Moved\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\n\r\n"
            .into(),
    ))
    .await;
    let did = format!("did:web:127.0.0.1%3A{}", redirect.port);
    match HttpResolver::new(loopback()).resolve(&did).await {
        Err(DidError::NotFound(_, why)) => {
            assert!(why.contains("redirects are not followed"), "{why}")
        }
        other => panic!("{did} resolved: {other:?}"),
    }
}

/// A did:web document for `did` with one X25519 and one Ed25519 key of `ring`.
fn did_web_document(did: &str, ring: &KeyRing) -> DidDocument {
    let agreement = ring.generate(KeyType::X25519);
    let signing = ring.generate(KeyType::Ed25519);
    serde_json::from_value(json!({
        "@context": ["https://www.w3.org/ns/did/v1"],
        "id": did,
        "verificationMethod": [
            { "id": format!("{did}#x"), "type": "Multikey", "controller": did,
              "publicKeyMultibase": multikey_encode(&agreement) },
            { "id": format!("{did}#e"), "type": "Multikey", "controller": did,
              "publicKeyMultibase": multikey_encode(&signing) },
        ],
        "keyAgreement": [format!("{did}#x")],
        "authentication": [format!("{did}#e")],
    }))
    .unwrap()
}

#[tokio::test]
async fn unpacking_fetches_nothing_for_kids_it_does_not_hold() {
    // A stranger encrypts to many did:web kids on a counting server, none of them ours.
    let server = serve(ok("{}")).await;
    let ring = Arc::new(KeyRing::new());
    let docs: Vec<DidDocument> = (0..10)
        .map(|i| did_web_document(&format!("did:web:127.0.0.1%3A{}:k{i}", server.port), &ring))
        .collect();
    let to: Vec<String> = docs.iter().map(|d| d.id.clone()).collect();
    let stranger = DidComm::new(ring, StaticResolver::new(docs));
    let message = Message::new(
        lanyard_protocol::protocols::basic_message::MESSAGE,
        json!({}),
    );
    let envelope = stranger
        .pack_anoncrypt(&message, &to.iter().map(String::as_str).collect::<Vec<_>>())
        .await
        .unwrap();

    let wallet = DidComm::new(
        Arc::new(KeyRing::new()),
        Arc::new(HttpResolver::new(loopback())),
    );
    let error = wallet.unpack(&envelope).await.unwrap_err();
    assert!(
        matches!(error, DidCommError::NotForUs(ref kids) if kids.len() == 10),
        "{error}"
    );
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        0,
        "the wallet fetched documents of kids it does not hold"
    );
}

#[tokio::test]
async fn the_sender_is_resolved_after_the_recipient_within_a_budget() {
    // An authcrypt message to our did:peer:2 from a did:web sender whose host never answers.
    let server = serve(Behaviour::Hang).await;
    let sender_ring = Arc::new(KeyRing::new());
    let sender = did_web_document(
        &format!("did:web:127.0.0.1%3A{}", server.port),
        &sender_ring,
    );
    let ours = Arc::new(KeyRing::new());
    let me = did_peer_2(&PeerDidSpec {
        authentication: vec![ours.generate(KeyType::Ed25519)],
        key_agreement: vec![ours.generate(KeyType::X25519)],
        services: vec![],
    });
    let packer = DidComm::new(sender_ring, StaticResolver::new(vec![sender.clone()]));
    let message = Message::new(
        lanyard_protocol::protocols::basic_message::MESSAGE,
        json!({}),
    )
    .from(sender.id.clone())
    .to([me.clone()]);
    let envelope = packer
        .pack_authcrypt(&message, &sender.id, &[&me], false)
        .await
        .unwrap();

    let wallet =
        DidComm::new(ours, Arc::new(HttpResolver::new(loopback()))).with_options(UnpackOptions {
            sender_budget: Duration::from_millis(300),
            ..UnpackOptions::default()
        });
    let error = wallet.unpack(&envelope).await.unwrap_err();
    assert!(
        matches!(&error, DidCommError::SenderTimeout { did, .. } if *did == sender.id),
        "{error}"
    );
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        1,
        "the sender was asked once"
    );
}

fn wallet(dir: &std::path::Path, network: NetPolicy) -> wallet_core::Wallet {
    wallet_core::Wallet::builder(
        dir,
        lanyard_protocol::store::Unlock::Passphrase {
            passphrase: zeroize::Zeroizing::new("net test passphrase".to_string()),
            params: lanyard_protocol::store::Argon2Params::insecure_for_tests(),
        },
    )
    .network(network)
    .open()
    .unwrap()
}

#[tokio::test]
async fn the_wallet_fetches_no_invite_url_or_mediator_document_inside() {
    use wallet_core::WalletError;
    let dir = tempfile::tempdir().unwrap();
    let server = serve(ok("{}")).await;
    let strict = wallet(&dir.path().join("strict"), NetPolicy::default());

    // Short invite URLs: plain http, loopback, the metadata address.
    for (url, expected) in [
        (
            format!("http://127.0.0.1:{}/i/abcdefabcdef", server.port),
            "uses plain http://",
        ),
        (
            format!("https://localhost:{}/i/abcdefabcdef", server.port),
            "a loopback address",
        ),
        (
            "https://169.254.169.254/i/abcdefabcdef".to_string(),
            "a cloud metadata address",
        ),
    ] {
        match strict.accept_invitation(&url).await {
            Err(WalletError::NotAllowed(error)) => {
                assert!(error.to_string().contains(expected), "{url}: {error}")
            }
            other => panic!("{url} was fetched: {other:?}"),
        }
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);

    // Loopback allowed (development): a redirect from the short URL is not followed.
    let redirect = serve(Behaviour::Answer(
        "HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\ncontent-length: 0\r\n\r\n"
            .into(),
    ))
    .await;
    let dev = wallet(&dir.path().join("dev"), NetPolicy::loopback());
    let url = format!("http://127.0.0.1:{}/i/abcdefabcdef", redirect.port);
    match dev.accept_invitation(&url).await {
        Err(WalletError::NotAllowed(NetError::Redirect { status: 302, .. })) => {}
        other => panic!("{url}: {other:?}"),
    }

    // An inviter whose endpoint is a private address: its mediator document is not fetched.
    let inviter = did_peer_2(&PeerDidSpec {
        authentication: vec![KeyRing::new().generate(KeyType::Ed25519)],
        key_agreement: vec![KeyRing::new().generate(KeyType::X25519)],
        services: vec![lanyard_protocol::did::PeerService {
            uri: "https://10.1.2.3/didcomm".into(),
            routing_keys: vec![],
            accept: vec!["didcomm/v2".into()],
        }],
    });
    let invitation = json!({
        "type": wallet_core::OOB_INVITATION, "id": "inv-1", "from": inviter,
        "body": { "accept": ["didcomm/v2"] },
    });
    match dev.accept_invitation(&invitation.to_string()).await {
        Err(WalletError::NotAllowed(NetError::Refused { ip, range, .. })) => {
            assert_eq!((ip.to_string().as_str(), range), ("10.1.2.3", "private"))
        }
        other => panic!("the mediator document was fetched: {other:?}"),
    }
    assert!(
        dev.connections().unwrap().is_empty(),
        "a connection was stored"
    );
}

#[tokio::test]
async fn websocket_connections_are_held_to_the_same_policy() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    // Strict: plain ws:// is refused, and a name resolving to loopback is refused by range.
    match strict().connect(&format!("ws://127.0.0.1:{port}/ws")).await {
        Err(NetError::PlainHttp { .. }) => {}
        other => panic!("plain ws to loopback: {other:?}"),
    }
    match strict()
        .connect(&format!("wss://localhost:{port}/ws"))
        .await
    {
        Err(NetError::Refused { range, .. }) => assert_eq!(range, "loopback"),
        other => panic!("wss to a loopback name: {other:?}"),
    }
    match strict().connect("wss://169.254.169.254/ws").await {
        Err(NetError::Refused { range, .. }) => assert!(range.contains("metadata"), "{range}"),
        other => panic!("wss to the metadata address: {other:?}"),
    }
    // With the development allowance the same socket opens.
    let stream = loopback()
        .connect(&format!("ws://localhost:{port}/ws"))
        .await
        .unwrap();
    assert_eq!(stream.peer_addr().unwrap().port(), port);
}

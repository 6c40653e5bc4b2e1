//! No acknowledged message is lost: forwards flood the real agent process, which is killed
//! with SIGKILL mid-flood and restarted on the same data folder; the phone then picks up
//! every message that was answered 202, and none twice. And SIGTERM stops the process
//! within its grace period, whatever its connections are doing.

use lanyard_test_support as support;

use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use lanyard_protocol::didcomm::ENCRYPTED_TYP;
use support::{Agent, Issuer, Phone};

/// Starts the agent binary on `data`; returns the process, its URL and its DID.
fn spawn(data: &std::path::Path) -> (Child, String, String) {
    spawn_with(data, &[])
}

/// Starts the agent binary on `data` with extra environment `vars`.
fn spawn_with(data: &std::path::Path, vars: &[(&str, &str)]) -> (Child, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agent"));
    command
        .envs(vars.iter().copied())
        .env("LANYARD_LISTEN", "127.0.0.1:0")
        .env("LANYARD_DATA_DIR", data)
        // A fixed public URL keeps the mediator's DID the same across restarts.
        .env("LANYARD_PUBLIC_URL", "http://mediator.test")
        .env("RUST_LOG", "warn");
    support::spawn_agent(command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_flood_loses_no_acknowledged_forward() {
    let data = tempfile::tempdir().unwrap();
    let (mut child, url, did) = spawn(data.path());
    let agent = Agent::at(url, did.clone());
    let phone = Phone::new(&did);
    phone.connect(&agent).await;

    const TOTAL: usize = 1500;
    let flood = support::flood::Flood::start(&agent, &phone.did, TOTAL, 8).await;
    // Kill it mid-flood, with requests in flight.
    flood
        .wait_acked(300, std::time::Duration::from_secs(60))
        .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let attempted = flood.sent();
    let acked = flood.finish().await.acked;
    assert!(
        acked.len() < TOTAL,
        "the kill came after the flood ended; nothing was tested"
    );

    let (mut child, url, did_after) = spawn(data.path());
    assert_eq!(
        did_after, did,
        "the mediator keeps its identity across restarts"
    );
    let agent = Agent::at(url, did);
    let received = support::flood::pick_up_all(&phone, &agent).await;
    child.kill().unwrap();
    child.wait().unwrap();
    support::flood::assert_each_acknowledged_once(&acked, &received);
    println!(
        "{} forwards attempted, {} acknowledged before SIGKILL, {} delivered after restart",
        attempted,
        acked.len(),
        received.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_agent_mid_flood_with_a_socket_and_a_stalled_request_open() {
    use tokio::io::AsyncWriteExt;
    let data = tempfile::tempdir().unwrap();
    let (mut child, url, did) = spawn_with(data.path(), &[("LANYARD_SHUTDOWN_GRACE_MS", "1000")]);
    let agent = Agent::at(url.clone(), did.clone());
    let phone = Phone::new(&did);
    phone.connect(&agent).await;
    let issuer = Issuer::new();
    let mut packed = Vec::new();
    for n in 0..200 {
        packed.push(issuer.pack_for(&agent, &phone.did, n).await);
    }
    let packed = Arc::new(packed);

    // A flood of forwards, until the agent stops answering.
    let answered = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for s in 0..4 {
        let (packed, answered) = (packed.clone(), answered.clone());
        let endpoint = format!("{url}/didcomm");
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for n in (s..).step_by(4) {
                let sent = client
                    .post(&endpoint)
                    .header("content-type", ENCRYPTED_TYP)
                    .body(packed[n % packed.len()].clone())
                    .send()
                    .await;
                if sent.is_err() {
                    return;
                }
                answered.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    // An open live socket, and a request whose body never comes.
    let ws_url = format!("{}/ws", url.replace("http://", "ws://"));
    let (_socket, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let host = url.trim_start_matches("http://");
    let mut stalled = tokio::net::TcpStream::connect(host).await.unwrap();
    stalled
        .write_all(
            format!(
                "POST /didcomm HTTP/1.1\r\nHost: {host}\r\nContent-Type: {ENCRYPTED_TYP}\r\n\
                 Content-Length: 100000\r\n\r\n{{\"protected\""
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while answered.load(Ordering::SeqCst) < 50 {
        assert!(std::time::Instant::now() < deadline, "the flood stalled");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(term.success());
    // A guard against hanging forever, not a performance bound: the grace period is 1 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the agent did not exit within 60 s of SIGTERM");
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(status.success(), "the agent exited with {status}");
    for sender in senders {
        sender.await.unwrap();
    }
    drop(stalled);
}

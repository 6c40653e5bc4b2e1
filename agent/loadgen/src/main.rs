//! Load generator for the mediator, on loopback only, bounded in count and time.
//!
//! It starts the agent binary on a fresh data folder, registers phones, packs every forward
//! before the timed phases (packing costs CPU that would otherwise be measured instead of the
//! agent), then measures:
//! 1. forwards/s sustained with durable writes (closed loop, `--concurrency` in flight);
//! 2. p50/p99 latency at half that rate (open loop);
//! 3. the agent's resident memory holding 1k and 10k live WebSocket connections.
//!
//! `cargo build --release -p agent -p lanyard-loadgen && ulimit -n 65536 && target/release/loadgen`
//! (with RUST_BACKTRACE unset). Options: `--forwards N` (default 20000), `--phones N`
//! (100), `--concurrency N` (64), `--connections N,N` (1000,10000).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use lanyard_protocol::did::{did_key, did_peer_2, PeerDidSpec, PeerService, Resolver};
use lanyard_protocol::didcomm::{DidComm, Message, ENCRYPTED_TYP};
use lanyard_protocol::keys::{KeyRing, KeyType};
use serde_json::json;

struct Options {
    forwards: usize,
    phones: usize,
    concurrency: usize,
    connections: Vec<usize>,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        forwards: 20_000,
        phones: 100,
        concurrency: 64,
        connections: vec![1_000, 10_000],
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [name, value] = pair else {
            return Err(format!("{} needs a value", pair[0]));
        };
        let number = |v: &str| v.parse::<usize>().map_err(|e| format!("{name} {v}: {e}"));
        match name.as_str() {
            "--forwards" => options.forwards = number(value)?.min(200_000),
            "--phones" => options.phones = number(value)?.clamp(1, 10_000),
            "--concurrency" => options.concurrency = number(value)?.clamp(1, 1_024),
            "--connections" => {
                options.connections = value
                    .split(',')
                    .map(|v| number(v).map(|n| n.min(20_000)))
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(options)
}

/// The agent under test, as a child process on loopback.
struct Agent {
    child: Child,
    url: String,
    did: String,
    _data: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_agent() -> Result<Agent, String> {
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let binary = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("agent");
    let mut child = Command::new(&binary)
        .env("LANYARD_LISTEN", "127.0.0.1:0")
        .env("LANYARD_DATA_DIR", data.path())
        .env("LANYARD_QUEUE_CAP", "1000000")
        // The held sockets answer no pings while the rest are opened, and are 10,000: keep
        // them open past the idle timeout and the default live-connection cap.
        .env("LANYARD_LIVE_IDLE_TIMEOUT_S", "3600")
        .env("LANYARD_MAX_LIVE_CONNECTIONS", "20000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "{}: {e} (build it with cargo build --release -p agent -p lanyard-loadgen)",
                binary.display()
            )
        })?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let mut next = || lines.next().and_then(Result::ok).unwrap_or_default();
    let url = next().trim_start_matches("listening on ").to_string();
    let did = next().trim_start_matches("mediator DID ").to_string();
    Ok(Agent {
        child,
        url,
        did,
        _data: data,
    })
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

struct Phone {
    did: String,
    didcomm: DidComm<Resolver>,
}

impl Phone {
    fn new(mediator: &str) -> Phone {
        let ring = Arc::new(KeyRing::new());
        let did = did_peer_2(&PeerDidSpec {
            authentication: vec![ring.generate(KeyType::Ed25519)],
            key_agreement: vec![ring.generate(KeyType::X25519)],
            services: vec![PeerService {
                uri: mediator.to_string(),
                routing_keys: vec![],
                accept: vec!["didcomm/v2".into()],
            }],
        });
        Phone {
            did,
            didcomm: DidComm::new(ring, Resolver::default()),
        }
    }

    async fn request(&self, mediator: &str, type_: &str, body: serde_json::Value) -> String {
        let mut message = Message::new(type_, body)
            .from(self.did.clone())
            .to([mediator.to_string()]);
        message.extra.insert("return_route".into(), json!("all"));
        self.didcomm
            .pack_authcrypt(&message, &self.did, &[mediator], false)
            .await
            .expect("packing a request")
    }
}

/// CPU time (user + system) the process has used, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which is in parentheses and may hold spaces).
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank] as f64 / 1000.0
}

/// One keep-alive HTTP/1.1 connection that posts prepared envelopes and reads the status.
/// Written over a plain socket rather than a general client so that the generator, which shares
/// the 2 cores with the agent, spends as little CPU per request as it can.
struct Poster {
    stream: tokio::io::BufReader<tokio::net::TcpStream>,
    head: String,
}

impl Poster {
    async fn connect(endpoint: &str) -> Poster {
        let rest = endpoint.strip_prefix("http://").expect("an http endpoint");
        let (host, path) = rest.split_once('/').expect("a path");
        let stream = tokio::net::TcpStream::connect(host)
            .await
            .expect("the agent accepts connections");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        Poster {
            stream: tokio::io::BufReader::new(stream),
            head: format!(
                "POST /{path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: {ENCRYPTED_TYP}\r\ncontent-length: "
            ),
        }
    }

    /// Posts `body` and returns the response's status code.
    async fn post(&mut self, body: &str) -> u16 {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
        let request = format!("{}{}\r\n\r\n{body}", self.head, body.len());
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .expect("sending a forward");
        let mut line = String::new();
        self.stream
            .read_line(&mut line)
            .await
            .expect("a status line");
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP status line: {line:?}"));
        let mut length = 0usize;
        loop {
            line.clear();
            self.stream.read_line(&mut line).await.expect("a header");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("a content length");
                }
            }
        }
        let mut body = vec![0; length];
        self.stream
            .read_exact(&mut body)
            .await
            .expect("the response body");
        status
    }
}

/// Posts `packed[..]` with `concurrency` connections; `pace` spaces each one's sends (open
/// loop).
async fn flood(
    endpoint: &str,
    packed: Arc<Vec<String>>,
    concurrency: usize,
    pace: Option<Duration>,
) -> (Duration, Vec<u64>) {
    let mut posters = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        posters.push(Poster::connect(endpoint).await);
    }
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(packed.len())));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (task, mut poster) in posters.into_iter().enumerate() {
        let (packed, next, latencies) = (packed.clone(), next.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            let mut ticker = pace.map(|pace| {
                let mut interval = tokio::time::interval_at(
                    tokio::time::Instant::now() + pace.mul_f64(task as f64 / concurrency as f64),
                    pace,
                );
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                interval
            });
            let mut mine = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= packed.len() {
                    break;
                }
                if let Some(ticker) = ticker.as_mut() {
                    ticker.tick().await;
                }
                let sent = Instant::now();
                let status = poster.post(&packed[n]).await;
                assert_eq!(status, 202, "forward {n} refused");
                mine.push(sent.elapsed().as_micros() as u64);
            }
            latencies.lock().unwrap().extend(mine);
        }));
    }
    for task in tasks {
        task.await.expect("a sender task");
    }
    let elapsed = started.elapsed();
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap());
    latencies.sort_unstable();
    (elapsed, latencies)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let options = options()?;
    let agent = start_agent()?;
    let pid = agent.child.id();
    let endpoint = format!("{}/didcomm", agent.url);
    let client = reqwest::Client::new();
    println!(
        "agent {} pid {pid}, RSS at start {} KiB",
        agent.url,
        rss_kib(pid)
    );

    // Phones ask for mediation and register their DIDs.
    let mut phones = Vec::with_capacity(options.phones);
    for _ in 0..options.phones {
        let phone = Phone::new(&agent.did);
        for (type_, body) in [
            (
                lanyard_protocol::protocols::coordinate_mediation::v3::MEDIATE_REQUEST,
                json!({}),
            ),
            (
                lanyard_protocol::protocols::coordinate_mediation::v3::RECIPIENT_UPDATE,
                json!({"updates": [{"recipient_did": phone.did, "action": "add"}]}),
            ),
        ] {
            let packed = phone.request(&agent.did, type_, body).await;
            let response = client
                .post(&endpoint)
                .header("content-type", ENCRYPTED_TYP)
                .body(packed)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if response.status() != 200 {
                return Err(format!("{type_} answered {}", response.status()));
            }
        }
        phones.push(phone);
    }

    // Pack every forward first, on all cores.
    let ring = Arc::new(KeyRing::new());
    let ed = ring.generate(KeyType::Ed25519);
    ring.derive_x25519(&ed).map_err(|e| e.to_string())?;
    let issuer = Arc::new((did_key(&ed), DidComm::new(ring, Resolver::default())));
    let targets: Arc<Vec<String>> = Arc::new(phones.iter().map(|p| p.did.clone()).collect());
    let packing = Instant::now();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut handles = Vec::new();
    for worker in 0..workers {
        let (issuer, targets) = (issuer.clone(), targets.clone());
        let count = options.forwards;
        handles.push(std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            (worker..count)
                .step_by(workers)
                .map(|n| {
                    let to = &targets[n % targets.len()];
                    let message = Message::new(
                        lanyard_protocol::protocols::basic_message::MESSAGE,
                        json!({ "content": format!("load {n:08}").repeat(16) }),
                    )
                    .from(issuer.0.clone())
                    .to([to.clone()]);
                    runtime
                        .block_on(
                            issuer
                                .1
                                .pack_for_delivery(&message, Some(&issuer.0), to, false),
                        )
                        .expect("packing a forward")
                        .message
                })
                .collect::<Vec<String>>()
        }));
    }
    let mut packed = Vec::with_capacity(options.forwards);
    for handle in handles {
        packed.extend(handle.join().map_err(|_| "a packing thread panicked")?);
    }
    let split = packed.len() / 2;
    let second: Vec<String> = packed.split_off(split);
    println!(
        "packed {} forwards ({} bytes each) in {:.1} s",
        options.forwards,
        packed.first().map_or(0, String::len),
        packing.elapsed().as_secs_f64()
    );

    // 1. Sustained rate, closed loop.
    let cpu_before = cpu_seconds(pid);
    let own_before = cpu_seconds(std::process::id());
    let (elapsed, latencies) = flood(&endpoint, Arc::new(packed), options.concurrency, None).await;
    let agent_cpu = cpu_seconds(pid) - cpu_before;
    let own_cpu = cpu_seconds(std::process::id()) - own_before;
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    println!(
        "closed loop: {} forwards in {:.2} s = {:.0} forwards/s with {} in flight; p50 {:.2} ms, p99 {:.2} ms; ceiling ~35k/s (one X25519 per forward on 2 cores): {:.0}%",
        latencies.len(),
        elapsed.as_secs_f64(),
        rate,
        options.concurrency,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        rate / 35_000.0 * 100.0
    );
    println!(
        "agent CPU during the closed loop: {:.2} s = {:.0} us per forward ({:.0}% of one core)",
        agent_cpu,
        agent_cpu * 1e6 / latencies.len() as f64,
        agent_cpu / elapsed.as_secs_f64() * 100.0
    );
    println!(
        "load generator CPU in that loop: {:.0} us per forward ({:.0}% of one core)",
        own_cpu * 1e6 / latencies.len() as f64,
        own_cpu / elapsed.as_secs_f64() * 100.0
    );

    // 2. Half that rate, open loop.
    let half = rate / 2.0;
    let pace = Duration::from_secs_f64(options.concurrency as f64 / half);
    let (elapsed, latencies) =
        flood(&endpoint, Arc::new(second), options.concurrency, Some(pace)).await;
    println!(
        "open loop at {:.0}/s target: {} forwards in {:.2} s = {:.0}/s; p50 {:.2} ms, p99 {:.2} ms",
        half,
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0)
    );
    println!("agent RSS after the floods: {} KiB", rss_kib(pid));

    // 3. Live WebSocket connections held open (each proves itself with a trust ping).
    let ws_url = format!("{}/ws", agent.url.replace("http://", "ws://"));
    let ping = phones[0]
        .request(
            &agent.did,
            lanyard_protocol::protocols::trust_ping::PING,
            json!({"response_requested": true}),
        )
        .await;
    let mut sockets = Vec::new();
    let before = rss_kib(pid);
    for &target in &options.connections {
        let started = Instant::now();
        while sockets.len() < target {
            let (mut socket, _) = tokio_tungstenite::connect_async(&ws_url)
                .await
                .map_err(|e| format!("connection {}: {e} (raise ulimit -n)", sockets.len()))?;
            socket
                .send(tokio_tungstenite::tungstenite::Message::Text(
                    ping.clone().into(),
                ))
                .await
                .map_err(|e| e.to_string())?;
            socket
                .next()
                .await
                .ok_or("the agent closed a connection")?
                .map_err(|e| e.to_string())?;
            sockets.push(socket);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = rss_kib(pid);
        println!(
            "{} live connections held (opened in {:.1} s): agent RSS {} KiB ({:.1} KiB per connection over the {} KiB before)",
            sockets.len(),
            started.elapsed().as_secs_f64(),
            rss,
            rss.saturating_sub(before) as f64 / sockets.len() as f64,
            before
        );
    }
    drop(sockets);
    Ok(())
}

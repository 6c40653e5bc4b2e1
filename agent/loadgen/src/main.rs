//! Load generator for the mediator, on loopback only, bounded in count and time.
//!
//! It starts the agent binary on a fresh data folder (sled), or `--agents N` agents on a fresh
//! database of the PostgreSQL server `--database-url` names, behind an nginx it starts
//! (round-robin, as tests/support's `Nginx`: this file compiles the same module). It registers
//! phones, packs every forward before the timed phases (packing costs CPU that would otherwise
//! be measured instead of the agents), then measures:
//! 1. forwards/s sustained with durable writes (closed loop, `--concurrency` in flight), and
//!    the CPU per forward of the agents, nginx and (when it runs on this machine) PostgreSQL;
//! 2. p50/p99 latency at half that rate (open loop);
//! 3. the resident memory of one agent holding 1k and 10k live WebSocket connections (agent 0,
//!    directly).
//!
//! `cargo build --release -p agent -p lanyard-loadgen && ulimit -n 65536 && target/release/loadgen`
//! (with RUST_BACKTRACE unset). Options: `--forwards N` (default 20000), `--phones N`
//! (100), `--concurrency N` (64), `--connections N,N` (1000,10000; `0` skips the phase),
//! `--database-url postgres://USER@HOST:PORT[/DB]` (a server where USER may create databases:
//! the run makes its own, and drops it at the end), `--agents N` (1 to 8; more than 1 needs a
//! database), `--nginx` (put nginx in front of a single agent too), `--upstream-keepalive N`
//! (idle connections nginx keeps to each agent; default 0, a connection per request).
//! Loopback only; every phase is bounded in count and the run in time (30 minutes).

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

#[allow(dead_code)] // The tests use more of it than the load generator does.
#[path = "../../../tests/support/src/nginx.rs"]
mod nginx;

struct Options {
    forwards: usize,
    phones: usize,
    concurrency: usize,
    connections: Vec<usize>,
    database_url: Option<String>,
    agents: usize,
    nginx: bool,
    upstream_keepalive: usize,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        forwards: 20_000,
        phones: 100,
        concurrency: 64,
        connections: vec![1_000, 10_000],
        database_url: None,
        agents: 1,
        nginx: false,
        upstream_keepalive: 0,
    };
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // The one flag without a value.
    if let Some(at) = args.iter().position(|a| a == "--nginx") {
        args.remove(at);
        options.nginx = true;
    }
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
                    .filter(|n| n.as_ref().map_or(true, |n| *n > 0))
                    .collect::<Result<_, _>>()?
            }
            "--database-url" => options.database_url = Some(loopback_database(value)?),
            "--agents" => {
                options.agents = number(value)?;
                if !(1..=8).contains(&options.agents) {
                    return Err(format!("--agents {value}: from 1 to 8"));
                }
            }
            "--upstream-keepalive" => options.upstream_keepalive = number(value)?.min(1_024),
            other => return Err(format!("unknown option {other}")),
        }
    }
    if options.agents > 1 && options.database_url.is_none() {
        return Err(format!(
            "--agents {} needs --database-url: sled agents share nothing",
            options.agents
        ));
    }
    options.nginx |= options.agents > 1;
    Ok(options)
}

/// A PostgreSQL URL on loopback (the load generator sends nothing off this machine).
fn loopback_database(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or_else(|| format!("--database-url {url:?}: not a postgres:// URL"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    if !matches!(host, "127.0.0.1" | "localhost" | "::1") {
        return Err(format!(
            "--database-url: the host {host:?} is not loopback (127.0.0.1, localhost or ::1)"
        ));
    }
    Ok(url.to_string())
}

/// `url` with its database name replaced by `name` (query kept).
fn with_database(url: &str, name: &str) -> String {
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let (head, tail) = url.split_at(scheme_end);
    let authority_end = tail.find(['/', '?']).unwrap_or(tail.len());
    let (authority, rest) = tail.split_at(authority_end);
    let query = rest.find('?').map_or("", |i| &rest[i..]);
    format!("{head}{authority}/{name}{query}")
}

/// The database this run made on the server, dropped at the end.
struct Database {
    server_url: String,
    name: String,
    url: String,
    /// The server's postmaster, when found on this machine (for its CPU time).
    postmaster: Option<u32>,
}

async fn admin_sql(url: &str, sql: &str) -> Result<(), String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| {
            let reason = e
                .as_db_error()
                .map_or(e.to_string(), |db| db.message().to_string());
            format!("connecting to the database server: {reason}")
        })?;
    let driver = tokio::spawn(connection);
    let result = client
        .batch_execute(sql)
        .await
        .map_err(|e| format!("{sql}: {e}"));
    drop(client);
    let _ = driver.await;
    result
}

impl Database {
    async fn create(server_url: &str) -> Result<Database, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("lanyard_loadgen_{}_{nanos}", std::process::id());
        admin_sql(server_url, &format!("CREATE DATABASE {name}")).await?;
        let port = server_url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', '?']).next())
            .map(|authority| authority.rsplit_once('@').map_or(authority, |(_, h)| h))
            .and_then(|host_port| host_port.rsplit_once(':'))
            .and_then(|(_, port)| port.parse().ok())
            .unwrap_or(5432);
        Ok(Database {
            server_url: server_url.to_string(),
            url: with_database(server_url, &name),
            name,
            postmaster: listener_pid(port),
        })
    }

    async fn drop_database(&self) {
        if let Err(e) = admin_sql(
            &self.server_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await
        {
            eprintln!("could not drop {}: {e}", self.name);
        }
    }
}

/// The process listening on loopback TCP `port` (from /proc/net/tcp and the processes'
/// file descriptors), when this machine runs it.
fn listener_pid(port: u16) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let inode = table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let local = fields.get(1)?;
        let listening = fields.get(3)? == &"0A";
        let local_port = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
        (listening && local_port == port).then(|| fields.get(9).map(|i| i.to_string()))?
    })?;
    let target = format!("socket:[{inode}]");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let fds = std::fs::read_dir(entry.path().join("fd")).ok()?;
            fds.flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_str() == Some(&target)))
                .then_some(pid)
        })
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

/// The agents' shared settings on PostgreSQL: the database, the key file (in `secrets`), the
/// admin token and the public URL (the balancer's).
struct Shared {
    vars: Vec<(&'static str, String)>,
    _secrets: tempfile::TempDir,
}

fn random_bytes(bytes: &mut [u8]) -> Result<(), String> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(bytes))
        .map_err(|e| format!("random bytes: {e}"))
}

impl Shared {
    fn new(database: &Database, public_url: String) -> Result<Shared, String> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let secrets = tempfile::tempdir().map_err(|e| e.to_string())?;
        let key_file = secrets.path().join("deployment.key");
        let mut key = [0u8; 32];
        random_bytes(&mut key)?;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_file)
            .and_then(|mut file| file.write_all(&key))
            .map_err(|e| format!("writing the key file: {e}"))?;
        key.fill(0);
        let mut token = [0u8; 16];
        random_bytes(&mut token)?;
        let token: String = token.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Shared {
            vars: vec![
                ("LANYARD_DATABASE_URL", database.url.clone()),
                ("LANYARD_KEY_FILE", key_file.display().to_string()),
                ("LANYARD_ADMIN_TOKEN", token),
                ("LANYARD_PUBLIC_URL", public_url),
            ],
            _secrets: secrets,
        })
    }
}

fn start_agent(shared: &[(&'static str, String)]) -> Result<Agent, String> {
    let data = tempfile::tempdir().map_err(|e| e.to_string())?;
    let binary = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("agent");
    let mut child = Command::new(&binary)
        .envs(shared.iter().map(|(name, value)| (*name, value)))
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
    if url.is_empty() || did.is_empty() {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!(
            "{} did not start (its errors are above)",
            binary.display()
        ));
    }
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

/// CPU time (user + system) the process has used, in seconds; with `reaped`, also that of
/// its children it has waited for (PostgreSQL's backends that ended).
fn cpu_of(pid: u32, reaped: bool) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which is in parentheses and may hold spaces).
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let field = |n: usize| fields.get(n)?.parse::<f64>().ok();
            let mut ticks = field(11)? + field(12)?;
            if reaped {
                ticks += field(13)? + field(14)?;
            }
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

/// CPU time (user + system) the process has used, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    cpu_of(pid, false)
}

/// CPU seconds used so far by a server's processes: `master`, those of its children alive
/// now, and those of its children that ended.
fn tree_cpu_seconds(master: u32) -> f64 {
    cpu_of(master, true)
        + nginx::children(master)
            .into_iter()
            .map(cpu_seconds)
            .sum::<f64>()
}

/// The processes whose CPU a forward costs: the agents, nginx and PostgreSQL on this machine.
struct Processes {
    agents: Vec<u32>,
    nginx: Option<u32>,
    postgres: Option<u32>,
}

/// CPU seconds so far: agents, nginx, PostgreSQL.
#[derive(Clone, Copy)]
struct Cpu {
    agents: f64,
    nginx: f64,
    postgres: f64,
}

impl Processes {
    fn cpu(&self) -> Cpu {
        Cpu {
            agents: self.agents.iter().copied().map(cpu_seconds).sum(),
            nginx: self.nginx.map_or(0.0, tree_cpu_seconds),
            postgres: self.postgres.map_or(0.0, tree_cpu_seconds),
        }
    }
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
    let database = match &options.database_url {
        Some(url) => Some(Database::create(url).await?),
        None => None,
    };
    let result = tokio::time::timeout(
        Duration::from_secs(30 * 60),
        run(&options, database.as_ref()),
    )
    .await
    .unwrap_or_else(|_| Err("the run took more than 30 minutes: stopped".to_string()));
    // The agents and nginx are stopped by now (dropped at the end of the run).
    if let Some(database) = &database {
        database.drop_database().await;
    }
    result
}

async fn run(options: &Options, database: Option<&Database>) -> Result<(), String> {
    // The balancer's port is chosen first: agents on a database publish its URL.
    let port = nginx::free_port();
    let shared = database
        .map(|database| Shared::new(database, format!("http://127.0.0.1:{port}")))
        .transpose()?;
    let vars = shared.as_ref().map_or(&[][..], |shared| &shared.vars[..]);
    let mut agents = Vec::with_capacity(options.agents);
    for _ in 0..options.agents {
        agents.push(start_agent(vars)?);
    }
    let did = agents[0].did.clone();
    if let Some(other) = agents.iter().find(|agent| agent.did != did) {
        return Err(format!(
            "the agents are not one mediator: {} is {}, {} is {}",
            agents[0].url, did, other.url, other.did
        ));
    }
    let balancer = options.nginx.then(|| {
        let upstreams: Vec<&str> = agents.iter().map(|agent| agent.url.as_str()).collect();
        nginx::Nginx::start_on(
            port,
            &upstreams,
            &nginx::NginxOptions {
                workers: 1,
                upstream_keepalive: options.upstream_keepalive,
            },
        )
    });
    let processes = Processes {
        agents: agents.iter().map(|agent| agent.child.id()).collect(),
        nginx: balancer.as_ref().map(nginx::Nginx::pid),
        postgres: database.and_then(|database| database.postmaster),
    };
    let base = balancer
        .as_ref()
        .map_or(agents[0].url.clone(), |nginx| nginx.url.clone());
    let endpoint = format!("{base}/didcomm");
    let client = reqwest::Client::new();
    let rss = || -> u64 { processes.agents.iter().map(|&pid| rss_kib(pid)).sum() };
    println!(
        "{} agent(s) on {}{}: {}; RSS at start {} KiB",
        agents.len(),
        if database.is_some() {
            "PostgreSQL"
        } else {
            "sled"
        },
        match (&balancer, options.upstream_keepalive) {
            (Some(nginx), 0) => format!(" behind nginx {} (no upstream keep-alive)", nginx.url),
            (Some(nginx), n) => format!(" behind nginx {} (upstream keep-alive {n})", nginx.url),
            (None, _) => String::new(),
        },
        agents
            .iter()
            .map(|agent| format!("{} pid {}", agent.url, agent.child.id()))
            .collect::<Vec<_>>()
            .join(", "),
        rss()
    );
    match (database, processes.postgres) {
        (Some(_), Some(pid)) => println!("PostgreSQL postmaster pid {pid}: its CPU is counted"),
        (Some(_), None) => {
            println!("PostgreSQL's process was not found on this machine: its CPU is not counted")
        }
        (None, _) => {}
    }

    // Phones ask for mediation and register their DIDs.
    let mut phones = Vec::with_capacity(options.phones);
    for _ in 0..options.phones {
        let phone = Phone::new(&did);
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
            let packed = phone.request(&did, type_, body).await;
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
    let cpu_before = processes.cpu();
    let own_before = cpu_seconds(std::process::id());
    let (elapsed, latencies) = flood(&endpoint, Arc::new(packed), options.concurrency, None).await;
    let cpu_after = processes.cpu();
    let own_cpu = cpu_seconds(std::process::id()) - own_before;
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    let count = latencies.len() as f64;
    println!(
        "closed loop: {} forwards in {:.2} s = {:.0} forwards/s with {} in flight; p50 {:.2} ms, p99 {:.2} ms",
        latencies.len(),
        elapsed.as_secs_f64(),
        rate,
        options.concurrency,
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
    );
    let per_forward = |seconds: f64| seconds * 1e6 / count;
    let agents_cpu = cpu_after.agents - cpu_before.agents;
    let nginx_cpu = cpu_after.nginx - cpu_before.nginx;
    let postgres_cpu = cpu_after.postgres - cpu_before.postgres;
    let total = agents_cpu + nginx_cpu + postgres_cpu;
    println!(
        "CPU per forward in the closed loop: {:.0} us = agents {:.0} us + nginx {:.0} us + PostgreSQL {:.0} us ({:.0}% of one core in all); load generator {:.0} us ({:.0}% of one core)",
        per_forward(total),
        per_forward(agents_cpu),
        per_forward(nginx_cpu),
        per_forward(postgres_cpu),
        total / elapsed.as_secs_f64() * 100.0,
        per_forward(own_cpu),
        own_cpu / elapsed.as_secs_f64() * 100.0
    );
    println!(
        "this machine's {workers} cores are shared by all of them: agents, nginx, PostgreSQL and the load generator"
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
    println!("agents' RSS after the floods: {} KiB", rss());

    // 3. Live WebSocket connections held open by agent 0, directly (each proves itself with a
    // trust ping).
    let pid = agents[0].child.id();
    let ws_url = format!("{}/ws", agents[0].url.replace("http://", "ws://"));
    let ping = phones[0]
        .request(
            &did,
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

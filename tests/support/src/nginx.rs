//! Debian's nginx as a round-robin load balancer on loopback, in front of given agents.
//!
//! Everything nginx writes (its configuration, pid file, lock file, logs and temporary files)
//! is in a temporary folder of its own; it listens on 127.0.0.1 only. The `upstream` has no
//! stickiness and nginx keeps no connection to an agent open between requests, so consecutive
//! requests alternate between the agents. `/ws` is proxied as a WebSocket upgrade with a long
//! read timeout; every request carries `X-Forwarded-For`.
//!
//! This file has no dependency beyond `std` and `tempfile`: the load generator
//! (`agent/loadgen`) compiles the same file, so that the tests and the benchmark run one
//! balancer configuration.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's nginx binary.
const NGINX_BINARY: &str = "/usr/sbin/nginx";

/// How nginx is set up in front of the agents.
#[derive(Clone, Debug)]
pub struct NginxOptions {
    /// Worker processes (round-robin state is shared between them).
    pub workers: usize,
    /// Idle connections to the agents kept open per worker; 0 (the default) closes each
    /// connection after its request.
    pub upstream_keepalive: usize,
}

impl Default for NginxOptions {
    fn default() -> NginxOptions {
        NginxOptions {
            workers: 1,
            upstream_keepalive: 0,
        }
    }
}

/// A running nginx balancing `127.0.0.1:PORT` over its upstreams; stopped (SIGQUIT, then
/// SIGKILL after 10 s) and its folder removed when dropped. When dropped during a panic, it
/// prints its error log.
pub struct Nginx {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The port it listens on.
    pub port: u16,
    dir: tempfile::TempDir,
}

/// A loopback port nothing listens on at the moment.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// `127.0.0.1:PORT` from an address or an `http://` URL.
fn host_port(upstream: &str) -> &str {
    upstream.trim_start_matches("http://").trim_end_matches('/')
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // The owner of a file this process just made is this process's user.
    let probe = tempfile::NamedTempFile::new().expect("a temporary file");
    probe.as_file().metadata().expect("its metadata").uid() == 0
}

/// The configuration: a balancer on `port` over `upstreams`, all paths under `dir`.
fn configuration(dir: &Path, port: u16, upstreams: &[&str], options: &NginxOptions) -> String {
    let path = |name: &str| dir.join(name).display().to_string();
    let mut servers = String::new();
    for upstream in upstreams {
        // A refused connection takes an agent out for a second (a restarted one comes back).
        let _ = writeln!(
            servers,
            "        server {} max_fails=1 fail_timeout=1s;",
            host_port(upstream)
        );
    }
    let keepalive = if options.upstream_keepalive > 0 {
        format!("        keepalive {};\n", options.upstream_keepalive)
    } else {
        String::new()
    };
    // Without `keepalive`, nginx sends `Connection: close` and opens a connection per request;
    // with it, the connection header is cleared so that the agent keeps the connection.
    let connection = if options.upstream_keepalive > 0 {
        "        proxy_set_header Connection \"\";\n"
    } else {
        ""
    };
    // As root, nginx's workers run as `nobody`; they only need the temporary folders, which
    // nginx creates and gives them.
    let user = if running_as_root() {
        "user nobody nogroup;\n"
    } else {
        ""
    };
    format!(
        "{user}worker_processes {workers};
pid {pid};
lock_file {lock};
error_log {error_log} warn;
worker_shutdown_timeout 5s;
events {{
    worker_connections 4096;
}}
http {{
    log_format balanced '$remote_addr \"$request\" $status upstream=$upstream_addr';
    access_log {access_log} balanced;
    client_body_temp_path {body};
    proxy_temp_path {proxy};
    fastcgi_temp_path {fastcgi};
    uwsgi_temp_path {uwsgi};
    scgi_temp_path {scgi};
    client_max_body_size 16m;
    # A client's keep-alive connection is not cut after nginx's default 1000 requests.
    keepalive_requests 1000000;
    server_tokens off;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        '' close;
    }}
    upstream agents {{
        zone agents 64k;
{servers}{keepalive}    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://agents;
            proxy_http_version 1.1;
{connection}            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 5s;
        }}
        location = /ws {{
            proxy_pass http://agents;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 5s;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
    }}
}}
",
        workers = options.workers.max(1),
        pid = path("nginx.pid"),
        lock = path("nginx.lock"),
        error_log = path("error.log"),
        access_log = path("access.log"),
        body = path("body"),
        proxy = path("proxy"),
        fastcgi = path("fastcgi"),
        uwsgi = path("uwsgi"),
        scgi = path("scgi"),
    )
}

impl Nginx {
    /// Starts nginx on a free loopback port in front of `upstreams` (`127.0.0.1:PORT` or
    /// `http://127.0.0.1:PORT`), with one worker and no connection kept to the agents.
    pub fn start(upstreams: &[&str]) -> Nginx {
        Nginx::start_with(upstreams, &NginxOptions::default())
    }

    /// Starts nginx on a free loopback port with `options`; a port taken meanwhile is
    /// replaced by another.
    pub fn start_with(upstreams: &[&str], options: &NginxOptions) -> Nginx {
        let mut last = String::new();
        for _attempt in 0..5 {
            match Nginx::try_start_on(free_port(), upstreams, options) {
                Ok(nginx) => return nginx,
                Err(log) => last = log,
            }
        }
        panic!("nginx did not start: {last}");
    }

    /// Starts nginx on `port` (chosen beforehand, for agents whose public URL names it).
    pub fn start_on(port: u16, upstreams: &[&str], options: &NginxOptions) -> Nginx {
        Nginx::try_start_on(port, upstreams, options)
            .unwrap_or_else(|log| panic!("nginx did not start on port {port}: {log}"))
    }

    /// Starts nginx on `port`; its error log when it does not come up.
    fn try_start_on(
        port: u16,
        upstreams: &[&str],
        options: &NginxOptions,
    ) -> Result<Nginx, String> {
        assert!(!upstreams.is_empty(), "nginx needs at least one upstream");
        assert!(
            Path::new(NGINX_BINARY).is_file(),
            "{NGINX_BINARY} is not installed: apt-get install -y --no-install-recommends nginx \
             (scripts/test does this when it is missing)"
        );
        let dir = tempfile::Builder::new()
            .prefix("lanyard-nginx-")
            .tempdir()
            .expect("a temporary folder");
        // The workers (`nobody` when we are root) reach their temporary folders through it.
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
                .expect("the folder's permissions");
        }
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, configuration(dir.path(), port, upstreams, options))
            .expect("writing nginx.conf");
        let error_log = dir.path().join("error.log");
        let mut child = Command::new(NGINX_BINARY)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(&error_log)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "exited with {status}: {}",
                    std::fs::read_to_string(&error_log).unwrap_or_default()
                ));
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                stop(child);
                return Err(format!(
                    "not listening after 30 s: {}",
                    std::fs::read_to_string(&error_log).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Nginx {
            child: Some(child),
            url: format!("http://127.0.0.1:{port}"),
            port,
            dir,
        })
    }

    /// The master process's id (its workers are its children).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// What nginx logged as errors and warnings so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// The access log so far: one line per request, `ADDRESS "REQUEST" STATUS
    /// upstream=AGENT` (written when the request ends: a WebSocket's when it closes).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

/// The ids of `master`'s children (nginx's workers; the load generator's PostgreSQL
/// backends), from `/proc`.
pub(crate) fn children(master: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let parent = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| {
                let rest = stat.rsplit_once(')')?.1.to_string();
                rest.split_whitespace().nth(1)?.parse::<u32>().ok()
            });
        if parent == Some(master) {
            pids.push(pid);
        }
    }
    pids
}

/// SIGQUIT (graceful: open connections finish, WebSockets within 5 s), then SIGKILL to the
/// master and its workers after 10 s.
fn stop(mut child: Child) {
    let workers = children(child.id());
    let _ = Command::new("kill")
        .args(["-QUIT", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for worker in workers {
        let _ = Command::new("kill")
            .args(["-KILL", &worker.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("nginx error log:\n{}", self.error_log());
        }
        if let Some(child) = self.child.take() {
            stop(child);
        }
    }
}

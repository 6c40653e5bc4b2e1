//! PostgreSQL for tests: a server of Debian's `postgresql` package started in a temporary
//! folder on a loopback port ([`PostgresServer`]), and a fresh database on it for each test
//! ([`database`]).
//!
//! `scripts/test` starts one server for the whole run (the `lanyard-test-postgres` binary) and
//! names it in `LANYARD_TEST_POSTGRES`; each test then creates its own database there and drops
//! it when done. Without that variable (a test run by hand with `cargo test`), each
//! [`database`] starts a server of its own, stopped when the handle drops.
//!
//! `initdb` refuses to run as root: as root, the server runs as the `postgres` user (which the
//! Debian package creates), in a folder given to it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The variable naming a running server's base URL (`postgres://lanyard@127.0.0.1:PORT`).
pub const SERVER_VARIABLE: &str = "LANYARD_TEST_POSTGRES";

/// The role the test servers are created with (trusted on loopback).
const ROLE: &str = "lanyard";

/// A PostgreSQL server in a temporary folder, listening on 127.0.0.1 only; stopped (fast
/// shutdown) and its folder removed when dropped.
pub struct PostgresServer {
    base_url: String,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

/// Where the PostgreSQL server binaries are: the newest `/usr/lib/postgresql/*/bin` with an
/// `initdb`, else an `initdb` on the PATH.
pub fn server_binaries() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
    })
}

/// The uid and gid of `user`, from `/etc/passwd`.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&user) && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // The owner of a file this process just made is this process's user.
    let probe = tempfile::NamedTempFile::new().expect("a temporary file");
    probe.as_file().metadata().expect("its metadata").uid() == 0
}

/// A command that runs as the server's user: `postgres` when we are root, else ourselves.
fn as_server_user(program: PathBuf, owner: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(program);
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid);
    }
    command
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

impl PostgresServer {
    /// Initialises a cluster in a new temporary folder and starts it on a free loopback port;
    /// returns once it accepts connections. Panics, naming what is missing, when the server
    /// binaries are not installed (`scripts/test` installs Debian's `postgresql`).
    pub fn start() -> PostgresServer {
        let bin = server_binaries().expect(
            "PostgreSQL server binaries (initdb, postgres) are not installed: \
             apt-get install postgresql (scripts/test does this when they are missing)",
        );
        let owner = if running_as_root() {
            Some(user_ids("postgres").expect(
                "running as root, the server needs the `postgres` user (Debian's postgresql package makes it)",
            ))
        } else {
            None
        };
        let dir = tempfile::Builder::new()
            .prefix("lanyard-pg-")
            .tempdir()
            .expect("a temporary folder");
        let data = dir.path().join("data");
        let socket = dir.path().join("socket");
        std::fs::create_dir(&socket).expect("the socket folder");
        if let Some((uid, gid)) = owner {
            for path in [dir.path(), socket.as_path()] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown to postgres");
            }
        }
        let init = as_server_user(bin.join("initdb"), owner)
            .args(["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"])
            .arg(format!("--username={ROLE}"))
            .arg("-D")
            .arg(&data)
            .stdout(Stdio::null())
            .output()
            .expect("initdb runs");
        assert!(
            init.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        let log = dir.path().join("server.log");
        for _attempt in 0..5 {
            let port = free_port();
            let mut child = Self::spawn(&bin, owner, &data, &socket, &log, port);
            if wait_ready(&mut child, &log, port) {
                return PostgresServer {
                    base_url: format!("postgres://{ROLE}@127.0.0.1:{port}"),
                    child: Some(child),
                    _dir: dir,
                };
            }
            // Most likely the port was taken meanwhile: try another.
            stop(child);
        }
        panic!(
            "the PostgreSQL server did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    fn spawn(
        bin: &Path,
        owner: Option<(u32, u32)>,
        data: &Path,
        socket: &Path,
        log: &Path,
        port: u16,
    ) -> Child {
        let log_file = std::fs::File::create(log).expect("the server log");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(log, Some(uid), Some(gid)).expect("chown the log");
        }
        as_server_user(bin.join("postgres"), owner)
            .arg("-D")
            .arg(data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(socket)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                // Tests need the server's behaviour, not its durability across power loss.
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=64MB",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("postgres starts")
    }

    /// `postgres://lanyard@127.0.0.1:PORT`: append `/DBNAME` for a database.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Fast shutdown (SIGINT), then waits for the server to end.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            stop(child);
        }
    }
}

/// Waits until the server logs that it accepts connections and its port answers; false when
/// it exits first or takes more than 30 s.
fn wait_ready(child: &mut Child, log: &Path, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let accepting = std::fs::read_to_string(log)
            .is_ok_and(|text| text.contains("ready to accept connections"));
        if accepting && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Fast shutdown (SIGINT), then waits for the server to end (killing it after 10 s).
fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A fresh, empty database for one test, dropped (with its connections) when this is.
pub struct TestDatabase {
    /// `postgres://lanyard@127.0.0.1:PORT/NAME`.
    pub url: String,
    base_url: String,
    name: String,
    /// The server this test started for itself, when no shared one was named.
    _server: Option<PostgresServer>,
}

/// Runs `sql` on the server's `postgres` database (on a thread of its own: callable from
/// async tests and from `Drop`).
fn admin(base_url: &str, sql: String) -> Result<(), String> {
    let url = format!("{base_url}/postgres");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            let driver = tokio::spawn(connection);
            let result = client.batch_execute(&sql).await.map_err(|e| e.to_string());
            drop(client);
            let _ = driver.await;
            result
        })
    })
    .join()
    .map_err(|_| "the admin thread panicked".to_string())?
}

/// A new database on the shared server (`LANYARD_TEST_POSTGRES`), or on a server started for
/// this test alone.
pub fn database() -> TestDatabase {
    let (base_url, server) = match std::env::var(SERVER_VARIABLE) {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let server = PostgresServer::start();
            (server.base_url().to_string(), Some(server))
        }
    };
    let name = format!("t_{}", uuid_like());
    admin(&base_url, format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("creating the test database on {base_url}: {e}"));
    TestDatabase {
        url: format!("{base_url}/{name}"),
        base_url,
        name,
        _server: server,
    }
}

fn uuid_like() -> String {
    use std::fmt::Write;
    let mut bytes = [0u8; 12];
    getrandom(&mut bytes);
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn getrandom(bytes: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(bytes))
        .expect("random bytes");
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self._server.is_none() {
            // On the shared server: drop it, ending what still holds it open.
            let _ = admin(
                &self.base_url,
                format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            );
        }
    }
}

//! Starts the real agent binary on a loopback port and asks it for `/health`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn health_answers_ok_over_loopback() {
    let data = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_agent"))
        .env("LANYARD_LISTEN", "127.0.0.1:0")
        .env("LANYARD_DATA_DIR", data.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("the agent binary starts");
    let mut agent = Agent(child);
    let stdout = agent.0.stdout.take().expect("stdout is piped");
    let mut stdout = BufReader::new(stdout);
    let mut first_line = String::new();
    stdout
        .read_line(&mut first_line)
        .expect("the agent prints its address");
    let addr = first_line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line from the agent: {first_line:?}"))
        .to_string();

    let mut stream = TcpStream::connect(&addr).expect("connect to the agent");
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "health did not answer 200: {response}"
    );
    assert!(
        response.contains(r#""status":"ok""#),
        "health body is not ok: {response}"
    );
}

#[test]
fn a_config_file_is_read_and_a_wrong_one_is_refused_by_name() {
    let data = tempfile::tempdir().unwrap();
    let file = data.path().join("lanyard.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nqueue_cap = 5\n",
            data.path().join("store").display()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_agent"))
        .env("LANYARD_CONFIG", &file)
        .env_remove("LANYARD_LISTEN")
        .env_remove("LANYARD_DATA_DIR")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut agent = Agent(child);
    let mut stdout = BufReader::new(agent.0.stdout.take().unwrap());
    let mut first_line = String::new();
    stdout.read_line(&mut first_line).unwrap();
    assert!(
        first_line.starts_with("listening on http://127.0.0.1:"),
        "{first_line}"
    );
    assert!(
        data.path().join("store").join("agent.key").exists(),
        "the data folder from the file is used"
    );
    drop(agent);

    std::fs::write(&file, "lisen = \"127.0.0.1:0\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_agent"))
        .env("LANYARD_CONFIG", &file)
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "a config with an unknown key starts"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown key \"lisen\""), "{stderr}");
}

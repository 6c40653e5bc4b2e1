//! The SMTP sink the agent sends invitation emails to.

use serde_json::Value;

/// The SMTP sink (aiosmtpd, in Python: an SMTP server independent of ours) on a loopback port.
pub struct SmtpSink {
    child: std::process::Child,
    /// The loopback port it accepts connections on.
    pub port: u16,
    /// Where it writes each message received (`0001.json`, ...) and its images.
    pub dir: tempfile::TempDir,
}

impl SmtpSink {
    /// Starts the sink on a free port.
    pub fn start() -> SmtpSink {
        SmtpSink::start_on(None)
    }

    /// Starts the sink on `port` (a free one when None).
    pub fn start_on(port: Option<u16>) -> SmtpSink {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/smtp_sink.py");
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

    /// The sink's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The sink's address as the agent's `smtp_url` names it.
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

    /// The `n`th message received (1-based) as it came over SMTP, waiting up to 10 s for it.
    pub async fn raw(&self, n: usize) -> Vec<u8> {
        // The sink writes the raw message before the JSON record.
        self.message(n).await;
        std::fs::read(self.dir.path().join(format!("{n:04}.eml"))).unwrap()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The `wallet` CLI as a test runs it: on a wallet folder, with a test passphrase, allowed to
//! reach the agent on loopback.

use std::process::Command;

use serde_json::Value;

use crate::binary;

/// The passphrase of the wallets [`wallet_cli`] opens.
pub const CLI_PASSPHRASE: &str = "cli wallet test passphrase";

/// `wallet --dir <dir> <args>`, not started yet (pipe or spawn it as needed).
pub fn wallet_cli(dir: &std::path::Path, args: &[&str]) -> Command {
    let mut command = Command::new(binary("wallet"));
    command
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env("LANYARD_WALLET_PASSPHRASE", CLI_PASSPHRASE)
        .env("LANYARD_WALLET_ALLOW_LOOPBACK", "true");
    command
}

/// Runs `wallet <args>` on `dir`, expecting success; returns its stdout as JSON (`Null` when
/// it is not).
pub fn run_wallet(dir: &std::path::Path, args: &[&str]) -> Value {
    let output = wallet_cli(dir, args).output().unwrap();
    assert!(
        output.status.success(),
        "wallet {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

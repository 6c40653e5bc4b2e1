//! The agent binary: `cargo run --release -p agent` serves the mediator on an embedded sled
//! store in `./data` with no other set-up. Configuration is read from `LANYARD_*` environment
//! variables (see `config.rs`). The bound address is printed on stdout.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("agent: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // Logs go to stderr; stdout carries only the address and DID lines scripts read.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = agent::config::Config::from_env()?;
    let running = agent::start(config).await?;
    // Tests and scripts that start the agent on port 0 read the bound address from here. A
    // reader that went away must not bring the agent down, so write errors are ignored.
    {
        use std::io::Write;
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "listening on http://{}", running.addr);
        let _ = writeln!(stdout, "mediator DID {}", running.did);
        let _ = stdout.flush();
    }
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

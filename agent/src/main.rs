//! Lanyard's cloud agent. For now it serves `/health`; the mediator (issue 4) and the
//! issuer/verifier API (issue 5) grow here on top of `wallet-core`'s DIDs and envelopes.
//!
//! Configuration: `LANYARD_LISTEN` (default `127.0.0.1:8080`) is the address to listen on;
//! port 0 picks a free port, and the bound address is printed on stdout.

use std::net::SocketAddr;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let listen = std::env::var("LANYARD_LISTEN").unwrap_or_else(|_| DEFAULT_LISTEN.to_string());
    let addr: SocketAddr = listen
        .parse()
        .map_err(|e| format!("LANYARD_LISTEN={listen:?} is not a socket address: {e}"))?;
    let app = Router::new().route("/health", get(health));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(addr = %bound, "agent listening");
    // Tests and scripts that start the agent on port 0 read the bound address from here.
    println!("listening on http://{bound}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

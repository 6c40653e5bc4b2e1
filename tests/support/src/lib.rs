//! What Lanyard's agent tests (`agent/tests/`) and end-to-end tests (`tests/tests/`) share:
//! the agent in process ([`Agent`]) and as a process ([`AgentProcess`]), several agent
//! processes on one PostgreSQL behind Debian's nginx ([`Cluster`], [`Nginx`]), a phone speaking
//! DIDComm through the mediator ([`Phone`]) and a did:key issuer ([`Issuer`]), an
//! organisation's API client ([`OrgClient`]), the console in Chromium through Playwright
//! ([`browser`]: [`Console`], [`Script`]), the onboard-with-auto-issue setup
//! ([`onboarding`]), the customer's whole journey ([`customer_journey`]), an SMTP sink ([`SmtpSink`]), an SMS gateway stand-in ([`SmsReceiver`]),
//! QR decoding ([`decode_qr`]), a wallet event recorder ([`Events`]), the test key protector
//! ([`FileKeyProtector`]), the seed's examples ([`seed_examples`]) and the storage
//! conformance suites ([`mediator_storage_tests!`], [`invitation_store_tests!`],
//! [`issuer_storage_tests!`]) every storage backend runs.
//!
//! Test code only: it panics on what a test would fail on.

#![warn(missing_docs, unreachable_pub)]

pub mod browser;
mod cli;
mod cluster;
pub mod conformance;
pub mod console;
pub mod flood;
mod in_process;
mod journey;
mod keystore;
mod mail;
mod nginx;
pub mod onboarding;
mod org;
mod phone;
pub mod postgres;
mod process;
mod qr;
mod seed;
mod servers;
mod wallet;

/// The message types the mediator speaks, as the protocol crate writes them.
pub mod mediator {
    pub use lanyard_protocol::protocols::coordinate_mediation::v3::{
        MEDIATE_GRANT, MEDIATE_REQUEST, RECIPIENT_QUERY, RECIPIENT_UPDATE,
    };
    pub use lanyard_protocol::protocols::discover_features::{DISCLOSE, QUERIES};
    pub use lanyard_protocol::protocols::pickup::v3::{
        DELIVERY, DELIVERY_REQUEST, LIVE_DELIVERY_CHANGE, MESSAGES_RECEIVED, STATUS, STATUS_REQUEST,
    };
    pub use lanyard_protocol::protocols::report_problem::PROBLEM_REPORT;
    pub use lanyard_protocol::protocols::trust_ping::{PING, PING_RESPONSE};
}

pub use self::browser::{Console, Script};
pub use self::cli::{run_wallet, wallet_cli, CLI_PASSPHRASE};
pub use self::cluster::Cluster;
pub use self::console::{ConsoleClient, ConsolePage, TEST_PASSWORD};
pub use self::in_process::{create_invitation, Agent};
pub use self::journey::customer_journey;
pub use self::keystore::FileKeyProtector;
pub use self::mail::SmtpSink;
pub use self::nginx::{free_port, Nginx, NginxOptions};
pub use self::org::{OrgClient, Reply, TEMPLATES};
pub use self::phone::{Issuer, Phone};
pub use self::process::{binary, spawn_agent, AgentProcess};
pub use self::qr::decode_qr;
pub use self::seed::{seed_examples, seed_template_request, shape_differences};
pub use self::servers::{counting_server, ReceivedSms, SmsReceiver, WakeReceiver};
pub use self::wallet::{wallet, Events};

/// The admin token every test agent is started with.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// An agent a test reaches over HTTP: where it listens and its mediator DID.
pub trait Endpoint {
    /// The agent's base URL (`http://127.0.0.1:PORT`).
    fn url(&self) -> &str;
    /// The mediator's DID.
    fn did(&self) -> &str;
}

/// The OOB invitation a short invite URL serves to a wallet (which asks for JSON).
pub async fn fetch_invitation(url: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The `/metrics` text (Prometheus exposition) of an agent.
async fn metrics(agent: &impl Endpoint) -> String {
    reqwest::get(format!("{}/metrics", agent.url()))
        .await
        .expect("the agent answers")
        .text()
        .await
        .unwrap()
}

//! The customer's whole journey against the real agent process on loopback, no mocks: an
//! issuer creates a template and onboards a customer by email; the wallet takes the QR code
//! from the email the SMTP sink received, connects, and stores the auto-issued credential on
//! its next sync (it was offline when it was issued); live mode delivers the next one at once;
//! a verifier's request is answered and ends `verified` with the disclosed values; the
//! template is deleted and after the next sync the credentials are gone and the event says
//! so; a second issuer's credential is untouched. The steps are
//! `support::customer_journey`, which `agent/tests/cluster.rs` also runs through nginx in front
//! of two agents on one PostgreSQL.

use lanyard_test_support as support;

use support::{AgentProcess, SmtpSink};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_connects_receives_presents_and_loses_credentials_with_their_template() {
    let sink = SmtpSink::start();
    let agent = AgentProcess::start(&[("LANYARD_SMTP_URL", sink.url())]);
    support::customer_journey(&agent, &sink).await;
}

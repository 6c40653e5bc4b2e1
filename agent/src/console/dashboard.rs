//! The dashboard: the organisation's counts at a glance (customers by stage, credentials
//! offered and issued, verifications by result), each counted over at most
//! [`COUNT_CAP`] records so that the page costs the same however large the organisation.

use std::sync::Arc;

use askama::Template;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use super::page::{render, ConsoleError, Nav, Page};
use super::{ConsoleState, SignedIn};

/// The most records one count reads; beyond it the page says "at least".
pub(super) const COUNT_CAP: usize = 10_000;

pub(super) fn routes() -> Router<Arc<ConsoleState>> {
    Router::new().route("/console", get(dashboard))
}

/// A count that may have stopped at the cap.
pub(super) struct Count {
    /// How many were counted.
    pub(super) n: usize,
    /// Whether counting stopped at the cap.
    pub(super) capped: bool,
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.capped {
            write!(f, "{}+", self.n)
        } else {
            write!(f, "{}", self.n)
        }
    }
}

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct Dashboard {
    page: Page,
    stages: Vec<(&'static str, &'static str, Count)>,
    credentials: Vec<(&'static str, Count)>,
    verifications: Vec<(&'static str, Count)>,
}

async fn dashboard(
    axum::extract::State(state): axum::extract::State<Arc<ConsoleState>>,
    user: SignedIn,
) -> Result<Response, ConsoleError> {
    let counts = state.issuer.console_counts(&user.org, COUNT_CAP).await?;
    let count = |(n, capped): (usize, bool)| Count { n, capped };
    render(&Dashboard {
        page: user.page(Nav::Dashboard),
        stages: vec![
            ("All", "/console/customers", count(counts.customers)),
            (
                "Initiated",
                "/console/customers?stage=Initiated",
                count(counts.initiated),
            ),
            (
                "Invited",
                "/console/customers?stage=Invited",
                count(counts.invited),
            ),
            (
                "Onboarded",
                "/console/customers?stage=Onboarded",
                count(counts.onboarded),
            ),
        ],
        credentials: vec![
            ("Offered", count(counts.offered)),
            ("Issued", count(counts.issued)),
        ],
        verifications: vec![
            ("Pending", count(counts.pending)),
            ("Verified", count(counts.verified)),
            ("Failed", count(counts.failed)),
        ],
    })
}

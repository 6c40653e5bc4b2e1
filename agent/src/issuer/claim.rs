//! Leases on shared records, so that several agents on one store do a piece of background
//! work once: an agent records on the record who holds it and until when, in a write guarded
//! by the bytes it read ([`Expect::Equals`](super::store::Expect)). Of two agents taking the
//! same record at the same instant one write applies; the other sees a conflict and leaves
//! the record alone. An agent that dies while it holds a lease holds it only until the lease
//! runs out; then any agent takes the record again.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::time::now_ms;

/// Who holds a record, until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claim {
    /// The agent holding it ([`Issuer`](super::Issuer)'s agent id).
    pub by: String,
    /// Until when (ms since the epoch); after that any agent may take the record.
    pub until_ms: u64,
}

impl Claim {
    /// A lease for `by` of `lease` from now.
    pub(crate) fn new(by: &str, lease: Duration) -> Claim {
        Claim {
            by: by.to_string(),
            until_ms: now_ms().saturating_add(lease.as_millis() as u64),
        }
    }

    /// Whether the lease still holds at `now_ms`.
    pub(crate) fn held(&self, now_ms: u64) -> bool {
        self.until_ms > now_ms
    }
}

/// Whether `claim` (a record's, if any) keeps others off the record at `now_ms`.
pub(crate) fn held(claim: &Option<Claim>, now_ms: u64) -> bool {
    claim.as_ref().is_some_and(|c| c.held(now_ms))
}

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

    /// Whether the lease keeps the agent `me` off the record at `now_ms`: it has not run out,
    /// and it is not one `me` took in an earlier life (the same agent, restarted: see
    /// [`agent_id`]), which no running process holds.
    pub(crate) fn held(&self, now_ms: u64, me: &str) -> bool {
        self.until_ms > now_ms && !same_agent_earlier_life(&self.by, me)
    }
}

/// Whether `claim` (a record's, if any) keeps the agent `me` off the record at `now_ms`.
pub(crate) fn held(claim: &Option<Claim>, now_ms: u64, me: &str) -> bool {
    claim.as_ref().is_some_and(|c| c.held(now_ms, me))
}

/// An agent's id in leases: `stable` (what names this agent across restarts: its data folder's
/// id) and a random id for this process, `<stable>/<life>`.
pub(crate) fn agent_id(stable: &str, life: &str) -> String {
    format!("{stable}/{life}")
}

/// Whether `holder` is the agent `me` in another life (the same stable part, another life):
/// a lease of the process this one replaced after a crash or restart.
fn same_agent_earlier_life(holder: &str, me: &str) -> bool {
    match (holder.rsplit_once('/'), me.rsplit_once('/')) {
        (Some((theirs, then)), Some((mine, now))) => theirs == mine && then != now,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarted_agent_takes_back_its_earlier_lives_leases_only() {
        let before = agent_id("a1", "life1");
        let now = agent_id("a1", "life2");
        let other = agent_id("b7", "life9");
        let lease = |by: &str| Claim {
            by: by.to_string(),
            until_ms: 2_000,
        };
        assert!(!lease(&before).held(1_000, &now), "its own earlier life's");
        assert!(lease(&now).held(1_000, &other), "another agent's holds");
        assert!(lease(&other).held(1_000, &now));
        assert!(
            lease(&now).held(1_000, &now),
            "its own, this life: still held"
        );
        assert!(!lease(&other).held(3_000, &now), "run out");
    }
}

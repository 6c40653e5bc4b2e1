//! A bounded, time-limited set of message digests seen recently: what lets the mediator act
//! on a replayed envelope once (control messages by sender and id, forwards by recipient and
//! id). Memory is bounded by the entry cap; past it, the oldest entries are forgotten first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// A digest of what identifies a message.
pub(crate) type Digest = [u8; 16];

/// The digest of a message `id` within `scope` (its sender, or its recipient): the first 16
/// bytes of SHA-256(scope ‖ 0 ‖ id).
pub(crate) fn digest_of(scope: &str, id: &str) -> Digest {
    use sha2::{Digest as _, Sha256};
    let mut hash = Sha256::new();
    hash.update(scope.as_bytes());
    hash.update([0]);
    hash.update(id.as_bytes());
    let full: [u8; 32] = hash.finalize().into();
    let mut digest = [0u8; 16];
    digest.copy_from_slice(&full[..16]);
    digest
}

/// Digests with the time (seconds since the epoch) until which each is remembered.
pub(crate) struct SeenSet {
    cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// Until when, and the insertion number (which tells a re-inserted digest's entry from
    /// the stale one still in `order`).
    until: HashMap<Digest, (u64, u64)>,
    /// Insertion order, to forget the oldest first.
    order: VecDeque<(Digest, u64, u64)>,
    inserted: u64,
}

impl SeenSet {
    pub(crate) fn new(cap: usize) -> SeenSet {
        SeenSet {
            cap: cap.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `digest` until `until`: true when it was new (or its time had passed), false
    /// when it is remembered still.
    pub(crate) fn insert(&self, digest: Digest, until: u64) -> bool {
        self.insert_at(digest, until, lanyard_protocol::didcomm::now())
    }

    fn insert_at(&self, digest: Digest, until: u64, now: u64) -> bool {
        let mut inner = self.inner();
        if inner.until.get(&digest).is_some_and(|&(t, _)| t > now) {
            return false;
        }
        // Forget what expired at the front, and the oldest beyond the cap.
        while let Some(&(front, front_until, number)) = inner.order.front() {
            if front_until > now && inner.order.len() < self.cap {
                break;
            }
            inner.order.pop_front();
            if inner.until.get(&front).is_some_and(|&(_, n)| n == number) {
                inner.until.remove(&front);
            }
        }
        inner.inserted += 1;
        let number = inner.inserted;
        inner.until.insert(digest, (until, number));
        inner.order.push_back((digest, until, number));
        true
    }

    /// Forgets `digest` (an action it guarded failed, so a retry must be taken).
    pub(crate) fn forget(&self, digest: &Digest) {
        self.inner().until.remove(digest);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner().until.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_seen_once_until_its_time_and_the_set_stays_bounded() {
        let seen = SeenSet::new(3);
        assert!(seen.insert_at([1; 16], 100, 10));
        assert!(
            !seen.insert_at([1; 16], 100, 50),
            "a replay within its time"
        );
        assert!(
            seen.insert_at([1; 16], 200, 100),
            "taken again once its time passed"
        );
        seen.forget(&[1; 16]);
        assert!(
            seen.insert_at([1; 16], 200, 100),
            "forgotten after a failure"
        );
        for n in 2..50u8 {
            assert!(seen.insert_at([n; 16], 1000, 100));
            assert!(seen.len() <= 3, "{} entries", seen.len());
        }
        assert!(!seen.insert_at([49; 16], 1000, 100), "the newest are kept");
    }
}

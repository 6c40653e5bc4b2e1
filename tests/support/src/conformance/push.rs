//! What every push store does: a device is stored (as the opaque sealed bytes the gateway
//! gives), read back and removed by handle; stores stop at their device cap; and a wake is
//! claimed once per window (the conditional write that lets one of several agents win).
//! Written against `agent::push::PushStore`. Each function takes a fresh, empty store.

use agent::push::{PushStore, WakeClaim};

const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const ROOMY: u64 = 1_000;

/// `put` then `get` reads the same bytes; `remove` forgets them (and says whether it did).
pub async fn a_device_is_stored_read_and_removed<S: PushStore>(store: &S) {
    assert!(store.put(A, b"sealed-a", ROOMY).await.unwrap());
    assert!(store.put(B, &[0, 1, 2, 255], ROOMY).await.unwrap());
    assert_eq!(
        store.get(A).await.unwrap().as_deref(),
        Some(&b"sealed-a"[..])
    );
    assert_eq!(
        store.get(B).await.unwrap().as_deref(),
        Some(&[0, 1, 2, 255][..])
    );
    assert_eq!(store.count().await.unwrap(), 2);
    assert!(store.remove(A).await.unwrap());
    assert!(
        !store.remove(A).await.unwrap(),
        "a second remove finds nothing"
    );
    assert_eq!(store.get(A).await.unwrap(), None);
    assert_eq!(
        store.get(B).await.unwrap().as_deref(),
        Some(&[0, 1, 2, 255][..])
    );
    assert_eq!(store.count().await.unwrap(), 1);
}

/// Nothing is found, removed or claimed under a handle never stored.
pub async fn unknown_handles_are_none<S: PushStore>(store: &S) {
    assert_eq!(store.get(A).await.unwrap(), None);
    assert!(!store.remove(A).await.unwrap());
    assert_eq!(
        store.claim_wake(A, 1_000_000, 30_000).await.unwrap(),
        WakeClaim::Unknown
    );
    assert_eq!(store.count().await.unwrap(), 0);
}

/// At the cap a new handle is refused (nothing stored); an existing one may be replaced.
pub async fn the_device_cap_is_kept<S: PushStore>(store: &S) {
    assert!(store.put(A, b"one", 1).await.unwrap());
    assert!(!store.put(B, b"two", 1).await.unwrap(), "over the cap");
    assert_eq!(store.get(B).await.unwrap(), None);
    assert!(
        store.put(A, b"one again", 1).await.unwrap(),
        "a replacement"
    );
    assert_eq!(
        store.get(A).await.unwrap().as_deref(),
        Some(&b"one again"[..])
    );
    assert_eq!(store.count().await.unwrap(), 1);
}

/// A wake is claimed once per window: a claim within it is coalesced, one at its end wins.
pub async fn a_wake_is_claimed_once_per_window<S: PushStore>(store: &S) {
    store.put(A, b"a", ROOMY).await.unwrap();
    store.put(B, b"b", ROOMY).await.unwrap();
    let t = 1_700_000_000_000;
    assert_eq!(
        store.claim_wake(A, t, 30_000).await.unwrap(),
        WakeClaim::Won
    );
    assert_eq!(
        store.claim_wake(A, t + 1, 30_000).await.unwrap(),
        WakeClaim::Coalesced
    );
    assert_eq!(
        store.claim_wake(A, t + 29_999, 30_000).await.unwrap(),
        WakeClaim::Coalesced
    );
    // Handles are independent.
    assert_eq!(
        store.claim_wake(B, t + 1, 30_000).await.unwrap(),
        WakeClaim::Won
    );
    assert_eq!(
        store.claim_wake(A, t + 30_000, 30_000).await.unwrap(),
        WakeClaim::Won
    );
    assert_eq!(
        store.claim_wake(A, t + 30_001, 30_000).await.unwrap(),
        WakeClaim::Coalesced,
        "the window runs from the last claim won"
    );
}

/// Registering again (a new put under the handle) forgets the last wake; removing forgets it
/// too.
pub async fn a_new_put_or_a_remove_forgets_the_last_wake<S: PushStore>(store: &S) {
    let t = 1_700_000_000_000;
    store.put(A, b"a", ROOMY).await.unwrap();
    assert_eq!(
        store.claim_wake(A, t, 30_000).await.unwrap(),
        WakeClaim::Won
    );
    store.put(A, b"a2", ROOMY).await.unwrap();
    assert_eq!(
        store.claim_wake(A, t + 1, 30_000).await.unwrap(),
        WakeClaim::Won
    );
    store.remove(A).await.unwrap();
    assert_eq!(
        store.claim_wake(A, t + 2, 30_000).await.unwrap(),
        WakeClaim::Unknown
    );
    store.put(A, b"a3", ROOMY).await.unwrap();
    assert_eq!(
        store.claim_wake(A, t + 3, 30_000).await.unwrap(),
        WakeClaim::Won
    );
}

/// Of many claims at once in one window, exactly one wins.
pub async fn concurrent_claims_have_one_winner<S: PushStore>(store: &S) {
    store.put(A, b"a", ROOMY).await.unwrap();
    let t = 1_700_000_000_000;
    let claims = eight_claims_at_once(store, t).await;
    assert_eq!(
        claims.iter().filter(|c| **c == WakeClaim::Won).count(),
        1,
        "{claims:?}"
    );
    assert!(claims
        .iter()
        .all(|c| matches!(c, WakeClaim::Won | WakeClaim::Coalesced)));
}

/// Eight claims of `A` in the same window, in flight together.
async fn eight_claims_at_once<S: PushStore>(store: &S, t: u64) -> Vec<WakeClaim> {
    let (a, b, c, d) = tokio::join!(
        store.claim_wake(A, t, 30_000),
        store.claim_wake(A, t + 1, 30_000),
        store.claim_wake(A, t + 2, 30_000),
        store.claim_wake(A, t + 3, 30_000),
    );
    let (e, f, g, h) = tokio::join!(
        store.claim_wake(A, t + 4, 30_000),
        store.claim_wake(A, t + 5, 30_000),
        store.claim_wake(A, t + 6, 30_000),
        store.claim_wake(A, t + 7, 30_000),
    );
    [a, b, c, d, e, f, g, h]
        .into_iter()
        .map(|claim| claim.unwrap())
        .collect()
}

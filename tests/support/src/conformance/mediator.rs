//! What every `agent::storage::MediatorStorage` backend does: mediation grants, recipients
//! (added, removed, listed, owned by one client, within a cap), the queue under its quotas
//! with forwards de-duplicated, pickup's peek/count/remove, expiry, the total queued and each
//! client's wake registration.
//! Each function takes a fresh, empty store.

use agent::mediator::{
    Enqueued, MediatorStorage, QueueQuota, QueuedMessage, RecipientUpdate, WakeRegistration,
};
use agent::storage::StorageError;
use lanyard_protocol::protocols::push_notifications::PushService;

use super::now;

const ALICE: &str = "did:example:alice";
const BOB: &str = "did:example:bob";

/// Room for everything the suite queues.
fn roomy() -> QueueQuota {
    QueueQuota {
        per_recipient: 100,
        client_bytes: 1 << 20,
        total_bytes: 1 << 20,
        dedup_secs: 3600,
    }
}

/// Queues `message` for `recipient` of `client`, expecting it queued.
async fn queue<S: MediatorStorage>(
    store: &S,
    client: &str,
    recipient: &str,
    message: &str,
) -> QueuedMessage {
    match store
        .enqueue(client, recipient, message, None, &roomy())
        .await
        .unwrap()
    {
        Enqueued::Queued(queued) => queued,
        Enqueued::Duplicate => panic!("{message} was taken for a duplicate"),
    }
}

/// Messages waiting for `recipient`, as pickup reads them.
async fn waiting<S: MediatorStorage>(store: &S, recipient: &str) -> Vec<String> {
    store
        .peek(recipient, 100, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.message)
        .collect()
}

/// `grant` is remembered for its client only, and granting twice is fine.
pub async fn grants_are_recorded_per_client<S: MediatorStorage>(store: &S) {
    assert!(!store.is_granted(ALICE).await.unwrap());
    store.grant(ALICE).await.unwrap();
    store.grant(ALICE).await.unwrap();
    assert!(store.is_granted(ALICE).await.unwrap());
    assert!(!store.is_granted(BOB).await.unwrap(), "another client");
}

/// Adding is idempotent and capped per client; removing forgets; the list is per client.
pub async fn recipients_are_added_removed_and_listed_per_client<S: MediatorStorage>(store: &S) {
    assert!(store.recipients(ALICE).await.unwrap().is_empty());
    let add = |r: &'static str| store.add_recipient(ALICE, r, 2);
    assert_eq!(
        add("did:example:a1").await.unwrap(),
        RecipientUpdate::Success
    );
    assert_eq!(
        add("did:example:a1").await.unwrap(),
        RecipientUpdate::NoChange,
        "adding again"
    );
    assert_eq!(
        add("did:example:a2").await.unwrap(),
        RecipientUpdate::Success
    );
    let error = add("did:example:a3").await.unwrap_err();
    assert!(
        matches!(&error, StorageError::TooManyRecipients { client, cap: 2 } if client == ALICE),
        "{error}"
    );
    assert!(error.to_string().contains("(2)"), "{error}");
    let mut listed = store.recipients(ALICE).await.unwrap();
    listed.sort();
    assert_eq!(
        listed,
        ["did:example:a1", "did:example:a2"],
        "a3 was refused"
    );
    assert_eq!(
        store
            .remove_recipient(ALICE, "did:example:a2")
            .await
            .unwrap(),
        RecipientUpdate::Success
    );
    assert_eq!(
        store
            .remove_recipient(ALICE, "did:example:a2")
            .await
            .unwrap(),
        RecipientUpdate::NoChange,
        "removing what is not there"
    );
    assert_eq!(store.recipients(ALICE).await.unwrap(), ["did:example:a1"]);
    // The removal made room under the cap.
    assert_eq!(
        add("did:example:a3").await.unwrap(),
        RecipientUpdate::Success
    );
    assert!(store.recipients(BOB).await.unwrap().is_empty());
}

/// A recipient DID another client holds is refused to the second, for adding and removing.
pub async fn a_recipient_belongs_to_one_client<S: MediatorStorage>(store: &S) {
    let shared = "did:example:shared";
    assert_eq!(
        store.add_recipient(ALICE, shared, 5).await.unwrap(),
        RecipientUpdate::Success
    );
    assert_eq!(
        store.add_recipient(BOB, shared, 5).await.unwrap(),
        RecipientUpdate::ClientError
    );
    assert_eq!(
        store.remove_recipient(BOB, shared).await.unwrap(),
        RecipientUpdate::ClientError
    );
    assert!(store.recipients(BOB).await.unwrap().is_empty());
    assert_eq!(store.recipients(ALICE).await.unwrap(), [shared]);
    assert_eq!(
        store.client_of(shared).await.unwrap().as_deref(),
        Some(ALICE)
    );
}

/// `client_of` names the client that registered a recipient, and nobody once it is removed.
pub async fn client_of_names_the_owner<S: MediatorStorage>(store: &S) {
    assert_eq!(store.client_of("did:example:a1").await.unwrap(), None);
    store
        .add_recipient(ALICE, "did:example:a1", 5)
        .await
        .unwrap();
    store.add_recipient(BOB, "did:example:b1", 5).await.unwrap();
    assert_eq!(
        store.client_of("did:example:a1").await.unwrap().as_deref(),
        Some(ALICE)
    );
    assert_eq!(
        store.client_of("did:example:b1").await.unwrap().as_deref(),
        Some(BOB)
    );
    store
        .remove_recipient(ALICE, "did:example:a1")
        .await
        .unwrap();
    assert_eq!(store.client_of("did:example:a1").await.unwrap(), None);
}

/// A full recipient queue refuses with `QueueFull` and keeps what it held.
pub async fn enqueue_keeps_to_the_recipient_quota<S: MediatorStorage>(store: &S) {
    let quota = QueueQuota {
        per_recipient: 2,
        ..roomy()
    };
    for message in ["m1", "m2"] {
        let queued = store
            .enqueue(ALICE, "did:example:a1", message, None, &quota)
            .await
            .unwrap();
        assert!(matches!(queued, Enqueued::Queued(_)), "{message}");
    }
    let error = store
        .enqueue(ALICE, "did:example:a1", "m3", None, &quota)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StorageError::QueueFull { recipient, cap: 2 } if recipient == "did:example:a1"),
        "{error}"
    );
    assert_eq!(waiting(store, "did:example:a1").await, ["m1", "m2"]);
    assert_eq!(store.count("did:example:a1").await.unwrap(), 2);
    // Another recipient's queue is its own.
    assert!(matches!(
        store
            .enqueue(ALICE, "did:example:a2", "m3", None, &quota)
            .await
            .unwrap(),
        Enqueued::Queued(_)
    ));
}

/// The bytes one client's queues hold are capped: `ClientQuota`, other clients unaffected.
pub async fn enqueue_keeps_to_the_client_quota<S: MediatorStorage>(store: &S) {
    let quota = QueueQuota {
        client_bytes: 10,
        ..roomy()
    };
    queue_within(store, ALICE, "did:example:a1", "123456", &quota).await;
    // Four bytes left for alice, over all of her recipients.
    let error = store
        .enqueue(ALICE, "did:example:a2", "12345", None, &quota)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StorageError::ClientQuota { cap: 10, .. }),
        "{error}"
    );
    assert_eq!(store.count("did:example:a2").await.unwrap(), 0);
    queue_within(store, ALICE, "did:example:a2", "1234", &quota).await;
    queue_within(store, BOB, "did:example:b1", "123456", &quota).await;
    assert_eq!(store.queued_total().await.unwrap(), 3);
}

/// All queues together are capped: `StoreFull`, nothing stored.
pub async fn enqueue_keeps_to_the_store_quota<S: MediatorStorage>(store: &S) {
    let quota = QueueQuota {
        total_bytes: 10,
        ..roomy()
    };
    queue_within(store, ALICE, "did:example:a1", "123456", &quota).await;
    let error = store
        .enqueue(BOB, "did:example:b1", "12345", None, &quota)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StorageError::StoreFull { cap: 10 }),
        "{error}"
    );
    assert!(error.to_string().contains("try again later"), "{error}");
    assert_eq!(store.queued_total().await.unwrap(), 1);
    assert_eq!(store.count("did:example:b1").await.unwrap(), 0);
}

async fn queue_within<S: MediatorStorage>(
    store: &S,
    client: &str,
    recipient: &str,
    message: &str,
    quota: &QueueQuota,
) {
    let queued = store
        .enqueue(client, recipient, message, None, quota)
        .await
        .unwrap();
    assert!(matches!(queued, Enqueued::Queued(_)), "{message}");
}

/// The same forward id for the same recipient is queued once; for another recipient it is
/// another forward; a refused forward is not remembered, so its retry is taken.
pub async fn a_forward_is_queued_once_per_recipient<S: MediatorStorage>(store: &S) {
    let first = store
        .enqueue(ALICE, "did:example:a1", "m1", Some("f1"), &roomy())
        .await
        .unwrap();
    let Enqueued::Queued(first) = first else {
        panic!("the first forward was not queued")
    };
    assert_eq!(first.message, "m1");
    assert_eq!(first.recipient_did, "did:example:a1");
    assert_eq!(
        store
            .enqueue(ALICE, "did:example:a1", "m1", Some("f1"), &roomy())
            .await
            .unwrap(),
        Enqueued::Duplicate
    );
    assert_eq!(
        store.count("did:example:a1").await.unwrap(),
        1,
        "stored once"
    );
    assert!(matches!(
        store
            .enqueue(ALICE, "did:example:a2", "m1", Some("f1"), &roomy())
            .await
            .unwrap(),
        Enqueued::Queued(_)
    ));
    // Without an id nothing is de-duplicated.
    queue(store, ALICE, "did:example:a1", "m1").await;
    assert_eq!(store.count("did:example:a1").await.unwrap(), 2);

    let full = QueueQuota {
        total_bytes: 0,
        ..roomy()
    };
    let error = store
        .enqueue(ALICE, "did:example:a1", "m2", Some("f2"), &full)
        .await
        .unwrap_err();
    assert!(
        matches!(error, StorageError::StoreFull { cap: 0 }),
        "{error}"
    );
    assert!(matches!(
        store
            .enqueue(ALICE, "did:example:a1", "m2", Some("f2"), &roomy())
            .await
            .unwrap(),
        Enqueued::Queued(_)
    ));
}

/// `peek` gives the oldest messages first, at most `limit`, and removes nothing; ids are
/// unique and what `enqueue` returned.
pub async fn peek_hands_out_the_oldest_first_up_to_the_limit<S: MediatorStorage>(store: &S) {
    assert!(store
        .peek("did:example:a1", 10, 0)
        .await
        .unwrap()
        .is_empty());
    let mut queued = Vec::new();
    for n in 0..5 {
        queued.push(queue(store, ALICE, "did:example:a1", &format!("m{n}")).await);
    }
    queue(store, ALICE, "did:example:a2", "other").await;
    let page = store.peek("did:example:a1", 3, 0).await.unwrap();
    assert_eq!(
        page,
        queued[..3],
        "in arrival order, as enqueue returned them"
    );
    let all = store.peek("did:example:a1", 100, 0).await.unwrap();
    assert_eq!(all, queued);
    let mut ids: Vec<&str> = all.iter().map(|m| m.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "ids are unique");
    assert!(all.iter().all(|m| m.received_at <= now()));
    assert_eq!(
        store.count("did:example:a1").await.unwrap(),
        5,
        "peek keeps them"
    );
    assert_eq!(store.count("did:example:a2").await.unwrap(), 1);
}

/// `newest` names the last message queued for a recipient, and `peek_after` hands out only
/// what was queued after a message, oldest first, up to the limit: even once that message is
/// gone (acknowledged), and for no other recipient.
pub async fn peek_after_hands_out_only_what_was_queued_later<S: MediatorStorage>(store: &S) {
    assert_eq!(store.newest("did:example:a1").await.unwrap(), None);
    let first = queue(store, ALICE, "did:example:a1", "m0").await;
    let second = queue(store, ALICE, "did:example:a1", "m1").await;
    assert_eq!(
        store.newest("did:example:a1").await.unwrap().as_deref(),
        Some(second.id.as_str())
    );
    let watermark = store.newest("did:example:a1").await.unwrap().unwrap();
    assert!(store
        .peek_after("did:example:a1", &watermark, 10, 0)
        .await
        .unwrap()
        .is_empty());
    queue(store, ALICE, "did:example:a2", "other").await;
    let mut later = Vec::new();
    for n in 2..6 {
        later.push(queue(store, ALICE, "did:example:a1", &format!("m{n}")).await);
    }
    assert_eq!(
        store
            .peek_after("did:example:a1", &watermark, 3, 0)
            .await
            .unwrap(),
        later[..3],
        "only later messages, oldest first, up to the limit"
    );
    assert_eq!(
        store
            .peek_after("did:example:a1", &first.id, 100, 0)
            .await
            .unwrap()
            .len(),
        5
    );
    store
        .remove(
            &["did:example:a1".to_string()],
            std::slice::from_ref(&second.id),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .peek_after("did:example:a1", &watermark, 100, 0)
            .await
            .unwrap(),
        later,
        "the message named may be gone"
    );
    assert_eq!(
        store.peek("did:example:a1", 100, 0).await.unwrap().len(),
        5,
        "the earlier one stays for peek"
    );
}

/// `remove` deletes the acknowledged ids found among the named recipients' queues, counts
/// only what existed, and leaves other recipients' messages alone.
pub async fn remove_deletes_acknowledged_messages_of_the_named_recipients_only<
    S: MediatorStorage,
>(
    store: &S,
) {
    let a1 = [
        queue(store, ALICE, "did:example:a1", "m1").await,
        queue(store, ALICE, "did:example:a1", "m2").await,
    ];
    let a2 = queue(store, ALICE, "did:example:a2", "m3").await;
    let b1 = queue(store, BOB, "did:example:b1", "m4").await;
    let alices = ["did:example:a1".to_string(), "did:example:a2".to_string()];

    // Bob's message is not among alice's recipients; an unknown id is not counted.
    let ids = [
        a1[0].id.clone(),
        a2.id.clone(),
        b1.id.clone(),
        "not-an-id".to_string(),
    ];
    assert_eq!(store.remove(&alices, &ids).await.unwrap(), 2);
    assert_eq!(waiting(store, "did:example:a1").await, ["m2"]);
    assert!(waiting(store, "did:example:a2").await.is_empty());
    assert_eq!(
        waiting(store, "did:example:b1").await,
        ["m4"],
        "bob's stays"
    );
    // Acknowledging again removes nothing more.
    assert_eq!(store.remove(&alices, &ids).await.unwrap(), 0);
    assert_eq!(store.queued_total().await.unwrap(), 2);
    assert_eq!(
        store
            .remove(
                &["did:example:b1".to_string()],
                std::slice::from_ref(&b1.id)
            )
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.count("did:example:b1").await.unwrap(), 0);
}

/// Messages received before the cutoff are dropped by `peek` for its recipient and by
/// `expire` for all, which returns how many it dropped.
pub async fn expiry_drops_old_messages_on_peek_and_by_the_sweep<S: MediatorStorage>(store: &S) {
    queue(store, ALICE, "did:example:a1", "m1").await;
    queue(store, ALICE, "did:example:a2", "m2").await;
    queue(store, BOB, "did:example:b1", "m3").await;
    assert_eq!(store.expire(0).await.unwrap(), 0, "nothing is that old");
    assert_eq!(store.queued_total().await.unwrap(), 3);
    let later = now() + 1;
    assert!(store
        .peek("did:example:a1", 10, later)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.count("did:example:a1").await.unwrap(),
        0,
        "dropped by the read"
    );
    assert_eq!(store.expire(later).await.unwrap(), 2, "a2's and b1's");
    assert_eq!(store.queued_total().await.unwrap(), 0);
    assert_eq!(store.expire(later).await.unwrap(), 0);
}

/// `queued_total` counts the messages in every queue, up and down.
pub async fn queued_total_counts_every_queue<S: MediatorStorage>(store: &S) {
    assert_eq!(store.queued_total().await.unwrap(), 0);
    let first = queue(store, ALICE, "did:example:a1", "m1").await;
    queue(store, ALICE, "did:example:a2", "m2").await;
    queue(store, BOB, "did:example:b1", "m3").await;
    assert_eq!(store.queued_total().await.unwrap(), 3);
    store
        .remove(&["did:example:a1".to_string()], &[first.id])
        .await
        .unwrap();
    assert_eq!(store.queued_total().await.unwrap(), 2);
}

/// A client's wake registration is kept for it alone; setting again returns the one replaced;
/// clearing returns it and leaves none; clearing what is not there is fine.
pub async fn a_wake_registration_is_set_replaced_and_cleared_per_client<S: MediatorStorage>(
    store: &S,
) {
    let first = WakeRegistration {
        service: PushService::Webhook,
        handle: "A".repeat(43),
    };
    let second = WakeRegistration {
        service: PushService::Apns,
        handle: "b_-".repeat(14) + "c",
    };
    assert_eq!(store.wake_of(ALICE).await.unwrap(), None);
    assert_eq!(store.set_wake(ALICE, Some(&first)).await.unwrap(), None);
    assert_eq!(store.wake_of(ALICE).await.unwrap(), Some(first.clone()));
    assert_eq!(store.wake_of(BOB).await.unwrap(), None, "another client");
    assert_eq!(
        store.set_wake(ALICE, Some(&second)).await.unwrap(),
        Some(first),
        "the registration replaced"
    );
    assert_eq!(store.wake_of(ALICE).await.unwrap(), Some(second.clone()));
    assert_eq!(store.set_wake(ALICE, None).await.unwrap(), Some(second));
    assert_eq!(store.wake_of(ALICE).await.unwrap(), None);
    assert_eq!(store.set_wake(ALICE, None).await.unwrap(), None);
}

//! What every invitation store does: an invitation stored under its short code is found by
//! that code and by its message id; a single-use invitation is used once, and a multi-use
//! one never. Written against `agent::InvitationStore`. Each function takes a fresh, empty store.

use agent::invitations::InvitationRecord;
use agent::InvitationStore;
use lanyard_protocol::didcomm::Message;
use lanyard_protocol::protocols::out_of_band::INVITATION;
use serde_json::json;

use super::now;

/// An OOB invitation record under `code`.
fn record(code: &str, single_use: bool) -> InvitationRecord {
    InvitationRecord {
        code: code.to_string(),
        message: Message::new(
            INVITATION,
            json!({ "goal_code": "mediate", "accept": ["didcomm/v2"] }),
        )
        .from("did:example:mediator"),
        label: Some(format!("invitation {code}")),
        single_use,
        used_at: None,
        created_at: now(),
    }
}

/// `put` then `by_code` and `by_id` read the same record.
pub async fn an_invitation_is_found_by_code_and_by_id<S: InvitationStore>(store: &S) {
    let first = record("code-one", false);
    let second = record("code-two", true);
    store.put(&first).await.unwrap();
    store.put(&second).await.unwrap();
    assert_eq!(
        store.by_code("code-one").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.by_code("code-two").await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(
        store.by_id(&first.message.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.by_id(&second.message.id).await.unwrap(), Some(second));
    // A code is not an id, nor an id a code.
    assert_eq!(store.by_id("code-one").await.unwrap(), None);
    assert_eq!(store.by_code(&first.message.id).await.unwrap(), None);
}

/// Nothing is found for what was never stored, and nothing unknown can be used.
pub async fn unknown_invitations_are_none<S: InvitationStore>(store: &S) {
    assert_eq!(store.by_code("no-such-code").await.unwrap(), None);
    assert_eq!(store.by_id("no-such-id").await.unwrap(), None);
    assert!(!store.use_once("no-such-id", now()).await.unwrap());
    assert_eq!(
        store.by_id("no-such-id").await.unwrap(),
        None,
        "nothing created"
    );
}

/// The first `use_once` of a single-use invitation uses it (recording when); every
/// later one is refused and keeps the first time.
pub async fn a_single_use_invitation_is_used_once<S: InvitationStore>(store: &S) {
    let once = record("once", true);
    store.put(&once).await.unwrap();
    let at = now();
    assert!(store.use_once(&once.message.id, at).await.unwrap());
    assert!(!store.use_once(&once.message.id, at + 5).await.unwrap());
    let read = store.by_code("once").await.unwrap().unwrap();
    assert_eq!(read.used_at, Some(at), "the first use is the one recorded");
    assert_eq!(store.by_id(&once.message.id).await.unwrap(), Some(read));
}

/// A multi-use invitation is never marked used.
pub async fn a_multi_use_invitation_is_never_used_up<S: InvitationStore>(store: &S) {
    let many = record("many", false);
    store.put(&many).await.unwrap();
    for _ in 0..3 {
        assert!(!store.use_once(&many.message.id, now()).await.unwrap());
    }
    assert_eq!(store.by_code("many").await.unwrap(), Some(many));
}

/// Putting a record again under its code replaces it.
pub async fn putting_again_replaces_the_record<S: InvitationStore>(store: &S) {
    let mut invitation = record("again", true);
    store.put(&invitation).await.unwrap();
    invitation.label = Some("renamed".into());
    store.put(&invitation).await.unwrap();
    assert_eq!(
        store
            .by_code("again")
            .await
            .unwrap()
            .unwrap()
            .label
            .as_deref(),
        Some("renamed")
    );
    assert_eq!(
        store.by_id(&invitation.message.id).await.unwrap(),
        Some(invitation)
    );
}

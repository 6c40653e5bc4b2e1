//! The console's accounts over any [`IssuerStorage`] (users, sessions, lockout): the same
//! behaviour on sled and PostgreSQL.

use std::time::Duration;

use agent::console::{Accounts, SessionToken, SignInPolicy};
use agent::issuer::store::IssuerStorage;
use agent::issuer::{IssuerError, Rate};

const PASSWORD: &str = "correct horse battery staple";
const ORG: &str = "0123456789abcdef01234567";

/// Accounts under `edit`ed test bounds (attempts unlimited in practice).
fn accounts(edit: impl FnOnce(&mut SignInPolicy)) -> Accounts {
    let mut policy = SignInPolicy {
        attempts: Rate {
            per_period: 1_000_000,
            period: Duration::from_secs(1),
            burst: 1_000_000,
        },
        ..SignInPolicy::default()
    };
    edit(&mut policy);
    Accounts::new(policy)
}

/// A user is added with a normalised email, found by any case of it, never added twice; a
/// short password or a bad email is refused naming the rule, adding nothing.
pub async fn a_user_is_added_once_and_found_by_any_case_of_its_email<S: IssuerStorage>(store: &S) {
    let accounts = accounts(|_| {});
    let user = accounts
        .add_user(store, ORG, " Ada@Example.COM ", PASSWORD)
        .await
        .unwrap();
    assert_eq!(user.email, "ada@example.com");
    assert_eq!(user.org_id, ORG);
    let found = accounts
        .user(store, "ADA@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, user);
    assert!(
        !format!("{found:?}").contains("argon2"),
        "Debug shows no hash"
    );
    let again = accounts
        .add_user(store, ORG, "ada@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(
        again.to_string(),
        "a console user with the email ada@example.com exists already"
    );
    let short = accounts
        .add_user(store, ORG, "bob@example.com", "short")
        .await
        .unwrap_err();
    assert_eq!(short.to_string(), "password must be at least 12 characters");
    let bad = accounts
        .add_user(store, ORG, "not an email", PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(bad.to_string(), "email must be a valid email address");
    assert!(accounts
        .user(store, "bob@example.com")
        .await
        .unwrap()
        .is_none());
}

/// Sign-in starts a session found by its token until sign-out; the store holds the token's
/// hash only.
pub async fn a_session_lives_from_sign_in_to_sign_out_stored_only_by_its_hash<S: IssuerStorage>(
    store: &S,
) {
    let accounts = accounts(|_| {});
    accounts
        .add_user(store, ORG, "ada@example.com", PASSWORD)
        .await
        .unwrap();
    let (session, token) = accounts
        .sign_in(store, "ada@example.com", PASSWORD)
        .await
        .unwrap();
    assert_eq!(session.org_id, ORG);
    assert_eq!(session.email, "ada@example.com");
    assert_eq!(
        accounts.session(store, &token).await.unwrap(),
        Some(session)
    );
    // The token is nowhere in the store: only its hash, as the key.
    let stored = store.scan("console_sessions", "", 0, 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, token.storage_key());
    assert_ne!(stored[0].0, token.expose());
    assert!(!String::from_utf8_lossy(&stored[0].1).contains(token.expose()));
    let stranger = SessionToken::generate();
    assert_eq!(accounts.session(store, &stranger).await.unwrap(), None);
    accounts.sign_out(store, &token).await.unwrap();
    assert_eq!(accounts.session(store, &token).await.unwrap(), None);
    assert_eq!(
        accounts
            .session_count(store, "ada@example.com")
            .await
            .unwrap(),
        0
    );
}

/// Failed sign-ins in a row lock the account (the right password is refused then); a success
/// before the limit clears the count; unknown emails store nothing.
pub async fn failed_sign_ins_lock_the_account_and_a_success_clears_the_count<S: IssuerStorage>(
    store: &S,
) {
    let accounts = accounts(|p| p.max_failures = 3);
    accounts
        .add_user(store, ORG, "ada@example.com", PASSWORD)
        .await
        .unwrap();
    // Two failures, then the right password: the count starts again.
    for _ in 0..2 {
        let wrong = accounts
            .sign_in(store, "ada@example.com", "wrong password here")
            .await
            .unwrap_err();
        assert_eq!(
            wrong,
            IssuerError::unauthorised("the email or the password is wrong")
        );
    }
    assert_eq!(
        accounts
            .user(store, "ada@example.com")
            .await
            .unwrap()
            .unwrap()
            .failures(),
        2
    );
    accounts
        .sign_in(store, "ada@example.com", PASSWORD)
        .await
        .unwrap();
    assert_eq!(
        accounts
            .user(store, "ada@example.com")
            .await
            .unwrap()
            .unwrap()
            .failures(),
        0
    );
    // Three in a row lock it: the third says so, and so does the right password after.
    for _ in 0..2 {
        accounts
            .sign_in(store, "ada@example.com", "wrong password here")
            .await
            .unwrap_err();
    }
    let third = accounts
        .sign_in(store, "ada@example.com", "wrong password here")
        .await
        .unwrap_err();
    assert!(matches!(third, IssuerError::RateLimited(_)), "{third}");
    assert!(
        third
            .to_string()
            .contains("it is locked; try again in 1 minute"),
        "{third}"
    );
    let right = accounts
        .sign_in(store, "ada@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert!(right.to_string().contains("it is locked"), "{right}");
    let user = accounts
        .user(store, "ada@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(user.locked_until_ms().is_some());
    // Unknown emails store nothing.
    for _ in 0..5 {
        accounts
            .sign_in(store, "nobody@example.com", PASSWORD)
            .await
            .unwrap_err();
    }
    assert!(accounts
        .user(store, "nobody@example.com")
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.count("console_users", "").await.unwrap(), 1);
}

/// Signing in beyond the cap ends the oldest sessions; a session past its lifetime is
/// refused and removed.
pub async fn a_user_holds_at_most_the_allowed_sessions_and_expired_ones_end<S: IssuerStorage>(
    store: &S,
) {
    let accounts = accounts(|p| p.max_sessions = 3);
    accounts
        .add_user(store, ORG, "ada@example.com", PASSWORD)
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for _ in 0..5 {
        let (_, token) = accounts
            .sign_in(store, "ada@example.com", PASSWORD)
            .await
            .unwrap();
        tokens.push(token);
    }
    assert_eq!(
        accounts
            .session_count(store, "ada@example.com")
            .await
            .unwrap(),
        3
    );
    assert_eq!(store.count("console_sessions", "").await.unwrap(), 3);
    let live = {
        let mut live = 0;
        for token in &tokens {
            live += usize::from(accounts.session(store, token).await.unwrap().is_some());
        }
        live
    };
    assert_eq!(live, 3);
    assert!(
        accounts.session(store, &tokens[4]).await.unwrap().is_some(),
        "the newest lives"
    );
    // A session that has run out is refused and removed.
    let brief = Accounts::new(SignInPolicy {
        session_ttl: Duration::ZERO,
        ..SignInPolicy::default()
    });
    let (_, token) = brief
        .sign_in(store, "ada@example.com", PASSWORD)
        .await
        .unwrap();
    assert_eq!(brief.session(store, &token).await.unwrap(), None);
    assert_eq!(
        store
            .get("console_sessions", &token.storage_key())
            .await
            .unwrap(),
        None
    );
}

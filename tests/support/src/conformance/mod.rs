//! Storage conformance suites, in the manner of matrix-rust-sdk's
//! `statestore_integration_tests!`: every behaviour a backend of a storage trait must have,
//! written once as generic async functions over the trait, and a macro per trait that
//! expands to one `#[tokio::test]` per function against a store made by an expression the
//! caller gives. The sled backends run them in `agent/tests/storage_conformance.rs`; a later
//! backend (PostgreSQL) invokes the same macros with its own store.
//!
//! The expression is evaluated once per test inside an `async` test body (so it may
//! `.await`) and must give a pair `(guard, store)`: `guard` is kept alive for the test (a
//! temporary folder, a database schema to drop) and `store` is what is tested. Names it uses
//! are resolved in the module that invokes the macro.

pub mod console;
pub mod invitations;
pub mod issuer;
pub mod mediator;
pub mod push;

/// Seconds since the epoch: the clock the stores stamp messages with.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Expands to the `MediatorStorage` conformance suite ([`mediator`]) against the store
/// `$open` makes (see the [module docs](crate::conformance)):
/// `lanyard_test_support::mediator_storage_tests!(sled_mediator());`
#[macro_export]
macro_rules! mediator_storage_tests {
    ($open:expr) => {
        $crate::__conformance_tests!(
            mediator_storage_conformance,
            mediator,
            $open,
            [
                grants_are_recorded_per_client,
                recipients_are_added_removed_and_listed_per_client,
                a_recipient_belongs_to_one_client,
                client_of_names_the_owner,
                enqueue_keeps_to_the_recipient_quota,
                enqueue_keeps_to_the_client_quota,
                enqueue_keeps_to_the_store_quota,
                a_forward_is_queued_once_per_recipient,
                peek_hands_out_the_oldest_first_up_to_the_limit,
                peek_after_hands_out_only_what_was_queued_later,
                remove_deletes_acknowledged_messages_of_the_named_recipients_only,
                expiry_drops_old_messages_on_peek_and_by_the_sweep,
                queued_total_counts_every_queue,
                a_wake_registration_is_set_replaced_and_cleared_per_client,
            ]
        );
    };
}

/// Expands to the invitation store conformance suite ([`invitations`]) against the store
/// `$open` makes (see the [module docs](crate::conformance)):
/// `lanyard_test_support::invitation_store_tests!(sled_invitations());`
#[macro_export]
macro_rules! invitation_store_tests {
    ($open:expr) => {
        $crate::__conformance_tests!(
            invitation_store_conformance,
            invitations,
            $open,
            [
                an_invitation_is_found_by_code_and_by_id,
                unknown_invitations_are_none,
                a_single_use_invitation_is_used_once,
                a_multi_use_invitation_is_never_used_up,
                putting_again_replaces_the_record,
            ]
        );
    };
}

/// Expands to the `IssuerStorage` conformance suite ([`issuer`]) against the store `$open`
/// makes (see the [module docs](crate::conformance)):
/// `lanyard_test_support::issuer_storage_tests!(sled_issuer());`
#[macro_export]
macro_rules! issuer_storage_tests {
    ($open:expr) => {
        $crate::__conformance_tests!(
            issuer_storage_conformance,
            issuer,
            $open,
            [
                get_reads_what_a_batch_put,
                a_batch_applies_whole_or_not_at_all,
                expect_equals_compares_the_stored_value,
                deletes_in_a_batch_remove_records,
                collections_do_not_see_each_other,
                scan_pages_by_prefix_in_key_order,
                count_counts_by_prefix,
                scan_after_pages_from_a_cursor,
                keys_order_and_match_by_their_bytes,
                email_templates_are_kept_per_organisation,
            ]
        );
    };
}

/// Expands to the console accounts' conformance suite ([`console`]: users, sessions,
/// lockout) over the issuer store `$open` makes (see the [module docs](crate::conformance)):
/// `lanyard_test_support::console_accounts_tests!(sled_issuer());`
#[macro_export]
macro_rules! console_accounts_tests {
    ($open:expr) => {
        $crate::__conformance_tests!(
            console_accounts_conformance,
            console,
            $open,
            [
                a_user_is_added_once_and_found_by_any_case_of_its_email,
                a_session_lives_from_sign_in_to_sign_out_stored_only_by_its_hash,
                failed_sign_ins_lock_the_account_and_a_success_clears_the_count,
                a_user_holds_at_most_the_allowed_sessions_and_expired_ones_end,
            ]
        );
    };
}

/// Expands to the push store conformance suite ([`push`]) against the store `$open` makes
/// (see the [module docs](crate::conformance)):
/// `lanyard_test_support::push_store_tests!(sled_push());`
#[macro_export]
macro_rules! push_store_tests {
    ($open:expr) => {
        $crate::__conformance_tests!(
            push_store_conformance,
            push,
            $open,
            [
                a_device_is_stored_read_and_removed,
                unknown_handles_are_none,
                the_device_cap_is_kept,
                a_wake_is_claimed_once_per_window,
                a_new_put_or_a_remove_forgets_the_last_wake,
                concurrent_claims_have_one_winner,
            ]
        );
    };
}

/// One `#[tokio::test]` per suite function, in a module of its own.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($module:ident, $suite:ident, $open:expr, [$($test:ident),* $(,)?]) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            $(
                #[::tokio::test]
                async fn $test() {
                    let (_guard, store) = $open;
                    $crate::conformance::$suite::$test(&store).await;
                }
            )*
        }
    };
}

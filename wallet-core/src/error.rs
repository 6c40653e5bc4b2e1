//! The wallet's one error type: what went wrong, in words an app can show a customer, and
//! whether trying again later can help ([`WalletError::is_transient`]). The FFI maps it to
//! the apps' error through these public variants and methods only.

use lanyard_protocol::didcomm::DidCommError;
use lanyard_protocol::net::NetError;
use lanyard_protocol::store::StoreError;

/// What went wrong, in words an app can show a customer.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The text is not an invitation the wallet can use (unreadable, of another protocol, or
    /// naming no endpoint).
    #[error("This is not an invitation Lanyard can use: {0}")]
    InvalidInvitation(String),
    /// The invitation's expiry (as shown) has passed.
    #[error("This invitation expired at {0}.")]
    InvitationExpired(String),
    /// The inviter says its single-use invitation was already used.
    #[error("This invitation was already used.")]
    InvitationUsed,
    /// A peer or the mediator did not answer (refused connection, timeout, unresolvable
    /// name): transient, worth trying again later.
    #[error("Cannot reach {0}. Check the connection and try again.")]
    Unreachable(String),
    /// An address the wallet's network policy does not let it fetch (a private or loopback
    /// host, plain http, a redirect, an oversized answer).
    #[error("{0}")]
    NotAllowed(NetError),
    /// A peer (the first field) answered, but refused or answered something unusable (the
    /// second field says what).
    #[error("{0} refused: {1}")]
    Refused(String, String),
    /// No record of this kind has this id.
    #[error("No {what} has the id {id}.")]
    NotFound {
        /// The kind of record (`offer`, `credential`, ...).
        what: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The record exists, but its state does not allow the step.
    #[error("The {what} {id} cannot be used now: {why}")]
    WrongState {
        /// The kind of record.
        what: &'static str,
        /// The record's id.
        id: String,
        /// Why the step is not possible now.
        why: String,
    },
    /// A received credential did not verify, or does not match what was offered.
    #[error("The credential was refused: {0}")]
    BadCredential(String),
    /// The store could not be opened, read or written (a wrong passphrase is one of these;
    /// see [`WalletError::is_transient`] for the store held by another process).
    #[error("The wallet's storage failed: {0}")]
    Storage(StoreError),
    /// The platform key protector failed, or unwrapped a key that does not open this store.
    #[error("The wallet's storage failed: {0}")]
    KeyProtector(StoreError),
    /// A DIDComm message could not be read or written.
    #[error("A message could not be read or written: {0}")]
    Message(#[from] DidCommError),
}

impl WalletError {
    /// Whether the same call may succeed if tried again later, unchanged: a peer or the
    /// mediator that could not be reached (no connection, a timeout, a name that did not
    /// resolve) or the store held by another process. Everything else is permanent: trying
    /// again gives the same answer until the input or the wallet's state changes.
    pub fn is_transient(&self) -> bool {
        match self {
            WalletError::Unreachable(_) => true,
            WalletError::Storage(error) => store_is_busy(error),
            _ => false,
        }
    }
}

/// Whether the store's database is locked by another process (or another open of it in this
/// one). sled reports the held lock as an I/O error that the store keeps as text; this is the
/// text `lanyard_protocol::store::open_sled` waits on before it gives up.
fn store_is_busy(error: &StoreError) -> bool {
    matches!(error, StoreError::Io(reason)
        if reason.contains("could not acquire lock") || reason.contains("WouldBlock"))
}

impl From<StoreError> for WalletError {
    /// A key protector's failure gets its own variant (the app asks the customer to unlock
    /// the device again); every other store error is [`WalletError::Storage`].
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::ProtectorFailed(_) | StoreError::ProtectorWrongKey => {
                WalletError::KeyProtector(error)
            }
            other => WalletError::Storage(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Wallet;
    use lanyard_protocol::store::{KeyProtector, ProtectorError, Unlock};
    use std::sync::Arc;

    /// A platform keystore that wraps by copying, or refuses.
    struct Keystore {
        refuse: bool,
    }

    impl KeyProtector for Keystore {
        fn wrap(&self, data_key: &[u8]) -> Result<Vec<u8>, ProtectorError> {
            Ok(data_key.to_vec())
        }
        fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>, ProtectorError> {
            if self.refuse {
                return Err(ProtectorError("the device is locked".into()));
            }
            Ok(wrapped.to_vec())
        }
    }

    fn protector(refuse: bool) -> Unlock {
        Unlock::Protector(Arc::new(Keystore { refuse }))
    }

    #[test]
    fn a_store_held_by_another_open_is_transient() {
        let dir = tempfile::tempdir().unwrap();
        let _held = Wallet::open(dir.path(), protector(false)).unwrap();
        let error = Wallet::open(dir.path(), protector(false)).unwrap_err();
        assert!(
            matches!(error, WalletError::Storage(StoreError::Io(ref reason))
                if reason.contains("could not acquire lock")),
            "{error:?}"
        );
        assert!(error.is_transient(), "{error}");
        assert!(error.to_string().starts_with("The wallet's storage failed"));
    }

    #[test]
    fn a_refusing_key_protector_is_its_own_permanent_error() {
        let dir = tempfile::tempdir().unwrap();
        drop(Wallet::open(dir.path(), protector(false)).unwrap());
        let error = Wallet::open(dir.path(), protector(true)).unwrap_err();
        assert!(
            matches!(error, WalletError::KeyProtector(StoreError::ProtectorFailed(ref m))
                if m.contains("the device is locked")),
            "{error:?}"
        );
        assert!(!error.is_transient());
        // The text is the one the apps showed before the variant existed.
        assert_eq!(
            error.to_string(),
            "The wallet's storage failed: the platform key protector failed: the device is locked"
        );
    }

    #[test]
    fn a_store_opened_the_wrong_way_is_a_permanent_storage_error() {
        let dir = tempfile::tempdir().unwrap();
        drop(Wallet::open(dir.path(), protector(false)).unwrap());
        let error = Wallet::open(dir.path(), Unlock::passphrase("a passphrase")).unwrap_err();
        assert!(
            matches!(
                error,
                WalletError::Storage(StoreError::UnlockMismatch { .. })
            ),
            "{error:?}"
        );
        assert!(!error.is_transient());
    }

    #[test]
    fn only_what_a_retry_can_fix_is_transient() {
        for transient in [
            NetError::Timeout {
                url: "https://agent.example/didcomm".into(),
                seconds: 10,
            },
            NetError::Unreachable {
                url: "https://agent.example/didcomm".into(),
                reason: "connection refused".into(),
            },
            NetError::Dns {
                host: "agent.example".into(),
                reason: "no such host".into(),
            },
        ] {
            let error = crate::net_error(transient);
            assert!(matches!(error, WalletError::Unreachable(_)), "{error:?}");
            assert!(error.is_transient(), "{error:?}");
        }
        for permanent in [
            WalletError::InvitationUsed,
            WalletError::Refused("https://agent.example".into(), "no answer".into()),
            crate::net_error(NetError::PlainHttp {
                url: "http://agent.example".into(),
            }),
            WalletError::Storage(StoreError::WrongPassphrase),
            WalletError::Storage(StoreError::Io("disk full".into())),
        ] {
            assert!(!permanent.is_transient(), "{permanent:?}");
        }
    }
}

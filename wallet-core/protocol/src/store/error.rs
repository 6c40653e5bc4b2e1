//! What can go wrong with the encrypted store. Every message names what was wrong (the tree,
//! the header file and field, the Argon2id parameter) and never holds a key, a passphrase or
//! a record's value.

/// A platform keystore failure (iOS Keychain, Android Keystore), with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ProtectorError(pub String);

/// What can go wrong with the store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The passphrase's key does not open the wrapped data key.
    #[error("the passphrase does not unlock this store")]
    WrongPassphrase,
    /// The platform key protector returned an error.
    #[error("the platform key protector failed: {0}")]
    ProtectorFailed(String),
    /// The platform key protector unwrapped something that is not this store's data key.
    #[error("the platform key protector returned a key that does not unlock this store")]
    ProtectorWrongKey,
    /// The store is protected one way and was opened the other way.
    #[error("this store is protected by {store}, but it was opened with {given}")]
    UnlockMismatch {
        /// How the store is protected (`a passphrase`, `the platform key protector`).
        store: &'static str,
        /// How it was opened.
        given: &'static str,
    },
    /// The header file is missing, unreadable or damaged.
    #[error("store header {path}: {reason}")]
    BadHeader {
        /// The header file.
        path: String,
        /// What is wrong (the field, or the I/O error).
        reason: String,
    },
    /// A record does not authenticate, or it sits under another record's place.
    #[error("a record in tree {tree:?} was swapped or corrupted: {reason}")]
    Corrupted {
        /// The tree.
        tree: String,
        /// Which check failed.
        reason: &'static str,
    },
    /// A tree name or record id the store does not accept.
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// `tree name` or `record id`.
        what: &'static str,
        /// The name, shortened.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Argon2id parameters below the floor or above the ceiling the store accepts.
    #[error("Argon2id parameters refused: {0}")]
    InvalidArgon2Params(String),
    /// A value too large to seal in one record.
    #[error("a value of {len} bytes for tree {tree:?} is too large to seal")]
    TooLarge {
        /// The tree.
        tree: String,
        /// The value's length in bytes.
        len: usize,
    },
    /// A value could not be written as JSON.
    #[error("a value for tree {tree:?} cannot be written as JSON: {reason}")]
    Encode {
        /// The tree.
        tree: String,
        /// The serializer's reason.
        reason: String,
    },
    /// A record's value is not what the caller expected (JSON of another shape, a bad key).
    #[error("a record in tree {tree:?} does not hold the expected data: {reason}")]
    Decode {
        /// The tree.
        tree: String,
        /// What did not read (the record and the deserializer's reason).
        reason: String,
    },
    /// The file system or the database failed.
    #[error("the store's storage failed: {0}")]
    Io(String),
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        StoreError::Io(format!("database: {error}"))
    }
}

//! The issuer's domain error: what went wrong, in words that name it. The HTTP API maps it to
//! its envelope once (`api::ApiError`), the DIDComm side to a refusal once (`inbound.rs`).

use super::store::BatchError;
use crate::storage::StorageError;

/// Why an issuer operation did not happen. Each message names what was wrong; nothing was
/// changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    /// The request as a whole cannot be read or acted on.
    #[error("{0}")]
    BadRequest(String),
    /// One field of the request is wrong: the message starts with the field's name.
    #[error("{field} {problem}")]
    InvalidField {
        /// The field's name (a path such as `emailTemplate.subject` for a nested one).
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// The caller is not who it must be (a missing or wrong API key).
    #[error("{0}")]
    Unauthenticated(String),
    /// What the request names does not exist (or is another organisation's).
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts what is stored (a name taken, a record changed meanwhile).
    #[error("{0}")]
    Conflict(String),
    /// The request is well formed but cannot be carried out as asked.
    #[error("{0}")]
    Unprocessable(String),
    /// Over a rate limit: the message names the limit and when to try again.
    #[error("{0}")]
    RateLimited(String),
    /// The agent failed (storage, keys, a record it cannot read); the message says where.
    #[error("{0}")]
    Internal(String),
}

impl IssuerError {
    /// The request cannot be read or acted on, as `message` says.
    pub fn bad_request(message: &str) -> IssuerError {
        IssuerError::BadRequest(message.to_string())
    }

    /// A field of the request is wrong: the message starts with the field's name.
    pub fn field(field: &str, problem: &str) -> IssuerError {
        IssuerError::InvalidField {
            field: field.to_string(),
            problem: problem.to_string(),
        }
    }

    /// The caller is not authenticated, as `message` says.
    pub fn unauthorised(message: &str) -> IssuerError {
        IssuerError::Unauthenticated(message.to_string())
    }

    /// What the request names does not exist.
    pub fn not_found(message: &str) -> IssuerError {
        IssuerError::NotFound(message.to_string())
    }

    /// The request contradicts what is stored.
    pub fn conflict(message: &str) -> IssuerError {
        IssuerError::Conflict(message.to_string())
    }

    /// The request cannot be carried out as asked.
    pub fn unprocessable(message: &str) -> IssuerError {
        IssuerError::Unprocessable(message.to_string())
    }

    /// Over a rate limit: the message names the limit and when to try again.
    pub fn too_many_requests(message: &str) -> IssuerError {
        IssuerError::RateLimited(message.to_string())
    }

    /// The agent failed, as `message` says.
    pub fn internal(message: &str) -> IssuerError {
        IssuerError::Internal(message.to_string())
    }

    /// The records a change was made from changed before it was applied (another request, or
    /// another agent on the same store, changed them): nothing was written; trying again
    /// reads them afresh.
    pub(crate) fn changed_meanwhile() -> IssuerError {
        IssuerError::Conflict(CHANGED_MEANWHILE.to_string())
    }

    /// Whether this is [`IssuerError::changed_meanwhile`] (a race lost, worth trying again),
    /// not a conflict with what is stored.
    pub(crate) fn is_changed_meanwhile(&self) -> bool {
        matches!(self, IssuerError::Conflict(m) if m == CHANGED_MEANWHILE)
    }

    /// The same error about a part of a larger field: `prefix` goes before the field's name
    /// (or before the message when it names no field).
    pub(crate) fn within(self, prefix: &str) -> IssuerError {
        match self {
            IssuerError::InvalidField { field, problem } => IssuerError::InvalidField {
                field: format!("{prefix}{field}"),
                problem,
            },
            IssuerError::BadRequest(m) => IssuerError::BadRequest(format!("{prefix}{m}")),
            IssuerError::Unauthenticated(m) => IssuerError::Unauthenticated(format!("{prefix}{m}")),
            IssuerError::NotFound(m) => IssuerError::NotFound(format!("{prefix}{m}")),
            IssuerError::Conflict(m) => IssuerError::Conflict(format!("{prefix}{m}")),
            IssuerError::Unprocessable(m) => IssuerError::Unprocessable(format!("{prefix}{m}")),
            IssuerError::RateLimited(m) => IssuerError::RateLimited(format!("{prefix}{m}")),
            IssuerError::Internal(m) => IssuerError::Internal(format!("{prefix}{m}")),
        }
    }
}

impl From<StorageError> for IssuerError {
    fn from(error: StorageError) -> Self {
        tracing::error!(%error, "issuer storage");
        IssuerError::internal("storage failed; nothing was changed")
    }
}

/// How often one request's change is made again after losing to concurrent ones.
pub(crate) const MAX_RACES: usize = 3;

/// The words of [`IssuerError::changed_meanwhile`].
const CHANGED_MEANWHILE: &str = "the record changed while this request ran; try again";

impl From<BatchError> for IssuerError {
    fn from(error: BatchError) -> Self {
        match error {
            BatchError::Conflict => IssuerError::changed_meanwhile(),
            BatchError::Storage(error) => error.into(),
        }
    }
}

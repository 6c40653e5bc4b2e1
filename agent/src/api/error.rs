//! The API's error envelope, `{"error": {"code", "message"}}` with an HTTP status: the one
//! place an [`IssuerError`] becomes an HTTP answer.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::issuer::IssuerError;

/// An error the API answers with: an HTTP status, a stable code and a message that names what
/// was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code callers branch on (`invalid_field`, `not_found`...).
    pub code: &'static str,
    /// What was wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// A field of the request is wrong: the message starts with the field's name.
    pub fn field(field: &str, problem: &str) -> ApiError {
        IssuerError::field(field, problem).into()
    }

    /// The request cannot be read or acted on.
    pub fn bad_request(message: &str) -> ApiError {
        IssuerError::bad_request(message).into()
    }

    /// The caller is not authenticated.
    pub fn unauthorised(message: &str) -> ApiError {
        IssuerError::unauthorised(message).into()
    }

    /// What the request names does not exist.
    pub fn not_found(message: &str) -> ApiError {
        IssuerError::not_found(message).into()
    }

    /// The body is not of a media type the route reads.
    pub fn unsupported_media_type(message: String) -> ApiError {
        ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message,
        }
    }
}

impl From<IssuerError> for ApiError {
    fn from(error: IssuerError) -> Self {
        let (status, code) = match &error {
            IssuerError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            IssuerError::InvalidField { .. } => (StatusCode::BAD_REQUEST, "invalid_field"),
            IssuerError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthorised"),
            IssuerError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            IssuerError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            IssuerError::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unprocessable"),
            IssuerError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            IssuerError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError {
            status,
            code,
            message: error.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status;
        if status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "API error");
        } else {
            // The message may quote what the caller sent (an email address, a phone number):
            // at info level only the code goes to the log.
            tracing::info!(%status, code = self.code, "API request refused");
            tracing::debug!(message = %self.message, "API request refused");
        }
        (
            status,
            Json(json!({ "error": { "code": self.code, "message": self.message } })),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_issuer_error_has_its_status_and_code() {
        for (error, status, code) in [
            (IssuerError::bad_request("x"), 400, "bad_request"),
            (
                IssuerError::field("name", "is required"),
                400,
                "invalid_field",
            ),
            (IssuerError::unauthorised("x"), 401, "unauthorised"),
            (IssuerError::not_found("x"), 404, "not_found"),
            (IssuerError::conflict("x"), 409, "conflict"),
            (IssuerError::unprocessable("x"), 422, "unprocessable"),
            (IssuerError::too_many_requests("x"), 429, "rate_limited"),
            (IssuerError::internal("x"), 500, "internal"),
        ] {
            let message = error.to_string();
            let api = ApiError::from(error);
            assert_eq!((api.status.as_u16(), api.code), (status, code));
            assert_eq!(api.message, message);
        }
        assert_eq!(
            ApiError::field("name", "is required").message,
            "name is required"
        );
    }
}

//! Who a request is from: an organisation by its `x-api-key`, or the administrator by the
//! admin bearer token (every `/admin/*` route).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use super::{ApiError, ApiState};
use crate::admin::AdminToken;
use crate::issuer::Org;

/// The organisation whose `x-api-key` came with the request (401 otherwise).
pub struct Authenticated(pub Org);

impl FromRequestParts<Arc<ApiState>> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get("x-api-key")
            .map(|v| v.to_str().unwrap_or("\u{0}"));
        Ok(Authenticated(state.issuer.authenticate(key).await?))
    }
}

/// A request carrying `Authorization: Bearer <the admin token>`, compared in constant time
/// (401 otherwise). Every `/admin/*` route takes it; any router state the [`AdminToken`] can
/// be had from works.
pub struct Admin;

impl<S: Send + Sync> FromRequestParts<S> for Admin
where
    AdminToken: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if AdminToken::from_ref(state).authorises(&parts.headers) {
            Ok(Admin)
        } else {
            Err(ApiError::unauthorised(
                "the admin bearer token is missing or wrong",
            ))
        }
    }
}

impl FromRef<Arc<ApiState>> for AdminToken {
    fn from_ref(state: &Arc<ApiState>) -> AdminToken {
        state.admin_token.clone()
    }
}

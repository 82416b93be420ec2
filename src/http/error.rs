//! The one place where failures become HTTP answers. Internal errors are
//! logged once here and never shown to the caller.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, forged or stale signature.
    #[error("unauthorized")]
    Unauthorized,
    /// A body we cannot parse.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Something of ours failed.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "invalid signature").into_response(),
            Self::BadRequest(why) => {
                tracing::info!(%why, "bad request");
                (StatusCode::BAD_REQUEST, "malformed request").into_response()
            }
            Self::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
            }
        }
    }
}

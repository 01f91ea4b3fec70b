//! The one error answer of the REST API: a status and `{"error": "..."}`. A failure of a kind
//! (`proto::error::Error`: knowledge down, bad input, not found, a conflict) gets the status its
//! kind maps to in `proto::error` — knowledge down is 503 at every door; a request the HTTP layer
//! refuses (too large, not JSON, the wrong shape) keeps the status axum gives it (413, 415, 422).

use axum::Json;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use proto::error::Error;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for people: which value, which service.
    pub error: String,
}

/// A refused or failed request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// Well-formed JSON of the wrong shape: an array for an object, a field that does not exist.
    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: message.into(),
        }
    }

    /// A request that is not JSON at all.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: message.into(),
        }
    }

    /// The monitored database (not one of our services) did not answer: the gateway stood in
    /// front of it as a proxy would.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_GATEWAY,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let status = error.kind().http_status();
        if status.is_server_error() {
            tracing::warn!(%error, status = status.as_u16(), "request failed");
        }
        Self {
            status,
            message: error.message().to_owned(),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        Self {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use proto::error::ErrorKind;

    use super::*;

    #[test]
    fn each_kind_answers_with_the_status_proto_maps_it_to() {
        for (kind, status) in [
            (ErrorKind::InvalidInput, 400),
            (ErrorKind::NotFound, 404),
            (ErrorKind::Conflict, 409),
            (ErrorKind::Unavailable, 503),
            (ErrorKind::Internal, 500),
        ] {
            let error = ApiError::from(Error::new(kind, "x"));
            assert_eq!(error.status().as_u16(), status, "{kind:?}");
        }
        let down = Error::from_status("ListActions", tonic::Status::unavailable("refused"))
            .context("knowledge");
        let error = ApiError::from(down);
        assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.message(), "knowledge: ListActions: refused");
    }
}

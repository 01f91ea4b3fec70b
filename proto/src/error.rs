//! One error model for every service: a failure has a kind, mapped once to a gRPC code and once to
//! an HTTP status, a message for people, and its source kept for logs.
//!
//! Services define `thiserror` types per module and convert them into [`Error`] at their doors
//! (gRPC handlers, HTTP handlers, NATS consumers); a `tonic::Status` from a peer converts back with
//! its kind, so "knowledge is down" stays UNAVAILABLE / 503 through every hop.

use std::fmt;

use tonic::Code;
use tonic::codegen::http::StatusCode;

/// What went wrong, as the caller needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or names something invalid: fix the request.
    InvalidInput,
    NotFound,
    /// The request is valid but the state does not allow it (already approved, not rollbackable).
    Conflict,
    Unauthenticated,
    PermissionDenied,
    /// A dependency (knowledge, Redis, NATS, the database) cannot be reached: try again later.
    Unavailable,
    /// A dependency did not answer within its deadline: try again later.
    Timeout,
    /// Not built.
    Unimplemented,
    /// A fault of ours or the host's (a failed `/dev/urandom`, a bug).
    Internal,
}

impl ErrorKind {
    pub fn grpc_code(self) -> Code {
        match self {
            Self::InvalidInput => Code::InvalidArgument,
            Self::NotFound => Code::NotFound,
            Self::Conflict => Code::FailedPrecondition,
            Self::Unauthenticated => Code::Unauthenticated,
            Self::PermissionDenied => Code::PermissionDenied,
            Self::Unavailable => Code::Unavailable,
            Self::Timeout => Code::DeadlineExceeded,
            Self::Unimplemented => Code::Unimplemented,
            Self::Internal => Code::Internal,
        }
    }

    pub fn http_status(self) -> StatusCode {
        match self {
            Self::InvalidInput => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::PermissionDenied => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The kind a peer's gRPC code stands for.
    pub fn from_grpc(code: Code) -> Self {
        match code {
            Code::InvalidArgument | Code::OutOfRange => Self::InvalidInput,
            Code::NotFound => Self::NotFound,
            Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => Self::Conflict,
            Code::Unauthenticated => Self::Unauthenticated,
            Code::PermissionDenied => Self::PermissionDenied,
            Code::Unavailable | Code::ResourceExhausted | Code::Cancelled => Self::Unavailable,
            Code::DeadlineExceeded => Self::Timeout,
            Code::Unimplemented => Self::Unimplemented,
            Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => Self::Internal,
        }
    }

    /// Worth trying again later, unchanged (a NATS message is redelivered, not dropped).
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Unavailable | Self::Timeout)
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure as it crosses a service's door.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Source>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl Into<Source>,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(source.into()),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// A peer's answer: its code gives the kind, its message is kept after `call`.
    pub fn from_status(call: &str, status: tonic::Status) -> Self {
        let kind = ErrorKind::from_grpc(status.code());
        let message = format!("{call}: {}", status.message());
        Self::with_source(kind, message, status)
    }

    /// A call that did not answer within `deadline`.
    pub fn timed_out(call: &str, deadline: std::time::Duration) -> Self {
        Self::new(
            ErrorKind::Timeout,
            format!("{call}: no answer within {} ms", deadline.as_millis()),
        )
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error, its message prefixed with what was being done.
    pub fn context(mut self, doing: impl fmt::Display) -> Self {
        self.message = format!("{doing}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl From<Error> for tonic::Status {
    fn from(error: Error) -> Self {
        tonic::Status::new(error.kind.grpc_code(), error.message)
    }
}

impl From<crate::status::UnknownWord> for Error {
    fn from(word: crate::status::UnknownWord) -> Self {
        Self::with_source(ErrorKind::InvalidInput, word.to_string(), word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_that_is_down_stays_unavailable_through_every_door() {
        let status = tonic::Status::unavailable("connection refused");
        let error = Error::from_status("GetAction", status);
        assert_eq!(error.kind(), ErrorKind::Unavailable);
        assert_eq!(error.kind().http_status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(error.kind().is_transient());
        assert!(
            std::error::Error::source(&error).is_some(),
            "the source is kept"
        );
        let back: tonic::Status = error.context("approving act-1").into();
        assert_eq!(back.code(), Code::Unavailable);
        assert_eq!(
            back.message(),
            "approving act-1: GetAction: connection refused"
        );
    }

    #[test]
    fn every_kind_round_trips_through_its_grpc_code() {
        for kind in [
            ErrorKind::InvalidInput,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Unauthenticated,
            ErrorKind::PermissionDenied,
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::Unimplemented,
            ErrorKind::Internal,
        ] {
            assert_eq!(ErrorKind::from_grpc(kind.grpc_code()), kind);
        }
    }

    #[test]
    fn bad_input_is_400_and_a_host_fault_500() {
        assert_eq!(
            ErrorKind::InvalidInput.http_status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            ErrorKind::Internal.http_status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let word: Error = "finished"
            .parse::<crate::status::ActionStatus>()
            .unwrap_err()
            .into();
        assert_eq!(word.kind(), ErrorKind::InvalidInput);
    }
}

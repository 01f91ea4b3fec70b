//! What can go wrong in the knowledge service, and how each failure reaches a gRPC client.

use proto::error::ErrorKind;
use tonic::Status;

use crate::crypto::CryptoError;

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    /// The request is malformed; the message says which field and why.
    #[error("{0}")]
    Invalid(String),
    #[error("redis is unreachable: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("stored record {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl KnowledgeError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

impl KnowledgeError {
    /// What the caller needs to know: bad input, try again later, or our fault.
    pub fn kind(&self) -> ErrorKind {
        match self {
            KnowledgeError::Invalid(_) => ErrorKind::InvalidInput,
            KnowledgeError::Redis(_) => ErrorKind::Unavailable,
            KnowledgeError::Corrupt { .. } => ErrorKind::Internal,
            // A record sealed with another key: the deployment must be given the right key.
            KnowledgeError::Crypto(_) => ErrorKind::Conflict,
        }
    }
}

impl From<KnowledgeError> for Status {
    fn from(error: KnowledgeError) -> Self {
        Status::new(error.kind().grpc_code(), error.to_string())
    }
}

//! What can go wrong in the knowledge service, and how each failure reaches a gRPC client.

use tonic::{Code, Status};

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

impl From<KnowledgeError> for Status {
    fn from(error: KnowledgeError) -> Self {
        let code = match &error {
            KnowledgeError::Invalid(_) => Code::InvalidArgument,
            KnowledgeError::Redis(_) => Code::Unavailable,
            KnowledgeError::Corrupt { .. } => Code::DataLoss,
            KnowledgeError::Crypto(_) => Code::FailedPrecondition,
        };
        Status::new(code, error.to_string())
    }
}

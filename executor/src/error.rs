//! The executor's errors: why an action failed ([`ActionError`]), why the watched database could
//! not be reached ([`DatabaseError`]), and why a request about an action was refused
//! ([`EngineError`]). Each keeps its source and has a kind; the doors (gRPC, HTTP, the NATS
//! consumer) turn them into `proto::error::Error`, so knowledge being down is UNAVAILABLE / 503,
//! a bad request INVALID_ARGUMENT / 400 and a fault of the host INTERNAL / 500.

use proto::error::{Error, ErrorKind};

use crate::actions::docker::api::ApiError;

/// Why an action, or one step of it, failed. The message is what is stored with the action.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// What the detection or the stored record carries cannot be acted on.
    #[error("{0}")]
    Invalid(String),
    /// The world does not allow it now: the table is gone, the session is protected, an index
    /// of that name is not ours, a deployment cannot reach its database.
    #[error("{0}")]
    Refused(String),
    /// A statement against the watched database failed (`doing` may be empty).
    #[error("{}", sql_message(.doing, .source))]
    Sql {
        doing: String,
        #[source]
        source: sqlx::Error,
    },
    /// The watched database cannot be reached (or is not registered).
    #[error(transparent)]
    Database(#[from] DatabaseError),
    /// The host failed us: a file, a process, `/dev/urandom`.
    #[error("{doing}: {source}")]
    Host {
        doing: String,
        #[source]
        source: std::io::Error,
    },
    /// A helper process did not do what it should (start, stop, answer).
    #[error("{0}")]
    Helper(String),
    /// The Docker engine refused or failed a call.
    #[error(transparent)]
    Docker(#[from] ApiError),
    /// The action did not finish within its time limit.
    #[error("did not finish within ACTION_TIMEOUT_SECONDS ({0} s)")]
    TimedOut(u64),
    /// The executor is shutting down and stopped the action before it finished.
    #[error("cancelled by shutdown: {0}")]
    Cancelled(String),
}

fn sql_message(doing: &str, source: &sqlx::Error) -> String {
    if doing.is_empty() {
        describe(source)
    } else {
        format!("{doing}: {}", describe(source))
    }
}

impl From<sqlx::Error> for ActionError {
    fn from(source: sqlx::Error) -> Self {
        Self::Sql {
            doing: String::new(),
            source,
        }
    }
}

impl ActionError {
    /// A statement that failed, named.
    pub fn sql(doing: impl Into<String>, source: sqlx::Error) -> Self {
        Self::Sql {
            doing: doing.into(),
            source,
        }
    }

    pub fn host(doing: impl Into<String>, source: std::io::Error) -> Self {
        Self::Host {
            doing: doing.into(),
            source,
        }
    }

    /// What the caller of a request that ran into this failure should make of it.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid(_) => ErrorKind::InvalidInput,
            Self::Refused(_) | Self::Helper(_) | Self::Docker(_) | Self::Cancelled(_) => {
                ErrorKind::Conflict
            }
            Self::Sql { source, .. } => sql_kind(source),
            Self::Database(e) => e.kind(),
            Self::Host { .. } => ErrorKind::Internal,
            Self::TimedOut(_) => ErrorKind::Timeout,
        }
    }
}

/// A statement the server refused is a conflict with the database's state (a privilege, a lock,
/// a constraint); a connection that failed, an unavailable database.
fn sql_kind(error: &sqlx::Error) -> ErrorKind {
    match error {
        sqlx::Error::Database(_) | sqlx::Error::RowNotFound => ErrorKind::Conflict,
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Protocol(_) => ErrorKind::Unavailable,
        sqlx::Error::Configuration(_) => ErrorKind::Conflict,
        _ => ErrorKind::Internal,
    }
}

/// Why the watched database cannot be reached.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// Knowledge (which holds the connection string) could not be asked.
    #[error(transparent)]
    Knowledge(#[from] Error),
    #[error("database {0} is not registered")]
    NotRegistered(String),
    #[error("invalid connection string for database {id}: {}", describe(.source))]
    ConnectionString {
        id: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot connect to the database: {}", describe(.0))]
    Connect(#[source] sqlx::Error),
    #[error("no database connection for this action")]
    NoConnection,
}

impl DatabaseError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Knowledge(e) => e.kind(),
            Self::NotRegistered(_) | Self::ConnectionString { .. } => ErrorKind::Conflict,
            Self::Connect(e) => match sql_kind(e) {
                ErrorKind::Conflict => ErrorKind::Conflict,
                _ => ErrorKind::Unavailable,
            },
            Self::NoConnection => ErrorKind::Internal,
        }
    }
}

/// Why a request about an action (approve, reject, roll back, deploy) was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("action {0} not found")]
    NotFound(String),
    /// The action's state does not allow it.
    #[error("{0}")]
    Conflict(String),
    /// The request itself is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Knowledge could not be asked, or refused.
    #[error(transparent)]
    Knowledge(#[from] Error),
    /// The action's own step (a rollback) failed.
    #[error("{doing}: {source}")]
    Action {
        doing: &'static str,
        #[source]
        source: ActionError,
    },
}

impl EngineError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Conflict(_) => ErrorKind::Conflict,
            Self::Invalid(_) => ErrorKind::InvalidInput,
            Self::Knowledge(e) => e.kind(),
            Self::Action { source, .. } => source.kind(),
        }
    }
}

impl From<EngineError> for Error {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Knowledge(error) => error,
            other => Error::with_source(other.kind(), other.to_string(), other),
        }
    }
}

/// A PostgreSQL error as its message, detail and hint (which often name the missing
/// privilege) with the SQLSTATE; anything else as itself.
pub fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => {
            let mut text = db.message().to_owned();
            if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                for extra in [pg.detail(), pg.hint()].into_iter().flatten() {
                    text.push_str(". ");
                    text.push_str(extra);
                }
            }
            match db.code() {
                Some(code) => format!("{text} (SQLSTATE {code})"),
                None => text,
            }
        }
        other => other.to_string(),
    }
}

/// True for "canceling statement due to lock timeout" (55P03).
pub fn is_lock_timeout(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some("55P03"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knowledge_down_is_unavailable_and_a_host_fault_internal_through_the_engine() {
        let down = Error::from_status("GetDatabase", tonic::Status::unavailable("refused"));
        let rollback = EngineError::Action {
            doing: "rollback failed",
            source: ActionError::Database(DatabaseError::Knowledge(down)),
        };
        let error: Error = rollback.into();
        assert_eq!(error.kind(), ErrorKind::Unavailable);
        assert_eq!(error.kind().http_status().as_u16(), 503);
        assert_eq!(tonic::Status::from(error).code(), tonic::Code::Unavailable);

        let urandom = std::io::Error::other("no entropy");
        let error: Error = EngineError::Action {
            doing: "deploy",
            source: ActionError::host("/dev/urandom", urandom),
        }
        .into();
        assert_eq!(error.kind(), ErrorKind::Internal);
        assert_eq!(error.kind().http_status().as_u16(), 500);
        assert!(std::error::Error::source(&error).is_some());

        let error: Error = EngineError::Invalid("database_id is required".into()).into();
        assert_eq!(error.kind().http_status().as_u16(), 400);
    }
}

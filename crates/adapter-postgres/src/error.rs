use application::StoreError;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::PoolError;

/// Whether a diesel error means the connection (or the server) is gone.
pub(crate) fn is_unavailable(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _)
        | DieselError::BrokenTransactionManager => true,
        // admin_shutdown and friends: the server is going away; or a statement gave up
        // on a lock or on its time limit (`lock_timeout`, `statement_timeout`): the
        // database is too busy to answer now, and the transaction rolls back.
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let message = info.message();
            message.contains("terminating connection")
                || message.contains("shutting down")
                || message.contains("canceling statement due to lock timeout")
                || message.contains("canceling statement due to statement timeout")
        }
        _ => false,
    }
}

/// Whether a diesel error means this connection is gone (its server session ended or
/// its socket closed), as opposed to the server refusing a statement.
pub(crate) fn is_connection_lost(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _) => {
            true
        }
        DieselError::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            info.message().contains("terminating connection")
        }
        _ => false,
    }
}

/// Whether a statement gave up waiting for a lock (`lock_timeout`).
pub(crate) fn is_lock_timeout(error: &DieselError) -> bool {
    matches!(error, DieselError::DatabaseError(DatabaseErrorKind::Unknown, info)
        if info.message().contains("canceling statement due to lock timeout"))
}

/// Adds what the adapter was doing to a diesel error and classifies it.
pub(crate) trait StoreContext<T> {
    fn store_context(self, what: &'static str) -> Result<T, StoreError>;
}

impl<T> StoreContext<T> for Result<T, DieselError> {
    fn store_context(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|error| {
            if is_unavailable(&error) {
                StoreError::Unavailable(anyhow::Error::new(error).context(what))
            } else {
                StoreError::Unexpected(anyhow::Error::new(error).context(what))
            }
        })
    }
}

pub(crate) fn pool_error(error: PoolError) -> StoreError {
    StoreError::Unavailable(anyhow::Error::new(error).context("taking a database connection from the pool"))
}

/// The name of the constraint a database error violated, if any.
pub(crate) fn violated_constraint(error: &DieselError) -> Option<(DatabaseErrorKind, String)> {
    match error {
        DieselError::DatabaseError(kind, info) => info.constraint_name().map(|name| (*kind, name.to_owned())),
        _ => None,
    }
}

/// A stored row that breaks a domain rule: only a bug or a manual edit makes one.
pub(crate) fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!("stored {what} is invalid: {error}"))
}

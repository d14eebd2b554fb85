use application::StoreError;
use diesel::pg::sql_state;
use diesel::result::{DatabaseErrorKind, Error as DieselError, SqlState, SqlStateClass};
use diesel_async::pooled_connection::deadpool::PoolError;

/// The SQLSTATE of a database error, if the server sent one. Errors are told apart by
/// their code, never by their message, which follows the server's `lc_messages`.
fn sqlstate(error: &DieselError) -> Option<SqlState> {
    match error {
        DieselError::DatabaseError(_, info) => info.sqlstate(),
        _ => None,
    }
}

/// Whether `code` says the server ended (or refuses) the session: class 08
/// (connection exception), an administrator's or a crash's shutdown, a server not yet
/// accepting connections, or a transaction left idle too long.
fn ends_the_session(code: SqlState) -> bool {
    code.class() == SqlStateClass::CONNECTION_EXCEPTION
        || matches!(
            code,
            sql_state::ADMIN_SHUTDOWN
                | sql_state::CRASH_SHUTDOWN
                | sql_state::CANNOT_CONNECT_NOW
                | sql_state::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
        )
}

/// Whether a diesel error means the database cannot serve the request now: the
/// connection (or the server) is gone, or a statement gave up — on a lock
/// (`lock_timeout`), on its time limit (`statement_timeout`), or to a deadlock or a
/// serialization failure — and its transaction rolled back. Retrying later is safe.
pub(crate) fn is_unavailable(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _)
        | DieselError::BrokenTransactionManager => true,
        _ => sqlstate(error).is_some_and(|code| {
            ends_the_session(code)
                // class 53: insufficient resources (too many connections, out of memory)
                || code.class().as_str() == "53"
                || matches!(
                    code,
                    sql_state::LOCK_NOT_AVAILABLE
                        | sql_state::QUERY_CANCELED
                        | sql_state::T_R_DEADLOCK_DETECTED
                        | sql_state::T_R_SERIALIZATION_FAILURE
                )
        }),
    }
}

/// Whether a diesel error means this connection is gone (its server session ended or
/// its socket closed), as opposed to the server refusing a statement.
pub(crate) fn is_connection_lost(error: &DieselError) -> bool {
    match error {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _) => {
            true
        }
        _ => sqlstate(error).is_some_and(ends_the_session),
    }
}

/// Whether a statement gave up waiting for a lock (`lock_timeout`).
pub(crate) fn is_lock_timeout(error: &DieselError) -> bool {
    sqlstate(error) == Some(sql_state::LOCK_NOT_AVAILABLE)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use diesel_async::SimpleAsyncConnection;

    use super::*;
    use crate::fixtures::{fixture, user};

    #[tokio::test]
    async fn errors_are_told_apart_by_their_code() {
        let f = fixture().await;
        let id = user(&f.uow).await;
        let mut a = f.pool.get().await.unwrap();
        let mut b = f.pool.get().await.unwrap();
        // Whatever the server's language: these settings make it speak another one where
        // it can; the codes do not change.
        for conn in [&mut a, &mut b] {
            let _ = conn.batch_execute("SET lc_messages = 'de_DE.UTF-8'").await;
            conn.batch_execute("SET deadlock_timeout = '100ms'").await.unwrap();
        }

        let broken = a.batch_execute("SELECT 1/0").await.unwrap_err();
        assert!(!is_unavailable(&broken), "a division by zero is a bug: {broken}");

        let cancelled = a.batch_execute("SET statement_timeout = '50ms'; SELECT pg_sleep(1)").await.unwrap_err();
        assert!(is_unavailable(&cancelled) && !is_lock_timeout(&cancelled), "{cancelled}");
        a.batch_execute("SET statement_timeout = 0").await.unwrap();

        a.batch_execute(&format!("BEGIN; SELECT * FROM users WHERE id = {id} FOR UPDATE")).await.unwrap();
        let waited = b
            .batch_execute(&format!("SET lock_timeout = '50ms'; SELECT * FROM users WHERE id = {id} FOR UPDATE"))
            .await
            .unwrap_err();
        assert!(is_unavailable(&waited) && is_lock_timeout(&waited), "{waited}");
        b.batch_execute("SET lock_timeout = 0").await.unwrap();

        // Each session holds one row and wants the other's: the server breaks the deadlock.
        let other = user(&f.uow).await;
        b.batch_execute(&format!("BEGIN; SELECT * FROM users WHERE id = {other} FOR UPDATE")).await.unwrap();
        let (wants_other, wants_first) = (
            format!("SELECT * FROM users WHERE id = {other} FOR UPDATE"),
            format!("SELECT * FROM users WHERE id = {id} FOR UPDATE"),
        );
        let (first, second) = tokio::join!(a.batch_execute(&wants_other), b.batch_execute(&wants_first));
        let deadlocked = first.err().or(second.err()).unwrap();
        assert!(is_unavailable(&deadlocked) && !is_connection_lost(&deadlocked), "{deadlocked}");
        drop((a, b));
    }
}

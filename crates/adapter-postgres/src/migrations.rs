use anyhow::Context;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// The project's migrations, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// Applies every pending migration; returns how many ran.
///
/// diesel's migration harness is synchronous, so it runs on a blocking thread through
/// `AsyncConnectionWrapper`, away from the async workers. A session advisory lock makes
/// instances that start together apply the migrations one after the other.
pub async fn run_migrations(database_url: &str) -> anyhow::Result<usize> {
    with_harness(database_url, |conn| {
        conn.run_pending_migrations(MIGRATIONS).map(|applied| applied.len()).map_err(|e| anyhow::anyhow!(e))
    })
    .await
    .context("applying migrations")
}

/// Reverts every applied migration (their `down.sql`), newest first; returns how many.
pub async fn revert_all_migrations(database_url: &str) -> anyhow::Result<usize> {
    with_harness(database_url, |conn| {
        conn.revert_all_migrations(MIGRATIONS).map(|reverted| reverted.len()).map_err(|e| anyhow::anyhow!(e))
    })
    .await
    .context("reverting migrations")
}

/// The advisory lock key that serialises migration runs (an arbitrary constant).
const MIGRATION_LOCK: i64 = 7_261_001;

async fn with_harness<T, F>(database_url: &str, run: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&mut AsyncConnectionWrapper<AsyncPgConnection>) -> anyhow::Result<T> + Send + 'static,
{
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let url = database_url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn =
            AsyncConnectionWrapper::<AsyncPgConnection>::establish(&url).context("connecting to the database")?;
        conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
            .context("waiting for the migration lock")?;
        let outcome = run(&mut conn);
        conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
            .context("releasing the migration lock")?;
        outcome
    })
    .await
    .context("the migration task panicked")?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines, clippy::many_single_char_names)]

    use crate::testing::TestDatabase;
    use crate::{revert_all_migrations, run_migrations};

    #[tokio::test]
    async fn every_down_migration_reverts_and_the_migrations_apply_again() {
        let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))
            .unwrap()
            .filter(|entry| entry.as_ref().is_ok_and(|e| e.path().join("up.sql").exists()))
            .count();
        let db = TestDatabase::new().await.unwrap();
        assert_eq!(revert_all_migrations(db.url()).await.unwrap(), migrations, "every migration reverts");
        assert_eq!(run_migrations(db.url()).await.unwrap(), migrations, "and applies again");
        assert_eq!(run_migrations(db.url()).await.unwrap(), 0, "nothing left to apply");
    }
}

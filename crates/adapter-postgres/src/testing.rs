//! Databases for tests: each test gets a fresh database cloned from a migrated
//! template, so tests run in parallel and never see each other's rows.
//!
//! `DATABASE_URL` names the server (any database on it; `make test` points it at the
//! project's local cluster). The template is named after a hash of the migrations, so a
//! changed migration gets a new template, and it is built once under an advisory lock
//! however many test processes start at once.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use diesel::migration::MigrationSource;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use crate::migrations::{MIGRATIONS, run_migrations};

/// A database that exists for one test and is dropped with this value.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    server_url: String,
    url: String,
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

fn server_url() -> anyhow::Result<String> {
    std::env::var("DATABASE_URL")
        .context("DATABASE_URL must name a PostgreSQL server for the tests (make test sets it)")
}

/// `url` with its database name replaced by `database`.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_end..].find('/') {
        Some(slash) => &base[..authority_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

fn template_name() -> anyhow::Result<String> {
    let mut hasher = DefaultHasher::new();
    for migration in MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS).map_err(|e| anyhow::anyhow!(e))? {
        migration.name().to_string().hash(&mut hasher);
    }
    for entry in
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations")).into_iter().flatten().flatten()
    {
        for file in ["up.sql", "down.sql"] {
            if let Ok(sql) = std::fs::read_to_string(entry.path().join(file)) {
                sql.hash(&mut hasher);
            }
        }
    }
    Ok(format!("ecommerce_template_{:016x}", hasher.finish()))
}

async fn ensure_template(admin: &mut AsyncPgConnection, server_url: &str, template: &str) -> anyhow::Result<()> {
    // Session-level advisory lock: one process builds the template, the others wait.
    admin.batch_execute("SELECT pg_advisory_lock(727274)").await?;
    let result = async {
        let exists: bool = diesel_async::RunQueryDsl::get_result(
            diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
                "EXISTS (SELECT 1 FROM pg_database WHERE datname = '{template}' AND datistemplate)"
            ))),
            admin,
        )
        .await?;
        if !exists {
            let building = format!("{template}_building");
            admin.batch_execute(&format!("DROP DATABASE IF EXISTS {building}")).await?;
            admin.batch_execute(&format!("CREATE DATABASE {building}")).await?;
            run_migrations(&with_database(server_url, &building)).await?;
            admin.batch_execute(&format!("ALTER DATABASE {building} RENAME TO {template}")).await?;
            admin.batch_execute(&format!("ALTER DATABASE {template} WITH is_template = true")).await?;
        }
        anyhow::Ok(())
    }
    .await;
    admin.batch_execute("SELECT pg_advisory_unlock(727274)").await?;
    result
}

impl TestDatabase {
    /// Creates a fresh, migrated database.
    pub async fn new() -> anyhow::Result<Self> {
        let server_url = server_url()?;
        let admin_url = with_database(&server_url, "postgres");
        let mut admin = AsyncPgConnection::establish(&admin_url).await.context("connecting to the test server")?;
        let template = template_name()?;
        ensure_template(&mut admin, &admin_url, &template).await.context("preparing the template database")?;
        let name = format!(
            "ecommerce_test_{}_{}_{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed),
            chrono::Utc::now().timestamp_subsec_nanos()
        );
        admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
            .context("cloning the template")?;
        let url = with_database(&server_url, &name);
        Ok(Self { name, server_url: admin_url, url })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a thread with its own runtime does the
        // async drop without blocking that runtime's scheduler on itself.
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut admin) = AsyncPgConnection::establish(&server_url).await {
                    let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            });
        });
        let _ = dropper.join();
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(with_database("postgres://u@h:1/postgres", "x"), "postgres://u@h:1/x");
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
        assert_eq!(with_database("postgres://u@h/db?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
    }
}

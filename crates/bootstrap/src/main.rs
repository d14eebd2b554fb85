//! `ecommerce`: serve the shop, migrate its database, or load the demo catalog.

use anyhow::Context;
use bootstrap::{Application, config};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "ecommerce", version, about = "The shop's REST service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply pending migrations, then serve HTTP and run the background jobs until
    /// SIGTERM or SIGINT (in-flight requests finish first).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Load a small demo catalog (users, products, coupons); running it twice adds
    /// nothing twice. With AUTH_JWT_SECRET set, prints a ready token per demo user.
    Seed,
    /// Print a bearer token for a user (needs AUTH_JWT_SECRET; the user is not looked up).
    Token {
        /// The user id the token acts for.
        user_id: i64,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let log_filter = match config::log_filter(std::env::var("RUST_LOG").ok().as_deref()) {
        Ok(filter) => filter,
        Err(error) => {
            eprintln!("ecommerce: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Command::Token { user_id } = cli.command {
        return print_token(user_id);
    }
    let config = match config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("ecommerce: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let spans = match bootstrap::telemetry::init(&config, log_filter) {
        Ok(spans) => spans,
        Err(error) => {
            eprintln!("ecommerce: {error:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let (Command::Serve, Err(error)) = (&cli.command, config.require_user_tokens()) {
        eprintln!("ecommerce: {error}");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ecommerce: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(cli.command, &config));
    // The spans still buffered go out before the process ends.
    if let Some(spans) = spans
        && let Err(error) = spans.shutdown()
    {
        eprintln!("ecommerce: exporting the last spans failed: {error}");
    }
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ecommerce: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `ecommerce token <userId>`: the token on stdout, nothing else.
fn print_token(user_id: i64) -> std::process::ExitCode {
    let tokens = match config::user_tokens(&|name| std::env::var(name).ok()) {
        Ok(Some(tokens)) if tokens.can_issue() => tokens,
        Ok(_) => {
            eprintln!("ecommerce: invalid AUTH_JWT_SECRET: issuing a token needs AUTH_JWT_SECRET (32 bytes or more)");
            return std::process::ExitCode::from(2);
        }
        Err(error) => {
            eprintln!("ecommerce: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let Ok(user) = domain::UserId::new(user_id) else {
        eprintln!("ecommerce: the user id must be a positive integer, got {user_id}");
        return std::process::ExitCode::from(2);
    };
    let Some(issued) = tokens.issue(user, chrono::Utc::now()) else {
        eprintln!("ecommerce: signing the token failed");
        return std::process::ExitCode::FAILURE;
    };
    println!("{}", issued.token);
    std::process::ExitCode::SUCCESS
}

/// The stop signals: SIGTERM and SIGINT, both stop the service gracefully.
struct StopSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn watch() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self { terminate: signal(SignalKind::terminate())?, interrupt: signal(SignalKind::interrupt())? })
    }

    /// Resolves at the next SIGTERM or SIGINT, naming it.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// A second stop signal: the operator insists.
fn exit_at_once(signal: &'static str) -> ! {
    tracing::warn!(
        signal,
        "second stop signal: exiting at once; requests still in flight are abandoned (their transactions roll back \
         with their connections)"
    );
    std::process::exit(130);
}

async fn run(command: Command, config: &config::Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = Application::start(config).await?;
            tracing::info!(addr = %config.http_addr, port = app.port(), "serving; Swagger UI at /swagger-ui/");
            let (handle, draining, drain) = (app.handle(), app.draining(), config.shutdown_drain);
            tokio::spawn(async move {
                let mut signals = match StopSignals::watch() {
                    Ok(signals) => signals,
                    Err(error) => {
                        tracing::error!(%error, "cannot watch stop signals; stopping");
                        handle.stop(true).await;
                        return;
                    }
                };
                let signal = signals.next().await;
                // SIGTERM comes from a supervisor with a load balancer in front: readiness
                // turns 503 and everything is served for the drain, so that the balancer
                // takes the instance out before it stops accepting. SIGINT is a person at
                // a terminal: no drain.
                if signal == "SIGTERM" && !drain.is_zero() {
                    draining.start();
                    tracing::info!(
                        signal,
                        drain_ms = drain.as_millis(),
                        "draining: readiness answers 503, then stopping"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(drain) => {}
                        signal = signals.next() => exit_at_once(signal),
                    }
                }
                tracing::info!(signal, "stopping gracefully: no new connections, finishing requests in flight");
                tokio::spawn(async move { handle.stop(true).await });
                // A second signal is the operator insisting: exit now.
                exit_at_once(signals.next().await);
            });
            app.run_until_stopped().await?;
            tracing::info!("stopped");
        }
        Command::Migrate => {
            let applied = adapter_postgres::run_migrations(&config.database_url).await?;
            println!("applied {applied} migration(s)");
        }
        // Needs no configuration beyond the secret; handled before it is read.
        Command::Token { .. } => {}
        Command::Seed => {
            adapter_postgres::run_migrations(&config.database_url).await?;
            let (_, pool) = bootstrap::shop(config)?;
            let users = adapter_postgres::seed_demo_catalog(&pool).await.context("seeding")?;
            println!("demo catalog loaded");
            if let Some(tokens) = config.user_tokens.as_ref().filter(|t| t.can_issue()) {
                let now = chrono::Utc::now();
                for (id, name) in users {
                    if let Some(issued) = tokens.issue(id, now) {
                        let until = issued.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                        println!("  user {id} ({name}), token until {until}: {}", issued.token);
                    }
                }
            }
        }
    }
    Ok(())
}

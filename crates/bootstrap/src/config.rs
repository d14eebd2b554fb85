//! Configuration from the environment, validated once at start-up into typed values.
//! An invalid value stops the process with one line naming the variable.

use std::net::SocketAddr;
use std::time::Duration;

use adapter_http::{AuthConfigError, KeySource, MIN_ADMIN_TOKEN_CHARS, UserTokens};
use chrono_tz::Tz;
use domain::order::PaymentTimeout;

/// A variable with a value the service cannot use.
#[derive(Debug, thiserror::Error)]
#[error("invalid {variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

/// Everything the service reads from its environment.
#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub http_addr: SocketAddr,
    pub admin_token: Option<String>,
    pub data_platform_url: Option<adapter_data_platform::Url>,
    pub data_platform_timeout: Duration,
    pub payment_timeout: PaymentTimeout,
    pub expiry_sweep_interval: Duration,
    pub time_zone: Tz,
    pub database_pool_size: usize,
    pub http_workers: usize,
    /// How long a request waits for a pooled connection before 503.
    pub database_pool_wait: Duration,
    /// Server-side bound on one statement.
    pub database_statement_timeout: Duration,
    /// Server-side bound on one wait for a row lock.
    pub database_lock_timeout: Duration,
    /// Payments allowed at once (the bulkhead in front of the data platform).
    pub data_platform_max_in_flight: usize,
    /// Consecutive failed sends that open the data platform's circuit breaker.
    pub data_platform_breaker_failures: u32,
    /// How long an open breaker refuses payments before one trial.
    pub data_platform_breaker_cooldown: Duration,
    pub log_format: LogFormat,
    /// How user tokens are verified (and, with a shared secret, issued); `None` when
    /// neither `AUTH_JWT_SECRET` nor `AUTH_JWT_PUBLIC_KEY_FILE` is set, which only
    /// `serve` refuses.
    pub user_tokens: Option<UserTokens>,
    /// How long an idempotency key and its stored reply are kept.
    pub idempotency_key_ttl: Duration,
    /// How many of a user's orders may wait for payment at once.
    pub max_unpaid_orders_per_user: u32,
    /// After SIGTERM: how long readiness answers 503 before the listener closes.
    pub shutdown_drain: Duration,
    /// Where spans are exported over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, without
    /// a trailing slash); none when unset.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans (`OTEL_SERVICE_NAME`).
    pub service_name: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl Config {
    /// The longest a transaction may sit idle: longer than a payment waits on the
    /// data platform inside its transaction, short enough that a client that vanished
    /// mid-transaction releases its locks within seconds.
    pub fn idle_in_transaction_timeout(&self) -> Duration {
        self.data_platform_timeout + Duration::from_secs(5)
    }

    /// How long a payment waits for a bulkhead slot before it is refused: at most half
    /// a second, so that a refusal is prompt even when connections may be waited for
    /// longer, and a payment that waited for its slot and then for a silent platform
    /// still answers within `DATA_PLATFORM_TIMEOUT_MS` plus one second (a whole second
    /// of slot wait left nothing of that margin for the rollback and the answer).
    pub fn payment_slot_wait(&self) -> Duration {
        self.database_pool_wait.min(Duration::from_millis(500))
    }

    /// Client-side bound on a request's database work, the wait for a pooled connection
    /// included: one statement's limit and a second. It only matters when the database
    /// stops answering without closing anything (server-side limits cannot fire then).
    pub fn database_deadline(&self) -> Duration {
        self.database_statement_timeout + Duration::from_secs(1)
    }
}

impl std::fmt::Debug for Config {
    // Secrets (the token, credentials inside the URLs) are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("http_addr", &self.http_addr)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "***"))
            .field("data_platform_url", &self.data_platform_url.as_ref().map(|_| "***"))
            .field("data_platform_timeout", &self.data_platform_timeout)
            .field("payment_timeout", &self.payment_timeout)
            .field("expiry_sweep_interval", &self.expiry_sweep_interval)
            .field("time_zone", &self.time_zone)
            .field("database_pool_size", &self.database_pool_size)
            .field("http_workers", &self.http_workers)
            .field("database_pool_wait", &self.database_pool_wait)
            .field("database_statement_timeout", &self.database_statement_timeout)
            .field("database_lock_timeout", &self.database_lock_timeout)
            .field("data_platform_max_in_flight", &self.data_platform_max_in_flight)
            .field("data_platform_breaker_failures", &self.data_platform_breaker_failures)
            .field("data_platform_breaker_cooldown", &self.data_platform_breaker_cooldown)
            .field("log_format", &self.log_format)
            .field("user_tokens", &self.user_tokens)
            .field("idempotency_key_ttl", &self.idempotency_key_ttl)
            .field("max_unpaid_orders_per_user", &self.max_unpaid_orders_per_user)
            .field("shutdown_drain", &self.shutdown_drain)
            .field("otlp_endpoint", &self.otlp_endpoint.as_ref().map(|_| "***"))
            .field("service_name", &self.service_name)
            .finish_non_exhaustive()
    }
}

fn error(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError { variable, reason: reason.into() }
}

/// Reads variables through `get`, so tests need not touch the process environment.
pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
    let number = |name: &'static str, default: u64, range: std::ops::RangeInclusive<u64>| -> Result<u64, ConfigError> {
        match non_empty(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse::<u64>().ok().filter(|v| range.contains(v)).ok_or_else(|| {
                error(name, format!("expected an integer in {}..={}, got {raw:?}", range.start(), range.end()))
            }),
        }
    };

    let database_url =
        non_empty("DATABASE_URL").ok_or_else(|| error("DATABASE_URL", "it must be set to a PostgreSQL URL"))?;
    if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
        return Err(error("DATABASE_URL", "expected a postgres:// or postgresql:// URL"));
    }
    let http_addr = match non_empty("HTTP_ADDR") {
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|_| error("HTTP_ADDR", format!("expected host:port such as 127.0.0.1:8080, got {raw:?}")))?,
    };
    let data_platform_url = non_empty("DATA_PLATFORM_URL")
        .map(|raw| adapter_data_platform::parse_url(&raw))
        .transpose()
        .map_err(|e| error("DATA_PLATFORM_URL", format!("expected an http:// or https:// URL with a host: {e:#}")))?;
    let payment_timeout = PaymentTimeout::from_secs(number("ORDER_PAYMENT_TIMEOUT_SECS", 300, 1..=86_400)?)
        .map_err(|e| error("ORDER_PAYMENT_TIMEOUT_SECS", e.to_string()))?;
    let time_zone = match non_empty("BEST_PRODUCTS_TIMEZONE") {
        None => chrono_tz::Asia::Seoul,
        Some(raw) => raw.trim().parse::<Tz>().map_err(|_| {
            error("BEST_PRODUCTS_TIMEZONE", format!("expected an IANA time zone such as Asia/Seoul, got {raw:?}"))
        })?,
    };
    let database_pool_size = usize::try_from(number("DATABASE_POOL_SIZE", 16, 1..=1_000)?).unwrap_or(16);
    // Half the pool by default, so that payments stuck on the platform leave the other
    // half to everything else; an explicit bound must leave at least one connection.
    let data_platform_max_in_flight = if non_empty("DATA_PLATFORM_MAX_IN_FLIGHT").is_none() {
        (database_pool_size / 2).max(1)
    } else {
        let bound = usize::try_from(number("DATA_PLATFORM_MAX_IN_FLIGHT", 1, 1..=1_000)?).unwrap_or(1);
        if bound >= database_pool_size {
            return Err(error(
                "DATA_PLATFORM_MAX_IN_FLIGHT",
                format!("must be below DATABASE_POOL_SIZE ({database_pool_size}), got {bound}"),
            ));
        }
        bound
    };
    let log_format = log_format(get("LOG_FORMAT").as_deref())?;
    let user_tokens = user_tokens(&get)?;
    Ok(Config {
        database_url,
        http_addr,
        admin_token: non_empty("ADMIN_TOKEN")
            .map(|t| t.trim().to_owned())
            .map(|t| {
                if t.chars().count() >= MIN_ADMIN_TOKEN_CHARS {
                    Ok(t)
                } else {
                    Err(error("ADMIN_TOKEN", format!("must be at least {MIN_ADMIN_TOKEN_CHARS} characters")))
                }
            })
            .transpose()?,
        data_platform_url,
        data_platform_timeout: Duration::from_millis(number("DATA_PLATFORM_TIMEOUT_MS", 3_000, 1..=60_000)?),
        payment_timeout,
        expiry_sweep_interval: Duration::from_millis(number("ORDER_EXPIRY_SWEEP_MS", 1_000, 10..=3_600_000)?),
        time_zone,
        database_pool_size,
        http_workers: usize::try_from(number("HTTP_WORKERS", 0, 0..=1_024)?).unwrap_or(0),
        database_pool_wait: Duration::from_millis(number("DATABASE_POOL_WAIT_MS", 5_000, 1..=60_000)?),
        database_statement_timeout: Duration::from_millis(number(
            "DATABASE_STATEMENT_TIMEOUT_MS",
            5_000,
            100..=600_000,
        )?),
        database_lock_timeout: Duration::from_millis(number("DATABASE_LOCK_TIMEOUT_MS", 2_000, 10..=600_000)?),
        data_platform_max_in_flight,
        data_platform_breaker_failures: u32::try_from(number("DATA_PLATFORM_BREAKER_FAILURES", 5, 1..=1_000)?)
            .unwrap_or(5),
        data_platform_breaker_cooldown: Duration::from_millis(number(
            "DATA_PLATFORM_BREAKER_COOLDOWN_MS",
            5_000,
            100..=600_000,
        )?),
        log_format,
        user_tokens,
        idempotency_key_ttl: Duration::from_secs(number("IDEMPOTENCY_KEY_TTL_SECS", 86_400, 60..=2_592_000)?),
        max_unpaid_orders_per_user: u32::try_from(number("MAX_UNPAID_ORDERS_PER_USER", 5, 1..=1_000)?).unwrap_or(5),
        shutdown_drain: Duration::from_millis(number("SHUTDOWN_DRAIN_MS", 3_000, 0..=300_000)?),
        otlp_endpoint: non_empty("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|raw| {
                let endpoint = raw.trim().trim_end_matches('/').to_owned();
                let host = endpoint.strip_prefix("http://").or_else(|| endpoint.strip_prefix("https://"));
                match host {
                    Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(endpoint),
                    _ => Err(error("OTEL_EXPORTER_OTLP_ENDPOINT", "expected an http:// or https:// URL with a host")),
                }
            })
            .transpose()?,
        service_name: non_empty("OTEL_SERVICE_NAME").map_or_else(|| "ecommerce".to_owned(), |n| n.trim().to_owned()),
    })
}

/// User authentication from `AUTH_JWT_SECRET` (HS256, at least 32 bytes) or
/// `AUTH_JWT_PUBLIC_KEY_FILE` (a PEM public key: RS256, ES256 or EdDSA), never both,
/// with the optional `AUTH_JWT_ISSUER` / `AUTH_JWT_AUDIENCE` and the lifetime of issued
/// tokens `AUTH_TOKEN_TTL_SECS`. `None` when neither key source is set.
pub fn user_tokens(get: &impl Fn(&str) -> Option<String>) -> Result<Option<UserTokens>, ConfigError> {
    let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
    let lifetime =
        match non_empty("AUTH_TOKEN_TTL_SECS") {
            None => 3_600,
            Some(raw) => raw.trim().parse::<u64>().ok().filter(|v| (60..=2_592_000).contains(v)).ok_or_else(|| {
                error("AUTH_TOKEN_TTL_SECS", format!("expected an integer in 60..=2592000, got {raw:?}"))
            })?,
        };
    let keys = match (get("AUTH_JWT_SECRET").filter(|v| !v.is_empty()), non_empty("AUTH_JWT_PUBLIC_KEY_FILE")) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => {
            return Err(error("AUTH_JWT_SECRET", "set AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY_FILE, not both"));
        }
        (Some(secret), None) => ("AUTH_JWT_SECRET", KeySource::Secret(secret.into_bytes())),
        (None, Some(path)) => {
            let pem = std::fs::read(path.trim()).map_err(|e| {
                error("AUTH_JWT_PUBLIC_KEY_FILE", format!("cannot read {:?}: {}", path.trim(), e.kind()))
            })?;
            ("AUTH_JWT_PUBLIC_KEY_FILE", KeySource::PublicKeyPem(pem))
        }
    };
    let (variable, keys) = keys;
    UserTokens::new(
        keys,
        non_empty("AUTH_JWT_ISSUER").map(|v| v.trim().to_owned()),
        non_empty("AUTH_JWT_AUDIENCE").map(|v| v.trim().to_owned()),
        Duration::from_secs(lifetime),
    )
    .map(Some)
    .map_err(|e| {
        let variable = match e {
            AuthConfigError::MissingIssuer => "AUTH_JWT_ISSUER",
            AuthConfigError::MissingAudience => "AUTH_JWT_AUDIENCE",
            _ => variable,
        };
        error(variable, e.to_string())
    })
}

impl Config {
    /// The user tokens `serve` needs.
    ///
    /// # Errors
    /// When neither key source is configured.
    pub fn require_user_tokens(&self) -> Result<&UserTokens, ConfigError> {
        self.user_tokens.as_ref().ok_or_else(|| {
            error("AUTH_JWT_SECRET", "serving needs AUTH_JWT_SECRET (32 bytes or more) or AUTH_JWT_PUBLIC_KEY_FILE")
        })
    }
}

/// Reads the process environment.
pub fn from_env() -> Result<Config, ConfigError> {
    from_lookup(|name| std::env::var(name).ok())
}

/// The log line format from `LOG_FORMAT`: `text` (the default, also when blank) or
/// `json`.
pub fn log_format(raw: Option<&str>) -> Result<LogFormat, ConfigError> {
    match raw.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(error("LOG_FORMAT", format!("expected text or json, got {other:?}"))),
    }
}

/// The log filter from `RUST_LOG` (`tracing-subscriber` `EnvFilter` syntax): `info`
/// when unset or blank; a value it cannot parse is an error like any other variable's.
pub fn log_filter(raw: Option<&str>) -> Result<tracing_subscriber::EnvFilter, ConfigError> {
    match raw.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(tracing_subscriber::EnvFilter::new("info")),
        Some(directives) => tracing_subscriber::EnvFilter::try_new(directives).map_err(|e| {
            error("RUST_LOG", format!("expected EnvFilter directives such as info,adapter_postgres=debug: {e}"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        from_lookup(|name| vars.get(name).cloned())
    }

    const DB: (&str, &str) = ("DATABASE_URL", "postgres://localhost/shop");

    /// Whether `source` reads `config.{field}` (and not a longer name starting so).
    fn reads_field(source: &str, field: &str) -> bool {
        let needle = format!("config.{field}");
        source
            .match_indices(&needle)
            .any(|(at, _)| !source[at + needle.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
    }

    /// The crate's sources other than this file, as one text.
    fn the_other_sources() -> String {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut sources = String::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("config.rs") {
                sources.push_str(&std::fs::read_to_string(path).unwrap());
            }
        }
        sources
    }

    #[test]
    fn every_parsed_setting_is_used_and_every_documented_variable_is_read() {
        let this = include_str!("config.rs");
        let start = this.find("pub struct Config {").unwrap();
        let fields: Vec<&str> = this[start..]
            .lines()
            .skip(1)
            .take_while(|line| *line != "}")
            .filter_map(|line| line.trim().strip_prefix("pub ")?.split(':').next())
            .collect();
        assert!(fields.len() >= 20, "read the fields of Config: {fields:?}");
        let others = the_other_sources();
        let unused: Vec<&&str> = fields.iter().filter(|field| !reads_field(&others, field)).collect();
        assert!(unused.is_empty(), "Config fields parsed but never used: {unused:?}");

        // The README's table of variables: each is read by the configuration (or, for
        // the log filter, by `main` before it).
        let readme = include_str!("../../../README.md");
        let table = &readme[readme.find("| `DATABASE_URL`").unwrap()..];
        let documented: Vec<&str> = table
            .lines()
            .take_while(|line| line.starts_with('|'))
            .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
            .collect();
        assert!(documented.len() >= 20, "read the README's variables: {documented:?}");
        let unread: Vec<&&str> = documented
            .iter()
            .filter(|name| !this.contains(&format!("\"{name}\"")) && !others.contains(&format!("\"{name}\"")))
            .collect();
        assert!(unread.is_empty(), "variables the README lists but nothing reads: {unread:?}");
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = config(&[DB]).unwrap();
        assert_eq!(config.http_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.data_platform_timeout, Duration::from_secs(3));
        assert_eq!(config.payment_timeout, PaymentTimeout::from_secs(300).unwrap());
        assert_eq!(config.expiry_sweep_interval, Duration::from_secs(1));
        assert_eq!(config.time_zone, chrono_tz::Asia::Seoul);
        assert!(config.admin_token.is_none());
        assert!(config.data_platform_url.is_none());
        assert_eq!(config.database_pool_wait, Duration::from_secs(5));
        assert_eq!(config.database_statement_timeout, Duration::from_secs(5));
        assert_eq!(config.database_lock_timeout, Duration::from_secs(2));
        assert_eq!(config.data_platform_max_in_flight, 8, "half the default pool of 16");
        assert_eq!(config.data_platform_breaker_failures, 5);
        assert_eq!(config.data_platform_breaker_cooldown, Duration::from_secs(5));
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.idle_in_transaction_timeout(), Duration::from_secs(8));
        assert_eq!(config.idempotency_key_ttl, Duration::from_secs(86_400));
        assert_eq!(config.max_unpaid_orders_per_user, 5);
        assert_eq!(config.shutdown_drain, Duration::from_secs(3));
        assert_eq!(config.otlp_endpoint, None, "nothing is exported unless asked");
        assert_eq!(config.service_name, "ecommerce");
        let exporting = super::from_lookup(|name| match name {
            "DATABASE_URL" => Some("postgres://localhost/shop".to_owned()),
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4318/".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(exporting.otlp_endpoint.as_deref(), Some("http://collector:4318"));
    }

    #[test]
    fn the_payment_bulkhead_leaves_connections_for_everything_else() {
        assert_eq!(config(&[DB, ("DATABASE_POOL_SIZE", "8")]).unwrap().data_platform_max_in_flight, 4);
        assert_eq!(config(&[DB, ("DATABASE_POOL_SIZE", "1")]).unwrap().data_platform_max_in_flight, 1);
        let error = config(&[DB, ("DATABASE_POOL_SIZE", "8"), ("DATA_PLATFORM_MAX_IN_FLIGHT", "8")]).unwrap_err();
        assert_eq!(error.variable, "DATA_PLATFORM_MAX_IN_FLIGHT");
        let ok = config(&[DB, ("DATABASE_POOL_SIZE", "8"), ("DATA_PLATFORM_MAX_IN_FLIGHT", "7")]).unwrap();
        assert_eq!(ok.data_platform_max_in_flight, 7);
    }

    #[test]
    fn each_invalid_value_names_its_variable() {
        for (variable, value) in [
            ("HTTP_ADDR", "localhost"),
            ("DATA_PLATFORM_URL", "ftp://x"),
            ("DATA_PLATFORM_URL", "http://"),
            ("DATA_PLATFORM_URL", "http://bad host"),
            ("DATA_PLATFORM_URL", "platform.internal/events"),
            ("DATA_PLATFORM_TIMEOUT_MS", "0"),
            ("ORDER_PAYMENT_TIMEOUT_SECS", "five"),
            ("ORDER_EXPIRY_SWEEP_MS", "-1"),
            ("BEST_PRODUCTS_TIMEZONE", "Mars/Olympus"),
            ("DATABASE_URL", "mysql://x"),
            ("DATABASE_POOL_WAIT_MS", "0"),
            ("DATABASE_STATEMENT_TIMEOUT_MS", "10"),
            ("DATABASE_LOCK_TIMEOUT_MS", "soon"),
            ("DATA_PLATFORM_MAX_IN_FLIGHT", "0"),
            ("DATA_PLATFORM_BREAKER_FAILURES", "0"),
            ("DATA_PLATFORM_BREAKER_COOLDOWN_MS", "1"),
            ("LOG_FORMAT", "xml"),
            ("IDEMPOTENCY_KEY_TTL_SECS", "59"),
            ("MAX_UNPAID_ORDERS_PER_USER", "0"),
            ("SHUTDOWN_DRAIN_MS", "300001"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ] {
            let error = config(&[DB, (variable, value)]).unwrap_err();
            assert_eq!(error.variable, variable);
            assert!(error.to_string().starts_with(&format!("invalid {variable}: ")));
            assert!(!error.to_string().contains('\n'), "one line");
        }
        assert_eq!(config(&[]).unwrap_err().variable, "DATABASE_URL");
    }

    #[test]
    fn the_log_filter_defaults_to_info_and_rejects_nonsense() {
        assert_eq!(log_filter(None).unwrap().to_string(), "info");
        assert_eq!(log_filter(Some("  ")).unwrap().to_string(), "info");
        assert_eq!(log_filter(Some("warn,adapter_postgres=debug")).unwrap().to_string(), "adapter_postgres=debug,warn");
        let error = log_filter(Some("info,adapter_postgres=loud")).unwrap_err();
        assert_eq!(error.variable, "RUST_LOG");
        assert!(!error.to_string().contains('\n'), "one line");
    }

    const SECRET: (&str, &str) = ("AUTH_JWT_SECRET", "0123456789abcdef0123456789abcdef");

    #[test]
    fn user_authentication_takes_one_key_source_and_refuses_bad_ones() {
        assert!(config(&[DB]).unwrap().user_tokens.is_none());
        assert_eq!(config(&[DB]).unwrap().require_user_tokens().unwrap_err().variable, "AUTH_JWT_SECRET");
        let tokens = config(&[DB, SECRET]).unwrap();
        assert!(tokens.require_user_tokens().unwrap().can_issue());
        let short = config(&[DB, ("AUTH_JWT_SECRET", "too short")]).unwrap_err();
        assert_eq!(short.variable, "AUTH_JWT_SECRET");
        let both = config(&[DB, SECRET, ("AUTH_JWT_PUBLIC_KEY_FILE", "/nonexistent.pem")]).unwrap_err();
        assert_eq!(both.variable, "AUTH_JWT_SECRET");
        let missing = config(&[DB, ("AUTH_JWT_PUBLIC_KEY_FILE", "/nonexistent/key.pem")]).unwrap_err();
        assert_eq!(missing.variable, "AUTH_JWT_PUBLIC_KEY_FILE");
        assert!(!missing.to_string().contains('\n'));
        let ttl = config(&[DB, SECRET, ("AUTH_TOKEN_TTL_SECS", "0")]).unwrap_err();
        assert_eq!(ttl.variable, "AUTH_TOKEN_TTL_SECS");
    }

    fn fixture(name: &str) -> String {
        format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn a_public_key_needs_an_issuer_and_an_audience_and_an_ec_key_must_be_p256() {
        let key = fixture("es256-public.pem");
        let public = ("AUTH_JWT_PUBLIC_KEY_FILE", key.as_str());
        let (issuer, audience) = (("AUTH_JWT_ISSUER", "https://id.example"), ("AUTH_JWT_AUDIENCE", "shop-api"));
        assert_eq!(config(&[DB, public, audience]).unwrap_err().variable, "AUTH_JWT_ISSUER");
        assert_eq!(config(&[DB, public, issuer]).unwrap_err().variable, "AUTH_JWT_AUDIENCE");
        assert!(!config(&[DB, public, issuer, audience]).unwrap().require_user_tokens().unwrap().can_issue());
        let p384 = fixture("es384-public.pem");
        let other_curve = config(&[DB, ("AUTH_JWT_PUBLIC_KEY_FILE", p384.as_str()), issuer, audience]).unwrap_err();
        assert_eq!(other_curve.variable, "AUTH_JWT_PUBLIC_KEY_FILE");
        assert!(other_curve.to_string().contains("P-256"), "{other_curve}");
    }

    #[test]
    fn an_admin_token_has_at_least_32_characters() {
        let short = config(&[DB, ("ADMIN_TOKEN", "0123456789abcdef0123456789abcde")]).unwrap_err();
        assert_eq!(short.variable, "ADMIN_TOKEN");
        assert!(config(&[DB, ("ADMIN_TOKEN", "0123456789abcdef0123456789abcdef")]).unwrap().admin_token.is_some());
    }

    #[test]
    fn a_data_platform_url_is_kept_parsed() {
        let config = config(&[DB, ("DATA_PLATFORM_URL", " https://dp.internal:8443/events ")]).unwrap();
        assert_eq!(config.data_platform_url.map(String::from).as_deref(), Some("https://dp.internal:8443/events"));
    }

    #[test]
    fn no_error_repeats_a_secret() {
        const SECRET_MARK: &str = "s3cr3t-MARK";
        for (variable, value) in [
            ("DATA_PLATFORM_URL", format!("ftp://user:{SECRET_MARK}@platform/events")),
            ("DATA_PLATFORM_URL", format!("https://user:{SECRET_MARK}@")),
            ("DATA_PLATFORM_URL", format!("no scheme {SECRET_MARK}")),
            ("DATABASE_URL", format!("mysql://root:{SECRET_MARK}@db/shop")),
            ("AUTH_JWT_SECRET", SECRET_MARK.to_owned()),
        ] {
            let error = config(&[DB, (variable, value.as_str())]).unwrap_err();
            assert_eq!(error.variable, variable);
            assert!(!error.to_string().contains(SECRET_MARK), "{variable}: {error}");
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let config = config(&[
            DB,
            SECRET,
            ("ADMIN_TOKEN", "s3cret-s3cret-s3cret-s3cret-s3cret"),
            ("DATA_PLATFORM_URL", "https://user:pw@dp"),
        ])
        .unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cret") && !printed.contains("pw@") && !printed.contains(SECRET.1));
    }
}

//! `make loadtest`: the service against PostgreSQL's own ceiling, in one run.
//!
//! It creates a database of its own on the given server, migrates and fills it
//! (`seed.sql`), starts the release server, and for every scenario drives the server
//! with `wrk` (`scenarios.lua`) and then PostgreSQL alone with `pgbench` running the
//! statements that scenario sent before any tuning (`pgbench/*.sql`). It prints one
//! row per scenario and writes `results.json` and `results.png` to the output folder.
//! docs/PERFORMANCE.md explains the figures.

// Counters and microseconds become f64 for rates and milliseconds; they stay far below
// 2^52, where f64 is exact.
#![allow(clippy::cast_precision_loss)]

mod plot;
mod report;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::report::Report;
use crate::run::Bench;

/// Every scenario, in the order they run.
pub const SCENARIOS: [Scenario; 6] = [
    Scenario { name: "products", label: "product list", unit: "req/s" },
    Scenario { name: "balance", label: "balance read", unit: "req/s" },
    Scenario { name: "charge", label: "charge", unit: "req/s" },
    Scenario { name: "keyed-charge", label: "keyed charge", unit: "req/s" },
    Scenario { name: "coupon", label: "coupon issue", unit: "req/s" },
    Scenario { name: "order-payment", label: "order + payment", unit: "pairs/s" },
];

/// One workload, named as in `scenarios.lua` and `pgbench/<name>.sql`.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
}

/// What the run is asked to do; every field comes from a `LOADTEST_*` variable.
#[derive(Debug, Clone)]
pub struct Options {
    /// A URL of the server's maintenance database; the run creates `database` next to it.
    pub admin_url: String,
    pub database: String,
    /// The `ecommerce` binary under test.
    pub server: PathBuf,
    /// How many instances of it serve the load, sharing the database.
    pub instances: usize,
    pub out: PathBuf,
    pub duration: Duration,
    pub users: u32,
    pub connections: u32,
    pub threads: u32,
    pub pgbench_clients: u32,
    /// Stock buckets of the seeded coupons (16, as the service makes them, unless a
    /// design is being compared).
    pub coupon_buckets: u32,
    pub scenarios: Vec<Scenario>,
}

impl Options {
    fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let number = |name: &str, default: u32, range: std::ops::RangeInclusive<u32>| -> anyhow::Result<u32> {
            let Some(raw) = var(name) else { return Ok(default) };
            let value: u32 = raw.trim().parse().with_context(|| format!("{name}: expected a number, got {raw:?}"))?;
            if !range.contains(&value) {
                bail!("{name}: expected {}..={}, got {value}", range.start(), range.end());
            }
            Ok(value)
        };
        let admin_url = var("LOADTEST_ADMIN_URL").context("LOADTEST_ADMIN_URL must name a PostgreSQL server")?;
        let scenarios = match var("LOADTEST_SCENARIOS") {
            None => SCENARIOS.to_vec(),
            Some(list) => list
                .split(',')
                .map(|name| {
                    SCENARIOS
                        .iter()
                        .find(|s| s.name == name.trim())
                        .copied()
                        .with_context(|| format!("LOADTEST_SCENARIOS: no scenario {name:?}"))
                })
                .collect::<anyhow::Result<_>>()?,
        };
        Ok(Self {
            admin_url,
            database: var("LOADTEST_DATABASE").unwrap_or_else(|| "ecommerce_loadtest".to_owned()),
            server: var("LOADTEST_SERVER").map_or_else(|| PathBuf::from("target/release/ecommerce"), PathBuf::from),
            instances: number("LOADTEST_INSTANCES", 1, 1..=4)? as usize,
            out: var("LOADTEST_OUT").map_or_else(|| PathBuf::from("target/loadtest"), PathBuf::from),
            duration: Duration::from_secs(u64::from(number("LOADTEST_SECONDS", 10, 1..=120)?)),
            users: number("LOADTEST_USERS", 250_000, 1_000..=10_000_000)?,
            connections: number("LOADTEST_CONNECTIONS", 64, 1..=4_096)?,
            threads: number("LOADTEST_THREADS", 2, 1..=64)?,
            pgbench_clients: number("LOADTEST_PGBENCH_CLIENTS", 16, 1..=256)?,
            coupon_buckets: number("LOADTEST_COUPON_BUCKETS", 16, 1..=16)?,
            scenarios,
        })
    }
}

fn main() -> ExitCode {
    match drive() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("loadtest: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn drive() -> anyhow::Result<()> {
    let options = Options::from_env()?;
    std::fs::create_dir_all(&options.out).with_context(|| format!("creating {}", options.out.display()))?;
    let mut bench = Bench::prepare(&options)?;
    let mut report = Report::new(&options);
    report.print_header();
    for scenario in &options.scenarios {
        let row = bench.measure(scenario)?;
        Report::print_row(&row);
        report.rows.push(row);
    }
    report.rss_peak_mib = bench.finish();
    report.print_footer();
    let json = options.out.join("results.json");
    std::fs::write(&json, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let png = options.out.join("results.png");
    plot::draw(&report, &png)?;
    println!("wrote {} and {}", json.display(), png.display());
    Ok(())
}

//! The figures of one run: printed as a table, kept as JSON.

use serde::Serialize;

use crate::Options;

/// One scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    /// Requests per second, or completed order + payment pairs per second.
    pub service_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Replies other than 2xx, and connections that failed or timed out.
    pub errors: u64,
    pub requests: u64,
    /// Transactions per second of pgbench running the reference statements.
    pub pgbench_per_sec: f64,
    /// Transactions pgbench reported failed or aborted.
    pub pgbench_failures: u64,
    pub ratio: f64,
    /// The service's resident memory once the scenario ended (the sum over instances).
    pub rss_mib: f64,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub instances: usize,
    pub duration_secs: u64,
    pub users: u32,
    pub connections: u32,
    pub threads: u32,
    pub pgbench_clients: u32,
    pub rows: Vec<Row>,
    /// The highest resident memory any instance reached during the run.
    pub rss_peak_mib: f64,
}

impl Report {
    pub fn new(options: &Options) -> Self {
        Self {
            instances: options.instances,
            duration_secs: options.duration.as_secs(),
            users: options.users,
            connections: options.connections,
            threads: options.threads,
            pgbench_clients: options.pgbench_clients,
            rows: Vec::new(),
            rss_peak_mib: 0.0,
        }
    }

    pub fn print_header(&self) {
        println!(
            "\nservice: {} instance(s), wrk -t{} -c{} -d{}s; pgbench -M prepared -c{} -j2 -T{}; {} users\n",
            self.instances,
            self.threads,
            self.connections,
            self.duration_secs,
            self.pgbench_clients,
            self.duration_secs,
            self.users
        );
        println!(
            "{:<16} {:>10} {:>8} {:>8} {:>8} {:>11} {:>6} {:>8}",
            "scenario", "service/s", "p50 ms", "p99 ms", "errors", "pgbench/s", "ratio", "RSS MiB"
        );
    }

    pub fn print_row(row: &Row) {
        println!(
            "{:<16} {:>10.0} {:>8.1} {:>8.1} {:>8} {:>11.0} {:>6.2} {:>8.1}",
            row.label,
            row.service_per_sec,
            row.p50_ms,
            row.p99_ms,
            row.errors,
            row.pgbench_per_sec,
            row.ratio,
            row.rss_mib
        );
    }

    pub fn print_footer(&self) {
        println!("\npeak RSS: {:.1} MiB", self.rss_peak_mib);
    }
}

//! The run itself: the database, the servers, wrk and pgbench.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::report::Row;
use crate::{Options, Scenario};

/// The files that come with this crate.
const ASSETS: &str = env!("CARGO_MANIFEST_DIR");
/// The product every order buys, and the coupons the service and pgbench issue
/// (ids as `seed.sql` creates them in a new database).
const PRODUCT: u32 = 1;
const SERVICE_COUPON: u32 = 1;
const PGBENCH_COUPON: u32 = 2;

/// A prepared run: a filled database and running servers.
#[derive(Debug)]
pub struct Bench {
    options: Options,
    database_url: String,
    tokens: PathBuf,
    servers: Vec<Server>,
}

#[derive(Debug)]
struct Server {
    child: Child,
    addr: String,
}

/// What `done` in `scenarios.lua` prints.
#[derive(Debug, Deserialize)]
struct WrkSummary {
    requests: u64,
    duration_us: u64,
    status_errors: u64,
    socket_errors: u64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    paid: u64,
}

#[derive(Serialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
}

impl Bench {
    pub fn prepare(options: &Options) -> anyhow::Result<Self> {
        for tool in ["psql", "pgbench", "wrk"] {
            if Command::new(tool).arg("--version").output().is_err() {
                bail!("{tool} is not installed (`make loadtest` installs wrk and PostgreSQL's client)");
            }
        }
        let database_url = sibling_database(&options.admin_url, &options.database)?;
        let started = Instant::now();
        psql(&options.admin_url, &["-c", &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", options.database)])?;
        psql(&options.admin_url, &["-c", &format!("CREATE DATABASE \"{}\"", options.database)])?;
        let secret = random_hex(32)?;
        let migrated = Command::new(&options.server)
            .arg("migrate")
            .env("DATABASE_URL", &database_url)
            .stdout(Stdio::null())
            .status()
            .with_context(|| format!("running {} migrate", options.server.display()))?;
        if !migrated.success() {
            bail!("migrating the load-test database failed");
        }
        let seed = Path::new(ASSETS).join("seed.sql");
        psql(
            &database_url,
            &[
                "-v",
                &format!("users={}", options.users),
                "-v",
                &format!("buckets={}", options.coupon_buckets),
                "-f",
                &seed.to_string_lossy(),
            ],
        )?;
        let tokens = options.out.join("tokens.txt");
        write_tokens(&tokens, &secret, options.users)?;
        println!(
            "database {} ready ({} users, 1,000 products, 3 coupons, one of them held by every user) in {:.1} s",
            options.database,
            options.users,
            started.elapsed().as_secs_f64()
        );
        let mut servers = Vec::with_capacity(options.instances);
        for index in 0..options.instances {
            servers.push(Server::start(options, &database_url, &secret, index)?);
        }
        let bench = Self { options: options.clone(), database_url, tokens, servers };
        // Warm every connection pool and the server's caches before anything counts.
        bench.wrk(&crate::SCENARIOS[0], Duration::from_secs(2))?;
        Ok(bench)
    }

    /// Runs `scenario` against the service, then its reference under pgbench.
    pub fn measure(&mut self, scenario: &Scenario) -> anyhow::Result<Row> {
        // Each scenario starts from a settled database: the dead rows and the pending
        // autovacuum of the previous one's writes would otherwise be paid here.
        psql(&self.database_url, &["-c", "VACUUM ANALYZE", "-c", "CHECKPOINT"])?;
        let summary = self.wrk(scenario, self.options.duration)?;
        let rss_mib = self.servers.iter().map(|s| s.rss_kib("VmRSS")).sum::<u64>() as f64 / 1024.0;
        let (pgbench_per_sec, pgbench_failures) = self.pgbench(scenario)?;
        let seconds = summary.duration_us as f64 / 1e6;
        let done = if scenario.name == "order-payment" { summary.paid } else { summary.requests };
        let service_per_sec = done as f64 / seconds;
        Ok(Row {
            scenario: scenario.name,
            label: scenario.label,
            unit: scenario.unit,
            service_per_sec,
            p50_ms: summary.p50_us as f64 / 1e3,
            p99_ms: summary.p99_us as f64 / 1e3,
            max_ms: summary.max_us as f64 / 1e3,
            errors: summary.status_errors + summary.socket_errors,
            requests: summary.requests,
            pgbench_per_sec,
            pgbench_failures,
            ratio: if pgbench_per_sec > 0.0 { service_per_sec / pgbench_per_sec } else { 0.0 },
            rss_mib,
        })
    }

    /// Stops the servers; returns the highest RSS any of them reached, in MiB.
    pub fn finish(mut self) -> f64 {
        let peak = self.servers.iter().map(|s| s.rss_kib("VmHWM")).max().unwrap_or(0) as f64 / 1024.0;
        for server in &mut self.servers {
            server.stop();
        }
        peak
    }

    /// One wrk run per instance, at once, each with its share of threads and
    /// connections and its own stride of users; their summaries added up.
    fn wrk(&self, scenario: &Scenario, duration: Duration) -> anyhow::Result<WrkSummary> {
        let instances = u32::try_from(self.servers.len()).unwrap_or(1);
        let threads = (self.options.threads / instances).max(1);
        let connections = (self.options.connections / instances).max(threads);
        let script = Path::new(ASSETS).join("scenarios.lua");
        let mut runs = Vec::new();
        for (index, server) in (0u32..).zip(&self.servers) {
            let child = Command::new("wrk")
                .args(["-t", &threads.to_string(), "-c", &connections.to_string()])
                .args(["-d", &format!("{}s", duration.as_secs()), "--latency", "--timeout", "10s"])
                .arg("-s")
                .arg(&script)
                .arg(format!("http://{}", server.addr))
                .arg("--")
                .arg(scenario.name)
                .arg(&self.tokens)
                .args([SERVICE_COUPON.to_string(), PRODUCT.to_string(), (1 + index * threads).to_string()])
                .env("LOADTEST_THREADS", (threads * instances).to_string())
                .env("LOADTEST_SCENARIO", scenario.name)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("starting wrk")?;
            runs.push(child);
        }
        let mut total: Option<WrkSummary> = None;
        for child in runs {
            let output = child.wait_with_output().context("waiting for wrk")?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            let line = stdout.lines().find_map(|l| l.strip_prefix("LOADTEST ")).with_context(|| {
                format!("wrk printed no summary for {}: {}", scenario.name, String::from_utf8_lossy(&output.stderr))
            })?;
            let one: WrkSummary = serde_json::from_str(line).context("reading wrk's summary")?;
            total = Some(match total {
                None => one,
                Some(sum) => WrkSummary {
                    requests: sum.requests + one.requests,
                    duration_us: sum.duration_us.max(one.duration_us),
                    status_errors: sum.status_errors + one.status_errors,
                    socket_errors: sum.socket_errors + one.socket_errors,
                    // Percentiles do not add up: keep the worse instance's.
                    p50_us: sum.p50_us.max(one.p50_us),
                    p99_us: sum.p99_us.max(one.p99_us),
                    max_us: sum.max_us.max(one.max_us),
                    paid: sum.paid + one.paid,
                },
            });
        }
        total.context("no server to drive")
    }

    /// The reference: PostgreSQL running `pgbench/<scenario>.sql`, with no service in
    /// between. Returns transactions per second and how many failed.
    fn pgbench(&self, scenario: &Scenario) -> anyhow::Result<(f64, u64)> {
        let script = Path::new(ASSETS).join("pgbench").join(format!("{}.sql", scenario.name));
        let clients = self.options.pgbench_clients;
        let output = Command::new("pgbench")
            .args(["-n", "-M", "prepared", "-c", &clients.to_string(), "-j", "2"])
            .args(["-T", &self.options.duration.as_secs().to_string()])
            .args(["-D", &format!("users={}", self.options.users), "-D", &format!("clients={clients}")])
            .args(["-D", "k=0", "-D", &format!("product={PRODUCT}"), "-D", &format!("coupon={PGBENCH_COUPON}")])
            .arg("-f")
            .arg(&script)
            .arg(&self.database_url)
            .output()
            .context("running pgbench")?;
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        let tps = text
            .lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
            .with_context(|| format!("pgbench printed no tps for {}:\n{text}", scenario.name))?;
        let failed = text
            .lines()
            .find_map(|l| l.strip_prefix("number of failed transactions: "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        let aborted = u64::from(text.contains("aborted"));
        Ok((tps, failed + aborted))
    }
}

impl Server {
    fn start(options: &Options, database_url: &str, secret: &str, index: usize) -> anyhow::Result<Self> {
        let addr = free_loopback_addr()?;
        let log = File::create(options.out.join(format!("server-{index}.log"))).context("creating the server log")?;
        let child = Command::new(&options.server)
            .arg("serve")
            .env("DATABASE_URL", database_url)
            .env("HTTP_ADDR", &addr)
            .env("AUTH_JWT_SECRET", secret)
            .env("ADMIN_TOKEN", random_hex(16)?)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", options.server.display()))?;
        let mut server = Self { child, addr };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited before it was ready ({status}); see its log in the output folder");
            }
            if http_status(&self.addr, "/health/ready").is_ok_and(|s| s == 200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("the server at {} was not ready within 30 s", self.addr)
    }

    /// A line of `/proc/<pid>/status`, in KiB (0 when it cannot be read).
    fn rss_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status.lines().find_map(|l| {
                    l.strip_prefix(field)?.trim_start_matches(':').split_whitespace().next()?.parse().ok()
                })
            })
            .unwrap_or(0)
    }

    /// SIGTERM (a graceful stop), then SIGKILL if it is still there after 10 s.
    fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        for server in &mut self.servers {
            if matches!(server.child.try_wait(), Ok(None)) {
                server.stop();
            }
        }
    }
}

/// `url` with its database replaced by `database`.
fn sibling_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let Some((server, _)) = base.rsplit_once('/') else { bail!("LOADTEST_ADMIN_URL {url:?} has no database part") };
    if !server.contains("://") || server.ends_with('/') {
        bail!("LOADTEST_ADMIN_URL {url:?} is not a postgres://host/database URL");
    }
    Ok(match query {
        Some(q) => format!("{server}/{database}?{q}"),
        None => format!("{server}/{database}"),
    })
}

fn psql(url: &str, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", url])
        .args(args)
        .output()
        .context("running psql")?;
    if !output.status.success() {
        bail!("psql {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(())
}

/// One HS256 bearer token per user, line n for user n, valid for an hour.
fn write_tokens(path: &Path, secret: &str, users: u32) -> anyhow::Result<()> {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut out = BufWriter::new(File::create(path).with_context(|| format!("creating {}", path.display()))?);
    for user in 1..=users {
        let claims = Claims { sub: user.to_string(), iat: now, exp: now + 3_600 };
        writeln!(out, "{}", jsonwebtoken::encode(&header, &claims, &key)?)?;
    }
    out.flush()?;
    Ok(())
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().fold(String::with_capacity(bytes * 2), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    }))
}

fn free_loopback_addr() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.to_string())
}

/// The status of `GET path`, over a plain HTTP/1.0 exchange.
fn http_status(addr: &str, path: &str) -> anyhow::Result<u16> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    let text = std::str::from_utf8(&head)?;
    text.get(9..12).and_then(|code| code.parse().ok()).context("not an HTTP reply")
}

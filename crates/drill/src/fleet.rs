//! The processes of the drill: instances of the release binary and HAProxy in front of
//! them, on loopback ports of their own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// What every instance is started with.
#[derive(Debug, Clone)]
pub struct InstanceSettings {
    pub binary: PathBuf,
    pub database_url: String,
    pub admin_token: String,
    pub jwt_secret: String,
    pub logs: PathBuf,
    /// `SHUTDOWN_DRAIN_MS` of every instance.
    pub drain_ms: u64,
}

/// One `ecommerce serve` process, restarted in place.
#[derive(Debug)]
pub struct Instance {
    pub name: String,
    pub port: u16,
    child: Option<Child>,
    starts: u32,
}

/// A loopback port nobody listens on now (bound, read, released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Instance {
    pub fn new(name: &str) -> anyhow::Result<Self> {
        Ok(Self { name: name.to_owned(), port: free_port()?, child: None, starts: 0 })
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the process and waits until its readiness answers 200.
    pub async fn start(&mut self, settings: &InstanceSettings, client: &reqwest::Client) -> anyhow::Result<()> {
        self.starts += 1;
        let log = settings.logs.join(format!("{}-{}.log", self.name, self.starts));
        let out = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(&settings.binary)
            .arg("serve")
            .env("DATABASE_URL", &settings.database_url)
            .env("HTTP_ADDR", self.address())
            .env("ADMIN_TOKEN", &settings.admin_token)
            .env("AUTH_JWT_SECRET", &settings.jwt_secret)
            .env("DATABASE_POOL_SIZE", "12")
            .env("HTTP_WORKERS", "1")
            .env("SHUTDOWN_DRAIN_MS", settings.drain_ms.to_string())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", settings.binary.display()))?;
        self.child = Some(child);
        let ready = format!("http://{}/health/ready", self.address());
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if client.get(&ready).send().await.is_ok_and(|r| r.status() == 200) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{} did not become ready within 30 s (see {})", self.name, log.display())
    }

    /// SIGTERM, then waits for the process to exit (the drain and the graceful stop).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        if let Some(pid) = child.id() {
            let sent = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
            if !sent.success() {
                bail!("kill -TERM {pid} failed");
            }
        }
        let exit = tokio::time::timeout(Duration::from_secs(45), child.wait())
            .await
            .with_context(|| format!("{} did not stop within 45 s of SIGTERM", self.name))??;
        if !exit.success() {
            bail!("{} stopped with {exit} after SIGTERM", self.name);
        }
        Ok(())
    }

    /// `kill -9`.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.with_context(|| format!("killing {}", self.name))?;
        }
        Ok(())
    }
}

/// HAProxy with the reference configuration, its addresses given in its environment.
#[derive(Debug)]
pub struct Balancer {
    pub port: u16,
    stats_port: u16,
    child: Child,
}

impl Balancer {
    pub async fn start(
        haproxy: &Path,
        config: &Path,
        instances: &[Instance],
        logs: &Path,
        client: &reqwest::Client,
    ) -> anyhow::Result<Self> {
        let (port, stats_port) = (free_port()?, free_port()?);
        let log = std::fs::File::create(logs.join("haproxy.log"))?;
        let mut command = Command::new(haproxy);
        command
            .args(["-db", "-f"])
            .arg(config)
            .env("SHOP_LISTEN", format!("127.0.0.1:{port}"))
            .env("SHOP_STATS", format!("127.0.0.1:{stats_port}"));
        for (i, instance) in instances.iter().enumerate() {
            command.env(format!("SHOP_INSTANCE_{}", i + 1), instance.address());
        }
        let child = command
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", haproxy.display()))?;
        let balancer = Self { port, stats_port, child };
        balancer.wait_until_all_up(client, instances.len()).await?;
        Ok(balancer)
    }

    /// The state HAProxy's health checks give each server (`UP`, `DOWN`, ...), from
    /// its statistics in CSV.
    pub async fn states(&self, client: &reqwest::Client) -> anyhow::Result<Vec<(String, String)>> {
        let csv = client.get(format!("http://127.0.0.1:{}/stats;csv", self.stats_port)).send().await?.text().await?;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().trim_start_matches("# ").split(',').collect();
        let column = |name: &str| header.iter().position(|h| *h == name);
        let (Some(proxy), Some(server), Some(status)) = (column("pxname"), column("svname"), column("status")) else {
            bail!("unexpected statistics header: {header:?}");
        };
        Ok(lines
            .map(|line| line.split(',').collect::<Vec<_>>())
            .filter(|row| row.get(proxy) == Some(&"instances") && !matches!(row.get(server), Some(&"BACKEND")))
            .map(|row| (row[server].to_owned(), row[status].to_owned()))
            .collect())
    }

    /// Waits until HAProxy routes to `count` servers.
    pub async fn wait_until_all_up(&self, client: &reqwest::Client, count: usize) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(states) = self.states(client).await
                && states.iter().filter(|(_, status)| status == "UP").count() == count
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("HAProxy did not see {count} servers up within 30 s")
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

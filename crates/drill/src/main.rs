//! `make drill`: what an operator does to a fleet, under load. Three instances of the
//! release binary on one PostgreSQL database of the drill's own, behind HAProxy with the
//! reference configuration of `deploy/`, and clients that read, charge, order and pay
//! through it with idempotency keys. Phases:
//!
//! 1. steady load;
//! 2. a rolling restart of every instance (SIGTERM: drain, stop; start again; wait until
//!    the balancer routes to it), under that load;
//! 3. `kill -9` of one instance under that load, then its restart;
//! 4. steady load again.
//!
//! Per phase it prints the requests, the failures other than business conflicts (and
//! how many were connection errors), and the p99 of first attempts; then the invariants
//! of the contract, checked in SQL, and whether every keyed write retried after an error
//! was applied exactly once. It exits non-zero when a target is missed: a failure during
//! the rolling restart, a request still failing after its retries, a broken invariant.

mod checks;
mod fleet;
mod load;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::fleet::{Balancer, Instance, InstanceSettings};
use crate::load::{Load, User};

const PHASES: [&str; 4] = ["steady", "rolling restart", "kill -9 + restart", "after"];
const USERS: i64 = 40;
const PRODUCTS: i64 = 4;
const STOCK: i64 = 1_000_000;
const SEED_CHARGE: i64 = 1_000_000;
const CLIENTS: usize = 16;
const STEADY: Duration = Duration::from_secs(8);

/// Where things are; every field comes from a `DRILL_*` variable.
struct Options {
    admin_url: String,
    binary: PathBuf,
    haproxy: PathBuf,
    config: PathBuf,
    out: PathBuf,
    /// The instances' drain (3 s, as deployed; 0 shows what the drain is for).
    drain_ms: u64,
}

impl Options {
    fn from_env() -> anyhow::Result<Self> {
        let var = |name: &str, default: Option<&str>| {
            std::env::var(name).ok().filter(|v| !v.trim().is_empty()).or(default.map(str::to_owned))
        };
        Ok(Self {
            admin_url: var("DRILL_ADMIN_URL", None).context("DRILL_ADMIN_URL must name a PostgreSQL server")?,
            binary: var("DRILL_SERVER", Some("target/release/ecommerce")).unwrap_or_default().into(),
            haproxy: var("DRILL_HAPROXY", Some("haproxy")).unwrap_or_default().into(),
            config: var("DRILL_HAPROXY_CONFIG", Some("deploy/haproxy.cfg")).unwrap_or_default().into(),
            out: var("DRILL_OUT", Some("target/drill")).unwrap_or_default().into(),
            drain_ms: var("DRILL_SHUTDOWN_DRAIN_MS", Some("3000"))
                .unwrap_or_default()
                .parse()
                .context("DRILL_SHUTDOWN_DRAIN_MS: expected milliseconds")?,
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            println!("drill: a target was missed (above)");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("drill: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> anyhow::Result<bool> {
    let options = Options::from_env()?;
    std::fs::create_dir_all(&options.out).with_context(|| format!("creating {}", options.out.display()))?;
    let database_url = checks::fresh_database(&options.admin_url, "ecommerce_drill").await?;
    let migrated = std::process::Command::new(&options.binary)
        .arg("migrate")
        .env("DATABASE_URL", &database_url)
        .stdout(std::process::Stdio::null())
        .status()
        .with_context(|| format!("running {} migrate", options.binary.display()))?;
    if !migrated.success() {
        bail!("migrating the drill's database failed");
    }

    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build()?;
    let settings = InstanceSettings {
        binary: options.binary.clone(),
        database_url: database_url.clone(),
        admin_token: "drill-admin-token-of-at-least-32-characters".to_owned(),
        jwt_secret: "drill-user-token-secret-of-at-least-32-bytes".to_owned(),
        logs: options.out.clone(),
        drain_ms: options.drain_ms,
    };
    let mut instances = vec![Instance::new("shop1")?, Instance::new("shop2")?, Instance::new("shop3")?];
    for instance in &mut instances {
        instance.start(&settings, &client).await?;
    }
    let balancer = Balancer::start(&options.haproxy, &options.config, &instances, &options.out, &client).await?;
    let base = format!("http://127.0.0.1:{}", balancer.port);
    println!(
        "drill: 3 instances ({}, SHUTDOWN_DRAIN_MS={}) behind HAProxy on {base}, {CLIENTS} clients; logs in {}",
        instances.iter().map(Instance::address).collect::<Vec<_>>().join(", "),
        options.drain_ms,
        options.out.display()
    );

    let (users, products) = seed(&client, &base, &settings.admin_token).await?;
    let load = Arc::new(Load::new(base, client.clone(), users.clone(), products, PHASES.len()));
    for user in &users {
        load.seeded(user.id, SEED_CHARGE);
    }
    let clients: Vec<_> = (0..CLIENTS).map(|id| tokio::spawn(load.clone().client(id))).collect();

    let conducted = conduct(&load, &mut instances, &balancer, &settings, &client).await;
    load.stop();
    for client in clients {
        let _ = client.await;
    }
    conducted?;

    let mut met = report(&load.tallies());
    println!();
    for (what, broken) in checks::invariants(&database_url, STOCK).await? {
        met &= target(broken == 0, &format!("{what} ({broken} rows break it)"));
    }
    for (what, broken) in checks::applied_once(&database_url, &load.applied()).await? {
        met &= target(broken == 0, &format!("{what} ({broken} users differ)"));
    }

    balancer.stop().await;
    for instance in &mut instances {
        instance.stop().await?;
    }
    checks::drop_database(&options.admin_url, "ecommerce_drill").await?;
    Ok(met)
}

/// Prints what each phase's requests met and checks the targets on them.
fn report(tallies: &[load::Tally]) -> bool {
    println!();
    println!(
        "| phase | requests | failed | of which connection errors | retried with the key → ok | still failing | business 409s | p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, tally) in PHASES.iter().zip(tallies) {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} ms |",
            tally.requests,
            tally.failed,
            tally.connection_errors,
            tally.retried_ok,
            tally.unresolved,
            tally.business_conflicts,
            tally.p99().as_millis()
        );
    }
    for (name, tally) in PHASES.iter().zip(tallies) {
        for (what, kinds) in [("failures", &tally.kinds), ("business 409s", &tally.conflicts)] {
            if !kinds.is_empty() {
                let mut kinds: Vec<_> = kinds.iter().collect();
                kinds.sort();
                println!("  {name}: {what} {kinds:?}");
            }
        }
    }

    let mut met = true;
    let rolling = &tallies[1];
    met &= target(rolling.failed == 0, &format!("no failed request during the rolling restart ({})", rolling.failed));
    let unresolved: u64 = tallies.iter().map(|t| t.unresolved).sum();
    met &= target(
        unresolved == 0,
        &format!("every failed request succeeded when retried with its key ({unresolved} did not)"),
    );
    let killed = &tallies[2];
    met &= target(
        killed.failed <= CLIENTS as u64,
        &format!(
            "during the kill, at most the requests in flight failed ({} failed, {CLIENTS} clients)",
            killed.failed
        ),
    );
    met
}

fn target(met: bool, what: &str) -> bool {
    println!("{} {what}", if met { "ok  " } else { "FAIL" });
    met
}

/// The phases, under the running load.
async fn conduct(
    load: &Load,
    instances: &mut [Instance],
    balancer: &Balancer,
    settings: &InstanceSettings,
    client: &reqwest::Client,
) -> anyhow::Result<()> {
    tokio::time::sleep(STEADY).await;

    load.enter(1);
    for instance in instances.iter_mut() {
        println!("drill: rolling {}: SIGTERM, drain, stop, start", instance.name);
        instance.stop().await?;
        instance.start(settings, client).await?;
        balancer.wait_until_all_up(client, 3).await?;
    }

    load.enter(2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let victim = &mut instances[1];
    println!("drill: kill -9 {}", victim.name);
    victim.kill().await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    victim.start(settings, client).await?;
    balancer.wait_until_all_up(client, 3).await?;

    load.enter(3);
    tokio::time::sleep(STEADY / 2).await;
    Ok(())
}

/// Users with a balance and a token each, and products with ample stock, created
/// through the admin API.
async fn seed(client: &reqwest::Client, base: &str, admin: &str) -> anyhow::Result<(Vec<User>, Vec<i64>)> {
    let post = async |path: &str, bearer: &str, body: Value| -> anyhow::Result<Value> {
        let response = client.post(format!("{base}{path}")).bearer_auth(bearer).json(&body).send().await?;
        let status = response.status();
        let body: Value = response.json().await?;
        if !status.is_success() {
            bail!("seeding: POST {path} answered {status}: {body}");
        }
        Ok(body)
    };
    let mut products = Vec::new();
    for i in 0..PRODUCTS {
        let product =
            post("/api/v1/admin/products", admin, json!({"name": format!("drill {i}"), "price": 30, "stock": STOCK}))
                .await?;
        products.push(product["productId"].as_i64().context("a product id")?);
    }
    let mut users = Vec::new();
    for i in 0..USERS {
        let user = post("/api/v1/admin/users", admin, json!({"name": format!("drill {i}")})).await?;
        let id = user["userId"].as_i64().context("a user id")?;
        let token = post(&format!("/api/v1/admin/users/{id}/tokens"), admin, json!({})).await?;
        let token = token["token"].as_str().context("a token")?.to_owned();
        post(&format!("/api/v1/points/{id}"), &token, json!({"amount": SEED_CHARGE})).await?;
        users.push(User { id, token });
    }
    Ok((users, products))
}

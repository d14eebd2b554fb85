//! The repositories and the unit of work against a real PostgreSQL: each test has its
//! own database cloned from a migrated template.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::many_single_char_names, clippy::too_many_lines)]

use std::sync::Arc;

use adapter_postgres::testing::TestDatabase;
use adapter_postgres::{PgPool, PgUnitOfWork, PoolSettings, connect, revert_all_migrations, run_migrations};
use application::UnitOfWork;
use application::ports::{BusyBuckets, IssueAttempt, NewOrder, NewPointEntry};
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use domain::coupon::{DiscountPolicy, NewCoupon, ValidityWindow};
use domain::order::{OrderStatus, price_order};
use domain::points::{Balance, ChargeAmount, PointEntryKind};
use domain::product::{NewProduct, ProductName, Stock};
use domain::ranking::{RankedProduct, SalesWindow};
use domain::testing::{at, items};
use domain::user::UserName;
use domain::{CouponId, Money, ProductId, UserId};

struct Fixture {
    /// Dropped last: the database lives as long as the test.
    db: TestDatabase,
    pool: PgPool,
    uow: Arc<PgUnitOfWork>,
}

async fn fixture() -> Fixture {
    let db = TestDatabase::new().await.unwrap();
    let pool = connect(db.url(), PoolSettings::default()).unwrap();
    let uow = Arc::new(PgUnitOfWork::new(pool.clone()));
    Fixture { db, pool, uow }
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    let mut conn = pool.get().await.unwrap();
    diesel::select(diesel::dsl::sql::<BigInt>(&format!("({sql})"))).get_result(&mut conn).await.unwrap()
}

async fn user(uow: &PgUnitOfWork) -> UserId {
    let mut work = uow.begin().await.unwrap();
    let user = work.users().create(&UserName::new("kim").unwrap()).await.unwrap();
    work.commit().await.unwrap();
    user.id
}

async fn product(uow: &PgUnitOfWork, price: i64, stock: i64) -> ProductId {
    let mut work = uow.begin().await.unwrap();
    let product = work
        .products()
        .create(&NewProduct {
            name: ProductName::new("p").unwrap(),
            price: Money::new(price).unwrap(),
            stock: Stock::new(stock).unwrap(),
        })
        .await
        .unwrap();
    work.commit().await.unwrap();
    product.id
}

async fn coupon(uow: &PgUnitOfWork, quantity: i64) -> CouponId {
    let mut work = uow.begin().await.unwrap();
    let window = ValidityWindow::new(at(0), at(1_000)).unwrap();
    let coupon = NewCoupon::new("c", DiscountPolicy::fixed(100).unwrap(), 0, quantity, window).unwrap();
    let coupon = work.coupons().create(&coupon).await.unwrap();
    work.commit().await.unwrap();
    coupon.id()
}

/// Ends every other session of the test's database, as a server restart does, and
/// waits until their backends are gone.
async fn end_other_sessions(pool: &PgPool) -> i64 {
    count(
        pool,
        "SELECT count(*) FROM pg_stat_activity a, pg_terminate_backend(a.pid, 5000) AS ended \
         WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND ended",
    )
    .await
}

/// Opens `n` pooled connections at once and returns them to the pool.
async fn fill(pool: &PgPool, n: usize) {
    let held = futures::future::join_all((0..n).map(|_| pool.get())).await;
    assert!(held.iter().all(Result::is_ok));
}

#[tokio::test]
async fn transactions_begun_right_after_the_server_ended_every_session_all_succeed() {
    let f = fixture().await;
    let user = user(&f.uow).await;
    fill(&f.pool, 8).await;
    assert!(end_other_sessions(&f.pool).await >= 7);
    // No pause: some connections are still taken for alive when handed out; their
    // BEGIN fails and the work begins again on another.
    let works = futures::future::join_all((0..8).map(|_| async {
        let mut work = f.uow.begin().await?;
        let exists = work.users().exists(user).await?;
        work.commit().await.map(|()| exists)
    }))
    .await;
    assert!(works.iter().all(|w| matches!(w, Ok(true))), "{works:?}");
}

#[tokio::test]
async fn reads_after_a_server_restart_ended_every_session_all_succeed() {
    let f = fixture().await;
    let user = user(&f.uow).await;
    fill(&f.pool, 8).await;
    assert!(end_other_sessions(&f.pool).await >= 7);
    // A restart takes longer than this: by the first request after it, each pooled
    // connection has read its socket's end and is refused when handed out.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let reads = futures::future::join_all((0..8).map(|_| async {
        let mut work = f.uow.autocommit().await?;
        work.users().find(user).await
    }))
    .await;
    assert!(reads.iter().all(|r| matches!(r, Ok(Some(_)))), "{reads:?}");
}

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

#[tokio::test]
async fn a_rolled_back_work_leaves_no_trace_and_a_dropped_one_neither() {
    let f = fixture().await;
    let id = user(&f.uow).await;
    let mut work = f.uow.begin().await.unwrap();
    work.users().set_balance(id, Balance::new(500).unwrap()).await.unwrap();
    work.rollback().await.unwrap();
    let mut work = f.uow.begin().await.unwrap();
    work.users().set_balance(id, Balance::new(700).unwrap()).await.unwrap();
    drop(work);
    let mut read = f.uow.autocommit().await.unwrap();
    assert_eq!(read.users().find(id).await.unwrap().unwrap().balance, Balance::ZERO);
    // The dropped work's lock was released with its connection: the row can be locked now.
    let mut work = f.uow.begin().await.unwrap();
    assert!(work.users().lock_balance(id).await.unwrap().is_some());
    work.commit().await.unwrap();
}

#[tokio::test]
async fn the_balance_constraint_is_the_last_line_of_defence() {
    let f = fixture().await;
    let id = user(&f.uow).await;
    let mut conn = f.pool.get().await.unwrap();
    let over =
        diesel::sql_query(format!("UPDATE users SET balance = 5000001 WHERE id = {id}")).execute(&mut conn).await;
    assert!(over.is_err());
    let negative = diesel::sql_query(format!("UPDATE users SET balance = -1 WHERE id = {id}")).execute(&mut conn).await;
    assert!(negative.is_err());
}

#[tokio::test]
async fn concurrent_one_statement_charges_stop_exactly_at_the_ceiling_each_with_its_entry() {
    let f = fixture().await;
    let id = user(&f.uow).await;
    let million = ChargeAmount::new(1_000_000).unwrap();
    let charges = futures::future::join_all((0..12).map(|_| async {
        let mut session = f.uow.autocommit().await.unwrap();
        session.users().charge_within(id, million, Balance::MAX, at(5)).await.unwrap()
    }))
    .await;
    let mut written: Vec<i64> = charges.iter().flatten().map(|b| b.krw()).collect();
    written.sort_unstable();
    assert_eq!(written, [1, 2, 3, 4, 5].map(|m| m * 1_000_000));
    assert_eq!(count(&f.pool, &format!("SELECT balance FROM users WHERE id = {id}")).await, 5_000_000);
    let entries =
        format!("SELECT count(*) FROM point_history WHERE user_id = {id} AND kind = 'CHARGE' AND amount = 1000000");
    assert_eq!(count(&f.pool, &entries).await, 5);
    // An unknown user: nothing written.
    let mut session = f.uow.autocommit().await.unwrap();
    let unknown = UserId::new(id.get() + 1_000).unwrap();
    assert_eq!(session.users().charge_within(unknown, million, Balance::MAX, at(5)).await.unwrap(), None);
    assert_eq!(count(&f.pool, "SELECT count(*) FROM point_history").await, 5);
}

#[tokio::test]
async fn ledger_entries_page_newest_first() {
    let f = fixture().await;
    let id = user(&f.uow).await;
    let mut work = f.uow.begin().await.unwrap();
    for krw in 1..=5 {
        work.users()
            .append_entry(&NewPointEntry {
                user_id: id,
                kind: PointEntryKind::Charge,
                amount: Money::new(krw).unwrap(),
                balance_after: Balance::new(krw).unwrap(),
                order_id: None,
                at: at(krw),
            })
            .await
            .unwrap();
    }
    work.commit().await.unwrap();
    let mut read = f.uow.autocommit().await.unwrap();
    let first = read.users().entries(id, None, 2).await.unwrap();
    assert_eq!(first.iter().map(|e| e.amount.krw()).collect::<Vec<_>>(), vec![5, 4]);
    let next = read.users().entries(id, Some(first[1].id), 10).await.unwrap();
    assert_eq!(next.iter().map(|e| e.amount.krw()).collect::<Vec<_>>(), vec![3, 2, 1]);
}

#[tokio::test]
async fn coupon_holders_are_unique_and_unknown_ids_are_named() {
    let f = fixture().await;
    let u = user(&f.uow).await;
    let c = coupon(&f.uow, 2).await;
    let mut session = f.uow.autocommit().await.unwrap();
    let coupons = session.coupons();
    assert!(matches!(coupons.issue(c, u, at(1), BusyBuckets::Skip).await.unwrap(), IssueAttempt::Issued { .. }));
    assert_eq!(coupons.issue(c, u, at(2), BusyBuckets::Skip).await.unwrap(), IssueAttempt::AlreadyHeld);
    let unknown_coupon = CouponId::new(999).unwrap();
    assert_eq!(coupons.issue(unknown_coupon, u, at(1), BusyBuckets::Skip).await.unwrap(), IssueAttempt::UnknownCoupon);
    let unknown_user = UserId::new(999).unwrap();
    assert_eq!(coupons.issue(c, unknown_user, at(1), BusyBuckets::Wait).await.unwrap(), IssueAttempt::UnknownUser);
    assert_eq!(count(&f.pool, "SELECT count(*) FROM user_coupons").await, 1);
    assert_eq!(
        count(&f.pool, &format!("SELECT sum(remaining)::int8 FROM coupon_stock WHERE coupon_id = {c}")).await,
        1
    );
}

#[tokio::test]
async fn waiting_issues_never_overdraw_and_the_last_empty_read_flags_the_coupon_sold_out() {
    let f = fixture().await;
    let c = coupon(&f.uow, 5).await;
    let mut users = Vec::new();
    for _ in 0..20 {
        users.push(user(&f.uow).await);
    }
    let tasks = users.into_iter().enumerate().map(|(i, u)| {
        let uow = f.uow.clone();
        let busy = if i % 2 == 0 { BusyBuckets::Wait } else { BusyBuckets::Skip };
        tokio::spawn(async move {
            let mut session = uow.autocommit().await.unwrap();
            matches!(session.coupons().issue(c, u, at(10), busy).await.unwrap(), IssueAttempt::Issued { .. })
        })
    });
    let issued = futures::future::join_all(tasks).await.into_iter().filter(|t| *t.as_ref().unwrap()).count();
    assert_eq!(issued, 5);
    assert_eq!(
        count(&f.pool, &format!("SELECT sum(remaining)::int8 FROM coupon_stock WHERE coupon_id = {c}")).await,
        0
    );
    assert_eq!(count(&f.pool, &format!("SELECT sold_out::int::int8 FROM coupons WHERE id = {c}")).await, 1);
    let mut session = f.uow.autocommit().await.unwrap();
    let late = user(&f.uow).await;
    let IssueAttempt::NotTaken(seen) = session.coupons().issue(c, late, at(11), BusyBuckets::Wait).await.unwrap()
    else {
        panic!("a sold-out coupon issued a unit");
    };
    assert_eq!(seen.remaining_quantity(), 0);
    let coupon_after_end = coupon(&f.uow, 5).await;
    assert!(
        matches!(
            session.coupons().issue(coupon_after_end, late, at(1_001), BusyBuckets::Wait).await.unwrap(),
            IssueAttempt::NotTaken(_)
        ),
        "an ended campaign issues nothing"
    );
}

/// A table analyzed while empty, its statistics then kept by generic plans (as a
/// connection caches them after a few executions), would make the holders' check a
/// scan of the holders that grows with the rush. An issue never reads the holders to
/// decide: the unique key does, through its index.
#[tokio::test]
async fn issues_never_scan_the_holders_even_with_plans_made_on_an_empty_table() {
    let f = fixture().await;
    // Before the pool opens its first connection: every pooled session plans generically.
    let mut admin = AsyncPgConnection::establish(f.db.url()).await.unwrap();
    admin
        .batch_execute(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET plan_cache_mode = force_generic_plan', \
             current_database()); END $$",
        )
        .await
        .unwrap();
    admin.batch_execute("VACUUM ANALYZE user_coupons").await.unwrap();
    let scans = "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'user_coupons'";
    let c = coupon(&f.uow, 100).await;
    let mut users = Vec::new();
    for _ in 0..20 {
        users.push(user(&f.uow).await);
    }
    let before: i64 = diesel::sql_query(scans).get_result::<SeqScans>(&mut admin).await.unwrap().seq_scan;
    let mut session = f.uow.autocommit().await.unwrap();
    for u in users {
        let attempt = session.coupons().issue(c, u, at(1), BusyBuckets::Skip).await.unwrap();
        assert!(matches!(attempt, IssueAttempt::Issued { .. }), "{attempt:?}");
    }
    drop(session);
    // Ending the pooled sessions makes them report their table statistics.
    diesel::sql_query(
        "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&mut admin)
    .await
    .unwrap();
    let after = diesel::sql_query(scans).get_result::<SeqScans>(&mut admin).await.unwrap().seq_scan;
    assert_eq!(after, before, "issues scanned the holders' table");
    assert_eq!(count(&f.pool, "SELECT count(*) FROM user_coupons").await, 20);
}

#[derive(diesel::QueryableByName)]
struct SeqScans {
    #[diesel(sql_type = BigInt)]
    seq_scan: i64,
}

/// Orders `lines` ((product, quantity)) priced on an unlocked snapshot, taking the
/// stock in the insert's statement; commits when placed, rolls back otherwise.
async fn place_on_snapshot(uow: &PgUnitOfWork, user: UserId, lines: &[(i64, i64)]) -> bool {
    let items = items(lines);
    let mut work = uow.begin().await.unwrap();
    let products = work.products().find_many(&items.product_ids_ascending()).await.unwrap();
    let Ok(priced) = price_order(&items, &products, None, at(0)) else {
        work.rollback().await.unwrap();
        return false;
    };
    let order = NewOrder { user_id: user, coupon_id: None, priced, created_at: at(0), expires_at: at(300) };
    let placed = work.orders().insert_taking_stock(&order).await.unwrap();
    if let Some(placed) = &placed {
        assert_eq!(placed.lines().len(), lines.len());
        work.commit().await.unwrap();
    } else {
        work.rollback().await.unwrap();
    }
    placed.is_some()
}

#[tokio::test]
async fn orders_taking_stock_in_their_insert_never_oversell_nor_deadlock_and_a_short_one_writes_nothing() {
    let f = fixture().await;
    let u = user(&f.uow).await;
    let a = product(&f.uow, 100, 7).await.get();
    let b = product(&f.uow, 200, 1_000).await.get();
    // 24 concurrent orders over both products, half naming them in the other order:
    // the rows are locked in ascending id whatever the order of the lines.
    let placed = futures::future::join_all((0..24).map(|i| {
        let lines = if i % 2 == 0 { [(a, 1), (b, 1)] } else { [(b, 1), (a, 1)] };
        let uow = f.uow.clone();
        async move { place_on_snapshot(&uow, u, &lines).await }
    }))
    .await;
    assert_eq!(placed.iter().filter(|p| **p).count(), 7, "exactly the stock of the scarcer product");
    assert_eq!(count(&f.pool, &format!("SELECT stock::int8 FROM products WHERE id = {a}")).await, 0);
    assert_eq!(count(&f.pool, &format!("SELECT stock::int8 FROM products WHERE id = {b}")).await, 993);
    assert_eq!(count(&f.pool, "SELECT count(*) FROM orders").await, 7);
    assert_eq!(count(&f.pool, "SELECT count(*) FROM order_lines").await, 14);
}

#[tokio::test]
async fn expired_orders_are_locked_once_across_sweepers() {
    let f = fixture().await;
    let u = user(&f.uow).await;
    let p = product(&f.uow, 1_000, 10).await;
    let items = items(&[(p.get(), 1)]);
    let mut work = f.uow.begin().await.unwrap();
    let products = work.products().lock_many(&[p]).await.unwrap();
    for _ in 0..3 {
        let priced = price_order(&items, &products, None, at(0)).unwrap();
        work.orders()
            .insert(&NewOrder { user_id: u, coupon_id: None, priced, created_at: at(0), expires_at: at(300) })
            .await
            .unwrap();
    }
    work.commit().await.unwrap();

    let mut first = f.uow.begin().await.unwrap();
    let mut second = f.uow.begin().await.unwrap();
    let a = first.orders().lock_expired(at(300), 2, &[]).await.unwrap();
    let b = second.orders().lock_expired(at(300), 2, &[]).await.unwrap();
    assert_eq!(a.len(), 2);
    assert_eq!(b.len(), 1, "the rows the first sweeper holds are skipped");
    assert!(a.iter().all(|o| b.iter().all(|other| other.id() != o.id())));
    assert!(second.orders().lock_expired(at(299), 10, &[]).await.unwrap().is_empty(), "not yet at the deadline");
    first.orders().mark_failed(a[0].id(), at(300)).await.unwrap();
    first.commit().await.unwrap();
    second.rollback().await.unwrap();
    let mut read = f.uow.autocommit().await.unwrap();
    assert_eq!(read.orders().find(a[0].id()).await.unwrap().unwrap().status(), OrderStatus::Failed);
}

#[tokio::test]
async fn concurrent_snapshots_of_one_window_store_one() {
    let f = fixture().await;
    let p = product(&f.uow, 1_000, 10).await;
    let window = SalesWindow::ending_on(chrono::NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(), chrono_tz::Asia::Seoul);
    let tasks = (0..8).map(|i| {
        let uow = f.uow.clone();
        tokio::spawn(async move {
            let mut work = uow.begin().await.unwrap();
            let ranked = [RankedProduct { rank: 1, product_id: p, sold_quantity: 10 + i }];
            work.rankings().save_snapshot(&window, &ranked, at(i)).await.unwrap();
            work.commit().await.unwrap();
        })
    });
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    assert_eq!(count(&f.pool, "SELECT count(*) FROM best_product_snapshots").await, 1);
    assert_eq!(count(&f.pool, "SELECT count(*) FROM best_product_snapshot_items").await, 1);
    let mut read = f.uow.autocommit().await.unwrap();
    let latest = read.rankings().latest(window.to()).await.unwrap().unwrap();
    assert_eq!(latest.window, window);
    let before_it_ended = window.to() - chrono::Duration::seconds(1);
    assert!(read.rankings().latest(before_it_ended).await.unwrap().is_none(), "a window not yet ended is not served");
    assert_eq!(latest.items.len(), 1);
    assert_eq!(latest.items[0].product.id, p);
}

#[tokio::test]
async fn the_demo_catalog_loads_once_however_often_it_is_seeded() {
    let f = fixture().await;
    adapter_postgres::seed_demo_catalog(&f.pool).await.unwrap();
    let counts = async || {
        let mut counts = Vec::new();
        for table in ["users", "products", "coupons", "point_history"] {
            counts.push(count(&f.pool, &format!("SELECT count(*) FROM {table}")).await);
        }
        counts
    };
    let first = counts().await;
    assert!(first.iter().all(|c| *c > 0), "every table has demo rows: {first:?}");
    adapter_postgres::seed_demo_catalog(&f.pool).await.unwrap();
    assert_eq!(counts().await, first, "a second seed adds nothing");
    assert_eq!(
        count(&f.pool, "SELECT count(*) FROM users u WHERE balance <> COALESCE((SELECT sum(amount) FROM point_history h WHERE h.user_id = u.id), 0)").await,
        0,
        "every seeded balance is explained by its ledger"
    );
}

fn idempotency_key(fingerprint: u8) -> application::ports::IdempotencyKey {
    application::ports::IdempotencyKey { scope: "user:1".into(), key: "k".into(), fingerprint: vec![fingerprint] }
}

#[tokio::test]
async fn a_second_claim_of_a_key_waits_for_the_first_and_replays_its_commit() {
    use application::ports::{Claim, Reply};
    let f = fixture().await;
    let mut first = f.uow.begin().await.unwrap();
    assert_eq!(first.idempotency().claim(&idempotency_key(1)).await.unwrap(), Claim::Claimed);

    let uow = f.uow.clone();
    let second = tokio::spawn(async move {
        let mut work = uow.begin().await.unwrap();
        let claim = work.idempotency().claim(&idempotency_key(1)).await.unwrap();
        work.rollback().await.unwrap();
        claim
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!second.is_finished(), "the second claim waits while the first holds the key");
    let reply = Reply(b"{\"ok\":true}".to_vec());
    first.idempotency().complete(&idempotency_key(1), &reply).await.unwrap();
    first.commit().await.unwrap();
    assert_eq!(second.await.unwrap(), Claim::Replay(reply));

    // The same key with another fingerprint is refused.
    let mut other = f.uow.begin().await.unwrap();
    assert_eq!(other.idempotency().claim(&idempotency_key(2)).await.unwrap(), Claim::Reused);
    other.rollback().await.unwrap();
}

#[tokio::test]
async fn a_rolled_back_claim_leaves_the_key_free_and_expired_keys_are_deleted() {
    use application::ports::Claim;
    let f = fixture().await;
    let mut first = f.uow.begin().await.unwrap();
    assert_eq!(first.idempotency().claim(&idempotency_key(1)).await.unwrap(), Claim::Claimed);
    first.rollback().await.unwrap();
    assert_eq!(count(&f.pool, "SELECT count(*) FROM idempotency_keys").await, 0, "nothing stored");
    let mut again = f.uow.begin().await.unwrap();
    assert_eq!(again.idempotency().claim(&idempotency_key(2)).await.unwrap(), Claim::Claimed);
    again.rollback().await.unwrap();

    let mut conn = f.pool.get().await.unwrap();
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut *conn,
        "INSERT INTO idempotency_keys (scope, key, fingerprint, body, created_at) \
         SELECT 'user:' || g, 'k', '\\x00', '{}', now() - interval '2 days' FROM generate_series(1, 5) g; \
         INSERT INTO idempotency_keys (scope, key, fingerprint, body) VALUES ('user:9', 'k', '\\x00', '{}');",
    )
    .await
    .unwrap();
    drop(conn);
    let mut work = f.uow.begin().await.unwrap();
    assert_eq!(work.idempotency().delete_expired(3).await.unwrap(), 3, "a batch at most");
    assert_eq!(work.idempotency().delete_expired(100).await.unwrap(), 2);
    work.commit().await.unwrap();
    assert_eq!(count(&f.pool, "SELECT count(*) FROM idempotency_keys").await, 1, "the fresh key stays");
}

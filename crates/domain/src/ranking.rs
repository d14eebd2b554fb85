//! Best products: the sales window, the ranking, and when the ranking is recomputed.

use chrono::{DateTime, Days, LocalResult, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::ids::ProductId;

/// How many products the ranking keeps.
pub const TOP_N: usize = 5;
/// How many days the window spans.
pub const WINDOW_DAYS: u64 = 3;

/// The half-open window `[from, to)` whose sales are ranked: `to` is a midnight in the
/// service's time zone and `from` the midnight three calendar days earlier in that zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SalesWindow {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

impl SalesWindow {
    /// The window that ends at 00:00 of `date` in `tz`.
    pub fn ending_on(date: NaiveDate, tz: Tz) -> Self {
        let start = date.checked_sub_days(Days::new(WINDOW_DAYS)).unwrap_or(NaiveDate::MIN);
        Self { from: start_of_day(start, tz), to: start_of_day(date, tz) }
    }

    /// The window that ends at the latest midnight at or before `at` in `tz`.
    pub fn latest_at(at: DateTime<Utc>, tz: Tz) -> Self {
        let today = at.with_timezone(&tz).date_naive();
        let window = Self::ending_on(today, tz);
        if window.to <= at {
            window
        } else {
            // Only when midnight itself was skipped and `at` falls before the first
            // instant of the local day.
            Self::ending_on(today.pred_opt().unwrap_or(today), tz)
        }
    }

    /// A window read back from storage: `from` must come before `to`.
    pub fn between(from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Self, InvalidSalesWindow> {
        if from < to { Ok(Self { from, to }) } else { Err(InvalidSalesWindow { from, to }) }
    }

    pub const fn from(&self) -> DateTime<Utc> {
        self.from
    }

    pub const fn to(&self) -> DateTime<Utc> {
        self.to
    }

    /// `from` is inside the window, `to` is not.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at < self.to
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a sales window must start ({from}) before it ends ({to})")]
pub struct InvalidSalesWindow {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The first instant of `date` in `tz`: its midnight, or the first instant after a
/// daylight-saving gap that swallowed midnight; the earlier one when midnight repeats.
pub fn start_of_day(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let mut local = date.and_time(chrono::NaiveTime::MIN);
    // A gap is at most a few hours; step through it a quarter of an hour at a time.
    for _ in 0..96 {
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => return t.with_timezone(&Utc),
            LocalResult::None => local += chrono::Duration::minutes(15),
        }
    }
    Utc.from_utc_datetime(&date.and_time(chrono::NaiveTime::MIN))
}

/// The next instant, strictly after `after`, at which the daily ranking runs: the start
/// of the following local day in `tz`.
pub fn next_run_after(after: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let today = after.with_timezone(&tz).date_naive();
    let mut day = today;
    loop {
        let Some(next) = day.succ_opt() else {
            return after;
        };
        let start = start_of_day(next, tz);
        if start > after {
            return start;
        }
        day = next;
    }
}

/// Units of one product sold in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductSales {
    pub product_id: ProductId,
    pub sold_quantity: i64,
}

/// One place of the ranking, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankedProduct {
    pub rank: u8,
    pub product_id: ProductId,
    pub sold_quantity: i64,
}

/// The top five by units sold; ties go to the lower product id. Products that sold
/// nothing are not ranked.
pub fn rank_best(mut sales: Vec<ProductSales>) -> Vec<RankedProduct> {
    sales.retain(|s| s.sold_quantity > 0);
    sales.sort_unstable_by(|a, b| b.sold_quantity.cmp(&a.sold_quantity).then(a.product_id.cmp(&b.product_id)));
    sales
        .into_iter()
        .take(TOP_N)
        .zip(1u8..)
        .map(|(s, rank)| RankedProduct { rank, product_id: s.product_id, sold_quantity: s.sold_quantity })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use chrono_tz::{America::New_York, Asia::Seoul};

    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn sales(id: i64, sold: i64) -> ProductSales {
        ProductSales { product_id: ProductId::new(id).unwrap(), sold_quantity: sold }
    }

    #[test]
    fn window_ends_at_seoul_midnight_and_spans_three_days() {
        let window = SalesWindow::ending_on(date(2026, 11, 26), Seoul);
        assert_eq!(window.to(), utc("2026-11-25T15:00:00Z"));
        assert_eq!(window.from(), utc("2026-11-22T15:00:00Z"));
    }

    #[test]
    fn window_boundaries() {
        let window = SalesWindow::ending_on(date(2026, 11, 26), Seoul);
        assert!(window.contains(window.to() - Duration::seconds(1)), "23:59:59 the day before `to` is in");
        assert!(!window.contains(window.to()), "`to` itself is out");
        assert!(window.contains(window.from()), "`from` exactly is in");
        assert!(!window.contains(window.from() - Duration::seconds(1)));
    }

    #[test]
    fn latest_window_ends_at_the_last_midnight() {
        let tz = Seoul;
        assert_eq!(SalesWindow::latest_at(utc("2026-11-26T03:00:00Z"), tz).to(), utc("2026-11-25T15:00:00Z"));
        assert_eq!(SalesWindow::latest_at(utc("2026-11-25T15:00:00Z"), tz).to(), utc("2026-11-25T15:00:00Z"));
        assert_eq!(SalesWindow::latest_at(utc("2026-11-25T14:59:59Z"), tz).to(), utc("2026-11-24T15:00:00Z"));
    }

    #[test]
    fn next_run_is_the_next_local_midnight_across_a_month_end() {
        assert_eq!(next_run_after(utc("2026-11-30T16:00:00Z"), Seoul), utc("2026-12-01T15:00:00Z"));
        assert_eq!(next_run_after(utc("2026-11-30T14:59:59Z"), Seoul), utc("2026-11-30T15:00:00Z"));
        assert_eq!(next_run_after(utc("2026-11-30T15:00:00Z"), Seoul), utc("2026-12-01T15:00:00Z"), "strictly after");
        assert_eq!(next_run_after(utc("2026-12-31T15:30:00Z"), Seoul), utc("2027-01-01T15:00:00Z"));
    }

    #[test]
    fn next_run_follows_daylight_saving_in_new_york() {
        // 2026-03-08: clocks go from 02:00 EST to 03:00 EDT; midnight moves from 05:00Z to 04:00Z.
        assert_eq!(next_run_after(utc("2026-03-08T12:00:00Z"), New_York), utc("2026-03-09T04:00:00Z"));
        assert_eq!(next_run_after(utc("2026-03-07T12:00:00Z"), New_York), utc("2026-03-08T05:00:00Z"));
        // 2026-11-01: back from EDT to EST.
        assert_eq!(next_run_after(utc("2026-11-01T12:00:00Z"), New_York), utc("2026-11-02T05:00:00Z"));
        let window = SalesWindow::ending_on(date(2026, 3, 10), New_York);
        assert_eq!(window.to(), utc("2026-03-10T04:00:00Z"));
        assert_eq!(window.from(), utc("2026-03-07T05:00:00Z"), "three calendar days, one of them 23 hours long");
    }

    #[test]
    fn ranking_orders_by_quantity_then_lower_id() {
        let ranked = rank_best(vec![
            sales(4, 10),
            sales(2, 30),
            sales(9, 10),
            sales(1, 10),
            sales(7, 50),
            sales(3, 1),
            sales(8, 10),
        ]);
        let ids: Vec<i64> = ranked.iter().map(|r| r.product_id.get()).collect();
        assert_eq!(ids, vec![7, 2, 1, 4, 8]);
        assert_eq!(ranked.iter().map(|r| r.rank).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
        assert_eq!(ranked[0].sold_quantity, 50);
    }

    #[test]
    fn fewer_sold_products_give_fewer_places() {
        assert_eq!(rank_best(vec![sales(3, 2), sales(5, 0)]).len(), 1);
        assert!(rank_best(vec![]).is_empty());
    }
}

//! Coupons: limited first-come campaigns, and what a held coupon takes off an order.

use chrono::{DateTime, Utc};

use crate::ids::{CouponId, UserId};
use crate::money::Money;

/// How a coupon discounts an order total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscountPolicy {
    /// A fixed amount off, never more than the total.
    Fixed(Money),
    /// A percentage (1..=100) off, rounded down to the won.
    Percent(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDiscount {
    #[error("a fixed discount must be at least 1 KRW, got {0}")]
    FixedNotPositive(i64),
    #[error("a percent discount must be between 1 and 100, got {0}")]
    PercentOutOfRange(i64),
}

impl DiscountPolicy {
    pub fn fixed(krw: i64) -> Result<Self, InvalidDiscount> {
        match Money::new(krw) {
            Ok(amount) if krw >= 1 => Ok(Self::Fixed(amount)),
            _ => Err(InvalidDiscount::FixedNotPositive(krw)),
        }
    }

    pub fn percent(value: i64) -> Result<Self, InvalidDiscount> {
        u8::try_from(value)
            .ok()
            .filter(|p| (1..=100).contains(p))
            .map(Self::Percent)
            .ok_or(InvalidDiscount::PercentOutOfRange(value))
    }

    /// The amount taken off `total`: never more than `total` itself.
    pub fn discount_for(self, total: Money) -> Money {
        match self {
            Self::Fixed(amount) => amount.min(total),
            Self::Percent(percent) => {
                // i128 keeps total × percent exact for any i64 total.
                let off = i128::from(total.krw()) * i128::from(percent) / 100;
                // off <= total, so it fits back into an i64.
                Money::new(i64::try_from(off).unwrap_or(total.krw())).unwrap_or(total)
            }
        }
    }
}

/// The inclusive instant range `[from, until]` in which a coupon may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidityWindow {
    from: DateTime<Utc>,
    until: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("validUntil ({until}) must be after validFrom ({from})")]
pub struct InvalidValidityWindow {
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

impl ValidityWindow {
    pub fn new(from: DateTime<Utc>, until: DateTime<Utc>) -> Result<Self, InvalidValidityWindow> {
        if until > from { Ok(Self { from, until }) } else { Err(InvalidValidityWindow { from, until }) }
    }

    pub const fn from(&self) -> DateTime<Utc> {
        self.from
    }

    pub const fn until(&self) -> DateTime<Utc> {
        self.until
    }

    /// Both ends are inclusive.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.from <= at && at <= self.until
    }

    /// Whether `from` has come at `at`.
    pub fn has_started(&self, at: DateTime<Utc>) -> bool {
        at >= self.from
    }

    /// Whether `until` has passed at `at`.
    pub fn has_ended(&self, at: DateTime<Utc>) -> bool {
        at > self.until
    }
}

/// A coupon campaign: how it discounts, for whom, and how many are left. At least one
/// was issuable, and what remains is between none and all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    id: CouponId,
    name: String,
    discount: DiscountPolicy,
    min_order_amount: Money,
    total_quantity: i32,
    remaining_quantity: i32,
    validity: ValidityWindow,
}

/// The fields of a campaign before [`Coupon::new`] has checked its quantities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponParts {
    pub id: CouponId,
    pub name: String,
    pub discount: DiscountPolicy,
    pub min_order_amount: Money,
    pub total_quantity: i32,
    pub remaining_quantity: i32,
    pub validity: ValidityWindow,
}

/// Campaign quantities that do not agree with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InconsistentCoupon {
    #[error("a campaign's total quantity must be at least 1, got {0}")]
    TotalQuantity(i32),
    #[error("a campaign's remaining quantity must be between 0 and its total {total}, got {remaining}")]
    RemainingQuantity { remaining: i32, total: i32 },
}

/// Why a coupon cannot be issued to one more user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IssueRefusal {
    #[error("coupon {0} has no remaining quantity")]
    SoldOut(CouponId),
    #[error("coupon {0} is no longer valid")]
    Expired(CouponId),
    #[error("coupon {0} is not valid yet")]
    NotYetValid(CouponId),
}

impl Coupon {
    /// A campaign from `parts`, refused unless `1 <= total` and `0 <= remaining <= total`.
    pub fn new(parts: CouponParts) -> Result<Self, InconsistentCoupon> {
        let CouponParts { id, name, discount, min_order_amount, total_quantity, remaining_quantity, validity } = parts;
        if total_quantity < 1 {
            return Err(InconsistentCoupon::TotalQuantity(total_quantity));
        }
        if !(0..=total_quantity).contains(&remaining_quantity) {
            return Err(InconsistentCoupon::RemainingQuantity { remaining: remaining_quantity, total: total_quantity });
        }
        Ok(Self { id, name, discount, min_order_amount, total_quantity, remaining_quantity, validity })
    }

    pub const fn id(&self) -> CouponId {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub const fn discount(&self) -> DiscountPolicy {
        self.discount
    }

    pub const fn min_order_amount(&self) -> Money {
        self.min_order_amount
    }

    pub const fn total_quantity(&self) -> i32 {
        self.total_quantity
    }

    pub const fn remaining_quantity(&self) -> i32 {
        self.remaining_quantity
    }

    pub const fn validity(&self) -> ValidityWindow {
        self.validity
    }

    /// The rule of a first-come issue: the campaign has not ended and one remains.
    /// An ended campaign is reported as expired even when it also sold out.
    ///
    /// Stores that decide the race with a conditional update apply exactly this
    /// predicate in the database and use this function to name the refusal.
    pub fn check_issuable(&self, at: DateTime<Utc>) -> Result<(), IssueRefusal> {
        if self.validity.has_ended(at) {
            Err(IssueRefusal::Expired(self.id))
        } else if !self.validity.has_started(at) {
            // A campaign cannot sell out before it starts.
            Err(IssueRefusal::NotYetValid(self.id))
        } else if self.remaining_quantity <= 0 {
            Err(IssueRefusal::SoldOut(self.id))
        } else {
            Ok(())
        }
    }
}

/// A campaign to be created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCoupon {
    pub name: String,
    pub discount: DiscountPolicy,
    pub min_order_amount: Money,
    pub total_quantity: i32,
    pub validity: ValidityWindow,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCoupon {
    #[error("invalid coupon name: {0}")]
    Name(#[from] crate::text::InvalidName),
    #[error("totalQuantity must be between 1 and {max}, got {0}", max = i32::MAX)]
    TotalQuantity(i64),
    #[error("minOrderAmount cannot be negative, got {0}")]
    MinOrderAmount(i64),
}

impl NewCoupon {
    pub fn new(
        name: &str,
        discount: DiscountPolicy,
        min_order_amount: i64,
        total_quantity: i64,
        validity: ValidityWindow,
    ) -> Result<Self, InvalidCoupon> {
        let name = crate::text::name(name, 200)?;
        let total_quantity = i32::try_from(total_quantity)
            .ok()
            .filter(|q| *q >= 1)
            .ok_or(InvalidCoupon::TotalQuantity(total_quantity))?;
        let min_order_amount =
            Money::new(min_order_amount).map_err(|_| InvalidCoupon::MinOrderAmount(min_order_amount))?;
        Ok(Self { name, discount, min_order_amount, total_quantity, validity })
    }
}

/// A coupon issued to one user, with its campaign's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCoupon {
    pub coupon: Coupon,
    pub user_id: UserId,
    pub issued_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// Why a held coupon cannot be applied to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CouponRefusal {
    #[error("coupon {0} was already used")]
    AlreadyUsed(CouponId),
    #[error("coupon {0} is not valid at this time")]
    OutsideValidity(CouponId),
    #[error("coupon {coupon} needs an order of at least {minimum}, the order totals {total}")]
    BelowMinimum { coupon: CouponId, minimum: Money, total: Money },
}

impl IssuedCoupon {
    /// What this coupon takes off an order of `total` placed at `at`:
    /// unused, inside its validity window, and `total` at least the minimum.
    pub fn discount_for(&self, total: Money, at: DateTime<Utc>) -> Result<Money, CouponRefusal> {
        let id = self.coupon.id;
        if self.used_at.is_some() {
            return Err(CouponRefusal::AlreadyUsed(id));
        }
        if !self.coupon.validity.contains(at) {
            return Err(CouponRefusal::OutsideValidity(id));
        }
        if total < self.coupon.min_order_amount {
            return Err(CouponRefusal::BelowMinimum { coupon: id, minimum: self.coupon.min_order_amount, total });
        }
        Ok(self.coupon.discount.discount_for(total))
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::testing::{CouponBuilder, at, cid, money};

    fn coupon(discount: DiscountPolicy, min: i64, remaining: i32) -> Coupon {
        CouponBuilder::new().discount(discount).min_order_amount(min).remaining_quantity(remaining).build()
    }

    fn held(discount: DiscountPolicy, min: i64) -> IssuedCoupon {
        CouponBuilder::new().discount(discount).min_order_amount(min).remaining_quantity(10).held()
    }

    fn parts(total_quantity: i32, remaining_quantity: i32) -> CouponParts {
        CouponParts {
            id: cid(7),
            name: "welcome".into(),
            discount: DiscountPolicy::fixed(1_000).unwrap(),
            min_order_amount: Money::ZERO,
            total_quantity,
            remaining_quantity,
            validity: ValidityWindow::new(at(0), at(100)).unwrap(),
        }
    }

    #[test]
    fn a_campaign_needs_at_least_one_in_total() {
        assert_eq!(Coupon::new(parts(0, 0)), Err(InconsistentCoupon::TotalQuantity(0)));
        assert_eq!(Coupon::new(parts(-1, 0)), Err(InconsistentCoupon::TotalQuantity(-1)));
    }

    #[test]
    fn a_campaign_cannot_have_more_remaining_than_its_total() {
        assert_eq!(Coupon::new(parts(10, 11)), Err(InconsistentCoupon::RemainingQuantity { remaining: 11, total: 10 }));
    }

    #[test]
    fn a_campaign_cannot_have_less_than_none_remaining() {
        assert_eq!(Coupon::new(parts(10, -1)), Err(InconsistentCoupon::RemainingQuantity { remaining: -1, total: 10 }));
    }

    #[test]
    fn a_campaign_with_none_to_all_remaining_is_accepted() {
        for remaining in [0, 1, 10] {
            let coupon = Coupon::new(parts(10, remaining)).unwrap();
            assert_eq!((coupon.total_quantity(), coupon.remaining_quantity()), (10, remaining));
        }
        let coupon = Coupon::new(parts(1, 1)).unwrap();
        assert_eq!(coupon.id(), cid(7));
        assert_eq!(coupon.name(), "welcome");
        assert_eq!(coupon.discount(), DiscountPolicy::fixed(1_000).unwrap());
        assert_eq!(coupon.min_order_amount(), Money::ZERO);
        assert_eq!(coupon.validity(), ValidityWindow::new(at(0), at(100)).unwrap());
    }

    #[test]
    fn fixed_discount_is_capped_at_the_total() {
        let policy = DiscountPolicy::fixed(3_000).unwrap();
        assert_eq!(policy.discount_for(money(10_000)), money(3_000));
        assert_eq!(policy.discount_for(money(2_000)), money(2_000));
        assert_eq!(policy.discount_for(Money::ZERO), Money::ZERO);
    }

    #[test]
    fn percent_discount_rounds_down() {
        let ten = DiscountPolicy::percent(10).unwrap();
        assert_eq!(ten.discount_for(money(1_999)), money(199));
        assert_eq!(DiscountPolicy::percent(33).unwrap().discount_for(money(100)), money(33));
        assert_eq!(DiscountPolicy::percent(1).unwrap().discount_for(money(99)), Money::ZERO);
    }

    #[test]
    fn a_hundred_percent_takes_the_whole_total() {
        let all = DiscountPolicy::percent(100).unwrap();
        assert_eq!(all.discount_for(money(12_345)), money(12_345));
        assert_eq!(all.discount_for(Money::new(i64::MAX).unwrap()), Money::new(i64::MAX).unwrap());
    }

    #[test]
    fn discount_values_are_validated() {
        assert_eq!(DiscountPolicy::percent(0), Err(InvalidDiscount::PercentOutOfRange(0)));
        assert_eq!(DiscountPolicy::percent(101), Err(InvalidDiscount::PercentOutOfRange(101)));
        assert_eq!(DiscountPolicy::fixed(0), Err(InvalidDiscount::FixedNotPositive(0)));
        assert_eq!(DiscountPolicy::fixed(-10), Err(InvalidDiscount::FixedNotPositive(-10)));
    }

    #[test]
    fn validity_window_is_inclusive_and_ordered() {
        let window = ValidityWindow::new(at(0), at(100)).unwrap();
        assert!(!window.contains(at(-1)));
        assert!(window.contains(at(0)));
        assert!(window.contains(at(100)));
        assert!(!window.contains(at(100) + Duration::nanoseconds(1)));
        assert!(!window.has_ended(at(100)));
        assert!(window.has_ended(at(101)));
        assert!(ValidityWindow::new(at(5), at(5)).is_err());
        assert!(ValidityWindow::new(at(6), at(5)).is_err());
    }

    #[test]
    fn issue_requires_remaining_quantity_and_a_campaign_that_has_started_and_not_ended() {
        let fixed = DiscountPolicy::fixed(1_000).unwrap();
        assert_eq!(coupon(fixed, 0, 1).check_issuable(at(100)), Ok(()));
        let id = CouponId::new(7).unwrap();
        // docs/API.md, "Coupons": a campaign cannot sell out before it starts.
        assert_eq!(coupon(fixed, 0, 1).check_issuable(at(-1)), Err(IssueRefusal::NotYetValid(id)));
        assert_eq!(coupon(fixed, 0, 1).check_issuable(at(0)), Ok(()), "from its first instant");
        assert_eq!(coupon(fixed, 0, 0).check_issuable(at(-1)), Err(IssueRefusal::NotYetValid(id)));
        assert_eq!(coupon(fixed, 0, 0).check_issuable(at(50)), Err(IssueRefusal::SoldOut(id)));
        assert_eq!(coupon(fixed, 0, 5).check_issuable(at(101)), Err(IssueRefusal::Expired(id)));
        assert_eq!(coupon(fixed, 0, 0).check_issuable(at(101)), Err(IssueRefusal::Expired(id)));
    }

    #[test]
    fn held_coupon_applies_only_when_unused_valid_and_above_minimum() {
        let id = CouponId::new(7).unwrap();
        let coupon = held(DiscountPolicy::fixed(500).unwrap(), 10_000);
        assert_eq!(coupon.discount_for(money(10_000), at(50)), Ok(money(500)));
        assert_eq!(
            coupon.discount_for(money(9_999), at(50)),
            Err(CouponRefusal::BelowMinimum { coupon: id, minimum: money(10_000), total: money(9_999) })
        );
        assert_eq!(coupon.discount_for(money(20_000), at(-1)), Err(CouponRefusal::OutsideValidity(id)));
        assert_eq!(coupon.discount_for(money(20_000), at(101)), Err(CouponRefusal::OutsideValidity(id)));
        assert_eq!(coupon.discount_for(money(20_000), at(0)), Ok(money(500)));
        assert_eq!(coupon.discount_for(money(20_000), at(100)), Ok(money(500)));
        let used = IssuedCoupon { used_at: Some(at(10)), ..coupon };
        assert_eq!(used.discount_for(money(20_000), at(50)), Err(CouponRefusal::AlreadyUsed(id)));
    }

    #[test]
    fn new_coupon_validates_its_numbers() {
        let window = ValidityWindow::new(at(0), at(1)).unwrap();
        let fixed = DiscountPolicy::fixed(1).unwrap();
        assert!(NewCoupon::new("ok", fixed, 0, 1, window).is_ok());
        assert_eq!(NewCoupon::new("ok", fixed, 0, 0, window), Err(InvalidCoupon::TotalQuantity(0)));
        assert_eq!(NewCoupon::new("ok", fixed, -1, 1, window), Err(InvalidCoupon::MinOrderAmount(-1)));
        assert_eq!(
            NewCoupon::new("  ", fixed, 0, 1, window),
            Err(InvalidCoupon::Name(crate::text::InvalidName::Blank))
        );
    }
}

//! Points: a user's balance in KRW, what a charge may add and what a payment may take.

use crate::money::Money;

/// The most one charge may add, inclusive.
pub const MAX_CHARGE_KRW: i64 = 1_000_000;
/// The most a balance may hold, inclusive.
pub const MAX_BALANCE_KRW: i64 = 5_000_000;

/// The amount of one charge: 1..=1,000,000 KRW.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChargeAmount(Money);

/// Why a raw amount is not a valid charge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidChargeAmount {
    #[error("a charge must be at least 1 KRW, got {0}")]
    NotPositive(i64),
    #[error("a single charge is at most {MAX_CHARGE_KRW} KRW, got {0}")]
    AboveLimit(i64),
}

impl ChargeAmount {
    pub const fn new(krw: i64) -> Result<Self, InvalidChargeAmount> {
        if krw < 1 {
            Err(InvalidChargeAmount::NotPositive(krw))
        } else if krw > MAX_CHARGE_KRW {
            Err(InvalidChargeAmount::AboveLimit(krw))
        } else {
            Ok(Self(Money::new_unchecked(krw)))
        }
    }

    pub const fn money(self) -> Money {
        self.0
    }
}

/// A stored balance: 0..=5,000,000 KRW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Balance(Money);

/// A raw value outside the balance range (only a corrupted store can produce one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a balance must be within 0..={MAX_BALANCE_KRW} KRW, got {0}")]
pub struct InvalidBalance(pub i64);

/// A charge or a refund that would lift the balance above the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("balance {balance} plus {added} would exceed the cap of {MAX_BALANCE_KRW} KRW")]
pub struct BalanceLimitExceeded {
    pub balance: Money,
    pub added: Money,
}

/// A payment larger than the balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("balance {balance} is less than the {required} required")]
pub struct InsufficientBalance {
    pub balance: Money,
    pub required: Money,
}

impl Balance {
    pub const ZERO: Self = Self(Money::ZERO);
    /// The cap: no balance is above it.
    pub const MAX: Self = Self(Money::new_unchecked(MAX_BALANCE_KRW));

    pub const fn new(krw: i64) -> Result<Self, InvalidBalance> {
        if krw >= 0 && krw <= MAX_BALANCE_KRW { Ok(Self(Money::new_unchecked(krw))) } else { Err(InvalidBalance(krw)) }
    }

    pub const fn money(self) -> Money {
        self.0
    }

    pub const fn krw(self) -> i64 {
        self.0.krw()
    }

    /// The balance after `charge`; the cap is inclusive.
    pub fn charge(self, charge: ChargeAmount) -> Result<Self, BalanceLimitExceeded> {
        self.add(charge.money())
    }

    /// The balance after a refund of `amount` (what an order's payment took): like a
    /// charge, it may reach the cap but not pass it.
    pub fn refund(self, amount: Money) -> Result<Self, BalanceLimitExceeded> {
        self.add(amount)
    }

    fn add(self, added: Money) -> Result<Self, BalanceLimitExceeded> {
        self.0
            .checked_add(added)
            .and_then(|sum| Self::new(sum.krw()).ok())
            .ok_or(BalanceLimitExceeded { balance: self.0, added })
    }

    /// The balance after paying `amount`; paying exactly the balance is allowed.
    pub const fn spend(self, amount: Money) -> Result<Self, InsufficientBalance> {
        match self.0.checked_sub(amount) {
            Some(after) => Ok(Self(after)),
            None => Err(InsufficientBalance { balance: self.0, required: amount }),
        }
    }
}

/// What moved a balance: a charge adds, a use pays for an order, a refund gives an
/// order's payment back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointEntryKind {
    Charge,
    Use,
    Refund,
}

/// One line of a user's ledger: what changed the balance and what it became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointEntry {
    pub id: i64,
    pub user_id: crate::UserId,
    pub kind: PointEntryKind,
    pub amount: Money,
    pub balance_after: Balance,
    /// The order a `Use` paid for or a `Refund` gave back.
    pub order_id: Option<crate::OrderId>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balance(krw: i64) -> Balance {
        Balance::new(krw).unwrap_or_else(|e| panic!("{e}"))
    }

    fn charge(krw: i64) -> ChargeAmount {
        ChargeAmount::new(krw).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn charge_amount_boundaries() {
        assert_eq!(ChargeAmount::new(0), Err(InvalidChargeAmount::NotPositive(0)));
        assert_eq!(ChargeAmount::new(-1), Err(InvalidChargeAmount::NotPositive(-1)));
        assert_eq!(ChargeAmount::new(1).map(|c| c.money().krw()), Ok(1));
        assert_eq!(ChargeAmount::new(1_000_000).map(|c| c.money().krw()), Ok(1_000_000));
        assert_eq!(ChargeAmount::new(1_000_001), Err(InvalidChargeAmount::AboveLimit(1_000_001)));
        assert_eq!(ChargeAmount::new(i64::MAX), Err(InvalidChargeAmount::AboveLimit(i64::MAX)));
    }

    #[test]
    fn a_charge_may_reach_the_cap_exactly() {
        assert_eq!(balance(4_000_000).charge(charge(1_000_000)), Ok(balance(5_000_000)));
        assert_eq!(balance(4_999_999).charge(charge(1)), Ok(balance(5_000_000)));
    }

    #[test]
    fn a_charge_one_above_the_cap_is_refused() {
        assert_eq!(
            balance(5_000_000).charge(charge(1)),
            Err(BalanceLimitExceeded { balance: balance(5_000_000).money(), added: charge(1).money() })
        );
        assert!(balance(4_000_001).charge(charge(1_000_000)).is_err());
    }

    #[test]
    fn a_refund_may_reach_the_cap_but_not_pass_it() {
        let price = |krw| Money::new(krw).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(balance(0).refund(price(5_000_000)), Ok(balance(5_000_000)));
        assert_eq!(balance(1_000).refund(price(0)), Ok(balance(1_000)), "a fully discounted order refunds nothing");
        assert_eq!(
            balance(4_000_000).refund(price(1_000_001)),
            Err(BalanceLimitExceeded { balance: price(4_000_000), added: price(1_000_001) })
        );
        assert!(balance(1).refund(Money::new(i64::MAX).unwrap()).is_err(), "no overflow, a refusal");
    }

    #[test]
    fn balance_range_is_inclusive() {
        assert!(Balance::new(0).is_ok());
        assert!(Balance::new(MAX_BALANCE_KRW).is_ok());
        assert_eq!(Balance::new(-1), Err(InvalidBalance(-1)));
        assert_eq!(Balance::new(MAX_BALANCE_KRW + 1), Err(InvalidBalance(MAX_BALANCE_KRW + 1)));
    }

    #[test]
    fn spending_never_goes_below_zero() {
        let price = |krw| Money::new(krw).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(balance(1_000).spend(price(1_000)), Ok(Balance::ZERO));
        assert_eq!(balance(1_000).spend(price(400)), Ok(balance(600)));
        assert_eq!(
            balance(999).spend(price(1_000)),
            Err(InsufficientBalance { balance: price(999), required: price(1_000) })
        );
    }
}

//! Amounts of money: whole KRW, never negative.

use std::fmt;
use std::ops::Add;

/// A non-negative amount of KRW. Arithmetic that could leave that range is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64);

/// A raw value that is not a valid amount of money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an amount of money cannot be negative, got {0}")]
pub struct NegativeMoney(pub i64);

impl Money {
    pub const ZERO: Self = Self(0);

    pub const fn new(krw: i64) -> Result<Self, NegativeMoney> {
        if krw >= 0 { Ok(Self(krw)) } else { Err(NegativeMoney(krw)) }
    }

    /// For callers that have already proven `krw >= 0`.
    pub(crate) const fn new_unchecked(krw: i64) -> Self {
        debug_assert!(krw >= 0);
        Self(krw)
    }

    pub const fn krw(self) -> i64 {
        self.0
    }

    /// `self − other`, or `None` when the result would be negative.
    pub const fn checked_sub(self, other: Self) -> Option<Self> {
        if self.0 >= other.0 { Some(Self(self.0 - other.0)) } else { None }
    }

    /// `self × factor`, or `None` on overflow.
    pub fn checked_mul(self, factor: i64) -> Option<Self> {
        self.0.checked_mul(factor).and_then(|v| Self::new(v).ok())
    }

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }
}

impl Add for Money {
    type Output = Option<Self>;
    fn add(self, rhs: Self) -> Option<Self> {
        self.checked_add(rhs)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} KRW", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_never_negative() {
        assert_eq!(Money::new(-1), Err(NegativeMoney(-1)));
        assert_eq!(Money::new(0), Ok(Money::ZERO));
        assert_eq!(Money::new(5).ok().and_then(|m| m.checked_sub(Money(6))), None);
        assert_eq!(Money(7).checked_sub(Money(7)), Some(Money::ZERO));
    }

    #[test]
    fn multiplication_and_addition_detect_overflow() {
        assert_eq!(Money(i64::MAX).checked_mul(2), None);
        assert_eq!(Money(i64::MAX) + Money(1), None);
        assert_eq!(Money(3).checked_mul(4), Some(Money(12)));
    }
}

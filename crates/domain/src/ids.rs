//! Identifiers: positive 64-bit integers, one type per entity so they cannot be mixed up.

use std::fmt;

/// A raw value that is not a valid identifier (zero or negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an id must be a positive integer, got {0}")]
pub struct InvalidId(pub i64);

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(i64);

        impl $name {
            /// Accepts positive values only.
            pub const fn new(raw: i64) -> Result<Self, InvalidId> {
                if raw > 0 { Ok(Self(raw)) } else { Err(InvalidId(raw)) }
            }

            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl TryFrom<i64> for $name {
            type Error = InvalidId;
            fn try_from(raw: i64) -> Result<Self, InvalidId> {
                Self::new(raw)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// Identifies a user (the holder of a points balance).
    UserId
);
id_type!(
    /// Identifies a product of the catalog.
    ProductId
);
id_type!(
    /// Identifies a coupon campaign.
    CouponId
);
id_type!(
    /// Identifies an order.
    OrderId
);
id_type!(
    /// Identifies a payment.
    PaymentId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_positive_values_only() {
        assert_eq!(UserId::new(1).map(UserId::get), Ok(1));
        assert_eq!(UserId::new(i64::MAX).map(UserId::get), Ok(i64::MAX));
        assert_eq!(UserId::new(0), Err(InvalidId(0)));
        assert_eq!(ProductId::new(-5), Err(InvalidId(-5)));
    }
}

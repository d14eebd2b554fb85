//! Products of the catalog and their stock.

use crate::ids::ProductId;
use crate::money::Money;
use crate::text::InvalidName;

/// A product's name: 1..=200 characters, not blank, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductName(String);

impl ProductName {
    pub const MAX_CHARS: usize = 200;

    pub fn new(raw: &str) -> Result<Self, InvalidName> {
        crate::text::name(raw, Self::MAX_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// How many units of a product one order line asks for: at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(i32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a quantity must be between 1 and {max}, got {0}", max = Quantity::MAX)]
pub struct InvalidQuantity(pub i64);

impl Quantity {
    /// The most that stock can hold; pricing checks its arithmetic for overflow.
    pub const MAX: i32 = i32::MAX;

    pub const fn new(raw: i64) -> Result<Self, InvalidQuantity> {
        if raw >= 1 && raw <= Self::MAX as i64 {
            #[allow(clippy::cast_possible_truncation)] // bounded just above
            Ok(Self(raw as i32))
        } else {
            Err(InvalidQuantity(raw))
        }
    }

    pub const fn get(self) -> i32 {
        self.0
    }
}

/// Units available for sale: never negative. Reserved units have already left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stock(i32);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stock must be between 0 and {max}, got {0}", max = i32::MAX)]
pub struct InvalidStock(pub i64);

/// A reservation larger than what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("product {product} has {available} left, {requested} requested")]
pub struct OutOfStock {
    pub product: ProductId,
    pub available: i32,
    pub requested: i32,
}

impl Stock {
    pub fn new(raw: i64) -> Result<Self, InvalidStock> {
        i32::try_from(raw).ok().filter(|v| *v >= 0).map(Self).ok_or(InvalidStock(raw))
    }

    pub const fn get(self) -> i32 {
        self.0
    }

    /// Whether `quantity` units can be taken from this stock.
    pub const fn covers(self, quantity: Quantity) -> bool {
        self.0 >= quantity.0
    }
}

/// Maximum catalog price, so that line and order totals stay far from overflow.
pub const MAX_PRICE_KRW: i64 = 100_000_000;

/// A price the catalog accepts: 0..=100,000,000 KRW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a price must be between 0 and {MAX_PRICE_KRW} KRW, got {0}")]
pub struct InvalidPrice(pub i64);

pub fn validate_price(krw: i64) -> Result<Money, InvalidPrice> {
    if (0..=MAX_PRICE_KRW).contains(&krw) {
        Money::new(krw).map_err(|_| InvalidPrice(krw))
    } else {
        Err(InvalidPrice(krw))
    }
}

/// A product as sold: what it costs now and how many are left now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    pub id: ProductId,
    pub name: ProductName,
    pub price: Money,
    pub stock: Stock,
}

/// A product to be added to the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProduct {
    pub name: ProductName,
    pub price: Money,
    pub stock: Stock,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_is_between_one_and_the_maximum() {
        assert_eq!(Quantity::new(0), Err(InvalidQuantity(0)));
        assert_eq!(Quantity::new(-3), Err(InvalidQuantity(-3)));
        assert_eq!(Quantity::new(1).map(Quantity::get), Ok(1));
        assert_eq!(Quantity::new(i64::from(i32::MAX)).map(Quantity::get), Ok(i32::MAX));
        assert_eq!(Quantity::new(i64::from(i32::MAX) + 1), Err(InvalidQuantity(i64::from(i32::MAX) + 1)));
    }

    #[test]
    fn stock_is_never_negative_and_covers_up_to_its_size() {
        assert_eq!(Stock::new(-1), Err(InvalidStock(-1)));
        assert_eq!(Stock::new(i64::from(i32::MAX) + 1), Err(InvalidStock(i64::from(i32::MAX) + 1)));
        let stock = Stock::new(3).unwrap();
        assert!(stock.covers(Quantity::new(3).unwrap()));
        assert!(!stock.covers(Quantity::new(4).unwrap()));
    }

    #[test]
    fn prices_are_bounded() {
        assert_eq!(validate_price(0), Ok(Money::ZERO));
        assert!(validate_price(MAX_PRICE_KRW).is_ok());
        assert_eq!(validate_price(-1), Err(InvalidPrice(-1)));
        assert_eq!(validate_price(MAX_PRICE_KRW + 1), Err(InvalidPrice(MAX_PRICE_KRW + 1)));
    }

    #[test]
    fn names_are_trimmed_and_not_blank() {
        assert_eq!(ProductName::new(" Keyboard ").unwrap().as_str(), "Keyboard");
        assert_eq!(ProductName::new(""), Err(InvalidName::Blank));
        assert_eq!(ProductName::new(&"x".repeat(201)), Err(InvalidName::TooLong(200)));
    }
}

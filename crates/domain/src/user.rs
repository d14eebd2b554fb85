//! Users: the holders of points balances.

use crate::text::InvalidName;

/// A user's display name: 1..=100 characters, not blank, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub const MAX_CHARS: usize = 100;

    pub fn new(raw: &str) -> Result<Self, InvalidName> {
        crate::text::name(raw, Self::MAX_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(UserName::new("  kim ").map(|n| n.as_str().to_owned()), Ok("kim".to_owned()));
        assert_eq!(UserName::new("   "), Err(InvalidName::Blank));
        assert_eq!(UserName::new(&"a".repeat(101)), Err(InvalidName::TooLong(100)));
        assert!(UserName::new(&"가".repeat(100)).is_ok());
    }
}

/// A user and their balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: crate::UserId,
    pub name: String,
    pub balance: crate::points::Balance,
}

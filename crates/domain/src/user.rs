//! Users: the holders of points balances.

/// A user's display name: 1..=100 characters, not blank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUserName {
    #[error("a user name cannot be blank")]
    Blank,
    #[error("a user name is at most {max} characters", max = UserName::MAX_CHARS)]
    TooLong,
}

impl UserName {
    pub const MAX_CHARS: usize = 100;

    pub fn new(raw: &str) -> Result<Self, InvalidUserName> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            Err(InvalidUserName::Blank)
        } else if trimmed.chars().count() > Self::MAX_CHARS {
            Err(InvalidUserName::TooLong)
        } else {
            Ok(Self(trimmed.to_owned()))
        }
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
        assert_eq!(UserName::new("   "), Err(InvalidUserName::Blank));
        assert_eq!(UserName::new(&"a".repeat(101)), Err(InvalidUserName::TooLong));
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

//! Display names (of users, products, coupons): trimmed, not blank, bounded, and free of
//! control characters, which no one types in a name and a database may refuse (NUL).

/// Why a raw string is not a valid name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    #[error("a name cannot be blank")]
    Blank,
    #[error("a name is at most {0} characters")]
    TooLong(usize),
    #[error("a name cannot contain control characters")]
    ControlCharacter,
}

/// `raw` trimmed, when it is a valid name of at most `max_chars` characters.
pub(crate) fn name(raw: &str, max_chars: usize) -> Result<String, InvalidName> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        Err(InvalidName::Blank)
    } else if trimmed.chars().count() > max_chars {
        Err(InvalidName::TooLong(max_chars))
    } else if trimmed.chars().any(char::is_control) {
        Err(InvalidName::ControlCharacter)
    } else {
        Ok(trimmed.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_bounded_and_printable() {
        assert_eq!(name("  kim ", 10), Ok("kim".to_owned()));
        assert_eq!(name("   ", 10), Err(InvalidName::Blank));
        assert_eq!(name(&"a".repeat(11), 10), Err(InvalidName::TooLong(10)));
        assert_eq!(name(&"가".repeat(10), 10), Ok("가".repeat(10)), "characters, not bytes");
        assert_eq!(name("a\u{0}b", 10), Err(InvalidName::ControlCharacter));
        assert_eq!(name("a\nb", 10), Err(InvalidName::ControlCharacter));
    }
}

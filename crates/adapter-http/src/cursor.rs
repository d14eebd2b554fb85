//! Opaque paging cursors. A cursor names the last item of a page, tagged with the list
//! it belongs to, base64url-encoded; a string the server could not have issued — not
//! base64, another list's tag, not a positive id — is refused with 400.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::problem::ApiError;

/// Which list a cursor pages through: each list's handler module declares its own,
/// with a tag no other list uses (a cursor of one list is refused by another).
#[derive(Debug, Clone, Copy)]
pub struct CursorKind(&'static str);

impl CursorKind {
    pub const fn new(tag: &'static str) -> Self {
        Self(tag)
    }

    const fn tag(self) -> &'static str {
        self.0
    }
}

pub fn encode(kind: CursorKind, id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{}:{id}", kind.tag()))
}

pub fn decode(kind: CursorKind, cursor: &str) -> Result<i64, ApiError> {
    let invalid = || ApiError::invalid_request("cursor is not one this server issued");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
    let id = text
        .strip_prefix("v1:")
        .and_then(|rest| rest.strip_prefix(kind.tag()))
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or_else(invalid)?;
    match id.parse::<i64>() {
        Ok(id) if id > 0 && encode(kind, id) == cursor => Ok(id),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCTS: CursorKind = CursorKind::new("products");
    const POINTS: CursorKind = CursorKind::new("points");

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let cursor = encode(PRODUCTS, 42);
        assert_eq!(decode(PRODUCTS, &cursor).unwrap(), 42);
        assert!(decode(POINTS, &cursor).is_err(), "another list's cursor");
        assert!(decode(PRODUCTS, "42").is_err());
        assert!(decode(PRODUCTS, "!!!").is_err());
        assert!(decode(PRODUCTS, &URL_SAFE_NO_PAD.encode("v1:products:-3")).is_err());
        assert!(decode(PRODUCTS, &URL_SAFE_NO_PAD.encode("v1:products:007")).is_err(), "not canonical");
    }
}

//! Opaque paging cursors. A cursor names the last item of a page, tagged with the list
//! it belongs to, base64url-encoded; a string the server could not have issued — not
//! base64, another list's tag, not a positive id — is refused with 400.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::problem::ApiError;

/// Which list a cursor pages through.
#[derive(Debug, Clone, Copy)]
pub enum CursorKind {
    Products,
    PointHistory,
}

impl CursorKind {
    const fn tag(self) -> &'static str {
        match self {
            Self::Products => "products",
            Self::PointHistory => "points",
        }
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

    #[test]
    fn cursors_round_trip_and_foreign_ones_are_refused() {
        let cursor = encode(CursorKind::Products, 42);
        assert_eq!(decode(CursorKind::Products, &cursor).unwrap(), 42);
        assert!(decode(CursorKind::PointHistory, &cursor).is_err(), "another list's cursor");
        assert!(decode(CursorKind::Products, "42").is_err());
        assert!(decode(CursorKind::Products, "!!!").is_err());
        assert!(decode(CursorKind::Products, &URL_SAFE_NO_PAD.encode("v1:products:-3")).is_err());
        assert!(decode(CursorKind::Products, &URL_SAFE_NO_PAD.encode("v1:products:007")).is_err(), "not canonical");
    }
}

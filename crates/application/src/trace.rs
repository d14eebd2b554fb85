//! W3C Trace Context: the `traceparent` a request arrives with, continued by the
//! service and carried to the data platform.

use std::fmt;

/// One position in a distributed trace: the trace, the span that is the parent of what
/// comes next, and the trace flags (`01`: sampled).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

impl TraceParent {
    /// A new trace, started here: `trace_id` and `span_id` random (neither all zeros),
    /// sampled.
    pub fn start(trace_id: [u8; 16], span_id: [u8; 8]) -> Option<Self> {
        (trace_id != [0; 16] && span_id != [0; 8]).then_some(Self { trace_id, parent_id: span_id, flags: 1 })
    }

    /// A context from its parts, as an exporter assigned them; `None` for all-zero ids.
    pub fn of(trace_id: [u8; 16], span_id: [u8; 8], flags: u8) -> Option<Self> {
        (trace_id != [0; 16] && span_id != [0; 8]).then_some(Self { trace_id, parent_id: span_id, flags })
    }

    pub const fn trace_id_bytes(&self) -> [u8; 16] {
        self.trace_id
    }

    pub const fn parent_id_bytes(&self) -> [u8; 8] {
        self.parent_id
    }

    pub const fn flags(&self) -> u8 {
        self.flags
    }

    /// The same trace one span further: `span_id` (not all zeros) becomes the parent of
    /// what this span calls.
    #[must_use]
    pub fn child(self, span_id: [u8; 8]) -> Self {
        if span_id == [0; 8] { self } else { Self { parent_id: span_id, ..self } }
    }

    /// Reads a `traceparent` header (version `00`, or a later version read as `00`);
    /// `None` for anything malformed, or an all-zero trace or parent id, as the
    /// specification asks.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim();
        let mut parts = header.split('-');
        let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let version = hex::<1>(version)?[0];
        // Version 00 has exactly four parts; a later version may add more after them.
        if version == 0xff || (version == 0 && parts.next().is_some()) {
            return None;
        }
        let trace_id = hex::<16>(trace)?;
        let parent_id = hex::<8>(parent)?;
        let flags = hex::<1>(flags)?[0];
        (trace_id != [0; 16] && parent_id != [0; 8]).then_some(Self { trace_id, parent_id, flags })
    }

    /// The trace id as 32 lowercase hexadecimal digits.
    pub fn trace_id(&self) -> String {
        lower_hex(&self.trace_id)
    }

    /// The parent (span) id as 16 lowercase hexadecimal digits.
    pub fn parent_id(&self) -> String {
        lower_hex(&self.parent_id)
    }
}

/// Exactly `N` bytes from `2N` lowercase hexadecimal digits.
fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut bytes = [0; N];
    for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(bytes)
}

fn lower_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The `traceparent` header value: `00-<trace id>-<parent id>-<flags>`.
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-{:02x}", self.trace_id(), self.parent_id(), self.flags)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIVEN: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_header_is_read_and_written_back_unchanged() {
        let parent = TraceParent::parse(GIVEN).unwrap();
        assert_eq!(parent.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(parent.parent_id(), "00f067aa0ba902b7");
        assert_eq!(parent.to_string(), GIVEN);
    }

    #[test]
    fn a_child_keeps_the_trace_and_the_flags_and_names_the_new_parent() {
        let child = TraceParent::parse(GIVEN).unwrap().child([1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(child.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01");
    }

    #[test]
    fn malformed_or_all_zero_headers_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_as_version_00() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        assert_eq!(TraceParent::parse(later).unwrap().to_string(), GIVEN);
    }

    #[test]
    fn a_new_trace_needs_ids_that_are_not_all_zeros() {
        assert!(TraceParent::start([0; 16], [1; 8]).is_none());
        assert!(TraceParent::start([1; 16], [0; 8]).is_none());
        let started = TraceParent::start([0xab; 16], [0xcd; 8]).unwrap();
        assert_eq!(started.to_string(), format!("00-{}-{}-01", "ab".repeat(16), "cd".repeat(8)));
    }
}

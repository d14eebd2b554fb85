//! Keyset pages read one item long: the extra item tells, in the same query, whether
//! another page follows.

/// How many items to read for a page of `limit`.
pub(crate) fn read_limit(limit: u16) -> u16 {
    limit.saturating_add(1)
}

/// Cuts `items`, read with [`read_limit`], to one page of at most `limit` items, with the
/// key to continue from — the page's last item's — when another page follows.
pub(crate) fn one_page<T, K>(mut items: Vec<T>, limit: u16, key: impl Fn(&T) -> K) -> (Vec<T>, Option<K>) {
    if items.len() > usize::from(limit) {
        items.truncate(usize::from(limit));
        let next = items.last().map(key);
        (items, next)
    } else {
        (items, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_names_its_last_key_only_when_the_extra_item_came_back() {
        assert_eq!(one_page(vec![9, 8, 7], 2, |n| *n), (vec![9, 8], Some(8)));
        assert_eq!(one_page(vec![9, 8], 2, |n| *n), (vec![9, 8], None));
        assert_eq!(one_page(Vec::<u8>::new(), 2, |n| *n), (vec![], None));
        assert_eq!(read_limit(u16::MAX), u16::MAX, "never overflows");
    }
}

//! The search result SEARCHRES keeps (RFC 5182): one per session, in the selected
//! mailbox's view, and the sequence-set forms ESEARCH and `$` need. It holds UIDs as
//! ascending ranges, so it never has more entries than the mailbox has messages: its
//! memory is bounded by the view's own message list. Reading `$` and saving a result
//! are `command/saved_result.rs` and `command/search.rs`.

/// A saved search result: UIDs as ascending, disjoint, non-adjacent ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedResult {
    ranges: Vec<(u32, u32)>,
}

impl SavedResult {
    /// The result of these UIDs, ascending.
    pub(crate) fn from_ascending(uids: impl IntoIterator<Item = u32>) -> Self {
        Self {
            ranges: ranges(uids),
        }
    }

    /// The UIDs of these inclusive ranges, in any order, overlapping or not.
    pub(crate) fn from_ranges(mut ranges: Vec<(u32, u32)>) -> Self {
        ranges.sort_unstable();
        let mut out: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match out.last_mut() {
                Some((_, last)) if last.saturating_add(1) >= lo => *last = (*last).max(hi),
                _ => out.push((lo, hi)),
            }
        }
        Self { ranges: out }
    }

    pub(crate) fn clear(&mut self) {
        self.ranges = Vec::new();
    }

    pub(crate) fn contains(&self, uid: u32) -> bool {
        let at = self.ranges.partition_point(|&(_, hi)| hi < uid);
        self.ranges.get(at).is_some_and(|&(lo, _)| lo <= uid)
    }
}

/// Ascending numbers as ranges of consecutive ones.
pub(crate) fn ranges(numbers: impl IntoIterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for n in numbers {
        match out.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(n) => *hi = n,
            Some((_, hi)) if *hi >= n => {}
            _ => out.push((n, n)),
        }
    }
    out
}

/// Ranges in the compact form of a sequence set (`1:3,5`), as ESEARCH's ALL says them.
pub(crate) fn compact(ranges: &[(u32, u32)]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}:{hi}")
            }
        })
        .collect();
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_join_consecutive_numbers() {
        assert_eq!(ranges([1, 2, 3, 5, 7, 8]), vec![(1, 3), (5, 5), (7, 8)]);
        assert_eq!(compact(&ranges([1, 2, 3, 5, 7, 8])), "1:3,5,7:8");
        assert_eq!(
            compact(&ranges([u32::MAX - 1, u32::MAX])),
            "4294967294:4294967295"
        );
        assert!(ranges([]).is_empty());
        let saved = SavedResult::from_ascending([2, 3, 9]);
        assert!(saved.contains(2) && saved.contains(3) && saved.contains(9));
        assert!(!saved.contains(1) && !saved.contains(4) && !saved.contains(10));
        let set = SavedResult::from_ranges(vec![(7, 9), (1, 2), (3, 3), (8, 12), (20, 20)]);
        assert_eq!(set.ranges, vec![(1, 3), (7, 12), (20, 20)]);
        let top = SavedResult::from_ranges(vec![(u32::MAX, u32::MAX), (1, u32::MAX)]);
        assert_eq!(top.ranges, vec![(1, u32::MAX)]);
    }
}

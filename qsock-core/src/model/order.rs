//! The pairwise precedence of the DWCS papers: which of two eligible streams sends
//! next. The first rule that separates the two wins.

use std::cmp::Ordering;

use super::Nanos;

/// What the precedence rules look at for one stream's head packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadKey {
    /// The head packet's effective deadline `d`.
    pub deadline: Nanos,
    /// The stream's current `x'`.
    pub x: u32,
    /// The stream's current `y'`.
    pub y: u32,
    /// The head packet's global arrival sequence number (first come, first served).
    pub seq: u64,
}

impl HeadKey {
    /// The constraint `x'/y'` as a fraction; `y' = 0` counts as constraint 0.
    fn constraint(&self) -> (u64, u64) {
        if self.y == 0 {
            (0, 1)
        } else {
            (u64::from(self.x), u64::from(self.y))
        }
    }

    fn constraint_is_zero(&self) -> bool {
        self.constraint().0 == 0
    }
}

/// Compares two heads: `Less` means `a` goes first.
///
/// 1. Earliest deadline.
/// 2. Lowest `x'/y'` (cross-multiplied, exact in `u64` because both sides
///    are `u32`).
/// 3. Both constraints zero: highest `y'`.
/// 4. Equal non-zero constraints: lowest `x'`.
/// 5. Lowest arrival sequence number.
///
/// Sequence numbers are unique, so this is a total order.
pub fn compare(a: &HeadKey, b: &HeadKey) -> Ordering {
    a.deadline
        .cmp(&b.deadline)
        .then_with(|| {
            let (an, ad) = a.constraint();
            let (bn, bd) = b.constraint();
            (an * bd).cmp(&(bn * ad))
        })
        .then_with(|| {
            // Here the constraints are equal, so both are zero or neither is.
            if a.constraint_is_zero() {
                b.y.cmp(&a.y)
            } else {
                a.x.cmp(&b.x)
            }
        })
        .then_with(|| a.seq.cmp(&b.seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(deadline: Nanos, x: u32, y: u32, seq: u64) -> HeadKey {
        HeadKey {
            deadline,
            x,
            y,
            seq,
        }
    }

    /// Asserts that the rules serve `first` before `second`, and that rule
    /// `rule` is the one that should have decided.
    #[track_caller]
    fn assert_served_first(rule: u8, first: HeadKey, second: HeadKey) {
        assert_eq!(
            compare(&first, &second),
            Ordering::Less,
            "rule {rule}: {first:?} goes before {second:?}"
        );
        assert_eq!(
            compare(&second, &first),
            Ordering::Greater,
            "rule {rule}: {second:?} goes after {first:?}"
        );
    }

    #[test]
    fn each_rule_decides_its_pairs() {
        for (rule, first, second) in [
            // A looser window does not help against an earlier deadline.
            (1, key(10, 5, 5, 9), key(11, 0, 9, 0)),
            // The lowest constraint x'/y'; y' = 0 counts as constraint 0,
            // tighter than any positive x'/y'.
            (2, key(10, 1, 4, 9), key(10, 1, 3, 0)),
            (2, key(10, 0, 0, 9), key(10, 1, 3, 0)),
            // Both constraints zero: the highest y', 0/0 last.
            (3, key(10, 0, 7, 9), key(10, 0, 3, 0)),
            (3, key(10, 0, 3, 0), key(10, 0, 0, 0)),
            // Equal non-zero constraints: the lowest x'.
            (4, key(10, 1, 2, 9), key(10, 2, 4, 0)),
            // First come, first served.
            (5, key(10, 1, 2, 3), key(10, 1, 2, 4)),
            (5, key(10, 0, 0, 3), key(10, 0, 0, 4)),
        ] {
            assert_served_first(rule, first, second);
        }
    }

    #[test]
    fn extreme_windows_do_not_overflow() {
        let a = key(0, u32::MAX, u32::MAX, 0);
        let b = key(0, u32::MAX - 1, u32::MAX, 1);
        assert_served_first(2, b, a);
    }
}

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

    #[test]
    fn rule1_earliest_deadline_first() {
        // A looser window does not help against an earlier deadline.
        let a = key(10, 5, 5, 9);
        let b = key(11, 0, 9, 0);
        assert_eq!(compare(&a, &b), Ordering::Less);
        assert_eq!(compare(&b, &a), Ordering::Greater);
    }

    #[test]
    fn rule2_lowest_constraint_first() {
        let a = key(10, 1, 4, 9);
        let b = key(10, 1, 3, 0);
        assert_eq!(compare(&a, &b), Ordering::Less);
        // y' = 0 counts as constraint 0, tighter than any positive x'/y'.
        let c = key(10, 0, 0, 9);
        assert_eq!(compare(&c, &b), Ordering::Less);
    }

    #[test]
    fn rule3_both_zero_highest_y_first() {
        let a = key(10, 0, 7, 9);
        let b = key(10, 0, 3, 0);
        assert_eq!(compare(&a, &b), Ordering::Less);
        let zero_zero = key(10, 0, 0, 0);
        assert_eq!(compare(&b, &zero_zero), Ordering::Less);
    }

    #[test]
    fn rule4_equal_nonzero_lowest_x_first() {
        let a = key(10, 1, 2, 9);
        let b = key(10, 2, 4, 0);
        assert_eq!(compare(&a, &b), Ordering::Less);
    }

    #[test]
    fn rule5_first_come_first_served() {
        let a = key(10, 1, 2, 3);
        let b = key(10, 1, 2, 4);
        assert_eq!(compare(&a, &b), Ordering::Less);
        let a = key(10, 0, 0, 3);
        let b = key(10, 0, 0, 4);
        assert_eq!(compare(&a, &b), Ordering::Less);
    }

    #[test]
    fn extreme_windows_do_not_overflow() {
        let a = key(0, u32::MAX, u32::MAX, 0);
        let b = key(0, u32::MAX - 1, u32::MAX, 1);
        assert_eq!(compare(&b, &a), Ordering::Less);
    }
}

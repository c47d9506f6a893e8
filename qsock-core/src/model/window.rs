//! The window-constraint adjustment of the DWCS papers: how a stream's current
//! constraint `x'/y'` moves when its head packet is sent in time or misses.

/// What a miss did to the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissOutcome {
    /// `x'` was above 0: the loss was within the stream's tolerance.
    WithinTolerance,
    /// `x'` was already 0: the loss breaks the window-constraint.
    Violation,
}

/// A stream's current window-constraint `x'/y'` with the original `oln/old`
/// it restarts from, and the violation tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    oln: u32,
    old: u32,
    x: u32,
    y: u32,
    tagged: bool,
}

impl Window {
    /// A fresh window at `oln/old`, untagged. The caller has validated the pair.
    pub fn new(oln: u32, old: u32) -> Self {
        Window {
            oln,
            old,
            x: oln,
            y: old,
            tagged: false,
        }
    }

    /// The current `(x', y')`.
    pub fn current(&self) -> (u32, u32) {
        (self.x, self.y)
    }

    /// The original `(oln, old)`.
    pub fn original(&self) -> (u32, u32) {
        (self.oln, self.old)
    }

    /// Whether the last miss was a violation not yet cleared by an in-time send.
    pub fn is_tagged(&self) -> bool {
        self.tagged
    }

    fn reset(&mut self) {
        self.x = self.oln;
        self.y = self.old;
        self.tagged = false;
    }

    /// The head packet left no later than its deadline.
    pub fn sent_in_time(&mut self) {
        if self.y > self.x {
            self.y -= 1;
        } else if self.y == self.x && self.x > 0 {
            self.x -= 1;
            self.y -= 1;
        }
        // A tagged stream has been paid back once it gets a packet through in
        // time: its inflated y' must not keep it ahead of everyone for ever.
        if (self.x == 0 && self.y == 0) || self.tagged {
            self.reset();
        }
    }

    /// The head packet missed its deadline (dropped, or kept to be sent late).
    ///
    /// **decision** (see the model's docs): a miss while `x' == 0` is reported
    /// as a violation even for a `0/0` stream, whose window the papers leave
    /// untouched: a stream that tolerates no loss has had its constraint broken.
    pub fn missed(&mut self) -> MissOutcome {
        if self.x > 0 {
            self.x -= 1;
            self.y = self.y.saturating_sub(1);
            if self.x == 0 && self.y == 0 {
                self.reset();
            }
            MissOutcome::WithinTolerance
        } else {
            if self.old > 0 {
                // the papers' +1 for the paper's +epsilon: it lifts the stream
                // above other zero-constraint streams under rule 3.
                self.y = self.y.saturating_add(1);
                self.tagged = true;
            }
            MissOutcome::Violation
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_time_sends_shrink_the_window_and_reset_it_at_zero_zero() {
        for (x, y, after_each_send) in [
            // Slack only shrinks the window.
            (1, 4, &[(1, 3), (1, 2), (1, 1)][..]),
            // Equal x and y shrink both: 1/1 -> 0/0 resets to the original.
            (1, 1, &[(1, 1)]),
            (2, 2, &[(1, 1)]),
            (0, 2, &[(0, 1), (0, 2)]),
            (0, 0, &[(0, 0)]),
        ] {
            let mut w = Window::new(x, y);
            for &want in after_each_send {
                w.sent_in_time();
                assert_eq!(w.current(), want, "in-time sends from {x}/{y}");
            }
        }
    }

    #[test]
    fn one_miss_spends_a_loss_or_is_a_violation() {
        use MissOutcome::{Violation, WithinTolerance};
        for (x, y, outcome, after) in [
            (2, 5, WithinTolerance, (1, 4)),
            // 1/1 - 1 = 0/0 resets to the original.
            (1, 1, WithinTolerance, (1, 1)),
            // 0/0 stays put, and untagged: there is no y' to raise.
            (0, 0, Violation, (0, 0)),
        ] {
            let mut w = Window::new(x, y);
            assert_eq!(w.missed(), outcome, "a miss at {x}/{y}");
            assert_eq!(w.current(), after, "a miss at {x}/{y}");
            assert!(!w.is_tagged(), "a miss at {x}/{y}");
        }
    }

    #[test]
    fn miss_at_zero_is_a_violation_that_raises_y_and_tags() {
        let mut w = Window::new(1, 3);
        w.missed();
        assert_eq!(w.current(), (0, 2));
        assert_eq!(w.missed(), MissOutcome::Violation);
        assert_eq!(w.current(), (0, 3));
        assert!(w.is_tagged());
        assert_eq!(w.missed(), MissOutcome::Violation);
        assert_eq!(w.current(), (0, 4));
        // The next in-time send pays the stream back: untag and restart.
        w.sent_in_time();
        assert_eq!(w.current(), (1, 3));
        assert!(!w.is_tagged());
    }

    #[test]
    fn y_saturates_instead_of_overflowing() {
        let mut w = Window::new(0, u32::MAX);
        w.missed();
        assert_eq!(w.current(), (0, u32::MAX));
    }
}

//! A request to give up an assessment, set from another thread (the binding's, when Ctrl-C
//! arrives): the estimators look at it every [`EVERY`] steps of their main loops and return
//! early, and the track then reports that it stopped instead of a result.
//!
//! Why in the loops and not between estimators: on the largest input an assessment takes
//! (`MAX_SAMPLES` 8-bit samples, a bit string of 2^29 bits) one estimator runs for minutes.

use std::sync::atomic::{AtomicBool, Ordering};

/// Steps of a loop between two looks at the flag: far below a millisecond of work.
pub const EVERY: usize = 1 << 16;

/// Whether to give up: a flag other threads may set (the caller's; the track's own when one
/// estimator failed and the others' work is no longer wanted), each stop also asking what the
/// one it was made from asks; or none (never).
#[derive(Clone, Copy, Default)]
pub struct Stop<'a> {
    flag: Option<&'a AtomicBool>,
    within: Option<&'a Stop<'a>>,
}

impl<'a> Stop<'a> {
    /// Never asks to stop.
    pub const NEVER: Stop<'static> = Stop { flag: None, within: None };

    /// Asks to stop once `flag` is set.
    pub fn on(flag: &'a AtomicBool) -> Self {
        Stop { flag: Some(flag), within: None }
    }

    /// Asks to stop once `self` asks to, or `flag` is set.
    pub fn or(&'a self, flag: &'a AtomicBool) -> Self {
        Stop { flag: Some(flag), within: Some(self) }
    }

    /// Whether a flag is set, this one's or one it was made from.
    #[inline]
    pub fn requested(self) -> bool {
        self.flag.is_some_and(|flag| flag.load(Ordering::Relaxed)) || self.within.is_some_and(|w| w.requested())
    }

    /// At step `i` of a loop: whether to give up (looks at the flag every [`EVERY`] steps).
    #[inline]
    pub fn at(self, i: usize) -> bool {
        i.is_multiple_of(EVERY) && self.requested()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_at_the_flag_every_so_many_steps() {
        let flag = AtomicBool::new(false);
        let stop = Stop::on(&flag);
        assert!(!stop.requested() && !stop.at(0));
        flag.store(true, Ordering::Relaxed);
        assert!(stop.requested() && stop.at(0) && stop.at(EVERY) && !stop.at(EVERY + 1));
        assert!(!Stop::NEVER.requested() && !Stop::NEVER.at(0));
        let (own, inner, outer) = (AtomicBool::new(false), AtomicBool::new(false), AtomicBool::new(false));
        let never = Stop::NEVER;
        let either = never.or(&own);
        assert!(!either.requested());
        own.store(true, Ordering::Relaxed);
        assert!(either.requested());
        // Chained: every flag of the chain is seen, none replaced by the next.
        let base = Stop::on(&outer);
        let middle = base.or(&inner);
        let last = AtomicBool::new(false);
        let top = middle.or(&last);
        assert!(!top.requested());
        outer.store(true, Ordering::Relaxed);
        assert!(top.requested() && middle.requested());
    }
}

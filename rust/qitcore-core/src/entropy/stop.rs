//! A request to give up an assessment, set from another thread (the binding's, when Ctrl-C
//! arrives): the estimators look at it every [`EVERY`] steps of their main loops and return
//! early, and the track then reports that it stopped instead of a result.
//!
//! Why in the loops and not between estimators: on the largest input an assessment takes
//! (`MAX_SAMPLES` 8-bit samples, a bit string of 2^29 bits) one estimator runs for minutes.

use std::sync::atomic::{AtomicBool, Ordering};

/// Steps of a loop between two looks at the flag: far below a millisecond of work.
pub const EVERY: usize = 1 << 16;

/// Whether to give up: up to two flags other threads may set (the caller's, and the track's own
/// when one estimator failed and the others' work is no longer wanted), or none (never).
#[derive(Clone, Copy, Default)]
pub struct Stop<'a>([Option<&'a AtomicBool>; 2]);

impl<'a> Stop<'a> {
    /// Never asks to stop.
    pub const NEVER: Stop<'static> = Stop([None, None]);

    /// Asks to stop once `flag` is set.
    pub fn on(flag: &'a AtomicBool) -> Self {
        Stop([Some(flag), None])
    }

    /// Asks to stop once this asks to, or `flag` is set.
    pub fn or(self, flag: &'a AtomicBool) -> Self {
        Stop([self.0[0], Some(flag)])
    }

    /// Whether a flag is set.
    #[inline]
    pub fn requested(self) -> bool {
        self.0.iter().flatten().any(|flag| flag.load(Ordering::Relaxed))
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
        let own = AtomicBool::new(false);
        let either = Stop::NEVER.or(&own);
        assert!(!either.requested());
        own.store(true, Ordering::Relaxed);
        assert!(either.requested() && Stop::on(&AtomicBool::new(false)).or(&own).requested());
    }
}

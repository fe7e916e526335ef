//! SP 800-90B §6.3.7–6.3.10 share their ending: from a predictor's correct guesses `C` out of `N`
//! and its longest run of correct guesses `r − 1`, the global and local predictabilities, and the
//! min-entropy of the larger.

use crate::entropy::estimate::{Estimate, View};
use crate::entropy::stats::{bisect_decreasing, OnFailure, Z_ALPHA};

/// `log` of the probability of no run of `r` correct predictions in `n` trials with success
/// probability `p` (SP 800-90B §6.3.7 step 9), by the fixed-point iteration for its root `x`.
fn no_run_log_probability(p: f64, r: f64, n: f64) -> f64 {
    let q = 1.0 - p;
    let mut x = 1.0f64;
    let mut last = 0.0f64;
    let mut i = 0;
    while i <= 65 && (x - last) > f64::EPSILON * x {
        last = x;
        x = 1.0 + q * p.powf(r) * x.powf(r + 1.0);
        i += 1;
    }
    (1.0 - p * x).ln() - ((r + 1.0 - r * x) * q).ln() - (n + 1.0) * x.ln()
}

/// The local predictability: the `p` at which a longest run of `r − 1` has probability 0.99.
fn p_local(longest_run: u64, n: u64, low: f64) -> f64 {
    let r = (longest_run + 1) as f64;
    bisect_decreasing(|p| no_run_log_probability(p, r, n as f64), 0.99f64.ln(), low, 1.0, OnFailure::High)
}

/// The predictor estimate for `correct` of `n` predictions over `k` symbols, longest run of
/// correct predictions `longest_run`.
pub fn prediction_estimate(
    name: &'static str,
    view: View,
    correct: u64,
    n: u64,
    longest_run: u64,
    k: usize,
) -> Estimate {
    let mut e = Estimate::new(name, view);
    let nf = n as f64;
    let p_global = correct as f64 / nf;
    let p_global_prime = if p_global > 0.0 {
        (p_global + Z_ALPHA * (p_global * (1.0 - p_global) / (nf - 1.0)).sqrt()).min(1.0)
    } else {
        1.0 - 0.01f64.powf(1.0 / nf)
    };
    e.int("C", correct as i64).int("r", (longest_run + 1) as i64).int("N", n as i64);
    e.real("P_global", p_global).real("P_global'", p_global_prime);
    let mut cur = (1.0 / k as f64).max(p_global_prime);
    if cur < 1.0 && no_run_log_probability(cur, (longest_run + 1) as f64, nf) > 0.99f64.ln() {
        let local = p_local(longest_run, n, cur);
        e.real("P_local", local);
        cur = cur.max(local);
    }
    e.finish(-cur.log2())
}

/// Tracks a predictor's score: correct count and longest run of correct predictions.
#[derive(Default, Clone, Copy)]
pub struct Tally {
    /// Correct predictions.
    pub correct: u64,
    run: u64,
    /// Longest run of correct predictions.
    pub longest: u64,
}

impl Tally {
    /// Records one prediction's outcome.
    #[inline(always)]
    pub fn record(&mut self, hit: bool) {
        if hit {
            self.correct += 1;
            self.run += 1;
            if self.run > self.longest {
                self.longest = self.run;
            }
        } else {
            self.run = 0;
        }
    }
}

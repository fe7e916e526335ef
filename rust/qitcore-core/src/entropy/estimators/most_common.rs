//! SP 800-90B §6.3.1: the most common value estimate.

use crate::entropy::estimate::{Estimate, View};
use crate::entropy::stats::upper_bound;

/// Counts of each symbol `0..k`.
pub fn counts(s: &[u8], k: usize) -> Vec<u64> {
    let mut c = vec![0u64; k.max(256)];
    for &x in s {
        c[x as usize] += 1;
    }
    c.truncate(k.max(1));
    c
}

/// `p̂` = the mode's frequency, `p_u` its 99 % upper bound, `H = −log2 p_u`.
pub fn most_common_value(s: &[u8], k: usize, view: View) -> Estimate {
    most_common_from_mode(counts(s, k).into_iter().max().unwrap_or(0), s.len(), view)
}

/// The estimate from the mode's count among `n` samples (for views counted without being made).
pub fn most_common_from_mode(mode: u64, n: usize, view: View) -> Estimate {
    let n = n as f64;
    let p_hat = mode as f64 / n;
    let p_u = upper_bound(p_hat, n);
    let mut e = Estimate::new("Most Common Value", view);
    e.int("Mode count", mode as i64).real("p-hat", p_hat).real("p_u", p_u);
    e.finish(-p_u.log2())
}

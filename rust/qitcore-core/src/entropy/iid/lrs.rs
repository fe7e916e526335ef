//! SP 800-90B §5.2.5: the length of the longest repeated substring test. Under the IID
//! hypothesis, the probability that some pair among the `C(n − W + 1, 2)` overlapping `W`-tuples
//! collides, with `W` the LRS length and per-symbol collision probability `p_col = Σ p_i²`, must be
//! at least 1/1000.

use super::chi_square::proportions;
use crate::entropy::estimators::tuples::longest_repeat;
use crate::entropy::Stop;

/// The outcome of the LRS test.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.entropy", name = "LrsTestResult"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct LrsTest {
    /// The length of the longest repeated substring.
    pub length: usize,
    /// `Σ p_i²` over the symbol proportions.
    pub p_col: f64,
    /// `Pr(X ≥ 1) = 1 − (1 − p_col^W)^N`, as well as doubles can represent it.
    pub probability: f64,
    /// Whether `Pr(X ≥ 1) ≥ 1/1000`.
    pub passed: bool,
}

/// Runs the test on samples over `k` symbols; `None` when `stop` asked to give up (the suffix
/// sort of data with long repeats takes seconds).
///
/// # Errors
/// [`Error::OutOfMemory`](crate::error::Error::OutOfMemory) when the samples' repeats are long
/// and their suffix array cannot be allocated.
pub fn lrs_test(s: &[u8], k: usize, stop: Stop<'_>) -> crate::error::Result<Option<LrsTest>> {
    let p_col: f64 = proportions(s, k).iter().map(|p| p * p).sum();
    let Some(length) = longest_repeat(s, stop)? else {
        return Ok(None);
    };
    if p_col > 1.0 - f64::EPSILON {
        // One symbol only: every substring repeats.
        return Ok(Some(LrsTest { length, p_col, probability: 1.0, passed: true }));
    }
    let n = (s.len() - length + 1) as f64;
    let pairs = n * (n - 1.0) / 2.0;
    let log_no_collision_per_pair = (-p_col.powf(length as f64)).ln_1p();
    let log_no_collision = pairs * log_no_collision_per_pair;
    Ok(Some(LrsTest {
        length,
        p_col,
        probability: -log_no_collision.exp_m1(),
        passed: 0.999f64.ln() >= log_no_collision,
    }))
}

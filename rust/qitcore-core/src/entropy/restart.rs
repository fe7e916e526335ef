//! SP 800-90B §3.1.4: the restart tests. One million samples from 1000 restarts of the source
//! (1000 samples each) form a 1000 × 1000 matrix, rows being restarts.
//!
//! - Sanity check (§3.1.4.3): the most common value's count in any row or column must not exceed
//!   the cutoff a source of min-entropy `H_I` would reach with probability `α = 1 − 0.99^(1/2000)`.
//!   NIST's tool estimates that cutoff by simulating 5 million rows; here it is computed exactly
//!   (below), which agrees with the simulation save where it lands within sampling error of a step
//!   of the distribution.
//! - Validation (§3.1.4.2): the estimators run on the rows concatenated and on the columns
//!   concatenated; the test passes when `min(H_r, H_c) >= H_I / 2`, and the entropy then credited
//!   is `min(H_r, H_c, H_I)`.
//!
//! **The cutoff.** NIST's model of a source at `H_I`: `k = ⌈2^H_I⌉` values, `k − 1` of them with
//! probability `p = 2^−H_I` and one with the rest `q = 1 − (k − 1)p`. For 1000 draws,
//! `P(max count ≤ x) = Σ_{c ≤ x} Bin(1000, q)(c) · U_{k−1}(1000 − c, x)`, with `U_K(m, x)` the
//! probability that `m` uniform draws over `K` values fill none past `x`. `U` combines like a
//! generating function: for groups of `A` and `B` values, `U_{A+B}(m) = Σ_i Bin(m, A/(A+B))(i) ·
//! U_A(i) · U_B(m − i)`, so `U_{k−1}` takes `O(log k)` combinations by squaring.

use super::estimate::{Estimate, View};
use super::estimators::most_common::counts;
use super::non_iid;
use super::samples::Samples;
use super::Stop;
use crate::error::{Error, Result};

/// Restarts (rows) and samples per restart (columns).
pub const SIDE: usize = 1000;

/// The outcome of the restart tests.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.entropy", name = "RestartResult"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct RestartReport {
    /// The initial entropy estimate being validated.
    pub h_i: f64,
    /// `α = 1 − 0.99^(1/2000)`.
    pub alpha: f64,
    /// The sanity check's cutoff.
    pub cutoff: u64,
    /// Largest most-common-value count over the rows.
    pub max_row: u64,
    /// Largest most-common-value count over the columns.
    pub max_column: u64,
    /// `max(max_row, max_column) <= cutoff`.
    pub sanity_passed: bool,
    /// Estimates on the row dataset.
    pub rows: Vec<Estimate>,
    /// Estimates on the column dataset.
    pub columns: Vec<Estimate>,
    /// `min(bits, row estimates)`.
    pub h_r: f64,
    /// `min(bits, column estimates)`.
    pub h_c: f64,
    /// Sanity check passed and `min(H_r, H_c) >= H_I / 2`.
    pub passed: bool,
    /// `min(H_r, H_c, H_I)` when passed.
    pub h_min: f64,
}

/// Binomial(n, r) probabilities for 0..=n (computed in the log domain).
fn binomial(n: usize, r: f64) -> Vec<f64> {
    use crate::maths::gamma::ln_binomial_pmf;
    if r <= 0.0 {
        let mut v = vec![0.0; n + 1];
        v[0] = 1.0;
        return v;
    }
    if r >= 1.0 {
        let mut v = vec![0.0; n + 1];
        v[n] = 1.0;
        return v;
    }
    // From the mode outward by the ratio of neighbouring terms, one multiplication each: the
    // cutoff's bisection needs about 10^8 of these terms, and a log-gamma for each took seconds
    // that Ctrl-C could not interrupt. Terms far from the mode underflow to 0, as their exp did.
    let mode = (((n + 1) as f64 * r).floor() as usize).min(n);
    let mut v = vec![0.0; n + 1];
    v[mode] = ln_binomial_pmf(n as u64, r, mode as u64).exp();
    let odds = r / (1.0 - r);
    for i in mode..n {
        v[i + 1] = v[i] * (n - i) as f64 / (i + 1) as f64 * odds;
    }
    for i in (1..=mode).rev() {
        v[i - 1] = v[i] * i as f64 / (n - i + 1) as f64 / odds;
    }
    v
}

/// `U_A ⊗ U_B` for groups of `a` and `b` values, over 0..=n draws.
fn combine(ua: &[f64], a: usize, ub: &[f64], b: usize) -> Vec<f64> {
    let share = a as f64 / (a + b) as f64;
    (0..ua.len()).map(|m| binomial(m, share).iter().enumerate().map(|(i, w)| w * ua[i] * ub[m - i]).sum()).collect()
}

/// `U_K(m, x)` for m = 0..=n.
fn uniform_max_at_most(k: usize, n: usize, x: usize) -> Vec<f64> {
    let single: Vec<f64> = (0..=n).map(|m| if m <= x { 1.0 } else { 0.0 }).collect();
    let (mut result, mut result_k): (Option<Vec<f64>>, usize) = (None, 0);
    let (mut power, mut power_k) = (single, 1usize);
    let mut left = k;
    while left > 0 {
        if left & 1 == 1 {
            result = Some(match result {
                None => power.clone(),
                Some(r) => combine(&r, result_k, &power, power_k),
            });
            result_k += power_k;
        }
        left >>= 1;
        if left > 0 {
            power = combine(&power, power_k, &power, power_k);
            power_k *= 2;
        }
    }
    result.unwrap_or_else(|| (0..=n).map(|m| if m == 0 { 1.0 } else { 0.0 }).collect())
}

/// `P(max count <= x)` for `n` draws from NIST's model of a source at `h` bits.
pub fn max_count_cdf(h: f64, n: usize, x: usize) -> f64 {
    let p = (-h).exp2();
    let k = (1.0 / p).ceil() as usize;
    if k <= 1 {
        return if x >= n { 1.0 } else { 0.0 };
    }
    let q = (1.0 - (k - 1) as f64 * p).max(0.0);
    let u = uniform_max_at_most(k - 1, n, x);
    binomial(n, q).iter().enumerate().take(x.min(n) + 1).map(|(c, w)| w * u[n - c]).sum()
}

/// The sanity check's cutoff: the smallest `x` with `P(max count <= x) >= 1 − α`.
pub fn sanity_cutoff(h: f64, alpha: f64) -> u64 {
    sanity_cutoff_until(h, alpha, Stop::NEVER).unwrap_or(0)
}

/// As [`sanity_cutoff`], `None` when `stop` asks between the steps of its bisection (each tens of
/// milliseconds).
fn sanity_cutoff_until(h: f64, alpha: f64, stop: Stop<'_>) -> Option<u64> {
    let target = 1.0 - alpha;
    // The CDF rises with x: bisect over 0..=1000.
    let (mut lo, mut hi) = (0usize, SIDE);
    while lo < hi {
        if stop.requested() {
            return None;
        }
        let mid = (lo + hi) / 2;
        if max_count_cdf(h, SIDE, mid) >= target {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo as u64)
}

/// Refuses anything but 1000 × 1000 samples; callers check this before looking at the values.
pub fn check_sample_count(n: usize) -> Result<()> {
    if n != SIDE * SIDE {
        return Err(Error::length("data", format!("restart tests need 1000 × 1000 = 1000000 samples, got {n}")));
    }
    Ok(())
}

/// Runs the restart tests on 1000 × 1000 samples (row-major: restart after restart) for an
/// initial entropy estimate `h_i`; `None` when `stop` was set before it ended.
///
/// # Errors
/// [`Error::InvalidLength`] naming `data` unless there are exactly 1,000,000 samples;
/// [`Error::InvalidArgument`] naming `h_i` outside `[0, bits per symbol]`.
pub fn assess(samples: &Samples<'_>, h_i: f64, stop: Stop<'_>) -> Result<Option<RestartReport>> {
    check_sample_count(samples.len())?;
    let width = f64::from(samples.bits_per_symbol);
    if !(0.0..=width).contains(&h_i) {
        return Err(Error::argument("h_i", format!("must lie in [0, {width}] bits per sample, got {h_i}")));
    }
    let k = samples.alphabet_size;
    let rows = samples.symbols();
    let mut columns = vec![0u8; SIDE * SIDE];
    for r in 0..SIDE {
        for c in 0..SIDE {
            columns[c * SIDE + r] = rows[r * SIDE + c];
        }
    }
    let mode = |s: &[u8]| counts(s, k).into_iter().max().unwrap_or(0);
    let max_row = rows.chunks_exact(SIDE).map(mode).max().unwrap_or(0);
    let max_column = columns.chunks_exact(SIDE).map(mode).max().unwrap_or(0);
    let alpha = 1.0 - (0.99f64.ln() / (2 * SIDE) as f64).exp();
    let Some(cutoff) = sanity_cutoff_until(h_i, alpha, stop) else {
        return Ok(None);
    };
    let sanity_passed = max_row.max(max_column) <= cutoff;
    let (row_estimates, column_estimates) = rayon::join(
        || non_iid::estimates(rows, k, View::Literal, stop),
        || non_iid::estimates(&columns, k, View::Literal, stop),
    );
    let (Some(row_estimates), Some(column_estimates)) = (row_estimates?, column_estimates?) else {
        return Ok(None);
    };
    let minimum = |e: &[Estimate]| e.iter().filter_map(|e| e.min_entropy).fold(width, f64::min);
    let (h_r, h_c) = (minimum(&row_estimates), minimum(&column_estimates));
    let passed = sanity_passed && h_r.min(h_c) >= h_i / 2.0;
    Ok(Some(RestartReport {
        h_i,
        alpha,
        cutoff,
        max_row,
        max_column,
        sanity_passed,
        rows: row_estimates,
        columns: column_estimates,
        h_r,
        h_c,
        passed,
        h_min: h_r.min(h_c).min(h_i),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maths::xoshiro::Xoshiro256;

    /// NIST's model simulated: the (1 − α) quantile of the row maximum.
    fn simulated_cdf(h: f64, x: usize, rounds: usize) -> f64 {
        let p = (-h).exp2();
        let k = (1.0 / p).ceil() as usize;
        let mut g = Xoshiro256::from_seed(11);
        let below = (0..rounds)
            .filter(|_| {
                let mut counts = vec![0usize; k];
                for _ in 0..SIDE {
                    let u = (g.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                    counts[((u / p) as usize).min(k - 1)] += 1;
                }
                counts.into_iter().max().unwrap() <= x
            })
            .count();
        below as f64 / rounds as f64
    }

    #[test]
    fn binomial_rows_match_the_log_gamma_terms() {
        use crate::maths::gamma::ln_binomial_pmf;
        for n in [0usize, 1, 2, 7, 100, 1000] {
            for r in [1e-9, 0.001, 0.3, 0.5, 0.77, 0.999] {
                let row = binomial(n, r);
                for (i, &got) in row.iter().enumerate() {
                    let want = ln_binomial_pmf(n as u64, r, i as u64).exp();
                    assert!((got - want).abs() <= 1e-9 * want + 1e-300, "n={n} r={r} i={i}: {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn exact_cdf_agrees_with_simulation() {
        for (h, x) in [(1.0, 520), (2.0, 270), (4.0, 80), (7.5, 12), (3.3, 120)] {
            let exact = max_count_cdf(h, SIDE, x);
            let sim = simulated_cdf(h, x, 20_000);
            // Binomial sampling error of 20 000 rounds: sd ≤ 0.0036.
            assert!((exact - sim).abs() < 0.02, "H {h}, x {x}: exact {exact}, simulated {sim}");
        }
    }

    #[test]
    fn cutoffs_grow_as_entropy_falls() {
        let alpha = 1.0 - (0.99f64.ln() / 2000.0).exp();
        let c8 = sanity_cutoff(8.0, alpha);
        let c4 = sanity_cutoff(4.0, alpha);
        let c1 = sanity_cutoff(1.0, alpha);
        assert!(c8 < c4 && c4 < c1 && c1 < 1000, "{c8} {c4} {c1}");
        // For H = 1 the row max is Binomial(1000, 1/2) at its largest of two: 500 + a few sd.
        assert!((560..=620).contains(&c1), "{c1}");
    }
}

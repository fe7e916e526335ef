//! Cutoffs of the SP 800-90B continuous health tests (§4.4), from the claimed min-entropy `H` per
//! sample and the false-positive probability α.
//!
//! - Repetition Count Test: `C = 1 + ⌈−log2 α / H⌉` (§4.4.1).
//! - Adaptive Proportion Test over a window of `W` samples: `C = 1 + CRITBINOM(W, 2^−H, 1 − α)`,
//!   the form of the standard's footnote and Table 2 (the default here); Joshua Hill's correction
//!   counts the window's first sample apart, `C = 2 + CRITBINOM(W − 1, 2^−H, 1 − α)`, and differs
//!   by one at some `H` (available as [`AptFormula::Hill`]).
//!
//! `CRITBINOM(n, p, q)` is the smallest `k` with `P(Binomial(n, p) ≤ k) ≥ q`; it is computed from
//! the upper tail `P(X > k) ≤ α`, summed in the log domain, so α down to 2^−40 and far below is
//! exact to double precision.

use crate::error::{Error, Result};
use crate::maths::gamma::ln_binomial_pmf;

/// Which Adaptive Proportion Test cutoff formula to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AptFormula {
    /// `1 + CRITBINOM(W, 2^−H, 1 − α)` (SP 800-90B footnote and Table 2).
    Standard,
    /// `2 + CRITBINOM(W − 1, 2^−H, 1 − α)` (Joshua Hill's correction).
    Hill,
}

crate::choice::named_choices!(AptFormula, "apt_formula", [Standard = "standard", Hill = "hill"]);

/// Checks `0 < H <= bits` and `0 < α < 1`.
pub fn check(min_entropy: f64, bits_per_sample: u32, alpha: f64) -> Result<()> {
    if !(1..=8).contains(&bits_per_sample) {
        return Err(Error::argument("bits_per_sample", format!("must lie in 1..=8, got {bits_per_sample}")));
    }
    if !(min_entropy > 0.0 && min_entropy <= f64::from(bits_per_sample)) {
        return Err(Error::argument(
            "min_entropy",
            format!("must lie in (0, {bits_per_sample}] bits per sample, got {min_entropy}"),
        ));
    }
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(Error::argument("alpha", format!("must lie in the open interval (0, 1), got {alpha}")));
    }
    Ok(())
}

/// Refuses an Adaptive Proportion Test that could never fail: a window of `window` samples counts
/// at most `window` matches, so a cutoff above that (a tiny α, or a claim of almost no entropy)
/// would turn the test off without a word.
pub fn check_apt(min_entropy: f64, alpha: f64, apt_cutoff: u64, window: u64) -> Result<()> {
    if apt_cutoff > window {
        return Err(Error::argument(
            "alpha",
            format!(
                "{alpha:e} is too small for a min-entropy of {min_entropy} bits: the adaptive proportion test's \
                 cutoff ({apt_cutoff}) exceeds its window of {window} samples, so it could never fail; use a \
                 larger alpha (SP 800-90B suggests 2^-40 to 2^-20) or claim more min-entropy"
            ),
        ));
    }
    Ok(())
}

/// The Repetition Count Test cutoff.
pub fn rct_cutoff(min_entropy: f64, alpha: f64) -> u64 {
    // Saturating: a claim of almost no entropy would otherwise overflow to a cutoff of 0.
    ((-alpha.log2() / min_entropy).ceil() as u64).saturating_add(1)
}

/// `CRITBINOM(n, p, 1 − α)`: the smallest `k` with `P(X > k) <= α`.
pub fn critbinom(n: u64, p: f64, alpha: f64) -> u64 {
    if p >= 1.0 {
        return n;
    }
    // Walk down from the top, accumulating the upper tail P(X >= j) in the log domain.
    let log_alpha = alpha.ln();
    let mut log_tail = f64::NEG_INFINITY; // log P(X > k) for k = n
    for k in (0..n).rev() {
        // P(X > k) = P(X > k + 1) + P(X = k + 1)
        let term = ln_binomial_pmf(n, p, k + 1);
        let (hi, lo) = if term > log_tail { (term, log_tail) } else { (log_tail, term) };
        let next = if lo == f64::NEG_INFINITY { hi } else { hi + (lo - hi).exp().ln_1p() };
        if next > log_alpha {
            return k + 1;
        }
        log_tail = next;
    }
    0
}

/// The Adaptive Proportion Test cutoff for a window of `window` samples.
pub fn apt_cutoff(min_entropy: f64, alpha: f64, window: u64, formula: AptFormula) -> u64 {
    let p = (-min_entropy).exp2();
    match formula {
        AptFormula::Standard => 1 + critbinom(window, p, alpha),
        AptFormula::Hill => 2 + critbinom(window - 1, p, alpha),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALPHA: f64 = 1.0 / 1_048_576.0; // 2^-20

    #[test]
    fn rct_cutoffs_match_table_2() {
        for (h, c) in [
            (0.2, 101),
            (0.4, 51),
            (0.5, 41),
            (0.6, 35),
            (0.8, 26),
            (1.0, 21),
            (2.0, 11),
            (3.0, 8),
            (4.0, 6),
            (5.0, 5),
            (6.0, 5),
            (7.0, 4),
            (8.0, 4),
        ] {
            assert_eq!(rct_cutoff(h, ALPHA), c, "H = {h}");
        }
    }

    #[test]
    fn apt_cutoffs_match_table_2_and_hills_correction() {
        // (H, W=1024 table, W=512 table, W=512 Hill) from SP 800-90B Table 2 and Hill's errata.
        let w1024 = [(0.2, 941), (0.4, 840), (0.5, 793), (0.6, 748), (0.8, 664), (1.0, 589)];
        for (h, c) in w1024 {
            assert_eq!(apt_cutoff(h, ALPHA, 1024, AptFormula::Standard), c, "H = {h}, W = 1024");
        }
        assert_eq!(apt_cutoff(1.0, ALPHA, 1024, AptFormula::Hill), 590);
        assert_eq!(apt_cutoff(0.4, ALPHA, 1024, AptFormula::Hill), 841);
        let w512 = [
            (0.2, 480, 480),
            (0.4, 433, 433),
            (0.5, 410, 411),
            (0.6, 388, 389),
            (0.8, 348, 348),
            (1.0, 311, 311),
            (2.0, 177, 178),
            (3.0, 103, 104),
            (4.0, 62, 63),
            (5.0, 39, 40),
            (6.0, 25, 26),
            (7.0, 18, 18),
            (8.0, 13, 14),
        ];
        for (h, table, hill) in w512 {
            assert_eq!(apt_cutoff(h, ALPHA, 512, AptFormula::Standard), table, "H = {h}, W = 512");
            assert_eq!(apt_cutoff(h, ALPHA, 512, AptFormula::Hill), hill, "H = {h}, W = 512, Hill");
        }
    }

    #[test]
    fn apt_formulas_parse_from_their_names() {
        assert_eq!("standard".parse(), Ok(AptFormula::Standard));
        assert_eq!("hill".parse(), Ok(AptFormula::Hill));
        let err = "Hill".parse::<AptFormula>().unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { name: "apt_formula", .. }), "{err}");
        assert!(err.to_string().contains("\"standard\", \"hill\""), "{err}");
    }

    #[test]
    fn an_apt_that_could_never_fail_is_refused() {
        // Binary, H = 0.1: 2^-20 and 2^-40 leave the cutoff inside the window of 1024; 1e-100
        // does not (the count of one value among 1024 samples cannot reach it).
        for (alpha, fires) in [(ALPHA, true), ((-40f64).exp2(), true), (1e-100, false), (1e-300, false)] {
            let c = apt_cutoff(0.1, alpha, 1024, AptFormula::Standard);
            assert_eq!(check_apt(0.1, alpha, c, 1024).is_ok(), fires, "alpha {alpha}: cutoff {c}");
            assert_eq!(c <= 1024, fires);
        }
        let err = check_apt(0.1, 1e-300, 1025, 1024).unwrap_err().to_string();
        assert!(err.starts_with("alpha: 1e-300 is too small") && err.contains("could never fail"), "{err}");
    }

    #[test]
    fn smaller_alpha_raises_the_cutoffs() {
        // jitterentropy and wolfSSL: α = 2^-30, W = 512, H = 1, Hill's form → 325.
        let alpha30 = (-30f64).exp2();
        assert_eq!(apt_cutoff(1.0, alpha30, 512, AptFormula::Hill), 325);
        let alpha40 = (-40f64).exp2();
        assert!(apt_cutoff(0.5, alpha40, 512, AptFormula::Standard) > 410);
        assert_eq!(rct_cutoff(1.0, alpha40), 41);
    }

    #[test]
    fn critbinom_matches_a_direct_sum() {
        // Exact sums in f64 for a small case: n = 20, p = 0.3.
        let (n, p) = (20u64, 0.3f64);
        let pmf = |j: u64| {
            let c = (0..j).fold(1f64, |acc, i| acc * (n - i) as f64 / (i + 1) as f64);
            c * p.powi(j as i32) * (1.0 - p).powi((n - j) as i32)
        };
        for alpha in [0.5, 0.1, 0.01, 1e-4, 1e-8] {
            let expect = (0..=n).find(|&k| ((k + 1)..=n).map(pmf).sum::<f64>() <= alpha).unwrap();
            assert_eq!(critbinom(n, p, alpha), expect, "alpha {alpha}");
        }
    }
}

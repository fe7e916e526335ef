//! The IID track of SP 800-90B (§5 and §6.3.1): the chi-square tests, the longest repeated
//! substring test and the permutation tests decide whether the samples may be treated as
//! independent and identically distributed; if so, the most common value estimate is the
//! assessment.

pub mod bzip2_size;
pub mod chi_square;
mod flags;
pub mod lrs;
pub mod permutation;

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};

use super::estimate::{Estimate, View};
use super::estimators::most_common::{most_common_from_mode, most_common_value};
use super::samples::Samples;
use super::Stop;
use chi_square::{chi_square_tests, ChiSquare};
use lrs::{lrs_test, LrsTest};
use permutation::{permutation_tests, Context, NAMES};

/// The number of permutations NIST's tool runs at most.
pub const DEFAULT_PERMUTATIONS: usize = 10_000;

/// One permutation-test statistic: its value on the samples and how many permutations scored
/// above, equal to and below it (`C0, C1, C2`); passes when `C0 + C1 > 5` and `C1 + C2 > 5`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.entropy"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct PermutationStatistic {
    /// The statistic, as NIST names it ("excursion", "numDirectionalRuns", ...).
    #[cfg_attr(feature = "python", serde(deserialize_with = "crate::python::static_name"))]
    pub name: crate::Name,
    /// Its value on the samples.
    pub value: f64,
    /// Permutations scoring above, equal to and below the samples.
    pub counts: (u64, u64, u64),
    /// Whether the statistic passed.
    pub passed: bool,
}

/// The outcome of the IID track.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.entropy", name = "IidResult"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct IidReport {
    /// Number of samples.
    pub samples: usize,
    /// Bits per symbol.
    pub bits_per_symbol: u32,
    /// Distinct symbols the samples can take.
    pub alphabet_size: usize,
    /// Most common value estimate on the samples.
    pub literal: Estimate,
    /// Most common value estimate on the bit string (alphabets of more than two symbols).
    pub bitstring: Option<Estimate>,
    /// `min(bits per symbol, literal estimate)`.
    pub h_original: f64,
    /// The bit-string estimate, when made.
    pub h_bitstring: Option<f64>,
    /// `min(H_original, bits × H_bitstring)`.
    pub h_assessed: f64,
    /// Mean of the raw values and median of the symbols, as the permutation tests use them.
    pub mean: f64,
    /// See `mean`.
    pub median: f64,
    /// Chi-square independence test.
    pub independence: ChiSquare,
    /// Chi-square goodness-of-fit test.
    pub goodness_of_fit: ChiSquare,
    /// Longest repeated substring test.
    pub lrs: LrsTest,
    /// The permutation tests, statistic by statistic.
    pub permutation: Vec<PermutationStatistic>,
    /// Permutations run (fewer than asked when every statistic was decided early).
    pub permutation_rounds: usize,
    /// The seed of the permutations' generators (reported, so that a run can be repeated).
    pub permutation_seed: u64,
    /// Whether every IID test passed (the estimate then stands).
    pub passed: bool,
}

/// Mean of the raw values; median of the mapped symbols (0.5 for two symbols), as NIST computes
/// them.
fn mean_and_median(samples: &Samples<'_>) -> (f64, f64) {
    let n = samples.len();
    let mean = samples.raw().iter().map(|&v| u64::from(v)).sum::<u64>() as f64 / n as f64;
    if samples.alphabet_size == 2 {
        return (mean, 0.5);
    }
    let mut counts = [0usize; 256];
    for &s in samples.symbols() {
        counts[s as usize] += 1;
    }
    let nth = |target: usize| {
        let mut seen = 0;
        counts.iter().position(|&c| {
            seen += c;
            seen > target
        })
    };
    let half = n / 2;
    let median = if n % 2 == 1 {
        nth(half).unwrap_or(0) as f64
    } else {
        (nth(half).unwrap_or(0) + nth(half - 1).unwrap_or(0)) as f64 / 2.0
    };
    (mean, median)
}

/// Runs the IID track: up to `permutations` permutations with generator streams from `seed`;
/// `progress(rounds, decided)` is asked after each batch of rounds, and stops the track (`None`)
/// by answering [`ControlFlow::Break`].
///
/// # Errors
/// [`Error::OutOfMemory`](crate::error::Error::OutOfMemory) when the samples' repeats are long
/// and the LRS test's suffix array cannot be allocated.
pub fn assess(
    samples: &Samples<'_>,
    permutations: usize,
    seed: u64,
    progress: &(dyn Fn(usize, usize) -> ControlFlow<()> + Sync),
) -> crate::error::Result<Option<IidReport>> {
    let k = samples.alphabet_size;
    let width = f64::from(samples.bits_per_symbol);
    let literal = most_common_value(samples.symbols(), k, View::Literal);
    // The bit string's most common value from its count of ones: the string itself (a byte a
    // bit) is not needed.
    let bitstring = samples.assess_bitstring().then(|| {
        let (bits, ones) = (samples.bitstring_len(), samples.bitstring_ones());
        most_common_from_mode(ones.max(bits as u64 - ones), bits, View::Bitstring)
    });
    let h_original = literal.min_entropy.unwrap_or(width).min(width);
    let h_bitstring = bitstring.as_ref().and_then(|e| e.min_entropy);
    let h_assessed = h_bitstring.map_or(h_original, |hb| h_original.min(width * hb)).min(width);
    let (mean, median) = mean_and_median(samples);
    let ctx = Context { k, raw_mean: mean, median };
    // The chi-square and LRS tests (a suffix array of the samples) run beside the first
    // permutations rather than before them.
    // A stopped run (Ctrl-C, a failing progress callback) stops the LRS test's suffix sort too.
    let stopped = AtomicBool::new(false);
    let ((independence, goodness_of_fit, lrs), permutation) = rayon::join(
        || {
            let (independence, goodness_of_fit) = chi_square_tests(samples.symbols(), k);
            (independence, goodness_of_fit, lrs_test(samples.symbols(), k, Stop::on(&stopped)))
        },
        || {
            let done = permutation_tests(samples.symbols(), samples.raw(), &ctx, permutations, seed, progress);
            if done.is_none() {
                stopped.store(true, Ordering::Relaxed);
            }
            done
        },
    );
    let (Some(lrs), Some(permutation)) = (lrs?, permutation) else {
        return Ok(None);
    };
    let passed = independence.passed && goodness_of_fit.passed && lrs.passed && permutation.passed;
    let statistics = NAMES
        .iter()
        .enumerate()
        .map(|(j, &name)| {
            let [above, equal, below] = permutation.counts[j];
            PermutationStatistic {
                name,
                value: permutation.initial[j],
                counts: (above, equal, below),
                passed: permutation.statistic_passed(j),
            }
        })
        .collect();
    Ok(Some(IidReport {
        samples: samples.len(),
        bits_per_symbol: samples.bits_per_symbol,
        alphabet_size: samples.alphabet_size,
        literal,
        bitstring,
        h_original,
        h_bitstring,
        h_assessed,
        mean,
        median,
        independence,
        goodness_of_fit,
        lrs,
        permutation: statistics,
        permutation_rounds: permutation.rounds,
        permutation_seed: seed,
        passed,
    }))
}

//! The non-IID track of SP 800-90B (§6.3): every estimator on the samples and, for alphabets of
//! more than two symbols, on their bit string; `H = min(H_original, bits × H_bitstring)` as NIST's
//! `ea_non_iid` computes it. The estimators run in parallel.

use rayon::prelude::*;

use super::estimate::{Estimate, View};
use super::estimators::{collision, compression, lag, lz78y, markov, most_common, multi_mcw, multi_mmc, tuples};
use super::samples::{Samples, RECOMMENDED_SAMPLES};

/// The outcome of the non-IID track.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.entropy", name = "NonIidResult"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct NonIidReport {
    /// Number of samples.
    pub samples: usize,
    /// Bits per symbol.
    pub bits_per_symbol: u32,
    /// Distinct symbols.
    pub alphabet_size: usize,
    /// Bits in the assessed bit string (0 when it is not assessed).
    pub bitstring_bits: usize,
    /// Estimates on the samples, in SP 800-90B's order.
    pub literal: Vec<Estimate>,
    /// Estimates on the bit string, in SP 800-90B's order (empty for binary alphabets).
    pub bitstring: Vec<Estimate>,
    /// `min(bits per symbol, literal estimates)`.
    pub h_original: f64,
    /// `min(1, bit-string estimates)` when the bit string is assessed.
    pub h_bitstring: Option<f64>,
    /// `min(H_original, bits × H_bitstring)`: the assessed min-entropy per sample.
    pub h_assessed: f64,
    /// Warnings NIST's tool would print (too few samples, translated symbols, estimators that
    /// could not run).
    pub warnings: Vec<String>,
}

type Job<'a> = Box<dyn Fn() -> Vec<Estimate> + Send + Sync + 'a>;

/// The estimators on one view of the data, heaviest first (for load balance across threads).
fn jobs<'a>(s: &'a [u8], k: usize, view: View, binary_only: bool) -> Vec<Job<'a>> {
    let mut jobs: Vec<Job<'a>> = vec![
        Box::new(move || {
            let counts = tuples::tuple_counts(s);
            let (t, l) = tuples::tuple_estimates(&counts, view);
            vec![t, l]
        }),
        Box::new(move || vec![lz78y::lz78y(s, k, view)]),
        Box::new(move || vec![multi_mmc::multi_mmc(s, k, view)]),
        Box::new(move || vec![lag::lag(s, k, view)]),
        Box::new(move || vec![multi_mcw::multi_mcw(s, k, view)]),
        Box::new(move || vec![most_common::most_common_value(s, k, view)]),
    ];
    if binary_only {
        jobs.push(Box::new(move || vec![collision::collision(s, view)]));
        jobs.push(Box::new(move || vec![markov::markov(s, view)]));
        jobs.push(Box::new(move || vec![compression::compression(s, view)]));
    }
    jobs
}

/// SP 800-90B's order of the estimators.
const ORDER: [&str; 10] = [
    "Most Common Value",
    "Collision",
    "Markov",
    "Compression",
    "t-Tuple",
    "LRS",
    "MultiMCW Prediction",
    "Lag Prediction",
    "MultiMMC Prediction",
    "LZ78Y Prediction",
];

fn in_order(mut estimates: Vec<Estimate>) -> Vec<Estimate> {
    estimates.sort_by_key(|e| ORDER.iter().position(|n| *n == e.name));
    estimates
}

fn minimum(estimates: &[Estimate], cap: f64) -> f64 {
    estimates.iter().filter_map(|e| e.min_entropy).fold(cap, f64::min)
}

/// Every estimator on one view of the data, run in parallel, in SP 800-90B's order.
pub fn estimates(s: &[u8], k: usize, view: View) -> Vec<Estimate> {
    in_order(jobs(s, k, view, k == 2).par_iter().flat_map_iter(|job| job()).collect())
}

/// Runs the non-IID track on prepared samples.
pub fn assess(samples: &Samples<'_>) -> NonIidReport {
    let k = samples.alphabet_size;
    let with_bits = samples.assess_bitstring();
    // The bit string takes a byte a bit: made here, shared by the bit-string estimators, dropped
    // on return.
    let bits = if with_bits { samples.bitstring() } else { Vec::new() };
    let mut all = jobs(samples.symbols(), k, View::Literal, k == 2);
    if with_bits {
        all.extend(jobs(&bits, 2, View::Bitstring, true));
    }
    let results: Vec<Estimate> = all.par_iter().flat_map_iter(|job| job()).collect();
    let (literal, bitstring): (Vec<_>, Vec<_>) = results.into_iter().partition(|e| e.view == View::Literal);
    let (literal, bitstring) = (in_order(literal), in_order(bitstring));
    let width = f64::from(samples.bits_per_symbol);
    let h_original = minimum(&literal, width);
    let h_bitstring = with_bits.then(|| minimum(&bitstring, 1.0));
    let h_assessed = h_bitstring.map_or(h_original, |hb| h_original.min(width * hb)).min(width);
    let mut warnings = Vec::new();
    if samples.len() < RECOMMENDED_SAMPLES {
        warnings.push(format!("data contains less than {RECOMMENDED_SAMPLES} samples"));
    }
    if samples.translated {
        warnings.push("symbols have been translated (mapped down to 0..k)".into());
    }
    for e in literal.iter().chain(&bitstring) {
        if let Some(note) = &e.note {
            warnings.push(format!("{} {} estimate: {note}", e.view.label(), e.name));
        }
    }
    NonIidReport {
        samples: samples.len(),
        bits_per_symbol: samples.bits_per_symbol,
        alphabet_size: k,
        bitstring_bits: if with_bits { bits.len() } else { 0 },
        literal,
        bitstring,
        h_original,
        h_bitstring,
        h_assessed,
        warnings,
    }
}

//! The non-IID track of SP 800-90B (§6.3): every estimator on the samples and, for alphabets of
//! more than two symbols, on their bit string; `H = min(H_original, bits × H_bitstring)` as NIST's
//! `ea_non_iid` computes it. The estimators run in parallel.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::estimate::{Estimate, View};
use super::estimators::{collision, compression, lag, lz78y, markov, most_common, multi_mcw, multi_mmc, tuples};
use super::samples::{Samples, RECOMMENDED_SAMPLES};
use super::Stop;
use crate::error::Result;

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

type Job<'a> = Box<dyn Fn(Stop<'_>) -> Result<Vec<Estimate>> + Send + Sync + 'a>;

/// The estimators on one view of the data, heaviest first (for load balance across threads).
/// Each looks at the [`Stop`] it is given as it goes; what one returns after it asked to stop is
/// never reported.
fn jobs<'a>(s: &'a [u8], k: usize, view: View, binary_only: bool) -> Vec<Job<'a>> {
    let mut jobs: Vec<Job<'a>> = vec![
        Box::new(move |stop| {
            Ok(match tuples::tuple_counts(s, stop)? {
                Some(counts) => {
                    let (t, l) = tuples::tuple_estimates(&counts, view);
                    vec![t, l]
                }
                None => Vec::new(),
            })
        }),
        Box::new(move |stop| Ok(vec![lz78y::lz78y(s, k, view, stop)])),
        Box::new(move |stop| Ok(vec![multi_mmc::multi_mmc(s, k, view, stop)])),
        Box::new(move |stop| Ok(vec![lag::lag(s, k, view, stop)])),
        Box::new(move |stop| Ok(vec![multi_mcw::multi_mcw(s, k, view, stop)])),
        Box::new(move |_| Ok(vec![most_common::most_common_value(s, k, view)])),
    ];
    if binary_only {
        jobs.push(Box::new(move |_| Ok(vec![collision::collision(s, view)])));
        jobs.push(Box::new(move |_| Ok(vec![markov::markov(s, view)])));
        jobs.push(Box::new(move |_| Ok(vec![compression::compression(s, view)])));
    }
    jobs
}

/// Runs `jobs` in parallel; `None` when `stop` asked to stop before they all ended. A job that
/// fails (memory) stops the others too: the track's answer is that error, not minutes later.
fn run(jobs: &[Job<'_>], stop: Stop<'_>) -> Result<Option<Vec<Estimate>>> {
    let failed = AtomicBool::new(false);
    let results: Vec<Result<Vec<Estimate>>> = jobs
        .par_iter()
        .map(|job| {
            let result = job(stop.or(&failed));
            if result.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            result
        })
        .collect();
    let results: Vec<Vec<Estimate>> = results.into_iter().collect::<Result<_>>()?;
    Ok((!stop.requested()).then(|| results.into_iter().flatten().collect()))
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

/// Every estimator on one view of the data, run in parallel, in SP 800-90B's order; `None` when
/// `stop` was set.
///
/// # Errors
/// [`Error::OutOfMemory`](crate::error::Error::OutOfMemory) when the data's repeats are long and
/// the arrays of the tuple estimates cannot be allocated.
pub fn estimates(s: &[u8], k: usize, view: View, stop: Stop<'_>) -> Result<Option<Vec<Estimate>>> {
    Ok(run(&jobs(s, k, view, k == 2), stop)?.map(in_order))
}

/// Runs the non-IID track on prepared samples; `None` when `stop` was set before it ended (it
/// is looked at every [`EVERY`](super::stop::EVERY) steps of each estimator's work).
///
/// # Errors
/// [`Error::OutOfMemory`](crate::error::Error::OutOfMemory) when the bit string, or the arrays of
/// the tuple estimates on data with long repeats, cannot be allocated.
pub fn assess(samples: &Samples<'_>, stop: Stop<'_>) -> Result<Option<NonIidReport>> {
    let k = samples.alphabet_size;
    let with_bits = samples.assess_bitstring();
    // The bit string takes a byte a bit: made here, shared by the bit-string estimators, dropped
    // on return.
    let bits = if with_bits { samples.bitstring()? } else { Vec::new() };
    let mut all = jobs(samples.symbols(), k, View::Literal, k == 2);
    if with_bits {
        // The bit string's tuple counts first: the heaviest job, and the one whose memory may run
        // out, which is then known before the other estimators have run for long.
        let mut on_bits = jobs(&bits, 2, View::Bitstring, true);
        all.insert(0, on_bits.remove(0));
        all.extend(on_bits);
    }
    let Some(results) = run(&all, stop)? else {
        return Ok(None);
    };
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
    Ok(Some(NonIidReport {
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
    }))
}

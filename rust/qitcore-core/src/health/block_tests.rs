//! Block tests on 20,000-bit sequences: FIPS 140-2 (2001-10-10, §4.9.1) monobit, poker, runs and
//! long run; and BSI AIS 31 (2011) procedure A: T0 (disjointness of 2^16 48-bit words), then T1
//! (monobit), T2 (poker), T3 (runs), T4 (long run) and T5 (autocorrelation) on 257 blocks.
//!
//! The tests work on 0/1 bytes; [`fips140_2_packed`] and [`ais31_procedure_a_packed`] unpack
//! packed bytes in either bit order first.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::bits::{extract_range, from_bit_vec, load_bits, to_bit_vec, words_for, BitOrder};
use crate::error::{unstopped, Error, Result};

/// Bits per block.
pub const BLOCK_BITS: usize = 20_000;

/// One test on one block.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.health", name = "BlockTest"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct Outcome {
    /// The test ("monobit", "poker", …).
    #[cfg_attr(feature = "python", serde(deserialize_with = "crate::python::static_name"))]
    pub test: crate::Name,
    /// Its statistic (the count, X, the longest run, Z_τ).
    pub value: f64,
    /// Whether it lies within the bounds.
    pub passed: bool,
    /// What was compared, for reports.
    pub detail: String,
}

fn ones(bits: &[u8]) -> u64 {
    bits.iter().map(|&b| u64::from(b)).sum()
}

fn poker(bits: &[u8]) -> f64 {
    let mut f = [0u64; 16];
    for nibble in bits.chunks_exact(4) {
        f[nibble.iter().fold(0usize, |acc, &b| (acc << 1) | b as usize)] += 1;
    }
    let k = (bits.len() / 4) as f64;
    16.0 / k * f.iter().map(|&c| (c * c) as f64).sum::<f64>() - k
}

/// Runs of each bit value by length 1..=5 and ≥ 6 (`[value][length − 1]`), and the longest run.
fn runs(bits: &[u8]) -> ([[u64; 6]; 2], u64) {
    let mut counts = [[0u64; 6]; 2];
    let mut longest = 0u64;
    let mut i = 0;
    while i < bits.len() {
        let v = bits[i];
        let start = i;
        while i < bits.len() && bits[i] == v {
            i += 1;
        }
        let len = (i - start) as u64;
        longest = longest.max(len);
        counts[v as usize][(len.min(6) - 1) as usize] += 1;
    }
    (counts, longest)
}

fn runs_outcome(counts: [[u64; 6]; 2], bounds: [(u64, u64); 6]) -> Outcome {
    let passed = counts.iter().all(|c| c.iter().zip(bounds).all(|(&n, (lo, hi))| (lo..=hi).contains(&n)));
    Outcome {
        test: "runs",
        value: counts.iter().flatten().sum::<u64>() as f64,
        passed,
        detail: format!("runs of 0s {:?}, of 1s {:?} by length 1..5, 6+; bounds {bounds:?}", counts[0], counts[1]),
    }
}

/// `value` to six significant digits, without trailing zeros (the statistics are sums of
/// squares, whose last binary digits would print as noise: 1565.4400000000005).
fn significant(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return format!("{value}");
    }
    let decimals = (5 - value.abs().log10().floor() as i32).clamp(0, 17) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A statistic that passes strictly between `lo` and `hi`; the detail reads true either way.
fn between(test: &'static str, value: f64, lo: f64, hi: f64) -> Outcome {
    let detail = format!("statistic {}, passes when {lo} < statistic < {hi}", significant(value));
    Outcome { test, value, passed: value > lo && value < hi, detail }
}

/// The longest run of equal bits, which passes below `limit`.
fn long_run(longest: u64, limit: u64) -> Outcome {
    Outcome {
        test: "long run",
        value: longest as f64,
        passed: longest < limit,
        detail: format!("longest run {longest}, passes when below {limit}"),
    }
}

/// The first `nbits` bits of packed `bytes`, one 0/1 byte each.
fn unpack(bytes: &[u8], nbits: usize, order: BitOrder) -> Vec<u8> {
    unpack_at(bytes, 0, nbits, order)
}

/// Bits `start..start + nbits` of packed `bytes`, one byte per bit.
fn unpack_at(bytes: &[u8], start: usize, nbits: usize, order: BitOrder) -> Vec<u8> {
    let mut words = vec![0u64; words_for(nbits)];
    load_bits(bytes, start, nbits, order, &mut words);
    to_bit_vec(&words, nbits)
}

/// The four FIPS 140-2 tests on each whole 20,000-bit block of packed `data` (a partial block at
/// the end is left out): each block's outcomes, in order.
///
/// # Errors
/// [`Error::InvalidLength`] naming `data` when it holds less than one block.
pub fn fips140_2_packed(data: &[u8], order: BitOrder) -> Result<Vec<Vec<Outcome>>> {
    unstopped(|stop| fips140_2_packed_until(data, order, stop))
}

/// As [`fips140_2_packed`], giving up (`None`) soon after `stop` is set. Blocks are unpacked one
/// at a time (memory is the outcomes', not eight bytes a bit of input) and tested in parallel,
/// each looking at `stop` first.
///
/// # Errors
/// As [`fips140_2_packed`].
pub fn fips140_2_packed_until(data: &[u8], order: BitOrder, stop: &AtomicBool) -> Result<Option<Vec<Vec<Outcome>>>> {
    let blocks = data.len() * 8 / BLOCK_BITS;
    if blocks == 0 {
        return Err(Error::length(
            "data",
            format!("FIPS 140-2 tests need {BLOCK_BITS} bits ({} bytes), got {} bytes", BLOCK_BITS / 8, data.len()),
        ));
    }
    let outcomes: Option<Vec<Vec<Outcome>>> = (0..blocks)
        .into_par_iter()
        .map(|b| {
            (!stop.load(Ordering::Relaxed)).then(|| fips140_2(&unpack_at(data, b * BLOCK_BITS, BLOCK_BITS, order)))
        })
        .collect();
    Ok(outcomes.filter(|_| !stop.load(Ordering::Relaxed)))
}

/// The four FIPS 140-2 tests on one 20,000-bit block.
pub fn fips140_2(block: &[u8]) -> Vec<Outcome> {
    debug_assert_eq!(block.len(), BLOCK_BITS);
    let (counts, longest) = runs(block);
    vec![
        between("monobit", ones(block) as f64, 9725.0, 10275.0),
        between("poker", poker(block), 2.16, 46.17),
        runs_outcome(counts, [(2315, 2685), (1114, 1386), (527, 723), (240, 384), (103, 209), (103, 209)]),
        long_run(longest, 26),
    ]
}

/// AIS 31 T5: `Z_τ = Σ_{j<5000} b_j ⊕ b_{j+τ}` for τ = 1..5000 on the first 10,000 bits gives the
/// τ with the largest |Z_τ − 2500|; that τ is then tested on the last 10,000 bits.
fn autocorrelation(block: &[u8]) -> Outcome {
    // On packed words: Z_τ is the popcount of (b[0..5000] XOR b[τ..τ+5000]).
    let z = |half: &[u8], tau: usize| {
        let words = from_bit_vec(half);
        let (mut head, mut shifted) = (vec![0u64; words_for(5000)], vec![0u64; words_for(5000)]);
        extract_range(&words, 0, 5000, &mut head);
        extract_range(&words, tau, 5000, &mut shifted);
        head.iter().zip(&shifted).map(|(a, b)| (a ^ b).count_ones() as u64).sum::<u64>()
    };
    let first = from_bit_vec(&block[..10_000]);
    let mut head = vec![0u64; words_for(5000)];
    extract_range(&first, 0, 5000, &mut head);
    let mut shifted = vec![0u64; words_for(5000)];
    let tau = (1..=5000)
        .max_by_key(|&t| {
            extract_range(&first, t, 5000, &mut shifted);
            let zt: u64 = head.iter().zip(&shifted).map(|(a, b)| u64::from((a ^ b).count_ones())).sum();
            (zt as i64 - 2500).unsigned_abs()
        })
        .expect("5000 lags");
    let value = z(&block[10_000..], tau) as f64;
    let mut o = between("autocorrelation", value, 2326.0, 2674.0);
    o.detail = format!("tau {tau}: {}", o.detail);
    o
}

/// T1–T5 of AIS 31 procedure A on one 20,000-bit block.
pub fn ais31_block(block: &[u8]) -> Vec<Outcome> {
    debug_assert_eq!(block.len(), BLOCK_BITS);
    let (counts, longest) = runs(block);
    vec![
        between("monobit", ones(block) as f64, 9654.0, 10346.0),
        between("poker", poker(block), 1.03, 57.4),
        runs_outcome(counts, [(2267, 2733), (1079, 1421), (502, 748), (223, 402), (90, 223), (90, 223)]),
        long_run(longest, 34),
        autocorrelation(block),
    ]
}

/// Bits T0 needs: 2^16 words of 48 bits.
pub const T0_BITS: usize = 65_536 * 48;
/// Blocks procedure A tests with T1–T5.
pub const PROCEDURE_A_BLOCKS: usize = 257;

/// AIS 31 T0: the 2^16 48-bit words are pairwise distinct.
pub fn ais31_disjointness(bits: &[u8]) -> Outcome {
    let words: HashSet<u64> =
        bits[..T0_BITS].chunks_exact(48).map(|w| w.iter().fold(0u64, |acc, &b| (acc << 1) | u64::from(b))).collect();
    Outcome {
        test: "disjointness",
        value: words.len() as f64,
        passed: words.len() == 65_536,
        detail: format!("{} distinct of 65536 words", words.len()),
    }
}

/// The verdict of procedure A.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "python", derive(serde::Serialize, serde::Deserialize))]
pub enum Verdict {
    /// T0 and all 1285 block tests passed.
    Pass,
    /// Exactly one test failed: AIS 31 asks for procedure A to be repeated once on fresh data.
    Repeat,
    /// More than one test failed.
    Fail,
}

impl Verdict {
    /// `"pass"`, `"repeat"` or `"fail"`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Repeat => "repeat",
            Verdict::Fail => "fail",
        }
    }
}

/// AIS 31 procedure A: T0 once, T1–T5 on 257 blocks of 20,000 bits, and the verdict (`"repeat"`
/// when exactly one test failed: AIS 31 then asks for one repetition on fresh data).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.health", name = "Ais31Result"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct ProcedureA {
    /// T0 (disjointness).
    pub t0: Outcome,
    /// T1–T5 on each of the 257 blocks.
    pub blocks: Vec<Vec<Outcome>>,
    /// Pass, repeat or fail.
    pub verdict: Verdict,
}

/// Bits procedure A tests: T0's words, then 257 blocks.
pub const PROCEDURE_A_BITS: usize = T0_BITS + PROCEDURE_A_BLOCKS * BLOCK_BITS;

/// AIS 31 procedure A on the first [`PROCEDURE_A_BITS`] bits of packed `data`.
///
/// # Errors
/// [`Error::InvalidLength`] naming `data` when it holds fewer bits.
pub fn ais31_procedure_a_packed(data: &[u8], order: BitOrder) -> Result<ProcedureA> {
    if data.len() * 8 < PROCEDURE_A_BITS {
        return Err(Error::length(
            "data",
            format!(
                "AIS 31 procedure A needs {PROCEDURE_A_BITS} bits ({} bytes), got {} bytes",
                PROCEDURE_A_BITS.div_ceil(8),
                data.len()
            ),
        ));
    }
    Ok(ais31_procedure_a(&unpack(data, PROCEDURE_A_BITS, order)).expect("enough bits, checked above"))
}

/// AIS 31 procedure A on at least [`PROCEDURE_A_BITS`] bits: T0, then T1–T5 on 257 blocks; `None`
/// when there are too few bits.
pub fn ais31_procedure_a(bits: &[u8]) -> Option<ProcedureA> {
    if bits.len() < PROCEDURE_A_BITS {
        return None;
    }
    let t0 = ais31_disjointness(bits);
    let blocks: Vec<Vec<Outcome>> =
        bits[T0_BITS..].chunks_exact(BLOCK_BITS).take(PROCEDURE_A_BLOCKS).map(ais31_block).collect();
    let failures = usize::from(!t0.passed) + blocks.iter().flatten().filter(|o| !o.passed).count();
    let verdict = match failures {
        0 => Verdict::Pass,
        1 => Verdict::Repeat,
        _ => Verdict::Fail,
    };
    Some(ProcedureA { t0, blocks, verdict })
}

#[cfg(test)]
mod tests {
    /// Block by block and in parallel, the outcomes are those of the whole input unpacked and cut
    /// into blocks (a partial block left out), in both bit orders; a stopped run gives up.
    #[test]
    fn packed_blocks_are_tested_in_order_and_a_stopped_run_gives_up() {
        let data: Vec<u8> = (0..5 * BLOCK_BITS / 8 + 77).map(|i| (i * 131 % 253) as u8).collect();
        for order in [BitOrder::Big, BitOrder::Little] {
            let whole = unpack(&data, 5 * BLOCK_BITS, order);
            let expect: Vec<Vec<Outcome>> = whole.chunks_exact(BLOCK_BITS).map(fips140_2).collect();
            assert_eq!(fips140_2_packed(&data, order).unwrap(), expect);
            assert_eq!(fips140_2_packed_until(&data, order, &AtomicBool::new(true)).unwrap(), None);
        }
        assert!(fips140_2_packed_until(&data[..100], BitOrder::Big, &AtomicBool::new(true)).is_err());
    }

    use super::*;

    fn random_bits(n: usize, seed: u64) -> Vec<u8> {
        let mut g = crate::maths::xoshiro::Xoshiro256::from_seed(seed);
        (0..n).map(|_| (g.next_u64() >> 63) as u8).collect()
    }

    #[test]
    fn details_state_the_statistic_and_when_it_passes() {
        assert_eq!(significant(1565.4400000000005), "1565.44");
        assert_eq!(significant(10_600.0), "10600");
        assert_eq!(significant(0.012345678), "0.0123457");
        assert_eq!(
            between("poker", 1565.4400000000005, 2.16, 46.17).detail,
            "statistic 1565.44, passes when 2.16 < statistic < 46.17"
        );
        let ok = between("monobit", 10_000.0, 9725.0, 10275.0);
        assert!(ok.passed && ok.detail == "statistic 10000, passes when 9725 < statistic < 10275");
        let run = long_run(40, 26);
        assert!(!run.passed && run.detail == "longest run 40, passes when below 26");
    }

    #[test]
    fn uniform_bits_pass_and_defects_fail() {
        let good = random_bits(BLOCK_BITS, 1);
        assert!(fips140_2(&good).iter().all(|o| o.passed), "{:?}", fips140_2(&good));
        assert!(ais31_block(&good).iter().all(|o| o.passed), "{:?}", ais31_block(&good));
        // Biased: every 16th bit forced to 1 → about 10 600 ones.
        let biased: Vec<u8> = good.iter().enumerate().map(|(i, &b)| if i % 16 == 0 { 1 } else { b }).collect();
        assert!(!fips140_2(&biased)[0].passed && !ais31_block(&biased)[0].passed);
        // A run of 40 zeros fails both long-run tests.
        let mut long = good.clone();
        long[1000..1040].fill(0);
        assert!(!fips140_2(&long)[3].passed && !ais31_block(&long)[3].passed);
        // Period-2 correlation: b_{j+2} = b_j for the whole block drives Z_2 to 0.
        let periodic: Vec<u8> = (0..BLOCK_BITS).map(|i| good[i % 2 + 2 * (i / 1000)]).collect();
        assert!(!ais31_block(&periodic)[4].passed);
    }

    #[test]
    fn autocorrelation_follows_the_definition() {
        let block = random_bits(BLOCK_BITS, 9);
        let naive = |bits: &[u8], tau: usize| (0..5000).filter(|&j| bits[j] != bits[j + tau]).count();
        let tau = (1..=5000usize).max_by_key(|&t| (naive(&block[..10_000], t) as i64 - 2500).unsigned_abs()).unwrap();
        let o = autocorrelation(&block);
        assert_eq!(o.value, naive(&block[10_000..], tau) as f64);
        assert!(o.detail.starts_with(&format!("tau {tau}:")), "{}", o.detail);
    }

    #[test]
    fn poker_and_runs_follow_the_definitions() {
        // Alternating bits: every nibble is 0101 → X = 16/5000·5000² − 5000 = 75000.
        let alt: Vec<u8> = (0..BLOCK_BITS).map(|i| (i % 2) as u8).collect();
        assert_eq!(poker(&alt), 75000.0);
        let (counts, longest) = runs(&alt);
        assert_eq!((counts[0][0], counts[1][0], longest), (10_000, 10_000, 1));
    }

    #[test]
    fn procedure_a_needs_enough_bits_and_passes_on_uniform_bits() {
        assert!(ais31_procedure_a(&random_bits(1000, 2)).is_none());
        let bits = random_bits(PROCEDURE_A_BITS, 3);
        let a = ais31_procedure_a(&bits).unwrap();
        assert!(a.t0.passed);
        assert_eq!(a.blocks.len(), 257);
        // Each test's bounds have a small false-failure rate; 1285 tests pass together almost surely.
        assert_ne!(a.verdict, Verdict::Fail);
    }

    /// `bits` packed in `order`.
    fn pack(bits: &[u8], order: BitOrder) -> Vec<u8> {
        let mut bytes = vec![0u8; bits.len().div_ceil(8)];
        for (k, &b) in bits.iter().enumerate() {
            bytes[k / 8] |= b << if order == BitOrder::Big { 7 - k % 8 } else { k % 8 };
        }
        bytes
    }

    #[test]
    fn packed_entry_points_unpack_in_either_order_and_name_short_data() {
        let bits = random_bits(2 * BLOCK_BITS + 100, 4);
        let expect: Vec<Vec<Outcome>> = bits.chunks_exact(BLOCK_BITS).map(fips140_2).collect();
        for order in [BitOrder::Big, BitOrder::Little] {
            assert_eq!(fips140_2_packed(&pack(&bits, order), order).unwrap(), expect, "{order:?}");
        }
        let err = fips140_2_packed(&[0u8; 2499], BitOrder::Big).unwrap_err();
        assert!(matches!(err, Error::InvalidLength { name: "data", .. }), "{err}");
        assert!(err.to_string().contains("2500 bytes), got 2499 bytes"), "{err}");
        let bits = random_bits(PROCEDURE_A_BITS, 5);
        let a = ais31_procedure_a_packed(&pack(&bits, BitOrder::Little), BitOrder::Little).unwrap();
        assert_eq!(Some(a), ais31_procedure_a(&bits));
        let err = ais31_procedure_a_packed(&[0u8; 1000], BitOrder::Big).unwrap_err();
        assert!(err.to_string().contains("needs 8285728 bits (1035716 bytes), got 1000 bytes"), "{err}");
    }
}

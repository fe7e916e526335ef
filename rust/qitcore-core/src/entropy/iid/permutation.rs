//! SP 800-90B §5.1: the permutation tests. Nineteen statistics of the samples are ranked among the
//! same statistics of up to 10,000 random permutations of them; a statistic fails when the
//! original ranks among the 5 highest or lowest (`C0 + C1 <= 5` or `C1 + C2 <= 5`). A statistic
//! stops being computed once both counts pass 5, as in NIST's tool.

use std::ops::ControlFlow;

use rayon::prelude::*;

use super::bzip2_size::compressed_length;
use super::flags;
use crate::maths::arrangement::{Composition, Scratch};
use crate::maths::bit_arrangement::{near_half, random_bits};
use crate::maths::xoshiro::Xoshiro256;

/// The statistics' names, in SP 800-90B's order.
pub const NAMES: [&str; 19] = [
    "excursion",
    "numDirectionalRuns",
    "lenDirectionalRuns",
    "numIncreasesDecreases",
    "numRunsMedian",
    "lenRunsMedian",
    "avgCollision",
    "maxCollision",
    "periodicity(1)",
    "periodicity(2)",
    "periodicity(8)",
    "periodicity(16)",
    "periodicity(32)",
    "covariance(1)",
    "covariance(2)",
    "covariance(8)",
    "covariance(16)",
    "covariance(32)",
    "compression",
];

const LAGS: [usize; 5] = [1, 2, 8, 16, 32];

/// What the statistics need besides the samples.
#[derive(Clone, Copy)]
pub struct Context {
    /// Number of distinct symbols.
    pub k: usize,
    /// Mean of the raw values.
    pub raw_mean: f64,
    /// Median of the mapped symbols (0.5 for binary data).
    pub median: f64,
}

/// Sums of consecutive groups of 8 (the binary "conversion I").
fn sum_of_eights(s: &[u8]) -> Vec<u8> {
    s.chunks(8).map(|c| c.iter().sum()).collect()
}

/// Groups of 8 bits packed most significant first (the binary "conversion II").
fn packed_eights(s: &[u8]) -> Vec<u8> {
    s.chunks(8).map(|c| c.iter().enumerate().fold(0u8, |acc, (i, &b)| acc + (b << (7 - i)))).collect()
}

/// Products below 2^16 summed in 32 bits over chunks of 2^15, so that the loop vectorises, then
/// in 64.
#[inline(always)]
fn sum_products_at_lag(s: &[u8], p: usize) -> u64 {
    if s.len() <= p {
        return 0;
    }
    s.chunks(1 << 15)
        .zip(s[p..].chunks(1 << 15))
        .map(|(a, b)| u64::from(a.iter().zip(b).map(|(&x, &y)| u32::from(x) * u32::from(y)).sum::<u32>()))
        .sum()
}

/// Defines a function that runs `$body` compiled for AVX2 where the processor has it, and as
/// compiled otherwise: the loops of `$body` vectorise twice as wide.
macro_rules! with_avx2 {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $body:ident) => {
        $(#[$doc])*
        fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            if crate::cpu::has(crate::cpu::Features::AVX2) {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }
                // SAFETY: the feature was just detected.
                return unsafe { avx2($($arg),*) };
            }
            $body($($arg),*)
        }
    };
}

with_avx2! {
    /// How many `i` have `s[i] == s[i + p]` (the periodicity statistic): counted in byte lanes,
    /// 255 rows of 32 at a time, so that a comparison and a subtraction do each 32 pairs. The
    /// tail of the permutation tests is mostly this.
    fn equal_at_lag(s: &[u8], p: usize) -> u64 = count_equal_at_lag
}

with_avx2! {
    /// The sum of `s[i] × s[i + p]` over `i` (the covariance statistic).
    fn products_at_lag(s: &[u8], p: usize) -> u64 = sum_products_at_lag
}

#[inline(always)]
fn count_equal_at_lag(s: &[u8], p: usize) -> u64 {
    if s.len() <= p {
        return 0;
    }
    let (a, b) = (&s[..s.len() - p], &s[p..]);
    const ROW: usize = 32;
    let (mut rows_a, mut rows_b) = (a.chunks_exact(ROW), b.chunks_exact(ROW));
    let mut total = 0u64;
    loop {
        // At most 255 rows into byte counters, which then cannot overflow.
        let mut lanes = [0u8; ROW];
        let mut rows = 0;
        for (x, y) in (&mut rows_a).zip(&mut rows_b).take(255) {
            for ((l, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
                *l += u8::from(x == y);
            }
            rows += 1;
        }
        total += lanes.iter().map(|&l| u64::from(l)).sum::<u64>();
        if rows < 255 {
            break;
        }
    }
    let rest = a.len() / ROW * ROW;
    total + a[rest..].iter().zip(&b[rest..]).filter(|(x, y)| x == y).count() as u64
}

with_avx2! {
    /// The largest `|s_1 + ... + s_i - i × mean|` (SP 800-90B §5.1.1), in the same floating-point
    /// steps as NIST's tool: the running sum and `i` are integers, exact as doubles, then one
    /// rounded product, one rounded difference. On sources whose excursion stays undecided for a
    /// thousand permutations it was a third of each; now most samples are passed over by a
    /// bound (see [`excursion_by_blocks`]).
    fn excursion(raw: &[u8], mean: f64) -> f64 = excursion_by_blocks
}

/// Samples per block of [`excursion_by_blocks`].
const EXCURSION_BLOCK: usize = 64;

/// [`excursion`], computing the deviation sample by sample only in the blocks that could hold a
/// larger one than already seen. Within a block of `b` samples the exact deviation moves at most
/// `b × max(mean, top - mean)` from its value at the block's start (`top` the largest sample),
/// and a computed deviation is within a millionth of the exact one (two roundings of numbers
/// below 2^35), so a block whose start deviation plus that reach and a margin of 1 is below a
/// deviation already computed holds none as large. A first pass computes the deviations at every
/// block's end (from block sums, which vectorise) for a maximum to compare with; on shuffled
/// samples, where the walk stays well below its extreme most of the time, a few blocks in a
/// hundred are then computed. The result is the largest of the same computed deviations as
/// NIST's: bit for bit its value.
#[inline(always)]
fn excursion_by_blocks(raw: &[u8], mean: f64) -> f64 {
    let deviation = |sum: u64, i: usize| (sum as f64 - i as f64 * mean).abs();
    let block_sum = |block: &[u8]| u64::from(block.iter().map(|&v| u32::from(v)).sum::<u32>());
    let (mut sum, mut max, mut top) = (0u64, 0.0f64, 0u8);
    for (k, block) in raw.chunks_exact(EXCURSION_BLOCK).enumerate() {
        sum += block_sum(block);
        top = top.max(block.iter().copied().max().unwrap_or(0));
        let d = deviation(sum, (k + 1) * EXCURSION_BLOCK);
        max = if d > max { d } else { max };
    }
    top = top.max(raw.chunks_exact(EXCURSION_BLOCK).remainder().iter().copied().max().unwrap_or(0));
    let reach = EXCURSION_BLOCK as f64 * mean.abs().max((f64::from(top) - mean).abs()) + 1.0;
    sum = 0;
    for (k, block) in raw.chunks(EXCURSION_BLOCK).enumerate() {
        let first = k * EXCURSION_BLOCK;
        if deviation(sum, first) + reach >= max {
            let mut s = sum;
            for (t, &v) in block.iter().enumerate() {
                s += u64::from(v);
                let d = deviation(s, first + t + 1);
                max = if d > max { d } else { max };
            }
        }
        sum += block_sum(block);
    }
    max
}

/// The definition, one sample at a time: the tests' reference for [`excursion`].
#[cfg(test)]
fn excursion_naive(raw: &[u8], mean: f64) -> f64 {
    let (mut sum, mut max) = (0.0f64, 0.0f64);
    for (i, &v) in raw.iter().enumerate() {
        sum += f64::from(v);
        max = max.max((sum - (i + 1) as f64 * mean).abs());
    }
    max
}

/// Fewest distinct symbols for which [`collisions_by_stretch`] is the quicker: stretches of a
/// dozen samples or more, whose ends a branch predicts well enough.
const LONG_STRETCHES: usize = 129;

/// Lengths of the successive stretches until a symbol repeats (SP 800-90B §5.1.7): the average
/// and the longest; a last stretch without a repeat is not counted. For samples over `k` symbols.
fn collisions(s: &[u8], k: usize) -> (f64, u64) {
    if k >= LONG_STRETCHES {
        collisions_by_stretch(s)
    } else {
        collisions_without_branches(s)
    }
}

/// [`collisions`] without a branch on where a stretch ends, which a few samples in ten do at
/// random over few symbols (gauss-6: 1.7 -> 1.1 ms a million samples; uniform bytes 0.9 -> 1.1).
fn collisions_without_branches(s: &[u8]) -> (f64, u64) {
    // A symbol was seen in the current stretch when it carries the stretch's number: no clearing
    // of 256 flags per stretch. The symbol that ends a stretch keeps the old number, so the next
    // starts empty.
    let mut seen = [0u32; 256];
    let (mut stretch, mut len, mut sum, mut count, mut max) = (1u32, 0u64, 0u64, 0u64, 0u64);
    for &x in s {
        len += 1;
        let ends = seen[usize::from(x)] == stretch;
        seen[usize::from(x)] = stretch;
        let ended = if ends { len } else { 0 };
        sum += ended;
        max = max.max(ended);
        count += u64::from(ends);
        stretch += u32::from(ends);
        len -= ended;
    }
    (sum as f64 / count as f64, max)
}

/// [`collisions`] a stretch at a time, for many symbols (long stretches).
fn collisions_by_stretch(s: &[u8]) -> (f64, u64) {
    let n = s.len();
    let (mut i, mut sum, mut count, mut max) = (0usize, 0u64, 0u64, 0u64);
    let mut seen = [0u32; 256];
    let mut stretch = 0u32;
    'outer: while i < n {
        stretch += 1;
        let mut j = 0usize;
        while i + j < n {
            let x = s[i + j] as usize;
            if seen[x] == stretch {
                sum += (j + 1) as u64;
                count += 1;
                max = max.max((j + 1) as u64);
                i += j + 1;
                continue 'outer;
            }
            seen[x] = stretch;
            j += 1;
        }
        break;
    }
    (sum as f64 / count as f64, max)
}

/// The definition, one stretch at a time: the tests' reference for [`collisions`].
#[cfg(test)]
fn collisions_naive(s: &[u8]) -> (f64, u64) {
    let mut lengths = Vec::new();
    let mut i = 0;
    while let Some(j) = (i..s.len()).find(|&j| s[i..j].contains(&s[j])) {
        lengths.push((j - i + 1) as u64);
        i = j + 1;
    }
    (lengths.iter().sum::<u64>() as f64 / lengths.len() as f64, lengths.iter().copied().max().unwrap_or(0))
}

/// The least symbol at or above the median (0.5 for binary data), which the runs about the
/// median compare with; `None` when no symbol is (every sample is below).
fn median_threshold(ctx: &Context) -> Option<u8> {
    let median = if ctx.k == 2 { 0.5 } else { ctx.median };
    // Samples are integers: x >= median exactly when x >= ceil(median).
    let threshold = median.ceil();
    (threshold <= 255.0).then(|| threshold.max(0.0) as u8)
}

/// The runs about the median (statistics 4 and 5, as `wanted`; the others NaN) of a uniformly
/// random arrangement of the samples, `above` of whose `n` are at or above the median: drawn as
/// packed flags, for rounds where no other statistic is wanted.
fn median_runs_round(
    above: usize,
    n: usize,
    wanted: &[bool; 19],
    rng: &mut Xoshiro256,
    words: &mut Vec<u64>,
) -> [f64; 19] {
    random_bits(above, n, rng, words);
    let mut t = [f64::NAN; 19];
    if wanted[4] {
        t[4] = flags::run_count(words, n) as f64;
    }
    if wanted[5] {
        t[5] = flags::longest_run(words, n) as f64;
    }
    t
}

/// The statistics flagged in `wanted` (others are NaN), on mapped symbols `data` and raw values
/// `raw` in the same order.
pub fn statistics(data: &[u8], raw: &[u8], ctx: &Context, wanted: &[bool; 19]) -> [f64; 19] {
    let mut t = [f64::NAN; 19];
    let n = data.len();
    let binary = ctx.k == 2;
    if wanted[0] {
        t[0] = excursion(raw, ctx.raw_mean);
    }
    let eights = if binary { sum_of_eights(data) } else { Vec::new() };
    let view: &[u8] = if binary { &eights } else { data };
    if wanted[1] || wanted[2] || wanted[3] {
        let (up, len) = flags::pack(view, view.get(1..).unwrap_or_default(), |a, b| a <= b);
        // Each only while undecided: the longest run costs as much as the packing.
        if wanted[1] {
            t[1] = flags::run_count(&up, len) as f64;
        }
        if wanted[2] {
            t[2] = flags::longest_run(&up, len) as f64;
        }
        if wanted[3] {
            let ups = flags::count(&up);
            t[3] = ups.max(len as u64 - ups) as f64;
        }
    }
    if wanted[4] || wanted[5] {
        let (count, longest) = if let Some(threshold) = median_threshold(ctx) {
            let (above, len) = flags::pack(data, data, |x, _| x >= threshold);
            let count = if wanted[4] { flags::run_count(&above, len) } else { 0 };
            (count, if wanted[5] { flags::longest_run(&above, len) } else { 0 })
        } else {
            (1, n as u64)
        };
        if wanted[4] {
            t[4] = count as f64;
        }
        if wanted[5] {
            t[5] = longest as f64;
        }
    }
    if wanted[6] || wanted[7] {
        let (avg, max) = if binary { collisions(&packed_eights(data), 256) } else { collisions(data, ctx.k) };
        t[6] = avg;
        t[7] = max as f64;
    }
    for (j, &p) in LAGS.iter().enumerate() {
        if wanted[8 + j] {
            t[8 + j] = equal_at_lag(view, p) as f64;
        }
        if wanted[13 + j] {
            let cov: &[u8] = if binary { &eights } else { raw };
            t[13 + j] = products_at_lag(cov, p) as f64;
        }
    }
    if wanted[18] {
        t[18] = compressed_length(raw) as f64;
    }
    t
}

/// The outcome of the permutation tests.
#[derive(Clone, Debug)]
pub struct PermutationTests {
    /// The statistics of the samples themselves.
    pub initial: [f64; 19],
    /// Per statistic: permutations scoring above, equal to, and below the samples.
    pub counts: [[u64; 3]; 19],
    /// Permutations run.
    pub rounds: usize,
    /// Whether every statistic passed.
    pub passed: bool,
}

impl PermutationTests {
    /// Whether statistic `j` passed: `C0 + C1 > 5` and `C1 + C2 > 5`.
    pub fn statistic_passed(&self, j: usize) -> bool {
        let c = self.counts[j];
        c[0] + c[1] > 5 && c[1] + c[2] > 5
    }
}

thread_local! {
    /// Each worker's buffers for its permutations (symbols, raw values where they differ, and
    /// the arrangement's scratch), kept between rounds: a fresh megabyte per round costs a tenth
    /// of a round in page faults and zeroing.
    static SHUFFLED: std::cell::RefCell<(Vec<u8>, Vec<u8>, Scratch)> = std::cell::RefCell::new(Default::default());
    /// Each worker's flags for the rounds that arrange only them.
    static MEDIAN_FLAGS: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What a round permutes: the raw values, and the symbols as a function of them.
struct Permuted<'a> {
    data: &'a [u8],
    raw: &'a [u8],
    /// The symbol of each raw value.
    symbol_of: [u8; 256],
    raw_composition: Composition,
    /// The symbols' composition, when they differ from the raw values (not for 8-bit data using
    /// every value, nor binary data).
    data_composition: Option<Composition>,
}

impl<'a> Permuted<'a> {
    fn new(data: &'a [u8], raw: &'a [u8]) -> Self {
        let mut symbol_of = [0u8; 256];
        for (&d, &r) in data.iter().zip(raw) {
            symbol_of[usize::from(r)] = d;
        }
        let data_composition = (data != raw).then(|| Composition::of(data));
        Permuted { data, raw, symbol_of, raw_composition: Composition::of(raw), data_composition }
    }

    /// Which arrangement [`Permuted::round`] draws for the statistics in `wanted`: a round's
    /// arrangement depends on them through this alone.
    fn method(&self, wanted: &[bool; 19], binary: bool) -> Method {
        let raw_needed = wanted[0] || wanted[18] || (!binary && wanted[13..18].iter().any(|&w| w));
        let data_needed = wanted[1..13].iter().any(|&w| w) || (binary && wanted[13..18].iter().any(|&w| w));
        match self.data_composition {
            Some(_) if !raw_needed => Method::Symbols,
            Some(_) if data_needed => Method::Both,
            _ => Method::Values,
        }
    }

    /// A uniformly random permutation of the samples into `d` (symbols) and `w` (raw values),
    /// as the statistics in `wanted` need them: returns (symbols, raw values). A random
    /// arrangement of the multiset stands for the permutation: the statistics read only values.
    fn round<'b>(
        &self,
        wanted: &[bool; 19],
        binary: bool,
        rng: &mut Xoshiro256,
        (d, w, scratch): &'b mut (Vec<u8>, Vec<u8>, Scratch),
    ) -> (&'b [u8], &'b [u8]) {
        match (&self.data_composition, self.method(wanted, binary)) {
            (Some(symbols), Method::Symbols) => {
                d.resize(self.data.len(), 0);
                symbols.arrange_into(self.data, d, rng, scratch);
                (d, d)
            }
            (Some(_), Method::Both) => {
                // The symbols are a function of the raw values: arranging the values and
                // mapping them keeps each symbol with its value.
                w.resize(self.raw.len(), 0);
                self.raw_composition.arrange_into(self.raw, w, rng, scratch);
                d.clear();
                d.extend(w.iter().map(|&v| self.symbol_of[usize::from(v)]));
                (d, w)
            }
            _ => {
                // Identical symbols and values, or only the values wanted.
                d.resize(self.raw.len(), 0);
                self.raw_composition.arrange_into(self.raw, d, rng, scratch);
                (d, d)
            }
        }
    }
}

/// The arrangement a round draws: of the symbols alone, of the raw values with their symbols
/// mapped from them, or of the raw values alone (also when they are the symbols).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Symbols,
    Both,
    Values,
}

/// Counts one permutation's statistics `tp` against the original's `initial` (greater, equal,
/// less) for each statistic still `active`, and retires a statistic once NIST's rule has decided
/// it (more than 5 on each side of equal); returns the statistics it retired.
pub fn tally(counts: &mut [[u64; 3]; 19], active: &mut [bool; 19], initial: &[f64; 19], tp: &[f64; 19]) -> Vec<usize> {
    let mut decided = Vec::new();
    for j in 0..19 {
        if !active[j] {
            continue;
        }
        let slot = if tp[j] > initial[j] {
            0
        } else if tp[j] == initial[j] {
            1
        } else {
            2
        };
        counts[j][slot] += 1;
        let c = counts[j];
        if c[0] + c[1] > 5 && c[1] + c[2] > 5 {
            active[j] = false;
            decided.push(j);
        }
    }
    decided
}

/// Whether only the runs about the median are undecided (their rounds arrange flags alone).
fn median_only(wanted: &[bool; 19]) -> bool {
    wanted.iter().enumerate().all(|(j, &w)| !w || j == 4 || j == 5)
}

/// Runs up to `max_rounds` permutations (rounds in parallel, each from the original order with
/// its own generator stream derived from `seed`), stopping when every statistic is decided.
/// Once only the runs about the median are undecided, a round arranges the samples' flags (at or
/// above the median) as bits rather than the samples (`median_runs_round`), when about half are
/// set.
/// `progress(rounds, decided)` is asked after each batch of rounds; `None` when it answered
/// [`ControlFlow::Break`] (the caller was interrupted).
pub fn permutation_tests(
    data: &[u8],
    raw: &[u8],
    ctx: &Context,
    max_rounds: usize,
    seed: u64,
    progress: &(dyn Fn(usize, usize) -> ControlFlow<()> + Sync),
) -> Option<PermutationTests> {
    let mut active = [true; 19];
    let initial = statistics(data, raw, ctx, &active);
    let mut counts = [[0u64; 3]; 19];
    let mut rounds = 0usize;
    let batch = rayon::current_num_threads().max(1);
    let permuted = Permuted::new(data, raw);
    let binary = ctx.k == 2;
    // Samples at or above the median, when their flags can be arranged alone (see
    // `median_runs_round`).
    let above = median_threshold(ctx)
        .map(|threshold| data.iter().filter(|&&x| x >= threshold).count())
        .filter(|&above| near_half(above, data.len()));
    while rounds < max_rounds && active.iter().any(|&a| a) {
        let size = batch.min(max_rounds - rounds);
        let wanted = active;
        let flags_only = median_only(&wanted);
        let results: Vec<[f64; 19]> = (rounds..rounds + size)
            .into_par_iter()
            .map(|r| {
                let mut rng = Xoshiro256::from_seed(seed ^ (r as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                if let Some(above) = above.filter(|_| flags_only) {
                    return MEDIAN_FLAGS
                        .with_borrow_mut(|words| median_runs_round(above, data.len(), &wanted, &mut rng, words));
                }
                SHUFFLED.with_borrow_mut(|buffers| {
                    let (d, w) = permuted.round(&wanted, binary, &mut rng, buffers);
                    statistics(d, w, ctx, &wanted)
                })
            })
            .collect();
        // How a round drawn for a set of undecided statistics is arranged.
        let drawn = |wanted: &[bool; 19]| (above.is_some() && median_only(wanted), permuted.method(wanted, binary));
        for tp in results {
            tally(&mut counts, &mut active, &initial, &tp);
            rounds += 1;
            if !active.iter().any(|&a| a) {
                break;
            }
            if active != wanted && drawn(&active) != drawn(&wanted) {
                // A round's arrangement depends on the statistics still undecided before it (NIST
                // computes only those): when a decision changes how rounds are arranged, the
                // batch's later rounds, drawn the old way, are dropped and drawn again, so that
                // the results do not depend on how many rounds a batch held (the number of
                // threads). Otherwise they are what a round drawn for the new set would be (the
                // same arrangement, and every statistic still undecided among theirs), and count.
                break;
            }
        }
        if progress(rounds, active.iter().filter(|&&a| !a).count()).is_break() {
            return None;
        }
    }
    let mut result = PermutationTests { initial, counts, rounds, passed: false };
    result.passed = (0..19).all(|j| result.statistic_passed(j));
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excursion_equals_the_definition() {
        let mut g = Xoshiro256::from_seed(2);
        // Lengths about the blocks; the last long enough that the running sums and indices leave
        // the range where every product is exact.
        for len in [0usize, 1, 7, 8, 9, 63, 64, 65, 127, 129, 1023, 1024, 1025, 4096 + 7, 5000, 100_003, 3_000_001] {
            for top in [255u64, 3, 1] {
                let raw: Vec<u8> = (0..len).map(|_| (g.next_u64() % (top + 1)) as u8).collect();
                let mean = raw.iter().map(|&v| f64::from(v)).sum::<f64>() / len.max(1) as f64;
                // Bit-for-bit: the same floating-point operations on the same values.
                let naive = excursion_naive(&raw, mean).to_bits();
                assert_eq!(excursion(&raw, mean).to_bits(), naive, "{len} {top}");
                assert_eq!(excursion_by_blocks(&raw, mean).to_bits(), naive, "{len} {top}, plain");
            }
        }
        // A mean that is no short binary fraction, on a long constant stretch then its opposite;
        // means away from the samples' own, so that the walk drifts far.
        let raw: Vec<u8> = (0..300_000).map(|i| if i < 150_000 { 200 } else { 3 }).collect();
        for mean in [0.1, 101.5, 1.0 / 3.0, 254.99999, 101.50000000001, 300.0] {
            assert_eq!(excursion(&raw, mean).to_bits(), excursion_naive(&raw, mean).to_bits(), "{mean}");
        }
    }

    #[test]
    fn equal_pairs_at_a_lag_follow_the_definition() {
        let mut g = Xoshiro256::from_seed(3);
        for len in [0usize, 1, 31, 32, 33, 100, 8160, 8161, 8192 + 33, 300_007] {
            // Few symbols, so that equal pairs are common and lanes fill up.
            let s: Vec<u8> = (0..len).map(|_| (g.next_u64() % 3) as u8).collect();
            for p in [1usize, 2, 8, 32, 40] {
                let naive = (0..len.saturating_sub(p)).filter(|&i| s[i] == s[i + p]).count() as u64;
                assert_eq!(equal_at_lag(&s, p), naive, "{len} {p}");
                assert_eq!(count_equal_at_lag(&s, p), naive, "{len} {p}, plain");
            }
        }
        assert_eq!(equal_at_lag(&[7u8; 100_000], 1), 99_999);
    }

    #[test]
    fn products_at_a_lag_follow_the_definition() {
        let mut g = Xoshiro256::from_seed(4);
        for len in [0usize, 1, 33, 32_768, 32_800, 300_007] {
            let s: Vec<u8> = (0..len).map(|_| (g.next_u64() >> 56) as u8).collect();
            for p in [1usize, 2, 8, 32, 40] {
                let naive: u64 = (0..len.saturating_sub(p)).map(|i| u64::from(s[i]) * u64::from(s[i + p])).sum();
                assert_eq!(products_at_lag(&s, p), naive, "{len} {p}");
                assert_eq!(sum_products_at_lag(&s, p), naive, "{len} {p}, plain");
            }
        }
        // The largest products throughout: the 32-bit sums must not overflow.
        assert_eq!(products_at_lag(&[255u8; 100_000], 1), 99_999 * 255 * 255);
    }

    fn sorted(s: &[u8]) -> Vec<u8> {
        let mut s = s.to_vec();
        s.sort_unstable();
        s
    }

    /// `n` raw values over sixteen multiples of 3 (values that are not their symbols), and their
    /// symbols.
    fn sixteen_thirds(n: usize, g: &mut Xoshiro256) -> (Vec<u8>, Vec<u8>) {
        let raw: Vec<u8> = (0..n).map(|_| (g.next_u64() >> 60) as u8 * 3).collect();
        let data = raw.iter().map(|&v| v / 3).collect();
        (raw, data)
    }

    #[test]
    fn rounds_permute_what_the_undecided_statistics_read() {
        // Raw values that are not their symbols (multiples of 3), so that every path is taken:
        // values and mapped symbols together, symbols only, values only.
        let mut g = Xoshiro256::from_seed(5);
        // Sixteen values, so that the arrangements (not the Fisher–Yates fallback) are tested.
        let (raw, data) = sixteen_thirds(50_001, &mut g);
        let permuted = Permuted::new(&data, &raw);
        assert!(permuted.raw_composition.arranges());
        assert!(permuted.data_composition.as_ref().is_some_and(Composition::arranges));
        let mut buffers = Default::default();
        let all = [true; 19];
        let mut symbols_only = [false; 19];
        symbols_only[1] = true;
        let mut raw_only = [false; 19];
        raw_only[18] = true;
        let (d, w) = permuted.round(&all, false, &mut Xoshiro256::from_seed(9), &mut buffers);
        // Each symbol stays with its value, and the values are a permutation of the samples.
        assert!(d.iter().zip(w).all(|(&s, &v)| s == v / 3));
        assert_eq!(sorted(w), sorted(&raw));
        assert_ne!(w, &raw[..]);
        let (d, _) = permuted.round(&symbols_only, false, &mut Xoshiro256::from_seed(9), &mut buffers);
        assert_eq!(sorted(d), sorted(&data));
        assert_ne!(d, &data[..]);
        let (_, w) = permuted.round(&raw_only, false, &mut Xoshiro256::from_seed(9), &mut buffers);
        assert_eq!(sorted(w), sorted(&raw));
        assert_ne!(w, &raw[..]);
    }

    #[test]
    fn rounds_rank_like_fisher_yates_shuffles() {
        // The rounds' arrangements against a naive reference, Fisher–Yates shuffles of the
        // samples: a statistic's distribution over permutations is the same for both. Biased
        // binary samples, as in a binary source's rounds; the statistic is covariance(1) of the
        // binary conversion and the number of runs about the median, compared by the mean and
        // the spread over 400 rounds each.
        let mut g = Xoshiro256::from_seed(6);
        let data: Vec<u8> = (0..40_000).map(|_| u8::from(g.next_u64() % 100 < 55)).collect();
        let ctx = Context { k: 2, raw_mean: 0.55, median: 0.5 };
        let permuted = Permuted::new(&data, &data);
        let mut wanted = [false; 19];
        wanted[4] = true;
        wanted[13] = true;
        let mut buffers = Default::default();
        let mut shuffled = vec![0u8; data.len()];
        let (mut ours, mut naive) = (Vec::new(), Vec::new());
        for r in 0..400u64 {
            let (d, w) = permuted.round(&wanted, true, &mut Xoshiro256::from_seed(r), &mut buffers);
            ours.push(statistics(d, w, &ctx, &wanted));
            crate::maths::xoshiro::shuffle_into(&data, &mut shuffled, &mut Xoshiro256::from_seed(1_000 + r));
            naive.push(statistics(&shuffled, &shuffled, &ctx, &wanted));
        }
        for j in [4usize, 13] {
            assert_alike(&ours, &naive, j, NAMES[j]);
        }
    }

    /// Statistic `j` over the rounds of `ours` against the naive rounds: means within 5 standard
    /// errors of their difference, spreads within 25 %.
    fn assert_alike(ours: &[[f64; 19]], naive: &[[f64; 19]], j: usize, label: &str) {
        let stats = |v: &[[f64; 19]]| {
            let m = v.iter().map(|t| t[j]).sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|t| (t[j] - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
            (m, var.sqrt())
        };
        let ((m1, s1), (m2, s2)) = (stats(ours), stats(naive));
        let se = (s1 * s1 / ours.len() as f64 + s2 * s2 / naive.len() as f64).sqrt();
        assert!((m1 - m2).abs() < 5.0 * se, "{label}: mean {m1} vs {m2} (se {se})");
        assert!((s1 / s2 - 1.0).abs() < 0.25, "{label}: spread {s1} vs {s2}");
    }

    #[test]
    fn median_flag_rounds_rank_like_fisher_yates_shuffles() {
        // The runs about the median from arranged flags against Fisher–Yates shuffles of the
        // samples (the naive reference): 8-bit samples whose median value is common (so that
        // more than half are at or above it), and biased binary ones; mean and spread over 400
        // rounds each, both statistics.
        let mut g = Xoshiro256::from_seed(8);
        let bell: Vec<u8> = (0..40_000).map(|_| (0..4).map(|_| (g.next_u64() % 24) as u8).sum::<u8>() + 60).collect();
        let mut sorted = bell.clone();
        sorted.sort_unstable();
        let median = f64::from(sorted[sorted.len() / 2]);
        let biased: Vec<u8> = (0..40_000).map(|_| u8::from(g.next_u64() % 100 < 55)).collect();
        let wanted: [bool; 19] = std::array::from_fn(|j| j == 4 || j == 5);
        for (data, ctx) in [
            (&bell, Context { k: 93, raw_mean: 106.0, median }),
            (&biased, Context { k: 2, raw_mean: 0.55, median: 0.5 }),
        ] {
            let threshold = median_threshold(&ctx).expect("a symbol at or above the median");
            let above = data.iter().filter(|&&x| x >= threshold).count();
            assert!(near_half(above, data.len()) && above != data.len() / 2, "{above} of {}", data.len());
            let (mut words, mut shuffled) = (Vec::new(), vec![0u8; data.len()]);
            let (mut ours, mut naive) = (Vec::new(), Vec::new());
            for r in 0..400u64 {
                ours.push(median_runs_round(above, data.len(), &wanted, &mut Xoshiro256::from_seed(r), &mut words));
                crate::maths::xoshiro::shuffle_into(data, &mut shuffled, &mut Xoshiro256::from_seed(1_000 + r));
                naive.push(statistics(&shuffled, &shuffled, &ctx, &wanted));
            }
            for j in [4usize, 5] {
                assert_alike(&ours, &naive, j, &format!("{}, k {}", NAMES[j], ctx.k));
            }
        }
    }

    #[test]
    fn median_flag_rounds_count_the_flags_they_arrange() {
        // With every flag set or every flag clear (a degenerate arrangement), the run statistics
        // of the flags are those of the samples themselves: one run, as long as the samples.
        let wanted: [bool; 19] = std::array::from_fn(|j| j == 4 || j == 5);
        let mut words = Vec::new();
        for above in [0usize, 1000] {
            let t = median_runs_round(above, 1000, &wanted, &mut Xoshiro256::from_seed(3), &mut words);
            assert_eq!((t[4], t[5]), (1.0, 1000.0));
            assert!(t.iter().enumerate().all(|(j, v)| j == 4 || j == 5 || v.is_nan()));
        }
    }

    #[test]
    fn progress_can_stop_the_rounds() {
        let mut g = Xoshiro256::from_seed(7);
        let data: Vec<u8> = (0..20_000).map(|_| (g.next_u64() >> 60) as u8).collect();
        let ctx = Context { k: 16, raw_mean: 7.5, median: 7.5 };
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let stop = |_: usize, _: usize| {
            calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ControlFlow::Break(())
        };
        assert!(permutation_tests(&data, &data, &ctx, 10_000, 1, &stop).is_none());
        assert_eq!(calls.into_inner(), 1, "stopped at the answer, not later");
        let done =
            permutation_tests(&data, &data, &ctx, 40, 1, &|_, _| ControlFlow::Continue(())).expect("not stopped");
        assert_eq!(done.rounds, 40);
    }

    #[test]
    fn rounds_for_sets_of_statistics_drawn_alike_are_the_same_arrangement() {
        // What lets a batch's later rounds count after a decision: two sets of undecided
        // statistics with the same method give the same arrangement for the same generator, and
        // every set's method is one of the three.
        let mut g = Xoshiro256::from_seed(12);
        let (raw, data) = sixteen_thirds(30_000, &mut g);
        let permuted = Permuted::new(&data, &raw);
        let mut by_method: Vec<(Method, Vec<u8>, Vec<u8>)> = Vec::new();
        for set in 0..400u64 {
            // Sparse sets (each statistic undecided with probability 1/8), as late rounds have.
            let bits = g.next_u64() & g.next_u64() & g.next_u64();
            let wanted: [bool; 19] = std::array::from_fn(|j| (bits >> j) & 1 == 1 || (set % 7 == 0 && j == 18));
            let method = permuted.method(&wanted, false);
            let mut buffers = Default::default();
            let (d, w) = permuted.round(&wanted, false, &mut Xoshiro256::from_seed(77), &mut buffers);
            match by_method.iter().find(|(m, _, _)| *m == method) {
                Some((_, d0, w0)) => {
                    assert_eq!(d, &d0[..], "set {set}: symbols");
                    if method != Method::Symbols {
                        assert_eq!(w, &w0[..], "set {set}: values");
                    }
                }
                None => by_method.push((method, d.to_vec(), w.to_vec())),
            }
        }
        assert_eq!(by_method.len(), 3, "every method drawn");
    }

    #[test]
    fn results_do_not_depend_on_the_number_of_threads() {
        // Sources whose statistics are decided at different rounds, so that decisions fall inside
        // batches: a biased binary one (where the median runs are arranged as flags once alone),
        // sixteen values, and a narrow bell of values.
        let mut g = Xoshiro256::from_seed(11);
        let biased: Vec<u8> = (0..20_000).map(|_| u8::from(g.next_u64() % 100 < 55)).collect();
        let sixteen: Vec<u8> = (0..20_000).map(|_| (g.next_u64() >> 60) as u8).collect();
        let bell: Vec<u8> = (0..20_000).map(|_| (0..4).map(|_| (g.next_u64() >> 62) as u8).sum()).collect();
        // Raw values that are not their symbols (every third of 0..48): the arrangement changes
        // from values and symbols together to symbols or values alone as statistics are decided.
        let spaced: Vec<u8> = sixteen.iter().map(|&v| 3 * v).collect();
        let cases = [
            (&biased, &biased, Context { k: 2, raw_mean: 0.55, median: 1.0 }),
            (&sixteen, &sixteen, Context { k: 16, raw_mean: 7.5, median: 7.5 }),
            (&bell, &bell, Context { k: 13, raw_mean: 6.0, median: 6.0 }),
            (&sixteen, &spaced, Context { k: 16, raw_mean: 22.5, median: 7.5 }),
        ];
        let go = |_: usize, _: usize| ControlFlow::Continue(());
        for (case, (data, raw, ctx)) in cases.iter().enumerate() {
            for seed in 1..4u64 {
                let run = |threads: usize| {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a pool");
                    let t = pool.install(|| permutation_tests(data, raw, ctx, 300, seed, &go)).expect("not stopped");
                    (t.rounds, t.counts)
                };
                let one = run(1);
                for threads in [2, 3, 5] {
                    assert_eq!(run(threads), one, "case {case}, seed {seed}, {threads} threads");
                }
            }
        }
    }

    #[test]
    fn collision_stretches_follow_the_definition() {
        // 1 2 1 | 3 3 | 4 5 6 (no repeat): stretches of 3 and 2.
        for k in [8, 256] {
            assert_eq!(collisions(&[1, 2, 1, 3, 3, 4, 5, 6], k), (2.5, 3));
        }
        // Random samples over 2, 16 and 256 values (stretches of a few samples to a few dozen),
        // and a constant run, both ways: bit for bit the reference's average.
        let mut g = Xoshiro256::from_seed(10);
        for values in [2u64, 16, 256] {
            let s: Vec<u8> = (0..20_000).map(|_| (g.next_u64() % values) as u8).collect();
            let naive = collisions_naive(&s);
            for ours in [collisions_without_branches(&s), collisions_by_stretch(&s)] {
                assert_eq!((ours.0.to_bits(), ours.1), (naive.0.to_bits(), naive.1), "{values} values");
            }
        }
        for ours in [collisions_without_branches(&[9u8; 1000]), collisions_by_stretch(&[9u8; 1000])] {
            assert_eq!(ours, collisions_naive(&[9u8; 1000]));
        }
    }
}

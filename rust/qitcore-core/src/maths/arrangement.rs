//! Uniformly random arrangements of a fixed multiset of bytes from a small alphabet, made without
//! Fisher–Yates.
//!
//! The permutation tests shuffle the samples in every round, but their statistics see only the
//! sequence of values, not which sample went where. A uniformly random permutation of the samples
//! therefore gives the statistics the same distribution as a uniformly random *arrangement* of
//! their multiset: every sequence with the same count of each value equally likely. Fisher–Yates
//! makes one with a bounded random integer and a random-access swap per sample: 60 % of a round on
//! binary data. For at most [`MAX_COMMON`] common values (see below) and rare ones that are at
//! most a sixteenth of the samples, [`Composition::arrange_into`] makes one in a vector pass and
//! about √n scattered writes a common value:
//!
//! 1. every position gets a value drawn independently, in about the shares of the *common* values
//!    (those with at least 1/256 of the samples): 16-bit random numbers compared with thresholds,
//!    32 at a time, from eight interleaved generators; the comparisons also count the values;
//! 2. the *rare* values are written at uniformly random distinct positions, as many as they have;
//! 3. the counts are fixed: for each common value drawn too often, uniformly random positions
//!    holding it (as many as its excess, found by probing random positions) are given the common
//!    values drawn too rarely, in a uniformly random order.
//!
//! Rare values are placed rather than drawn because step 3 finds a value by probing: one with a
//! share p costs about 1/p probes per position, which for a value with a handful of samples in a
//! million would cost more than the whole draw.
//!
//! Why the result is uniform: step 1 is exchangeable (permuting the positions does not change its
//! distribution), and steps 2 and 3 treat positions symmetrically (they choose positions only by
//! uniform draws, never by their index: uniform sets of positions, uniform subsets of a value's
//! positions), so the output is exchangeable too; the shares of step 1 need not even be right. An exchangeable distribution on the sequences with fixed counts
//! gives each of them the same probability, since any one of them is a permutation of any other.

use super::xoshiro::{shuffle, shuffle_into, Xoshiro256};

/// The most common values arranged this way: past [`GUIDED_FROM`] the draw looks values up in
/// tables of 64 entries (two vector registers). More fall back to Fisher–Yates, as do rare values over [`RARE_TOTAL`] of the samples,
/// lengths below [`MIN_LEN`] (too short to repay the set-up) or of 2^32 and more (positions are
/// `u32`).
pub const MAX_COMMON: usize = 64;
/// The largest share of the samples the rare values may have together: their placement probes
/// random positions until a free one, and finds one at least 15 times in 16.
const RARE_TOTAL: (u64, u64) = (1, 16);
const MIN_LEN: usize = 1 << 12;
/// A value is rare below this share of the samples (1/256).
const RARE_BELOW: (u64, u64) = (1, 256);
/// Generators interleaved in the draw, and samples per step (four 16-bit numbers from each).
const LANES: usize = 8;
const STEP: usize = 4 * LANES;
/// Steps per block of the draw: its per-lane counters are 16-bit.
const BLOCK_STEPS: usize = 2048;

/// The counts of each byte value in a sequence, and what drawing in their shares needs.
pub struct Composition {
    counts: [u64; 256],
    len: usize,
    plan: Option<Plan>,
}

/// The draw's thresholds over the common values, and the rare values' multiset.
struct Plan {
    /// The smallest common value: what a number below every threshold becomes.
    base: u8,
    /// A 16-bit number at or above `thresholds[j]` adds `steps[j]` to the value: the thresholds
    /// rise with the common values, and each step is the gap to the next common value.
    thresholds: Vec<u16>,
    steps: Vec<u8>,
    /// Every rare value, once per sample.
    rare: Vec<u8>,
    /// For more than [`GUIDED_FROM`] common values, the draw's guide to the thresholds.
    guide: Option<Guide>,
}

/// Common values from which the draw looks a number's value up through a [`Guide`] rather than
/// comparing it with every threshold.
const GUIDED_FROM: usize = 17;

/// The thresholds by stretch: a 16-bit number's top six bits pick one of 64 stretches of 1024;
/// `below[k]` counts the thresholds at or below the start of stretch `k`, and `inside[d][k]` is
/// its `d`-th threshold past the start, as an offset from it (1024, never reached, where it has
/// fewer). A common value's share is at least 256 of 2^16, so a stretch holds at most four.
/// The number's value is then `values[below[k] + (offsets reached)]`: the threshold rule.
struct Guide {
    below: [u16; 64],
    inside: Vec<[u16; 64]>,
    values: [u16; 64],
}

impl Guide {
    fn new(thresholds: &[u16], common: &[usize]) -> Self {
        let mut below = [0u16; 64];
        let mut inside: Vec<[u16; 64]> = Vec::new();
        for (k, b) in below.iter_mut().enumerate() {
            let start = (k as u32) << 10;
            *b = thresholds.iter().filter(|&&t| u32::from(t) <= start).count() as u16;
            let within = thresholds.iter().filter(|&&t| u32::from(t) > start && u32::from(t) < start + 1024);
            for (d, &t) in within.enumerate() {
                if inside.len() <= d {
                    inside.push([1024; 64]);
                }
                inside[d][k] = (u32::from(t) - start) as u16;
            }
        }
        let values = std::array::from_fn(|j| common.get(j).map_or(0, |&v| v as u16));
        Guide { below, inside, values }
    }

    /// The value of the 16-bit number `r`.
    #[inline(always)]
    fn value(&self, r: u16) -> u8 {
        let (k, offset) = (usize::from(r >> 10), r & 1023);
        let reached = self.inside.iter().filter(|row| offset >= row[k]).count();
        self.values[usize::from(self.below[k]) + reached] as u8
    }
}

/// Buffers one caller keeps between arrangements.
#[derive(Default)]
pub struct Scratch {
    /// One bit per position: taken by a rare value or chosen for a fix (all clear between calls).
    marked: Vec<u64>,
    /// The positions marked, in the order they were.
    chosen: Vec<u32>,
    /// Values to write at chosen positions.
    values: Vec<u8>,
    /// Positions of values in excess, when probing gives up.
    listed: Vec<u32>,
}

impl Composition {
    /// The composition of `values`.
    pub fn of(values: &[u8]) -> Self {
        Self::with_limits(values, RARE_BELOW, RARE_TOTAL)
    }

    /// The composition, a value rare below the share `rare_below` and arranged while the rare
    /// ones together are at most `rare_total` (the tests raise both).
    fn with_limits(values: &[u8], (num, den): (u64, u64), rare_total_limit: (u64, u64)) -> Self {
        let mut counts = [0u64; 256];
        for &v in values {
            counts[usize::from(v)] += 1;
        }
        let len = values.len();
        let is_common = |c: u64| c > 0 && u128::from(c) * u128::from(den) >= len as u128 * u128::from(num);
        let common: Vec<usize> = (0..256).filter(|&v| is_common(counts[v])).collect();
        let rare_total: u64 = counts.iter().filter(|&&c| !is_common(c)).sum();
        let arrangeable = common.len() <= MAX_COMMON
            && u128::from(rare_total) * u128::from(rare_total_limit.1) <= len as u128 * u128::from(rare_total_limit.0)
            && len <= u32::MAX as usize
            && !common.is_empty();
        let plan = arrangeable.then(|| {
            let rare = (0..256).filter(|&v| counts[v] > 0 && !is_common(counts[v]));
            let rare: Vec<u8> = rare.flat_map(|v| std::iter::repeat_n(v as u8, counts[v] as usize)).collect();
            // Shares of 2^16 rounded down; the most common value takes what rounding leaves. A
            // common value's share is at least 2^16/256, so the thresholds strictly rise.
            let total: u128 = common.iter().map(|&v| u128::from(counts[v])).sum();
            let mut shares: Vec<u64> = common.iter().map(|&v| ((u128::from(counts[v]) << 16) / total) as u64).collect();
            let largest = (0..common.len()).max_by_key(|&i| counts[common[i]]).unwrap_or(0);
            shares[largest] += (1 << 16) - shares.iter().sum::<u64>();
            let mut thresholds = Vec::new();
            let mut at = 0u64;
            for s in &shares[..common.len() - 1] {
                at += s;
                thresholds.push(at as u16);
            }
            let steps = common.windows(2).map(|w| (w[1] - w[0]) as u8).collect();
            let guide = (common.len() >= GUIDED_FROM).then(|| Guide::new(&thresholds, &common));
            Plan { base: common[0] as u8, thresholds, steps, rare, guide }
        });
        Composition { counts, len, plan }
    }

    /// Whether [`Composition::arrange_into`] arranges these values (rather than shuffling them).
    pub fn arranges(&self) -> bool {
        self.plan.is_some() && self.len >= MIN_LEN
    }

    /// Writes a uniformly random arrangement of `src` (whose composition this is) into `out`.
    pub fn arrange_into(&self, src: &[u8], out: &mut [u8], rng: &mut Xoshiro256, scratch: &mut Scratch) {
        assert_eq!(src.len(), self.len, "an arrangement of the values the composition counted");
        assert_eq!(out.len(), self.len, "an output as long as the values");
        match &self.plan {
            Some(plan) if self.len >= MIN_LEN => self.arrange(plan, out, rng, scratch, usize::MAX),
            _ => shuffle_into(src, out, rng),
        }
    }

    /// Steps 1–3 of the module's description; `budget` caps the probes of step 3 (tests).
    fn arrange(&self, plan: &Plan, out: &mut [u8], rng: &mut Xoshiro256, scratch: &mut Scratch, budget: usize) {
        let mut drawn = draw(plan, out, rng);
        scratch.marked.resize(out.len().div_ceil(64), 0);
        scratch.chosen.clear();
        place_rare(plan, out, &mut drawn, rng, scratch);
        self.fix_counts(out, &drawn, rng, scratch, budget);
        for &i in &scratch.chosen {
            scratch.marked[i as usize / 64] = 0;
        }
    }

    /// Step 3: gives uniformly random unmarked positions of the values in excess the values
    /// missing, in a uniformly random order. Positions are probed at random up to `budget` times
    /// (and a few times the excess); values still in excess then are picked from a pass that lists
    /// their positions.
    fn fix_counts(
        &self,
        out: &mut [u8],
        drawn: &[u64; 256],
        rng: &mut Xoshiro256,
        scratch: &mut Scratch,
        budget: usize,
    ) {
        let Scratch { marked, chosen, values, listed } = scratch;
        let mut excess = [0u64; 256];
        values.clear();
        for v in 0..256 {
            if drawn[v] > self.counts[v] {
                excess[v] = drawn[v] - self.counts[v];
            } else {
                values.extend(std::iter::repeat_n(v as u8, (self.counts[v] - drawn[v]) as usize));
            }
        }
        let mut left = values.len();
        let fixed_from = chosen.len();
        let n = out.len();
        let is_marked = |m: &[u64], i: usize| m[i / 64] >> (i % 64) & 1 == 1;
        let mut probes = budget.min(left.saturating_mul(32).saturating_add(4096));
        while left > 0 && probes > 0 {
            probes -= 1;
            let i = rng.below_or_equal(n as u64 - 1) as usize;
            let v = usize::from(out[i]);
            if excess[v] > 0 && !is_marked(marked, i) {
                marked[i / 64] |= 1 << (i % 64);
                excess[v] -= 1;
                left -= 1;
                chosen.push(i as u32);
            }
        }
        if left > 0 {
            // The unmarked positions of each value still in excess, grouped by value; a partial
            // Fisher–Yates in each group picks a uniformly random subset of the excess's size.
            listed.clear();
            listed.extend(
                (0..n as u32).filter(|&i| excess[usize::from(out[i as usize])] > 0 && !is_marked(marked, i as usize)),
            );
            listed.sort_unstable_by_key(|&i| (out[i as usize], i));
            for group in listed.chunk_by_mut(|&a, &b| out[a as usize] == out[b as usize]) {
                for j in 0..excess[usize::from(out[group[0] as usize])] as usize {
                    let k = j + rng.below_or_equal((group.len() - j - 1) as u64) as usize;
                    group.swap(j, k);
                    marked[group[j] as usize / 64] |= 1 << (group[j] % 64);
                    chosen.push(group[j]);
                }
            }
        }
        debug_assert_eq!(chosen.len() - fixed_from, values.len());
        shuffle(values, rng);
        for (&i, &v) in chosen[fixed_from..].iter().zip(values.iter()) {
            out[i as usize] = v;
        }
    }
}

/// Step 2: writes the rare values, in a uniformly random order, at as many uniformly random
/// distinct positions, marking them; `drawn` loses the common values they replace.
fn place_rare(plan: &Plan, out: &mut [u8], drawn: &mut [u64; 256], rng: &mut Xoshiro256, scratch: &mut Scratch) {
    let Scratch { marked, chosen, values, .. } = scratch;
    values.clear();
    values.extend_from_slice(&plan.rare);
    shuffle(values, rng);
    // Rare values are at most a sixteenth of the positions (`RARE_TOTAL`), so a random position
    // is free at least 15 times in 16.
    let mut k = 0;
    while k < values.len() {
        let i = rng.below_or_equal(out.len() as u64 - 1) as usize;
        if marked[i / 64] >> (i % 64) & 1 == 0 {
            marked[i / 64] |= 1 << (i % 64);
            drawn[usize::from(out[i])] -= 1;
            drawn[usize::from(values[k])] += 1;
            out[i] = values[k];
            chosen.push(i as u32);
            k += 1;
        }
    }
}

/// Eight xoshiro256** generators in step, their states lane by lane, so that each operation of
/// a step is one vector instruction on eight 64-bit lanes.
struct Lanes {
    s: [[u64; LANES]; 4],
}

impl Lanes {
    fn from(rng: &mut Xoshiro256) -> Self {
        let mut s = [[0u64; LANES]; 4];
        for l in 0..LANES {
            for row in s.iter_mut() {
                row[l] = rng.next_u64();
            }
            // An all-zero state would stay zero: never in practice (2^-256), harmless to guard.
            if s.iter().all(|row| row[l] == 0) {
                s[0][l] = 1;
            }
        }
        Lanes { s }
    }

    #[inline(always)]
    fn next(&mut self) -> [u64; LANES] {
        let [s0, s1, s2, s3] = &mut self.s;
        let mut out = [0u64; LANES];
        for l in 0..LANES {
            out[l] = s1[l].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
            let t = s1[l] << 17;
            s2[l] ^= s0[l];
            s3[l] ^= s1[l];
            s1[l] ^= s2[l];
            s0[l] ^= s3[l];
            s2[l] ^= t;
            s3[l] = s3[l].rotate_left(45);
        }
        out
    }
}

/// Step 1: fills `out` with values drawn independently in the common values' shares; returns how
/// many of each.
fn draw(plan: &Plan, out: &mut [u8], rng: &mut Xoshiro256) -> [u64; 256] {
    let mut lanes = Lanes::from(rng);
    if let Some(guide) = &plan.guide {
        return draw_guided_dispatch(guide, out, &mut lanes);
    }
    let mut at_least = [0u64; MAX_COMMON];
    let whole = out.len() / STEP * STEP;
    let (body, tail) = out.split_at_mut(whole);
    draw_steps_dispatch(plan, body, &mut lanes, &mut at_least);
    if !tail.is_empty() {
        // The last few samples, one number at a time by the same rule.
        let words = lanes.next();
        for (k, o) in tail.iter_mut().enumerate() {
            let r = (words[k / 4] >> (16 * (k % 4))) as u16;
            let reached = plan.thresholds.iter().filter(|&&t| r >= t).count();
            *o = plan.base + plan.steps[..reached].iter().sum::<u8>();
            at_least[..reached].iter_mut().for_each(|a| *a += 1);
        }
    }
    // `at_least[j]` counts the samples at or above the (j+1)-th common value.
    let mut drawn = [0u64; 256];
    let mut value = plan.base;
    let mut above = out.len() as u64;
    for (j, &step) in plan.steps.iter().enumerate() {
        drawn[usize::from(value)] = above - at_least[j];
        above = at_least[j];
        value += step;
    }
    drawn[usize::from(value)] = above;
    drawn
}

fn draw_steps_dispatch(plan: &Plan, out: &mut [u8], lanes: &mut Lanes, at_least: &mut [u64; MAX_COMMON]) {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::cpu::{has, Features};
        if has(Features::AVX2 | Features::AVX512F | Features::AVX512BW) {
            #[target_feature(enable = "avx2,avx512f,avx512bw")]
            fn wide(plan: &Plan, out: &mut [u8], lanes: &mut Lanes, at_least: &mut [u64; MAX_COMMON]) {
                draw_steps(plan, out, lanes, at_least)
            }
            // SAFETY: the features were just detected.
            return unsafe { wide(plan, out, lanes, at_least) };
        }
        if has(Features::AVX2) {
            #[target_feature(enable = "avx2")]
            fn avx2(plan: &Plan, out: &mut [u8], lanes: &mut Lanes, at_least: &mut [u64; MAX_COMMON]) {
                draw_steps(plan, out, lanes, at_least)
            }
            // SAFETY: the feature was just detected.
            return unsafe { avx2(plan, out, lanes, at_least) };
        }
    }
    draw_steps(plan, out, lanes, at_least)
}

/// The draw of every sample of `out` through `guide`, with the numbers the threshold rule takes;
/// returns how many of each value.
fn draw_guided_dispatch(guide: &Guide, out: &mut [u8], lanes: &mut Lanes) -> [u64; 256] {
    let whole = out.len() / STEP * STEP;
    let (body, tail) = out.split_at_mut(whole);
    let mut vector = false;
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::has(crate::cpu::Features::AVX512F | crate::cpu::Features::AVX512BW) {
        // SAFETY: the features were just detected.
        unsafe { draw_guided_avx512(guide, body, lanes) };
        vector = true;
    }
    if !vector {
        draw_guided(guide, body, lanes);
    }
    draw_guided(guide, tail, lanes);
    // Counted after: about a cycle a sample, a third of the arrangement, however counted
    // (tables, or a comparison of 64 samples a value).
    byte_counts(out)
}

/// [`draw_guided_dispatch`] one number at a time.
fn draw_guided(guide: &Guide, out: &mut [u8], lanes: &mut Lanes) {
    for chunk in out.chunks_mut(STEP) {
        let words = lanes.next();
        for (k, o) in chunk.iter_mut().enumerate() {
            *o = guide.value((words[k / 4] >> (16 * (k % 4))) as u16);
        }
    }
}

/// [`draw_guided`] over whole steps, 32 numbers a vector: the stretch's count, offsets and
/// value are looked up by permutes across two registers of 32 lanes (64 entries).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn draw_guided_avx512(guide: &Guide, out: &mut [u8], lanes: &mut Lanes) {
    use std::arch::x86_64::{
        __m256i, __m512i, _mm256_storeu_si256, _mm512_and_si512, _mm512_cmpge_epu16_mask, _mm512_cvtepi16_epi8,
        _mm512_loadu_si512, _mm512_mask_add_epi16, _mm512_permutex2var_epi16, _mm512_set1_epi16, _mm512_srli_epi16,
    };
    debug_assert_eq!(out.len() % STEP, 0);
    let halves = |table: &[u16; 64]| -> (__m512i, __m512i) {
        // SAFETY: two 64-byte unaligned loads within the 128-byte table.
        unsafe { (_mm512_loadu_si512(table.as_ptr().cast()), _mm512_loadu_si512(table[32..].as_ptr().cast())) }
    };
    let below = halves(&guide.below);
    let values = halves(&guide.values);
    let inside: Vec<(__m512i, __m512i)> = guide.inside.iter().map(halves).collect();
    let (low, one) = (_mm512_set1_epi16(1023), _mm512_set1_epi16(1));
    for chunk in out.chunks_exact_mut(STEP) {
        let words = lanes.next();
        // Lane 4l + q holds bits 16q.. of word l: the words' own layout in memory.
        // SAFETY: a 64-byte unaligned load of eight words.
        let r = unsafe { _mm512_loadu_si512(words.as_ptr().cast()) };
        let (k, offset) = (_mm512_srli_epi16::<10>(r), _mm512_and_si512(r, low));
        let mut at = _mm512_permutex2var_epi16(below.0, k, below.1);
        for &(a, b) in &inside {
            let reached = _mm512_cmpge_epu16_mask(offset, _mm512_permutex2var_epi16(a, k, b));
            at = _mm512_mask_add_epi16(at, reached, at, one);
        }
        let v = _mm512_cvtepi16_epi8(_mm512_permutex2var_epi16(values.0, at, values.1));
        // SAFETY: a 32-byte unaligned store into the 32-byte chunk.
        unsafe { _mm256_storeu_si256(chunk.as_mut_ptr().cast::<__m256i>(), v) };
    }
}

/// How many of each byte value `out` holds, in four tables (equal bytes in a row would each
/// wait on the last one's count), eight bytes read at a time.
fn byte_counts(out: &[u8]) -> [u64; 256] {
    let mut tables = [[0u32; 256]; 4];
    let mut words = out.chunks_exact(8);
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().expect("eight bytes"));
        for k in 0..8 {
            tables[k % 4][(x >> (8 * k)) as usize & 0xff] += 1;
        }
    }
    for &b in words.remainder() {
        tables[0][usize::from(b)] += 1;
    }
    std::array::from_fn(|v| tables.iter().map(|t| u64::from(t[v])).sum())
}

/// The draw over whole steps of `out`: each 16-bit number adds the step of every threshold it
/// reaches to the smallest value, and counts itself at each, in per-lane counters.
#[inline(always)]
fn draw_steps(plan: &Plan, out: &mut [u8], lanes: &mut Lanes, at_least: &mut [u64; MAX_COMMON]) {
    debug_assert_eq!(out.len() % STEP, 0);
    for block in out.chunks_mut(STEP * BLOCK_STEPS) {
        let mut counters = [[0u16; STEP]; MAX_COMMON];
        for chunk in block.chunks_exact_mut(STEP) {
            let words = lanes.next();
            let mut r = [0u16; STEP];
            for (l, w) in words.iter().enumerate() {
                for q in 0..4 {
                    r[4 * l + q] = (w >> (16 * q)) as u16;
                }
            }
            let mut v = [u16::from(plan.base); STEP];
            for ((&t, &step), c) in plan.thresholds.iter().zip(&plan.steps).zip(counters.iter_mut()) {
                for i in 0..STEP {
                    let reached = u16::from(r[i] >= t);
                    v[i] += reached * u16::from(step);
                    c[i] += reached;
                }
            }
            for (o, &x) in chunk.iter_mut().zip(&v) {
                *o = x as u8;
            }
        }
        for (a, c) in at_least.iter_mut().zip(&counters) {
            *a += c.iter().map(|&x| u64::from(x)).sum::<u64>();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn counts(s: &[u8]) -> [u64; 256] {
        Composition::of(s).counts
    }

    fn sources(g: &mut Xoshiro256) -> Vec<Vec<u8>> {
        vec![
            // Biased binary; bell-shaped 4-bit with rare tails; values far apart (the largest
            // step and value); one rare value among common ones; one value; 16 values.
            (0..100_000).map(|_| u8::from(g.next_u64() % 100 < 55)).collect(),
            (0..100_003).map(|_| ((g.next_u64() % 16 + g.next_u64() % 16 + g.next_u64() % 16) / 3) as u8).collect(),
            (0..40_007).map(|_| [0u8, 200, 255][g.below_or_equal(2) as usize]).collect(),
            (0..50_000).map(|i| if i == 777 { 9 } else { (i % 2) as u8 * 3 }).collect(),
            vec![42u8; 20_000],
            (0..64_000).map(|_| (g.next_u64() % 16) as u8 * 16).collect(),
            // Bell-shaped 6-bit with rare tails (about 30 common values: the guided draw); 64
            // values equally common (the most the draw takes).
            bell_6bit(g, 100_011),
            (0..64_000).map(|_| (g.next_u64() % 64) as u8 * 3).collect(),
        ]
    }

    /// Samples of a 6-bit Gaussian-like source: the sum of four uniform draws, clipped.
    fn bell_6bit(g: &mut Xoshiro256, n: usize) -> Vec<u8> {
        (0..n).map(|_| (0..4).map(|_| g.next_u64() % 24).sum::<u64>().min(63) as u8).collect()
    }

    #[test]
    fn arrangements_keep_the_composition() {
        let mut g = Xoshiro256::from_seed(11);
        let mut scratch = Scratch::default();
        for src in sources(&mut g) {
            let c = Composition::of(&src);
            assert!(c.plan.is_some());
            let mut out = vec![0u8; src.len()];
            for _ in 0..5 {
                c.arrange_into(&src, &mut out, &mut g, &mut scratch);
                assert!(counts(&out) == c.counts, "composition changed");
                assert!(out != src || c.counts.iter().filter(|&&k| k > 0).count() == 1, "not permuted");
                assert!(scratch.marked.iter().all(|&w| w == 0), "marks left set");
            }
        }
    }

    #[test]
    fn the_vector_draw_is_the_threshold_rule() {
        // Every vector path against the rule written out one number at a time, on the same
        // generator outputs: value = the common value of the last threshold reached.
        let mut g = Xoshiro256::from_seed(14);
        for src in sources(&mut g) {
            let c = Composition::of(&src);
            let plan = c.plan.as_ref().expect("a plan");
            let common: Vec<u8> =
                (0..=plan.steps.len()).map(|j| plan.base + plan.steps[..j].iter().sum::<u8>()).collect();
            let len = 3 * STEP * BLOCK_STEPS + 5 * STEP;
            let mut out = vec![0u8; len];
            let mut at_least = [0u64; MAX_COMMON];
            draw_steps_dispatch(plan, &mut out, &mut Lanes::from(&mut Xoshiro256::from_seed(1)), &mut at_least);
            // The portable loop, whatever this CPU dispatches to, gives the same draw.
            let (mut plain, mut plain_at_least) = (vec![0u8; len], [0u64; MAX_COMMON]);
            draw_steps(plan, &mut plain, &mut Lanes::from(&mut Xoshiro256::from_seed(1)), &mut plain_at_least);
            assert!(plain == out && plain_at_least == at_least, "portable and vector draws differ");
            let mut lanes = Lanes::from(&mut Xoshiro256::from_seed(1));
            let mut expected_at_least = [0u64; MAX_COMMON];
            for chunk in out.chunks(STEP) {
                let words = lanes.next();
                for (k, &o) in chunk.iter().enumerate() {
                    let r = (words[k / 4] >> (16 * (k % 4))) as u16;
                    let reached = plan.thresholds.iter().filter(|&&t| r >= t).count();
                    assert_eq!(o, common[reached]);
                    expected_at_least.iter_mut().take(reached).for_each(|a| *a += 1);
                }
            }
            assert_eq!(at_least, expected_at_least);
            // The guided draw, where the plan has one (vector and one at a time), on a length
            // that is not whole steps: the same values, counted.
            if let Some(guide) = &plan.guide {
                let mut guided = vec![0u8; len + 7];
                let drawn = draw_guided_dispatch(guide, &mut guided, &mut Lanes::from(&mut Xoshiro256::from_seed(1)));
                assert_eq!(guided[..len], out[..], "guided and compared draws differ");
                assert_eq!(drawn, byte_counts_naive(&guided));
                let mut one_at_a_time = vec![0u8; len + 7];
                draw_guided(guide, &mut one_at_a_time, &mut Lanes::from(&mut Xoshiro256::from_seed(1)));
                assert_eq!(one_at_a_time, guided);
            }
        }
        assert!(
            sources(&mut Xoshiro256::from_seed(14))
                .iter()
                .any(|s| Composition::of(s).plan.is_some_and(|p| p.guide.is_some())),
            "a source takes the guided draw"
        );
    }

    fn byte_counts_naive(s: &[u8]) -> [u64; 256] {
        let mut c = [0u64; 256];
        s.iter().for_each(|&b| c[usize::from(b)] += 1);
        c
    }

    /// Chi-square of observed counts against equal expectations.
    fn chi_square_uniform(observed: &HashMap<Vec<u8>, u64>, cells: usize, total: u64) -> f64 {
        let expected = total as f64 / cells as f64;
        let seen: f64 = observed.values().map(|&o| (o as f64 - expected).powi(2) / expected).sum();
        // Cells never seen contribute `expected` each.
        seen + (cells - observed.len()) as f64 * expected
    }

    #[test]
    fn every_arrangement_is_equally_likely() {
        // A sequence short enough to enumerate: 3 zeros, 2 ones, 1 two have 6!/(3! 2! 1!) = 60
        // arrangements. Through every path: probing only, listing only, both; with the two as
        // a common value and as a rare one (a cut-off of 1/4 makes it rare).
        let src = [0u8, 0, 0, 1, 1, 2];
        let mut g = Xoshiro256::from_seed(12);
        let mut scratch = Scratch::default();
        for (rare_below, budget) in
            [((1, 256), usize::MAX), ((1, 256), 0), ((1, 256), 2), ((1, 4), usize::MAX), ((1, 4), 0)]
        {
            let c = Composition::with_limits(&src, rare_below, (1, 1));
            let plan = c.plan.as_ref().expect("a plan");
            let mut seen: HashMap<Vec<u8>, u64> = HashMap::new();
            let rounds = 60_000u64;
            for _ in 0..rounds {
                let mut out = vec![0u8; 6];
                c.arrange(plan, &mut out, &mut g, &mut scratch, budget);
                assert_eq!(counts(&out), c.counts);
                *seen.entry(out).or_default() += 1;
            }
            assert_eq!(seen.len(), 60, "{rare_below:?} {budget}");
            // 59 degrees of freedom: the 1e-6 quantile of chi-square(59) is about 124.
            let x2 = chi_square_uniform(&seen, 60, rounds);
            assert!(x2 < 124.0, "{rare_below:?} {budget}: chi-square {x2}");
        }
    }

    #[test]
    fn arrangements_through_the_vector_draw_are_equally_likely() {
        // 32 zeros and 2 ones: C(34, 2) = 561 arrangements, with positions drawn by the vector
        // steps as well as the tail. With the true shares and with badly wrong ones (so that the
        // fix-up does most of the work and a position it favoured would show), through every
        // probing path.
        let src: Vec<u8> = (0..34).map(|i| u8::from(i >= 32)).collect();
        let mut g = Xoshiro256::from_seed(15);
        let mut scratch = Scratch::default();
        for skew in [None, Some(2_000u16), Some(64_000)] {
            for budget in [usize::MAX, 0, 3] {
                let mut c = Composition::of(&src);
                if let (Some(t), Some(plan)) = (skew, c.plan.as_mut()) {
                    plan.thresholds[0] = t;
                }
                let plan = c.plan.as_ref().expect("a plan");
                let mut seen: HashMap<Vec<u8>, u64> = HashMap::new();
                let rounds = 100_000u64;
                let mut out = vec![0u8; src.len()];
                for _ in 0..rounds {
                    c.arrange(plan, &mut out, &mut g, &mut scratch, budget);
                    *seen.entry(out.clone()).or_default() += 1;
                }
                assert_eq!(seen.len(), 561, "{skew:?} {budget}");
                // 560 degrees of freedom: the 1e-6 quantile of chi-square(560) is about 720.
                let x2 = chi_square_uniform(&seen, 561, rounds);
                assert!(x2 < 720.0, "{skew:?} {budget}: chi-square {x2}");
            }
        }
    }

    #[test]
    fn many_values_are_spread_like_a_shuffle() {
        // The guided draw (about 30 common values and rare tails): at fixed positions each value
        // comes as often as its share (chi-square over the values, the rarest pooled), and equal
        // neighbours are as many as in a uniform arrangement.
        let mut g = Xoshiro256::from_seed(16);
        let mut src = bell_6bit(&mut g, 30_000);
        src.sort_unstable();
        let c = Composition::of(&src);
        assert!(c.plan.as_ref().is_some_and(|p| p.guide.is_some()) && c.arranges(), "the guided draw");
        let n = src.len();
        let mut scratch = Scratch::default();
        let mut out = vec![0u8; n];
        let positions = [0usize, 1, n / 2, n - 1];
        let mut at = [[0u64; 256]; 4];
        let rounds = 3_000u64;
        let mut equal_neighbours = 0u64;
        for _ in 0..rounds {
            c.arrange_into(&src, &mut out, &mut g, &mut scratch);
            assert!(byte_counts_naive(&out) == c.counts, "composition changed");
            for (k, &p) in positions.iter().enumerate() {
                at[k][usize::from(out[p])] += 1;
            }
            equal_neighbours += out.windows(2).filter(|w| w[0] == w[1]).count() as u64;
        }
        // Cells: values expected at least 20 times each in `rounds`, and the rest pooled.
        let share = |v: usize| c.counts[v] as f64 / n as f64;
        let big: Vec<usize> = (0..256).filter(|&v| share(v) * rounds as f64 >= 20.0).collect();
        for (k, row) in at.iter().enumerate() {
            let mut x2 = 0.0;
            for &v in &big {
                let e = share(v) * rounds as f64;
                x2 += (row[v] as f64 - e).powi(2) / e;
            }
            let e_rest = rounds as f64 - big.iter().map(|&v| share(v) * rounds as f64).sum::<f64>();
            let o_rest = rounds - big.iter().map(|&v| row[v]).sum::<u64>();
            if e_rest > 0.0 {
                x2 += (o_rest as f64 - e_rest).powi(2) / e_rest;
            }
            // The 1e-6 quantile of chi-square with `cells - 1` degrees of freedom (Wilson and
            // Hilferty's approximation, z = 4.75): about 100 for 42 cells.
            let df = big.len() as f64;
            let h = 2.0 / (9.0 * df);
            let limit = df * (1.0 - h + 4.75 * h.sqrt()).powi(3);
            assert!(
                x2 < limit,
                "position {}: chi-square {x2} over {} cells (limit {limit})",
                positions[k],
                big.len() + 1
            );
        }
        let expected: f64 = (0..256).map(|v| c.counts[v] as f64 * (c.counts[v] as f64 - 1.0)).sum::<f64>() / n as f64;
        let mean = equal_neighbours as f64 / rounds as f64;
        // The count's standard deviation over one arrangement is about √expected (~ 8 here):
        // the mean of 3,000 within a tenth of that.
        assert!((mean - expected).abs() < 1.0, "{mean} vs {expected}");
    }

    #[test]
    fn arranged_values_are_spread_like_a_shuffle() {
        // On a long sequence, where the vector draw does the work: the value at a few fixed
        // positions is distributed as the composition says, and a clustered source comes out
        // unclustered (equal neighbours as many as in a uniform arrangement).
        let n = 20_000;
        let src: Vec<u8> = (0..n)
            .map(|i| {
                if i < n / 10 {
                    1
                } else if i < n / 4 {
                    2
                } else {
                    0
                }
            })
            .collect();
        let c = Composition::of(&src);
        let mut g = Xoshiro256::from_seed(13);
        let mut scratch = Scratch::default();
        let mut out = vec![0u8; n];
        let positions = [0usize, 1, n / 2, n - 1];
        let mut at = [[0u64; 3]; 4];
        let rounds = 2_000;
        let mut equal_neighbours = 0u64;
        for _ in 0..rounds {
            c.arrange_into(&src, &mut out, &mut g, &mut scratch);
            for (k, &p) in positions.iter().enumerate() {
                at[k][usize::from(out[p])] += 1;
            }
            equal_neighbours += out.windows(2).filter(|w| w[0] == w[1]).count() as u64;
        }
        let p = [0.75, 0.10, 0.15];
        for (k, row) in at.iter().enumerate() {
            let x2: f64 =
                row.iter().zip(p).map(|(&o, q)| (o as f64 - q * rounds as f64).powi(2) / (q * rounds as f64)).sum();
            // 2 degrees of freedom: the 1e-6 quantile is 27.6.
            assert!(x2 < 27.6, "position {}: {row:?}", positions[k]);
        }
        // Expected equal neighbours in a uniform arrangement: Σ c_v (c_v - 1) / n.
        let expected: f64 = p.iter().map(|q| q * n as f64 * (q * n as f64 - 1.0)).sum::<f64>() / n as f64;
        let mean = equal_neighbours as f64 / rounds as f64;
        assert!((mean - expected).abs() < 7.0, "{mean} vs {expected}");
    }
}

//! The bits bzip2 spends on one block, given its transform: the move-to-front values with zero
//! runs written in bijective base 2 (RUNA, RUNB), then Huffman coded in groups of 50 symbols, each
//! group by the best of up to six tables. libbzip2 picks the tables in four passes from an
//! initial split of the alphabet by frequency; the passes are repeated here exactly, since every
//! choice changes the length.

use super::huffman::code_lengths;
#[cfg(target_arch = "x86_64")]
use crate::cpu::{self, Features};

/// Block magic (48 bits), block CRC (32), randomised flag (1), origin pointer (24).
const BLOCK_HEADER_BITS: u64 = 48 + 32 + 1 + 24;
const GROUP: usize = 50;
const PASSES: usize = 4;
const MAX_CODE_LEN: u8 = 17;
/// Initial table lengths: 0 for the symbols a table starts with, 15 for the rest.
const LESSER: u8 = 0;
const GREATER: u8 = 15;

/// The byte values in use in `bwt` and each byte as its number among them (in byte order).
fn symbols_in_use(bwt: &[u8]) -> (Vec<u8>, usize, [bool; 256]) {
    let mut in_use = [false; 256];
    for &b in bwt {
        in_use[usize::from(b)] = true;
    }
    let mut index = [0u8; 256];
    let mut used = 0usize;
    for (v, &u) in in_use.iter().enumerate() {
        if u {
            index[v] = used as u8;
            used += 1;
        }
    }
    (bwt.iter().map(|&b| index[usize::from(b)]).collect(), used, in_use)
}

/// Move-to-front values of `symbols` (each below `used`), ending with the end-of-block value.
fn mtf_values(symbols: &[u8], used: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(symbols.len() / 2 + 2);
    if used <= 16 {
        mtf_nibbles(symbols.iter().copied(), used, &mut out);
    } else {
        mtf_list(symbols.iter().copied(), used, &mut out);
    }
    out.push(used as u16 + 1);
    out
}

/// The features [`mtf_values_avx2`] is compiled for.
#[cfg(target_arch = "x86_64")]
const AVX2_MTF: Features =
    Features::AVX2.union(Features::BMI1).union(Features::BMI2).union(Features::LZCNT).union(Features::POPCNT);

/// [`mtf_values`] as bytes, for up to 16 symbols in use, with vector instructions: compiled
/// for AVX2 with BMI2 where the processor has them (three-operand forms and single-step variable
/// shifts make the loop shorter), else for SSSE3.
#[cfg(target_arch = "x86_64")]
fn mtf_values_narrow(symbols: &[u8], used: usize) -> Option<Vec<u8>> {
    if used > 16 {
        return None;
    }
    let mut out = if cpu::has(AVX2_MTF) {
        // SAFETY: the features were just detected.
        unsafe { mtf_values_avx2(symbols, used) }
    } else if cpu::has(Features::SSSE3) {
        // SAFETY: as above.
        unsafe { mtf_values_ssse3(symbols, used) }
    } else {
        return None;
    };
    out.push(used as u8 + 1);
    Some(out)
}

/// A move-to-front list of up to 16 symbols packed four bits a symbol in one word (front in the
/// low nibble, unused nibbles 0xF): a symbol is found and moved without a search or a branch.
struct NibbleList(u64);

impl NibbleList {
    const ONES: u64 = 0x1111_1111_1111_1111;

    /// Symbols 0 to `used - 1` in order.
    fn new(used: usize) -> Self {
        NibbleList((0..16u64).fold(0u64, |acc, i| acc | (if (i as usize) < used { i } else { 0xf }) << (4 * i)))
    }

    /// Whether `symbol` is in front.
    fn in_front(&self, symbol: u8) -> bool {
        self.0 & 0xf == u64::from(symbol)
    }

    /// Moves `symbol` to the front and returns where it was.
    fn move_to_front(&mut self, symbol: u8) -> usize {
        // The lowest zero nibble of list ^ symbol is exact (borrows only disturb higher nibbles).
        let x = self.0 ^ (Self::ONES * u64::from(symbol));
        let position = ((x.wrapping_sub(Self::ONES) & !x & (Self::ONES << 3)).trailing_zeros() / 4) as usize;
        let below = (1u64 << (4 * position)) - 1;
        let through = (below << 4) | 0xf;
        self.0 = (self.0 & !through) | ((self.0 & below) << 4) | u64::from(symbol);
        position
    }
}

/// Move-to-front values through a [`NibbleList`], for up to 16 symbols in use: decimal text has
/// at most 11.
fn mtf_nibbles(symbols: impl Iterator<Item = u8>, used: usize, out: &mut Vec<u16>) {
    let mut list = NibbleList::new(used);
    let mut zeros = 0usize;
    for symbol in symbols {
        if list.in_front(symbol) {
            zeros += 1;
            continue;
        }
        push_zero_run(out, zeros);
        zeros = 0;
        out.push(list.move_to_front(symbol) as u16 + 1);
    }
    push_zero_run(out, zeros);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi1,bmi2,lzcnt,popcnt")]
fn mtf_values_avx2(symbols: &[u8], used: usize) -> Vec<u8> {
    // SAFETY: AVX2 includes SSSE3.
    unsafe { mtf_vector(symbols, used) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
fn mtf_values_ssse3(symbols: &[u8], used: usize) -> Vec<u8> {
    // SAFETY: SSSE3 is enabled here.
    unsafe { mtf_vector(symbols, used) }
}

/// Move-to-front values of `symbols` (each below `used`, at most 16), keeping each symbol's
/// position in a byte lane of one vector: a symbol's lookup, the shift of those before it and its
/// move to the front are four vector steps, with no search and no branch. The zero runs are
/// written as the positions come, by a [`Runs`] local to the loop so that its counters stay in
/// registers. Inlined into each feature-enabled caller.
///
/// # Safety
/// The processor must have SSSE3.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn mtf_vector(symbols: &[u8], used: usize) -> Vec<u8> {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpgt_epi8, _mm_cvtsi128_si32, _mm_loadu_si128, _mm_shuffle_epi8, _mm_sub_epi8,
    };
    // Lanes of symbols not in use hold 64: never below a position, so never moved.
    let start: [u8; 16] = std::array::from_fn(|t| if t < used { t as u8 } else { 64 });
    // Per symbol: itself in every lane (the lookup's index), and all ones but in its own lane
    // (clearing its position): loads rather than a broadcast and a comparison in the loop.
    let spread: [[u8; 16]; 16] = std::array::from_fn(|s| [s as u8; 16]);
    let others: [[u8; 16]; 16] = std::array::from_fn(|s| std::array::from_fn(|t| if t == s { 0 } else { 0xff }));
    let load = |bytes: &[u8; 16]| -> __m128i {
        // SAFETY: 16 bytes, read unaligned.
        unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
    };
    let mut position = load(&start);
    let mut out = Runs::new(symbols.len());
    let n = symbols.len();
    // Only a run's first symbol (its head) moves the list: the rest are zeros, in front already.
    // Heads are found 64 at a time by comparing the block with itself one place on, and the
    // list is stepped for them alone: two symbols in five on shuffled 4-bit samples' blocks, one
    // in two on 6-bit ones. `next` is the place after the last head.
    let mut next = 0usize;
    for c in (0..n).step_by(64) {
        // SAFETY: as below (SSSE3 includes SSE2).
        let mut heads = unsafe { run_heads(symbols, c) };
        while heads != 0 {
            let i = c + heads.trailing_zeros() as usize;
            heads &= heads - 1;
            let zeros = i - next;
            next = i + 1;
            let s = usize::from(symbols[i] & 15);
            // SAFETY: the caller vouches for SSSE3.
            unsafe {
                let here = _mm_shuffle_epi8(position, load(&spread[s]));
                out.push(zeros, _mm_cvtsi128_si32(here) as u8);
                let before = _mm_cmpgt_epi8(here, position);
                position = _mm_and_si128(load(&others[s]), _mm_sub_epi8(position, before));
            }
        }
    }
    out.finish(n - next)
}

/// Bit `k` set where `symbols[c + k]` differs from the symbol before it (or, for the first,
/// from symbol 0, the list's front): four 16-byte comparisons of the block with itself one place
/// on, or a loop at its ends.
///
/// # Safety
/// The processor must have SSE2.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn run_heads(symbols: &[u8], c: usize) -> u64 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8};
    if c == 0 || c + 64 > symbols.len() {
        let end = symbols.len().min(c + 64);
        // Before the block's first symbol, the list's front is symbol 0.
        let before = |i: usize| if i == 0 { 0 } else { symbols[i - 1] };
        return (c..end).fold(0u64, |m, i| m | u64::from(symbols[i] != before(i)) << (i - c));
    }
    let mut same = 0u64;
    for k in 0..4 {
        // SAFETY: c - 1 + 16 k + 16 <= c + 64 <= len: both loads lie within the block.
        let equal = unsafe {
            let at = symbols.as_ptr().add(c + 16 * k);
            _mm_cmpeq_epi8(_mm_loadu_si128(at.cast()), _mm_loadu_si128(at.sub(1).cast()))
        };
        same |= u64::from(_mm_movemask_epi8(equal) as u16) << (16 * k);
    }
    !same
}

/// Move-to-front values from the positions of run heads, as the move-to-front yields them (one
/// loop for both runs faster than two passes): each zero run in RUNA/RUNB digits, then the head's
/// value one up. The run's digits and the value are written as one word, and the output advances
/// by their number: no branch on the run's length, which random text mispredicts.
struct Runs {
    out: Vec<u8>,
    at: usize,
}

/// The bits of `x` (below 256), bit `k` to byte `k`.
const fn spread(x: u64) -> u64 {
    // Byte k of the product keeps bit k alone; adding 0x7F to each byte carries it to bit 7.
    let picked = x.wrapping_mul(0x0101_0101_0101_0101) & 0x8040_2010_0804_0201;
    ((picked + 0x7f7f_7f7f_7f7f_7f7f) >> 7) & 0x0101_0101_0101_0101
}

/// Per run of z zeros (z up to [`Runs::WORD_RUN`]): its digits spread a byte each with a one
/// after them, that byte's bit offset, and the bytes the run and the value after it take.
const RUN_WORDS: [(u64, u32, u32); Runs::WORD_RUN + 1] = {
    let mut table = [(0u64, 0u32, 0u32); Runs::WORD_RUN + 1];
    let mut z = 0;
    while z <= Runs::WORD_RUN {
        // A run of z zeros is z + 1 in binary without its leading one, least significant digit
        // first (bijective base 2).
        let digits = 63 - (z as u64 + 1).leading_zeros();
        table[z] = (spread(z as u64 + 1), 8 * digits, digits + 1);
        z += 1;
    }
    table
};

impl Runs {
    /// Longest zero run written in the one word.
    const WORD_RUN: usize = 254;

    fn new(positions: usize) -> Self {
        // Never more values than positions; the last word written may reach 8 bytes further.
        // Only places below the final `at` are kept, and each is written first.
        let mut out = super::buffers::take::<u8>(positions + 16);
        out.resize(positions + 16, 0);
        Runs { out, at: 0 }
    }

    /// Writes a run of `zeros` zeros, then a head at position `p` (never 0: a head differs from
    /// the symbol in front).
    #[inline(always)]
    fn push(&mut self, zeros: usize, p: u8) {
        debug_assert!(p > 0);
        if zeros > Self::WORD_RUN {
            // A run too long for the word, written digit by digit in the loop itself: a call
            // here would have the caller keep its vector registers in memory throughout.
            let z = zeros as u64 + 1;
            let digits = (63 - z.leading_zeros()) as usize;
            for (d, o) in self.out[self.at..self.at + digits].iter_mut().enumerate() {
                *o = (z >> d) as u8 & 1;
            }
            self.out[self.at + digits] = p + 1;
            self.at += digits + 1;
            return;
        }
        // The run's digits, then a one that adding p makes p + 1.
        let (digits, shift, advance) = RUN_WORDS[zeros];
        let word = digits + (u64::from(p) << shift);
        debug_assert!(self.at + 8 <= self.out.len());
        // SAFETY: `at` never passes the positions taken (a run of z zeros writes fewer than z
        // digits), and the buffer holds 16 bytes more than the positions.
        unsafe { self.out.as_mut_ptr().add(self.at).cast::<u64>().write_unaligned(word.to_le()) };
        self.at += advance as usize;
    }

    /// The values, after a last run of `zeros` zeros.
    fn finish(mut self, zeros: usize) -> Vec<u8> {
        let mut tail = Vec::new();
        push_zero_run(&mut tail, zeros);
        self.out.truncate(self.at);
        self.out.extend(tail.iter().map(|&d| d as u8));
        self.out
    }
}

/// Move-to-front over a list of bytes, for any number of symbols.
fn mtf_list(symbols: impl Iterator<Item = u8>, used: usize, out: &mut Vec<u16>) {
    let mut list: Vec<u8> = (0..used).map(|s| s as u8).collect();
    let mut zeros = 0usize;
    for symbol in symbols {
        if list[0] == symbol {
            zeros += 1;
            continue;
        }
        push_zero_run(out, zeros);
        zeros = 0;
        let position = list.iter().position(|&s| s == symbol).expect("symbol is in the list");
        list.copy_within(0..position, 1);
        list[0] = symbol;
        out.push(position as u16 + 1);
    }
    push_zero_run(out, zeros);
}

/// A run of `zeros` zeros as RUNA (0) and RUNB (1) digits of bijective base 2, least significant
/// first.
fn push_zero_run(out: &mut Vec<u16>, zeros: usize) {
    if zeros == 0 {
        return;
    }
    let mut z = zeros - 1;
    loop {
        out.push((z & 1) as u16);
        if z < 2 {
            break;
        }
        z = (z - 2) / 2;
    }
}

/// How many tables libbzip2 uses for `n` values.
fn table_count(n: usize) -> usize {
    match n {
        0..200 => 2,
        200..600 => 3,
        600..1200 => 4,
        1200..2400 => 5,
        _ => 6,
    }
}

/// The initial tables: consecutive ranges of the alphabet holding about equal shares of the
/// values, the last table taking the first range.
fn initial_tables(freq: &[u32], n: usize, tables: usize) -> Vec<Vec<u8>> {
    let alpha = freq.len();
    let mut lengths = vec![vec![GREATER; alpha]; tables];
    let (mut remaining, mut start) = (n as i64, 0i64);
    for part in (1..=tables).rev() {
        let target = remaining / part as i64;
        let (mut end, mut got) = (start - 1, 0i64);
        while got < target && end < alpha as i64 - 1 {
            end += 1;
            got += i64::from(freq[end as usize]);
        }
        if end > start && part != tables && part != 1 && (tables - part) % 2 == 1 {
            got -= i64::from(freq[end as usize]);
            end -= 1;
        }
        for (v, l) in lengths[part - 1].iter_mut().enumerate() {
            if (start..=end).contains(&(v as i64)) {
                *l = LESSER;
            }
        }
        start = end + 1;
        remaining -= got;
    }
    lengths
}

/// The bits of one block whose transform is `bwt`.
pub fn block_bits(bwt: &[u8]) -> u64 {
    let (symbols, _, in_use) = symbols_in_use(bwt);
    symbol_block_bits(&symbols, &in_use)
}

/// [`block_bits`] given the transform's bytes numbered among the bytes in use, `in_use`, and
/// stretches `[start, end)` known to repeat one symbol (sorted, apart), which the vector
/// move-to-front passes over.
pub fn symbol_block_bits(symbols: &[u8], in_use: &[bool; 256]) -> u64 {
    let used = in_use.iter().filter(|&&u| u).count();
    #[cfg(target_arch = "x86_64")]
    if let Some(values) = mtf_values_narrow(symbols, used) {
        let histograms = if used + 2 <= 16 { group_histograms_bytes(&values) } else { Vec::new() };
        let bits = coded_bits(&values, histograms, used, in_use);
        super::buffers::give(values);
        return bits;
    }
    let values = mtf_values(symbols, used);
    let histograms = if used + 2 <= 16 { group_histograms(&values) } else { Vec::new() };
    coded_bits(&values, histograms, used, in_use)
}

/// The bits of one block given its move-to-front values and, for alphabets of up to 16 symbols
/// (decimal text has at most 13), their groups' histograms, from which each group is costed.
fn coded_bits<T: Copy + Into<usize>>(
    values: &[T],
    histograms: Vec<[u8; 16]>,
    used: usize,
    in_use: &[bool; 256],
) -> u64 {
    let alpha = used + 2;
    let mut freq = vec![0u32; alpha];
    if alpha <= 16 {
        for h in &histograms {
            for (f, &c) in freq.iter_mut().zip(h) {
                *f += u32::from(c);
            }
        }
    } else {
        for &v in values {
            freq[v.into()] += 1;
        }
    }
    let n = values.len();
    let tables = table_count(n);
    let mut lengths = initial_tables(&freq, n, tables);
    let mut selectors = Vec::with_capacity(n.div_ceil(GROUP));
    let mut table_freq = vec![vec![0u32; alpha]; tables];
    for _ in 0..PASSES {
        selectors.clear();
        table_freq.iter_mut().for_each(|f| f.fill(0));
        if alpha <= 16 {
            pass_by_histogram(&histograms, &lengths, &mut selectors, &mut table_freq);
        } else {
            pass_by_value(values, &lengths, &mut selectors, &mut table_freq);
        }
        for (l, f) in lengths.iter_mut().zip(&table_freq) {
            *l = code_lengths(f, MAX_CODE_LEN);
        }
    }
    let data: u64 = lengths
        .iter()
        .zip(&table_freq)
        .map(|(l, f)| l.iter().zip(f).map(|(&l, &f)| u64::from(l) * u64::from(f)).sum::<u64>())
        .sum();
    BLOCK_HEADER_BITS + mapping_bits(in_use) + selector_bits(&selectors, tables) + table_bits(&lengths) + data
}

/// The index of the cheapest table (the first on ties), given each table's cost.
fn cheapest(costs: impl Iterator<Item = u16>) -> usize {
    // The least of (cost, index) packed in one integer: a minimum without a branch, which the
    // winner among similar tables would mispredict.
    let best = costs.enumerate().map(|(t, c)| u32::from(c) << 3 | t as u32).min().unwrap_or(0);
    (best & 7) as usize
}

/// One pass: each group goes to its cheapest table under `lengths`, whose symbol counts it adds
/// to. Values are costed under all tables at once, 16 bits per table (a group costs at most
/// 50 × 17).
fn pass_by_value<T: Copy + Into<usize>>(
    values: &[T],
    lengths: &[Vec<u8>],
    selectors: &mut Vec<u8>,
    table_freq: &mut [Vec<u32>],
) {
    let alpha = lengths[0].len();
    let packed: Vec<u128> = (0..alpha)
        .map(|v| lengths.iter().enumerate().fold(0u128, |acc, (t, l)| acc | u128::from(l[v]) << (16 * t)))
        .collect();
    for group in values.chunks(GROUP) {
        let cost = group.iter().fold(0u128, |acc, &v| acc + packed[v.into()]);
        let best = cheapest((0..lengths.len()).map(|t| (cost >> (16 * t)) as u16));
        selectors.push(best as u8);
        for &v in group {
            table_freq[best][v.into()] += 1;
        }
    }
}

/// Per group of 50 values, how often each symbol occurs (alphabets of up to 16 symbols), a byte
/// per symbol.
fn group_histograms<T: Copy + Into<usize>>(values: &[T]) -> Vec<[u8; 16]> {
    // Sixteen byte counters in one integer, each value adding one to its byte: no count is kept
    // in memory, where equal values in a row would wait on each other's stores. A group's
    // counts stay below 256.
    const UNIT: [u128; 16] = {
        let mut unit = [0u128; 16];
        let mut v = 0;
        while v < 16 {
            unit[v] = 1 << (8 * v);
            v += 1;
        }
        unit
    };
    values
        .chunks(GROUP)
        .map(|group| {
            // Four sums, so that each add waits on one in four rather than on the last.
            let mut sums = [0u128; 4];
            let mut quads = group.chunks_exact(4);
            for quad in &mut quads {
                for (sum, &v) in sums.iter_mut().zip(quad) {
                    *sum += UNIT[v.into() & 15];
                }
            }
            for (sum, &v) in sums.iter_mut().zip(quads.remainder()) {
                *sum += UNIT[v.into() & 15];
            }
            sums.iter().sum::<u128>().to_le_bytes()
        })
        .collect()
}

/// [`group_histograms`] of byte values, with AVX2 where the processor has it: a group's 50
/// values compared with each symbol at once and the matches counted.
fn group_histograms_bytes(values: &[u8]) -> Vec<[u8; 16]> {
    #[cfg(target_arch = "x86_64")]
    if cpu::has(Features::AVX2 | Features::POPCNT) {
        // SAFETY: the features were just detected.
        return unsafe { group_histograms_avx2(values) };
    }
    group_histograms(values)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn group_histograms_avx2(values: &[u8]) -> Vec<[u8; 16]> {
    use std::arch::x86_64::{__m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8};
    // Groups whose 64 bytes from their start lie within the values; the rest plainly.
    let vector_groups = if values.len() >= 64 { (values.len() - 64) / GROUP + 1 } else { 0 };
    let mut out = Vec::with_capacity(values.len().div_ceil(GROUP));
    for group in values.chunks_exact(GROUP).take(vector_groups) {
        // SAFETY: 64 bytes from the group's start are within `values`, as counted above.
        let (low, high) = unsafe {
            let p = group.as_ptr();
            (_mm256_loadu_si256(p.cast::<__m256i>()), _mm256_loadu_si256(p.add(32).cast::<__m256i>()))
        };
        out.push(std::array::from_fn(|v| {
            let symbol = _mm256_set1_epi8(v as i8);
            let matches = |x| u64::from(_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, symbol)) as u32);
            ((matches(low) | matches(high) << 32) & ((1 << GROUP) - 1)).count_ones() as u8
        }));
    }
    out.extend(group_histograms(&values[vector_groups * GROUP..]));
    out
}

/// [`pass_by_value`] from the groups' histograms: a dot product per table instead of a lookup
/// per value. With AVX2 where the processor has it.
fn pass_by_histogram(
    histograms: &[[u8; 16]],
    lengths: &[Vec<u8>],
    selectors: &mut Vec<u8>,
    table_freq: &mut [Vec<u32>],
) {
    #[cfg(target_arch = "x86_64")]
    if lengths.len() <= 6 && cpu::has(Features::AVX2) {
        // SAFETY: the feature was just detected.
        unsafe { pass_by_histogram_avx2(histograms, lengths, selectors, table_freq) };
        return;
    }
    pass_by_histogram_plain(histograms, lengths, selectors, table_freq);
}

/// [`pass_by_histogram`] without vector instructions.
fn pass_by_histogram_plain(
    histograms: &[[u8; 16]],
    lengths: &[Vec<u8>],
    selectors: &mut Vec<u8>,
    table_freq: &mut [Vec<u32>],
) {
    let mut dense = [[0u16; 16]; 6];
    for (d, l) in dense.iter_mut().zip(lengths) {
        for (x, &len) in d.iter_mut().zip(l) {
            *x = u16::from(len);
        }
    }
    let dense = &dense[..lengths.len()];
    for h in histograms {
        let best = cheapest(dense.iter().map(|d| d.iter().zip(h).map(|(&l, &c)| l * u16::from(c)).sum::<u16>()));
        selectors.push(best as u8);
        for (f, &c) in table_freq[best].iter_mut().zip(h) {
            *f += u32::from(c);
        }
    }
}

/// [`pass_by_histogram`] for up to six tables in AVX2: a group's sixteen counts against each
/// table's lengths in one multiply-add, the six sums gathered by horizontal adds, and the cheapest
/// table (the first on ties) found by one minimum-position instruction over (cost, table) packed
/// in 16 bits (a group costs at most 50 × 17).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn pass_by_histogram_avx2(
    histograms: &[[u8; 16]],
    lengths: &[Vec<u8>],
    selectors: &mut Vec<u8>,
    table_freq: &mut [Vec<u32>],
) {
    use std::arch::x86_64::*;
    debug_assert!(lengths.len() <= 6);
    let mut dense = [[0i16; 16]; 6];
    for (d, l) in dense.iter_mut().zip(lengths) {
        for (x, &len) in d.iter_mut().zip(l) {
            *x = i16::from(len);
        }
    }
    // SAFETY: 32 bytes, read unaligned.
    let table: [__m256i; 6] = dense.map(|d| unsafe { _mm256_loadu_si256(d.as_ptr().cast()) });
    // Lanes 0-5 carry (cost << 3 | table); lanes of tables not in use and lanes 6-7 never win.
    let index = _mm_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7);
    let unused: [i16; 8] = std::array::from_fn(|t| if t < lengths.len() { 0 } else { -1 });
    // SAFETY: 16 bytes, read unaligned.
    let unused = unsafe { _mm_loadu_si128(unused.as_ptr().cast()) };
    let mut freq = [[0u32; 16]; 6];
    for h in histograms {
        // SAFETY: 16 bytes, read unaligned.
        let counts8 = unsafe { _mm_loadu_si128(h.as_ptr().cast()) };
        let counts = _mm256_cvtepu8_epi16(counts8);
        let p: [__m256i; 6] = table.map(|t| _mm256_madd_epi16(counts, t));
        let zero = _mm256_setzero_si256();
        let first = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
        let second = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), zero);
        let halves = |v: __m256i| _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let costs = _mm_packus_epi32(halves(first), halves(second));
        let packed = _mm_or_si128(_mm_or_si128(_mm_slli_epi16::<3>(costs), index), unused);
        let best = (_mm_cvtsi128_si32(_mm_minpos_epu16(packed)) & 7) as usize;
        selectors.push(best as u8);
        let row = &mut freq[best];
        // SAFETY: two halves of 32 bytes of a 64-byte row, unaligned.
        unsafe {
            let low = _mm256_add_epi32(_mm256_loadu_si256(row.as_ptr().cast()), _mm256_cvtepu8_epi32(counts8));
            let high = _mm256_add_epi32(
                _mm256_loadu_si256(row.as_ptr().add(8).cast()),
                _mm256_cvtepu8_epi32(_mm_srli_si128::<8>(counts8)),
            );
            _mm256_storeu_si256(row.as_mut_ptr().cast(), low);
            _mm256_storeu_si256(row.as_mut_ptr().add(8).cast(), high);
        }
    }
    for (out, f) in table_freq.iter_mut().zip(&freq) {
        for (o, &c) in out.iter_mut().zip(f) {
            *o += c;
        }
    }
}

/// One bit per 16 byte values, then 16 bits for each such range in use.
fn mapping_bits(in_use: &[bool; 256]) -> u64 {
    16 + 16 * in_use.chunks(16).filter(|r| r.iter().any(|&u| u)).count() as u64
}

/// Table count (3 bits), selector count (15), each selector move-to-front coded in unary.
fn selector_bits(selectors: &[u8], tables: usize) -> u64 {
    let mut list = NibbleList::new(tables);
    3 + 15 + selectors.iter().map(|&s| list.move_to_front(s) as u64 + 1).sum::<u64>()
}

/// The definition, for the tests: a list of tables, searched and shifted.
#[cfg(test)]
fn selector_bits_plain(selectors: &[u8], tables: usize) -> u64 {
    let mut list: Vec<u8> = (0..tables as u8).collect();
    let mut bits = 3 + 15;
    for &s in selectors {
        let position = list.iter().position(|&t| t == s).expect("selector names a table");
        list.copy_within(0..position, 1);
        list[0] = s;
        bits += position as u64 + 1;
    }
    bits
}

/// Each table: its first length (5 bits), then per symbol two bits per unit step and a stop bit.
fn table_bits(lengths: &[Vec<u8>]) -> u64 {
    lengths
        .iter()
        .map(|l| {
            let mut current = l[0];
            let mut bits = 5u64;
            for &len in l {
                bits += 2 * u64::from(current.abs_diff(len)) + 1;
                current = len;
            }
            bits
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maths::xoshiro::Xoshiro256;

    #[test]
    fn group_histograms_count_each_group() {
        let mut g = Xoshiro256::from_seed(9);
        for len in [0usize, 1, 49, 50, 63, 64, 65, 113, 114, 1000, 10_007] {
            let values: Vec<u8> = (0..len).map(|_| (g.next_u64() % 13) as u8).collect();
            let naive: Vec<[u8; 16]> = values
                .chunks(GROUP)
                .map(|group| std::array::from_fn(|v| group.iter().filter(|&&x| usize::from(x) == v).count() as u8))
                .collect();
            assert_eq!(group_histograms(&values), naive, "{len}");
            assert_eq!(group_histograms_bytes(&values), naive, "{len}, vector");
        }
    }

    #[test]
    fn packed_and_plain_selector_coding_agree() {
        let mut g = Xoshiro256::from_seed(8);
        for tables in 2..=6 {
            // Runs of one table and random changes, as the passes choose them.
            let selectors: Vec<u8> =
                (0..5_000).map(|i| ((g.next_u64() % tables as u64) * u64::from(i % 3 != 0)) as u8).collect();
            assert_eq!(selector_bits(&selectors, tables), selector_bits_plain(&selectors, tables), "{tables}");
        }
    }

    #[test]
    fn histogram_and_value_passes_agree() {
        let mut g = Xoshiro256::from_seed(3);
        let values: Vec<u16> = (0..10_007)
            .map(|_| {
                let r = g.next_u64();
                ((r % 14) * (r >> 61) / 7) as u16
            })
            .collect();
        let mut freq = vec![0u32; 14];
        values.iter().for_each(|&v| freq[usize::from(v)] += 1);
        // Every table count libbzip2 uses: unused tables must never be chosen.
        for tables in 2..=6 {
            let lengths = initial_tables(&freq, values.len(), tables);
            let (mut s1, mut s2, mut s3) = (Vec::new(), Vec::new(), Vec::new());
            let mut f = vec![vec![vec![0u32; 14]; tables]; 3];
            pass_by_value(&values, &lengths, &mut s1, &mut f[0]);
            pass_by_histogram(&group_histograms(&values), &lengths, &mut s2, &mut f[1]);
            pass_by_histogram_plain(&group_histograms(&values), &lengths, &mut s3, &mut f[2]);
            assert_eq!((&s1, &f[0]), (&s2, &f[1]), "{tables} tables");
            assert_eq!((&s1, &f[0]), (&s3, &f[2]), "{tables} tables, plain");
        }
    }

    #[test]
    fn zero_runs_are_bijective_base_two() {
        // 1 = A, 2 = B, 3 = AA, 4 = BA, 5 = AB, 6 = BB, 7 = AAA.
        let expect: [&[u16]; 7] = [&[0], &[1], &[0, 0], &[1, 0], &[0, 1], &[1, 1], &[0, 0, 0]];
        for (zeros, digits) in (1..=7).zip(expect) {
            let mut out = Vec::new();
            push_zero_run(&mut out, zeros);
            assert_eq!(out, digits, "{zeros}");
        }
    }

    #[test]
    fn packed_and_plain_move_to_front_agree() {
        let mut g = Xoshiro256::from_seed(4);
        for used in 1..=16usize {
            let symbols: Vec<u8> = (0..5000)
                .map(|_| {
                    let r = g.next_u64();
                    // Skewed towards small symbols so zero runs occur.
                    ((r % used as u64) * (r >> 60) / 15) as u8
                })
                .collect();
            let (mut packed, mut plain) = (Vec::new(), Vec::new());
            mtf_nibbles(symbols.iter().copied(), used, &mut packed);
            mtf_list(symbols.iter().copied(), used, &mut plain);
            assert_eq!(packed, plain, "{used} symbols");
        }
    }

    #[test]
    fn move_to_front_over_the_symbols_in_use() {
        // Symbols in use: a (0), b (1), c (2). "aabca": a run of two zeros (RUNB), b at position 1
        // (value 2), c at 2 (3), a at 2 (3), end of block (used + 1 = 4).
        let (symbols, used, _) = symbols_in_use(b"aabca");
        assert_eq!(used, 3);
        assert_eq!(mtf_values(&symbols, used), vec![1, 2, 3, 3, 4]);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_and_plain_move_to_front_agree() {
        let mut g = Xoshiro256::from_seed(5);
        for used in 1..=16usize {
            // Runs of every length up to 300 (past the 254 one word holds) between random symbols.
            let mut symbols = Vec::new();
            for run in 0..300 {
                let s = (g.next_u64() % used as u64) as u8;
                symbols.extend(std::iter::repeat_n(s, 1 + run % 7 + if run % 10 == 0 { run } else { 0 }));
            }
            // Runs at and either side of the longest one word holds, and one that ends the block.
            for run in [254, 255, 256, 257, 600] {
                symbols.push(((symbols.last().copied().unwrap_or(0) as usize + 1) % used) as u8);
                symbols.extend(std::iter::repeat_n(*symbols.last().expect("pushed"), run));
            }
            let mut wide: Vec<u8> = mtf_values(&symbols, used).iter().map(|&v| v as u8).collect();
            wide.pop();
            if let Some(narrow) = mtf_values_narrow(&symbols, used) {
                assert_eq!(narrow[..narrow.len() - 1], wide, "{used} symbols");
            }
            // Each compiled version, where this processor runs it (even with the portable path
            // forced).
            if cpu::detected().contains(Features::SSSE3) {
                // SAFETY: detected.
                assert_eq!(unsafe { mtf_values_ssse3(&symbols, used) }, wide, "SSSE3, {used} symbols");
            }
            if cpu::detected().contains(AVX2_MTF) {
                // SAFETY: detected.
                assert_eq!(unsafe { mtf_values_avx2(&symbols, used) }, wide, "AVX2, {used} symbols");
            }
        }
    }
}

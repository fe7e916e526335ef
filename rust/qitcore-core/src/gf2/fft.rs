//! Multiplication of large polynomials in GF(2)\[x\] by an additive FFT over GF(2^64).
//!
//! Kronecker segmentation cuts each factor into 32-bit pieces, the coefficients of a polynomial
//! over GF(2^64); products of two pieces have degree ≤ 62, so no reduction modulo the field's
//! polynomial ever happens and the product over GF(2^64) carries the product over GF(2) exactly.
//!
//! The transform is the Lin–Chung–Han "novel polynomial basis" FFT over a Cantor basis
//! `β_0 = 1, β_i² + β_i = β_{i−1}` (Cantor 1989; Lin, Chung, Han, FOCS 2014; Gao & Mateer 2010).
//! With it the subspace polynomials `s_i(x) = ∏_{a ∈ ⟨β_0..β_{i−1}⟩} (x − a)` have 0/1
//! coefficients, `s_i(x) = Σ_{j ⊆ i} x^{2^j}` (bits of `j` a subset of those of `i`), and
//! `s_i(β_j) = β_{j−i}`. A polynomial of degree < 2^K is written in the basis
//! `X_k = ∏_{i ∈ bits(k)} s_i`; evaluating it at the 2^K points `ω_u = Σ u_i β_i` takes K levels of
//! butterflies `lo ^= w·hi, hi ^= lo` whose twiddle for block `b` is `W[b] = Σ b_i β_{i+1}` at every
//! level. The change of basis to and from `X_k` divides by the sparse `s_i` with XORs only.
//! Values at the 2^K points determine a product only modulo `s_K`: a product longer than the
//! transform comes back with its top folded onto the lower terms of `s_K`, which middle
//! products use to run shorter transforms ([`len_for_middle`]).

use std::sync::OnceLock;

use super::backend::Backend;
use super::gf64;
use super::leaf_batch;
use super::wipe::{scratch, Wiped};
use super::xor::xor_into;

/// Transforms of at least this many elements split their halves across threads.
const PARALLEL_LEN: usize = 1 << 14;

/// The Cantor basis of GF(2^64) and the twiddle tables derived from it.
struct Tables {
    #[cfg_attr(not(test), expect(dead_code, reason = "the basis itself is checked by the tests"))]
    beta: [u64; 64],
    /// `W[b]` for the low, middle and high 12 bits of `b`.
    twiddle: [[u64; 4096]; 3],
    /// The twiddle offsets of the lowest levels, for the kernels on the last blocks.
    offsets: gf64::Offsets,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Box<Tables>> = OnceLock::new();
    TABLES.get_or_init(|| {
        let beta = cantor_basis();
        let mut twiddle = [[0u64; 4096]; 3];
        for (part, table) in twiddle.iter_mut().enumerate() {
            for (b, entry) in table.iter_mut().enumerate() {
                *entry = (0..12).filter(|i| (b >> i) & 1 == 1).fold(0, |acc, i| acc ^ beta[12 * part + i + 1]);
            }
        }
        let offsets = gf64::Offsets::new(|j| twiddle[0][j]);
        Box::new(Tables { beta, twiddle, offsets })
    })
}

/// `W[b] = Σ_i b_i·β_{i+1}`, the twiddle of block `b` (any level).
#[inline]
fn twiddle(t: &Tables, b: usize) -> u64 {
    debug_assert!(b < 1 << 36);
    t.twiddle[0][b & 4095] ^ t.twiddle[1][(b >> 12) & 4095] ^ t.twiddle[2][(b >> 24) & 4095]
}

/// Solves `x² + x = c` over GF(2) linear algebra (the map is GF(2)-linear with kernel {0, 1}).
fn solve_artin_schreier(c: u64) -> Option<u64> {
    // Columns: L(t^k) = t^{2k} + t^k. Gaussian elimination on the augmented system.
    let columns: Vec<u64> = (0..64).map(|k| gf64::mul_portable(1 << k, 1 << k) ^ (1u64 << k)).collect();
    // rows[r] = (coefficient bits over the 64 unknowns, right-hand side bit)
    let mut rows: Vec<(u64, u64)> = (0..64)
        .map(|r| {
            let coeffs = (0..64).fold(0u64, |acc, k| acc | (((columns[k] >> r) & 1) << k));
            (coeffs, (c >> r) & 1)
        })
        .collect();
    let mut pivots = Vec::new();
    let mut row = 0;
    for col in 0..64 {
        let Some(p) = (row..64).find(|&r| (rows[r].0 >> col) & 1 == 1) else { continue };
        rows.swap(row, p);
        for r in 0..64 {
            if r != row && (rows[r].0 >> col) & 1 == 1 {
                rows[r].0 ^= rows[row].0;
                rows[r].1 ^= rows[row].1;
            }
        }
        pivots.push(col);
        row += 1;
    }
    if rows[row..].iter().any(|&(_, rhs)| rhs == 1) {
        return None;
    }
    Some(pivots.iter().enumerate().fold(0u64, |acc, (r, &col)| acc | (rows[r].1 << col)))
}

/// `β_0 = 1` and `β_i² + β_i = β_{i−1}`; such a basis exists in GF(2^(2^k)) for `i < 2^k`.
fn cantor_basis() -> [u64; 64] {
    let mut beta = [0u64; 64];
    beta[0] = 1;
    for i in 1..64 {
        beta[i] = solve_artin_schreier(beta[i - 1]).expect("GF(2^64) has a Cantor basis of 64 elements");
    }
    beta
}

/// Basis changes of at least this many elements run their steps reordered for the cache
/// ([`blocked`]): beyond the caches a step costs its reads and writes, not its XORs.
const FUSE_LEN: usize = 1 << 16;

/// Elements per run of a large basis change's reordered steps, and per quarter in a shared
/// two-level pass: four such runs stay in L1.
const FUSE_BLOCK: usize = 512;

/// Transforms of at least this many elements run two levels per pass ([`radix4_pass`]), the
/// four quarters' values in registers; shorter ones end in the kernels on blocks of 64 and 16.
const RADIX4_LEN: usize = 256;

/// Two levels of butterflies on `f` (block `b`) in one pass: the level of `f` (twiddle `W[b]`,
/// quarter `k` against quarter `k + 2`) and those of its halves (`W[2b]`, `W[2b + 1]`), eight
/// elements of each quarter at a time in registers; the inverse undoes them in the opposite
/// order. Large blocks split their quarters into runs shared by both cores.
fn radix4_pass(be: Backend, t: &Tables, f: &mut [u64], b: usize, inverse: bool) {
    let quarter = f.len() / 4;
    let (w, w_lo, w_hi) = (twiddle(t, b), twiddle(t, 2 * b), twiddle(t, 2 * b + 1));
    let step = |q0: &mut [u64], q1: &mut [u64], q2: &mut [u64], q3: &mut [u64]| {
        gf64::butterfly4(be, [q0, q1, q2, q3], [w, w_lo, w_hi], inverse);
    };
    let (lo, hi) = f.split_at_mut(2 * quarter);
    let (q0, q1) = lo.split_at_mut(quarter);
    let (q2, q3) = hi.split_at_mut(quarter);
    if 4 * quarter >= PARALLEL_LEN {
        // The blocks are independent: both cores share the pass.
        use rayon::prelude::*;
        q0.par_chunks_mut(FUSE_BLOCK)
            .zip(q1.par_chunks_mut(FUSE_BLOCK))
            .zip(q2.par_chunks_mut(FUSE_BLOCK).zip(q3.par_chunks_mut(FUSE_BLOCK)))
            .for_each(|((a0, a1), (a2, a3))| step(a0, a1, a2, a3));
    } else {
        step(q0, q1, q2, q3);
    }
}

/// The four quarters of `f`, each with its block index below block `b`, transformed by `each`
/// (in parallel when `f` is large).
fn on_quarters(f: &mut [u64], b: usize, each: &(impl Fn(&mut [u64], usize) + Sync)) {
    let quarter = f.len() / 4;
    let (lo, hi) = f.split_at_mut(2 * quarter);
    let (q0, q1) = lo.split_at_mut(quarter);
    let (q2, q3) = hi.split_at_mut(quarter);
    if 4 * quarter >= PARALLEL_LEN {
        rayon::join(
            || rayon::join(|| each(q0, 4 * b), || each(q1, 4 * b + 1)),
            || rayon::join(|| each(q2, 4 * b + 2), || each(q3, 4 * b + 3)),
        );
    } else {
        for (k, q) in [q0, q1, q2, q3].into_iter().enumerate() {
            each(q, 4 * b + k);
        }
    }
}

/// Forward transform of `f` (length a power of two, coefficients in the novel basis) into its
/// values at `ω_u + α` where block index `b` encodes the coset `α`.
fn fft(be: Backend, t: &Tables, f: &mut [u64], b: usize) {
    let half = f.len() / 2;
    if let Ok(block) = <&mut [u64; 64]>::try_from(&mut *f) {
        gf64::bottom64(be, block, std::array::from_fn(|i| twiddle(t, b << i)), &t.offsets, false);
        return;
    }
    if let Ok(block) = <&mut [u64; 16]>::try_from(&mut *f) {
        gf64::bottom16(be, block, std::array::from_fn(|i| twiddle(t, b << i)), &t.offsets, false);
        return;
    }
    if half == 0 {
        return;
    }
    if f.len() >= RADIX4_LEN {
        radix4_pass(be, t, f, b, false);
        on_quarters(f, b, &|q, c| fft(be, t, q, c));
        return;
    }
    let (lo, hi) = f.split_at_mut(half);
    gf64::butterfly(be, lo, hi, twiddle(t, b), false);
    if 2 * half >= PARALLEL_LEN {
        rayon::join(|| fft(be, t, lo, 2 * b), || fft(be, t, hi, 2 * b + 1));
    } else {
        fft(be, t, lo, 2 * b);
        fft(be, t, hi, 2 * b + 1);
    }
}

/// Inverse of [`fft`].
fn ifft(be: Backend, t: &Tables, f: &mut [u64], b: usize) {
    let half = f.len() / 2;
    if let Ok(block) = <&mut [u64; 64]>::try_from(&mut *f) {
        gf64::bottom64(be, block, std::array::from_fn(|i| twiddle(t, b << i)), &t.offsets, true);
        return;
    }
    if let Ok(block) = <&mut [u64; 16]>::try_from(&mut *f) {
        gf64::bottom16(be, block, std::array::from_fn(|i| twiddle(t, b << i)), &t.offsets, true);
        return;
    }
    if half == 0 {
        return;
    }
    if f.len() >= RADIX4_LEN {
        on_quarters(f, b, &|q, c| ifft(be, t, q, c));
        radix4_pass(be, t, f, b, true);
        return;
    }
    let (lo, hi) = f.split_at_mut(half);
    if 2 * half >= PARALLEL_LEN {
        rayon::join(|| ifft(be, t, lo, 2 * b), || ifft(be, t, hi, 2 * b + 1));
    } else {
        ifft(be, t, lo, 2 * b);
        ifft(be, t, hi, 2 * b + 1);
    }
    gf64::butterfly(be, lo, hi, twiddle(t, b), true);
}

/// The exponents `e = 2^j` of the lower terms of `s_i` (all `j ⊊ bits(i)`), and the chunk length
/// `2^i − max e` within which the division by `s_i` has no internal dependency.
fn lower_terms(i: u32) -> (impl Iterator<Item = usize> + Clone, usize) {
    let terms = (0..i).filter(move |&j| j & i == j).map(|j| 1usize << j);
    let largest = terms.clone().next_back().unwrap_or(0);
    (terms, (1usize << i) - largest)
}

/// The steps of the division by `s_i` of a polynomial of `2^{i+1}` coefficients, in order: each
/// `(dst, src, len)` means `f[dst .. dst + len] ^= f[src .. src + len]` (the two ranges never
/// overlap). From the top down: a chunk's coefficients are final once all higher ones have been
/// folded, and they fold only into positions below the chunk.
fn division_steps(i: u32, step: impl FnMut(usize, usize, usize)) {
    let (terms, chunk) = lower_terms(i);
    sparse_steps(1 << i, terms, chunk, false, step);
}

/// The steps of the inverse of the division by `s_i` (`f = low + s_i·high`), as
/// [`division_steps`]: the same chunks, bottom up.
fn multiplication_steps(i: u32, step: impl FnMut(usize, usize, usize)) {
    let (terms, chunk) = lower_terms(i);
    sparse_steps(1 << i, terms, chunk, true, step);
}

/// The steps of the division by `x^d + Σ_{e ∈ terms} x^e` (every `e <= d − chunk`) of a
/// polynomial of `2d` coefficients, as [`division_steps`], or (`bottom_up`) of its inverse: the
/// chunks `[2d − (k+1)·chunk, 2d − k·chunk)` cut at `d`, each added at every term's place below it.
fn sparse_steps(
    d: usize,
    terms: impl Iterator<Item = usize> + Clone,
    chunk: usize,
    bottom_up: bool,
    mut step: impl FnMut(usize, usize, usize),
) {
    let count = d.div_ceil(chunk);
    let mut run = |k: usize| {
        let end = 2 * d - k * chunk;
        let start = end.saturating_sub(chunk).max(d);
        for e in terms.clone() {
            step(start - d + e, start, end - start);
        }
    };
    if bottom_up {
        (0..count).rev().for_each(&mut run);
    } else {
        (0..count).for_each(&mut run);
    }
}

/// Coefficients the basis changes add: 64-bit elements, or the 32-bit pieces of a segmented
/// factor (whose upper halves are zero: adding them in 32-bit lanes halves the memory traffic).
trait Piece: Copy + Default + std::ops::BitXorAssign + Send + Sync {
    /// Leaves whose recorded steps run together: the lanes of a 512-bit register.
    const BATCH: usize;
    /// `dst[i] ^= src[i]`.
    fn xor_run(be: Backend, dst: &mut [Self], src: &[Self]);
}

impl Piece for u64 {
    const BATCH: usize = BATCH;
    fn xor_run(be: Backend, dst: &mut [u64], src: &[u64]) {
        xor_into(be, dst, src);
    }
}

impl Piece for u32 {
    const BATCH: usize = 2 * BATCH;
    fn xor_run(be: Backend, dst: &mut [u32], src: &[u32]) {
        super::xor::xor_into32(be, dst, src);
    }
}

/// `f[dst .. dst + len] ^= f[src .. src + len]` for ranges with `dst + len <= src`.
fn xor_down<T: Piece>(be: Backend, f: &mut [T], dst: usize, src: usize, len: usize) {
    let (below, source) = f.split_at_mut(src);
    T::xor_run(be, &mut below[dst..dst + len], &source[..len]);
}

/// Runs the steps `steps` emits on `f`: reordered for the cache ([`blocked`]) when `f` is large.
fn run_steps<T: Piece>(be: Backend, f: &mut [T], steps: impl FnOnce(&mut dyn FnMut(usize, usize, usize))) {
    if f.len() >= FUSE_LEN {
        blocked(be, f, steps);
    } else {
        steps(&mut |dst, src, len| xor_down(be, f, dst, src, len));
    }
}

/// `emit` for the steps whose sources lie below `nonzero`, cut there: for a polynomial whose
/// coefficients from `nonzero` on are zero, under a division, which only adds higher
/// coefficients into lower ones (the zeros are never written but with zeros).
fn below(nonzero: usize, emit: &mut dyn FnMut(usize, usize, usize)) -> impl FnMut(usize, usize, usize) + '_ {
    move |dst, src, len| {
        let len = len.min(nonzero.saturating_sub(src));
        if len > 0 {
            emit(dst, src, len);
        }
    }
}

/// Replaces `f` (length `2^{i+1}`) by `(f mod s_i, f div s_i)` in its two halves.
#[cfg(test)]
fn divide_by_subspace_poly<T: Piece>(be: Backend, f: &mut [T], i: u32) {
    debug_assert_eq!(f.len(), 2 << i);
    units_by_subspace_poly(be, f, 1, f.len(), true);
}

/// Inverse of [`divide_by_subspace_poly`]: `f = low + s_i·high`.
fn multiply_by_subspace_poly(be: Backend, f: &mut [u64], i: u32) {
    run_steps(be, f, |emit| multiplication_steps(i, emit));
}

/// Chunks with at least this many words to add split them across threads: smaller ones take
/// less time than waking the other thread (split from 2^16 words, the 2^20-bit one-shot product
/// measured more context switches and no gain).
const PARALLEL_CHUNK_WORDS: usize = 1 << 20;

/// Runs the steps `steps` emits (`f[dst .. dst + len] ^= f[src .. src + len]`) reordered for the
/// cache: all of a chunk's terms (the steps that share a source range) run on one run of
/// [`FUSE_BLOCK`] source words before the next run, so that a large basis change reads each
/// source word once rather than once per term, and the terms whose destinations lie close
/// together share their cache lines. Within a chunk the order is free: its steps only add the
/// chunk, which none of them changes, into words below it; so a large chunk's destinations are
/// split into ranges of equal work, one per thread (the top levels of a basis change are one
/// chunk or two, which would otherwise run on one core while the other waits).
fn blocked<T: Piece>(be: Backend, f: &mut [T], steps: impl FnOnce(&mut dyn FnMut(usize, usize, usize))) {
    let mut dsts: Vec<usize> = Vec::new();
    let mut source = (0, 0);
    let flush = |f: &mut [T], dsts: &mut Vec<usize>, (src, len): (usize, usize)| {
        if dsts.is_empty() {
            return;
        }
        // Every destination lies below the source: the window below it is written, the source
        // only read.
        let (below, above) = f.split_at_mut(src);
        let (lowest, highest) = (dsts.iter().min().copied().unwrap_or(0), dsts.iter().max().copied().unwrap_or(0));
        let window = &mut below[lowest..highest + len];
        let parts = if dsts.len() * len >= PARALLEL_CHUNK_WORDS { rayon::current_num_threads() } else { 1 };
        add_chunk(be, window, lowest, &above[..len], dsts, parts);
        dsts.clear();
    };
    steps(&mut |dst, src, len| {
        if !dsts.is_empty() && source != (src, len) {
            flush(f, &mut dsts, source);
        }
        source = (src, len);
        dsts.push(dst);
    });
    flush(f, &mut dsts, source);
}

/// Adds `chunk` into `f` at each of `dsts` (indices of `f`), where `window` is `f[base .. base +
/// window.len()]`: only the words inside the window, on up to `parts` threads.
fn add_chunk<T: Piece>(be: Backend, window: &mut [T], base: usize, chunk: &[T], dsts: &[usize], parts: usize) {
    let len = chunk.len();
    let end = base + window.len();
    let inside = |d: usize, lo: usize, hi: usize| (d + len).min(hi).saturating_sub(d.max(lo));
    if parts >= 2 && window.len() >= 2 {
        // The split point with about half the words to add on each side (the work below a
        // point grows with it).
        let below_work = |at: usize| dsts.iter().map(|&d| inside(d, base, at)).sum::<usize>();
        let total = below_work(end);
        let wanted = total / parts * (parts / 2);
        let (mut lo, mut hi) = (base + 1, end - 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if below_work(mid) < wanted {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let (left, right) = window.split_at_mut(lo - base);
        rayon::join(
            || add_chunk(be, left, base, chunk, dsts, parts / 2),
            || add_chunk(be, right, lo, chunk, dsts, parts - parts / 2),
        );
        return;
    }
    for off in (0..len).step_by(FUSE_BLOCK) {
        let run = FUSE_BLOCK.min(len - off);
        for &d in dsts {
            let (from, to) = ((d + off).max(base), (d + off + run).min(end));
            if from < to {
                T::xor_run(be, &mut window[from - base..to - base], &chunk[from - d..to - d]);
            }
        }
    }
}

/// Basis changes of at most this many coefficients run as a recorded list of single-word XORs:
/// there the general recursion's calls and chunk loops cost several times the XORs themselves.
const SMALL_LEN: usize = leaf_batch::LEAF;

/// The single-word XORs `(dst, src)` of the basis changes of `2^k` coefficients (`k <= 6`),
/// recorded once from the general algorithm, in its order.
struct SmallSteps {
    to_novel: [Vec<(u8, u8)>; 7],
    from_novel: [Vec<(u8, u8)>; 7],
}

fn small_steps() -> &'static SmallSteps {
    static STEPS: OnceLock<SmallSteps> = OnceLock::new();
    STEPS.get_or_init(|| {
        let list = |forward: bool| {
            std::array::from_fn(|k| {
                let mut out = Vec::new();
                record_divisions(1 << k, 0, 1, forward, &mut |dst, src, n| {
                    out.extend((0..n).map(|t| ((dst + t) as u8, (src + t) as u8)));
                });
                in_waves(&out)
            })
        };
        SmallSteps { to_novel: list(true), from_novel: list(false) }
    })
}

/// The steps `(dst, src, len)` of the basis change of the `len` coefficients at `at`, forward
/// (divisions from the widest) or back (multiplications up to it), in order, down to blocks of
/// `down_to` coefficients, whose own changes are left out (at most 2: none).
fn record_divisions(len: usize, at: usize, down_to: usize, forward: bool, emit: &mut dyn FnMut(usize, usize, usize)) {
    if len <= down_to.max(2) {
        return;
    }
    let i = len.trailing_zeros() - 1;
    if forward {
        division_steps(i, |dst, src, n| emit(at + dst, at + src, n));
    }
    record_divisions(len / 2, at, down_to, forward, emit);
    record_divisions(len / 2, at + len / 2, down_to, forward, emit);
    if !forward {
        multiplication_steps(i, |dst, src, n| emit(at + dst, at + src, n));
    }
}

/// `steps` (`f[dst] ^= f[src]`) reordered into waves of independent steps: a step goes into the
/// wave after the last one that wrote its source or its destination or read its destination.
/// Each step's inputs are the same as in the original order, so the result is; the batched
/// leaves hold their elements in memory, and steps in recorded order wait on each other's
/// stores, where a wave's run side by side.
fn in_waves(steps: &[(u8, u8)]) -> Vec<(u8, u8)> {
    let (mut written, mut read) = ([0usize; 256], [0usize; 256]);
    let mut waves: Vec<(usize, (u8, u8))> = Vec::with_capacity(steps.len());
    for &(dst, src) in steps {
        let (d, s) = (usize::from(dst), usize::from(src));
        let wave = written[s].max(written[d]).max(read[d]) + 1;
        written[d] = wave;
        read[s] = read[s].max(wave);
        waves.push((wave, (dst, src)));
    }
    waves.sort_by_key(|&(wave, _)| wave);
    waves.into_iter().map(|(_, step)| step).collect()
}

/// Runs recorded steps on `f` (at most [`SMALL_LEN`] coefficients).
#[inline]
fn run_small<T: Piece>(f: &mut [T], steps: &[(u8, u8)]) {
    let mut block = [T::default(); SMALL_LEN];
    let block = &mut block[..f.len()];
    block.copy_from_slice(f);
    for &(dst, src) in steps {
        block[dst as usize] ^= block[src as usize];
    }
    f.copy_from_slice(block);
}

/// Leaves of [`SMALL_LEN`] coefficients of 64 bits whose recorded basis changes run together,
/// one leaf per vector lane ([`Piece::BATCH`]; twice as many of 32 bits): one leaf at a time the
/// single-word XORs, four and a half per coefficient, took as long as all the larger levels'
/// vector XORs together.
const BATCH: usize = 8;

/// Runs recorded steps on the [`Piece::BATCH`] leaves of [`SMALL_LEN`] coefficients `f` holds,
/// each step on all of them at once (the leaves transposed into lanes and back).
fn run_small_batch<T: Piece>(be: Backend, f: &mut [T], steps: &[(u8, u8)]) {
    assert_eq!(f.len(), T::BATCH * SMALL_LEN, "a batch of leaves");
    #[cfg(target_arch = "x86_64")]
    if be == Backend::Vpclmul && Backend::Vpclmul.is_available() {
        // SAFETY: the CPU has AVX-512F (the Vpclmul backend's features include it); `f` holds
        // T::BATCH leaves of SMALL_LEN elements of 64 / T::BATCH bytes (8 of u64, 16 of u32).
        unsafe {
            if T::BATCH == 16 {
                leaf_batch::run_steps::<16>(f.as_mut_ptr().cast(), steps);
            } else {
                leaf_batch::run_steps::<8>(f.as_mut_ptr().cast(), steps);
            }
        }
        return;
    }
    let _ = be;
    if T::BATCH == 16 {
        run_small_lanes::<T, 16>(f, steps);
    } else {
        run_small_lanes::<T, 8>(f, steps);
    }
}

#[inline(always)]
fn run_small_lanes<T: Piece, const N: usize>(f: &mut [T], steps: &[(u8, u8)]) {
    debug_assert_eq!(f.len(), N * SMALL_LEN);
    let mut lanes = [[T::default(); N]; SMALL_LEN];
    for (b, leaf) in f.chunks_exact(SMALL_LEN).enumerate() {
        for (row, &v) in lanes.iter_mut().zip(leaf) {
            row[b] = v;
        }
    }
    for &(dst, src) in steps {
        // Indices below SMALL_LEN (a power of two) by construction; the mask drops the checks.
        let source = lanes[usize::from(src) & (SMALL_LEN - 1)];
        for (d, s) in lanes[usize::from(dst) & (SMALL_LEN - 1)].iter_mut().zip(source) {
            *d ^= s;
        }
    }
    for (b, leaf) in f.chunks_exact_mut(SMALL_LEN).enumerate() {
        for (v, row) in leaf.iter_mut().zip(&lanes) {
            *v = row[b];
        }
    }
    // The lanes held sums of seed and input pieces.
    lanes.iter_mut().for_each(|row| *row = [T::default(); N]);
    std::hint::black_box(&mut lanes);
}

/// The divisions [`to_novel`] makes above its leaves of [`SMALL_LEN`] coefficients, in its order
/// (`f` a batch of leaves, at most [`ABOVE_LEAVES_MAX`] long; rows run theirs interleaved,
/// [`AboveLeaves`]).
fn divide_above_leaves<T: Piece>(be: Backend, f: &mut [T]) {
    super::xor::xor_steps(be, f, &above_leaves().divide[f.len().trailing_zeros() as usize]);
}

/// The multiplications [`from_novel`] makes above its leaves of [`SMALL_LEN`] coefficients, in
/// its order (as [`divide_above_leaves`]).
fn multiply_above_leaves(be: Backend, f: &mut [u64]) {
    super::xor::xor_steps(be, f, &above_leaves().multiply[f.len().trailing_zeros() as usize]);
}

/// The longest basis change whose steps above the leaves are recorded: a batch of 32-bit leaves.
const ABOVE_LEAVES_MAX: usize = 1 << 10;

/// The steps `(dst, src, len)` of the divisions and multiplications above the leaves of a basis
/// change of `2^k` coefficients (`2^k <= ABOVE_LEAVES_MAX`), recorded once in their order.
struct AboveLeaves {
    divide: Vec<Vec<(u16, u16, u16)>>,
    multiply: Vec<Vec<(u16, u16, u16)>>,
    /// Those of [`ROW`] coefficients on `2^k` rows at once, interleaved.
    rows_divide: Vec<Vec<(u16, u16, u16)>>,
    rows_multiply: Vec<Vec<(u16, u16, u16)>>,
}

fn above_leaves() -> &'static AboveLeaves {
    static STEPS: OnceLock<AboveLeaves> = OnceLock::new();
    STEPS.get_or_init(|| {
        let record = |len: usize, forward: bool| {
            let mut out = Vec::new();
            record_divisions(len, 0, SMALL_LEN, forward, &mut |dst, src, n| {
                out.push((dst as u16, src as u16, n as u16));
            });
            out
        };
        let list = |forward: bool| (0..=ABOVE_LEAVES_MAX.trailing_zeros()).map(|k| record(1 << k, forward)).collect();
        // A row's steps, each on every row of the group before the next: a row's steps are a
        // chain (each chunk adds into the next one's source, a few elements off its alignment,
        // and waits for those stores), the rows' are independent.
        let rows = |forward: bool| {
            let one = record(ROW, forward);
            (0..=ABOVE_LEAVES_MAX.trailing_zeros() - ROW.trailing_zeros())
                .map(|k| {
                    let offsets = (0..1u16 << k).map(|r| r * ROW as u16);
                    one.iter().flat_map(|&(d, s, n)| offsets.clone().map(move |o| (d + o, s + o, n))).collect()
                })
                .collect()
        };
        AboveLeaves { divide: list(true), multiply: list(false), rows_divide: rows(true), rows_multiply: rows(false) }
    })
}

/// Monomial basis → novel basis, in place (length a power of two).
#[cfg(test)]
fn to_novel<T: Piece>(be: Backend, f: &mut [T]) {
    to_novel_below(be, f, f.len());
}

/// [`to_novel`] for `f` whose coefficients from `nonzero` on are zero: a polynomial of degree
/// below half the length is its own remainder (its quotient, the upper half, stays zero), and the
/// division of a longer one leaves out the zero sources. A fresh seed's slice fills three
/// quarters of its transform: this skips half of the widest level's work and a quarter of the rest.
fn to_novel_below<T: Piece>(be: Backend, f: &mut [T], nonzero: usize) {
    if nonzero == 0 {
        return; // zero in either basis
    }
    if f.len() <= 2 {
        return; // s_0(x) = x: the basis {1, x} is both
    }
    if f.len() <= SMALL_LEN {
        run_small(f, &small_steps().to_novel[f.len().trailing_zeros() as usize]);
        return;
    }
    if f.len() == T::BATCH * SMALL_LEN {
        // Each leaf's steps need only its ancestors' divisions done: all of those first.
        divide_above_leaves(be, f);
        run_small_batch(be, f, &small_steps().to_novel[SMALL_LEN.trailing_zeros() as usize]);
        return;
    }
    if composed::<T>(f.len()) {
        taylor(be, f, nonzero, 1, ROW);
        rows_to_novel(be, f, nonzero.div_ceil(ROW));
        return;
    }
    divide_then_halves(be, f, 1, nonzero, &|half, nonzero| to_novel_below(be, half, nonzero));
}

/// Novel basis → monomial basis, in place.
fn from_novel(be: Backend, f: &mut [u64]) {
    if f.len() <= 2 {
        return;
    }
    if f.len() <= SMALL_LEN {
        run_small(f, &small_steps().from_novel[f.len().trailing_zeros() as usize]);
        return;
    }
    if f.len() == BATCH * SMALL_LEN {
        // The leaves' steps come before any multiplication above them.
        run_small_batch(be, f, &small_steps().from_novel[SMALL_LEN.trailing_zeros() as usize]);
        multiply_above_leaves(be, f);
        return;
    }
    if composed::<u64>(f.len()) {
        rows_from_novel(be, f);
        untaylor(be, f, 1, ROW);
        return;
    }
    let i = f.len().trailing_zeros() - 1;
    let (lo, hi) = f.split_at_mut(f.len() / 2);
    if lo.len() >= PARALLEL_LEN {
        rayon::join(|| from_novel(be, lo), || from_novel(be, hi));
    } else {
        from_novel(be, lo);
        from_novel(be, hi);
    }
    multiply_by_subspace_poly(be, f, i);
}

/// The rows of the composed basis changes: the digits of a polynomial in `T = s_8(x) = x^256 + x`.
///
/// The novel basis factors through `T`: `s_(a+b) = s_a ∘ s_b` (the coefficient of `x^(2^m)` on
/// either side is `C(a+b, m)` mod 2, by Lucas's theorem and Vandermonde's identity), so
/// `s_(8+i) = s_i(T)`, and for `k = 256·h + l < 2^16` the basis polynomial `X_k(x)` is
/// `X_l(x)·X_h(T)`. A polynomial of `2^K` coefficients, `8 < K <= 16`, changes basis in three
/// steps: its expansion `Σ_j h_j(x)·T^j` (`deg h_j < 256`, row `j`), the change of the rows, as
/// coefficients of a polynomial in `T`, to the novel basis in `T` (itself composed, [`SUPER`]),
/// then that of each row in `x`. The expansion divides by the binomials `T^(2^m) = x^(256·2^m) +
/// x^(2^m)`, one addition a level where `s_i` takes `2^popcount(i) − 1`: about 20 additions a
/// coefficient at `2^16` instead of 32.5, and of the levels that reach past the first-level cache,
/// the expansion's cost one each and the rows' few (Gao and Mateer 2010 expand in `x^2 + x`
/// likewise).
const ROW: usize = 1 << 8;

/// Whether a basis change of `len` coefficients runs composed ([`ROW`]): above a batch of leaves
/// (its rows then fill whole batches) and up to `2^16` (beyond, `s_i` for `i >= 16` is not a
/// polynomial in `s_8`; the wider levels divide as before down to it).
fn composed<T: Piece>(len: usize) -> bool {
    len > group_len::<T>() && len <= ROW * ROW
}

/// The rows the composed basis changes finish together: four (their steps above the leaves
/// interleaved, see [`above_leaves`]), whole batches of leaves.
fn group_len<T: Piece>() -> usize {
    (4 * ROW).max(T::BATCH * SMALL_LEN)
}

/// Runs both closures, on two threads when `parallel`.
fn join_if(parallel: bool, a: impl FnOnce() + Send, b: impl FnOnce() + Send) {
    if parallel {
        rayon::join(a, b);
    } else {
        a();
        b();
    }
}

/// `f` (at least a digit, a power of two; zero from `nonzero` on) replaced by its digits in `T`:
/// `f = Σ_j T^j·h_j`, digit `j` (`digit` elements) holding `h_j`, where `T = u^r + u` for
/// `u` the polynomial's variable, whose coefficients are `unit` elements each, and `r =
/// digit / unit` (a power of two; [`ROW`]: `u = x`, `r = 256`; [`SUPER`]: `u = T`, `r = 16`).
/// The top level divides by `T^(d/digit) = u^(r·d/digit) + u^(d/digit)`, in elements `x^d +
/// x^(d/r)` with `d` half the length; each half is expanded the same way.
fn taylor<T: Piece>(be: Backend, f: &mut [T], nonzero: usize, unit: usize, digit: usize) {
    let d = f.len() / 2;
    if f.len() <= digit || nonzero == 0 {
        return;
    }
    if nonzero <= d {
        taylor(be, &mut f[..d], nonzero, unit, digit);
        return;
    }
    let e = d / (digit / unit);
    run_steps(be, f, |emit| sparse_steps(d, std::iter::once(e), d - e, false, below(nonzero, emit)));
    let (lo, hi) = f.split_at_mut(d);
    join_if(d >= PARALLEL_LEN, || taylor(be, lo, d, unit, digit), || taylor(be, hi, nonzero - d, unit, digit));
}

/// Inverse of [`taylor`]: the polynomial from its digits.
fn untaylor(be: Backend, f: &mut [u64], unit: usize, digit: usize) {
    let d = f.len() / 2;
    if f.len() <= digit {
        return;
    }
    let (lo, hi) = f.split_at_mut(d);
    join_if(d >= PARALLEL_LEN, || untaylor(be, lo, unit, digit), || untaylor(be, hi, unit, digit));
    let e = d / (digit / unit);
    run_steps(be, f, |emit| sparse_steps(d, std::iter::once(e), d - e, true, emit));
}

/// Rows in a digit of the rows' own composed change: with `T` as in [`ROW`], the rows (digits in
/// `T`) of more than sixteen are expanded in `S = s_4(T) = T^16 + T` (`s_(4+i)(T) = s_i(S)`), the
/// blocks of sixteen changed as coefficients of a polynomial in `S`, then the rows of each block
/// in `T`: 7 XORs a coefficient for 256 rows, against 9.5 dividing by each `s_j(T)`.
const SUPER: usize = 16;

/// `emit` for steps counted in units of `unit` elements.
fn in_units(unit: usize, emit: &mut dyn FnMut(usize, usize, usize)) -> impl FnMut(usize, usize, usize) + '_ {
    move |dst, src, len| emit(dst * unit, src * unit, len * unit)
}

/// The division of `f`'s units (`unit` elements each), as coefficients of a polynomial, by
/// `s_j` of its variable (`f` holds `2^(j+1)` units, zero from unit `nonzero_units` on), or its
/// inverse.
fn units_by_subspace_poly<T: Piece>(be: Backend, f: &mut [T], unit: usize, nonzero_units: usize, divide: bool) {
    let j = (f.len() / unit).trailing_zeros() - 1;
    if divide {
        run_steps(be, f, |emit| division_steps(j, in_units(unit, &mut below(nonzero_units * unit, emit))));
    } else {
        run_steps(be, f, |emit| multiplication_steps(j, in_units(unit, emit)));
    }
}

/// The division of `f`'s rows by `s_j(T)`, or its inverse ([`units_by_subspace_poly`]).
fn rows_by_subspace_poly<T: Piece>(be: Backend, f: &mut [T], nonzero_rows: usize, divide: bool) {
    units_by_subspace_poly(be, f, ROW, nonzero_rows, divide);
}

/// The changes in `T` among the few rows a group finishes together ([`group_len`]; forward:
/// divisions from the widest, backward: multiplications up to it).
fn group_rows<T: Piece>(be: Backend, f: &mut [T], forward: bool) {
    let rows = f.len() / ROW;
    if rows <= 1 {
        return;
    }
    if forward {
        rows_by_subspace_poly(be, f, rows, true);
    }
    let (lo, hi) = f.split_at_mut(f.len() / 2);
    group_rows(be, lo, forward);
    group_rows(be, hi, forward);
    if !forward {
        rows_by_subspace_poly(be, f, rows, false);
    }
}

/// The digits `f` holds ([`taylor`]; zero from row `nonzero_rows` on) to the novel basis: the
/// rows' change in `T`, then each row's in `x`. Depth first: a batch of rows finishes its
/// changes while it is in the first-level cache.
fn rows_to_novel<T: Piece>(be: Backend, f: &mut [T], nonzero_rows: usize) {
    if f.len() > SUPER * ROW {
        taylor(be, f, nonzero_rows * ROW, ROW, SUPER * ROW);
        supers_to_novel(be, f, nonzero_rows.div_ceil(SUPER));
    } else {
        rows_to_novel_directly(be, f, nonzero_rows);
    }
}

/// The blocks of [`SUPER`] rows `f` holds (zero from block `nonzero` on), as coefficients of a
/// polynomial in `S`, to the novel basis; then each block's rows.
fn supers_to_novel<T: Piece>(be: Backend, f: &mut [T], nonzero: usize) {
    const BLOCK: usize = SUPER * ROW;
    if nonzero == 0 {
        return;
    }
    if f.len() == BLOCK {
        rows_to_novel_directly(be, f, SUPER);
        return;
    }
    divide_then_halves(be, f, BLOCK, nonzero, &|half, nonzero| supers_to_novel(be, half, nonzero));
}

/// One level of a change to the novel basis on `f`'s units (`unit` elements each, zero from
/// unit `nonzero` on): the division by `s_j` of the units' variable, then `each` on the halves
/// (on both cores when they are large) with their own counts of nonzero units. A polynomial of
/// degree below half the length is its own remainder: only its lower half is changed.
fn divide_then_halves<T: Piece>(
    be: Backend,
    f: &mut [T],
    unit: usize,
    nonzero: usize,
    each: &(dyn Fn(&mut [T], usize) + Sync),
) {
    let (half, units) = (f.len() / 2, f.len() / unit);
    if nonzero <= units / 2 {
        each(&mut f[..half], nonzero);
        return;
    }
    units_by_subspace_poly(be, f, unit, nonzero, true);
    let (lo, hi) = f.split_at_mut(half);
    join_if(half >= PARALLEL_LEN, || each(lo, units / 2), || each(hi, nonzero - units / 2));
}

/// Inverse of [`supers_to_novel`].
fn supers_from_novel(be: Backend, f: &mut [u64]) {
    if f.len() == SUPER * ROW {
        rows_from_novel_directly(be, f);
        return;
    }
    let (lo, hi) = f.split_at_mut(f.len() / 2);
    join_if(lo.len() >= PARALLEL_LEN, || supers_from_novel(be, lo), || supers_from_novel(be, hi));
    units_by_subspace_poly(be, f, SUPER * ROW, f.len() / (SUPER * ROW), false);
}

/// [`rows_to_novel`] by dividing by each `s_j(T)`.
fn rows_to_novel_directly<T: Piece>(be: Backend, f: &mut [T], nonzero_rows: usize) {
    if nonzero_rows == 0 {
        return;
    }
    if f.len() == group_len::<T>() {
        group_rows(be, f, true);
        let log_rows = (f.len() / ROW).trailing_zeros() as usize;
        super::xor::xor_steps(be, f, &above_leaves().rows_divide[log_rows]);
        for batch in f.chunks_exact_mut(T::BATCH * SMALL_LEN) {
            run_small_batch(be, batch, &small_steps().to_novel[SMALL_LEN.trailing_zeros() as usize]);
        }
        return;
    }
    divide_then_halves(be, f, ROW, nonzero_rows, &|half, nonzero| rows_to_novel_directly(be, half, nonzero));
}

/// Inverse of [`rows_to_novel`].
fn rows_from_novel(be: Backend, f: &mut [u64]) {
    if f.len() > SUPER * ROW {
        supers_from_novel(be, f);
        untaylor(be, f, ROW, SUPER * ROW);
    } else {
        rows_from_novel_directly(be, f);
    }
}

/// Inverse of [`rows_to_novel_directly`].
fn rows_from_novel_directly(be: Backend, f: &mut [u64]) {
    if f.len() == group_len::<u64>() {
        for batch in f.chunks_exact_mut(BATCH * SMALL_LEN) {
            run_small_batch(be, batch, &small_steps().from_novel[SMALL_LEN.trailing_zeros() as usize]);
        }
        let log_rows = (f.len() / ROW).trailing_zeros() as usize;
        super::xor::xor_steps(be, f, &above_leaves().rows_multiply[log_rows]);
        group_rows(be, f, false);
        return;
    }
    let half = f.len() / 2;
    let (lo, hi) = f.split_at_mut(half);
    join_if(half >= PARALLEL_LEN, || rows_from_novel_directly(be, lo), || rows_from_novel_directly(be, hi));
    rows_by_subspace_poly(be, f, f.len() / ROW, false);
}

/// Splits a polynomial into 32-bit pieces, one per element of `out` (zero past the end).
fn segment(a: &[u64], out: &mut [u64]) {
    out.fill(0);
    for (i, &w) in a.iter().enumerate() {
        out[2 * i] = w & 0xFFFF_FFFF;
        out[2 * i + 1] = w >> 32;
    }
}

/// As `segment(a, values[..small])` then `to_novel` on them, with the basis change on 32-bit
/// lanes: the pieces are segmented into the top `small / 2` words of `values` as `small` 32-bit
/// elements, changed in basis there, and widened into `values[..small]`. (Large transforms: the
/// basis change is as much work as the butterflies and it runs at the memory's speed.)
fn segment_to_novel_narrow(be: Backend, a: &[u64], values: &mut [u64], small: usize) {
    let len = values.len();
    debug_assert!(2 * a.len() <= small);
    // The unsafe accesses below rely on this (true of every caller's `small`).
    assert!(small <= len && small.is_multiple_of(2), "narrow basis change past the buffer");
    let base = len - small / 2;
    {
        let top = &mut values[base..];
        // SAFETY: `top` is `small / 2` initialised u64s, exclusively borrowed; as u32s (smaller
        // alignment, every bit pattern valid) they are `small` elements in the same bytes.
        let narrow: &mut [u32] = unsafe { std::slice::from_raw_parts_mut(top.as_mut_ptr().cast::<u32>(), small) };
        narrow.fill(0);
        for (pair, &w) in narrow.chunks_exact_mut(2).zip(a) {
            pair[0] = w as u32;
            pair[1] = (w >> 32) as u32;
        }
        to_novel_below(be, narrow, 2 * a.len());
    }
    let words = values.as_mut_ptr();
    // SAFETY: element i (u32) sits in word base + i/2 >= i/2 + len/2; in ascending order, writing
    // word i overwrites elements 2(i − base) and 2(i − base) + 1 only when i >= base, and those
    // are at most i (as base >= len/2 > i/2), so already read: every element is read before its
    // word is written. All accesses go through `words`, within `values`.
    unsafe {
        let narrow = words.add(base).cast::<u32>().cast_const();
        for i in 0..small {
            let v = narrow.add(i).read();
            words.add(i).write(u64::from(v));
        }
    }
}

/// Coefficients `skip .. skip + nbits` of the sum of the 63-bit pieces at 32-bit offsets, into
/// `out` (its first `words_for(nbits)` words; the bits past `nbits` cleared): each output word is
/// two words of the sum shifted, each of those its own two pieces and the top of the one below,
/// so long runs split across cores. Pieces below `skip.saturating_sub(62) / 32` are not read for
/// any wanted bit (piece `k` holds coefficients `32k .. 32k + 62`).
fn unsegment_bits(pieces: &[u64], skip: usize, nbits: usize, out: &mut [u64]) {
    let piece = |k: usize| pieces.get(k).copied().unwrap_or(0);
    let word = |w: usize| {
        let below = if w == 0 { 0 } else { piece(2 * w - 1) >> 32 };
        piece(2 * w) ^ (piece(2 * w + 1) << 32) ^ below
    };
    let (first, shift) = (skip / 64, skip % 64);
    let run = |start: usize, out: &mut [u64]| {
        for (w, o) in (start..).zip(out.iter_mut()) {
            *o = if shift == 0 { word(w) } else { (word(w) >> shift) | (word(w + 1) << (64 - shift)) };
        }
    };
    let out = &mut out[..crate::bits::words_for(nbits)];
    const RUN: usize = 1 << 14;
    if out.len() >= 4 * RUN {
        use rayon::prelude::*;
        out.par_chunks_mut(RUN).enumerate().for_each(|(c, out)| run(first + c * RUN, out));
    } else {
        run(first, out);
    }
    crate::bits::mask_tail(out, nbits);
}

/// Adds up 63-bit pieces at 32-bit offsets into `out`.
fn unsegment(pieces: &[u64], out: &mut [u64]) {
    out.fill(0);
    for (k, &p) in pieces.iter().enumerate() {
        let word = k / 2;
        if k % 2 == 0 {
            if let Some(o) = out.get_mut(word) {
                *o ^= p;
            }
        } else {
            if let Some(o) = out.get_mut(word) {
                *o ^= p << 32;
            }
            if let Some(o) = out.get_mut(word + 1) {
                *o ^= p >> 32;
            }
        }
    }
}

/// One factor, segmented and transformed: reusable in many products of the same length.
pub struct Transformed {
    values: Wiped,
}

impl Transformed {
    /// Transforms `a` to length `len` (a power of two, at least twice the pieces of any product it
    /// will enter; see [`len_for`]).
    ///
    /// A factor shorter than the transform has its top levels' upper halves zero, which makes
    /// those levels copies: its novel-basis coefficients are computed once at the smallest
    /// sufficient size and transformed separately on each coset of that subspace.
    pub fn new(be: Backend, a: &[u64], len: usize) -> Self {
        let mut values = scratch(len);
        transform_into(be, a, &mut values);
        Transformed { values }
    }

    /// The transformed values.
    pub fn values(&self) -> &[u64] {
        &self.values
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the transform is empty.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Whether `len` is a transform length: a power of two (the points of `V_K`), or three times one,
/// `3·2^(K−1)`, a truncated transform on the first `3·2^(K−1)` points `ω_u`, `V_K ∪ (β_K +
/// V_(K−1))` — a quarter fewer than the next power of two, for products whose length lies
/// between (their values there determine them, a polynomial of fewer coefficients than points).
pub fn is_transform_len(len: usize) -> bool {
    len.is_power_of_two() || (len.is_multiple_of(3) && (len / 3).is_power_of_two() && len >= 6)
}

/// The butterfly levels a transform of `len` points runs (`K` for `2^K` and for `3·2^(K−1)`).
pub fn levels(len: usize) -> u32 {
    if len.is_power_of_two() {
        len.trailing_zeros()
    } else {
        len.next_power_of_two().trailing_zeros() - 1
    }
}

/// `acc[i] ^= w·a[i]` in GF(2^64) (the two halves of a level's butterfly apart: the truncated
/// transforms keep only one of its outputs).
fn scale_accumulate(be: Backend, acc: &mut [u64], a: &[u64], w: u64) {
    use rayon::prelude::*;
    const RUN: usize = 1 << 12;
    let ws = [w; RUN];
    let run = |(acc, a): (&mut [u64], &[u64])| gf64::mul_accumulate(be, acc, a, &ws[..a.len()]);
    if acc.len() >= PARALLEL_LEN {
        acc.par_chunks_mut(RUN).zip(a.par_chunks(RUN)).for_each(run);
    } else {
        acc.chunks_mut(RUN).zip(a.chunks(RUN)).for_each(run);
    }
}

/// Transforms `a` into `values` (its length is the transform length, every element overwritten),
/// as [`Transformed::new`] does: its values at the points `ω_u`, `u < values.len()`, a power of
/// two or, truncated, three times one ([`is_transform_len`]; then `a` has at most `2^K` pieces).
pub fn transform_into(be: Backend, a: &[u64], values: &mut [u64]) {
    let len = values.len();
    debug_assert!(is_transform_len(len) && 2 * a.len() <= len);
    let small = (2 * a.len()).next_power_of_two().min(len.next_power_of_two());
    if !len.is_multiple_of(small) {
        // A truncated transform of a factor of 2^K pieces: the values on V_K, and those on
        // β_K + V_(K−1), where the level of block 1 (twiddle W[1]) leaves `lo + W[1]·hi`.
        let quarter = len / 3;
        assert!(small == 2 * quarter, "a factor too long for the truncated transform");
        novel_pieces(be, a, &mut values[..small], small);
        let (full, third) = values.split_at_mut(small);
        third.copy_from_slice(&full[..quarter]);
        scale_accumulate(be, third, &full[quarter..], twiddle(tables(), 1));
        let t = tables();
        if len >= PARALLEL_LEN {
            rayon::join(|| fft(be, t, full, 0), || fft(be, t, third, 2));
        } else {
            fft(be, t, full, 0);
            fft(be, t, third, 2);
        }
        return;
    }
    novel_pieces(be, a, values, small);
    let (first, rest) = values.split_at_mut(small);
    for coset in rest.chunks_exact_mut(small) {
        coset.copy_from_slice(first);
    }
    let t = tables();
    // Cosets in parallel only when they are many, small, and worth a thread's wake-up.
    if len < PARALLEL_LEN || small >= PARALLEL_LEN {
        for (c, coset) in values.chunks_exact_mut(small).enumerate() {
            fft(be, t, coset, c);
        }
    } else {
        use rayon::prelude::*;
        values.par_chunks_mut(small).enumerate().for_each(|(c, coset)| fft(be, t, coset, c));
    }
}

/// Basis changes of segmented factors of at least this many pieces run on 32-bit lanes: beyond
/// L1 they cost their memory traffic, which the narrow lanes halve (5 % of a 2^20-bit one-shot
/// product's CPU time, whose input factor has 2^15 pieces).
const NARROW_LEN: usize = 1 << 14;

/// The novel-basis coefficients of `a`'s pieces into `values[..small]` (`values` at least `small`
/// long: the large basis changes use its top as 32-bit scratch).
fn novel_pieces(be: Backend, a: &[u64], values: &mut [u64], small: usize) {
    if small >= NARROW_LEN {
        segment_to_novel_narrow(be, a, values, small);
    } else {
        segment(a, &mut values[..small]);
        to_novel_below(be, &mut values[..small], 2 * a.len());
    }
}

/// A sum of products held in the transform domain; [`Accumulator::finish`] turns it back into a
/// polynomial. Summing before the single inverse transform is what makes a split product cheap.
pub struct Accumulator {
    values: Wiped,
}

impl Accumulator {
    /// An empty sum of transform length `len`.
    pub fn new(len: usize) -> Self {
        Accumulator { values: scratch(len) }
    }

    /// An empty sum in a buffer of zeros (its length is the transform length).
    pub fn in_buffer(values: Wiped) -> Self {
        debug_assert!(values.iter().all(|&v| v == 0));
        Accumulator { values }
    }

    /// Adds the product of two transformed factors (both of this length).
    pub fn add_product(&mut self, be: Backend, a: &Transformed, b: &Transformed) {
        self.add_product_values(be, a, &b.values);
    }

    /// Adds the product of a transformed factor with transformed values (see [`transform_into`]).
    pub fn add_product_values(&mut self, be: Backend, a: &Transformed, b: &[u64]) {
        self.add_product_of_values(be, &a.values, b);
    }

    /// Adds the product of two factors' transformed values (see [`transform_into`]); long
    /// transforms split the pointwise products across cores.
    pub fn add_product_of_values(&mut self, be: Backend, a: &[u64], b: &[u64]) {
        if self.values.len() >= FUSE_LEN {
            use rayon::prelude::*;
            const RUN: usize = 1 << 14;
            self.values
                .par_chunks_mut(RUN)
                .zip(a.par_chunks(RUN).zip(b.par_chunks(RUN)))
                .for_each(|(acc, (a, b))| gf64::mul_accumulate(be, acc, a, b));
        } else {
            gf64::mul_accumulate(be, &mut self.values, a, b);
        }
    }

    /// The sum as a polynomial over GF(2): its coefficients `skip .. skip + nbits` into `out`
    /// (`words_for(nbits)` words, the bits past `nbits` cleared), the buffer wiped when dropped
    /// (a sum made once: nothing zeroes it for reuse). Only the pieces that reach the wanted
    /// coefficients are computed exactly.
    pub fn finish_range(mut self, be: Backend, skip: usize, nbits: usize, out: &mut [u64]) {
        let first = skip.saturating_sub(62).div_ceil(32);
        let len = self.values.len();
        if len.is_power_of_two() && len > BATCH * SMALL_LEN && first + 1 >= len / 2 {
            // Only the upper half's change of basis is wanted (see `invert_from`), and of the
            // multiplication by `s_(K−1)` after it only the pieces that reach the wanted bits.
            ifft(be, tables(), &mut self.values, 0);
            from_novel(be, &mut self.values[len / 2..]);
            // No piece at all when the wanted bits lie past the transform's.
            let first = first.min(len);
            let last = (skip + nbits).div_ceil(32).clamp(first, len);
            let pieces = top_product_range(be, &self.values, first, last);
            unsegment_bits(&pieces, skip - 32 * first, nbits, out);
            return;
        }
        self.invert_from(be, first);
        unsegment_bits(&self.values, skip, nbits, out);
    }

    /// The inverse transform and change to the monomial basis: the sum's 63-bit pieces.
    fn invert(&mut self, be: Backend) {
        self.invert_from(be, 0);
    }

    /// As [`Accumulator::invert`] where only the pieces from `first` on are wanted (the others
    /// are left unspecified). The change to the monomial basis of `2^K` novel coefficients is
    /// that of each half, then the multiplication by `s_(K−1)`, which adds the upper half into
    /// the lower and never the lower into anything; the lower half's top monomial coefficient is
    /// its top novel one (`X_(2^(K−1)−1)` is the only basis polynomial of that degree, and monic).
    /// So when the wanted pieces start at or above that top, the lower half's change is skipped
    /// ([`Accumulator::finish_range`] then makes only the wanted pieces of the multiplication):
    /// a sixth of the inverse's basis-change work for the truncated transforms of the one-shot
    /// products at odd sizes, a quarter at even ones.
    fn invert_from(&mut self, be: Backend, first: usize) {
        if self.values.len().is_power_of_two() {
            ifft(be, tables(), &mut self.values, 0);
            from_novel(be, &mut self.values);
        } else {
            interpolate_truncated(be, &mut self.values, first);
        }
    }

    /// The sum as a polynomial over GF(2): its first `out.len()` words. Returns the buffer,
    /// zeroed, for reuse.
    pub fn finish(mut self, be: Backend, out: &mut [u64]) -> Wiped {
        self.invert(be);
        unsegment(&self.values, out);
        self.values.fill(0);
        self.values
    }
}

/// Pieces `first .. last` of `low + s_(K−1)·high` for `values` holding, in its halves of
/// `d = 2^(K−1)`, the novel coefficients of `low` (only the top one read: it is also its top
/// monomial one) and the monomial ones of `high`, with `first >= d − 1`. The multiplication in
/// place (`multiply_by_subspace_poly`) makes every piece, on one core; the one-shot products want
/// a quarter of them. Piece `p` is `high[p − d]` (`values[p]`) from `d` up, plus `high[p − e]` for
/// each lower term `x^e` of `s_(K−1)` in reach: a few slices added, split between the cores.
fn top_product_range(be: Backend, values: &[u64], first: usize, last: usize) -> Wiped {
    let d = values.len() / 2;
    debug_assert!(first + 1 >= d && first <= last && last <= 2 * d);
    let mut out = scratch(last - first);
    let (terms, _) = lower_terms(d.trailing_zeros());
    let terms: Vec<usize> = terms.collect();
    // Pieces from `from` on, into `part`.
    let fill = |part: &mut [u64], from: usize| {
        let to = from + part.len();
        if from < d {
            part[0] = values[d - 1];
        }
        let lead = from.max(d);
        if lead < to {
            xor_into(be, &mut part[lead - from..], &values[lead..to]);
        }
        for &e in &terms {
            // p − e within the lower half's index range: p in [e, d + e).
            let (lo, hi) = (from.max(e), to.min(d + e));
            if lo < hi {
                xor_into(be, &mut part[lo - from..hi - from], &values[d + lo - e..d + hi - e]);
            }
        }
    };
    if out.len() >= PARALLEL_LEN / 4 {
        let half = out.len() / 2;
        let (a, b) = out.split_at_mut(half);
        rayon::join(|| fill(a, first), || fill(b, first + half));
    } else {
        fill(&mut out, first);
    }
    out
}

/// The inverse of a truncated transform ([`transform_into`]) for a polynomial of fewer than
/// `values.len() = 3·2^(K−1)` coefficients, in place. Its novel coefficients on `2^(K+1)` are
/// `g0, g1, g2, 0` (quarters of `q = 2^(K−1)`); the full transform's top level (twiddle `W[0] =
/// 0`) gives `g0, g1` on `V_K` and `g0 + g2, g1` on the coset `β_K + V_K`, whose level (twiddle
/// `W[1]`) leaves `g0 + g2 + W[1]·g1` on `β_K + V_(K−1)`. So the inverse transforms of the two
/// parts give `g0, g1` and that sum, from which `g2`; then the change back to the monomial basis,
/// with the zero quarter left out, and that of `g0` too when only pieces from `first >= q − 1`
/// on are wanted (see [`Accumulator::invert_from`]: the others are left unspecified).
fn interpolate_truncated(be: Backend, values: &mut [u64], first: usize) {
    let quarter = values.len() / 3;
    let t = tables();
    let (full, third) = values.split_at_mut(2 * quarter);
    if 3 * quarter >= PARALLEL_LEN {
        rayon::join(|| ifft(be, t, full, 0), || ifft(be, t, third, 2));
    } else {
        ifft(be, t, full, 0);
        ifft(be, t, third, 2);
    }
    xor_into(be, third, &full[..quarter]);
    scale_accumulate(be, third, &full[quarter..], twiddle(t, 1));
    // from_novel on 2^(K+1): both halves, then the multiplication by s_K. The upper half is
    // g2 and zeros: its change is g2's (the multiplication by s_(K−1) only adds zeros). The
    // lower half's is that of g0 and of g1, then the multiplication by s_(K−1).
    let skip_g0 = first + 1 >= quarter && quarter > BATCH * SMALL_LEN;
    let lower = if skip_g0 { &mut full[quarter..] } else { &mut *full };
    if 3 * quarter >= PARALLEL_LEN {
        rayon::join(|| from_novel(be, lower), || from_novel(be, third));
    } else {
        from_novel(be, lower);
        from_novel(be, third);
    }
    if skip_g0 {
        multiply_by_subspace_poly(be, full, quarter.trailing_zeros());
    }
    multiply_by_subspace_poly_truncated(be, values, (2 * quarter).trailing_zeros());
}

/// [`multiply_by_subspace_poly`] on the first `f.len()` of `2^(i+1)` coefficients, those past
/// it zero: the steps reading only zeros are left out, the others cut at `f.len()`. Exact when
/// `f.len() >= 2^i + 2^(i−1)`: the steps write below `2^i` plus the highest lower term of `s_i`,
/// at most `2^(i−1)`, so the zeros stay zero.
fn multiply_by_subspace_poly_truncated(be: Backend, f: &mut [u64], i: u32) {
    let len = f.len();
    debug_assert!(len <= 2 << i && 2 * len >= 3 << i);
    let steps = |emit: &mut dyn FnMut(usize, usize, usize)| {
        multiplication_steps(i, |dst, src, run| {
            if src < len {
                emit(dst, src, run.min(len - src));
            }
        })
    };
    run_steps(be, f, steps);
}

/// The full product `a·b` (of `a.len() + b.len()` words) by the additive FFT, into `out`.
pub fn mul(be: Backend, a: &[u64], b: &[u64], out: &mut [u64]) {
    debug_assert_eq!(out.len(), a.len() + b.len());
    if a.is_empty() || b.is_empty() {
        out.fill(0);
        return;
    }
    let len = len_for(a.len(), b.len());
    let (ta, tb) = rayon::join(|| Transformed::new(be, a, len), || Transformed::new(be, b, len));
    let mut sum = Accumulator::new(len);
    sum.add_product(be, &ta, &tb);
    drop((ta, tb));
    sum.finish(be, out);
}

/// The transform length for products of an `a_words` factor with a `b_words` factor: a power of
/// two no smaller than their product's number of 32-bit pieces.
pub fn len_for(a_words: usize, b_words: usize) -> usize {
    (2 * (a_words + b_words) - 1).next_power_of_two().max(2)
}

/// The pieces `1 .. reach` that a product of `pieces` pieces leaves wrong when the transform of
/// length `len = 2^K` is shorter: the inverse transform gives the product modulo the subspace
/// polynomial `s_K(x) = x^len + Σ_{j ⊊ K} x^(2^j)` (bits of `j` a subset of those of `K`), so
/// piece `k >= len` is added into pieces `k − len + 2^j` instead. The highest lower term is
/// `2^(K − lowest bit of K)`: `x` alone when `K` is a power of two, where the product wraps
/// almost cyclically. `0` when the product fits.
pub fn wrapped_reach(len: usize, pieces: usize) -> usize {
    debug_assert!(len.is_power_of_two());
    if pieces <= len {
        return 0;
    }
    let k = len.trailing_zeros() as usize;
    pieces - len + (1 << (k & k.wrapping_sub(1)))
}

/// The shortest transform for a middle product: coefficients `skip .. skip + want` (bits) of the
/// product of an `a_words` factor with a `b_words` factor. A transform shorter than the product
/// serves when what it wraps ([`wrapped_reach`]) stays below the pieces the wanted bits are made
/// of (piece `k` holds bits `32k .. 32k + 63`) and those pieces lie below its length.
pub fn len_for_middle(a_words: usize, b_words: usize, skip: usize, want: usize) -> usize {
    let full = len_for(a_words, b_words);
    let pieces = 2 * (a_words + b_words) - 1;
    let (first, last) = (skip.saturating_sub(62).div_ceil(32), (skip + want - 1) / 32);
    let mut len = (2 * a_words.max(b_words)).max(last + 1).next_power_of_two().max(2);
    while len < full && wrapped_reach(len, pieces) > first {
        len *= 2;
    }
    len.min(full)
}

/// The truncated transform length `3·2^(K−1)` ([`is_transform_len`]) for products of an
/// `a_words` factor with a `b_words` factor, where it is shorter than [`len_for`]'s: each factor
/// has at most `2^K` pieces and the product fewer pieces than points, so nothing wraps.
pub fn truncated_len_for(a_words: usize, b_words: usize) -> Option<usize> {
    let pieces = 2 * (a_words + b_words) - 1;
    let mut quarter = a_words.max(b_words).next_power_of_two().max(2);
    while 3 * quarter < pieces {
        quarter *= 2;
    }
    Some(3 * quarter).filter(|&len| len < len_for(a_words, b_words))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gf2::backend;
    use crate::gf2::karatsuba;
    use proptest::prelude::*;

    #[test]
    fn the_basis_is_a_cantor_basis() {
        let t = tables();
        assert_eq!(t.beta[0], 1);
        for i in 1..64 {
            assert_eq!(gf64::mul_portable(t.beta[i], t.beta[i]) ^ t.beta[i], t.beta[i - 1], "β_{i}");
        }
        // Linearly independent over GF(2): elimination keeps 64 pivots.
        let mut rows = t.beta.to_vec();
        let mut rank = 0;
        for bit in (0..64).rev() {
            if let Some(p) = (rank..64).find(|&r| (rows[r] >> bit) & 1 == 1) {
                rows.swap(rank, p);
                for r in 0..64 {
                    if r != rank && (rows[r] >> bit) & 1 == 1 {
                        rows[r] ^= rows[rank];
                    }
                }
                rank += 1;
            }
        }
        assert_eq!(rank, 64);
    }

    /// Evaluates a polynomial given in the monomial basis at x (Horner).
    fn eval(coeffs: &[u64], x: u64) -> u64 {
        coeffs.iter().rev().fold(0, |acc, &c| gf64::mul_portable(acc, x) ^ c)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn the_transform_evaluates_at_the_subspace_points(
            // Up to 512 points: the kernels on blocks of 16 and 64 and the two-level passes.
            coeffs in proptest::collection::vec(any::<u64>(), 1..=512),
        ) {
            let len = coeffs.len().next_power_of_two();
            let mut f = coeffs.clone();
            f.resize(len, 0);
            let t = tables();
            for be in backend::available() {
                let mut v = f.clone();
                to_novel(be, &mut v);
                fft(be, t, &mut v, 0);
                for (u, &value) in v.iter().enumerate() {
                    let point = (0..len.trailing_zeros()).filter(|i| (u >> i) & 1 == 1).fold(0, |acc, i| acc ^ t.beta[i as usize]);
                    prop_assert_eq!(value, eval(&coeffs, point), "u = {}, {:?}", u, be);
                }
                ifft(be, t, &mut v, 0);
                from_novel(be, &mut v);
                prop_assert_eq!(&v, &f);
            }
        }

        #[test]
        fn fft_products_match_karatsuba(
            a in proptest::collection::vec(any::<u64>(), 1..400),
            b in proptest::collection::vec(any::<u64>(), 1..400),
        ) {
            let mut expect = vec![0u64; a.len() + b.len()];
            karatsuba::karatsuba(Backend::Portable, &a, &b, &mut expect);
            for be in backend::available() {
                let mut out = vec![u64::MAX; a.len() + b.len()];
                mul(be, &a, &b, &mut out);
                prop_assert_eq!(&out, &expect, "{:?}", be);
            }
        }
    }

    /// The general recursion, without the recorded small steps.
    fn change_basis_generally(be: Backend, f: &mut [u64], forward: bool) {
        if f.len() <= 2 {
            return;
        }
        let i = f.len().trailing_zeros() - 1;
        if forward {
            divide_by_subspace_poly(be, f, i);
        }
        let (lo, hi) = f.split_at_mut(f.len() / 2);
        change_basis_generally(be, lo, forward);
        change_basis_generally(be, hi, forward);
        if !forward {
            multiply_by_subspace_poly(be, f, i);
        }
    }

    #[test]
    fn recorded_small_basis_changes_match_the_general_recursion() {
        for len in [1usize, 2, 4, 8, 16, 32, 64, 128, 512, 1024, 2048, 4096, 1 << 13, 1 << 15, 1 << 16, 1 << 17] {
            let f: Vec<u64> = (0..len as u64).map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (k << 40)).collect();
            for be in backend::available() {
                for forward in [true, false] {
                    let mut expect = f.clone();
                    change_basis_generally(be, &mut expect, forward);
                    let mut got = f.clone();
                    if forward {
                        to_novel(be, &mut got);
                    } else {
                        from_novel(be, &mut got);
                    }
                    assert_eq!(got, expect, "len {len}, forward {forward}, {be:?}");
                }
            }
        }
    }

    /// A polynomial with zeros from `nonzero` on changes basis as the general recursion changes
    /// it, on 64-bit and 32-bit elements, for zeros from a quarter, a half, three quarters or a
    /// ragged place on, every backend.
    #[test]
    fn basis_changes_that_skip_zeros_match_the_general_recursion() {
        for len in [1usize << 11, 1 << 12, 1 << 16, 1 << 17] {
            for nonzero in [0, 1, len / 4, len / 2, len / 2 + 1, 3 * len / 4, 3 * len / 4 - 37, len - 1, len] {
                let f: Vec<u64> = (0..len as u64)
                    .map(|k| if (k as usize) < nonzero { k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32 } else { 0 })
                    .collect();
                for be in backend::available() {
                    let mut expect = f.clone();
                    change_basis_generally(be, &mut expect, true);
                    let mut wide = f.clone();
                    to_novel_below(be, &mut wide, nonzero);
                    assert!(wide == expect, "len {len}, zeros from {nonzero}, {be:?}");
                    let mut narrow: Vec<u32> = f.iter().map(|&v| v as u32).collect();
                    to_novel_below(be, &mut narrow, nonzero);
                    assert!(
                        narrow.iter().zip(&expect).all(|(&n, &e)| u64::from(n) == e),
                        "32-bit, len {len}, {nonzero}"
                    );
                }
            }
        }
    }

    /// The basis change on 32-bit lanes in the top of the buffer, widened in place, gives the
    /// 64-bit elements of the plain one (every backend; the factor filling the transform or a
    /// quarter of it, and a ragged length).
    #[test]
    fn narrow_basis_changes_match_the_wide_one() {
        // Down to NARROW_LEN pieces, in buffers longer than the pieces and exactly as long.
        let cases = [(1usize << 16, 1usize << 17), (1 << 15, 1 << 18), (40_000, 1 << 17), (1 << 15, 1 << 16)];
        let small_cases = [(1 << 13, 1 << 16), (1 << 13, 1 << 14), (5_000, 1 << 15), (1 << 14, 1 << 15)];
        for (words, len) in cases.into_iter().chain(small_cases) {
            let a: Vec<u64> = (0..words as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i << 50)).collect();
            let small = (2 * a.len()).next_power_of_two().min(len);
            for be in backend::available() {
                let mut expect = vec![0u64; small];
                segment(&a, &mut expect);
                to_novel(be, &mut expect);
                let mut values = vec![u64::MAX; len];
                segment_to_novel_narrow(be, &a, &mut values, small);
                assert!(values[..small] == expect[..], "{words} words, transform {len}, {be:?}");
            }
        }
    }

    /// The large basis changes' reordered steps, their destinations split across threads, add
    /// what the steps one by one in their order add: divisions, multiplications and the
    /// truncated multiplication, on one thread and on four, every backend (at `s_19` the top
    /// chunks are split, at `s_15` not).
    #[test]
    fn blocked_steps_on_threads_match_the_steps_in_order() {
        type Steps<'a> = &'a dyn Fn(&mut dyn FnMut(usize, usize, usize));
        let pool = |threads| rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        let (one, four) = (pool(1), pool(4));
        let (terms, chunk) = lower_terms(19);
        assert!(terms.count() * chunk >= PARALLEL_CHUNK_WORDS, "s_19's chunks are not split");
        for i in [15u32, 19] {
            let len = 2usize << i;
            let f: Vec<u64> = (0..len as u64).map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (k << 40)).collect();
            let plain = |steps: Steps<'_>, f: &mut [u64]| {
                steps(&mut |dst, src, run| {
                    for k in 0..run {
                        f[dst + k] ^= f[src + k];
                    }
                })
            };
            let cut = len - len / 4;
            let truncated = |emit: &mut dyn FnMut(usize, usize, usize)| {
                multiplication_steps(i, |dst, src, run| {
                    if src < cut {
                        emit(dst, src, run.min(cut - src));
                    }
                })
            };
            for be in backend::available() {
                for pool in [&one, &four] {
                    let mut expect = f.clone();
                    plain(&|emit| division_steps(i, emit), &mut expect);
                    let mut got = f.clone();
                    pool.install(|| divide_by_subspace_poly(be, &mut got, i));
                    assert!(got == expect, "division by s_{i}, {be:?}");

                    let mut expect = f.clone();
                    plain(&|emit| multiplication_steps(i, emit), &mut expect);
                    let mut got = f.clone();
                    pool.install(|| multiply_by_subspace_poly(be, &mut got, i));
                    assert!(got == expect, "multiplication by s_{i}, {be:?}");

                    let mut expect = f[..cut].to_vec();
                    plain(&truncated, &mut expect);
                    let mut got = f[..cut].to_vec();
                    pool.install(|| multiply_by_subspace_poly_truncated(be, &mut got, i));
                    assert!(got == expect, "truncated multiplication by s_{i}, {be:?}");
                }
            }
        }
    }

    /// `∏_{u < 2^K} (x − ω_u)` over GF(2^64), from its definition (coefficients, lowest first).
    fn subspace_polynomial(k: u32) -> Vec<u64> {
        let t = tables();
        let mut poly = vec![1u64];
        for u in 0..1usize << k {
            let point = (0..k).filter(|i| (u >> i) & 1 == 1).fold(0, |acc, i| acc ^ t.beta[i as usize]);
            // poly · (x + point)
            let mut next = vec![0u64; poly.len() + 1];
            for (i, &c) in poly.iter().enumerate() {
                next[i + 1] ^= c;
                next[i] ^= gf64::mul_portable(c, point);
            }
            poly = next;
        }
        poly
    }

    /// The subspace polynomials are sparse as the Cantor basis promises, and [`wrapped_reach`]
    /// names the highest of their lower terms.
    #[test]
    fn subspace_polynomials_have_the_promised_terms() {
        for k in 1..=9u32 {
            let poly = subspace_polynomial(k);
            let len = 1usize << k;
            let expect: Vec<u64> = (0..=len)
                .map(|e| u64::from(e.is_power_of_two() && (e.trailing_zeros() & k) == e.trailing_zeros()))
                .collect();
            assert_eq!(poly, expect, "s_{k}");
            let highest_lower = (0..len).rev().find(|&e| poly[e] != 0).expect("x is a term");
            assert_eq!(wrapped_reach(len, len + 5), 5 + highest_lower, "K = {k}");
            assert_eq!(wrapped_reach(len, len), 0);
        }
    }

    /// Products longer than the transform come back as the product modulo the subspace
    /// polynomial (computed from its definition), on every backend.
    #[test]
    fn short_transforms_give_the_product_modulo_the_subspace_polynomial() {
        let clmul32 = |a: u64, b: u64| (0..32).filter(|i| (b >> i) & 1 == 1).fold(0u64, |acc, i| acc ^ (a << i));
        for k in 2..=8u32 {
            let len = 1usize << k;
            let poly = subspace_polynomial(k);
            for (a_words, b_words) in [(len / 2, len / 4), (len / 2, len / 2), (len / 4 + 1, len / 2 - 1)] {
                let a: Vec<u64> = (0..a_words as u64).map(|i| (i + 3).wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
                let b: Vec<u64> = (0..b_words as u64).map(|i| (i + 7).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)).collect();
                let (mut pa, mut pb) = (vec![0u64; 2 * a_words], vec![0u64; 2 * b_words]);
                segment(&a, &mut pa);
                segment(&b, &mut pb);
                let mut c = vec![0u64; pa.len() + pb.len() - 1];
                for (i, &x) in pa.iter().enumerate() {
                    for (j, &y) in pb.iter().enumerate() {
                        c[i + j] ^= clmul32(x, y);
                    }
                }
                // Reduce modulo the monic s_K from the top down.
                for top in (len..c.len()).rev() {
                    let lead = std::mem::take(&mut c[top]);
                    for (e, &coef) in poly[..len].iter().enumerate() {
                        c[top - len + e] ^= gf64::mul_portable(lead, coef);
                    }
                }
                let mut expect = vec![0u64; len / 2 + 1];
                unsegment(&c[..len], &mut expect);
                for be in backend::available() {
                    let mut sum = Accumulator::new(len);
                    sum.add_product(be, &Transformed::new(be, &a, len), &Transformed::new(be, &b, len));
                    let mut out = vec![u64::MAX; len / 2 + 1];
                    sum.finish(be, &mut out);
                    assert_eq!(out, expect, "K = {k}, {a_words}×{b_words} words, {be:?}");
                }
            }
        }
    }

    /// The middle-product length: the wanted pieces lie below it, what it wraps lies below them,
    /// and no shorter power of two has both (checked against the definitions, by brute force).
    #[test]
    fn middle_lengths_are_the_shortest_that_keep_the_wanted_bits() {
        for a_words in [1usize, 3, 24, 100, 777] {
            for b_words in [1usize, 2, 16, 64, 500] {
                let bits = 64 * (a_words + b_words);
                for skip in [0usize, 61, 62, 63, 64, 200, 64 * b_words - 1, 64 * b_words] {
                    for want in [1usize, 64, 64 * a_words.saturating_sub(b_words).max(1)] {
                        if skip + want > bits {
                            continue;
                        }
                        let pieces = 2 * (a_words + b_words) - 1;
                        let first = (0..pieces).find(|&p| 32 * p + 62 >= skip).unwrap_or(pieces);
                        let last = (skip + want - 1) / 32;
                        let fits = |len: usize| {
                            len >= 2 * a_words.max(b_words)
                                && len > last
                                && (pieces <= len || wrapped_reach(len, pieces) <= first)
                        };
                        let len = len_for_middle(a_words, b_words, skip, want);
                        assert!(fits(len) || len == len_for(a_words, b_words), "{a_words} {b_words} {skip} {want}");
                        assert!(len <= len_for(a_words, b_words));
                        assert!(len == 2 || !fits(len / 2), "{a_words} {b_words} {skip} {want}: {len} not shortest");
                    }
                }
            }
        }
    }

    /// The truncated transform gives the values at the first `3·2^(K−1)` points `ω_u` (Horner
    /// on the pieces, from the definition), for factors filling `V_K` (its own path) or shorter
    /// (copied cosets), on every backend.
    #[test]
    fn truncated_transforms_evaluate_at_the_first_points() {
        let t = tables();
        for k in 2..=8u32 {
            let quarter = 1usize << (k - 1);
            let len = 3 * quarter;
            for words in [quarter, (quarter / 2).max(1), 1, quarter.saturating_sub(3).max(1)] {
                let a: Vec<u64> = (0..words as u64).map(|i| (i + 5).wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
                let mut pieces = vec![0u64; 2 * words];
                segment(&a, &mut pieces);
                for be in backend::available() {
                    let mut values = vec![u64::MAX; len];
                    transform_into(be, &a, &mut values);
                    for (u, &value) in values.iter().enumerate() {
                        let point = (0..=k).filter(|i| (u >> i) & 1 == 1).fold(0, |acc, i| acc ^ t.beta[i as usize]);
                        assert_eq!(value, eval(&pieces, point), "K = {k}, {words} words, u = {u}, {be:?}");
                    }
                }
            }
        }
    }

    /// Products through truncated transforms (one, or a sum of two, sharing one inverse) equal
    /// Karatsuba's, on every backend; the largest take the fused passes and 32-bit basis changes.
    #[test]
    fn truncated_products_match_karatsuba() {
        for (a_words, b_words) in
            [(4usize, 2usize), (8, 3), (64, 32), (61, 34), (256, 127), (1 << 12, 1 << 11), (1 << 16, 1 << 15)]
        {
            let len = truncated_len_for(a_words, b_words).expect("a truncated length");
            assert!(len < len_for(a_words, b_words) && !len.is_power_of_two());
            let a: Vec<u64> =
                (0..a_words as u64).map(|i| (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i << 47)).collect();
            let b: Vec<u64> = (0..b_words as u64).map(|i| (i + 2).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)).collect();
            let c: Vec<u64> = (0..b_words as u64).map(|i| (i + 9).wrapping_mul(0xff51_afd7_ed55_8ccd)).collect();
            let (mut ab, mut ac) = (vec![0u64; a_words + b_words], vec![0u64; a_words + b_words]);
            karatsuba::karatsuba(Backend::Portable, &a, &b, &mut ab);
            karatsuba::karatsuba(Backend::Portable, &a, &c, &mut ac);
            let sum: Vec<u64> = ab.iter().zip(&ac).map(|(x, y)| x ^ y).collect();
            let backends: Vec<Backend> = if a_words > 4096 { vec![backend::active()] } else { backend::available() };
            for be in backends {
                let transformed = |f: &[u64]| {
                    let mut values = vec![u64::MAX; len];
                    transform_into(be, f, &mut values);
                    values
                };
                let (ta, tb, tc) = (transformed(&a), transformed(&b), transformed(&c));
                let mut one = Accumulator::new(len);
                one.add_product_of_values(be, &ta, &tb);
                let mut out = vec![u64::MAX; a_words + b_words];
                one.finish(be, &mut out);
                assert!(out == ab, "{a_words}×{b_words} words, {be:?}");
                let mut two = Accumulator::new(len);
                two.add_product_of_values(be, &ta, &tb);
                two.add_product_of_values(be, &ta, &tc);
                two.finish(be, &mut out);
                assert!(out == sum, "sum of two, {a_words}×{b_words} words, {be:?}");
            }
        }
    }

    /// The bits of a range of the pieces' sum (split across threads when long) are those of the
    /// whole sum.
    #[test]
    fn unsegmented_ranges_match_the_whole() {
        use crate::bits::{extract_range, words_for};
        for pieces_len in [1usize, 2, 7, 64, 300_001] {
            let pieces: Vec<u64> = (0..pieces_len as u64).map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 1).collect();
            let mut whole = vec![u64::MAX; pieces_len / 2 + 2];
            unsegment(&pieces, &mut whole);
            let bits = 64 * whole.len();
            for skip in [0usize, 1, 63, 64, 65, bits / 5, bits / 2 + 17] {
                for nbits in [1, 64, 100, bits - skip] {
                    let mut expect = vec![0u64; words_for(nbits)];
                    extract_range(&whole, skip, nbits, &mut expect);
                    let mut part = vec![u64::MAX; words_for(nbits) + 1];
                    unsegment_bits(&pieces, skip, nbits, &mut part);
                    assert!(part[..expect.len()] == expect[..], "{pieces_len} pieces, bits {skip} + {nbits}");
                    assert_eq!(part[expect.len()], u64::MAX, "wrote past the range");
                }
            }
        }
    }

    /// A sum's wanted bits, made by the inverse that skips the lower half and makes only the
    /// wanted pieces of its last multiplication, are those of the whole inverse: ranges from the
    /// lower half's top piece on, split across threads or not, ending inside a word, reaching the
    /// end, and lying past it (no bits at all).
    #[test]
    fn ranges_of_a_sum_match_the_whole_inverse() {
        use crate::bits::{extract_range, words_for};
        for len in [1024usize, 1 << 14] {
            let words = len / 4;
            let a: Vec<u64> = (0..words as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
            let b: Vec<u64> = (0..words as u64).map(|i| i.wrapping_mul(0xc2b2_ae3d_27d4_eb4f) ^ i).collect();
            let be = backend::active();
            let sum = || {
                let mut acc = Accumulator::new(len);
                acc.add_product(be, &Transformed::new(be, &a, len), &Transformed::new(be, &b, len));
                acc
            };
            let mut whole = vec![0u64; len / 2 + 2];
            let _ = sum().finish(be, &mut whole);
            let total = 32 * len;
            let d = len / 2;
            for skip in [32 * (d - 1) + 62, 32 * d + 62, 32 * d + 100, total - 70, total + 200] {
                for nbits in [1usize, 63, 65, 4096, total.saturating_sub(skip)] {
                    let nbits = nbits.max(1);
                    let mut expect = vec![0u64; words_for(nbits)];
                    if skip < 64 * whole.len() {
                        extract_range(&whole, skip, nbits.min(64 * whole.len() - skip), &mut expect);
                    }
                    let mut got = vec![u64::MAX; words_for(nbits)];
                    sum().finish_range(be, skip, nbits, &mut got);
                    assert!(got == expect, "length {len}, bits {skip} + {nbits}");
                }
            }
        }
    }

    #[test]
    fn large_parallel_products_match_karatsuba() {
        let a: Vec<u64> = (0..20_000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(7)).collect();
        let b: Vec<u64> = (0..13_000u64).map(|i| i.wrapping_mul(0xc2b2_ae3d_27d4_eb4f) ^ 0xABCD).collect();
        let be = backend::active();
        let mut expect = vec![0u64; a.len() + b.len()];
        karatsuba::karatsuba(be, &a, &b, &mut expect);
        let mut out = vec![0u64; a.len() + b.len()];
        mul(be, &a, &b, &mut out);
        assert_eq!(out, expect);
        // A split sum: a·b = a·b_lo + (a·b_hi)·x^(64·h), both products in one accumulator.
        let h = b.len() / 3;
        let len = len_for(a.len(), b.len());
        let ta = Transformed::new(be, &a, len);
        let mut shifted_hi = vec![0u64; b.len()];
        shifted_hi[h..].copy_from_slice(&b[h..]);
        let mut sum = Accumulator::new(len);
        sum.add_product(be, &ta, &Transformed::new(be, &b[..h], len));
        sum.add_product(be, &ta, &Transformed::new(be, &shifted_hi, len));
        let mut out2 = vec![0u64; a.len() + b.len()];
        sum.finish(be, &mut out2);
        assert_eq!(out2, expect);
    }
}

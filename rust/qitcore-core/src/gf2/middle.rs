//! Middle products with a fixed first factor: for `a` of `n + m − 1` coefficients, coefficients
//! `n − 1 .. n − 1 + m` of `a·x` for any `x` of `n` coefficients. This is the product of the
//! `m × n` Toeplitz matrix `T[i, j] = a[i − j + n − 1]` with `x`.
//!
//! Three methods, each preparing what it can once for the fixed factor:
//! - *window*: the carry-less kernel computes just the product words the output needs
//!   (`O(n·m)` word products, best for blocks up to a few thousand bits);
//! - *Karatsuba*: Toeplitz-Karatsuba, three half-size products per level down to the window
//!   kernel ([`super::toeplitz_karatsuba`]);
//! - *split FFT*: `x` is cut into `s` parts of `h` bits; part `t` meets the slice
//!   `a_t[k] = a[k + n − (t + 1)·h]` (`m + h − 1` coefficients), and the output is coefficients
//!   `h − 1 .. h − 1 + m` of `Σ_t a_t·x_t`. The `s` products are summed in the transform domain,
//!   so each costs one forward transform of a short factor and all share one inverse; the
//!   transforms of the `a_t` are computed once. `s` minimises the transform work. Only the
//!   middle of the sum is wanted, so the transform may be shorter than the products: it gives
//!   them modulo a sparse subspace polynomial, which folds their top into coefficients below
//!   the wanted ones ([`super::fft::len_for_middle`]). For a factor used once and `n = 2^k`
//!   with `k` even, `m = n/2`, one part with a transform of half the length then beats four
//!   parts: three transforms instead of nine (a quarter of their work saved at 2^20 and 2^24
//!   bits). With `k` odd the shorter power of two wraps onto the wanted bits; there two parts on
//!   truncated transforms of `3·2^(k−6)` points hold the whole product ([`super::fft`]): five
//!   transforms of three quarters the length of the nine of four parts.

use super::backend::Backend;
use super::clmul::{product_window, Padded};
use std::sync::Mutex;

use rayon::prelude::*;

use super::fft::{len_for, len_for_middle, levels, transform_into, truncated_len_for, Accumulator, Transformed};
use super::toeplitz_karatsuba::ToeplitzKaratsuba;
use super::wipe::{scratch, Wiped};
use super::xor::or_shifted;
use crate::bits::{extract_range, mask_tail, or_bits, words_for};

/// How to compute a middle product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// The least estimated time for the size and backend, from measured unit costs.
    Auto,
    /// The carry-less kernel on the needed words only.
    Window,
    /// Toeplitz-Karatsuba down to the window kernel.
    Karatsuba,
    /// The split FFT with this many parts (`0` chooses).
    Fft(usize),
}

/// Measured costs per backend (on this project's 2-core AVX-512 machine, `examples/middle_timing`):
/// nanoseconds per 64×64-bit word product in the window kernel, and per unit of
/// `(s + 1)·len·log2(len)` in the split FFT.
fn unit_costs(be: Backend) -> (f64, f64) {
    match be {
        Backend::Vpclmul => (0.085, 0.68),
        Backend::Pclmul => (0.28, 1.6),
        Backend::Portable => (12.9, 4.1),
    }
}

/// Toeplitz-Karatsuba pays for its recursion on top of its leaves' window products.
const KARATSUBA_OVERHEAD: f64 = 1.3;
/// The split FFT's fixed cost per product (allocations, tables), in nanoseconds.
const FFT_FIXED_NS: f64 = 5_000.0;

/// The algorithm with the least estimated time for an `m × n` product on `be`.
fn cheapest(be: Backend, n: usize, m: usize) -> Algorithm {
    let (word_ns, fft_ns) = unit_costs(be);
    let window = (m / 64 + 1) as f64 * n.div_ceil(64) as f64 * word_ns;
    let (levels, side) = ToeplitzKaratsuba::shape(m);
    let leaf = (side >> levels) as f64 / 64.0;
    let karatsuba =
        n.div_ceil(m) as f64 * 3f64.powi(levels as i32) * leaf * (leaf + 1.0) * word_ns * KARATSUBA_OVERHEAD;
    let (s, _, len) = choose_split(n, m, 0);
    let fft = FFT_FIXED_NS + ((s + 1) * len) as f64 * f64::from(len.trailing_zeros()) * fft_ns;
    if window <= karatsuba && window <= fft {
        Algorithm::Window
    } else if karatsuba <= fft {
        Algorithm::Karatsuba
    } else {
        Algorithm::Fft(s)
    }
}

/// The one-shot Toeplitz-Karatsuba's time over the fresh split FFT's, at equal estimates: it
/// does the same leaf products as the prepared tree plus the sequences' sums on the way down,
/// against transforms whose estimate leaves out the seed's copies and basis changes. Measured at
/// n = 2^18 … 2^22 (`examples/toeplitz_timing` once/pa cases).
const ONCE_OVERHEAD: f64 = 2.0;

/// Whether one product with a factor used only once is cheaper by the one-shot Toeplitz-Karatsuba
/// ([`super::toeplitz_karatsuba::apply_once`], nothing prepared) than by preparing the cheapest
/// method and applying it once: the case of privacy amplification with a fresh seed per block.
pub fn once_is_cheaper(be: Backend, n: usize, m: usize) -> bool {
    let (word_ns, fft_ns) = unit_costs(be);
    let (levels, side) = ToeplitzKaratsuba::shape_with(m, super::toeplitz_karatsuba::ONCE_LEAF_BITS);
    let leaf = (side >> levels) as f64 / 64.0;
    let once = n.div_ceil(m) as f64 * 3f64.powi(levels as i32) * leaf * leaf * word_ns * ONCE_OVERHEAD;
    match cheapest(be, n, m) {
        Algorithm::Window => false,
        Algorithm::Fft(_) | Algorithm::Auto => {
            // The one-shot split transforms the s slices of the seed: 2s + 1 transforms in all.
            let (s, _, len) = choose_split_once(n, m);
            let fresh = FFT_FIXED_NS + ((2 * s + 1) * transform_work(len)) as f64 * fft_ns;
            once < fresh
        }
        Algorithm::Karatsuba => true,
    }
}

/// How the one product of a factor used only once (a fresh seed per block) is cheapest computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Once {
    /// The one-shot Toeplitz-Karatsuba ([`super::toeplitz_karatsuba::apply_once`]).
    Karatsuba,
    /// The split FFT without keeping the factor's transforms ([`apply_once_fft`]).
    Fft,
    /// Preparing is as cheap as anything (the window kernel prepares only a padded copy).
    Prepare,
}

/// The method for one product with a factor used once, as [`once_is_cheaper`] and [`cheapest`]
/// estimate it.
pub fn once_method(be: Backend, n: usize, m: usize) -> Once {
    if once_is_cheaper(be, n, m) {
        Once::Karatsuba
    } else if matches!(cheapest(be, n, m), Algorithm::Fft(_)) {
        Once::Fft
    } else {
        Once::Prepare
    }
}

/// The split a product with a factor used once minimises: its `s` slices are transformed for
/// this product alone, `2s + 1` transforms in all.
fn choose_split_once(n: usize, m: usize) -> (usize, usize, usize) {
    [1usize, 2, 4, 8, 16, 32, 64]
        .into_iter()
        .filter(|&s| s <= n)
        .map(|s| split_shape_once(n, m, s))
        .min_by_key(|&(s, _, len)| (2 * s + 1) * transform_work(len))
        .expect("s = 1 is always possible")
}

/// Coefficients `n − 1 .. n − 1 + m` of `a·x` into `y`, as [`MiddleProduct::apply`] with the
/// split FFT, for a factor `a` used once: each slice `a_t` is transformed, multiplied into the sum
/// and forgotten, so that the `s` transforms a prepared product keeps are never held together
/// (three transform buffers in all: fresh memory costs page faults, a tenth of the time at 2^27
/// bits). The slice's and the input's transforms run side by side on two cores. `parts`
/// chooses `s` (`0`: the least work).
pub fn apply_once_fft(be: Backend, a: &[u64], n: usize, m: usize, parts: usize, x: &[u64], y: &mut [u64]) {
    let (s, h, len) = if parts > 0 { split_shape_once(n, m, parts.min(n)) } else { choose_split_once(n, m) };
    let mut sum = Accumulator::new(len);
    let (mut slice_values, mut piece_values) = (scratch(len), scratch(len));
    // Factors that start on a word boundary are read where they lie; others are cut into
    // buffers of their own (made when first needed).
    let (mut slice_copy, mut piece_copy) = (None, None);
    for t in 0..s {
        // Each side cuts its own factor: the copies run on both cores too.
        rayon::join(
            || {
                let slice = match slice_in_place(a, n, m, h, t) {
                    Some(slice) => slice,
                    None => {
                        let slice = slice_copy.get_or_insert_with(|| scratch(words_for(m + h - 1)));
                        slice.fill(0);
                        slice_of(a, n, m, h, t, slice);
                        slice
                    }
                };
                transform_into(be, slice, &mut slice_values);
            },
            || {
                let start = t * h;
                let piece = if start.is_multiple_of(64) && h.is_multiple_of(64) {
                    // The input's bits past n are zero: a last, shorter part ends with x.
                    &x[(start / 64).min(x.len())..((start + h) / 64).min(x.len())]
                } else {
                    let piece = piece_copy.get_or_insert_with(|| scratch(words_for(h)));
                    piece.fill(0);
                    if start < n {
                        extract_range(x, start, h.min(n - start), piece);
                    }
                    piece
                };
                transform_into(be, piece, &mut piece_values);
            },
        );
        sum.add_product_of_values(be, &slice_values, &piece_values);
    }
    sum.finish_range(be, h - 1, m, y);
}

/// The words of `a` that hold the slice `a_t` ([`slice_of`]) when it starts on a word boundary
/// inside `a`: `words_for(m + h − 1)` words, whose last may carry coefficients of `a` past the
/// slice's `m + h − 1`. Those reach only coefficients of the product from `m + h − 1` on, past
/// the wanted `h − 1 .. h − 1 + m`, and change neither the product's number of pieces nor what
/// a shorter transform wraps (both count words), so the middle product is the slice's.
fn slice_in_place(a: &[u64], n: usize, m: usize, h: usize, t: usize) -> Option<&[u64]> {
    let offset = n.checked_sub((t + 1) * h)?;
    let words = words_for(m + h - 1);
    (offset.is_multiple_of(64) && offset / 64 + words <= a.len()).then(|| &a[offset / 64..offset / 64 + words])
}

/// Writes `a_t[k] = a[k + n − (t + 1)·h]` (zero below index 0; `m + h − 1` coefficients) into
/// `slice`, which is zero.
fn slice_of(a: &[u64], n: usize, m: usize, h: usize, t: usize, slice: &mut [u64]) {
    let offset = n as isize - ((t + 1) * h) as isize;
    let skip = (-offset).max(0) as usize;
    if skip < m + h - 1 {
        or_shifted(slice, skip, a, (offset + skip as isize) as usize, m + h - 1 - skip);
    }
}

/// The shape `(s, h, len)` of the split into `s` parts, with transforms as long as the parts'
/// products (prepared products).
fn split_shape(n: usize, m: usize, s: usize) -> (usize, usize, usize) {
    let h = n.div_ceil(s);
    (s, h, len_for(words_for(m + h - 1), words_for(h)))
}

/// As [`split_shape`] with the shortest transform that keeps the wanted coefficients
/// `h − 1 .. h − 1 + m` of the sum ([`len_for_middle`]), for products with a factor used once.
/// Prepared products keep full-length transforms: with the shorter ones they measured 17 %
/// slower at 2^20 bits, 11 % faster at 2^22 and the same at 2^24 (one core), their own
/// transforms being only of the input's short parts.
///
/// Where a truncated transform of `3·2^(K−1)` points ([`truncated_len_for`]) holds the whole
/// product with less work, it is taken instead: at `n = 2^k` with `k` odd, where the shorter
/// power of two wraps onto the wanted bits, two parts on `3·2^(k−6)` points (five such
/// transforms) beat four parts on `2^(k−5)` (nine).
fn split_shape_once(n: usize, m: usize, s: usize) -> (usize, usize, usize) {
    let h = n.div_ceil(s);
    let (a_words, b_words) = (words_for(m + h - 1), words_for(h));
    let len = len_for_middle(a_words, b_words, h - 1, m);
    let len = match truncated_len_for(a_words, b_words) {
        Some(truncated) if transform_work(truncated) < transform_work(len) => truncated,
        _ => len,
    };
    (s, h, len)
}

/// The work of one transform of `len` points, in units of the FFT's cost model.
fn transform_work(len: usize) -> usize {
    len * levels(len) as usize
}

enum Prepared {
    /// `a` as it is, for any `n`.
    Window(Padded),
    /// For `n` a multiple of 64: `a·x`, whose coefficients `n .. n + m` are the output, so
    /// that they are whole product words and the kernel writes them straight into `y`.
    WindowAligned(Padded),
    Karatsuba(ToeplitzKaratsuba),
    Fft {
        h: usize,
        len: usize,
        parts: Vec<Transformed>,
        /// Two transform-length buffers kept, zeroed, between products: fresh ones would cost a
        /// page fault and the kernel's clearing of every page on every product.
        buffers: Mutex<Option<[Wiped; 2]>>,
    },
}

/// A fixed first factor, prepared for middle products.
pub struct MiddleProduct {
    n: usize,
    m: usize,
    method: Prepared,
}

/// The split that minimises the estimated work `(s + 1)·len·log2(len)`: `(s, h, len)`.
fn choose_split(n: usize, m: usize, wanted: usize) -> (usize, usize, usize) {
    let shape = |s: usize| split_shape(n, m, s);
    if wanted > 0 {
        return shape(wanted.min(n));
    }
    [1usize, 2, 4, 8, 16, 32, 64]
        .into_iter()
        .filter(|&s| s <= n)
        .map(shape)
        .min_by_key(|&(s, _, len)| (s + 1) * len * len.trailing_zeros() as usize)
        .expect("s = 1 is always possible")
}

impl MiddleProduct {
    /// An upper estimate of the bytes that [`MiddleProduct::new`] keeps for an `m × n` product,
    /// with the scratch of one product: checked against the allocator before preparing, so that
    /// sizes too large for memory fail cleanly ([`super::alloc::ensure_available`]).
    pub fn footprint(be: Backend, n: usize, m: usize, algorithm: Algorithm) -> usize {
        let algorithm = match algorithm {
            Algorithm::Auto => cheapest(be, n, m),
            other => other,
        };
        let words = match algorithm {
            Algorithm::Window => 2 * (words_for(n) + 1) + words_for(n + m) + super::clmul::BACK,
            Algorithm::Karatsuba => {
                // A tree per column block; each of its 3^levels leaves is padded to about four
                // times its side.
                let (levels, side) = ToeplitzKaratsuba::shape(m);
                let leaves = 3usize.saturating_pow(levels);
                n.div_ceil(m)
                    .saturating_mul(leaves.saturating_mul(4 * words_for(side >> levels) + 2 * super::clmul::BACK))
            }
            Algorithm::Auto | Algorithm::Fft(_) => {
                let wanted = if let Algorithm::Fft(w) = algorithm { w } else { 0 };
                let (s, h, len) = choose_split(n, m, wanted);
                (s + 3).saturating_mul(len) + 2 * words_for(m + h)
            }
        };
        words.saturating_add(words_for(n + m)).saturating_mul(8)
    }

    /// Prepares `a` (`n + m − 1` coefficients; any `n, m >= 1`, the matrix may be tall).
    pub fn new(be: Backend, a: &[u64], n: usize, m: usize, algorithm: Algorithm) -> Self {
        debug_assert!(1 <= m && 1 <= n && a.len() == words_for(n + m - 1));
        let algorithm = match algorithm {
            Algorithm::Auto => cheapest(be, n, m),
            other => other,
        };
        let method = match algorithm {
            Algorithm::Window if n.is_multiple_of(64) => {
                let mut shifted = scratch(words_for(n + m));
                or_bits(&mut shifted, 1, a, 0, n + m - 1);
                Prepared::WindowAligned(Padded::new(&shifted, words_for(n)))
            }
            Algorithm::Window => Prepared::Window(Padded::new(a, words_for(n))),
            Algorithm::Karatsuba => Prepared::Karatsuba(ToeplitzKaratsuba::new(a, n, m)),
            Algorithm::Auto | Algorithm::Fft(_) => {
                let wanted = if let Algorithm::Fft(w) = algorithm { w } else { 0 };
                let (s, h, len) = choose_split(n, m, wanted);
                let parts = (0..s)
                    .into_par_iter()
                    .map(|t| {
                        let mut slice = scratch(words_for(m + h - 1));
                        slice_of(a, n, m, h, t, &mut slice);
                        Transformed::new(be, &slice, len)
                    })
                    .collect();
                Prepared::Fft { h, len, parts, buffers: Mutex::new(None) }
            }
        };
        MiddleProduct { n, m, method }
    }

    /// Writes coefficients `n − 1 .. n − 1 + m` of `a·x` to `y` (`words_for(m)` words; `x` has
    /// `words_for(n)` words with the bits past `n` zero). `scratch` is reused between calls.
    pub fn apply(&self, be: Backend, x: &[u64], y: &mut [u64], scratch_words: &mut Vec<u64>) {
        let (n, m) = (self.n, self.m);
        match &self.method {
            Prepared::Window(padded) => {
                let (w0, w1) = ((n - 1) / 64, (n + m - 2) / 64);
                scratch_words.resize(w1 - w0 + 1, 0);
                product_window(be, padded.view(), x, w0, scratch_words);
                extract_range(scratch_words, n - 1 - 64 * w0, m, y);
            }
            Prepared::WindowAligned(padded) => {
                let y = &mut y[..words_for(m)];
                product_window(be, padded.view(), x, n / 64, y);
                mask_tail(y, m);
            }
            Prepared::Karatsuba(tk) => tk.apply(be, x, y),
            Prepared::Fft { h, len, parts, buffers } => {
                let h = *h;
                let taken = buffers.lock().unwrap_or_else(|e| e.into_inner()).take();
                let [acc, mut values] = taken.unwrap_or_else(|| [scratch(*len), scratch(*len)]);
                let mut sum = Accumulator::in_buffer(acc);
                let mut piece = scratch(words_for(h));
                for (t, a_t) in parts.iter().enumerate() {
                    let start = t * h;
                    piece.fill(0);
                    if start < n {
                        extract_range(x, start, h.min(n - start), &mut piece);
                    }
                    transform_into(be, &piece, &mut values);
                    sum.add_product_values(be, a_t, &values);
                }
                let mut product = scratch(words_for(h - 1 + m));
                let acc = sum.finish(be, &mut product);
                extract_range(&product, h - 1, m, y);
                values.fill(0);
                *buffers.lock().unwrap_or_else(|e| e.into_inner()) = Some([acc, values]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::{from_bit_vec, to_bit_vec};
    use crate::gf2::backend;
    use proptest::prelude::{prop_assert_eq, proptest, Just, ProptestConfig};
    use proptest::strategy::Strategy as Generator;

    /// Coefficient i + n − 1 of a·x, bit by bit.
    fn middle_naive(a: &[u8], x: &[u8], m: usize) -> Vec<u8> {
        let n = x.len();
        (0..m).map(|i| (0..n).fold(0u8, |acc, j| acc ^ (a[i + n - 1 - j] & x[j]))).collect()
    }

    fn case() -> impl Generator<Value = (Vec<u8>, Vec<u8>, usize)> {
        (1usize..1500).prop_flat_map(|n| (Just(n), 1..=2 * n)).prop_flat_map(|(n, m)| {
            (proptest::collection::vec(0u8..2, n + m - 1), proptest::collection::vec(0u8..2, n), Just(m))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn every_strategy_on_every_backend_matches_the_definition((a, x, m) in case(), parts in 0usize..6) {
            let expect = middle_naive(&a, &x, m);
            let n = x.len();
            for be in backend::available() {
                for algorithm in [Algorithm::Window, Algorithm::Karatsuba, Algorithm::Fft(parts), Algorithm::Auto] {
                    let mp = MiddleProduct::new(be, &from_bit_vec(&a), n, m, algorithm);
                    let mut y = vec![u64::MAX; words_for(m)];
                    mp.apply(be, &from_bit_vec(&x), &mut y, &mut Vec::new());
                    prop_assert_eq!(to_bit_vec(&y, m), expect.clone(), "{:?} {:?}", be, algorithm);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn whole_word_inputs_take_the_aligned_window_on_every_backend(
            (a, x, m) in (1usize..20).prop_flat_map(|k| (Just(64 * k), 1..=128 * k)).prop_flat_map(|(n, m)| {
                (proptest::collection::vec(0u8..2, n + m - 1), proptest::collection::vec(0u8..2, n), Just(m))
            })
        ) {
            let expect = middle_naive(&a, &x, m);
            for be in backend::available() {
                let mp = MiddleProduct::new(be, &from_bit_vec(&a), x.len(), m, Algorithm::Window);
                prop_assert_eq!(matches!(mp.method, Prepared::WindowAligned(_)), true);
                let mut y = vec![u64::MAX; words_for(m)];
                mp.apply(be, &from_bit_vec(&x), &mut y, &mut Vec::new());
                prop_assert_eq!(to_bit_vec(&y, m), expect.clone(), "{:?}", be);
                // The bits past m are cleared, as callers of `apply` rely on.
                let past = if m % 64 == 0 { 0 } else { y[m / 64] >> (m % 64) };
                prop_assert_eq!(past, 0);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(40))]
        #[test]
        fn one_shot_split_products_on_every_backend_match_the_definition((a, x, m) in case(), parts in 0usize..6) {
            let expect = middle_naive(&a, &x, m);
            for be in backend::available() {
                let mut y = vec![u64::MAX; words_for(m)];
                apply_once_fft(be, &from_bit_vec(&a), x.len(), m, parts, &from_bit_vec(&x), &mut y);
                prop_assert_eq!(to_bit_vec(&y, m), expect.clone(), "{:?}, {} parts", be, parts);
            }
        }
    }

    /// Shapes whose one-shot transform is shorter than the product (it wraps modulo the
    /// subspace polynomial, missing only unwanted coefficients), at the edge of fitting and
    /// beyond it, on every backend, against the definition (and the prepared product beside).
    #[test]
    fn wrapped_split_products_match_the_definition() {
        let mut wrapped = 0;
        for (n, m) in
            [(4096usize, 2048usize), (4096, 1024), (5000, 2000), (4033, 2017), (6000, 1), (3585, 3000), (4500, 5000)]
        {
            let (a, x) = crate::gf2::test_operands(n, m, 9);
            let (abits, xbits) = (to_bit_vec(&a, n + m - 1), to_bit_vec(&x, n));
            let expect = middle_naive(&abits, &xbits, m);
            let (_, h, len) = split_shape_once(n, m, 1);
            if len < len_for(words_for(m + h - 1), words_for(h)) {
                wrapped += 1;
            }
            for be in backend::available() {
                let mut y = vec![u64::MAX; words_for(m)];
                apply_once_fft(be, &a, n, m, 1, &x, &mut y);
                assert_eq!(to_bit_vec(&y, m), expect, "one-shot n={n} m={m} {be:?}");
                let mut y = vec![u64::MAX; words_for(m)];
                MiddleProduct::new(be, &a, n, m, Algorithm::Fft(1)).apply(be, &x, &mut y, &mut Vec::new());
                assert_eq!(to_bit_vec(&y, m), expect, "prepared n={n} m={m} {be:?}");
            }
        }
        assert!(wrapped >= 4, "only {wrapped} shapes wrapped");
    }

    /// Shapes whose one-shot product takes truncated transforms of `3·2^(K−1)` points (the
    /// cost model's choice at odd powers of two, and forced splits beside), on every backend,
    /// against the definition.
    #[test]
    fn truncated_split_products_match_the_definition() {
        let mut truncated = 0;
        for (n, m, parts) in [
            (8192usize, 4096usize, 0usize),
            (2048, 1024, 0),
            (8192, 4096, 2),
            (5000, 2500, 2),
            (3001, 1999, 0),
            (4096, 2048, 3),
        ] {
            let (a, x) = crate::gf2::test_operands(n, m, 11);
            let expect = middle_naive(&to_bit_vec(&a, n + m - 1), &to_bit_vec(&x, n), m);
            let (_, _, len) = if parts > 0 { split_shape_once(n, m, parts) } else { choose_split_once(n, m) };
            if !len.is_power_of_two() {
                truncated += 1;
            }
            for be in backend::available() {
                let mut y = vec![u64::MAX; words_for(m)];
                apply_once_fft(be, &a, n, m, parts, &x, &mut y);
                assert_eq!(to_bit_vec(&y, m), expect, "n={n} m={m} parts={parts} len={len} {be:?}");
            }
        }
        assert!(truncated >= 4, "only {truncated} shapes truncated");
        // At n = 2^k, k odd, m = n/2 the cost model takes two parts on 3·2^(k−6) points.
        for k in [13u32, 21, 27] {
            let n = 1usize << k;
            assert_eq!(choose_split_once(n, n / 2), (2, n / 2, 3 << (k - 6)), "k = {k}");
        }
    }

    /// The one-shot shapes that skip work: factors read where they lie (a last part shorter
    /// than the others, slices cut where unaligned), and the inverse that leaves out the lower
    /// half's basis change (truncated and power-of-two transforms, where the wanted pieces start
    /// at that half's top; and one where they start below it), against the prepared
    /// Toeplitz-Karatsuba, every backend.
    #[test]
    fn one_shot_products_that_skip_work_match_karatsuba() {
        let first_piece = |h: usize| (h - 1).saturating_sub(62).div_ceil(32);
        for (n, m, parts, skips) in [
            (1usize << 17, 1usize << 16, 0usize, true),
            (1 << 16, 1 << 15, 0, true),
            (1 << 16, 1 << 15, 1, true),
            (1 << 20, 1 << 19, 0, true),
            // Wanted bits ending inside a piece and a word.
            (1 << 16, (1 << 15) - 37, 1, true),
            (19_199, 5_000, 3, false),
            (1 << 16, 3 << 15, 0, false),
        ] {
            let (s, h, len) = if parts > 0 { split_shape_once(n, m, parts) } else { choose_split_once(n, m) };
            let half = if len.is_power_of_two() { len / 2 } else { len / 3 };
            assert_eq!(first_piece(h) + 1 >= half && half > 512, skips, "n={n} m={m}: s={s} h={h} len={len}");
            let (a, x) = crate::gf2::test_operands(n, m, 9);
            let mut expect = vec![0u64; words_for(m)];
            let be = backend::active();
            MiddleProduct::new(be, &a, n, m, Algorithm::Karatsuba).apply(be, &x, &mut expect, &mut Vec::new());
            for be in backend::available() {
                let mut y = vec![u64::MAX; words_for(m)];
                apply_once_fft(be, &a, n, m, parts, &x, &mut y);
                assert!(y == expect, "n={n} m={m} parts={parts} (s={s} h={h} len={len}) {be:?}");
            }
        }
    }

    /// Large one-shot split products (transforms past the fused-pass and parallel thresholds,
    /// several parts, a tall and a wide matrix) against the prepared Toeplitz-Karatsuba.
    #[test]
    fn large_one_shot_split_products_match_karatsuba() {
        for (n, m, parts) in [(1usize << 21, 1usize << 20, 0usize), (600_000, 123_457, 3), (100_000, 700_001, 1)] {
            let (a, x) = crate::gf2::test_operands(n, m, 3);
            let be = backend::active();
            let mut expect = vec![0u64; words_for(m)];
            MiddleProduct::new(be, &a, n, m, Algorithm::Karatsuba).apply(be, &x, &mut expect, &mut Vec::new());
            let mut y = vec![u64::MAX; words_for(m)];
            apply_once_fft(be, &a, n, m, parts, &x, &mut y);
            assert_eq!(y, expect, "n={n} m={m} parts={parts}");
        }
    }

    /// The one-shot products split their work across threads (Karatsuba's parallel levels and
    /// shared spare buffers, the FFT's fused passes, pointwise products and side-by-side
    /// transforms): on one thread and on four they give the same words.
    #[test]
    fn one_shot_products_on_one_thread_and_on_several_agree() {
        let pool = |threads| rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
        let (one, four) = (pool(1), pool(4));
        for (n, m) in [(1usize << 20, 1usize << 19), (1 << 21, 1 << 20), (900_001, 300_007)] {
            let (a, x) = crate::gf2::test_operands(n, m, 5);
            let be = backend::active();
            let run = |pool: &rayon::ThreadPool| {
                pool.install(|| {
                    let (mut k, mut f) = (vec![0u64; words_for(m)], vec![0u64; words_for(m)]);
                    super::super::toeplitz_karatsuba::apply_once(be, &a, n, m, &x, &mut k);
                    apply_once_fft(be, &a, n, m, 0, &x, &mut f);
                    (k, f)
                })
            };
            let (k1, f1) = run(&one);
            let (k4, f4) = run(&four);
            assert_eq!(k1, f1, "n={n} m={m}: Karatsuba and FFT differ");
            assert_eq!(k4, k1, "n={n} m={m}: Karatsuba on four threads");
            assert_eq!(f4, f1, "n={n} m={m}: FFT on four threads");
        }
    }

    #[test]
    fn large_split_products_match_karatsuba() {
        let (n, m) = (300_000usize, 123_457usize);
        let a: Vec<u64> = (0..words_for(n + m - 1) as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        let mut a = a;
        crate::bits::mask_tail(&mut a, n + m - 1);
        let mut x: Vec<u64> = (0..words_for(n) as u64).map(|i| i.wrapping_mul(0xc2b2_ae3d_27d4_eb4f) ^ 7).collect();
        crate::bits::mask_tail(&mut x, n);
        let be = backend::active();
        let reference = MiddleProduct::new(be, &a, n, m, Algorithm::Karatsuba);
        let mut expect = vec![0u64; words_for(m)];
        reference.apply(be, &x, &mut expect, &mut Vec::new());
        for parts in [1, 3, 4, 16] {
            let mp = MiddleProduct::new(be, &a, n, m, Algorithm::Fft(parts));
            let mut y = vec![0u64; words_for(m)];
            mp.apply(be, &x, &mut y, &mut Vec::new());
            assert_eq!(y, expect, "{parts} parts");
        }
    }
}

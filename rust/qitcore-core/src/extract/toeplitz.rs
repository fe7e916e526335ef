//! Toeplitz hashing: `y = T·x` over GF(2) for an `m × n` Toeplitz matrix `T` drawn from a seed of
//! `n + m − 1` bits, `T[i, j] = seed[(i − j) mod (n + m − 1)]` — the layout of randextract's
//! default mode and of cryptomite, so outputs agree bit for bit with theirs.
//!
//! With `a[k] = seed[(k + m) mod (n + m − 1)]` (the seed rotated left by `m`), `T[i, j] =
//! a[i − j + n − 1]`, so `y_i` is coefficient `i + n − 1` of the polynomial product `a·x`: the
//! hash is a middle product in GF(2)\[x\] ([`crate::gf2::middle`]), prepared once per seed —
//! when the seed is used more than once: the first single block hashed with a seed never used
//! before takes a one-shot product, which keeps nothing ([`crate::gf2::middle::once_method`]:
//! the one-shot Toeplitz-Karatsuba, or for large blocks the split FFT without keeping the seed's
//! transforms), as privacy amplification with a fresh seed per block does.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use super::blocks::{check_sizes, BlockHash, Shape};
use crate::bits::{bytes_for, extract_range, words_for, BitOrder};
use crate::error::Result;
use crate::gf2::alloc::ensure_available;
use crate::gf2::backend;
use crate::gf2::middle::{apply_once_fft, once_method, Algorithm, MiddleProduct, Once};
use crate::gf2::toeplitz_karatsuba::apply_once;
use crate::gf2::wipe::{scratch, Wiped};
use crate::gf2::xor::or_shifted;
use crate::secret::SecretBytes;

/// A Toeplitz hash function: fixed sizes `n → m` and a fixed seed, applied to any number of blocks.
pub struct Toeplitz {
    shape: Shape,
    /// The seed rotated left by `m`: the fixed factor of the middle product.
    rotated: Wiped,
    algorithm: Algorithm,
    /// The factor prepared for repeated products, made when first needed.
    product: OnceLock<MiddleProduct>,
    /// Whether a block has been hashed: only the first may go unprepared.
    used: AtomicBool,
}

impl Toeplitz {
    /// The seed length for `n` input and `m` output bits: `n + m − 1`.
    pub fn seed_bits(n: usize, m: usize) -> usize {
        n + m - 1
    }

    /// A hash function from `n` bits to `m` bits with the given seed of `n + m − 1` bits, packed in
    /// `bytes_for(n + m − 1)` bytes in bit order `order` (bits past the seed in the last byte are
    /// ignored).
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] unless `1 <= m <= n <= 2^32`; [`crate::Error::InvalidLength`] naming
    /// `seed` when it has the wrong number of bytes.
    pub fn new(n: usize, m: usize, seed: &[u8], order: BitOrder) -> Result<Self> {
        Self::with_algorithm(n, m, seed, order, Algorithm::Auto)
    }

    /// As [`Toeplitz::new`] with a chosen multiplication algorithm (tests and benchmarks).
    ///
    /// # Errors
    /// As [`Toeplitz::new`].
    pub fn with_algorithm(n: usize, m: usize, seed: &[u8], order: BitOrder, algorithm: Algorithm) -> Result<Self> {
        check_sizes(n, m)?;
        ensure_available("Toeplitz", footprint(n, m, algorithm))?;
        let shape = Shape::load(n, m, order, seed, Self::seed_bits(n, m), "n + m - 1")?;
        let rotated = rotate_left(shape.seed_words(), Self::seed_bits(n, m), m);
        let product = OnceLock::new();
        if algorithm != Algorithm::Auto {
            // A chosen method (tests, benchmarks) is what every block uses.
            let _ = product.set(MiddleProduct::new(backend::active(), &rotated, n, m, algorithm));
        }
        Ok(Toeplitz { shape, rotated, algorithm, product, used: AtomicBool::new(false) })
    }

    /// A hash function with a fresh seed from the operating system's CSPRNG.
    ///
    /// # Errors
    /// As [`Toeplitz::new`], and [`crate::Error::Os`] when the OS cannot supply randomness.
    pub fn random(n: usize, m: usize, order: BitOrder) -> Result<Self> {
        check_sizes(n, m)?;
        ensure_available("Toeplitz", footprint(n, m, Algorithm::Auto))?;
        let seed = SecretBytes::random(bytes_for(Self::seed_bits(n, m)))?;
        Self::new(n, m, seed.expose(), order)
    }
}

impl BlockHash for Toeplitz {
    fn shape(&self) -> &Shape {
        &self.shape
    }

    fn hash_words(&self, x: &[u64], y: &mut [u64], scratch: &mut Vec<u64>) {
        let be = backend::active();
        if let Some(product) = self.product.get() {
            // The common case, a load only: a write per block to the shared flag would bounce
            // its cache line between the cores hashing a batch.
            product.apply(be, x, y, scratch);
            return;
        }
        let (n, m) = (self.n(), self.m());
        let first = !self.used.swap(true, Ordering::Relaxed);
        if first {
            // The one-shot products fork at every level: run from inside the pool, each fork
            // is a push onto its deque, not a wake-up of a worker and a sleep of this thread.
            match once_method(be, n, m) {
                Once::Karatsuba => return rayon::scope(|_| apply_once(be, &self.rotated, n, m, x, y)),
                Once::Fft => return rayon::scope(|_| apply_once_fft(be, &self.rotated, n, m, 0, x, y)),
                Once::Prepare => {}
            }
        }
        self.product
            .get_or_init(|| MiddleProduct::new(be, &self.rotated, n, m, self.algorithm))
            .apply(be, x, y, scratch);
    }
}

/// The bytes a Toeplitz hash of `n → m` bits holds: the seed as given, loaded and rotated, and
/// the prepared product.
pub(crate) fn footprint(n: usize, m: usize, algorithm: Algorithm) -> usize {
    let seed = bytes_for(n + m);
    MiddleProduct::footprint(backend::active(), n, m, algorithm).saturating_add(seed.saturating_mul(4))
}

/// The polynomial of `total` coefficients whose coefficient `k` is coefficient `(k + r) mod total`
/// of `words`.
pub(crate) fn rotate_left(words: &[u64], total: usize, r: usize) -> Wiped {
    let mut out = scratch(words_for(total));
    extract_range(words, r, total - r, &mut out);
    or_shifted(&mut out, total - r, words, 0, r);
    out
}

impl fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Toeplitz(n={}, m={}, order={:?}, seed=<hidden>)", self.n(), self.m(), self.order())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::{from_bit_vec, store_bits, to_bit_vec};
    use crate::error::Error;
    use proptest::prelude::*;

    /// The definition: y_i = XOR_j seed[(i - j) mod N] · x_j, on 0/1 bytes.
    pub(crate) fn toeplitz_naive(seed: &[u8], x: &[u8], m: usize) -> Vec<u8> {
        let (n, total) = (x.len(), seed.len());
        (0..m).map(|i| (0..n).fold(0u8, |acc, j| acc ^ (seed[(i + total - j) % total] & x[j]))).collect()
    }

    fn bits_strategy(len: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(0u8..2, len)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn hash_words_matches_the_definition(
            (n, m, seed, x) in (1usize..700).prop_flat_map(|n| (Just(n), 1..=n))
                .prop_flat_map(|(n, m)| (Just(n), Just(m), bits_strategy(n + m - 1), bits_strategy(n)))
        ) {
            let expect = toeplitz_naive(&seed, &x, m);
            let mut packed = vec![0u8; bytes_for(n + m - 1)];
            store_bits(&from_bit_vec(&seed), n + m - 1, BitOrder::Little, &mut packed, 0);
            let t = Toeplitz::new(n, m, &packed, BitOrder::Little).unwrap();
            let mut y = vec![0u64; words_for(m)];
            t.hash_words(&from_bit_vec(&x), &mut y, &mut Vec::new());
            prop_assert_eq!(to_bit_vec(&y, m), expect);
        }
    }

    /// `hash_until` with its flag never set is `hash`; with it set, it gives up (`None`) on both
    /// paths (whole-word groups and bit-packed blocks, one task and several), and its argument
    /// errors still come first.
    #[test]
    fn a_stopped_hash_gives_up_and_an_unstopped_one_is_hash() {
        use std::sync::atomic::AtomicBool;
        for (n, m, blocks) in [(1024usize, 512usize, 8usize), (1024, 512, 2000), (1000, 300, 16)] {
            let t = Toeplitz::random(n, m, BitOrder::Little).unwrap();
            let data: Vec<u8> = (0..n * blocks / 8).map(|k| (k * 31 % 251) as u8).collect();
            let mut plain = vec![0u8; t.output_bytes(blocks)];
            let mut until = plain.clone();
            t.hash(&data, None, &mut plain).unwrap();
            assert_eq!(t.hash_until(&data, None, &mut until, &AtomicBool::new(false)).unwrap(), Some(blocks));
            assert_eq!(plain, until);
            assert_eq!(t.hash_until(&data, None, &mut until, &AtomicBool::new(true)).unwrap(), None);
            let short = t.hash_until(&data[1..], None, &mut until, &AtomicBool::new(true));
            assert!(matches!(short, Err(Error::InvalidLength { name: "data", .. })));
        }
    }

    /// Many blocks through `hash` (parallel tasks, whole-word groups, both orders) agree with
    /// each block loaded, hashed by `hash_words` and stored on its own.
    #[test]
    fn batches_agree_with_block_by_block_hashing() {
        use crate::bits::load_bits;
        for (n, m, blocks) in [(1024usize, 512usize, 1100usize), (4096, 2048, 70), (128, 64, 9000), (1024, 500, 600)] {
            let bytes = |len: usize, salt: u64| -> Vec<u8> {
                (0..len as u64)
                    .map(|k| (k.wrapping_add(salt).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 29) as u8)
                    .collect()
            };
            let seed = bytes(bytes_for(n + m - 1), 1);
            let data = bytes(blocks * n / 8, 2);
            for order in [BitOrder::Big, BitOrder::Little] {
                let t = Toeplitz::new(n, m, &seed, order).unwrap();
                let mut got = vec![0xEEu8; t.output_bytes(blocks)];
                assert_eq!(t.hash(&data, None, &mut got).unwrap(), blocks);
                let mut expect = vec![0u8; t.output_bytes(blocks)];
                let (mut x, mut y) = (vec![0u64; words_for(n)], vec![0u64; words_for(m)]);
                for k in 0..blocks {
                    load_bits(&data, k * n, n, order, &mut x);
                    y.fill(0);
                    t.hash_words(&x, &mut y, &mut Vec::new());
                    store_bits(&y, m, order, &mut expect, k * m);
                }
                assert_eq!(got, expect, "n={n} m={m} {order:?}");
            }
        }
    }

    /// A fresh seed's first block takes a one-shot product unless the cost model finds preparing
    /// as cheap (with VPCLMULQDQ: Toeplitz-Karatsuba for the first two sizes, the FFT for the
    /// last two, whose transform wraps at 2^20 bits); either way later blocks use the prepared product, and every path agrees with every
    /// prepared method. (The one-shot products themselves are checked on every backend in
    /// `gf2::toeplitz_karatsuba` and `gf2::middle`.)
    #[test]
    fn one_shot_and_prepared_hashes_agree() {
        let be = backend::active();
        if be == backend::Backend::Vpclmul {
            assert_eq!(once_method(be, 1 << 18, 1 << 17), Once::Karatsuba);
            assert_eq!(once_method(be, 1 << 20, 1 << 19), Once::Fft);
            assert_eq!(once_method(be, 1 << 23, 1 << 22), Once::Fft);
        }
        for (n, m) in [(1usize << 18, 1usize << 17), (300_001, 100_000), (1 << 20, 1 << 19), (1 << 23, 1 << 22)] {
            let once = once_method(be, n, m) != Once::Prepare;
            let seed: Vec<u8> =
                (0..bytes_for(n + m - 1) as u64).map(|k| (k.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 31) as u8).collect();
            let x: Vec<u8> =
                (0..bytes_for(n) as u64).map(|k| (k.wrapping_mul(0xc2b2_ae3d_27d4_eb4f) >> 27) as u8).collect();
            let nbits = Some(n);
            let fresh = Toeplitz::new(n, m, &seed, BitOrder::Big).unwrap();
            let mut first = vec![0u8; bytes_for(m)];
            fresh.hash(&x, nbits, &mut first).unwrap();
            assert_eq!(fresh.product.get().is_none(), once, "n={n} m={m}: one-shot expected {once}");
            let mut second = vec![0u8; bytes_for(m)];
            fresh.hash(&x, nbits, &mut second).unwrap();
            assert!(fresh.product.get().is_some());
            assert_eq!(first, second, "n={n} m={m}");
            for algorithm in [Algorithm::Karatsuba, Algorithm::Fft(0)] {
                let t = Toeplitz::with_algorithm(n, m, &seed, BitOrder::Big, algorithm).unwrap();
                let mut out = vec![0u8; bytes_for(m)];
                t.hash(&x, nbits, &mut out).unwrap();
                assert_eq!(out, first, "n={n} m={m} {algorithm:?}");
            }
        }
    }

    #[test]
    fn rotation_moves_coefficients() {
        let bits: Vec<u8> = (0..150).map(|k| ((k * 7 + k / 3) % 2) as u8).collect();
        for r in [0usize, 1, 63, 64, 65, 100, 149] {
            let rot = rotate_left(&from_bit_vec(&bits), bits.len(), r);
            let expect: Vec<u8> = (0..bits.len()).map(|k| bits[(k + r) % bits.len()]).collect();
            assert_eq!(to_bit_vec(&rot, bits.len()), expect, "r = {r}");
        }
    }

    #[test]
    fn bad_sizes_are_rejected_with_the_argument_named() {
        let cases = [(0usize, 0usize, "n"), (8, 0, "m"), (8, 9, "m"), ((1 << 32) + 1, 1, "n")];
        for (n, m, name) in cases {
            match Toeplitz::new(n, m, &[], BitOrder::Big) {
                Err(Error::InvalidArgument { name: got, .. }) => assert_eq!(got, name, "n={n} m={m}"),
                other => panic!("n={n} m={m}: {other:?}"),
            }
        }
        match Toeplitz::new(8, 4, &[0u8; 3], BitOrder::Big) {
            Err(Error::InvalidLength { name: "seed", message }) => {
                assert!(message.contains("expected 2 bytes"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn partial_blocks_and_wrong_outputs_write_nothing() {
        let t = Toeplitz::new(16, 8, &[1, 2, 3], BitOrder::Big).unwrap();
        let mut out = [0xEEu8; 1];
        assert!(matches!(t.hash(&[1, 2, 3], None, &mut out), Err(Error::InvalidLength { name: "data", .. })));
        assert!(matches!(t.hash(&[1, 2], None, &mut [0u8; 2]), Err(Error::InvalidLength { name: "out", .. })));
        assert_eq!(out, [0xEE]);
    }

    #[test]
    fn sizes_beyond_memory_are_an_error_before_any_work() {
        // 2^32 bits: the prepared product alone needs gigabytes; ask for far more than exists by
        // checking the footprint of the largest allowed block against an impossible budget.
        let bytes = footprint(1 << 32, 1 << 31, Algorithm::Auto);
        assert!(bytes > 1 << 30, "{bytes}");
        assert!(matches!(
            ensure_available("Toeplitz", usize::MAX / 2),
            Err(Error::OutOfMemory { what: "Toeplitz", .. })
        ));
    }

    #[test]
    fn debug_hides_the_seed() {
        let t = Toeplitz::new(8, 4, &[0xA5, 0x5A], BitOrder::Big).unwrap();
        assert_eq!(format!("{t:?}"), "Toeplitz(n=8, m=4, order=Big, seed=<hidden>)");
    }

    #[test]
    fn seed_bytes_round_trip_in_both_orders() {
        for order in [BitOrder::Big, BitOrder::Little] {
            let seed = [0xA5u8, 0x5A, 0x0F];
            let t = Toeplitz::new(16, 8, &seed, order).unwrap();
            // 23 seed bits: the pad bit of the last byte is cleared.
            let pad_mask = match order {
                BitOrder::Big => 0xFE,
                BitOrder::Little => 0x7F,
            };
            assert_eq!(t.seed_bytes().expose(), &[0xA5, 0x5A, 0x0F & pad_mask]);
        }
    }
}

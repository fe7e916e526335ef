//! Modified Toeplitz hashing (Hayashi & Tsurumaru, IEEE Trans. Inf. Theory 62(4), 2016,
//! arXiv:1311.5322): `y = T·x[..n−m] ⊕ x[n−m..]` with `T` the `m × (n − m)` Toeplitz matrix
//! `T[i, j] = seed[(i − j) mod (n − 1)]` — randextract's `ModifiedToeplitzHashing` layout. The
//! family is still two-universal, with a seed of `n − 1` bits instead of `n + m − 1`; for `m = n`
//! it is the identity and takes no seed.

use std::fmt;

use zeroize::Zeroizing;

use super::blocks::{check_sizes, BlockHash, Shape};
use super::toeplitz::rotate_left;
use crate::bits::{bytes_for, extract_range, words_for, BitOrder};
use crate::error::Result;
use crate::gf2::alloc::ensure_available;
use crate::gf2::backend;
use crate::gf2::middle::{Algorithm, MiddleProduct};
use crate::secret::SecretBytes;

/// A modified Toeplitz hash function from `n` to `m` bits with a fixed seed.
pub struct ModifiedToeplitz {
    shape: Shape,
    /// The Toeplitz part, absent when `m = n`.
    product: Option<MiddleProduct>,
}

impl ModifiedToeplitz {
    /// The seed length for `n` input and `m` output bits: `n − 1`, or 0 when `m = n`.
    pub fn seed_bits(n: usize, m: usize) -> usize {
        if m == n {
            0
        } else {
            n - 1
        }
    }

    /// A hash function with the given seed (`bytes_for(seed_bits(n, m))` bytes in `order`).
    ///
    /// # Errors
    /// [`crate::Error::InvalidArgument`] unless `1 <= m <= n <= 2^36`; [`crate::Error::InvalidLength`] naming
    /// `seed` for a seed of the wrong size.
    pub fn new(n: usize, m: usize, seed: &[u8], order: BitOrder) -> Result<Self> {
        let bits = Self::seed_bits(n, m);
        check_sizes(n, m)?;
        ensure_available("ModifiedToeplitz", Self::footprint(n, m))?;
        let shape = Shape::load(n, m, order, seed, bits, "n - 1")?;
        let product = (m < n).then(|| {
            // The Toeplitz part maps n − m bits to m with a seed of n − 1 bits; its first factor is
            // the seed rotated left by m, as for plain Toeplitz hashing.
            let rotated = rotate_left(shape.seed_words(), bits, m);
            MiddleProduct::new(backend::active(), &rotated, n - m, m, Algorithm::Auto)
        });
        Ok(ModifiedToeplitz { shape, product })
    }

    /// A hash function with a fresh seed from the operating system's CSPRNG.
    ///
    /// # Errors
    /// As [`ModifiedToeplitz::new`], and [`crate::Error::Os`] when the OS cannot supply randomness.
    pub fn random(n: usize, m: usize, order: BitOrder) -> Result<Self> {
        check_sizes(n, m)?;
        ensure_available("ModifiedToeplitz", Self::footprint(n, m))?;
        let seed = SecretBytes::random(bytes_for(Self::seed_bits(n, m)))?;
        Self::new(n, m, seed.expose(), order)
    }
}

impl ModifiedToeplitz {
    /// The bytes the hash holds: the seed as given and loaded, and the Toeplitz part.
    fn footprint(n: usize, m: usize) -> usize {
        let product = if m < n { MiddleProduct::footprint(backend::active(), n - m, m, Algorithm::Auto) } else { 0 };
        product.saturating_add(bytes_for(n).saturating_mul(4))
    }
}

impl BlockHash for ModifiedToeplitz {
    fn shape(&self) -> &Shape {
        &self.shape
    }

    fn hash_words(&self, x: &[u64], y: &mut [u64], scratch: &mut Vec<u64>) {
        let (n, m) = (self.n(), self.m());
        let mut tail = Zeroizing::new(vec![0u64; words_for(m)]);
        extract_range(x, n - m, m, &mut tail);
        match &self.product {
            Some(product) => {
                let mut head = Zeroizing::new(vec![0u64; words_for(n - m)]);
                extract_range(x, 0, n - m, &mut head);
                product.apply(backend::active(), &head, y, scratch);
                for (o, t) in y.iter_mut().zip(tail.iter()) {
                    *o ^= t;
                }
            }
            None => y.copy_from_slice(&tail),
        }
    }
}

impl fmt::Debug for ModifiedToeplitz {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModifiedToeplitz(n={}, m={}, order={:?}, seed=<hidden>)", self.n(), self.m(), self.order())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::{from_bit_vec, store_bits, to_bit_vec};
    use crate::error::Error;
    use proptest::prelude::*;

    /// The definition on 0/1 bytes.
    fn modified_naive(seed: &[u8], x: &[u8], m: usize) -> Vec<u8> {
        let n = x.len();
        let cols = n - m;
        (0..m)
            .map(|i| {
                let t = (0..cols).fold(0u8, |acc, j| acc ^ (seed[(i + seed.len() - j) % seed.len()] & x[j]));
                t ^ x[cols + i]
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn matches_the_definition(
            (n, m, seed, x) in (2usize..600).prop_flat_map(|n| (Just(n), 1..n))
                .prop_flat_map(|(n, m)| (Just(n), Just(m), proptest::collection::vec(0u8..2, n - 1), proptest::collection::vec(0u8..2, n)))
        ) {
            let mut packed = vec![0u8; bytes_for(n - 1)];
            store_bits(&from_bit_vec(&seed), n - 1, BitOrder::Little, &mut packed, 0);
            let h = ModifiedToeplitz::new(n, m, &packed, BitOrder::Little).unwrap();
            let mut y = vec![0u64; words_for(m)];
            h.hash_words(&from_bit_vec(&x), &mut y, &mut Vec::new());
            prop_assert_eq!(to_bit_vec(&y, m), modified_naive(&seed, &x, m));
        }
    }

    #[test]
    fn square_case_is_the_identity_without_seed() {
        let h = ModifiedToeplitz::new(16, 16, &[], BitOrder::Big).unwrap();
        let mut out = [0u8; 4];
        h.hash(&[0xDE, 0xAD, 0xBE, 0xEF], None, &mut out).unwrap();
        assert_eq!(out, [0xDE, 0xAD, 0xBE, 0xEF]);
        assert!(matches!(
            ModifiedToeplitz::new(16, 16, &[0], BitOrder::Big),
            Err(Error::InvalidLength { name: "seed", .. })
        ));
    }
}

//! Key verification by a universal polynomial hash over GF(2^64).
//!
//! The key's `L` 64-bit words `m_1 … m_L` and its length `n` are hashed as the polynomial
//! `tag = m_1·k^(L+1) + m_2·k^L + … + m_L·k^2 + n·k` at a point `k` Alice draws after
//! reconciliation. Two different keys give the same tag only if `k` is a root of their
//! difference, a nonzero polynomial of degree at most `L + 1`: for `k` uniform that happens with
//! probability at most `(L + 1) / 2^64`, the bound [`collision_bound`] returns (ε_cor).
//! Appending the length makes keys of different lengths differ as polynomials too.

use super::bitvec::Bits;
use crate::gf2::backend::Backend;
use crate::gf2::gf64;

/// The tag of `key` at point `point`.
pub fn tag(backend: Backend, key: &Bits, point: u64) -> u64 {
    let mut acc = 0u64;
    for &w in &key.words {
        acc = gf64::mul(backend, acc ^ w, point);
    }
    gf64::mul(backend, acc ^ key.len as u64, point)
}

/// The probability that two different keys of `n` bits share a tag at a uniform point.
pub fn collision_bound(n: usize) -> f64 {
    (n.div_ceil(64) + 1) as f64 / 2f64.powi(64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gf2::gf64::mul_portable;

    /// The tag evaluated term by term: Σ m_i·k^(L+2−i) + n·k.
    fn naive(key: &Bits, point: u64) -> u64 {
        let l = key.words.len();
        let mut sum = 0u64;
        for (i, &w) in key.words.iter().enumerate() {
            sum ^= mul_portable(w, gf64::pow(point, (l + 1 - i) as u128));
        }
        sum ^ mul_portable(key.len as u64, point)
    }

    fn key(words: &[u64], len: usize) -> Bits {
        let mut b = Bits::zeros(len);
        b.words.copy_from_slice(words);
        b
    }

    #[test]
    fn horner_agrees_with_the_sum_of_terms() {
        let k = key(&[0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210, 0x55], 130);
        for point in [1u64, 2, 0x1b, 0xdead_beef_cafe_f00d] {
            assert_eq!(tag(Backend::best(), &k, point), naive(&k, point));
            assert_eq!(tag(Backend::Portable, &k, point), naive(&k, point));
        }
    }

    #[test]
    fn one_flipped_bit_or_another_length_changes_the_tag() {
        let k = key(&[7, 9], 128);
        let base = tag(Backend::best(), &k, 0x1234_5678_9abc_def1);
        for j in 0..128 {
            let mut m = k.clone();
            m.flip(j);
            assert_ne!(tag(Backend::best(), &m, 0x1234_5678_9abc_def1), base);
        }
        let shorter = key(&[7, 9], 127);
        assert_ne!(tag(Backend::best(), &shorter, 0x1234_5678_9abc_def1), base);
        assert!((collision_bound(128) - 3.0 / 2f64.powi(64)).abs() < 1e-30);
    }
}

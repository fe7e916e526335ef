//! Bit strings packed 64 to a word, bit `j` in word `j / 64` at position `j % 64`, with the
//! range parities Cascade asks for.

use crate::bits::{from_bit_vec, load_bits, store_bits, to_bit_vec, BitOrder};

/// Whether `x` has an odd number of ones: halves folded onto each other down to four bits, whose
/// parity is a bit of the constant 0x6996 (fewer instructions than a popcount without POPCNT).
#[inline]
fn odd(mut x: u64) -> bool {
    x ^= x >> 32;
    x ^= x >> 16;
    x ^= x >> 8;
    x ^= x >> 4;
    0x6996u16 >> (x & 0xf) & 1 == 1
}

/// A fixed-length bit string. Keys live in these: the words are zeroed when it is dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bits {
    pub words: Vec<u64>,
    pub len: usize,
}

impl Drop for Bits {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.words);
    }
}

impl Bits {
    pub fn zeros(len: usize) -> Self {
        Bits { words: vec![0; len.div_ceil(64)], len }
    }

    /// From one bit per byte (only the low bit of each byte counts).
    pub fn from_bytes(bits: &[u8]) -> Self {
        Bits { words: from_bit_vec(bits), len: bits.len() }
    }

    /// From packed bytes, bit `j` at bit `j % 8` of byte `j / 8`; `None` when `bytes` is not
    /// exactly `⌈len/8⌉` long or sets bits past `len`.
    pub fn from_packed(bytes: &[u8], len: usize) -> Option<Self> {
        if bytes.len() != len.div_ceil(8)
            || bytes.last().is_some_and(|&b| !len.is_multiple_of(8) && b >> (len % 8) != 0)
        {
            return None;
        }
        let mut b = Bits::zeros(len);
        load_bits(bytes, 0, len, BitOrder::Little, &mut b.words);
        Some(b)
    }

    /// Packed bytes, the inverse of [`Bits::from_packed`].
    pub fn to_packed(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len.div_ceil(8)];
        store_bits(&self.words, self.len, BitOrder::Little, &mut out, 0);
        out
    }

    /// One byte (0 or 1) per bit.
    pub fn to_bytes(&self) -> Vec<u8> {
        to_bit_vec(&self.words, self.len)
    }

    #[inline]
    pub fn get(&self, j: usize) -> bool {
        self.words[j / 64] >> (j % 64) & 1 == 1
    }

    #[inline]
    pub fn set(&mut self, j: usize, v: bool) {
        let w = &mut self.words[j / 64];
        *w = (*w & !(1 << (j % 64))) | (u64::from(v) << (j % 64));
    }

    #[inline]
    pub fn flip(&mut self, j: usize) {
        self.words[j / 64] ^= 1 << (j % 64);
    }

    /// Parity of bits `lo..hi`, optionally only those where `mask` has `select`.
    pub fn parity(&self, lo: usize, hi: usize, mask: Option<(&Bits, bool)>) -> bool {
        if lo >= hi {
            return false;
        }
        let (first, last) = (lo / 64, (hi - 1) / 64);
        let words = &self.words[first..=last];
        // The whole words are XORed together (a loop the compiler vectorises) and the parity
        // taken once, not a popcount per word: the CPU baseline has no POPCNT.
        let (folded, head, tail) = match mask {
            None => (words.iter().fold(0, |acc, w| acc ^ w), words[0], words[words.len() - 1]),
            Some((m, select)) => {
                let flip = if select { 0 } else { !0u64 };
                let m = &m.words[first..=last];
                let folded = words.iter().zip(m).fold(0, |acc, (w, m)| acc ^ (w & (m ^ flip)));
                (folded, words[0] & (m[0] ^ flip), words[words.len() - 1] & (m[m.len() - 1] ^ flip))
            }
        };
        // Then the bits below `lo` in the first word and from `hi` on in the last are taken
        // out again (disjoint sets, also when both are one word).
        let below = (1u64 << (lo % 64)) - 1;
        let from_hi = !(!0u64 >> (63 - (hi - 1) % 64));
        odd(folded ^ (head & below) ^ (tail & from_hi))
    }

    /// Number of set bits in `lo..hi`.
    pub fn count(&self, lo: usize, hi: usize) -> usize {
        self.count_fast(lo, hi)
    }

    fn count_fast(&self, lo: usize, hi: usize) -> usize {
        if lo >= hi {
            return 0;
        }
        let (first, last) = (lo / 64, (hi - 1) / 64);
        let low_mask = !0u64 << (lo % 64);
        let high_mask = if hi.is_multiple_of(64) { !0u64 } else { (1u64 << (hi % 64)) - 1 };
        if first == last {
            return (self.words[first] & low_mask & high_mask).count_ones() as usize;
        }
        let mut ones = (self.words[first] & low_mask).count_ones() + (self.words[last] & high_mask).count_ones();
        for i in first + 1..last {
            ones += self.words[i].count_ones();
        }
        ones as usize
    }

    /// Number of positions where `self` and `other` differ.
    pub fn distance(&self, other: &Bits) -> usize {
        self.words.iter().zip(&other.words).map(|(a, b)| (a ^ b).count_ones() as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn parities_and_counts_match_the_definition(
            bits in prop::collection::vec(0u8..2, 1..400),
            mask in prop::collection::vec(0u8..2, 400),
            a in 0usize..400, b in 0usize..400,
        ) {
            let n = bits.len();
            let (lo, hi) = (a.min(b) % (n + 1), a.max(b) % (n + 1));
            let (lo, hi) = (lo.min(hi), lo.max(hi));
            let v = Bits::from_bytes(&bits);
            let m = Bits::from_bytes(&mask[..n]);
            let naive = |sel: Option<u8>| bits[lo..hi].iter().zip(&mask[lo..hi]).filter(|(_, &k)| sel.is_none_or(|s| s == k)).fold(0u8, |p, (&x, _)| p ^ x) == 1;
            prop_assert_eq!(v.parity(lo, hi, None), naive(None));
            prop_assert_eq!(v.parity(lo, hi, Some((&m, true))), naive(Some(1)));
            prop_assert_eq!(v.parity(lo, hi, Some((&m, false))), naive(Some(0)));
            prop_assert_eq!(v.count(lo, hi), bits[lo..hi].iter().filter(|&&x| x == 1).count());
            prop_assert_eq!(v.to_bytes(), bits.clone());
            prop_assert!((0..n).all(|j| v.get(j) == (bits[j] == 1)));
            prop_assert_eq!(Bits::from_packed(&v.to_packed(), n), Some(v.clone()));
            // Packed bit j is bit j % 8 of byte j / 8.
            let packed = v.to_packed();
            prop_assert!((0..n).all(|j| (packed[j / 8] >> (j % 8) & 1 == 1) == (bits[j] == 1)));
        }
    }
}

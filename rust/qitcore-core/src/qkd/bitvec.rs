//! Bit strings packed 64 to a word, bit `j` in word `j / 64` at position `j % 64`, with the
//! range parities Cascade asks for.

/// `SPREAD[b]`: the eight bits of `b` as eight 0/1 bytes, lowest bit first.
const SPREAD: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut i = 0;
        while i < 8 {
            table[b] |= ((b as u64 >> i) & 1) << (8 * i);
            i += 1;
        }
        b += 1;
    }
    table
};

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
        let mut b = Bits::zeros(bits.len());
        for (word, chunk) in b.words.iter_mut().zip(bits.chunks(64)) {
            let mut w = 0u64;
            for (k, eight) in chunk.chunks(8).enumerate() {
                let mut buf = [0u8; 8];
                buf[..eight.len()].copy_from_slice(eight);
                // Eight 0/1 bytes to eight bits: the multiply sums byte i's bit into bit 56 + i.
                let x = u64::from_le_bytes(buf) & 0x0101_0101_0101_0101;
                w |= (x.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * k);
            }
            *word = w;
        }
        b
    }

    /// From packed bytes, bit `j` at bit `j % 8` of byte `j / 8`; `None` when `bytes` is not
    /// exactly `⌈len/8⌉` long or sets bits past `len`.
    pub fn from_packed(bytes: &[u8], len: usize) -> Option<Self> {
        if bytes.len() != len.div_ceil(8) {
            return None;
        }
        let mut b = Bits::zeros(len);
        for (i, &byte) in bytes.iter().enumerate() {
            b.words[i / 8] |= u64::from(byte) << (8 * (i % 8));
        }
        let tail = b.words.last().copied().unwrap_or(0);
        if !len.is_multiple_of(64) && tail >> (len % 64) != 0 {
            return None;
        }
        Some(b)
    }

    /// Packed bytes, the inverse of [`Bits::from_packed`].
    pub fn to_packed(&self) -> Vec<u8> {
        let mut out: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        out.truncate(self.len.div_ceil(8));
        out
    }

    /// One byte (0 or 1) per bit.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.len];
        for (chunk, &w) in out.chunks_mut(64).zip(&self.words) {
            for (k, eight) in chunk.chunks_mut(8).enumerate() {
                let spread = SPREAD[(w >> (8 * k)) as u8 as usize].to_le_bytes();
                eight.copy_from_slice(&spread[..eight.len()]);
            }
        }
        out
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
        let word = |i: usize| -> u64 {
            let w = self.words[i];
            match mask {
                None => w,
                Some((m, true)) => w & m.words[i],
                Some((m, false)) => w & !m.words[i],
            }
        };
        let (first, last) = (lo / 64, (hi - 1) / 64);
        let low_mask = !0u64 << (lo % 64);
        let high_mask = if hi.is_multiple_of(64) { !0u64 } else { (1u64 << (hi % 64)) - 1 };
        if first == last {
            return (word(first) & low_mask & high_mask).count_ones() & 1 == 1;
        }
        let mut ones = (word(first) & low_mask).count_ones() + (word(last) & high_mask).count_ones();
        for i in first + 1..last {
            ones += word(i).count_ones();
        }
        ones & 1 == 1
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
        }
    }
}

//! Uniformly random arrangements of a fixed number of set bits among `len`, packed 64 to a word
//! (bit `i % 64` of word `i / 64`), as the permutation tests' run statistics read them.
//!
//! The runs about the median see only whether each sample is at or above the median: a random
//! permutation of the samples gives them a uniformly random arrangement of those flags. Once
//! every other statistic is decided, a round needs only that arrangement, and drawing it as bits
//! costs a random word per 64 samples where arranging the samples costs a random number or a
//! comparison per sample.
//!
//! The method is the one of [`super::arrangement`], for two values: every bit is drawn fair and
//! independently (a random word gives 64), then the count is fixed by flipping uniformly random
//! bits of the kind in excess (found by probing random positions) until `ones` are set. The draw
//! is exchangeable (permuting the positions does not change its distribution) and the fix
//! treats positions symmetrically (a uniformly random subset of the excess kind), so the result
//! is exchangeable, hence uniform over the arrangements with `ones` set bits.

use super::xoshiro::Xoshiro256;

/// Whether [`random_bits`] arranges `ones` of `len` quickly: the fair draw leaves about
/// |ones − len/2| + √len / 2 bits to flip, each found in one or two probes, which is to stay a
/// small share of the `len / 64` words drawn. Outside this, a caller arranges the samples.
pub fn near_half(ones: usize, len: usize) -> bool {
    len > 0 && ones.abs_diff(len / 2) <= len / 16
}

/// Writes into `words` (whatever it held) a uniformly random arrangement of `ones` set bits
/// among `len` (`ones` at most `len`), bits from `len` on clear.
pub fn random_bits(ones: usize, len: usize, rng: &mut Xoshiro256, words: &mut Vec<u64>) {
    assert!(ones <= len, "{ones} set bits among {len}");
    words.clear();
    words.extend((0..len.div_ceil(64)).map(|_| rng.next_u64()));
    if !len.is_multiple_of(64) {
        if let Some(last) = words.last_mut() {
            *last &= (1u64 << (len % 64)) - 1;
        }
    }
    let mut set = words.iter().map(|w| w.count_ones() as usize).sum::<usize>();
    // Flip bits of the kind in excess: a probe that finds the other kind (or a bit already
    // flipped, which is now of the other kind) draws again.
    let too_many = set > ones;
    while set != ones {
        let i = rng.below_or_equal(len as u64 - 1) as usize;
        let (w, bit) = (i / 64, 1u64 << (i % 64));
        if (words[w] & bit != 0) == too_many {
            words[w] ^= bit;
            set = if too_many { set - 1 } else { set + 1 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn bits_of(words: &[u64], len: usize) -> Vec<bool> {
        (0..len).map(|i| words[i / 64] >> (i % 64) & 1 == 1).collect()
    }

    #[test]
    fn counts_are_exact_and_bits_past_the_end_clear() {
        let mut rng = Xoshiro256::from_seed(1);
        let mut words = Vec::new();
        for (ones, len) in [(0usize, 1usize), (1, 1), (0, 64), (64, 64), (3, 65), (500, 1000), (70_000, 100_003)] {
            random_bits(ones, len, &mut rng, &mut words);
            assert_eq!(words.len(), len.div_ceil(64));
            assert_eq!(words.iter().map(|w| w.count_ones() as usize).sum::<usize>(), ones, "{ones} of {len}");
            if !len.is_multiple_of(64) {
                assert_eq!(words[words.len() - 1] >> (len % 64), 0, "{ones} of {len}");
            }
        }
    }

    #[test]
    fn every_arrangement_is_equally_likely() {
        // 3 of 6 bits (20 arrangements) and 2 of 7 (21), the latter drawn with too many set
        // bits as a rule: each arrangement's frequency against 1/20 or 1/21, by a chi-square
        // statistic whose 99.9 % point (19 or 20 degrees of freedom) is below 46.
        let mut rng = Xoshiro256::from_seed(2);
        let mut words = Vec::new();
        for (ones, len, arrangements) in [(3usize, 6usize, 20usize), (2, 7, 21)] {
            let draws = 40_000;
            let mut seen: HashMap<Vec<bool>, usize> = HashMap::new();
            for _ in 0..draws {
                random_bits(ones, len, &mut rng, &mut words);
                *seen.entry(bits_of(&words, len)).or_default() += 1;
            }
            assert_eq!(seen.len(), arrangements);
            let expected = draws as f64 / arrangements as f64;
            let chi2: f64 = seen.values().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
            assert!(chi2 < 46.0, "{ones} of {len}: chi-square {chi2}");
        }
    }

    #[test]
    fn near_half_bounds_the_flips() {
        assert!(near_half(500, 1000) && near_half(562, 1000) && near_half(438, 1000));
        assert!(!near_half(563, 1000) && !near_half(437, 1000) && !near_half(0, 0));
    }
}

//! xoshiro256** (Blackman & Vigna, 2018), the generator NIST's tools shuffle with, and Lemire's
//! unbiased bounded integers (Lemire, "Fast random integer generation in an interval", 2019).

/// A xoshiro256** state.
#[derive(Clone)]
pub struct Xoshiro256 {
    s: [u64; 4],
}

/// The state stays out of debug output.
impl std::fmt::Debug for Xoshiro256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Xoshiro256 { .. }")
    }
}

impl Xoshiro256 {
    /// A state expanded from one 64-bit seed by SplitMix64 (never all zero).
    pub fn from_seed(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Xoshiro256 { s: [next(), next(), next(), next()] }
    }

    /// The next 64 bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform integer in `0..=high`, without modulo bias.
    #[inline]
    pub fn below_or_equal(&mut self, high: u64) -> u64 {
        if high == u64::MAX {
            return self.next_u64();
        }
        let range = high + 1;
        let mut m = u128::from(self.next_u64()) * u128::from(range);
        if (m as u64) < range {
            let threshold = range.wrapping_neg() % range;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(range);
            }
        }
        (m >> 64) as u64
    }
}

/// `n` bytes of the generator seeded with `seed` (test data that is the same on every run).
#[cfg(test)]
pub(crate) fn test_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut g = Xoshiro256::from_seed(seed);
    (0..n).map(|_| g.next_u64() as u8).collect()
}

/// Fisher–Yates shuffle of `a`.
pub fn shuffle<T>(a: &mut [T], rng: &mut Xoshiro256) {
    for i in (1..a.len()).rev() {
        let r = rng.below_or_equal(i as u64) as usize;
        a.swap(i, r);
    }
}

/// A uniform integer in `0..range` from 32 random bits `x`, drawing more from `rng` only when
/// `x` falls where it would bias the result (Lemire's method on 32 bits).
#[inline]
fn below32(x: u32, range: u32, rng: &mut Xoshiro256) -> usize {
    let mut m = u64::from(x) * u64::from(range);
    if (m as u32) < range {
        let threshold = range.wrapping_neg() % range;
        while (m as u32) < threshold {
            m = u64::from(rng.next_u64() as u32) * u64::from(range);
        }
    }
    (m >> 32) as usize
}

/// Fisher–Yates shuffle of `a` (shorter than 2^32) taking two positions from each 64-bit output:
/// half the generator calls and no 128-bit products.
pub fn shuffle_short<T>(a: &mut [T], rng: &mut Xoshiro256) {
    debug_assert!(a.len() <= u32::MAX as usize);
    let mut i = a.len();
    let p = a.as_mut_ptr();
    while i >= 3 {
        let r = rng.next_u64();
        let j = below32(r as u32, i as u32, rng);
        let k = below32((r >> 32) as u32, i as u32 - 1, rng);
        debug_assert!(j < i && k < i - 1);
        // SAFETY: j < i and k < i - 1, and i <= a.len(): both swaps stay within `a` (a swap of a
        // place with itself is allowed). Unchecked, since the checks are a tenth of the loop.
        unsafe {
            std::ptr::swap(p.add(i - 1), p.add(j));
            std::ptr::swap(p.add(i - 2), p.add(k));
        }
        i -= 2;
    }
    if i == 2 {
        let j = below32(rng.next_u64() as u32, 2, rng);
        a.swap(1, j);
    }
}

/// Writes a uniformly random permutation of `src` into `out`: a copy, then Fisher–Yates (two
/// positions per generator call below 2^32 elements). For a million bytes the swaps stay within
/// the core's second-level cache, where this beats bucketing first.
pub fn shuffle_into<T: Copy>(src: &[T], out: &mut [T], rng: &mut Xoshiro256) {
    out.copy_from_slice(src);
    if src.len() <= u32::MAX as usize {
        shuffle_short(out, rng);
    } else {
        shuffle(out, rng);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_output_of_the_published_algorithm() {
        // xoshiro256** from the state {1, 2, 3, 4}: the first outputs of the reference C code.
        let mut g = Xoshiro256 { s: [1, 2, 3, 4] };
        let first: Vec<u64> = (0..3).map(|_| g.next_u64()).collect();
        assert_eq!(first, vec![11520, 0, 1509978240]);
    }

    #[test]
    fn bounded_integers_are_uniform() {
        let mut g = Xoshiro256::from_seed(7);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[g.below_or_equal(5) as usize] += 1;
        }
        // Each cell ~ Binomial(60000, 1/6): mean 10000, sd ~91; six sigma either way.
        assert!(counts.iter().all(|&c| (9_450..=10_550).contains(&c)), "{counts:?}");
    }

    #[test]
    fn shuffles_are_uniform_over_small_permutations() {
        // All 24 orders of 4 elements, 48,000 draws: each expected 2,000 times (sd ~44).
        let mut g = Xoshiro256::from_seed(3);
        let a = [0u8, 1, 2, 3];
        let mut seen = std::collections::HashMap::new();
        let mut oa = [0u8; 4];
        for _ in 0..48_000 {
            shuffle_into(&a, &mut oa, &mut g);
            *seen.entry(oa).or_insert(0u32) += 1;
        }
        assert_eq!(seen.len(), 24);
        assert!(seen.values().all(|&c| (1_700..=2_300).contains(&c)), "{seen:?}");
    }

    #[test]
    fn shuffles_of_an_odd_length_are_uniform() {
        // All 120 orders of 5 elements, 120,000 draws: each expected 1,000 times (sd ~32).
        let mut g = Xoshiro256::from_seed(4);
        let a = [0u8, 1, 2, 3, 4];
        let mut out = [0u8; 5];
        let mut seen = std::collections::HashMap::new();
        for _ in 0..120_000 {
            shuffle_into(&a, &mut out, &mut g);
            *seen.entry(out).or_insert(0u32) += 1;
        }
        assert_eq!(seen.len(), 120);
        assert!(seen.values().all(|&c| (840..=1_160).contains(&c)), "{seen:?}");
    }

    #[test]
    fn shuffles_are_permutations() {
        let mut g = Xoshiro256::from_seed(1);
        let a: Vec<u16> = (0..2000).collect();
        let mut out = vec![0u16; a.len()];
        shuffle_into(&a, &mut out, &mut g);
        let mut sorted = out.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, a);
        assert_ne!(out, a);
        let mut b = a.clone();
        shuffle(&mut b, &mut g);
        assert_ne!(b, a);
        b.sort_unstable();
        assert_eq!(b, a);
        shuffle_short(&mut b, &mut g);
        assert_ne!(b, a);
        b.sort_unstable();
        assert_eq!(b, a);
    }
}

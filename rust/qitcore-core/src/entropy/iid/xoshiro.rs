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

/// Fisher–Yates shuffle of `a`.
pub fn shuffle<T>(a: &mut [T], rng: &mut Xoshiro256) {
    for i in (1..a.len()).rev() {
        let r = rng.below_or_equal(i as u64) as usize;
        a.swap(i, r);
    }
}

/// Writes a uniformly random permutation of `src` into `out` by the Rao–Sandelius method: each
/// element goes to one of 256 buckets chosen uniformly at random, and each bucket is then
/// shuffled by Fisher–Yates. The result is uniform like a plain Fisher–Yates shuffle, with the
/// random accesses confined to small buckets that stay in cache.
pub fn scatter_shuffle<T: Copy>(src: &[T], out: &mut [T], rng: &mut Xoshiro256) {
    let n = src.len();
    let mut labels = vec![0u8; n];
    for chunk in labels.chunks_mut(8) {
        let r = rng.next_u64().to_le_bytes();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
    let mut start = [0usize; 257];
    for &l in &labels {
        start[l as usize + 1] += 1;
    }
    for i in 0..256 {
        start[i + 1] += start[i];
    }
    let mut next = start;
    for (&l, &x) in labels.iter().zip(src) {
        let slot = &mut next[l as usize];
        out[*slot] = x;
        *slot += 1;
    }
    for bucket in 0..256 {
        shuffle(&mut out[start[bucket]..start[bucket + 1]], rng);
    }
}

/// [`scatter_shuffle`] of the pairs `(a[i], b[i])`, written to `out_a`, `out_b`.
pub fn scatter_shuffle_pairs(a: &[u8], b: &[u8], out_a: &mut [u8], out_b: &mut [u8], rng: &mut Xoshiro256) {
    let pairs: Vec<u16> = a.iter().zip(b).map(|(&x, &y)| u16::from(x) | u16::from(y) << 8).collect();
    let mut shuffled = vec![0u16; pairs.len()];
    scatter_shuffle(&pairs, &mut shuffled, rng);
    for ((p, x), y) in shuffled.iter().zip(out_a.iter_mut()).zip(out_b.iter_mut()) {
        *x = *p as u8;
        *y = (*p >> 8) as u8;
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
    fn scatter_shuffles_are_uniform_over_small_permutations() {
        // All 24 orders of 4 elements, 48,000 draws: each expected 2,000 times (sd ~44).
        let mut g = Xoshiro256::from_seed(3);
        let a = [0u8, 1, 2, 3];
        let mut seen = std::collections::HashMap::new();
        let (mut oa, mut ob) = ([0u8; 4], [0u8; 4]);
        for _ in 0..48_000 {
            scatter_shuffle_pairs(&a, &a, &mut oa, &mut ob, &mut g);
            assert_eq!(oa, ob);
            *seen.entry(oa).or_insert(0u32) += 1;
        }
        assert_eq!(seen.len(), 24);
        assert!(seen.values().all(|&c| (1_700..=2_300).contains(&c)), "{seen:?}");
    }

    #[test]
    fn shuffles_are_permutations() {
        let mut g = Xoshiro256::from_seed(1);
        let a: Vec<u16> = (0..2000).collect();
        let mut out = vec![0u16; a.len()];
        scatter_shuffle(&a, &mut out, &mut g);
        let mut sorted = out.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, a);
        assert_ne!(out, a);
        let mut b = a.clone();
        shuffle(&mut b, &mut g);
        assert_ne!(b, a);
        b.sort_unstable();
        assert_eq!(b, a);
    }

    #[test]
    fn pairs_stay_together() {
        let mut g = Xoshiro256::from_seed(2);
        let a: Vec<u8> = (0..=255).collect();
        let b: Vec<u8> = a.iter().map(|&x| x.wrapping_mul(7)).collect();
        let (mut oa, mut ob) = (vec![0u8; 256], vec![0u8; 256]);
        scatter_shuffle_pairs(&a, &b, &mut oa, &mut ob, &mut g);
        assert!(oa.iter().zip(&ob).all(|(&x, &y)| y == x.wrapping_mul(7)));
        assert_ne!(oa, a);
    }
}

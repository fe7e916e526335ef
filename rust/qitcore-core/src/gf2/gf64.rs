//! The field GF(2^64) = GF(2)\[t\] / (t^64 + t^4 + t^3 + t + 1), elements as `u64` (bit `i` is the
//! coefficient of `t^i`), and the slice kernels the additive FFT is made of, one per [`Backend`].

use super::backend::Backend;
use super::clmul::clmul_portable;

/// The low terms of the modulus: `t^64 ≡ t^4 + t^3 + t + 1`.
pub const MODULUS_LOW: u64 = 0x1B;

/// Reduces a 128-bit carry-less product modulo `t^64 + t^4 + t^3 + t + 1`.
#[inline(always)]
pub fn reduce(p: u128) -> u64 {
    let (lo, hi) = (p as u64, (p >> 64) as u64);
    // hi·t^64 ≡ hi·(t^4 + t^3 + t + 1): at most 68 bits, the 4 above t^63 folded once more.
    let spill = (hi >> 60) ^ (hi >> 61) ^ (hi >> 63);
    let fold = hi ^ (hi << 1) ^ (hi << 3) ^ (hi << 4);
    lo ^ fold ^ spill ^ (spill << 1) ^ (spill << 3) ^ (spill << 4)
}

/// The product in GF(2^64), portable arithmetic.
#[inline]
pub fn mul_portable(a: u64, b: u64) -> u64 {
    reduce(clmul_portable(a, b))
}

/// The product in GF(2^64) on `backend`.
#[inline]
pub fn mul(backend: Backend, a: u64, b: u64) -> u64 {
    match backend {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: Pclmul and Vpclmul are only selectable on CPUs with PCLMULQDQ.
        Backend::Pclmul | Backend::Vpclmul if Backend::Pclmul.is_available() => unsafe { x86::mul_pclmul(a, b) },
        _ => mul_portable(a, b),
    }
}

/// `a^e` by square and multiply.
pub fn pow(a: u64, mut e: u128) -> u64 {
    let (mut result, mut base) = (1u64, a);
    while e > 0 {
        if e & 1 == 1 {
            result = mul_portable(result, base);
        }
        base = mul_portable(base, base);
        e >>= 1;
    }
    result
}

/// Butterfly of the additive FFT, element by element: forward `lo ^= w·hi; hi ^= lo`, or its
/// inverse `hi ^= lo; lo ^= w·hi`.
pub fn butterfly(backend: Backend, lo: &mut [u64], hi: &mut [u64], w: u64, inverse: bool) {
    debug_assert_eq!(lo.len(), hi.len());
    if w == 0 {
        super::xor::xor_into(backend, hi, lo);
        return;
    }
    match backend {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the backend is only selectable on CPUs with its features.
        Backend::Vpclmul if Backend::Vpclmul.is_available() => unsafe { x86::butterfly_vpclmul(lo, hi, w, inverse) },
        _ => {
            for (l, h) in lo.iter_mut().zip(hi.iter_mut()) {
                if inverse {
                    *h ^= *l;
                    *l ^= mul(backend, w, *h);
                } else {
                    *l ^= mul(backend, w, *h);
                    *h ^= *l;
                }
            }
        }
    }
}

/// `acc[i] ^= a[i]·b[i]` in GF(2^64).
pub fn mul_accumulate(backend: Backend, acc: &mut [u64], a: &[u64], b: &[u64]) {
    debug_assert!(acc.len() == a.len() && a.len() == b.len());
    match backend {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the backend is only selectable on CPUs with its features.
        Backend::Vpclmul if Backend::Vpclmul.is_available() => unsafe { x86::mul_accumulate_vpclmul(acc, a, b) },
        _ => {
            for ((s, &x), &y) in acc.iter_mut().zip(a).zip(b) {
                *s ^= mul(backend, x, y);
            }
        }
    }
}

/// The last four levels of a transform on a block of 16 elements whose size-16 twiddle is
/// `W[b]`; `w(j)` returns `W[j]` for the small offsets `j < 8` (the twiddles are GF(2)-linear in
/// the block index, so sub-block `2^l·b + j` has twiddle `W[2^l·b] ⊕ W[j]`).
pub fn bottom16(backend: Backend, f: &mut [u64; 16], w_of: impl Fn(usize) -> u64, b: usize, inverse: bool) {
    let base = [w_of(b), w_of(2 * b), w_of(4 * b), w_of(8 * b)];
    let small: [u64; 8] = std::array::from_fn(&w_of);
    // The sub-block offset j of each lane in the vector kernel's layouts: level 0 has one block,
    // level 1 lanes 0..4 | 4..8, level 2 pairs of lanes, level 3 single lanes.
    let offsets: [[u64; 8]; 4] = [
        [0; 8],
        std::array::from_fn(|k| small[k / 4]),
        std::array::from_fn(|k| small[k / 2]),
        std::array::from_fn(|k| small[k]),
    ];
    match backend {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the backend is only selectable on CPUs with its features.
        Backend::Vpclmul if Backend::Vpclmul.is_available() => unsafe {
            x86::bottom16_vpclmul(f, base, &offsets, inverse)
        },
        _ => {
            let levels: Vec<usize> = if inverse { vec![3, 2, 1, 0] } else { vec![0, 1, 2, 3] };
            for l in levels {
                let half = 8 >> l;
                for (j, block) in f.chunks_exact_mut(2 * half).enumerate() {
                    let w = base[l] ^ small[j];
                    let (lo, hi) = block.split_at_mut(half);
                    butterfly(backend, lo, hi, w, inverse);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::reduce;
    use std::arch::x86_64::*;

    #[target_feature(enable = "pclmulqdq,sse2")]
    pub(super) unsafe fn mul_pclmul(a: u64, b: u64) -> u64 {
        let p = _mm_clmulepi64_si128(_mm_cvtsi64_si128(a as i64), _mm_cvtsi64_si128(b as i64), 0x00);
        let lo = _mm_cvtsi128_si64(p) as u64;
        let hi = _mm_extract_epi64(p, 1) as u64;
        reduce((u128::from(hi) << 64) | u128::from(lo))
    }

    /// Eight products `a[i]·b[i]` reduced to eight field elements.
    #[inline]
    #[target_feature(enable = "avx512f,vpclmulqdq")]
    fn mul8(a: __m512i, b: __m512i) -> __m512i {
        let even = _mm512_clmulepi64_epi128(a, b, 0x00);
        let odd = _mm512_clmulepi64_epi128(a, b, 0x11);
        // Products 0..8 in order: low halves and high halves.
        let lo = _mm512_unpacklo_epi64(even, odd);
        let hi = _mm512_unpackhi_epi64(even, odd);
        // hi·(t^4 + t^3 + t + 1): the part below t^64 by shifts, the ≤ 4 bits above folded again.
        let fold = _mm512_ternarylogic_epi64(
            hi,
            _mm512_slli_epi64(hi, 1),
            _mm512_xor_si512(_mm512_slli_epi64(hi, 3), _mm512_slli_epi64(hi, 4)),
            0x96,
        );
        let spill = _mm512_ternarylogic_epi64(
            _mm512_srli_epi64(hi, 60),
            _mm512_srli_epi64(hi, 61),
            _mm512_srli_epi64(hi, 63),
            0x96,
        );
        let spill_fold = _mm512_ternarylogic_epi64(
            spill,
            _mm512_slli_epi64(spill, 1),
            _mm512_xor_si512(_mm512_slli_epi64(spill, 3), _mm512_slli_epi64(spill, 4)),
            0x96,
        );
        _mm512_ternarylogic_epi64(lo, fold, spill_fold, 0x96)
    }

    #[target_feature(enable = "avx512f,vpclmulqdq")]
    pub(super) unsafe fn butterfly_vpclmul(lo: &mut [u64], hi: &mut [u64], w: u64, inverse: bool) {
        let wv = _mm512_set1_epi64(w as i64);
        let full = lo.len() / 8 * 8;
        for i in (0..full).step_by(8) {
            // SAFETY: i + 8 <= full <= len of both slices.
            unsafe {
                let pl = lo.as_mut_ptr().add(i) as *mut __m512i;
                let ph = hi.as_mut_ptr().add(i) as *mut __m512i;
                let (mut l, mut h) = (_mm512_loadu_si512(pl), _mm512_loadu_si512(ph));
                if inverse {
                    h = _mm512_xor_si512(h, l);
                    l = _mm512_xor_si512(l, mul8(h, wv));
                } else {
                    l = _mm512_xor_si512(l, mul8(h, wv));
                    h = _mm512_xor_si512(h, l);
                }
                _mm512_storeu_si512(pl, l);
                _mm512_storeu_si512(ph, h);
            }
        }
        for i in full..lo.len() {
            // SAFETY: every CPU with VPCLMULQDQ has PCLMULQDQ.
            let m = |x: u64| unsafe { mul_pclmul(w, x) };
            if inverse {
                hi[i] ^= lo[i];
                lo[i] ^= m(hi[i]);
            } else {
                lo[i] ^= m(hi[i]);
                hi[i] ^= lo[i];
            }
        }
    }

    /// Lane selections (indices into the 16 elements) of the low and high halves, per level.
    const LO: [[i64; 8]; 4] =
        [[0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 8, 9, 10, 11], [0, 1, 4, 5, 8, 9, 12, 13], [0, 2, 4, 6, 8, 10, 12, 14]];
    const HI: [[i64; 8]; 4] = [
        [8, 9, 10, 11, 12, 13, 14, 15],
        [4, 5, 6, 7, 12, 13, 14, 15],
        [2, 3, 6, 7, 10, 11, 14, 15],
        [1, 3, 5, 7, 9, 11, 13, 15],
    ];

    /// The inverse selections: element `e` comes from lane `k` of the low half (`k`) or of the
    /// high half (`8 + k`).
    const fn inverse_tables() -> [[i64; 16]; 4] {
        let mut inv = [[0i64; 16]; 4];
        let mut l = 0;
        while l < 4 {
            let mut k = 0;
            while k < 8 {
                inv[l][LO[l][k] as usize] = k as i64;
                inv[l][HI[l][k] as usize] = 8 + k as i64;
                k += 1;
            }
            l += 1;
        }
        inv
    }
    const BACK: [[i64; 16]; 4] = inverse_tables();

    /// The last four levels of a transform on one block of 16 elements, in registers. `base[l]` is
    /// the twiddle of the first sub-block at level `l` (sizes 16, 8, 4, 2) and `offsets[l]` the
    /// per-lane offsets `W[j]` of the sub-blocks the lanes belong to.
    #[target_feature(enable = "avx512f,vpclmulqdq")]
    pub(super) unsafe fn bottom16_vpclmul(f: &mut [u64; 16], base: [u64; 4], offsets: &[[u64; 8]; 4], inverse: bool) {
        let load8 = |p: *const i64| {
            // SAFETY: every caller passes a pointer to 8 readable elements.
            unsafe { _mm512_loadu_si512(p as *const __m512i) }
        };
        let mut v0 = load8(f.as_ptr() as *const i64);
        let mut v1 = load8(f[8..].as_ptr() as *const i64);
        let mut level = |l: usize| {
            let w = _mm512_xor_si512(_mm512_set1_epi64(base[l] as i64), load8(offsets[l].as_ptr() as *const i64));
            let mut lo = _mm512_permutex2var_epi64(v0, load8(LO[l].as_ptr()), v1);
            let mut hi = _mm512_permutex2var_epi64(v0, load8(HI[l].as_ptr()), v1);
            if inverse {
                hi = _mm512_xor_si512(hi, lo);
                lo = _mm512_xor_si512(lo, mul8(hi, w));
            } else {
                lo = _mm512_xor_si512(lo, mul8(hi, w));
                hi = _mm512_xor_si512(hi, lo);
            }
            v0 = _mm512_permutex2var_epi64(lo, load8(BACK[l].as_ptr()), hi);
            v1 = _mm512_permutex2var_epi64(lo, load8(BACK[l][8..].as_ptr()), hi);
        };
        if inverse {
            (0..4).rev().for_each(&mut level);
        } else {
            (0..4).for_each(&mut level);
        }
        // SAFETY: f holds 16 elements.
        unsafe {
            _mm512_storeu_si512(f.as_mut_ptr() as *mut __m512i, v0);
            _mm512_storeu_si512(f[8..].as_mut_ptr() as *mut __m512i, v1);
        }
    }

    #[target_feature(enable = "avx512f,vpclmulqdq")]
    pub(super) unsafe fn mul_accumulate_vpclmul(acc: &mut [u64], a: &[u64], b: &[u64]) {
        let full = a.len() / 8 * 8;
        for i in (0..full).step_by(8) {
            // SAFETY: i + 8 <= full <= len of all three slices.
            unsafe {
                let ps = acc.as_mut_ptr().add(i) as *mut __m512i;
                let va = _mm512_loadu_si512(a.as_ptr().add(i) as *const __m512i);
                let vb = _mm512_loadu_si512(b.as_ptr().add(i) as *const __m512i);
                _mm512_storeu_si512(ps, _mm512_xor_si512(_mm512_loadu_si512(ps), mul8(va, vb)));
            }
        }
        for i in full..a.len() {
            // SAFETY: every CPU with VPCLMULQDQ has PCLMULQDQ.
            acc[i] ^= unsafe { mul_pclmul(a[i], b[i]) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gf2::backend;
    use proptest::prelude::*;

    /// Shift-and-add multiplication with reduction bit by bit: the definition.
    fn mul_naive(a: u64, b: u64) -> u64 {
        let (mut acc, mut x) = (0u64, a);
        for i in 0..64 {
            if (b >> i) & 1 == 1 {
                acc ^= x;
            }
            let carry = x >> 63;
            x <<= 1;
            if carry == 1 {
                x ^= MODULUS_LOW;
            }
        }
        acc
    }

    proptest! {
        #[test]
        fn every_backend_multiplies_like_the_definition(a in any::<u64>(), b in any::<u64>()) {
            for be in backend::available() {
                prop_assert_eq!(mul(be, a, b), mul_naive(a, b), "{:?}", be);
            }
        }

        #[test]
        fn slice_kernels_match_scalar_products(
            lo in proptest::collection::vec(any::<u64>(), 0..40), w in any::<u64>(), seed in any::<u64>(),
        ) {
            let hi: Vec<u64> = lo.iter().map(|x| x.rotate_left(17) ^ seed).collect();
            for be in backend::available() {
                let (mut l, mut h) = (lo.clone(), hi.clone());
                butterfly(be, &mut l, &mut h, w, false);
                let expect_l: Vec<u64> = lo.iter().zip(&hi).map(|(&x, &y)| x ^ mul_naive(w, y)).collect();
                let expect_h: Vec<u64> = expect_l.iter().zip(&hi).map(|(&x, &y)| x ^ y).collect();
                prop_assert_eq!(&l, &expect_l);
                prop_assert_eq!(&h, &expect_h);
                butterfly(be, &mut l, &mut h, w, true);
                prop_assert_eq!(&l, &lo);
                prop_assert_eq!(&h, &hi);
                let mut p: Vec<u64> = lo.iter().map(|x| x ^ seed).collect();
                mul_accumulate(be, &mut p, &lo, &hi);
                let expect_p: Vec<u64> = lo.iter().zip(&hi).map(|(&x, &y)| x ^ seed ^ mul_naive(x, y)).collect();
                prop_assert_eq!(&p, &expect_p);
            }
        }
    }

    #[test]
    fn the_modulus_is_irreducible() {
        // Rabin's test for degree 64: t^(2^64) = t, and t^(2^32) - t is a unit (its inverse by
        // Fermat's little theorem multiplies back to 1).
        let t = 2u64;
        let mut x = t;
        for _ in 0..32 {
            x = mul_naive(x, x);
        }
        let d = x ^ t;
        assert_ne!(d, 0);
        let mut y = x;
        for _ in 32..64 {
            y = mul_naive(y, y);
        }
        assert_eq!(y, t);
        assert_eq!(mul_naive(pow(d, u128::from(u64::MAX) - 1), d), 1);
    }
}

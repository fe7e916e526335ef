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
    // The vector kernel reads and writes both over `lo`'s length.
    assert_eq!(lo.len(), hi.len(), "butterfly halves of unequal lengths");
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

/// Two levels of butterflies on the four quarters of a block, in one pass: forward, the
/// block's level (twiddle `w`, quarter 0 against 2 and 1 against 3) then its halves' (`w_lo`: 0
/// against 1, `w_hi`: 2 against 3); the inverse undoes them in the opposite order.
pub fn butterfly4(backend: Backend, q: [&mut [u64]; 4], [w, w_lo, w_hi]: [u64; 3], inverse: bool) {
    let [q0, q1, q2, q3] = q;
    // The vector kernel reads and writes all four over `q0`'s length.
    assert!(q0.len() == q1.len() && q1.len() == q2.len() && q2.len() == q3.len(), "quarters of unequal lengths");
    match backend {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the backend is only selectable on CPUs with its features.
        Backend::Vpclmul if Backend::Vpclmul.is_available() && q0.len() % 8 == 0 => unsafe {
            x86::butterfly4_vpclmul([q0, q1, q2, q3], [w, w_lo, w_hi], inverse)
        },
        _ => {
            if inverse {
                butterfly(backend, q0, q1, w_lo, true);
                butterfly(backend, q2, q3, w_hi, true);
                butterfly(backend, q0, q2, w, true);
                butterfly(backend, q1, q3, w, true);
            } else {
                butterfly(backend, q0, q2, w, false);
                butterfly(backend, q1, q3, w, false);
                butterfly(backend, q0, q1, w_lo, false);
                butterfly(backend, q2, q3, w_hi, false);
            }
        }
    }
}

/// `acc[i] ^= a[i]·b[i]` in GF(2^64).
pub fn mul_accumulate(backend: Backend, acc: &mut [u64], a: &[u64], b: &[u64]) {
    // The vector kernel reads and writes all three over `a`'s length.
    assert!(acc.len() == a.len() && a.len() == b.len(), "products of unequal lengths");
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

/// The twiddle offsets of the lowest levels, the same below every block: the twiddles are
/// GF(2)-linear in the block index, so sub-block `2^l·b + j` of a block `b` has twiddle
/// `W[2^l·b] ⊕ W[j]`. `lanes[l][q][k]` is `W[q·2^l + j]` for lane `k` of the vector kernels'
/// low half at level `l` (sizes 16, 8, 4, 2) of the `q`-th block of 16 below a block of 64:
/// level 0 has one sub-block, level 1 lanes 0..4 | 4..8, level 2 pairs of lanes, level 3 single
/// lanes (`j = k >> (3 − l)`).
pub struct Offsets {
    lanes: [[[u64; 8]; 4]; 4],
}

impl Offsets {
    /// The offsets from `w_of(j) = W[j]` (`j < 32`).
    pub fn new(w_of: impl Fn(usize) -> u64) -> Self {
        let lanes =
            std::array::from_fn(|l| std::array::from_fn(|q| std::array::from_fn(|k| w_of((q << l) + (k >> (3 - l))))));
        Offsets { lanes }
    }

    /// `W[j]` for `j < 8`.
    fn small(&self, j: usize) -> u64 {
        self.lanes[3][0][j]
    }
}

/// The last four levels of a transform on a block of 16 elements; `base[l]` is `W[2^l·b]`, the
/// twiddle of its first sub-block at level `l`.
pub fn bottom16(backend: Backend, f: &mut [u64; 16], base: [u64; 4], offsets: &Offsets, inverse: bool) {
    match backend {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the backend is only selectable on CPUs with its features.
        Backend::Vpclmul if Backend::Vpclmul.is_available() => unsafe {
            x86::bottom16_vpclmul(f, base, &offsets.lanes, inverse)
        },
        _ => {
            levels_portable(backend, f, 8, &base, offsets, if inverse { &[3, 2, 1, 0] } else { &[0, 1, 2, 3] }, inverse)
        }
    }
}

/// The levels `levels` of butterflies on `f`, in that order, one slice at a time (the kernels'
/// portable path): level `l` on blocks whose halves are `top >> l` long, block `j`'s twiddle
/// `base[l] ⊕ W[j]`.
fn levels_portable(
    backend: Backend,
    f: &mut [u64],
    top: usize,
    base: &[u64],
    offsets: &Offsets,
    levels: &[usize],
    inverse: bool,
) {
    for &l in levels {
        let half = top >> l;
        for (j, block) in f.chunks_exact_mut(2 * half).enumerate() {
            let (lo, hi) = block.split_at_mut(half);
            butterfly(backend, lo, hi, base[l] ^ offsets.small(j), inverse);
        }
    }
}

/// The last six levels of a transform on a block of 64 elements; `base[i]` is `W[2^i·b]`. The
/// vector kernel keeps the block in registers and runs its four blocks of 16 side by side, so
/// that their dependency chains overlap.
pub fn bottom64(backend: Backend, f: &mut [u64; 64], base: [u64; 6], offsets: &Offsets, inverse: bool) {
    match backend {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the backend is only selectable on CPUs with its features.
        Backend::Vpclmul if Backend::Vpclmul.is_available() => unsafe {
            x86::bottom64_vpclmul(f, base, &offsets.lanes, inverse)
        },
        _ => {
            if !inverse {
                levels_portable(backend, f, 32, &base, offsets, &[0, 1], false);
            }
            for (q, block) in f.chunks_exact_mut(16).enumerate() {
                let block: &mut [u64; 16] = block.try_into().expect("chunks of 16");
                let base16 = std::array::from_fn(|l| base[l + 2] ^ offsets.lanes[l][q][0]);
                bottom16(backend, block, base16, offsets, inverse);
            }
            if inverse {
                levels_portable(backend, f, 32, &base, offsets, &[1, 0], true);
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

    /// The reduction of `n·t^124` for each top nibble `n` of a product's high word: those four
    /// bits reach past t^63 when multiplied by `t^4 + t^3 + t + 1`, and fold back once more.
    const SPILL_FOLD: [u64; 16] = {
        let mut table = [0u64; 16];
        let mut n = 0;
        while n < 16 {
            let spill = n ^ (n >> 1) ^ (n >> 3);
            table[n as usize] = spill ^ (spill << 1) ^ (spill << 3) ^ (spill << 4);
            n += 1;
        }
        table
    };

    /// [`SPILL_FOLD`] as bytes (every entry is below 2^8), for a byte shuffle.
    const SPILL_FOLD_BYTES: [u8; 16] = {
        let mut bytes = [0u8; 16];
        let mut n = 0;
        while n < 16 {
            bytes[n] = SPILL_FOLD[n] as u8;
            assert!(SPILL_FOLD[n] < 256);
            n += 1;
        }
        bytes
    };

    /// Eight products `a[i]·b[i]` reduced to eight field elements.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,vpclmulqdq")]
    fn mul8(a: __m512i, b: __m512i) -> __m512i {
        let even = _mm512_clmulepi64_epi128(a, b, 0x00);
        let odd = _mm512_clmulepi64_epi128(a, b, 0x11);
        // Products 0..8 in order: low halves and high halves.
        let lo = _mm512_unpacklo_epi64(even, odd);
        let hi = _mm512_unpackhi_epi64(even, odd);
        // hi·(t^4 + t^3 + t + 1): the part below t^64 by shifts, as hi·(1 + t)·(1 + t^3) (two
        // shifts, not three: the vector shifts share their ports with the shuffles, which bound
        // these kernels); the ≤ 4 bits above t^63 depend on hi's top nibble alone, and their own
        // fold is looked up from it (16 entries).
        let doubled = _mm512_xor_si512(hi, _mm512_slli_epi64(hi, 1));
        let fold = _mm512_ternarylogic_epi64(lo, doubled, _mm512_slli_epi64(doubled, 3), 0x96);
        let nibble = _mm512_srli_epi64(hi, 60);
        // The folds are below 2^8: a byte table, looked up by each word's low byte (the nibble;
        // its other bytes are zero and look up entry 0, which is zero).
        // SAFETY: the table holds 16 bytes.
        let bytes = _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(SPILL_FOLD_BYTES.as_ptr().cast()) });
        let spill_fold = _mm512_shuffle_epi8(bytes, nibble);
        _mm512_xor_si512(fold, spill_fold)
    }

    #[target_feature(enable = "avx512f,avx512bw,vpclmulqdq")]
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

    /// `STEP[p][l]`: the selections that take the halves of level `p`'s layout straight to the
    /// halves of level `l`'s (low half's lanes, then high half's), without going back to memory
    /// order in between: two permutations a level instead of four.
    const fn step_tables() -> [[[i64; 16]; 4]; 4] {
        let mut step = [[[0i64; 16]; 4]; 4];
        let mut p = 0;
        while p < 4 {
            let mut l = 0;
            while l < 4 {
                let mut k = 0;
                while k < 8 {
                    step[p][l][k] = BACK[p][LO[l][k] as usize];
                    step[p][l][8 + k] = BACK[p][HI[l][k] as usize];
                    k += 1;
                }
                l += 1;
            }
            p += 1;
        }
        step
    }
    const STEP: [[[i64; 16]; 4]; 4] = step_tables();

    /// One butterfly on registers, forward or inverse.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,vpclmulqdq")]
    fn butterfly8(lo: &mut __m512i, hi: &mut __m512i, w: __m512i, inverse: bool) {
        if inverse {
            *hi = _mm512_xor_si512(*hi, *lo);
            *lo = _mm512_xor_si512(*lo, mul8(*hi, w));
        } else {
            *lo = _mm512_xor_si512(*lo, mul8(*hi, w));
            *hi = _mm512_xor_si512(*hi, *lo);
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn load8(p: &[u64; 8]) -> __m512i {
        // SAFETY: p holds 8 elements.
        unsafe { _mm512_loadu_si512(p.as_ptr() as *const __m512i) }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn index8(p: &[i64]) -> __m512i {
        let p: &[i64; 8] = p[..8].try_into().expect("8 indices");
        // SAFETY: p holds 8 elements.
        unsafe { _mm512_loadu_si512(p.as_ptr() as *const __m512i) }
    }

    /// The four levels of `N` blocks of 16 at once, block `q` as halves `lo[q]`, `hi[q]` of
    /// level 0 (memory order); `base[l]` is the first block's `W[2^l·b]` and `lanes[l][q]` the
    /// per-lane offsets of block `q`. The blocks are independent: running them level by level
    /// side by side overlaps their chains of dependent instructions.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,vpclmulqdq")]
    fn bottom16_levels<const N: usize>(
        lo: &mut [__m512i; N],
        hi: &mut [__m512i; N],
        base: &[u64],
        lanes: &[[[u64; 8]; 4]; 4],
        inverse: bool,
    ) {
        let order: [usize; 4] = if inverse { [3, 2, 1, 0] } else { [0, 1, 2, 3] };
        // The layout the halves are in: that of level `at`.
        let mut at = 0usize;
        for l in order {
            if l != at {
                let (to_lo, to_hi) = (index8(&STEP[at][l]), index8(&STEP[at][l][8..]));
                for q in 0..N {
                    (lo[q], hi[q]) = (
                        _mm512_permutex2var_epi64(lo[q], to_lo, hi[q]),
                        _mm512_permutex2var_epi64(lo[q], to_hi, hi[q]),
                    );
                }
                at = l;
            }
            let wb = _mm512_set1_epi64(base[l] as i64);
            for q in 0..N {
                butterfly8(&mut lo[q], &mut hi[q], _mm512_xor_si512(wb, load8(&lanes[l][q])), inverse);
            }
        }
        if at != 0 {
            let (to_lo, to_hi) = (index8(&BACK[at]), index8(&BACK[at][8..]));
            for q in 0..N {
                (lo[q], hi[q]) =
                    (_mm512_permutex2var_epi64(lo[q], to_lo, hi[q]), _mm512_permutex2var_epi64(lo[q], to_hi, hi[q]));
            }
        }
    }

    /// The last four levels of a transform on one block of 16 elements, in registers.
    #[target_feature(enable = "avx512f,avx512bw,vpclmulqdq")]
    pub(super) unsafe fn bottom16_vpclmul(
        f: &mut [u64; 16],
        base: [u64; 4],
        lanes: &[[[u64; 8]; 4]; 4],
        inverse: bool,
    ) {
        let p = f.as_mut_ptr() as *mut __m512i;
        // SAFETY: f holds 16 elements, two registers.
        let (mut lo, mut hi) = unsafe { ([_mm512_loadu_si512(p)], [_mm512_loadu_si512(p.add(1))]) };
        bottom16_levels(&mut lo, &mut hi, &base, lanes, inverse);
        // SAFETY: as above.
        unsafe {
            _mm512_storeu_si512(p, lo[0]);
            _mm512_storeu_si512(p.add(1), hi[0]);
        }
    }

    /// [`super::butterfly4`] eight elements of each quarter at a time (lengths multiples of 8).
    #[target_feature(enable = "avx512f,avx512bw,vpclmulqdq")]
    pub(super) unsafe fn butterfly4_vpclmul(q: [&mut [u64]; 4], twiddles: [u64; 3], inverse: bool) {
        // SAFETY: as the caller's.
        unsafe {
            if twiddles[0] == 0 && twiddles[1] == 0 {
                // A transform's block 0: its level's twiddle and its lower half's are W[0] = 0,
                // and those butterflies are additions (three quarters of the pass's products).
                butterfly4_body::<true>(q, twiddles, inverse)
            } else {
                butterfly4_body::<false>(q, twiddles, inverse)
            }
        }
    }

    /// [`butterfly4_vpclmul`], with `w = w_lo = 0` when `ZERO`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,vpclmulqdq")]
    unsafe fn butterfly4_body<const ZERO: bool>(q: [&mut [u64]; 4], [w, w_lo, w_hi]: [u64; 3], inverse: bool) {
        let (w, w_lo, w_hi) =
            (_mm512_set1_epi64(w as i64), _mm512_set1_epi64(w_lo as i64), _mm512_set1_epi64(w_hi as i64));
        // A butterfly whose twiddle is zero, either way: hi += lo.
        let add = |lo: &__m512i, hi: &mut __m512i| *hi = _mm512_xor_si512(*hi, *lo);
        let len = q[0].len();
        let p = q.map(|q| q.as_mut_ptr());
        for i in (0..len).step_by(8) {
            // SAFETY: i + 8 <= len, the length of every quarter.
            unsafe {
                let at = p.map(|p| p.add(i) as *mut __m512i);
                let [mut a, mut b, mut c, mut d] = at.map(|p| _mm512_loadu_si512(p));
                if inverse {
                    if ZERO {
                        add(&a, &mut b);
                    } else {
                        butterfly8(&mut a, &mut b, w_lo, true);
                    }
                    butterfly8(&mut c, &mut d, w_hi, true);
                    if ZERO {
                        add(&a, &mut c);
                        add(&b, &mut d);
                    } else {
                        butterfly8(&mut a, &mut c, w, true);
                        butterfly8(&mut b, &mut d, w, true);
                    }
                } else {
                    if ZERO {
                        add(&a, &mut c);
                        add(&b, &mut d);
                        add(&a, &mut b);
                    } else {
                        butterfly8(&mut a, &mut c, w, false);
                        butterfly8(&mut b, &mut d, w, false);
                        butterfly8(&mut a, &mut b, w_lo, false);
                    }
                    butterfly8(&mut c, &mut d, w_hi, false);
                }
                for (p, v) in at.into_iter().zip([a, b, c, d]) {
                    _mm512_storeu_si512(p, v);
                }
            }
        }
    }

    /// The two upper levels of a block of 64 elements in eight registers: one block of 64
    /// (registers `i` and `i + 4`), then two of 32, the second's twiddle `W[2b] ⊕ W[1]`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,vpclmulqdq")]
    fn upper64(r: &mut [__m512i; 8], base: [u64; 6], lanes: &[[[u64; 8]; 4]; 4], inverse: bool) {
        let w0 = _mm512_set1_epi64(base[0] as i64);
        let (w1, w1_hi) = (_mm512_set1_epi64(base[1] as i64), _mm512_set1_epi64((base[1] ^ lanes[0][1][0]) as i64));
        let [r0, r1, r2, r3, r4, r5, r6, r7] = r;
        if !inverse {
            butterfly8(r0, r4, w0, false);
            butterfly8(r1, r5, w0, false);
            butterfly8(r2, r6, w0, false);
            butterfly8(r3, r7, w0, false);
        }
        butterfly8(r0, r2, w1, inverse);
        butterfly8(r1, r3, w1, inverse);
        butterfly8(r4, r6, w1_hi, inverse);
        butterfly8(r5, r7, w1_hi, inverse);
        if inverse {
            butterfly8(r0, r4, w0, true);
            butterfly8(r1, r5, w0, true);
            butterfly8(r2, r6, w0, true);
            butterfly8(r3, r7, w0, true);
        }
    }

    /// The last six levels of a transform on one block of 64 elements, in eight registers: the
    /// two upper levels between whole registers, then its four blocks of 16 side by side.
    #[target_feature(enable = "avx512f,avx512bw,vpclmulqdq")]
    pub(super) unsafe fn bottom64_vpclmul(
        f: &mut [u64; 64],
        base: [u64; 6],
        lanes: &[[[u64; 8]; 4]; 4],
        inverse: bool,
    ) {
        let p = f.as_mut_ptr() as *mut __m512i;
        // SAFETY: f holds 64 elements, eight registers.
        let mut r: [__m512i; 8] = std::array::from_fn(|i| unsafe { _mm512_loadu_si512(p.add(i)) });
        if !inverse {
            upper64(&mut r, base, lanes, false);
        }
        let mut lo = [r[0], r[2], r[4], r[6]];
        let mut hi = [r[1], r[3], r[5], r[7]];
        bottom16_levels(&mut lo, &mut hi, &base[2..], lanes, inverse);
        r = [lo[0], hi[0], lo[1], hi[1], lo[2], hi[2], lo[3], hi[3]];
        if inverse {
            upper64(&mut r, base, lanes, true);
        }
        for (i, v) in r.into_iter().enumerate() {
            // SAFETY: as above.
            unsafe { _mm512_storeu_si512(p.add(i), v) };
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,vpclmulqdq")]
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
    fn slices_of_unequal_lengths_are_refused_on_every_backend() {
        // The vector kernels run over one slice's length and index the others by it: unequal
        // lengths must stop before any access, not read or write past a slice.
        for be in backend::available() {
            let mut long = vec![1u64; 16];
            let mut short = vec![2u64; 8];
            let caught = |f: &mut dyn FnMut()| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err();
            assert!(caught(&mut || butterfly(be, &mut long, &mut short, 3, false)), "{be:?} butterfly");
            let (mut a, mut b, mut c) = (vec![0u64; 16], vec![0u64; 16], vec![0u64; 16]);
            assert!(
                caught(&mut || butterfly4(be, [&mut a, &mut short, &mut b, &mut c], [1, 2, 3], false)),
                "{be:?} butterfly4"
            );
            assert!(caught(&mut || mul_accumulate(be, &mut long, &short, &a)), "{be:?} mul_accumulate");
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

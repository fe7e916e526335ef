//! Carry-less multiplication kernels, one per [`Backend`].
//!
//! The central kernel computes a window of words of a product `a·b` in GF(2)\[x\]: word `w` of the
//! product is `⊕_j lo(a[w-j]·b[j]) ⊕ hi(a[w-1-j]·b[j])`. The first operand comes padded with zero
//! words on both sides ([`Padded`]) so that the inner loops need no bounds tests; Toeplitz hashing
//! pads its seed once and then computes only the product words it needs, for any number of blocks.

use super::backend::Backend;

/// 64 × 64 → 128-bit carry-less product with integer multiplications only (constant time).
///
/// Each operand is split into five interleaved parts holding every fifth bit. An integer product
/// of two parts adds at most 13 bits into any column, so a column's count fits in the four bits
/// before the next column of the same residue, and its lowest bit is the carry-less sum.
#[inline]
pub fn clmul_portable(a: u64, b: u64) -> u128 {
    const M: u64 = 0x1084_2108_4210_8421; // bits 0, 5, 10, …, 60
    const fn wide_mask(r: u32) -> u128 {
        let mut m = 0u128;
        let mut k = r;
        while k < 128 {
            m |= 1u128 << k;
            k += 5;
        }
        m
    }
    const WIDE: [u128; 5] = [wide_mask(0), wide_mask(1), wide_mask(2), wide_mask(3), wide_mask(4)];
    let ap = [a & M, a & (M << 1), a & (M << 2), a & (M << 3), a & (M << 4)];
    let bp = [b & M, b & (M << 1), b & (M << 2), b & (M << 3), b & (M << 4)];
    let mut class = [0u128; 5];
    for (i, &x) in ap.iter().enumerate() {
        for (j, &y) in bp.iter().enumerate() {
            class[(i + j) % 5] ^= u128::from(x) * u128::from(y);
        }
    }
    class.iter().zip(WIDE).fold(0, |acc, (&c, m)| acc | (c & m))
}

/// Zero words kept after a padded operand (the wide kernel reads up to 14 words past a window).
pub const BACK: usize = 24;

/// An operand with zero words around it, so that kernels may read a little outside it: `front`
/// zero words, the operand's `len` words, then at least `front - 1 + BACK` zero words.
#[derive(Clone, Copy)]
pub struct PaddedView<'a> {
    words: &'a [u64],
    front: usize,
    len: usize,
}

impl<'a> PaddedView<'a> {
    /// Views a padded buffer; `None` when the padding is too short for second operands of up to
    /// `front - 1` words, or the padding is not zero.
    pub fn new(words: &'a [u64], front: usize, len: usize) -> Option<Self> {
        let ok = front >= 1
            && words.len() >= 2 * front + len + BACK - 1
            && words[..front].iter().all(|&w| w == 0)
            && words[front + len..].iter().all(|&w| w == 0);
        ok.then_some(PaddedView { words, front, len })
    }

    /// As [`PaddedView::new`] for a buffer whose padding the caller knows to be zero (a buffer
    /// reused for many operands, where checking every time would cost as much as a small
    /// product). The length is still checked; the zeros only in debug builds.
    pub(crate) fn new_zero_padded(words: &'a [u64], front: usize, len: usize) -> Self {
        assert!(front >= 1 && words.len() >= 2 * front + len + BACK - 1, "padding too short");
        debug_assert!(words[..front].iter().chain(&words[front + len..]).all(|&w| w == 0));
        PaddedView { words, front, len }
    }

    /// Number of words of the operand.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the operand has no words.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The longest second operand this padding serves.
    fn max_b(&self) -> usize {
        self.front - 1
    }
}

/// An owned operand padded for products with second operands of up to `max_b` words; zeroized on
/// drop because it holds a Toeplitz seed or key material.
pub struct Padded {
    words: Vec<u64>,
    front: usize,
    len: usize,
}

impl Padded {
    /// Pads a copy of `a` for products with second operands of up to `max_b` words.
    pub fn new(a: &[u64], max_b: usize) -> Self {
        let front = max_b + 1;
        let mut words = vec![0u64; 2 * front + a.len() + BACK - 1];
        words[front..front + a.len()].copy_from_slice(a);
        Padded { words, front, len: a.len() }
    }

    /// The padded operand for the kernels.
    pub fn view(&self) -> PaddedView<'_> {
        PaddedView { words: &self.words, front: self.front, len: self.len }
    }

    /// Number of words of the unpadded operand.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the operand has no words.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Padded {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.words);
    }
}

/// Writes words `start .. start + out.len()` of the product `a·b` into `out`.
///
/// Requires `b.len() <= a`'s padding and `start + out.len() <= a.len() + b.len()`.
pub fn product_window(backend: Backend, a: PaddedView<'_>, b: &[u64], start: usize, out: &mut [u64]) {
    assert!(b.len() <= a.max_b(), "second operand longer than the padding allows");
    assert!(start + out.len() <= a.len + b.len(), "window past the end of the product");
    if out.is_empty() {
        return;
    }
    match backend {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the backend is only selectable when the CPU has its features (Backend::is_available).
        Backend::Vpclmul if Backend::Vpclmul.is_available() => unsafe { x86::window_vpclmul(a, b, start, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Backend::Pclmul | Backend::Vpclmul if Backend::Pclmul.is_available() => unsafe {
            x86::window_pclmul(a, b, start, out)
        },
        _ => window_portable(a, b, start, out),
    }
}

fn window_portable(a: PaddedView<'_>, b: &[u64], start: usize, out: &mut [u64]) {
    let base = a.front;
    // q(s) = Σ_j a[s-j]·b[j] as 128 bits; word w = lo(q(w)) ⊕ hi(q(w-1)).
    let q = |s: usize| -> u128 {
        b.iter().enumerate().fold(0u128, |acc, (j, &bj)| acc ^ clmul_portable(a.words[base + s - j], bj))
    };
    let mut carry = if start == 0 { 0 } else { (q(start - 1) >> 64) as u64 };
    for (k, o) in out.iter_mut().enumerate() {
        let v = q(start + k);
        *o = v as u64 ^ carry;
        carry = (v >> 64) as u64;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::PaddedView;
    use std::arch::x86_64::*;

    /// Two sums per step: a 128-bit load of `a[s-j], a[s-j+1]` times `b[j]` gives the terms of
    /// `q(s)` and `q(s+1)`, where `q(s) = Σ_j a[s-j]·b[j]` and word `w` is `lo q(w) ⊕ hi q(w-1)`.
    #[target_feature(enable = "pclmulqdq,sse2")]
    pub(super) unsafe fn window_pclmul(a: PaddedView<'_>, b: &[u64], start: usize, out: &mut [u64]) {
        let words = a.words.as_ptr();
        let base = a.front as isize;
        let mut q = [0u64; 4];
        let mut s = start as isize - 1;
        let mut prev_hi = 0u64;
        let mut done = 0usize;
        while done < out.len() {
            let mut acc0 = _mm_setzero_si128();
            let mut acc1 = _mm_setzero_si128();
            for (j, &bj) in b.iter().enumerate() {
                // SAFETY: indices s-j, s-j+1 lie in [start-1-len(b), start+len(out)], inside the padding.
                let pair = unsafe { _mm_loadu_si128(words.offset(base + s - j as isize) as *const __m128i) };
                let bv = _mm_set_epi64x(0, bj as i64);
                acc0 = _mm_xor_si128(acc0, _mm_clmulepi64_si128(pair, bv, 0x00));
                acc1 = _mm_xor_si128(acc1, _mm_clmulepi64_si128(pair, bv, 0x01));
            }
            // SAFETY: q has room for two 128-bit stores.
            unsafe {
                _mm_storeu_si128(q.as_mut_ptr() as *mut __m128i, acc0);
                _mm_storeu_si128(q.as_mut_ptr().add(2) as *mut __m128i, acc1);
            }
            for (lo, hi) in [(q[0], q[1]), (q[2], q[3])] {
                if s >= start as isize && done < out.len() {
                    out[done] = lo ^ prev_hi;
                    done += 1;
                }
                prev_hi = hi;
                s += 1;
            }
        }
    }

    /// Eight product words per step. A 512-bit load `C = a[s-j .. s-j+8]` times `b[j]`: the low
    /// qword of lane `l`, `a[s-j+2l]`, gives the terms of `q(s+2l)` (`even`, which lands on words
    /// `s+2l, s+2l+1`: lane-aligned); the high qword, `a[s-j+2l+1]`, those of `q(s+2l+1)` (`odd`,
    /// one word late). Word `s+i` is then `even[i] ⊕ odd[i-1]`, where `odd[-1]`, the high half of
    /// `q(s-1)`, is the previous window's last odd word: each window computes exactly its eight
    /// `q`s, and only the first needs one more, `q(start-1)`, computed alone (eight terms a step).
    #[target_feature(enable = "avx512f,vpclmulqdq,pclmulqdq,sse2")]
    pub(super) unsafe fn window_vpclmul(a: PaddedView<'_>, b: &[u64], start: usize, out: &mut [u64]) {
        let words = a.words.as_ptr();
        let base = a.front as isize;
        let mut odd_before = _mm512_setzero_si512();
        if start > 0 {
            // q(c) for c = start - 1, eight terms per step: the words a[c-j-7 .. c-j] against
            // b[j .. j+8] reversed pair up as a[c-j-7+i]·b[j+7-i]; lanes past the end of b are
            // masked off in both loads (so nothing outside the padding is read).
            let c = start as isize - 1;
            let reverse = _mm512_set_epi64(0, 1, 2, 3, 4, 5, 6, 7);
            let mut acc = _mm512_setzero_si512();
            let mut j = 0usize;
            while j < b.len() {
                let rem = (b.len() - j).min(8);
                let low: __mmask8 = if rem == 8 { 0xFF } else { (1u8 << rem) - 1 };
                let high: __mmask8 = low << (8 - rem);
                // SAFETY: the unmasked lanes read b[j .. j+rem] and a[c-j-rem+1 .. c-j], whose
                // lowest index start-len(b) lies inside the front padding (len(b) <= front-1).
                let (av, bv) = unsafe {
                    (
                        _mm512_maskz_loadu_epi64(high, words.offset(base + c - j as isize - 7) as *const i64),
                        _mm512_maskz_loadu_epi64(low, b.as_ptr().add(j) as *const i64),
                    )
                };
                let bv = _mm512_permutexvar_epi64(reverse, bv);
                acc = _mm512_xor_si512(acc, _mm512_clmulepi64_epi128(av, bv, 0x00));
                acc = _mm512_xor_si512(acc, _mm512_clmulepi64_epi128(av, bv, 0x11));
                j += 8;
            }
            let folded = _mm_xor_si128(
                _mm_xor_si128(_mm512_castsi512_si128(acc), _mm512_extracti32x4_epi32(acc, 1)),
                _mm_xor_si128(_mm512_extracti32x4_epi32(acc, 2), _mm512_extracti32x4_epi32(acc, 3)),
            );
            let hi = _mm_extract_epi64(folded, 1);
            odd_before = _mm512_set_epi64(hi, 0, 0, 0, 0, 0, 0, 0);
        }
        let mut s = start as isize;
        let mut done = 0usize;
        while done < out.len() {
            let mut even = _mm512_setzero_si512();
            let mut odd = _mm512_setzero_si512();
            for (j, &bj) in b.iter().enumerate() {
                // SAFETY: indices s-j .. s-j+7 lie in [start+1-len(b), start+len(out)+14], inside the padding.
                let c = unsafe { _mm512_loadu_si512(words.offset(base + s - j as isize) as *const __m512i) };
                let bv = _mm512_set1_epi64(bj as i64);
                even = _mm512_xor_si512(even, _mm512_clmulepi64_epi128(c, bv, 0x00));
                odd = _mm512_xor_si512(odd, _mm512_clmulepi64_epi128(c, bv, 0x01));
            }
            let words8 = _mm512_xor_si512(even, _mm512_alignr_epi64(odd, odd_before, 7));
            let take = (out.len() - done).min(8);
            let mask: __mmask8 = if take == 8 { 0xFF } else { (1u8 << take) - 1 };
            // SAFETY: the mask writes only out[done .. done + take].
            unsafe { _mm512_mask_storeu_epi64(out.as_mut_ptr().add(done) as *mut i64, mask, words8) };
            done += take;
            s += 8;
            odd_before = odd;
        }
    }
}

/// The definitions, for tests of the fast paths.
#[cfg(test)]
pub(crate) mod naive {
    /// Shift-and-add: the carry-less product of two words.
    pub fn clmul(a: u64, b: u64) -> u128 {
        (0..64).filter(|i| (b >> i) & 1 == 1).fold(0u128, |acc, i| acc ^ (u128::from(a) << i))
    }

    /// The schoolbook product of two word polynomials (`a.len() + b.len()` words).
    pub fn product(a: &[u64], b: &[u64]) -> Vec<u64> {
        let mut out = vec![0u64; a.len() + b.len()];
        for (i, &x) in a.iter().enumerate() {
            for (j, &y) in b.iter().enumerate() {
                let p = clmul(x, y);
                out[i + j] ^= p as u64;
                out[i + j + 1] ^= (p >> 64) as u64;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use naive::{clmul as clmul_naive, product as product_naive};

    proptest! {
        #[test]
        fn portable_clmul_is_the_carry_less_product(a in any::<u64>(), b in any::<u64>()) {
            prop_assert_eq!(clmul_portable(a, b), clmul_naive(a, b));
        }

        #[test]
        fn every_backend_computes_every_window(
            a in proptest::collection::vec(any::<u64>(), 1..40),
            b in proptest::collection::vec(any::<u64>(), 1..40),
            start_frac in 0.0f64..1.0, len_frac in 0.0f64..1.0,
        ) {
            let full = product_naive(&a, &b);
            let start = (start_frac * full.len() as f64) as usize;
            let len = ((len_frac * (full.len() - start) as f64) as usize).max(1).min(full.len() - start);
            let padded = Padded::new(&a, b.len());
            for backend in crate::gf2::backend::available() {
                let mut out = vec![0xdead_beefu64; len];
                product_window(backend, padded.view(), &b, start, &mut out);
                prop_assert_eq!(&out[..], &full[start..start + len], "backend {:?}", backend);
            }
        }
    }

    #[test]
    fn all_ones_operands_saturate_every_column() {
        // The worst case for the portable multiplier: 13 carries into one column.
        assert_eq!(clmul_portable(u64::MAX, u64::MAX), clmul_naive(u64::MAX, u64::MAX));
    }
}

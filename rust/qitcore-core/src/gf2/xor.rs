//! Adding polynomials (XOR of word slices), the additive FFT's basis changes and Karatsuba's
//! recombination are made of. Wide registers are used when the backend has them.

use super::backend::Backend;

/// Slices shorter than this are XORed word by word (a call into the wide kernel costs more).
const WIDE_MIN: usize = 16;

/// `dst[i] ^= src[i]` over the length of `src` (`dst` may be longer).
#[inline]
pub fn xor_into(backend: Backend, dst: &mut [u64], src: &[u64]) {
    let dst = &mut dst[..src.len()];
    #[cfg(target_arch = "x86_64")]
    if backend == Backend::Vpclmul && src.len() >= WIDE_MIN {
        // SAFETY: the Vpclmul backend is only selectable on CPUs with AVX-512F.
        unsafe { xor_avx512(dst, src) };
        return;
    }
    let _ = backend;
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

/// `dst[i] ^= src[i]` on 32-bit elements over the length of `src` (`dst` may be longer).
#[inline]
pub fn xor_into32(backend: Backend, dst: &mut [u32], src: &[u32]) {
    let dst = &mut dst[..src.len()];
    #[cfg(target_arch = "x86_64")]
    if backend == Backend::Vpclmul && src.len() >= 2 * WIDE_MIN {
        // SAFETY: the Vpclmul backend is only selectable on CPUs with AVX-512F.
        unsafe { xor_avx512(dst, src) };
        return;
    }
    let _ = backend;
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

/// `f[dst .. dst + len] ^= f[src .. src + len]` for each step `(dst, src, len)` in order (each with
/// `dst + len <= src`), in one call: the basis changes' levels just above their leaves are many
/// runs of a few registers, where a call per run cost more than its XORs.
pub fn xor_steps<T: Copy + std::ops::BitXorAssign>(backend: Backend, f: &mut [T], steps: &[(u16, u16, u16)]) {
    #[cfg(target_arch = "x86_64")]
    if backend == Backend::Vpclmul {
        // SAFETY: the Vpclmul backend is only selectable on CPUs with AVX-512F.
        unsafe { xor_steps_avx512(f, steps) };
        return;
    }
    let _ = backend;
    xor_steps_plain(f, steps);
}

#[inline(always)]
fn xor_steps_plain<T: Copy + std::ops::BitXorAssign>(f: &mut [T], steps: &[(u16, u16, u16)]) {
    for &(dst, src, len) in steps {
        let (dst, src, len) = (usize::from(dst), usize::from(src), usize::from(len));
        let (below, source) = f.split_at_mut(src);
        for (d, &s) in below[dst..dst + len].iter_mut().zip(&source[..len]) {
            *d ^= s;
        }
    }
}

/// [`xor_steps_plain`] compiled for AVX-512 (the loops vectorise to it).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn xor_steps_avx512<T: Copy + std::ops::BitXorAssign>(f: &mut [T], steps: &[(u16, u16, u16)]) {
    xor_steps_plain(f, steps);
}

/// `out_u[i] = common[i] ^ u[i]` and `out_v[i] = common[i] ^ v[i]` over the length of `common`,
/// in one pass: a Toeplitz-Karatsuba level forms its sequences `A + B`, `A + C` and its outputs
/// `P + Q`, `P + R` this way, reading the shared operand once.
#[inline]
pub fn xor_both(backend: Backend, common: &[u64], u: &[u64], v: &[u64], out_u: &mut [u64], out_v: &mut [u64]) {
    let len = common.len();
    let (u, v, out_u, out_v) = (&u[..len], &v[..len], &mut out_u[..len], &mut out_v[..len]);
    #[cfg(target_arch = "x86_64")]
    if backend == Backend::Vpclmul && len >= WIDE_MIN {
        // SAFETY: the Vpclmul backend is only selectable on CPUs with AVX-512F; all five slices
        // have `len` words.
        unsafe { xor_both_avx512(common, u, v, out_u, out_v) };
        return;
    }
    let _ = backend;
    for i in 0..len {
        out_u[i] = common[i] ^ u[i];
        out_v[i] = common[i] ^ v[i];
    }
}

/// `out[i] = a[i] ^ b[i]` over the length of `a`.
#[inline]
pub fn xor_to(backend: Backend, a: &[u64], b: &[u64], out: &mut [u64]) {
    let len = a.len();
    let (b, out) = (&b[..len], &mut out[..len]);
    #[cfg(target_arch = "x86_64")]
    if backend == Backend::Vpclmul && len >= WIDE_MIN {
        // SAFETY: as in `xor_both`; the three slices have `len` words.
        unsafe { xor_to_avx512(a, b, out) };
        return;
    }
    let _ = backend;
    for i in 0..len {
        out[i] = a[i] ^ b[i];
    }
}

/// ORs coefficients `src_start .. src_start + nbits` of `src` into `dst` at coefficient
/// `dst_start`, as [`crate::bits::or_bits`] does (coefficients past the end of `src` read as
/// zero), in one branch-free pass with no temporary: the seed's sequences of the one-shot
/// products are shifted this way per block, and `or_bits`' copy cost as much as a level of the
/// recursion.
pub fn or_shifted(dst: &mut [u64], dst_start: usize, src: &[u64], src_start: usize, nbits: usize) {
    if nbits == 0 {
        return;
    }
    // Destination word w holds source coefficients from 64·w + delta on.
    let delta = src_start as i128 - dst_start as i128;
    let (first, last) = (dst_start / 64, (dst_start + nbits - 1) / 64);
    let word = |i: i128| if (0..src.len() as i128).contains(&i) { src[i as usize] } else { 0 };
    let at = |w: usize| -> u64 {
        let p = 64 * w as i128 + delta;
        let (q, r) = (p.div_euclid(64), p.rem_euclid(64) as u32);
        if r == 0 {
            word(q)
        } else {
            (word(q) >> r) | (word(q + 1) << (64 - r))
        }
    };
    let mask = |w: usize| -> u64 {
        let lo = if w == first { u64::MAX << (dst_start % 64) } else { u64::MAX };
        let end = (dst_start + nbits) % 64;
        let hi = if w == last && end != 0 { u64::MAX >> (64 - end) } else { u64::MAX };
        lo & hi
    };
    dst[first] |= at(first) & mask(first);
    if last == first {
        return;
    }
    dst[last] |= at(last) & mask(last);
    // The words between share one shift; where both source words they read exist, the loop has
    // no tests (it vectorizes), and the few others read zeros through `at`.
    let p = 64 * (first + 1) as i128 + delta;
    let (q, r) = (p.div_euclid(64), p.rem_euclid(64) as u32);
    let inner = &mut dst[first + 1..last];
    let reach = q + i128::from(r != 0);
    let i0 = (-q).clamp(0, inner.len() as i128) as usize;
    let i1 = (src.len() as i128 - reach).clamp(i0 as i128, inner.len() as i128) as usize;
    for i in (0..i0).chain(i1..inner.len()) {
        inner[i] |= at(first + 1 + i);
    }
    if i0 < i1 {
        let s0 = (q + i0 as i128) as usize;
        let run = &mut inner[i0..i1];
        if r == 0 {
            for (d, &w) in run.iter_mut().zip(&src[s0..]) {
                *d |= w;
            }
        } else {
            for (d, w) in run.iter_mut().zip(src[s0..].windows(2)) {
                *d |= (w[0] >> r) | (w[1] << (64 - r));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn xor_both_avx512(common: &[u64], u: &[u64], v: &[u64], out_u: &mut [u64], out_v: &mut [u64]) {
    use std::arch::x86_64::*;
    let len = common.len();
    let full = len / 8 * 8;
    for i in (0..full).step_by(8) {
        // SAFETY: i + 8 <= full <= the length of all five slices (the caller's contract).
        unsafe {
            let c = _mm512_loadu_si512(common.as_ptr().add(i) as *const __m512i);
            let a = _mm512_loadu_si512(u.as_ptr().add(i) as *const __m512i);
            let b = _mm512_loadu_si512(v.as_ptr().add(i) as *const __m512i);
            _mm512_storeu_si512(out_u.as_mut_ptr().add(i) as *mut __m512i, _mm512_xor_si512(c, a));
            _mm512_storeu_si512(out_v.as_mut_ptr().add(i) as *mut __m512i, _mm512_xor_si512(c, b));
        }
    }
    for i in full..len {
        out_u[i] = common[i] ^ u[i];
        out_v[i] = common[i] ^ v[i];
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn xor_to_avx512(a: &[u64], b: &[u64], out: &mut [u64]) {
    use std::arch::x86_64::*;
    let full = a.len() / 8 * 8;
    for i in (0..full).step_by(8) {
        // SAFETY: i + 8 <= full <= the length of all three slices (the caller's contract).
        unsafe {
            let x = _mm512_loadu_si512(a.as_ptr().add(i) as *const __m512i);
            let y = _mm512_loadu_si512(b.as_ptr().add(i) as *const __m512i);
            _mm512_storeu_si512(out.as_mut_ptr().add(i) as *mut __m512i, _mm512_xor_si512(x, y));
        }
    }
    for i in full..a.len() {
        out[i] = a[i] ^ b[i];
    }
}

/// `dst[i] ^= src[i]` over the length of `src` (at most `dst`'s), 64 bytes at a time: for the
/// 64-bit words of the products and the 32-bit pieces of the split FFT alike.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn xor_avx512<T: Copy + std::ops::BitXorAssign>(dst: &mut [T], src: &[T]) {
    use std::arch::x86_64::*;
    assert!(dst.len() >= src.len());
    let lanes = 64 / std::mem::size_of::<T>();
    let full = src.len() / lanes * lanes;
    for i in (0..full).step_by(lanes) {
        // SAFETY: i + lanes <= full <= the length of both slices, and `lanes` elements are 64
        // bytes; unaligned loads and stores.
        unsafe {
            let pd = dst.as_mut_ptr().add(i) as *mut __m512i;
            let ps = src.as_ptr().add(i) as *const __m512i;
            _mm512_storeu_si512(pd, _mm512_xor_si512(_mm512_loadu_si512(pd), _mm512_loadu_si512(ps)));
        }
    }
    for i in full..src.len() {
        dst[i] ^= src[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gf2::backend;

    #[test]
    fn every_backend_xors_every_length() {
        for be in backend::available() {
            for len in 0..70 {
                let src: Vec<u64> = (0..len as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
                let mut dst: Vec<u64> = (0..len as u64 + 3).map(|i| i.rotate_left(13) ^ 0xF0F0).collect();
                let expect: Vec<u64> =
                    dst.iter().enumerate().map(|(i, &d)| if i < len { d ^ src[i] } else { d }).collect();
                xor_into(be, &mut dst, &src);
                assert_eq!(dst, expect, "{be:?}, length {len}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn shifted_or_matches_or_bits(
            src in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..12),
            dst_start in 0usize..300, src_start in 0usize..900, nbits in 0usize..700,
        ) {
            let len = crate::bits::words_for(dst_start + nbits) + 1;
            let base: Vec<u64> = (0..len as u64).map(|i| (i * 0x0101_0101) << (i % 7)).collect();
            let mut expect = base.clone();
            crate::bits::or_bits(&mut expect, dst_start, &src, src_start, nbits);
            let mut got = base;
            or_shifted(&mut got, dst_start, &src, src_start, nbits);
            proptest::prop_assert_eq!(got, expect);
        }
    }

    #[test]
    fn every_backend_xors_every_length_of_32_bit_elements() {
        for be in backend::available() {
            for len in 0..100 {
                let src: Vec<u32> = (0..len as u32).map(|i| i.wrapping_mul(0x9e37_79b9)).collect();
                let mut dst: Vec<u32> = (0..len as u32 + 3).map(|i| i.rotate_left(13) ^ 0xF0F0).collect();
                let expect: Vec<u32> =
                    dst.iter().enumerate().map(|(i, &d)| if i < len { d ^ src[i] } else { d }).collect();
                xor_into32(be, &mut dst, &src);
                assert_eq!(dst, expect, "{be:?}, length {len}");
            }
        }
    }

    /// Lists of in-place steps, each reading a range above the one it writes (touching, apart,
    /// overlapping earlier steps' ranges), as the naive loop runs them one after another.
    #[test]
    fn every_backend_runs_lists_of_steps_in_order() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        for _ in 0..200 {
            let steps: Vec<(u16, u16, u16)> = (0..next(12))
                .map(|_| {
                    let len = next(70) as u16;
                    let dst = next(200) as u16;
                    let src = dst + len + next(30) as u16;
                    (dst, src, len)
                })
                .collect();
            let wide: Vec<u64> = (0..400).map(|i| (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
            let mut expect = wide.clone();
            for &(d, s, n) in &steps {
                for k in 0..usize::from(n) {
                    expect[usize::from(d) + k] ^= expect[usize::from(s) + k];
                }
            }
            for be in backend::available() {
                let mut got = wide.clone();
                xor_steps(be, &mut got, &steps);
                assert_eq!(got, expect, "{be:?}, {steps:?}");
                let mut narrow: Vec<u32> = wide.iter().map(|&w| w as u32).collect();
                xor_steps(be, &mut narrow, &steps);
                assert!(narrow.iter().zip(&expect).all(|(&n, &e)| n == e as u32), "{be:?}, 32-bit, {steps:?}");
            }
        }
    }

    #[test]
    fn every_backend_forms_both_sums_and_the_sum_of_two() {
        let word = |i: usize, salt: u64| (i as u64 ^ salt).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
        for be in backend::available() {
            for len in 0..70 {
                let c: Vec<u64> = (0..len).map(|i| word(i, 1)).collect();
                let u: Vec<u64> = (0..len + 2).map(|i| word(i, 2)).collect();
                let v: Vec<u64> = (0..len + 5).map(|i| word(i, 3)).collect();
                let (mut ou, mut ov) = (vec![7u64; len + 1], vec![9u64; len + 3]);
                xor_both(be, &c, &u, &v, &mut ou, &mut ov);
                for i in 0..len {
                    assert_eq!((ou[i], ov[i]), (c[i] ^ u[i], c[i] ^ v[i]), "{be:?}, length {len}, word {i}");
                }
                assert_eq!((ou[len], ov[len]), (7, 9), "{be:?}, length {len}: wrote past the end");
                let mut out = vec![5u64; len + 1];
                xor_to(be, &c, &v, &mut out);
                let expect: Vec<u64> = (0..len).map(|i| c[i] ^ v[i]).chain([5]).collect();
                assert_eq!(out, expect, "{be:?}, length {len}");
            }
        }
    }
}

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

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn xor_avx512(dst: &mut [u64], src: &[u64]) {
    use std::arch::x86_64::*;
    let full = src.len() / 8 * 8;
    for i in (0..full).step_by(8) {
        // SAFETY: i + 8 <= full <= the length of both slices.
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
}

//! Scratch words that may hold secrets (sums of seed and input words), wiped when dropped with
//! wide volatile stores. `zeroize` writes one word at a time, which cost the one-shot
//! Toeplitz-Karatsuba almost a tenth of its time at 2^20 bits (its temporaries are as large as the
//! block); a 512-bit store clears eight words at once, and being volatile it is never elided.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{compiler_fence, Ordering};

use super::backend::Backend;

/// Zero words, wiped when dropped (also on unwind).
pub struct Wiped(Vec<u64>);

impl Wiped {
    /// `len` zero words.
    pub fn zeroed(len: usize) -> Self {
        Wiped(vec![0u64; len])
    }
}

impl Deref for Wiped {
    type Target = [u64];
    fn deref(&self) -> &[u64] {
        &self.0
    }
}

impl DerefMut for Wiped {
    fn deref_mut(&mut self) -> &mut [u64] {
        &mut self.0
    }
}

impl Drop for Wiped {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Overwrites `words` with zeros by volatile stores, which the compiler keeps even when nothing
/// reads the words again.
pub fn wipe(words: &mut [u64]) {
    #[cfg(target_arch = "x86_64")]
    if Backend::Vpclmul.is_available() {
        // SAFETY: the CPU has AVX-512F (the Vpclmul backend's features include it).
        unsafe { wipe_avx512(words) };
        compiler_fence(Ordering::SeqCst);
        return;
    }
    zeroize::Zeroize::zeroize(words);
}

/// 64 bytes at any address: a volatile store of it is one unaligned 512-bit store.
#[cfg(target_arch = "x86_64")]
#[repr(C, packed)]
struct Unaligned(std::arch::x86_64::__m512i);

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn wipe_avx512(words: &mut [u64]) {
    use std::arch::x86_64::*;
    let full = words.len() / 8 * 8;
    let p = words.as_mut_ptr();
    for i in (0..full).step_by(8) {
        // SAFETY: i + 8 <= full <= words.len(); `Unaligned` has alignment 1.
        unsafe { std::ptr::write_volatile(p.add(i) as *mut Unaligned, Unaligned(_mm512_setzero_si512())) };
    }
    for i in full..words.len() {
        // SAFETY: i < words.len().
        unsafe { std::ptr::write_volatile(p.add(i), 0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_is_wiped_entirely_and_nothing_around_it() {
        for len in 0..70 {
            let mut buf: Vec<u64> = (0..len as u64 + 2).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1).collect();
            wipe(&mut buf[1..=len]);
            assert!(buf[1..=len].iter().all(|&w| w == 0), "length {len}");
            assert!(buf[0] != 0 && buf[len + 1] != 0, "length {len}: wrote outside the slice");
        }
    }
}

//! Packed bytes to polynomial words and back for a run of whole-word blocks at once.
//!
//! When blocks are whole words (`n` and `m` multiples of 64) a task's blocks are contiguous
//! words, so the bit order is converted over the whole run rather than block by block: little
//! order is a copy, big order reverses the bits of every byte. On x86-64 with AVX-512BW the
//! reversal takes two byte shuffles per 64 bytes, where the word-at-a-time conversion costs about
//! a dozen scalar operations per word — which made loading and storing cost as much as the
//! carry-less products of a streaming block.

use crate::bits::BitOrder;
use crate::cpu::{self, Features};

/// Runs of at least this many words (one block of 2^23 bits or more: privacy amplification's
/// large blocks, one task each) are converted by all cores.
const PARALLEL_WORDS: usize = 1 << 17;

/// Fills `words` from `bytes` (eight bytes per word) in bit order `order`.
pub(crate) fn bytes_to_words(bytes: &[u8], order: BitOrder, words: &mut [u64]) {
    // The vector path writes `bytes.len()` bytes into `words`: checked always, not only in debug
    // builds, since its soundness rests on it (one comparison per group of blocks).
    assert_eq!(bytes.len(), 8 * words.len(), "eight bytes per word");
    if words.len() >= PARALLEL_WORDS {
        use rayon::prelude::*;
        const RUN: usize = PARALLEL_WORDS / 8;
        bytes.par_chunks(8 * RUN).zip(words.par_chunks_mut(RUN)).for_each(|(b, w)| bytes_to_words(b, order, w));
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if order == BitOrder::Big && cpu::has(Features::AVX512F | Features::AVX512BW) {
        // SAFETY: the features were checked just above and the lengths are equal (asserted);
        // on x86-64 a word's bytes are in little-endian order, so reversing the bits of each byte of the input in place of the
        // words is the conversion below.
        unsafe { x86::reverse_bits_of_bytes(bytes.as_ptr(), words.as_mut_ptr() as *mut u8, bytes.len()) };
        return;
    }
    bytes_to_words_portable(bytes, order, words);
}

fn bytes_to_words_portable(bytes: &[u8], order: BitOrder, words: &mut [u64]) {
    for (w, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        *w = convert(u64::from_le_bytes(chunk.try_into().expect("an 8-byte chunk")), order);
    }
}

/// Writes `words` into `bytes` (eight bytes per word) in bit order `order`, overwriting them.
pub(crate) fn words_to_bytes(words: &[u64], order: BitOrder, bytes: &mut [u8]) {
    // As in bytes_to_words: the vector path reads `bytes.len()` bytes of `words`.
    assert_eq!(bytes.len(), 8 * words.len(), "eight bytes per word");
    if words.len() >= PARALLEL_WORDS {
        use rayon::prelude::*;
        const RUN: usize = PARALLEL_WORDS / 8;
        words.par_chunks(RUN).zip(bytes.par_chunks_mut(8 * RUN)).for_each(|(w, b)| words_to_bytes(w, order, b));
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if order == BitOrder::Big && cpu::has(Features::AVX512F | Features::AVX512BW) {
        // SAFETY: as in bytes_to_words.
        unsafe { x86::reverse_bits_of_bytes(words.as_ptr() as *const u8, bytes.as_mut_ptr(), bytes.len()) };
        return;
    }
    words_to_bytes_portable(words, order, bytes);
}

fn words_to_bytes_portable(words: &[u64], order: BitOrder, bytes: &mut [u8]) {
    for (w, chunk) in words.iter().zip(bytes.chunks_exact_mut(8)) {
        chunk.copy_from_slice(&convert(*w, order).to_le_bytes());
    }
}

/// A little-endian load of eight stream bytes into coefficient order, and back (an involution).
#[inline(always)]
fn convert(word: u64, order: BitOrder) -> u64 {
    match order {
        BitOrder::Little => word,
        BitOrder::Big => word.reverse_bits().swap_bytes(),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// `dst[i] = src[i]` with its eight bits reversed, for `len` bytes; the ranges do not overlap.
    ///
    /// # Safety
    /// AVX-512F and AVX-512BW; `src` readable and `dst` writable for `len` bytes.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) unsafe fn reverse_bits_of_bytes(src: *const u8, dst: *mut u8, len: usize) {
        // A nibble's bits reversed, placed in the high nibble (for the low one) or the low.
        const REV: [u8; 16] = [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15];
        let table = |shift: u32| {
            let mut t = [0u8; 64];
            for (k, v) in t.iter_mut().enumerate() {
                *v = REV[k % 16] << shift;
            }
            // SAFETY: t is 64 bytes.
            unsafe { _mm512_loadu_si512(t.as_ptr() as *const __m512i) }
        };
        let (to_high, to_low) = (table(4), table(0));
        let nibble = _mm512_set1_epi8(0x0F);
        let reverse = |v: __m512i| {
            let low = _mm512_and_si512(v, nibble);
            let high = _mm512_and_si512(_mm512_srli_epi16(v, 4), nibble);
            _mm512_or_si512(_mm512_shuffle_epi8(to_high, low), _mm512_shuffle_epi8(to_low, high))
        };
        let mut i = 0;
        while i < len {
            let take = (len - i).min(64);
            let mask: __mmask64 = if take == 64 { u64::MAX } else { (1u64 << take) - 1 };
            // SAFETY: the mask keeps both accesses inside the `len` bytes the caller vouches for.
            unsafe {
                let v = _mm512_maskz_loadu_epi8(mask, src.add(i) as *const i8);
                _mm512_mask_storeu_epi8(dst.add(i) as *mut i8, mask, reverse(v));
            }
            i += take;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bits::{load_bits, store_bits};
    use proptest::prelude::*;

    fn any_order() -> impl Strategy<Value = BitOrder> {
        prop_oneof![Just(BitOrder::Big), Just(BitOrder::Little)]
    }

    proptest! {
        #[test]
        fn runs_of_words_convert_as_the_bit_by_bit_loader_does(
            words in proptest::collection::vec(any::<u64>(), 0..40), order in any_order(),
        ) {
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            let mut expect = vec![0u64; words.len()];
            load_bits(&bytes, 0, 8 * bytes.len(), order, &mut expect);
            let mut stored = vec![0u8; bytes.len()];
            store_bits(&expect, 64 * expect.len(), order, &mut stored, 0);
            type Load = fn(&[u8], BitOrder, &mut [u64]);
            type Store = fn(&[u64], BitOrder, &mut [u8]);
            let paths: [(Load, Store); 2] =
                [(bytes_to_words, words_to_bytes), (bytes_to_words_portable, words_to_bytes_portable)];
            for (load, store) in paths {
                let mut got = vec![u64::MAX; words.len()];
                load(&bytes, order, &mut got);
                prop_assert_eq!(&got, &expect);
                let mut back = vec![0xA5u8; bytes.len()];
                store(&got, order, &mut back);
                prop_assert_eq!(&back, &stored);
                prop_assert_eq!(&back, &bytes);
            }
        }
    }

    /// Long runs, converted in parallel pieces, as the scalar conversion does (both orders).
    #[test]
    fn long_runs_convert_as_word_by_word() {
        let words: Vec<u64> =
            (0..PARALLEL_WORDS as u64 * 3 + 5).map(|k| k.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        for order in [BitOrder::Big, BitOrder::Little] {
            let mut expect = vec![0u64; words.len()];
            bytes_to_words_portable(&bytes, order, &mut expect);
            let mut got = vec![u64::MAX; words.len()];
            bytes_to_words(&bytes, order, &mut got);
            assert!(got == expect, "{order:?}");
            let mut back = vec![0xA5u8; bytes.len()];
            words_to_bytes(&got, order, &mut back);
            assert!(back == bytes, "{order:?}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_wide_reversal_matches_the_scalar_one_at_every_length() {
        if !cpu::has(Features::AVX512F | Features::AVX512BW) {
            return;
        }
        let src: Vec<u8> = (0..300u32).map(|k| (k.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in [0, 1, 63, 64, 65, 127, 128, 200, 300] {
            let mut dst = vec![0x5Au8; 301];
            // SAFETY: the features were checked above; src has len bytes, dst more.
            unsafe { x86::reverse_bits_of_bytes(src.as_ptr(), dst.as_mut_ptr(), len) };
            let expect: Vec<u8> = src[..len].iter().map(|b| b.reverse_bits()).collect();
            assert_eq!(&dst[..len], &expect[..], "len {len}");
            assert!(dst[len..].iter().all(|&b| b == 0x5A), "len {len}: wrote past the end");
        }
    }
}

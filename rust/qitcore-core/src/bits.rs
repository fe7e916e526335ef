//! Packed bit strings: bit orders, and moving bit ranges between bytes and polynomial words.
//!
//! Inside the crate a bit string of length `n` is a GF(2)\[x\] polynomial stored in `u64` words:
//! bit `k` of the string is the coefficient of `x^k`, held in bit `k % 64` of word `k / 64`. Bits
//! past `n` in the last word are always zero. Outside, strings are packed bytes in one of two bit
//! orders (see [`BitOrder`]).

/// How the bits of a stream are packed into bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BitOrder {
    /// numpy's default: bit `k` of the stream is bit `7 - k % 8` (counting from the least
    /// significant) of byte `k / 8`.
    Big,
    /// bit `k` of the stream is bit `k % 8` of byte `k / 8`.
    Little,
}

crate::choice::named_choices!(BitOrder, "bitorder", [Big = "big", Little = "little"]);

impl BitOrder {
    /// Converts a little-endian load of 8 bytes into coefficient order, and back (an involution).
    #[inline(always)]
    fn convert(self, word: u64) -> u64 {
        match self {
            BitOrder::Little => word,
            // Reversing the bits of every byte in place.
            BitOrder::Big => word.reverse_bits().swap_bytes(),
        }
    }
}

/// Number of 64-bit words that hold `bits` bits.
#[inline]
pub const fn words_for(bits: usize) -> usize {
    bits.div_ceil(64)
}

/// Number of bytes that hold `bits` bits.
#[inline]
pub const fn bytes_for(bits: usize) -> usize {
    bits.div_ceil(8)
}

/// Clears the bits at positions `nbits` and above in `words`.
#[inline]
pub fn mask_tail(words: &mut [u64], nbits: usize) {
    let full = nbits / 64;
    if full < words.len() {
        let rem = nbits % 64;
        words[full] &= if rem == 0 { 0 } else { (1u64 << rem) - 1 };
        words[full + 1..].fill(0);
    }
}

/// Reads word `i` of a little-endian byte string, padding with zero bytes past its end.
#[inline(always)]
fn load_word(bytes: &[u8], i: usize) -> u64 {
    let start = 8 * i;
    match bytes.get(start..start + 8) {
        Some(chunk) => u64::from_le_bytes(chunk.try_into().expect("an 8-byte slice")),
        None if start < bytes.len() => {
            let mut buf = [0u8; 8];
            buf[..bytes.len() - start].copy_from_slice(&bytes[start..]);
            u64::from_le_bytes(buf)
        }
        None => 0,
    }
}

/// Words `start ..` of `bytes` (zeros past its end) converted from `order` into `out`. In numpy's
/// order each byte's bits are reversed: one byte shuffle per nibble with AVX2, where a word at a
/// time it was a long series of shifts and masks (3 % of a fresh-seed 2^20-bit hash).
fn convert_words(bytes: &[u8], start: usize, order: BitOrder, out: &mut [u64]) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if order == BitOrder::Big && crate::cpu::has(crate::cpu::Features::AVX2) {
        // Whole groups of four words inside `bytes`.
        let inside = (bytes.len() / 8).saturating_sub(start).min(out.len()) / 4 * 4;
        // SAFETY: the CPU has AVX2; the bytes are the `inside` words' own.
        unsafe { reverse_bits_of_bytes_avx2(&bytes[8 * start..8 * (start + inside)], &mut out[..inside]) };
        done = inside;
    }
    for (i, d) in out.iter_mut().enumerate().skip(done) {
        *d = order.convert(load_word(bytes, start + i));
    }
}

/// `out[i]` = the 8 bytes `bytes[8i .. 8i + 8]`, little-endian, each byte's bits reversed;
/// `bytes.len() == 8 * out.len()`, a multiple of 32.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn reverse_bits_of_bytes_avx2(bytes: &[u8], out: &mut [u64]) {
    use std::arch::x86_64::*;
    debug_assert!(bytes.len() == 8 * out.len() && bytes.len().is_multiple_of(32));
    // A nibble reversed, in the low half of a byte and in the high half.
    const REVERSED: [i8; 16] = [0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15];
    let low = _mm256_broadcastsi128_si256(_mm_setr_epi8(
        REVERSED[0],
        REVERSED[1],
        REVERSED[2],
        REVERSED[3],
        REVERSED[4],
        REVERSED[5],
        REVERSED[6],
        REVERSED[7],
        REVERSED[8],
        REVERSED[9],
        REVERSED[10],
        REVERSED[11],
        REVERSED[12],
        REVERSED[13],
        REVERSED[14],
        REVERSED[15],
    ));
    let high = _mm256_slli_epi16(low, 4);
    let nibble = _mm256_set1_epi8(0x0F);
    let (src, dst) = (bytes.as_ptr(), out.as_mut_ptr().cast::<u8>());
    for at in (0..bytes.len()).step_by(32) {
        // SAFETY: at + 32 <= bytes.len() = the bytes of `out`.
        unsafe {
            let x = _mm256_loadu_si256(src.add(at).cast());
            let lo = _mm256_and_si256(x, nibble);
            let hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), nibble);
            // The low nibble, reversed, becomes the high one, and the high one the low.
            let r = _mm256_or_si256(_mm256_shuffle_epi8(high, lo), _mm256_shuffle_epi8(low, hi));
            _mm256_storeu_si256(dst.add(at).cast(), r);
        }
    }
}

/// Loads the `nbits` stream bits starting at stream bit `offset` of `src` into `dst` as a
/// polynomial (coefficient order), clearing every word of `dst` past them.
///
/// The caller guarantees `offset + nbits <= 8 * src.len()` and `dst.len() >= words_for(nbits)`.
pub fn load_bits(src: &[u8], offset: usize, nbits: usize, order: BitOrder, dst: &mut [u64]) {
    debug_assert!(offset + nbits <= 8 * src.len());
    debug_assert!(dst.len() >= words_for(nbits));
    let bytes = &src[offset / 8..bytes_for(offset + nbits)];
    let shift = offset % 8;
    let nw = words_for(nbits);
    if nw >= PARALLEL_WORDS {
        load_bits_parallel(bytes, shift, nbits, order, dst);
        return;
    }
    if shift == 0 {
        convert_words(bytes, 0, order, &mut dst[..nw]);
    } else {
        let mut current = order.convert(load_word(bytes, 0));
        for (i, d) in dst[..nw].iter_mut().enumerate() {
            let next = order.convert(load_word(bytes, i + 1));
            *d = (current >> shift) | (next << (64 - shift));
            current = next;
        }
    }
    mask_tail(dst, nbits);
}

/// Word runs of at least this many words split across threads in [`load_bits`] and
/// [`extract_range`]: the seed and block of a 2^27-bit hash were loaded, rotated and cut on one
/// core. The parallel paths are functions of their own: folded into the plain loops they made
/// the many short calls of a 2^16-bit product 7 % slower.
const PARALLEL_WORDS: usize = 1 << 17;

/// Words per run of the parallel paths.
const RUN_WORDS: usize = 1 << 14;

/// [`load_bits`] for long runs (`bytes` from the first byte, `shift` bits into it), on several
/// threads.
#[cold]
#[inline(never)]
fn load_bits_parallel(bytes: &[u8], shift: usize, nbits: usize, order: BitOrder, dst: &mut [u64]) {
    use rayon::prelude::*;
    dst[..words_for(nbits)].par_chunks_mut(RUN_WORDS).enumerate().for_each(|(c, out)| {
        let start = c * RUN_WORDS;
        if shift == 0 {
            convert_words(bytes, start, order, out);
        } else {
            let mut current = order.convert(load_word(bytes, start));
            for (i, d) in out.iter_mut().enumerate() {
                let next = order.convert(load_word(bytes, start + i + 1));
                *d = (current >> shift) | (next << (64 - shift));
                current = next;
            }
        }
    });
    mask_tail(dst, nbits);
}

/// [`extract_range`] for long runs, on several threads.
#[cold]
#[inline(never)]
fn extract_range_parallel(words: &[u64], start: usize, nbits: usize, dst: &mut [u64]) {
    use rayon::prelude::*;
    let (first, shift) = (start / 64, start % 64);
    let word = |i: usize| words.get(i).copied().unwrap_or(0);
    dst[..words_for(nbits)].par_chunks_mut(RUN_WORDS).enumerate().for_each(|(c, out)| {
        let at = first + c * RUN_WORDS;
        for (i, d) in out.iter_mut().enumerate() {
            *d = if shift == 0 { word(at + i) } else { (word(at + i) >> shift) | (word(at + i + 1) << (64 - shift)) };
        }
    });
    mask_tail(dst, nbits);
}

/// ORs the polynomial `words` (`nbits` coefficients, higher bits zero) into `dst` as packed
/// stream bits starting at stream bit `offset`.
///
/// The target bits of `dst` must be zero; bits of `dst` outside the range are left as they are.
/// The caller guarantees `offset + nbits <= 8 * dst.len()`.
pub fn store_bits(words: &[u64], nbits: usize, order: BitOrder, dst: &mut [u8], offset: usize) {
    debug_assert!(offset + nbits <= 8 * dst.len());
    let shift = offset % 8;
    let out = &mut dst[offset / 8..bytes_for(offset + nbits)];
    let word = |i: usize| words.get(i).copied().unwrap_or(0);
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let w = if shift == 0 {
            word(i)
        } else {
            let below = if i == 0 { 0 } else { word(i - 1) >> (64 - shift) };
            (word(i) << shift) | below
        };
        let bytes = order.convert(w).to_le_bytes();
        for (o, b) in chunk.iter_mut().zip(bytes) {
            *o |= b;
        }
    }
}

/// Copies coefficients `start .. start + nbits` of `words` to `dst` (as coefficients `0 ..
/// nbits`), clearing the rest of `dst`. Coefficients past the end of `words` read as zero.
pub fn extract_range(words: &[u64], start: usize, nbits: usize, dst: &mut [u64]) {
    if nbits >= 64 * PARALLEL_WORDS {
        extract_range_parallel(words, start, nbits, dst);
        return;
    }
    let first = start / 64;
    let shift = start % 64;
    let word = |i: usize| words.get(i).copied().unwrap_or(0);
    let nw = words_for(nbits);
    for (i, d) in dst[..nw].iter_mut().enumerate() {
        *d = if shift == 0 {
            word(first + i)
        } else {
            (word(first + i) >> shift) | (word(first + i + 1) << (64 - shift))
        };
    }
    mask_tail(dst, nbits);
}

/// ORs coefficients `src_start .. src_start + nbits` of `src` into `dst` at coefficient
/// `dst_start` (coefficients past the end of `src` read as zero). `dst` must be long enough.
pub fn or_bits(dst: &mut [u64], dst_start: usize, src: &[u64], src_start: usize, nbits: usize) {
    let mut part = vec![0u64; words_for(nbits)];
    extract_range(src, src_start, nbits, &mut part);
    let (q, s) = (dst_start / 64, dst_start % 64);
    for (i, &w) in part.iter().enumerate() {
        dst[q + i] |= w << s;
        if s != 0 && w >> (64 - s) != 0 {
            dst[q + i + 1] |= w >> (64 - s);
        }
    }
    zeroize::Zeroize::zeroize(&mut part);
}

/// `SPREAD[b]`: the eight bits of `b` as eight 0/1 bytes, lowest bit first.
const SPREAD: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut b = 0;
    while b < 256 {
        let mut i = 0;
        while i < 8 {
            table[b] |= ((b as u64 >> i) & 1) << (8 * i);
            i += 1;
        }
        b += 1;
    }
    table
};

/// The bits of `words` as one 0/1 byte per bit (coefficient order).
pub fn to_bit_vec(words: &[u64], nbits: usize) -> Vec<u8> {
    let mut out = vec![0u8; nbits];
    for (chunk, &w) in out.chunks_mut(64).zip(words) {
        for (k, eight) in chunk.chunks_mut(8).enumerate() {
            let spread = SPREAD[(w >> (8 * k)) as u8 as usize].to_le_bytes();
            eight.copy_from_slice(&spread[..eight.len()]);
        }
    }
    out
}

/// Packs one bit per byte (only the low bit of each byte counts) into polynomial words.
pub fn from_bit_vec(bits: &[u8]) -> Vec<u64> {
    let mut words = vec![0u64; words_for(bits.len())];
    for (word, chunk) in words.iter_mut().zip(bits.chunks(64)) {
        for (k, eight) in chunk.chunks(8).enumerate() {
            let mut buf = [0u8; 8];
            buf[..eight.len()].copy_from_slice(eight);
            // Eight 0/1 bytes to eight bits: the multiply sums byte i's bit into bit 56 + i.
            let x = u64::from_le_bytes(buf) & 0x0101_0101_0101_0101;
            *word |= (x.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * k);
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious definition: stream bit `k` of packed bytes in the given order.
    fn stream_bit(bytes: &[u8], k: usize, order: BitOrder) -> u8 {
        let byte = bytes[k / 8];
        match order {
            BitOrder::Big => (byte >> (7 - k % 8)) & 1,
            BitOrder::Little => (byte >> (k % 8)) & 1,
        }
    }

    /// Long loads and extractions (split across threads) agree with the bits one by one, at
    /// whole-byte, odd and whole-word offsets, in both orders.
    #[test]
    fn long_runs_move_every_bit() {
        let nbits = (1usize << 24) + 77;
        let bytes: Vec<u8> = (0..bytes_for(nbits) + 20)
            .map(|i| (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29) as u8)
            .collect();
        for order in [BitOrder::Big, BitOrder::Little] {
            for offset in [0usize, 3, 69] {
                let mut words = vec![u64::MAX; words_for(nbits) + 1];
                load_bits(&bytes, offset, nbits, order, &mut words);
                for k in (0..nbits + 64).step_by(7).chain(nbits - 70..nbits + 64) {
                    let expect = if k < nbits { u64::from(stream_bit(&bytes, offset + k, order)) } else { 0 };
                    assert_eq!((words[k / 64] >> (k % 64)) & 1, expect, "{order:?} offset {offset} bit {k}");
                }
                let (start, len) = (offset * 13 + 1, nbits - offset * 13 - 9);
                let mut part = vec![u64::MAX; words_for(len) + 1];
                extract_range(&words, start, len, &mut part);
                for k in (0..len + 64).step_by(5).chain(len - 70..len + 64) {
                    let expect = if k < len { (words[(start + k) / 64] >> ((start + k) % 64)) & 1 } else { 0 };
                    assert_eq!((part[k / 64] >> (k % 64)) & 1, expect, "extract from {start}, bit {k}");
                }
            }
        }
    }

    fn any_order() -> impl Strategy<Value = BitOrder> {
        prop_oneof![Just(BitOrder::Big), Just(BitOrder::Little)]
    }

    proptest! {
        #[test]
        fn load_bits_matches_bit_by_bit(
            bytes in proptest::collection::vec(any::<u8>(), 1..80),
            a in 0usize..640, b in 0usize..640, order in any_order(),
        ) {
            let total = bytes.len() * 8;
            let (lo, hi) = (a.min(b) % total, a.max(b) % (total + 1));
            let (offset, nbits) = (lo, hi.saturating_sub(lo));
            let mut dst = vec![u64::MAX; words_for(nbits) + 2];
            load_bits(&bytes, offset, nbits, order, &mut dst);
            let expect: Vec<u8> = (0..nbits).map(|k| stream_bit(&bytes, offset + k, order)).collect();
            prop_assert_eq!(to_bit_vec(&dst, nbits), expect);
            prop_assert!(dst[words_for(nbits)..].iter().all(|&w| w == 0));
            if nbits % 64 != 0 {
                prop_assert_eq!(dst[nbits / 64] >> (nbits % 64), 0);
            }
        }

        #[test]
        fn store_bits_writes_only_its_range(
            bits in proptest::collection::vec(0u8..2, 0..300),
            offset in 0usize..100, order in any_order(), fill in any::<u8>(),
        ) {
            let total = offset + bits.len();
            let mut dst = vec![fill; bytes_for(total) + 1];
            // Clear the target range, as store_bits requires.
            for k in offset..total {
                let mask = match order { BitOrder::Big => 0x80u8 >> (k % 8), BitOrder::Little => 1u8 << (k % 8) };
                dst[k / 8] &= !mask;
            }
            let before = dst.clone();
            store_bits(&from_bit_vec(&bits), bits.len(), order, &mut dst, offset);
            for k in 0..dst.len() * 8 {
                let expect = if (offset..total).contains(&k) { bits[k - offset] } else { stream_bit(&before, k, order) };
                prop_assert_eq!(stream_bit(&dst, k, order), expect, "bit {}", k);
            }
        }

        #[test]
        fn extract_range_matches_bit_by_bit(
            bits in proptest::collection::vec(0u8..2, 0..400), start in 0usize..450, nbits in 0usize..450,
        ) {
            let words = from_bit_vec(&bits);
            let mut dst = vec![u64::MAX; words_for(nbits) + 1];
            extract_range(&words, start, nbits, &mut dst);
            let expect: Vec<u8> = (start..start + nbits).map(|k| bits.get(k).copied().unwrap_or(0)).collect();
            prop_assert_eq!(to_bit_vec(&dst, nbits), expect);
        }
    }

    proptest! {
        #[test]
        fn or_bits_places_a_range(
            bits in proptest::collection::vec(0u8..2, 0..300), src_start in 0usize..320,
            dst_start in 0usize..200, nbits in 0usize..300,
        ) {
            let src = from_bit_vec(&bits);
            let mut dst = vec![0u64; words_for(dst_start + nbits) + 1];
            or_bits(&mut dst, dst_start, &src, src_start, nbits);
            let got = to_bit_vec(&dst, dst.len() * 64);
            for (k, &g) in got.iter().enumerate() {
                let expect = if (dst_start..dst_start + nbits).contains(&k) {
                    bits.get(src_start + k - dst_start).copied().unwrap_or(0)
                } else {
                    0
                };
                prop_assert_eq!(g, expect, "bit {}", k);
            }
        }
    }
}

//! The transform's tail buckets filled in rotation order, where each token writes one byte at
//! its bucket's next slot (blocks of numbers below 100).
//!
//! Neighbouring tokens often share a bucket (ten buckets, one per last digit, on 4- to 6-bit
//! sources). With the slots in memory, each token's slot load then depends on the last one's
//! store, and the processor, which starts the load before the store's address is known, has
//! to start over whenever they meet: about five cycles a token on the AVX-512 machine. With at
//! most 16 buckets the slots stay in one AVX-512 register instead, one lane a bucket.

use super::bwt::Before;
#[cfg(target_arch = "x86_64")]
use crate::cpu::{self, Features};

/// Buckets the register holds.
pub(super) const LANES: usize = 16;

/// What each token writes as the tail buckets are filled: `per_token[token]` holds `W` writes
/// `(lane, byte)`; a lane's slot advances after each write if the lane is in `advancing` (a lane
/// outside writes to one spare place over and over). The space bucket (the tail " ", whose order
/// is the entries' own) starts at `space`, and takes `last_digit[token]` for each entry.
pub(super) struct Writes<'a, const W: usize> {
    pub per_token: &'a [[(u8, u8); W]],
    pub advancing: u16,
    pub space: usize,
    pub last_digit: &'a [u8],
}

/// For each entry of `before`, in order, and each of the writes `(lane, byte)` of the token it
/// names: writes `byte` at `out[next[lane]]`, then advances the slot as `writes` says; entry `i`
/// also writes its token's last digit at `out[writes.space + i]`. Lanes are below [`LANES`].
pub(super) fn fill<B: Before, const W: usize>(
    before: &[B],
    writes: &Writes<W>,
    next: &mut [u32; LANES],
    out: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if cpu::has(Features::AVX512F) {
        // SAFETY: the feature was just detected.
        return unsafe { fill_avx512(before, writes, next, out) };
    }
    fill_portable(before, writes, next, out);
}

fn fill_portable<B: Before, const W: usize>(before: &[B], writes: &Writes<W>, next: &mut [u32; LANES], out: &mut [u8]) {
    for (i, &entry) in before.iter().enumerate() {
        for &(lane, byte) in &writes.per_token[entry.token()] {
            let lane = usize::from(lane) % LANES;
            out[next[lane] as usize] = byte;
            next[lane] += u32::from(writes.advancing >> lane & 1);
        }
        out[writes.space + i] = writes.last_digit[entry.token()];
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fill_avx512<B: Before, const W: usize>(before: &[B], writes: &Writes<W>, next: &mut [u32; LANES], out: &mut [u8]) {
    use std::arch::x86_64::{
        _mm512_castsi512_si128, _mm512_loadu_si512, _mm512_mask_add_epi32, _mm512_permutexvar_epi32, _mm512_set1_epi32,
        _mm512_storeu_si512, _mm_cvtsi128_si32,
    };
    // SAFETY: a 64-byte unaligned load of a 16-lane array.
    let mut slots = unsafe { _mm512_loadu_si512(next.as_ptr().cast()) };
    let one = _mm512_set1_epi32(1);
    let Writes { per_token, advancing, space, last_digit } = *writes;
    for (i, &entry) in before.iter().enumerate() {
        let token = entry.token();
        for &(lane, byte) in &per_token[token] {
            let lane = u32::from(lane) % LANES as u32;
            let slot = _mm_cvtsi128_si32(_mm512_castsi512_si128(_mm512_permutexvar_epi32(
                _mm512_set1_epi32(lane as i32),
                slots,
            )));
            out[slot as u32 as usize] = byte;
            // The lane's increment from a mask, not a table: loads of a table would have to wait
            // on the byte stores before them whenever their addresses agreed in the low 12 bits.
            slots = _mm512_mask_add_epi32(slots, (1 << lane) & advancing, slots, one);
        }
        out[space + i] = last_digit[token];
    }
    // SAFETY: a 64-byte unaligned store of a 16-lane array.
    unsafe { _mm512_storeu_si512(next.as_mut_ptr().cast(), slots) };
}
#[cfg(test)]
mod tests {
    use super::super::interval_order::{POSITION_BITS, TOKEN_BITS};
    use super::*;
    use crate::maths::xoshiro::Xoshiro256;

    /// `writes` (W a token) over `before` through every path, against the portable one; each
    /// lane's slots start where the previous lane's end, and the space bucket after them all.
    fn check<const W: usize>(g: &mut Xoshiro256, lanes: usize, writes: &[[(u8, u8); W]], before: &[u32]) {
        let advancing: u16 = if lanes == LANES { 0x7fff } else { 0xffff };
        let mut next = [0u32; LANES];
        let mut at = 0;
        for (l, slot) in next.iter_mut().enumerate().take(lanes) {
            *slot = at;
            let written = before
                .iter()
                .map(|&t| writes[t as usize].iter().filter(|w| usize::from(w.0) == l).count())
                .sum::<usize>();
            at += if advancing >> l & 1 == 1 { written as u32 } else { 1 };
        }
        let last_digit: Vec<u8> = (0..writes.len()).map(|_| (g.next_u64() % 11) as u8).collect();
        let fills = Writes { per_token: writes, advancing, space: at as usize, last_digit: &last_digit };
        let records: Vec<u64> = before
            .iter()
            .map(|&t| g.next_u64() << (POSITION_BITS + TOKEN_BITS) | u64::from(t) << POSITION_BITS)
            .collect();
        let len = at as usize + before.len();
        let (mut ours, mut from_records, mut theirs) = (vec![0xffu8; len], vec![0xffu8; len], vec![0xffu8; len]);
        let (mut our_next, mut record_next) = (next, next);
        fill(before, &fills, &mut our_next, &mut ours);
        fill(&records, &fills, &mut record_next, &mut from_records);
        fill_portable(before, &fills, &mut next, &mut theirs);
        assert_eq!(ours, theirs, "{lanes} lanes, {W} writes");
        assert_eq!(from_records, theirs, "{lanes} lanes, {W} writes, records");
        assert_eq!((our_next, record_next), (next, next));
        assert!(!ours.contains(&0xff), "every slot written");
        let spaces: Vec<u8> = before.iter().map(|&t| last_digit[t as usize]).collect();
        assert_eq!(ours[at as usize..], spaces[..], "the space bucket in order");
    }

    #[test]
    fn every_path_fills_as_the_portable_one() {
        // Tokens over 40 ranks mapped to 1 to 16 lanes, one lane most common (as the spare one
        // can be); with records (the token in their low bits) as with tokens; the last lane,
        // when there are 16, not advancing (a spare place past the others). One write a token,
        // and two (the second mostly to that last lane, as a token with one tail writes).
        let mut g = Xoshiro256::from_seed(5);
        for lanes in [1usize, 3, 10, 16] {
            let before: Vec<u32> = (0..50_000)
                .map(|_| if g.next_u64().is_multiple_of(3) { 0 } else { (g.next_u64() % 40) as u32 })
                .collect();
            let one: Vec<[(u8, u8); 1]> = (0..40).map(|t| [((t % lanes) as u8, (g.next_u64() % 11) as u8)]).collect();
            check(&mut g, lanes, &one, &before);
            let two: Vec<[(u8, u8); 2]> = (0..40)
                .map(|t| {
                    let second = if t % 7 == 3 { (t / 7) % lanes } else { lanes - 1 };
                    [((t % lanes) as u8, (g.next_u64() % 11) as u8), (second as u8, (g.next_u64() % 11) as u8)]
                })
                .collect();
            check(&mut g, lanes, &two, &before);
        }
    }
}

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

/// For each entry of `before`, writes `byte` at `out[next[lane]]`, where `(lane, byte) =
/// writes[token]` for the token it names; the slot then advances if its lane is in `advancing`
/// (a lane outside writes to one spare place over and over). Lanes are below [`LANES`].
pub(super) fn fill<B: Before>(
    before: &[B],
    writes: &[(u8, u8)],
    advancing: u16,
    next: &mut [u32; LANES],
    out: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if cpu::has(Features::AVX512F) {
        // SAFETY: the feature was just detected.
        return unsafe { fill_avx512(before, writes, advancing, next, out) };
    }
    fill_portable(before, writes, advancing, next, out);
}

fn fill_portable<B: Before>(
    before: &[B],
    writes: &[(u8, u8)],
    advancing: u16,
    next: &mut [u32; LANES],
    out: &mut [u8],
) {
    for &entry in before {
        let (lane, byte) = writes[entry.token()];
        let lane = usize::from(lane) % LANES;
        out[next[lane] as usize] = byte;
        next[lane] += u32::from(advancing >> lane & 1);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fill_avx512<B: Before>(before: &[B], writes: &[(u8, u8)], advancing: u16, next: &mut [u32; LANES], out: &mut [u8]) {
    use std::arch::x86_64::{
        _mm512_castsi512_si128, _mm512_loadu_si512, _mm512_mask_add_epi32, _mm512_permutexvar_epi32, _mm512_set1_epi32,
        _mm512_storeu_si512, _mm_cvtsi128_si32,
    };
    // SAFETY: a 64-byte unaligned load of a 16-lane array.
    let mut slots = unsafe { _mm512_loadu_si512(next.as_ptr().cast()) };
    let one = _mm512_set1_epi32(1);
    for &entry in before {
        let (lane, byte) = writes[entry.token()];
        let lane = u32::from(lane) % LANES as u32;
        let slot =
            _mm_cvtsi128_si32(_mm512_castsi512_si128(_mm512_permutexvar_epi32(_mm512_set1_epi32(lane as i32), slots)));
        out[slot as u32 as usize] = byte;
        // The lane's increment from a mask, not a table: loads of a table would have to wait on
        // the byte stores before them whenever their addresses agreed in the low 12 bits.
        slots = _mm512_mask_add_epi32(slots, (1 << lane) & advancing, slots, one);
    }
    // SAFETY: a 64-byte unaligned store of a 16-lane array.
    unsafe { _mm512_storeu_si512(next.as_mut_ptr().cast(), slots) };
}

#[cfg(test)]
mod tests {
    use super::super::interval_order::{POSITION_BITS, TOKEN_BITS};
    use super::*;
    use crate::maths::xoshiro::Xoshiro256;

    #[test]
    fn every_path_fills_as_the_portable_one() {
        // Tokens over 40 ranks mapped to 1 to 16 lanes, one lane most common (as the spare one
        // can be), each lane's slots starting where the previous lane's end; with records (the
        // token in their low bits) as with tokens; the last lane, when there are 16, not
        // advancing (a spare place past the others).
        let mut g = Xoshiro256::from_seed(5);
        for lanes in [1usize, 3, 10, 16] {
            let writes: Vec<(u8, u8)> = (0..40).map(|t| ((t % lanes) as u8, (g.next_u64() % 11) as u8)).collect();
            let before: Vec<u32> = (0..50_000)
                .map(|_| if g.next_u64().is_multiple_of(3) { 0 } else { (g.next_u64() % 40) as u32 })
                .collect();
            let advancing: u16 = if lanes == LANES { 0x7fff } else { 0xffff };
            let mut next = [0u32; LANES];
            let mut at = 0;
            for (l, slot) in next.iter_mut().enumerate().take(lanes) {
                *slot = at;
                let written = before.iter().filter(|&&t| usize::from(writes[t as usize].0) == l).count() as u32;
                at += if advancing >> l & 1 == 1 { written } else { 1 };
            }
            let records: Vec<u64> = before
                .iter()
                .map(|&t| g.next_u64() << (POSITION_BITS + TOKEN_BITS) | u64::from(t) << POSITION_BITS)
                .collect();
            let (mut ours, mut from_records, mut theirs) =
                (vec![0xffu8; at as usize], vec![0xffu8; at as usize], vec![0xffu8; at as usize]);
            let (mut our_next, mut record_next) = (next, next);
            fill(&before, &writes, advancing, &mut our_next, &mut ours);
            fill(&records, &writes, advancing, &mut record_next, &mut from_records);
            fill_portable(&before, &writes, advancing, &mut next, &mut theirs);
            assert_eq!(ours, theirs, "{lanes} lanes");
            assert_eq!(from_records, theirs, "{lanes} lanes, records");
            assert_eq!((our_next, record_next), (next, next));
            assert!(!ours.contains(&0xff), "every slot written");
        }
    }
}

//! The transform's tail buckets filled in rotation order, where each token writes one byte at
//! its bucket's next slot (blocks of numbers below 100).
//!
//! Neighbouring tokens often share a bucket (ten buckets, one per last digit, on 4- to 6-bit
//! sources). With the slots in memory, each token's slot load then depends on the last one's
//! store, and the processor, which starts the load before the store's address is known, has
//! to start over whenever they meet: about five cycles a token on the AVX-512 machine. With at
//! most 16 buckets the slots stay in one AVX-512 register instead, one lane a bucket.

#[cfg(target_arch = "x86_64")]
use crate::cpu::{self, Features};

/// Buckets the register holds.
pub(super) const LANES: usize = 16;

/// For each token in `before`, writes `byte` at `out[next[lane]]` and advances that slot, where
/// `(lane, byte) = writes[token]`; lanes are below [`LANES`].
pub(super) fn fill(before: &[u32], writes: &[(u8, u8)], next: &mut [u32; LANES], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if cpu::has(Features::AVX512F) {
        // SAFETY: the feature was just detected.
        return unsafe { fill_avx512(before, writes, next, out) };
    }
    fill_portable(before, writes, next, out);
}

fn fill_portable(before: &[u32], writes: &[(u8, u8)], next: &mut [u32; LANES], out: &mut [u8]) {
    for &token in before {
        let (lane, byte) = writes[token as usize];
        let slot = &mut next[usize::from(lane) % LANES];
        out[*slot as usize] = byte;
        *slot += 1;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fill_avx512(before: &[u32], writes: &[(u8, u8)], next: &mut [u32; LANES], out: &mut [u8]) {
    use std::arch::x86_64::{
        _mm512_castsi512_si128, _mm512_loadu_si512, _mm512_mask_add_epi32, _mm512_permutexvar_epi32, _mm512_set1_epi32,
        _mm512_storeu_si512, _mm_cvtsi128_si32,
    };
    // SAFETY: a 64-byte unaligned load of a 16-lane array.
    let mut slots = unsafe { _mm512_loadu_si512(next.as_ptr().cast()) };
    let one = _mm512_set1_epi32(1);
    for &token in before {
        let (lane, byte) = writes[token as usize];
        let lane = u32::from(lane) % LANES as u32;
        let slot =
            _mm_cvtsi128_si32(_mm512_castsi512_si128(_mm512_permutexvar_epi32(_mm512_set1_epi32(lane as i32), slots)));
        out[slot as u32 as usize] = byte;
        // The lane's increment from a mask, not a table: loads of a table would have to wait on
        // the byte stores before them whenever their addresses agreed in the low 12 bits.
        slots = _mm512_mask_add_epi32(slots, 1 << lane, slots, one);
    }
    // SAFETY: a 64-byte unaligned store of a 16-lane array.
    unsafe { _mm512_storeu_si512(next.as_mut_ptr().cast(), slots) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maths::xoshiro::Xoshiro256;

    #[test]
    fn every_path_fills_as_the_portable_one() {
        // Tokens over 40 ranks mapped to 1 to 16 lanes, one lane most common (as the spare one
        // can be), each lane's slots starting where the previous lane's end.
        let mut g = Xoshiro256::from_seed(5);
        for lanes in [1usize, 3, 10, 16] {
            let writes: Vec<(u8, u8)> = (0..40).map(|t| ((t % lanes) as u8, (g.next_u64() % 11) as u8)).collect();
            let before: Vec<u32> = (0..50_000)
                .map(|_| if g.next_u64().is_multiple_of(3) { 0 } else { (g.next_u64() % 40) as u32 })
                .collect();
            let mut next = [0u32; LANES];
            let mut at = 0;
            for (l, slot) in next.iter_mut().enumerate().take(lanes) {
                *slot = at;
                at += before.iter().filter(|&&t| usize::from(writes[t as usize].0) == l).count() as u32;
            }
            let (mut ours, mut theirs) = (vec![0xffu8; at as usize], vec![0xffu8; at as usize]);
            let mut our_next = next;
            fill(&before, &writes, &mut our_next, &mut ours);
            fill_portable(&before, &writes, &mut next, &mut theirs);
            assert_eq!(ours, theirs, "{lanes} lanes");
            assert_eq!(our_next, next);
            assert!(!ours.contains(&0xff), "every slot written");
        }
    }
}

//! Von Neumann debiasing on packed bits: each pair of input bits `01` gives `0`, `10` gives `1`,
//! `00` and `11` give nothing (an odd last bit is dropped). For independent bits with bias `p`
//! the output is exactly uniform, at `p(1 − p)` output bits per input bit.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::bits::{bytes_for, load_bits, or_bits, store_bits, words_for, BitOrder};
#[cfg(target_arch = "x86_64")]
use crate::cpu::{self, Features};
use crate::error::{unstopped, Error, Result};

/// Input bits per parallel task (a multiple of 64).
const TASK_BITS: usize = 1 << 22;
const PAIR_FIRST: u64 = 0x5555_5555_5555_5555;

/// The first bits of the pairs of a byte (coefficient order) that differ, packed, and their count.
const BYTE_TABLE: [(u8, u8); 256] = {
    let mut table = [(0u8, 0u8); 256];
    let mut b = 0;
    while b < 256 {
        let (mut bits, mut count) = (0u8, 0u8);
        let mut pair = 0;
        while pair < 4 {
            let first = (b >> (2 * pair)) & 1;
            let second = (b >> (2 * pair + 1)) & 1;
            if first != second {
                bits |= (first as u8) << count;
                count += 1;
            }
            pair += 1;
        }
        table[b] = (bits, count);
        b += 1;
    }
    table
};

/// Appends bits to a word buffer.
struct BitWriter {
    words: Vec<u64>,
    acc: u64,
    used: u32,
}

impl BitWriter {
    fn with_capacity(bits: usize) -> Self {
        BitWriter { words: Vec::with_capacity(words_for(bits)), acc: 0, used: 0 }
    }

    #[inline(always)]
    fn push(&mut self, bits: u64, count: u32) {
        if count == 0 {
            return;
        }
        self.acc |= bits << self.used;
        let total = self.used + count;
        if total >= 64 {
            self.words.push(self.acc);
            self.acc = if self.used == 0 { 0 } else { bits >> (64 - self.used) };
            self.used = total - 64;
        } else {
            self.used = total;
        }
    }

    fn finish(mut self) -> (Vec<u64>, usize) {
        let bits = self.words.len() * 64 + self.used as usize;
        if self.used > 0 {
            self.words.push(self.acc);
        }
        (self.words, bits)
    }
}

/// Debiases one word of 32 pairs into the writer.
#[inline(always)]
fn word_portable(w: u64, out: &mut BitWriter) {
    for byte in w.to_le_bytes() {
        let (bits, count) = BYTE_TABLE[byte as usize];
        out.push(u64::from(bits), u32::from(count));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi2,popcnt")]
fn words_pext(words: &[u64], out: &mut BitWriter) {
    for &w in words {
        let differ = (w ^ (w >> 1)) & PAIR_FIRST;
        let bits = std::arch::x86_64::_pext_u64(w, differ);
        out.push(bits, differ.count_ones());
    }
}

fn debias_words(words: &[u64], out: &mut BitWriter) {
    #[cfg(target_arch = "x86_64")]
    if cpu::has(Features::BMI2 | Features::POPCNT) {
        // SAFETY: the features were just detected.
        unsafe { words_pext(words, out) };
        return;
    }
    for &w in words {
        word_portable(w, out);
    }
}

/// Debiases the first `nbits` bits of `input` (all of it when `None`). Returns the output packed
/// in the same bit order (pad bits zero) and its length in bits.
///
/// # Errors
/// [`Error::InvalidArgument`] naming `nbits` when it exceeds the input.
pub fn von_neumann(input: &[u8], nbits: Option<usize>, order: BitOrder) -> Result<(Vec<u8>, usize)> {
    unstopped(|stop| von_neumann_until(input, nbits, order, stop))
}

/// As [`von_neumann`], giving up (`None`) soon after `stop` is set: each parallel task looks at
/// it before it starts.
///
/// # Errors
/// As [`von_neumann`].
pub fn von_neumann_until(
    input: &[u8],
    nbits: Option<usize>,
    order: BitOrder,
    stop: &AtomicBool,
) -> Result<Option<(Vec<u8>, usize)>> {
    let available = input.len() * 8;
    let nbits = nbits.unwrap_or(available);
    if nbits > available {
        return Err(Error::argument("nbits", format!("{nbits} bits asked of a buffer of {available} bits")));
    }
    let pairs_bits = nbits / 2 * 2;
    let tasks = pairs_bits.div_ceil(TASK_BITS);
    let parts: Vec<(Vec<u64>, usize)> = (0..tasks)
        .into_par_iter()
        .map(|t| {
            if stop.load(Ordering::Relaxed) {
                return (Vec::new(), 0);
            }
            let start = t * TASK_BITS;
            let len = TASK_BITS.min(pairs_bits - start);
            let mut words = vec![0u64; words_for(len)];
            load_bits(input, start, len, order, &mut words);
            let mut out = BitWriter::with_capacity(len / 4);
            debias_words(&words, &mut out);
            out.finish()
        })
        .collect();
    if stop.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let total: usize = parts.iter().map(|(_, bits)| bits).sum();
    let mut merged = vec![0u64; words_for(total) + 1];
    let mut offset = 0;
    for (words, bits) in &parts {
        or_bits(&mut merged, offset, words, 0, *bits);
        offset += bits;
    }
    let mut bytes = vec![0u8; bytes_for(total)];
    store_bits(&merged, total, order, &mut bytes, 0);
    Ok(Some((bytes, total)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(bits: &[u8]) -> Vec<u8> {
        bits.chunks_exact(2).filter(|p| p[0] != p[1]).map(|p| p[0]).collect()
    }

    fn unpack(bytes: &[u8], nbits: usize, order: BitOrder) -> Vec<u8> {
        (0..nbits)
            .map(|k| match order {
                BitOrder::Big => (bytes[k / 8] >> (7 - k % 8)) & 1,
                BitOrder::Little => (bytes[k / 8] >> (k % 8)) & 1,
            })
            .collect()
    }

    /// `von_neumann_until` with its flag never set is `von_neumann` (several tasks); with it set,
    /// it gives up, after its argument checks.
    #[test]
    fn a_stopped_debiasing_gives_up_and_an_unstopped_one_is_von_neumann() {
        let bytes: Vec<u8> = (0..3 * TASK_BITS / 8 + 5).map(|i| (i * 37 % 251) as u8).collect();
        let plain = von_neumann(&bytes, None, BitOrder::Big).unwrap();
        assert_eq!(von_neumann_until(&bytes, None, BitOrder::Big, &AtomicBool::new(false)).unwrap(), Some(plain));
        assert_eq!(von_neumann_until(&bytes, None, BitOrder::Big, &AtomicBool::new(true)).unwrap(), None);
        assert!(von_neumann_until(&bytes, Some(bytes.len() * 8 + 1), BitOrder::Big, &AtomicBool::new(true)).is_err());
    }

    proptest! {
        #[test]
        fn matches_pairwise_definition(bytes in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..8, big in any::<bool>()) {
            let order = if big { BitOrder::Big } else { BitOrder::Little };
            let nbits = (bytes.len() * 8).saturating_sub(cut);
            let (out, count) = von_neumann(&bytes, Some(nbits), order).unwrap();
            let expect = naive(&unpack(&bytes, nbits, order));
            prop_assert_eq!(count, expect.len());
            prop_assert_eq!(unpack(&out, count, order), expect);
            prop_assert_eq!(out.len(), bytes_for(count));
        }

        #[test]
        fn portable_and_pext_paths_agree(words in proptest::collection::vec(any::<u64>(), 0..50)) {
            let mut a = BitWriter::with_capacity(0);
            for &w in &words {
                word_portable(w, &mut a);
            }
            let mut b = BitWriter::with_capacity(0);
            debias_words(&words, &mut b);
            prop_assert_eq!(a.finish(), b.finish());
        }

        #[cfg(target_arch = "x86_64")]
        #[test]
        fn pext_agrees_with_the_table(words in proptest::collection::vec(any::<u64>(), 0..50)) {
            // Where the CPU has it, even with the portable path forced.
            if cpu::detected().contains(Features::BMI2 | Features::POPCNT) {
                let mut a = BitWriter::with_capacity(0);
                for &w in &words {
                    word_portable(w, &mut a);
                }
                let mut b = BitWriter::with_capacity(0);
                // SAFETY: detected just above.
                unsafe { words_pext(&words, &mut b) };
                prop_assert_eq!(a.finish(), b.finish());
            }
        }
    }

    #[test]
    fn many_tasks_concatenate_in_order() {
        let bytes: Vec<u8> = (0..(3 * TASK_BITS / 8 + 77)).map(|i| (i * 7919 % 251) as u8).collect();
        let (out, count) = von_neumann(&bytes, None, BitOrder::Big).unwrap();
        let expect = naive(&unpack(&bytes, bytes.len() * 8, BitOrder::Big));
        assert_eq!(count, expect.len());
        assert_eq!(unpack(&out, count, BitOrder::Big), expect);
    }
}

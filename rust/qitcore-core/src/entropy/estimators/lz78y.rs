//! SP 800-90B §6.3.10: the LZ78Y prediction estimate.

use super::postfix::{pack, ContextMap};

/// The key of the `j` symbols before position `i`, from the key of the 16 before it.
#[inline(always)]
fn suffix_key(full: u128, j: usize) -> u128 {
    if j == 16 {
        full
    } else {
        full & ((1u128 << (8 * j)) - 1)
    }
}
use super::prediction::{prediction_estimate, Tally};
use crate::entropy::estimate::{Estimate, View};
use crate::entropy::Stop;

/// Longest context: 16 symbols.
const B: usize = 16;
/// The dictionary holds at most this many contexts (over all lengths).
const MAX_DICTIONARY: usize = 65_536;

const NAME: &str = "LZ78Y Prediction";

/// A dictionary of the contexts of 1 to 16 preceding symbols; the prediction is the most frequent
/// follower of the context (of any length) whose follower count is highest, longest first.
pub fn lz78y(s: &[u8], k: usize, view: View, stop: Stop<'_>) -> Estimate {
    let len = s.len();
    if len < B + 2 {
        return Estimate::new(NAME, view).skipped("fewer than 18 samples: LZ78Y does not apply");
    }
    if k == 2 {
        return binary(s, view, stop);
    }
    dictionary(s, k, view, stop)
}

/// The estimate with one map of contexts per length, for any alphabet.
fn dictionary(s: &[u8], k: usize, view: View, stop: Stop<'_>) -> Estimate {
    let len = s.len();
    let mut dicts: Vec<ContextMap> = (0..B).map(|_| ContextMap::default()).collect();
    let mut size = 0usize;
    for j in 1..=B {
        dicts[j - 1].entry(pack(&s[B - j..B])).or_default().increment(s[B], true);
        size += 1;
    }
    let mut tally = Tally::default();
    for i in B + 1..len {
        if stop.at(i) {
            return Estimate::new(NAME, view).stopped();
        }
        let x = s[i];
        let mut best: Option<(u8, u32)> = None;
        let full = pack(&s[i - B..i]);
        for j in (1..=B).rev() {
            let key = suffix_key(full, j);
            let dict = &mut dicts[j - 1];
            match dict.get_mut(&key) {
                Some(postfix) => {
                    let (y, count) = postfix.predict();
                    if count > best.map_or(0, |(_, c)| c) {
                        best = Some((y, count));
                    }
                    postfix.increment(x, true);
                }
                None if size < MAX_DICTIONARY => {
                    dict.entry(key).or_default().increment(x, true);
                    size += 1;
                }
                None => {}
            }
        }
        tally.record(best.is_some_and(|(y, _)| y == x));
    }
    prediction_estimate(NAME, view, tally.correct, (len - B - 1) as u64, tally.longest, k)
}

fn binary(s: &[u8], view: View, stop: Stop<'_>) -> Estimate {
    let len = s.len();
    // One flat table: the contexts of j bits (most recent bit lowest) start at 2^j − 2, two counts
    // each; 2^17 − 2 entries in all.
    let mut table = vec![[0u32; 2]; (1 << (B + 1)) - 2];
    let base = |j: usize| (1usize << j) - 2;
    let mut size = 0usize;
    let mut pattern = 0usize;
    for j in 0..B {
        pattern |= ((s[B - j - 1] & 1) as usize) << j;
        table[base(j + 1) + pattern][(s[B] & 1) as usize] = 1;
        size += 1;
    }
    let mut tally = Tally::default();
    // The loop shifts in s[i − 1] first: start from the 16 bits before s[B], so that at i the
    // context is s[i − 16 .. i], as NIST's tool reads it.
    let mut recent = s[..B].iter().fold(0usize, |acc, &b| (acc << 1) | (b & 1) as usize);
    for i in B + 1..len {
        if stop.at(i) {
            return Estimate::new(NAME, view).stopped();
        }
        let x = (s[i] & 1) as usize;
        // The last 16 bits before i, most recent lowest.
        recent = ((recent << 1) | (s[i - 1] & 1) as usize) & ((1 << B) - 1);
        let (mut best_count, mut prediction) = (0u32, 2usize);
        for j in (1..=B).rev() {
            let entry = &mut table[base(j) + (recent & ((1 << j) - 1))];
            let (p, count) = if entry[0] > entry[1] { (0, entry[0]) } else { (1, entry[1]) };
            if count != 0 {
                if count > best_count {
                    best_count = count;
                    prediction = p;
                }
                entry[x] += 1;
            } else if size < MAX_DICTIONARY {
                entry[x] = 1;
                size += 1;
            }
        }
        tally.record(prediction == x);
    }
    prediction_estimate(NAME, view, tally.correct, (len - B - 1) as u64, tally.longest, 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maths::xoshiro::Xoshiro256;

    #[test]
    fn binary_table_equals_the_dictionaries() {
        // The flat table of the binary path against the per-length maps on the same bits: every
        // prediction, including the first ones after the 16-bit start (biased and correlated bits,
        // so that contexts and counts differ).
        let mut g = Xoshiro256::from_seed(8);
        for (len, bias) in [(18usize, 32u64), (19, 32), (40, 20), (5_000, 45), (200_000, 40)] {
            let mut bit = 0u8;
            let s: Vec<u8> = (0..len)
                .map(|_| {
                    if g.next_u64() % 64 >= bias {
                        bit ^= 1;
                    }
                    bit
                })
                .collect();
            let (fast, slow) =
                (binary(&s, View::Bitstring, Stop::NEVER), dictionary(&s, 2, View::Bitstring, Stop::NEVER));
            assert_eq!(fast, slow, "{len} bits");
        }
    }
}

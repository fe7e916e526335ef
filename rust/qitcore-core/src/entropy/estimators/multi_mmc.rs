//! SP 800-90B §6.3.9: the multi Markov model with counting prediction estimate.

use super::postfix::{extend, pack, ContextMap};
use super::prediction::{prediction_estimate, Tally};
use crate::entropy::estimate::{Estimate, View};
use crate::entropy::Stop;

/// Orders of the Markov models: contexts of 1 to 16 symbols.
const DEPTH: usize = 16;
/// Each model keeps at most this many (context, next symbol) entries.
const MAX_ENTRIES: usize = 100_000;

const NAME: &str = "MultiMMC Prediction";

/// Sixteen Markov models of orders 1 to 16 predict the next sample as the most frequent follower
/// of the current context; the model with the best score so far makes the prediction.
pub fn multi_mmc(s: &[u8], k: usize, view: View, stop: Stop<'_>) -> Estimate {
    if s.len() < 3 {
        return Estimate::new(NAME, view).skipped("fewer than 3 samples: MultiMMC does not apply");
    }
    if k == 2 {
        return binary(s, view, stop);
    }
    let len = s.len();
    let n = len - 2;
    let mut models: Vec<ContextMap> = (0..DEPTH).map(|_| ContextMap::default()).collect();
    let mut entries = [0usize; DEPTH];
    for d in 0..DEPTH {
        if d < n {
            models[d].entry(pack(&s[..=d])).or_default().increment(s[d + 1], true);
            entries[d] = 1;
        }
    }
    let mut scoreboard = [0u64; DEPTH];
    let mut winner = 0usize;
    let mut tally = Tally::default();
    for i in 2..len {
        if stop.at(i) {
            return Estimate::new(NAME, view).stopped();
        }
        let x = s[i];
        let current = winner;
        let mut found = false;
        let mut key = 0u128;
        for d in 0..DEPTH.min(i - 1) {
            key = extend(key, s[i - d - 1], d);
            let model = &mut models[d];
            let postfix = if d == 0 || found { model.get_mut(&key) } else { None };
            found = postfix.is_some();
            match postfix {
                Some(postfix) => {
                    let hit = postfix.predict().0 == x;
                    if hit {
                        scoreboard[d] += 1;
                        if scoreboard[d] >= scoreboard[winner] {
                            winner = d;
                        }
                    }
                    if d == current {
                        tally.record(hit);
                    }
                    if postfix.increment(x, entries[d] < MAX_ENTRIES) {
                        entries[d] += 1;
                    }
                }
                None if entries[d] < MAX_ENTRIES => {
                    // A context not looked up (a shorter one was missing) may still exist.
                    model.entry(key).or_default().increment(x, true);
                    entries[d] += 1;
                }
                None => {}
            }
        }
    }
    prediction_estimate(NAME, view, tally.correct, n as u64, tally.longest, k)
}

/// The same on bits. Each model is a table of two counts per context (most recent bit lowest),
/// and within a chunk of steps the models run one after another: model `d` needs only whether
/// model `d − 1` knew its context at each step. A last pass over the chunk replays the scoreboard
/// over the recorded outcomes. (The order of the updates is NIST's, model by model; only the loops
/// are exchanged.) The chunks keep the outcomes in constant memory, whatever the length.
fn binary(s: &[u8], view: View, stop: Stop<'_>) -> Estimate {
    /// Steps per chunk: 4 bytes of outcomes a step.
    const CHUNK: usize = 1 << 16;
    let len = s.len();
    let steps = len - 2; // predictions at i = 2 .. len − 1
    let fold = |bits: &[u8]| bits.iter().fold(0usize, |acc, &b| (acc << 1) | (b & 1) as usize);
    let mut tables: Vec<Vec<[u32; 2]>> = (0..DEPTH).map(|d| vec![[0u32; 2]; 1 << (d + 1)]).collect();
    let mut elems = [0usize; DEPTH];
    // The context of step i is s[i − d − 1 .. i]; model d is consulted from i = d + 2 on.
    let mut patterns = [0usize; DEPTH];
    for d in 0..DEPTH {
        if d + 1 < len {
            tables[d][fold(&s[..=d])][(s[d + 1] & 1) as usize] = 1;
            elems[d] = 1;
        }
        patterns[d] = fold(&s[..(d + 1).min(len)]);
    }
    // Bit d of known[step] / hits[step]: model d knew the context / predicted right.
    let mut known = vec![0u16; CHUNK.min(steps)];
    let mut hits = vec![0u16; CHUNK.min(steps)];
    let mut scoreboard = [0u64; DEPTH];
    let mut winner = 0usize;
    let mut tally = Tally::default();
    for first in (0..steps).step_by(CHUNK) {
        if stop.requested() {
            return Estimate::new(NAME, view).stopped();
        }
        let end = (first + CHUNK).min(steps);
        let (known, hits) = (&mut known[..end - first], &mut hits[..end - first]);
        known.fill(0);
        hits.fill(0);
        for d in 0..DEPTH {
            let table = &mut tables[d];
            let mask = (1usize << (d + 1)) - 1;
            let (mut pattern, mut count_elems) = (patterns[d], elems[d]);
            for step in first.max(d)..end {
                let i = step + 2;
                let at = step - first;
                pattern = ((pattern << 1) | (s[i - 1] & 1) as usize) & mask;
                let x = (s[i] & 1) as usize;
                let entry = &mut table[pattern];
                let looked_up = d == 0 || (known[at] >> (d - 1)) & 1 == 1;
                let (prediction, count) = if entry[0] > entry[1] { (0, entry[0]) } else { (1, entry[1]) };
                if looked_up && count != 0 {
                    known[at] |= 1 << d;
                    hits[at] |= u16::from(prediction == x) << d;
                    if entry[x] != 0 {
                        entry[x] += 1;
                    } else if count_elems < MAX_ENTRIES {
                        entry[x] = 1;
                        count_elems += 1;
                    }
                } else if count_elems < MAX_ENTRIES {
                    // NIST sets the count to 1 here even when the context was only not looked up.
                    entry[x] = 1;
                    count_elems += 1;
                }
            }
            (patterns[d], elems[d]) = (pattern, count_elems);
        }
        for (&k, &h) in known.iter().zip(hits.iter()) {
            if (k >> winner) & 1 == 1 {
                tally.record((h >> winner) & 1 == 1);
            }
            // Scores rise in increasing d; one that reaches the leader's takes the lead.
            let mut right = h & k;
            while right != 0 {
                let d = right.trailing_zeros() as usize;
                right &= right - 1;
                scoreboard[d] += 1;
                if scoreboard[d] >= scoreboard[winner] {
                    winner = d;
                }
            }
        }
    }
    prediction_estimate(NAME, view, tally.correct, steps as u64, tally.longest, 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// The chunked binary path against the general one (NIST's order of updates) on the same
        /// bits, across chunk boundaries.
        #[test]
        fn binary_path_agrees_with_the_general_one(
            s in proptest::collection::vec(0u8..2, 3..400),
            biased in proptest::collection::vec(0u8..5, 70_000..70_400),
        ) {
            for bits in [s, biased.iter().map(|&v| u8::from(v == 0)).collect()] {
                // Three symbols declared, two present: the general path runs on the same data.
                let general = multi_mmc(&bits, 3, View::Bitstring, Stop::NEVER);
                let binary = multi_mmc(&bits, 2, View::Bitstring, Stop::NEVER);
                prop_assert_eq!(general.field("C"), binary.field("C"));
                prop_assert_eq!(general.field("r"), binary.field("r"));
            }
        }
    }
}

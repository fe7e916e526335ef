//! SP 800-90B §6.3.9: the multi Markov model with counting prediction estimate.

use super::postfix::{extend, pack, ContextMap};
use super::prediction::{prediction_estimate, Tally};
use crate::entropy::estimate::{Estimate, View};

/// Orders of the Markov models: contexts of 1 to 16 symbols.
const DEPTH: usize = 16;
/// Each model keeps at most this many (context, next symbol) entries.
const MAX_ENTRIES: usize = 100_000;

const NAME: &str = "MultiMMC Prediction";

/// Sixteen Markov models of orders 1 to 16 predict the next sample as the most frequent follower
/// of the current context; the model with the best score so far makes the prediction.
pub fn multi_mmc(s: &[u8], k: usize, view: View) -> Estimate {
    if s.len() < 3 {
        return Estimate::new(NAME, view).skipped("fewer than 3 samples: MultiMMC does not apply");
    }
    if k == 2 {
        return binary(s, view);
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
/// and the models run one after another over the whole string: model `d` needs only whether
/// model `d − 1` knew its context at each step. A last pass replays the scoreboard over the
/// recorded outcomes. (The order of the updates is NIST's, model by model; only the loops are
/// exchanged.)
fn binary(s: &[u8], view: View) -> Estimate {
    let len = s.len();
    let steps = len - 2; // predictions at i = 2 .. len − 1
                         // Bit d of known[step] / hits[step]: model d knew the context / predicted right.
    let mut known = vec![0u16; steps];
    let mut hits = vec![0u16; steps];
    for d in 0..DEPTH {
        let mut table = vec![[0u32; 2]; 1 << (d + 1)];
        let mask = (1usize << (d + 1)) - 1;
        let mut elems = 0usize;
        if d + 1 < len {
            let pattern = s[..=d].iter().fold(0usize, |acc, &b| (acc << 1) | (b & 1) as usize);
            table[pattern][(s[d + 1] & 1) as usize] = 1;
            elems = 1;
        }
        // The context of step i is s[i − d − 1 .. i]; model d is consulted from i = d + 2 on.
        let mut pattern = s[..(d + 1).min(len)].iter().fold(0usize, |acc, &b| (acc << 1) | (b & 1) as usize);
        for i in d + 2..len {
            let step = i - 2;
            pattern = ((pattern << 1) | (s[i - 1] & 1) as usize) & mask;
            let x = (s[i] & 1) as usize;
            let entry = &mut table[pattern];
            let looked_up = d == 0 || (known[step] >> (d - 1)) & 1 == 1;
            let (prediction, count) = if entry[0] > entry[1] { (0, entry[0]) } else { (1, entry[1]) };
            if looked_up && count != 0 {
                known[step] |= 1 << d;
                hits[step] |= u16::from(prediction == x) << d;
                if entry[x] != 0 {
                    entry[x] += 1;
                } else if elems < MAX_ENTRIES {
                    entry[x] = 1;
                    elems += 1;
                }
            } else if elems < MAX_ENTRIES {
                // NIST sets the count to 1 here even when the context was only not looked up.
                entry[x] = 1;
                elems += 1;
            }
        }
    }
    let mut scoreboard = [0u64; DEPTH];
    let mut winner = 0usize;
    let mut tally = Tally::default();
    for (&k, &h) in known.iter().zip(&hits) {
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
    prediction_estimate(NAME, view, tally.correct, steps as u64, tally.longest, 2)
}

//! SP 800-90B §6.3.7: the multi most-common-in-window prediction estimate.

use super::prediction::{prediction_estimate, Tally};
use crate::entropy::estimate::{Estimate, View};
use crate::entropy::Stop;

const WINDOWS: [usize; 4] = [63, 255, 1023, 4095];

/// Four subpredictors guess the most common symbol of the last 63, 255, 1023 and 4095 samples
/// (ties go to the most recent); the one with the best score so far makes the prediction.
pub fn multi_mcw(s: &[u8], k: usize, view: View, stop: Stop<'_>) -> Estimate {
    let name = "MultiMCW Prediction";
    let len = s.len();
    if len < WINDOWS[3] + 1 {
        return Estimate::new(name, view).skipped("fewer than 4096 samples: MultiMCW does not apply");
    }
    if k == 2 {
        return binary(s, view, stop);
    }
    let mut counts = vec![[0u64; 4]; k];
    let mut last_seen = vec![[0usize; 4]; k];
    let mut max_counts = [0u64; 4];
    let mut frequent = [0u8; 4];
    let mut scoreboard = [0u64; 4];
    let mut winner = 0usize;
    let mut tally = Tally::default();
    for (i, &x) in s.iter().enumerate().take(WINDOWS[3]) {
        for (j, &w) in WINDOWS.iter().enumerate() {
            if i < w {
                let c = &mut counts[x as usize][j];
                *c += 1;
                if max_counts[j] <= *c {
                    max_counts[j] = *c;
                    frequent[j] = x;
                }
                last_seen[x as usize][j] = i;
            }
        }
    }
    for i in WINDOWS[0]..len {
        if stop.at(i) {
            return Estimate::new(name, view).stopped();
        }
        let x = s[i];
        tally.record(frequent[winner] == x);
        for (j, &w) in WINDOWS.iter().enumerate() {
            if i >= w && frequent[j] == x {
                scoreboard[j] += 1;
                if scoreboard[j] >= scoreboard[winner] {
                    winner = j;
                }
            }
        }
        for (j, &w) in WINDOWS.iter().enumerate() {
            if i < w {
                continue;
            }
            let old = s[i - w];
            counts[old as usize][j] -= 1;
            counts[x as usize][j] += 1;
            last_seen[x as usize][j] = i;
            if old != frequent[j] && max_counts[j] <= counts[x as usize][j] {
                max_counts[j] = counts[x as usize][j];
                frequent[j] = x;
            } else if old == frequent[j] {
                // The leader lost a sample: rescan for the most common, most recent symbol.
                max_counts[j] -= 1;
                let mut max_pos = i - w;
                for (sym, (c, pos)) in counts.iter().zip(&last_seen).enumerate() {
                    if max_counts[j] < c[j] || (max_counts[j] == c[j] && max_pos <= pos[j]) {
                        max_counts[j] = c[j];
                        frequent[j] = sym as u8;
                        max_pos = pos[j];
                    }
                }
            }
        }
    }
    prediction_estimate(name, view, tally.correct, (len - WINDOWS[0]) as u64, tally.longest, k)
}

/// The same on two symbols. The windows have odd lengths, so a window's most common symbol is its
/// majority and never a tie; NIST's incremental bookkeeping always lands on it once the window is
/// full, and a subpredictor only leads after its window is full. A running count of ones in each
/// window gives every majority, in constant memory.
fn binary(s: &[u8], view: View, stop: Stop<'_>) -> Estimate {
    let len = s.len();
    let first = WINDOWS[0];
    // ones[j]: ones among s[i − w_j .. i] at step i (among s[.. i] before window j fills).
    let initial: u32 = s[..first].iter().map(|&b| u32::from(b & 1)).sum();
    let mut ones = [initial; 4];
    let mut scoreboard = [0u64; 4];
    let mut winner = 0usize;
    let mut tally = Tally::default();
    for (i, &sample) in s.iter().enumerate().skip(first) {
        if stop.at(i) {
            return Estimate::new("MultiMCW Prediction", view).stopped();
        }
        let x = sample & 1;
        let majority = |j: usize| u8::from(2 * ones[j] as usize > WINDOWS[j]);
        tally.record(majority(winner) == x);
        for (j, &w) in WINDOWS.iter().enumerate() {
            if i >= w && majority(j) == x {
                scoreboard[j] += 1;
                if scoreboard[j] >= scoreboard[winner] {
                    winner = j;
                }
            }
        }
        for (j, &w) in WINDOWS.iter().enumerate() {
            ones[j] += u32::from(x);
            if i >= w {
                ones[j] -= u32::from(s[i - w] & 1);
            }
        }
    }
    prediction_estimate("MultiMCW Prediction", view, tally.correct, (len - first) as u64, tally.longest, 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The binary path against the general one (NIST's bookkeeping) on the same bits.
        #[test]
        fn binary_path_agrees_with_the_general_one(s in proptest::collection::vec(0u8..2, 4096..9000)) {
            // Three symbols declared, two present: the general path runs on the same data.
            let general = multi_mcw(&s, 3, View::Bitstring, Stop::NEVER);
            let binary = multi_mcw(&s, 2, View::Bitstring, Stop::NEVER);
            prop_assert_eq!(general.field("C"), binary.field("C"));
            prop_assert_eq!(general.field("r"), binary.field("r"));
        }
    }
}

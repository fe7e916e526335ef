//! SP 800-90B §6.3.7: the multi most-common-in-window prediction estimate.

use super::prediction::{prediction_estimate, Tally};
use crate::entropy::estimate::{Estimate, View};

const WINDOWS: [usize; 4] = [63, 255, 1023, 4095];

/// Four subpredictors guess the most common symbol of the last 63, 255, 1023 and 4095 samples
/// (ties go to the most recent); the one with the best score so far makes the prediction.
pub fn multi_mcw(s: &[u8], k: usize, view: View) -> Estimate {
    let name = "MultiMCW Prediction";
    let len = s.len();
    if len < WINDOWS[3] + 1 {
        return Estimate::new(name, view).skipped("fewer than 4096 samples: MultiMCW does not apply");
    }
    if k == 2 {
        return binary(s, view);
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
/// full, and a subpredictor only leads after its window is full. Prefix counts of ones give every
/// majority directly.
fn binary(s: &[u8], view: View) -> Estimate {
    let len = s.len();
    let mut ones = Vec::with_capacity(len + 1);
    ones.push(0u32);
    for &b in s {
        ones.push(ones.last().expect("starts with 0") + u32::from(b & 1));
    }
    let majority = |j: usize, i: usize| -> u8 {
        let w = WINDOWS[j];
        u8::from(2 * (ones[i] - ones[i - w]) as usize > w)
    };
    let mut scoreboard = [0u64; 4];
    let mut winner = 0usize;
    let mut tally = Tally::default();
    for (i, &sample) in s.iter().enumerate().skip(WINDOWS[0]) {
        let x = sample & 1;
        tally.record(majority(winner, i) == x);
        for (j, &w) in WINDOWS.iter().enumerate() {
            if i >= w && majority(j, i) == x {
                scoreboard[j] += 1;
                if scoreboard[j] >= scoreboard[winner] {
                    winner = j;
                }
            }
        }
    }
    prediction_estimate("MultiMCW Prediction", view, tally.correct, (len - WINDOWS[0]) as u64, tally.longest, 2)
}

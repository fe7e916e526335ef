//! SP 800-90B §6.3.5 (t-tuple) and §6.3.6 (longest repeated substring) estimates, and the length
//! of the longest repeated substring the IID track tests.
//!
//! Both need, for every length `W`, the count of the most common `W`-tuple (`Q[W]`) and the
//! number of colliding pairs of `W`-tuples (`S[W] = Σ C(c, 2)` over distinct tuples). A suffix
//! array and its LCP array give both at once: the suffixes that share a `W`-prefix form an
//! LCP interval, and each interval of size `c` whose lcp value is `ℓ` under a parent of value `ℓp`
//! is the group of one tuple for every `W` in `(ℓp, ℓ]`.

use super::sorted_windows::{stream_lcp, KEY_SYMBOLS_MAX};
use crate::entropy::estimate::{Estimate, View};
use crate::entropy::samples::inferred_width;
use crate::entropy::stats::upper_bound;

/// Tuple statistics of a string, for lengths `1..=lrs`.
pub struct TupleCounts {
    /// Number of symbols.
    pub n: usize,
    /// The length of the longest repeated substring (`v`).
    pub lrs: usize,
    /// `max_count[W]`: occurrences of the most common `W`-tuple (at least 1), for `W <= lrs + 1`.
    pub max_count: Vec<u64>,
    /// `pairs[W]`: `Σ C(c, 2)` over the distinct `W`-tuples.
    pub pairs: Vec<u128>,
}

/// The LCP array in suffix-array order of `text`: `lcp[r]` is the length of the common prefix of
/// the suffixes ranked `r − 1` and `r` (`lcp[0] = 0`). The suffix array comes from libsais (SA-IS),
/// the LCP array from its permuted-LCP construction (Kärkkäinen, Manzini, Puglisi 2009), written
/// over the suffix array: 8 bytes a symbol at the peak (suffix array and PLCP), 4 after.
/// `text` must be shorter than 2^31 (assessments are far below: see `MAX_SAMPLES`).
fn lcp_array(text: &[u8]) -> Vec<i32> {
    let sa = libsais::SuffixArrayConstruction::for_text(text)
        .in_owned_buffer32()
        .single_threaded()
        .run()
        .expect("libsais sorts any text shorter than 2^31");
    let with_plcp = sa.plcp_construction().single_threaded().run().expect("PLCP of a valid suffix array");
    let lcp_and_plcp =
        with_plcp.lcp_construction().replace_suffix_array().single_threaded().run().expect("LCP of a valid PLCP");
    let (lcp, plcp) = lcp_and_plcp.into_parts();
    drop(plcp);
    let mut lcp = lcp;
    if let Some(first) = lcp.first_mut() {
        *first = 0;
    }
    lcp
}

/// The length of the longest substring of `text` that occurs at least twice.
pub fn longest_repeat(text: &[u8]) -> usize {
    if text.len() < 2 {
        return 0;
    }
    if let Some(longest) = stream_lcp(text, inferred_width(text).max(1), |_, _| {}) {
        return longest;
    }
    lcp_array(text).into_iter().max().unwrap_or(0) as usize
}

/// Bottom-up traversal of the LCP intervals, fed the LCP array in suffix-array order.
struct Intervals {
    /// (lcp value, left boundary) of the open intervals; the root stays at the bottom.
    stack: Vec<(usize, usize)>,
    best: Vec<u64>,
    diff: Vec<i128>,
}

impl Intervals {
    /// For LCP values up to `max_lcp`.
    fn new(max_lcp: usize) -> Self {
        Intervals { stack: vec![(0, 0)], best: vec![1u64; max_lcp + 2], diff: vec![0i128; max_lcp + 3] }
    }

    /// `lcp[r] = l`, for r = 1 .. n − 1 in order.
    #[inline]
    fn visit(&mut self, r: usize, l: usize) {
        let mut left = r - 1;
        while l < self.stack.last().expect("the root stays").0 {
            let (v, lb) = self.stack.pop().expect("checked non-empty");
            let size = (r - lb) as u64;
            let parent = l.max(self.stack.last().expect("the root stays").0);
            self.best[v] = self.best[v].max(size);
            let pairs = i128::from(size) * i128::from(size - 1) / 2;
            self.diff[parent + 1] += pairs;
            self.diff[v + 1] -= pairs;
            left = lb;
        }
        if l > self.stack.last().expect("the root stays").0 {
            self.stack.push((l, left));
        }
    }

    /// Closes every interval (0 at r = n) and sums up, for the longest repeat `lrs`.
    fn finish(mut self, n: usize, lrs: usize) -> TupleCounts {
        self.visit(n, 0);
        let (mut best, mut diff) = (self.best, self.diff);
        // Values past lrs + 1 were never touched.
        best.truncate(lrs + 2);
        diff.truncate(lrs + 3);
        // max_count[W] = max over intervals of value >= W; pairs[W] = prefix sums of the range adds.
        for w in (1..=lrs).rev() {
            best[w] = best[w].max(best[w + 1]);
        }
        let mut pairs = vec![0u128; lrs + 2];
        let mut acc = 0i128;
        for (w, p) in pairs.iter_mut().enumerate() {
            acc += diff[w];
            *p = acc as u128;
        }
        TupleCounts { n, lrs, max_count: best, pairs }
    }
}

/// Tuple statistics of `text` (at least 2 symbols). The LCP array is streamed in bounded memory
/// when the text's repeats are short ([`stream_lcp`]), else built whole (8 bytes a symbol).
pub fn tuple_counts(text: &[u8]) -> TupleCounts {
    let n = text.len();
    let mut streamed = Intervals::new(KEY_SYMBOLS_MAX);
    if let Some(lrs) = stream_lcp(text, inferred_width(text).max(1), |r, l| streamed.visit(r, l)) {
        return streamed.finish(n, lrs);
    }
    drop(streamed);
    let lcp = lcp_array(text);
    let lrs = lcp.iter().copied().max().unwrap_or(0) as usize;
    let mut intervals = Intervals::new(lrs);
    for (r, &l) in lcp.iter().enumerate().skip(1) {
        intervals.visit(r, l as usize);
    }
    drop(lcp);
    intervals.finish(n, lrs)
}

/// Both estimates from the tuple statistics: `(t-tuple, LRS)`.
pub fn tuple_estimates(counts: &TupleCounts, view: View) -> (Estimate, Estimate) {
    let n = counts.n;
    let mut tuple = Estimate::new("t-Tuple", view);
    let mut lrs = Estimate::new("LRS", view);
    // u: the smallest length whose most common tuple occurs fewer than 35 times.
    let v = counts.lrs;
    let u = (1..=v).find(|&i| counts.max_count[i] < 35).unwrap_or(v + 1);
    let t = u - 1;
    let p_max =
        (1..u).map(|i| (counts.max_count[i] as f64 / (n - i + 1) as f64).powf(1.0 / i as f64)).fold(-1.0f64, f64::max);
    let tuple = if p_max > 0.0 {
        let p_u = upper_bound(p_max, n as f64);
        tuple.int("t", t as i64).real("p-hat_max", p_max).real("p_u", p_u);
        tuple.finish(-p_u.log2())
    } else {
        tuple.skipped("no string repeats 35 times: the t-tuple estimate does not apply")
    };
    let lrs = if v >= u {
        let p_max = (u..=v)
            .map(|w| {
                let choices = ((n - w) as u128 * (n - w + 1) as u128) / 2;
                (counts.pairs[w] as f64 / choices as f64).powf(1.0 / w as f64)
            })
            .fold(0.0f64, f64::max);
        let p_u = upper_bound(p_max, n as f64);
        lrs.int("u", u as i64).int("v", v as i64).real("p-hat", p_max).real("p_u", p_u);
        lrs.finish(-p_u.log2())
    } else {
        lrs.skipped("v < u: the LRS estimate does not apply")
    };
    (tuple, lrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Counts every W-tuple with a hash map: the definition.
    fn naive(text: &[u8]) -> (usize, Vec<u64>, Vec<u128>) {
        let n = text.len();
        let mut lrs = 0;
        let mut best = vec![1u64];
        let mut pairs = vec![0u128];
        for w in 1..=n {
            let mut map: HashMap<&[u8], u64> = HashMap::new();
            for t in text.windows(w) {
                *map.entry(t).or_default() += 1;
            }
            let m = map.values().copied().max().unwrap_or(0);
            best.push(m.max(1));
            pairs.push(map.values().map(|&c| u128::from(c) * u128::from(c.saturating_sub(1)) / 2).sum());
            if m >= 2 {
                lrs = w;
            } else {
                break;
            }
        }
        (lrs, best, pairs)
    }

    proptest! {
        #[test]
        fn counts_match_a_hash_map(text in proptest::collection::vec(0u8..3, 2..300)) {
            let c = tuple_counts(&text);
            let (lrs, best, pairs) = naive(&text);
            prop_assert_eq!(longest_repeat(&text), lrs);
            prop_assert_eq!(c.lrs, lrs);
            for w in 1..=lrs {
                prop_assert_eq!(c.max_count[w], best[w], "max count at W = {}", w);
                prop_assert_eq!(c.pairs[w], pairs[w], "pairs at W = {}", w);
            }
        }
    }
}

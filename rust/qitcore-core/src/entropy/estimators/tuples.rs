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
use crate::entropy::Stop;
use crate::error::{Error, Result};
use crate::gf2::alloc::try_zeroed;

/// Tuple statistics of a string, for lengths `1..=lrs`.
pub struct TupleCounts {
    /// Number of symbols.
    pub n: usize,
    /// The length of the longest repeated substring (`v`).
    pub lrs: usize,
    /// `max_count[W]`: occurrences of the most common `W`-tuple (at least 1), for `W` up to the
    /// first length whose most common tuple occurs fewer than 35 times (`u`) at least.
    pub max_count: Vec<u32>,
    /// `pairs[W − pairs_from]`: `Σ C(c, 2)` over the distinct `W`-tuples (below `C(n, 2) <
    /// 2^63`), for `W` from `pairs_from` (at most `u`) to `lrs`.
    pub pairs: Vec<u64>,
    /// The first length `pairs` holds.
    pub pairs_from: usize,
}

/// What libsais failing becomes: it sorts any text shorter than 2^31, so only the allocation of
/// its own work space (a few arrays of the text's length at most) can fail.
fn sais_failed(n: usize) -> impl Fn(libsais::LibsaisError) -> Error {
    move |_| Error::OutOfMemory { what: "the suffix sort's work space", bytes: n.saturating_mul(4) }
}

/// The LCP array in suffix-array order of `text`: `lcp[r]` is the length of the common prefix of
/// the suffixes ranked `r − 1` and `r` (`lcp[0] = 0`). The suffix array comes from libsais (SA-IS),
/// the LCP array from its permuted-LCP construction (Kärkkäinen, Manzini, Puglisi 2009), written
/// over the suffix array: 8 bytes a symbol at the peak (suffix array and PLCP, both allocated
/// here, fallibly), 4 after. `text` must be shorter than 2^31 (assessments are far below: see
/// `MAX_SAMPLES`).
fn sorted_lcp(text: &[u8]) -> Result<Vec<i32>> {
    let n = text.len();
    let mut sa: Vec<i32> = try_zeroed("the suffix array", n)?;
    let mut plcp: Vec<i32> = try_zeroed("the PLCP array", n)?;
    let sorted = libsais::SuffixArrayConstruction::for_text(text)
        .in_borrowed_buffer(&mut sa)
        .single_threaded()
        .run()
        .map_err(sais_failed(n))?;
    let with_plcp =
        sorted.plcp_construction().in_borrowed_buffer(&mut plcp).single_threaded().run().map_err(sais_failed(n))?;
    with_plcp.lcp_construction().replace_suffix_array().single_threaded().run().map_err(sais_failed(n))?;
    drop(plcp);
    if let Some(first) = sa.first_mut() {
        *first = 0;
    }
    Ok(sa)
}

/// [`sorted_lcp`] where `stop` can end the wait for it: libsais cannot be interrupted, and a
/// broken source's bit string takes it tens of seconds at the largest sizes. The sort runs on a
/// thread of its own over a copy of the text; when `stop` asks, this returns `None` at once and
/// the thread finishes alone, its buffers freed when it ends.
fn lcp_array(text: &[u8], stop: Stop<'_>) -> Result<Option<Vec<i32>>> {
    use std::sync::mpsc::{channel, RecvTimeoutError};
    let mut owned: Vec<u8> = try_zeroed("a copy of the text to sort", text.len())?;
    owned.copy_from_slice(text);
    let (done, sorted) = channel();
    let worker = std::thread::Builder::new()
        .name("qitcore-suffix-sort".into())
        .spawn(move || {
            let _ = done.send(sorted_lcp(&owned));
        })
        .map_err(|e| Error::Os(format!("could not start the suffix sort's thread: {e}")))?;
    loop {
        match sorted.recv_timeout(std::time::Duration::from_millis(20)) {
            Ok(lcp) => return lcp.map(Some),
            Err(RecvTimeoutError::Timeout) if stop.requested() => return Ok(None),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => match worker.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => unreachable!("the sort's thread sends before it ends"),
            },
        }
    }
}

/// The length of the longest substring of `text` that occurs at least twice; `None` when `stop`
/// asked to give up.
///
/// # Errors
/// [`Error::OutOfMemory`] when the text's repeats are long and its suffix array cannot be allocated.
pub fn longest_repeat(text: &[u8], stop: Stop<'_>) -> Result<Option<usize>> {
    if text.len() < 2 {
        return Ok(Some(0));
    }
    if let Some(longest) = stream_lcp(text, inferred_width(text).max(1), stop, |_, _| {})? {
        return Ok(Some(longest));
    }
    if stop.requested() {
        return Ok(None);
    }
    Ok(lcp_array(text, stop)?.map(|lcp| lcp.into_iter().max().unwrap_or(0) as usize))
}

/// Bottom-up traversal of the LCP intervals, fed the LCP array in suffix-array order: the
/// largest interval per lcp value (`best`, when counted) and the range adds of colliding pairs for
/// the lengths from `from` on (`diff`, when counted).
struct Intervals {
    /// (lcp value, left boundary) of the open intervals (below 2^31); the root stays at the
    /// bottom. Their lcp values rise from the bottom, so there are at most the largest lcp + 1.
    stack: Vec<(u32, u32)>,
    best: Vec<u32>,
    /// Range adds of colliding pairs, `diff[i]` for length `from + i`, summed at the end (a sum is
    /// below 2^63).
    diff: Vec<i64>,
    from: usize,
}

impl Intervals {
    /// Counts `best` for lcp values up to `best_to` (none when 0), and `diff` for lengths
    /// `from..=to` (none when `from > to`): 4 and 8 bytes a value, allocated fallibly.
    fn new(best_to: usize, from: usize, to: usize) -> Result<Self> {
        let best = if best_to == 0 { Vec::new() } else { filled("the tuple counts", best_to + 2, 1u32)? };
        let diff = if from > to { Vec::new() } else { try_zeroed("the tuple pair counts", to - from + 2)? };
        Ok(Intervals { stack: vec![(0, 0)], best, diff, from })
    }

    /// Room for the next [`Intervals::visit`], which pushes one interval at most: the stack grows
    /// fallibly (on alternating data it holds half the symbols).
    fn reserve(&mut self) -> Result<()> {
        if self.stack.len() == self.stack.capacity() {
            self.grow(self.stack.len().max(64))?;
        }
        Ok(())
    }

    /// Room for `more` open intervals beyond those on the stack, or [`Error::OutOfMemory`].
    fn grow(&mut self, more: usize) -> Result<()> {
        self.stack.try_reserve(more).map_err(|_| Error::OutOfMemory {
            what: "the tuple intervals",
            bytes: (self.stack.len() + more).saturating_mul(std::mem::size_of::<(u32, u32)>()),
        })
    }

    /// `lcp[r] = l`, for r = 1 .. n − 1 in order, then `(n, 0)`.
    #[inline]
    fn visit(&mut self, r: usize, l: usize) {
        let mut left = r - 1;
        while l < self.stack.last().expect("the root stays").0 as usize {
            let (v, lb) = self.stack.pop().expect("checked non-empty");
            let (v, lb) = (v as usize, lb as usize);
            let size = r - lb;
            let parent = l.max(self.stack.last().expect("the root stays").0 as usize);
            // r < n < 2^31: a count fits u32, and C(size, 2) < 2^62.
            if let Some(best) = self.best.get_mut(v) {
                *best = (*best).max(size as u32);
            }
            // The interval is the group of one tuple for every length in (parent, v].
            let lo = (parent + 1).max(self.from);
            if !self.diff.is_empty() && lo <= v {
                let pairs = (size as i64) * (size as i64 - 1) / 2;
                self.diff[lo - self.from] += pairs;
                self.diff[v + 1 - self.from] -= pairs;
            }
            left = lb;
        }
        if l > self.stack.last().expect("the root stays").0 as usize {
            // Never past the capacity: the streamed walk reserved its bound, the full walk calls
            // `reserve` first (n < 2^31, so both fit u32).
            self.stack.push((l as u32, left as u32));
        }
    }

    /// `max_count` from `best` for lengths `1..=lrs + 1`: the maximum over intervals of value ≥ W.
    fn max_counts(&mut self, lrs: usize) -> Vec<u32> {
        let mut best = std::mem::take(&mut self.best);
        best.truncate(lrs + 2);
        for w in (1..=lrs).rev() {
            best[w] = best[w].max(best[w + 1]);
        }
        best
    }

    /// `pairs` from `diff`: prefix sums of the range adds, in place (the same 8 bytes a value),
    /// for lengths `from..=to`.
    fn pairs(&mut self, to: usize) -> Vec<u64> {
        let mut diff = std::mem::take(&mut self.diff);
        diff.truncate((to + 1).saturating_sub(self.from));
        let mut acc = 0i64;
        for d in diff.iter_mut() {
            acc += *d;
            *d = acc;
        }
        diff.into_iter().map(|p| p as u64).collect()
    }
}

/// A vector of `len` copies of `value`, or [`Error::OutOfMemory`] naming `what`.
fn filled<T: Clone + Default>(what: &'static str, len: usize, value: T) -> Result<Vec<T>> {
    let mut v = try_zeroed(what, len)?;
    v.fill(value);
    Ok(v)
}

/// The first length whose most common tuple occurs fewer than 35 times (`u` of SP 800-90B
/// §6.3.5): at most `lrs + 1`, whose every tuple occurs once.
fn first_rare(max_count: &[u32], lrs: usize) -> usize {
    (1..=lrs).find(|&w| max_count[w] < 35).unwrap_or(lrs + 1)
}

/// Tuple statistics of `text` (at least 2 symbols); `None` when `stop` asked to give up. The LCP
/// array is streamed in bounded memory when the text's repeats are short ([`stream_lcp`]), else
/// built whole and walked twice: once for the most common tuples, which give `u`, then for the
/// colliding pairs from `u` on only. 8 bytes a symbol at the peak (the suffix array and its PLCP),
/// then 4 for the LCP array and 4 a length while `max_count` is found, and 8 a length from `u` to
/// the longest repeat for the pairs (on a broken source's periodic output, `u` lies near the
/// longest repeat: few lengths).
///
/// # Errors
/// [`Error::OutOfMemory`] when the arrays of a text with long repeats cannot be allocated.
pub fn tuple_counts(text: &[u8], stop: Stop<'_>) -> Result<Option<TupleCounts>> {
    let n = text.len();
    let mut streamed = Intervals::new(KEY_SYMBOLS_MAX, 0, KEY_SYMBOLS_MAX)?;
    // The streamed lcp values stay below the key's symbols: so does the stack's depth.
    streamed.grow(KEY_SYMBOLS_MAX + 2)?;
    if let Some(lrs) = stream_lcp(text, inferred_width(text).max(1), stop, |r, l| streamed.visit(r, l))? {
        if stop.requested() {
            return Ok(None);
        }
        streamed.visit(n, 0);
        let (max_count, pairs) = (streamed.max_counts(lrs), streamed.pairs(lrs));
        return Ok(Some(TupleCounts { n, lrs, max_count, pairs, pairs_from: 0 }));
    }
    drop(streamed);
    if stop.requested() {
        return Ok(None);
    }
    let Some(lcp) = lcp_array(text, stop)? else {
        return Ok(None);
    };
    let lrs = lcp.iter().copied().max().unwrap_or(0) as usize;
    let walk = |intervals: &mut Intervals| -> Result<bool> {
        for (r, &l) in lcp.iter().enumerate().skip(1) {
            if stop.at(r) {
                return Ok(false);
            }
            intervals.reserve()?;
            intervals.visit(r, l as usize);
        }
        intervals.visit(n, 0);
        Ok(true)
    };
    let mut most = Intervals::new(lrs, 1, 0)?;
    if !walk(&mut most)? {
        return Ok(None);
    }
    let mut max_count = most.max_counts(lrs);
    drop(most);
    let u = first_rare(&max_count, lrs);
    max_count.truncate(u + 1);
    max_count.shrink_to_fit();
    let mut pairs = Intervals::new(0, u, lrs)?;
    if !walk(&mut pairs)? {
        return Ok(None);
    }
    Ok(Some(TupleCounts { n, lrs, max_count, pairs: pairs.pairs(lrs), pairs_from: u }))
}

/// Both estimates from the tuple statistics: `(t-tuple, LRS)`.
pub fn tuple_estimates(counts: &TupleCounts, view: View) -> (Estimate, Estimate) {
    let n = counts.n;
    let mut tuple = Estimate::new("t-Tuple", view);
    let mut lrs = Estimate::new("LRS", view);
    // u: the smallest length whose most common tuple occurs fewer than 35 times.
    let v = counts.lrs;
    let u = first_rare(&counts.max_count, v);
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
                (counts.pairs[w - counts.pairs_from] as f64 / choices as f64).powf(1.0 / w as f64)
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

    /// Every count the estimates read against the definition: `max_count` up to `u`, `pairs`
    /// from `pairs_from` (at most `u`) to the longest repeat.
    fn check(text: &[u8]) -> std::result::Result<(), TestCaseError> {
        let c = tuple_counts(text, Stop::NEVER).unwrap().unwrap();
        let (lrs, best, pairs) = naive(text);
        prop_assert_eq!(longest_repeat(text, Stop::NEVER).unwrap(), Some(lrs));
        prop_assert_eq!(c.lrs, lrs);
        let u = (1..=lrs).find(|&w| best[w] < 35).unwrap_or(lrs + 1);
        prop_assert!(c.max_count.len() > u && c.pairs_from <= u);
        for (w, &expected) in best.iter().enumerate().take(u.min(lrs) + 1).skip(1) {
            prop_assert_eq!(u64::from(c.max_count[w]), expected, "max count at W = {}", w);
        }
        for (w, &expected) in pairs.iter().enumerate().take(lrs + 1).skip(u) {
            prop_assert_eq!(u128::from(c.pairs[w - c.pairs_from]), expected, "pairs at W = {}", w);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn counts_match_a_hash_map(text in proptest::collection::vec(0u8..3, 2..300)) {
            check(&text)?;
        }

        /// Texts whose repeats are longer than the streamed keys hold (a periodic stretch, a
        /// copied block), so that the full suffix array and its two walks are taken.
        #[test]
        fn long_repeats_match_a_hash_map(
            head in proptest::collection::vec(0u8..4, 0..60),
            motif in proptest::collection::vec(0u8..4, 1..12),
            periods in 10usize..60,
            copied in proptest::collection::vec(0u8..4, 0..150),
        ) {
            let mut text = head;
            text.extend(motif.iter().cycle().take(motif.len() * periods));
            text.extend(&copied);
            text.extend(&copied);
            prop_assume!(text.len() >= 2 && stream_lcp(&text, inferred_width(&text).max(1), Stop::NEVER, |_, _| {}).unwrap().is_none());
            check(&text)?;
        }
    }

    #[test]
    fn a_stop_gives_up() {
        let flag = std::sync::atomic::AtomicBool::new(true);
        let periodic: Vec<u8> = (0..1_000_000u32).map(|i| (i % 7 % 2) as u8).collect();
        assert!(tuple_counts(&periodic, Stop::on(&flag)).unwrap().is_none());
        let random: Vec<u8> = (0..1_000_000u64).map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 63) as u8).collect();
        assert!(tuple_counts(&random, Stop::on(&flag)).unwrap().is_none());
    }
}

//! The LCP array of a text in suffix-array order, streamed in bounded memory, for texts whose
//! repeats are short (all data a noise source gives, save broken sources).
//!
//! Each suffix is cut to its first `K` symbols (`K · bits ≤ 121`) and packed in a `u128` key,
//! symbols from the top, its length (at most `K`) in the low 7 bits. Keys sort as their suffixes
//! do as long as no two suffixes share `K` symbols: a shorter suffix that is a prefix of a longer
//! one has the same symbols then zeros, and the smaller length. Neighbours' common prefix is then
//! read off their keys. The keys are made and sorted a range of prefixes at a time (ranges planned
//! from a histogram of the first 16, then 32 bits), so memory stays at the text packed plus one
//! range's keys, whatever the length. When two suffixes share `K` symbols (a repeat longer than the
//! keys hold) the walk gives up, and the caller builds the full suffix array instead.

use crate::entropy::Stop;
use crate::error::{Error, Result};
use crate::gf2::alloc::try_zeroed;

/// Bits of a key given to symbols; the low 7 bits hold the length.
const DATA_BITS: u32 = 121;

/// The most symbols a key holds (one-bit symbols): LCP values streamed stay below it.
pub const KEY_SYMBOLS_MAX: usize = DATA_BITS as usize;

/// Keys sorted at a time: 2^18 (4 MiB of keys), or a sixteenth of the text (a byte a symbol)
/// when that is more, so that the text is scanned at most 16 times. A million samples take four
/// scans (a few milliseconds each) and a quarter of the memory of one range holding them all,
/// which set the IID track's peak.
fn keys_per_range(n: usize) -> usize {
    (1usize << 18).max(n / 16)
}

/// The text packed `bits` bits a symbol, most significant first, with zero words after it.
struct Packed {
    words: Vec<u64>,
    bits: usize,
}

impl Packed {
    fn new(text: &[u8], bits: usize) -> Result<Self> {
        let total = text.len() * bits;
        let mut words = Vec::new();
        words
            .try_reserve_exact(total / 64 + 4)
            .map_err(|_| Error::OutOfMemory { what: "the packed text", bytes: total / 8 + 32 })?;
        let (mut acc, mut filled) = (0u128, 0usize);
        for &s in text {
            acc = (acc << bits) | u128::from(s);
            filled += bits;
            if filled >= 64 {
                filled -= 64;
                words.push((acc >> filled) as u64);
            }
        }
        if filled > 0 {
            words.push(((acc << (64 - filled)) & u128::from(u64::MAX)) as u64);
        }
        words.resize(total / 64 + 4, 0);
        Ok(Packed { words, bits })
    }

    /// The 128 bits from symbol `p` on.
    #[inline(always)]
    fn window(&self, p: usize) -> u128 {
        let bit = p * self.bits;
        let (w, shift) = (bit / 64, (bit % 64) as u32);
        let high = (u128::from(self.words[w]) << 64) | u128::from(self.words[w + 1]);
        if shift == 0 {
            high
        } else {
            (high << shift) | u128::from(self.words[w + 2] >> (64 - shift))
        }
    }

    /// The 64 bits from symbol `p` on.
    #[inline(always)]
    fn prefix64(&self, p: usize) -> u64 {
        let bit = p * self.bits;
        let (w, shift) = (bit / 64, (bit % 64) as u32);
        if shift == 0 {
            self.words[w]
        } else {
            (self.words[w] << shift) | (self.words[w + 1] >> (64 - shift))
        }
    }
}

/// Calls `visit(r, lcp[r])` for r = 1 .. n − 1 in suffix-array order of `text` (symbols below
/// `2^bits`, at least 2 of them), and returns the largest value; `None`, having visited a prefix
/// of them, when two suffixes share the key's `K` symbols or the prefixes are too skewed for
/// bounded ranges, or when `stop` asked to give up (looked at before each range).
///
/// # Errors
/// [`Error::OutOfMemory`] when the packed text or a range's keys cannot be allocated.
pub fn stream_lcp(text: &[u8], bits: u32, stop: Stop<'_>, visit: impl FnMut(usize, usize)) -> Result<Option<usize>> {
    stream_lcp_in_ranges(text, bits, keys_per_range(text.len()), stop, visit)
}

/// [`stream_lcp`] with at most `cap` keys a range.
fn stream_lcp_in_ranges(
    text: &[u8],
    bits: u32,
    cap: usize,
    stop: Stop<'_>,
    mut visit: impl FnMut(usize, usize),
) -> Result<Option<usize>> {
    let n = text.len();
    let bits_u = bits as usize;
    let per_key = (DATA_BITS / bits) as usize;
    let packed = Packed::new(text, bits_u)?;
    // Level 1: the first 16 bits; buckets too large for one range split by the next 16.
    let mut first = vec![0u32; 1 << 16];
    for p in 0..n {
        first[(packed.prefix64(p) >> 48) as usize] += 1;
    }
    let large: Vec<usize> = (0..1 << 16).filter(|&b| first[b] as usize > cap).collect();
    let mut second = vec![0u32; large.len() << 16];
    if !large.is_empty() {
        let mut slot = vec![u32::MAX; 1 << 16];
        for (i, &b) in large.iter().enumerate() {
            slot[b] = i as u32;
        }
        for p in 0..n {
            let prefix = packed.prefix64(p);
            let s = slot[(prefix >> 48) as usize];
            if s != u32::MAX {
                second[((s as usize) << 16) | ((prefix >> 32) & 0xffff) as usize] += 1;
            }
        }
        if second.iter().any(|&c| c as usize > cap) {
            return Ok(None);
        }
    }
    // Ranges of digits [lo, hi) holding at most `cap` suffixes each: digits are first 16 bits
    // (level 1), or the next 16 bits within one large bucket (level 2). A range is one level.
    let mut ranges: Vec<Range> = Vec::new();
    plan(&mut ranges, None, &first, cap, &large);
    // Expand each large bucket's placeholder into its level-2 ranges, in order.
    for r in std::mem::take(&mut ranges) {
        match r.within {
            Some((_, slot)) if r.count == 0 => {
                plan(&mut ranges, r.within, &second[slot << 16..(slot + 1) << 16], cap, &large);
            }
            _ => ranges.push(r),
        }
    }
    let most = ranges.iter().map(|r| r.count).max().unwrap_or(0);
    let data_mask: u128 = !0u128 << (128 - per_key * bits_u);
    let key = |p: usize| (packed.window(p) & data_mask) | (n - p).min(per_key) as u128;
    let lcp = |a: u128, b: u128| -> Option<usize> {
        let (la, lb) = ((a & 0x7f) as usize, (b & 0x7f) as usize);
        let same = ((a ^ b) & data_mask).leading_zeros() as usize / bits_u;
        let l = same.min(la).min(lb);
        // Both full and equal: the suffixes share more than a key holds.
        (l < per_key).then_some(l)
    };
    let mut keys: Vec<u128> = try_zeroed("the suffix keys", most)?;
    let mut starts: Vec<usize> = Vec::with_capacity((1 << 16) + 1);
    let (mut rank, mut previous, mut longest) = (0usize, None::<u128>, 0usize);
    for r in ranges {
        if stop.requested() {
            return Ok(None);
        }
        let counts = match r.within {
            None => &first[r.lo..r.hi],
            Some((_, slot)) => &second[(slot << 16) + r.lo..(slot << 16) + r.hi],
        };
        // Each digit's keys go to their own stretch (a counting sort), then each is sorted.
        starts.clear();
        starts.push(0);
        for &c in counts {
            starts.push(starts.last().expect("starts with 0") + c as usize);
        }
        let mut cursor = starts[..counts.len()].to_vec();
        let (lo, hi) = (r.lo as u64, r.hi as u64);
        match r.within {
            None => {
                for p in 0..n {
                    let d = packed.prefix64(p) >> 48;
                    if lo <= d && d < hi {
                        let at = &mut cursor[(d - lo) as usize];
                        keys[*at] = key(p);
                        *at += 1;
                    }
                }
            }
            Some((bucket, _)) => {
                for p in 0..n {
                    let prefix = packed.prefix64(p);
                    let d = (prefix >> 32) & 0xffff;
                    if prefix >> 48 == bucket && lo <= d && d < hi {
                        let at = &mut cursor[(d - lo) as usize];
                        keys[*at] = key(p);
                        *at += 1;
                    }
                }
            }
        }
        for w in starts.windows(2) {
            keys[w[0]..w[1]].sort_unstable();
        }
        for &k in &keys[..r.count] {
            if let Some(prev) = previous {
                let Some(l) = lcp(prev, k) else {
                    return Ok(None);
                };
                longest = longest.max(l);
                visit(rank, l);
            }
            previous = Some(k);
            rank += 1;
        }
    }
    debug_assert_eq!(rank, n);
    Ok(Some(longest))
}

/// Cuts the digits of `counts` into ranges of at most `cap` suffixes (one digit may hold more
/// only at level 2, where the caller has checked it does not); at level 1 a large bucket gets a
/// placeholder range (`count` 0) for its level-2 ranges.
fn plan(ranges: &mut Vec<Range>, within: Option<(u64, usize)>, counts: &[u32], cap: usize, large: &[usize]) {
    let (mut lo, mut held) = (0usize, 0usize);
    for (d, &c) in counts.iter().enumerate() {
        let c = c as usize;
        let large_here = within.is_none() && c > cap;
        if (held + c > cap || large_here) && held > 0 {
            ranges.push(Range { within, lo, hi: d, count: held });
            (lo, held) = (d, 0);
        }
        if large_here {
            let slot = large.iter().position(|&b| b == d).expect("large buckets are listed");
            ranges.push(Range { within: Some((d as u64, slot)), lo: 0, hi: 0, count: 0 });
            lo = d + 1;
            continue;
        }
        held += c;
    }
    if held > 0 {
        ranges.push(Range { within, lo, hi: counts.len(), count: held });
    }
}

/// Suffixes whose digit lies in `lo..hi`: the first 16 bits, or with `within = (bucket, slot)`
/// the next 16 bits of those whose first 16 are `bucket` (`slot`: its row of level-2 counts).
struct Range {
    within: Option<(u64, usize)>,
    lo: usize,
    hi: usize,
    count: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The LCP array from a naive suffix sort.
    fn naive_lcp(text: &[u8]) -> Vec<usize> {
        let mut sa: Vec<usize> = (0..text.len()).collect();
        sa.sort_by(|&a, &b| text[a..].cmp(&text[b..]));
        let mut lcp = vec![0usize; text.len()];
        for r in 1..text.len() {
            let (a, b) = (&text[sa[r - 1]..], &text[sa[r]..]);
            lcp[r] = a.iter().zip(b).take_while(|(x, y)| x == y).count();
        }
        lcp
    }

    fn streamed(text: &[u8], bits: u32, cap: usize) -> Option<Vec<usize>> {
        let mut lcp = vec![0usize; text.len()];
        let longest = stream_lcp_in_ranges(text, bits, cap, Stop::NEVER, |r, l| lcp[r] = l).unwrap()?;
        assert_eq!(longest, lcp.iter().copied().max().unwrap_or(0));
        Some(lcp)
    }

    proptest! {
        #[test]
        fn streamed_lcp_is_the_suffix_arrays(
            bits in 1u32..=8, seed in any::<u64>(), len in 2usize..600, skew in 0u32..3, cap in 1usize..800,
        ) {
            let mut state = seed | 1;
            let text: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    // Skewed draws make long repeats and full keys likely.
                    let v = (state >> 40) as u8 & ((1u16 << bits) - 1) as u8;
                    if skew > 0 && (state >> 20) % (skew as u64 + 1) != 0 { 0 } else { v }
                })
                .collect();
            let naive = naive_lcp(&text);
            let per_key = (DATA_BITS / bits) as usize;
            match streamed(&text, bits, cap) {
                Some(lcp) => prop_assert_eq!(&lcp, &naive),
                // Gives up only when some repeat fills a key, or ranges cannot be bounded.
                None => prop_assert!(naive.iter().any(|&l| l >= per_key) || cap < len),
            }
            // With room for every key, only a long repeat makes it give up.
            if streamed(&text, bits, len).is_none() {
                prop_assert!(naive.iter().any(|&l| l >= per_key));
            }
        }
    }

    #[test]
    fn skewed_prefixes_are_split_into_ranges() {
        // Sparse bits: the all-zero 16-bit prefix holds most suffixes and is split by the next 16
        // bits; ranges of at most 64 keys.
        let mut state = 7u64;
        let text: Vec<u8> = (0..5000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                u8::from(state.is_multiple_of(5))
            })
            .collect();
        assert_eq!(streamed(&text, 1, 64), Some(naive_lcp(&text)));
    }
}

//! The token rotations of a block in sorted order by their arithmetic codes: one key a rotation,
//! uniformly spread whatever the tokens' shares, so that a few radix passes over its top bits
//! order nearly all of them.
//!
//! Give each token rank `r` the interval `[F_r, F_r + P_r)` of `[0, 2^64)`, of width about its
//! share of the block, the intervals in rank order and apart. The real number
//! `K(p) = F(t_p) + P(t_p) K(p + 1) / 2^64` (indices round the block) lies in the interval of
//! `t_p`, and within it in the same place as `K(p + 1)` in the whole: it is the arithmetic code of
//! the rotation at `p`, and two rotations that first differ at their `j`-th token have codes in
//! the order of those tokens (the codes of the rotations at `p + j` lie in disjoint intervals;
//! each shared token before scales the two alike). A code is computed by the recursion from a
//! start `L` tokens further on, in 64-bit fixed point (each product rounded down):
//! - a start `L` tokens away moves the result by less than `c^L 2^64`, `c` the largest width's
//!   share, which `L` makes below 1;
//! - each rounding adds less than one unit, and each step scales what came before by at most
//!   `c`: less than `1 / (1 - c)` in all.
//!
//! So every computed key is within `E = 1 + 1/(1 - c)` units of the exact code, and two keys
//! more than `2E` apart are in the rotations' order. Keys are kept to their top 37 bits (units
//! of 2^27, far above `2E`), beside the token before the rotation and its start; rotations whose
//! kept keys differ by at most one unit (rare: a block's quarter of a million keys at most are
//! spread over 2^37 values, about one such pair a block) are ordered by comparing their tokens.

/// A record: the key's kept bits, the token before the rotation ([`TOKEN_BITS`]), its start
/// ([`POSITION_BITS`]). The token before is taken as the key is made, where it is the next
/// token the chain reads: looked up after the sort, it was a read at a random place a rotation.
/// Blocks hold fewer than 2^18 tokens (500,000 bytes, at least two a token).
pub(super) const POSITION_BITS: u32 = 18;

/// Token ranks fit in 9 bits (the 256 numbers and the joining token).
pub(super) const TOKEN_BITS: u32 = 9;

/// Where a record's kept key starts.
const KEY_SHIFT: u32 = POSITION_BITS + TOKEN_BITS;

/// The token before a record's rotation.
#[inline(always)]
pub(super) fn token_before(record: u64) -> usize {
    (record >> POSITION_BITS) as usize & ((1 << TOKEN_BITS) - 1)
}

/// A record's start.
#[inline(always)]
fn position(record: u64) -> usize {
    (record & ((1 << POSITION_BITS) - 1)) as usize
}

/// Fewest tokens for this sort (below it the suffix sort is as quick).
pub(super) const MIN_TOKENS: usize = 4096;

/// Records made between drops into their buckets: a chunk stays in the second-level cache.
const CHUNK: usize = 16_384;

/// Chains of the key recursion run together, each over its own stretch of the block: one
/// chain's steps wait on each other's products.
const CHAINS: usize = 8;

/// The keys are dropped into buckets by their top byte as they are made, then each bucket sorted
/// on the next two bytes (two passes over the bucket, which fits in the first-level cache);
/// records sharing their top 24 bits are few, and are sorted among themselves.
const DIGIT: u32 = 8;
const DIGITS: usize = 1 << DIGIT;

/// Buckets shorter than this are sorted by comparison.
const SHORT_BUCKET: usize = 64;

/// Largest share of one token for which the sort is made: the start distance `L` and the
/// rounding bound grow as `1 / (1 - c)`.
const MAX_SHARE: f64 = 0.99;

/// The rotations of `tokens` (ranks in string order, `count` of each) in sorted order, as
/// records (see [`POSITION_BITS`]); `None` when the block is short, has more ranks than
/// [`TOKEN_BITS`] hold, has one token, one token takes more than [`MAX_SHARE`] of it, two rotations agree on
/// `lookahead` tokens, or two in neighbouring buckets
/// have keys too near to order without comparing them (the caller then sorts otherwise).
// Not inlined: in its caller it slowed the radix sort of the blocks it declines.
#[inline(never)]
pub(super) fn interval_rotation_order(tokens: &[u16], count: &[u32], lookahead: usize) -> Option<Vec<u64>> {
    let m = tokens.len();
    if m < MIN_TOKENS.max(lookahead) || m >= 1 << POSITION_BITS || count.len() > 1 << TOKEN_BITS {
        return None;
    }
    let intervals = Intervals::new(count, m)?;
    // The keys are spread evenly, so each top byte takes about m / 256 of them: each bucket gets
    // that and eight standard deviations more, and the records are dropped into their buckets
    // as the keys are made, a few thousand at a time. One array of about 10 bytes a token, where
    // the keys in order and a copy bucketed took 16 (the memory the track is held to).
    let room = bucket_room(m);
    let mut records = super::buffers::take::<u64>(room * DIGITS);
    // Every place read is written first: what a longer block left there is not read.
    records.resize(room * DIGITS, 0);
    let mut starts: [usize; DIGITS] = std::array::from_fn(|b| b * room);
    let mut fill = [0u32; DIGITS];
    if !drop_keys(&intervals, tokens, &mut records, &starts, room, &mut fill) {
        // Keys far from even (an unshuffled block of a correlated source, never yet a shuffled
        // one): counted, then made and dropped again into buckets of their exact sizes.
        let mut counts = [0usize; DIGITS];
        intervals.keys(tokens, |chunk| chunk.iter().for_each(|&r| counts[(r >> (64 - DIGIT)) as usize] += 1));
        let mut at = 0;
        for (start, &count) in starts.iter_mut().zip(&counts) {
            (*start, at) = (at, at + count);
        }
        let largest = counts.iter().copied().max().unwrap_or(0);
        let exact = drop_keys(&intervals, tokens, &mut records, &starts, largest, &mut fill);
        debug_assert!(exact, "each bucket has room for its count");
    }
    let mut distinct = true;
    let by_tokens = |run: &mut [u64]| {
        let compare = |a: &u64, b: &u64| compare_rotations(tokens, position(*a), position(*b), lookahead);
        run.sort_unstable_by(compare);
        distinct &= run.windows(2).all(|w| compare(&w[0], &w[1]).is_lt());
    };
    let mut scratch = super::buffers::take::<u64>(0);
    scratch.resize(fill.iter().copied().max().unwrap_or(0) as usize, 0);
    let apart = sort_buckets(&mut records, &starts, &fill, &mut scratch, by_tokens);
    super::buffers::give(scratch);
    if apart && distinct {
        records.truncate(m);
        Some(records)
    } else {
        super::buffers::give(records);
        None
    }
}

/// Room for one bucket's records: the mean share of a top byte and eight standard deviations.
fn bucket_room(m: usize) -> usize {
    let mean = m / DIGITS;
    mean + 8 * (mean as f64).sqrt().ceil() as usize + 16
}

/// Makes every rotation's record and drops it into the bucket of its top byte: bucket `b` from
/// `starts[b]` in `records`, at most `room` of them, `fill[b]` counting them. False when a
/// bucket had no room left (its records then incomplete).
fn drop_keys(
    intervals: &Intervals,
    tokens: &[u16],
    records: &mut [u64],
    starts: &[usize; DIGITS],
    room: usize,
    fill: &mut [u32; DIGITS],
) -> bool {
    *fill = [0; DIGITS];
    let mut roomy = true;
    intervals.keys(tokens, |chunk| {
        for &r in chunk {
            let b = (r >> (64 - DIGIT)) as usize;
            let f = fill[b] as usize;
            roomy &= f < room;
            records[starts[b] + f.min(room - 1)] = r;
            fill[b] = (f + 1).min(room) as u32;
        }
    });
    roomy
}

/// Sorts the records of each bucket (`fill[b]` of them from `starts[b]` in `records`, the
/// buckets holding the keys' top bytes in order) while it is in the first-level cache, into its
/// final place just after the bucket before: on the next two bytes (least significant first,
/// through `scratch`, the second pass writing to the final place), then records sharing their
/// top 24 bits sorted whole, then runs of records whose kept keys are at most one unit apart by
/// `by_tokens`. False (the records then in no useful order) when two neighbouring buckets hold
/// keys at most one unit apart, which the buckets' sorts cannot order (rare).
fn sort_buckets(
    records: &mut [u64],
    starts: &[usize; DIGITS],
    fill: &[u32; DIGITS],
    scratch: &mut [u64],
    mut by_tokens: impl FnMut(&mut [u64]),
) -> bool {
    let near = |a: u64, b: u64| (b >> KEY_SHIFT) - (a >> KEY_SHIFT) <= 1;
    let top = 64 - 3 * DIGIT;
    // Runs to finish: those sharing their top 24 bits or near (a few a bucket).
    let mut runs: Vec<(usize, usize)> = Vec::new();
    // The largest key of the buckets so far (before `by_tokens` moved any), and where the next
    // bucket's records go: never past its own place.
    let (mut largest, mut to) = (None, 0usize);
    for (b, &f) in fill.iter().enumerate().filter(|(_, &f)| f > 0) {
        let (from, f) = (starts[b], f as usize);
        if f < SHORT_BUCKET {
            records[from..from + f].sort_unstable();
            records.copy_within(from..from + f, to);
        } else {
            sort_bucket(records, from, to, f, &mut scratch[..f]);
        }
        let bucket = &mut records[to..to + f];
        runs.clear();
        find_runs(bucket, |a, b| a >> top == b >> top || near(a, b), &mut runs);
        for &(first, end) in &runs {
            bucket[first..end].sort_unstable();
        }
        if largest.is_some_and(|last| near(last, bucket[0])) {
            return false;
        }
        largest = bucket.last().copied();
        // Near keys meet only where those sorts moved records: within a run, or across one of
        // its ends (its new first or last record beside a neighbour outside it: two keys either
        // side of a top-24 edge). So each run with a record either side, runs that then overlap
        // merged, is searched for near keys; elsewhere the scan above found none.
        let mut k = 0;
        while k < runs.len() {
            let start = runs[k].0.saturating_sub(1);
            let mut stop = (runs[k].1 + 1).min(f);
            while k + 1 < runs.len() && runs[k + 1].0.saturating_sub(1) <= stop {
                k += 1;
                stop = (runs[k].1 + 1).min(f);
            }
            sort_runs(&mut bucket[start..stop], near, &mut by_tokens);
            k += 1;
        }
        to += f;
    }
    true
}

/// Sorts the `f` records from `from` in `records` on bits 40 to 55 (their second and third
/// bytes), stably, into the `f` places from `to` (at or before `from`), through `scratch`.
fn sort_bucket(records: &mut [u64], from: usize, to: usize, f: usize, scratch: &mut [u64]) {
    let mut counts = [[0u32; DIGITS]; 2];
    for &r in &records[from..from + f] {
        counts[0][(r >> 40) as usize & (DIGITS - 1)] += 1;
        counts[1][(r >> 48) as usize & (DIGITS - 1)] += 1;
    }
    for count in counts.iter_mut() {
        let mut total = 0u32;
        for c in count.iter_mut() {
            (*c, total) = (total, total + *c);
        }
    }
    let [low, high] = &mut counts;
    for &r in &records[from..from + f] {
        let slot = &mut low[(r >> 40) as usize & (DIGITS - 1)];
        scratch[*slot as usize] = r;
        *slot += 1;
    }
    let out = &mut records[to..to + f];
    for &r in scratch.iter() {
        let slot = &mut high[(r >> 48) as usize & (DIGITS - 1)];
        out[*slot as usize] = r;
        *slot += 1;
    }
}

/// Adds to `runs` each run of two or more neighbours in `records` that `together` joins (as a
/// range). Runs are a few in a thousand records: stretches of 16 with none are passed over by
/// one branch-free test.
fn find_runs(records: &[u64], together: impl Fn(u64, u64) -> bool, runs: &mut Vec<(usize, usize)>) {
    const STRETCH: usize = 16;
    let n = records.len();
    let mut i = 1;
    while i < n {
        let end = (i + STRETCH).min(n);
        if !(i..end).fold(false, |any, j| any | together(records[j - 1], records[j])) {
            i = end;
            continue;
        }
        while i < end && !together(records[i - 1], records[i]) {
            i += 1;
        }
        let first = i - 1;
        while i < n && together(records[i - 1], records[i]) {
            i += 1;
        }
        runs.push((first, i));
    }
}

/// Applies `sort` to each run of two or more neighbours in `records` that `together` joins.
fn sort_runs(records: &mut [u64], together: impl Fn(u64, u64) -> bool, mut sort: impl FnMut(&mut [u64])) {
    let mut runs = Vec::new();
    find_runs(records, together, &mut runs);
    for (first, end) in runs {
        sort(&mut records[first..end]);
    }
}

/// The rotations at `a` and `b` compared on their first `count` tokens.
fn compare_rotations(tokens: &[u16], a: usize, b: usize, count: usize) -> std::cmp::Ordering {
    let m = tokens.len();
    (0..count).map(|i| tokens[(a + i) % m]).cmp((0..count).map(|i| tokens[(b + i) % m]))
}

/// Each rank's interval `[start, start + width)` in 64-bit fixed point, and the start distance.
struct Intervals {
    /// (start, width) per rank.
    of: Vec<(u64, u64)>,
    /// Tokens from a chain's start to the first key it keeps.
    lead: usize,
}

impl Intervals {
    /// Widths in the tokens' shares (at least one unit each for the tokens present), in rank
    /// order; `None` for a single token or one over [`MAX_SHARE`].
    fn new(count: &[u32], m: usize) -> Option<Self> {
        if count.iter().filter(|&&c| c > 0).count() < 2 {
            return None;
        }
        let m = m as u128;
        // Widths sum to at most 2^64 - 2^32 + ranks: the intervals fit below 2^64.
        let scale = (1u128 << 64) - (1u128 << 32);
        let mut of = Vec::with_capacity(count.len());
        let mut start = 0u64;
        for &c in count {
            let width = if c == 0 { 0 } else { ((u128::from(c) * scale / m) as u64).max(1) };
            of.push((start, width));
            start += width;
        }
        let widest = of.iter().map(|&(_, w)| w).max().unwrap_or(0) as f64 / 2f64.powi(64);
        if widest > MAX_SHARE {
            return None;
        }
        // c^lead < 2^-64, with a margin for the floating-point logarithm.
        let lead = (64.0 / -widest.log2()).ceil() as usize + 2;
        Some(Intervals { of, lead })
    }

    /// Every rotation's record (see [`POSITION_BITS`]), handed to `take` a chunk
    /// of at most [`CHUNK`] at a time.
    fn keys(&self, tokens: &[u16], mut take: impl FnMut(&[u64])) {
        let m = tokens.len();
        let step = |key: u64, t: u16| {
            let (start, width) = self.of[usize::from(t)];
            start + ((u128::from(width) * u128::from(key)) >> 64) as u64
        };
        // Chain c makes the keys of starts [ends[c], ends[c + 1]), walking down to them from
        // `lead` tokens further on; the chains' lengths differ by at most one.
        let ends: [usize; CHAINS + 1] = std::array::from_fn(|c| m * c / CHAINS);
        let mut key = [0u64; CHAINS];
        for c in 0..CHAINS {
            let mut at = (ends[c + 1] + self.lead) % m;
            for _ in 0..self.lead {
                at = if at == 0 { m - 1 } else { at - 1 };
                key[c] = step(key[c], tokens[at]);
            }
        }
        // The token before start p, the next one its chain reads: carried to the next step.
        let before = |p: usize| tokens[p.wrapping_sub(1).min(m - 1)];
        let record = |key: u64, before: u16, p: usize| {
            key >> KEY_SHIFT << KEY_SHIFT | u64::from(before) << POSITION_BITS | p as u64
        };
        let mut token: [u16; CHAINS] = std::array::from_fn(|c| tokens[ends[c + 1] - 1]);
        let mut chunk = super::buffers::take::<u64>(CHUNK);
        chunk.resize(CHUNK, 0);
        let mut filled = 0;
        let short = m / CHAINS;
        for i in 0..short {
            let out: &mut [u64; CHAINS] =
                (&mut chunk[filled..filled + CHAINS]).try_into().expect("a chunk holds a step's records");
            for c in 0..CHAINS {
                let p = ends[c + 1] - 1 - i;
                key[c] = step(key[c], token[c]);
                token[c] = before(p);
                out[c] = record(key[c], token[c], p);
            }
            filled += CHAINS;
            if filled + CHAINS > CHUNK {
                take(&chunk[..filled]);
                filled = 0;
            }
        }
        for c in 0..CHAINS {
            if ends[c + 1] - ends[c] > short {
                let p = ends[c];
                chunk[filled] = record(step(key[c], token[c]), before(p), p);
                filled += 1;
            }
        }
        take(&chunk[..filled]);
        super::buffers::give(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maths::xoshiro::Xoshiro256;

    fn counted(tokens: &[u16], ranks: usize) -> Vec<u32> {
        super::super::token_counts(tokens, ranks)
    }

    /// The interval sort's tokens before each rotation, from its records.
    fn sorted(tokens: &[u16], ranks: usize) -> Option<Vec<u32>> {
        let records = interval_rotation_order(tokens, &counted(tokens, ranks), 64)?;
        Some(records.iter().map(|&r| token_before(r) as u32).collect())
    }

    /// The reference: every rotation sorted by comparing its tokens in full, round the block.
    fn naive_before(tokens: &[u16]) -> Vec<u32> {
        let m = tokens.len();
        let mut starts: Vec<usize> = (0..m).collect();
        starts.sort_by(|&a, &b| compare_rotations(tokens, a, b, m));
        starts.iter().map(|&s| u32::from(tokens[(s + m - 1) % m])).collect()
    }

    fn drawn(m: usize, seed: u64, draw: impl Fn(&mut Xoshiro256) -> u16) -> Vec<u16> {
        let mut g = Xoshiro256::from_seed(seed);
        (0..m).map(|_| draw(&mut g)).collect()
    }

    #[test]
    fn orders_rotations_as_comparing_them_does() {
        // Uniform tokens over 64 of 257 ranks and over 17, bell-shaped ones over 17 to about 120
        // (Gaussian sources'), biased binary ones with a joining token, and a few rare tokens
        // among common ones.
        let cases: Vec<(usize, Vec<u16>)> = vec![
            (257, drawn(20_000, 1, |g| (g.next_u64() % 64) as u16 * 4)),
            (17, drawn(30_000, 2, |g| (g.next_u64() % 17) as u16)),
            (65, drawn(25_000, 3, |g| (0..4).map(|_| g.next_u64() % 17).sum::<u64>() as u16)),
            (17, drawn(40_000, 4, |g| (0..4).map(|_| g.next_u64() % 5).sum::<u64>() as u16)),
            (257, drawn(30_000, 11, |g| (0..4).map(|_| g.next_u64() % 32).sum::<u64>() as u16)),
            (257, drawn(20_000, 13, |g| (g.next_u64() % 256) as u16)),
            (3, drawn(50_000, 5, |g| u16::from(g.next_u64() % 100 < 70))),
            (257, drawn(10_000, 6, |g| if g.next_u64() % 1000 == 0 { 256 } else { (g.next_u64() % 2) as u16 })),
        ];
        for (k, (ranks, mut tokens)) in cases.into_iter().enumerate() {
            // A joining token of its own, once.
            tokens.push((ranks - 1) as u16);
            let ours = sorted(&tokens, ranks).expect("random tokens are sorted");
            assert_eq!(ours, naive_before(&tokens), "case {k}");
        }
    }

    #[test]
    fn orders_rotations_that_agree_on_long_stretches() {
        // Stretches repeated several times in random text: rotations agreeing on 20 to 60 tokens,
        // whose keys agree to their last bits and are ordered by their tokens.
        let mut g = Xoshiro256::from_seed(7);
        let mut tokens: Vec<u16> = (0..20_000).map(|_| (g.next_u64() % 3) as u16).collect();
        for (len, at) in [(20usize, 1_000usize), (40, 5_000), (60, 9_000)] {
            let stretch = tokens[at..at + len].to_vec();
            for copy in 1..4 {
                let to = at + copy * 2_000 + 7;
                tokens[to..to + len].copy_from_slice(&stretch);
            }
        }
        let ours = sorted(&tokens, 3).expect("no two rotations agree on 64 tokens");
        assert_eq!(ours, naive_before(&tokens));
    }

    #[test]
    fn declines_what_it_cannot_order() {
        let mut g = Xoshiro256::from_seed(8);
        // Rotations agreeing on the whole lookahead; one token only; one token over the share;
        // too short.
        let mut repeated: Vec<u16> = (0..10_000).map(|_| (g.next_u64() % 5) as u16).collect();
        repeated.extend_from_within(1_000..1_200);
        assert!(interval_rotation_order(&repeated, &counted(&repeated, 5), 64).is_none());
        assert!(interval_rotation_order(&[3u16; 10_000], &counted(&[3u16; 10_000], 5), 64).is_none());
        let skewed: Vec<u16> = (0..10_000).map(|i| u16::from(i % 200 == 0)).collect();
        assert!(interval_rotation_order(&skewed, &counted(&skewed, 2), 64).is_none());
        assert!(interval_rotation_order(&repeated[..MIN_TOKENS - 1], &counted(&repeated[..MIN_TOKENS - 1], 5), 64)
            .is_none());
    }

    /// `records` in the buckets' layout (by top byte, `room` places each), sorted by
    /// [`sort_buckets`] with runs of near keys ordered by start, descending: whether it could,
    /// and the records in order.
    fn sort_in_buckets(records: &[u64]) -> (bool, Vec<u64>) {
        let mut fill = [0u32; DIGITS];
        records.iter().for_each(|&r| fill[(r >> (64 - DIGIT)) as usize] += 1);
        let room = *fill.iter().max().unwrap() as usize;
        let mut layout = vec![0u64; room * DIGITS];
        let mut at = [0usize; DIGITS];
        for &r in records {
            let b = (r >> (64 - DIGIT)) as usize;
            layout[b * room + at[b]] = r;
            at[b] += 1;
        }
        let mut scratch = vec![0u64; room];
        let descending = |run: &mut [u64]| run.sort_unstable_by_key(|&r| std::cmp::Reverse(position(r)));
        let starts = std::array::from_fn(|b| b * room);
        let apart = sort_buckets(&mut layout, &starts, &fill, &mut scratch, descending);
        layout.truncate(records.len());
        (apart, layout)
    }

    #[test]
    fn buckets_sort_as_the_whole_does() {
        // Records with keys spread over every top byte, among them near pairs and triples (keys
        // at most one unit apart) and keys sharing their top 24 bits: the buckets' sort, runs of
        // near keys ordered by start, descending, equals sorting the whole and then ordering each
        // run so. Near keys on either side of a bucket's edge are refused. Buckets of about 150
        // records (the radix passes) and, with fewer keys, of about 20 (sorted by comparison).
        let mut g = Xoshiro256::from_seed(12);
        let unit = 1u64 << KEY_SHIFT;
        for many in [40_000, 5_000] {
            let mut keys: Vec<u64> = (0..many).map(|_| g.next_u64() & !(unit - 1)).collect();
            for _ in 0..40 {
                let k = (g.next_u64() & !(unit - 1)) | 1 << 50;
                keys.extend([k, k + unit, k ^ 1 << 30]);
            }
            // Near keys either side of a top-24 edge inside a bucket, a record of the upper side
            // ahead of the near one in the radix sort's (stable) order: found only by comparing
            // the pair across the edge after the sorts.
            for _ in 0..20 {
                let edge = (g.next_u64() >> 40 | 1) << 40;
                keys.extend([edge - unit, edge + 5 * unit, edge]);
            }
            let record = |keys: &[u64]| -> Vec<u64> { keys.iter().enumerate().map(|(p, &k)| k | p as u64).collect() };
            let records = record(&keys);
            let near = |a: u64, b: u64| (b >> KEY_SHIFT) - (a >> KEY_SHIFT) <= 1;
            let mut expected = records.clone();
            expected.sort_unstable();
            assert!(
                expected.windows(2).all(|w| w[0] >> 56 == w[1] >> 56 || !near(w[0], w[1])),
                "no pair across an edge"
            );
            sort_runs(&mut expected, near, |run| run.sort_unstable_by_key(|&r| std::cmp::Reverse(position(r))));
            let (apart, ours) = sort_in_buckets(&records);
            assert!(apart);
            let first = ours.iter().zip(&expected).position(|(a, b)| a != b);
            assert!(first.is_none(), "{first:?}");
            for edge in [1u64 << 62, 5 << 56] {
                let mut straddling = keys.clone();
                straddling.extend([edge - unit, edge]);
                assert!(!sort_in_buckets(&record(&straddling)).0, "near keys either side of {edge:#x}");
            }
        }
    }

    #[test]
    fn keys_far_from_even_are_ordered() {
        // Alternating tokens with a random one every third: the rotations' keys crowd a few dozen
        // top bytes, far more than a bucket's room (the buckets are then made again, sized by a
        // count).
        let mut g = Xoshiro256::from_seed(14);
        let mut tokens: Vec<u16> =
            (0..40_000).map(|i| if i % 3 == 2 { (g.next_u64() % 3) as u16 } else { (i % 2) as u16 }).collect();
        tokens.push(3);
        let count = counted(&tokens, 4);
        let intervals = Intervals::new(&count, tokens.len()).expect("four tokens");
        let room = bucket_room(tokens.len());
        let mut records = vec![0u64; room * DIGITS];
        let mut fill = [0u32; DIGITS];
        let starts = std::array::from_fn(|b| b * room);
        assert!(!drop_keys(&intervals, &tokens, &mut records, &starts, room, &mut fill), "a bucket overflows");
        assert_eq!(sorted(&tokens, 4).expect("sorted all the same"), naive_before(&tokens));
    }

    #[test]
    fn skewed_tokens_are_ordered() {
        // 80 % of one token: a start distance of 200 tokens and a rounding bound of 6 units;
        // runs of the common token some dozens long.
        let mut tokens = drawn(30_000, 9, |g| u16::from(g.next_u64() % 100 < 20));
        tokens.push(2);
        let ours = sorted(&tokens, 3).expect("no run of 64 equal tokens");
        assert_eq!(ours, naive_before(&tokens));
    }

    /// The token whose interval holds `t` strictly above its start.
    fn holding(intervals: &Intervals, t: u64) -> usize {
        intervals.of.iter().position(|&(s, w)| w > 0 && s < t && t <= s + (w - 1)).expect("a token holds t")
    }

    /// 256 ranks, `per` of each, arranged so that the rotation at chain 3's last start (its key
    /// made from the fewest tokens, `lead + 1`) and one mid chain 1 that shares those tokens get
    /// kept keys either side of the top-24 edge at `0x80 << 56 | low << 40`, their true order
    /// the other way round, with a third rotation just above the edge met first in its bucket.
    fn straddling(per: usize, low: u64, seed: u64) -> Option<Vec<u16>> {
        let ranks = 256usize;
        let m = ranks * per;
        let count = vec![per as u32; ranks];
        let intervals = Intervals::new(&count, m)?;
        let lead = intervals.lead;
        let edge: u64 = (0x80u64 << 56) | (low << 40);
        // Tokens whose chain, read backwards from a key at or above `above`, stays at or above
        // the edge: each step's smallest key that maps there.
        let mut prefix = Vec::new();
        let mut above = edge;
        for _ in 0..=lead {
            let d = holding(&intervals, above);
            let (start, width) = intervals.of[d];
            above = ((u128::from(above - start) << 64).div_ceil(u128::from(width))) as u64;
            prefix.push(d as u16);
            if above == 0 {
                return None;
            }
        }
        // What follows: a token at or above `above` for the second, a larger one for the first.
        let low_next = intervals.of.iter().position(|&(s, w)| w > 0 && s >= above)?;
        if low_next + 1 >= ranks {
            return None;
        }
        let mut third = Vec::new();
        let mut key = edge + (1u64 << 39);
        for _ in 0..7 {
            let d = holding(&intervals, key);
            let (start, width) = intervals.of[d];
            key = ((u128::from(key - start) << 64) / u128::from(width)) as u64;
            third.push(d as u16);
        }
        let ends: [usize; CHAINS + 1] = std::array::from_fn(|c| m * c / CHAINS);
        let (a, b, q) = (ends[4] - 1, ends[1] + (ends[2] - ends[1]) / 2, ends[6] - 50);
        let mut fixed: Vec<Option<u16>> = vec![None; m];
        let mut place = |at: usize, ts: &[u16]| ts.iter().enumerate().for_each(|(k, &x)| fixed[at + k] = Some(x));
        for (at, before, next) in [(a, 1u16, low_next as u16 + 1), (b, 2, low_next as u16)] {
            place(at - 1, &[before]);
            place(at, &prefix);
            place(at + lead + 1, &[next]);
        }
        place(q, &third);
        let mut left = count;
        fixed.iter().flatten().for_each(|&x| left[usize::from(x)] -= 1);
        let mut rest: Vec<u16> = (0..ranks).flat_map(|r| std::iter::repeat_n(r as u16, left[r] as usize)).collect();
        crate::maths::xoshiro::shuffle(&mut rest, &mut Xoshiro256::from_seed(seed));
        let mut rest = rest.into_iter();
        Some(fixed.iter().map(|f| f.unwrap_or_else(|| rest.next().expect("enough tokens"))).collect())
    }

    #[test]
    fn keys_either_side_of_a_top_24_edge_are_ordered_by_their_tokens() {
        // Rotations crafted so that two near keys fall either side of a top-24 edge inside a
        // bucket, behind another record of the upper side: sorted as comparing them does.
        let mut sorted_count = 0;
        for low in 0x1230u64..0x1238 {
            for seed in 0..2 {
                let Some(tokens) = straddling(156, low, seed) else { continue };
                if let Some(ours) = sorted(&tokens, 256) {
                    sorted_count += 1;
                    assert_eq!(ours, naive_before(&tokens), "edge {low:#x}, seed {seed}");
                }
            }
        }
        assert!(sorted_count >= 8, "the interval sort took {sorted_count} crafted blocks");
    }
}

//! The Burrows–Wheeler transform of a block of decimal text over its cyclic rotations, as bzip2
//! sorts them, built from the numbers rather than the bytes.
//!
//! Read cyclically from just after a space, a block is a sequence of tokens, each some digits and
//! one space. Such strings form a prefix-free set, and so do all their tails (the token read from
//! some offset on): two distinct tails differ before either ends. Hence
//! - rotations starting at token starts compare as their sequences of tokens do, with tokens
//!   ranked as strings: a sort of the token ranks (a quarter of the bytes) orders them;
//! - a rotation starting inside a token is that token's tail followed by the rotation at the next
//!   token, so all rotations sort by (tail, rank of the next token's rotation): one counting sort.
//!
//! The byte before a tail is a digit of the same token, or a space when the tail is a whole token.
//! Shuffled samples, the permutation tests' case, have rotations that differ within a few tokens:
//! a radix sort on those few, with the rare ties sorted further, orders them (see
//! [`radix_rotation_order`]). Otherwise a suffix array of the tokens followed by a copy of their
//! first [`LOOKAHEAD`] does; adjacent rotations are checked to differ within that many tokens, and
//! a block that repeats itself (where they do not) is sorted again with a full second copy.

/// Tokens of the cyclic continuation appended for the suffix sort.
const LOOKAHEAD: usize = 64;

/// A string of at most 8 bytes packed big-endian and left-aligned: for strings none of which is a
/// proper prefix of another, integer order is string order.
fn key(s: &[u8]) -> u64 {
    debug_assert!(s.len() <= 8);
    s.iter().enumerate().fold(0u64, |k, (i, &b)| k | u64::from(b) << (56 - 8 * i))
}

/// The token "v " for a byte value v.
fn standard_token(v: usize) -> Vec<u8> {
    let mut s = v.to_string().into_bytes();
    s.push(b' ');
    s
}

/// The distinct tokens of one block, ranked, with their tails ranked.
struct Alphabet {
    /// Token strings by rank.
    tokens: Vec<Vec<u8>>,
    /// Rank of "v " for each byte value v.
    standard_rank: [u16; 256],
    /// Rank of the block's joining token.
    join_rank: u16,
    /// Per token rank: (tail rank, byte before the tail) for each offset.
    tails: Vec<Vec<(u16, u8)>>,
    /// Number of distinct tails.
    tail_count: usize,
}

impl Alphabet {
    /// The 256 standard tokens and `join` (the token straddling the block's two ends).
    fn new(join: &[u8]) -> Self {
        let mut strings: Vec<Vec<u8>> = (0..256).map(standard_token).collect();
        let join_is_standard = strings.iter().any(|s| s == join);
        if !join_is_standard {
            strings.push(join.to_vec());
        }
        let mut order: Vec<usize> = (0..strings.len()).collect();
        order.sort_by_key(|&i| key(&strings[i]));
        let mut rank_of = vec![0u16; strings.len()];
        for (r, &i) in order.iter().enumerate() {
            rank_of[i] = r as u16;
        }
        let mut standard_rank = [0u16; 256];
        standard_rank.copy_from_slice(&rank_of[..256]);
        let join_rank = if join_is_standard {
            rank_of[strings.iter().position(|s| s == join).expect("present")]
        } else {
            rank_of[256]
        };
        let tokens: Vec<Vec<u8>> = order.iter().map(|&i| strings[i].clone()).collect();
        let mut tail_keys: Vec<u64> = tokens.iter().flat_map(|t| (0..t.len()).map(|o| key(&t[o..]))).collect();
        tail_keys.sort_unstable();
        tail_keys.dedup();
        let tails = tokens
            .iter()
            .map(|t| {
                (0..t.len())
                    .map(|o| {
                        let rank = tail_keys.binary_search(&key(&t[o..])).expect("every tail was collected");
                        (rank as u16, if o == 0 { b' ' } else { t[o - 1] })
                    })
                    .collect()
            })
            .collect();
        Alphabet { tokens, standard_rank, join_rank, tails, tail_count: tail_keys.len() }
    }
}

/// The last byte of each cyclic rotation of `block`, rotations in sorted order (bzip2's
/// transform; the original position is not needed for the length). `block` is a piece of decimal
/// text as [`super::decimal_text`] writes it.
#[cfg(test)]
pub fn cyclic_bwt(block: &[u8]) -> Vec<u8> {
    let Some(first_space) = block.iter().position(|&b| b == b' ') else {
        return naive_cyclic_bwt(block);
    };
    let mut values = Vec::with_capacity(block.len() / 3 + 1);
    let mut v = 0usize;
    for &b in &block[first_space + 1..] {
        if b == b' ' {
            values.push(v as u8);
            v = 0;
        } else {
            v = v * 10 + usize::from(b - b'0');
        }
    }
    let transform = cyclic_bwt_of_numbers(block, &values);
    let bytes: Vec<u8> = (0..=255u8).filter(|&b| transform.in_use[usize::from(b)]).collect();
    transform.symbols.iter().map(|&s| bytes[usize::from(s)]).collect()
}

/// A block's transform with its bytes numbered among those in use, as bzip2 codes them.
pub struct Transform {
    /// Per rotation in sorted order, its last byte's number among the bytes in use.
    pub symbols: Vec<u8>,
    /// The byte values in the block.
    pub in_use: [bool; 256],
    /// Stretches `[start, end)` of `symbols` known to hold one symbol (the spaces before whole
    /// tokens that are no token's tail), sorted and apart.
    pub repeats: Vec<(usize, usize)>,
}

/// The transform of `block` (as `cyclic_bwt` gives it) given the numbers written whole in it after its
/// first space (those followed by a space within it).
pub fn cyclic_bwt_of_numbers(block: &[u8], values: &[u8]) -> Transform {
    // Tokens of the block read from just after its first space, wrapping round; all are whole
    // numbers except the last, which joins the block's last digits to its first.
    let first_space = block.iter().position(|&b| b == b' ').expect("the block has a number and a space");
    let last_space = block.iter().rposition(|&b| b == b' ').expect("as above");
    let mut join = block[last_space + 1..].to_vec();
    join.extend_from_slice(&block[..first_space + 1]);
    let alphabet = Alphabet::new(&join);
    let mut tokens = super::buffers::take::<u16>(values.len() + 1);
    tokens.clear();
    tokens.extend(values.iter().map(|&v| alphabet.standard_rank[usize::from(v)]));
    tokens.push(alphabet.join_rank);

    let before = radix_rotation_order(&tokens, alphabet.tokens.len()).unwrap_or_else(|| {
        let order = rotation_order(&tokens, LOOKAHEAD.min(tokens.len()))
            .unwrap_or_else(|| rotation_order(&tokens, tokens.len()).expect("a full copy decides every comparison"));
        order.iter().map(|&s| tokens[if s == 0 { tokens.len() - 1 } else { s as usize - 1 }]).collect()
    });
    let transform = scatter(&tokens, &before, &alphabet, block.len());
    super::buffers::give(tokens);
    super::buffers::give(before);
    transform
}

/// Fewest tokens for the radix sort: below this the suffix sort is as quick.
const RADIX_MIN_TOKENS: usize = 4096;

/// Bits of a record that hold the rotation's start (blocks hold fewer than 2^20 tokens).
const POSITION_BITS: u32 = 20;

/// The largest number of other rotations expected to share a rotation's key (`m p^depth`, `p`
/// the chance that two tokens are equal) for which the radix sort is still the quicker: the
/// groups are sorted by comparison, and at 1 about two rotations in three are in one.
const MAX_GROUPED: f64 = 1.0;

/// A record's rotation start (its low [`POSITION_BITS`]).
#[inline(always)]
fn start_of(record: u64) -> usize {
    (record & ((1 << POSITION_BITS) - 1)) as usize
}

/// For the token rotations in sorted order, the token before each, when the rotations are far
/// from repeating, as in shuffled samples: a least-significant-first counting sort on the first
/// `depth` tokens, with `depth` chosen so that few rotations share them, then each group sharing
/// them sorted on the next tokens up to [`LOOKAHEAD`]. Each rotation travels as one word holding
/// its first tokens and its start, so the passes read in order and the groups show as equal
/// neighbours. `None` (the suffix sort then decides) for short blocks, a single symbol, tokens
/// so alike that too many rotations would share the key the word holds, and any two rotations
/// agreeing on [`LOOKAHEAD`] tokens.
fn radix_rotation_order(tokens: &[u16], ranks: usize) -> Option<Vec<u16>> {
    let m = tokens.len();
    if m < RADIX_MIN_TOKENS.max(LOOKAHEAD) || m >= 1 << POSITION_BITS {
        return None;
    }
    let mut count = vec![0u32; ranks];
    for &t in tokens {
        count[usize::from(t)] += 1;
    }
    let distinct = count.iter().filter(|&&c| c > 0).count() as f64;
    // Pairs of rotations sharing their first `depth` tokens number about m^2 p^depth / 2, p the
    // chance that two tokens are equal: the depth wanted keeps that near m / 128.
    let collision: f64 = count.iter().map(|&c| (f64::from(c) / m as f64).powi(2)).sum();
    let wanted_depth = ((64.0 * m as f64).ln() / -collision.ln()).ceil();
    // Keys are made of the tokens' ranks among those present (the same order, fewer bits).
    let mut dense = vec![0u16; ranks];
    let mut present = 0u16;
    for (d, &c) in dense.iter_mut().zip(&count) {
        *d = present;
        present += u16::from(c > 0);
    }
    let bits = u32::BITS - (u32::from(present.max(2)) - 1).leading_zeros();
    let key_shift = POSITION_BITS;
    // The key is as many tokens as the word has room for, up to the depth wanted: a block's
    // joining token often takes the alphabet one past a power of two (17, 65 or 257 tokens), a
    // bit more per token. One token fewer leaves more rotations to the comparison sort of the
    // groups, which stays cheap while they are a small share of the block.
    let depth = wanted_depth.min(f64::from((64 - key_shift) / bits));
    let grouped = m as f64 * collision.powf(depth);
    // The key (`depth` tokens of `bits`) is sorted in passes of at most 11 bits, digits that need
    // not follow token boundaries: binary text takes 24 one-bit tokens in three passes. The
    // highest digit may reach past the word's top, where it reads zeros.
    let key_bits = depth * f64::from(bits);
    let passes = (key_bits / 11.0).ceil();
    let width = (key_bits / passes).ceil();
    if distinct < 2.0 || depth >= (LOOKAHEAD / 2) as f64 || grouped > MAX_GROUPED {
        return None;
    }
    let (depth, passes, width) = (depth as usize, passes as usize, width as u32);
    let mut ext = super::buffers::take::<u16>(m + LOOKAHEAD);
    ext.clear();
    ext.extend_from_slice(tokens);
    ext.extend_from_slice(&tokens[..LOOKAHEAD]);
    // Record: first `depth` tokens (the first highest), then the start. Keys are built a token
    // at a time for all rotations together: no rotation waits on the last.
    let (mut dense_ext, mut records, mut sorted) =
        (super::buffers::take::<u16>(m + depth), super::buffers::take::<u64>(m), super::buffers::take::<u64>(m));
    dense_ext.clear();
    dense_ext.extend(ext[..m + depth - 1].iter().map(|&t| dense[usize::from(t)]));
    records.clear();
    records.extend(dense_ext[..m].iter().map(|&t| u64::from(t)));
    for k in 1..depth {
        for (r, &t) in records.iter_mut().zip(&dense_ext[k..]) {
            *r = *r << bits | u64::from(t);
        }
    }
    for (p, r) in records.iter_mut().enumerate() {
        *r = *r << key_shift | p as u64;
    }
    let mut next = vec![[0u32; DIGITS + 16]; passes];
    if width == bits && passes == depth {
        // Each digit is a whole token, and each pass sees every token once: the counts are the
        // tokens' own.
        for (&d, &c) in dense.iter().zip(&count).filter(|(_, &c)| c > 0) {
            next.iter_mut().for_each(|table| table[usize::from(d)] = c);
        }
    } else {
        match passes {
            1 => count_digits::<1>(&records, key_shift, width, &mut next),
            2 => count_digits::<2>(&records, key_shift, width, &mut next),
            3 => count_digits::<3>(&records, key_shift, width, &mut next),
            4 => count_digits::<4>(&records, key_shift, width, &mut next),
            _ => unreachable!("keys hold at most 44 bits"),
        }
    }
    let digit_mask = (1u64 << width) - 1;
    // Every place is written by the first pass: what a longer block left there is not read.
    sorted.resize(m, 0);
    for (d, next) in next.iter_mut().enumerate() {
        let mut total = 0u32;
        for c in next.iter_mut() {
            (*c, total) = (total, total + *c);
        }
        let shift = key_shift + width * d as u32;
        for &r in &records {
            let slot = &mut next[((r >> shift) & digit_mask) as usize & (DIGITS - 1)];
            debug_assert!((*slot as usize) < m);
            // SAFETY: the slots of each digit start at the count of smaller digits and take as
            // many records as have that digit, so every slot is below m = sorted.len().
            unsafe { *sorted.get_unchecked_mut(*slot as usize) = r };
            *slot += 1;
        }
        std::mem::swap(&mut records, &mut sorted);
    }
    let rest = |r: u64| {
        let p = start_of(r);
        &ext[p + depth..p + LOOKAHEAD]
    };
    // Rotations sharing their key are rare: find them by neighbours, then sort each group on.
    // Neighbours are compared 64 at a time into a mask, so that hits are found without a
    // branch per record.
    let mut i = 0;
    while i + 1 < m {
        let end = (i + 64).min(m - 1);
        let equal = records[i..end]
            .iter()
            .zip(&records[i + 1..=end])
            .enumerate()
            .fold(0u64, |mask, (k, (&x, &y))| mask | u64::from((x ^ y) >> key_shift == 0) << k);
        if equal == 0 {
            i = end;
            continue;
        }
        let first = i + equal.trailing_zeros() as usize;
        let key = records[first] >> key_shift;
        let mut j = first + 2;
        while j < m && records[j] >> key_shift == key {
            j += 1;
        }
        let group = &mut records[first..j];
        group.sort_unstable_by(|&a, &b| rest(a).cmp(rest(b)));
        if group.windows(2).any(|w| rest(w[0]) == rest(w[1])) {
            return None;
        }
        i = j;
    }
    // The token before each rotation, looked up from its start: the record keeps its bits for
    // the key.
    let mut order = super::buffers::take::<u16>(m);
    order.clear();
    order.extend(records.iter().map(|&r| {
        let p = start_of(r);
        tokens[if p == 0 { m - 1 } else { p - 1 }]
    }));
    super::buffers::give(dense_ext);
    super::buffers::give(records);
    super::buffers::give(sorted);
    super::buffers::give(ext);
    Some(order)
}

/// Values a radix digit takes at most (digits are at most 11 bits): fixed-size tables whose
/// indices need no check.
const DIGITS: usize = 1 << 11;

/// Counts of each of `P` digits of `width` bits above bit `shift` of the records, into tables
/// padded past a multiple of 4 KiB: one table's increment at some digit and the next one's at
/// the same digit would otherwise alias in the store queue and wait on each other.
fn count_digits<const P: usize>(records: &[u64], shift: u32, width: u32, next: &mut [[u32; DIGITS + 16]]) {
    let next: &mut [[u32; DIGITS + 16]; P] = (&mut next[..P]).try_into().expect("a table per digit");
    let mask = (1u64 << width) - 1;
    for &r in records {
        for (d, table) in next.iter_mut().enumerate() {
            table[((r >> (shift + width * d as u32)) & mask) as usize & (DIGITS - 1)] += 1;
        }
    }
}

/// Token start positions in rotation order, from a suffix array of `tokens` followed by their
/// first `lookahead` again; `None` when two adjacent rotations agree on `lookahead` tokens and
/// `lookahead` is less than the whole.
fn rotation_order(tokens: &[u16], lookahead: usize) -> Option<Vec<u32>> {
    let m = tokens.len();
    let mut text = Vec::with_capacity(m + lookahead);
    text.extend_from_slice(tokens);
    text.extend_from_slice(&tokens[..lookahead]);
    let sa = libsais::SuffixArrayConstruction::for_text(&text)
        .in_owned_buffer32()
        .single_threaded()
        .run()
        .expect("libsais sorts any text shorter than 2^31")
        .into_vec();
    let order: Vec<u32> = sa.into_iter().filter(|&s| (s as usize) < m).map(|s| s as u32).collect();
    if lookahead < m {
        let differ = |a: usize, b: usize| text[a..a + lookahead] != text[b..b + lookahead];
        if !order.windows(2).all(|w| differ(w[0] as usize, w[1] as usize)) {
            return None;
        }
    }
    Some(order)
}

/// Rotations sorted by (tail, rank of the following token's rotation): walk the token rotations
/// in order (`before` holds the token before each) and drop each tail of the token before them
/// into its tail's bucket.
fn scatter(tokens: &[u16], before: &[u16], alphabet: &Alphabet, n: usize) -> Transform {
    let mut per_token = vec![0usize; alphabet.tokens.len()];
    for &t in tokens {
        per_token[usize::from(t)] += 1;
    }
    // The transform holds the block's bytes, which are those of its tokens: number them here
    // and write the numbers, sparing the coder a pass to find them.
    let mut in_use = [false; 256];
    for (token, _) in alphabet.tokens.iter().zip(&per_token).filter(|(_, &c)| c > 0) {
        token.iter().for_each(|&b| in_use[usize::from(b)] = true);
    }
    let mut number = [0u8; 256];
    for (used, (b, _)) in in_use.iter().enumerate().filter(|(_, &u)| u).enumerate() {
        number[b] = used as u8;
    }
    let mut next = vec![0usize; alphabet.tail_count];
    for (t, &count) in per_token.iter().enumerate() {
        for &(tail, _) in &alphabet.tails[t] {
            next[usize::from(tail)] += count;
        }
    }
    let mut start = 0usize;
    for slot in next.iter_mut() {
        let count = *slot;
        *slot = start;
        start += count;
    }
    debug_assert_eq!(start, n);
    // Every token ends in the tail " ": that bucket takes each token's last digit in turn,
    // written in order rather than through a slot that every token would wait on. A tail that
    // is no token's proper tail (three-digit numbers, as a rule) is a whole token wherever it
    // occurs, preceded by a space: its bucket is filled with spaces at once, and the tokens skip
    // it. The other tails go through slots: each token's padded to two with a spare bucket whose
    // slot is reset to the end after every token, a loop of fixed length, where a variable one
    // is mispredicted on random text. A token with more (the joining token can have up to seven
    // tails) goes the long way.
    let space_tail = alphabet.tails[0].last().expect("a token has a tail").0;
    let mut proper = vec![false; alphabet.tail_count];
    for tails in &alphabet.tails {
        tails.iter().skip(1).for_each(|&(tail, _)| proper[usize::from(tail)] = true);
    }
    let space = number[usize::from(b' ')];
    // Every place below n is written below, by a slot or a fill: no zeroing needed.
    let mut bwt = super::buffers::take::<u8>(n + 2);
    bwt.resize(n + 2, 0);
    let spare = alphabet.tail_count;
    let mut next: Vec<u32> = next.into_iter().map(|s| s as u32).collect();
    next.push(n as u32);
    let mut last_digit = Vec::with_capacity(alphabet.tails.len());
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    let mut slotted: Vec<Option<([u16; 2], [u8; 2])>> = Vec::with_capacity(alphabet.tails.len());
    for (tails, &count) in alphabet.tails.iter().zip(&per_token) {
        let (&(last, before_space), rest) = tails.split_last().expect("a token has a tail");
        debug_assert_eq!(last, space_tail);
        last_digit.push(number[usize::from(before_space)]);
        let mut kept = Vec::with_capacity(rest.len());
        for &(tail, b) in rest {
            if proper[usize::from(tail)] {
                kept.push((tail, number[usize::from(b)]));
            } else if count > 0 {
                let from = next[usize::from(tail)] as usize;
                bwt[from..from + count].fill(space);
                // Buckets in tail order, which is the tokens' order: stretches come sorted.
                match repeats.last_mut() {
                    Some((_, end)) if *end == from => *end = from + count,
                    _ => repeats.push((from, from + count)),
                }
            }
        }
        slotted.push((kept.len() <= 2).then(|| {
            let (mut bucket, mut byte) = ([spare as u16; 2], [0u8; 2]);
            for (k, &(tail, b)) in kept.iter().enumerate() {
                (bucket[k], byte[k]) = (tail, b);
            }
            (bucket, byte)
        }));
    }
    let space_start = next[usize::from(space_tail)] as usize;
    for (&previous, out) in before.iter().zip(&mut bwt[space_start..space_start + before.len()]) {
        *out = last_digit[usize::from(previous)];
    }
    for &previous in before {
        let previous = usize::from(previous);
        let Some((bucket, byte)) = slotted[previous] else {
            let tails = &alphabet.tails[previous];
            for &(tail, byte) in tails[..tails.len() - 1].iter().filter(|(tail, _)| proper[usize::from(*tail)]) {
                let slot = &mut next[usize::from(tail)];
                bwt[*slot as usize] = number[usize::from(byte)];
                *slot += 1;
            }
            continue;
        };
        for k in 0..2 {
            let slot = next[usize::from(bucket[k])];
            bwt[slot as usize] = byte[k];
            next[usize::from(bucket[k])] = slot + 1;
        }
        next[spare] = n as u32;
    }
    bwt.truncate(n);
    Transform { symbols: bwt, in_use, repeats }
}

/// The transform by sorting every rotation directly: for blocks without a space (at most three
/// digits) and as the tests' reference.
pub fn naive_cyclic_bwt(block: &[u8]) -> Vec<u8> {
    let n = block.len();
    let mut starts: Vec<usize> = (0..n).collect();
    starts.sort_by(|&a, &b| (0..n).map(|k| block[(a + k) % n]).cmp((0..n).map(|k| block[(b + k) % n])));
    starts.iter().map(|&s| block[(s + n - 1) % n]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maths::xoshiro::Xoshiro256;

    fn check(block: &[u8]) {
        assert_eq!(cyclic_bwt(block), naive_cyclic_bwt(block), "{:?}", String::from_utf8_lossy(block));
    }

    #[test]
    fn equals_sorting_the_rotations() {
        check(b"banana");
        for block in [&b"0 1"[..], b"12", b"7", b" 3 4", b"45 6 78", b"5 5 5 5", b"0 12 1 2 0", b"255 25 2 255 2"] {
            check(block);
        }
        let text = super::super::decimal_text(&(0..=255).rev().collect::<Vec<u8>>());
        for cut in 0..8 {
            check(&text[cut..text.len() - cut]);
        }
    }

    fn random_tokens(m: usize, ranks: u64, seed: u64) -> Vec<u16> {
        let mut g = Xoshiro256::from_seed(seed);
        (0..m).map(|_| (g.next_u64() % ranks) as u16).collect()
    }

    #[test]
    fn radix_and_suffix_sorts_agree() {
        // (symbols used, alphabet, tokens): binary text uses two of the 256 tokens.
        let cases = [
            (257, 257, 20_000),
            (257, 257, 140_000),
            (17, 17, 30_000),
            (40, 40, 5_000),
            (3, 3, 50_000),
            (2, 256, 250_000),
        ];
        for (seed, (used, ranks, m)) in cases.into_iter().enumerate() {
            let tokens = random_tokens(m, used, seed as u64 + 1);
            let radix = radix_rotation_order(&tokens, ranks).expect("random tokens take the radix sort");
            let order = rotation_order(&tokens, LOOKAHEAD).expect("random rotations differ early");
            let before: Vec<u16> = order.iter().map(|&s| tokens[(s as usize + m - 1) % m]).collect();
            assert_eq!(radix, before, "{used} of {ranks} ranks, {m} tokens");
        }
    }

    /// Tokens 0 ..= 4 (`spread` − 1) as sums of four uniform draws: bell-shaped like a Gaussian
    /// ADC's samples, so that more tokens are needed to tell rotations apart.
    fn bell_tokens(m: usize, spread: u64, seed: u64) -> Vec<u16> {
        let mut g = Xoshiro256::from_seed(seed);
        (0..m).map(|_| (0..4).map(|_| g.next_u64() % spread).sum::<u64>() as u16).collect()
    }

    #[test]
    fn radix_sort_takes_bell_shaped_tokens_one_past_a_power_of_two() {
        // 17, 65 and 257 tokens in use (a block's joining token added to 16, 64 or 256 values):
        // the depth wanted does not fit the word with the token before and the position, and
        // the sort keys fewer tokens, leaving more to the groups' comparison sort.
        for (seed, (spread, m)) in
            [(5u64, 220_000usize), (17, 170_000), (65, 125_000), (5, 5_000)].into_iter().enumerate()
        {
            let tokens = bell_tokens(m, spread, seed as u64 + 11);
            let radix = radix_rotation_order(&tokens, 257).expect("bell-shaped tokens take the radix sort");
            let order = rotation_order(&tokens, LOOKAHEAD).expect("random rotations differ early");
            let before: Vec<u16> = order.iter().map(|&s| tokens[(s as usize + m - 1) % m]).collect();
            assert_eq!(radix, before, "spread {spread}, {m} tokens");
        }
        // A clipping ADC: a tenth of the samples or more on one value, which takes a longer key.
        let clipped: Vec<u16> = bell_tokens(125_000, 65, 15).into_iter().map(|t| t.min(150)).collect();
        let radix = radix_rotation_order(&clipped, 257).expect("clipped tokens take the radix sort");
        let order = rotation_order(&clipped, LOOKAHEAD).expect("random rotations differ early");
        let before: Vec<u16> =
            order.iter().map(|&s| clipped[(s as usize + clipped.len() - 1) % clipped.len()]).collect();
        assert_eq!(radix, before, "clipped");
    }

    #[test]
    fn radix_sort_declines_what_it_cannot_decide() {
        // A single symbol; too short; rotations equal over the lookahead.
        assert!(radix_rotation_order(&[7u16; 50_000], 257).is_none());
        assert!(radix_rotation_order(&random_tokens(1_000, 257, 6), 257).is_none());
        let mut repeated = random_tokens(10_000, 257, 7);
        repeated.extend_from_within(1_000..1_000 + 2 * LOOKAHEAD);
        assert!(radix_rotation_order(&repeated, 257).is_none());
        assert!(rotation_order(&repeated, LOOKAHEAD).is_none());
    }

    #[test]
    fn equals_sorting_the_rotations_of_periodic_text() {
        let text = super::super::decimal_text(&[1, 2, 3].repeat(50));
        check(&text);
        check(&text[1..]);
        let text = super::super::decimal_text(&[0u8; 300]);
        check(&text);
    }
}

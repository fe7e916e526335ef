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
//! they are sorted on the rotations' arithmetic codes, which are spread evenly whatever the
//! tokens' shares (see `interval_order.rs`); where that declines, a radix sort on their first
//! few tokens, with the rare ties sorted further (see [`radix_rotation_order`]). Otherwise a
//! suffix array of the tokens followed by a copy of their first [`LOOKAHEAD`] does; adjacent rotations are checked to differ within that many tokens, and
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

thread_local! {
    /// The alphabet of a block whose joining token is a standard one (four blocks in five of a
    /// 4-bit source's), made once a thread: making one took about 200 µs, a twentieth of a block.
    static STANDARD: std::rc::Rc<Alphabet> = std::rc::Rc::new(Alphabet::new(b"0 "));
}

impl Alphabet {
    /// [`Alphabet::new`] and the joining token's rank, the alphabet shared with other blocks
    /// where `join` is a standard token (the alphabet's own joining rank is then another's).
    fn for_join(join: &[u8]) -> (std::rc::Rc<Alphabet>, u16) {
        let standard = match join {
            [digits @ .., b' '] if (1..=3).contains(&digits.len()) && (digits.len() == 1 || digits[0] != b'0') => {
                let value =
                    digits.iter().try_fold(0u32, |v, &d| d.is_ascii_digit().then(|| v * 10 + u32::from(d - b'0')));
                value.filter(|&v| v < 256)
            }
            _ => None,
        };
        match standard {
            Some(v) => STANDARD.with(|alphabet| (std::rc::Rc::clone(alphabet), alphabet.standard_rank[v as usize])),
            None => {
                let alphabet = Alphabet::new(join);
                let rank = alphabet.join_rank;
                (std::rc::Rc::new(alphabet), rank)
            }
        }
    }

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
    let transform = cyclic_bwt_of_numbers(block.len(), &join_token(block), &values);
    let bytes: Vec<u8> = (0..=255u8).filter(|&b| transform.in_use[usize::from(b)]).collect();
    transform.symbols.iter().map(|&s| bytes[usize::from(s)]).collect()
}

/// A block's transform with its bytes numbered among those in use, as bzip2 codes them.
pub struct Transform {
    /// Per rotation in sorted order, its last byte's number among the bytes in use.
    pub symbols: Vec<u8>,
    /// The byte values in the block.
    pub in_use: [bool; 256],
}

/// The token that joins the block's last digits (after its last space) to its first (up to and
/// including its first space), from the block's first and last few bytes: `head` and `tail`
/// may be the whole block, or its first and last five bytes (which hold a space each: numbers
/// have at most three digits).
pub fn join_of(head: &[u8], tail: &[u8]) -> Vec<u8> {
    let first_space = head.iter().position(|&b| b == b' ').expect("the block has a number and a space");
    let last_space = tail.iter().rposition(|&b| b == b' ').expect("as above");
    let mut join = tail[last_space + 1..].to_vec();
    join.extend_from_slice(&head[..first_space + 1]);
    join
}

/// [`join_of`] the whole block.
#[cfg(test)]
fn join_token(block: &[u8]) -> Vec<u8> {
    join_of(block, block)
}

/// The transform of a block of `n` bytes (as `cyclic_bwt` gives it) given its joining token
/// ([`join_of`]) and the numbers written whole in it after its first space (those followed by a
/// space within it): the block's text itself is not needed.
pub fn cyclic_bwt_of_numbers(n: usize, join: &[u8], values: &[u8]) -> Transform {
    // Tokens of the block read from just after its first space, wrapping round; all are whole
    // numbers except the last, which joins the block's last digits to its first.
    let (alphabet, join_rank) = Alphabet::for_join(join);
    let mut tokens = super::buffers::take::<u16>(values.len() + 1);
    tokens.clear();
    tokens.extend(values.iter().map(|&v| alphabet.standard_rank[usize::from(v)]));
    tokens.push(join_rank);
    let count = super::token_counts(&tokens, alphabet.tokens.len());

    let transform = match super::interval_order::interval_rotation_order(&tokens, &count, LOOKAHEAD) {
        Some(records) => {
            let transform = scatter(&count, &records, &alphabet, n);
            super::buffers::give(records);
            transform
        }
        None => {
            let before = radix_rotation_order(&tokens, &count).unwrap_or_else(|| {
                let mut order = rotation_order(&tokens, LOOKAHEAD.min(tokens.len())).unwrap_or_else(|| {
                    rotation_order(&tokens, tokens.len()).expect("a full copy decides every comparison")
                });
                for s in order.iter_mut() {
                    *s = u32::from(tokens[if *s == 0 { tokens.len() - 1 } else { *s as usize - 1 }]);
                }
                order
            });
            let transform = scatter(&count, &before, &alphabet, n);
            super::buffers::give(before);
            transform
        }
    };
    super::buffers::give(tokens);
    transform
}

/// An entry of the rotations in sorted order that names the token before its rotation: the
/// token itself (the radix and suffix sorts), or a record with the token in its low bits (the
/// interval sort, `interval_order.rs`).
pub(super) trait Before: Copy {
    fn token(self) -> usize;
}

impl Before for u32 {
    #[inline(always)]
    fn token(self) -> usize {
        self as usize
    }
}

impl Before for u64 {
    #[inline(always)]
    fn token(self) -> usize {
        super::interval_order::token_before(self)
    }
}

/// Fewest tokens for the radix sort: below this the suffix sort is as quick.
const RADIX_MIN_TOKENS: usize = 4096;

/// Blocks hold fewer than 2^20 tokens (the radix sort's limit).
const POSITION_BITS: u32 = 20;

/// Bits of a rotation's key: with its start (below 2^20), one 64-bit record.
const KEY_BITS: u32 = 64 - POSITION_BITS;

/// The largest number of other rotations expected to share a rotation's key (`m p^depth`, `p`
/// the chance that two tokens are equal) for which the radix sort is still the quicker: the
/// groups are sorted by comparison, and at 1 about two rotations in three are in one.
const MAX_GROUPED: f64 = 1.0;

/// The tokens' dense ranks (ranks among those present), `bits` bits each, most significant
/// first, in 64-bit words: any run of tokens reads as one integer in their order, and the whole
/// block is a few bits a token (binary text: one) where the rotations' keys written out took
/// sixteen bytes a token.
struct PackedTokens {
    words: Vec<u64>,
    bits: u32,
    /// Tokens packed: reads start below this.
    len: usize,
}

impl PackedTokens {
    /// `tokens` mapped through `dense`, then their first `lookahead` again (the cyclic
    /// continuation), with two zero words after them.
    fn new(tokens: &[u16], lookahead: usize, dense: &[u16], bits: u32) -> Self {
        let len = tokens.len() + lookahead;
        let total = len * bits as usize;
        // Whole words, then two zero words: every place is written.
        let mut words = super::buffers::take::<u64>(total.div_ceil(64) + 2);
        words.resize(total.div_ceil(64) + 2, 0);
        // Codes gathered in a register, a word written whenever one is full. One loop over the
        // tokens and one over the continuation: a chained iterator costs a test a token.
        let (mut acc, mut filled, mut at) = (0u128, 0u32, 0usize);
        let mut push = |t: u16| {
            acc = acc << bits | u128::from(dense[usize::from(t)]);
            filled += bits;
            if filled >= 64 {
                filled -= 64;
                words[at] = (acc >> filled) as u64;
                at += 1;
            }
        };
        tokens.iter().for_each(|&t| push(t));
        tokens[..lookahead].iter().for_each(|&t| push(t));
        if filled > 0 {
            words[at] = (acc << (64 - filled)) as u64;
            at += 1;
        }
        words[at..].fill(0);
        PackedTokens { words, bits, len }
    }

    /// The 64 bits from bit `at` on, the first the highest.
    #[inline(always)]
    fn bits_from(&self, at: usize) -> u64 {
        let (w, shift) = (at / 64, at % 64);
        debug_assert!(w + 1 < self.words.len());
        // SAFETY: reads start at tokens below `len`, whose bits end in the word before the two
        // zero words: w + 1 is within `words`.
        let (high, low) = unsafe { (*self.words.get_unchecked(w), *self.words.get_unchecked(w + 1)) };
        ((u128::from(high) << 64 | u128::from(low)) << shift >> 64) as u64
    }

    /// The 64 bits from token `p` on.
    #[inline(always)]
    fn at_token(&self, p: usize) -> u64 {
        debug_assert!(p < self.len);
        self.bits_from(p * self.bits as usize)
    }

    /// Compares tokens `a ..` and `b ..` over `count` tokens.
    fn compare(&self, a: usize, b: usize, count: usize) -> std::cmp::Ordering {
        debug_assert!(a.max(b) + count <= self.len);
        let bits = self.bits as usize;
        let (a, b, total) = (a * bits, b * bits, count * bits);
        let mut done = 0;
        while done < total {
            let keep = (total - done).min(64) as u32;
            let mask = !0u64 << (64 - keep);
            let (x, y) = (self.bits_from(a + done) & mask, self.bits_from(b + done) & mask);
            if x != y {
                return x.cmp(&y);
            }
            done += 64;
        }
        std::cmp::Ordering::Equal
    }
}

/// For the token rotations in sorted order, the token before each, when the rotations are far
/// from repeating, as in shuffled samples: the rotations' starts sorted on their first `depth`
/// tokens (a key read from the packed tokens), with `depth` chosen so that few rotations share
/// them, then each group sharing them sorted on the next tokens up to [`LOOKAHEAD`]. The sort
/// takes 4 bytes a token (the starts, which become the tokens before them), the packed tokens
/// and one bucket's records. `None` (the suffix sort then decides) for short blocks, a single
/// symbol, tokens so alike that too many rotations would share the key, and any two rotations
/// agreeing on [`LOOKAHEAD`] tokens.
fn radix_rotation_order(tokens: &[u16], count: &[u32]) -> Option<Vec<u32>> {
    let m = tokens.len();
    if m < RADIX_MIN_TOKENS.max(LOOKAHEAD) || m >= 1 << POSITION_BITS {
        return None;
    }
    let ranks = count.len();
    let distinct = count.iter().filter(|&&c| c > 0).count() as f64;
    // Pairs of rotations sharing their first `depth` tokens number about m^2 p^depth / 2, p the
    // chance that two tokens are equal: the depth wanted keeps that near m / 128.
    let collision: f64 = count.iter().map(|&c| (f64::from(c) / m as f64).powi(2)).sum();
    let wanted_depth = ((64.0 * m as f64).ln() / -collision.ln()).ceil();
    // Keys are made of the tokens' ranks among those present (the same order, fewer bits).
    let mut dense = vec![0u16; ranks];
    let mut present = 0u16;
    for (d, &c) in dense.iter_mut().zip(count) {
        *d = present;
        present += u16::from(c > 0);
    }
    let bits = u32::BITS - (u32::from(present.max(2)) - 1).leading_zeros();
    // The key is as many tokens as [`KEY_BITS`] hold, up to the depth wanted: a block's joining
    // token often takes the alphabet one past a power of two (17, 65 or 257 tokens), a bit more
    // per token. One token fewer leaves more rotations to the comparison sort of the groups,
    // which stays cheap while they are a small share of the block.
    let depth = wanted_depth.min(f64::from(KEY_BITS / bits));
    let grouped = m as f64 * collision.powf(depth);
    if distinct < 2.0 || depth >= (LOOKAHEAD / 2) as f64 || grouped > MAX_GROUPED {
        return None;
    }
    let depth = depth as usize;
    // The key: `depth` tokens of `bits`, the first highest.
    let key_bits = depth as u32 * bits;
    let packed = PackedTokens::new(tokens, LOOKAHEAD, &dense, bits);
    let key = |p: usize| packed.at_token(p) >> (64 - key_bits);
    if bits >= LSD_MIN_BITS {
        let mut order = lsd_order(m, &key, key_bits, (bits, depth), (&dense, count))?;
        let groups_sorted =
            sort_groups(&mut order, &key, |a, b| packed.compare(a + depth, b + depth, LOOKAHEAD - depth));
        let order = groups_sorted.then(|| {
            before_each(&mut order, tokens);
            order
        });
        super::buffers::give(packed.words);
        return order;
    }
    // The starts by the key's top bits (a counting sort, reading the starts in order), then each
    // bucket sorted on its keys in a small scratch: the block takes 4 bytes a token, where a
    // least-significant-first sort throughout takes twice that (its input and output).
    let top = key_bits.min(TOP_BITS);
    let low = key_bits - top;
    let mut bounds = vec![0u32; (1 << top) + 1];
    for p in 0..m {
        bounds[(key(p) >> low) as usize + 1] += 1;
    }
    for b in 1..bounds.len() {
        bounds[b] += bounds[b - 1];
    }
    let largest = bounds.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0) as usize;
    let mut next = bounds.clone();
    // Every place is written: what a longer block left there is not read.
    let mut order = super::buffers::take::<u32>(m);
    order.resize(m, 0);
    for p in 0..m {
        let slot = &mut next[(key(p) >> low) as usize];
        debug_assert!((*slot as usize) < m);
        // SAFETY: the slots of each bucket start at the count of smaller buckets and take as
        // many starts as fall in it, so every slot is below m = order.len().
        unsafe { *order.get_unchecked_mut(*slot as usize) = p as u32 };
        *slot += 1;
    }
    // Each bucket as records (key, then start) sorted as integers; rotations sharing their key
    // are rare: they show as equal neighbours, and each such group is sorted on the tokens
    // after the key.
    let rest = LOOKAHEAD - depth;
    let (mut records, mut spare) = (super::buffers::take::<u64>(largest), super::buffers::take::<u64>(0));
    for w in bounds.windows(2) {
        let bucket = &mut order[w[0] as usize..w[1] as usize];
        if bucket.len() < 2 {
            continue;
        }
        records.clear();
        records.extend(bucket.iter().map(|&p| key(p as usize) << POSITION_BITS | u64::from(p)));
        sort_records(&mut records, &mut spare, low);
        for (s, &r) in bucket.iter_mut().zip(&records) {
            *s = (r & ((1 << POSITION_BITS) - 1)) as u32;
        }
        let mut first = 0;
        for i in 1..=records.len() {
            if i < records.len() && records[i] >> POSITION_BITS == records[first] >> POSITION_BITS {
                continue;
            }
            if i - first > 1 {
                let group = &mut bucket[first..i];
                group.sort_unstable_by(|&a, &b| packed.compare(a as usize + depth, b as usize + depth, rest));
                if group.windows(2).any(|w| packed.compare(w[0] as usize + depth, w[1] as usize + depth, rest).is_eq())
                {
                    return None;
                }
            }
            first = i;
        }
    }
    before_each(&mut order, tokens);
    super::buffers::give(records);
    super::buffers::give(spare);
    super::buffers::give(packed.words);
    Some(order)
}

/// Fewest records for which [`sort_records`] takes the radix sort: skewed samples (a Gaussian
/// ADC's, most of all at few bits) put thousands of rotations in the buckets of their most
/// common tokens, which a comparison sort takes several times as long over.
const RADIX_RECORDS: usize = 1024;

/// Sorts records (key, then start) whose keys agree above their `low` bits: a comparison sort
/// for a few, else a least-significant-first counting sort on those bits (with `spare` as
/// large), which keeps equal keys in the order of their starts as the comparison sort does.
fn sort_records(records: &mut Vec<u64>, spare: &mut Vec<u64>, low: u32) {
    if records.len() < RADIX_RECORDS || low == 0 {
        records.sort_unstable();
        return;
    }
    let passes = low.div_ceil(11);
    let width = low.div_ceil(passes);
    let mask = (1u64 << width) - 1;
    let mut next = vec![0u32; 1 << width];
    spare.resize(records.len(), 0);
    for d in 0..passes {
        let shift = POSITION_BITS + width * d;
        next.fill(0);
        for &r in records.iter() {
            next[((r >> shift) & mask) as usize] += 1;
        }
        let mut total = 0u32;
        for c in next.iter_mut() {
            (*c, total) = (total, total + *c);
        }
        for &r in records.iter() {
            let slot = &mut next[((r >> shift) & mask) as usize];
            spare[*slot as usize] = r;
            *slot += 1;
        }
        std::mem::swap(records, spare);
    }
}

/// Replaces each rotation's start by the token before it.
fn before_each(order: &mut [u32], tokens: &[u16]) {
    let m = tokens.len();
    for s in order.iter_mut() {
        let p = *s as usize;
        *s = u32::from(tokens[if p == 0 { m - 1 } else { p - 1 }]);
    }
}

/// Sorts each run of starts in `order` that share their key by `rest` (the tokens after the
/// key); false when two of them agree there too.
fn sort_groups(
    order: &mut [u32],
    key: &impl Fn(usize) -> u64,
    rest: impl Fn(usize, usize) -> std::cmp::Ordering,
) -> bool {
    let m = order.len();
    let (mut first, mut first_key) = (0usize, key(order[0] as usize));
    for i in 1..=m {
        let k = if i < m { key(order[i] as usize) } else { !first_key };
        if k == first_key {
            continue;
        }
        if i - first > 1 {
            let group = &mut order[first..i];
            group.sort_unstable_by(|&a, &b| rest(a as usize, b as usize));
            if group.windows(2).any(|w| rest(w[0] as usize, w[1] as usize).is_eq()) {
                return false;
            }
        }
        (first, first_key) = (i, k);
    }
    true
}

/// Fewest bits a token for which the rotations' starts are sorted by [`lsd_order`]: text of
/// more than 64 distinct numbers (8-bit samples, most of them of two or three digits), whose
/// blocks hold fewer tokens, so that its two arrays of starts (8 bytes a token) take no more than
/// the buckets' sort takes on binary text (4 bytes a token, twice as many tokens); its passes
/// are the quicker where the key is a few whole tokens.
const LSD_MIN_BITS: u32 = 7;

/// The starts `0 .. m` sorted on their keys (`key_bits` bits: `depth` tokens of `bits`) by a
/// least-significant-first counting sort in passes of at most 11 bits, between two arrays of
/// starts; `count` holds the tokens' counts, `dense` their ranks among those present.
fn lsd_order(
    m: usize,
    key: &impl Fn(usize) -> u64,
    key_bits: u32,
    (bits, depth): (u32, usize),
    (dense, count): (&[u16], &[u32]),
) -> Option<Vec<u32>> {
    let passes = key_bits.div_ceil(11) as usize;
    let width = key_bits.div_ceil(passes as u32);
    let mut next = vec![[0u32; DIGITS + 16]; passes];
    if width == bits && passes == depth {
        // Each digit is a whole token, and each pass sees every token once: the counts are the
        // tokens' own.
        for (&d, &c) in dense.iter().zip(count).filter(|(_, &c)| c > 0) {
            next.iter_mut().for_each(|table| table[usize::from(d)] = c);
        }
    } else {
        match passes {
            1 => count_digits::<1>(m, key, width, &mut next),
            2 => count_digits::<2>(m, key, width, &mut next),
            3 => count_digits::<3>(m, key, width, &mut next),
            4 => count_digits::<4>(m, key, width, &mut next),
            _ => return None,
        }
    }
    let digit_mask = (1u64 << width) - 1;
    // Every place is written by each pass: what a longer block left there is not read.
    let (mut order, mut spare) = (super::buffers::take::<u32>(m), super::buffers::take::<u32>(m));
    order.resize(m, 0);
    spare.resize(m, 0);
    for (d, next) in next.iter_mut().enumerate() {
        let mut total = 0u32;
        for c in next.iter_mut() {
            (*c, total) = (total, total + *c);
        }
        let shift = width * d as u32;
        let mut place = |p: usize, out: &mut [u32]| {
            let slot = &mut next[((key(p) >> shift) & digit_mask) as usize & (DIGITS - 1)];
            debug_assert!((*slot as usize) < m);
            // SAFETY: the slots of each digit start at the count of smaller digits and take as
            // many starts as have that digit, so every slot is below m = out.len().
            unsafe { *out.get_unchecked_mut(*slot as usize) = p as u32 };
            *slot += 1;
        };
        if d == 0 {
            // The first pass takes the starts in order: nothing to read them from.
            (0..m).for_each(|p| place(p, &mut order));
        } else {
            order.iter().for_each(|&p| place(p as usize, &mut spare));
            std::mem::swap(&mut order, &mut spare);
        }
    }
    super::buffers::give(spare);
    Some(order)
}

/// Values a radix digit takes at most (digits are at most 11 bits): fixed-size tables whose
/// indices need no check.
const DIGITS: usize = 1 << 11;

/// Counts of each of `P` digits of `width` bits of the keys of starts `0 .. m`, into tables
/// padded past a multiple of 4 KiB: one table's increment at some digit and the next one's at
/// the same digit would otherwise alias in the store queue and wait on each other.
fn count_digits<const P: usize>(m: usize, key: &impl Fn(usize) -> u64, width: u32, next: &mut [[u32; DIGITS + 16]]) {
    let next: &mut [[u32; DIGITS + 16]; P] = (&mut next[..P]).try_into().expect("a table per digit");
    let mask = (1u64 << width) - 1;
    for p in 0..m {
        let k = key(p);
        for (d, table) in next.iter_mut().enumerate() {
            table[((k >> (width * d as u32)) & mask) as usize & (DIGITS - 1)] += 1;
        }
    }
}

/// Bits of the key the first pass buckets the starts by: 2048 buckets, a few dozen to a few
/// hundred starts each in a block of shuffled samples.
const TOP_BITS: u32 = 11;

/// Token start positions in rotation order, from a suffix array of `tokens` followed by their
/// first `lookahead` again; `None` when two adjacent rotations agree on `lookahead` tokens and
/// `lookahead` is less than the whole. The text goes to libsais as 32-bit integers, whose
/// buckets are the alphabet's size: for 16-bit text they are 2 MiB whatever its length.
fn rotation_order(tokens: &[u16], lookahead: usize) -> Option<Vec<u32>> {
    let m = tokens.len();
    let mut text: Vec<i32> = Vec::with_capacity(m + lookahead);
    text.extend(tokens.iter().chain(&tokens[..lookahead]).map(|&t| i32::from(t)));
    let sa = libsais::SuffixArrayConstruction::for_text_mut(&mut text)
        .in_owned_buffer32()
        .single_threaded()
        .run()
        .expect("libsais sorts any text shorter than 2^31")
        .into_vec();
    let mut order = super::buffers::take::<u32>(m);
    order.clear();
    order.extend(sa.into_iter().filter(|&s| (s as usize) < m).map(|s| s as u32));
    if lookahead < m {
        let differ = |a: usize, b: usize| text[a..a + lookahead] != text[b..b + lookahead];
        if !order.windows(2).all(|w| differ(w[0] as usize, w[1] as usize)) {
            super::buffers::give(order);
            return None;
        }
    }
    Some(order)
}

/// Rotations sorted by (tail, rank of the following token's rotation): walk the token rotations
/// in order (`before` holds the token before each) and drop each tail of the token before them
/// into its tail's bucket.
fn scatter<B: Before>(count: &[u32], before: &[B], alphabet: &Alphabet, n: usize) -> Transform {
    let per_token: Vec<usize> = count.iter().map(|&c| c as usize).collect();
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
    // Proper tails of the tokens present only: a whole token that is a tail of no token in the
    // block (a Gaussian source's two-digit numbers when no three-digit one occurs, its commonest
    // one-digit numbers when no two-digit number ends in them) has a bucket of spaces alone.
    let mut proper = vec![false; alphabet.tail_count];
    for (tails, _) in alphabet.tails.iter().zip(&per_token).filter(|(_, &c)| c > 0) {
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
    // Where every token present has at most two proper tails (numbers below 100, and a
    // three-digit joining token) and they write to at most 16 buckets, the slots stay in one
    // register, a lane a bucket, and the space bucket is written in the same pass.
    let present = || slotted.iter().zip(&per_token).filter(|(_, &c)| c > 0).map(|(s, _)| *s);
    if present().all(|s| s.is_some()) {
        let mut buckets: Vec<u16> = present().flat_map(|s| s.map_or([0; 2], |(bucket, _)| bucket)).collect();
        buckets.sort_unstable();
        buckets.dedup();
        if buckets.len() <= super::slots::LANES {
            let lane = |bucket: u16| buckets.binary_search(&bucket).unwrap_or(0) as u8;
            // Tokens absent write nothing; their entries are never read.
            let writes: Vec<[(u8, u8); 2]> = slotted
                .iter()
                .map(|s| {
                    s.map_or([(0, 0); 2], |(bucket, byte)| [(lane(bucket[0]), byte[0]), (lane(bucket[1]), byte[1])])
                })
                .collect();
            let mut slots = [0u32; super::slots::LANES];
            let mut advancing = 0u16;
            for (l, (slot, &bucket)) in slots.iter_mut().zip(&buckets).enumerate() {
                *slot = next[usize::from(bucket)];
                // The spare bucket's slot stays at the end.
                advancing |= u16::from(usize::from(bucket) != spare) << l;
            }
            let (space, last_digit) = (space_start, &last_digit[..]);
            if present().all(|s| s.is_some_and(|(bucket, _)| bucket[1] == spare as u16)) {
                let first: Vec<[(u8, u8); 1]> = writes.iter().map(|w| [w[0]]).collect();
                let writes = super::slots::Writes { per_token: &first, advancing, space, last_digit };
                super::slots::fill(before, &writes, &mut slots, &mut bwt);
            } else {
                let writes = super::slots::Writes { per_token: &writes, advancing, space, last_digit };
                super::slots::fill(before, &writes, &mut slots, &mut bwt);
            }
            bwt.truncate(n);
            return Transform { symbols: bwt, in_use };
        }
    }
    for (&previous, out) in before.iter().zip(&mut bwt[space_start..space_start + before.len()]) {
        *out = last_digit[previous.token()];
    }
    // Where no token present has two proper tails (numbers below 100), one slot a token.
    let one_slot =
        slotted.iter().zip(&per_token).all(|(s, &c)| c == 0 || s.is_some_and(|(bucket, _)| bucket[1] == spare as u16));
    if one_slot {
        let single: Vec<(u16, u8)> =
            slotted.iter().map(|s| s.map_or((spare as u16, 0), |(bucket, byte)| (bucket[0], byte[0]))).collect();
        for &previous in before {
            let (bucket, byte) = single[previous.token()];
            let slot = next[usize::from(bucket)];
            bwt[slot as usize] = byte;
            next[usize::from(bucket)] = slot + 1;
            next[spare] = n as u32;
        }
        bwt.truncate(n);
        return Transform { symbols: bwt, in_use };
    }
    for &previous in before {
        let previous = previous.token();
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
    Transform { symbols: bwt, in_use }
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

    #[test]
    fn shared_alphabets_are_the_joins_own() {
        // Every standard joining token takes the shared alphabet, with its own rank, and that
        // alphabet orders tokens and tails as one made for the join does; others are made.
        for v in 0..256usize {
            let join = standard_token(v);
            let (shared, rank) = Alphabet::for_join(&join);
            let own = Alphabet::new(&join);
            assert_eq!(rank, own.join_rank, "{v}");
            assert_eq!(
                (&shared.tokens, &shared.standard_rank, &shared.tails),
                (&own.tokens, &own.standard_rank, &own.tails)
            );
            assert_eq!(shared.tail_count, own.tail_count);
        }
        for join in [&b"05 "[..], b"256 ", b"1234 ", b"7", b"12 3 ", b" "] {
            let (made, rank) = Alphabet::for_join(join);
            let own = Alphabet::new(join);
            assert_eq!((rank, &made.tokens, &made.tails), (own.join_rank, &own.tokens, &own.tails), "{join:?}");
        }
    }

    /// The radix sort given the tokens' counts.
    fn radix(tokens: &[u16], ranks: usize) -> Option<Vec<u32>> {
        radix_rotation_order(tokens, &super::super::token_counts(tokens, ranks))
    }

    fn check(block: &[u8]) {
        assert_eq!(cyclic_bwt(block), naive_cyclic_bwt(block), "{:?}", String::from_utf8_lossy(block));
    }

    #[test]
    fn blocks_of_small_numbers_with_every_kind_of_join() {
        // Numbers below 16 (tails in ten buckets and a few more: the slots in a register), as
        // long as the interval sort takes; the block joined by a standard two-digit token, by a
        // three-digit one (two proper tails: two writes a token), and by one over 255.
        let mut g = Xoshiro256::from_seed(21);
        let values: Vec<u8> = (0..6_000).map(|_| ((g.next_u64() % 16 + g.next_u64() % 16) / 2) as u8).collect();
        let text = super::super::decimal_text(&values);
        for (head, tail) in [(&b"5 "[..], &b" 1"[..]), (b"15 ", b" 1"), (b"5 ", b" 12"), (b"7 ", b" 99")] {
            let block = [head, &text[..], tail].concat();
            check(&block);
        }
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
            let radix = radix(&tokens, ranks).expect("random tokens take the radix sort");
            let order = rotation_order(&tokens, LOOKAHEAD).expect("random rotations differ early");
            let before: Vec<u32> = order.iter().map(|&s| u32::from(tokens[(s as usize + m - 1) % m])).collect();
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
    fn bucket_records_sort_as_integers() {
        // Keys sharing their top bits, few distinct below them (ties broken by the start), in
        // the order of their starts as a bucket holds them; below and above the radix threshold.
        let mut g = Xoshiro256::from_seed(12);
        for (len, low) in [(10usize, 5u32), (1023, 9), (1024, 9), (5000, 3), (40_000, 33), (3000, 0)] {
            let top = 0b101u64 << low;
            let mut records: Vec<u64> = (0..len as u64)
                .map(|p| (top | (g.next_u64() % (1 << low.max(1))) & !(!0u64 << low)) << POSITION_BITS | p)
                .collect();
            let mut expected = records.clone();
            expected.sort_unstable();
            sort_records(&mut records, &mut Vec::new(), low);
            assert_eq!(records, expected, "{len} records, {low} low bits");
        }
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
            let radix = radix(&tokens, 257).expect("bell-shaped tokens take the radix sort");
            let order = rotation_order(&tokens, LOOKAHEAD).expect("random rotations differ early");
            let before: Vec<u32> = order.iter().map(|&s| u32::from(tokens[(s as usize + m - 1) % m])).collect();
            assert_eq!(radix, before, "spread {spread}, {m} tokens");
        }
        // A clipping ADC: a tenth of the samples or more on one value, which takes a longer key.
        let clipped: Vec<u16> = bell_tokens(125_000, 65, 15).into_iter().map(|t| t.min(150)).collect();
        let radix = radix(&clipped, 257).expect("clipped tokens take the radix sort");
        let order = rotation_order(&clipped, LOOKAHEAD).expect("random rotations differ early");
        let before: Vec<u32> =
            order.iter().map(|&s| u32::from(clipped[(s as usize + clipped.len() - 1) % clipped.len()])).collect();
        assert_eq!(radix, before, "clipped");
    }

    #[test]
    fn radix_sort_declines_what_it_cannot_decide() {
        // A single symbol; too short; rotations equal over the lookahead.
        assert!(radix(&[7u16; 50_000], 257).is_none());
        assert!(radix(&random_tokens(1_000, 257, 6), 257).is_none());
        let mut repeated = random_tokens(10_000, 257, 7);
        repeated.extend_from_within(1_000..1_000 + 2 * LOOKAHEAD);
        assert!(radix(&repeated, 257).is_none());
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

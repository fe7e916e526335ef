//! The Burrows–Wheeler transform of a block of decimal text over its cyclic rotations, as bzip2
//! sorts them, built from the numbers rather than the bytes.
//!
//! Read cyclically from just after a space, a block is a sequence of tokens, each some digits and
//! one space. Such strings form a prefix-free set, and so do all their tails (the token read from
//! some offset on): two distinct tails differ before either ends. Hence
//! - rotations starting at token starts compare as their sequences of tokens do, with tokens
//!   ranked as strings; one suffix array of the token ranks (a quarter of the bytes, on a 16-bit
//!   alphabet) sorts them;
//! - a rotation starting inside a token is that token's tail followed by the rotation at the next
//!   token, so all rotations sort by (tail, rank of the next token's rotation): one counting sort.
//!
//! The byte before a tail is a digit of the same token, or a space when the tail is a whole token.
//! The suffix array is of the tokens followed by a copy of their first [`LOOKAHEAD`]; adjacent
//! rotations are checked to differ within that many tokens, and a block that repeats itself
//! (where they do not) is sorted again with a full second copy.

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
pub fn cyclic_bwt(block: &[u8]) -> Vec<u8> {
    let Some(first_space) = block.iter().position(|&b| b == b' ') else {
        return naive_cyclic_bwt(block);
    };
    // Tokens of the block read from just after its first space, wrapping round; all are whole
    // numbers except the last, which joins the block's last digits to its first.
    let (head, body) = block.split_at(first_space + 1);
    let mut values: Vec<u8> = Vec::with_capacity(block.len() / 3 + 1);
    let mut v = 0usize;
    let mut digits_start = 0usize;
    for (i, &b) in body.iter().enumerate() {
        if b == b' ' {
            values.push(v as u8);
            v = 0;
            digits_start = i + 1;
        } else {
            v = v * 10 + usize::from(b - b'0');
        }
    }
    let mut join = body[digits_start..].to_vec();
    join.extend_from_slice(head);
    let alphabet = Alphabet::new(&join);
    let mut tokens: Vec<u16> = values.iter().map(|&v| alphabet.standard_rank[usize::from(v)]).collect();
    tokens.push(alphabet.join_rank);
    drop(values);

    let order = match rotation_order(&tokens, LOOKAHEAD.min(tokens.len())) {
        Some(order) => order,
        None => rotation_order(&tokens, tokens.len()).expect("a full copy decides every comparison"),
    };
    scatter(&tokens, &order, &alphabet, block.len())
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
/// in order and drop each tail of the token before them into its tail's bucket.
fn scatter(tokens: &[u16], order: &[u32], alphabet: &Alphabet, n: usize) -> Vec<u8> {
    let m = tokens.len();
    let mut per_token = vec![0usize; alphabet.tokens.len()];
    for &t in tokens {
        per_token[usize::from(t)] += 1;
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
    let mut bwt = vec![0u8; n];
    for &s in order {
        let previous = tokens[if s == 0 { m - 1 } else { s as usize - 1 }];
        for &(tail, byte) in &alphabet.tails[usize::from(previous)] {
            let slot = &mut next[usize::from(tail)];
            bwt[*slot] = byte;
            *slot += 1;
        }
    }
    bwt
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

    #[test]
    fn equals_sorting_the_rotations_of_periodic_text() {
        let text = super::super::decimal_text(&[1, 2, 3].repeat(50));
        check(&text);
        check(&text[1..]);
        let text = super::super::decimal_text(&[0u8; 300]);
        check(&text);
    }
}

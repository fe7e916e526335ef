//! The length of the bzip2 stream (block size 500 kB, as NIST's tool asks of libbzip2) of the
//! samples written as decimal numbers separated by spaces: SP 800-90B §5.1.12's compression
//! statistic, computed exactly without producing the stream.
//!
//! bzip2 first run-length encodes runs of four or more equal bytes; decimal text has none (a
//! number has at most three digits, and spaces are single), so the blocks hold the text as it
//! stands, cut as `blocks` says. A block costs a fixed header, its Burrows–Wheeler transform turned into
//! move-to-front values and Huffman coded with up to six tables chosen in four refining passes,
//! and the tables and selectors themselves. The transform is the slow part of bzip2; here it is
//! built by sorting the block's numbers rather than its bytes (see `bwt.rs`).

mod buffers;
mod bwt;
mod coding;
mod huffman;
mod interval_order;
mod slots;

/// How many times each rank below `ranks` occurs in `tokens`, counted into four tables: equal
/// tokens in a row would each wait on the last one's count.
fn token_counts(tokens: &[u16], ranks: usize) -> Vec<u32> {
    let mut counts = vec![[0u32; 4]; ranks];
    let mut quads = tokens.chunks_exact(4);
    for q in &mut quads {
        for (k, &t) in q.iter().enumerate() {
            counts[usize::from(t)][k] += 1;
        }
    }
    for &t in quads.remainder() {
        counts[usize::from(t)][0] += 1;
    }
    counts.iter().map(|c| c.iter().sum()).collect()
}

/// Bytes per block at block size 5 (`100000 * 5 - 19` in libbzip2).
const BLOCK: usize = 499_981;

/// Bits outside the blocks: "BZh5" before them, the end-of-stream magic and combined CRC after.
const STREAM_BITS: u64 = 32 + 48 + 32;

/// The decimal writing of every byte value, left-aligned, with its length.
const DECIMAL: [([u8; 3], u8); 256] = {
    let mut table = [([0u8; 3], 0u8); 256];
    let mut v = 0;
    while v < 256 {
        let (h, t, u) = ((v / 100) as u8, ((v / 10) % 10) as u8, (v % 10) as u8);
        table[v] = if v >= 100 {
            ([b'0' + h, b'0' + t, b'0' + u], 3)
        } else if v >= 10 {
            ([b'0' + t, b'0' + u, 0], 2)
        } else {
            ([b'0' + u, 0, 0], 1)
        };
        v += 1;
    }
    table
};

/// The samples as decimal numbers separated by single spaces (no trailing space).
pub fn decimal_text(raw: &[u8]) -> Vec<u8> {
    let mut text = Vec::new();
    write_decimal_text(raw, &mut text);
    text
}

/// Samples between the marks [`write_decimal_text`] leaves for [`Numbers`].
const MARK_EVERY: usize = 4096;

/// [`decimal_text`] into `text`, whatever it held: every place kept is written. Returns where
/// the numbers of samples 0, [`MARK_EVERY`], 2 × [`MARK_EVERY`], ... start.
fn write_decimal_text(raw: &[u8], text: &mut Vec<u8>) -> Vec<usize> {
    // Each number is written as four bytes, digits then spaces, and the next starts just after
    // its first space: fixed-size copies rather than one of one to three bytes.
    let words: [[u8; 4]; 256] = std::array::from_fn(|v| {
        let (digits, len) = DECIMAL[v];
        let mut word = [b' '; 4];
        word[..usize::from(len)].copy_from_slice(&digits[..usize::from(len)]);
        word
    });
    text.resize(raw.len() * 4, 0);
    let mut at = 0usize;
    let mut marks = Vec::with_capacity(raw.len() / MARK_EVERY + 1);
    for stretch in raw.chunks(MARK_EVERY) {
        marks.push(at);
        for &v in stretch {
            text[at..at + 4].copy_from_slice(&words[usize::from(v)]);
            at += usize::from(DECIMAL[usize::from(v)].1) + 1;
        }
    }
    text.truncate(at.saturating_sub(1));
    marks
}

/// The blocks libbzip2 cuts `text` into when given it whole with `BZ_FINISH` (as
/// `BZ2_bzBuffToBuffCompress` does). Runs of equal bytes enter a block whole, when the next byte
/// differs; a block closes once it holds [`BLOCK`] bytes or more, and the run pending then starts
/// the next block, except that a last byte of input pending then joins the closing block. (The
/// reference for [`compressed_length`], which cuts the same blocks as it writes them.)
#[cfg(test)]
fn blocks(text: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(text.len() / BLOCK + 1);
    let mut start = 0usize;
    while start < text.len() {
        let mut end = (start + BLOCK).min(text.len());
        while end < text.len() && text[end] == text[end - 1] {
            end += 1;
        }
        if end + 1 == text.len() {
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}

/// A walk through the samples alongside their decimal text, blocks in order, jumping ahead by
/// the marks where it can.
struct Numbers<'a> {
    raw: &'a [u8],
    /// Where the numbers of samples 0, [`MARK_EVERY`], ... start.
    marks: &'a [usize],
    /// The next sample not yet passed, and where its number starts in the text.
    next: usize,
    at: usize,
}

impl<'a> Numbers<'a> {
    /// The samples whose numbers start at or after text offset `from` (which must be where one
    /// starts) and are followed by a space before `to`.
    fn whole(&mut self, from: usize, to: usize) -> &'a [u8] {
        let width = |v: u8| usize::from(DECIMAL[usize::from(v)].1);
        // The last mark at or before `from`; then, past it, the last mark before `to`, whose
        // samples before it all end before `to`.
        self.jump(self.marks.partition_point(|&o| o <= from));
        while self.at < from {
            self.at += width(self.raw[self.next]) + 1;
            self.next += 1;
        }
        debug_assert_eq!(self.at, from, "a number starts after the block's first space");
        let first = self.next;
        self.jump(self.marks.partition_point(|&o| o < to));
        while self.next < self.raw.len() && self.at + width(self.raw[self.next]) < to {
            self.at += width(self.raw[self.next]) + 1;
            self.next += 1;
        }
        &self.raw[first..self.next]
    }

    /// Moves to the mark before mark `k`, when that is ahead.
    fn jump(&mut self, k: usize) {
        if k > 0 && (k - 1) * MARK_EVERY > self.next {
            self.next = (k - 1) * MARK_EVERY;
            self.at = self.marks[k - 1];
        }
    }
}

/// Where the numbers of samples 0, [`MARK_EVERY`], 2 × [`MARK_EVERY`], ... start in the decimal
/// text of `raw`, and the text's length, without writing it.
fn text_marks(raw: &[u8]) -> (Vec<usize>, usize) {
    let mut marks = Vec::with_capacity(raw.len() / MARK_EVERY + 1);
    let mut at = 0usize;
    for stretch in raw.chunks(MARK_EVERY) {
        marks.push(at);
        at += stretch.iter().map(|&v| usize::from(DECIMAL[usize::from(v)].1) + 1).sum::<usize>();
    }
    (marks, at.saturating_sub(1))
}

/// Writes the decimal text of `raw` from the number holding offset `from` until offset `to` into
/// `out` (whatever it held), and returns the offset of `out[0]` in the text: the text is made a
/// block at a time, so that its memory does not grow with the samples.
fn write_text_window(raw: &[u8], marks: &[usize], from: usize, to: usize, out: &mut Vec<u8>) -> usize {
    let words: [[u8; 4]; 256] = std::array::from_fn(|v| {
        let (digits, len) = DECIMAL[v];
        let mut word = [b' '; 4];
        word[..usize::from(len)].copy_from_slice(&digits[..usize::from(len)]);
        word
    });
    let width = |v: u8| usize::from(DECIMAL[usize::from(v)].1);
    let k = marks.partition_point(|&o| o <= from) - 1;
    let (mut i, mut at) = (k * MARK_EVERY, marks[k]);
    while i < raw.len() && at + width(raw[i]) < from {
        at += width(raw[i]) + 1;
        i += 1;
    }
    let origin = at;
    // Four bytes written a number: room for three past the last.
    out.resize(to - origin + 8, 0);
    let mut o = 0usize;
    while i < raw.len() && origin + o < to {
        out[o..o + 4].copy_from_slice(&words[usize::from(raw[i])]);
        o += width(raw[i]) + 1;
        i += 1;
    }
    origin
}

/// The length in bytes of `bzip2 -5` applied to [`decimal_text`]`(raw)`. The blocks are cut as
/// `blocks` (the tests' reference) cuts the whole text, each written when its turn comes. Only a
/// few bytes of the text are written (where a block may end, and its first and last bytes):
/// the transform is built from the numbers, and half a megabyte of text per thread at work
/// counted in the IID track's peak memory.
pub fn compressed_length(raw: &[u8]) -> u64 {
    let (marks, len) = text_marks(raw);
    let mut window = Vec::with_capacity(32);
    // The text from `from` to `to`, a few bytes.
    let mut text = |from: usize, to: usize| {
        let origin = write_text_window(raw, &marks, from, to, &mut window);
        window[from - origin..to - origin].to_vec()
    };
    let mut numbers = Numbers { raw, marks: &marks, next: 0, at: 0 };
    let mut bits = 0u64;
    let mut start = 0usize;
    while start < len {
        // As `blocks`, in offsets from `start`. Decimal text has no run of four equal bytes: a
        // block reaches at most 3 past BLOCK.
        let mut end = BLOCK.min(len - start);
        if start + end < len {
            let near = text(start + end - 1, (start + end + 8).min(len));
            debug_assert!(!near.windows(4).any(|w| w.iter().all(|&b| b == w[0])), "decimal text has no runs of four");
            let mut k = 1;
            while start + end < len && near[k] == near[k - 1] {
                end += 1;
                k += 1;
            }
        }
        if start + end + 1 == len {
            end += 1;
        }
        let head = text(start, start + end.min(5));
        bits += match head.iter().position(|&b| b == b' ') {
            Some(space) => {
                let join = bwt::join_of(&head, &text(start + end - end.min(5), start + end));
                let values = numbers.whole(start + space + 1, start + end);
                let t = bwt::cyclic_bwt_of_numbers(end, &join, values);
                let bits = coding::symbol_block_bits(&t.symbols, &t.in_use);
                buffers::give(t.symbols);
                bits
            }
            // No space in the first five bytes: the block is a number of at most three digits.
            None => coding::block_bits(&bwt::naive_cyclic_bwt(&head)),
        };
        start += end;
    }
    (STREAM_BITS + bits).div_ceil(8)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::maths::xoshiro::Xoshiro256;

    /// libbzip2 given the whole text with BZ_FINISH, as NIST's tool calls it.
    fn bzip2_length(text: &[u8]) -> u64 {
        let mut compress = bzip2::Compress::new(bzip2::Compression::new(5), 30);
        let mut out = Vec::with_capacity(text.len() + text.len() / 50 + 1000);
        let status = compress.compress_vec(text, &mut out, bzip2::Action::Finish).unwrap();
        assert_eq!(status, bzip2::Status::StreamEnd);
        out.len() as u64
    }

    fn check(raw: &[u8]) {
        let text = decimal_text(raw);
        assert_eq!(compressed_length(raw), bzip2_length(&text), "{} samples", raw.len());
    }

    /// xorshift64* bytes below `bound`.
    fn pseudo_random(n: usize, bound: u16, mut state: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                ((state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % u64::from(bound)) as u8
            })
            .collect()
    }

    #[test]
    fn text_is_decimal_numbers_separated_by_spaces() {
        assert_eq!(decimal_text(&[0, 7, 10, 99, 100, 255]), b"0 7 10 99 100 255");
        let all: Vec<u8> = (0..=255).collect();
        let expected = all.iter().map(u8::to_string).collect::<Vec<_>>().join(" ");
        assert_eq!(decimal_text(&all), expected.as_bytes());
    }

    #[test]
    fn blocks_close_after_whole_runs() {
        // A block of BLOCK - 1 distinct-neighbour bytes then "11": the run of two enters whole.
        let mut text: Vec<u8> = (0..BLOCK - 1).map(|i| [b'1', b' '][i % 2]).collect();
        text.extend_from_slice(b"2 11 3 4");
        let cut = blocks(&text);
        assert_eq!(cut.iter().map(|b| b.len()).sum::<usize>(), text.len());
        assert!(cut[0].len() >= BLOCK && cut.len() == 2, "{}", cut[0].len());
        // A single byte left over joins the last block.
        let text: Vec<u8> = (0..BLOCK + 1).map(|i| [b'1', b' '][i % 2]).collect();
        assert_eq!(blocks(&text).len(), 1);
    }

    #[test]
    fn equals_bzip2_on_small_inputs() {
        for raw in [&[0u8, 0][..], &[1, 2], &[255, 255, 255], &[5, 12, 5, 12, 5, 12, 5, 12], &[100, 0, 100, 0]] {
            check(raw);
        }
    }

    #[test]
    fn equals_bzip2_across_block_boundaries() {
        // 8-bit, 4-bit and binary samples over several 499,981-byte blocks, the last one short.
        check(&pseudo_random(300_000, 256, 1));
        check(&pseudo_random(260_000, 16, 2));
        check(&pseudo_random(600_000, 2, 3));
        // Bell-shaped 4- and 6-bit samples, as a Gaussian ADC gives (sums of four draws).
        for (spread, seed) in [(4u64, 4u64), (16, 5)] {
            let mut g = Xoshiro256::from_seed(seed);
            let raw: Vec<u8> = (0..400_000).map(|_| (0..4).map(|_| g.next_u64() % spread).sum::<u64>() as u8).collect();
            check(&raw);
        }
    }

    /// Random samples whose text puts `run` (a value with repeated digits) at `at`, then more.
    fn run_at(at: usize, run: u8, seed: u64) -> Vec<u8> {
        let mut raw = pseudo_random(at / 4, 256, seed);
        let mut len = decimal_text(&raw).len();
        // Tokens " 7", " 42", " 200" bring the text to exactly `at` bytes before " run".
        while len + 1 < at {
            let step = (at - 1 - len).min(4);
            let v = match step {
                2 => 7,
                3 => 42,
                4 if at - 1 - len != 5 => 200,
                _ => 42,
            };
            len += 1 + decimal_text(&[v]).len();
            raw.push(v);
        }
        assert_eq!(decimal_text(&raw).len() + 1, at);
        raw.push(run);
        raw.extend(pseudo_random(3000, 256, seed + 1));
        raw
    }

    #[test]
    fn equals_bzip2_when_a_block_is_cut_inside_a_run() {
        for (run, width) in [(111u8, 3usize), (11, 2), (200, 3), (100, 3)] {
            for offset in 0..=width {
                let raw = run_at(BLOCK - offset, run, offset as u64 + 10);
                let text = decimal_text(&raw);
                assert_eq!(&text[BLOCK - offset..BLOCK - offset + width], decimal_text(&[run]).as_slice());
                check(&raw);
            }
        }
    }

    #[test]
    fn equals_bzip2_on_periodic_and_constant_text() {
        // Repeated rotations: the case where the fast suffix sort has to fall back.
        check(&[7u8; 200_000]);
        let period: Vec<u8> = (0..150_000).map(|i| [3u8, 141, 59][i % 3]).collect();
        check(&period);
        let mut long_repeats = pseudo_random(1000, 256, 4).repeat(100);
        long_repeats.extend(pseudo_random(17, 256, 5));
        check(&long_repeats);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn equals_bzip2(raw in prop::collection::vec(any::<u8>(), 2..3000), bound in 1u16..=256) {
            let raw: Vec<u8> = raw.iter().map(|&v| (u16::from(v) % bound) as u8).collect();
            check(&raw);
        }

        #[test]
        fn equals_bzip2_when_a_block_ends_anywhere(seed in any::<u64>(), extra in 0usize..12) {
            // Text just over one block: the cut falls in a number, in a run of equal digits, or
            // leaves a single byte for the last block.
            let raw = pseudo_random(150_000, 256, seed | 1);
            let text = decimal_text(&raw);
            let mut n = 0;
            let mut len = 0;
            while len < BLOCK - 4 + extra {
                len += text[len..].iter().position(|&b| b == b' ').map_or(text.len() - len, |p| p + 1);
                n += 1;
            }
            check(&raw[..n.min(raw.len())]);
        }
    }
}

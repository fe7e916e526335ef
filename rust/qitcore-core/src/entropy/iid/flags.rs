//! Runs in a sequence of yes/no flags packed 64 to a word, for the permutation tests' run
//! statistics: a word at a time instead of a flag at a time, whose loop-carried run length costs
//! a few cycles per sample.

/// `f(a[i], b[i])` for each `i` below the shorter length, flag `i` at bit `i % 64` of word
/// `i / 64`, with that length.
pub fn pack(a: &[u8], b: &[u8], f: impl Fn(u8, u8) -> bool) -> (Vec<u64>, usize) {
    let len = a.len().min(b.len());
    // One byte (0 or 1) per flag first, a loop the compiler vectorises; then 64 bytes to a word
    // by [`word_of_64`], and the last few eight at a time by one multiplication, which moves
    // byte k's low bit to bit 56 + k. The bytes
    // are made a stretch at a time on the stack: a byte per sample for the whole sequence (a
    // megabyte per thread) counted in the IID track's peak memory.
    let gather = |eight: &[u8]| {
        let mut word = [0u8; 8];
        word[..eight.len()].copy_from_slice(eight);
        u64::from_le_bytes(word).wrapping_mul(0x0102_0408_1020_4080) >> 56
    };
    const STRETCH: usize = 4096;
    let mut words = Vec::with_capacity(len.div_ceil(64));
    let mut bytes = [0u8; STRETCH];
    for (x, y) in a[..len].chunks(STRETCH).zip(b[..len].chunks(STRETCH)) {
        let bytes = &mut bytes[..x.len()];
        for ((out, &x), &y) in bytes.iter_mut().zip(x).zip(y) {
            *out = u8::from(f(x, y));
        }
        // Stretches are whole words but the last: flag i stays at bit i % 64 of word i / 64.
        let mut chunks = bytes.chunks_exact(64);
        words.extend((&mut chunks).map(word_of_64));
        let rest = chunks.remainder();
        if !rest.is_empty() {
            words.push(rest.chunks(8).enumerate().fold(0u64, |w, (j, eight)| w | gather(eight) << (8 * j)));
        }
    }
    (words, len)
}

/// 64 flags (bytes 0 or 1) as one word, flag `k` at bit `k`: each byte's flag moved to its top
/// bit and gathered sixteen at a time (SSE2, part of every x86-64), where the multiplications
/// take eight at a time.
#[inline(always)]
fn word_of_64(bytes: &[u8]) -> u64 {
    debug_assert_eq!(bytes.len(), 64);
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_movemask_epi8, _mm_slli_epi16};
        let mut word = 0u64;
        for (j, sixteen) in bytes.chunks_exact(16).enumerate() {
            // SAFETY: SSE2 is part of x86-64; the load reads the sixteen bytes of `sixteen`.
            // A flag's byte is 0 or 1: shifting each 16-bit lane left by 7 puts it at its byte's
            // top bit and nothing in the other byte.
            let mask = unsafe {
                let v = _mm_loadu_si128(sixteen.as_ptr().cast::<__m128i>());
                _mm_movemask_epi8(_mm_slli_epi16::<7>(v)) as u16
            };
            word |= u64::from(mask) << (16 * j);
        }
        word
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        bytes.iter().enumerate().fold(0u64, |w, (k, &b)| w | u64::from(b) << k)
    }
}

/// The bits of word `w` that hold flags of a sequence of `len`.
fn valid(w: usize, len: usize) -> u64 {
    let bits = len - 64 * w;
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// Whether `x` holds `l` (1 to 64) set bits in a row: after each doubling step bit `i` of `r`
/// says that bits `i .. i + span` of `x` are all set, and a last step by `l - span` (at most
/// `span`) joins two such stretches into one of `l`.
#[inline(always)]
fn has_run_of(x: u64, l: u32) -> bool {
    debug_assert!((1..=64).contains(&l));
    let (mut r, mut span) = (x, 1u32);
    while span * 2 <= l {
        r &= r >> span;
        span *= 2;
    }
    r &= r >> (l - span);
    r != 0
}

/// The longest run of set flags (of clear ones when `invert`).
fn longest(words: &[u64], len: usize, invert: bool) -> u64 {
    let (mut best, mut carry) = (0u64, 0u64);
    for (w, &x) in words.iter().enumerate() {
        let mask = valid(w, len);
        let x = if invert { !x } else { x } & mask;
        if x == u64::MAX {
            carry += 64;
            best = best.max(carry);
            continue;
        }
        // The run entering from the previous word, then the longest within this one: each
        // step of `y &= y >> 1` shortens every run by one.
        best = best.max(carry + u64::from(x.trailing_ones()));
        // Only a run longer than the best so far can change it, and after the first words few
        // hold one: a few shifts rule it out, where counting the longest run takes a step per
        // flag of it and a mispredicted exit.
        if best < 64 && has_run_of(x, best as u32 + 1) {
            let (mut y, mut within) = (x, 0u64);
            while y != 0 {
                y &= y >> 1;
                within += 1;
            }
            best = best.max(within);
        }
        carry = u64::from(x.leading_ones());
    }
    best
}

/// Number of runs of equal flags and the longest run, over `len` flags.
#[cfg(test)]
fn runs(words: &[u64], len: usize) -> (u64, u64) {
    (run_count(words, len), longest_run(words, len))
}

/// Number of runs of equal flags over `len` flags: a count of the changes, a word at a time.
pub fn run_count(words: &[u64], len: usize) -> u64 {
    if len == 0 {
        return 0;
    }
    let mut changes = 0u64;
    let mut previous_top = words[0] & 1;
    for (w, &x) in words.iter().enumerate() {
        let differ = x ^ (x << 1 | previous_top);
        changes += u64::from((differ & valid(w, len)).count_ones());
        previous_top = x >> 63;
    }
    changes + 1
}

/// The longest run of equal flags over `len` flags (0 for none). Apart from [`run_count`]: once
/// a run statistic is decided the other is computed alone, and the longest run is the dearer.
pub fn longest_run(words: &[u64], len: usize) -> u64 {
    if len == 0 {
        return 0;
    }
    longest(words, len, false).max(longest(words, len, true))
}

/// Number of set flags.
pub fn count(words: &[u64]) -> u64 {
    words.iter().map(|w| u64::from(w.count_ones())).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maths::xoshiro::Xoshiro256;

    /// Runs one flag at a time: the definition.
    fn naive_runs(flags: &[bool]) -> (u64, u64) {
        if flags.is_empty() {
            return (0, 0);
        }
        let (mut count, mut longest, mut run) = (1u64, 1u64, 1u64);
        for w in flags.windows(2) {
            if w[0] == w[1] {
                run += 1;
            } else {
                count += 1;
                run = 1;
            }
            longest = longest.max(run);
        }
        (count, longest)
    }

    #[test]
    fn runs_of_a_length_are_found_as_defined() {
        let mut g = Xoshiro256::from_seed(2);
        let words: Vec<u64> = (0..2_000)
            .map(|i| match i % 4 {
                0 => g.next_u64(),
                1 => g.next_u64() | g.next_u64(),
                2 => g.next_u64() | g.next_u64() | g.next_u64() | g.next_u64(),
                _ => !(1u64 << (g.next_u64() % 64)),
            })
            .chain([0, u64::MAX, 1, 1 << 63, u64::MAX >> 1, u64::MAX << 1])
            .collect();
        for x in words {
            let longest = (0..64).fold((0u32, 0u32), |(best, run), i| {
                let run = if x >> i & 1 == 1 { run + 1 } else { 0 };
                (best.max(run), run)
            });
            for l in 1..=64 {
                assert_eq!(has_run_of(x, l), longest.0 >= l, "{x:#x} {l}");
            }
        }
    }

    #[test]
    fn packed_runs_equal_the_definition() {
        let mut g = Xoshiro256::from_seed(1);
        for len in [0usize, 1, 2, 63, 64, 65, 127, 128, 129, 1000, 4099, 12_345, 300_001] {
            for bias in [2u64, 5, 50, 1000, 100_000] {
                let a: Vec<u8> = (0..len).map(|_| u8::from(!g.next_u64().is_multiple_of(bias))).collect();
                let flags: Vec<bool> = a.iter().map(|&x| x == 1).collect();
                let (words, n) = pack(&a, &a, |x, _| x == 1);
                assert_eq!(n, len);
                assert_eq!(runs(&words, n), naive_runs(&flags), "len {len} bias {bias}");
                assert_eq!(run_count(&words, n), naive_runs(&flags).0, "len {len} bias {bias}");
                assert_eq!(longest_run(&words, n), naive_runs(&flags).1, "len {len} bias {bias}");
                assert_eq!(count(&words), flags.iter().filter(|&&f| f).count() as u64);
            }
        }
        // All set, all clear, across whole words.
        for len in [64usize, 128, 200] {
            let ones = vec![1u8; len];
            let (words, n) = pack(&ones, &ones, |x, _| x == 1);
            assert_eq!(runs(&words, n), (1, len as u64));
            let (words, n) = pack(&ones, &ones, |x, _| x == 0);
            assert_eq!(runs(&words, n), (1, len as u64));
        }
    }
}

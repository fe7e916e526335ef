//! Wegman–Carter authentication of the classical channel: an ε-almost-XOR-universal polynomial
//! hash over GF(2^64) of each message, its value one-time padded with fresh pre-shared key.
//!
//! # Encoding
//! A message of `n` bytes is cut into `L = ⌈n/8⌉` blocks `m_1 … m_L`, each read as a little-endian
//! `u64` (the last one padded with zero bytes), and followed by its length `n` as a block of its
//! own. With the secret hash key `k` the hash is the polynomial
//!
//! `h_k(m) = m_1·k^(L+1) + m_2·k^L + … + m_L·k^2 + n·k`
//!
//! evaluated by Horner's rule in GF(2^64) (the field of [`crate::gf2::gf64`]), and the tag is
//! `h_k(m) ⊕ r` with `r` a fresh 64-bit one-time pad.
//!
//! # Security
//! For two different messages `m ≠ m'` and any 64-bit `c`, `h_k(m) ⊕ h_k(m') = c` only if `k` is
//! a root of `h_·(m) − h_·(m') − c`: a nonzero polynomial (the length block differs when the
//! lengths do, a data block differs otherwise, and no coefficient is constant except `c`) of
//! degree at most `L + 1`, where `L` counts the longer message's blocks. For `k` uniform that has
//! probability at most `(L + 1)/2^64`: the family is ε-almost XOR universal with
//! `ε = (L + 1)/2^64` ([`epsilon`]), and the one-time pad makes the tag ε-almost strongly
//! universal, so a forger who saw any number of tags (each under its own pad) substitutes a
//! message with probability at most ε per try. The hash key may be kept for a whole session
//! because each tag is padded (Portmann 2014, key recycling); the ε of every tag verified adds
//! to the composable ε.
//!
//! # Why 64-bit blocks
//! Each tag costs one pad of `b` bits, and Cascade talks a lot: a session over 10^6 detections
//! (20 km, QBER ~1 %) took 330–550 round trips over 30 runs, two tags each, so 64-bit tags
//! consume 42–70 kbit of pre-shared key per session (measured with the pool's reservations:
//! 49–82 kbit), of a distilled key of about 119 kbit; 128-bit tags would take twice that, most of
//! the key. A message of 16 MiB (the largest a session of 10^6 records may send) still has
//! `ε < 2^-42`, and a whole session sums to ε ≈ 2·10^-14, far below the `ε_sec` it asks for. The
//! field arithmetic is the one the FFT and the verification tags already use and test, with its
//! PCLMULQDQ path.

use crate::gf2::backend::Backend;
use crate::gf2::gf64;

/// Bytes of each block, of the hash key and of the one-time pad.
pub const BLOCK_BYTES: usize = 8;

/// `h_k(m)` for the message made of `parts` one after the other (so a header and a payload can
/// be hashed where they lie, without copying them together).
pub fn hash(backend: Backend, key: u64, parts: &[&[u8]]) -> u64 {
    let mut acc = 0u64;
    let mut n = 0u64;
    // Bytes of a block split across parts wait here until the block is whole.
    let mut carry = [0u8; BLOCK_BYTES];
    let mut held = 0usize;
    for part in parts {
        n += part.len() as u64;
        let mut rest: &[u8] = part;
        if held > 0 {
            let take = rest.len().min(BLOCK_BYTES - held);
            carry[held..held + take].copy_from_slice(&rest[..take]);
            held += take;
            rest = &rest[take..];
            if held < BLOCK_BYTES {
                continue;
            }
            acc = gf64::mul(backend, acc ^ u64::from_le_bytes(carry), key);
        }
        let mut blocks = rest.chunks_exact(BLOCK_BYTES);
        for block in &mut blocks {
            let word = u64::from_le_bytes(block.try_into().expect("8-byte chunk"));
            acc = gf64::mul(backend, acc ^ word, key);
        }
        let tail = blocks.remainder();
        carry[..tail.len()].copy_from_slice(tail);
        held = tail.len();
    }
    if held > 0 {
        carry[held..].fill(0);
        acc = gf64::mul(backend, acc ^ u64::from_le_bytes(carry), key);
    }
    carry.fill(0);
    gf64::mul(backend, acc ^ n, key)
}

/// The tag of the message made of `parts`: `h_key(m) ⊕ pad`.
pub fn tag(backend: Backend, key: u64, pad: u64, parts: &[&[u8]]) -> u64 {
    hash(backend, key, parts) ^ pad
}

/// The substitution probability of one tag on messages of at most `n` bytes: `(L + 1)/2^64`
/// with `L = ⌈n/8⌉`.
pub fn epsilon(n: usize) -> f64 {
    (n.div_ceil(BLOCK_BYTES) as f64 + 1.0) / 2f64.powi(64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// GF(2^64) product bit by bit: shift-and-add with reduction by t^64 + t^4 + t^3 + t + 1 at
    /// each step, independent of the carry-less kernels.
    fn mul_bitwise(a: u64, b: u64) -> u64 {
        let (mut a, mut r) = (a, 0u64);
        for i in 0..64 {
            if (b >> i) & 1 == 1 {
                r ^= a;
            }
            let top = a >> 63;
            a <<= 1;
            if top == 1 {
                a ^= gf64::MODULUS_LOW;
            }
        }
        r
    }

    fn pow_bitwise(a: u64, e: usize) -> u64 {
        (0..e).fold(1, |acc, _| mul_bitwise(acc, a))
    }

    /// The hash as the sum of its terms, from the message copied whole and padded.
    fn naive(key: u64, message: &[u8]) -> u64 {
        let mut padded = message.to_vec();
        padded.resize(message.len().div_ceil(8) * 8, 0);
        let l = padded.len() / 8;
        let mut sum = 0u64;
        for (i, block) in padded.chunks(8).enumerate() {
            let m = u64::from_le_bytes(block.try_into().unwrap());
            sum ^= mul_bitwise(m, pow_bitwise(key, l + 1 - i));
        }
        sum ^ mul_bitwise(message.len() as u64, key)
    }

    fn backends() -> Vec<Backend> {
        crate::gf2::backend::available()
    }

    #[test]
    fn bitwise_product_agrees_with_known_values() {
        // t · t^63 = t^64 ≡ t^4 + t^3 + t + 1.
        assert_eq!(mul_bitwise(2, 1 << 63), 0x1B);
        assert_eq!(mul_bitwise(1, 0xdead_beef), 0xdead_beef);
    }

    #[test]
    fn empty_and_short_messages_match_the_sum_of_terms() {
        let key = 0x0123_4567_89ab_cdef;
        for n in 0..40 {
            let m: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
            for &b in &backends() {
                assert_eq!(hash(b, key, &[&m]), naive(key, &m), "n = {n} on {b:?}");
            }
        }
        // The empty message hashes to its length 0 times k: 0.
        assert_eq!(hash(Backend::Portable, key, &[]), 0);
    }

    #[test]
    fn zero_padding_does_not_collide_with_the_padded_message() {
        let key = 0xfeed_f00d_1234_5679;
        assert_ne!(hash(Backend::best(), key, &[b"abc"]), hash(Backend::best(), key, &[b"abc\0"]));
        assert_ne!(hash(Backend::best(), key, &[b""]), hash(Backend::best(), key, &[b"\0"]));
    }

    #[test]
    fn epsilon_counts_blocks_and_the_length() {
        assert_eq!(epsilon(0), 1.0 / 2f64.powi(64));
        assert_eq!(epsilon(8), 2.0 / 2f64.powi(64));
        assert_eq!(epsilon(9), 3.0 / 2f64.powi(64));
    }

    proptest! {
        #[test]
        fn hash_equals_the_naive_sum(key: u64, m in proptest::collection::vec(any::<u8>(), 0..200)) {
            let expected = naive(key, &m);
            for b in backends() {
                prop_assert_eq!(hash(b, key, &[&m]), expected);
            }
        }

        #[test]
        fn any_split_into_parts_hashes_the_same(
            key: u64,
            m in proptest::collection::vec(any::<u8>(), 0..100),
            cuts in proptest::collection::vec(0usize..100, 0..5),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(m.len())).collect();
            cuts.sort_unstable();
            let mut parts: Vec<&[u8]> = Vec::new();
            let mut start = 0;
            for c in cuts {
                parts.push(&m[start..c]);
                start = c;
            }
            parts.push(&m[start..]);
            prop_assert_eq!(hash(Backend::best(), key, &parts), naive(key, &m));
        }

        #[test]
        fn the_pad_is_xored_in(key: u64, pad: u64, m in proptest::collection::vec(any::<u8>(), 0..50)) {
            prop_assert_eq!(tag(Backend::best(), key, pad, &[&m]) ^ pad, naive(key, &m));
        }

        #[test]
        fn a_changed_message_changes_the_tag_unless_the_key_is_a_root(
            key in 1u64..,
            m in proptest::collection::vec(any::<u8>(), 1..64),
            at in 0usize..64,
            flip in 1u8..,
        ) {
            // A one-byte change is the nonzero polynomial d·k^j (j ≥ 2): never zero for k ≠ 0.
            let mut other = m.clone();
            let at = at % m.len();
            other[at] ^= flip;
            prop_assert_ne!(hash(Backend::best(), key, &[&m]), hash(Backend::best(), key, &[&other]));
        }
    }
}

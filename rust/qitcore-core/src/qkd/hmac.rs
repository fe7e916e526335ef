//! HMAC-SHA256 (RFC 2104, FIPS 198-1) for the QKD channel's default authentication, continued
//! from key states computed once.
//!
//! A Cascade session seals and opens a few thousand short messages; setting the key up for each
//! (hashing the padded key twice) would cost as much as the messages themselves. The inner state
//! may also carry a prefix hashed before every message (the channel's direction byte). SHA-256
//! runs on the CPU's SHA extensions where it has them (the `sha2` crate's own detection).

use sha2::{Digest, Sha256};

/// Bytes in a tag.
pub const TAG_BYTES: usize = 32;

/// SHA-256's block: keys up to this long are padded, longer ones hashed first.
const BLOCK: usize = 64;

/// A key's HMAC states. Cloning copies the states (no key material beyond them is kept).
#[derive(Clone)]
pub struct HmacSha256 {
    /// SHA-256 after the key XOR ipad block (and the prefix, if any).
    inner: Sha256,
    /// SHA-256 after the key XOR opad block.
    outer: Sha256,
}

impl HmacSha256 {
    /// The states of `key` (any length).
    pub fn new(key: &[u8]) -> Self {
        let mut block = zeroize::Zeroizing::new([0u8; BLOCK]);
        if key.len() > BLOCK {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let padded = |x: u8| {
            let mut pad = zeroize::Zeroizing::new([0u8; BLOCK]);
            for (p, &k) in pad.iter_mut().zip(block.iter()) {
                *p = k ^ x;
            }
            let mut h = Sha256::new();
            h.update(&pad[..]);
            h
        };
        HmacSha256 { inner: padded(0x36), outer: padded(0x5c) }
    }

    /// The same key with `prefix` hashed before every message.
    pub fn prefixed(&self, prefix: &[u8]) -> Self {
        let mut out = self.clone();
        out.inner.update(prefix);
        out
    }

    /// The tag of the concatenation of `parts` (after the prefix, if any).
    pub fn tag(&self, parts: &[&[u8]]) -> [u8; TAG_BYTES] {
        let mut inner = self.inner.clone();
        for part in parts {
            inner.update(part);
        }
        let mut outer = self.outer.clone();
        outer.update(inner.finalize());
        outer.finalize().into()
    }

    /// Whether `tag` is the tag of `parts`, compared in constant time (a forger learns nothing
    /// from how long a refusal took).
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mine = self.tag(parts);
        if tag.len() != TAG_BYTES {
            return false;
        }
        let diff = mine.iter().zip(tag).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    /// RFC 4231's test cases 1, 2, 4 and 6 (a key longer than a block).
    #[test]
    fn rfc_4231_vectors() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 4] = [
            (vec![0x0b; 20], b"Hi There".to_vec(), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            ((1..=25).collect(), vec![0xcd; 50], "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, data, expected) in cases {
            let mac = HmacSha256::new(&key);
            assert_eq!(mac.tag(&[&data]).to_vec(), hex(expected));
            // Split anywhere, or behind a prefix, the message is the same.
            let (a, b) = data.split_at(data.len() / 3);
            assert_eq!(mac.prefixed(a).tag(&[b]), mac.tag(&[&data]));
            assert!(mac.verify(&[a, b], &hex(expected)));
            let mut wrong = hex(expected);
            wrong[31] ^= 1;
            assert!(!mac.verify(&[&data], &wrong));
            assert!(!mac.verify(&[&data], &wrong[..31]));
        }
    }
}

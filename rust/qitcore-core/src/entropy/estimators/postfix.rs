//! The counting dictionaries of the MultiMMC and LZ78Y predictors: for each context (a short
//! string of preceding symbols), the symbols seen after it and how often.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The symbols seen after one context, with the current prediction: the symbol with the highest
/// count, ties going to the larger symbol. Most contexts of byte samples are seen once, with one
/// follower, and there are up to a million of them: the first follower is kept inline and the
/// whole entry fits in 24 bytes.
#[derive(Default, Clone)]
pub struct Postfix {
    first_symbol: u8,
    prediction: u8,
    first_count: u32,
    best: u32,
    #[expect(clippy::box_collection, reason = "a thin pointer keeps the entry at 24 bytes")]
    more: Option<Box<Vec<(u8, u32)>>>,
}

impl Postfix {
    /// The prediction and its count (the count is 0 only for an empty postfix).
    #[inline]
    pub fn predict(&self) -> (u8, u32) {
        (self.prediction, self.best)
    }

    /// Counts `symbol` after this context; a symbol not seen before is added only when
    /// `make_new`. Returns whether it was added.
    #[inline]
    pub fn increment(&mut self, symbol: u8, make_new: bool) -> bool {
        let (count, added) = if self.first_count > 0 && self.first_symbol == symbol {
            self.first_count += 1;
            (self.first_count, false)
        } else if self.first_count == 0 {
            if !make_new {
                return false;
            }
            self.first_symbol = symbol;
            self.first_count = 1;
            (1, true)
        } else {
            let more = self.more.get_or_insert_with(Default::default);
            match more.iter_mut().find(|(s, _)| *s == symbol) {
                Some((_, c)) => {
                    *c += 1;
                    (*c, false)
                }
                None if make_new => {
                    more.push((symbol, 1));
                    (1, true)
                }
                None => return false,
            }
        };
        if count > self.best || (count == self.best && symbol > self.prediction) {
            self.best = count;
            self.prediction = symbol;
        }
        added
    }
}

/// A multiplicative hash for packed contexts (keys are short byte strings in a `u128`).
#[derive(Default)]
pub struct ContextHasher(u64);

impl Hasher for ContextHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    #[inline]
    fn write_u128(&mut self, v: u128) {
        let folded = (v as u64) ^ ((v >> 64) as u64).rotate_left(29);
        self.0 = (self.0 ^ folded).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 ^= self.0 >> 31;
    }
}

/// Contexts of one length to their postfixes.
pub type ContextMap = HashMap<u128, Postfix, BuildHasherDefault<ContextHasher>>;

/// Packs up to 16 symbols into a key (the first symbol in the highest byte used).
#[inline]
pub fn pack(context: &[u8]) -> u128 {
    context.iter().fold(0u128, |acc, &b| (acc << 8) | u128::from(b))
}

/// The key of a context one symbol longer, `older` preceding the `len` symbols of `key`.
#[inline(always)]
pub fn extend(key: u128, older: u8, len: usize) -> u128 {
    key | (u128::from(older) << (8 * len))
}

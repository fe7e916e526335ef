//! A set of samples as NIST SP 800-90B's tools see it: one sample per byte, the low
//! `bits_per_symbol` bits used, symbols mapped down to `0..k` when fewer than `2^bits` occur, and
//! the bit string of the (unmapped) samples, most significant bit first.

use crate::error::{Error, Result};

/// The smallest number of samples SP 800-90B asks for; fewer give a warning, as in NIST's tool.
pub const RECOMMENDED_SAMPLES: usize = 1_000_000;

/// Samples ready for assessment.
#[derive(Clone, Debug)]
pub struct Samples {
    /// Bits per symbol (1 to 8).
    pub bits_per_symbol: u32,
    /// The samples, masked to `bits_per_symbol` bits (unmapped): the raw values.
    pub raw: Vec<u8>,
    /// The samples mapped down to `0..alphabet_size`, order preserved.
    pub symbols: Vec<u8>,
    /// Number of distinct symbols.
    pub alphabet_size: usize,
    /// The largest raw value present.
    pub max_symbol: u8,
    /// Whether the symbols were mapped down.
    pub translated: bool,
    /// The bit string, one bit per byte (0 or 1), `bits_per_symbol` bits per sample, most
    /// significant first; possibly truncated (see [`Samples::truncate_bits`]).
    pub bits: Vec<u8>,
}

/// The bit width the data needs: the position of the highest bit set in any sample.
pub fn inferred_width(data: &[u8]) -> u32 {
    let mask = data.iter().fold(0u8, |acc, &b| acc | b);
    8 - mask.leading_zeros()
}

impl Samples {
    /// Prepares `data` (one sample per byte). With `bits_per_symbol` absent it is inferred from the
    /// data as NIST's tool does.
    ///
    /// # Errors
    /// [`Error::InvalidLength`] naming `data` for fewer than 2 samples; [`Error::InvalidArgument`]
    /// naming `bits_per_symbol` when it is outside 1–8, or naming `data` with the offset of the first
    /// sample that does not fit in `bits_per_symbol` bits, or when all samples are one symbol.
    pub fn new(data: &[u8], bits_per_symbol: Option<u32>) -> Result<Self> {
        if data.len() < 2 {
            return Err(Error::length("data", format!("at least 2 samples are needed, got {}", data.len())));
        }
        let width = match bits_per_symbol {
            Some(b) if !(1..=8).contains(&b) => {
                return Err(Error::argument("bits_per_symbol", format!("must lie in 1..=8, got {b}")))
            }
            Some(b) => {
                if let Some(offset) = data.iter().position(|&s| u32::from(s) >> b != 0) {
                    return Err(Error::argument(
                        "data",
                        format!(
                            "sample {} at offset {offset} does not fit in {b} bits per symbol (the data needs {})",
                            data[offset],
                            inferred_width(data)
                        ),
                    ));
                }
                b
            }
            // All-zero data still has one-bit symbols (and one symbol: no entropy).
            None => inferred_width(data).max(1),
        };
        let raw = data.to_vec();
        let mut present = [false; 256];
        for &s in &raw {
            present[s as usize] = true;
        }
        let mut map = [0u8; 256];
        let mut alphabet_size = 0usize;
        for (v, &p) in present.iter().enumerate() {
            if p {
                map[v] = alphabet_size as u8;
                alphabet_size += 1;
            }
        }
        if alphabet_size < 2 {
            return Err(Error::argument(
                "data",
                format!("every sample is the same symbol ({}): there is no entropy to assess", raw[0]),
            ));
        }
        let max_symbol = raw.iter().copied().max().unwrap_or(0);
        let translated = alphabet_size < usize::from(max_symbol) + 1;
        let symbols = if translated { raw.iter().map(|&s| map[s as usize]).collect() } else { raw.clone() };
        let bits = if width == 1 {
            raw.clone()
        } else {
            let w = width as usize;
            let mut bits = vec![0u8; raw.len() * w];
            for (chunk, &s) in bits.chunks_exact_mut(w).zip(&raw) {
                for (j, b) in chunk.iter_mut().enumerate() {
                    *b = (s >> (w - 1 - j)) & 1;
                }
            }
            bits
        };
        Ok(Samples { bits_per_symbol: width, raw, symbols, alphabet_size, max_symbol, translated, bits })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// Keeps only the first `max_bits` bits of the bit string (NIST's `-t`).
    pub fn truncate_bits(&mut self, max_bits: usize) {
        self.bits.truncate(max_bits);
    }

    /// Whether the bit string is assessed too: NIST does so when the alphabet has more than two
    /// symbols (for the initial entropy estimate).
    pub fn assess_bitstring(&self) -> bool {
        self.alphabet_size > 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_is_inferred_and_symbols_are_mapped_down() {
        let s = Samples::new(&[4, 0, 6, 4], None).unwrap();
        assert_eq!(s.bits_per_symbol, 3);
        assert_eq!(s.alphabet_size, 3);
        assert!(s.translated);
        assert_eq!(s.symbols, vec![1, 0, 2, 1]);
        assert_eq!(s.bits, vec![1, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0]);
    }

    #[test]
    fn samples_wider_than_declared_name_the_first_offset() {
        match Samples::new(&[1, 2, 9, 3], Some(3)) {
            Err(Error::InvalidArgument { name: "data", message }) => assert!(message.contains("offset 2"), "{message}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(Samples::new(&[], None), Err(Error::InvalidLength { name: "data", .. })));
        assert!(matches!(Samples::new(&[3], None), Err(Error::InvalidLength { name: "data", .. })));
        assert!(matches!(Samples::new(&[3, 3, 3], None), Err(Error::InvalidArgument { name: "data", .. })));
        assert!(matches!(Samples::new(&[1, 2], Some(9)), Err(Error::InvalidArgument { name: "bits_per_symbol", .. })));
    }
}

//! A set of samples as NIST SP 800-90B's tools see it: one sample per byte, the low
//! `bits_per_symbol` bits used, symbols mapped down to `0..k` when fewer than `2^bits` occur, and
//! the bit string of the (unmapped) samples, most significant bit first.
//!
//! **Memory.** The samples are borrowed from the caller, not copied; the mapped symbols are a copy
//! only when mapping changes them; the bit string (one byte per bit, as the estimators read it) is
//! made only by the non-IID track, which needs it, and dropped after it.

use crate::error::{Error, Result};

/// The smallest number of samples SP 800-90B asks for; fewer give a warning, as in NIST's tool.
pub const RECOMMENDED_SAMPLES: usize = 1_000_000;

/// The most samples one assessment takes: 2^26 = 67,108,864, 64 times what SP 800-90B asks for.
///
/// Memory grows by about 13 bytes a sample on the non-IID track for 8-bit samples (the bit string
/// at a byte a bit, the t-tuple/LRS suffix keys sorted a range at a time: see
/// `estimators::sorted_windows`), and by about 2 + threads on the IID track (each permutation
/// worker's shuffle; the decimal text for the compression statistic is made a block at a time). Data whose repeats are too long for the bounded sort (a
/// broken source) fall back to a full suffix array of the bit string: at most 73 bytes a sample,
/// under 5 GiB at the limit. NIST's `ea_non_iid` takes about 106 bytes a sample for 8-bit samples
/// up to 2^28 samples, then about 200 (its suffix array turns 64-bit). Larger captures are assessed
/// a slice at a time.
pub const MAX_SAMPLES: usize = 1 << 26;

/// Samples ready for assessment, borrowed from the caller.
#[derive(Clone, Debug)]
pub struct Samples<'a> {
    /// Bits per symbol (1 to 8).
    pub bits_per_symbol: u32,
    raw: &'a [u8],
    /// The mapped symbols when mapping changes them.
    mapped: Option<Vec<u8>>,
    /// Number of distinct symbols.
    pub alphabet_size: usize,
    /// The largest raw value present.
    pub max_symbol: u8,
    /// Whether the symbols were mapped down.
    pub translated: bool,
    /// The length of the bit string assessed (NIST's `-t` truncates it).
    bitstring_bits: usize,
}

/// The bit width the data needs: the position of the highest bit set in any sample.
pub fn inferred_width(data: &[u8]) -> u32 {
    let mask = data.iter().fold(0u8, |acc, &b| acc | b);
    8 - mask.leading_zeros()
}

/// Refuses more than [`MAX_SAMPLES`] samples; callers check a sample count with it before
/// reading or allocating anything.
///
/// # Errors
/// [`Error::InvalidLength`] naming `data`, giving the limit.
pub fn check_sample_limit(n: usize) -> Result<()> {
    if n > MAX_SAMPLES {
        return Err(Error::length(
            "data",
            format!("{n} samples exceed the limit of {MAX_SAMPLES} samples per assessment; assess a slice of them"),
        ));
    }
    Ok(())
}

impl<'a> Samples<'a> {
    /// Prepares `data` (one sample per byte). With `bits_per_symbol` absent it is inferred from the
    /// data as NIST's tool does.
    ///
    /// # Errors
    /// [`Error::InvalidLength`] naming `data` for fewer than 2 samples or more than
    /// [`MAX_SAMPLES`]; [`Error::InvalidArgument`] naming `bits_per_symbol` when it is outside 1–8,
    /// or naming `data` with the offset of the first sample that does not fit in `bits_per_symbol`
    /// bits, or when all samples are one symbol.
    pub fn new(data: &'a [u8], bits_per_symbol: Option<u32>) -> Result<Self> {
        if data.len() < 2 {
            return Err(Error::length("data", format!("at least 2 samples are needed, got {}", data.len())));
        }
        check_sample_limit(data.len())?;
        let width = match bits_per_symbol {
            Some(b) if !(1..=8).contains(&b) => {
                return Err(Error::argument("bits_per_symbol", format!("must lie in 1..=8, got {b}")))
            }
            Some(b) => {
                if let Some(offset) = data.iter().position(|&s| u32::from(s) >> b != 0) {
                    return Err(Error::argument(
                        "data",
                        format!(
                            "the sample at offset {offset} (value {}) does not fit in {b} bits per symbol (the data needs {})",
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
        let mut present = [false; 256];
        for &s in data {
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
                format!("every sample is the same symbol ({}): there is no entropy to assess", data[0]),
            ));
        }
        let max_symbol = present.iter().rposition(|&p| p).unwrap_or(0) as u8;
        let translated = alphabet_size < usize::from(max_symbol) + 1;
        let mapped = match translated {
            true => {
                let mut mapped: Vec<u8> = crate::gf2::alloc::try_zeroed("the translated samples", data.len())?;
                for (m, &s) in mapped.iter_mut().zip(data) {
                    *m = map[s as usize];
                }
                Some(mapped)
            }
            false => None,
        };
        let bitstring_bits = data.len() * width as usize;
        Ok(Samples { bits_per_symbol: width, raw: data, mapped, alphabet_size, max_symbol, translated, bitstring_bits })
    }

    /// The samples as given (masked values): the raw values.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The samples mapped down to `0..alphabet_size`, order preserved.
    pub fn symbols(&self) -> &[u8] {
        self.mapped.as_deref().unwrap_or(self.raw)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Keeps only the first `max_bits` bits of the bit string (NIST's `-t`).
    pub fn truncate_bits(&mut self, max_bits: usize) {
        self.bitstring_bits = self.bitstring_bits.min(max_bits);
    }

    /// The length of the bit string, after any truncation.
    pub fn bitstring_len(&self) -> usize {
        self.bitstring_bits
    }

    /// The bit string, one bit per byte (0 or 1), `bits_per_symbol` bits per sample, most
    /// significant first; [`Samples::bitstring_len`] bits long. It takes a byte a bit: made on
    /// demand, for the estimators that read it.
    ///
    /// # Errors
    /// [`Error::OutOfMemory`](crate::error::Error::OutOfMemory) when it cannot be allocated (up
    /// to 2^29 bytes for the largest assessment).
    pub fn bitstring(&self) -> crate::error::Result<Vec<u8>> {
        let w = self.bits_per_symbol as usize;
        let len = self.bitstring_bits;
        let mut bits = crate::gf2::alloc::try_zeroed("the bit string", len)?;
        if w == 1 {
            bits.copy_from_slice(&self.raw[..len]);
            return Ok(bits);
        }
        let whole = len / w;
        for (chunk, &s) in bits.chunks_exact_mut(w).zip(&self.raw[..whole]) {
            for (j, b) in chunk.iter_mut().enumerate() {
                *b = (s >> (w - 1 - j)) & 1;
            }
        }
        for (j, b) in bits[whole * w..].iter_mut().enumerate() {
            *b = (self.raw[whole] >> (w - 1 - j)) & 1;
        }
        Ok(bits)
    }

    /// The number of ones in the bit string, counted without making it.
    pub fn bitstring_ones(&self) -> u64 {
        let w = self.bits_per_symbol as usize;
        let whole = self.bitstring_bits / w;
        let mut ones: u64 = self.raw[..whole].iter().map(|&s| u64::from(s.count_ones())).sum();
        let rest = self.bitstring_bits - whole * w;
        if rest > 0 {
            // The first `rest` bits of the next sample, most significant first.
            ones += u64::from((self.raw[whole] >> (w - rest)).count_ones());
        }
        ones
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
        assert_eq!(s.symbols(), [1, 0, 2, 1]);
        assert_eq!(s.bitstring().unwrap(), vec![1, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0]);
        assert_eq!(s.bitstring_ones(), 4);
    }

    #[test]
    fn truncated_bit_strings_are_prefixes_and_count_their_ones() {
        let data = [5u8, 3, 7, 0, 6, 1, 2];
        let full = Samples::new(&data, Some(3)).unwrap().bitstring().unwrap();
        for max in 0..=full.len() + 2 {
            let mut s = Samples::new(&data, Some(3)).unwrap();
            s.truncate_bits(max);
            let cut = s.bitstring().unwrap();
            assert_eq!(cut, full[..max.min(full.len())]);
            assert_eq!(s.bitstring_ones(), cut.iter().map(|&b| u64::from(b)).sum::<u64>(), "{max}");
        }
        let binary = Samples::new(&[1, 0, 1, 1], None).unwrap();
        assert_eq!(binary.bitstring().unwrap(), vec![1, 0, 1, 1]);
        assert!(!binary.translated);
        assert_eq!(binary.symbols(), binary.raw());
    }

    #[test]
    fn samples_wider_than_declared_name_the_first_offset() {
        match Samples::new(&[1, 2, 9, 3], Some(3)) {
            Err(Error::InvalidArgument { name: "data", message }) => {
                assert!(message.contains("offset 2 "), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(Samples::new(&[], None), Err(Error::InvalidLength { name: "data", .. })));
        assert!(matches!(Samples::new(&[3], None), Err(Error::InvalidLength { name: "data", .. })));
        assert!(matches!(Samples::new(&[3, 3, 3], None), Err(Error::InvalidArgument { name: "data", .. })));
        assert!(matches!(Samples::new(&[1, 2], Some(9)), Err(Error::InvalidArgument { name: "bits_per_symbol", .. })));
    }

    #[test]
    fn sample_counts_past_the_limit_are_refused_by_count() {
        assert!(check_sample_limit(MAX_SAMPLES).is_ok());
        match check_sample_limit(MAX_SAMPLES + 1) {
            Err(Error::InvalidLength { name: "data", message }) => assert!(message.contains("67108864"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}

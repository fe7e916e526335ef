//! The sample format descriptor (PROTOCOL.md §2) and the unpacking of DATA payloads into one
//! sample per byte.

use crate::{Error, Result};

/// How samples sit in a DATA payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "python", derive(serde::Serialize, serde::Deserialize))]
pub enum Packing {
    /// Back to back as a bit string.
    Packed,
    /// One byte per sample (1–8 bits) or two little-endian bytes (9–16 bits).
    Aligned,
}

crate::choice::named_choices!(Packing, "packing", [Packed = "packed", Aligned = "aligned"]);

/// Order of bits within a packed payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "python", derive(serde::Serialize, serde::Deserialize))]
pub enum BitOrder {
    /// Each sample most significant bit first, bytes filled from their top bit.
    MsbFirst,
    /// Each sample least significant bit first, bytes filled from their bottom bit.
    LsbFirst,
}

// As numpy names bit orders: "big" is most significant bit first.
crate::choice::named_choices!(BitOrder, "bitorder", [MsbFirst = "big", LsbFirst = "little"]);

/// A sample format: bits per sample, packing, bit order and the nominal sample rate. (Python
/// reads its fields under the names of `format_descriptor`'s arguments.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, eq, module = "qitcore.protocol"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct SampleFormat {
    /// 1 to 16.
    pub bits: u8,
    pub packing: Packing,
    pub bit_order: BitOrder,
    /// Samples per second; 0 when unspecified.
    pub rate: u32,
}

impl SampleFormat {
    /// A validated format.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming `bits_per_sample` outside 1 to 16.
    pub fn new(bits: u8, packing: Packing, bit_order: BitOrder, rate: u32) -> Result<Self> {
        if !(1..=16).contains(&bits) {
            return Err(Error::argument("bits_per_sample", format!("must be 1 to 16, got {bits}")));
        }
        Ok(SampleFormat { bits, packing, bit_order, rate })
    }

    /// The 8-byte descriptor.
    pub fn to_bytes(&self) -> [u8; 8] {
        let r = self.rate.to_le_bytes();
        let packing = u8::from(self.packing == Packing::Aligned);
        let order = u8::from(self.bit_order == BitOrder::LsbFirst);
        [self.bits, packing, order, 0, r[0], r[1], r[2], r[3]]
    }

    /// Parses an 8-byte descriptor.
    ///
    /// # Errors
    /// [`Error::Protocol`] for a short descriptor or a field out of range.
    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        if b.len() < 8 {
            return Err(Error::protocol(format!("format descriptor of {} bytes, expected 8", b.len())));
        }
        let packing = match b[1] {
            0 => Packing::Packed,
            1 => Packing::Aligned,
            p => return Err(Error::protocol(format!("unknown packing {p}"))),
        };
        let bit_order = match b[2] {
            0 => BitOrder::MsbFirst,
            1 => BitOrder::LsbFirst,
            o => return Err(Error::protocol(format!("unknown bit order {o}"))),
        };
        if !(1..=16).contains(&b[0]) {
            return Err(Error::protocol(format!("{} bits per sample, expected 1 to 16", b[0])));
        }
        Ok(SampleFormat { bits: b[0], packing, bit_order, rate: u32::from_le_bytes([b[4], b[5], b[6], b[7]]) })
    }

    /// Payload bytes that `n` samples take.
    pub fn sample_bytes(&self, n: usize) -> usize {
        let bits = usize::from(self.bits);
        match self.packing {
            Packing::Packed => (n * bits).div_ceil(8),
            Packing::Aligned => n * bits.div_ceil(8),
        }
    }

    /// Appends the `n` samples held in `data` to `out`, one per byte.
    ///
    /// # Errors
    /// [`Error::Protocol`] when `data` is not exactly [`Self::sample_bytes`]`(n)` long;
    /// [`Error::InvalidArgument`] for formats of more than 8 bits per sample.
    pub fn unpack(&self, data: &[u8], n: usize, out: &mut Vec<u8>) -> Result<()> {
        if self.bits > 8 {
            return Err(Error::argument(
                "bits_per_sample",
                format!("{} bits: one byte per sample holds up to 8", self.bits),
            ));
        }
        if data.len() != self.sample_bytes(n) {
            return Err(Error::protocol(format!(
                "{n} samples of {} bits take {} bytes, the frame has {}",
                self.bits,
                self.sample_bytes(n),
                data.len()
            )));
        }
        let bits = u32::from(self.bits);
        let mask = ((1u16 << bits) - 1) as u8;
        match (self.packing, self.bit_order, bits) {
            (Packing::Aligned, _, _) => out.extend(data.iter().map(|&b| b & mask)),
            (Packing::Packed, BitOrder::MsbFirst, 8) => out.extend_from_slice(data),
            (Packing::Packed, BitOrder::MsbFirst, 1) => {
                for &b in data {
                    out.extend((0..8).map(|k| (b >> (7 - k)) & 1));
                }
                out.truncate(out.len() - (data.len() * 8 - n));
            }
            _ => {
                let start = out.len();
                out.reserve(n);
                for i in 0..n {
                    let mut v = 0u8;
                    for k in 0..bits as usize {
                        let bit = i * bits as usize + k;
                        let byte = data[bit / 8];
                        let b = match self.bit_order {
                            BitOrder::MsbFirst => (byte >> (7 - bit % 8)) & 1,
                            BitOrder::LsbFirst => (byte >> (bit % 8)) & 1,
                        };
                        match self.bit_order {
                            BitOrder::MsbFirst => v = (v << 1) | b,
                            BitOrder::LsbFirst => v |= b << k,
                        }
                    }
                    out.push(v);
                }
                debug_assert_eq!(out.len(), start + n);
            }
        }
        Ok(())
    }

    /// The payload bytes of `samples` (each below 2^bits) in this format: the inverse of
    /// [`Self::unpack`], used by devices and the simulator.
    pub fn pack(&self, samples: &[u16]) -> Vec<u8> {
        let bits = usize::from(self.bits);
        match self.packing {
            Packing::Aligned if bits <= 8 => samples.iter().map(|&s| s as u8).collect(),
            Packing::Aligned => samples.iter().flat_map(|&s| s.to_le_bytes()).collect(),
            Packing::Packed => {
                let mut out = vec![0u8; self.sample_bytes(samples.len())];
                for (i, &s) in samples.iter().enumerate() {
                    for k in 0..bits {
                        let bit = i * bits + k;
                        match self.bit_order {
                            BitOrder::MsbFirst => out[bit / 8] |= (((s >> (bits - 1 - k)) & 1) as u8) << (7 - bit % 8),
                            BitOrder::LsbFirst => out[bit / 8] |= (((s >> k) & 1) as u8) << (bit % 8),
                        }
                    }
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn descriptor_round_trips_and_rejects_nonsense() {
        let f = SampleFormat::new(12, Packing::Packed, BitOrder::LsbFirst, 1_000_000).unwrap();
        assert_eq!(f.to_bytes(), [12, 0, 1, 0, 0x40, 0x42, 0x0f, 0]);
        assert_eq!(SampleFormat::from_bytes(&f.to_bytes()).unwrap(), f);
        assert!(SampleFormat::from_bytes(&[0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(SampleFormat::from_bytes(&[8, 2, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(SampleFormat::from_bytes(&[8, 0, 0]).is_err());
    }

    #[test]
    fn choices_parse_from_their_names_and_refuse_others() {
        for p in [Packing::Packed, Packing::Aligned] {
            assert_eq!(p.name().parse::<Packing>(), Ok(p));
        }
        for o in [BitOrder::MsbFirst, BitOrder::LsbFirst] {
            assert_eq!(o.name().parse::<BitOrder>(), Ok(o));
        }
        assert_eq!("big".parse::<BitOrder>(), Ok(BitOrder::MsbFirst));
        let err = "tight".parse::<Packing>().unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { name: "packing", .. }), "{err}");
        assert!(err.to_string().contains("\"packed\", \"aligned\""), "{err}");
        let err = "Big".parse::<BitOrder>().unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { name: "bitorder", .. }), "{err}");
        assert!(err.to_string().contains("\"big\", \"little\""), "{err}");
    }

    #[test]
    fn packed_bits_fill_bytes_in_the_stated_order() {
        let msb = SampleFormat::new(3, Packing::Packed, BitOrder::MsbFirst, 0).unwrap();
        // 0b101, 0b011, 0b111 -> 101 011 11|1 0000000
        assert_eq!(msb.pack(&[5, 3, 7]), vec![0b1010_1111, 0b1000_0000]);
        let lsb = SampleFormat::new(3, Packing::Packed, BitOrder::LsbFirst, 0).unwrap();
        // bits in order 1,0,1, 1,1,0, 1,1,1 placed from bit 0 up.
        assert_eq!(lsb.pack(&[5, 3, 7]), vec![0b1101_1101, 0b0000_0001]);
    }

    proptest! {
        #[test]
        fn unpack_inverts_pack(bits in 1u8..=8, aligned in any::<bool>(), lsb in any::<bool>(), raw in prop::collection::vec(any::<u8>(), 0..200)) {
            let f = SampleFormat::new(
                bits,
                if aligned { Packing::Aligned } else { Packing::Packed },
                if lsb { BitOrder::LsbFirst } else { BitOrder::MsbFirst },
                0,
            ).unwrap();
            let samples: Vec<u16> = raw.iter().map(|&v| u16::from(v) & ((1 << bits) - 1)).collect();
            let payload = f.pack(&samples);
            prop_assert_eq!(payload.len(), f.sample_bytes(samples.len()));
            let mut out = Vec::new();
            f.unpack(&payload, samples.len(), &mut out).unwrap();
            prop_assert_eq!(out.iter().map(|&v| u16::from(v)).collect::<Vec<_>>(), samples.clone());
            prop_assert!(f.unpack(&payload, samples.len() + 8, &mut out).is_err());
        }
    }
}

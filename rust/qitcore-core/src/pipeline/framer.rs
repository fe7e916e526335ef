//! Devices that stream plain bytes (TrueRNG, OneRNG, ChaosKey, `/dev/hwrng`, generic CDC) rather
//! than QDP/1 frames: their bytes are wrapped into DATA frames as they arrive, numbered in order,
//! so that one pipeline (decoder, health tests, extractor, statistics) serves every device.

use std::io::{self, Read};

use crate::frame::messages::Data;
use crate::frame::{encode, frame_type, SampleFormat};

/// Samples per frame: whole samples and a payload within the protocol's limit.
fn frame_samples(format: &SampleFormat) -> usize {
    let per_byte_bits = usize::from(format.bits);
    match format.packing {
        crate::frame::Packing::Aligned => 4096 / per_byte_bits.div_ceil(8),
        // Packed: a whole number of bytes holds a whole number of samples every 8 samples.
        crate::frame::Packing::Packed => 4096 * 8 / per_byte_bits / 8 * 8,
    }
}

/// Frames the bytes of `format` samples read from `inner`.
pub struct Framer<R> {
    inner: R,
    format: SampleFormat,
    sequence: u32,
    chunk: Vec<u8>,
    carry: usize,
    out: Vec<u8>,
    out_at: usize,
}

impl<R: Read> Framer<R> {
    pub fn new(inner: R, format: SampleFormat) -> Self {
        let bytes = format.sample_bytes(frame_samples(&format));
        Framer { inner, format, sequence: 0, chunk: vec![0; bytes], carry: 0, out: Vec::new(), out_at: 0 }
    }

    /// The frames for `bytes` of samples, appended to `out`; a partial sample is kept for the
    /// next call. Used directly by callers that push bytes rather than read them.
    pub fn frame(format: &SampleFormat, sequence: &mut u32, bytes: &[u8], out: &mut Vec<u8>) -> usize {
        let sample_bytes = format.sample_bytes(1).max(1);
        // Packed samples are framed 8 at a time (a whole number of bytes).
        let unit = match format.packing {
            crate::frame::Packing::Aligned => sample_bytes,
            crate::frame::Packing::Packed => usize::from(format.bits),
        };
        let per_frame = format.sample_bytes(frame_samples(format));
        let whole = bytes.len() / unit * unit;
        for piece in bytes[..whole].chunks(per_frame) {
            let count = match format.packing {
                crate::frame::Packing::Aligned => piece.len() / sample_bytes,
                crate::frame::Packing::Packed => piece.len() * 8 / usize::from(format.bits),
            };
            let payload = Data::payload(count as u16, 0, piece);
            encode(frame_type::DATA, *sequence, &payload, out).expect("frames stay within the payload limit");
            *sequence = sequence.wrapping_add(1);
        }
        whole
    }
}

impl<R: Read> Read for Framer<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.out_at == self.out.len() {
            self.out.clear();
            self.out_at = 0;
            let n = self.inner.read(&mut self.chunk[self.carry..])?;
            if n == 0 {
                return Ok(0);
            }
            let have = self.carry + n;
            let used = Self::frame(&self.format, &mut self.sequence, &self.chunk[..have], &mut self.out);
            self.chunk.copy_within(used..have, 0);
            self.carry = have - used;
            if self.out.is_empty() {
                // Less than one sample so far: nothing to hand on yet.
                return Err(io::Error::new(io::ErrorKind::Interrupted, "partial sample"));
            }
        }
        let n = (self.out.len() - self.out_at).min(buf.len());
        buf[..n].copy_from_slice(&self.out[self.out_at..self.out_at + n]);
        self.out_at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{BitOrder, Decoder, Event, Packing};

    #[test]
    fn bytes_become_numbered_frames_of_whole_samples() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7) as u8).collect();
        for (bits, packing, per_sample) in
            [(8, Packing::Aligned, 1), (12, Packing::Aligned, 2), (1, Packing::Packed, 0)]
        {
            let format = SampleFormat::new(bits, packing, BitOrder::MsbFirst, 0).unwrap();
            let mut framer = Framer::new(&data[..], format);
            let mut stream = Vec::new();
            framer.read_to_end(&mut stream).unwrap();
            let mut d = Decoder::new();
            let (mut payload, mut count) = (Vec::new(), 0usize);
            d.feed(&stream, |e| {
                if let Event::Frame { payload: p, .. } = e {
                    let data = Data::parse(p).unwrap();
                    count += usize::from(data.count);
                    payload.extend_from_slice(data.samples);
                }
            });
            assert_eq!(payload, data, "{bits}");
            assert_eq!(d.stats().gaps, 0);
            let expected = data.len().checked_div(per_sample).unwrap_or(data.len() * 8);
            assert_eq!(count, expected, "{bits}");
        }
    }
}

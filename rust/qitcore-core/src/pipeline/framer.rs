//! Devices that stream plain bytes (TrueRNG, OneRNG, ChaosKey, `/dev/hwrng`, generic CDC) rather
//! than QDP/1 frames: their bytes are wrapped into DATA frames as they arrive, numbered in order,
//! so that one pipeline (decoder, health tests, extractor, statistics) serves every device.
//! [`Framer`] reads its device; [`SampleFramer`] takes bytes pushed by the caller (a device read
//! in Python).

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

/// Frames plain sample bytes pushed by the caller, numbered in the order they come; a partial
/// sample at the end of a push waits for the next.
#[derive(Debug)]
pub struct SampleFramer {
    format: SampleFormat,
    sequence: u32,
    /// The partial sample left by the last push, then the bytes of this one.
    pending: Vec<u8>,
    /// The frames of the last push (the buffer is reused).
    frames: Vec<u8>,
}

impl SampleFramer {
    pub fn new(format: SampleFormat) -> Self {
        SampleFramer { format, sequence: 0, pending: Vec::new(), frames: Vec::new() }
    }

    /// The frames for `bytes` of samples, after the partial sample of the last push; empty while
    /// less than a whole sample has come.
    pub fn push(&mut self, bytes: &[u8]) -> &[u8] {
        self.pending.extend_from_slice(bytes);
        self.frames.clear();
        let used = Framer::<&[u8]>::frame(&self.format, &mut self.sequence, &self.pending, &mut self.frames);
        self.pending.drain(..used);
        &self.frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{BitOrder, Decoder, Event, Packing};

    /// The samples of DATA frames in `stream`, their count, and the gaps between frame numbers.
    fn decode(stream: &[u8]) -> (Vec<u8>, usize, u64) {
        let mut d = Decoder::new();
        let (mut payload, mut count) = (Vec::new(), 0usize);
        d.feed(stream, |e| {
            if let Event::Frame { payload: p, .. } = e {
                let data = Data::parse(p).unwrap();
                count += usize::from(data.count);
                payload.extend_from_slice(data.samples);
            }
        });
        (payload, count, d.stats().gaps)
    }

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
            let (payload, count, gaps) = decode(&stream);
            assert_eq!(payload, data, "{bits}");
            assert_eq!(gaps, 0);
            let expected = data.len().checked_div(per_sample).unwrap_or(data.len() * 8);
            assert_eq!(count, expected, "{bits}");
        }
    }

    #[test]
    fn pushed_bytes_cut_anywhere_become_the_same_samples_in_numbered_frames() {
        let data: Vec<u8> = (0..30_000u32).map(|i| (i * 13 + 5) as u8).collect();
        // 12-bit aligned: 2 bytes a sample; 3-bit packed: 3 bytes hold 8 samples.
        for (bits, packing, unit) in [(8, Packing::Aligned, 1), (12, Packing::Aligned, 2), (3, Packing::Packed, 3)] {
            let format = SampleFormat::new(bits, packing, BitOrder::MsbFirst, 0).unwrap();
            let mut framer = SampleFramer::new(format);
            let mut stream = Vec::new();
            let (mut at, mut size) = (0, 1);
            while at < data.len() {
                let end = (at + size).min(data.len());
                stream.extend_from_slice(framer.push(&data[at..end]));
                (at, size) = (end, size * 3 % 10_007);
            }
            let (payload, _, gaps) = decode(&stream);
            let whole = data.len() / unit * unit;
            assert_eq!(payload, data[..whole], "{bits}");
            assert_eq!(gaps, 0, "{bits}");
            // What is left over is the partial sample, framed once the rest of it comes.
            assert_eq!(framer.pending, data[whole..], "{bits}");
        }
    }

    #[test]
    fn a_partial_sample_waits_for_the_next_push() {
        let format = SampleFormat::new(12, Packing::Aligned, BitOrder::MsbFirst, 0).unwrap();
        let mut framer = SampleFramer::new(format);
        assert!(framer.push(&[0x34]).is_empty());
        let frames = framer.push(&[0x02, 0x56]).to_vec();
        assert_eq!(decode(&frames).0, [0x34, 0x02]);
        let frames = framer.push(&[0x01]).to_vec();
        assert_eq!(decode(&frames).0, [0x56, 0x01]);
        assert!(framer.pending.is_empty());
    }
}

//! The in-process simulated device: the noise model's samples framed as QDP/1 DATA frames, with
//! transport faults injected on the way out (dropped frames, corrupted bytes, bursts of garbage,
//! disconnection). It is a byte source like a serial port, and paces itself to the model's rate.

use std::io::{self, Read};
use std::time::{Duration, Instant};

use super::noise::NoiseSource;
use crate::frame::messages::Data;
use crate::frame::{encode, frame_type, BitOrder, Packing, SampleFormat};
use crate::maths::xoshiro::Xoshiro256;
use crate::{Error, Result};

/// Faults on the link between the device and the host.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkFaults {
    /// Probability that a frame is dropped (its sequence number is still used).
    pub drop_frame: f64,
    /// Probability that each byte is corrupted (one bit flipped).
    pub corrupt_byte: f64,
    /// Probability that a burst of 1 to 64 random bytes precedes a frame.
    pub garbage: f64,
    /// The link goes down after this many bytes.
    pub disconnect_after: Option<u64>,
}

impl LinkFaults {
    /// Checks the probabilities.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming a probability outside `[0, 1]`.
    pub fn validate(&self) -> Result<()> {
        for (name, p) in [("drop", self.drop_frame), ("corrupt", self.corrupt_byte), ("garbage", self.garbage)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::argument(name, format!("a probability must lie in [0, 1], got {p}")));
            }
        }
        Ok(())
    }
}

/// What the simulated device did, for tests to compare with what the host saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.devices.sim"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct SimCounters {
    /// Frames sent (not those dropped).
    pub frames: u64,
    pub frames_dropped: u64,
    pub bytes_corrupted: u64,
    /// Bytes of garbage sent before frames.
    pub garbage_bytes: u64,
    /// Bytes the host read.
    pub bytes: u64,
    /// Samples made.
    pub samples: u64,
}

/// Samples in each frame of a simulated device unless the caller chooses (`sim://`'s `frame`).
pub const DEFAULT_SAMPLES_PER_FRAME: usize = 1024;

/// The simulated device as a byte source.
pub struct SimDevice {
    source: NoiseSource,
    format: SampleFormat,
    faults: LinkFaults,
    rng: Xoshiro256,
    sequence: u32,
    samples: Vec<u16>,
    out: Vec<u8>,
    out_at: usize,
    counters: SimCounters,
    started: Instant,
}

impl SimDevice {
    /// A device streaming `source`'s samples, `samples_per_frame` to a frame.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a frame size that does not fit a frame, or bad faults.
    pub fn new(source: NoiseSource, samples_per_frame: usize, faults: LinkFaults, seed: u64) -> Result<Self> {
        faults.validate()?;
        // Bounded before any size is computed from it, so no product below can overflow.
        if samples_per_frame == 0 || samples_per_frame > crate::frame::MAX_PAYLOAD * 8 {
            return Err(Error::argument(
                "samples_per_frame",
                format!("must be 1 to {}, got {samples_per_frame}", crate::frame::MAX_PAYLOAD * 8),
            ));
        }
        let bits = source.params().bits;
        let packing = if bits == 1 { Packing::Packed } else { Packing::Aligned };
        let format = SampleFormat::new(bits, packing, BitOrder::MsbFirst, source.params().rate as u32)?;
        if 4 + format.sample_bytes(samples_per_frame) > crate::frame::MAX_PAYLOAD {
            return Err(Error::argument(
                "samples_per_frame",
                format!(
                    "{samples_per_frame} samples do not fit one frame of {} payload bytes",
                    crate::frame::MAX_PAYLOAD
                ),
            ));
        }
        Ok(SimDevice {
            source,
            format,
            faults,
            rng: Xoshiro256::from_seed(seed ^ 0x5eed_fa17),
            sequence: 0,
            samples: vec![0; samples_per_frame],
            out: Vec::new(),
            out_at: 0,
            counters: SimCounters::default(),
            started: Instant::now(),
        })
    }

    pub fn format(&self) -> SampleFormat {
        self.format
    }

    pub fn counters(&self) -> SimCounters {
        self.counters
    }

    pub fn source_mut(&mut self) -> &mut NoiseSource {
        &mut self.source
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64) < p
    }

    /// Appends the next frame (and any injected garbage) to the output buffer.
    fn next_frame(&mut self) {
        let rate = self.source.params().rate;
        if rate > 0.0 {
            // The rate is at least 1 per second (validated), so the time is finite and fits.
            let due = Duration::try_from_secs_f64(self.counters.samples as f64 / rate).unwrap_or(Duration::MAX);
            if let Some(wait) = due.checked_sub(self.started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        self.source.fill(&mut self.samples);
        self.counters.samples += self.samples.len() as u64;
        let packed = self.format.pack(&self.samples);
        let payload = Data::payload(self.samples.len() as u16, 0, &packed);
        let sequence = self.sequence;
        self.sequence = self.sequence.wrapping_add(1);
        if self.chance(self.faults.garbage) {
            let n = 1 + (self.rng.next_u64() % 64) as usize;
            self.out.extend((0..n).map(|_| self.rng.next_u64() as u8));
            self.counters.garbage_bytes += n as u64;
        }
        if self.chance(self.faults.drop_frame) {
            self.counters.frames_dropped += 1;
            return;
        }
        let start = self.out.len();
        encode(frame_type::DATA, sequence, &payload, &mut self.out).expect("the frame size was checked");
        self.counters.frames += 1;
        if self.faults.corrupt_byte > 0.0 {
            for i in start..self.out.len() {
                if self.chance(self.faults.corrupt_byte) {
                    self.out[i] ^= 1 << (self.rng.next_u64() % 8);
                    self.counters.bytes_corrupted += 1;
                }
            }
        }
    }
}

impl Read for SimDevice {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.faults.disconnect_after.is_some_and(|limit| self.counters.bytes >= limit) {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "simulated device disconnected"));
        }
        if self.out_at == self.out.len() {
            self.out.clear();
            self.out_at = 0;
            // Fill at least the caller's buffer's worth, so large reads cost few calls; a link
            // that drops every frame delivers nothing, and pauses as a silent device would.
            // A throttled device sends each frame as it is made, so that a slow rate delivers
            // frames steadily rather than a buffer's worth at long intervals.
            let throttled = self.source.params().rate > 0.0;
            let mut attempts = 0;
            while self.out.len() < buf.len().min(1 << 20) && !(attempts >= 64 && self.out.is_empty()) {
                self.next_frame();
                attempts += 1;
                if throttled && !self.out.is_empty() {
                    break;
                }
            }
            if self.out.is_empty() {
                std::thread::sleep(Duration::from_millis(10));
                return Err(io::Error::new(io::ErrorKind::TimedOut, "simulated link dropped every frame"));
            }
        }
        let mut n = (self.out.len() - self.out_at).min(buf.len());
        if let Some(limit) = self.faults.disconnect_after {
            n = n.min((limit - self.counters.bytes) as usize);
        }
        buf[..n].copy_from_slice(&self.out[self.out_at..self.out_at + n]);
        self.out_at += n;
        self.counters.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Decoder, Event};
    use crate::sim::noise::NoiseParams;

    fn device(faults: LinkFaults) -> SimDevice {
        SimDevice::new(NoiseSource::new(NoiseParams::default(), 3).unwrap(), 1000, faults, 4).unwrap()
    }

    fn run(d: &mut SimDevice, bytes: usize) -> (u64, crate::frame::DecoderStats) {
        let mut dec = Decoder::new();
        let mut buf = vec![0u8; 4096];
        let (mut got, mut samples) = (0, 0u64);
        while got < bytes {
            let n = d.read(&mut buf).unwrap();
            got += n;
            dec.feed(&buf[..n], |e| {
                if let Event::Frame { payload, .. } = e {
                    samples += u64::from(Data::parse(payload).unwrap().count);
                }
            });
        }
        (samples, dec.stats())
    }

    #[test]
    fn a_clean_link_delivers_every_frame() {
        let mut d = device(LinkFaults::default());
        let (samples, stats) = run(&mut d, 1 << 20);
        assert_eq!((stats.crc_errors, stats.gaps, stats.garbage_bytes), (0, 0, 0));
        assert_eq!(stats.frames * 1000, samples);
    }

    #[test]
    fn faults_are_detected_as_injected() {
        let faults = LinkFaults { drop_frame: 0.01, corrupt_byte: 1e-5, garbage: 0.01, disconnect_after: None };
        let mut d = device(faults);
        let (_, stats) = run(&mut d, 8 << 20);
        let c = d.counters();
        assert!(c.frames_dropped > 20 && c.bytes_corrupted > 20 && c.garbage_bytes > 100, "{c:?}");
        // Every dropped or corrupted frame is a lost frame, reported through the gaps (bar the
        // frames still buffered at the end).
        assert!(stats.frames_lost >= c.frames_dropped + stats.crc_errors - 2, "{stats:?} {c:?}");
        assert!(
            stats.crc_errors <= c.bytes_corrupted && stats.crc_errors + 2 >= c.bytes_corrupted / 2,
            "{stats:?} {c:?}"
        );
    }

    #[test]
    fn frame_sizes_that_do_not_fit_are_refused_before_any_allocation() {
        for n in [0, crate::frame::MAX_PAYLOAD * 8 + 1, usize::MAX / 2 + 1, usize::MAX] {
            let source = NoiseSource::new(NoiseParams { bits: 16, ..NoiseParams::default() }, 1).unwrap();
            let err = SimDevice::new(source, n, LinkFaults::default(), 1).err().expect("refused").to_string();
            assert!(err.starts_with("samples_per_frame"), "{err}");
        }
    }

    #[test]
    fn disconnection_is_an_error_after_the_limit() {
        let mut d = device(LinkFaults { disconnect_after: Some(10_000), ..LinkFaults::default() });
        let mut buf = vec![0u8; 4096];
        let mut total = 0;
        let err = loop {
            match d.read(&mut buf) {
                Ok(n) => total += n,
                Err(e) => break e,
            }
        };
        assert_eq!(total, 10_000);
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}

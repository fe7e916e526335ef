//! The synchronous heart of the QRNG data path: frame decoder → sample unpacker → health monitor
//! → Toeplitz extractor. Bytes from a transport go in; only extracted bits from samples that
//! passed the health tests come out. In raw mode (for entropy assessment, and only when asked
//! for by name) the unpacked samples come out instead, untested and unextracted.

use std::collections::VecDeque;

use crate::bits::BitOrder as Order;
use crate::extract::blocks::BlockHash;
use crate::extract::params::{output_length, Convention};
use crate::extract::toeplitz::Toeplitz;
use crate::frame::messages::{Data, DeviceState, Reply, Status, DATA_FLAG_HEALTH, DATA_FLAG_OVERRUN};
use crate::frame::{frame_type, Decoder, Event, SampleFormat};
use crate::health::monitor::{Config as HealthConfig, Failure, Monitor};
use crate::{Error, Result};

/// What happens when frames go missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GapPolicy {
    /// The stream fails with [`StreamError::Gap`].
    Error,
    /// The gap is counted in the statistics and the stream goes on.
    #[default]
    Count,
}

crate::choice::named_choices!(GapPolicy, "gap_policy", [Count = "count", Error = "error"]);

/// Why a stream stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamError {
    /// The host's health tests fired.
    Health(Failure),
    /// The device flagged its own health tests as failed.
    DeviceHealth,
    /// Frames went missing and the policy is [`GapPolicy::Error`].
    Gap { expected: u32, received: u32, lost: u32 },
    /// A frame's number did not advance past `last` (a replay) and the policy is
    /// [`GapPolicy::Error`]; its samples were not used either way.
    Replay { last: u32, received: u32 },
    /// The device broke the protocol.
    Protocol(String),
    /// The transport went away.
    Disconnected(String),
    /// No valid frame arrived for `seconds` (the stream's frame timeout): the link carries
    /// nothing, or only garbage (a wrong device, a wrong sample format, a broken link).
    NoValidFrames { seconds: f64 },
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Health(x) => write!(
                f,
                "{} failed at sample {} (value {}, count {} reached the cutoff {}); output withheld",
                x.test.name(),
                x.index,
                x.value,
                x.count,
                x.cutoff
            ),
            StreamError::DeviceHealth => {
                write!(f, "the device reported a failure of its own health tests and stopped; reset it to go on")
            }
            StreamError::Gap { expected, received, lost } => {
                write!(f, "frame {received} arrived where {expected} was due: {lost} frames lost")
            }
            StreamError::Replay { last, received } => write!(
                f,
                "frame {received} arrived after frame {last}: a replayed frame (its number does not advance); \
                 its samples were not used"
            ),
            StreamError::Protocol(m) => write!(f, "device protocol: {m}"),
            StreamError::Disconnected(m) => write!(f, "device disconnected: {m}"),
            StreamError::NoValidFrames { seconds } => write!(
                f,
                "no valid frame from the device for {seconds} s (frame_timeout): nothing arrived, or only bytes \
                 that are not QDP/1 frames (check the device, the URL and the sample format)"
            ),
        }
    }
}

/// Counts along the whole path (`StreamCounters` in Python, where `counters["frames"]` reads a
/// count as `counters.frames` does).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.stream", name = "StreamCounters"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct Stats {
    /// Transport bytes decoded.
    pub bytes_in: u64,
    /// Valid frames.
    pub frames: u64,
    pub crc_errors: u64,
    /// Bytes skipped as not belonging to any valid frame.
    pub garbage_bytes: u64,
    /// Breaks in the frame numbers, and the frames they lost.
    pub gaps: u64,
    pub frames_lost: u64,
    /// Valid frames whose number did not advance (replays): counted, their samples never used.
    pub replays: u64,
    /// CRC-valid frames whose payload did not parse (their samples are not used).
    pub malformed_frames: u64,
    /// Frames the device marked as following an overrun.
    pub device_overruns: u64,
    pub samples_in: u64,
    /// Samples dropped by the start-up test.
    pub samples_startup: u64,
    /// Samples that passed the health tests.
    pub samples_healthy: u64,
    /// Samples withheld when a health test failed.
    pub samples_withheld: u64,
    /// Toeplitz blocks hashed.
    pub blocks: u64,
    /// Output bytes made.
    pub bytes_out: u64,
    /// Output bytes read from the stream (0 for a conditioner alone).
    pub bytes_delivered: u64,
    /// Output bytes waiting in the stream's queue (0 for a conditioner alone).
    pub bytes_queued: u64,
}

/// How the conditioner extracts.
#[derive(Clone, Copy, Debug)]
pub struct Extraction {
    /// Claimed min-entropy per sample (bits): sets the health cutoffs and the output length.
    pub min_entropy: f64,
    /// Health tests' false-positive rate.
    pub alpha: f64,
    /// Samples tested before any output.
    pub startup_samples: u64,
    /// Toeplitz input block size, rounded up to whole samples and bytes.
    pub block_bits: usize,
    /// Distance from uniform of each output block (leftover hash lemma).
    pub epsilon: f64,
}

/// A stream's defaults (the options of `qitcore.open`), written only here: the binding and, through
/// `qitcore._core`, the Python layer read them.
impl Extraction {
    /// 2⁻⁴⁰. SP 800-90B allows 2⁻²⁰ to 2⁻⁴⁰; at the 10⁸ samples per second of a fast device,
    /// 2⁻²⁰ would raise a false alarm every few seconds, so streams default to 2⁻⁴⁰ (one in about
    /// 10¹² windows).
    pub const DEFAULT_ALPHA: f64 = 1.0 / (1u64 << 40) as f64;
    /// 2⁻⁶⁴ per output block (TSSR normalisation).
    pub const DEFAULT_EPSILON: f64 = 1.0 / (1u128 << 64) as f64;
    pub const DEFAULT_STARTUP_SAMPLES: u64 = 1024;
    pub const DEFAULT_BLOCK_BITS: usize = 4096;
}

enum Mode {
    Raw,
    Extract {
        monitor: Box<Monitor>,
        hash: Box<Toeplitz>,
        /// Samples fed to the monitor and not yet resolved, oldest first.
        unresolved: VecDeque<u8>,
        /// Healthy bits not yet a whole block, packed most significant first.
        bits: Vec<u8>,
        bit_len: usize,
    },
}

/// Bytes in, extracted (or raw) bytes out.
pub struct Conditioner {
    decoder: Decoder,
    format: SampleFormat,
    mode: Mode,
    gap_policy: GapPolicy,
    stats: Stats,
    samples: Vec<u8>,
    replies: Vec<Reply>,
    status: Option<Status>,
    failed: Option<StreamError>,
}

/// Input block size for `bits`-bit samples: at least `target` bits, whole samples, whole bytes.
pub fn block_size(bits: u32, target: usize) -> usize {
    let bits = bits as usize;
    let mut samples = target.div_ceil(bits);
    while !(samples * bits).is_multiple_of(8) {
        samples += 1;
    }
    samples * bits
}

impl Conditioner {
    /// A conditioner for samples in `format`: raw when `extraction` is `None`. The Toeplitz seed
    /// is `seed` or, by default, drawn from the OS CSPRNG.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a format of more than 8 bits, or health or extraction
    /// parameters out of range (naming them), or an output length of zero.
    pub fn new(
        format: SampleFormat,
        extraction: Option<Extraction>,
        gap_policy: GapPolicy,
        seed: Option<&[u8]>,
    ) -> Result<Self> {
        // Health tests and extraction take up to 8 bits per sample; raw streams of wider samples
        // (aligned, two little-endian bytes each) pass through for assessment.
        let wide_raw = extraction.is_none() && format.packing == crate::frame::Packing::Aligned;
        if format.bits > 8 && !wide_raw {
            return Err(Error::argument(
                "bits_per_sample",
                format!(
                    "{} bits: health tests and extraction take up to 8 (raw aligned streams up to 16)",
                    format.bits
                ),
            ));
        }
        let mode = match extraction {
            None => Mode::Raw,
            Some(x) => {
                let bits = u32::from(format.bits);
                let mut health = HealthConfig::new(x.min_entropy, bits);
                health.alpha = x.alpha;
                health.startup_samples = x.startup_samples;
                let monitor = Monitor::new(health)?;
                if !(x.block_bits > 0 && x.block_bits <= 1 << 20) {
                    return Err(Error::argument("block_bits", format!("must be 1 to 2^20, got {}", x.block_bits)));
                }
                let n = block_size(bits, x.block_bits);
                let entropy = x.min_entropy * (n / bits as usize) as f64;
                // Whole output bytes: the last partial byte of the LHL length is dropped.
                let m = output_length(n, entropy, x.epsilon, Convention::Tssr)? / 8 * 8;
                if m == 0 {
                    return Err(Error::argument(
                        "block_bits",
                        format!(
                            "{n}-bit blocks at {} bits per sample and ε = {:e} leave no output",
                            x.min_entropy, x.epsilon
                        ),
                    ));
                }
                let hash = match seed {
                    Some(s) => Toeplitz::new(n, m, s, Order::Big)?,
                    None => Toeplitz::random(n, m, Order::Big)?,
                };
                Mode::Extract {
                    monitor: Box::new(monitor),
                    hash: Box::new(hash),
                    unresolved: VecDeque::new(),
                    bits: Vec::new(),
                    bit_len: 0,
                }
            }
        };
        Ok(Conditioner {
            decoder: Decoder::new(),
            format,
            mode,
            gap_policy,
            stats: Stats::default(),
            samples: Vec::new(),
            replies: Vec::new(),
            status: None,
            failed: None,
        })
    }

    pub fn stats(&self) -> Stats {
        let d = self.decoder.stats();
        Stats {
            bytes_in: d.bytes,
            frames: d.frames,
            crc_errors: d.crc_errors,
            garbage_bytes: d.garbage_bytes,
            gaps: d.gaps,
            frames_lost: d.frames_lost,
            replays: d.replays,
            ..self.stats
        }
    }

    /// The format of the samples in the frames.
    pub fn format(&self) -> SampleFormat {
        self.format
    }

    /// Toeplitz block shape `(n, m)`, or `None` in raw mode.
    pub fn block_shape(&self) -> Option<(usize, usize)> {
        match &self.mode {
            Mode::Raw => None,
            Mode::Extract { hash, .. } => Some((hash.n(), hash.m())),
        }
    }

    /// Health cutoffs `(rct, apt, window)`, or `None` in raw mode.
    pub fn cutoffs(&self) -> Option<(u64, u64, u64)> {
        match &self.mode {
            Mode::Raw => None,
            Mode::Extract { monitor, .. } => Some(monitor.cutoffs()),
        }
    }

    /// The last status block the device sent.
    pub fn device_status(&self) -> Option<Status> {
        self.status
    }

    /// Replies received since the last call.
    pub fn take_replies(&mut self) -> Vec<Reply> {
        std::mem::take(&mut self.replies)
    }

    /// Decodes `bytes` and appends the output to `out`.
    ///
    /// # Errors
    /// The [`StreamError`] that stopped the stream, now or earlier; output produced before it in
    /// this call is still appended.
    pub fn process(&mut self, bytes: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut decoder = std::mem::take(&mut self.decoder);
        let mut error = None;
        decoder.feed(bytes, |event| {
            if error.is_none() {
                error = self.event(event, out).err();
            }
        });
        self.decoder = decoder;
        if let Some(e) = error {
            self.fail(e.clone());
            return Err(e);
        }
        Ok(())
    }

    /// Stops the stream for `error`; samples still waiting for their window are withheld.
    pub fn fail(&mut self, error: StreamError) {
        if let Mode::Extract { unresolved, bits, bit_len, .. } = &mut self.mode {
            self.stats.samples_withheld += unresolved.len() as u64;
            unresolved.clear();
            bits.clear();
            *bit_len = 0;
        }
        self.failed.get_or_insert(error);
    }

    fn event(&mut self, event: Event<'_>, out: &mut Vec<u8>) -> std::result::Result<(), StreamError> {
        match event {
            Event::Version { version } => {
                Err(StreamError::Protocol(format!("the device speaks protocol version {version}, this host version 1")))
            }
            Event::Gap { expected, received, lost } => match self.gap_policy {
                GapPolicy::Error => Err(StreamError::Gap { expected, received, lost }),
                GapPolicy::Count => Ok(()),
            },
            Event::Replay { last, received } => match self.gap_policy {
                GapPolicy::Error => Err(StreamError::Replay { last, received }),
                GapPolicy::Count => Ok(()),
            },
            Event::Frame { kind, payload, .. } => match kind {
                frame_type::DATA => self.data(payload, out),
                frame_type::STATUS => match Status::parse(payload) {
                    Ok(s) => {
                        self.status = Some(s);
                        // A device whose own health tests failed sends no more data: stop now
                        // rather than wait for ever.
                        if s.state == DeviceState::Failed {
                            Err(StreamError::DeviceHealth)
                        } else {
                            Ok(())
                        }
                    }
                    Err(_) => {
                        self.stats.malformed_frames += 1;
                        Ok(())
                    }
                },
                frame_type::REPLY => {
                    match Reply::parse(payload) {
                        Ok(r) => self.replies.push(r),
                        Err(_) => self.stats.malformed_frames += 1,
                    }
                    Ok(())
                }
                // Unknown types are skipped, as PROTOCOL.md asks.
                _ => Ok(()),
            },
        }
    }

    fn data(&mut self, payload: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), StreamError> {
        let Ok(data) = Data::parse(payload) else {
            self.stats.malformed_frames += 1;
            return Ok(());
        };
        if data.flags & DATA_FLAG_HEALTH != 0 {
            return Err(StreamError::DeviceHealth);
        }
        if data.flags & DATA_FLAG_OVERRUN != 0 {
            self.stats.device_overruns += 1;
        }
        self.samples.clear();
        if self.format.bits > 8 {
            // Raw wide samples: two bytes each, passed on as they are (masked to their width).
            if data.samples.len() != self.format.sample_bytes(usize::from(data.count)) {
                self.stats.malformed_frames += 1;
                return Ok(());
            }
            let mask = ((1u32 << self.format.bits) - 1) as u16;
            self.stats.samples_in += u64::from(data.count);
            for w in data.samples.chunks_exact(2) {
                out.extend_from_slice(&(u16::from_le_bytes([w[0], w[1]]) & mask).to_le_bytes());
            }
            self.stats.bytes_out += data.samples.len() as u64;
            return Ok(());
        }
        if self.format.unpack(data.samples, usize::from(data.count), &mut self.samples).is_err() {
            self.stats.malformed_frames += 1;
            return Ok(());
        }
        self.stats.samples_in += self.samples.len() as u64;
        let before = out.len();
        let result = match &mut self.mode {
            Mode::Raw => {
                out.extend_from_slice(&self.samples);
                Ok(())
            }
            Mode::Extract { monitor, hash, unresolved, bits, bit_len } => {
                unresolved.extend(self.samples.iter().copied());
                match monitor.process(&self.samples) {
                    Err(f) => Err(StreamError::Health(f)),
                    Ok(release) => {
                        unresolved.drain(..release.discard as usize);
                        self.stats.samples_startup += release.discard;
                        self.stats.samples_healthy += release.emit;
                        let healthy = unresolved.drain(..release.emit as usize);
                        push_bits(bits, bit_len, healthy, u32::from(self.format.bits));
                        let n = hash.n();
                        let blocks = *bit_len / n;
                        if blocks > 0 {
                            let used = blocks * n / 8;
                            let start = out.len();
                            out.resize(start + hash.output_bytes(blocks), 0);
                            hash.hash(&bits[..used], None, &mut out[start..]).expect("whole blocks, sized output");
                            bits.drain(..used);
                            *bit_len -= blocks * n;
                            self.stats.blocks += blocks as u64;
                        }
                        Ok(())
                    }
                }
            }
        };
        self.stats.bytes_out += (out.len() - before) as u64;
        result
    }
}

/// Appends `bits`-bit samples to a most-significant-first bit buffer of `len` bits.
fn push_bits(buf: &mut Vec<u8>, len: &mut usize, samples: impl Iterator<Item = u8>, bits: u32) {
    if bits == 8 && len.is_multiple_of(8) {
        buf.extend(samples);
        *len = buf.len() * 8;
        return;
    }
    for s in samples {
        for k in (0..bits).rev() {
            if len.is_multiple_of(8) {
                buf.push(0);
            }
            let last = buf.len() - 1;
            buf[last] |= ((s >> k) & 1) << (7 - *len % 8);
            *len += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{encode, BitOrder, Packing};

    fn data_frames(samples: &[u8], per_frame: usize, first_seq: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, chunk) in samples.chunks(per_frame).enumerate() {
            let payload = Data::payload(chunk.len() as u16, 0, chunk);
            encode(frame_type::DATA, first_seq + i as u32, &payload, &mut out).unwrap();
        }
        out
    }

    fn eight_bit() -> SampleFormat {
        SampleFormat::new(8, Packing::Aligned, BitOrder::MsbFirst, 0).unwrap()
    }

    fn extraction(h: f64) -> Extraction {
        Extraction {
            min_entropy: h,
            alpha: (-20f64).exp2(),
            startup_samples: 1024,
            block_bits: 4096,
            epsilon: (-64f64).exp2(),
        }
    }

    fn random(n: usize, seed: u64) -> Vec<u8> {
        let mut g = crate::maths::xoshiro::Xoshiro256::from_seed(seed);
        (0..n).map(|_| g.next_u64() as u8).collect()
    }

    #[test]
    fn output_is_the_toeplitz_hash_of_the_healthy_samples() {
        let seed_len = crate::bits::bytes_for(Toeplitz::seed_bits(4096, 3912));
        let seed = random(seed_len, 9);
        let mut c = Conditioner::new(eight_bit(), Some(extraction(7.9)), GapPolicy::Error, Some(&seed)).unwrap();
        // m: ⌊7.9 × 512 − 2·64 + 2⌋ = 3918 bits, down to whole bytes.
        assert_eq!(c.block_shape(), Some((4096, 3912)));
        let samples = random(20_000, 1);
        let mut out = Vec::new();
        // Odd pieces: frames and windows cut anywhere.
        for piece in data_frames(&samples, 700, 0).chunks(999) {
            c.process(piece, &mut out).unwrap();
        }
        // Reference: start-up drops the first 1024 samples; then whole 512-sample windows pass,
        // and whole 512-sample blocks are hashed.
        let released = (20_000 - 1024) / 512 * 512;
        let blocks = released / 512;
        let reference = Toeplitz::new(4096, 3912, &seed, Order::Big).unwrap();
        let mut expect = vec![0u8; reference.output_bytes(blocks)];
        reference.hash(&samples[1024..1024 + blocks * 512], None, &mut expect).unwrap();
        assert_eq!(out, expect);
        let s = c.stats();
        assert_eq!((s.samples_startup, s.samples_healthy, s.blocks), (1024, released as u64, blocks as u64));
    }

    #[test]
    fn a_stuck_source_stops_output_before_its_window() {
        let mut c = Conditioner::new(eight_bit(), Some(extraction(7.0)), GapPolicy::Count, None).unwrap();
        let (rct, _, window) = c.cutoffs().unwrap();
        let mut samples = random(1024 + 512 * 20, 2);
        let stuck_at = samples.len() - 300;
        for s in &mut samples[stuck_at..] {
            *s = 42;
        }
        let mut out = Vec::new();
        let err = c.process(&data_frames(&samples, 512, 0), &mut out).unwrap_err();
        let StreamError::Health(f) = err else { panic!("{err:?}") };
        assert_eq!(f.index, stuck_at as u64 + rct - 1);
        // Only samples of windows that closed before the stuck run began were released.
        let s = c.stats();
        assert!(s.samples_healthy <= (stuck_at as u64 / window) * window - 1024);
        assert!(s.samples_withheld > 0);
        // The stream stays failed.
        assert!(c.process(&data_frames(&random(512, 3), 512, 100), &mut out).is_err());
    }

    #[test]
    fn gap_policies_are_named_as_users_write_them() {
        assert_eq!("count".parse(), Ok(GapPolicy::Count));
        assert_eq!("error".parse(), Ok(GapPolicy::Error));
        assert_eq!(GapPolicy::default(), GapPolicy::Count);
        let err = "ignore".parse::<GapPolicy>().unwrap_err();
        assert_eq!(err.to_string(), r#"gap_policy: expected one of "count", "error", got "ignore""#);
    }

    #[test]
    fn gaps_follow_the_policy_and_raw_mode_passes_samples() {
        let samples = random(3000, 4);
        let mut frames = data_frames(&samples[..1000], 500, 0);
        frames.extend(data_frames(&samples[1000..], 500, 5));
        let mut raw = Conditioner::new(eight_bit(), None, GapPolicy::Count, None).unwrap();
        let mut out = Vec::new();
        raw.process(&frames, &mut out).unwrap();
        assert_eq!(out, samples);
        assert_eq!((raw.stats().gaps, raw.stats().frames_lost), (1, 3));
        let mut strict = Conditioner::new(eight_bit(), None, GapPolicy::Error, None).unwrap();
        let mut out = Vec::new();
        let err = strict.process(&frames, &mut out).unwrap_err();
        assert_eq!(err, StreamError::Gap { expected: 2, received: 5, lost: 3 });
        assert_eq!(out, samples[..1000]);
    }

    #[test]
    fn a_device_reporting_its_own_failure_stops_the_stream() {
        let mut c = Conditioner::new(eight_bit(), None, GapPolicy::Count, None).unwrap();
        let mut frames = data_frames(&random(100, 5), 100, 0);
        let failed = Status { state: DeviceState::Failed, rct_latched: true, rct_failures: 1, ..Status::default() };
        encode(frame_type::STATUS, 1, &failed.to_bytes(), &mut frames).unwrap();
        let mut out = Vec::new();
        assert_eq!(c.process(&frames, &mut out), Err(StreamError::DeviceHealth));
        assert_eq!(out.len(), 100);
        assert_eq!(c.device_status().unwrap().rct_failures, 1);
    }

    #[test]
    fn one_bit_samples_are_packed_for_the_extractor() {
        let mut buf = Vec::new();
        let mut len = 0;
        push_bits(&mut buf, &mut len, [1u8, 0, 1, 1, 0, 0, 0, 1, 1].into_iter(), 1);
        assert_eq!((buf, len), (vec![0b1011_0001, 0b1000_0000], 9));
        assert_eq!(block_size(1, 4096), 4096);
        assert_eq!(block_size(3, 4096), 4104);
        let one = SampleFormat::new(1, Packing::Packed, BitOrder::MsbFirst, 0).unwrap();
        assert!(Conditioner::new(one, Some(extraction(0.9)), GapPolicy::Count, None).is_ok());
        let wide = SampleFormat::new(12, Packing::Aligned, BitOrder::MsbFirst, 0).unwrap();
        assert!(Conditioner::new(wide, Some(extraction(8.0)), GapPolicy::Count, None).is_err());
        let mut raw = Conditioner::new(wide, None, GapPolicy::Count, None).unwrap();
        let mut frames = Vec::new();
        encode(frame_type::DATA, 0, &Data::payload(2, 0, &[0xbc, 0xfa, 0x23, 0x01]), &mut frames).unwrap();
        let mut out = Vec::new();
        raw.process(&frames, &mut out).unwrap();
        assert_eq!(out, vec![0xbc, 0x0a, 0x23, 0x01]);
        assert!(Conditioner::new(eight_bit(), Some(extraction(9.0)), GapPolicy::Count, None).is_err());
    }
}

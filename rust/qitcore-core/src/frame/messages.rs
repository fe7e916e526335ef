//! The payloads of QDP/1 frames: DATA headers, status blocks, commands, replies and the info
//! block (PROTOCOL.md §3–5).

use super::format::SampleFormat;
use crate::{Error, Result};

/// Command codes (PROTOCOL.md §5).
pub mod command {
    pub const INFO: u8 = 0x01;
    pub const START: u8 = 0x02;
    pub const STOP: u8 = 0x03;
    pub const CONFIGURE: u8 = 0x04;
    pub const STATUS: u8 = 0x05;
    pub const SELF_TEST: u8 = 0x06;
    pub const RESET: u8 = 0x07;
}

/// Reply result codes.
pub mod result {
    pub const OK: u8 = 0;
    pub const UNKNOWN_COMMAND: u8 = 1;
    pub const BAD_ARGUMENT: u8 = 2;
    pub const NOT_NOW: u8 = 3;
    pub const FAILED: u8 = 4;
}

/// DATA flag: the device's own health tests failed on these samples.
pub const DATA_FLAG_HEALTH: u8 = 1;
/// DATA flag: the device dropped samples just before these.
pub const DATA_FLAG_OVERRUN: u8 = 2;

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn need(b: &[u8], n: usize, what: &str) -> Result<()> {
    if b.len() < n {
        return Err(Error::protocol(format!("{what} of {} bytes, expected at least {n}", b.len())));
    }
    Ok(())
}

/// A DATA payload split into its header fields and sample bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Data<'a> {
    pub count: u16,
    pub flags: u8,
    pub samples: &'a [u8],
}

impl<'a> Data<'a> {
    /// Parses a DATA payload.
    ///
    /// # Errors
    /// [`Error::Protocol`] when the payload is shorter than its header.
    pub fn parse(payload: &'a [u8]) -> Result<Self> {
        need(payload, 4, "DATA payload")?;
        Ok(Data { count: u16_at(payload, 0), flags: payload[2], samples: &payload[4..] })
    }

    /// The payload for `count` samples already packed in `samples`.
    pub fn payload(count: u16, flags: u8, samples: &[u8]) -> Vec<u8> {
        let mut p = Vec::with_capacity(4 + samples.len());
        p.extend_from_slice(&count.to_le_bytes());
        p.extend_from_slice(&[flags, 0]);
        p.extend_from_slice(samples);
        p
    }
}

/// A device's state, as its status block reports it (PROTOCOL.md §4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "python", derive(serde::Serialize, serde::Deserialize))]
pub enum DeviceState {
    /// Not streaming.
    #[default]
    Idle,
    /// Streaming samples.
    Running,
    /// Its own health test failed; it stays failed until RESET.
    Failed,
    /// Any other fault.
    Error,
    /// A state code this protocol version does not define (kept for the round trip).
    Unknown(u8),
}

impl DeviceState {
    /// The state of a status block's code.
    pub fn from_code(code: u8) -> Self {
        match code {
            0 => DeviceState::Idle,
            1 => DeviceState::Running,
            2 => DeviceState::Failed,
            3 => DeviceState::Error,
            other => DeviceState::Unknown(other),
        }
    }

    /// Its code in a status block.
    pub fn code(self) -> u8 {
        match self {
            DeviceState::Idle => 0,
            DeviceState::Running => 1,
            DeviceState::Failed => 2,
            DeviceState::Error => 3,
            DeviceState::Unknown(code) => code,
        }
    }

    /// `"idle"`, `"running"`, `"failed"`, `"error"` or `"unknown"`.
    pub fn name(self) -> &'static str {
        match self {
            DeviceState::Idle => "idle",
            DeviceState::Running => "running",
            DeviceState::Failed => "failed",
            DeviceState::Error => "error",
            DeviceState::Unknown(_) => "unknown",
        }
    }
}

/// Status flag: the device's Repetition Count Test failure is latched.
const STATUS_RCT_LATCHED: u8 = 1;
/// Status flag: the device's Adaptive Proportion Test failure is latched.
const STATUS_APT_LATCHED: u8 = 2;
/// Status flag: the device dropped samples since its last reset.
const STATUS_OVERRUN: u8 = 4;
/// The temperature field's value for "not measured".
const TEMPERATURE_NOT_MEASURED: i16 = i16::MIN;

/// The device's status block (PROTOCOL.md §4), decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.protocol", name = "DeviceStatus"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct Status {
    pub state: DeviceState,
    /// A failure of the device's Repetition Count Test is latched (flags bit 0).
    pub rct_latched: bool,
    /// A failure of the device's Adaptive Proportion Test is latched (flags bit 1).
    pub apt_latched: bool,
    /// The device dropped samples (flags bit 2).
    pub overrun: bool,
    pub samples_produced: u64,
    pub frames_sent: u32,
    pub samples_dropped: u32,
    pub rct_failures: u32,
    pub apt_failures: u32,
    pub rct_cutoff: u16,
    pub apt_cutoff: u16,
    pub apt_window: u16,
    /// Degrees Celsius (to a hundredth); `None` when not measured.
    pub temperature: Option<f64>,
}

impl Status {
    /// Bytes in a status block.
    pub const LEN: usize = 36;

    /// Parses a status block.
    ///
    /// # Errors
    /// [`Error::Protocol`] when shorter than [`Self::LEN`].
    pub fn parse(b: &[u8]) -> Result<Self> {
        need(b, Self::LEN, "status block")?;
        let flags = b[1];
        let temperature = i16::from_le_bytes([b[34], b[35]]);
        Ok(Status {
            state: DeviceState::from_code(b[0]),
            rct_latched: flags & STATUS_RCT_LATCHED != 0,
            apt_latched: flags & STATUS_APT_LATCHED != 0,
            overrun: flags & STATUS_OVERRUN != 0,
            samples_produced: u64::from_le_bytes(b[4..12].try_into().expect("eight bytes")),
            frames_sent: u32_at(b, 12),
            samples_dropped: u32_at(b, 16),
            rct_failures: u32_at(b, 20),
            apt_failures: u32_at(b, 24),
            rct_cutoff: u16_at(b, 28),
            apt_cutoff: u16_at(b, 30),
            apt_window: u16_at(b, 32),
            temperature: (temperature != TEMPERATURE_NOT_MEASURED).then(|| f64::from(temperature) / 100.0),
        })
    }

    /// The flags byte.
    fn flags(&self) -> u8 {
        let bit = |set: bool, flag: u8| if set { flag } else { 0 };
        bit(self.rct_latched, STATUS_RCT_LATCHED)
            | bit(self.apt_latched, STATUS_APT_LATCHED)
            | bit(self.overrun, STATUS_OVERRUN)
    }

    /// The 36-byte block; a temperature outside the field's range is clamped to it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![self.state.code(), self.flags(), 0, 0];
        b.extend_from_slice(&self.samples_produced.to_le_bytes());
        for v in [self.frames_sent, self.samples_dropped, self.rct_failures, self.apt_failures] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [self.rct_cutoff, self.apt_cutoff, self.apt_window] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let temperature = self.temperature.map_or(TEMPERATURE_NOT_MEASURED, |c| {
            (c * 100.0).round().clamp(f64::from(TEMPERATURE_NOT_MEASURED + 1), f64::from(i16::MAX)) as i16
        });
        b.extend_from_slice(&temperature.to_le_bytes());
        b
    }
}

/// A COMMAND payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub code: u8,
    pub tag: u8,
    pub args: Vec<u8>,
}

impl Command {
    /// Parses a COMMAND payload.
    ///
    /// # Errors
    /// [`Error::Protocol`] when shorter than two bytes.
    pub fn parse(b: &[u8]) -> Result<Self> {
        need(b, 2, "COMMAND payload")?;
        Ok(Command { code: b[0], tag: b[1], args: b[2..].to_vec() })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![self.code, self.tag];
        b.extend_from_slice(&self.args);
        b
    }
}

/// A REPLY payload.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.protocol"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct Reply {
    pub code: u8,
    pub tag: u8,
    pub result: u8,
    #[cfg_attr(feature = "python", serde(with = "serde_bytes"))]
    pub data: Vec<u8>,
}

impl Reply {
    /// Parses a REPLY payload.
    ///
    /// # Errors
    /// [`Error::Protocol`] when shorter than four bytes.
    pub fn parse(b: &[u8]) -> Result<Self> {
        need(b, 4, "REPLY payload")?;
        Ok(Reply { code: b[0], tag: b[1], result: b[2], data: b[4..].to_vec() })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![self.code, self.tag, self.result, 0];
        b.extend_from_slice(&self.data);
        b
    }
}

/// What kind of device answers (PROTOCOL.md §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "python", derive(serde::Serialize, serde::Deserialize))]
pub enum DeviceClass {
    /// A quantum random number generator.
    Qrng,
    /// A QKD detector.
    QkdDetector,
    /// A class this protocol version does not define (kept for the round trip).
    Unknown(u8),
}

impl DeviceClass {
    /// The class of an info block's code.
    pub fn from_code(code: u8) -> Self {
        match code {
            1 => DeviceClass::Qrng,
            2 => DeviceClass::QkdDetector,
            other => DeviceClass::Unknown(other),
        }
    }

    /// Its code in an info block.
    pub fn code(self) -> u8 {
        match self {
            DeviceClass::Qrng => 1,
            DeviceClass::QkdDetector => 2,
            DeviceClass::Unknown(code) => code,
        }
    }

    /// `"qrng"`, `"qkd-detector"` or `"unknown"`.
    pub fn name(self) -> &'static str {
        match self {
            DeviceClass::Qrng => "qrng",
            DeviceClass::QkdDetector => "qkd-detector",
            DeviceClass::Unknown(_) => "unknown",
        }
    }
}

/// The claimed min-entropy's unit in an info block: 1/256 bit.
const ENTROPY_STEPS_PER_BIT: f64 = 256.0;

/// The info block (PROTOCOL.md §5), decoded.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.protocol", name = "DeviceInfo"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct Info {
    pub protocol_version: u8,
    pub device_class: DeviceClass,
    pub max_payload: u16,
    pub format: SampleFormat,
    /// The maker's claimed min-entropy per sample, in bits (to 1/256 bit); 0 for none.
    pub claimed_min_entropy: f64,
    pub vendor: String,
    pub model: String,
    pub serial: String,
    pub firmware: String,
}

impl Info {
    /// Parses an info block.
    ///
    /// # Errors
    /// [`Error::Protocol`] when truncated, or a string is not UTF-8.
    pub fn parse(b: &[u8]) -> Result<Self> {
        need(b, 16, "info block")?;
        let format = SampleFormat::from_bytes(&b[4..12])?;
        let mut strings = Vec::with_capacity(4);
        let mut at = 16usize;
        for name in ["vendor", "model", "serial", "firmware"] {
            let len = usize::from(*b.get(at).ok_or_else(|| Error::protocol(format!("info block ends before {name}")))?);
            let bytes =
                b.get(at + 1..at + 1 + len).ok_or_else(|| Error::protocol(format!("info block ends inside {name}")))?;
            strings.push(
                String::from_utf8(bytes.to_vec()).map_err(|_| Error::protocol(format!("info {name} is not UTF-8")))?,
            );
            at += 1 + len;
        }
        let [vendor, model, serial, firmware]: [String; 4] = strings.try_into().expect("four strings");
        Ok(Info {
            protocol_version: b[0],
            device_class: DeviceClass::from_code(b[1]),
            max_payload: u16_at(b, 2),
            format,
            claimed_min_entropy: f64::from(u16_at(b, 12)) / ENTROPY_STEPS_PER_BIT,
            vendor,
            model,
            serial,
            firmware,
        })
    }

    /// The info block; the claimed min-entropy is rounded to 1/256 bit (and clamped to the field)
    /// and each string cut to 255 bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![self.protocol_version, self.device_class.code()];
        b.extend_from_slice(&self.max_payload.to_le_bytes());
        b.extend_from_slice(&self.format.to_bytes());
        let claim = (self.claimed_min_entropy * ENTROPY_STEPS_PER_BIT).round().clamp(0.0, f64::from(u16::MAX)) as u16;
        b.extend_from_slice(&claim.to_le_bytes());
        b.extend_from_slice(&[0, 0]);
        for s in [&self.vendor, &self.model, &self.serial, &self.firmware] {
            let s = &s.as_bytes()[..s.len().min(255)];
            b.push(s.len() as u8);
            b.extend_from_slice(s);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::format::{BitOrder, Packing};

    #[test]
    fn blocks_round_trip() {
        let s = Status {
            state: DeviceState::Running,
            overrun: true,
            samples_produced: 1 << 40,
            frames_sent: 7,
            temperature: Some(-2.5),
            ..Default::default()
        };
        assert_eq!(s.to_bytes().len(), Status::LEN);
        assert_eq!(Status::parse(&s.to_bytes()).unwrap(), s);
        let info = Info {
            protocol_version: 1,
            device_class: DeviceClass::Qrng,
            max_payload: 4096,
            format: SampleFormat::new(8, Packing::Aligned, BitOrder::MsbFirst, 1000).unwrap(),
            claimed_min_entropy: 7.0,
            vendor: "qitcore".into(),
            model: "sim".into(),
            serial: "0001".into(),
            firmware: "1.0".into(),
        };
        assert_eq!(Info::parse(&info.to_bytes()).unwrap(), info);
        let bytes = info.to_bytes();
        assert!(Info::parse(&bytes[..bytes.len() - 1]).is_err());
        let r = Reply { code: 5, tag: 9, result: 0, data: vec![1, 2] };
        assert_eq!(Reply::parse(&r.to_bytes()).unwrap(), r);
        assert!(Data::parse(&[1, 0, 0]).is_err());
    }

    /// A status block with state `state`, flags `flags` and temperature field `temperature`.
    fn status_block(state: u8, flags: u8, temperature: i16) -> Vec<u8> {
        let mut b = vec![0u8; Status::LEN];
        (b[0], b[1]) = (state, flags);
        b[34..36].copy_from_slice(&temperature.to_le_bytes());
        b
    }

    #[test]
    fn status_flags_states_and_temperature_decode() {
        let failed = Status::parse(&status_block(2, 0b011, 2150)).unwrap();
        assert_eq!(failed.state, DeviceState::Failed);
        assert_eq!(failed.state.name(), "failed");
        assert!(failed.rct_latched && failed.apt_latched && !failed.overrun);
        assert_eq!(failed.temperature, Some(21.5));
        let overrun = Status::parse(&status_block(1, 0b100, i16::MIN)).unwrap();
        assert!(!overrun.rct_latched && !overrun.apt_latched && overrun.overrun);
        assert_eq!((overrun.state.name(), overrun.temperature), ("running", None));
        // Every state code and every defined flag survives the round trip; reserved ones read as
        // unknown and keep their code.
        for code in 0..=255u8 {
            let block = status_block(code, (code % 8) & 0b111, i16::from(code) - 128);
            assert_eq!(Status::parse(&block).unwrap().to_bytes(), block, "state {code}");
        }
        assert_eq!(DeviceState::from_code(9), DeviceState::Unknown(9));
        assert_eq!(DeviceState::Unknown(9).name(), "unknown");
        // Temperatures beyond the field are clamped, never read back as "not measured".
        let hot = Status { temperature: Some(-1e9), ..Status::default() };
        assert_eq!(Status::parse(&hot.to_bytes()).unwrap().temperature, Some(-327.67));
    }

    #[test]
    fn info_decodes_class_and_claimed_entropy() {
        let mut info = Info {
            protocol_version: 1,
            device_class: DeviceClass::QkdDetector,
            max_payload: 512,
            format: SampleFormat::new(1, Packing::Packed, BitOrder::LsbFirst, 0).unwrap(),
            claimed_min_entropy: 0.99609375, // 255/256
            vendor: String::new(),
            model: String::new(),
            serial: String::new(),
            firmware: String::new(),
        };
        let bytes = info.to_bytes();
        assert_eq!((bytes[1], u16_at(&bytes, 12)), (2, 255));
        assert_eq!(Info::parse(&bytes).unwrap(), info);
        assert_eq!(info.device_class.name(), "qkd-detector");
        assert_eq!(DeviceClass::from_code(1).name(), "qrng");
        assert_eq!(DeviceClass::from_code(7), DeviceClass::Unknown(7));
        info.claimed_min_entropy = 0.0;
        assert_eq!(Info::parse(&info.to_bytes()).unwrap().claimed_min_entropy, 0.0);
    }
}

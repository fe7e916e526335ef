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

/// Device states.
pub mod state {
    pub const IDLE: u8 = 0;
    pub const RUNNING: u8 = 1;
    pub const FAILED: u8 = 2;
    pub const ERROR: u8 = 3;
}

/// The device's status block (PROTOCOL.md §4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    pub state: u8,
    pub flags: u8,
    pub samples_produced: u64,
    pub frames_sent: u32,
    pub samples_dropped: u32,
    pub rct_failures: u32,
    pub apt_failures: u32,
    pub rct_cutoff: u16,
    pub apt_cutoff: u16,
    pub apt_window: u16,
    /// Hundredths of a degree Celsius; `i16::MIN` when not measured.
    pub temperature: i16,
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
        Ok(Status {
            state: b[0],
            flags: b[1],
            samples_produced: u64::from_le_bytes(b[4..12].try_into().expect("eight bytes")),
            frames_sent: u32_at(b, 12),
            samples_dropped: u32_at(b, 16),
            rct_failures: u32_at(b, 20),
            apt_failures: u32_at(b, 24),
            rct_cutoff: u16_at(b, 28),
            apt_cutoff: u16_at(b, 30),
            apt_window: u16_at(b, 32),
            temperature: i16::from_le_bytes([b[34], b[35]]),
        })
    }

    /// The 36-byte block.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![self.state, self.flags, 0, 0];
        b.extend_from_slice(&self.samples_produced.to_le_bytes());
        for v in [self.frames_sent, self.samples_dropped, self.rct_failures, self.apt_failures] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [self.rct_cutoff, self.apt_cutoff, self.apt_window] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.temperature.to_le_bytes());
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
pub struct Reply {
    pub code: u8,
    pub tag: u8,
    pub result: u8,
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

/// The info block (PROTOCOL.md §5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Info {
    pub protocol_version: u8,
    pub device_class: u8,
    pub max_payload: u16,
    pub format: SampleFormat,
    /// The maker's claimed min-entropy per sample in 1/256 bit; 0 for none.
    pub claimed_entropy: u16,
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
            device_class: b[1],
            max_payload: u16_at(b, 2),
            format,
            claimed_entropy: u16_at(b, 12),
            vendor,
            model,
            serial,
            firmware,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = vec![self.protocol_version, self.device_class];
        b.extend_from_slice(&self.max_payload.to_le_bytes());
        b.extend_from_slice(&self.format.to_bytes());
        b.extend_from_slice(&self.claimed_entropy.to_le_bytes());
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
            state: 1,
            flags: 4,
            samples_produced: 1 << 40,
            frames_sent: 7,
            temperature: -250,
            ..Default::default()
        };
        assert_eq!(s.to_bytes().len(), Status::LEN);
        assert_eq!(Status::parse(&s.to_bytes()).unwrap(), s);
        let info = Info {
            protocol_version: 1,
            device_class: 1,
            max_payload: 4096,
            format: SampleFormat::new(8, Packing::Aligned, BitOrder::MsbFirst, 1000).unwrap(),
            claimed_entropy: 7 * 256,
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
}

//! QDP/1, the device protocol of `firmware_interface/PROTOCOL.md`: frames (magic, version, type,
//! sequence number, length, payload, CRC-32C), their encoder and a resynchronising decoder, the
//! sample format and the payloads of each frame type.

pub mod crc32c;
pub mod decoder;
pub mod format;
#[cfg(test)]
mod golden;
pub mod messages;

pub use decoder::{Decoder, DecoderStats, Event};
pub use format::{BitOrder, Packing, SampleFormat};

/// The two bytes that open every frame.
pub const MAGIC: [u8; 2] = [0xA5, 0x51];
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Magic, version, type, sequence number, length.
pub const HEADER_LEN: usize = 10;
/// Header and CRC.
pub const OVERHEAD: usize = HEADER_LEN + 4;
/// The largest payload a frame may carry.
pub const MAX_PAYLOAD: usize = 8192;

/// Frame types (PROTOCOL.md §1.2).
pub mod frame_type {
    /// Samples, device to host.
    pub const DATA: u8 = 0x01;
    /// Status block, device to host.
    pub const STATUS: u8 = 0x02;
    /// Reply to a command, device to host.
    pub const REPLY: u8 = 0x03;
    /// Command, host to device.
    pub const COMMAND: u8 = 0x81;
}

/// Appends the frame `(kind, sequence, payload)` to `out`.
///
/// # Errors
/// [`crate::Error::InvalidLength`] when the payload exceeds [`MAX_PAYLOAD`].
pub fn encode(kind: u8, sequence: u32, payload: &[u8], out: &mut Vec<u8>) -> crate::Result<()> {
    if payload.len() > MAX_PAYLOAD {
        return Err(crate::Error::length(
            "payload",
            format!("a frame carries at most {MAX_PAYLOAD} bytes, got {}", payload.len()),
        ));
    }
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&sequence.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[start + 2..]);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_header_payload_and_crc() {
        let mut out = Vec::new();
        encode(frame_type::STATUS, 0x0403_0201, b"xyz", &mut out).unwrap();
        assert_eq!(&out[..10], &[0xA5, 0x51, 1, 2, 1, 2, 3, 4, 3, 0]);
        assert_eq!(&out[10..13], b"xyz");
        assert_eq!(u32::from_le_bytes(out[13..17].try_into().unwrap()), crc32c::crc32c(&out[2..13]));
        assert!(encode(1, 0, &vec![0; MAX_PAYLOAD + 1], &mut out).is_err());
    }
}

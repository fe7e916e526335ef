//! CRC-32C (Castagnoli; reflected polynomial 0x82F63B78, initial and final XOR 0xFFFFFFFF), the
//! frame check of QDP/1. The SSE 4.2 `crc32` instruction computes it when the CPU has it (chosen
//! at run time, see [`crate::cpu`]); otherwise a slicing-by-8 table does.

#[cfg(target_arch = "x86_64")]
use crate::cpu::{self, Features};

const POLY: u32 = 0x82F6_3B78;

/// Table `k` advances a byte through `k` further zero bytes.
static TABLES: [[u32; 256]; 8] = build_tables();

const fn build_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        s += 1;
    }
    t
}

/// The CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    !update(!0, data)
}

/// Continues a raw (not yet inverted) CRC state over `data`.
pub fn update(state: u32, data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if cpu::has(Features::SSE42) {
        // SAFETY: the CPU supports SSE 4.2, checked just above.
        return unsafe { update_sse42(state, data) };
    }
    update_table(state, data)
}

/// Slicing-by-8: eight bytes per step through eight tables.
pub fn update_table(mut c: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(8);
    for w in &mut chunks {
        let lo = c ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        c = TABLES[7][(lo & 0xff) as usize]
            ^ TABLES[6][((lo >> 8) & 0xff) as usize]
            ^ TABLES[5][((lo >> 16) & 0xff) as usize]
            ^ TABLES[4][(lo >> 24) as usize]
            ^ TABLES[3][usize::from(w[4])]
            ^ TABLES[2][usize::from(w[5])]
            ^ TABLES[1][usize::from(w[6])]
            ^ TABLES[0][usize::from(w[7])];
    }
    for &b in chunks.remainder() {
        c = (c >> 8) ^ TABLES[0][((c ^ u32::from(b)) & 0xff) as usize];
    }
    c
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
unsafe fn update_sse42(state: u32, data: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut c = u64::from(state);
    let mut chunks = data.chunks_exact(8);
    for w in &mut chunks {
        c = _mm_crc32_u64(c, u64::from_le_bytes(w.try_into().expect("eight bytes")));
    }
    let mut c = c as u32;
    for &b in chunks.remainder() {
        c = _mm_crc32_u8(c, b);
    }
    c
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Bit at a time, straight from the definition.
    fn naive(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            }
        }
        !c
    }

    #[test]
    fn published_check_value() {
        // The catalogue's check value for CRC-32/ISCSI (CRC-32C).
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(naive(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    proptest! {
        #[test]
        fn every_path_agrees_with_the_definition(data in prop::collection::vec(any::<u8>(), 0..300), split in 0usize..300) {
            let expect = naive(&data);
            prop_assert_eq!(crc32c(&data), expect);
            prop_assert_eq!(!update_table(!0, &data), expect);
            let k = split.min(data.len());
            prop_assert_eq!(!update(update(!0, &data[..k]), &data[k..]), expect);
        }

        #[cfg(target_arch = "x86_64")]
        #[test]
        fn the_instruction_agrees_with_the_table(data in prop::collection::vec(any::<u8>(), 0..300), state in any::<u32>()) {
            // Where the CPU has it, even with the portable path forced.
            if cpu::detected().contains(Features::SSE42) {
                // SAFETY: detected just above.
                prop_assert_eq!(unsafe { update_sse42(state, &data) }, update_table(state, &data));
            }
        }
    }
}

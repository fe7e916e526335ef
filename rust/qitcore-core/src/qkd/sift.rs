//! Sifting: Bob announces the pulses he detected and his bases; Alice answers with her bases and
//! the intensity labels of the pulses where the bases agree; each end keeps its bits of those
//! pulses, split into key basis (0) and test basis (1). Bits are never announced.
//!
//! Bob's message: count (u64), size of the numbers (u64), the pulse numbers as LEB128 varints of
//! their gaps (the first against −1, so a detection every few pulses costs one byte, not eight),
//! and his bases packed eight to a byte (MSB first). Alice's reply: her bases for those pulses,
//! packed the same way, then one intensity byte per pulse where the bases agree.

use crate::{Error, Result};

/// One end's sifted bits (0/1 bytes) and their intensity labels, per basis.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sifted {
    pub key: Vec<u8>,
    pub key_intensity: Vec<u8>,
    pub test: Vec<u8>,
    pub test_intensity: Vec<u8>,
}

impl Drop for Sifted {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
        zeroize::Zeroize::zeroize(&mut self.test);
    }
}

/// Builds a [`Sifted`] without branches (see [`add`]). A record is one byte, its bit and its
/// label (`bit | label << 1`), split into the two columns of each basis at the end: two stores
/// per record instead of four.
struct Builder {
    /// `bit | label << 1` per record of each basis, up to `keys` and `tests`.
    key: Vec<u8>,
    test: Vec<u8>,
    keys: usize,
    tests: usize,
}

impl Builder {
    fn new(capacity: usize) -> Self {
        Builder { key: vec![0u8; capacity + 1], test: vec![0u8; capacity + 1], keys: 0, tests: 0 }
    }

    /// Both columns and both ends, as locals the sifting loops keep in registers (the
    /// builder's own fields live in memory: its drop on an error path takes its address).
    fn columns(&mut self) -> (&mut [u8], &mut [u8]) {
        (&mut self.key, &mut self.test)
    }

    fn finish(mut self) -> Sifted {
        let split = |records: &mut Vec<u8>, len: usize| -> (Vec<u8>, Vec<u8>) {
            records.truncate(len);
            let labels = records.iter().map(|r| r >> 1).collect();
            for r in records.iter_mut() {
                *r &= 1;
            }
            (std::mem::take(records), labels)
        };
        let (key, key_intensity) = split(&mut self.key, self.keys);
        let (test, test_intensity) = split(&mut self.test, self.tests);
        Sifted { key, key_intensity, test, test_intensity }
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
        zeroize::Zeroize::zeroize(&mut self.test);
    }
}

/// Adds one record to the columns: it is written at the end of both and the end of its basis
/// advances if it is kept. Bases and matches are random, so branching on them would mispredict
/// about every other record.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn add(key: &mut [u8], test: &mut [u8], ends: &mut (usize, usize), keep: bool, basis: u8, bit: u8, label: u8) {
    let record = (bit & 1) | label << 1;
    key[ends.0] = record;
    test[ends.1] = record;
    ends.0 += usize::from(keep & (basis == 0));
    ends.1 += usize::from(keep & (basis != 0));
}

/// 0/1 bytes packed eight to a byte, MSB first (only each byte's low bit counts).
fn pack(bits: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bits.len().div_ceil(8));
    let mut chunks = bits.chunks_exact(8);
    for chunk in &mut chunks {
        out.push(msb_first(u64::from_le_bytes(chunk.try_into().expect("eight bytes"))));
    }
    if !chunks.remainder().is_empty() {
        let mut buf = [0u8; 8];
        buf[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        out.push(msb_first(u64::from_le_bytes(buf)));
    }
    out
}

/// Eight 0/1 bytes (the first in the low byte) as one byte, the first bit in the MSB: the
/// multiply adds byte `i`'s bit into bit `63 − i`, with no carries between them.
#[inline]
fn msb_first(eight: u64) -> u8 {
    ((eight & 0x0101_0101_0101_0101).wrapping_mul(0x8040_2010_0804_0201) >> 56) as u8
}

/// Bob's message from his pulse numbers and bases.
///
/// # Errors
/// [`Error::InvalidLength`] when the columns differ in length, [`Error::InvalidArgument`] when
/// the pulse numbers are not strictly increasing.
pub fn announce(index: &[u64], basis: &[u8]) -> Result<Vec<u8>> {
    if index.len() != basis.len() {
        return Err(Error::length("basis", format!("{} bases for {} pulses", basis.len(), index.len())));
    }
    let numbers = encode_indices(index)?;
    let mut out = Vec::with_capacity(16 + numbers.len() + basis.len() / 8 + 1);
    out.extend_from_slice(&(index.len() as u64).to_le_bytes());
    out.extend_from_slice(&(numbers.len() as u64).to_le_bytes());
    out.extend_from_slice(&numbers);
    out.extend(pack(basis));
    Ok(out)
}

/// Splits Bob's message into its count, varint numbers and packed bases.
fn split(message: &[u8]) -> Result<(usize, &[u8], &[u8])> {
    let bad = || Error::protocol("malformed sifting message");
    let field = |at: usize| -> Result<usize> {
        let b = message.get(at..at + 8).ok_or_else(bad)?;
        usize::try_from(u64::from_le_bytes(b.try_into().expect("eight bytes"))).map_err(|_| bad())
    };
    let (n, size) = (field(0)?, field(8)?);
    let end = size.checked_add(16).ok_or_else(bad)?;
    if message.len().checked_sub(end) != Some(n.div_ceil(8)) {
        return Err(bad());
    }
    Ok((n, &message[16..end], &message[end..]))
}

/// Bob's pulse numbers and packed bases from his message.
///
/// # Errors
/// [`Error::Protocol`] for a malformed message.
pub fn parse(message: &[u8]) -> Result<(Vec<u64>, &[u8])> {
    let (n, numbers, bases) = split(message)?;
    let index = decode_indices(numbers)?;
    if index.len() != n {
        return Err(Error::protocol("malformed sifting message"));
    }
    Ok((index, bases))
}

/// Pulses Alice sifts at a time (a multiple of 8: whole bytes of bases).
const BATCH: usize = 256;

/// Alice's columns (equal lengths, checked by the caller).
pub struct AliceRecords<'a> {
    pub index: &'a [u64],
    pub basis: &'a [u8],
    pub bit: &'a [u8],
    pub intensity: &'a [u8],
}

/// Alice's reply to Bob's message, her sifted bits, and the number of pulses Bob detected.
///
/// One pass over Bob's numbers: each is decoded, found in Alice's records by a merge, and sifted
/// at once, eight at a time (one byte of Bob's bases and of the reply); the labels are written
/// straight after the reply's bases. No intermediate arrays: this runs on millions of
/// detections per block.
///
/// # Errors
/// [`Error::Protocol`] for a malformed message or a pulse Alice has no record of;
/// [`Error::InvalidLength`] when Alice's columns differ in length.
pub fn answer(alice: &AliceRecords<'_>, message: &[u8]) -> Result<(Vec<u8>, Sifted, usize)> {
    let (n, numbers, bob_bases) = split(message)?;
    let bad = || Error::protocol("malformed sifting message");
    if n > numbers.len() {
        return Err(bad());
    }
    let len = alice.index.len();
    if [alice.basis.len(), alice.bit.len(), alice.intensity.len()] != [len; 3] {
        return Err(Error::length("alice records", "columns differ in length"));
    }
    let (index, basis, bit, intensity) = (alice.index, alice.basis, alice.bit, alice.intensity);
    let mut sifted = Builder::new(n);
    let bases_len = n.div_ceil(8);
    // Alice's bases, then a label per pulse kept (at most n, plus one scratch byte).
    let mut reply = vec![0u8; bases_len + n + 1];
    let (bases_out, labels) = reply.split_at_mut(bases_len);
    let (key, test) = sifted.columns();
    let mut ends = (0usize, 0usize);
    let (mut read, mut next) = (0usize, 0u64);
    let (mut matched, mut at) = (0usize, 0usize);
    // A batch at a time: first Alice's row of each pulse (decoding and merging), then the
    // sifting of those rows. Two short loops keep their state in registers where one long one
    // spilled it.
    let mut rows = [0usize; BATCH];
    for (batch, (bases_out, bob_bases)) in bases_out.chunks_mut(BATCH / 8).zip(bob_bases.chunks(BATCH / 8)).enumerate()
    {
        let count = (n - BATCH * batch).min(BATCH);
        for row in &mut rows[..count] {
            let x = pulse_number(numbers, &mut read, &mut next).ok_or_else(bad_numbers)?;
            while at < len && index[at] < x {
                at += 1;
            }
            if at == len || index[at] != x {
                return Err(Error::protocol(format!("Bob reports pulse {x}, of which Alice has no record")));
            }
            *row = at;
            at += 1;
        }
        for ((out, &bob), rows) in bases_out.iter_mut().zip(bob_bases).zip(rows[..count].chunks(8)) {
            // Bob's bases leave from the top of `bob`, Alice's enter at the bottom of `byte`.
            let (mut bob, mut byte) = (bob, 0u8);
            for &r in rows {
                let (b, label) = (basis[r], intensity[r]);
                byte = byte << 1 | (b & 1);
                let keep = b == bob >> 7;
                bob <<= 1;
                add(key, test, &mut ends, keep, b, bit[r], label);
                labels[matched] = label;
                matched += usize::from(keep);
            }
            *out = byte << (8 - rows.len());
        }
    }
    if read != numbers.len() {
        return Err(bad());
    }
    (sifted.keys, sifted.tests) = ends;
    reply.truncate(bases_len + matched);
    Ok((reply, sifted.finish(), n))
}

/// Bob's sifted bits from Alice's reply; `intensities` is the number of labels (3).
///
/// # Errors
/// [`Error::InvalidLength`] when the columns differ in length, [`Error::Protocol`] for a
/// malformed reply.
pub fn conclude(basis: &[u8], bit: &[u8], reply: &[u8], intensities: u8) -> Result<Sifted> {
    if basis.len() != bit.len() {
        return Err(Error::length("bit", format!("{} bits for {} bases", bit.len(), basis.len())));
    }
    let bad = || Error::protocol("malformed sifting reply");
    let packed = basis.len().div_ceil(8);
    let (alice_bases, labels) = (reply.get(..packed).ok_or_else(bad)?, &reply[packed.min(reply.len())..]);
    let mut sifted = Builder::new(basis.len());
    let (key, test) = sifted.columns();
    let mut ends = (0usize, 0usize);
    let (mut used, mut invalid) = (0usize, false);
    for ((bases, bits), &alice) in basis.chunks(8).zip(bit.chunks(8)).zip(alice_bases) {
        // Alice's bases leave from the top of `alice`.
        let mut alice = alice;
        for (&b, &x) in bases.iter().zip(bits) {
            let keep = alice >> 7 == b;
            alice <<= 1;
            let label = labels.get(used).copied().unwrap_or(intensities);
            invalid |= keep & (label >= intensities);
            add(key, test, &mut ends, keep, b, x, label);
            used += usize::from(keep);
        }
    }
    (sifted.keys, sifted.tests) = ends;
    if invalid || used != labels.len() {
        return Err(bad());
    }
    Ok(sifted.finish())
}

/// The varint gaps of strictly increasing `index`.
///
/// # Errors
/// [`Error::InvalidArgument`] when `index` is not strictly increasing.
pub fn encode_indices(index: &[u64]) -> Result<Vec<u8>> {
    // Most gaps take one byte: a detection every few dozen pulses.
    let mut out = Vec::with_capacity(index.len() + index.len() / 8 + 16);
    // The smallest number allowed next; None once a number was 2^64 − 1.
    let mut next = Some(0u64);
    for (i, &x) in index.iter().enumerate() {
        let Some(gap) = next.and_then(|next| x.checked_sub(next)) else {
            return Err(Error::argument("index", format!("not strictly increasing at record {i}")));
        };
        next = x.checked_add(1);
        let mut v = gap;
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    Ok(out)
}

/// The pulse numbers back from [`encode_indices`]' bytes.
///
/// # Errors
/// [`Error::Protocol`] for a truncated or overlong varint, or a number past 2^64 − 2.
pub fn decode_indices(bytes: &[u8]) -> Result<Vec<u64>> {
    let mut out = Vec::with_capacity(bytes.len());
    let (mut read, mut next) = (0usize, 0u64);
    while read < bytes.len() {
        out.push(pulse_number(bytes, &mut read, &mut next).ok_or_else(bad_numbers)?);
    }
    Ok(out)
}

fn bad_numbers() -> Error {
    Error::protocol("malformed pulse numbers in the sifting message")
}

/// The pulse number at `bytes[*read..]`, given that it is at least `*next`; advances both.
/// `None` when the bytes end, a varint is overlong or the number reaches 2^64 − 1. The state is
/// two plain integers, not a struct, so that the loops calling this keep it in registers.
#[inline(always)]
fn pulse_number(bytes: &[u8], read: &mut usize, next: &mut u64) -> Option<u64> {
    let &first = bytes.get(*read)?;
    let gap = if first < 0x80 {
        *read += 1;
        u64::from(first)
    } else {
        let (gap, after) = long_gap(bytes, *read)?;
        *read = after;
        gap
    };
    let x = next.checked_add(gap)?;
    *next = x.checked_add(1)?;
    Some(x)
}

/// A varint of two bytes or more at `bytes[at..]`, and where the next begins.
#[cold]
fn long_gap(bytes: &[u8], mut at: usize) -> Option<(u64, usize)> {
    let (mut gap, mut shift) = (0u64, 0u32);
    loop {
        let &b = bytes.get(at)?;
        at += 1;
        if shift > 63 || (shift == 63 && b > 1) {
            return None;
        }
        gap |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some((gap, at));
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn indices_survive_the_wire(mut v in proptest::collection::vec(any::<u64>(), 0..200)) {
            v.sort_unstable();
            v.dedup();
            let wire = encode_indices(&v).unwrap();
            prop_assert_eq!(decode_indices(&wire).unwrap(), v);
        }
    }

    /// Both ends keep exactly the pulses where the bases agree, in order, with Alice's labels.
    #[test]
    fn both_ends_sift_the_same_pulses() {
        let alice_index: Vec<u64> = (0..1000).map(|i| 3 * i + 1).collect();
        let basis: Vec<u8> = (0..1000).map(|i| (i % 3 == 0) as u8).collect();
        let bit: Vec<u8> = (0..1000).map(|i| (i * 7 % 5 % 2) as u8).collect();
        let intensity: Vec<u8> = (0..1000).map(|i| (i % 3) as u8).collect();
        let alice = AliceRecords { index: &alice_index, basis: &basis, bit: &bit, intensity: &intensity };
        let bob_rows: Vec<usize> = (0..1000).filter(|i| i % 4 != 1).collect();
        let bob_index: Vec<u64> = bob_rows.iter().map(|&i| alice_index[i]).collect();
        let bob_basis: Vec<u8> = bob_rows.iter().map(|&i| ((i % 3 == 0) ^ (i % 5 == 0)) as u8).collect();
        let bob_bit: Vec<u8> = bob_rows.iter().map(|&i| bit[i]).collect();
        let (reply, a, n) = answer(&alice, &announce(&bob_index, &bob_basis).unwrap()).unwrap();
        let b = conclude(&bob_basis, &bob_bit, &reply, 3).unwrap();
        assert_eq!(n, bob_rows.len());
        assert_eq!(a, b);
        let kept: Vec<usize> = bob_rows.iter().copied().filter(|&i| i % 5 != 0).collect();
        assert_eq!(a.key.len() + a.test.len(), kept.len());
        let key_rows: Vec<usize> = kept.iter().copied().filter(|&i| basis[i] == 0).collect();
        assert_eq!(a.key, key_rows.iter().map(|&i| bit[i]).collect::<Vec<_>>());
        assert_eq!(a.key_intensity, key_rows.iter().map(|&i| intensity[i]).collect::<Vec<_>>());
        // A pulse Alice never sent, a truncated message, a reply with a label too many.
        assert!(answer(&alice, &announce(&[2], &[0]).unwrap()).is_err());
        let message = announce(&bob_index, &bob_basis).unwrap();
        assert!(answer(&alice, &message[..message.len() - 1]).is_err());
        let mut longer = reply.clone();
        longer.push(0);
        assert!(conclude(&bob_basis, &bob_bit, &longer, 3).is_err());
        assert!(conclude(&bob_basis, &bob_bit, &reply[..10], 3).is_err());
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(encode_indices(&[3, 3]).is_err());
        assert!(decode_indices(&[0x80]).is_err());
        assert!(decode_indices(&[0xff; 11]).is_err());
        assert_eq!(encode_indices(&[0, 1, 300]).unwrap(), vec![0, 0, 0xaa, 0x02]);
    }
}

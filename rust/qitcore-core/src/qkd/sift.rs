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

/// Builds a [`Sifted`] without branches: every record is written at the end of both bases'
/// columns and the ends advance only where it belongs. Bases and matches are random, so
/// branching on them would mispredict about every other record.
struct Builder {
    out: Sifted,
    keys: usize,
    tests: usize,
}

impl Builder {
    fn new(capacity: usize) -> Self {
        let column = || vec![0u8; capacity + 1];
        Builder {
            out: Sifted { key: column(), key_intensity: column(), test: column(), test_intensity: column() },
            keys: 0,
            tests: 0,
        }
    }

    #[inline(always)]
    fn add(&mut self, keep: bool, basis: u8, bit: u8, intensity: u8) {
        let o = &mut self.out;
        o.key[self.keys] = bit;
        o.key_intensity[self.keys] = intensity;
        o.test[self.tests] = bit;
        o.test_intensity[self.tests] = intensity;
        self.keys += usize::from(keep & (basis == 0));
        self.tests += usize::from(keep & (basis != 0));
    }

    fn finish(mut self) -> Sifted {
        self.out.key.truncate(self.keys);
        self.out.key_intensity.truncate(self.keys);
        self.out.test.truncate(self.tests);
        self.out.test_intensity.truncate(self.tests);
        self.out
    }
}

fn pack(bits: impl ExactSizeIterator<Item = u8>) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, b) in bits.enumerate() {
        out[i / 8] |= (b & 1) << (7 - i % 8);
    }
    out
}

fn unpacked(packed: &[u8], i: usize) -> u8 {
    packed[i / 8] >> (7 - i % 8) & 1
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
    out.extend(pack(basis.iter().copied()));
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
/// at once (no intermediate arrays: this runs on millions of detections per block).
///
/// # Errors
/// [`Error::Protocol`] for a malformed message or a pulse Alice has no record of.
pub fn answer(alice: &AliceRecords<'_>, message: &[u8]) -> Result<(Vec<u8>, Sifted, usize)> {
    let (n, numbers, bob_bases) = split(message)?;
    let bad = || Error::protocol("malformed sifting message");
    if n > numbers.len() {
        return Err(bad());
    }
    let mut sifted = Builder::new(n);
    let mut reply = vec![0u8; n.div_ceil(8)];
    let mut intensities = vec![0u8; n + 1];
    let mut matched = 0usize;
    let (mut count, mut at) = (0usize, 0usize);
    for x in PulseNumbers::new(numbers) {
        let x = x?;
        if count == n {
            return Err(bad());
        }
        while at < alice.index.len() && alice.index[at] < x {
            at += 1;
        }
        if at == alice.index.len() || alice.index[at] != x {
            return Err(Error::protocol(format!("Bob reports pulse {x}, of which Alice has no record")));
        }
        let (basis, intensity) = (alice.basis[at], alice.intensity[at]);
        reply[count / 8] |= (basis & 1) << (7 - count % 8);
        let keep = basis == unpacked(bob_bases, count);
        sifted.add(keep, basis, alice.bit[at], intensity);
        intensities[matched] = intensity;
        matched += usize::from(keep);
        count += 1;
    }
    if count != n {
        return Err(bad());
    }
    reply.extend_from_slice(&intensities[..matched]);
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
    let (mut used, mut invalid) = (0usize, false);
    for (i, (&b, &x)) in basis.iter().zip(bit).enumerate() {
        let keep = unpacked(alice_bases, i) == b;
        let label = labels.get(used).copied().unwrap_or(intensities);
        invalid |= keep & (label >= intensities);
        sifted.add(keep, b, x, label);
        used += usize::from(keep);
    }
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
    let mut out = Vec::with_capacity(index.len() + 16);
    let mut previous: Option<u64> = None;
    for (i, &x) in index.iter().enumerate() {
        let gap = match previous {
            None => x,
            Some(p) if x > p => x - p - 1,
            Some(_) => return Err(Error::argument("index", format!("not strictly increasing at record {i}"))),
        };
        previous = Some(x);
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
/// [`Error::Protocol`] for a truncated or overlong varint, or a number past 2^64 − 1.
pub fn decode_indices(bytes: &[u8]) -> Result<Vec<u64>> {
    PulseNumbers::new(bytes).collect()
}

/// The pulse numbers of [`encode_indices`]' bytes, one by one.
struct PulseNumbers<'a> {
    bytes: std::slice::Iter<'a, u8>,
    next: u64,
    failed: bool,
}

impl<'a> PulseNumbers<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        PulseNumbers { bytes: bytes.iter(), next: 0, failed: false }
    }
}

impl Iterator for PulseNumbers<'_> {
    type Item = Result<u64>;

    #[inline]
    fn next(&mut self) -> Option<Result<u64>> {
        if self.failed {
            return None;
        }
        let bad = || Error::protocol("malformed pulse numbers in the sifting message");
        let (mut gap, mut shift) = (0u64, 0u32);
        let mut started = false;
        for &b in self.bytes.by_ref() {
            started = true;
            if shift > 63 || (shift == 63 && b > 1) {
                self.failed = true;
                return Some(Err(bad()));
            }
            gap |= u64::from(b & 0x7f) << shift;
            if b & 0x80 != 0 {
                shift += 7;
                continue;
            }
            let x = self.next.checked_add(gap);
            let after = x.and_then(|x| x.checked_add(1));
            return match (x, after) {
                (Some(x), Some(after)) => {
                    self.next = after;
                    Some(Ok(x))
                }
                _ => {
                    self.failed = true;
                    Some(Err(bad()))
                }
            };
        }
        // The bytes ended: cleanly between numbers, or inside one.
        self.failed = true;
        started.then(|| Err(bad()))
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

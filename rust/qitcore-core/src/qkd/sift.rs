//! Sifting: Bob announces the pulses he detected and his bases; Alice answers with her bases and
//! the intensity labels of the pulses where the bases agree; each end keeps its bits of those
//! pulses, split into key basis (0) and test basis (1). Bits are never announced.
//!
//! Bob's message: count (u64), size of the numbers (u64), the pulse numbers as LEB128 varints of
//! their gaps (the first against −1, so a detection every few pulses costs one byte, not eight),
//! and his bases packed eight to a byte (MSB first). Alice's reply: her bases for those pulses,
//! packed the same way, then the intensity labels of the pulses where the bases agree, two bits
//! each, four to a byte, the first in the top two bits (the last byte's unused bits zero). Until
//! session protocol `qitcore-bb84/2` the labels took a byte each: more than half of the sifting
//! messages' bytes, each of them hashed by both ends' authentication.

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

/// Builds a [`Sifted`]. A record is one byte, its bit and its label (`bit | label << 1`), split
/// into the two columns of each basis at the end: one store per record kept instead of two.
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

    /// Appends `other`'s records after this one's (within this one's capacity).
    fn append(&mut self, other: &Builder) {
        self.key[self.keys..self.keys + other.keys].copy_from_slice(&other.key[..other.keys]);
        self.test[self.tests..self.tests + other.tests].copy_from_slice(&other.test[..other.tests]);
        (self.keys, self.tests) = (self.keys + other.keys, self.tests + other.tests);
    }

    fn finish(mut self) -> Sifted {
        let split = |records: &mut Vec<u8>, len: usize| -> (Vec<u8>, Vec<u8>) {
            records.truncate(len);
            // Zeroed and written in place, both loops vectorise (a collect did not).
            let mut labels = vec![0u8; len];
            for (label, r) in labels.iter_mut().zip(records.iter_mut()) {
                *label = *r >> 1;
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
    let bad = || Error::peer("malformed sifting message");
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
/// [`Error::Peer`] for a malformed message.
pub fn parse(message: &[u8]) -> Result<(Vec<u64>, &[u8])> {
    let (n, numbers, bases) = split(message)?;
    let index = decode_indices(numbers)?;
    if index.len() != n {
        return Err(Error::peer("malformed sifting message"));
    }
    Ok((index, bases))
}

/// Pulses Alice sifts at a time (a multiple of 8: whole bytes of bases).
const BATCH: usize = 256;

/// Bits of one intensity label in Alice's reply (labels must be below 4).
const LABEL_BITS: u32 = 2;

/// Alice's columns (equal lengths, checked by the caller).
pub struct AliceRecords<'a> {
    pub index: &'a [u64],
    pub basis: &'a [u8],
    pub bit: &'a [u8],
    pub intensity: &'a [u8],
}

/// The row of pulse `x` in `index`, searched from row `at` on (every earlier row holds a smaller
/// number); `None` when Alice has no record of it.
///
/// The next row is tried first (Alice holds the detected pulses only), then the row `x` would
/// be at if Alice held every pulse in between (she holds every pulse sent: numbers are strictly
/// increasing, so it is the last row `x` can be at), then a few rows one by one, and only then
/// a binary search between the two: a merge that stepped through every row would read all of
/// Alice's records, tens of millions of pulses for a million detections.
#[inline(always)]
fn locate(index: &[u64], at: usize, x: u64) -> Option<usize> {
    let &first = index.get(at)?;
    if first >= x {
        return (first == x).then_some(at);
    }
    let last = at + usize::try_from(x - first).unwrap_or(usize::MAX).min(index.len() - 1 - at);
    if index[last] == x {
        return Some(last);
    }
    let near = (last - at).min(8);
    if let Some(step) = index[at + 1..=at + near].iter().position(|&v| v >= x) {
        let row = at + 1 + step;
        return (index[row] == x).then_some(row);
    }
    if near == last - at {
        return None;
    }
    let from = at + near + 1;
    let row = from + index[from..last].partition_point(|&v| v < x);
    (index[row] == x).then_some(row)
}

/// The rows of `numbers` (increasing, none below `index[at]`'s predecessor's successor) where
/// Alice holds every pulse from `index[at]` on, each `x − index[at]` rows past `at`: computed and
/// checked (`index[row] == x`) for the whole group with no lookup waiting on the one before.
/// `false` (and `rows` unspecified) when any is not where that puts it; [`locate`] then finds
/// them one by one, or names the first missing.
#[inline(always)]
fn rows_by_offset(index: &[u64], at: usize, numbers: &[u64], rows: &mut [usize]) -> bool {
    let Some(&first) = index.get(at) else { return false };
    let last = index.len() - 1;
    let mut found = true;
    for (row, &x) in rows.iter_mut().zip(numbers) {
        // A number below `first`, or past the end, lands on a row that does not hold it.
        let r = usize::try_from(x.wrapping_sub(first)).map_or(last, |d| at.saturating_add(d).min(last));
        *row = r;
        found &= x >= first && index[r] == x;
    }
    found
}

/// Packs `count` labels, one a byte at the front of `buf`, [`LABEL_BITS`] each in place, the
/// first in the top bits (the last byte's unused bits zero); returns the packed length. Writing
/// a byte a label while sifting and packing after costs less than shifting each label into a
/// register (a variable shift per pulse).
fn pack_labels(buf: &mut [u8], count: usize) -> usize {
    // Byte i is written after bytes 4i..4i+4 are read, and 4i >= i: nothing unread is lost.
    for i in 0..count / 4 {
        let q = &buf[4 * i..4 * i + 4];
        buf[i] = (q[0] & 3) << 6 | (q[1] & 3) << 4 | (q[2] & 3) << 2 | (q[3] & 3);
    }
    let (full, rest) = (count / 4, count % 4);
    if rest > 0 {
        let byte = (0..rest).fold(0u8, |byte, j| byte | (buf[4 * full + j] & 3) << (6 - 2 * j));
        buf[full] = byte;
    }
    count.div_ceil(4)
}

/// Pulses sifted as one word: bit `i` of a word is the `i`-th pulse of the group.
const GROUP: usize = 64;

/// Up to eight bytes of packed bases as they travel (MSB first) as a word, pulse `i` at bit `i`
/// (missing bytes are zero). Reversing the bits within each byte is the same map both ways.
#[inline(always)]
fn wire_word(bytes: &[u8]) -> u64 {
    let mut eight = [0u8; 8];
    eight[..bytes.len()].copy_from_slice(bytes);
    byte_bits_reversed(u64::from_le_bytes(eight))
}

/// The bits of each byte of `w` in reverse order (the bytes in place).
#[inline(always)]
fn byte_bits_reversed(w: u64) -> u64 {
    w.reverse_bits().swap_bytes()
}

/// Up to 64 0/1 bytes as a word, byte `i` at bit `i` (only each byte's low bit counts); eight at
/// a time by a multiply that adds byte `i`'s bit into bit `56 + i`, with no carries between them.
#[inline(always)]
fn bytes_word(bits: &[u8]) -> u64 {
    let mut word = 0u64;
    for (j, chunk) in bits.chunks(8).enumerate() {
        let mut eight = [0u8; 8];
        eight[..chunk.len()].copy_from_slice(chunk);
        let low = u64::from_le_bytes(eight) & 0x0101_0101_0101_0101;
        word |= (low.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * j);
    }
    word
}

/// The pulses of a group of `count` (at most 64).
#[inline(always)]
fn group_mask(count: usize) -> u64 {
    if count >= GROUP {
        !0
    } else {
        (1u64 << count) - 1
    }
}

/// Alice's reply to Bob's message, her sifted bits, and the number of pulses Bob detected.
///
/// One pass over Bob's numbers, [`GROUP`] pulses at a time: each number is decoded and found in
/// Alice's records ([`locate`]), and the record's basis gathered into a word, its bit and label
/// into a byte (`bit | label << 1`); then the group's matching bases are one word (Alice's
/// XNOR Bob's), and only the pulses kept are visited, in order, by their set bits: the reply's
/// labels and each basis's column are written without a branch or a store per pulse dropped.
/// No array as long as the records: this runs on millions of detections per block.
///
/// From [`PARALLEL_PULSES`] pulses on, the two halves run on two threads (Bob waits for this
/// reply, so the second core is otherwise idle): a first scan finds where the second half's
/// numbers start ([`skip`], eight one-byte gaps a step), and the halves' outputs are joined.
/// A message that scan finds malformed is sifted in one pass, which reports its first fault.
///
/// # Errors
/// [`Error::Peer`] for a malformed message or a pulse Alice has no record of;
/// [`Error::InvalidLength`] when Alice's columns differ in length; [`Error::InvalidArgument`]
/// for a basis above 1 or an intensity label above 3 in a record Bob detected.
pub fn answer(alice: &AliceRecords<'_>, message: &[u8]) -> Result<(Vec<u8>, Sifted, usize)> {
    let (n, numbers, bob_bases) = split(message)?;
    if n > numbers.len() {
        return Err(Error::peer("malformed sifting message"));
    }
    let len = alice.index.len();
    if [alice.basis.len(), alice.bit.len(), alice.intensity.len()] != [len; 3] {
        return Err(Error::length("alice records", "columns differ in length"));
    }
    let bases_len = n.div_ceil(8);
    // Alice's bases, then a label a byte per pulse kept (at most n), packed once all are written.
    let mut reply = vec![0u8; bases_len + n];
    let (bases_out, labels) = reply.split_at_mut(bases_len);
    // Room for every record in the first half's builder: the second's are copied in, never
    // reallocated (a reallocation would free key bits unwiped).
    let mut sifted = Builder::new(n);
    let cut = n / 2 / GROUP * GROUP;
    let second = if n >= PARALLEL_PULSES { skip(numbers, cut) } else { None };
    let (end, more) = match second {
        Some((read, next)) => {
            let at = alice.index.partition_point(|&v| v < next);
            let (first_bases, second_bases) = bases_out.split_at_mut(cut / 8);
            let (bob_first, bob_second) = bob_bases.split_at(cut / 8);
            let (first_labels, _) = labels.split_at_mut(cut);
            let mut rest = Builder::new(n - cut);
            let mut rest_labels = vec![0u8; n - cut];
            let (first, second) = both(
                || sift_part(alice, cut, numbers, (0, 0, 0), bob_first, first_bases, first_labels, &mut sifted),
                || {
                    sift_part(
                        alice,
                        n - cut,
                        numbers,
                        (read, next, at),
                        bob_second,
                        second_bases,
                        &mut rest_labels,
                        &mut rest,
                    )
                },
            );
            // The first half's fault first: it is the first in the message.
            let (first, second) = (first?, second?);
            sifted.append(&rest);
            labels[first.matched..first.matched + second.matched].copy_from_slice(&rest_labels[..second.matched]);
            (second, Some(first))
        }
        None => (sift_part(alice, n, numbers, (0, 0, 0), bob_bases, bases_out, labels, &mut sifted)?, None),
    };
    if end.read != numbers.len() {
        return Err(Error::peer("malformed sifting message"));
    }
    let (bases_seen, labels_seen, matched) = match more {
        Some(first) => {
            (first.bases_seen | end.bases_seen, first.labels_seen | end.labels_seen, first.matched + end.matched)
        }
        None => (end.bases_seen, end.labels_seen, end.matched),
    };
    if bases_seen > 1 {
        return Err(Error::argument("basis", "bases must be 0 or 1"));
    }
    if labels_seen >= 1 << LABEL_BITS {
        return Err(Error::argument("intensity", format!("labels must be below {}", 1 << LABEL_BITS)));
    }
    let packed = pack_labels(labels, matched);
    reply.truncate(bases_len + packed);
    Ok((reply, sifted.finish(), n))
}

/// `a()` here and `b()` on a thread of its own, at once (both after another if no thread can be
/// started). A thread of its own, not the pool's: a pool worker woken for one job keeps spinning
/// for more after it, on the core Bob needs next.
fn both<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    // Taken by whoever runs it: the thread, or this one when the thread could not start.
    let slot = std::sync::Mutex::new(Some(b));
    let take = || slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    std::thread::scope(|scope| {
        let spawned =
            std::thread::Builder::new().name("qitcore-sift".into()).spawn_scoped(scope, || take().map(|b| b()));
        let a = a();
        let b = match spawned {
            Ok(handle) => handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => take().map(|b| b()),
        };
        (a, b.expect("the second task runs once"))
    })
}

/// Pulses from which Alice sifts two halves on two threads.
const PARALLEL_PULSES: usize = 1 << 16;

/// What sifting a run of Bob's pulses found beyond its outputs.
struct PartEnd {
    /// Where in the numbers it stopped.
    read: usize,
    /// Pulses kept (labels written).
    matched: usize,
    /// Every basis and label ORed together: one check at the end instead of one per record.
    bases_seen: u8,
    labels_seen: u8,
}

/// Sifts `pulses` pulses (a whole number of [`GROUP`]s but for the message's last) whose bases
/// are `bob_bases`, their numbers from `numbers[start.0..]` (each at least `start.1`, found in
/// Alice's records from row `start.2` on): Alice's bases into `bases_out`, the labels of the
/// pulses kept into `labels`, their records into `sifted`.
#[allow(clippy::too_many_arguments)]
fn sift_part(
    alice: &AliceRecords<'_>,
    pulses: usize,
    numbers: &[u8],
    start: (usize, u64, usize),
    bob_bases: &[u8],
    bases_out: &mut [u8],
    labels: &mut [u8],
    sifted: &mut Builder,
) -> Result<PartEnd> {
    let (index, basis, bit, intensity) = (alice.index, alice.basis, alice.bit, alice.intensity);
    let (key, test) = sifted.columns();
    let (mut keys, mut tests, mut matched) = (0usize, 0usize, 0usize);
    let ((mut read, mut next, mut at), mut done) = (start, 0usize);
    let (mut bases_seen, mut labels_seen) = (0u8, 0u8);
    let (mut numbers_of, mut rows, mut records) = ([0u64; GROUP], [0usize; GROUP], [0u8; GROUP]);
    for (bases_out, bob_bases) in bases_out.chunks_mut(GROUP / 8).zip(bob_bases.chunks(GROUP / 8)) {
        let count = (pulses - done).min(GROUP);
        done += count;
        // Three short loops, each with few enough values to keep in registers: the numbers,
        // their rows, then the rows' basis, bit and label.
        for x in &mut numbers_of[..count] {
            *x = pulse_number(numbers, &mut read, &mut next).ok_or_else(bad_numbers)?;
        }
        let numbers_here = &numbers_of[..count];
        let mut alice_word = 0u64;
        if index.get(at..at + count) == Some(numbers_here) {
            // Alice holds just the pulses Bob reports here (a detector's log kept at both ends,
            // the simulator's records): the rows follow on from `at`, one comparison for the
            // group, and the columns are read as slices.
            let rows = at..at + count;
            alice_word = bytes_word(&basis[rows.clone()]);
            for ((record, &b), &label) in
                records[..count].iter_mut().zip(&bit[rows.clone()]).zip(&intensity[rows.clone()])
            {
                *record = (b & 1) | label << 1;
            }
            bases_seen |= basis[rows.clone()].iter().fold(0, |acc, &b| acc | b);
            labels_seen |= intensity[rows].iter().fold(0, |acc, &l| acc | l);
            at += count;
        } else {
            if !rows_by_offset(index, at, numbers_here, &mut rows[..count]) {
                for (row, &x) in rows[..count].iter_mut().zip(numbers_here) {
                    *row = locate(index, at, x)
                        .ok_or_else(|| Error::peer(format!("Bob reports pulse {x}, of which Alice has no record")))?;
                    at = *row + 1;
                }
            }
            at = rows[count - 1] + 1;
            for (i, (record, &row)) in records[..count].iter_mut().zip(&rows[..count]).enumerate() {
                let (b, label) = (basis[row], intensity[row]);
                alice_word |= u64::from(b & 1) << i;
                *record = (bit[row] & 1) | label << 1;
                (bases_seen, labels_seen) = (bases_seen | b, labels_seen | label);
            }
        }
        let wire = byte_bits_reversed(alice_word).to_le_bytes();
        bases_out.copy_from_slice(&wire[..bases_out.len()]);
        let keep = !(alice_word ^ wire_word(bob_bases)) & group_mask(count);
        let mut kept = keep;
        while kept != 0 {
            labels[matched] = records[kept.trailing_zeros() as usize] >> 1;
            matched += 1;
            kept &= kept - 1;
        }
        let mut kept = keep & !alice_word;
        while kept != 0 {
            key[keys] = records[kept.trailing_zeros() as usize];
            keys += 1;
            kept &= kept - 1;
        }
        let mut kept = keep & alice_word;
        while kept != 0 {
            test[tests] = records[kept.trailing_zeros() as usize];
            tests += 1;
            kept &= kept - 1;
        }
    }
    (sifted.keys, sifted.tests) = (keys, tests);
    Ok(PartEnd { read, matched, bases_seen, labels_seen })
}

/// Where the numbers after the first `count` in `numbers` start, and the smallest value the next
/// may take; `None` when there are fewer or they are malformed (a single pass then reports the
/// first fault). Eight one-byte gaps (a word without continuation bits) are summed at once.
fn skip(numbers: &[u8], count: usize) -> Option<(usize, u64)> {
    let (mut read, mut next, mut done) = (0usize, 0u64, 0usize);
    while done < count {
        if count - done >= 8 {
            if let Some(chunk) = numbers.get(read..read + 8) {
                let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
                if w & 0x8080_8080_8080_8080 == 0 {
                    // Pairs of bytes into 16-bit lanes, then the lanes summed into the top one.
                    let pairs = (w & 0x00ff_00ff_00ff_00ff) + (w >> 8 & 0x00ff_00ff_00ff_00ff);
                    let sum = pairs.wrapping_mul(0x0001_0001_0001_0001) >> 48;
                    // Each number is its gap past the previous one's successor.
                    next = next.checked_add(sum + 8)?;
                    (read, done) = (read + 8, done + 8);
                    continue;
                }
            }
        }
        pulse_number(numbers, &mut read, &mut next)?;
        done += 1;
    }
    Some((read, next))
}

/// Bob's sifted bits from Alice's reply; `intensities` is the number of labels (at most 4).
///
/// [`GROUP`] pulses at a time, as in [`answer`]: the bases that match are one word, and only
/// the pulses kept are visited.
///
/// # Errors
/// [`Error::InvalidLength`] when the columns differ in length, [`Error::InvalidArgument`] for a
/// basis above 1, [`Error::Peer`] for a malformed reply (its length, a label at or above
/// `intensities`, padding bits set).
pub fn conclude(basis: &[u8], bit: &[u8], reply: &[u8], intensities: u8) -> Result<Sifted> {
    if basis.len() != bit.len() {
        return Err(Error::length("bit", format!("{} bits for {} bases", bit.len(), basis.len())));
    }
    let bad = || Error::peer("malformed sifting reply");
    let n = basis.len();
    let packed = n.div_ceil(8);
    let (alice_bases, labels) = (reply.get(..packed).ok_or_else(bad)?, &reply[packed.min(reply.len())..]);
    // The labels a byte each (the last byte's padding too, checked zero below): unpacking them
    // first leaves the sifting loop a plain read per pulse kept.
    let mut unpacked = vec![0u8; 4 * labels.len()];
    for (four, &byte) in unpacked.chunks_exact_mut(4).zip(labels) {
        for (j, label) in four.iter_mut().enumerate() {
            *label = byte >> (6 - 2 * j) & 3;
        }
    }
    let mut sifted = Builder::new(n);
    let (key, test) = sifted.columns();
    let (mut keys, mut tests, mut used) = (0usize, 0usize, 0usize);
    let mut bases_seen = 0u8;
    for ((bases, bits), alice) in basis.chunks(GROUP).zip(bit.chunks(GROUP)).zip(alice_bases.chunks(GROUP / 8)) {
        bases_seen |= bases.iter().fold(0, |acc, &b| acc | b);
        let bob_word = bytes_word(bases);
        let mut kept = !(bob_word ^ wire_word(alice)) & group_mask(bases.len());
        // More labels than sent: the reply is too short (checked below, once).
        if used + kept.count_ones() as usize > unpacked.len() {
            return Err(bad());
        }
        while kept != 0 {
            let i = kept.trailing_zeros() as usize;
            let label = unpacked[used];
            used += 1;
            let record = (bits[i] & 1) | label << 1;
            // Both columns are written; only the pulse's basis's end advances.
            key[keys] = record;
            test[tests] = record;
            let t = (bob_word >> i & 1) as usize;
            (keys, tests) = (keys + 1 - t, tests + t);
            kept &= kept - 1;
        }
    }
    if bases_seen > 1 {
        return Err(Error::argument("basis", "bases must be 0 or 1"));
    }
    // The largest label in a pass of its own: kept in the loop above it was a value spilled to
    // the stack and read back a pulse later, the loop's slowest step.
    let labels_max = unpacked[..used].iter().fold(0, |acc, &l| acc.max(l));
    // Exactly the bytes the labels need, every label below `intensities`, zeros after the last.
    if labels_max >= intensities || labels.len() != used.div_ceil(4) || unpacked[used..].iter().any(|&l| l != 0) {
        return Err(bad());
    }
    (sifted.keys, sifted.tests) = (keys, tests);
    Ok(sifted.finish())
}

/// How many of Bob's pulses [`conclude`] keeps in the key basis (both bases 0), from his bases
/// and Alice's reply alone: a word operation per 64 pulses, so that Bob knows his key's length,
/// and can start what depends on it alone, before sifting it.
///
/// # Errors
/// [`Error::InvalidArgument`] for a basis above 1, [`Error::Peer`] for a reply too short to
/// hold Alice's bases.
pub fn key_count(basis: &[u8], reply: &[u8]) -> Result<usize> {
    let alice_bases = reply.get(..basis.len().div_ceil(8)).ok_or_else(|| Error::peer("malformed sifting reply"))?;
    let mut count = 0;
    let mut bases_seen = 0u8;
    for (bases, alice) in basis.chunks(GROUP).zip(alice_bases.chunks(GROUP / 8)) {
        bases_seen |= bases.iter().fold(0, |acc, &b| acc | b);
        count += (!(bytes_word(bases) | wire_word(alice)) & group_mask(bases.len())).count_ones() as usize;
    }
    if bases_seen > 1 {
        return Err(Error::argument("basis", "bases must be 0 or 1"));
    }
    Ok(count)
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
    // A batch is written to a buffer on the stack (room for ten bytes a number) and copied out
    // whole: pushing byte by byte checked the vector's capacity for every byte.
    let mut buf = [0u8; 10 * BATCH];
    for (batch, chunk) in index.chunks(BATCH).enumerate() {
        let mut w = 0;
        for (i, &x) in chunk.iter().enumerate() {
            let Some(gap) = next.and_then(|next| x.checked_sub(next)) else {
                let at = BATCH * batch + i;
                return Err(Error::argument("index", format!("not strictly increasing at record {at}")));
            };
            next = x.checked_add(1);
            let mut v = gap;
            while v >= 0x80 {
                buf[w] = (v as u8) | 0x80;
                w += 1;
                v >>= 7;
            }
            buf[w] = v as u8;
            w += 1;
        }
        out.extend_from_slice(&buf[..w]);
    }
    Ok(out)
}

/// The pulse numbers back from [`encode_indices`]' bytes.
///
/// # Errors
/// [`Error::Peer`] for a truncated or overlong varint, or a number past 2^64 − 2.
pub fn decode_indices(bytes: &[u8]) -> Result<Vec<u64>> {
    let mut out = Vec::with_capacity(bytes.len());
    let (mut read, mut next) = (0usize, 0u64);
    while read < bytes.len() {
        out.push(pulse_number(bytes, &mut read, &mut next).ok_or_else(bad_numbers)?);
    }
    Ok(out)
}

fn bad_numbers() -> Error {
    Error::peer("malformed pulse numbers in the sifting message")
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

    /// Both ends as the protocol describes them, with nothing but vectors and loops: Alice finds
    /// each of Bob's pulses by a linear search and writes every field on its own.
    fn naive(
        alice: &AliceRecords<'_>,
        bob_index: &[u64],
        bob_basis: &[u8],
        bob_bit: &[u8],
    ) -> (Vec<u8>, Sifted, Sifted) {
        let mut bases = vec![0u8; bob_index.len().div_ceil(8)];
        let mut labels = Vec::new();
        let (mut a, mut b) = (Sifted::default(), Sifted::default());
        for (i, &x) in bob_index.iter().enumerate() {
            let row = alice.index.binary_search(&x).expect("Alice holds every pulse Bob reports");
            bases[i / 8] |= alice.basis[row] << (7 - i % 8);
            if alice.basis[row] != bob_basis[i] {
                continue;
            }
            let label = alice.intensity[row];
            labels.push(label);
            let (ours, theirs) = if bob_basis[i] == 0 { (&mut a.key, &mut b.key) } else { (&mut a.test, &mut b.test) };
            ours.push(alice.bit[row]);
            theirs.push(bob_bit[i]);
            let (ours, theirs) = if bob_basis[i] == 0 {
                (&mut a.key_intensity, &mut b.key_intensity)
            } else {
                (&mut a.test_intensity, &mut b.test_intensity)
            };
            ours.push(label);
            theirs.push(label);
        }
        let mut packed = vec![0u8; labels.len().div_ceil(4)];
        for (i, &l) in labels.iter().enumerate() {
            packed[i / 4] |= l << (6 - 2 * (i % 4));
        }
        bases.extend(packed);
        (bases, a, b)
    }

    proptest! {
        /// The kernels against the naive ends: Alice holding exactly Bob's pulses, more of them
        /// (every pulse in a range, or a sparse subset), any count of pulses (short last groups
        /// and batches), gaps of one, two, three and six varint bytes.
        #[test]
        fn kernels_match_the_naive_ends(
            records in proptest::collection::vec((
                prop_oneof![4 => 1u64..40, 2 => 100u64..300, 1 => 16_000u64..17_000, 1 => (1u64 << 40)..(1u64 << 41)],
                0u8..2, 0u8..2, 0u8..3, any::<bool>(), 0u8..2, any::<bool>(),
            ), 0..700),
            start in 0u64..1000,
        ) {
            let mut index = Vec::new();
            let mut at = start;
            for r in &records {
                at += r.0;
                index.push(at);
            }
            let basis: Vec<u8> = records.iter().map(|r| r.1).collect();
            let bit: Vec<u8> = records.iter().map(|r| r.2).collect();
            let intensity: Vec<u8> = records.iter().map(|r| r.3).collect();
            let alice = AliceRecords { index: &index, basis: &basis, bit: &bit, intensity: &intensity };
            let bob: Vec<usize> = (0..records.len()).filter(|&i| records[i].4).collect();
            let bob_index: Vec<u64> = bob.iter().map(|&i| index[i]).collect();
            let bob_basis: Vec<u8> = bob.iter().map(|&i| records[i].5).collect();
            // Bob's bit differs from Alice's where the record says so.
            let bob_bit: Vec<u8> = bob.iter().map(|&i| records[i].2 ^ u8::from(records[i].6)).collect();
            let (reply, a, _) = naive(&alice, &bob_index, &bob_basis, &bob_bit);
            let message = announce(&bob_index, &bob_basis).unwrap();
            let (got_reply, got_a, n) = answer(&alice, &message).unwrap();
            prop_assert_eq!(n, bob_index.len());
            prop_assert_eq!(&got_reply, &reply);
            prop_assert_eq!(got_a, a);
            let (_, _, b) = naive(&alice, &bob_index, &bob_basis, &bob_bit);
            prop_assert_eq!(key_count(&bob_basis, &reply).unwrap(), b.key.len());
            prop_assert_eq!(conclude(&bob_basis, &bob_bit, &reply, 3).unwrap(), b);
        }
    }

    /// Enough pulses for Alice to sift two halves on two threads: the same reply and key as the
    /// naive ends, for a count of pulses that splits evenly and one that does not, with gaps of
    /// every varint length; and a fault is reported as a single pass reports it, the first in
    /// the message first (a missing pulse in either half, one in each, a malformed message).
    #[test]
    fn halves_on_two_threads_match_the_naive_ends() {
        let mut g = crate::maths::xoshiro::Xoshiro256::from_seed(5);
        for pulses in [3 * PARALLEL_PULSES, 2 * PARALLEL_PULSES + 77] {
            let (mut index, mut at) = (Vec::new(), 0u64);
            for _ in 0..pulses + pulses / 3 {
                let r = g.next_u64();
                at += 1 + match r % 100 {
                    0 => 20_000 + r % 5000,
                    1..=9 => 130 + r % 300,
                    _ => r % 60,
                };
                index.push(at);
            }
            let column = |g: &mut crate::maths::xoshiro::Xoshiro256, m: u64| -> Vec<u8> {
                index.iter().map(|_| (g.next_u64() % m) as u8).collect()
            };
            let (basis, bit, intensity) = (column(&mut g, 2), column(&mut g, 2), column(&mut g, 3));
            let alice = AliceRecords { index: &index, basis: &basis, bit: &bit, intensity: &intensity };
            let mut bob: Vec<usize> = (0..index.len()).filter(|_| !g.next_u64().is_multiple_of(4)).collect();
            bob.truncate(pulses);
            assert_eq!(bob.len(), pulses);
            let bob_index: Vec<u64> = bob.iter().map(|&i| index[i]).collect();
            let bob_basis: Vec<u8> = bob.iter().map(|_| (g.next_u64() % 2) as u8).collect();
            let bob_bit: Vec<u8> = bob.iter().map(|&i| bit[i] ^ u8::from(g.next_u64().is_multiple_of(50))).collect();
            let (reply, a, b) = naive(&alice, &bob_index, &bob_basis, &bob_bit);
            let message = announce(&bob_index, &bob_basis).unwrap();
            // The scan finds the second half where a number-by-number decoding does.
            let (_, numbers, _) = split(&message).unwrap();
            let cut = pulses / 2 / GROUP * GROUP;
            let (mut read, mut next) = (0, 0);
            for _ in 0..cut {
                pulse_number(numbers, &mut read, &mut next).unwrap();
            }
            assert_eq!(skip(numbers, cut), Some((read, next)));
            let (got_reply, got_a, n) = answer(&alice, &message).unwrap();
            assert_eq!((n, &got_reply), (pulses, &reply));
            assert_eq!(got_a, a);
            assert_eq!(conclude(&bob_basis, &bob_bit, &reply, 3).unwrap(), b);
            // Pulses Alice never sent (between two of hers), in the second half, in both.
            let missing = |at: usize| index[bob[at]] - 1 != index[bob[at] - 1];
            let late = (pulses * 3 / 4..pulses).find(|&i| missing(i)).expect("a gap");
            let early = (10..pulses / 4).find(|&i| missing(i)).expect("a gap");
            for (changed, named) in [(vec![late], late), (vec![early, late], early)] {
                let mut wrong = bob_index.clone();
                for &i in &changed {
                    wrong[i] -= 1;
                }
                let err = answer(&alice, &announce(&wrong, &bob_basis).unwrap()).unwrap_err();
                assert!(err.to_string().contains(&format!("pulse {}", wrong[named])), "{err}");
            }
            // A message cut short, one with a number too many (both in the second half's
            // reach), one whose varints end mid-number in the first half after a missing pulse.
            let mut short = message.clone();
            short.truncate(message.len() - bob_basis.len().div_ceil(8) - 1);
            short.extend_from_slice(&message[message.len() - bob_basis.len().div_ceil(8)..]);
            assert!(answer(&alice, &short).is_err());
            let mut wrong = bob_index.clone();
            wrong[early] -= 1;
            let mut bad = announce(&wrong, &bob_basis).unwrap();
            bad[16 + early + 40] |= 0x80;
            let err = answer(&alice, &bad).unwrap_err();
            assert!(err.to_string().contains(&format!("pulse {}", wrong[early])), "{err}");
        }
    }

    /// Alice holding every pulse sent (tens to a hundred times Bob's detections) finds each of
    /// Bob's pulses where it is, also when her numbers have holes.
    #[test]
    fn alice_holding_every_pulse() {
        for hole in [0u64, 7] {
            let index: Vec<u64> = (0..200_000u64).filter(|i| hole == 0 || i % hole != 3).collect();
            let basis: Vec<u8> = index.iter().map(|i| (i % 5 == 0) as u8).collect();
            let bit: Vec<u8> = index.iter().map(|i| (i * 13 % 7 % 2) as u8).collect();
            let intensity: Vec<u8> = index.iter().map(|i| (i % 3) as u8).collect();
            let alice = AliceRecords { index: &index, basis: &basis, bit: &bit, intensity: &intensity };
            let rows: Vec<usize> = (0..index.len()).filter(|i| i * 7919 % 97 < 3 || i % 1000 == 999).collect();
            let bob_index: Vec<u64> = rows.iter().map(|&i| index[i]).collect();
            let bob_basis: Vec<u8> = rows.iter().map(|&i| basis[i] ^ u8::from(i % 4 == 0)).collect();
            let bob_bit: Vec<u8> = rows.iter().map(|&i| bit[i]).collect();
            let (reply, a, _) = answer(&alice, &announce(&bob_index, &bob_basis).unwrap()).unwrap();
            let b = conclude(&bob_basis, &bob_bit, &reply, 3).unwrap();
            assert_eq!(a, b);
            let kept = rows.iter().filter(|&&i| i % 4 != 0).count();
            assert_eq!(a.key.len() + a.test.len(), kept);
            // A pulse in one of Alice's holes is refused by name.
            if hole != 0 {
                let err = answer(&alice, &announce(&[index[5], 3 + hole * 10], &[0, 0]).unwrap()).unwrap_err();
                assert!(err.to_string().contains(&format!("pulse {}", 3 + hole * 10)), "{err}");
            }
        }
    }

    /// Alice holding exactly Bob's pulses (whole groups read as slices), then one record more
    /// inside a group or before the first, then every pulse of a range (rows by offset): the
    /// naive ends' reply and keys each time; and a pulse Alice lacks in a group whose other
    /// pulses she holds in order is named.
    #[test]
    fn groups_alice_holds_in_order_match_the_naive_ends() {
        let mut g = crate::maths::xoshiro::Xoshiro256::from_seed(11);
        let bob_index: Vec<u64> = {
            let mut at = 5u64;
            (0..1000)
                .map(|_| {
                    at += 1 + g.next_u64() % 90;
                    at
                })
                .collect()
        };
        let bob_basis: Vec<u8> = bob_index.iter().map(|_| (g.next_u64() % 2) as u8).collect();
        let column = |g: &mut crate::maths::xoshiro::Xoshiro256, len: usize, m: u64| -> Vec<u8> {
            (0..len).map(|_| (g.next_u64() % m) as u8).collect()
        };
        let mut extra_inside = bob_index.clone();
        extra_inside.insert(100, bob_index[99] + 1);
        assert!(extra_inside[101] > extra_inside[100]);
        let mut extra_first = bob_index.clone();
        extra_first.insert(0, 1);
        let every: Vec<u64> = (0..=bob_index[999] + 3).collect();
        for index in [bob_index.clone(), extra_inside, extra_first, every] {
            let (basis, bit, intensity) =
                (column(&mut g, index.len(), 2), column(&mut g, index.len(), 2), column(&mut g, index.len(), 3));
            let alice = AliceRecords { index: &index, basis: &basis, bit: &bit, intensity: &intensity };
            let bob_bit: Vec<u8> = bob_index.iter().map(|_| (g.next_u64() % 2) as u8).collect();
            let (reply, a, b) = naive(&alice, &bob_index, &bob_basis, &bob_bit);
            let (got_reply, got_a, n) = answer(&alice, &announce(&bob_index, &bob_basis).unwrap()).unwrap();
            assert_eq!((n, &got_reply), (bob_index.len(), &reply));
            assert_eq!(got_a, a);
            assert_eq!(conclude(&bob_basis, &bob_bit, &reply, 3).unwrap(), b);
        }
        // Bob's pulse 130 moved into the gap before it: the second group's other pulses are
        // Alice's rows in order, that one is not hers.
        let alice_index = bob_index.clone();
        let (basis, bit, intensity) = (column(&mut g, 1000, 2), column(&mut g, 1000, 2), column(&mut g, 1000, 3));
        let alice = AliceRecords { index: &alice_index, basis: &basis, bit: &bit, intensity: &intensity };
        let gap = (129..1000).find(|&i| bob_index[i] - bob_index[i - 1] > 1).expect("a gap");
        let mut wrong = bob_index.clone();
        wrong[gap] -= 1;
        let err = answer(&alice, &announce(&wrong, &bob_basis).unwrap()).unwrap_err();
        assert!(err.to_string().contains(&format!("pulse {}", wrong[gap])), "{err}");
    }

    /// Replies that differ from a valid one in the labels' length, a label's value or the
    /// padding, and records out of range, are refused.
    #[test]
    fn malformed_labels_and_records_are_refused() {
        let index: Vec<u64> = (0..10).collect();
        let basis = vec![0u8; 10];
        let bit = vec![1u8; 10];
        let intensity = vec![2u8; 10];
        let alice = AliceRecords { index: &index, basis: &basis, bit: &bit, intensity: &intensity };
        let message = announce(&index, &basis).unwrap();
        let (reply, _, _) = answer(&alice, &message).unwrap();
        // Two bytes of bases, then ten labels of 2 (0b10) in three bytes, four bits of padding.
        assert_eq!(reply, vec![0, 0, 0b1010_1010, 0b1010_1010, 0b1010_0000]);
        assert!(conclude(&basis, &bit, &reply, 3).is_ok());
        let mut padded = reply.clone();
        padded[4] |= 1;
        assert!(conclude(&basis, &bit, &padded, 3).is_err());
        let mut label3 = reply.clone();
        label3[2] |= 0b0100_0000;
        assert!(conclude(&basis, &bit, &label3, 3).is_err());
        assert!(conclude(&basis, &bit, &reply[..4], 3).is_err());
        let mut longer = reply.clone();
        longer.push(0);
        assert!(conclude(&basis, &bit, &longer, 3).is_err());
        assert!(conclude(&[2; 10], &bit, &reply, 3).is_err());
        let wide = vec![4u8; 10];
        let bad_label = AliceRecords { index: &index, basis: &basis, bit: &bit, intensity: &wide };
        assert!(answer(&bad_label, &message).is_err());
        let bad_basis_column = vec![2u8; 10];
        let bad_basis = AliceRecords { index: &index, basis: &bad_basis_column, bit: &bit, intensity: &intensity };
        assert!(answer(&bad_basis, &message).is_err());
    }

    #[test]
    fn bad_input_is_refused() {
        assert!(encode_indices(&[3, 3]).is_err());
        assert!(decode_indices(&[0x80]).is_err());
        assert!(decode_indices(&[0xff; 11]).is_err());
        assert_eq!(encode_indices(&[0, 1, 300]).unwrap(), vec![0, 0, 0xaa, 0x02]);
    }
}

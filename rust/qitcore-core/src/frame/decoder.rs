//! The resynchronising frame decoder (PROTOCOL.md §1.3–1.4). Bytes arrive in arbitrary pieces;
//! frames come out whole, CRC-checked, with every sequence gap reported. A failed check discards
//! one byte and scans on, so a corrupted length field delays later frames but never swallows them,
//! and no byte of a frame that failed its check is ever handed on.
//!
//! A frame whose sequence number does not advance past the last accepted one (PROTOCOL.md §1.3a:
//! equal to it, or up to 2^31 behind, modulo 2^32) is a replay: it is reported and counted, and
//! its payload is never handed on, so a repeated or reordered frame can never deliver the same
//! samples twice.

use super::{crc32c, HEADER_LEN, MAGIC, MAX_PAYLOAD, OVERHEAD, VERSION};

/// What the decoder found, in stream order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A valid frame of this protocol version.
    Frame { kind: u8, sequence: u32, payload: &'a [u8] },
    /// The frame just before the next [`Event::Frame`] was numbered `received`, not `expected`.
    /// `lost` frames went missing (at least 1).
    Gap { expected: u32, received: u32, lost: u32 },
    /// A valid frame numbered `received` did not advance past `last`, the last frame accepted: a
    /// replay (a duplicate, or a frame from the past). Its payload is withheld, no
    /// [`Event::Frame`] follows, and the expected number stays `last + 1`.
    Replay { last: u32, received: u32 },
    /// A frame with a valid CRC but another protocol version: the peer speaks another protocol.
    Version { version: u8 },
}

/// Running counts of everything the decoder has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "python",
    pyo3::pyclass(frozen, get_all, eq, module = "qitcore.protocol"),
    derive(serde::Serialize, serde::Deserialize)
)]
pub struct DecoderStats {
    /// Bytes fed in.
    pub bytes: u64,
    /// Valid frames accepted (handed on as [`Event::Frame`]).
    pub frames: u64,
    /// Candidate frames (magic and a sane length) whose CRC failed.
    pub crc_errors: u64,
    /// Bytes discarded outside valid frames (garbage, and the bytes of frames that failed).
    pub garbage_bytes: u64,
    /// Sequence gaps.
    pub gaps: u64,
    /// Frames missing according to the sequence numbers.
    pub frames_lost: u64,
    /// Valid frames withheld because their sequence number did not advance.
    pub replays: u64,
}

/// A QDP/1 frame decoder.
#[derive(Debug, Default)]
pub struct Decoder {
    pending: Vec<u8>,
    /// The number the next frame should carry: one past the last accepted frame's.
    expected: Option<u32>,
    stats: DecoderStats,
}

/// Outcome of looking for a frame at a position.
enum Probe {
    /// A valid frame of this many bytes.
    Frame(usize),
    /// Not a frame: discard one byte.
    Reject { crc: bool },
    /// Could be a frame once more bytes arrive.
    Incomplete,
}

fn probe(data: &[u8]) -> Probe {
    if data.len() < 2 {
        return if data.len() == 1 && data[0] == MAGIC[0] { Probe::Incomplete } else { Probe::Reject { crc: false } };
    }
    if data[..2] != MAGIC {
        return Probe::Reject { crc: false };
    }
    if data.len() < HEADER_LEN {
        return Probe::Incomplete;
    }
    let len = usize::from(u16::from_le_bytes([data[8], data[9]]));
    if len > MAX_PAYLOAD {
        return Probe::Reject { crc: false };
    }
    let total = OVERHEAD + len;
    if data.len() < total {
        return Probe::Incomplete;
    }
    let stored = u32::from_le_bytes(data[total - 4..total].try_into().expect("four bytes"));
    if crc32c::crc32c(&data[2..total - 4]) == stored {
        Probe::Frame(total)
    } else {
        Probe::Reject { crc: true }
    }
}

/// Where a frame's sequence number stands against the expected one (PROTOCOL.md §1.3a).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Advance {
    /// Exactly the expected number.
    Next,
    /// Ahead of it by this many (1 to 2^31 − 1) lost frames.
    Gap(u32),
    /// At or behind the last accepted number (up to 2^31 behind the expected one): a replay.
    Replay,
}

impl Advance {
    /// The window rule: the 2^32 numbers split in half around the expected one, modulo 2^32.
    /// The half from `expected` on is the future (the distance counts the frames lost), the
    /// half before it, which ends with the last accepted number, is the past.
    pub fn of(expected: u32, received: u32) -> Advance {
        match received.wrapping_sub(expected) {
            0 => Advance::Next,
            ahead if ahead < 1 << 31 => Advance::Gap(ahead),
            _ => Advance::Replay,
        }
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts so far.
    pub fn stats(&self) -> DecoderStats {
        self.stats
    }

    /// Bytes held back as the possible start of a frame.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Forgets the expected sequence number (after reopening a device): the next frame sets it.
    pub fn resync_sequence(&mut self) {
        self.expected = None;
    }

    /// Feeds `input`, calling `sink` for each event in stream order.
    pub fn feed(&mut self, input: &[u8], mut sink: impl FnMut(Event<'_>)) {
        self.stats.bytes += input.len() as u64;
        if self.pending.is_empty() {
            let used = self.scan(input, &mut sink);
            self.pending.extend_from_slice(&input[used..]);
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(input);
            let used = self.scan(&pending, &mut sink);
            pending.drain(..used);
            self.pending = pending;
        }
    }

    /// Ends the stream (a capture file's end): the bytes held back can no longer complete the
    /// frame their first candidate announced, so that candidate is discarded like one that failed
    /// its check and the scan goes on through the rest, recovering the frames after a header whose
    /// length field promised more bytes than came. The decoder is empty afterwards.
    pub fn finish(&mut self, mut sink: impl FnMut(Event<'_>)) {
        let pending = std::mem::take(&mut self.pending);
        let mut at = 0;
        while at < pending.len() {
            at += self.scan(&pending[at..], &mut sink);
            if at < pending.len() {
                let next = pending[at + 1..].iter().position(|&b| b == MAGIC[0]).map_or(pending.len(), |p| at + 1 + p);
                self.stats.garbage_bytes += (next - at) as u64;
                at = next;
            }
        }
    }

    /// Decodes frames from `data`; returns how many bytes are done with (the rest may begin a
    /// frame).
    fn scan(&mut self, data: &[u8], sink: &mut impl FnMut(Event<'_>)) -> usize {
        let mut at = 0usize;
        while at < data.len() {
            match probe(&data[at..]) {
                Probe::Frame(total) => {
                    self.emit(&data[at..at + total], sink);
                    at += total;
                }
                Probe::Incomplete => break,
                Probe::Reject { crc } => {
                    self.stats.crc_errors += u64::from(crc);
                    // Skip to the next possible magic byte.
                    let next = data[at + 1..].iter().position(|&b| b == MAGIC[0]).map_or(data.len(), |p| at + 1 + p);
                    self.stats.garbage_bytes += (next - at) as u64;
                    at = next;
                }
            }
        }
        at
    }

    fn emit(&mut self, frame: &[u8], sink: &mut impl FnMut(Event<'_>)) {
        let version = frame[2];
        if version != VERSION {
            sink(Event::Version { version });
            return;
        }
        let sequence = u32::from_le_bytes(frame[4..8].try_into().expect("four bytes"));
        if let Some(expected) = self.expected {
            match Advance::of(expected, sequence) {
                Advance::Next => {}
                Advance::Gap(lost) => {
                    self.stats.gaps += 1;
                    self.stats.frames_lost += u64::from(lost);
                    sink(Event::Gap { expected, received: sequence, lost });
                }
                Advance::Replay => {
                    // The expectation stays: the frames after a replay are judged against the
                    // last frame really accepted, so a burst of old frames cannot move it.
                    self.stats.replays += 1;
                    sink(Event::Replay { last: expected.wrapping_sub(1), received: sequence });
                    return;
                }
            }
        }
        self.stats.frames += 1;
        self.expected = Some(sequence.wrapping_add(1));
        sink(Event::Frame { kind: frame[3], sequence, payload: &frame[HEADER_LEN..frame.len() - 4] });
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::frame::encode;

    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Owned {
        Frame(u8, u32, Vec<u8>),
        Gap(u32, u32, u32),
        Replay(u32, u32),
        Version(u8),
    }

    fn decode_in_pieces(stream: &[u8], pieces: &[usize]) -> (Vec<Owned>, DecoderStats) {
        decode(stream, pieces, false)
    }

    /// As [`decode_in_pieces`], then the end of the stream ([`Decoder::finish`]).
    fn decode_finished(stream: &[u8], pieces: &[usize]) -> (Vec<Owned>, DecoderStats) {
        decode(stream, pieces, true)
    }

    fn decode(stream: &[u8], pieces: &[usize], finish: bool) -> (Vec<Owned>, DecoderStats) {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let mut at = 0;
        let mut sink = |e: Event<'_>| {
            out.push(match e {
                Event::Frame { kind, sequence, payload } => Owned::Frame(kind, sequence, payload.to_vec()),
                Event::Gap { expected, received, lost } => Owned::Gap(expected, received, lost),
                Event::Replay { last, received } => Owned::Replay(last, received),
                Event::Version { version } => Owned::Version(version),
            })
        };
        for &p in pieces.iter().cycle() {
            if at >= stream.len() {
                break;
            }
            let end = (at + p.max(1)).min(stream.len());
            d.feed(&stream[at..end], &mut sink);
            at = end;
        }
        if finish {
            d.finish(&mut sink);
            assert_eq!(d.buffered(), 0);
        }
        (out, d.stats())
    }

    fn frames(specs: &[(u8, u32, Vec<u8>)]) -> Vec<u8> {
        let mut s = Vec::new();
        for (k, q, p) in specs {
            encode(*k, *q, p, &mut s).unwrap();
        }
        s
    }

    #[test]
    fn garbage_between_frames_is_skipped_and_counted() {
        let mut s = b"\xA5\x00junk\xA5".to_vec();
        s.extend(frames(&[(1, 0, b"abc".to_vec())]));
        s.extend_from_slice(b"\xA5\x51more junk");
        s.extend(frames(&[(2, 1, vec![])]));
        let (events, stats) = decode_in_pieces(&s, &[1000]);
        assert_eq!(events, vec![Owned::Frame(1, 0, b"abc".to_vec()), Owned::Frame(2, 1, vec![])]);
        assert_eq!(stats.garbage_bytes, 7 + 11);
        assert_eq!(stats.frames, 2);
    }

    #[test]
    fn a_corrupted_byte_loses_one_frame_and_reports_the_gap() {
        let specs: Vec<(u8, u32, Vec<u8>)> = (0..5).map(|i| (1u8, i as u32, vec![i as u8; 50])).collect();
        let mut s = frames(&specs);
        s[64 + 30] ^= 0x40; // inside frame 1's payload
        let (events, stats) = decode_in_pieces(&s, &[7]);
        assert_eq!(stats.crc_errors, 1);
        assert_eq!(stats.frames, 4);
        assert_eq!(events[1], Owned::Gap(1, 2, 1));
        assert_eq!(stats.frames_lost, 1);
    }

    #[test]
    fn a_corrupted_length_delays_but_does_not_swallow() {
        let specs: Vec<(u8, u32, Vec<u8>)> = (0..4).map(|i| (1u8, i as u32, vec![7; 20])).collect();
        let mut s = frames(&specs);
        s[8] = 0xff; // frame 0 claims 255 + 20*256 bytes... still under the maximum
        s[9] = 0x1f;
        let (events, stats) = decode_in_pieces(&s, &[3]);
        // Frame 0 is lost; frames 1-3 only come out once the stream is long enough to reject it,
        // which it never is here: they stay buffered, nothing wrong is emitted.
        assert!(events.iter().all(|e| matches!(e, Owned::Frame(_, q, _) if *q > 0) || matches!(e, Owned::Gap(..))));
        assert_eq!(stats.crc_errors, 0);
        // More traffic pushes the decision through.
        let mut longer = s.clone();
        longer.extend(frames(&(4..400).map(|i| (1u8, i as u32, vec![7; 20])).collect::<Vec<_>>()));
        let (events, stats) = decode_in_pieces(&longer, &[64]);
        assert_eq!(stats.crc_errors, 1);
        assert_eq!(stats.frames, 399);
        assert_eq!(events[0], Owned::Frame(1, 1, vec![7; 20]));
    }

    #[test]
    fn the_end_of_the_stream_releases_frames_held_behind_a_lying_length() {
        // A header promising 256 payload bytes, then two frames: 42 bytes, never enough.
        let mut s = vec![0xA5, 0x51, 1, 1, 0, 0, 0, 0, 0, 1];
        s.extend(frames(&[(1, 0, b"ab".to_vec()), (1, 1, vec![])]));
        let (events, _) = decode_in_pieces(&s, &[7]);
        assert!(events.is_empty());
        let (events, stats) = decode_finished(&s, &[7]);
        assert_eq!(events, vec![Owned::Frame(1, 0, b"ab".to_vec()), Owned::Frame(1, 1, vec![])]);
        assert_eq!((stats.garbage_bytes, stats.crc_errors), (10, 0));
        // A stream that ends inside a frame loses only that frame.
        let (events, stats) = decode_finished(&s[..s.len() - 3], &[1000]);
        assert_eq!(events, vec![Owned::Frame(1, 0, b"ab".to_vec())]);
        assert_eq!(stats.garbage_bytes, 10 + 11);
    }

    #[test]
    fn sequence_wraps_are_not_gaps_and_numbers_that_do_not_advance_are_replays() {
        let s = frames(&[
            (1, u32::MAX, vec![1]),
            (1, 0, vec![2]),
            (1, 0, vec![3]),
            (1, u32::MAX, vec![4]),
            (1, 1, vec![5]),
        ]);
        let (events, stats) = decode_in_pieces(&s, &[5]);
        assert_eq!(
            events,
            vec![
                Owned::Frame(1, u32::MAX, vec![1]),
                Owned::Frame(1, 0, vec![2]),
                Owned::Replay(0, 0),
                Owned::Replay(0, u32::MAX),
                Owned::Frame(1, 1, vec![5]),
            ]
        );
        assert_eq!((stats.frames, stats.replays, stats.gaps, stats.frames_lost), (3, 2, 0, 0));
    }

    #[test]
    fn the_window_splits_the_numbers_in_half_around_the_expected_one() {
        for expected in [0u32, 1, 1 << 31, u32::MAX - 3, u32::MAX] {
            assert_eq!(Advance::of(expected, expected), Advance::Next);
            assert_eq!(Advance::of(expected, expected.wrapping_add(5)), Advance::Gap(5));
            assert_eq!(Advance::of(expected, expected.wrapping_add((1 << 31) - 1)), Advance::Gap((1 << 31) - 1));
            assert_eq!(Advance::of(expected, expected.wrapping_add(1 << 31)), Advance::Replay);
            assert_eq!(Advance::of(expected, expected.wrapping_sub(1)), Advance::Replay);
            assert_eq!(Advance::of(expected, expected.wrapping_sub(1000)), Advance::Replay);
        }
    }

    #[test]
    fn a_frame_repeated_many_times_is_used_once() {
        let mut s = frames(&[(1, 7, b"first".to_vec())]);
        let one = frames(&[(1, 8, b"again".to_vec())]);
        for _ in 0..300 {
            s.extend_from_slice(&one);
        }
        s.extend(frames(&[(1, 9, b"next".to_vec())]));
        let (events, stats) = decode_in_pieces(&s, &[13]);
        let used: Vec<&Owned> = events.iter().filter(|e| matches!(e, Owned::Frame(..))).collect();
        assert_eq!(used.len(), 3);
        assert_eq!((stats.frames, stats.replays, stats.gaps), (3, 299, 0));
        assert!(events.iter().all(|e| !matches!(e, Owned::Gap(..))));
    }

    #[test]
    fn another_version_is_reported() {
        let mut s = frames(&[(1, 0, vec![1])]);
        s[2] = 2;
        let crc = crc32c::crc32c(&s[2..s.len() - 4]);
        let n = s.len();
        s[n - 4..].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_in_pieces(&s, &[100]).0, vec![Owned::Version(2)]);
    }

    proptest! {
        #[test]
        fn any_split_gives_the_same_events(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 1..20),
            garbage in prop::collection::vec(any::<u8>(), 0..50),
            pieces in prop::collection::vec(1usize..40, 1..10),
        ) {
            let mut s = garbage.clone();
            let specs: Vec<(u8, u32, Vec<u8>)> = payloads.iter().enumerate().map(|(i, p)| (1u8, i as u32, p.clone())).collect();
            s.extend(frames(&specs));
            let (whole, _) = decode_finished(&s, &[s.len()]);
            let (split, _) = decode_finished(&s, &pieces);
            prop_assert_eq!(&whole, &split);
            // Every frame survives garbage in front (which cannot hold a valid frame by chance
            // except with probability 2^-32), even a header in it whose length field promises
            // more bytes than the stream holds, once the stream has ended.
            let got: Vec<Owned> = whole.into_iter().filter(|e| matches!(e, Owned::Frame(..))).collect();
            prop_assert_eq!(got.len(), specs.len());
        }

        /// Frames sent once each, then delivered with replays of earlier frames inserted at random
        /// points, neighbours swapped and frames dropped, starting anywhere in the numbering (so
        /// across the wrap): the payloads handed on are always a subsequence of those sent, in
        /// order, none twice; with only replays added, exactly those sent.
        #[test]
        fn replays_reorders_and_duplicates_never_change_the_samples_used(
            count in 1usize..60,
            first in any::<u32>(),
            replays in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..40),
            swaps in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            drops in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
            pieces in prop::collection::vec(1usize..300, 1..5),
        ) {
            // Payloads carry their frame's index, so each is distinct.
            let sent: Vec<(u8, u32, Vec<u8>)> =
                (0..count).map(|i| (1u8, first.wrapping_add(i as u32), (i as u32).to_le_bytes().to_vec())).collect();
            // Replays only: a copy of an already delivered frame before position `at`.
            let mut order: Vec<usize> = (0..count).collect();
            for (at, which) in &replays {
                let at = 1 + at.index(order.len());
                let copy = order[which.index(at)];
                order.insert(at, copy);
            }
            let used = |order: &[usize]| {
                let specs: Vec<(u8, u32, Vec<u8>)> = order.iter().map(|&i| sent[i].clone()).collect();
                let (events, stats) = decode_in_pieces(&frames(&specs), &pieces);
                let payloads: Vec<Vec<u8>> = events
                    .into_iter()
                    .filter_map(|e| if let Owned::Frame(_, _, p) = e { Some(p) } else { None })
                    .collect();
                (payloads, stats)
            };
            let (payloads, stats) = used(&order);
            let all: Vec<Vec<u8>> = sent.iter().map(|f| f.2.clone()).collect();
            prop_assert_eq!(&payloads, &all);
            prop_assert_eq!(stats.replays as usize, order.len() - count);
            prop_assert_eq!((stats.gaps, stats.frames_lost), (0, 0));
            // Then reorders and losses on top.
            for s in &swaps {
                let i = s.index(order.len());
                if i + 1 < order.len() {
                    order.swap(i, i + 1);
                }
            }
            for d in &drops {
                if order.len() > 1 {
                    order.remove(d.index(order.len()));
                }
            }
            let (payloads, stats) = used(&order);
            prop_assert_eq!(stats.frames as usize + stats.replays as usize, order.len());
            let mut next = 0;
            for p in &payloads {
                // In order and each at most once: strictly increasing indices into `sent`.
                let index = u32::from_le_bytes(p[..4].try_into().unwrap()) as usize;
                prop_assert!(index >= next, "payload {} after {}", index, next);
                next = index + 1;
            }
        }

        #[test]
        fn random_and_mutated_streams_never_yield_a_corrupted_frame(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 1..12),
            flips in prop::collection::vec((any::<usize>(), 1u8..=255), 0..6),
            pieces in prop::collection::vec(1usize..64, 1..6),
        ) {
            let specs: Vec<(u8, u32, Vec<u8>)> = payloads.iter().enumerate().map(|(i, p)| (1u8, i as u32, p.clone())).collect();
            let mut s = frames(&specs);
            for (at, x) in &flips {
                let n = s.len();
                s[at % n] ^= x;
            }
            let (events, stats) = decode_in_pieces(&s, &pieces);
            for e in &events {
                if let Owned::Frame(_, q, p) = e {
                    // Whatever comes out is exactly a frame that was sent.
                    prop_assert!(specs.iter().any(|(_, sq, sp)| sq == q && sp == p));
                }
            }
            if flips.is_empty() {
                prop_assert_eq!(stats.frames as usize, specs.len());
            }
        }
    }
}

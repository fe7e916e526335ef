//! The golden vectors of `firmware_interface/golden_vectors.txt`, checked against this crate's
//! encoder, decoder and payload parsers (the C reference checks the same file).

use super::messages::{command, Info, Reply, Status};
use super::{crc32c::crc32c, encode, frame_type, Decoder, Event};

fn vectors() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../firmware_interface/golden_vectors.txt");
    std::fs::read_to_string(path).expect("golden_vectors.txt is part of the repository")
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

fn field(rest: &[&str], key: &str) -> u64 {
    rest.iter().find_map(|kv| kv.strip_prefix(key)).expect("field present").parse().expect("number")
}

/// A decoded frame: type, sequence number, payload.
type Frame = (u8, u32, Vec<u8>);

/// Decodes `bytes` whole; returns the frames, the frames lost at each gap, and the decoder.
fn decode(bytes: &[u8]) -> (Vec<Frame>, Vec<u32>, Decoder) {
    let mut d = Decoder::new();
    let (mut frames, mut lost) = (Vec::new(), Vec::new());
    d.feed(bytes, |e| match e {
        Event::Frame { kind, sequence, payload } => frames.push((kind, sequence, payload.to_vec())),
        Event::Gap { lost: l, .. } => lost.push(l),
        Event::Replay { .. } => panic!("golden streams hold no replays"),
        Event::Version { .. } => panic!("golden frames are version 1"),
    });
    (frames, lost, d)
}

#[test]
fn golden_vectors_hold() {
    let text = vectors();
    let mut counts = [0usize; 4];
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let t: Vec<&str> = line.split(' ').collect();
        match t[0] {
            "crc" => {
                assert_eq!(crc32c(&unhex(t[1])), u32::from_str_radix(t[2], 16).unwrap(), "{line}");
                counts[0] += 1;
            }
            "frame" => {
                let (kind, seq) = (u8::from_str_radix(t[2], 16).unwrap(), u32::from_str_radix(t[3], 16).unwrap());
                let (payload, frame) = (unhex(t[4]), unhex(t[5]));
                let mut out = Vec::new();
                encode(kind, seq, &payload, &mut out).unwrap();
                assert_eq!(out, frame, "{}", t[1]);
                let (frames, _, _) = decode(&frame);
                assert_eq!(frames, vec![(kind, seq, payload.clone())], "{}", t[1]);
                if kind == frame_type::STATUS {
                    assert_eq!(Status::parse(&payload).unwrap().to_bytes(), payload, "{}", t[1]);
                }
                counts[1] += 1;
            }
            "stream" => {
                let (frames, lost, d) = decode(&unhex(t[2]));
                let s = d.stats();
                assert_eq!(frames.len() as u64, field(&t[3..], "frames="), "{}", t[1]);
                assert_eq!(s.crc_errors, field(&t[3..], "crc_errors="), "{}", t[1]);
                assert_eq!(s.garbage_bytes, field(&t[3..], "garbage="), "{}", t[1]);
                assert_eq!(s.gaps, field(&t[3..], "gaps="), "{}", t[1]);
                assert_eq!(lost.iter().map(|&l| u64::from(l)).sum::<u64>(), field(&t[3..], "lost="), "{}", t[1]);
                counts[2] += 1;
            }
            "session" => {
                // What the host sees of each exchange: the device's frame parses.
                let expect = unhex(t[5]);
                let (frames, _, _) = decode(&expect);
                assert_eq!(frames.len(), usize::from(!expect.is_empty()), "{}", t[1]);
                for (kind, _, payload) in frames {
                    if kind == frame_type::REPLY {
                        let r = Reply::parse(&payload).unwrap();
                        match (r.code, r.result) {
                            (command::INFO, 0) => {
                                let info = Info::parse(&r.data).unwrap();
                                assert_eq!((info.vendor.as_str(), info.model.as_str()), ("qitcore", "QDP reference"));
                                assert_eq!(info.to_bytes(), r.data);
                            }
                            (command::STATUS, 0) => assert_eq!(Status::parse(&r.data).unwrap().to_bytes(), r.data),
                            _ => {}
                        }
                    }
                }
                counts[3] += 1;
            }
            other => panic!("unknown vector kind {other}"),
        }
    }
    assert!(counts.iter().all(|&c| c >= 2), "{counts:?}");
}

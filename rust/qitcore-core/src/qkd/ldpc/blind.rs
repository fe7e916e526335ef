//! Alice's and Bob's sides of blind reconciliation (Martinez-Mateo, Elkouss, Martin, QIC 12, 2012):
//! Alice sends every frame's syndrome in one message; Bob decodes, and for the frames that fail
//! asks for the values of the next punctured symbols (which become shortened, lowering the rate),
//! at most twice: three round trips in all.
//!
//! Wire formats (little-endian):
//! - syndromes: per frame, its m syndrome bits packed, bit `i` at bit `i % 8` of byte `i / 8`;
//! - request: per failed frame, `u32` frame index and `u32` count of punctured values wanted,
//!   frames strictly increasing;
//! - reveal: the requested values in request order, packed like the syndromes.

use std::sync::atomic::{AtomicBool, Ordering};

use zeroize::{Zeroize, Zeroizing};

use super::adapt::{Plan, MAX_ATTEMPTS};
use super::decode::{channel_llr, decode_all_until, Job, Settings, KNOWN};
use super::syndrome::syndrome_into;
use super::unstopped;
use crate::error::{Error, Result};

fn pack(bits: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, &b) in bits.iter().enumerate() {
        out[i / 8] |= (b & 1) << (i % 8);
    }
    out
}

fn unpack(bytes: &[u8], len: usize) -> Vec<u8> {
    (0..len).map(|i| bytes[i / 8] >> (i % 8) & 1).collect()
}

/// A parsed blind request of round `round` (0 or 1): (frame, count) pairs, each count the plan's
/// for that round (its `reveal_steps`, as far as the frame's punctured values go). The count is
/// fixed so that a peer cannot make Alice disclose more than the plan says.
fn parse_request(plan: &Plan, revealed: &[usize], round: usize, request: &[u8]) -> Result<Vec<(usize, usize)>> {
    if request.is_empty() || !request.len().is_multiple_of(8) {
        return Err(Error::peer(format!("blind request of {} bytes", request.len())));
    }
    let mut out = Vec::with_capacity(request.len() / 8);
    let mut last: Option<usize> = None;
    for entry in request.chunks_exact(8) {
        let frame = u32::from_le_bytes(entry[..4].try_into().expect("4 bytes")) as usize;
        let count = u32::from_le_bytes(entry[4..].try_into().expect("4 bytes")) as usize;
        if frame >= plan.frames || last.is_some_and(|l| frame <= l) {
            return Err(Error::peer(format!("blind request names frame {frame} out of order or range")));
        }
        let planned = plan.reveal_steps[round].min(plan.punctured - revealed[frame]);
        if count == 0 || count != planned {
            return Err(Error::peer(format!(
                "blind request for {count} punctured values of frame {frame}, where the plan reveals {planned}"
            )));
        }
        last = Some(frame);
        out.push((frame, count));
    }
    Ok(out)
}

/// Frame `f`'s word: key bits at the key positions, `punctured` at the punctured positions, 0 at
/// the shortened ones (and at the key positions past the last frame's key).
fn frame_word(plan: &Plan, key: &[u8], f: usize, punctured: &[u8], word: &mut [u8]) {
    word.fill(0);
    let start = f * plan.key_per_frame;
    for (&at, &b) in plan.key_at.iter().zip(&key[start..start + plan.frame_key(f)]) {
        word[at as usize] = b;
    }
    for (&at, &b) in plan.punctured_at.iter().zip(punctured) {
        word[at as usize] = b;
    }
}

/// Alice: holds her key and her frames' private punctured values.
pub struct Encoder {
    plan: Plan,
    key: Zeroizing<Vec<u8>>,
    punctured: Zeroizing<Vec<u8>>,
    revealed: Vec<usize>,
    rounds: u32,
    disclosed: u64,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").field("frames", &self.plan.frames).finish_non_exhaustive()
    }
}

impl Encoder {
    /// Alice's side for `key` (one byte per bit, `plan.n_key` of them), the punctured values drawn
    /// from the operating system's CSPRNG.
    pub fn new(plan: Plan, key: &[u8]) -> Result<Encoder> {
        // Checked before the punctured values are drawn: their count follows from the plan alone.
        if key.len() != plan.n_key {
            return Err(Error::length("key", format!("expected {} bits, got {}", plan.n_key, key.len())));
        }
        let random = crate::secret::SecretBytes::random((plan.frames * plan.punctured).div_ceil(8))?;
        let punctured = Zeroizing::new(unpack(random.expose(), plan.frames * plan.punctured));
        Encoder::with_punctured(plan, key, punctured)
    }

    /// As [`Encoder::new`] with given punctured values (tests).
    pub fn with_punctured(plan: Plan, key: &[u8], punctured: Zeroizing<Vec<u8>>) -> Result<Encoder> {
        if key.len() != plan.n_key {
            return Err(Error::length("key", format!("expected {} bits, got {}", plan.n_key, key.len())));
        }
        let key = Zeroizing::new(key[..plan.used_bits()].to_vec());
        let revealed = vec![0; plan.frames];
        let disclosed = plan.frames as u64 * plan.frame_disclosed(0);
        Ok(Encoder { plan, key, punctured, revealed, rounds: 0, disclosed })
    }

    /// Every frame's packed syndrome: the one message Alice sends first.
    pub fn syndromes(&self) -> Vec<u8> {
        use rayon::prelude::*;
        let plan = &self.plan;
        let (n, m, p) = (plan.code.n(), plan.code.m(), plan.punctured);
        let bytes = m.div_ceil(8);
        let mut out = vec![0u8; plan.frames * bytes];
        out.par_chunks_mut(bytes).enumerate().for_each_init(
            || (Zeroizing::new(vec![0u8; n]), vec![0u8; m]),
            |(word, syn), (f, chunk)| {
                frame_word(plan, &self.key, f, &self.punctured[f * p..(f + 1) * p], word);
                syndrome_into(plan.code, word, syn);
                chunk.copy_from_slice(&pack(syn));
            },
        );
        out
    }

    /// The values of the punctured symbols `request` asks for; refused ([`Error::Peer`]) when it is
    /// malformed, names a frame out of range or twice, asks for another count than the plan's
    /// for the round, or comes after the last blind round.
    pub fn reveal(&mut self, request: &[u8]) -> Result<Vec<u8>> {
        if self.rounds + 1 >= MAX_ATTEMPTS {
            return Err(Error::peer("blind request after the last round"));
        }
        let wanted = parse_request(&self.plan, &self.revealed, self.rounds as usize, request)?;
        let p = self.plan.punctured;
        let mut bits = Zeroizing::new(Vec::new());
        for &(f, count) in &wanted {
            let from = f * p + self.revealed[f];
            bits.extend_from_slice(&self.punctured[from..from + count]);
            self.revealed[f] += count;
            self.disclosed += count as u64;
        }
        self.rounds += 1;
        Ok(pack(&bits))
    }

    /// Bits disclosed so far (syndromes less the punctured columns' rank, plus revealed values).
    pub fn disclosed(&self) -> u64 {
        self.disclosed
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }
}

/// Bob: decodes his key against Alice's syndromes, asking for punctured values when frames fail.
pub struct Decoder {
    plan: Plan,
    key: Zeroizing<Vec<u8>>,
    llr: i16,
    settings: Settings,
    syndromes: Vec<u8>,
    /// Revealed punctured values per frame (in reveal order).
    known: Vec<Vec<u8>>,
    /// Corrected key bits of the frames decoded so far.
    words: Vec<Option<Zeroizing<Vec<u8>>>>,
    pending: Vec<(usize, usize)>,
    attempts: u32,
    disclosed: u64,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").field("frames", &self.plan.frames).finish_non_exhaustive()
    }
}

impl Decoder {
    /// Bob's side for `key` (one byte per bit, `plan.n_key` of them) over a BSC of crossover `qber`.
    pub fn new(plan: Plan, key: &[u8], qber: f64, settings: Settings) -> Result<Decoder> {
        if key.len() != plan.n_key {
            return Err(Error::length("key", format!("expected {} bits, got {}", plan.n_key, key.len())));
        }
        if !(qber > 0.0 && qber < 0.5) {
            return Err(Error::argument("qber", format!("expected a QBER in (0, 0.5), got {qber}")));
        }
        let key = Zeroizing::new(key[..plan.used_bits()].to_vec());
        let frames = plan.frames;
        Ok(Decoder {
            llr: channel_llr(qber),
            settings,
            syndromes: Vec::new(),
            known: vec![Vec::new(); frames],
            words: (0..frames).map(|_| None).collect(),
            pending: Vec::new(),
            attempts: 0,
            disclosed: frames as u64 * plan.frame_disclosed(0),
            key,
            plan,
        })
    }

    /// Decodes every frame against Alice's syndromes; `Some(request)` for the frames that failed
    /// (the first blind round), `None` when all decoded.
    pub fn decode(&mut self, syndromes: &[u8]) -> Result<Option<Vec<u8>>> {
        unstopped(|stop| self.decode_until(syndromes, stop))
    }

    /// As [`Decoder::decode`], given up soon after `stop` is set: then `None`, and the decoder is
    /// as it was before the call (a later call decodes from the start).
    pub fn decode_until(&mut self, syndromes: &[u8], stop: &AtomicBool) -> Result<Option<Option<Vec<u8>>>> {
        if self.attempts != 0 {
            return Err(Error::peer("syndromes received twice"));
        }
        if syndromes.len() != self.plan.syndrome_bytes() {
            return Err(Error::peer(format!(
                "syndromes of {} bytes, expected {}",
                syndromes.len(),
                self.plan.syndrome_bytes()
            )));
        }
        let (m, bytes) = (self.plan.code.m(), self.plan.code.m().div_ceil(8));
        self.syndromes = syndromes.chunks_exact(bytes).flat_map(|c| unpack(c, m)).collect();
        let all: Vec<usize> = (0..self.plan.frames).collect();
        if !self.attempt(&all, stop) {
            self.syndromes = Vec::new();
            return Ok(None);
        }
        Ok(Some(self.request()))
    }

    /// Takes Alice's reveal for the last request and decodes those frames again; `Some(request)`
    /// for the frames still failing while a round is left, else `None`.
    pub fn apply(&mut self, reveal: &[u8]) -> Result<Option<Vec<u8>>> {
        unstopped(|stop| self.apply_until(reveal, stop))
    }

    /// As [`Decoder::apply`], given up soon after `stop` is set: then `None`, and the decoder is
    /// as it was before the call (the same reveal may be applied again).
    pub fn apply_until(&mut self, reveal: &[u8], stop: &AtomicBool) -> Result<Option<Option<Vec<u8>>>> {
        if self.pending.is_empty() {
            return Err(Error::peer("a blind reveal with no request outstanding"));
        }
        let total: usize = self.pending.iter().map(|&(_, c)| c).sum();
        if reveal.len() != total.div_ceil(8) {
            return Err(Error::peer(format!("blind reveal of {} bytes, expected {}", reveal.len(), total.div_ceil(8))));
        }
        let bits = unpack(reveal, total);
        let mut at = 0;
        let pending = std::mem::take(&mut self.pending);
        let disclosed = self.disclosed;
        for &(f, count) in &pending {
            self.known[f].extend_from_slice(&bits[at..at + count]);
            self.disclosed += count as u64;
            at += count;
        }
        let frames: Vec<usize> = pending.iter().map(|&(f, _)| f).collect();
        if !self.attempt(&frames, stop) {
            for &(f, count) in &pending {
                let kept = self.known[f].len() - count;
                self.known[f].truncate(kept);
            }
            self.disclosed = disclosed;
            self.pending = pending;
            return Ok(None);
        }
        Ok(Some(self.request()))
    }

    fn request(&mut self) -> Option<Vec<u8>> {
        if self.attempts >= MAX_ATTEMPTS {
            return None;
        }
        let step = self.plan.reveal_steps[(self.attempts - 1) as usize];
        let p = self.plan.punctured;
        self.pending = (0..self.plan.frames)
            .filter(|&f| self.words[f].is_none())
            .map(|f| (f, step.min(p - self.known[f].len())))
            .filter(|&(_, c)| c > 0)
            .collect();
        if self.pending.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(8 * self.pending.len());
        for &(f, c) in &self.pending {
            out.extend_from_slice(&(f as u32).to_le_bytes());
            out.extend_from_slice(&(c as u32).to_le_bytes());
        }
        Some(out)
    }

    /// Decodes `frames` (none of them decoded yet) in parallel with what is known now, a batch at
    /// a time so that the LLRs and words in flight stay bounded whatever the key's length; false,
    /// with no frame decoded and the attempt not counted, when `stop` was set.
    fn attempt(&mut self, frames: &[usize], stop: &AtomicBool) -> bool {
        const BATCH: usize = 512;
        for batch in frames.chunks(BATCH) {
            self.attempt_batch(batch, stop);
            if stop.load(Ordering::Relaxed) {
                for &f in frames {
                    self.words[f] = None;
                }
                return false;
            }
        }
        self.attempts += 1;
        true
    }

    fn attempt_batch(&mut self, frames: &[usize], stop: &AtomicBool) {
        let plan = &self.plan;
        let (n, m) = (plan.code.n(), plan.code.m());
        let mut llrs = vec![0i16; frames.len() * n];
        let mut outs = Zeroizing::new(vec![0u8; frames.len() * n]);
        for (&f, llr) in frames.iter().zip(llrs.chunks_exact_mut(n)) {
            llr.fill(KNOWN);
            let start = f * plan.key_per_frame;
            for (&at, &b) in plan.key_at.iter().zip(&self.key[start..start + plan.frame_key(f)]) {
                llr[at as usize] = if b == 0 { self.llr } else { -self.llr };
            }
            for (i, &at) in plan.punctured_at.iter().enumerate() {
                llr[at as usize] = match self.known[f].get(i) {
                    Some(0) => KNOWN,
                    Some(_) => -KNOWN,
                    None => 0,
                };
            }
        }
        let jobs = frames
            .iter()
            .zip(llrs.chunks_exact_mut(n).zip(outs.chunks_exact_mut(n)))
            .map(|(&f, (llr, out))| Job { llr, syndrome: &self.syndromes[f * m..(f + 1) * m], out })
            .collect();
        let results = decode_all_until(plan.code, jobs, self.settings, stop);
        for ((&f, result), out) in frames.iter().zip(results).zip(outs.chunks_exact(n)) {
            if result.is_some() {
                let key = plan.key_at[..plan.frame_key(f)].iter().map(|&at| out[at as usize]).collect();
                self.words[f] = Some(Zeroizing::new(key));
            }
        }
        llrs.zeroize();
    }

    /// The frames that did not decode (after the last round: both ends drop them).
    pub fn failed_frames(&self) -> Vec<u32> {
        (0..self.plan.frames).filter(|&f| self.words[f].is_none()).map(|f| f as u32).collect()
    }

    /// The corrected key of the decoded frames, in order, failed frames left out.
    pub fn key(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.plan.used_bits()));
        for word in self.words.iter().flatten() {
            out.extend_from_slice(word);
        }
        out
    }

    /// Decoding attempts made (1 + blind rounds).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Bits disclosed so far: the same count as Alice's.
    pub fn disclosed(&self) -> u64 {
        self.disclosed
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }
}

/// `key` (one byte per bit, the plan's `n_key`) with the bits of `failed` frames and those past
/// `used_bits` removed: what Alice keeps.
pub fn keep_frames(plan: &Plan, key: &[u8], failed: &[u32]) -> Result<Zeroizing<Vec<u8>>> {
    if key.len() != plan.n_key {
        return Err(Error::length("key", format!("expected {} bits, got {}", plan.n_key, key.len())));
    }
    let mut drop = vec![false; plan.frames];
    for &f in failed {
        *drop.get_mut(f as usize).ok_or_else(|| Error::argument("failed", format!("no frame {f}")))? = true;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(plan.used_bits()));
    for f in (0..plan.frames).filter(|&f| !drop[f]) {
        let start = f * plan.key_per_frame;
        out.extend_from_slice(&key[start..start + plan.frame_key(f)]);
    }
    Ok(out)
}

//! Rate adaptation: a mother code of length n and rate R0, with p symbols punctured (filled with
//! Alice's private random values, unknown to Bob) and s shortened (fixed to 0, known to both),
//! carries n − p − s key bits at rate `R = (R0·n − s) / (n − p − s)` (Elkouss, Martinez-Mateo,
//! Martin, QIC 11, 2011, who fix `d = p + s` per code; here `p` is what the blind rounds need and
//! `d` follows from the target rate, see `choose`). The plan is public and deterministic from
//! (n_key, qber, seed): both ends compute it.
//!
//! Disclosure, counted exactly: a frame's syndrome `s = H_K x_K + H_P x_P` with uniform private
//! `x_P` tells about the key `I(x_K; s) ≤ m − rank(H_P)` bits. The punctured positions are chosen
//! with linearly independent columns, so `rank(H_P) = p` and every punctured value revealed later
//! (blind rounds) adds exactly one bit: a frame discloses `m − p + revealed`.

use std::sync::atomic::{AtomicBool, Ordering};

use super::code::{Code, BASE_COLS, LIFTS, SPECS, Z_MAX};
use super::syndrome::dense;
use super::unstopped;
use crate::error::{Error, Result};
use crate::maths::xoshiro::{shuffle, Xoshiro256};

/// The largest fraction of a frame that is punctured or shortened (d = p + s).
pub const MAX_ADAPTED_FRACTION: f64 = 0.35;
/// How many shortened symbols one punctured symbol weighs when choosing the mother code.
const PUNCTURE_WEIGHT: usize = 4;
/// `(start, step)` of a blind plan at estimated QBER `qber` on the codes lifted by `z`: the
/// efficiency its first attempt aims at and what each blind round adds. The longest lift takes
/// [`start_efficiency`] and [`BLIND_STEP`]; the shortest (256) the schedule measured for it before
/// the longer lifts came, 1.14 up to QBER 2 % and 1.12 from 3 % (linear between) in steps of 0.08;
/// lifts between are interpolated in `shortness`, `√(1024/z) − 1` (from 1 at 256 to 0 at 1024),
/// since the spread of a frame's efficiency at decoding narrows as one over the square root of
/// its length.
///
/// Why a schedule per lift: short frames need the larger steps. Measured (`examples/ldpc_fer.rs`,
/// 1,000 frames a QBER, with `LDPC_Z=256` and a schedule like the longest lift's, first attempt
/// 1.12 / 1.10 / 1.08 at QBER 1 / 2 / 3–5 % in steps of 0.04): frames lost 1.6 / 3.3 / 1.4 / 0 %
/// at QBER 1 / 2 / 3 / 5 %; with `LDPC_Z=640`, 0.2 % at 2 %. With this schedule (the same runs
/// by 256, 448, 640, 832 and 1024 at QBER 1, 2, 3, 5 and 8 %) at most one frame in 1,000.
pub fn schedule(qber: f64, z: usize) -> (f64, f64) {
    let short = interpolate(&[(0.02, 1.14), (0.03, 1.12)], qber);
    let long = start_efficiency(qber);
    let t = shortness(z);
    (long + t * (short - long), BLIND_STEP + t * (0.08 - BLIND_STEP))
}

/// How far lift `z` is from the longest toward the shortest, `√(1024/z) − 1` in [0, 1]: what the
/// schedule and the final efficiency are interpolated in between the two measured lifts.
fn shortness(z: usize) -> f64 {
    ((Z_MAX as f64 / z.max(1) as f64).sqrt() - 1.0).clamp(0.0, 1.0)
}

/// The piecewise linear function through `points` (QBER ascending) at `qber`, the nearest end
/// outside them (and the first for NaN).
fn interpolate(points: &[(f64, f64)], qber: f64) -> f64 {
    let (first, last) = (points[0], points[points.len() - 1]);
    if qber.is_nan() {
        return first.1;
    }
    let q = qber.clamp(first.0, last.0);
    points
        .windows(2)
        .find(|w| q <= w[1].0)
        .map_or(last.1, |w| w[0].1 + (w[1].1 - w[0].1) * (q - w[0].0) / (w[1].0 - w[0].0))
}

/// The efficiency f = (1 − R)/h(q) the first attempt aims at for estimated QBER `qber`: 1.12 up
/// to QBER 1 %, 1.10 at 2 %, 1.09 from 3 %, linear between, each blind round adding
/// [`BLIND_STEP`]. Out-of-range QBERs take the nearest end (the plan refuses them).
///
/// Why these: on frames of the longest lift (163,840 bits, see `code::LIFTS`) the frame error
/// rate falls steeply enough to aim near the codes' thresholds with small steps. Measured
/// (`examples/ldpc_fer.rs` with `LDPC_START` and `LDPC_STEP`, the codes lifted by 1024, f after
/// the blind rounds, steps of 0.04 unless said): QBER 1 % (500 frames): start 1.12 1.145, 1.10
/// 1.164, 1.08 1.199; (400 frames) 1.12 with steps of 0.03 1.152, 1.10 with 0.05 1.161. 2 % (500):
/// 1.12 1.125, 1.10 1.121, 1.08 1.128 with one frame lost; (400) 1.10 with steps of 0.03 1.112
/// but one frame lost, 1.11 with 0.03 1.117. From 3 % (400 frames at QBER 3 / 4 / 5 / 6 / 8 %):
/// start 1.10 1.100 / 1.101 / 1.100 / 1.101 / 1.102, 1.09 1.097 / 1.094 / 1.091 / 1.098 / 1.100,
/// 1.08 (500 frames) 1.095 / 1.089 / 1.088 / 1.106 / 1.105. 1.08 fails more first attempts
/// (3 %: 39 % against 14 % at 1.09), each run to its stall limit and decoded again, for at most
/// 0.005 in f at 3–5 %, and loses f from 6 %. No frame was lost at the starts kept. Frames of
/// 40,960 bits (the shortest lift, for blocks under about 40,000 key bits) had their own
/// schedule before (1.14 to QBER 2 %, 1.12 from 3 %, steps of 0.08; f 1.184 / 1.155 / 1.126 /
/// 1.124 / 1.125 at 1–5 %).
pub fn start_efficiency(qber: f64) -> f64 {
    interpolate(&[(0.01, 1.12), (0.02, 1.10), (0.03, 1.09)], qber)
}
/// How much each of the two blind rounds raises the efficiency (punctured values revealed; the
/// second reveals all that are left).
pub const BLIND_STEP: f64 = 0.04;
/// Decoding attempts at most: the first and two blind rounds (three round trips).
pub const MAX_ATTEMPTS: u32 = 3;

/// Mother codes of this rate and above puncture an untainted set, highest column degree first
/// (see `untainted_first`); lower rates puncture at random (with independent columns).
pub const UNTAINTED_FROM_RATE: f64 = 0.749;

/// The binary entropy in bits.
pub fn h2(q: f64) -> f64 {
    if q <= 0.0 || q >= 1.0 {
        return 0.0;
    }
    -q * q.log2() - (1.0 - q) * (1.0 - q).log2()
}

/// A public reconciliation plan.
#[derive(Clone, Debug)]
pub struct Plan {
    pub code: &'static Code,
    pub qber: f64,
    /// Key bits offered (Alice's and Bob's key length).
    pub n_key: usize,
    pub frames: usize,
    /// Key bits in every frame but the last.
    pub key_per_frame: usize,
    /// Key bits in the last frame (the rest of its key positions are shortened too).
    pub last_frame_key: usize,
    pub punctured: usize,
    pub shortened: usize,
    /// Punctured positions in the order the blind rounds reveal them.
    pub punctured_at: Vec<u32>,
    pub shortened_at: Vec<u32>,
    /// Key positions, ascending: key bit `j` of a frame sits at `key_at[j]`.
    pub key_at: Vec<u32>,
    /// Punctured values revealed per failed frame in blind rounds 1 and 2 (the second: all left).
    pub reveal_steps: [usize; 2],
    /// The efficiency the first attempt aims at, and what each blind round adds to it.
    pub start: f64,
    pub step: f64,
}

impl Plan {
    /// The plan for `n_key` key bits at estimated QBER `qber`, positions drawn from `seed`, on the
    /// lift that leaves the most key, at that lift's [`schedule`].
    ///
    /// Frames: `n_key / k` full frames of `k = n − p − s` key bits; a remainder of at least `k/2`
    /// bits makes one more frame whose missing key positions are shortened too (fixed to 0), a
    /// smaller remainder is left out (`used_bits < n_key`) unless it is the only frame.
    pub fn new(n_key: usize, qber: f64, seed: u64) -> Result<Plan> {
        Plan::with_lift(n_key, qber, seed, None, None, None)
    }

    /// As [`Plan::new`], the first attempt at efficiency `start` and each blind round adding
    /// `step` to it (as far as the punctured symbols allow), at every lift.
    pub fn with_efficiency(n_key: usize, qber: f64, seed: u64, start: f64, step: f64) -> Result<Plan> {
        Plan::with_lift(n_key, qber, seed, Some(start), Some(step), None)
    }

    /// The general form: `start` and `step` as given or, where `None`, from the lift's
    /// [`schedule`]; the codes lifted by `z` (one of [`LIFTS`]) when given, else by the lift that
    /// leaves the most key (see `lift`). A plan made with its own `start`, `step` and lift (the
    /// fields [`Plan::start`], [`Plan::step`] and [`Plan::lift`]) is the same plan.
    pub fn with_lift(
        n_key: usize,
        qber: f64,
        seed: u64,
        start: Option<f64>,
        step: Option<f64>,
        z: Option<usize>,
    ) -> Result<Plan> {
        unstopped(|stop| Plan::with_lift_until(n_key, qber, seed, start, step, z, stop))
    }

    /// As [`Plan::with_lift`], giving up (`None`) soon after `stop` is set: choosing independent
    /// punctured columns takes seconds on the largest frames when a high QBER or a large step
    /// punctures tens of thousands of symbols.
    pub fn with_lift_until(
        n_key: usize,
        qber: f64,
        seed: u64,
        start: Option<f64>,
        step: Option<f64>,
        z: Option<usize>,
        stop: &AtomicBool,
    ) -> Result<Option<Plan>> {
        if let Some(s) = start.filter(|s| !(1.0..=2.0).contains(s)) {
            return Err(Error::argument("efficiency", format!("expected an efficiency in [1, 2], got {s}")));
        }
        if let Some(s) = step.filter(|s| !(0.0..=1.0).contains(s)) {
            return Err(Error::argument("step", format!("expected a step in [0, 1], got {s}")));
        }
        if !(qber > 0.0 && qber < 0.5) {
            return Err(Error::argument("qber", format!("expected a QBER in (0, 0.5), got {qber}")));
        }
        if n_key == 0 {
            return Err(Error::argument("n_key", "expected at least one key bit"));
        }
        let h = h2(qber);
        // (start, step) at lift z.
        let at = |z: usize| {
            let (a, b) = schedule(qber, z);
            (start.unwrap_or(a), step.unwrap_or(b))
        };
        let adapt = |z: usize| {
            let (start, step) = at(z);
            choose(1.0 - start * h, h, step, z)
        };
        let (z, Lifted { spec, punctured, shortened, .. }) = match z {
            Some(z) if LIFTS.contains(&z) => (z, adapt(z)),
            Some(z) => {
                return Err(Error::argument("lift", format!("expected one of the lifts 256, 320, …, 1024, got {z}")))
            }
            // Scheduled, a frame ends at the lift's measured f; at a start and step given, it
            // discloses its syndrome less the punctured symbols (blind rounds not counted).
            None if start.is_none() && step.is_none() => {
                lift(n_key, h, adapt, |z, a: &Lifted| final_f(qber, z, SPECS[a.spec].cols) * h)
            }
            None => lift(n_key, h, adapt, |z, a: &Lifted| {
                let k = BASE_COLS * z - a.punctured - a.shortened;
                let spec = &SPECS[a.spec];
                (spec.rows * spec.circulant(z)) as f64 / k as f64 - a.punctured as f64 / k as f64
            }),
        };
        let (start, step) = at(z);
        let code = Code::lifted(spec, z)?;
        if punctured > code.m() {
            // The punctured columns must be independent (a frame discloses m − p): a step this
            // large asks for more than the syndrome has.
            return Err(Error::argument(
                "step",
                format!(
                    "{step} (at QBER {qber}) would puncture {punctured} symbols, more than the {} syndrome bits",
                    code.m()
                ),
            ));
        }
        let n = code.n();
        let k = n - punctured - shortened;
        let (frames, last) = cut(n_key, k);
        let mut rng = Xoshiro256::from_seed(seed ^ 0x6c64_7063_706c_616e);
        let mut order: Vec<u32> = (0..n as u32).collect();
        shuffle(&mut order, &mut rng);
        let order = untainted_first(code, &order, punctured);
        let Some((punctured_at, rest)) = independent_columns(code, &order, punctured, stop)? else {
            return Ok(None);
        };
        let shortened_at: Vec<u32> = rest[..shortened].to_vec();
        let mut key_at: Vec<u32> = rest[shortened..].to_vec();
        key_at.sort_unstable();
        let reveal = ((step * h * k as f64).ceil() as usize).max(1);
        // The last round reveals every punctured value left (more than a step where the target
        // rate is above the mother code's): a frame that fails it is lost whole, which costs far
        // more key than the values (at QBER 2 % on 40,960-bit frames, 965 more values for the few
        // frames that fail the first blind round, against a frame's 38,000 key bits).
        let first = reveal.min(punctured);
        let second = if step > 0.0 { punctured - first } else { 0 };
        Ok(Some(Plan {
            code,
            qber,
            n_key,
            frames,
            key_per_frame: k,
            last_frame_key: last,
            punctured,
            shortened,
            punctured_at,
            shortened_at,
            key_at,
            reveal_steps: [first, second],
            start,
            step,
        }))
    }

    /// The frames' lift (one of [`LIFTS`]): they have `BASE_COLS · lift` bits, whatever the
    /// code's base (its circulants are `code.z`).
    pub fn lift(&self) -> usize {
        self.code.n() / BASE_COLS
    }

    /// Key bits covered by the frames.
    pub fn used_bits(&self) -> usize {
        (self.frames - 1) * self.key_per_frame + self.last_frame_key
    }

    /// Key bits in frame `f`.
    pub fn frame_key(&self, f: usize) -> usize {
        if f + 1 == self.frames {
            self.last_frame_key
        } else {
            self.key_per_frame
        }
    }

    /// Syndrome bits per frame.
    pub fn syndrome_bits(&self) -> usize {
        self.code.m()
    }

    /// Bytes of the message carrying every frame's syndrome.
    pub fn syndrome_bytes(&self) -> usize {
        self.frames * self.code.m().div_ceil(8)
    }

    /// Bits a frame discloses after `revealed` of its punctured values were revealed.
    pub fn frame_disclosed(&self, revealed: usize) -> u64 {
        (self.code.m() - self.punctured + revealed) as u64
    }

    /// The rate of the adapted code `(R0·n − s) / (n − p − s)`.
    pub fn rate(&self) -> f64 {
        let n = self.code.n() as f64;
        (self.code.rate() * n - self.shortened as f64) / (n - (self.punctured + self.shortened) as f64)
    }
}

/// Frames of `k` key bits for `n_key` bits: `(frames, key bits in the last)`. A remainder of at
/// least `k/2` bits makes one more frame, a smaller one is left out unless it is the only frame.
fn cut(n_key: usize, k: usize) -> (usize, usize) {
    match (n_key / k, n_key % k) {
        (0, r) => (1, r),
        (f, r) if 2 * r >= k => (f + 1, r),
        (f, _) => (f, k),
    }
}

/// f after the blind rounds on the shortest lift and on the longest, at QBER 1, 2, 3, 4, 5, 6 and
/// 8 % (`make soak`, 2,000 frames each, each lift at its [`schedule`]; 2026-12-04 and 12-06):
/// what [`lift`] weighs lifts by, on the 160-column codes. Remeasure when a schedule or a code
/// changes.
const FINAL_F_SHORTEST: [(f64, f64); 7] =
    [(0.01, 1.184), (0.02, 1.155), (0.03, 1.126), (0.04, 1.124), (0.05, 1.125), (0.06, 1.122), (0.08, 1.121)];
const FINAL_F_LONGEST: [(f64, f64); 7] =
    [(0.01, 1.146), (0.02, 1.120), (0.03, 1.096), (0.04, 1.093), (0.05, 1.091), (0.06, 1.097), (0.08, 1.100)];

/// How much lower f ends on the 320-column rate-0.9 code than on the 160-column one, where a
/// lift fits it. Measured (`examples/ldpc_fer.rs`, 1,000 frames, both builds on the same frames,
/// each at the schedule): at QBER 1 % lifted by 384 / 640 / 896 / 1024, 1.1535 / 1.1379 / 1.1301
/// / 1.1279 against 1.1690 / 1.1523 / 1.1463 / 1.1482; at 1.2 % by 640 / 896 / 1024, 1.1417 /
/// 1.1318 / 1.1286 against 1.1588 / 1.1494 / 1.1450. The least of these gains.
const WIDE_RATE_09_GAIN: f64 = 0.014;

/// The f a plan on the codes lifted by `z` ends at, blind rounds included, at QBER `qber`, when
/// its mother code has `cols` base columns: the measured f interpolated in the QBER (the nearest
/// end outside), and between the lifts in [`shortness`] as the [`schedule`] is, less
/// [`WIDE_RATE_09_GAIN`] on the 320-column code.
fn final_f(qber: f64, z: usize, cols: usize) -> f64 {
    let (short, long) = (interpolate(&FINAL_F_SHORTEST, qber), interpolate(&FINAL_F_LONGEST, qber));
    let gain = if cols > BASE_COLS { WIDE_RATE_09_GAIN } else { 0.0 };
    long + shortness(z) * (short - long) - gain
}

/// The lift (one of [`LIFTS`]) for `n_key` key bits at a QBER of binary entropy `h`, and what
/// `adapt` gives at it: the lift that leaves the most key, the longest on a tie; the shortest when
/// no code reaches the rate at the longest (no key either way, and the shortest plans fastest).
///
/// The key a lift leaves is estimated as `used·(1 − h) − frames·k·leak`: the bits its frames
/// reconcile, less what the phase errors take and what every frame discloses, a full frame's
/// worth whatever its key bits, `leak(z, adapted)` a key bit (for a scheduled plan `h·f` at the
/// f the lift ends at, [`final_f`]). This counts the bits left out of the frames (lost), a last
/// frame with fewer key bits (it discloses as much as a full one) and what longer frames save.
/// A block shorter than one frame of the shortest lift keeps that lift (one frame, the rest
/// shortened).
fn lift(
    n_key: usize,
    h: f64,
    adapt: impl Fn(usize) -> Lifted,
    leak: impl Fn(usize, &Lifted) -> f64,
) -> (usize, Lifted) {
    if !adapt(Z_MAX).reached {
        return (LIFTS[0], adapt(LIFTS[0]));
    }
    let scored = LIFTS.iter().map(|&z| {
        let a = adapt(z);
        let k = BASE_COLS * z - a.punctured - a.shortened;
        let (frames, last) = cut(n_key, k);
        let used = ((frames - 1) * k + last) as f64;
        (z, a, used * (1.0 - h) - frames as f64 * k as f64 * leak(z, &a))
    });
    // The last (longest) of the best: `max_by` keeps the last of equal maxima.
    let (z, a, _) = scored.max_by(|x, y| x.2.total_cmp(&y.2)).expect("LIFTS is not empty");
    (z, a)
}

/// The mother code (an index of [`SPECS`]) and (p, s) that reach rate `target` on the codes
/// lifted by `z`: each code punctured by what the two blind rounds may reveal (and, above its
/// rate, by what the target needs), shortened the rest of the way; the code adapted least,
/// `PUNCTURE_WEIGHT·p + s` smallest (with `d = p + s` within [`MAX_ADAPTED_FRACTION`] of the
/// frame). With `p` fixed, `R = (R0·n − s)/(n − p − s)` gives `d = (p + (R0 − R)·n)/(1 − R)`.
///
/// Why the least adapted: both kinds of adaptation cost. A punctured symbol starts the decoder
/// with no information; a large shortening leaves a shorter code with a distorted degree profile.
/// Measured (`examples/ldpc_fer.rs`, 1000 frames, first attempt at f 1.12, blind step 0.09):
/// at QBER 6 % the rate-0.7 code punctured by 2416 and shortened by 11626 failed 26 % of frames,
/// the rate-0.6 code punctured by 2416 and shortened by 457 3 %; at QBER 5 % the rate-0.7 code
/// (p 2112, s 7124) failed 11 %, the rate-0.6 code (p 4779, s 2) 37 %. A punctured symbol
/// weighing as about four shortened ones orders these and the other QBERs measured.
fn choose(target: f64, h: f64, step: f64, z: usize) -> Lifted {
    // Every spec's frames have BASE_COLS · z bits; a spec's rate is 1 − rows/cols at any lift.
    let n = (BASE_COLS * z) as f64;
    let rate = |i: usize| 1.0 - SPECS[i].rows as f64 / SPECS[i].cols as f64;
    let wanted = 2.0 * (step * h * n).ceil();
    let max_d = (MAX_ADAPTED_FRACTION * n).floor();
    // (p, s) of code i for `target`: p covers the reveals and any rate above R0, d clamped.
    let adapt = |i: usize| {
        let r0 = rate(i);
        let p = wanted.max(((target - r0) * n / target).ceil()).min(max_d);
        let d = ((p + (r0 - target) * n) / (1.0 - target)).round().clamp(p, max_d);
        (p as usize, (d - p) as usize)
    };
    // Whether code i reaches `target` within the limit.
    let reaches = |i: &usize| {
        let r0 = rate(*i);
        let p = wanted.max(((target - r0) * n / target).ceil());
        p <= max_d && (p + (r0 - target) * n) / (1.0 - target) <= max_d
    };
    // The code adapted least among those reaching the target, the higher rate on a tie; beyond
    // the family's reach, the nearest end. Only the specs that fit the lift take part; of two of
    // equal rate, the later (the 320-column rate-0.9 code where it fits).
    let fitting = || (0..SPECS.len()).rev().filter(|&i| SPECS[i].fits(z));
    let (c, reached) = match fitting().filter(reaches).min_by_key(|&i| {
        let (p, s) = adapt(i);
        PUNCTURE_WEIGHT * p + s
    }) {
        Some(i) => (i, true),
        None if target < rate(0) => (0, false),
        None => (fitting().next().unwrap_or(SPECS.len() - 1), false),
    };
    let (p, s) = adapt(c);
    Lifted { spec: c, punctured: p, shortened: s, reached }
}

/// What [`choose`] gives at a lift: the spec's index, p and s, and whether the code reaches the
/// target rate (beyond the family's reach, the nearest end, adapted as far as it goes).
#[derive(Clone, Copy, Debug)]
struct Lifted {
    spec: usize,
    punctured: usize,
    shortened: usize,
    reached: bool,
}

/// `order` rearranged so that its first positions are an untainted puncturing set of up to
/// `count` positions (Elkouss, Martinez-Mateo, Martin, "Untainted puncturing for irregular
/// low-density parity-check codes", IEEE Wireless Commun. Lett. 1, 2012): no check has two
/// punctured neighbours, so every punctured symbol hears from each of its checks at the first
/// iteration. Eligible positions are taken highest column degree first, ties in `order`'s
/// (random) order; when no eligible position is left, the rest of `order` follows unchanged (and
/// `independent_columns` takes the remaining punctured positions from it). An untainted set is
/// linearly independent: each of its columns has a check of its own among them.
///
/// Why highest degree first (the paper takes the smallest neighbourhood, i.e. the lowest
/// degree): at high rates a check has ~57 neighbours and tells a punctured symbol little (about
/// 0.7 nats at QBER 1 %), so a punctured symbol needs many checks. Measured (`examples/ldpc_fer.rs`,
/// first attempt at f 1.12, blind step 0.09; frames failing their first attempt, random
/// puncturing → untainted lowest degree first → untainted highest degree first): QBER 1 %
/// (rate-0.9 code) 73.5 → 81.5 → 64.1 %, 2 % (0.8) 67.2 → 97.7 → 46.8 %, 3 % (0.75) 32.5 → 82.5 →
/// 11.4 %; but with the lower-rate codes, QBER 5 % (0.7, shortened by 7124) 8.8 → 16.7 % and
/// 6 % (0.6) 3.7 → 13.7 %, so codes below [`UNTAINTED_FROM_RATE`] keep random puncturing.
/// Highest degree first without the untainted condition failed every frame at QBER 2–5 %.
pub fn untainted_first(code: &Code, order: &[u32], count: usize) -> Vec<u32> {
    if code.rate() < UNTAINTED_FROM_RATE {
        return order.to_vec();
    }
    let z = code.z;
    // circulants[c]: (base row, shift) of column block c.
    let mut circulants: Vec<Vec<(usize, usize)>> = vec![Vec::new(); code.cols];
    for (r, layer) in code.layers.iter().enumerate() {
        for b in layer {
            circulants[b.col as usize].push((r, b.shift as usize));
        }
    }
    // Position v's checks: r·z + (v − shift) mod z for each circulant (r, shift) of its block.
    let checks = |v: usize| circulants[v / z].iter().map(move |&(r, s)| r * z + (v % z + z - s) % z);
    let mut by_degree: Vec<u32> = order.to_vec();
    by_degree.sort_by_key(|&v| std::cmp::Reverse(circulants[v as usize / z].len()));
    let mut touched = vec![false; code.m()];
    let mut chosen = vec![false; code.n()];
    let mut first = Vec::with_capacity(order.len());
    for &v in &by_degree {
        if first.len() == count {
            break;
        }
        if checks(v as usize).any(|c| touched[c]) {
            continue;
        }
        for c in checks(v as usize) {
            touched[c] = true;
        }
        chosen[v as usize] = true;
        first.push(v);
    }
    first.extend(order.iter().filter(|&&v| !chosen[v as usize]));
    first
}

/// The first `count` positions of `order` whose columns of H are linearly independent, and every
/// other position of `order` in order; `None` when `stop` was set.
///
/// GF(2) elimination, incremental: each basis vector is kept from the word of its lowest set bit
/// (its pivot) on, and a new column is reduced by the basis vector of its lowest set bit until
/// that bit is no basis vector's pivot (independent: it joins the basis) or nothing is left
/// (dependent). Which columns are chosen depends only on `order` (a column is taken when it is
/// independent of those taken before it), so both ends choose the same, and the tests check the
/// rank by dense elimination. The basis can reach tens of thousands of vectors of m bits (high
/// QBERs or large steps on the largest frames): its memory is asked for fallibly.
fn independent_columns(
    code: &Code,
    order: &[u32],
    count: usize,
    stop: &AtomicBool,
) -> Result<Option<(Vec<u32>, Vec<u32>)>> {
    let m = code.m();
    let words = m.div_ceil(64);
    let z = code.z;
    // column v's checks: for each circulant of its column block, check (v − shift) mod z.
    let mut checks_of: Vec<Vec<(usize, usize)>> = vec![Vec::new(); code.cols];
    for (r, layer) in code.layers.iter().enumerate() {
        for b in layer {
            checks_of[b.col as usize].push((r, b.shift as usize));
        }
    }
    // basis[pivot_of[bit]]: the basis vector whose lowest set bit is `bit`, from its word on.
    let mut pivot_of = vec![u32::MAX; m];
    let mut basis: Vec<Vec<u64>> = Vec::new();
    basis.try_reserve_exact(count).map_err(|_| Error::OutOfMemory { what: "LDPC puncturing", bytes: count * 24 })?;
    let mut chosen = Vec::with_capacity(count);
    let mut rest = Vec::with_capacity(order.len());
    let mut col = vec![0u64; words];
    for (i, &v) in order.iter().enumerate() {
        if chosen.len() == count {
            rest.push(v);
            continue;
        }
        if i % 256 == 0 && stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let (cb, local) = (v as usize / z, v as usize % z);
        col.fill(0);
        for &(r, shift) in &checks_of[cb] {
            let c = r * z + (local + z - shift) % z;
            col[c / 64] ^= 1 << (c % 64);
        }
        let mut w = 0;
        loop {
            let Some(at) = col[w..].iter().position(|&x| x != 0) else {
                rest.push(v);
                break;
            };
            w += at;
            let bit = 64 * w + col[w].trailing_zeros() as usize;
            match pivot_of[bit] {
                u32::MAX => {
                    let mut tail = Vec::new();
                    tail.try_reserve_exact(words - w)
                        .map_err(|_| Error::OutOfMemory { what: "LDPC puncturing", bytes: 8 * (words - w) })?;
                    tail.extend_from_slice(&col[w..]);
                    pivot_of[bit] = basis.len() as u32;
                    basis.push(tail);
                    chosen.push(v);
                    break;
                }
                b => {
                    for (x, y) in col[w..].iter_mut().zip(&basis[b as usize]) {
                        *x ^= y;
                    }
                }
            }
        }
    }
    Ok(Some((chosen, rest)))
}

/// The GF(2) rank of the columns `cols` of H, by dense elimination (the tests' reference).
pub fn naive_rank(code: &Code, cols: &[u32]) -> usize {
    let h = dense(code);
    let mut rows: Vec<Vec<u8>> = h.iter().map(|row| cols.iter().map(|&c| row[c as usize]).collect()).collect();
    let mut rank = 0;
    for c in 0..cols.len() {
        let Some(p) = (rank..rows.len()).find(|&r| rows[r][c] == 1) else { continue };
        rows.swap(rank, p);
        let pivot = rows[rank].clone();
        for (r, row) in rows.iter_mut().enumerate() {
            if r != rank && row[c] == 1 {
                for (x, y) in row.iter_mut().zip(&pivot) {
                    *x ^= y;
                }
            }
        }
        rank += 1;
    }
    rank
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qkd::ldpc::code::Spec;

    #[test]
    fn the_adapted_rate_follows_the_formula_and_d_is_fixed() {
        for q in [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08] {
            let plan = Plan::new(100_000, q, 1).unwrap();
            let n = plan.code.n();
            assert!(plan.punctured + plan.shortened <= (MAX_ADAPTED_FRACTION * n as f64) as usize);
            let r0 = 1.0 - plan.code.m() as f64 / n as f64;
            let r = (r0 * n as f64 - plan.shortened as f64) / (n - plan.punctured - plan.shortened) as f64;
            assert!((plan.rate() - r).abs() < 1e-12);
            // The rate leaks m − p per frame over its key bits: f close to the start efficiency,
            // the lift's schedule.
            let leak = plan.frame_disclosed(0) as f64;
            let f = leak / (plan.key_per_frame as f64 * h2(q));
            assert!((f - plan.start).abs() < 0.02, "q {q}: f {f}");
            assert_eq!((plan.start, plan.step), schedule(q, plan.lift()));
            assert!(plan.reveal_steps[0] + plan.reveal_steps[1] <= plan.punctured);
        }
    }

    #[test]
    fn the_schedule_runs_from_the_shortest_lifts_to_the_longest() {
        for q in [0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.05, 0.08, 0.2] {
            let short = if q <= 0.02 {
                1.14
            } else if q >= 0.03 {
                1.12
            } else {
                1.14 - 2.0 * (q - 0.02)
            };
            let long = if q <= 0.01 {
                1.12
            } else if q <= 0.02 {
                1.12 - 2.0 * (q - 0.01)
            } else if q <= 0.03 {
                1.10 - (q - 0.02)
            } else {
                1.09
            };
            let close = |a: (f64, f64), b: (f64, f64)| (a.0 - b.0).abs() < 1e-12 && (a.1 - b.1).abs() < 1e-12;
            assert!(close(schedule(q, 256), (short, 0.08)), "{q}");
            assert!(close(schedule(q, Z_MAX), (long, BLIND_STEP)), "{q}");
            assert!(close((start_efficiency(q), BLIND_STEP), (long, 0.04)), "{q}");
            // Halfway in √(1024/z) − 1 at z = 1024 / 1.5².
            let mid = schedule(q, 455);
            assert!((mid.0 - (short + long) / 2.0).abs() < 2e-3 && (mid.1 - 0.06).abs() < 2e-3, "{q} {mid:?}");
        }
        assert_eq!(start_efficiency(f64::NAN), 1.12);
    }

    #[test]
    fn punctured_columns_have_full_rank_by_naive_elimination() {
        for q in [0.01, 0.05] {
            let plan = Plan::new(50_000, q, 9).unwrap();
            assert_eq!(naive_rank(plan.code, &plan.punctured_at), plan.punctured);
            // Leak = syndrome bits − rank of the still-punctured columns, after any reveal.
            let still = &plan.punctured_at[7..];
            let leak = plan.code.m() - naive_rank(plan.code, still);
            assert_eq!(leak as u64, plan.frame_disclosed(7));
        }
    }

    /// Column `v`'s checks, from the syndrome of the unit word at `v` (independent of the
    /// circulant arithmetic under test).
    fn column(code: &Code, v: u32) -> Vec<usize> {
        let mut x = vec![0u8; code.n()];
        x[v as usize] = 1;
        let s = super::super::syndrome::syndrome(code, &x);
        (0..s.len()).filter(|&c| s[c] == 1).collect()
    }

    #[test]
    fn untainted_puncturing_is_maximal_highest_degree_first_and_shares_no_check() {
        // The rate-0.9 code (check degree ~57) and a count beyond what an untainted set holds.
        let code = Code::named(SPECS[SPECS.len() - 1].name).unwrap();
        assert!(code.rate() >= UNTAINTED_FROM_RATE);
        let mut rng = Xoshiro256::from_seed(4);
        let mut order: Vec<u32> = (0..code.n() as u32).collect();
        shuffle(&mut order, &mut rng);
        let arranged = untainted_first(code, &order, code.n());
        let mut sorted = arranged.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..code.n() as u32).collect::<Vec<_>>(), "a rearrangement of the frame");
        // The longest prefix in which no check has two members.
        let mut covered = vec![false; code.m()];
        let mut degrees = Vec::new();
        for &v in &arranged {
            let checks = column(code, v);
            if checks.iter().any(|&c| covered[c]) {
                break;
            }
            checks.iter().for_each(|&c| covered[c] = true);
            degrees.push(checks.len());
        }
        let len = degrees.len();
        assert!(len > 100, "untainted prefix of {len}");
        // Maximal: later positions (a sample) each share a check with the prefix.
        assert!(arranged[len..].iter().step_by(37).all(|&v| column(code, v).iter().any(|&c| covered[c])));
        // Highest degree first: degrees never rise along the prefix, and the first has the most.
        assert!(degrees.windows(2).all(|w| w[0] >= w[1]));
        let most = (0..code.n() as u32).step_by(code.z).map(|v| column(code, v).len()).max().unwrap();
        assert_eq!(degrees[0], most);
        // The rest keeps order's order.
        let prefix: std::collections::HashSet<u32> = arranged[..len].iter().copied().collect();
        let rest: Vec<u32> = order.iter().copied().filter(|v| !prefix.contains(v)).collect();
        assert_eq!(&arranged[len..], &rest[..]);
        // Asked for fewer, it stops there; below the rate, the order is unchanged.
        assert_eq!(&untainted_first(code, &order, 50)[..50], &arranged[..50]);
        let low = Code::named(SPECS[0].name).unwrap();
        assert!(low.rate() < UNTAINTED_FROM_RATE);
        let order: Vec<u32> = (0..low.n() as u32).rev().collect();
        assert_eq!(untainted_first(low, &order, 100), order);
    }

    #[test]
    fn a_plan_at_high_rate_punctures_no_two_symbols_of_a_check_while_it_can() {
        let plan = Plan::new(50_000, 0.02, 3).unwrap();
        assert!(plan.code.rate() >= UNTAINTED_FROM_RATE);
        // The first punctured symbols are untainted: no check holds two of them.
        let mut seen = vec![false; plan.code.m()];
        for &v in &plan.punctured_at[..plan.punctured.min(200)] {
            for c in column(plan.code, v) {
                assert!(!seen[c], "check {c} holds two punctured symbols");
                seen[c] = true;
            }
        }
    }

    /// The greedy choice by the plainest elimination: a column is taken when, reduced by every
    /// basis vector whose pivot (lowest set bit) it has, in the order they were taken, something is
    /// left; whole dense vectors, no pivot index.
    fn greedy_reference(code: &Code, order: &[u32], count: usize) -> (Vec<u32>, Vec<u32>) {
        let h = dense(code);
        let mut basis: Vec<(usize, Vec<u8>)> = Vec::new();
        let (mut chosen, mut rest) = (Vec::new(), Vec::new());
        for &v in order {
            if chosen.len() == count {
                rest.push(v);
                continue;
            }
            let mut col: Vec<u8> = h.iter().map(|row| row[v as usize]).collect();
            for (pivot, b) in &basis {
                if col[*pivot] == 1 {
                    col.iter_mut().zip(b).for_each(|(x, y)| *x ^= y);
                }
            }
            match col.iter().position(|&x| x == 1) {
                Some(pivot) => {
                    basis.push((pivot, col));
                    chosen.push(v);
                }
                None => rest.push(v),
            }
        }
        (chosen, rest)
    }

    /// The pivot-indexed elimination chooses the columns the plain one does, dependent columns
    /// included (asking for every column of H), and stops when told to.
    #[test]
    fn independent_columns_are_the_greedy_choice_and_stop_when_told() {
        let never = AtomicBool::new(false);
        // Small codes, every column asked for (dependent ones met), and the shipped rate-0.9 base
        // matrix at a small lift up to its rank (the dense reference holds m × n bytes).
        let small = |cols, rows, seed| Spec { name: "t", cols, rows, z: 64, profile: &[(6, 3)], seed };
        let cases = [
            (small(16, 6, 1), true),
            (small(24, 6, 2), true),
            (small(24, 12, 3), true),
            (Spec { z: 64, ..SPECS[0] }, false),
        ];
        for (i, &(spec, every)) in cases.iter().enumerate() {
            let code = Code::build(&spec).unwrap();
            let mut order: Vec<u32> = (0..code.n() as u32).collect();
            shuffle(&mut order, &mut Xoshiro256::from_seed(i as u64));
            let counts = if every { vec![code.m() / 4, code.m(), code.n()] } else { vec![code.m() / 4, code.m()] };
            for count in counts {
                let got = independent_columns(&code, &order, count, &never).unwrap().unwrap();
                assert_eq!(got, greedy_reference(&code, &order, count), "case {i} count {count}");
            }
        }
        let code = Code::build(&small(16, 6, 1)).unwrap();
        let order: Vec<u32> = (0..code.n() as u32).collect();
        assert!(independent_columns(&code, &order, code.m(), &AtomicBool::new(true)).unwrap().is_none());
    }

    #[test]
    fn positions_partition_the_frame_and_are_deterministic() {
        let a = Plan::new(30_000, 0.03, 5).unwrap();
        let b = Plan::new(30_000, 0.03, 5).unwrap();
        assert_eq!(a.punctured_at, b.punctured_at);
        assert_eq!(a.key_at, b.key_at);
        let mut all: Vec<u32> = a.punctured_at.iter().chain(&a.shortened_at).chain(&a.key_at).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..a.code.n() as u32).collect::<Vec<_>>());
        let c = Plan::new(30_000, 0.03, 6).unwrap();
        assert_ne!(a.punctured_at, c.punctured_at);
    }

    #[test]
    fn the_remainder_is_a_shortened_frame_or_left_out() {
        let at = |n_key| Plan::with_lift(n_key, 0.03, 1, None, None, Some(256)).unwrap();
        let plan = at(1);
        let k = plan.key_per_frame;
        let with = at(3 * k + k.div_ceil(2));
        assert_eq!((with.frames, with.used_bits()), (4, 3 * k + k.div_ceil(2)));
        let without = at(3 * k + k.div_ceil(2) - 1);
        assert_eq!((without.frames, without.used_bits()), (3, 3 * k));
        assert_eq!((plan.frames, plan.used_bits()), (1, 1));
        assert!(Plan::with_lift(10, 0.03, 1, Some(1.1), Some(0.04), Some(300)).is_err());
        assert!(Plan::with_lift(10, 0.03, 1, Some(0.9), None, None).is_err());
        // A step that would puncture more symbols than the syndrome has bits (the frame would
        // disclose m − p < 0), at a lift given or chosen.
        for z in [Some(256), Some(1024), None] {
            let err = Plan::with_lift(1000, 0.03, 1, Some(2.0), Some(1.0), z).unwrap_err();
            assert!(err.to_string().contains("syndrome bits"), "{err}");
        }
        // Beyond every code's reach the plan takes the shortest lift (no key either way).
        assert_eq!(Plan::new(1000, 0.45, 1).unwrap().lift(), 256);
    }

    #[test]
    fn a_block_is_cut_into_frames_of_the_lift_that_leaves_the_most_key() {
        // Against every lift tried by hand, the estimate from the plans' own counts: the chosen
        // lift's is the best, and no longer lift's reaches it. Scheduled plans weigh a frame at
        // the f its lift ends at; plans at a given start and step (one way) at what their
        // syndrome discloses.
        let one_way = (Some(1.4), Some(0.0));
        for (n_key, qber) in [
            (1usize, 0.01),
            (30_000, 0.03),
            (100_000, 0.02),
            (387_250, 0.01),
            (1_000_000, 0.01),
            (1_000_000, 0.013),
            (1_000_000, 0.05),
            (3_300_000, 0.03),
            (50_000_000, 0.08),
        ] {
            let h = h2(qber);
            for (start, step) in [(None, None), one_way] {
                let key = |p: &Plan| {
                    let per_frame = if start.is_none() {
                        p.key_per_frame as f64 * h * final_f(qber, p.lift(), p.code.cols)
                    } else {
                        p.frame_disclosed(0) as f64
                    };
                    p.used_bits() as f64 * (1.0 - h) - p.frames as f64 * per_frame
                };
                let chosen = Plan::with_lift(n_key, qber, 1, start, step, None).unwrap();
                let all: Vec<Plan> =
                    LIFTS.iter().map(|&z| Plan::with_lift(n_key, qber, 1, start, step, Some(z)).unwrap()).collect();
                let best = all.iter().map(key).fold(f64::MIN, f64::max);
                let eps = 1e-9 * best.abs().max(1.0);
                assert!(key(&chosen) >= best - eps, "{n_key} {qber} {start:?}");
                assert!(
                    all.iter().filter(|p| p.lift() > chosen.lift()).all(|p| key(p) < key(&chosen) - eps),
                    "{n_key} {qber} {start:?}"
                );
                let same = all.iter().find(|p| p.lift() == chosen.lift()).unwrap();
                assert_eq!(
                    (same.code.name, same.frames, same.key_at.clone()),
                    (chosen.code.name, chosen.frames, chosen.key_at.clone())
                );
                // Remade from its own start, step and lift (what the Python side passes): the
                // same plan.
                let again = Plan::with_lift(n_key, qber, 1, Some(chosen.start), Some(chosen.step), Some(chosen.lift()))
                    .unwrap();
                assert_eq!(
                    (again.punctured_at, again.shortened_at, again.key_at),
                    (chosen.punctured_at.clone(), chosen.shortened_at.clone(), chosen.key_at.clone())
                );
                if start.is_none() {
                    assert_eq!((again.start, again.step), schedule(qber, chosen.lift()));
                }
            }
        }
        // Short blocks keep the shortest frames; long ones take the longest.
        assert_eq!(Plan::new(20_000, 0.03, 1).unwrap().lift(), 256);
        assert_eq!(Plan::new(50_000_000, 0.03, 1).unwrap().lift(), 1024);
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(Plan::new(0, 0.03, 1).is_err());
        assert!(Plan::new(10, 0.0, 1).is_err());
        assert!(Plan::new(10, 0.5, 1).is_err());
        assert!(Plan::new(10, f64::NAN, 1).is_err());
    }
}

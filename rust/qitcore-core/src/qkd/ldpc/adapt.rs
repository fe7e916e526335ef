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

use super::code::{Code, SPECS};
use super::syndrome::dense;
use crate::error::{Error, Result};
use crate::maths::xoshiro::{shuffle, Xoshiro256};

/// The largest fraction of a frame that is punctured or shortened (d = p + s).
pub const MAX_ADAPTED_FRACTION: f64 = 0.35;
/// How many shortened symbols one punctured symbol weighs when choosing the mother code.
const PUNCTURE_WEIGHT: usize = 4;
/// The efficiency f = (1 − R)/h(q) the first attempt aims at. With [`BLIND_STEP`], measured best
/// of the schedules tried, (1.1, 0.08), (1.1, 0.1), (1.12, 0.07), (1.12, 0.09), (1.12, 0.1),
/// (1.14, 0.06), (1.15, 0.08) (`examples/ldpc_fer.rs`, 1000 frames, QBER 1–8 %): the final
/// f = 1.30 keeps the frame error rate at QBER 1 % near 10⁻³, while most frames at QBER ≥ 3 %
/// decode at the first or second attempt. Smaller steps puncture less but fail more frames at
/// QBER 1 % (0.07: 1 %; 0.06: 1.8 %).
pub const START_EFFICIENCY: f64 = 1.12;
/// How much each of the two blind rounds raises the efficiency (punctured values revealed).
pub const BLIND_STEP: f64 = 0.09;
/// Decoding attempts at most: the first and two blind rounds (three round trips).
pub const MAX_ATTEMPTS: u32 = 3;

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
    /// Punctured values revealed per failed frame in blind rounds 1 and 2.
    pub reveal_steps: [usize; 2],
}

impl Plan {
    /// The plan for `n_key` key bits at estimated QBER `qber`, positions drawn from `seed`.
    ///
    /// Frames: `n_key / k` full frames of `k = n − p − s` key bits; a remainder of at least `k/2`
    /// bits makes one more frame whose missing key positions are shortened too (fixed to 0), a
    /// smaller remainder is left out (`used_bits < n_key`) unless it is the only frame.
    pub fn new(n_key: usize, qber: f64, seed: u64) -> Result<Plan> {
        Plan::with_efficiency(n_key, qber, seed, START_EFFICIENCY, BLIND_STEP)
    }

    /// As [`Plan::new`], the first attempt at efficiency `start` and each blind round adding
    /// `step` to it (as far as the punctured symbols allow).
    pub fn with_efficiency(n_key: usize, qber: f64, seed: u64, start: f64, step: f64) -> Result<Plan> {
        if !(1.0..=2.0).contains(&start) || !(0.0..=1.0).contains(&step) {
            return Err(Error::argument(
                "efficiency",
                format!("expected start in [1, 2] and step in [0, 1], got {start} and {step}"),
            ));
        }
        if !(qber > 0.0 && qber < 0.5) {
            return Err(Error::argument("qber", format!("expected a QBER in (0, 0.5), got {qber}")));
        }
        if n_key == 0 {
            return Err(Error::argument("n_key", "expected at least one key bit"));
        }
        let h = h2(qber);
        let target = 1.0 - start * h;
        let (code, punctured, shortened) = choose(target, h, step);
        let n = code.n();
        let k = n - punctured - shortened;
        let (frames, last) = match (n_key / k, n_key % k) {
            (0, r) => (1, r),
            (f, r) if 2 * r >= k => (f + 1, r),
            (f, _) => (f, k),
        };
        let mut rng = Xoshiro256::from_seed(seed ^ 0x6c64_7063_706c_616e);
        let mut order: Vec<u32> = (0..n as u32).collect();
        shuffle(&mut order, &mut rng);
        let (punctured_at, rest) = independent_columns(code, &order, punctured);
        let shortened_at: Vec<u32> = rest[..shortened].to_vec();
        let mut key_at: Vec<u32> = rest[shortened..].to_vec();
        key_at.sort_unstable();
        let reveal = ((step * h * k as f64).ceil() as usize).max(1);
        let first = reveal.min(punctured);
        let second = reveal.min(punctured - first);
        Ok(Plan {
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
        })
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

/// The mother code and (p, s) that reach rate `target`: each code punctured by what the two blind
/// rounds may reveal (and, above its rate, by what the target needs), shortened the rest of the
/// way; the code adapted least, `PUNCTURE_WEIGHT·p + s` smallest (with `d = p + s` within
/// [`MAX_ADAPTED_FRACTION`] of the frame). With `p` fixed, `R = (R0·n − s)/(n − p − s)` gives `d = (p + (R0 − R)·n)/(1 − R)`.
///
/// Why the least adapted: both kinds of adaptation cost. A punctured symbol starts the decoder
/// with no information; a large shortening leaves a shorter code with a distorted degree profile.
/// Measured (`examples/ldpc_fer.rs`, 1000 frames, first attempt at f 1.12, blind step 0.09):
/// at QBER 6 % the rate-0.7 code punctured by 2416 and shortened by 11626 failed 26 % of frames,
/// the rate-0.6 code punctured by 2416 and shortened by 457 3 %; at QBER 5 % the rate-0.7 code
/// (p 2112, s 7124) failed 11 %, the rate-0.6 code (p 4779, s 2) 37 %. A punctured symbol
/// weighing as about four shortened ones orders these and the other QBERs measured.
fn choose(target: f64, h: f64, step: f64) -> (&'static Code, usize, usize) {
    let codes: Vec<&'static Code> = SPECS.iter().map(|s| Code::named(s.name).expect("shipped")).collect();
    let n = codes[0].n() as f64;
    let wanted = 2.0 * (step * h * n).ceil();
    let max_d = (MAX_ADAPTED_FRACTION * n).floor();
    // (p, s) of code c for `target`: p covers the reveals and any rate above R0, d clamped.
    let adapt = |c: &Code| {
        let r0 = c.rate();
        let p = wanted.max(((target - r0) * n / target).ceil()).min(max_d);
        let d = ((p + (r0 - target) * n) / (1.0 - target)).round().clamp(p, max_d);
        (p as usize, (d - p) as usize)
    };
    // Whether code c reaches `target` within the limit.
    let reaches = |c: &Code| {
        let r0 = c.rate();
        let p = wanted.max(((target - r0) * n / target).ceil());
        p <= max_d && (p + (r0 - target) * n) / (1.0 - target) <= max_d
    };
    // The code adapted least among those reaching the target, the higher rate on a tie; beyond
    // the family's reach, the nearest end.
    let c = match codes.iter().rev().filter(|c| reaches(c)).min_by_key(|c| {
        let (p, s) = adapt(c);
        PUNCTURE_WEIGHT * p + s
    }) {
        Some(c) => *c,
        None if target < codes[0].rate() => codes[0],
        None => codes[codes.len() - 1],
    };
    let (p, s) = adapt(c);
    (c, p, s)
}

/// The first `count` positions of `order` whose columns of H are linearly independent (GF(2)
/// elimination, incremental), and every other position of `order` in order.
fn independent_columns(code: &Code, order: &[u32], count: usize) -> (Vec<u32>, Vec<u32>) {
    let words = code.m().div_ceil(64);
    let z = code.z;
    // column v's checks: for each circulant of its column block, check (v − shift) mod z.
    let mut checks_of: Vec<Vec<(usize, usize)>> = vec![Vec::new(); code.cols];
    for (r, layer) in code.layers.iter().enumerate() {
        for b in layer {
            checks_of[b.col as usize].push((r, b.shift as usize));
        }
    }
    let mut basis: Vec<(usize, Vec<u64>)> = Vec::with_capacity(count);
    let mut chosen = Vec::with_capacity(count);
    let mut rest = Vec::with_capacity(order.len());
    for &v in order {
        if chosen.len() == count {
            rest.push(v);
            continue;
        }
        let (cb, local) = (v as usize / z, v as usize % z);
        let mut col = vec![0u64; words];
        for &(r, shift) in &checks_of[cb] {
            let c = r * z + (local + z - shift) % z;
            col[c / 64] ^= 1 << (c % 64);
        }
        for (pivot, b) in &basis {
            if col[pivot / 64] >> (pivot % 64) & 1 == 1 {
                for (x, y) in col.iter_mut().zip(b) {
                    *x ^= y;
                }
            }
        }
        match col.iter().position(|&w| w != 0) {
            Some(w) => {
                let pivot = 64 * w + col[w].trailing_zeros() as usize;
                basis.push((pivot, col));
                chosen.push(v);
            }
            None => rest.push(v),
        }
    }
    (chosen, rest)
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

    #[test]
    fn the_adapted_rate_follows_the_formula_and_d_is_fixed() {
        for q in [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08] {
            let plan = Plan::new(100_000, q, 1).unwrap();
            let n = plan.code.n();
            assert!(plan.punctured + plan.shortened <= (MAX_ADAPTED_FRACTION * n as f64) as usize);
            let r0 = 1.0 - plan.code.m() as f64 / n as f64;
            let r = (r0 * n as f64 - plan.shortened as f64) / (n - plan.punctured - plan.shortened) as f64;
            assert!((plan.rate() - r).abs() < 1e-12);
            // The rate leaks m − p per frame over its key bits: f close to the start efficiency.
            let leak = plan.frame_disclosed(0) as f64;
            let f = leak / (plan.key_per_frame as f64 * h2(q));
            assert!((f - START_EFFICIENCY).abs() < 0.02, "q {q}: f {f}");
            assert!(plan.reveal_steps[0] + plan.reveal_steps[1] <= plan.punctured);
        }
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
        let plan = Plan::new(1, 0.03, 1).unwrap();
        let k = plan.key_per_frame;
        let with = Plan::new(3 * k + k.div_ceil(2), 0.03, 1).unwrap();
        assert_eq!((with.frames, with.used_bits()), (4, 3 * k + k.div_ceil(2)));
        let without = Plan::new(3 * k + k.div_ceil(2) - 1, 0.03, 1).unwrap();
        assert_eq!((without.frames, without.used_bits()), (3, 3 * k));
        assert_eq!((plan.frames, plan.used_bits()), (1, 1));
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(Plan::new(0, 0.03, 1).is_err());
        assert!(Plan::new(10, 0.0, 1).is_err());
        assert!(Plan::new(10, 0.5, 1).is_err());
        assert!(Plan::new(10, f64::NAN, 1).is_err());
    }
}

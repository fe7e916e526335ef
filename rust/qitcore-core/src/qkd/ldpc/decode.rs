//! Layered belief-propagation syndrome decoding in 16-bit fixed point (32 units per nat).
//!
//! Each base row is a layer of `z` checks that touch disjoint variables (a circulant is a
//! permutation), so a layer updates its checks in tiles of 64 at once (`tile`: one forward and one
//! backward sweep per tile, AVX-512 or AVX2 kernels chosen at run time). Layered decoding
//! converges in about half the iterations of flooding.
//!
//! Check nodes use the box-plus rule (forward and backward partial sums) with the two
//! `ln(1 + e^{−x})` corrections from a table (see `chain`), not min-sum: on the BSC every channel
//! LLR has the same magnitude, and normalised min-sum measured 0.2–0.3 worse in f on these codes.
//! The check-to-variable message carries the syndrome bit in its sign: a check `c` with syndrome
//! `s_c` tells variable `v` that its value is `s_c ⊕` (the XOR of the other variables' values).
//! A frame is given up when its unsatisfied checks stop falling, and a word is returned only when
//! its syndrome was recomputed equal to the frame's.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use super::code::{Block, Code};
use super::syndrome::syndrome_into;

pub use super::chain::SCALE;
use super::chain::{Backend, CLIP};
use super::tile::{self, Place, Rows};
/// The ⊞ identity (a certain 0): large, yet far from saturating sums of two.
pub(super) const IDENTITY: i16 = 16000;
/// The largest variable-to-check message: at most `IDENTITY − CLIP`, so that both corrections in
/// `IDENTITY ⊞ x` vanish and it equals `x` exactly (a message this large is a certainty either way:
/// 490 nats).
pub(super) const MESSAGE: i16 = IDENTITY - CLIP;
/// The LLR of a symbol whose value both ends know (shortened or revealed).
pub const KNOWN: i16 = 8000;

/// The decoder's limits.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub max_iterations: u32,
    /// Iterations without a new low of unsatisfied checks after which a frame is given up.
    pub stall: u32,
    /// A new low counts only when it falls below the best count by more than `best >> progress`
    /// (0: any fall counts).
    ///
    /// Why: a frame that will not converge hovers at a plateau of unsatisfied checks (about 1000
    /// of 4,096 at QBER 1 %) whose noise of ±2 % keeps making new lows by a few checks, so a
    /// plain stall count gives it up only after about 25 iterations; frames that converge mostly
    /// fall by more than 1/32 of their count within `stall` iterations. Measured with 5 against 0
    /// (`examples/ldpc_fer.rs` with `LDPC_PROGRESS`, the same 1,000 frames per QBER): frames failing
    /// their first attempt 74.9 → 74.9, 67.5 → 67.8, 32.4 → 32.6, 9.5 → 9.8 and 1.2 → 1.3 % at
    /// QBER 1, 2, 3, 5 and 8 %, f higher by 0.0001–0.0004, no frame lost; iterations (traces of
    /// 1,000 frames) 12, 6.5, 3 and 2 % fewer at QBER 1, 2, 3 and 5 %.
    pub progress: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { max_iterations: 60, stall: 12, progress: 5 }
    }
}

/// The fixed-point channel LLR of a BSC with crossover `q`: positive means 0.
pub fn channel_llr(q: f64) -> i16 {
    let l = ((1.0 - q) / q).ln() * SCALE;
    l.round().clamp(1.0, f64::from(KNOWN)) as i16
}

/// Per-thread buffers: the check messages of every edge and the padded LLRs, each followed by the
/// spare rows the tiled layer update gathers wrapping rows into, and the syndrome as signs.
pub struct Scratch {
    r: Vec<i16>,
    /// The frame's LLRs with `z` values of padding at each end, so that a circulant's rotated
    /// column block is read as a blend of two whole, in-bounds runs (`unsatisfied`), then the
    /// spare rows.
    lp: Vec<i16>,
    /// 0 or −1 per check: the syndrome as the sign the layer update starts from.
    sign: Vec<i16>,
    rows: Rows,
    /// Every tile's rows in place ([`tile::plan`]), and where each layer's start.
    plan: Vec<Place>,
    plan_at: Vec<usize>,
    /// The code these buffers and the plan were made for: a scratch passed with another code is
    /// remade, never used with offsets that do not fit it.
    made_for: (usize, usize, Vec<Vec<Block>>),
    hard: Vec<u8>,
    check: Vec<u8>,
}

impl Scratch {
    pub fn new(code: &Code) -> Self {
        let z = code.z;
        let spare = tile::spare(code.max_row_degree());
        let padded = code.n() + 2 * z + spare;
        let plan = tile::plan(z, &code.layers, padded);
        let plan_at = code
            .layers
            .iter()
            .scan(0, |at, layer| {
                let start = *at;
                *at += if plan.is_empty() { 0 } else { layer.len() * (z / tile::N) };
                Some(start)
            })
            .collect();
        Scratch {
            made_for: (code.z, code.cols, code.layers.clone()),
            plan,
            plan_at,
            r: vec![0; code.edges() + spare],
            lp: vec![0; padded],
            sign: vec![0; code.m()],
            rows: Rows::new(code.max_row_degree()),
            hard: vec![0; code.n()],
            check: vec![0; code.m()],
        }
    }
}

/// Decodes in place: `llr` (n values) becomes the posterior; on success the hard decision (n
/// bytes of 0/1) satisfying syndrome `s` (m bytes of 0/1) is in `out` and the iterations taken are
/// returned. `None` when no word with syndrome `s` was found within the iteration limit.
pub fn decode(
    code: &Code,
    llr: &mut [i16],
    s: &[u8],
    settings: Settings,
    scratch: &mut Scratch,
    out: &mut [u8],
) -> Option<u32> {
    decode_on(best_backend(), code, llr, s, settings, scratch, out)
}

/// The widest backend this CPU runs.
fn best_backend() -> Backend {
    #[cfg(target_arch = "x86_64")]
    {
        use crate::cpu::{has, Features};
        if has(Features::AVX2 | Features::AVX512F | Features::AVX512BW) {
            return Backend::Avx512;
        }
        if has(Features::AVX2) {
            return Backend::Avx2;
        }
    }
    Backend::Portable
}

/// [`decode`] on `backend`, which this CPU must run (the tests run each one it has).
fn decode_on(
    backend: Backend,
    code: &Code,
    llr: &mut [i16],
    s: &[u8],
    settings: Settings,
    scratch: &mut Scratch,
    out: &mut [u8],
) -> Option<u32> {
    match backend {
        #[cfg(target_arch = "x86_64")]
        Backend::Avx512 => {
            #[target_feature(enable = "avx2,avx512f,avx512bw")]
            fn wide(
                code: &Code,
                llr: &mut [i16],
                s: &[u8],
                settings: Settings,
                scratch: &mut Scratch,
                out: &mut [u8],
            ) -> Option<u32> {
                decode_body(code, llr, s, settings, scratch, out, Backend::Avx512)
            }
            // SAFETY: the caller chose a backend this CPU runs (best_backend detects them).
            unsafe { wide(code, llr, s, settings, scratch, out) }
        }
        #[cfg(target_arch = "x86_64")]
        Backend::Avx2 => {
            #[target_feature(enable = "avx2")]
            fn avx2(
                code: &Code,
                llr: &mut [i16],
                s: &[u8],
                settings: Settings,
                scratch: &mut Scratch,
                out: &mut [u8],
            ) -> Option<u32> {
                decode_body(code, llr, s, settings, scratch, out, Backend::Avx2)
            }
            // SAFETY: as above.
            unsafe { avx2(code, llr, s, settings, scratch, out) }
        }
        Backend::Portable => decode_body(code, llr, s, settings, scratch, out, Backend::Portable),
    }
}

/// [`decode`]'s body, inlined into each instruction-set variant.
#[inline(always)]
fn decode_body(
    code: &Code,
    llr: &mut [i16],
    s: &[u8],
    settings: Settings,
    scratch: &mut Scratch,
    out: &mut [u8],
    backend: Backend,
) -> Option<u32> {
    debug_assert_eq!(llr.len(), code.n());
    if scratch.made_for.0 != code.z || scratch.made_for.1 != code.cols || scratch.made_for.2 != code.layers {
        *scratch = Scratch::new(code);
    }
    let n = code.n();
    let z = code.z;
    scratch.r.fill(0);
    scratch.lp[z..z + n].copy_from_slice(llr);
    for (sign, &bit) in scratch.sign.iter_mut().zip(s) {
        *sign = -i16::from(bit & 1);
    }
    let result = iterate(code, s, settings, scratch, out, backend);
    llr.copy_from_slice(&scratch.lp[z..z + n]);
    result
}

/// The iterations of [`decode_body`], on the padded LLRs in `scratch.lp`.
#[inline(always)]
fn iterate(
    code: &Code,
    s: &[u8],
    settings: Settings,
    scratch: &mut Scratch,
    out: &mut [u8],
    backend: Backend,
) -> Option<u32> {
    let z = code.z;
    let gather = code.n() + 2 * z;
    let mut stall = Stall::new(settings);
    for iteration in 1..=settings.max_iterations {
        let mut edge = 0;
        for (i, (layer, sign)) in code.layers.iter().zip(scratch.sign.chunks_exact(z)).enumerate() {
            let planned = layer_plan(&scratch.plan, &scratch.plan_at, i, layer.len(), z);
            let (lp, r) = (&mut scratch.lp, &mut scratch.r);
            update_layer(backend, z, layer, sign, lp, gather, r, edge, planned, &mut scratch.rows);
            edge += layer.len() * z;
        }
        let unsatisfied = count_unsatisfied(
            backend,
            code,
            &scratch.lp,
            &scratch.sign,
            &scratch.plan,
            &scratch.plan_at,
            &mut scratch.rows,
        );
        if unsatisfied == 0 {
            // The same syndrome once more, from the hard decisions returned, as bytes.
            for (h, &l) in scratch.hard.iter_mut().zip(&scratch.lp[z..]) {
                *h = u8::from(l < 0);
            }
            syndrome_into(code, &scratch.hard, &mut scratch.check);
            if scratch.check == s {
                out.copy_from_slice(&scratch.hard);
                return Some(iteration);
            }
        }
        if stall.give_up(unsatisfied) {
            return None;
        }
    }
    None
}

/// When to give a frame up: a frame whose count of unsatisfied checks has not reached a clear new
/// low (below the best by more than `best >> progress`) for `stall` iterations rarely converges
/// later, so it is given up (the blind round retries it with more known symbols), which bounds
/// the time the failing frames take.
struct Stall {
    best: usize,
    since_best: u32,
    stall: u32,
    progress: u32,
}

impl Stall {
    fn new(settings: Settings) -> Self {
        Stall { best: usize::MAX, since_best: 0, stall: settings.stall, progress: settings.progress }
    }

    /// Takes one iteration's count; true when the frame is to be given up.
    #[inline(always)]
    fn give_up(&mut self, unsatisfied: usize) -> bool {
        let margin = if self.progress == 0 { 0 } else { self.best.checked_shr(self.progress).unwrap_or(0) };
        if unsatisfied < self.best - margin {
            self.best = unsatisfied;
            self.since_best = 0;
            false
        } else {
            self.since_best += 1;
            self.since_best >= self.stall
        }
    }
}

/// The check-node operation `a ⊞ b = 2 atanh(tanh(a/2) tanh(b/2))`, exactly
/// `sign(a) sign(b) (min(|a|,|b|) + ln(1 + e^{−|a+b|}) − ln(1 + e^{−|a−b|}))` with the corrections
/// from a table: `chain::boxplus_mag` signed. Neither argument may be `i16::MIN` (every message is
/// clamped to ±[`MESSAGE`] where it is made). The layer update runs it as magnitudes and signs
/// apart; this signed form is what the tests check both against.
#[cfg(test)]
pub(super) fn boxplus(a: i16, b: i16) -> i16 {
    let m = super::chain::boxplus_mag(a.max(a.wrapping_neg()), b.max(b.wrapping_neg()));
    // All ones when the signs differ: negate m.
    let flip = (a ^ b) >> 15;
    (m ^ flip).wrapping_sub(flip)
}

#[cfg(test)]
/// Fixed-width blocks the compiler unrolls into vector registers.
const W: usize = 32;

#[cfg(test)]
/// Lane numbers of a block, as 16-bit integers so that comparing them with a bound is one vector
/// comparison of the same width as the data.
const LANE: [i16; W] = {
    let mut lane = [0i16; W];
    let mut i = 0;
    while i < W {
        lane[i] = i as i16;
        i += 1;
    }
    lane
};

#[cfg(test)]
/// How many lanes of the block starting at `at` lie below `k` (0 to `W`).
#[inline(always)]
fn lanes_below(k: usize, at: usize) -> i16 {
    k.saturating_sub(at).min(W) as i16
}

#[cfg(test)]
/// `a` when `lane < k`, else `b`, as bit operations on both loaded values (a select lets the
/// compiler pick between the two addresses instead, a gather).
#[inline(always)]
fn blend(a: i16, b: i16, lane: i16, k: i16) -> i16 {
    let below = lane.wrapping_sub(k) >> 15;
    (a & below) | (b & !below)
}

/// Layer `i`'s part of the plan (empty when there is none).
#[inline(always)]
fn layer_plan<'a>(plan: &'a [Place], plan_at: &[usize], i: usize, degree: usize, z: usize) -> &'a [Place] {
    if plan.is_empty() {
        &[]
    } else {
        &plan[plan_at[i]..plan_at[i] + degree * (z / tile::N)]
    }
}

/// One layer by the tiled update ([`tile::layer`]) on `backend`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn update_layer(
    backend: Backend,
    z: usize,
    layer: &[super::code::Block],
    sign: &[i16],
    lp: &mut [i16],
    gather: usize,
    r: &mut [i16],
    edge: usize,
    planned: &[Place],
    rows: &mut Rows,
) {
    // The spare rows of r follow every layer's messages.
    let r_gather = r.len() - tile::spare(rows.t.len());
    // SAFETY: the backend was chosen by detection (best_backend) or by a test from those this CPU
    // runs; messages are clamped and LLRs stay within ±(MESSAGE + IDENTITY), never i16::MIN.
    unsafe {
        match backend {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => {
                tile::layer::<tile::Avx512>(z, layer, sign, lp, gather, r, edge, r_gather, planned, rows)
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => tile::layer::<tile::Avx2>(z, layer, sign, lp, gather, r, edge, r_gather, planned, rows),
            Backend::Portable => {
                tile::layer::<tile::Portable>(z, layer, sign, lp, gather, r, edge, r_gather, planned, rows)
            }
        }
    }
}

/// The checks whose syndrome bit the hard decisions of the padded LLRs `lp` miss (an LLR below 0
/// means 1), from the syndrome as signs, by tiles ([`tile::unsatisfied`]) on `backend`.
#[inline(always)]
pub(super) fn count_unsatisfied(
    backend: Backend,
    code: &Code,
    lp: &[i16],
    sign: &[i16],
    plan: &[Place],
    plan_at: &[usize],
    rows: &mut Rows,
) -> usize {
    let z = code.z;
    let spare = &mut rows.sign;
    let mut count = 0;
    for (i, (layer, sign)) in code.layers.iter().zip(sign.chunks_exact(z)).enumerate() {
        let planned = layer_plan(plan, plan_at, i, layer.len(), z);
        // SAFETY: the backend was chosen by detection or by a test from those this CPU runs.
        count += unsafe {
            match backend {
                #[cfg(target_arch = "x86_64")]
                Backend::Avx512 => tile::unsatisfied::<tile::Avx512>(z, layer, sign, lp, planned, spare),
                #[cfg(target_arch = "x86_64")]
                Backend::Avx2 => tile::unsatisfied::<tile::Avx2>(z, layer, sign, lp, planned, spare),
                Backend::Portable => tile::unsatisfied::<tile::Portable>(z, layer, sign, lp, planned, spare),
            }
        };
    }
    count
}

/// The checks whose syndrome bit the hard decisions of the padded LLRs `lp` miss, by whole rows:
/// per layer, the XOR of the rotated column blocks' LLRs, whose sign is the parity of their hard
/// decisions (an LLR below 0 means 1). The tests' reference for [`count_unsatisfied`].
#[cfg(test)]
pub(super) fn unsatisfied(code: &Code, lp: &[i16], s: &[u8], acc: &mut [i16]) -> usize {
    let z = code.z;
    let mut count = 0;
    for (layer, syn) in code.layers.iter().zip(s.chunks_exact(z)) {
        acc.fill(0);
        for b in layer {
            let at = z + b.col as usize * z + b.shift as usize;
            xor_blend(acc, &lp[at..at + z], &lp[at - z..at], z - b.shift as usize);
        }
        count += acc.iter().zip(syn).filter(|&(&x, &s)| u8::from(x < 0) != s).count();
    }
    count
}

#[cfg(test)]
/// `acc[i] ^= a[i]` for `i < k`, `b[i]` after.
#[inline(always)]
fn xor_blend(acc: &mut [i16], a: &[i16], b: &[i16], k: usize) {
    let z = acc.len();
    let (mut at, a, b) = (0, &a[..z], &b[..z]);
    for xc in acc.chunks_exact_mut(W) {
        let (ac, bc, kk) = (&a[at..at + W], &b[at..at + W], lanes_below(k, at));
        for i in 0..W {
            xc[i] ^= blend(ac[i], bc[i], LANE[i], kk);
        }
        at += W;
    }
    for i in at..z {
        acc[i] ^= if i < k { a[i] } else { b[i] };
    }
}

/// One frame to decode: its channel LLRs (overwritten) and syndrome; the result lands in `out`.
pub struct Job<'a> {
    pub llr: &'a mut [i16],
    pub syndrome: &'a [u8],
    pub out: &'a mut [u8],
}

/// Decodes every job in parallel (rayon), one scratch per worker; each result is `Some(iterations)`
/// only for a word whose syndrome was checked equal to the frame's.
pub fn decode_all(code: &Code, jobs: Vec<Job<'_>>, settings: Settings) -> Vec<Option<u32>> {
    decode_all_until(code, jobs, settings, &AtomicBool::new(false))
}

/// As [`decode_all`], the frames not yet started once `stop` is set left undecoded (`None`): the
/// caller, who set it, discards the results.
pub fn decode_all_until(code: &Code, jobs: Vec<Job<'_>>, settings: Settings, stop: &AtomicBool) -> Vec<Option<u32>> {
    jobs.into_par_iter()
        .map_init(
            || Scratch::new(code),
            |scratch, job| {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                decode(code, job.llr, job.syndrome, settings, scratch, job.out)
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::code::Spec;
    use super::super::syndrome::syndrome;
    use super::*;
    use crate::maths::xoshiro::Xoshiro256;

    /// One layer by signed ⊞ chains in the order the decoder has always used (forward sums from
    /// the first edge, backward sums from the syndrome and the last edge), scalar, each check's
    /// variables found by `(i + shift) mod z`: the reference for the layer update, which runs
    /// magnitudes and signs apart over rotated runs.
    fn naive_layer(code: &Code, layer: &[super::super::code::Block], syn: &[u8], lp: &mut [i16], r: &mut [i16]) {
        let (z, d) = (code.z, layer.len());
        if d == 0 {
            return;
        }
        for i in 0..z {
            let vars: Vec<usize> = layer.iter().map(|b| b.col as usize * z + (i + b.shift as usize) % z).collect();
            let t: Vec<i16> =
                (0..d).map(|j| lp[vars[j]].saturating_sub(r[j * z + i]).clamp(-MESSAGE, MESSAGE)).collect();
            let sign = |x: i16| if syn[i] & 1 == 1 { -x } else { x };
            let out: Vec<i16> = if d == 1 {
                vec![sign(IDENTITY)]
            } else {
                let last = d - 1;
                let forward = |j: usize| t[1..j].iter().fold(t[0], |acc, &x| boxplus(acc, x));
                let backward = |j: usize| t[j + 1..last].iter().rev().fold(sign(t[last]), |acc, &x| boxplus(acc, x));
                (0..d)
                    .map(|j| match j {
                        0 => backward(0),
                        j if j == last => sign(forward(last)),
                        j => boxplus(forward(j), backward(j)),
                    })
                    .collect()
            };
            for j in 0..d {
                r[j * z + i] = out[j];
                lp[vars[j]] = t[j].saturating_add(out[j]);
            }
        }
    }

    /// The tiled layer update on every backend this CPU runs equals the signed reference exactly,
    /// message for message and posterior for posterior, with zero, known and opposite-sign values
    /// among the inputs, a row of one circulant, `z` a multiple of the tile and not, and shifts
    /// at and beside the tile edges (rows read in place, split by a mask, or gathered).
    #[test]
    fn the_layer_update_equals_signed_chains() {
        let mut rng = Xoshiro256::from_seed(17);
        let cases = [(32, 1u64), (24, 2), (80, 3), (256, 4), (64, 5)];
        for ((z, seed), backend) in
            cases.into_iter().flat_map(|c| super::super::chain::tests::backends().into_iter().map(move |b| (c, b)))
        {
            let spec = Spec { name: "t", cols: 24, rows: 6, z, profile: &[(6, 4)], seed };
            let mut code = Code::build(&spec).unwrap();
            code.layers.push(vec![super::super::code::Block { col: 5, shift: 3 }]);
            // Shifts at and beside tile edges: rows read in place, split, and wrapped whole.
            let edges: Vec<usize> =
                [0, 1, 31, 32, 33, z.saturating_sub(32), z - 1].into_iter().filter(|&s| s < z).collect();
            code.layers.push(
                edges
                    .iter()
                    .enumerate()
                    .map(|(c, &shift)| super::super::code::Block { col: c as u32 * 3, shift: shift as u32 })
                    .collect(),
            );
            let (n, z) = (code.n(), code.z);
            for round in 0..4 {
                let mut lp = vec![0i16; n + 2 * z];
                for l in &mut lp[z..z + n] {
                    *l = match rng.next_u64() % 8 {
                        0 => 0,
                        1 => KNOWN,
                        2 => -KNOWN,
                        _ => (rng.next_u64() % 601) as i16 - 300,
                    };
                }
                let mut r: Vec<i16> = (0..code.edges())
                    .map(|_| match rng.next_u64() % 6 {
                        0 => 0,
                        _ => (rng.next_u64() % 401) as i16 - 200,
                    })
                    .collect();
                let syn: Vec<u8> = (0..code.m()).map(|_| (rng.next_u64() & 1) as u8).collect();
                let mut naive_lp = lp[z..z + n].to_vec();
                let mut naive_r = r.clone();
                let mut scratch = Scratch::new(&code);
                let gather = n + 2 * z;
                lp.resize(scratch.lp.len(), 0);
                r.resize(scratch.r.len(), 0);
                let sign: Vec<i16> = syn.iter().map(|&b| -i16::from(b)).collect();
                let mut edge = 0;
                for (i, ((layer, syn), sign)) in
                    code.layers.iter().zip(syn.chunks_exact(z)).zip(sign.chunks_exact(z)).enumerate()
                {
                    let deg = layer.len() * z;
                    naive_layer(&code, layer, syn, &mut naive_lp, &mut naive_r[edge..edge + deg]);
                    let planned = layer_plan(&scratch.plan, &scratch.plan_at, i, layer.len(), z);
                    update_layer(backend, z, layer, sign, &mut lp, gather, &mut r, edge, planned, &mut scratch.rows);
                    assert_eq!(&r[edge..edge + deg], &naive_r[edge..edge + deg], "{backend:?} z {z} round {round}");
                    assert_eq!(&lp[z..z + n], &naive_lp[..], "{backend:?} z {z} round {round}");
                    edge += deg;
                }
            }
        }
    }

    /// The tiled count of unsatisfied checks on every backend equals the count by whole rows, for
    /// `z` a multiple of the tile and not, LLRs of both signs and 0, in the decoder's layout.
    #[test]
    fn every_backend_counts_unsatisfied_checks_as_the_rows_do() {
        let mut rng = Xoshiro256::from_seed(23);
        for (z, seed) in [(16, 1u64), (24, 2), (48, 3), (64, 4), (256, 5)] {
            let spec = Spec { name: "t", cols: 24, rows: 6, z, profile: &[(6, 4)], seed };
            let code = Code::build(&spec).unwrap();
            let mut scratch = Scratch::new(&code);
            let mut acc = vec![0i16; z];
            for _ in 0..10 {
                // LLRs of every sign, zero included (a 0 is a hard 0); the padding and spare rows
                // hold what a decode leaves there: anything.
                let lp: Vec<i16> = (0..scratch.lp.len()).map(|_| (rng.next_u64() % 7) as i16 - 3).collect();
                let s: Vec<u8> = (0..code.m()).map(|_| (rng.next_u64() & 1) as u8).collect();
                let sign: Vec<i16> = s.iter().map(|&b| -i16::from(b)).collect();
                let rows = unsatisfied(&code, &lp, &s, &mut acc);
                assert!(rows > 0);
                for backend in super::super::chain::tests::backends() {
                    assert_eq!(
                        count_unsatisfied(
                            backend,
                            &code,
                            &lp,
                            &sign,
                            &scratch.plan,
                            &scratch.plan_at,
                            &mut scratch.rows
                        ),
                        rows,
                        "{backend:?} z {z}"
                    );
                }
            }
        }
    }

    /// A scratch made for another code (another size, or the same size with other shifts) is
    /// remade: the decode equals one with a fresh scratch.
    #[test]
    fn a_scratch_made_for_another_code_is_remade() {
        let a = Code::build(&Spec { name: "a", cols: 16, rows: 6, z: 64, profile: &[(6, 3)], seed: 1 }).unwrap();
        let b = Code::build(&Spec { name: "b", cols: 16, rows: 6, z: 64, profile: &[(6, 3)], seed: 2 }).unwrap();
        let c = Code::build(&Spec { name: "c", cols: 24, rows: 6, z: 128, profile: &[(6, 3)], seed: 3 }).unwrap();
        assert_ne!(a.layers, b.layers);
        let mut rng = Xoshiro256::from_seed(24);
        for (made_for, code) in [(&a, &b), (&c, &a), (&a, &c)] {
            let x: Vec<u8> = (0..code.n()).map(|_| (rng.next_u64() & 1) as u8).collect();
            let s = syndrome(code, &x);
            let l = channel_llr(0.02);
            let llr: Vec<i16> =
                x.iter().map(|&b| if (b == 1) != (rng.next_u64() % 100 < 2) { -l } else { l }).collect();
            let (mut used, mut fresh) = (llr.clone(), llr);
            let (mut out_used, mut out_fresh) = (vec![0u8; code.n()], vec![0u8; code.n()]);
            let mut scratch = Scratch::new(made_for);
            let ru = decode(code, &mut used, &s, Settings::default(), &mut scratch, &mut out_used);
            let rf = decode(code, &mut fresh, &s, Settings::default(), &mut Scratch::new(code), &mut out_fresh);
            assert_eq!((ru, &used, &out_used), (rf, &fresh, &out_fresh));
        }
    }

    /// The iteration at which `Stall` gives up `counts`, if it does.
    fn given_up_at(settings: Settings, counts: &[usize]) -> Option<usize> {
        let mut stall = Stall::new(settings);
        counts.iter().position(|&u| stall.give_up(u)).map(|i| i + 1)
    }

    /// Without a progress margin the rule is the plain one: give up once the running minimum has
    /// not fallen for `stall` iterations, checked against prefix minima computed naively.
    #[test]
    fn without_a_margin_a_frame_is_given_up_after_stall_iterations_without_a_new_minimum() {
        let mut rng = Xoshiro256::from_seed(5);
        for _ in 0..200 {
            let counts: Vec<usize> = (0..60).map(|_| 900 + (rng.next_u64() % 200) as usize).collect();
            let stall = 1 + (rng.next_u64() % 14) as u32;
            let settings = Settings { max_iterations: 60, stall, progress: 0 };
            // Iteration i (1-based) is a new minimum when its count is below all earlier ones.
            let expected = (1..=counts.len()).find(|&i| {
                let last_low = (1..=i).filter(|&j| counts[..j - 1].iter().all(|&c| counts[j - 1] < c)).max().unwrap();
                i - last_low >= stall as usize
            });
            assert_eq!(given_up_at(settings, &counts), expected, "stall {stall}");
        }
    }

    /// A noisy plateau (±2 % about 1000, as failing frames show) is given up `stall` iterations
    /// after its first count with the margin of 1/32, and no sooner without it; a count falling
    /// 4 % an iteration, as converging frames do, is never given up.
    #[test]
    fn a_plateau_is_given_up_at_once_and_a_steady_fall_never() {
        let mut rng = Xoshiro256::from_seed(6);
        let with = Settings { max_iterations: 60, stall: 12, progress: 5 };
        let without = Settings { progress: 0, ..with };
        let mut sooner = 0;
        for _ in 0..100 {
            let mut counts: Vec<usize> = (0..60).map(|_| 980 + (rng.next_u64() % 41) as usize).collect();
            counts[0] = 1000;
            let a = given_up_at(with, &counts).unwrap();
            assert_eq!(a, 13);
            let b = given_up_at(without, &counts).unwrap();
            assert!(b >= a);
            sooner += usize::from(b > a);
        }
        assert!(sooner > 50, "the margin gave up sooner in {sooner} of 100 plateaus");
        let mut falling = vec![2000usize];
        while *falling.last().unwrap() > 0 {
            let last = *falling.last().unwrap();
            falling.push(last - (last / 25).max(1));
        }
        assert_eq!(given_up_at(with, &falling), None);
    }

    /// Rows of one circulant and of none (which the shipped constructions never make) neither
    /// panic nor break the guarantee: a returned word has the syndrome, and the paths agree.
    #[test]
    fn rows_of_one_circulant_or_none_decode_safely() {
        let spec = Spec { name: "t", cols: 12, rows: 4, z: 32, profile: &[(4, 2)], seed: 9 };
        let mut code = Code::build(&spec).unwrap();
        code.layers.push(vec![super::super::code::Block { col: 3, shift: 5 }]);
        code.layers.push(Vec::new());
        let mut rng = Xoshiro256::from_seed(9);
        let (mut fast, mut slow) = (Scratch::new(&code), Scratch::new(&code));
        let mut decoded = 0;
        for _ in 0..10 {
            let x: Vec<u8> = (0..code.n()).map(|_| (rng.next_u64() & 1) as u8).collect();
            let s = syndrome(&code, &x);
            let l = channel_llr(0.02);
            let llr: Vec<i16> =
                x.iter().map(|&b| if (b == 1) != (rng.next_u64() % 100 < 2) { -l } else { l }).collect();
            let (mut a, mut b) = (llr.clone(), llr);
            let (mut out_a, mut out_b) = (vec![0u8; code.n()], vec![0u8; code.n()]);
            let ra = decode(&code, &mut a, &s, Settings::default(), &mut fast, &mut out_a);
            let rb = decode_on(Backend::Portable, &code, &mut b, &s, Settings::default(), &mut slow, &mut out_b);
            assert_eq!((ra, &a), (rb, &b));
            if ra.is_some() {
                assert_eq!(syndrome(&code, &out_a), s);
                decoded += 1;
            }
        }
        assert!(decoded > 0);
    }

    /// Every vector backend the CPU has (AVX-512, AVX2) takes the same decisions as the portable
    /// one, word for word and LLR for LLR, on row lengths that fill the vector blocks exactly,
    /// partly and not at all; and `decode` uses the widest.
    #[test]
    fn every_backend_decodes_as_the_portable_one() {
        let backends = super::super::chain::tests::backends();
        assert_eq!(best_backend(), *backends.last().unwrap());
        for (z, seed, backend) in [(64, 1u64), (48, 2), (24, 3), (80, 4), (256, 5)]
            .into_iter()
            .flat_map(|(z, seed)| backends.iter().skip(1).map(move |&b| (z, seed, b)))
        {
            let spec = Spec { name: "t", cols: 16, rows: 6, z, profile: &[(6, 3)], seed };
            let code = Code::build(&spec).unwrap();
            let mut rng = Xoshiro256::from_seed(seed);
            let (mut fast, mut slow) = (Scratch::new(&code), Scratch::new(&code));
            let mut decoded = 0;
            for frame in 0..30 {
                // From easy to beyond the code's capacity, so that both outcomes occur.
                let q = 0.01 + 0.004 * frame as f64;
                let x: Vec<u8> = (0..code.n()).map(|_| (rng.next_u64() & 1) as u8).collect();
                let s = syndrome(&code, &x);
                let l = channel_llr(q);
                let llr: Vec<i16> = x
                    .iter()
                    .map(|&b| {
                        let flip = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= q;
                        if (b == 1) != flip {
                            -l
                        } else {
                            l
                        }
                    })
                    .collect();
                let (mut a, mut b) = (llr.clone(), llr);
                let (mut out_a, mut out_b) = (vec![0u8; code.n()], vec![0u8; code.n()]);
                let ra = decode_on(backend, &code, &mut a, &s, Settings::default(), &mut fast, &mut out_a);
                let rb = decode_on(Backend::Portable, &code, &mut b, &s, Settings::default(), &mut slow, &mut out_b);
                assert_eq!(ra, rb, "{backend:?} z {z} frame {frame}");
                assert_eq!(a, b, "{backend:?} z {z} frame {frame}");
                if rb.is_some() {
                    assert_eq!(out_a, out_b);
                    assert_eq!(syndrome(&code, &out_b), s);
                    decoded += 1;
                }
            }
            assert!((5..30).contains(&decoded), "{backend:?} z {z}: {decoded} of 30 decoded");
        }
    }
}

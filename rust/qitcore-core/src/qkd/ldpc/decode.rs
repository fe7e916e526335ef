//! Layered normalised min-sum syndrome decoding in 16-bit fixed point.
//!
//! Each base row is a layer of `z` checks that touch disjoint variables (a circulant is a
//! permutation), so a layer updates `z` checks at once: every loop below runs over the `z` rows of
//! a circulant, whose variables are two contiguous slices of the column block, and vectorises.
//! The check-to-variable message carries the syndrome bit in its sign: a check `c` with syndrome
//! `s_c` tells variable `v` that its value is `s_c ⊕` (the XOR of the other variables' values).
//! Layered decoding converges in about half the iterations of flooding; the normalisation 3/4
//! corrects min-sum's overestimate of the check messages.

use rayon::prelude::*;

use super::code::Code;
use super::syndrome::satisfies;

/// Fixed-point LLR units per nat.
pub const SCALE: f64 = 8.0;
/// The LLR of a symbol whose value both ends know (shortened or revealed).
pub const KNOWN: i16 = 8000;

/// The decoder's limits.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub max_iterations: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { max_iterations: 60 }
    }
}

/// The fixed-point channel LLR of a BSC with crossover `q`: positive means 0.
pub fn channel_llr(q: f64) -> i16 {
    let l = ((1.0 - q) / q).ln() * SCALE;
    l.round().clamp(1.0, f64::from(KNOWN)) as i16
}

/// Per-thread buffers: the check messages of every edge and one layer's variable messages.
pub struct Scratch {
    r: Vec<i16>,
    t: Vec<i16>,
    min1: Vec<i16>,
    min2: Vec<i16>,
    arg: Vec<u8>,
    sign: Vec<u8>,
    hard: Vec<u8>,
    check: Vec<u8>,
}

impl Scratch {
    pub fn new(code: &Code) -> Self {
        let z = code.z;
        Scratch {
            r: vec![0; code.edges()],
            t: vec![0; code.max_row_degree() * z],
            min1: vec![0; z],
            min2: vec![0; z],
            arg: vec![0; z],
            sign: vec![0; z],
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
    debug_assert_eq!(llr.len(), code.n());
    debug_assert!(code.max_row_degree() <= 256);
    scratch.r.fill(0);
    for iteration in 1..=settings.max_iterations {
        let mut edge = 0;
        for (layer, syn) in code.layers.iter().zip(s.chunks_exact(code.z)) {
            let deg = layer.len() * code.z;
            let parts = Parts {
                t: &mut scratch.t,
                min1: &mut scratch.min1,
                min2: &mut scratch.min2,
                arg: &mut scratch.arg,
                sign: &mut scratch.sign,
            };
            update_layer(code, layer, syn, llr, &mut scratch.r[edge..edge + deg], parts);
            edge += deg;
        }
        for (h, &l) in scratch.hard.iter_mut().zip(llr.iter()) {
            *h = u8::from(l < 0);
        }
        if satisfies(code, &scratch.hard, s, &mut scratch.check) {
            out.copy_from_slice(&scratch.hard);
            return Some(iteration);
        }
    }
    None
}

struct Parts<'a> {
    t: &'a mut [i16],
    min1: &'a mut [i16],
    min2: &'a mut [i16],
    arg: &'a mut [u8],
    sign: &'a mut [u8],
}

/// One layer: variable-to-check messages `t = L − R`, the two smallest magnitudes and the sign
/// parity per check, then the new `R` and `L = t + R`.
#[inline(always)]
fn update_layer(code: &Code, layer: &[super::code::Block], syn: &[u8], llr: &mut [i16], r: &mut [i16], p: Parts<'_>) {
    let z = code.z;
    p.min1.fill(i16::MAX);
    p.min2.fill(i16::MAX);
    p.arg.fill(0);
    p.sign.copy_from_slice(syn);
    for (j, b) in layer.iter().enumerate() {
        let col = b.col as usize * z;
        let shift = b.shift as usize;
        let t = &mut p.t[j * z..(j + 1) * z];
        let rj = &r[j * z..(j + 1) * z];
        let l = &llr[col..col + z];
        // Check i meets variable (i + shift) mod z: two contiguous runs.
        let (t_head, t_tail) = t.split_at_mut(z - shift);
        let (r_head, r_tail) = rj.split_at(z - shift);
        for ((t, &r), &l) in t_head.iter_mut().zip(r_head).zip(&l[shift..]) {
            *t = l.saturating_sub(r);
        }
        for ((t, &r), &l) in t_tail.iter_mut().zip(r_tail).zip(&l[..shift]) {
            *t = l.saturating_sub(r);
        }
        let jj = j as u8;
        for ((((&t, m1), m2), a), sg) in
            t.iter().zip(p.min1.iter_mut()).zip(p.min2.iter_mut()).zip(p.arg.iter_mut()).zip(p.sign.iter_mut())
        {
            let mag = t.saturating_abs();
            *sg ^= u8::from(t < 0);
            *m2 = (*m2).min(mag.max(*m1));
            *a = if mag < *m1 { jj } else { *a };
            *m1 = (*m1).min(mag);
        }
    }
    for (j, b) in layer.iter().enumerate() {
        let col = b.col as usize * z;
        let shift = b.shift as usize;
        let t = &p.t[j * z..(j + 1) * z];
        let rj = &mut r[j * z..(j + 1) * z];
        let jj = j as u8;
        for (((((r, &t), &m1), &m2), &a), &sg) in
            rj.iter_mut().zip(t).zip(p.min1.iter()).zip(p.min2.iter()).zip(p.arg.iter()).zip(p.sign.iter())
        {
            let mag = if a == jj { m2 } else { m1 };
            // Normalised by 3/4 (in 32 bits: magnitudes reach i16::MAX).
            let mag = ((i32::from(mag) * 3) >> 2) as i16;
            *r = if (sg ^ u8::from(t < 0)) == 1 { -mag } else { mag };
        }
        let l = &mut llr[col..col + z];
        let (t_head, t_tail) = t.split_at(z - shift);
        let (r_head, r_tail) = rj.split_at(z - shift);
        let (l_low, l_high) = l.split_at_mut(shift);
        for ((l, &t), &r) in l_high.iter_mut().zip(t_head).zip(r_head) {
            *l = t.saturating_add(r);
        }
        for ((l, &t), &r) in l_low.iter_mut().zip(t_tail).zip(r_tail) {
            *l = t.saturating_add(r);
        }
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
    jobs.into_par_iter()
        .map_init(|| Scratch::new(code), |scratch, job| decode(code, job.llr, job.syndrome, settings, scratch, job.out))
        .collect()
}

//! Quasi-cyclic LDPC mother codes: a base matrix of circulant shifts (or none) lifted by `z`.
//!
//! Construction (designed here, deterministic from the code's spec and the lift): a base matrix of
//! `cols = 160` columns and `rows` rows lifted by `z` (the spec's 256, or any of the [`LIFTS`] up
//! to 1024: n = 40,960 to 163,840 bits), rate `1 − rows/cols`; one rate-0.9 code has 320 columns
//! and 32 rows, lifted by half as much for the same frames (see [`SPECS`]).
//! - The last `rows − 1` columns form a staircase of degree 2 (column `j` joins rows `j` and
//!   `j + 1`, shift 0): the degree-2 variables form open chains, so they alone support no codeword,
//!   and the code keeps the large fraction of degree-2 variables that good BSC ensembles have.
//! - The information columns follow the spec's profile of (degree, count) pairs, the rest degree
//!   3: a few columns of high degree (12–24), in most codes a band of degree 6, in the spirit of the irregular
//!   ensembles optimised for the BSC by Elkouss, Leverrier, Alléaume, Boutros (ISIT 2009), whose
//!   variable degrees are {2, 3, a middle degree, a high one}. `z = 256` makes room for the high
//!   degrees (a column of degree `d` needs `d` rows and 4-cycle-free shifts among them). Each
//!   column takes the least loaded rows, so the check degrees stay nearly even (the
//!   concentrated check distribution those ensembles use).
//! - Shifts, column by column (PEG-like, see `girth.rs`): among the shifts closing no 4-cycle with
//!   what is placed, those closing the fewest 6-cycles, ties broken by a xoshiro256** seeded by the
//!   spec's seed. For rows `r`, `r'` and columns `c`, `c'` all present, the lifted graph has a
//!   4-cycle exactly when `s(r,c) − s(r',c) + s(r',c') − s(r,c') ≡ 0 (mod z)`.
//!
//! Why these profiles: chosen by measuring the frame error rate over a simulated BSC at a fixed
//! efficiency with `examples/ldpc_design.rs` (candidate spec on the command line) and the shipped
//! family with `examples/ldpc_fer.rs`. Measured there (1000 frames per point, no blind round, no
//! punctured symbol): at f = 1.15 the codes for QBER 4–8 % fail ≤ 1.5 % of frames, those for 2–3 %
//! about a fifth; at f = 1.2 they fail ≤ 1.2 %. Punctured symbols cost much more than shortened
//! ones: at QBER 6 % and f = 1.1, 7 % of frames fail unpunctured, 65 % with the 2684 punctured
//! symbols of two blind steps of 0.1. Extra degree-2 columns beside the staircase were tried in the
//! rate-0.9 code and dropped: with the staircase they closed a codeword of weight 8 on degree-2
//! variables alone, and frames converged to another word with the same syndrome. No choice of
//! shifts avoids that: two independent cycles of the base graph among degree-2 columns, of `L1` and
//! `L2` columns, lift to a cycle of at most `2·(L1 + L2)` variables whatever the shifts (the walk
//! around the first, the second, the first backwards and the second backwards: its shifts cancel in
//! the cyclic lift), a codeword of degree-2 variables alone; a search for shifts keeping every such
//! codeword at 64 bits or more found none for the second extra column of a 16-row code (every shift
//! left a lighter one; the first twenty tried, one of 20 bits). So a code keeps at most one extra
//! degree-2 column, and density evolution (`density.rs`) says more would not pay at rate 0.9
//! anyway: four of the degree-8 columns made degree 2 lower its threshold from 0.01168 to 0.01130
//! (one degree-4 column made degree 2: 0.01168).
//!
//! BP thresholds by density evolution (`examples/ldpc_threshold.rs`) of the unstructured ensembles
//! with the shipped codes' degree distributions (the base matrix's structure dropped), as crossover
//! `p*` and the efficiency `f* = (1 − R)/h(p*)` long frames of them reach under BP: rate 0.9
//! 0.01168 (f* 1.090), 0.85 0.01870 (1.119), 0.8 0.02744 (1.103), 0.75 0.03795 (1.074), 0.7 0.04863
//! (1.069), 0.6 0.07119 (1.080), 0.5 0.0725 (1.333: its staircase makes half the columns degree 2,
//! λ2 ≈ 0.19, near the stability bound λ2·ρ'(1) < 1/(2√(p(1 − p))), which caps the ensemble's
//! threshold at about 0.085 whatever the other columns; the plan uses it shortened, from QBER 8 %,
//! where `ldpc_fer` measures f 1.12). These are the mother codes' ensembles' thresholds,
//! unshortened and unpunctured: shortening and puncturing move them. Moving a few columns between
//! degrees around the rate-0.9 profile lowered its threshold in every direction tried but one
//! (16:28,8:24, the degree-4 band moved to degree 16: 0.01177, a frame error rate unpunctured at
//! QBER 1.0 % of 1.8 % against 3.2 %, 500 frames: within noise; in the plan, `ldpc_fer` with 4000
//! frames at QBER 0.8 / 1 %, f 1.225 / 1.179 against 1.244 / 1.184, but 7 frames lost at 1 %
//! against 4, above the 10^-3 the plan keeps: the degree-4 band holds the frame error rate down, as
//! before). At rate 0.85, 24:24,8:20 raises the threshold to 0.01907 (f* 1.102) and unpunctured
//! fails fewer frames (QBER 1.8 %: 11.2 % against 20.2 % of 500), but in the plan, punctured and
//! with blind rounds (`ldpc_fer`, 2000 frames a QBER), its first attempts failed more often (QBER
//! 1.25 / 1.5 / 1.75 %: 61 / 33 / 34 % against 44 / 28 / 24 %) for the same f (1.202 / 1.169 /
//! 1.168 against 1.207 / 1.168 / 1.161): the threshold of the unpunctured mother code does not rank
//! codes at the plan's working points, which puncture their highest-degree columns. A Gaussian
//! approximation of the check messages (the channel's two values kept) ranked them worse still: it
//! put the rate-0.9 code at f* 1.056 and preferred extra degree-2 columns that density evolution
//! rejects. Nor is the largest degree (the rows) the limit: on a base matrix of 32 × 320
//! (`LDPC_COLS=320`) the shipped rate-0.9 profile doubled has its threshold (0.01169), and columns
//! of degree 24 or 32 lower it (24:56,8:48 0.01166, 32:56,8:48 0.01095, 32:48,16:20,8:40 0.01077).
//! Reaching f ≈ 1.1 at QBER 1–3 % would take codes designed by density evolution for each rate:
//! longer frames alone sharpen the transition but do not move it. The rate-0.9 spec lifted by z =
//! 256, 512 and 1024 (`ldpc_design`, 300 frames at QBER 1 %, d = 0.0557, random puncturing) failed
//! 85, 83 and 89 % of frames at f = 1.10 and 13.7, 3.0 and 0.3 % at f = 1.20. And a frame's fate is
//! decided mostly by its own number of errors (`ldpc_fer` with `LDPC_DIAG`: at QBER 1 % and f 1.12,
//! 15 % of the quarter of frames with fewest errors failed their first attempt, all of the quarter
//! with most), so the blind rounds cannot do much better than fixed steps: asking each failed frame
//! for what the errors its posterior still expects would need (kept out, measured no better than
//! fixed steps at QBER 1–5 %).
//!
//! Circulant `s` joins check `i` of its row block to variable `(i + s) mod z` of its column block.

use std::sync::Mutex;

use super::girth::Cycles;
use crate::error::{Error, Result};
use crate::maths::xoshiro::Xoshiro256;

/// One circulant of a base row: its column block and shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub col: u32,
    pub shift: u32,
}

/// What a mother code is built from.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub name: &'static str,
    pub cols: usize,
    pub rows: usize,
    pub z: usize,
    /// The information columns' degrees, as (degree, columns) pairs, highest first; the columns
    /// left over have degree 3.
    pub profile: &'static [(usize, usize)],
    pub seed: u64,
}

/// A lifted quasi-cyclic parity-check matrix: `layers[r]` lists the circulants of base row `r`.
#[derive(Clone, Debug)]
pub struct Code {
    pub name: &'static str,
    pub z: usize,
    pub cols: usize,
    pub layers: Vec<Vec<Block>>,
}

/// The shipped mother codes, lowest rate first: n = 160 × 256 = 40960 bits as specified (any of
/// the [`LIFTS`] up to 160 × 1024 as a plan lifts them), rates 0.5 to 0.9. The measurements below
/// were made on the 40,960-bit frames.
/// The rate-0.9 code mixes degrees 16, 8, 4 and 3 among its information columns: its check degree
/// is ~57 already, so most columns stay light. Candidate profiles are compared with
/// `examples/ldpc_design.rs`, which punctures as the plan does (untainted at rates ≥ 0.75).
///
/// The band of degree 8 in the codes of rate 0.75 and 0.8 (was degree 6): frames failing at the
/// first attempt's plan (ldpc_design, 500 frames, p and s as the plan has them): rate 0.8 at
/// QBER 2 %, f 1.14: 20:16,6:30 28.8, 28.6 % (two seeds) → 20:16,8:24 13.6, 12.2 % (20:20,8:20
/// 13.2, 20:16,10:20 13.6, 20:16,8:30 19.8, 24:16,6:30 24.2, 16:24,8:24 49.2 %); rate 0.75 at 3 %,
/// f 1.12: 24:16,6:30 15.2 → 24:16,8:24 8.6 % (20:16,8:24 10.2, 24:16,10:20 12.6 %). Kept: rate 0.7
/// (at 5 %, f 1.10, random puncturing: 24:16,6:30 27.8 %, 24:16,8:24 54 %), rate 0.85 (at 1.5 %,
/// f 1.14: 12:40 26.6 %, 16:24,8:24 26.8, 16:16,8:30 29.4 %) and rate 0.9: there 16:24,8:24 (the
/// degree-4 band dropped) failed fewer first attempts (QBER 1 %, f 1.14, 1000 frames: 46.5 →
/// 38.2 %) but more at f 1.30, where the last blind round ends (0 → 6 of 1000; 4:10 kept, 2), and
/// in `ldpc_fer` lost 9 frames of 1000 at QBER 1 % against 1: the degree-4 columns hold the
/// frame error rate down. Extra degree-2 columns (16:24,8:24 with 2:8 or 2:16) gave frames decoded
/// to another word (12 of 300).
///
/// The last spec is a second rate-0.9 code on a base of 320 columns and 32 rows, lifted by half
/// the frame's lift (the same frame lengths), for the lifts where that half is a multiple of the
/// decoder's tile ([`Spec::fits`]): its columns reach degree 32, which the 16-row base cannot.
/// Its profile was found by a search by density evolution (simulated annealing over column counts
/// under the construction's limits, each candidate screened on a grid of 0.2 nats saturated at 25,
/// which kept the exact grid's order on every profile checked): threshold p* 0.01219 (f* 1.053)
/// against the 16-row code's 0.01168 (1.090), where that base's best found was 0.01176. Measured
/// in the plan (`examples/ldpc_fer.rs`, 3,000 frames of 163,840 bits at QBER 1 %, first attempt at
/// 1.10, blind steps of 0.04): f 1.121 against 1.146, no frame lost; with the schedule's first
/// attempt at 1.12 (1,000 frames), 1.128 against 1.145. Where both fit, the plan takes it (the
/// later spec of equal rate).
pub const SPECS: [Spec; 8] = [
    spec("qc160x80z256", 80, &[(24, 20)], 0x1d9c_5001),
    spec("qc160x64z256", 64, &[(24, 16), (6, 30)], 0x1d9c_6001),
    spec("qc160x48z256", 48, &[(24, 16), (6, 30)], 0x1d9c_7001),
    spec("qc160x40z256", 40, &[(24, 16), (8, 24)], 0x1d9c_7501),
    spec("qc160x32z256", 32, &[(20, 16), (8, 24)], 0x1d9c_8001),
    spec("qc160x24z256", 24, &[(12, 40)], 0x1d9c_8501),
    spec("qc160x16z256", 16, &[(16, 24), (8, 24), (4, 20)], 0x1d9c_9001),
    Spec {
        name: "qc320x32z192",
        cols: 320,
        rows: 32,
        z: 192,
        profile: &[(32, 21), (24, 8), (16, 5), (12, 7), (10, 18), (8, 49), (6, 2), (5, 8)],
        seed: 0x1d9c_9001,
    },
];

/// Columns of the frame-length unit: a frame lifted by `z` (one of the [`LIFTS`]) has
/// `BASE_COLS · z` bits whatever its code's base (a base of `cols` columns is lifted by
/// `z · BASE_COLS / cols`).
pub const BASE_COLS: usize = 160;

const fn spec(name: &'static str, rows: usize, profile: &'static [(usize, usize)], seed: u64) -> Spec {
    Spec { name, cols: 160, rows, z: 256, profile, seed }
}

/// The step between the lifts a plan may choose ([`LIFTS`]): a multiple of the decoder's tile.
pub const Z_STEP: usize = 64;
/// The largest lift: frames of 160 × 1024 = 163,840 bits.
pub const Z_MAX: usize = 1024;
/// The lifts a plan may choose, 256 to [`Z_MAX`] in steps of [`Z_STEP`], shortest first.
///
/// Why longer frames: the frame error rate falls more steeply with the efficiency the longer the
/// frame, so a plan on long frames can aim its first attempt nearer the codes' thresholds.
/// Measured (`make soak`, 2,000 frames a QBER, blind rounds included, each lift at its own
/// schedule, `adapt::schedule`): on the codes lifted by 1024, f 1.146 / 1.120 / 1.096 / 1.093 /
/// 1.091 at QBER 1 / 2 / 3 / 4 / 5 %, against 1.184 / 1.155 / 1.126 / 1.124 / 1.125 lifted by
/// 256. Lifts between let a block be cut into frames it fills (`adapt::lift`); measured
/// (`examples/ldpc_fer.rs` with `LDPC_Z`, 1,000 frames) at QBER 1 / 2 / 3 / 5 %: lifted by 448,
/// f 1.161 / 1.134 / 1.109 / 1.107; by 640, 1.152 / 1.133 / 1.101 / 1.099; by 832, 1.149 / 1.124
/// / 1.097 / 1.095.
pub const LIFTS: [usize; (Z_MAX - 256) / Z_STEP + 1] = {
    let mut z = [0; (Z_MAX - 256) / Z_STEP + 1];
    let mut k = 0;
    while k < z.len() {
        z[k] = 256 + k * Z_STEP;
        k += 1;
    }
    z
};

/// `qc{cols}x{rows}z{circulant}`: the name of `spec` for frames lifted by `z`.
fn lifted_name(spec: &Spec, z: usize) -> String {
    format!("qc{}x{}z{}", spec.cols, spec.rows, spec.circulant(z))
}

impl Spec {
    /// The circulants' size for frames lifted by `z`: `z · BASE_COLS / cols`.
    pub fn circulant(&self, z: usize) -> usize {
        z * BASE_COLS / self.cols
    }

    /// Whether the spec serves frames lifted by `z` (one of the [`LIFTS`]): its circulants a
    /// whole multiple of the decoder's tile ([`Z_STEP`]) and at least its own lift (below it the
    /// 320-column base has no 4-cycle-free shifts: none at 128).
    pub fn fits(&self, z: usize) -> bool {
        (z * BASE_COLS).is_multiple_of(self.cols)
            && self.circulant(z).is_multiple_of(Z_STEP)
            && self.circulant(z) >= self.z
            && LIFTS.contains(&z)
    }
}

impl Code {
    /// Bits in a frame.
    pub fn n(&self) -> usize {
        self.cols * self.z
    }

    /// Syndrome bits (checks).
    pub fn m(&self) -> usize {
        self.layers.len() * self.z
    }

    /// The design rate `1 − m/n`.
    pub fn rate(&self) -> f64 {
        1.0 - self.m() as f64 / self.n() as f64
    }

    /// Edges of the lifted graph.
    pub fn edges(&self) -> usize {
        self.layers.iter().map(Vec::len).sum::<usize>() * self.z
    }

    /// The largest check degree (blocks in a base row).
    pub fn max_row_degree(&self) -> usize {
        self.layers.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// The shipped code named `name` (`qc{cols}x{rows}z{circulant}`: a spec of [`SPECS`] for
    /// one of the [`LIFTS`] it fits), built once per process.
    pub fn named(name: &str) -> Result<&'static Code> {
        for (i, spec) in SPECS.iter().enumerate() {
            for z in LIFTS {
                if spec.fits(z) && lifted_name(spec, z) == name {
                    return Code::lifted(i, z);
                }
            }
        }
        let bases: Vec<String> = SPECS.iter().map(|s| format!("qc{}x{}", s.cols, s.rows)).collect();
        Err(Error::argument(
            "code",
            format!(
                "expected one of {} with z{{circulant}}, the circulant a multiple of {Z_STEP} from 256 \
                 to {Z_MAX} (192 to 512 on the 320-column base), got {name:?}",
                bases.join(", ")
            ),
        ))
    }

    /// Spec `i` of [`SPECS`] for frames lifted by `z` (one of the [`LIFTS`] it fits), built once
    /// per process: the same base matrix design, its shifts drawn for its circulants (at its own
    /// lift, the spec's own code).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an index past [`SPECS`] or a `z` not among the [`LIFTS`]
    /// the spec fits.
    pub fn lifted(i: usize, z: usize) -> Result<&'static Code> {
        // At most 97 codes (7 specs × 13 lifts, and the 320-column spec at 6), each kept for the
        // process's life: bounded.
        static BUILT: Mutex<Vec<(usize, usize, &'static Code)>> = Mutex::new(Vec::new());
        let Some(spec) = SPECS.get(i) else {
            return Err(Error::argument("code", format!("no shipped spec {i}")));
        };
        if !spec.fits(z) {
            return Err(Error::argument(
                "z",
                format!("expected a multiple of {Z_STEP} from 256 to {Z_MAX} that {} fits, got {z}", spec.name),
            ));
        }
        let mut built = BUILT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(&(_, _, code)) = built.iter().find(|&&(j, y, _)| j == i && y == z) {
            return Ok(code);
        }
        let circulant = spec.circulant(z);
        let mut code = Code::build(&Spec { z: circulant, ..*spec })?;
        // Named once built (a failed build leaks nothing).
        code.name = if circulant == spec.z { spec.name } else { Box::leak(lifted_name(spec, z).into_boxed_str()) };
        let code: &'static Code = Box::leak(Box::new(code));
        built.push((i, z, code));
        Ok(code)
    }

    /// The base matrix of `spec` with 4-cycle-free shifts.
    pub fn build(spec: &Spec) -> Result<Code> {
        let Spec { cols, rows, z, profile, .. } = *spec;
        let listed: usize = profile.iter().map(|&(_, k)| k).sum();
        if rows < 3
            || cols <= rows
            || z < 2
            || profile.iter().any(|&(d, _)| d < 2 || d > rows)
            || listed > cols - rows + 1
        {
            return Err(Error::argument("spec", format!("no code of {rows} × {cols} blocks of {z}")));
        }
        let degrees: Vec<usize> = profile.iter().flat_map(|&(d, k)| std::iter::repeat_n(d, k)).collect();
        let mut rng = Xoshiro256::from_seed(spec.seed);
        let info = cols - (rows - 1);
        // rows_of[c]: the base rows of column c.
        let mut rows_of: Vec<Vec<usize>> = vec![Vec::new(); cols];
        let mut degree = vec![0usize; rows];
        for (c, col_rows) in rows_of.iter_mut().enumerate().take(info) {
            let d = degrees.get(c).copied().unwrap_or(3);
            // The least loaded rows, ties broken at random.
            let mut order: Vec<(usize, u64, usize)> = (0..rows).map(|r| (degree[r], rng.next_u64(), r)).collect();
            order.sort_unstable();
            for &(_, _, r) in order.iter().take(d) {
                col_rows.push(r);
                degree[r] += 1;
            }
            col_rows.sort_unstable();
        }
        for j in 0..rows - 1 {
            rows_of[info + j] = vec![j, j + 1];
        }
        // shift[r][c]: Some(shift) where the base matrix has a circulant.
        let mut shift: Vec<Vec<Option<u32>>> = vec![vec![None; cols]; rows];
        let mut cycles = Cycles::new(rows, cols, z);
        for j in 0..rows - 1 {
            shift[j][info + j] = Some(0);
            shift[j + 1][info + j] = Some(0);
            cycles.add_column(info + j, &[(j, 0), (j + 1, 0)]);
        }
        let (mut four, mut six) = (vec![false; z], vec![0u32; z]);
        for c in 0..info {
            let mut placed: Vec<(usize, u32)> = Vec::new();
            for &r in &rows_of[c] {
                cycles.forbidden(r, &placed, &mut four, &mut six);
                // Among the shifts closing no 4-cycle, those closing the fewest 6-cycles.
                let fewest = (0..z).filter(|&s| !four[s]).map(|s| six[s]).min();
                let Some(fewest) = fewest else {
                    return Err(Error::argument("spec", format!("{}: no 4-cycle-free shift", spec.name)));
                };
                let free: Vec<u32> =
                    (0..z as u32).filter(|&s| !four[s as usize] && six[s as usize] == fewest).collect();
                let s = free[rng.below_or_equal(free.len() as u64 - 1) as usize];
                placed.push((r, s));
            }
            for &(r, s) in &placed {
                shift[r][c] = Some(s);
            }
            cycles.add_column(c, &placed);
        }
        let layers = shift
            .iter()
            .map(|row| {
                row.iter().enumerate().filter_map(|(c, s)| s.map(|s| Block { col: c as u32, shift: s })).collect()
            })
            .collect();
        Ok(Code { name: spec.name, z, cols, layers })
    }

    /// Whether the lifted graph has a 4-cycle (the condition on shift sums, checked over all pairs).
    pub fn has_4_cycle(&self) -> bool {
        let z = self.z as i64;
        let at = |r: usize, c: u32| self.layers[r].iter().find(|b| b.col == c).map(|b| i64::from(b.shift));
        for r in 0..self.layers.len() {
            for r2 in r + 1..self.layers.len() {
                let shared: Vec<(i64, i64)> =
                    self.layers[r].iter().filter_map(|b| at(r2, b.col).map(|s2| (i64::from(b.shift), s2))).collect();
                for (i, &(a1, a2)) in shared.iter().enumerate() {
                    for &(b1, b2) in &shared[i + 1..] {
                        if (a1 - a2 - b1 + b2).rem_euclid(z) == 0 {
                            return true;
                        }
                    }
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_code_is_free_of_4_cycles_and_has_its_rate() {
        for (i, s) in SPECS.iter().enumerate() {
            // The 160-column codes fit every lift, the 320-column one every second from 384.
            let fitting: Vec<usize> = LIFTS.into_iter().filter(|&z| s.fits(z)).collect();
            let expected: Vec<usize> =
                LIFTS.into_iter().filter(|&z| s.cols == 160 || (z >= 384 && z % 128 == 0)).collect();
            assert_eq!(fitting, expected, "{}", s.name);
            for z in LIFTS.into_iter().filter(|&z| !s.fits(z)) {
                assert!(Code::lifted(i, z).is_err(), "{} at {z}", s.name);
            }
            for z in fitting {
                let spec = Spec { z: s.circulant(z), ..*s };
                let code = Code::lifted(i, z).unwrap();
                assert!(std::ptr::eq(code, Code::named(code.name).unwrap()), "{}", code.name);
                assert_eq!(code.name, format!("qc{}x{}z{}", spec.cols, spec.rows, spec.z));
                assert!(!code.has_4_cycle(), "{}", code.name);
                assert_eq!(code.n(), BASE_COLS * z);
                assert_eq!(code.m(), spec.rows * spec.z);
                // Each column appears in its degree's number of rows.
                let mut deg = vec![0; spec.cols];
                for layer in &code.layers {
                    for b in layer {
                        deg[b.col as usize] += 1;
                    }
                }
                assert!(deg.iter().all(|&d| d >= 2), "{}", spec.name);
            }
        }
    }

    #[test]
    fn the_construction_is_deterministic() {
        for spec in &SPECS {
            let a = Code::build(spec).unwrap();
            let b = Code::build(spec).unwrap();
            assert_eq!(a.layers, b.layers);
        }
    }

    #[test]
    fn the_4_cycle_check_finds_a_planted_cycle() {
        let code = Code {
            name: "t",
            z: 8,
            cols: 2,
            layers: vec![
                vec![Block { col: 0, shift: 1 }, Block { col: 1, shift: 3 }],
                vec![Block { col: 0, shift: 2 }, Block { col: 1, shift: 4 }],
            ],
        };
        assert!(code.has_4_cycle());
    }

    /// The variables of a smallest nonzero codeword made of degree-2 variables alone, if any: the
    /// shortest cycle of the graph whose vertices are checks and whose edges are degree-2
    /// variables (BFS from one check per row block suffices, the lift being cyclic).
    fn degree_two_codeword(code: &Code) -> Option<Vec<usize>> {
        let (z, rows) = (code.z, code.layers.len());
        let mut rows_of: Vec<Vec<(usize, usize)>> = vec![Vec::new(); code.cols];
        for (r, layer) in code.layers.iter().enumerate() {
            for b in layer {
                rows_of[b.col as usize].push((r, b.shift as usize));
            }
        }
        // Variable c·z + j joins check r·z + (j − s) mod z of each circulant (r, s) of column c.
        let mut adj: Vec<Vec<(usize, usize)>> = vec![Vec::new(); rows * z];
        for (c, rs) in rows_of.iter().enumerate().filter(|(_, rs)| rs.len() == 2) {
            for j in 0..z {
                let (a, b) = (rs[0].0 * z + (j + z - rs[0].1) % z, rs[1].0 * z + (j + z - rs[1].1) % z);
                adj[a].push((b, c * z + j));
                adj[b].push((a, c * z + j));
            }
        }
        let mut best: Option<Vec<usize>> = None;
        for root in (0..rows).map(|r| r * z) {
            // parent[u]: (check, variable) towards the root.
            let mut parent: Vec<Option<(usize, usize)>> = vec![None; rows * z];
            let mut seen = vec![false; rows * z];
            seen[root] = true;
            let mut queue = std::collections::VecDeque::from([root]);
            let path = |parent: &[Option<(usize, usize)>], mut u: usize| {
                let mut vars = Vec::new();
                while let Some((p, v)) = parent[u] {
                    vars.push(v);
                    u = p;
                }
                vars
            };
            while let Some(u) = queue.pop_front() {
                for &(w, v) in &adj[u] {
                    if parent[u].is_some_and(|(_, pv)| pv == v) {
                        continue;
                    }
                    if !seen[w] {
                        seen[w] = true;
                        parent[w] = Some((u, v));
                        queue.push_back(w);
                    } else {
                        // Two tree paths and this edge: their symmetric difference is a cycle.
                        let mut vars = path(&parent, u);
                        vars.extend(path(&parent, w));
                        vars.push(v);
                        vars.sort_unstable();
                        let mut cycle: Vec<usize> = Vec::new();
                        for v in vars {
                            if cycle.last() == Some(&v) {
                                cycle.pop();
                            } else {
                                cycle.push(v);
                            }
                        }
                        if best.as_ref().is_none_or(|b| cycle.len() < b.len()) {
                            best = Some(cycle);
                        }
                    }
                }
            }
        }
        best
    }

    #[test]
    fn no_shipped_code_has_a_codeword_on_degree_2_variables_alone() {
        // Such a codeword is as light as its cycle (8 bits in a rate-0.9 candidate with extra
        // degree-2 columns), and frames then converge to another word with the same syndrome.
        for (i, spec) in SPECS.iter().enumerate() {
            for z in LIFTS.into_iter().filter(|&z| spec.fits(z)) {
                let code = Code::lifted(i, z).unwrap();
                assert_eq!(degree_two_codeword(code), None, "{}", code.name);
            }
        }
    }

    #[test]
    fn the_degree_2_search_finds_a_planted_codeword_of_least_weight() {
        use super::super::syndrome::dense;
        // Two degree-2 columns on rows 0 and 1, shift differences 0 and d: the lifted cycles have
        // 2·z/gcd(d, z) variables.
        let b = |col, shift| Block { col, shift };
        for (d, weight) in [(2u32, 4usize), (1, 8)] {
            let code = Code { name: "t", z: 4, cols: 2, layers: vec![vec![b(0, 0), b(1, 0)], vec![b(0, 0), b(1, d)]] };
            assert!(!code.has_4_cycle());
            let found = degree_two_codeword(&code).expect("a cycle");
            let h = dense(&code);
            assert!(h.iter().all(|row| found.iter().map(|&v| row[v]).sum::<u8>() % 2 == 0));
            // The least weight of a nonzero codeword, by trying every word (n = 8).
            let least = (1u32..1 << code.n())
                .filter(|w| {
                    h.iter().all(|row| (0..code.n()).filter(|&v| w >> v & 1 == 1 && row[v] == 1).count() % 2 == 0)
                })
                .map(u32::count_ones)
                .min();
            assert_eq!((found.len(), least), (weight, Some(weight as u32)), "d {d}");
        }
    }

    #[test]
    fn unknown_names_are_refused() {
        assert!(Code::named("nope").is_err());
        assert!(Code::named("qc160x16z300").is_err() && Code::named("qc160x17z256").is_err());
        assert!(Code::lifted(SPECS.len(), 256).is_err() && Code::lifted(0, 1088).is_err());
        // At 256, the spec's own code.
        assert_eq!(Code::lifted(0, 256).unwrap().layers, Code::build(&SPECS[0]).unwrap().layers);
    }
}

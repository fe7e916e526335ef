//! The layer update in tiles of 64 checks: every pass over a layer fused into one forward and one
//! backward sweep over the row's circulants, with the tile's partial sums in two small buffers.
//!
//! Why tiles: a layer of the rate-0.9 code has 57 circulants of 256 checks, and the untiled update
//! made five passes over whole rows (the variable messages, the forward sums, the backward chain,
//! the signed posteriors, the posteriors put back in column order), each array 29 KiB, more than
//! L1 (32 KiB here) holds together. A tile keeps its variable messages and forward sums in
//! 2 × 57 × 128 bytes, reads each edge's LLR and check message once and writes each once, and
//! needs no posterior buffer: the checks of a tile meet disjoint variables (a circulant is a
//! permutation), so the posteriors go straight back. A row that wraps round its circulant is read
//! and written in place with masked loads and stores (AVX-512), or copied through a spare row.
//! Where each row of each tile lies is computed once per code ([`plan`]).
//!
//! Why 64 checks: the forward and backward ⊞ chains are serial, each ⊞ about ten instructions
//! deep; a tile of two AVX-512 registers runs two independent chains whose latencies overlap.
//! Measured (`examples/ldpc_timing.rs`, one thread, CPU time per 10^6 sifted bits, blind rounds
//! included, QBER 1 / 3 / 8 %): untiled 122 / 97 / 83 ms; tiles of 32 placed per tile 112 / 92 /
//! 80; placed once per code 96 / 77 / 63; tiles of 64: 78 / 63 / 53; a plain load and store for
//! the rows that do not wrap: 74 / 60 / 51. Tiles of 128 (before that last step) gave 73 / 60 / 51
//! against 78 / 63 / 53 and were not kept: on AVX2 a value would take eight of its sixteen registers.
//!
//! The integers are the ones the untiled update computed, in the same order of ⊞ (forward sums
//! from the first edge, backward sums from the last), so the decoder's decisions are unchanged
//! (tested against a scalar signed reference, layer by layer, on every backend).
//! The lane arithmetic is behind [`Lanes`]: 64 `i16` on AVX-512BW (two registers), AVX2 (four)
//! and portably (an array), all computing the same integers (tested).

use super::chain::{boxplus_mag, CLIP, TABLE};
use super::code::Block;
use super::decode::{IDENTITY, MESSAGE};

/// Checks per tile: one AVX-512 register of `i16`.
pub(super) const N: usize = 64;

/// One bit per lane of a tile.
pub(super) type Mask = u64;

/// One row of a tile, 64-byte aligned so that AVX-512 loads and stores of it split no cache line.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct Row(pub(super) [i16; N]);

impl Default for Row {
    fn default() -> Self {
        Row([0; N])
    }
}

/// The arithmetic of a tile's [`N`] lanes.
///
/// # Safety
/// Every method may use the instruction set its type is named for; a type's methods are called
/// only on a CPU that runs it. Loads and stores touch [`N`] values at the pointer.
pub(super) trait Lanes: Copy {
    unsafe fn load(p: *const i16) -> Self;
    unsafe fn store(self, p: *mut i16);
    /// Whether [`Lanes::load_split`] and [`Lanes::store_split`] are cheap (masked loads and
    /// stores), so that a row wrapping round its circulant is read and written in place rather
    /// than copied into a spare row and back.
    const SPLIT: bool = false;
    /// The lanes set in `below` from `p`, the others from `q`.
    unsafe fn load_split(p: *const i16, q: *const i16, below: Mask) -> Self {
        let mut row = [0i16; N];
        for (i, v) in row.iter_mut().enumerate() {
            // SAFETY: the caller vouches for N values at p and at q.
            *v = unsafe {
                if below >> i & 1 == 1 {
                    *p.add(i)
                } else {
                    *q.add(i)
                }
            };
        }
        // SAFETY: row is N values.
        unsafe { Self::load(row.as_ptr()) }
    }
    /// Stores the lanes set in `below` at `p`, the others at `q`.
    unsafe fn store_split(self, p: *mut i16, q: *mut i16, below: Mask) {
        let mut row = [0i16; N];
        // SAFETY: row is N values.
        unsafe { self.store(row.as_mut_ptr()) };
        for (i, &v) in row.iter().enumerate() {
            // SAFETY: the caller vouches for N values at p and at q.
            unsafe { *(if below >> i & 1 == 1 { p.add(i) } else { q.add(i) }) = v };
        }
    }
    unsafe fn splat(x: i16) -> Self;
    unsafe fn xor(self, o: Self) -> Self;
    /// `|x|` (never `i16::MIN`: messages are clamped).
    unsafe fn abs(self) -> Self;
    /// `l − r` saturated, clamped to ±[`MESSAGE`]: the variable-to-check message.
    unsafe fn extrinsic(l: Self, r: Self) -> Self;
    /// `|a ⊞ b|` of magnitudes ([`boxplus_mag`]).
    unsafe fn mag(a: Self, b: Self) -> Self;
    /// `m` negated where `sign` is negative (`m ≥ 0`).
    unsafe fn signed(m: Self, sign: Self) -> Self;
    /// Saturating `a + b`.
    unsafe fn adds(a: Self, b: Self) -> Self;
    /// Bit `i` set where lane `i` is negative.
    unsafe fn negatives(self) -> Mask {
        let mut row = [0i16; N];
        // SAFETY: row is N values.
        unsafe { self.store(row.as_mut_ptr()) };
        row.iter().enumerate().fold(0, |m, (i, &v)| m | Mask::from(v < 0) << i)
    }
}

/// Where a row of a tile lives in the padded LLRs: from offset `l` in the lanes set in `below`,
/// `z` values before in the others (the run wrapping round its circulant).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Place {
    pub(super) l: u32,
    pub(super) below: Mask,
}

/// Where one tile reads and writes: row `j`'s LLRs by `rows[j]` in `lp` (split rows only when
/// `V::SPLIT`; otherwise every `below` is all ones), its check messages at `r + j·stride`, the
/// syndrome signs (0 or −1 per check) at `sign`.
pub(super) struct Tile<'a> {
    pub(super) lp: *mut i16,
    pub(super) wrap: usize,
    pub(super) rows: &'a [Place],
    pub(super) r: *mut i16,
    pub(super) stride: usize,
    pub(super) sign: *const i16,
}

/// One tile's update: `t_j = L_j − R_j`, the new `R_j` as the ⊞ of the other rows' `t` signed by
/// the syndrome, and `L_j = t_j + R_j`, for `deg = l.len() ≥ 1` rows. `t` and `f` hold `deg` rows.
///
/// # Safety
/// `V` runs on this CPU; every row named in `tile` holds N readable and writable values, rows
/// pairwise disjoint; no LLR or message is `i16::MIN`.
#[inline(always)]
pub(super) unsafe fn update<V: Lanes>(tile: &Tile<'_>, t: &mut [Row], f: &mut [Row]) {
    let deg = tile.rows.len();
    debug_assert!(deg >= 1 && t.len() >= deg && f.len() >= deg);
    // SAFETY: the caller vouches for the rows, the CPU and the values.
    unsafe {
        // The product of the syndrome's sign and every row's t: its sign bit, XOR t_j, signs R_j.
        let mut sign = V::load(tile.sign);
        // Forward: t_j and forward[j] = |t_0 ⊞ … ⊞ t_{j−1}| (j ≥ 1) in one sweep.
        let mut ahead = V::splat(0);
        let mut previous = V::splat(0);
        for j in 0..deg {
            let place = tile.rows[j];
            let p = tile.lp.add(place.l as usize);
            // A row that does not wrap (three in four at z = 256) takes one plain load.
            let l = if V::SPLIT && place.below != Mask::MAX {
                V::load_split(p, p.sub(tile.wrap), place.below)
            } else {
                V::load(p)
            };
            let tj = V::extrinsic(l, V::load(tile.r.add(j * tile.stride)));
            tj.store(t[j].0.as_mut_ptr());
            sign = sign.xor(tj);
            if j == 1 {
                ahead = previous.abs();
            } else if j >= 2 {
                ahead = V::mag(ahead, previous.abs());
            }
            if j >= 1 {
                ahead.store(f[j].0.as_mut_ptr());
            }
            previous = tj;
        }
        if deg == 1 {
            // A lone edge hears only the syndrome: a certain value.
            emit(tile, t, sign, 0, V::splat(IDENTITY));
            return;
        }
        // Backward: R_last = forward[last]; behind = |t_j ⊞ … ⊞ t_last| as j falls.
        let last = deg - 1;
        emit(tile, t, sign, last, V::load(f[last].0.as_ptr()));
        let mut behind = V::load(t[last].0.as_ptr()).abs();
        for j in (1..last).rev() {
            emit(tile, t, sign, j, V::mag(V::load(f[j].0.as_ptr()), behind));
            behind = V::mag(behind, V::load(t[j].0.as_ptr()).abs());
        }
        emit(tile, t, sign, 0, behind);
    }
}

/// Row `j`'s outgoing message from its magnitude `m`, signed by `sign ^ t_j`, and its posterior.
/// (A function, not a closure: a closure would not inherit the caller's instruction set.)
///
/// # Safety
/// As [`update`].
#[inline(always)]
unsafe fn emit<V: Lanes>(tile: &Tile<'_>, t: &[Row], sign: V, j: usize, m: V) {
    // SAFETY: as the caller's.
    unsafe {
        let tj = V::load(t[j].0.as_ptr());
        let rj = V::signed(m, sign.xor(tj));
        rj.store(tile.r.add(j * tile.stride));
        let post = V::adds(tj, rj);
        let place = tile.rows[j];
        let p = tile.lp.add(place.l as usize);
        if V::SPLIT && place.below != Mask::MAX {
            post.store_split(p, p.sub(tile.wrap), place.below);
        } else {
            post.store(p);
        }
    }
}

/// Per-layer state of the tiled update: the rows of the tile at hand, its message buffers, and
/// the rows gathered for tiles that wrap.
pub(super) struct Rows {
    places: Vec<Place>,
    pub(super) t: Vec<Row>,
    pub(super) f: Vec<Row>,
    /// Syndrome signs of a tile narrower than N checks, padded.
    pub(super) sign: Row,
}

impl Rows {
    pub(super) fn new(max_degree: usize) -> Self {
        Rows {
            places: vec![Place::default(); max_degree],
            t: vec![Row::default(); max_degree],
            f: vec![Row::default(); max_degree],
            sign: Row::default(),
        }
    }
}

/// Where spare rows live: `lp` and `r` each end in `max_degree` spare rows of N values (this
/// many values), which a tile uses for a row that wraps round its circulant (on backends without
/// masked stores) or is cut by `z`.
pub(super) fn spare(max_degree: usize) -> usize {
    max_degree * N
}

/// Row `j` of the tile at check `i0` in layer `blocks`, read in place: its offset in the padded
/// LLRs and the lanes read there (the others `z` before, where the run wraps round the circulant).
fn place(z: usize, b: Block, i0: usize) -> Place {
    let shift = b.shift as usize;
    let at = z + b.col as usize * z + shift + i0;
    // Lanes read from `at` before the run wraps.
    let k = (z - shift).saturating_sub(i0);
    if k == 0 {
        Place { l: (at - z) as u32, below: Mask::MAX }
    } else {
        Place { l: at as u32, below: if k >= N { Mask::MAX } else { (1 << k) - 1 } }
    }
}

/// Every row of every tile of `layers`, layer by layer, tile by tile, in place (for backends with
/// split loads and stores), computed once per code; empty when `z` is not a multiple of the
/// tile or the LLRs would not fit 32-bit offsets (the gathering path then serves every tile).
pub(super) fn plan(z: usize, layers: &[Vec<Block>], padded: usize) -> Vec<Place> {
    if z == 0
        || !z.is_multiple_of(N)
        || u32::try_from(padded).is_err()
        || layers.iter().flatten().any(|b| b.shift as usize >= z)
    {
        return Vec::new();
    }
    let mut out = Vec::new();
    for blocks in layers {
        for i0 in (0..z).step_by(N) {
            out.extend(blocks.iter().map(|&b| place(z, b, i0)));
        }
    }
    out
}

/// Updates one layer over tiles of N checks.
///
/// `lp` is the padded LLRs (block `c` at `(c + 1)·z`) with [`spare`] values from `gather`; `r`
/// every check message, this layer's (`z` per circulant) from `edge`, with [`spare`] values from
/// `r_gather`; `sign` the layer's `z` syndrome signs (0 or −1); `planned` this layer's part of
/// [`plan`] (or empty).
///
/// Check `i` meets variable `(i + shift) mod z` of a circulant's column block, so a tile's row is
/// `lp[col + shift + i]` while that stays in the block, then wraps to `lp[col + shift + i − z]`:
/// one run for most tiles, two for one tile per circulant, read and written with masks where the
/// backend has them (`V::SPLIT`), else copied into a spare row and back.
///
/// # Safety
/// `V` runs on this CPU; no value is `i16::MIN`. The layout is checked (a panic, not memory
/// unsafety, if it is wrong).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn layer<V: Lanes>(
    z: usize,
    blocks: &[Block],
    sign: &[i16],
    lp: &mut [i16],
    gather: usize,
    r: &mut [i16],
    edge: usize,
    r_gather: usize,
    planned: &[Place],
    rows: &mut Rows,
) {
    let deg = blocks.len();
    if deg == 0 {
        // An empty row updates nothing (its checks are satisfied only by a syndrome of 0).
        return;
    }
    // Every row a tile touches lies inside lp and r (the blocks' columns checked too).
    let columns = blocks.iter().map(|b| b.col as usize + 1).max().unwrap_or(0);
    assert!(
        rows.places.len() >= deg
            && blocks.iter().all(|b| (b.shift as usize) < z)
            && (columns + 1) * z <= gather
            && lp.len() >= gather + deg * N
            && r.len() >= edge + deg * z
            && r.len() >= r_gather + deg * N
            && (r_gather >= edge + deg * z || r_gather + deg * N <= edge)
            && sign.len() >= z,
        "layer buffers"
    );
    if V::SPLIT && !planned.is_empty() {
        assert!(z.is_multiple_of(N) && planned.len() == z / N * deg, "layer plan");
        for (q, rows_q) in planned.chunks_exact(deg).enumerate() {
            debug_assert!(rows_q.iter().zip(blocks).all(|(&p, &b)| p == place(z, b, q * N)));
            let tile = Tile {
                lp: lp.as_mut_ptr(),
                wrap: z,
                rows: rows_q,
                // SAFETY: edge + q·N + (deg − 1)·z + N ≤ edge + deg·z ≤ r.len() (checked).
                r: unsafe { r.as_mut_ptr().add(edge + q * N) },
                stride: z,
                sign: sign[q * N..].as_ptr(),
            };
            // SAFETY: as in the gathering path below, every row split in place.
            unsafe { update::<V>(&tile, &mut rows.t, &mut rows.f) };
        }
        return;
    }
    let mut i0 = 0;
    while i0 < z {
        let width = (z - i0).min(N);
        let mut gathered = false;
        for (j, &b) in blocks.iter().enumerate() {
            let mut p = place(z, b, i0);
            if width < N || (p.below != Mask::MAX && !V::SPLIT) {
                gathered = true;
                let (at, g) = (z + b.col as usize * z + b.shift as usize + i0, gather + j * N);
                let k = (z - b.shift as usize).saturating_sub(i0).min(width);
                lp.copy_within(at..at + k, g);
                lp.copy_within(at + k - z..at + width - z, g + k);
                p = Place { l: g as u32, below: Mask::MAX };
            }
            rows.places[j] = p;
            if width < N {
                let g = r_gather + j * N;
                r.copy_within(edge + j * z + i0..edge + j * z + z, g);
            }
        }
        let sign_at = if width == N {
            sign[i0..].as_ptr()
        } else {
            rows.sign.0[..width].copy_from_slice(&sign[i0..z]);
            rows.sign.0.as_ptr()
        };
        let (r_at, stride) = if width == N { (edge + i0, z) } else { (r_gather, N) };
        let tile = Tile {
            lp: lp.as_mut_ptr(),
            wrap: z,
            rows: &rows.places[..deg],
            // SAFETY: r_at + (deg − 1)·stride + N is within r (checked above).
            r: unsafe { r.as_mut_ptr().add(r_at) },
            stride,
            sign: sign_at,
        };
        // SAFETY: every row is N values inside lp or r: rows in place lie in their column block
        // (a split row's two runs too, each lane in one of them), gathered ones in the spare
        // rows; distinct rows are disjoint (a tile's checks meet distinct variables of each
        // circulant, and the circulants of a row distinct columns).
        unsafe { update::<V>(&tile, &mut rows.t, &mut rows.f) };
        if gathered {
            for (j, &b) in blocks.iter().enumerate() {
                let g = gather + j * N;
                if rows.places[j].l as usize == g {
                    let at = z + b.col as usize * z + b.shift as usize + i0;
                    let k = (z - b.shift as usize).saturating_sub(i0).min(width);
                    lp.copy_within(g..g + k, at);
                    lp.copy_within(g + k..g + width, at + k - z);
                }
                if width < N {
                    r.copy_within(r_gather + j * N..r_gather + j * N + width, edge + j * z + i0);
                }
            }
        }
        i0 += width;
    }
}

/// The checks of one layer whose syndrome bit the hard decisions of the padded LLRs `lp` miss:
/// per tile, the XOR of the rows' LLRs and the syndrome signs, whose sign is the parity of the
/// hard decisions (an LLR below 0 means 1) against the syndrome bit.
///
/// # Safety
/// `V` runs on this CPU. The layout is that of [`layer`] (checked: a panic, not memory unsafety,
/// if it is wrong); `spare` is a row of scratch for a tile narrower than N checks.
#[inline(always)]
pub(super) unsafe fn unsatisfied<V: Lanes>(
    z: usize,
    blocks: &[Block],
    sign: &[i16],
    lp: &[i16],
    planned: &[Place],
    spare: &mut Row,
) -> usize {
    let deg = blocks.len();
    let columns = blocks.iter().map(|b| b.col as usize + 1).max().unwrap_or(0);
    // Every N-value read at an offset below (columns + 1)·z stays in lp.
    assert!(
        blocks.iter().all(|b| (b.shift as usize) < z) && lp.len() >= (columns + 1) * z + N && sign.len() >= z,
        "layer buffers"
    );
    assert!(planned.is_empty() || (z.is_multiple_of(N) && planned.len() == z / N * deg), "layer plan");
    let mut count = 0;
    let mut i0 = 0;
    while i0 < z {
        let width = (z - i0).min(N);
        let sign_at = if width == N {
            sign[i0..].as_ptr()
        } else {
            spare.0[..width].copy_from_slice(&sign[i0..z]);
            spare.0.as_ptr()
        };
        // SAFETY: sign_at holds N values; every row read is N values at an offset below
        // (columns + 1)·z (checked above), the lanes past `width` ignored.
        unsafe {
            let mut acc = V::load(sign_at);
            if planned.is_empty() {
                for &b in blocks {
                    let p = place(z, b, i0);
                    let at = lp.as_ptr().add(p.l as usize);
                    acc = acc.xor(V::load_split(at, at.sub(z), p.below));
                }
            } else {
                for p in &planned[i0 / N * deg..(i0 / N + 1) * deg] {
                    let at = lp.as_ptr().add(p.l as usize);
                    acc = acc.xor(V::load_split(at, at.sub(z), p.below));
                }
            }
            let valid = if width == N { Mask::MAX } else { (1 << width) - 1 };
            count += (acc.negatives() & valid).count_ones() as usize;
        }
        i0 += width;
    }
    count
}

/// The portable lanes: an array, the scalar rule per lane.
#[derive(Clone, Copy)]
pub(super) struct Portable([i16; N]);

impl Portable {
    #[inline(always)]
    fn map(self, f: impl Fn(i16) -> i16) -> Self {
        Portable(self.0.map(f))
    }

    #[inline(always)]
    fn zip(a: Self, b: Self, f: impl Fn(i16, i16) -> i16) -> Self {
        let mut out = [0; N];
        for ((o, &x), &y) in out.iter_mut().zip(&a.0).zip(&b.0) {
            *o = f(x, y);
        }
        Portable(out)
    }
}

impl Lanes for Portable {
    #[inline(always)]
    unsafe fn load(p: *const i16) -> Self {
        // SAFETY: the caller vouches for N values at p.
        Portable(unsafe { p.cast::<[i16; N]>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut i16) {
        // SAFETY: as in load.
        unsafe { p.cast::<[i16; N]>().write_unaligned(self.0) }
    }
    #[inline(always)]
    unsafe fn splat(x: i16) -> Self {
        Portable([x; N])
    }
    #[inline(always)]
    unsafe fn xor(self, o: Self) -> Self {
        Portable::zip(self, o, |a, b| a ^ b)
    }
    #[inline(always)]
    unsafe fn abs(self) -> Self {
        self.map(|x| x.max(x.wrapping_neg()))
    }
    #[inline(always)]
    unsafe fn extrinsic(l: Self, r: Self) -> Self {
        Portable::zip(l, r, |l, r| l.saturating_sub(r).clamp(-MESSAGE, MESSAGE))
    }
    #[inline(always)]
    unsafe fn mag(a: Self, b: Self) -> Self {
        Portable::zip(a, b, boxplus_mag)
    }
    #[inline(always)]
    unsafe fn signed(m: Self, sign: Self) -> Self {
        Portable::zip(m, sign, |m, s| {
            let flip = s >> 15;
            (m ^ flip).wrapping_sub(flip)
        })
    }
    #[inline(always)]
    unsafe fn adds(a: Self, b: Self) -> Self {
        Portable::zip(a, b, i16::saturating_add)
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{Lanes, Mask, CLIP, MESSAGE, N, TABLE};

    const _: () = assert!(N == 64 && CLIP == 256 && TABLE.len() == 32);

    /// Applies an operation of two registers to every register of two tiles (a macro: closures
    /// would not inherit the caller's instruction set).
    macro_rules! each {
        ($t:ident [$($i:literal),*], $a:expr, $b:expr, |$x:ident, $y:ident| $body:expr) => {{
            let (a, b) = ($a, $b);
            $t([$({
                let ($x, $y) = (a.0[$i], b.0[$i]);
                $body
            }),*])
        }};
    }

    /// 64 lanes in two AVX-512 registers (two independent chains, whose latencies overlap); the
    /// correction table in one `vpermw`.
    #[derive(Clone, Copy)]
    pub(in super::super) struct Avx512([__m512i; 2]);

    /// `|a ⊞ b|` of magnitudes for 32 lanes.
    ///
    /// # Safety
    /// AVX-512BW.
    #[inline(always)]
    unsafe fn mag512(a: __m512i, b: __m512i) -> __m512i {
        // SAFETY: the caller vouches for AVX-512; TABLE is 32 values of 16 bits.
        unsafe {
            let table = _mm512_loadu_si512(TABLE.as_ptr().cast());
            let last = _mm512_set1_epi16(31);
            let low = _mm512_min_epi16(a, b);
            let diff = _mm512_sub_epi16(_mm512_max_epi16(a, b), low);
            let sum = _mm512_adds_epi16(a, b);
            let c_sum = _mm512_permutexvar_epi16(_mm512_min_epi16(_mm512_srli_epi16(sum, 3), last), table);
            let c_diff = _mm512_permutexvar_epi16(_mm512_min_epi16(_mm512_srli_epi16(diff, 3), last), table);
            // low + c(sum) is in 0..=32767 and c(diff) in 0..=20, so the unsigned saturating
            // difference is max(low + c(sum) − c(diff), 0): the clamp at 0 for free.
            _mm512_subs_epu16(_mm512_adds_epi16(low, c_sum), c_diff)
        }
    }

    impl Lanes for Avx512 {
        #[inline(always)]
        unsafe fn load(p: *const i16) -> Self {
            // SAFETY: the caller vouches for 64 values at p and for AVX-512.
            unsafe { Avx512([_mm512_loadu_si512(p.cast()), _mm512_loadu_si512(p.add(32).cast())]) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut i16) {
            // SAFETY: as in load.
            unsafe {
                _mm512_storeu_si512(p.cast(), self.0[0]);
                _mm512_storeu_si512(p.add(32).cast(), self.0[1]);
            }
        }
        const SPLIT: bool = true;
        #[inline(always)]
        unsafe fn negatives(self) -> Mask {
            // SAFETY: the caller vouches for AVX-512.
            unsafe { Mask::from(_mm512_movepi16_mask(self.0[0])) | Mask::from(_mm512_movepi16_mask(self.0[1])) << 32 }
        }
        #[inline(always)]
        unsafe fn load_split(p: *const i16, q: *const i16, below: Mask) -> Self {
            // SAFETY: the caller vouches for 64 values at p and q and for AVX-512; a masked
            // load touches only its lanes.
            unsafe {
                let (m0, m1) = (below as u32, (below >> 32) as u32);
                Avx512([
                    _mm512_mask_loadu_epi16(_mm512_maskz_loadu_epi16(!m0, q), m0, p),
                    _mm512_mask_loadu_epi16(_mm512_maskz_loadu_epi16(!m1, q.add(32)), m1, p.add(32)),
                ])
            }
        }
        #[inline(always)]
        unsafe fn store_split(self, p: *mut i16, q: *mut i16, below: Mask) {
            // SAFETY: as in load_split.
            unsafe {
                let (m0, m1) = (below as u32, (below >> 32) as u32);
                _mm512_mask_storeu_epi16(p, m0, self.0[0]);
                _mm512_mask_storeu_epi16(q, !m0, self.0[0]);
                _mm512_mask_storeu_epi16(p.add(32), m1, self.0[1]);
                _mm512_mask_storeu_epi16(q.add(32), !m1, self.0[1]);
            }
        }
        #[inline(always)]
        unsafe fn splat(x: i16) -> Self {
            // SAFETY: the caller vouches for AVX-512 (and below).
            let v = unsafe { _mm512_set1_epi16(x) };
            Avx512([v, v])
        }
        #[inline(always)]
        unsafe fn xor(self, o: Self) -> Self {
            // SAFETY: as in splat.
            unsafe { each!(Avx512 [0, 1], self, o, |a, b| _mm512_xor_si512(a, b)) }
        }
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            // SAFETY: as in splat.
            unsafe { each!(Avx512 [0, 1], self, self, |a, _b| _mm512_abs_epi16(a)) }
        }
        #[inline(always)]
        unsafe fn extrinsic(l: Self, r: Self) -> Self {
            // SAFETY: as in splat.
            unsafe {
                let (lo, hi) = (_mm512_set1_epi16(-MESSAGE), _mm512_set1_epi16(MESSAGE));
                each!(Avx512 [0, 1], l, r, |l, r| _mm512_min_epi16(_mm512_max_epi16(_mm512_subs_epi16(l, r), lo), hi))
            }
        }
        #[inline(always)]
        unsafe fn mag(a: Self, b: Self) -> Self {
            // SAFETY: as in splat.
            unsafe { each!(Avx512 [0, 1], a, b, |a, b| mag512(a, b)) }
        }
        #[inline(always)]
        unsafe fn signed(m: Self, sign: Self) -> Self {
            // SAFETY: as in splat.
            unsafe {
                let zero = _mm512_setzero_si512();
                each!(Avx512 [0, 1], m, sign, |m, s| _mm512_mask_sub_epi16(m, _mm512_movepi16_mask(s), zero, m))
            }
        }
        #[inline(always)]
        unsafe fn adds(a: Self, b: Self) -> Self {
            // SAFETY: as in splat.
            unsafe { each!(Avx512 [0, 1], a, b, |a, b| _mm512_adds_epi16(a, b)) }
        }
    }

    /// 64 lanes in four AVX2 registers; the table as two byte shuffles and a blend.
    #[derive(Clone, Copy)]
    pub(in super::super) struct Avx2([__m256i; 4]);

    /// The table's halves as bytes (every value fits), repeated in both 128-bit lanes.
    const fn half(from: usize) -> [i8; 32] {
        let mut t = [0i8; 32];
        let mut k = 0;
        while k < 32 {
            t[k] = TABLE[from + k % 16] as i8;
            k += 1;
        }
        t
    }
    static LOW_HALF: [i8; 32] = half(0);
    static HIGH_HALF: [i8; 32] = half(16);

    /// The table's value at `x >> 3` (at most 31) for 16 lanes.
    ///
    /// # Safety
    /// AVX2.
    #[inline(always)]
    unsafe fn correction2(x: __m256i) -> __m256i {
        // SAFETY: the caller vouches for AVX2; the halves are 32 bytes each.
        unsafe {
            let low_half = _mm256_loadu_si256(LOW_HALF.as_ptr().cast());
            let high_half = _mm256_loadu_si256(HIGH_HALF.as_ptr().cast());
            let index = _mm256_min_epi16(_mm256_srli_epi16(x, 3), _mm256_set1_epi16(31));
            // The high byte of every index set to 0x80, so that the shuffles write 0 there.
            let bytes = _mm256_or_si256(index, _mm256_set1_epi16(i16::MIN));
            let (l, h) = (_mm256_shuffle_epi8(low_half, bytes), _mm256_shuffle_epi8(high_half, bytes));
            _mm256_blendv_epi8(l, h, _mm256_cmpgt_epi16(index, _mm256_set1_epi16(15)))
        }
    }

    /// `|a ⊞ b|` of magnitudes for 16 lanes.
    ///
    /// # Safety
    /// AVX2.
    #[inline(always)]
    unsafe fn mag2(a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: the caller vouches for AVX2.
        unsafe {
            let low = _mm256_min_epi16(a, b);
            let diff = _mm256_sub_epi16(_mm256_max_epi16(a, b), low);
            let sum = _mm256_adds_epi16(a, b);
            // As in the AVX-512 kernel: the unsigned saturating difference clamps at 0.
            _mm256_subs_epu16(_mm256_adds_epi16(low, correction2(sum)), correction2(diff))
        }
    }

    /// Lanes 0–15 of a 256-bit vector set (all ones) where bit `i` of `bits` is.
    ///
    /// # Safety
    /// AVX2.
    #[inline(always)]
    unsafe fn lanes_of(bits: u16) -> __m256i {
        // SAFETY: the caller vouches for AVX2.
        unsafe {
            let bit = _mm256_setr_epi16(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, i16::MIN);
            _mm256_cmpeq_epi16(_mm256_and_si256(_mm256_set1_epi16(bits as i16), bit), bit)
        }
    }

    impl Lanes for Avx2 {
        #[inline(always)]
        unsafe fn load(p: *const i16) -> Self {
            // SAFETY: the caller vouches for 64 values at p and for AVX2.
            unsafe {
                Avx2([
                    _mm256_loadu_si256(p.cast()),
                    _mm256_loadu_si256(p.add(16).cast()),
                    _mm256_loadu_si256(p.add(32).cast()),
                    _mm256_loadu_si256(p.add(48).cast()),
                ])
            }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut i16) {
            // SAFETY: as in load.
            unsafe {
                _mm256_storeu_si256(p.cast(), self.0[0]);
                _mm256_storeu_si256(p.add(16).cast(), self.0[1]);
                _mm256_storeu_si256(p.add(32).cast(), self.0[2]);
                _mm256_storeu_si256(p.add(48).cast(), self.0[3]);
            }
        }
        #[inline(always)]
        unsafe fn load_split(p: *const i16, q: *const i16, below: Mask) -> Self {
            // SAFETY: the caller vouches for 64 values at p and q and for AVX2.
            unsafe {
                let (a, b) = (Avx2::load(p), Avx2::load(q));
                let m = Avx2([
                    lanes_of(below as u16),
                    lanes_of((below >> 16) as u16),
                    lanes_of((below >> 32) as u16),
                    lanes_of((below >> 48) as u16),
                ]);
                Avx2([
                    _mm256_blendv_epi8(b.0[0], a.0[0], m.0[0]),
                    _mm256_blendv_epi8(b.0[1], a.0[1], m.0[1]),
                    _mm256_blendv_epi8(b.0[2], a.0[2], m.0[2]),
                    _mm256_blendv_epi8(b.0[3], a.0[3], m.0[3]),
                ])
            }
        }
        #[inline(always)]
        unsafe fn negatives(self) -> Mask {
            // SAFETY: the caller vouches for AVX2.
            unsafe {
                // Signed saturation keeps each lane's sign in a byte; the pack interleaves the
                // 128-bit halves, which the permutation puts back in lane order.
                let low = _mm256_permute4x64_epi64(_mm256_packs_epi16(self.0[0], self.0[1]), 0b11_01_10_00);
                let high = _mm256_permute4x64_epi64(_mm256_packs_epi16(self.0[2], self.0[3]), 0b11_01_10_00);
                Mask::from(_mm256_movemask_epi8(low) as u32) | Mask::from(_mm256_movemask_epi8(high) as u32) << 32
            }
        }
        #[inline(always)]
        unsafe fn splat(x: i16) -> Self {
            // SAFETY: the caller vouches for AVX2.
            let v = unsafe { _mm256_set1_epi16(x) };
            Avx2([v; 4])
        }
        #[inline(always)]
        unsafe fn xor(self, o: Self) -> Self {
            // SAFETY: as in splat.
            unsafe { each!(Avx2 [0, 1, 2, 3], self, o, |a, b| _mm256_xor_si256(a, b)) }
        }
        #[inline(always)]
        unsafe fn abs(self) -> Self {
            // SAFETY: as in splat.
            unsafe { each!(Avx2 [0, 1, 2, 3], self, self, |a, _b| _mm256_abs_epi16(a)) }
        }
        #[inline(always)]
        unsafe fn extrinsic(l: Self, r: Self) -> Self {
            // SAFETY: as in splat.
            unsafe {
                let (lo, hi) = (_mm256_set1_epi16(-MESSAGE), _mm256_set1_epi16(MESSAGE));
                each!(Avx2 [0, 1, 2, 3], l, r, |l, r| _mm256_min_epi16(_mm256_max_epi16(_mm256_subs_epi16(l, r), lo), hi))
            }
        }
        #[inline(always)]
        unsafe fn mag(a: Self, b: Self) -> Self {
            // SAFETY: as in splat.
            unsafe { each!(Avx2 [0, 1, 2, 3], a, b, |a, b| mag2(a, b)) }
        }
        #[inline(always)]
        unsafe fn signed(m: Self, sign: Self) -> Self {
            // `vpsignw` negates where its second argument is negative and zeroes where it is 0:
            // OR 1 keeps the sign and rules out 0.
            // SAFETY: as in splat.
            unsafe {
                let one = _mm256_set1_epi16(1);
                each!(Avx2 [0, 1, 2, 3], m, sign, |m, s| _mm256_sign_epi16(m, _mm256_or_si256(s, one)))
            }
        }
        #[inline(always)]
        unsafe fn adds(a: Self, b: Self) -> Self {
            // SAFETY: as in splat.
            unsafe { each!(Avx2 [0, 1, 2, 3], a, b, |a, b| _mm256_adds_epi16(a, b)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::chain::tests::backends;
    use super::super::chain::Backend;
    use super::*;
    use crate::maths::xoshiro::Xoshiro256;

    /// The lane operations applied by a backend to N-value rows: each op's outputs, in order.
    fn ops<V: Lanes>(a: &[i16; N], b: &[i16; N]) -> Vec<[i16; N]> {
        let mut out = vec![[0i16; N]; 11];
        // SAFETY: the tests call this only for backends this CPU runs; the rows are N values.
        unsafe {
            let (x, y) = (V::load(a.as_ptr()), V::load(b.as_ptr()));
            let (ma, mb) = (x.abs(), y.abs());
            V::mag(ma, mb).store(out[0].as_mut_ptr());
            V::extrinsic(x, y).store(out[1].as_mut_ptr());
            V::signed(ma, y).store(out[2].as_mut_ptr());
            V::adds(x, y).store(out[3].as_mut_ptr());
            x.xor(y).store(out[4].as_mut_ptr());
            ma.store(out[5].as_mut_ptr());
            V::splat(a[3]).store(out[6].as_mut_ptr());
            // Split by a mask made of the data: a's sign bits.
            let below = a.iter().enumerate().fold(0, |m: Mask, (i, &v)| m | Mask::from(v < 0) << i);
            V::load_split(a.as_ptr(), b.as_ptr(), below).store(out[7].as_mut_ptr());
            let (p, q) = out.split_at_mut(9);
            y.store_split(p[8].as_mut_ptr(), q[0].as_mut_ptr(), below);
            let negative = x.negatives();
            out[10] = std::array::from_fn(|i| (negative >> i & 1) as i16);
        }
        out
    }

    fn ops_on(backend: Backend, a: &[i16; N], b: &[i16; N]) -> Vec<[i16; N]> {
        match backend {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => ops::<Avx512>(a, b),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => ops::<Avx2>(a, b),
            Backend::Portable => ops::<Portable>(a, b),
        }
    }

    /// The portable lanes are the scalar rules, lane by lane, and every backend this CPU runs
    /// gives the portable lanes' integers: every pair of magnitudes up to 400 (where the table is
    /// read), and random pairs over the whole range but `i16::MIN` with both signs.
    #[test]
    fn every_backend_computes_the_scalar_rules() {
        let mut rng = Xoshiro256::from_seed(21);
        let mut cases: Vec<([i16; N], [i16; N])> = Vec::new();
        for x in 0..=400i16 {
            for chunk in 0..(401 / N + 1) {
                let a = [x; N];
                let b: [i16; N] = std::array::from_fn(|i| ((chunk * N + i) as i16).min(400));
                cases.push((a, b));
            }
        }
        for _ in 0..2000 {
            let any = |rng: &mut Xoshiro256| (i32::from(i16::MIN) + 1 + (rng.next_u64() % 65535) as i32) as i16;
            let a: [i16; N] = std::array::from_fn(|_| any(&mut rng));
            let b: [i16; N] = std::array::from_fn(|_| any(&mut rng));
            cases.push((a, b));
        }
        for (a, b) in &cases {
            let portable = ops_on(Backend::Portable, a, b);
            for i in 0..N {
                let (ma, mb) = (a[i].abs(), b[i].abs());
                assert_eq!(portable[0][i], boxplus_mag(ma, mb));
                assert_eq!(portable[1][i], a[i].saturating_sub(b[i]).clamp(-MESSAGE, MESSAGE));
                assert_eq!(portable[2][i], if b[i] < 0 { -ma } else { ma });
                assert_eq!(portable[3][i], a[i].saturating_add(b[i]));
                assert_eq!(portable[4][i], a[i] ^ b[i]);
                assert_eq!(portable[5][i], ma);
                assert_eq!(portable[6][i], a[3]);
                assert_eq!(portable[7][i], if a[i] < 0 { a[i] } else { b[i] });
                assert_eq!((portable[8][i], portable[9][i]), if a[i] < 0 { (b[i], 0) } else { (0, b[i]) });
                assert_eq!(portable[10][i], i16::from(a[i] < 0));
            }
            for &backend in &backends()[1..] {
                assert_eq!(ops_on(backend, a, b), portable, "{backend:?}");
            }
        }
    }

    /// A tile's update on every backend equals the portable one, row for row, for rows of one
    /// circulant (the syndrome alone), two, three and the 57 of the rate-0.9 code.
    #[test]
    fn every_backend_updates_a_tile_as_the_portable_one() {
        let mut rng = Xoshiro256::from_seed(22);
        for deg in [1usize, 2, 3, 57] {
            for _ in 0..20 {
                let value = |rng: &mut Xoshiro256| match rng.next_u64() % 8 {
                    0 => 0,
                    1 => 8000,
                    2 => -8000,
                    _ => (rng.next_u64() % 601) as i16 - 300,
                };
                let lp: Vec<i16> = (0..deg * N).map(|_| value(&mut rng)).collect();
                let r: Vec<i16> = (0..deg * N).map(|_| (rng.next_u64() % 401) as i16 - 200).collect();
                let sign: Vec<i16> = (0..N).map(|_| -((rng.next_u64() & 1) as i16)).collect();
                // Rows in a scrambled order, so that the offsets matter.
                let mut order: Vec<usize> = (0..deg).collect();
                order.reverse();
                let l: Vec<usize> = order.iter().map(|&j| j * N).collect();
                let run = |backend: Backend| {
                    let (mut lp, mut r) = (lp.clone(), r.clone());
                    let mut rows = Rows::new(deg);
                    let places: Vec<Place> = l.iter().map(|&l| Place { l: l as u32, below: Mask::MAX }).collect();
                    let tile = Tile {
                        lp: lp.as_mut_ptr(),
                        wrap: 0,
                        rows: &places,
                        r: r.as_mut_ptr(),
                        stride: N,
                        sign: sign.as_ptr(),
                    };
                    // SAFETY: backends() lists what this CPU runs; every row is N values inside
                    // lp and r, pairwise disjoint; no value is i16::MIN.
                    unsafe {
                        match backend {
                            #[cfg(target_arch = "x86_64")]
                            Backend::Avx512 => update::<Avx512>(&tile, &mut rows.t, &mut rows.f),
                            #[cfg(target_arch = "x86_64")]
                            Backend::Avx2 => update::<Avx2>(&tile, &mut rows.t, &mut rows.f),
                            Backend::Portable => update::<Portable>(&tile, &mut rows.t, &mut rows.f),
                        }
                    }
                    (lp, r)
                };
                let portable = run(Backend::Portable);
                assert_ne!(portable, (lp.clone(), r.clone()));
                for &backend in &backends()[1..] {
                    assert_eq!(run(backend), portable, "{backend:?}, degree {deg}");
                }
            }
        }
    }
}

//! The recorded basis changes of the additive FFT's leaves (64 coefficients each), run on as many
//! leaves at once as a 512-bit register has lanes: eight of 64-bit coefficients, sixteen of
//! 32-bit ones. The leaves are transposed into lanes in registers (blocks of 8 × 8 or 16 × 16
//! elements, `log2` stages of two-register permutations), each recorded step is then one XOR of
//! two registers' worth, and the lanes are transposed back. Element by element the transposes
//! were a load and a store a coefficient, more than the steps themselves.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Coefficients in a leaf.
pub(super) const LEAF: usize = 64;

/// The permutation indices of one transpose stage for `w` lanes and blocks of `h`: rows `i` and
/// `i + h` swap their off-diagonal blocks. The first takes its own elements where bit `h` of the
/// lane is clear and the partner's (`w + k − h`) where it is set; the second the opposite.
const fn stage(w: usize, h: usize) -> ([i32; 16], [i32; 16]) {
    let (mut first, mut second) = ([0i32; 16], [0i32; 16]);
    let mut k = 0;
    while k < w {
        if k & h == 0 {
            first[k] = k as i32;
            second[k] = (k + h) as i32;
        } else {
            first[k] = (w + k - h) as i32;
            second[k] = (w + k) as i32;
        }
        k += 1;
    }
    (first, second)
}

/// Transposes `W` rows of `W` lanes in place (`W` = 8 with 64-bit lanes, 16 with 32-bit ones).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose<const W: usize>(v: &mut [__m512i; W]) {
    let mut h = 1;
    while h < W {
        let (first, second) = stage(W, h);
        let load = |idx: &[i32; 16]| -> __m512i {
            if W == 8 {
                // 64-bit lanes: the indices as eight 64-bit words.
                let q: [i64; 8] = std::array::from_fn(|k| i64::from(idx[k]));
                // SAFETY: q holds 8 elements.
                unsafe { _mm512_loadu_si512(q.as_ptr().cast()) }
            } else {
                // SAFETY: idx holds 16 elements.
                unsafe { _mm512_loadu_si512(idx.as_ptr().cast()) }
            }
        };
        let (a_idx, b_idx) = (load(&first), load(&second));
        for i in 0..W {
            if i & h == 0 {
                let (a, b) = (v[i], v[i + h]);
                if W == 8 {
                    v[i] = _mm512_permutex2var_epi64(a, a_idx, b);
                    v[i + h] = _mm512_permutex2var_epi64(a, b_idx, b);
                } else {
                    v[i] = _mm512_permutex2var_epi32(a, a_idx, b);
                    v[i + h] = _mm512_permutex2var_epi32(a, b_idx, b);
                }
            }
        }
        h *= 2;
    }
}

/// Runs the recorded `steps` (`leaf[dst] ^= leaf[src]`) on each of the `W` leaves of `LEAF`
/// elements of `64 / W` bytes that start at `f`, one after another.
///
/// # Safety
/// The CPU has AVX-512F, and `f` points to `W · LEAF` elements of `64 / W` bytes, readable and
/// writable; `W` is 8 or 16; every step's indices are below `LEAF`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn run_steps<const W: usize>(f: *mut u8, steps: &[(u8, u8)]) {
    // Row `b` of block `at` holds elements `at .. at + W` of leaf `b`: 64 bytes.
    let row = |b: usize, at: usize| {
        // SAFETY: b < W and at + W <= LEAF: inside the W leaves.
        unsafe { f.add((b * LEAF + at) * (64 / W)).cast::<__m512i>() }
    };
    // One block buffer for every transpose, wiped with the lanes at the end: blocks made afresh
    // in each loop left their spilled copies on the stack (sixteen-lane blocks).
    let mut lanes = [_mm512_setzero_si512(); LEAF];
    let mut block = [_mm512_setzero_si512(); W];
    for at in (0..LEAF).step_by(W) {
        for (b, v) in block.iter_mut().enumerate() {
            // SAFETY: each row is 64 readable bytes.
            *v = unsafe { _mm512_loadu_si512(row(b, at)) };
        }
        transpose(&mut block);
        lanes[at..at + W].copy_from_slice(&block);
    }
    for &(dst, src) in steps {
        // Indices below LEAF (a power of two) by construction; the mask drops the checks.
        let (d, s) = (usize::from(dst) & (LEAF - 1), usize::from(src) & (LEAF - 1));
        lanes[d] = _mm512_xor_si512(lanes[d], lanes[s]);
    }
    for at in (0..LEAF).step_by(W) {
        block.copy_from_slice(&lanes[at..at + W]);
        transpose(&mut block);
        for (b, v) in block.iter().enumerate() {
            // SAFETY: each row is 64 writable bytes.
            unsafe { _mm512_storeu_si512(row(b, at), *v) };
        }
    }
    // The lanes and the block held sums of seed and input pieces.
    lanes = [_mm512_setzero_si512(); LEAF];
    block = [_mm512_setzero_si512(); W];
    std::hint::black_box((&mut lanes, &mut block));
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::gf2::backend::Backend;

    /// Each leaf on its own, step by step: the definition.
    fn naive<T: Copy + std::ops::BitXorAssign>(f: &mut [T], steps: &[(u8, u8)]) {
        for leaf in f.chunks_exact_mut(LEAF) {
            for &(d, s) in steps {
                let v = leaf[usize::from(s)];
                leaf[usize::from(d)] ^= v;
            }
        }
    }

    #[test]
    fn batches_of_leaves_follow_the_steps_one_leaf_at_a_time() {
        if !Backend::Vpclmul.is_available() {
            return;
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Random steps, and the identity (nothing but the two transposes).
        for count in [0usize, 1, 300] {
            let steps: Vec<(u8, u8)> = (0..count).map(|_| ((next() % 64) as u8, (next() % 64) as u8)).collect();
            let wide: Vec<u64> = (0..8 * LEAF).map(|_| next()).collect();
            let mut expect = wide.clone();
            naive(&mut expect, &steps);
            let mut got = wide.clone();
            // SAFETY: the CPU has AVX-512F; 8 leaves of 64 u64.
            unsafe { run_steps::<8>(got.as_mut_ptr().cast(), &steps) };
            assert_eq!(got, expect, "{count} steps, 64-bit");
            let narrow: Vec<u32> = (0..16 * LEAF).map(|_| next() as u32).collect();
            let mut expect = narrow.clone();
            naive(&mut expect, &steps);
            let mut got = narrow.clone();
            // SAFETY: as above, 16 leaves of 64 u32.
            unsafe { run_steps::<16>(got.as_mut_ptr().cast(), &steps) };
            assert_eq!(got, expect, "{count} steps, 32-bit");
        }
    }
}

//! Schoolbook and Karatsuba multiplication in GF(2)\[x\] on 64-bit words.
//!
//! In characteristic 2 Karatsuba needs no subtractions: with `a = a0 + a1·X`, `b = b0 + b1·X`,
//! `a·b = P0 + (P0 + P1 + P2)·X + P2·X²` where `P0 = a0·b0`, `P2 = a1·b1`,
//! `P1 = (a0 + a1)(b0 + b1)`. The three half-size products run in parallel on large operands.

use zeroize::Zeroize;

use super::backend::Backend;
use super::clmul::{product_window, Padded, PaddedView, BACK};
use super::wipe::scratch;
use super::xor::xor_into;

/// Operands of at most this many words (the shorter one) are multiplied by the schoolbook kernel.
fn base_words(backend: Backend) -> usize {
    match backend {
        Backend::Portable => 12,
        Backend::Pclmul => 16,
        Backend::Vpclmul => 32,
    }
}

/// Products whose shorter operand has at least this many words split their work across threads.
const PARALLEL_WORDS: usize = 1024;

/// Words of the stack buffer that pads small schoolbook operands.
const STACK_WORDS: usize = 256;

/// The full product by the schoolbook kernel: `out` (of `a.len() + b.len()` words) is overwritten.
pub fn schoolbook(backend: Backend, a: &[u64], b: &[u64], out: &mut [u64]) {
    debug_assert_eq!(out.len(), a.len() + b.len());
    let front = b.len() + 1;
    let need = 2 * front + a.len() + BACK - 1;
    if need <= STACK_WORDS {
        let mut buf = [0u64; STACK_WORDS];
        buf[front..front + a.len()].copy_from_slice(a);
        let view = PaddedView::new(&buf[..need], front, a.len()).expect("padding sized above");
        product_window(backend, view, b, 0, out);
        buf.zeroize();
    } else {
        let padded = Padded::new(a, b.len());
        product_window(backend, padded.view(), b, 0, out);
    }
}

/// The full product by Karatsuba down to the schoolbook kernel: `out` (of `a.len() + b.len()`
/// words) is overwritten.
pub fn karatsuba(backend: Backend, a: &[u64], b: &[u64], out: &mut [u64]) {
    let (a, b) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    debug_assert_eq!(out.len(), a.len() + b.len());
    if b.is_empty() {
        out.fill(0);
        return;
    }
    if b.len() <= base_words(backend) {
        schoolbook(backend, a, b, out);
        return;
    }
    if a.len() >= 2 * b.len() {
        // Unbalanced: cut the longer operand into pieces as long as the shorter one.
        out.fill(0);
        let mut piece = scratch(2 * b.len());
        for (k, chunk) in a.chunks(b.len()).enumerate() {
            let p = &mut piece[..chunk.len() + b.len()];
            karatsuba(backend, chunk, b, p);
            xor_into(backend, &mut out[k * b.len()..], p);
        }
        return;
    }
    let h = a.len().div_ceil(2);
    let (a0, a1) = a.split_at(h);
    let (b0, b1) = b.split_at(h);
    let mut sa = scratch(h);
    sa.copy_from_slice(a0);
    xor_into(backend, &mut sa, a1);
    let mut sb = scratch(h);
    sb.copy_from_slice(b0);
    xor_into(backend, &mut sb, b1);
    let mut mid = scratch(2 * h);
    {
        let (lo, hi) = out.split_at_mut(2 * h);
        if b.len() >= PARALLEL_WORDS {
            rayon::join(
                || karatsuba(backend, a0, b0, lo),
                || rayon::join(|| karatsuba(backend, a1, b1, hi), || karatsuba(backend, &sa, &sb, &mut mid)),
            );
        } else {
            karatsuba(backend, a0, b0, lo);
            karatsuba(backend, a1, b1, hi);
            karatsuba(backend, &sa, &sb, &mut mid);
        }
        xor_into(backend, &mut mid, lo);
        xor_into(backend, &mut mid, hi);
    }
    // The middle term a0·b1 + a1·b0 is shorter than 2h words when a is odd-sized; its top is zero.
    let end = (3 * h).min(out.len());
    debug_assert!(mid[end - h..].iter().all(|&w| w == 0));
    xor_into(backend, &mut out[h..end], &mid[..end - h]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gf2::backend;
    use crate::gf2::clmul::naive::product as product_naive;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn karatsuba_matches_naive_on_every_backend(
            a in proptest::collection::vec(any::<u64>(), 0..300),
            b in proptest::collection::vec(any::<u64>(), 0..300),
        ) {
            let expect = product_naive(&a, &b);
            for be in backend::available() {
                let mut out = vec![u64::MAX; a.len() + b.len()];
                karatsuba(be, &a, &b, &mut out);
                prop_assert_eq!(&out, &expect, "backend {:?}", be);
                schoolbook(be, &a, &b, &mut out);
                prop_assert_eq!(&out, &expect, "schoolbook, backend {:?}", be);
            }
        }
    }

    #[test]
    fn parallel_karatsuba_matches_sequential_schoolbook() {
        // Big enough to cross the parallel threshold at the top level.
        let a: Vec<u64> = (0..2500u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5555).collect();
        let b: Vec<u64> = (0..2100u64).map(|i| i.wrapping_mul(0xc2b2_ae3d_27d4_eb4f).rotate_left(17)).collect();
        let be = backend::active();
        let mut fast = vec![0u64; a.len() + b.len()];
        karatsuba(be, &a, &b, &mut fast);
        let mut slow = vec![0u64; a.len() + b.len()];
        schoolbook(be, &a, &b, &mut slow);
        assert_eq!(fast, slow);
    }
}

//! Arithmetic in GF(2)\[x\] on polynomials packed in 64-bit words (see [`crate::bits`]), on which
//! Toeplitz hashing rests.
//!
//! [`middle`] computes the middle products a Toeplitz hash is, choosing per seed among the
//! windowed carry-less kernel ([`clmul`]), Toeplitz-Karatsuba ([`toeplitz_karatsuba`]) and a split
//! additive FFT over GF(2^64) ([`fft`], [`gf64`]). Every kernel runs on every [`Backend`] the CPU
//! has ([`backend`]: chosen at run time, `QITCORE_CLMUL` or `QITCORE_SIMD=portable` force one), so
//! the tests compare them all against a naive product. [`karatsuba`] holds the full product the
//! FFT's tests check against; [`alloc`] refuses sizes that cannot be allocated before any work
//! starts; [`wipe`] holds the scratch buffers every method uses, which clear their secrets fast.

pub mod alloc;
pub mod backend;
pub mod clmul;
pub mod fft;
pub mod gf64;
pub mod karatsuba;
mod leaf_batch;
pub mod middle;
pub mod toeplitz_karatsuba;
pub mod wipe;
pub mod xor;

pub use backend::Backend;

/// Test operands of a middle product: a seed of `n + m - 1` bits and an input of `n` bits, fixed
/// pseudo-random words (`salt` varies them) with the bits past the lengths clear.
#[cfg(test)]
pub(crate) fn test_operands(n: usize, m: usize, salt: u64) -> (Vec<u64>, Vec<u64>) {
    use crate::bits::{mask_tail, words_for};
    let mut a: Vec<u64> = (0..words_for(n + m - 1) as u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(salt as u32))
        .collect();
    mask_tail(&mut a, n + m - 1);
    let mut x: Vec<u64> = (0..words_for(n) as u64).map(|i| i.wrapping_mul(0xc2b2_ae3d_27d4_eb4f) ^ salt).collect();
    mask_tail(&mut x, n);
    (a, x)
}

//! Arithmetic in GF(2)\[x\] on polynomials packed in 64-bit words (see [`crate::bits`]).
//!
//! [`mul`] picks the method by size: the schoolbook kernel for small operands, Karatsuba for
//! middle sizes, and an additive FFT over GF(2^64) for large ones. Every method runs on every
//! [`Backend`], so the tests compare them all against a naive product.

pub mod alloc;
pub mod backend;
pub mod clmul;
pub mod fft;
pub mod gf64;
pub mod karatsuba;
pub mod middle;
pub mod toeplitz_karatsuba;
pub mod xor;

pub use backend::Backend;
use zeroize::Zeroizing;

/// A multiplication method, for tests and benchmarks that need a particular one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Quadratic; best for a few dozen words.
    Schoolbook,
    /// `O(n^1.585)`; best for middle sizes.
    Karatsuba,
    /// Chosen by operand size.
    Auto,
}

/// The product `a·b` (of `a.len() + b.len()` words) by `method` on `backend`.
pub fn mul_with(backend: Backend, method: Method, a: &[u64], b: &[u64]) -> Zeroizing<Vec<u64>> {
    let mut out = karatsuba::scratch(a.len() + b.len());
    match method {
        Method::Schoolbook => karatsuba::schoolbook(backend, a, b, &mut out),
        Method::Karatsuba | Method::Auto => karatsuba::karatsuba(backend, a, b, &mut out),
    }
    out
}

/// The product `a·b` (of `a.len() + b.len()` words) with the active backend and the fastest
/// method for the size.
pub fn mul(a: &[u64], b: &[u64]) -> Zeroizing<Vec<u64>> {
    mul_with(backend::active(), Method::Auto, a, b)
}

//! qitcore-core: the maths of qitcore. It needs no Python; its optional `python` feature (which
//! the binding enables) makes its result types Python classes, so that each is defined once.
//!
//! - [`bits`]: packed bit strings, bit orders, loading and storing bit ranges;
//! - [`maths`]: numeric pieces shared across modules (the xoshiro256** generator, `ln Γ` and the
//!   incomplete gamma function);
//! - [`cpu`]: the CPU features the SIMD paths use, detected once, and `QITCORE_SIMD=portable`,
//!   which forces the portable path everywhere;
//! - [`gf2`]: arithmetic in GF(2)\[x\] (carry-less multiplication chosen at run time, the
//!   windowed kernel, Toeplitz-Karatsuba, an additive FFT) on which Toeplitz hashing rests;
//! - [`extract`]: randomness extractors and their parameters;
//! - [`entropy`], [`health`]: SP 800-90B entropy assessment and health tests;
//! - [`frame`]: QDP/1, the device protocol: frames, decoder, sample formats;
//! - [`pipeline`]: the QRNG data path from transport bytes to extracted output;
//! - [`sim`]: the loopback simulator (noise model and in-process device);
//! - [`qkd`]: QKD post-processing: sifting, Cascade reconciliation, verification, the finite-key
//!   length, and a simulated decoy-state BB84 link;
//! - [`secret`]: seeds that come from the OS CSPRNG, stay out of `Debug` and are zeroized on drop.

pub mod bits;
mod choice;
pub mod cpu;
pub mod entropy;
pub mod error;
pub mod extract;
pub mod frame;
pub mod gf2;
pub mod health;
pub mod maths;
pub mod pipeline;
#[cfg(feature = "python")]
mod python;
pub mod qkd;
pub mod secret;
pub mod sim;

pub use error::{Error, Result};

/// A name fixed when qitcore is built (an estimator's, a statistic's, a block test's), as result
/// fields hold it. An alias rather than `&'static str` written out: serde takes a field spelt
/// `&str` to borrow from its input, which a pickled state cannot lend for `'static`.
pub type Name = &'static str;

//! qitcore-core: the maths of qitcore, free of any Python dependency.
//!
//! - [`bits`]: packed bit strings, bit orders, loading and storing bit ranges;
//! - [`gf2`]: arithmetic in GF(2)\[x\] (carry-less multiplication chosen at run time, Karatsuba,
//!   an additive FFT) on which Toeplitz hashing rests;
//! - [`extract`]: randomness extractors and their parameters;
//! - [`entropy`], [`health`]: SP 800-90B entropy assessment and health tests;
//! - [`frame`]: QDP/1, the device protocol: frames, decoder, sample formats;
//! - [`pipeline`]: the QRNG data path from transport bytes to extracted output;
//! - [`sim`]: the loopback simulator (noise model and in-process device);
//! - [`secret`]: seeds that come from the OS CSPRNG, stay out of `Debug` and are zeroized on drop.

pub mod bits;
pub mod entropy;
pub mod error;
pub mod extract;
pub mod frame;
pub mod gf2;
pub mod health;
pub mod maths;
pub mod pipeline;
pub mod qkd;
pub mod secret;
pub mod sim;

pub use error::{Error, Result};

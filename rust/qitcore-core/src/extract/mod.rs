//! Randomness extractors (QRNG conditioning and QKD privacy amplification) and their parameters.

pub mod blocks;
pub mod toeplitz;

pub use toeplitz::Toeplitz;

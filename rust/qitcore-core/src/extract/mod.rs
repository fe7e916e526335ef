//! Randomness extractors (QRNG conditioning and QKD privacy amplification) and their parameters.

pub mod blocks;
pub mod hash_conditioning;
pub mod modified_toeplitz;
mod packing;
pub mod params;
pub mod toeplitz;
pub mod von_neumann;

pub use hash_conditioning::{condition, condition_until, HashFunction};
pub use modified_toeplitz::ModifiedToeplitz;
pub use params::{conditioned_entropy, output_entropy, output_length, Convention};
pub use toeplitz::Toeplitz;
pub use von_neumann::{von_neumann, von_neumann_until};

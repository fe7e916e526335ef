//! Numeric pieces shared across the crate, none specific to one protocol or standard:
//!
//! - [`xoshiro`]: the xoshiro256** generator, unbiased bounded integers and shuffles (the
//!   permutation tests, the simulators, Cascade's permutations and the tests' data);
//! - [`arrangement`]: uniformly random arrangements of a multiset of bytes (the permutation
//!   tests' rounds, without a Fisher–Yates pass);
//! - [`bit_arrangement`]: uniformly random arrangements of set and clear bits, packed (the
//!   rounds where only the runs about the median are undecided);
//! - [`gamma`]: `ln Γ` and the regularised upper incomplete gamma function (chi-square p-values,
//!   binomial tails of the health-test cutoffs and the restart tests);
//! - [`entropy`]: the binary entropy function (Cascade's efficiency, the finite-key length).

pub mod arrangement;
pub mod bit_arrangement;
pub mod entropy;
pub mod gamma;
pub mod xoshiro;

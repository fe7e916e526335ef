//! One-way, rate-adaptive LDPC syndrome reconciliation with quasi-cyclic codes: the mother codes
//! ([`code`]), syndromes ([`syndrome`]), the fixed-point layered box-plus decoder ([`decode`], its
//! tiled layer update and vector kernels in `tile`, the scalar ⊞ rule and its table in `chain`),
//! rate adaptation and exact disclosure ([`adapt`]), Alice's and Bob's sides of blind
//! reconciliation ([`blind`]), and density evolution ([`density`]): the noise thresholds the
//! codes are designed against.

pub mod adapt;
pub mod blind;
mod chain;
pub mod code;
pub mod decode;
pub mod density;
pub mod girth;
#[cfg(test)]
mod reference;
pub mod syndrome;
#[cfg(test)]
mod tests;
mod tile;

use super::unstopped;

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

use std::sync::atomic::AtomicBool;

/// `work` run with a stop flag nobody sets: the plain form of the `…_until` functions, whose
/// `None` (stopped) then cannot come (and is an error, not a panic, if it did).
fn unstopped<T>(work: impl FnOnce(&AtomicBool) -> crate::error::Result<Option<T>>) -> crate::error::Result<T> {
    work(&AtomicBool::new(false))?.ok_or_else(|| crate::error::Error::argument("stop", "stopped with no stop asked"))
}

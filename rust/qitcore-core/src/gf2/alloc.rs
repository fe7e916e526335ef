//! Allocation that may fail: sizes that come from a user (a block of 2^32 bits, a seed of half a
//! gigabyte) must become [`Error::OutOfMemory`] when the allocator refuses them, never an abort of
//! the whole process (Rust's infallible allocation aborts). Objects that prepare many buffers first
//! ask for their total footprint once ([`ensure_available`]): under an address-space limit
//! (`RLIMIT_AS`, a container's cap) the large request fails cleanly before any work is done.

use crate::error::{Error, Result};

/// Checks that `bytes` bytes can be allocated now, by reserving them and giving them back at once
/// (large allocations are mapped and unmapped, so nothing is touched or kept).
///
/// # Errors
/// [`Error::OutOfMemory`] naming `what` when the allocator refuses.
pub fn ensure_available(what: &'static str, bytes: usize) -> Result<()> {
    let mut probe: Vec<u8> = Vec::new();
    probe.try_reserve_exact(bytes).map_err(|_| Error::OutOfMemory { what, bytes })?;
    // The optimiser may remove an allocation that is freed unused: make the pointer escape.
    std::hint::black_box(probe.as_mut_ptr());
    Ok(())
}

/// A zeroed vector of `len` elements, or [`Error::OutOfMemory`] naming `what`.
///
/// # Errors
/// [`Error::OutOfMemory`] when the allocator refuses (or the size overflows).
pub fn try_zeroed<T: Clone + Default>(what: &'static str, len: usize) -> Result<Vec<T>> {
    let bytes = len.saturating_mul(std::mem::size_of::<T>());
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::OutOfMemory { what, bytes })?;
    v.resize(len, T::default());
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_sizes_are_errors_not_aborts() {
        let err = ensure_available("seed", usize::MAX / 2).unwrap_err();
        assert_eq!(err, Error::OutOfMemory { what: "seed", bytes: usize::MAX / 2 });
        assert!(try_zeroed::<u64>("out", usize::MAX / 4).is_err());
        assert_eq!(try_zeroed::<u64>("out", 3).unwrap(), vec![0, 0, 0]);
        ensure_available("small", 1 << 20).unwrap();
    }
}

//! Wegman–Carter tags for the QKD channel (the core's `qkd::auth`): the hash key and the pad
//! cross as 8-byte buffers (the caller's `bytearray`, which it wipes), the message as a header and
//! a payload hashed where they lie.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use qitcore_core::gf2::backend;
use qitcore_core::qkd::auth;
use zeroize::Zeroizing;

use crate::args::int;
use crate::buffers::{Input, DETACH_BYTES};
use crate::errors::{detach, guard, Error, Result};

/// An 8-byte secret buffer as a little-endian `u64`, wiped when dropped.
fn secret_u64(py: Python<'_>, name: &'static str, obj: &Bound<'_, PyAny>) -> Result<Zeroizing<u64>> {
    let input = Input::get(py, name, obj)?;
    let bytes: [u8; auth::BLOCK_BYTES] = input.bytes().try_into().map_err(|_| {
        Error::length(name, format!("expected {} bytes, got {}", auth::BLOCK_BYTES, input.bytes().len()))
    })?;
    Ok(Zeroizing::new(u64::from_le_bytes(bytes)))
}

/// The 8-byte Wegman–Carter tag of `header | payload` under hash key `key` and one-time pad `pad`.
#[pyfunction]
pub fn wegman_carter_tag<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    pad: &Bound<'py, PyAny>,
    header: &Bound<'py, PyAny>,
    payload: &Bound<'py, PyAny>,
) -> Result<Bound<'py, PyBytes>> {
    let key = secret_u64(py, "key", key)?;
    let pad = secret_u64(py, "pad", pad)?;
    let header = Input::get(py, "header", header)?;
    let payload = Input::get(py, "payload", payload)?;
    let backend = backend::active();
    let (h, p) = (header.bytes(), payload.bytes());
    let work = || auth::tag(backend, *key, *pad, &[h, p]);
    // Short messages (most of a Cascade run) are hashed without releasing the GIL.
    let tag = if h.len() + p.len() > DETACH_BYTES { detach(py, work)? } else { guard(work)? };
    Ok(PyBytes::new(py, &tag.to_le_bytes()))
}

/// The substitution probability of one tag on a message of `n` bytes: `(⌈n/8⌉ + 1)/2^64`.
#[pyfunction]
pub fn wegman_carter_epsilon(#[pyo3(from_py_with = int::<usize>)] n: usize) -> Result<f64> {
    guard(|| auth::epsilon(n))
}

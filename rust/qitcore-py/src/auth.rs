//! Tags for the QKD channel: HMAC-SHA256 (the core's `qkd::hmac`), whose key states live in a
//! [`PyChannelMac`] for the whole session, and Wegman–Carter (the core's `qkd::auth`), whose hash
//! key and pad cross as 8-byte buffers (the caller's `bytearray`, which it wipes). Messages are
//! hashed where they lie.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use qitcore_core::gf2::backend;
use qitcore_core::qkd::auth;
use qitcore_core::qkd::hmac::{HmacSha256, TAG_BYTES};
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

/// HMAC-SHA256 of one end of the channel: the states of the pre-shared key with the direction
/// byte of each way hashed in (`out_prefix` for what this end seals, `in_prefix` for what it
/// opens). A frame is `header | payload | tag`, the tag over the prefix, header and payload.
impl PyChannelMac {
    /// `mac` with each direction's prefix.
    fn directed(
        py: Python<'_>,
        mac: &HmacSha256,
        out_prefix: &Bound<'_, PyAny>,
        in_prefix: &Bound<'_, PyAny>,
    ) -> Result<Self> {
        let (out_prefix, in_prefix) =
            (Input::get(py, "out_prefix", out_prefix)?, Input::get(py, "in_prefix", in_prefix)?);
        Ok(PyChannelMac { out: mac.prefixed(out_prefix.bytes()), input: mac.prefixed(in_prefix.bytes()) })
    }
}

/// The channel's pre-shared key, held here as its HMAC states: each session's key is derived from
/// it in Rust, so the pre-shared key is kept by no Python object (a Python `bytes` cannot be
/// wiped), and the derived key is wiped once its states are made.
#[pyclass(frozen, module = "qitcore._core", name = "ChannelKey")]
pub struct PyChannelKey {
    key: HmacSha256,
}

#[pymethods]
impl PyChannelKey {
    #[new]
    fn new(py: Python<'_>, key: &Bound<'_, PyAny>) -> Result<Self> {
        Ok(PyChannelKey { key: HmacSha256::new(Input::get(py, "key", key)?.bytes()) })
    }

    /// The MAC keyed with the pre-shared key itself.
    fn mac(&self, py: Python<'_>, out_prefix: &Bound<'_, PyAny>, in_prefix: &Bound<'_, PyAny>) -> Result<PyChannelMac> {
        PyChannelMac::directed(py, &self.key, out_prefix, in_prefix)
    }

    /// The MAC of one session: keyed with HMAC-SHA256(key, `label` ‖ `context`).
    fn session(
        &self,
        py: Python<'_>,
        label: &Bound<'_, PyAny>,
        context: &Bound<'_, PyAny>,
        out_prefix: &Bound<'_, PyAny>,
        in_prefix: &Bound<'_, PyAny>,
    ) -> Result<PyChannelMac> {
        let (label, context) = (Input::get(py, "label", label)?, Input::get(py, "context", context)?);
        let derived = Zeroizing::new(self.key.tag(&[label.bytes(), context.bytes()]));
        PyChannelMac::directed(py, &HmacSha256::new(&derived[..]), out_prefix, in_prefix)
    }

    fn __repr__(&self) -> &'static str {
        "ChannelKey(<hidden>)"
    }
}

#[pyclass(frozen, module = "qitcore._core", name = "ChannelMac")]
pub struct PyChannelMac {
    out: HmacSha256,
    input: HmacSha256,
}

#[pymethods]
impl PyChannelMac {
    #[new]
    fn new(
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        out_prefix: &Bound<'_, PyAny>,
        in_prefix: &Bound<'_, PyAny>,
    ) -> Result<Self> {
        let key = Input::get(py, "key", key)?;
        PyChannelMac::directed(py, &HmacSha256::new(key.bytes()), out_prefix, in_prefix)
    }

    /// `header | payload | tag`, sealed for the way out.
    fn seal<'py>(
        &self,
        py: Python<'py>,
        header: &Bound<'py, PyAny>,
        payload: &Bound<'py, PyAny>,
    ) -> Result<Bound<'py, PyBytes>> {
        let (header, payload) = (Input::get(py, "header", header)?, Input::get(py, "payload", payload)?);
        let (h, p) = (header.bytes(), payload.bytes());
        let work = || self.out.tag(&[h, p]);
        // Short messages (most of a Cascade run) are hashed without releasing the GIL.
        let tag = if h.len() + p.len() > DETACH_BYTES { detach(py, work)? } else { guard(work)? };
        Ok(PyBytes::new_with(py, h.len() + p.len() + TAG_BYTES, |out| {
            let (head, rest) = out.split_at_mut(h.len());
            let (body, end) = rest.split_at_mut(p.len());
            head.copy_from_slice(h);
            body.copy_from_slice(p);
            end.copy_from_slice(&tag);
            Ok(())
        })?)
    }

    /// Whether `frame` ends with the tag, for the way in, of all its bytes before the tag
    /// (compared in constant time); a frame shorter than a tag is not.
    fn check(&self, py: Python<'_>, frame: &Bound<'_, PyAny>) -> Result<bool> {
        let frame = Input::get(py, "frame", frame)?;
        let bytes = frame.bytes();
        let Some(split) = bytes.len().checked_sub(TAG_BYTES) else {
            return Ok(false);
        };
        let (message, tag) = bytes.split_at(split);
        let work = || self.input.verify(&[message], tag);
        Ok(if message.len() > DETACH_BYTES { detach(py, work)? } else { guard(work)? })
    }

    fn __repr__(&self) -> &'static str {
        "ChannelMac(key=<hidden>)"
    }
}

//! LDPC reconciliation's two sides. The plan is recomputed from its public arguments (n_key, qber,
//! seed) on each side; keys cross one byte per bit, messages as the wire bytes the channel carries.

use std::sync::{Mutex, PoisonError};

// A panic inside a call (a bug, turned into InternalError by `detach`) poisons the lock; the state
// is still readable, so later calls take it as it is rather than panicking across the FFI.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use qitcore_core::qkd::ldpc::adapt::{start_efficiency, Plan};
use qitcore_core::qkd::ldpc::blind::{keep_frames, Decoder, Encoder};
use qitcore_core::qkd::ldpc::decode::Settings;

use crate::args::{int, opt_int, opt_real, real, Int, List};
use crate::buffers::Input;
use crate::errors::{detach, guard, until, Error, Result};

/// `work` on the state behind `lock`, taken with the GIL released: decoding holds the lock for
/// seconds without the GIL, and a thread waiting for it with the GIL would stop every other.
fn locked<S: Send, T: Send>(py: Python<'_>, lock: &Mutex<S>, work: impl FnOnce(&mut S) -> T + Send) -> Result<T> {
    detach(py, || work(&mut lock.lock().unwrap_or_else(PoisonError::into_inner)))
}

/// One byte per bit, each 0 or 1.
fn bits<'a>(name: &'static str, input: &'a Input) -> Result<&'a [u8]> {
    let bytes = input.bytes();
    if let Some(at) = bytes.iter().position(|&b| b > 1) {
        return Err(Error::argument(name, format!("bits must be 0 or 1, found {} at {at}", bytes[at])));
    }
    Ok(bytes)
}

/// The plan, its first attempt aimed at `efficiency`, each blind round adding `step` (0: no blind
/// round, and nothing punctured for one), on the codes lifted by `lift`; each `None` from the
/// schedule (`adapt::schedule`, and the lift that leaves the most key). A plan's own efficiency,
/// step and lift remake it exactly.
fn plan(
    py: Python<'_>,
    n_key: usize,
    qber: f64,
    seed: u64,
    efficiency: Option<f64>,
    step: Option<f64>,
    lift: Option<usize>,
) -> Result<Plan> {
    // Ctrl-C stops it: on the largest frames, tens of thousands of punctured columns take seconds.
    until(py, |stop| Plan::with_lift_until(n_key, qber, seed, efficiency, step, lift, stop))
}

/// The efficiency a blind plan's first attempt aims at for estimated QBER `qber` (in (0, 0.5)) on
/// frames of the longest lift.
#[pyfunction]
pub fn ldpc_start_efficiency(#[pyo3(from_py_with = real)] qber: f64) -> Result<f64> {
    if !(qber > 0.0 && qber < 0.5) {
        return Err(Error::argument("qber", format!("expected a QBER in (0, 0.5), got {qber}")));
    }
    Ok(start_efficiency(qber))
}

/// The public plan: (code, frames, key bits per frame, key bits in the last frame, punctured,
/// shortened, used bits, syndrome bytes, syndrome bits per frame, symbols revealed per blind round)
/// and (efficiency, step, lift).
#[pyfunction]
#[pyo3(signature = (n_key, qber, seed, efficiency = None, step = None, lift = None))]
#[allow(clippy::type_complexity)]
pub fn ldpc_plan(
    py: Python<'_>,
    #[pyo3(from_py_with = int::<usize>)] n_key: usize,
    #[pyo3(from_py_with = real)] qber: f64,
    #[pyo3(from_py_with = int::<u64>)] seed: u64,
    #[pyo3(from_py_with = opt_real)] efficiency: Option<f64>,
    #[pyo3(from_py_with = opt_real)] step: Option<f64>,
    #[pyo3(from_py_with = opt_int::<usize>)] lift: Option<usize>,
) -> Result<((&'static str, usize, usize, usize, usize, usize, usize, usize, usize, (usize, usize)), (f64, f64, usize))>
{
    let p = plan(py, n_key, qber, seed, efficiency, step, lift)?;
    Ok((
        (
            p.code.name,
            p.frames,
            p.key_per_frame,
            p.last_frame_key,
            p.punctured,
            p.shortened,
            p.used_bits(),
            p.syndrome_bytes(),
            p.syndrome_bits(),
            (p.reveal_steps[0], p.reveal_steps[1]),
        ),
        (p.start, p.step, p.lift()),
    ))
}

/// Alice's side: syndromes of her frames and, on request, punctured values.
#[pyclass(frozen, module = "qitcore._core", name = "LdpcEncoder")]
pub struct PyLdpcEncoder {
    inner: Mutex<Encoder>,
}

#[pymethods]
impl PyLdpcEncoder {
    #[new]
    #[pyo3(signature = (n_key, qber, seed, key, efficiency = None, step = None, lift = None))]
    #[allow(clippy::too_many_arguments)] // the Python signature: the plan's public values, then the key
    fn new(
        py: Python<'_>,
        #[pyo3(from_py_with = int::<usize>)] n_key: usize,
        #[pyo3(from_py_with = real)] qber: f64,
        #[pyo3(from_py_with = int::<u64>)] seed: u64,
        key: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = opt_real)] efficiency: Option<f64>,
        #[pyo3(from_py_with = opt_real)] step: Option<f64>,
        #[pyo3(from_py_with = opt_int::<usize>)] lift: Option<usize>,
    ) -> Result<Self> {
        let input = Input::get(py, "key", key)?;
        let key = bits("key", &input)?;
        let plan = plan(py, n_key, qber, seed, efficiency, step, lift)?;
        let inner = guard(|| Encoder::new(plan, key))??;
        Ok(PyLdpcEncoder { inner: Mutex::new(inner) })
    }

    /// Every frame's packed syndrome (one message).
    fn syndromes<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyBytes>> {
        let out = locked(py, &self.inner, |e| e.syndromes())?;
        Ok(PyBytes::new(py, &out))
    }

    /// The punctured values a blind request asks for (refused when malformed).
    fn reveal<'py>(&self, py: Python<'py>, request: &Bound<'py, PyAny>) -> Result<Bound<'py, PyBytes>> {
        let request = Input::get(py, "request", request)?;
        let bytes = request.bytes();
        let out = locked(py, &self.inner, |e| e.reveal(bytes))??;
        Ok(PyBytes::new(py, &out))
    }

    /// Bits disclosed so far.
    #[getter]
    fn disclosed(&self, py: Python<'_>) -> Result<u64> {
        locked(py, &self.inner, |e| e.disclosed())
    }
}

/// Bob's side: decodes his frames against Alice's syndromes, asking for punctured values.
#[pyclass(frozen, module = "qitcore._core", name = "LdpcDecoder")]
pub struct PyLdpcDecoder {
    inner: Mutex<Decoder>,
}

#[pymethods]
impl PyLdpcDecoder {
    #[new]
    #[pyo3(signature = (
        n_key, qber, seed, key, channel_qber,
        max_iterations = Settings::default().max_iterations, efficiency = None, step = None, lift = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        #[pyo3(from_py_with = int::<usize>)] n_key: usize,
        #[pyo3(from_py_with = real)] qber: f64,
        #[pyo3(from_py_with = int::<u64>)] seed: u64,
        key: &Bound<'_, PyAny>,
        #[pyo3(from_py_with = real)] channel_qber: f64,
        #[pyo3(from_py_with = int::<u32>)] max_iterations: u32,
        #[pyo3(from_py_with = opt_real)] efficiency: Option<f64>,
        #[pyo3(from_py_with = opt_real)] step: Option<f64>,
        #[pyo3(from_py_with = opt_int::<usize>)] lift: Option<usize>,
    ) -> Result<Self> {
        if max_iterations == 0 {
            return Err(Error::argument("max_iterations", "expected at least 1"));
        }
        let input = Input::get(py, "key", key)?;
        let key = bits("key", &input)?;
        let plan = plan(py, n_key, qber, seed, efficiency, step, lift)?;
        let inner =
            guard(|| Decoder::new(plan, key, channel_qber, Settings { max_iterations, ..Settings::default() }))??;
        Ok(PyLdpcDecoder { inner: Mutex::new(inner) })
    }

    /// Decodes against the syndromes; the blind request for failed frames, or None. Ctrl-C stops
    /// it and leaves the decoder as it was.
    fn decode<'py>(&self, py: Python<'py>, syndromes: &Bound<'py, PyAny>) -> Result<Option<Bound<'py, PyBytes>>> {
        let syndromes = Input::get(py, "syndromes", syndromes)?;
        let bytes = syndromes.bytes();
        // The lock is taken on the worker thread, without the GIL (see `locked`).
        let out =
            until(py, |stop| self.inner.lock().unwrap_or_else(PoisonError::into_inner).decode_until(bytes, stop))?;
        Ok(out.map(|r| PyBytes::new(py, &r)))
    }

    /// Takes Alice's reveal and decodes the failed frames again; the next request, or None. Ctrl-C
    /// stops it and leaves the decoder as it was (the reveal may be applied again).
    fn apply<'py>(&self, py: Python<'py>, reveal: &Bound<'py, PyAny>) -> Result<Option<Bound<'py, PyBytes>>> {
        let reveal = Input::get(py, "reveal", reveal)?;
        let bytes = reveal.bytes();
        let out = until(py, |stop| self.inner.lock().unwrap_or_else(PoisonError::into_inner).apply_until(bytes, stop))?;
        Ok(out.map(|r| PyBytes::new(py, &r)))
    }

    /// The corrected key of the decoded frames, one byte per bit.
    fn key<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyBytes>> {
        let key = locked(py, &self.inner, |d| d.key())?;
        Ok(PyBytes::new(py, &key))
    }

    /// Indices of the frames that did not decode.
    #[getter]
    fn failed_frames(&self, py: Python<'_>) -> Result<Vec<u32>> {
        locked(py, &self.inner, |d| d.failed_frames())
    }

    /// Bits disclosed so far (equal to Alice's count).
    #[getter]
    fn disclosed(&self, py: Python<'_>) -> Result<u64> {
        locked(py, &self.inner, |d| d.disclosed())
    }

    /// Decoding attempts made: the round trips (1 + blind rounds).
    #[getter]
    fn rounds(&self, py: Python<'_>) -> Result<u32> {
        locked(py, &self.inner, |d| d.attempts())
    }
}

/// `key` (one byte per bit) without the bits of the `failed` frames and past the plan's used bits.
#[pyfunction]
#[pyo3(signature = (n_key, qber, seed, key, failed, efficiency = None, step = None, lift = None))]
#[allow(clippy::too_many_arguments)] // the Python signature: the plan's public values, then the key
pub fn ldpc_keep<'py>(
    py: Python<'py>,
    #[pyo3(from_py_with = int::<usize>)] n_key: usize,
    #[pyo3(from_py_with = real)] qber: f64,
    #[pyo3(from_py_with = int::<u64>)] seed: u64,
    key: &Bound<'py, PyAny>,
    failed: List<Int<u32>>,
    #[pyo3(from_py_with = opt_real)] efficiency: Option<f64>,
    #[pyo3(from_py_with = opt_real)] step: Option<f64>,
    #[pyo3(from_py_with = opt_int::<usize>)] lift: Option<usize>,
) -> Result<Bound<'py, PyBytes>> {
    let input = Input::get(py, "key", key)?;
    let key = bits("key", &input)?;
    let plan = plan(py, n_key, qber, seed, efficiency, step, lift)?;
    let failed: Vec<u32> = failed.0.iter().map(|i| i.0).collect();
    let kept = guard(|| keep_frames(&plan, key, &failed))??;
    Ok(PyBytes::new(py, &kept))
}

//! Bindings of the health tests: a monitor object that holds samples until their window passes,
//! and the block tests over packed bits.

use std::sync::{Mutex, TryLockError};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use qitcore_core::bits::{load_bits, to_bit_vec, words_for, BitOrder};
use qitcore_core::health::block_tests::{self, Outcome, Verdict, BLOCK_BITS};
use qitcore_core::health::self_test::self_test;
use qitcore_core::health::{AptFormula, Config, Failure, Monitor, State};

use crate::args::{self, int, real, Real};
use crate::buffers::{Input, DETACH_BYTES};
use crate::errors::{detach, guard, Error, Result};

fn state_name(s: State) -> &'static str {
    match s {
        State::StartUp => "startup",
        State::Healthy => "healthy",
        State::Failed => "failed",
    }
}

struct Inner {
    monitor: Monitor,
    /// Samples fed but not yet resolved, oldest first.
    pending: Vec<u8>,
}

/// SP 800-90B continuous health tests over a stream of samples.
#[pyclass(frozen, module = "qitcore._core", name = "HealthMonitor")]
pub struct PyHealthMonitor {
    inner: Mutex<Inner>,
}

impl PyHealthMonitor {
    /// Runs `f` on the monitor's state. The lock is never waited for while attached: another
    /// thread may hold it in detached work and need the GIL back before releasing it (the
    /// deadlock of taking a lock attached and keeping it across `detach`). So: an uncontended
    /// lock is taken at once for small work; otherwise the wait and the work happen detached.
    fn with<T: Send>(&self, py: Python<'_>, size: usize, f: impl FnOnce(&mut Inner) -> T + Send) -> Result<T> {
        if size < DETACH_BYTES {
            match self.inner.try_lock() {
                Ok(mut inner) => return guard(|| f(&mut inner)),
                Err(TryLockError::Poisoned(p)) => return guard(|| f(&mut p.into_inner())),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        detach(py, || f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner())))
    }
}

/// What `feed` resolved: the released samples, or the failure (every pending sample withheld).
fn feed_locked(inner: &mut Inner, bytes: &[u8]) -> Result<Vec<u8>, Failure> {
    let Inner { monitor, pending } = inner;
    match monitor.process(bytes) {
        Ok(release) => {
            // The resolved samples are the pending ones followed by the head of `bytes`: copy the
            // released ones out once, and keep only the unresolved tail.
            let (discard, emit) = (release.discard as usize, release.emit as usize);
            let resolved = discard + emit;
            let held = pending.len();
            let mut out = Vec::with_capacity(emit);
            let from_pending = held.saturating_sub(discard).min(emit);
            out.extend_from_slice(&pending[discard.min(held)..discard.min(held) + from_pending]);
            let start = discard.saturating_sub(held);
            out.extend_from_slice(&bytes[start..start + emit - from_pending]);
            if resolved >= held {
                pending.clear();
                pending.extend_from_slice(&bytes[resolved - held..]);
            } else {
                pending.drain(..resolved);
                pending.extend_from_slice(bytes);
            }
            Ok(out)
        }
        Err(f) => {
            pending.clear();
            Err(f)
        }
    }
}

#[pymethods]
impl PyHealthMonitor {
    #[new]
    #[pyo3(signature = (min_entropy, bits_per_sample=8, alpha=None, startup_samples=1024, apt_formula="standard"))]
    fn new(
        #[pyo3(from_py_with = real)] min_entropy: f64,
        #[pyo3(from_py_with = int::<u32>)] bits_per_sample: u32,
        alpha: Option<Real>,
        #[pyo3(from_py_with = int::<u64>)] startup_samples: u64,
        #[pyo3(from_py_with = args::apt_formula)] apt_formula: &'static str,
    ) -> Result<Self> {
        let apt_formula = if apt_formula == "hill" { AptFormula::Hill } else { AptFormula::Standard };
        let mut config = Config::new(min_entropy, bits_per_sample);
        config.alpha = alpha.map_or(config.alpha, |a| a.0);
        config.startup_samples = startup_samples;
        config.apt_formula = apt_formula;
        let monitor = guard(|| Monitor::new(config))??;
        Ok(PyHealthMonitor { inner: Mutex::new(Inner { monitor, pending: Vec::new() }) })
    }

    /// Tests `data`; returns the samples released by this call (start-up samples are dropped,
    /// samples of an incomplete window wait). Raises the failure, and withholds every pending
    /// sample, when a test fires.
    fn feed<'py>(&self, py: Python<'py>, data: &Bound<'py, PyAny>) -> Result<Bound<'py, PyBytes>> {
        let input = Input::get(py, "data", data)?;
        let bytes = input.bytes();
        let released = self.with(py, bytes.len(), |inner| feed_locked(inner, bytes))?;
        let out = released?;
        Ok(PyBytes::new(py, &out))
    }

    /// Tests `data` without holding or copying samples (the caller keeps them): returns
    /// `(discard, emit)`, the counts of the caller's oldest unresolved samples to drop and to
    /// release. Fails like `feed`.
    fn process(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> Result<(u64, u64)> {
        let input = Input::get(py, "data", data)?;
        let bytes = input.bytes();
        let result = self.with(py, bytes.len(), |inner| {
            if !inner.pending.is_empty() {
                return None;
            }
            Some(inner.monitor.process(bytes))
        })?;
        let Some(result) = result else {
            return Err(Error::argument(
                "data",
                "process() cannot follow feed() while feed() holds samples; use one or the other",
            ));
        };
        Ok(result.map(|r| (r.discard, r.emit))?)
    }

    /// Leaves the failed state; the next samples go through the start-up test again.
    fn reset(&self, py: Python<'_>) -> Result<()> {
        self.with(py, 0, |inner| {
            inner.monitor.reset();
            inner.pending.clear();
        })
    }

    /// Feeds known-bad sequences to fresh monitors of this configuration:
    /// `{"repetition_count": bool, "adaptive_proportion": bool}`.
    fn self_test<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyDict>> {
        let config = self.with(py, 0, |inner| *inner.monitor.config())?;
        let st = detach(py, || self_test(config))??;
        let d = PyDict::new(py);
        d.set_item("repetition_count", st.repetition_count)?;
        d.set_item("adaptive_proportion", st.adaptive_proportion)?;
        Ok(d)
    }

    #[getter]
    fn state(&self, py: Python<'_>) -> Result<&'static str> {
        self.with(py, 0, |inner| state_name(inner.monitor.state()))
    }

    #[getter]
    fn cutoffs(&self, py: Python<'_>) -> Result<(u64, u64, u64)> {
        self.with(py, 0, |inner| inner.monitor.cutoffs())
    }

    #[getter]
    fn pending(&self, py: Python<'_>) -> Result<usize> {
        self.with(py, 0, |inner| inner.pending.len())
    }

    #[getter]
    fn counters<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyDict>> {
        let c = self.with(py, 0, |inner| inner.monitor.counters())?;
        let d = PyDict::new(py);
        d.set_item("samples", c.samples)?;
        d.set_item("released", c.released)?;
        d.set_item("windows", c.windows)?;
        d.set_item("longest_run", c.longest_run)?;
        d.set_item("largest_window_count", c.largest_window_count)?;
        d.set_item("failures", c.failures)?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> Result<String> {
        self.with(py, 0, |inner| {
            let c = inner.monitor.config();
            format!(
                "HealthMonitor(min_entropy={}, bits_per_sample={}, alpha={:e}, state='{}')",
                c.min_entropy,
                c.bits_per_sample,
                c.alpha,
                state_name(inner.monitor.state())
            )
        })
    }
}

/// Every failure in a capture: the monitor is reset after each and goes on, so that a report can
/// say where and why a source fails. Returns `(failures, counters, cutoffs)`.
#[pyfunction]
#[pyo3(signature = (data, min_entropy, bits_per_sample=8, alpha=None, max_failures=1000))]
pub fn health_scan<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = real)] min_entropy: f64,
    #[pyo3(from_py_with = int::<u32>)] bits_per_sample: u32,
    alpha: Option<Real>,
    #[pyo3(from_py_with = int::<usize>)] max_failures: usize,
) -> Result<Bound<'py, PyDict>> {
    let mut config = Config::new(min_entropy, bits_per_sample);
    config.alpha = alpha.map_or(config.alpha, |a| a.0);
    let mut monitor = guard(|| Monitor::new(config))??;
    let input = Input::get(py, "data", data)?;
    let bytes = input.bytes();
    if let Some(offset) = bytes.iter().position(|&s| u32::from(s).checked_shr(bits_per_sample).unwrap_or(0) != 0) {
        return Err(Error::argument(
            "data",
            format!("the sample at offset {offset} (value {}) does not fit in {bits_per_sample} bits per sample", bytes[offset]),
        ));
    }
    let failures = detach(py, || {
        let mut failures = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() && failures.len() < max_failures {
            let before = monitor.counters().samples;
            match monitor.process(rest) {
                Ok(_) => break,
                Err(f) => {
                    failures.push(f);
                    let consumed = (f.index + 1 - before) as usize;
                    rest = &rest[consumed.min(rest.len())..];
                    monitor.reset();
                }
            }
        }
        failures
    })?;
    let list = PyList::empty(py);
    for f in &failures {
        let d = PyDict::new(py);
        d.set_item("test", f.test.name())?;
        d.set_item("index", f.index)?;
        d.set_item("value", f.value)?;
        d.set_item("count", f.count)?;
        d.set_item("cutoff", f.cutoff)?;
        list.append(d)?;
    }
    let c = monitor.counters();
    let result = PyDict::new(py);
    result.set_item("failures", list)?;
    result.set_item("samples", c.samples)?;
    result.set_item("longest_run", c.longest_run)?;
    result.set_item("largest_window_count", c.largest_window_count)?;
    result.set_item("cutoffs", monitor.cutoffs())?;
    Ok(result)
}

fn unpack(bytes: &[u8], order: BitOrder) -> Vec<u8> {
    let nbits = bytes.len() * 8;
    let mut words = vec![0u64; words_for(nbits)];
    load_bits(bytes, 0, nbits, order, &mut words);
    to_bit_vec(&words, nbits)
}

fn outcome_dict<'py>(py: Python<'py>, o: &Outcome) -> Result<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("test", o.test)?;
    d.set_item("value", o.value)?;
    d.set_item("passed", o.passed)?;
    d.set_item("detail", &o.detail)?;
    Ok(d)
}

fn order(bitorder: &str) -> Result<BitOrder> {
    Ok(BitOrder::parse(bitorder)?)
}

/// FIPS 140-2 tests on each whole 20,000-bit block: a list of lists of outcomes.
#[pyfunction]
#[pyo3(signature = (data, bitorder="big"))]
pub fn fips140_2<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = args::bitorder)] bitorder: &'static str,
) -> Result<Bound<'py, PyList>> {
    let order = order(bitorder)?;
    let input = Input::get(py, "data", data)?;
    let bytes = input.bytes();
    if bytes.len() * 8 < BLOCK_BITS {
        return Err(Error::length(
            "data",
            format!("FIPS 140-2 tests need 20000 bits (2500 bytes), got {} bytes", bytes.len()),
        ));
    }
    let blocks =
        detach(py, || unpack(bytes, order).chunks_exact(BLOCK_BITS).map(block_tests::fips140_2).collect::<Vec<_>>())?;
    let out = PyList::empty(py);
    for block in &blocks {
        let l = PyList::empty(py);
        for o in block {
            l.append(outcome_dict(py, o)?)?;
        }
        out.append(l)?;
    }
    Ok(out)
}

/// AIS 31 procedure A: `{"t0": outcome, "blocks": [[outcome]], "verdict": "pass"|"repeat"|"fail"}`.
#[pyfunction]
#[pyo3(signature = (data, bitorder="big"))]
pub fn ais31_procedure_a<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = args::bitorder)] bitorder: &'static str,
) -> Result<Bound<'py, PyDict>> {
    let order = order(bitorder)?;
    let input = Input::get(py, "data", data)?;
    let bytes = input.bytes();
    let needed = block_tests::T0_BITS + block_tests::PROCEDURE_A_BLOCKS * BLOCK_BITS;
    let result = detach(py, || block_tests::ais31_procedure_a(&unpack(bytes, order)))?;
    let Some(block_tests::ProcedureA { t0, blocks, verdict }) = result else {
        return Err(Error::length(
            "data",
            format!("AIS 31 procedure A needs {needed} bits ({} bytes), got {} bytes", needed.div_ceil(8), bytes.len()),
        ));
    };
    let d = PyDict::new(py);
    d.set_item("t0", outcome_dict(py, &t0)?)?;
    let list = PyList::empty(py);
    for block in &blocks {
        let l = PyList::empty(py);
        for o in block {
            l.append(outcome_dict(py, o)?)?;
        }
        list.append(l)?;
    }
    d.set_item("blocks", list)?;
    d.set_item(
        "verdict",
        match verdict {
            Verdict::Pass => "pass",
            Verdict::Repeat => "repeat",
            Verdict::Fail => "fail",
        },
    )?;
    Ok(d)
}

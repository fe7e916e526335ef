//! Bindings of the health tests: the core's buffered monitor behind a lock, the capture scan and
//! the block tests over packed bits. Results are the core's classes.

use std::sync::{Mutex, TryLockError};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyType};
use qitcore_core::bits::BitOrder;
use qitcore_core::health::block_tests::{self, Outcome, ProcedureA};
use qitcore_core::health::monitor::Counters;
use qitcore_core::health::self_test::{self_test, SelfTest};
use qitcore_core::health::{self, AptFormula, BufferedMonitor, Config, Scan, Scanner};

use crate::args::{self, int, opt_int, real, Real};
use crate::buffers::{Input, DETACH_BYTES};
use crate::errors::{detach, guard, until, Result};

/// The configuration of the arguments, the core's defaults where `None`.
fn config(min_entropy: f64, bits_per_sample: u32, alpha: Option<Real>) -> Config {
    Config { alpha: alpha.map_or(Config::DEFAULT_ALPHA, |a| a.0), ..Config::new(min_entropy, bits_per_sample) }
}

/// SP 800-90B continuous health tests over a stream of samples.
#[pyclass(frozen, module = "qitcore._core", name = "HealthMonitor")]
pub struct PyHealthMonitor {
    inner: Mutex<BufferedMonitor>,
}

impl PyHealthMonitor {
    /// Runs `f` on the monitor. The lock is never waited for while attached: another thread may
    /// hold it in detached work and need the GIL back before releasing it (the deadlock of taking
    /// a lock attached and keeping it across `detach`). So: an uncontended lock is taken at once
    /// for small work; otherwise the wait and the work happen detached. Either way the lock is
    /// held for `f` alone.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        size: usize,
        f: impl FnOnce(&mut BufferedMonitor) -> T + Send,
    ) -> Result<T> {
        if size < DETACH_BYTES {
            match self.inner.try_lock() {
                Ok(mut monitor) => return guard(|| f(&mut monitor)),
                Err(TryLockError::Poisoned(p)) => return guard(|| f(&mut p.into_inner())),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        detach(py, || f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner())))
    }
}

#[pymethods]
impl PyHealthMonitor {
    #[new]
    #[pyo3(signature = (min_entropy, bits_per_sample=8, alpha=None, startup_samples=None, apt_formula=AptFormula::Standard))]
    fn new(
        #[pyo3(from_py_with = real)] min_entropy: f64,
        #[pyo3(from_py_with = int::<u32>)] bits_per_sample: u32,
        alpha: Option<Real>,
        #[pyo3(from_py_with = opt_int::<u64>)] startup_samples: Option<u64>,
        #[pyo3(from_py_with = args::choice)] apt_formula: AptFormula,
    ) -> Result<Self> {
        let config = Config {
            startup_samples: startup_samples.unwrap_or(Config::DEFAULT_STARTUP_SAMPLES),
            apt_formula,
            ..config(min_entropy, bits_per_sample, alpha)
        };
        let monitor = guard(|| BufferedMonitor::new(config))??;
        Ok(PyHealthMonitor { inner: Mutex::new(monitor) })
    }

    /// Tests `data`; returns the samples released by this call (start-up samples are dropped,
    /// samples of an incomplete window wait). Raises the failure, and withholds every pending
    /// sample, when a test fires.
    fn feed<'py>(&self, py: Python<'py>, data: &Bound<'py, PyAny>) -> Result<Bound<'py, PyBytes>> {
        let input = Input::get(py, "data", data)?;
        let bytes = input.bytes();
        let released = self.with(py, bytes.len(), |monitor| monitor.feed(bytes))???;
        Ok(PyBytes::new(py, &released))
    }

    /// Tests `data` without holding or copying samples (the caller keeps them): returns
    /// `(discard, emit)`, the counts of the caller's oldest unresolved samples to drop and to
    /// release. Fails like `feed`.
    fn process(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> Result<(u64, u64)> {
        let input = Input::get(py, "data", data)?;
        let bytes = input.bytes();
        let release = self.with(py, bytes.len(), |monitor| monitor.process(bytes))???;
        Ok((release.discard, release.emit))
    }

    /// Leaves the failed state; the next samples go through the start-up test again.
    fn reset(&self, py: Python<'_>) -> Result<()> {
        self.with(py, 0, BufferedMonitor::reset)
    }

    /// Feeds known-bad sequences to fresh monitors of this configuration: which tests fired.
    fn self_test(&self, py: Python<'_>) -> Result<SelfTest> {
        let config = self.with(py, 0, |m| *m.monitor().config())?;
        Ok(detach(py, || self_test(config))??)
    }

    #[getter]
    fn state(&self, py: Python<'_>) -> Result<&'static str> {
        self.with(py, 0, |m| m.monitor().state().name())
    }

    #[getter]
    fn cutoffs(&self, py: Python<'_>) -> Result<(u64, u64, u64)> {
        self.with(py, 0, |m| m.monitor().cutoffs())
    }

    #[getter]
    fn pending(&self, py: Python<'_>) -> Result<usize> {
        self.with(py, 0, |m| m.pending())
    }

    #[getter]
    fn counters(&self, py: Python<'_>) -> Result<Counters> {
        self.with(py, 0, |m| m.monitor().counters())
    }

    /// The monitor's whole state (configuration, counters, windows, held samples) as versioned
    /// bytes: what a pickle carries.
    fn _state<'py>(&self, py: Python<'py>) -> Result<Bound<'py, PyBytes>> {
        let bytes = self.with(py, 0, |m| health::state::export(m))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The monitor whose `_state()` was `state`; bytes no monitor could have exported are refused
    /// naming `state`.
    #[classmethod]
    fn _from_state(_cls: &Bound<'_, PyType>, py: Python<'_>, state: &Bound<'_, PyAny>) -> Result<Self> {
        let input = Input::get(py, "state", state)?;
        let monitor = guard(|| health::state::import(input.bytes()))??;
        Ok(PyHealthMonitor { inner: Mutex::new(monitor) })
    }

    /// Pickling: `_from_state` and the state.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> Result<(Bound<'py, PyAny>, (Bound<'py, PyBytes>,))> {
        let state = slf.get()._state(slf.py())?;
        Ok((slf.get_type().getattr("_from_state")?, (state,)))
    }

    fn __repr__(&self, py: Python<'_>) -> Result<String> {
        let (c, state) = self.with(py, 0, |m| (*m.monitor().config(), m.monitor().state()))?;
        Ok(format!(
            "HealthMonitor(min_entropy={}, bits_per_sample={}, alpha={:e}, state='{}')",
            c.min_entropy,
            c.bits_per_sample,
            c.alpha,
            state.name()
        ))
    }
}

/// Every failure in a capture: the monitor is reset after each and goes on, so that a report can
/// say where and why a source fails.
#[pyfunction]
#[pyo3(signature = (data, min_entropy, bits_per_sample, alpha, max_failures))]
pub fn health_scan(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    #[pyo3(from_py_with = real)] min_entropy: f64,
    #[pyo3(from_py_with = int::<u32>)] bits_per_sample: u32,
    alpha: Option<Real>,
    #[pyo3(from_py_with = int::<usize>)] max_failures: usize,
) -> Result<Scan> {
    let input = Input::get(py, "data", data)?;
    let bytes = input.bytes();
    let config = config(min_entropy, bits_per_sample, alpha);
    Ok(detach(py, || health::scan(bytes, config, max_failures))??)
}

/// A capture scanned a piece at a time (a file read in chunks): the failures and counters of
/// `health_scan` over the whole capture.
#[pyclass(frozen, module = "qitcore._core", name = "HealthScanner")]
pub struct PyHealthScanner {
    inner: Mutex<Scanner>,
}

#[pymethods]
impl PyHealthScanner {
    #[new]
    #[pyo3(signature = (min_entropy, bits_per_sample, alpha, max_failures))]
    fn new(
        #[pyo3(from_py_with = real)] min_entropy: f64,
        #[pyo3(from_py_with = int::<u32>)] bits_per_sample: u32,
        alpha: Option<Real>,
        #[pyo3(from_py_with = int::<usize>)] max_failures: usize,
    ) -> Result<Self> {
        let scanner = guard(|| Scanner::new(config(min_entropy, bits_per_sample, alpha), max_failures))??;
        Ok(PyHealthScanner { inner: Mutex::new(scanner) })
    }

    /// Tests the next samples; `False` once the failure limit is reached.
    fn feed(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> Result<bool> {
        let input = Input::get(py, "data", data)?;
        let bytes = input.bytes();
        // Waited for and used detached only: see PyHealthMonitor::with.
        Ok(detach(py, || self.inner.lock().unwrap_or_else(|e| e.into_inner()).feed(bytes))??)
    }

    /// The failures so far and the counters.
    fn report(&self, py: Python<'_>) -> Result<Scan> {
        detach(py, || self.inner.lock().unwrap_or_else(|e| e.into_inner()).report())
    }
}

/// FIPS 140-2 tests on each whole 20,000-bit block: each block's outcomes.
#[pyfunction]
#[pyo3(signature = (data, bitorder=BitOrder::Big))]
pub fn fips140_2(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    #[pyo3(from_py_with = args::choice)] bitorder: BitOrder,
) -> Result<Vec<Vec<Outcome>>> {
    let input = Input::get(py, "data", data)?;
    let bytes = input.bytes();
    // A block takes tens of microseconds: a large input takes seconds, and answers Ctrl-C.
    until(py, |stop| block_tests::fips140_2_packed_until(bytes, bitorder, stop))
}

/// AIS 31 procedure A: T0, T1–T5 on each of 257 blocks, and the verdict.
#[pyfunction]
#[pyo3(signature = (data, bitorder=BitOrder::Big))]
pub fn ais31_procedure_a(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    #[pyo3(from_py_with = args::choice)] bitorder: BitOrder,
) -> Result<ProcedureA> {
    let input = Input::get(py, "data", data)?;
    let bytes = input.bytes();
    Ok(detach(py, || block_tests::ais31_procedure_a_packed(bytes, bitorder))??)
}

//! Bindings of the entropy assessment: samples in, the core's reports out (Python classes
//! through the core's `python` feature).

use std::ops::ControlFlow;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use pyo3::prelude::*;
use qitcore_core::entropy::iid::{self, IidReport};
use qitcore_core::entropy::non_iid::{self, NonIidReport};
use qitcore_core::entropy::restart::{self, RestartReport};
use qitcore_core::entropy::{Samples, Stop};

use crate::buffers::Input;
use crate::errors::{detach, finished, interruptible, until, Result};

/// Prepares samples borrowed from `bytes` (one per byte, no copy), `bits_per_symbol` inferred
/// when `None`; the bit string truncated to `max_bits` when given. The sample count is checked
/// against the limit before anything is allocated.
fn samples<'a>(
    py: Python<'_>,
    bytes: &'a [u8],
    bits_per_symbol: Option<u32>,
    max_bits: Option<usize>,
) -> Result<Samples<'a>> {
    let mut s = detach(py, || Samples::new(bytes, bits_per_symbol))??;
    if let Some(max) = max_bits {
        s.truncate_bits(max);
    }
    Ok(s)
}

/// The non-IID track of SP 800-90B.
#[pyfunction]
#[pyo3(signature = (data, bits_per_symbol=None, max_bits=None))]
pub fn assess_non_iid<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = crate::args::opt_int::<u32>)] bits_per_symbol: Option<u32>,
    #[pyo3(from_py_with = crate::args::opt_int::<usize>)] max_bits: Option<usize>,
) -> Result<NonIidReport> {
    let input = Input::get(py, "data", data)?;
    let s = samples(py, input.bytes(), bits_per_symbol, max_bits)?;
    stoppable(py, |stop| non_iid::assess(&s, stop))
}

/// Runs `work` so that Ctrl-C stops it (the estimators look at the flag as they go): its report,
/// or what the signal handler raised.
fn stoppable<T: Send>(
    py: Python<'_>,
    work: impl FnOnce(Stop<'_>) -> qitcore_core::Result<Option<T>> + Send,
) -> Result<T> {
    until(py, |flag| work(Stop::on(flag)))
}

/// The IID track of SP 800-90B. `progress(rounds, decided)` (a Python callable)
/// is called after each batch of permutations.
#[pyfunction]
#[pyo3(signature = (data, bits_per_symbol, permutations, seed=None, progress=None))]
pub fn assess_iid<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = crate::args::opt_int::<u32>)] bits_per_symbol: Option<u32>,
    #[pyo3(from_py_with = crate::args::int::<usize>)] permutations: usize,
    #[pyo3(from_py_with = crate::args::opt_int::<u64>)] seed: Option<u64>,
    #[pyo3(from_py_with = crate::args::opt_callable)] progress: Option<Py<PyAny>>,
) -> Result<IidReport> {
    let input = Input::get(py, "data", data)?;
    let s = samples(py, input.bytes(), bits_per_symbol, None)?;
    let seed = match seed {
        Some(seed) => seed,
        None => {
            let bytes = qitcore_core::secret::SecretBytes::random(8)?;
            u64::from_le_bytes(bytes.expose().try_into().expect("8 bytes"))
        }
    };
    // Ctrl-C (noticed by the calling thread) and an exception from `progress` (raised on a
    // worker thread) both stop the rounds at the next batch, and are what the call raises.
    let raised = Mutex::new(None);
    let report = interruptible(py, &raised, |stop| {
        let report_progress = |rounds: usize, decided: usize| {
            if stop.load(Ordering::Relaxed) {
                return ControlFlow::Break(());
            }
            let Some(callback) = &progress else {
                return ControlFlow::Continue(());
            };
            Python::attach(|py| match callback.call1(py, (rounds, decided)) {
                Ok(_) => ControlFlow::Continue(()),
                Err(err) => {
                    raised.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(err);
                    stop.store(true, Ordering::Relaxed);
                    ControlFlow::Break(())
                }
            })
        };
        iid::assess(&s, permutations, seed, &report_progress)
    })??;
    finished(report, raised.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// The restart tests of SP 800-90B §3.1.4.
#[pyfunction]
#[pyo3(signature = (data, h_i, bits_per_symbol=None))]
pub fn assess_restart<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = crate::args::real)] h_i: f64,
    #[pyo3(from_py_with = crate::args::opt_int::<u32>)] bits_per_symbol: Option<u32>,
) -> Result<RestartReport> {
    let input = Input::get(py, "data", data)?;
    restart::check_sample_count(input.bytes().len())?;
    let s = samples(py, input.bytes(), bits_per_symbol, None)?;
    stoppable(py, |stop| restart::assess(&s, h_i, stop))
}

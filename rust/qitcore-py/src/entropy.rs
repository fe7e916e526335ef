//! Bindings of the entropy assessment: samples in, plain dictionaries out (the Python package
//! turns them into result objects).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use qitcore_core::entropy::iid::{self, permutation};
use qitcore_core::entropy::{non_iid, restart, Estimate, Samples, Value};

use crate::buffers::Input;
use crate::errors::Result;

fn estimate_dict<'py>(py: Python<'py>, e: &Estimate) -> Result<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", e.name)?;
    d.set_item("view", e.view.label().to_lowercase())?;
    d.set_item("min_entropy", e.min_entropy)?;
    let fields = PyDict::new(py);
    for (key, value) in &e.fields {
        match value {
            Value::Int(v) => fields.set_item(*key, *v)?,
            Value::Real(v) => fields.set_item(*key, *v)?,
        }
    }
    d.set_item("fields", fields)?;
    d.set_item("note", e.note.as_deref())?;
    Ok(d)
}

/// Prepares samples borrowed from `bytes` (one per byte, no copy), `bits_per_symbol` inferred
/// when `None`; the bit string truncated to `max_bits` when given. The sample count is checked
/// against the limit before anything is allocated.
fn samples<'a>(
    py: Python<'_>,
    bytes: &'a [u8],
    bits_per_symbol: Option<u32>,
    max_bits: Option<usize>,
) -> Result<Samples<'a>> {
    let mut s = py.detach(|| Samples::new(bytes, bits_per_symbol))?;
    if let Some(max) = max_bits {
        s.truncate_bits(max);
    }
    Ok(s)
}

/// The non-IID track of SP 800-90B as a dictionary.
#[pyfunction]
#[pyo3(signature = (data, bits_per_symbol=None, max_bits=None))]
pub fn assess_non_iid<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = crate::args::opt_int::<u32>)] bits_per_symbol: Option<u32>,
    #[pyo3(from_py_with = crate::args::opt_int::<usize>)] max_bits: Option<usize>,
) -> Result<Bound<'py, PyDict>> {
    let input = Input::get(py, "data", data)?;
    let s = samples(py, input.bytes(), bits_per_symbol, max_bits)?;
    let report = py.detach(|| non_iid::assess(&s));
    let d = PyDict::new(py);
    d.set_item("samples", report.samples)?;
    d.set_item("bits_per_symbol", report.bits_per_symbol)?;
    d.set_item("alphabet_size", report.alphabet_size)?;
    d.set_item("bitstring_bits", report.bitstring_bits)?;
    let literal = PyList::empty(py);
    for e in &report.literal {
        literal.append(estimate_dict(py, e)?)?;
    }
    let bitstring = PyList::empty(py);
    for e in &report.bitstring {
        bitstring.append(estimate_dict(py, e)?)?;
    }
    d.set_item("literal", literal)?;
    d.set_item("bitstring", bitstring)?;
    d.set_item("h_original", report.h_original)?;
    d.set_item("h_bitstring", report.h_bitstring)?;
    d.set_item("h_assessed", report.h_assessed)?;
    d.set_item("warnings", report.warnings)?;
    Ok(d)
}

/// The IID track of SP 800-90B as a dictionary. `progress(rounds, decided)` (a Python callable)
/// is called after each batch of permutations.
#[pyfunction]
#[pyo3(signature = (data, bits_per_symbol=None, permutations=10_000, seed=None, progress=None))]
pub fn assess_iid<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = crate::args::opt_int::<u32>)] bits_per_symbol: Option<u32>,
    #[pyo3(from_py_with = crate::args::int::<usize>)] permutations: usize,
    #[pyo3(from_py_with = crate::args::opt_int::<u64>)] seed: Option<u64>,
    #[pyo3(from_py_with = crate::args::opt_callable)] progress: Option<Py<PyAny>>,
) -> Result<Bound<'py, PyDict>> {
    let input = Input::get(py, "data", data)?;
    let s = samples(py, input.bytes(), bits_per_symbol, None)?;
    let seed = match seed {
        Some(seed) => seed,
        None => {
            let bytes = qitcore_core::secret::SecretBytes::random(8)?;
            u64::from_le_bytes(bytes.expose().try_into().expect("8 bytes"))
        }
    };
    let report = py.detach(|| {
        let report_progress = |rounds: usize, decided: usize| {
            if let Some(callback) = &progress {
                Python::attach(|py| {
                    if let Err(err) = callback.call1(py, (rounds, decided)) {
                        err.write_unraisable(py, None);
                    }
                });
            }
        };
        iid::assess(&s, permutations, seed, &report_progress)
    });
    let d = PyDict::new(py);
    d.set_item("samples", s.len())?;
    d.set_item("bits_per_symbol", s.bits_per_symbol)?;
    d.set_item("alphabet_size", s.alphabet_size)?;
    d.set_item("literal", estimate_dict(py, &report.literal)?)?;
    d.set_item("bitstring", report.bitstring.as_ref().map(|e| estimate_dict(py, e)).transpose()?)?;
    d.set_item("h_original", report.h_original)?;
    d.set_item("h_bitstring", report.h_bitstring)?;
    d.set_item("h_assessed", report.h_assessed)?;
    d.set_item("mean", report.mean)?;
    d.set_item("median", report.median)?;
    for (key, chi) in [("independence", report.independence), ("goodness_of_fit", report.goodness_of_fit)] {
        let c = PyDict::new(py);
        c.set_item("score", chi.score)?;
        c.set_item("df", chi.df)?;
        c.set_item("p_value", chi.p_value)?;
        c.set_item("passed", chi.passed())?;
        d.set_item(key, c)?;
    }
    let lrs = PyDict::new(py);
    lrs.set_item("length", report.lrs.length)?;
    lrs.set_item("p_col", report.lrs.p_col)?;
    lrs.set_item("probability", report.lrs.probability)?;
    lrs.set_item("passed", report.lrs.passed)?;
    d.set_item("lrs", lrs)?;
    let p = &report.permutation;
    let stats = PyList::empty(py);
    for (j, name) in permutation::NAMES.iter().enumerate() {
        let t = PyDict::new(py);
        t.set_item("name", *name)?;
        t.set_item("value", p.initial[j])?;
        t.set_item("counts", p.counts[j].to_vec())?;
        t.set_item("passed", p.statistic_passed(j))?;
        stats.append(t)?;
    }
    let perm = PyDict::new(py);
    perm.set_item("statistics", stats)?;
    perm.set_item("rounds", p.rounds)?;
    perm.set_item("passed", p.passed)?;
    perm.set_item("seed", seed)?;
    d.set_item("permutation", perm)?;
    d.set_item("passed", report.passed)?;
    Ok(d)
}

/// The restart tests of SP 800-90B §3.1.4 as a dictionary.
#[pyfunction]
#[pyo3(signature = (data, h_i, bits_per_symbol=None))]
pub fn assess_restart<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    #[pyo3(from_py_with = crate::args::real)] h_i: f64,
    #[pyo3(from_py_with = crate::args::opt_int::<u32>)] bits_per_symbol: Option<u32>,
) -> Result<Bound<'py, PyDict>> {
    let input = Input::get(py, "data", data)?;
    restart::check_sample_count(input.bytes().len())?;
    let s = samples(py, input.bytes(), bits_per_symbol, None)?;
    let r = py.detach(|| restart::assess(&s, h_i))?;
    let d = PyDict::new(py);
    d.set_item("h_i", r.h_i)?;
    d.set_item("alpha", r.alpha)?;
    d.set_item("cutoff", r.cutoff)?;
    d.set_item("max_row", r.max_row)?;
    d.set_item("max_column", r.max_column)?;
    d.set_item("sanity_passed", r.sanity_passed)?;
    let rows = PyList::empty(py);
    for e in &r.rows {
        rows.append(estimate_dict(py, e)?)?;
    }
    let columns = PyList::empty(py);
    for e in &r.columns {
        columns.append(estimate_dict(py, e)?)?;
    }
    d.set_item("rows", rows)?;
    d.set_item("columns", columns)?;
    d.set_item("h_r", r.h_r)?;
    d.set_item("h_c", r.h_c)?;
    d.set_item("passed", r.passed)?;
    d.set_item("h_min", r.h_min)?;
    Ok(d)
}

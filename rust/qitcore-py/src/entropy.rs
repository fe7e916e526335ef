//! Bindings of the entropy assessment: samples in, plain dictionaries out (the Python package
//! turns them into result objects).

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use qitcore_core::entropy::{non_iid, Estimate, Samples, Value};

use crate::buffers::Input;
use crate::errors::IntoPy;

fn estimate_dict<'py>(py: Python<'py>, e: &Estimate) -> PyResult<Bound<'py, PyDict>> {
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

/// Prepares samples: one per byte, `bits_per_symbol` inferred when `None`; the bit string
/// truncated to `max_bits` when given.
fn samples(
    py: Python<'_>,
    data: &Bound<'_, PyAny>,
    bits_per_symbol: Option<u32>,
    max_bits: Option<usize>,
) -> PyResult<Samples> {
    let input = Input::get(py, "data", data)?;
    let bytes = input.bytes();
    let mut s = py.detach(|| Samples::new(bytes, bits_per_symbol)).py_err()?;
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
    bits_per_symbol: Option<u32>,
    max_bits: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let s = samples(py, data, bits_per_symbol, max_bits)?;
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

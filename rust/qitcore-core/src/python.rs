//! What the `python` feature adds beside the `pyclass` attributes on result types: conversions
//! of core values that Python sees as plain values (an enum as its lower-case name, a list of
//! named values as a dict), and the `__repr__` every result class shares.
//!
//! A result type is defined once, as a core struct; with this feature PyO3 makes it a frozen
//! Python class whose attributes are the struct's fields. The binding returns it as it is.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::entropy::{Fields, Value, View};

pyo3::import_exception!(qitcore.errors, UnsupportedOperationError);

/// Results are made by qitcore only; constructing one raises a `QitError` like every other
/// refused call of the binding (PyO3's default is a builtin `TypeError`).
pub(crate) fn not_constructible<T: pyo3::PyClass>() -> PyResult<T> {
    let name = T::NAME;
    Err(UnsupportedOperationError::new_err(format!("{name}: results are made by qitcore, not constructed")))
}

impl<'py> IntoPyObject<'py> for View {
    type Target = PyString;
    type Output = Bound<'py, PyString>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(PyString::new(py, self.name()))
    }
}

impl<'py> IntoPyObject<'py> for Value {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(match self {
            Value::Int(v) => v.into_pyobject(py)?.into_any(),
            Value::Real(v) => v.into_pyobject(py)?.into_any(),
        })
    }
}

impl<'py> IntoPyObject<'py> for Fields {
    type Target = PyDict;
    type Output = Bound<'py, PyDict>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Self::Output> {
        let d = PyDict::new(py);
        for (key, value) in self.0 {
            d.set_item(key, value)?;
        }
        Ok(d)
    }
}

/// The names of a result's fields: the getset descriptors PyO3 makes for `get_all` and
/// `#[getter]`, read from the class, so the list is the struct's and is not written again here.
/// Sorted, as PyO3 does not keep the declared order.
fn field_names(obj: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    let mut names = Vec::new();
    for item in obj.get_type().getattr("__dict__")?.call_method0("items")?.try_iter()? {
        let (key, attr): (String, Bound<'_, PyAny>) = item?.extract()?;
        if !key.starts_with('_') && attr.get_type().name()? == "getset_descriptor" {
            names.push(key);
        }
    }
    names.sort();
    Ok(names)
}

/// `Name(field=value, ...)`, as dataclasses print themselves.
pub(crate) fn repr(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    let mut fields = Vec::new();
    for key in field_names(obj)? {
        let value = obj.getattr(key.as_str())?.repr()?;
        fields.push(format!("{key}={value}"));
    }
    Ok(format!("{}({})", obj.get_type().name()?, fields.join(", ")))
}

/// The methods every result class shares: a refusing constructor, `__repr__` (the fields, or
/// `[repr = path]`'s own for a class whose fields are too large or secret to print), `__copy__`
/// and `__deepcopy__`. A class with
/// methods of its own passes them as a block (PyO3 allows one `#[pymethods]` block a class).
macro_rules! results {
    (@repr $slf:ident) => { repr($slf.as_any()) };
    (@repr $slf:ident $own:path) => { Ok($own($slf.get())) };
    ($($t:ty $([repr = $own:path])? $({ $($extra:item)* })?),* $(,)?) => {$(
        #[pymethods]
        impl $t {
            #[new]
            #[pyo3(signature = (*_args, **_kwargs))]
            fn __new__(
                _args: &Bound<'_, pyo3::types::PyTuple>,
                _kwargs: Option<&Bound<'_, PyDict>>,
            ) -> PyResult<Self> {
                not_constructible()
            }

            fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
                results!(@repr slf $($own)?)
            }

            // Results are immutable: a copy is the object itself (as for a frozen dataclass
            // holding immutable values).
            fn __copy__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
                slf
            }

            fn __deepcopy__<'py>(slf: Bound<'py, Self>, _memo: &Bound<'py, PyAny>) -> Bound<'py, Self> {
                slf
            }

            $($($extra)*)?
        }
    )*};
}

results!(
    crate::entropy::Estimate,
    crate::entropy::iid::chi_square::ChiSquare,
    crate::entropy::iid::lrs::LrsTest,
    crate::entropy::iid::PermutationStatistic,
    crate::entropy::iid::IidReport,
    crate::entropy::restart::RestartReport,
    crate::entropy::non_iid::NonIidReport {
        /// All estimates, bit string first (as NIST prints them).
        fn estimates(&self) -> Vec<crate::entropy::Estimate> {
            self.bitstring.iter().chain(&self.literal).cloned().collect()
        }
    },
);

/// The field named `key`, or `None` when no field has that name (or `key` is not a string).
fn field<'py>(obj: &Bound<'py, PyAny>, key: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let Ok(key) = key.extract::<String>() else { return Ok(None) };
    if field_names(obj)?.contains(&key) {
        obj.getattr(key.as_str()).map(Some)
    } else {
        Ok(None)
    }
}

/// Results that were dictionaries once (counters, the protocol's payloads, the finite-key bound),
/// read by attribute or as a read-only mapping of their fields: `r["key"]` (`KeyError` for any
/// other key, as a dictionary raises), `"key" in r`, `r.get(key, default)`, `r.keys()`, so that
/// `dict(r)` and `{**r}` work too. A class with methods of its own passes them as a block.
macro_rules! counters {
    ($($t:ty $({ $($extra:item)* })?),* $(,)?) => {
        results!($($t {
            fn __getitem__<'py>(slf: &Bound<'py, Self>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
                field(slf.as_any(), key)?.ok_or_else(|| pyo3::exceptions::PyKeyError::new_err(key.clone().unbind()))
            }

            fn __contains__<'py>(slf: &Bound<'py, Self>, key: &Bound<'py, PyAny>) -> PyResult<bool> {
                Ok(field(slf.as_any(), key)?.is_some())
            }

            /// The field `key`, or `default` when there is none.
            #[pyo3(signature = (key, default=None))]
            fn get<'py>(
                slf: &Bound<'py, Self>,
                key: &Bound<'py, PyAny>,
                default: Option<Bound<'py, PyAny>>,
            ) -> PyResult<Option<Bound<'py, PyAny>>> {
                Ok(field(slf.as_any(), key)?.or(default))
            }

            /// The names of the fields.
            fn keys(slf: &Bound<'_, Self>) -> PyResult<Vec<String>> {
                field_names(slf.as_any())
            }

            $($($extra)*)?
        }),*);
    };
}

counters!(crate::pipeline::Stats, crate::sim::SimCounters);

// Values of the health and protocol results that Python sees as their names.
crate::choice::as_python_names!(
    crate::health::HealthTest,
    crate::health::block_tests::Verdict,
    crate::frame::messages::DeviceState,
    crate::frame::messages::DeviceClass,
);

results!(
    crate::health::Failure,
    crate::health::monitor::Counters,
    crate::health::self_test::SelfTest,
    crate::health::Scan {
        /// No test fired.
        #[getter(passed)]
        fn py_passed(&self) -> bool {
            self.passed()
        }
    },
    crate::health::block_tests::Outcome,
    crate::health::block_tests::ProcedureA,
);

counters!(
    crate::frame::SampleFormat {
        /// Bits per sample, 1 to 16.
        #[getter]
        fn bits_per_sample(&self) -> u8 {
            self.bits
        }

        /// `"packed"` or `"aligned"`.
        #[getter(packing)]
        fn py_packing(&self) -> crate::frame::Packing {
            self.packing
        }

        /// `"big"` (each sample's most significant bit first) or `"little"`.
        #[getter]
        fn bitorder(&self) -> crate::frame::BitOrder {
            self.bit_order
        }

        /// Samples per second; 0 when unspecified.
        #[getter(rate)]
        fn py_rate(&self) -> u32 {
            self.rate
        }
    },
    crate::frame::messages::Status,
    crate::frame::messages::Info,
    crate::frame::messages::Reply,
    crate::frame::DecoderStats,
);

/// Pulse numbers as little-endian u64 bytes, for numpy to view.
impl<'py> IntoPyObject<'py> for &crate::qkd::sim::PulseNumbers {
    type Target = pyo3::types::PyBytes;
    type Output = Bound<'py, pyo3::types::PyBytes>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        let bytes: Vec<u8> = self.0.iter().flat_map(|i| i.to_le_bytes()).collect();
        Ok(pyo3::types::PyBytes::new(py, &bytes))
    }
}

// A QKD report's `finite_key` was a dictionary.
counters!(crate::qkd::finite_key::SecureLength);

results!(crate::qkd::sim::Detections[repr = crate::qkd::sim::Detections::summary]);

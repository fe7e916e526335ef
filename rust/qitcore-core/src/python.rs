//! What the `python` feature adds beside the `pyclass` attributes on result types: conversions
//! of core values that Python sees as plain values (an enum as its lower-case name, a list of
//! named values as a dict), and the `__repr__` every result class shares.
//!
//! A result type is defined once, as a core struct; with this feature PyO3 makes it a frozen
//! Python class whose attributes are the struct's fields. The binding returns it as it is.
//! serde (through pythonize) turns a result into plain Python values and back: its pickled state,
//! so that results cross processes (multiprocessing, Dask) as the dataclasses they replaced did.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::entropy::{Fields, Value, View};

pyo3::import_exception!(qitcore.errors, UnsupportedOperationError);
pyo3::import_exception!(qitcore.errors, InvalidArgumentError);

/// Results are made by qitcore only; constructing one raises a `QitError` like every other
/// refused call of the binding (PyO3's default is a builtin `TypeError`).
pub(crate) fn not_constructible<T: pyo3::PyClass>() -> PyResult<T> {
    let name = T::NAME;
    Err(UnsupportedOperationError::new_err(format!("{name}: results are made by qitcore, not constructed")))
}

/// The pickled state of a result: its fields as plain Python values (nested results as dicts,
/// byte columns as `bytes`).
pub(crate) fn state<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    Ok(pythonize::pythonize(py, value)?)
}

/// A result rebuilt from its pickled state; a state that does not describe one (a pickle made by
/// hand, or by another version) is refused by name rather than making a result no run produced.
pub(crate) fn from_state<T: pyo3::PyClass + serde::de::DeserializeOwned>(state: &Bound<'_, PyAny>) -> PyResult<T> {
    pythonize::depythonize(state).map_err(|e| {
        let name = T::NAME;
        InvalidArgumentError::new_err(format!("{name}: not a pickled {name} ({e})"))
    })
}

/// Names that are `&'static str` in the core (an estimator's, a test's) read back from a pickle.
/// Each distinct name is allocated once and kept; a pickle cannot make more than [`MAX_NAMES`]
/// of them, nor longer ones than [`MAX_NAME_LEN`], so unpickling cannot grow memory without bound.
pub(crate) fn static_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    use serde::de::Error as _;
    let name = String::deserialize(d)?;
    intern(name).map_err(D::Error::custom)
}

const MAX_NAMES: usize = 512;
const MAX_NAME_LEN: usize = 128;

fn intern(name: String) -> Result<&'static str, String> {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = names.iter().find(|n| **n == name) {
        return Ok(known);
    }
    if name.len() > MAX_NAME_LEN || names.len() >= MAX_NAMES {
        return Err(format!("unexpected name {:?}", name.chars().take(40).collect::<String>()));
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.push(leaked);
    Ok(leaked)
}

use serde::Deserialize as _;

// An estimate's named values, in order: pairs of (name, int or float).
impl serde::Serialize for Fields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let pairs = Vec::<(String, Value)>::deserialize(d)?;
        let mut fields = Vec::with_capacity(pairs.len());
        for (name, value) in pairs {
            fields.push((intern(name).map_err(D::Error::custom)?, value));
        }
        Ok(Fields(fields))
    }
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

            /// Pickling: the class's `_from_state` and the fields as plain values.
            fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (Bound<'py, PyAny>,))> {
                Ok((slf.get_type().getattr("_from_state")?, (state(slf.py(), slf.get())?,)))
            }

            /// The result whose pickled state is `state` (what `__reduce__` gave).
            #[classmethod]
            fn _from_state(
                _cls: &Bound<'_, pyo3::types::PyType>,
                state: &Bound<'_, PyAny>,
            ) -> PyResult<Self> {
                from_state(state)
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

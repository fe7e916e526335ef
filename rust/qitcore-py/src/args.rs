//! Arguments as the binding takes them. Every number the binding turns into a size, an index, a
//! count or a duration goes through one of these types, so that a value of the wrong type or out
//! of range raises an `InvalidTypeError` or `InvalidArgumentError` (a `QitError`) instead of a
//! builtin `OverflowError`/`TypeError`, or a panic further in. PyO3 adds a note naming the
//! argument ("while processing 'n'") to every error raised while an argument is converted.

use std::path::PathBuf;
use std::time::Duration;

use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyString};

use crate::errors::Error;

/// An argument of the wrong type (PyO3 names the argument in a note).
fn type_error(message: impl Into<String>) -> PyErr {
    Error::Type(message.into()).into()
}

/// An argument value out of range (PyO3 names the argument in a note).
fn value_error(message: impl Into<String>) -> PyErr {
    Error::Value(message.into()).into()
}

fn type_name(obj: &Borrowed<'_, '_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "object".into())
}

fn is_bool(obj: &Borrowed<'_, '_, PyAny>) -> bool {
    obj.is_instance_of::<PyBool>()
        || (obj.get_type().module().is_ok_and(|m| m == "numpy")
            && obj.get_type().name().is_ok_and(|n| n == "bool" || n == "bool_"))
}

/// The integer types arguments come in, with their bounds for messages.
pub trait Bounded: Sized + TryFrom<i128> {
    const MIN: i128;
    const MAX: i128;
}

macro_rules! bounded {
    ($($t:ty),*) => {$(
        impl Bounded for $t {
            const MIN: i128 = <$t>::MIN as i128;
            const MAX: i128 = <$t>::MAX as i128;
        }
    )*};
}
bounded!(u8, u16, u32, u64, usize, i32);

/// An integer argument: a Python `int` or anything with `__index__` (numpy's integers), never a
/// `bool` or a `float`, within the bounds of `T`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Int<T>(pub T);

impl<T: Bounded> FromPyObject<'_, '_> for Int<T> {
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, '_, PyAny>) -> PyResult<Self> {
        let range = || format!("an integer from {} to {}", T::MIN, T::MAX);
        // A plain `int` (the usual case) cannot be a bool: skip the checks below.
        if !obj.is_exact_instance_of::<PyInt>() && is_bool(&obj) {
            return Err(type_error(format!("expected {}, got bool", range())));
        }
        let refuse = |e: PyErr| {
            if e.is_instance_of::<PyOverflowError>(obj.py()) {
                value_error(format!("expected {}, got {}", range(), short_repr(&obj)))
            } else {
                type_error(format!("expected {}, got {}", range(), type_name(&obj)))
            }
        };
        // i64 first: one C call for every value that fits (i128 takes a slow path under the
        // limited API); u64 for the top half of the unsigned range.
        let wide = match obj.extract::<i64>() {
            Ok(v) => i128::from(v),
            Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => {
                i128::from(obj.extract::<u64>().map_err(refuse)?)
            }
            Err(e) => return Err(refuse(e)),
        };
        T::try_from(wide).map(Int).map_err(|_| value_error(format!("expected {}, got {wide}", range())))
    }
}

fn short_repr(obj: &Borrowed<'_, '_, PyAny>) -> String {
    let text = obj.repr().map(|r| r.to_string()).unwrap_or_else(|_| type_name(obj));
    if text.len() > 40 {
        format!("{}...", &text[..text.char_indices().nth(37).map_or(text.len(), |(i, _)| i)])
    } else {
        text
    }
}

/// A real-number argument: an `int`, a `float` or anything with `__float__` (numpy's floats),
/// never a `bool` or a `str`. NaN and infinities pass; the core checks each parameter's domain.
#[derive(Clone, Copy, Debug, Default)]
pub struct Real(pub f64);

impl FromPyObject<'_, '_> for Real {
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, '_, PyAny>) -> PyResult<Self> {
        if let Ok(f) = obj.cast_exact::<PyFloat>() {
            return Ok(Real(f.value()));
        }
        if is_bool(&obj) || obj.is_instance_of::<PyString>() {
            return Err(type_error(format!("expected a real number, got {}", type_name(&obj))));
        }
        obj.extract::<f64>().map(Real).map_err(|e: PyErr| {
            if e.is_instance_of::<PyOverflowError>(obj.py()) {
                value_error(format!("expected a real number, got {} (too large)", short_repr(&obj)))
            } else {
                type_error(format!("expected a real number, got {}", type_name(&obj)))
            }
        })
    }
}

/// A waiting time in seconds: `None` or `inf` wait for ever; a negative number or NaN is refused.
/// Times too long for a `Duration` (about 5.8e11 years) also wait for ever.
#[derive(Clone, Copy, Debug)]
pub struct Seconds(pub Option<Duration>);

impl FromPyObject<'_, '_> for Seconds {
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, '_, PyAny>) -> PyResult<Self> {
        if obj.is_none() {
            return Ok(Seconds(None));
        }
        let Real(v) = obj
            .extract()
            .map_err(|_: PyErr| type_error(format!("expected seconds (a number) or None, got {}", type_name(&obj))))?;
        if v.is_nan() || v < 0.0 {
            return Err(value_error(format!("expected seconds, 0 or more, got {v}")));
        }
        Ok(Seconds(Duration::try_from_secs_f64(v).ok()))
    }
}

/// A `str` argument (a name or a choice).
#[derive(Clone, Debug)]
pub struct Text(pub String);

impl FromPyObject<'_, '_> for Text {
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, '_, PyAny>) -> PyResult<Self> {
        let s = obj.cast::<PyString>().map_err(|_| type_error(format!("expected a str, got {}", type_name(&obj))))?;
        s.to_str()
            .map(|s| Text(s.to_owned()))
            .map_err(|_| value_error("expected a str of valid Unicode, got lone surrogates"))
    }
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// A `bool` argument (Python's or numpy's), never an integer standing for one.
#[derive(Clone, Copy, Debug)]
pub struct Flag(pub bool);

impl FromPyObject<'_, '_> for Flag {
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, '_, PyAny>) -> PyResult<Self> {
        if !is_bool(&obj) {
            return Err(type_error(format!("expected True or False, got {}", type_name(&obj))));
        }
        obj.is_truthy().map(Flag)
    }
}

/// A file-system path: a `str` or an `os.PathLike` of one.
#[derive(Clone, Debug)]
pub struct FsPath(pub PathBuf);

impl FromPyObject<'_, '_> for FsPath {
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, '_, PyAny>) -> PyResult<Self> {
        let refuse = || type_error(format!("expected a path (str or os.PathLike), got {}", type_name(&obj)));
        if obj.is_instance_of::<PyString>() || obj.hasattr("__fspath__").unwrap_or(false) {
            let path: PathBuf = obj.extract().map_err(|e: PyErr| {
                if e.is_instance_of::<PyTypeError>(obj.py()) {
                    refuse()
                } else {
                    value_error(format!("expected a path, got {}", short_repr(&obj)))
                }
            })?;
            if path.as_os_str().as_encoded_bytes().contains(&0) {
                return Err(value_error("expected a path without NUL characters"));
            }
            return Ok(FsPath(path));
        }
        Err(refuse())
    }
}

/// A sequence of exactly `N` items of `T` (a list or tuple; not a `str` or bytes).
#[derive(Clone, Copy, Debug)]
pub struct Array<T, const N: usize>(pub [T; N]);

impl<'py, T, const N: usize> FromPyObject<'_, 'py> for Array<T, N>
where
    T: for<'a> FromPyObject<'a, 'py, Error = PyErr> + Copy + Default,
{
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        let items = sequence(&obj, Some(N))?;
        let mut out = [T::default(); N];
        for (slot, item) in out.iter_mut().zip(&items) {
            *slot = item.extract()?;
        }
        Ok(Array(out))
    }
}

/// A sequence of any length of `T`.
#[derive(Clone, Debug)]
pub struct List<T>(pub Vec<T>);

impl<'py, T> FromPyObject<'_, 'py> for List<T>
where
    T: for<'a> FromPyObject<'a, 'py, Error = PyErr>,
{
    type Error = PyErr;

    fn extract(obj: Borrowed<'_, 'py, PyAny>) -> PyResult<Self> {
        sequence(&obj, None)?.iter().map(|item| item.extract()).collect::<PyResult<_>>().map(List)
    }
}

fn sequence<'py>(obj: &Borrowed<'_, 'py, PyAny>, len: Option<usize>) -> PyResult<Vec<Bound<'py, PyAny>>> {
    use pyo3::types::{PyList, PyTuple};
    let what = match len {
        Some(n) => format!("a list or tuple of {n} numbers"),
        None => "a list or tuple of numbers".to_owned(),
    };
    let items: Vec<Bound<'py, PyAny>> = if let Ok(l) = obj.cast::<PyList>() {
        l.iter().collect()
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        t.iter().collect()
    } else if obj.hasattr("__len__").unwrap_or(false)
        && obj.hasattr("tolist").unwrap_or(false)
        && !obj.is_instance_of::<PyString>()
    {
        // numpy arrays: their items as Python numbers.
        let list = obj.call_method0("tolist")?;
        let list = list.cast::<PyList>().map_err(|_| type_error(format!("expected {what}, got {}", type_name(obj))))?;
        list.iter().collect()
    } else {
        return Err(type_error(format!("expected {what}, got {}", type_name(obj))));
    };
    if let Some(n) = len {
        if items.len() != n {
            return Err(value_error(format!("expected {what}, got {} items", items.len())));
        }
    }
    Ok(items)
}

/// For `#[pyo3(from_py_with = int::<T>)]`: an [`Int`] as a plain `T`, so that defaults stay
/// literals in the signature.
pub fn int<T: Bounded>(obj: &Bound<'_, PyAny>) -> PyResult<T> {
    obj.extract::<Int<T>>().map(|i| i.0)
}

/// For `from_py_with`: a [`Real`] as a plain `f64`.
pub fn real(obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    obj.extract::<Real>().map(|r| r.0)
}

/// For `from_py_with`: a [`Flag`] as a plain `bool`.
pub fn flag(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    obj.extract::<Flag>().map(|f| f.0)
}

/// For `from_py_with`: a [`Text`] as a `String`.
pub fn text(obj: &Bound<'_, PyAny>) -> PyResult<String> {
    obj.extract::<Text>().map(|t| t.0)
}

/// For `from_py_with`: waiting time in seconds, as [`Seconds`] (`None` for ever).
pub fn seconds(obj: &Bound<'_, PyAny>) -> PyResult<Option<Duration>> {
    obj.extract::<Seconds>().map(|s| s.0)
}

/// For `from_py_with`: a choice the user names by a string, parsed by the core type's one
/// `FromStr` (whose error names the argument and lists the choices).
pub fn choice<T: std::str::FromStr<Err = qitcore_core::Error>>(obj: &Bound<'_, PyAny>) -> PyResult<T> {
    let Text(given) = obj.extract()?;
    given.parse().map_err(|e: qitcore_core::Error| Error::from(e).into())
}

/// For `from_py_with`: waiting time in seconds as an `f64` (`None` gives infinity), so that a
/// default can be a literal; checked as [`Seconds`].
pub fn seconds_f64(obj: &Bound<'_, PyAny>) -> PyResult<f64> {
    if obj.is_none() {
        return Ok(f64::INFINITY);
    }
    obj.extract::<Seconds>()?;
    obj.extract::<Real>().map(|r| r.0)
}

/// For `from_py_with` on an optional integer (`None` passes).
pub fn opt_int<T: Bounded>(obj: &Bound<'_, PyAny>) -> PyResult<Option<T>> {
    if obj.is_none() {
        return Ok(None);
    }
    int(obj).map(Some)
}

/// For `from_py_with` on an optional real number (`None` passes).
pub fn opt_real(obj: &Bound<'_, PyAny>) -> PyResult<Option<f64>> {
    if obj.is_none() {
        return Ok(None);
    }
    real(obj).map(Some)
}

/// For `from_py_with` on an optional callback (`None` passes; anything else must be callable).
pub fn opt_callable(obj: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
    if obj.is_none() {
        return Ok(None);
    }
    if !obj.is_callable() {
        let name = obj.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        return Err(type_error(format!("expected a callable or None, got {name}")));
    }
    Ok(Some(obj.clone().unbind()))
}

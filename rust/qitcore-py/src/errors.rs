//! The one mapping from core errors to the Python exceptions of `qitcore.errors`.

use pyo3::prelude::*;
use qitcore_core::Error;

pyo3::import_exception!(qitcore.errors, InvalidArgumentError);
pyo3::import_exception!(qitcore.errors, InvalidLengthError);
pyo3::import_exception!(qitcore.errors, InvalidTypeError);
pyo3::import_exception!(qitcore.errors, OSRandomError);
pyo3::import_exception!(qitcore.errors, RepetitionCountFailure);
pyo3::import_exception!(qitcore.errors, AdaptiveProportionFailure);
pyo3::import_exception!(qitcore.errors, ProtocolError);
pyo3::import_exception!(qitcore.errors, HealthTestFailure);
pyo3::import_exception!(qitcore.errors, SequenceGapError);
pyo3::import_exception!(qitcore.errors, ReplayedFrameError);
pyo3::import_exception!(qitcore.errors, DeviceDisconnected);
pyo3::import_exception!(qitcore.errors, DeviceTimeout);
pyo3::import_exception!(qitcore.errors, StreamClosedError);
pyo3::import_exception!(qitcore.errors, NoValidFrames);
pyo3::import_exception!(qitcore.errors, OutOfMemoryError);
pyo3::import_exception!(qitcore.errors, InternalError);
pyo3::import_exception!(qitcore.errors, UnsupportedOperationError);

/// Converts a core error into its Python exception; the message names the argument.
pub fn to_py(err: Error) -> PyErr {
    let message = err.to_string();
    match err {
        Error::InvalidArgument { .. } => InvalidArgumentError::new_err(message),
        Error::InvalidLength { .. } => InvalidLengthError::new_err(message),
        Error::Os(_) => OSRandomError::new_err(message),
        Error::Protocol(_) => ProtocolError::new_err(message),
        Error::OutOfMemory { .. } => OutOfMemoryError::new_err(message),
    }
}

/// The error for a buffer of `bytes` bytes that could not be allocated.
pub fn out_of_memory(what: &str, bytes: usize) -> PyErr {
    OutOfMemoryError::new_err(format!("{what}: could not allocate {bytes} bytes"))
}

/// A zeroed buffer of `len` bytes, or `OutOfMemoryError` naming `what` (sizes from users must not
/// abort the process when the allocator refuses them).
pub fn zeroed(what: &str, len: usize) -> PyResult<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| out_of_memory(what, len))?;
    v.resize(len, 0);
    Ok(v)
}

/// Runs `work` with the GIL released; a panic in it (a bug in qitcore) becomes `InternalError`
/// instead of unwinding into Python as a `PanicException`, which is not an `Exception`.
pub fn detach<T: Send>(py: Python<'_>, work: impl FnOnce() -> T + Send) -> PyResult<T> {
    py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))).map_err(panic_error)
}

/// As [`detach`], with the GIL kept for work too small to be worth releasing it.
pub fn guard<T>(work: impl FnOnce() -> T) -> PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(panic_error)
}

fn panic_error(payload: Box<dyn std::any::Any + Send>) -> PyErr {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    InternalError::new_err(format!("internal error in qitcore (please report it): {what}"))
}

/// Extension to turn core results into Python results.
pub trait IntoPy<T> {
    /// Maps the error with [`to_py`].
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for qitcore_core::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

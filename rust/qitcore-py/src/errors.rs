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

/// Converts a core error into its Python exception; the message names the argument.
pub fn to_py(err: Error) -> PyErr {
    let message = err.to_string();
    match err {
        Error::InvalidArgument { .. } => InvalidArgumentError::new_err(message),
        Error::InvalidLength { .. } => InvalidLengthError::new_err(message),
        Error::Os(_) => OSRandomError::new_err(message),
        Error::Protocol(_) => ProtocolError::new_err(message),
    }
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

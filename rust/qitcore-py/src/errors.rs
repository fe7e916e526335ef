//! The binding's one error type and its one conversion into the exceptions of `qitcore.errors`.
//!
//! Every binding function returns [`Result`]; `?` turns a core error, a health-test failure, a
//! stream error or a Python error into [`Error`], and PyO3 converts that with the one
//! `From<Error> for PyErr` below. No other place in the binding builds an exception.

use pyo3::prelude::*;
use qitcore_core::health::{Failure, HealthTest};
use qitcore_core::pipeline::{ReadError, StreamError};

pyo3::import_exception!(qitcore.errors, InvalidArgumentError);
pyo3::import_exception!(qitcore.errors, InvalidLengthError);
pyo3::import_exception!(qitcore.errors, InvalidTypeError);
pyo3::import_exception!(qitcore.errors, OSRandomError);
pyo3::import_exception!(qitcore.errors, RepetitionCountFailure);
pyo3::import_exception!(qitcore.errors, AdaptiveProportionFailure);
pyo3::import_exception!(qitcore.errors, ProtocolError);
pyo3::import_exception!(qitcore.errors, ChannelError);
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

/// Everything a binding function can fail with.
#[derive(Debug)]
pub enum Error {
    /// An error of the core crate (bad argument or length, OS RNG, protocol, allocation).
    Core(qitcore_core::Error),
    /// A host health test fired.
    Health(Failure),
    /// A stream failed, was closed, timed out or could not allocate its output.
    Read(ReadError),
    /// An argument of the wrong Python type; the message says what was expected.
    Type(String),
    /// An argument value out of its domain, for messages that PyO3 prefixes with the argument's
    /// name (errors raised while it converts an argument).
    Value(String),
    /// A device or file that could not be opened or read (the message names it).
    Disconnected(String),
    /// An operation the object does not support (pickling a stream, numpy's ctypes interface).
    Unsupported(String),
    /// A bug in qitcore: a panic caught at the boundary, an impossible state.
    Internal(String),
    /// An exception raised by Python code (a callback, a signal handler, a conversion).
    Python(PyErr),
}

/// The result type of every binding function.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An argument whose value lies outside its domain; `name` is the argument's name.
    pub fn argument(name: &'static str, message: impl Into<String>) -> Self {
        Error::Core(qitcore_core::Error::InvalidArgument { name, message: message.into() })
    }

    /// A buffer whose length does not fit the operation.
    pub fn length(name: &'static str, message: impl Into<String>) -> Self {
        Error::Core(qitcore_core::Error::InvalidLength { name, message: message.into() })
    }

    /// A QKD peer's message that breaks the post-processing protocol.
    pub fn peer(message: impl Into<String>) -> Self {
        Error::Core(qitcore_core::Error::Peer(message.into()))
    }

    /// A buffer of `bytes` bytes for `what` that could not be allocated.
    pub fn out_of_memory(what: &'static str, bytes: usize) -> Self {
        Error::Core(qitcore_core::Error::OutOfMemory { what, bytes })
    }
}

impl From<qitcore_core::Error> for Error {
    fn from(e: qitcore_core::Error) -> Self {
        Error::Core(e)
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        Error::Health(f)
    }
}

impl From<StreamError> for Error {
    fn from(e: StreamError) -> Self {
        Error::Read(ReadError::Failed(e))
    }
}

impl From<ReadError> for Error {
    fn from(e: ReadError) -> Self {
        Error::Read(e)
    }
}

impl From<PyErr> for Error {
    fn from(e: PyErr) -> Self {
        Error::Python(e)
    }
}

/// The one conversion into Python exceptions.
impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        match err {
            Error::Core(e) => core_error(e),
            Error::Health(f) => failure_error(&f),
            Error::Read(e) => read_error(e),
            Error::Type(message) => InvalidTypeError::new_err(message),
            Error::Value(message) => InvalidArgumentError::new_err(message),
            Error::Disconnected(message) => DeviceDisconnected::new_err(message),
            Error::Unsupported(message) => UnsupportedOperationError::new_err(message),
            Error::Internal(message) => InternalError::new_err(message),
            Error::Python(e) => e,
        }
    }
}

fn core_error(err: qitcore_core::Error) -> PyErr {
    use qitcore_core::Error as E;
    let message = err.to_string();
    match err {
        E::InvalidArgument { .. } => InvalidArgumentError::new_err(message),
        E::InvalidLength { .. } => InvalidLengthError::new_err(message),
        E::Os(_) => OSRandomError::new_err(message),
        E::Protocol(_) => ProtocolError::new_err(message),
        E::Peer(_) => ChannelError::new_err(message),
        E::OutOfMemory { .. } => OutOfMemoryError::new_err(message),
    }
}

/// The exception of a health-test failure carries where it fired, as the Python class's fields.
fn failure_error(f: &Failure) -> PyErr {
    let message = format!(
        "{} failed at sample {}: value {} reached {} (cutoff {})",
        f.test.name(),
        f.index,
        f.value,
        f.count,
        f.cutoff
    );
    let args = (message, f.index, f.value, f.count, f.cutoff);
    match f.test {
        HealthTest::RepetitionCount => RepetitionCountFailure::new_err(args),
        HealthTest::AdaptiveProportion => AdaptiveProportionFailure::new_err(args),
    }
}

fn stream_error(e: &StreamError) -> PyErr {
    let message = e.to_string();
    match e {
        StreamError::Health(f) => failure_error(f),
        StreamError::DeviceHealth => HealthTestFailure::new_err(message),
        StreamError::Gap { expected, received, lost } => {
            SequenceGapError::new_err((message, *expected, *received, *lost))
        }
        StreamError::Replay { last, received } => ReplayedFrameError::new_err((message, *last, *received)),
        StreamError::Protocol(_) => ProtocolError::new_err(message),
        StreamError::Disconnected(_) => DeviceDisconnected::new_err(message),
        StreamError::NoValidFrames { .. } => NoValidFrames::new_err(message),
    }
}

fn read_error(e: ReadError) -> PyErr {
    match e {
        ReadError::Failed(e) => stream_error(&e),
        ReadError::Closed => StreamClosedError::new_err("stream: read from a closed stream"),
        ReadError::Timeout => DeviceTimeout::new_err("stream: no output within the timeout; nothing was consumed"),
        // The binding answers an interrupted wait with what the signal handler raised
        // ([`Error::Python`]); reaching here means the wait stopped with no exception set.
        ReadError::Interrupted => InternalError::new_err("stream: wait interrupted without a signal"),
        ReadError::OutOfMemory(n) => core_error(qitcore_core::Error::OutOfMemory { what: "n", bytes: n }),
    }
}

/// The error of a wait that did not complete; `raised` is what the interrupt check raised
/// (KeyboardInterrupt, or whatever a signal handler raised), which is the answer when it stopped
/// the wait.
pub fn waited(e: ReadError, raised: Option<PyErr>) -> Error {
    match (e, raised) {
        (ReadError::Interrupted, Some(raised)) => Error::Python(raised),
        (e, _) => Error::Read(e),
    }
}

/// The exception object for a stream's failure (for `Stream.error()`, which returns it).
pub fn stream_exception(py: Python<'_>, e: &StreamError) -> Py<PyAny> {
    stream_error(e).into_value(py).into_any()
}

/// Runs `work` with the GIL released; a panic in it (a bug in qitcore) becomes `InternalError`
/// instead of unwinding into Python as a `PanicException`, which is not an `Exception`.
pub fn detach<T: Send>(py: Python<'_>, work: impl FnOnce() -> T + Send) -> Result<T> {
    py.detach(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))).map_err(panic_error)
}

/// How often [`interruptible`] lets Python's signal handlers run: Ctrl-C stops work within it.
const SIGNAL_CHECK: std::time::Duration = std::time::Duration::from_millis(50);

/// As [`detach`], for long work that answers Ctrl-C: `work` runs on a thread of its own while
/// this one (the thread that called in, where CPython runs signal handlers) lets the handlers
/// run every [`SIGNAL_CHECK`]. What a handler raises (KeyboardInterrupt) is kept in `raised`
/// and sets the flag `work` is given, which it should check between steps and then give up.
pub fn interruptible<T: Send>(
    py: Python<'_>,
    raised: &std::sync::Mutex<Option<PyErr>>,
    work: impl FnOnce(&std::sync::atomic::AtomicBool) -> T + Send,
) -> Result<T> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::{channel, RecvTimeoutError};
    let stop = AtomicBool::new(false);
    let stop = &stop;
    detach(py, || {
        std::thread::scope(|scope| {
            let (done, finished) = channel::<()>();
            let worker = std::thread::Builder::new()
                .name("qitcore-work".into())
                .spawn_scoped(scope, move || {
                    let out = work(stop);
                    // A panic drops `done` unsent, which ends the wait just the same.
                    let _ = done.send(());
                    out
                })
                // Out of threads or address space: what the caller can act on is the memory.
                .map_err(|_| Error::out_of_memory("a worker thread", 2 << 20))?;
            while let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(SIGNAL_CHECK) {
                if stop.load(Ordering::Relaxed) {
                    continue;
                }
                if let Err(e) = Python::attach(|py| py.check_signals()) {
                    raised.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                    stop.store(true, Ordering::Relaxed);
                }
            }
            worker.join().map_err(|payload| std::panic::resume_unwind(payload))
        })
    })?
}

/// As [`interruptible`], for work that gives up (`None`) once its flag is set: its result, or
/// what the signal handler raised. Work that finished although the flag was set (Ctrl-C came
/// after its last look at it) returns its result, and a KeyboardInterrupt is raised again right
/// after: work that changes state (a decoder's round) must not be done and then reported undone.
pub fn until<T: Send>(
    py: Python<'_>,
    work: impl FnOnce(&std::sync::atomic::AtomicBool) -> qitcore_core::Result<Option<T>> + Send,
) -> Result<T> {
    let raised = std::sync::Mutex::new(None);
    let out = interruptible(py, &raised, work)??;
    match (out, raised.into_inner().unwrap_or_else(|p| p.into_inner())) {
        (Some(out), Some(err)) if err.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) => {
            // SAFETY: called with the GIL held; it only flags SIGINT as arrived.
            unsafe { pyo3::ffi::PyErr_SetInterrupt() };
            Ok(out)
        }
        (out, raised) => finished(out, raised),
    }
}

/// Work's result, or why it stopped: what Ctrl-C (or a callback, on another thread) raised.
pub fn finished<T>(out: Option<T>, raised: Option<PyErr>) -> Result<T> {
    match (out, raised) {
        (Some(out), None) => Ok(out),
        (_, Some(err)) => Err(Error::Python(err)),
        (None, None) => Err(Error::Internal("work stopped without a reason".into())),
    }
}

/// As [`detach`], with the GIL kept for work too small to be worth releasing it.
pub fn guard<T>(work: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(panic_error)
}

fn panic_error(payload: Box<dyn std::any::Any + Send>) -> Error {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned());
    Error::Internal(format!("internal error in qitcore (please report it): {what}"))
}

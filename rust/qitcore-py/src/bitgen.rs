//! numpy's `bitgen_t` interface over a stream, so that `numpy.random.Generator` draws from a
//! QRNG stream.
//!
//! numpy calls these functions from C with no way to return an error. When the stream fails (or
//! Ctrl-C interrupts a wait for it), the Python exception is set, the generator halts (every
//! further draw of that numpy call returns at once), and the values returned are a fixed, never
//! random, sequence that only serves to let numpy's rejection loops end. They never reach
//! Python: numpy holds the bit generator's lock around every draw, and that lock is a
//! [`PyBitGenLock`], whose `__exit__` raises the pending exception, so the numpy call raises the
//! qitcore exception itself (`RepetitionCountFailure`, `KeyboardInterrupt`, ...) and returns
//! nothing. The next numpy call (the next `__enter__`) tries the stream again.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyTuple};
use qitcore_core::pipeline::Stream;

use crate::errors::{Error, Result};
use crate::stream::{wait, PyStream};

/// numpy's `bitgen_t`, field for field.
#[repr(C)]
struct BitGen {
    state: *mut c_void,
    next_uint64: unsafe extern "C" fn(*mut c_void) -> u64,
    next_uint32: unsafe extern "C" fn(*mut c_void) -> u32,
    next_double: unsafe extern "C" fn(*mut c_void) -> f64,
    next_raw: unsafe extern "C" fn(*mut c_void) -> u64,
}

/// The capsule owns the state through `state`; numpy only reads the struct.
struct OwnedBitGen(BitGen);

// SAFETY: `state` points to a `State`, which is `Send`; numpy serialises calls with the bit
// generator's lock.
unsafe impl Send for OwnedBitGen {}

struct State {
    stream: Arc<Stream>,
    buf: Vec<u8>,
    pos: usize,
    spare: Option<u32>,
    /// Set when a draw failed; cleared by the lock's `__enter__` at the next numpy call.
    halted: Arc<AtomicBool>,
    /// The exception of the failure, set again on any later draw of the same numpy call that
    /// finds no exception pending.
    error: Option<PyErr>,
    filler: u64,
}

const CHUNK: usize = 4096;

impl State {
    /// The next word of the stream, or `None` when the stream failed (the exception is set).
    fn word(&mut self) -> Option<u64> {
        if self.pos + 8 > self.buf.len() && !self.refill() {
            return None;
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.buf[self.pos..self.pos + 8]);
        self.pos += 8;
        Some(u64::from_le_bytes(word))
    }

    /// The next word, or after a failure a filler: splitmix64 of a counter, varied so that numpy's
    /// rejection loops end; the numpy call raises, so it never reaches Python.
    fn next(&mut self) -> u64 {
        self.word().unwrap_or_else(|| {
            self.filler = self.filler.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.filler;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    }

    /// Tops the buffer up to at least 8 bytes, reading with the GIL released and answering
    /// Ctrl-C; on failure sets the Python error and halts. A short read before a failure still
    /// delivers its bytes.
    fn refill(&mut self) -> bool {
        if self.halted.load(Ordering::Acquire) {
            self.keep_error_set();
            return false;
        }
        let mut buf = self.buf.split_off(self.pos);
        self.pos = 0;
        let stream = Arc::clone(&self.stream);
        while buf.len() < 8 {
            let result = Python::attach(|py| {
                match wait(py, |interrupt| stream.read_with(CHUNK, None, interrupt)) {
                    Ok(b) if !b.is_empty() => Ok(b),
                    Ok(_) => Err(PyErr::from(Error::Disconnected("stream ended while numpy drew from it".into()))),
                    Err(e) => Err(PyErr::from(e)),
                }
                .inspect_err(|e| e.clone_ref(py).restore(py))
            });
            match result {
                Ok(b) => buf.extend_from_slice(&b),
                Err(e) => {
                    self.buf = buf;
                    self.error = Some(e);
                    self.halted.store(true, Ordering::Release);
                    return false;
                }
            }
        }
        self.buf = buf;
        true
    }

    /// Sets the failure's exception again if numpy's code cleared it meanwhile.
    fn keep_error_set(&self) {
        if let Some(e) = &self.error {
            Python::attach(|py| {
                if PyErr::occurred(py) {
                    return;
                }
                e.clone_ref(py).restore(py);
            });
        }
    }
}

/// Runs `f` on the state behind numpy's pointer; a panic (a bug) aborts rather than unwinding
/// into numpy's C code, which cannot unwind.
fn with_state<T>(st: *mut c_void, f: impl FnOnce(&mut State) -> T) -> T {
    // SAFETY: numpy passes back the `state` pointer of the capsule, a live `State`, and holds the
    // bit generator's lock, so no other call uses it meanwhile.
    let state = unsafe { &mut *st.cast::<State>() };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(state))).unwrap_or_else(|_| std::process::abort())
}

unsafe extern "C" fn next_uint64(st: *mut c_void) -> u64 {
    with_state(st, State::next)
}

unsafe extern "C" fn next_uint32(st: *mut c_void) -> u32 {
    with_state(st, |state| {
        if let Some(v) = state.spare.take() {
            return v;
        }
        match state.word() {
            // The high half of a word read from the stream waits for the next call.
            Some(v) => {
                state.spare = Some((v >> 32) as u32);
                v as u32
            }
            // Never keep half a filler: a later call would return it as if it were random.
            None => state.next() as u32,
        }
    })
}

unsafe extern "C" fn next_double(st: *mut c_void) -> f64 {
    // 53 random bits scaled to [0, 1), as numpy's own generators do.
    (with_state(st, State::next) >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
}

/// The lock numpy holds around every draw from the bit generator: a re-entrant lock that, on
/// leaving, raises the exception a failed draw left pending (so numpy's call raises it rather
/// than returning values drawn after the failure, or a `SystemError`).
#[pyclass(frozen, module = "qitcore._core", name = "BitGenLock")]
pub struct PyBitGenLock {
    lock: Py<PyAny>,
    halted: Arc<AtomicBool>,
}

#[pymethods]
impl PyBitGenLock {
    /// Only `bitgen_capsule` makes one (it shares the generator's state).
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, pyo3::types::PyDict>>) -> Result<Self> {
        Err(Error::Type("BitGenLock: made only by bitgen_capsule, with its bit generator".into()))
    }

    /// Takes the lock (waiting with the GIL released) and lets the next draws try the stream.
    fn __enter__(&self, py: Python<'_>) -> Result<()> {
        self.lock.call_method0(py, "acquire")?;
        self.halted.store(false, Ordering::Release);
        Ok(())
    }

    /// Releases the lock; raises the exception a failed draw left pending.
    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> Result<bool> {
        let pending = PyErr::take(py);
        self.lock.call_method0(py, "release")?;
        match pending {
            Some(e) => Err(e.into()),
            None => Ok(false),
        }
    }
}

/// The `bitgen_t` capsule numpy's `Generator` needs, drawing from `stream`, and the lock numpy
/// must hold around its draws: `(capsule, lock)`.
#[pyfunction]
pub fn bitgen_capsule<'py>(
    py: Python<'py>,
    stream: &Bound<'py, PyAny>,
) -> Result<(Bound<'py, PyCapsule>, PyBitGenLock)> {
    let stream = stream.cast::<PyStream>().map_err(|_| {
        let name = stream.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        Error::Type(format!("stream: expected a _core.Stream, got {name}"))
    })?;
    let halted = Arc::new(AtomicBool::new(false));
    let state = Box::new(State {
        stream: stream.get().shared(),
        buf: Vec::new(),
        pos: 0,
        spare: None,
        halted: Arc::clone(&halted),
        error: None,
        filler: 0,
    });
    let bitgen = OwnedBitGen(BitGen {
        state: Box::into_raw(state).cast(),
        next_uint64,
        next_uint32,
        next_double,
        next_raw: next_uint64,
    });
    let capsule = PyCapsule::new_with_value_and_destructor(py, bitgen, c"BitGenerator", |bitgen: OwnedBitGen, _| {
        // SAFETY: `state` came from `Box::into_raw` above and is freed once, here.
        drop(unsafe { Box::from_raw(bitgen.0.state.cast::<State>()) });
    })?;
    let lock = py.import("threading")?.getattr("RLock")?.call0()?.unbind();
    Ok((capsule, PyBitGenLock { lock, halted }))
}
